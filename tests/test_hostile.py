"""Bad input: skipped with one line naming the file and the reason; never a traceback or a hang."""

import subprocess
import sys
import time

from hostile import make_hostile, make_valid


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "gancomposer", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


def test_three_good_files_among_thirty_hostile_ones(tmp_path):
    folder = tmp_path / "in"
    make_valid(folder)
    hostile = make_hostile(folder)
    assert len(hostile) == 31
    t = time.perf_counter()
    r = run_cli("prepare", str(folder), "--out", str(tmp_path / "ds"), "--quiet")
    elapsed = time.perf_counter() - t
    assert r.returncode == 0, r.stderr
    assert elapsed < 30
    assert "Traceback" not in r.stderr + r.stdout
    assert "prepared" in r.stdout and ": 3 pieces" in r.stdout
    skipped = [line for line in r.stderr.splitlines() if line.startswith("skipped ")]
    # every hostile entry but the folder named x.mid (searched into, and empty) is reported once
    reported = sorted(line.split(": ", 1)[0].rsplit("/", 1)[1] for line in skipped)
    assert reported == sorted(n for n in hostile if n != "x.mid")
    assert all(len(line.split(": ", 1)[1]) > 3 for line in skipped)
    assert "skipped 30 of 33 files" in r.stdout


def test_no_usable_file_gives_one_line_and_nonzero_exit(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "a.mid").write_bytes(b"nope")
    r = run_cli("prepare", str(folder), "--out", str(tmp_path / "ds"), "--quiet")
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("gancomposer: error:")]
    assert len(errors) == 1 and "no usable piece" in errors[0]


def test_missing_path_and_not_a_dataset(tmp_path):
    r = run_cli("prepare", str(tmp_path / "nowhere"), "--out", str(tmp_path / "ds"), "--quiet")
    assert r.returncode != 0 and "no such file or folder" in r.stderr and "Traceback" not in r.stderr


def test_a_hanging_score_parse_is_cut_off(monkeypatch):
    import pytest

    from gancomposer.io.score import time_limit
    from gancomposer.errors import UserError

    with pytest.raises(UserError, match="longer than"):
        with time_limit(0.2):
            while True:
                pass


def test_a_reader_that_stops_early_gets_no_traceback():
    # `gancomposer train --help-config | head -1`: the pipe closes while we are still printing
    proc = subprocess.Popen([sys.executable, "-m", "gancomposer", "train", "--help-config"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
    proc.stdout.read(10)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0
    assert "Traceback" not in err
