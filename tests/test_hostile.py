"""Bad input: skipped with one line naming the file and the reason; never a traceback or a hang."""

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from helpers import midi_file, note_events, scale_piece, write_piece
from hostile import hostile_scores, make_hostile, make_valid, musicxml, time_signature, write_bomb

from gancomposer.errors import UserError


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "gancomposer", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


def test_three_good_files_among_fifty_hostile_ones(tmp_path):
    folder = tmp_path / "in"
    make_valid(folder)
    hostile = make_hostile(folder)
    assert len(hostile) >= 50
    t = time.perf_counter()
    r = run_cli("prepare", str(folder), "--out", str(tmp_path / "ds"), "--quiet")
    elapsed = time.perf_counter() - t
    assert r.returncode == 0, r.stderr
    assert elapsed < 30
    assert "Traceback" not in r.stderr + r.stdout
    assert "prepared" in r.stdout and ": 3 pieces" in r.stdout
    # nothing else on stderr (no parser warnings): only the one line per skipped file
    skipped = r.stderr.splitlines()
    assert all(line.startswith("skipped ") for line in skipped), r.stderr
    # every hostile entry but the folder named x.mid (searched into, and empty) is reported once
    reported = sorted(line.split(": ", 1)[0].rsplit("/", 1)[1] for line in skipped)
    assert reported == sorted(n for n in hostile if n != "x.mid")
    assert all(len(line.split(": ", 1)[1]) > 3 for line in skipped)
    assert f"skipped {len(hostile) - 1} of {len(hostile) + 2} files" in r.stdout
    # the fitted range is the valid pieces' own (C3-D5), not widened by the file with pitches 0 and 127
    assert "(C3-D5)" in r.stdout
    manifest = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    assert (manifest["encoding"]["low"], manifest["encoding"]["high"]) == (48, 74)
    assert sorted(Path(p["source"]).name for p in manifest["pieces"]) == ["good0.mid", "good1.mid", "good2.mid"]


def test_an_external_entity_never_reads_a_local_file(tmp_path):
    from gancomposer.io import read_file

    files = hostile_scores(tmp_path)
    for name in ("external_entity.musicxml", "parameter_entity.musicxml"):
        (tmp_path / name).write_bytes(files[name])
        try:
            pieces = read_file(tmp_path / name)
        except UserError:
            continue
        # the secret file holds D5 notes; the score itself has none
        assert not any((p.pitch == 74).any() for p in pieces)


def test_a_compressed_score_bomb_is_skipped_fast_and_small(tmp_path):
    folder = tmp_path / "in"
    make_valid(folder, 1)
    bomb = write_bomb(folder / "bomb.mxl", 1024)
    assert bomb.stat().st_size < 1.1 * 2**20
    t = time.perf_counter()
    r = run_cli("prepare", str(folder), "--out", str(tmp_path / "ds"), "--quiet")
    assert time.perf_counter() - t < 10
    assert resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss < 2**20  # KiB: under 1 GiB
    assert r.returncode == 0 and "skipped" in r.stderr and "bomb.mxl" in r.stderr and "Traceback" not in r.stderr


def _stops_as_from_a_terminal() -> None:
    """In the child before it runs: Ctrl-C and SIGTERM at their defaults and not held, as in a terminal. This
    process may have them otherwise (a test before this one in the same worker left SIGINT ignored, and a
    Python started with SIGINT ignored keeps ignoring it, as it should for a job started in the background):
    prepare then read every file and exited 0 in full suites, while the test passed alone."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})


def test_stopping_prepare_prints_one_line_from_one_process(tmp_path, tmp_path_factory):
    """Ctrl-C or SIGTERM while the workers read: one line, exit 130, no worker tracebacks, nothing left."""
    import signal

    folder = tmp_path / "in"
    for i in range(1200):  # enough that reading them outlasts the signal's way here on a fast, idle machine
        write_piece(folder / f"p{i}.mid", scale_piece(offset=i % 12, bars=64))
    for sig in (signal.SIGINT, signal.SIGTERM):
        # an empty cache each time: with the files already read, prepare could end before the signal lands
        env = {**os.environ, "GANCOMPOSER_CACHE": str(tmp_path_factory.mktemp("cache"))}
        # (the roll: its larger windows keep prepare busy long enough for the signal to land in it)
        proc = subprocess.Popen([sys.executable, "-m", "gancomposer", "prepare", str(folder), "--out",
                                 str(tmp_path / "ds"), "--transpose=-5..6", "--encoding", "roll"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                preexec_fn=_stops_as_from_a_terminal)
        err = ""
        while "reading" not in err:  # the progress bar: the workers are running
            err += proc.stderr.read(1)
        proc.send_signal(sig)
        try:
            out, rest = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:  # fail this test alone: no stuck process left to upset later ones
            proc.kill()
            proc.communicate()
            raise AssertionError(f"prepare did not stop within 60 s of {sig.name}") from None
        err += rest
        assert proc.returncode == 130, f"{sig.name}:\n{err}"
        assert "Traceback" not in err and "BrokenPipe" not in err
        assert err.strip().splitlines()[-1].endswith("gancomposer: interrupted")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_odd_but_usable_files_are_read_with_sane_values(tmp_path):
    """Files a user may well have: they are read, with what cannot be trusted replaced or dropped."""
    notes = note_events([(60 + i % 7, i * 480, 480) for i in range(32)])
    odd = {
        "tempo_zero.mid": midi_file([b"\x00\xff\x51\x03\x00\x00\x00" + notes]),
        "tempo_glacial.mid": midi_file([b"\x00\xff\x51\x03\xff\xff\xff" + notes]),
        "key_signature_out_of_range.mid": midi_file([b"\x00\xff\x59\x02\x9c\x05" + notes]),
        "meter_changes_every_bar.mid": midi_file([b"".join(
            time_signature(3 + i % 2, 2) + note_events([(62 + i % 3, 0, 480)] * 1) for i in range(32))]),
        "zero_length_notes_among_good_ones.mid": midi_file([note_events(
            [(60 + i % 7, i * 480, 480 * (i % 2)) for i in range(64)])]),
    }
    odd["key_signature_of_99_sharps.musicxml"] = musicxml().replace(b"<time>", b"<key><fifths>99</fifths></key><time>")
    odd["key_signature_of_14_flats.abc"] = b"X:1\nT:t\nM:4/4\nL:1/4\nK:Cbbbbbbbbbbbbbb\nCDEF|GABc|\n"
    folder = tmp_path / "odd"
    folder.mkdir()
    for name, data in odd.items():
        (folder / name).write_bytes(data)
    r = run_cli("prepare", str(folder), "--out", str(tmp_path / "ds"), "--quiet")
    # a piece whose meter changes every bar has no stretch in one meter to learn from: skipped, saying why
    assert r.returncode == 0 and r.stderr.splitlines() == [
        f"skipped {folder / 'meter_changes_every_bar.mid'}: its time signature changes 31 times, and no stretch in "
        "one meter is long enough for a training window"], r.stderr
    manifest = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    rows = {Path(p["source"]).name: p for p in manifest["pieces"]}
    assert sorted(rows) == sorted(set(odd) - {"meter_changes_every_bar.mid"})
    assert all(10 <= p["tempo"] <= 1000 for p in rows.values())
    assert rows["zero_length_notes_among_good_ones.mid"]["windows"] > 0


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


def test_a_stuck_parse_is_killed_and_a_greedy_one_stopped():
    import pytest

    from gancomposer.errors import UserError
    from gancomposer.processes import run_limited

    t = time.perf_counter()
    with pytest.raises(UserError, match="longer than"):
        run_limited(lambda: time.sleep(30) or b"", timeout_s=0.5, memory_bytes=0)  # a sleep ignores signals' pace
    assert time.perf_counter() - t < 5
    with pytest.raises(UserError, match="memory"):
        run_limited(lambda: bytes(2 * 2**30), timeout_s=30, memory_bytes=2**28)
    assert run_limited(lambda: b"ok", timeout_s=30, memory_bytes=2**28) == b"ok"
    with pytest.raises(UserError, match="^bad input$"):
        from gancomposer.errors import UserError as E

        def fail():
            raise E("bad input")
        run_limited(fail, timeout_s=30, memory_bytes=0)


def test_a_reader_that_stops_early_gets_no_traceback():
    # `gancomposer train --help-config | head -1`: the pipe closes while we are still printing
    proc = subprocess.Popen([sys.executable, "-m", "gancomposer", "train", "--help-config"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
    proc.stdout.read(10)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0
    assert "Traceback" not in err


def _slow_square(x):
    if x == 5:
        os.kill(os.getpid(), 9)  # a reader that takes the whole process down (a segfault, an OOM kill)
    time.sleep(0.02 * (x % 3))  # results come back out of order
    return x * x


def _no_children_left():
    try:
        os.waitpid(-1, os.WNOHANG)  # a living or unreaped child
    except ChildProcessError:
        return True
    return False


def test_forked_workers_keep_order_survive_a_crash_and_leave_no_process():
    from contextlib import closing

    from gancomposer.processes import fork_map

    items = list(range(12))
    for chunk in (1, 4):  # with 4 to a task, the crash's task-mates 4, 6 and 7 are tried again and kept
        assert list(fork_map(_slow_square, items, 3, lambda x: -x, chunk)) == [-5 if x == 5 else x * x for x in items]
        assert _no_children_left()
    with closing(fork_map(_slow_square, items, 3, lambda x: -x)) as results:
        assert next(results) == 0  # a consumer that stops early (Ctrl-C in its loop) still ends every worker
    assert _no_children_left()
