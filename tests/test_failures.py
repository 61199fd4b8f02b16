"""Operational failures: damaged or mismatched runs and checkpoints, unusable settings and folders, a full disk.
Each gives one line naming what is wrong (and a non-zero exit from the CLI), never a traceback, and keeps
what was already done."""

import json
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gancomposer import checkpoint
from gancomposer.config import apply, resolve
from gancomposer.errors import UserError
from gancomposer.train import train


def tiny(**kw):
    return apply(resolve("tiny"), kw, "test")


def quiet_train(data, run, cfg, **kw):
    lines = []
    summary = train(data, run, cfg, progress=False, log=lines.append, **kw)
    return summary, lines


def cli(*args, limit_file_bytes: int | None = None):
    def limit():
        if limit_file_bytes is not None:  # a disk that fills up: writes past this size fail with EFBIG
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_file_bytes, limit_file_bytes))

    r = subprocess.run([sys.executable, "-m", "gancomposer", *map(str, args)], capture_output=True, text=True,
                       timeout=300, preexec_fn=limit)
    assert "Traceback" not in r.stderr + r.stdout, r.stderr
    return r


def one_error_line(r) -> str:
    assert r.returncode != 0
    errors = [line for line in r.stderr.splitlines() if line.startswith("gancomposer: error:")]
    assert len(errors) == 1, r.stderr
    return errors[0]


def test_resume_keeps_the_runs_settings_and_a_changed_one_is_refused_or_used_and_recorded(tiny_data, tmp_path):
    run = tmp_path / "run"
    cli("train", "--data", tiny_data, "--out", run, "--preset", "tiny", "--quiet", "adversarial_iters=4")
    # no preset on resume: the run's own settings, not the defaults (which would not even fit the weights)
    r = cli("train", "--data", tiny_data, "--out", run, "--resume", "--quiet", "adversarial_iters=6")
    assert r.returncode == 0, r.stderr
    # a setting the saved networks or states were made with is refused, naming it and the run's value
    line = one_error_line(cli("train", "--data", tiny_data, "--out", run, "--resume", "g_hidden=64"))
    assert "g_hidden=64" in line and "32" in line
    assert "batch_size=8" in one_error_line(cli("train", "--data", tiny_data, "--out", run, "--resume",
                                                "batch_size=8"))
    # any other may change: it is used from there on (a learning rate also by the optimiser) and recorded
    r = cli("train", "--data", tiny_data, "--out", run, "--resume", "--quiet", "adversarial_iters=8", "lr_g=0.001",
            "loss=hinge")
    assert r.returncode == 0 and "lr_g=0.001" in r.stderr
    stored = json.loads((run / "config.json").read_text())
    assert stored["train"]["lr_g"] == 0.001 and stored["train"]["loss"] == "hinge"
    changes = {(c["setting"], c["from"], c["to"]) for c in stored["changes"]}
    assert {("lr_g", 2e-4, 0.001), ("loss", "gan", "hinge"), ("adversarial_iters", 6, 8)} <= changes
    assert {c["iteration"] for c in stored["changes"] if c["setting"] == "loss"} == {20 + 6}
    last = checkpoint.find(run, prefer="latest")
    assert checkpoint.load(last)[1]["train"]["lr_g"] == 0.001
    assert checkpoint.load_state(last)["opt_g"]["param_groups"][0]["lr"] == pytest.approx(0.001)


def test_a_damaged_newest_checkpoint_is_passed_over_saying_so(tiny_data, tmp_path):
    run = tmp_path / "run"
    cfg = tiny(adversarial_iters=10, checkpoint_every=5, keep_checkpoints=5)
    quiet_train(tiny_data, run, cfg)
    steps = sorted((run / "checkpoints").glob("step-*.safetensors"))
    newest = steps[-1]
    newest.write_bytes(newest.read_bytes()[:1000])  # truncated
    summary, lines = quiet_train(tiny_data, run, cfg, resume=True)
    assert any(str(newest) in line and "trying the checkpoint before it" in line for line in lines)
    assert any(f"resuming {steps[-2]}" in line for line in lines)

    class Code:  # a resume state that asks to run code when unpickled: refused, nothing runs
        def __reduce__(self):
            return (print, ("this must never print",))

    newest = sorted((run / "checkpoints").glob("step-*.safetensors"))[-1]
    torch.save({"opt_pre": Code()}, checkpoint.state_path(newest))
    summary, lines = quiet_train(tiny_data, run, cfg, resume=True)
    assert any("asks to run code" in line for line in lines)
    for bad in sorted((run / "checkpoints").glob("step-*.state.pt")):
        bad.write_bytes(b"not a zip")
    line = one_error_line(cli("train", "--data", tiny_data, "--out", run, "--resume"))
    assert "no checkpoint can be resumed" in line


def test_resume_on_a_dataset_of_another_range_says_what_differs(tiny_data, tmp_path):
    from helpers import scale_piece, write_piece

    from gancomposer.dataset import prepare

    run = tmp_path / "run"
    quiet_train(tiny_data, run, tiny(adversarial_iters=2))
    for i in range(3):
        write_piece(tmp_path / f"wide/p{i}.mid", scale_piece(offset=i * 5))
    prepare([str(tmp_path / "wide")], tmp_path / "other", progress=False, log=lambda s: None)
    line = one_error_line(cli("train", "--data", tmp_path / "other", "--out", run, "--resume"))
    assert "encoding" in line and "differs from the run's" in line


def test_edited_checkpoint_settings_are_checked_before_anything_is_built(tiny_run, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import save_file

    src = checkpoint.find(tiny_run, prefer="latest")
    with safe_open(str(src), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        info = json.loads(f.metadata()["gancomposer"])

    def edited(name, change):
        meta = json.loads(json.dumps(info))
        change(meta)
        path = tmp_path / f"{name}.safetensors"
        save_file(tensors, str(path), metadata={"gancomposer": json.dumps(meta)})
        return path

    wide = edited("wide", lambda m: m["model"].update(g_hidden=8192))
    with pytest.raises(UserError, match="do not fit the weights"):
        checkpoint.load_generator(wide)
    huge = edited("huge", lambda m: m["model"].update(g_hidden=10**6))
    line = one_error_line(cli("generate", "--model", huge, "--out", tmp_path / "g"))
    assert str(huge) in line
    pitches = edited("pitches", lambda m: m["data"]["encoding"].update(high=500))
    assert "high" in one_error_line(cli("generate", "--model", pitches, "--out", tmp_path / "g"))


def test_stale_temporaries_in_a_run_folder_are_cleared_on_resume(tiny_data, tmp_path):
    run = tmp_path / "run"
    cfg = tiny(adversarial_iters=4)
    quiet_train(tiny_data, run, cfg)
    dead = 2**22 + 777  # above Linux's pid_max: no such process
    stale = [run / "checkpoints" / f".step-000099.safetensors.{dead}.k2j4.tmp", run / f".config.json.{dead}.x1.tmp"]
    for s in stale:
        s.write_bytes(b"x" * 100)
    quiet_train(tiny_data, run, tiny(adversarial_iters=6), resume=True)
    assert not any(s.exists() for s in stale)


def test_settings_out_of_range_are_refused_in_one_line(tiny_data, tmp_path):
    for bad in ("lr_g=-1", "lr_d=nan", "beta1=2", "g_hidden=1000000", "ema_decay=1"):
        line = one_error_line(cli("train", "--data", tiny_data, "--out", tmp_path / "r", "--preset", "tiny", bad))
        assert bad.split("=")[0] in line
    assert not (tmp_path / "r").exists()


def test_unusable_out_folders_are_refused_before_any_work(tiny_data, tmp_path):
    (tmp_path / "file").write_text("x")
    assert "is a file" in one_error_line(cli("train", "--data", tiny_data, "--out", tmp_path / "file",
                                             "--preset", "tiny"))
    assert "which is a file" in one_error_line(cli("generate", "--out", tmp_path / "file" / "g"))
    assert "which is a file" in one_error_line(cli("prepare", "--corpus", "bach-chorales",
                                                   "--out", tmp_path / "file" / "d"))
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if not __import__("os").access(ro, __import__("os").W_OK):  # root writes anywhere: nothing to test
            assert "not writable" in one_error_line(cli("generate", "--out", ro / "g"))
    finally:
        ro.chmod(0o700)


def test_a_full_disk_gives_one_line_and_leaves_nothing_half_written(tiny_data, tmp_path):
    from helpers import scale_piece, write_piece

    for i in range(6):
        write_piece(tmp_path / f"in/p{i}.mid", scale_piece(offset=i, bars=64))
    line = one_error_line(cli("prepare", tmp_path / "in", "--out", tmp_path / "ds", "--transpose=-6..5",
                              "--quiet", limit_file_bytes=200_000))
    assert "no space left" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]  # no dataset, no staging folder

    run = tmp_path / "run"
    line = one_error_line(cli("train", "--data", tiny_data, "--out", run, "--preset", "tiny", "--quiet",
                              limit_file_bytes=50_000))
    assert "no space left" in line
    leftovers = [p for p in run.rglob(".*") if p.is_file()]
    assert not leftovers


def test_kill_9_at_random_moments_never_leaves_an_inconsistent_folder():
    """A short run of ``benchmarks/kill_loop.py`` (the benchmark itself does 20 + 10 kills)."""
    script = Path(__file__).parent.parent / "benchmarks" / "kill_loop.py"
    r = subprocess.run([sys.executable, str(script), "--prepare-kills", "5", "--files", "150", "--train-kills", "2",
                        "--train-iters", "15"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "re-run succeeded; leftover temporaries: 0" in r.stdout and "the next run succeeded" in r.stdout


def test_automatic_threads_step_down_when_other_work_competes_and_back_up():
    from gancomposer.distributed import ThreadGovernor, threads_for

    assert threads_for(2, 0.0) == 2 and threads_for(2, 1.2) == 1 and threads_for(2, 5.0) == 1
    assert threads_for(16, 0.0, processes=4) == 4
    clock, cpu, load = [0.0], [0.0], [0.0]
    gov = ThreadGovernor(2, auto=True, every_s=20, clock=lambda: clock[0], cpu_seconds=lambda: cpu[0],
                         loadavg=lambda: load[0])
    gov.cores = 2

    def after(seconds, own_cores, loadavg):
        clock[0] += seconds
        cpu[0] += seconds * own_cores
        load[0] = loadavg
        return gov.check()

    assert after(5, 2.0, 2.0) is None  # not due yet
    assert after(20, 2.0, 2.0) is None  # alone: its own two threads make the load
    assert after(20, 1.0, 3.0) == 1  # another job: this one gets half the cores, the load rises
    assert after(20, 1.0, 2.0) is None
    assert after(20, 1.0, 1.1) == 2  # the other job ended
    fixed = ThreadGovernor(2, auto=False)
    clock[0] += 100
    assert fixed.check() is None


def test_checkpoints_record_the_dataset_by_name_and_content_never_by_path(tiny_run, tiny_data):
    from safetensors import safe_open

    from gancomposer.compose import DEFAULT_MODEL
    from gancomposer.dataset import load_dataset

    info = checkpoint.load(checkpoint.find(tiny_run, prefer="latest"))[1]
    assert info["data"]["dataset"] == Path(tiny_data).name
    assert info["data"]["dataset_sha256"] == load_dataset(tiny_data).content_hash
    with safe_open(str(DEFAULT_MODEL), framework="pt") as f:
        shipped = f.metadata()["gancomposer"]
    assert "/work/" not in shipped and "/home/" not in shipped and '"/' not in shipped
