"""Benchmark: two training jobs on one machine, the second started while the first runs.

Each job is `gancomposer train` in its likelihood phase (the bach preset's networks). Job A starts alone;
after --stagger seconds job B starts; both run for --together seconds more. Iterations per second are read
from each run's TensorBoard log. Run once with automatic threads (the default) and once with every job
forced to take all cores (--threads = cores), the set-up that made two jobs crawl.

    python benchmarks/two_jobs.py [--stagger 60 --together 150]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def rates(run: Path, windows: list[tuple[float, float]], t0: float) -> list[float]:
    """Iterations per second of ``run`` within each (start, end) window (seconds after ``t0``)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tensorboard"))
    acc.Reload()
    events = [(e.wall_time - t0, e.step) for e in acc.Scalars("pretrain/nll")]
    out = []
    for a, b in windows:
        inside = [(t, s) for t, s in events if a <= t <= b]
        out.append((inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0]) if len(inside) > 1 else 0.0)
    return out


def trial(data: Path, work: Path, threads: int | None, stagger: float, together: float) -> None:
    def start(name: str) -> subprocess.Popen:
        args = [sys.executable, "-m", "gancomposer", "train", "--data", str(data), "--out", str(work / name),
                "--preset", "bach", "--quiet", "pretrain_iters=1000000", "log_every=5", "guard_every=0"]
        env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
        return subprocess.Popen(args + ([f"--threads={threads}"] if threads else []), env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    t0 = time.time()
    a = start("a")
    time.sleep(stagger)
    b = start("b")
    time.sleep(together)
    for p in (a, b):
        p.send_signal(signal.SIGTERM)
    for p in (a, b):
        p.wait()
    settle = min(70.0, together / 2)  # the automatic choice reacts within about a minute
    ra = rates(work / "a", [(10, stagger), (stagger + settle, stagger + together)], t0)
    rb = rates(work / "b", [(stagger + settle, stagger + together)], t0)
    label = "automatic threads" if threads is None else f"--threads {threads} each"
    print(f"{label}: A alone {ra[0]:.2f} it/s; together (after {settle:.0f} s) A {ra[1]:.2f} + B {rb[0]:.2f} "
          f"= {ra[1] + rb[0]:.2f} it/s ({(ra[1] + rb[0]) / ra[0]:.0%} of one job alone)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stagger", type=float, default=60)
    ap.add_argument("--together", type=float, default=150)
    args = ap.parse_args()
    from gancomposer.dataset import prepare

    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "chorales"
        prepare([], data, corpus="bach-chorales", progress=False, log=lambda s: None)
        for threads in (None, cores):
            trial(data, Path(tmp) / f"t{threads}", threads, args.stagger, args.together)


if __name__ == "__main__":
    main()
