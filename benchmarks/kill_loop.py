"""Benchmark: `kill -9` at random moments during `prepare` and `train`; every next run must succeed and leave
a consistent folder with no temporaries behind.

For `prepare`: each try starts `gancomposer prepare` on a folder of pieces and kills it after a random delay
(uniform over a full run's duration). After each kill, the dataset folder must be absent or load with every
checksum matching; at the end one more `prepare` must succeed and leave no temporary anywhere near it.
For `train`: each try resumes (or starts) a tiny run and kills it at random; the next `--resume` must succeed.

    python benchmarks/kill_loop.py [--prepare-kills 20] [--train-kills 10] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


#: Marks the processes this script starts (and their forked workers, which share the environment), so that
#: other gancomposer processes on the machine (a test beside this one, a user's job) are not taken for orphans.
TAG_NAME, TAG_VALUE = "GANCOMPOSER_KILL_LOOP", str(os.getpid())


def cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "gancomposer", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, TAG_NAME: TAG_VALUE})


def leftovers(*folders: Path) -> list[Path]:
    """Temporaries (hidden names with a pid) in or beside the folders."""
    found = []
    for folder in folders:
        for where in (folder, folder.parent):
            if where.is_dir():
                found += [p for p in where.rglob(".*") if ".tmp" in p.name or p.name.endswith((".partial", ".old"))]
    return sorted(set(found))


def orphans() -> int:
    """Processes this script started that are still alive (workers whose parent was killed should die with it)."""
    count, tag = 0, f"{TAG_NAME}={TAG_VALUE}".encode()
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if tag in environ.read_bytes().split(b"\0") and int(environ.parent.name) != os.getpid():
                count += 1
        except OSError:  # ended meanwhile, or not ours to read
            pass
    return count


def kill_at_random(args: list[str], full_s: float, rng: random.Random) -> float:
    proc = cli(*args)
    delay = rng.uniform(0.05, full_s)
    try:
        proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    return delay


def prepare_loop(work: Path, kills: int, rng: random.Random, files: int = 400) -> None:
    from helpers import scale_piece, write_piece

    from gancomposer.dataset import load_dataset
    from gancomposer.errors import UserError

    src, out = work / "in", work / "ds"
    for i in range(files):  # 400: about 2-3 s to prepare on 2 cores; kills land in reading, encoding, writing
        write_piece(src / f"p{i:03d}.mid", scale_piece(offset=i % 12, bars=48))
    t = time.perf_counter()
    first = cli("prepare", str(src), "--out", str(out), "--quiet", "--transpose=-5..6")
    assert first.wait() == 0, first.stderr.read()
    full = time.perf_counter() - t
    consistent = mid_write = 0
    for k in range(kills):
        delay = kill_at_random(["prepare", str(src), "--out", str(out), "--quiet", "--transpose=-5..6"], full, rng)
        mid_write += bool(leftovers(out))  # killed while building: its staging folder is left for the next run
        if out.exists():
            try:
                load_dataset(out)
                consistent += 1
            except UserError as e:
                raise SystemExit(f"kill {k + 1} after {delay:.2f} s: inconsistent dataset: {e}") from None
    time.sleep(0.5)  # let the kernel reap workers killed with their parent
    lingering = orphans()
    final = cli("prepare", str(src), "--out", str(out), "--quiet", "--transpose=-5..6")
    ok = final.wait() == 0
    load_dataset(out)
    left = leftovers(out)
    print(f"prepare: {kills} kills at random over a {full:.1f} s run; dataset consistent after every kill "
          f"({consistent} present, {kills - consistent} absent); {mid_write} kills left a staging folder behind; "
          f"orphaned workers after kills: {lingering}; "
          f"re-run {'succeeded' if ok else 'FAILED'}; leftover temporaries: {len(left)}")
    if not ok or left or lingering:
        raise SystemExit(f"FAILED: {left[:5]}")


def train_loop(work: Path, kills: int, rng: random.Random, iters: int = 60) -> None:
    from gancomposer.dataset import prepare

    data, run = work / "ds", work / "run"
    if not data.exists():
        prepare([], data, corpus="bach-chorales", progress=False, log=lambda s: None)
    args = ["train", "--data", str(data), "--out", str(run), "--preset", "tiny", "--quiet",
            f"adversarial_iters={iters}", "checkpoint_every=5", "--threads", "1"]
    t = time.perf_counter()
    first = cli(*args)
    assert first.wait() == 0, first.stderr.read()
    full = time.perf_counter() - t
    import shutil

    shutil.rmtree(run)
    resumed = 0
    for _ in range(kills):
        started = (run / "checkpoints").is_dir() and any((run / "checkpoints").glob("step-*.safetensors"))
        kill_at_random(args + (["--resume"] if started else []), full, rng)
        resumed += started
    started = (run / "checkpoints").is_dir() and any((run / "checkpoints").glob("step-*.safetensors"))
    final = cli(*args + (["--resume"] if started else []))
    out, err = final.communicate()
    left = [p for p in run.rglob(".*") if p.is_file()]
    print(f"train: {kills} kills at random over a {full:.1f} s run ({resumed} of them while resuming); the next "
          f"run {'succeeded' if final.returncode == 0 else 'FAILED: ' + err.strip()[-300:]}; "
          f"leftover temporaries: {len(left)}")
    if final.returncode != 0 or left:
        raise SystemExit("FAILED")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prepare-kills", type=int, default=20)
    ap.add_argument("--train-kills", type=int, default=10)
    ap.add_argument("--train-iters", type=int, default=60, help="adversarial iterations of the killed run")
    ap.add_argument("--files", type=int, default=400, help="pieces the killed prepare reads")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        if args.prepare_kills:
            prepare_loop(Path(tmp) / "prepare", args.prepare_kills, rng, args.files)
        if args.train_kills:
            train_loop(Path(tmp) / "train", args.train_kills, rng, args.train_iters)


if __name__ == "__main__":
    main()
