"""Set-level evaluation on the bundled chorales: halves look alike, random notes do not, and the report
ranks real data, the Markov baseline and random notes in that order on every headline number."""

import json
import subprocess
import sys

import numpy as np

from gancomposer.baselines import from_sounding, markov_grids, random_rolls, sounding
from gancomposer.dataset import load_dataset, split_pieces
from gancomposer.encoding import TIE, Voices
from gancomposer.evaluate import cut_windows
from gancomposer.metrics import classifier_two_sample_test, copy_rate, feature_matrix, training_window_keys


def test_two_sample_test_halves_of_chorales_vs_random_notes(chorales_dir):
    ds = load_dataset(chorales_dir)
    rolls, enc = ds.piece_rolls(), ds.encoding.roll  # piano-roll views, whatever the encoding
    halves = split_pieces([str(i) for i in range(len(rolls))], 0.5, seed=3)
    a = cut_windows([r for r, h in zip(rolls, halves) if h == "train"], 64)
    b = cut_windows([r for r, h in zip(rolls, halves) if h == "valid"], 64)
    spb = ds.encoding.steps_per_bar(ds.meter)
    fa, fb = feature_matrix(a.windows, enc, spb), feature_matrix(b.windows, enc, spb)
    acc = classifier_two_sample_test(fa, a.groups, fb, b.groups)
    assert 0.4 <= acc <= 0.6
    noise = cut_windows(random_rolls(rolls, 60, 128, seed=0), 64)
    acc_random = classifier_two_sample_test(feature_matrix(noise.windows, enc, spb), noise.groups, fb, b.groups)
    assert acc_random >= 0.95


def test_copy_rate_of_verbatim_excerpts_and_of_random_notes(chorales_dir):
    ds = load_dataset(chorales_dir)
    train = ds.piece_rolls("train")
    keys = training_window_keys(train, 32)
    excerpts = np.stack([r[16:48] for r in train[:20] if len(r) >= 48])
    assert copy_rate(excerpts, keys) == 1.0
    noise = cut_windows(random_rolls(train, 20, 64, seed=1), 32).windows
    assert copy_rate(noise, keys) == 0.0


def test_markov_baseline_is_deterministic_and_uses_real_states(chorales_dir):
    ds = load_dataset(chorales_dir)
    assert ds.encoding.kind == "voices"  # the chain runs over voice states: each voice's pitch and onset
    train = ds.piece_grids("train")
    a = markov_grids(train, 2, 64, order=2, seed=5, enc=ds.encoding)
    b = markov_grids(train, 2, 64, order=2, seed=5, enc=ds.encoding)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert a[0].shape == (64, ds.encoding.cells)
    states = {row.tobytes() for g in train for row in sounding(g)}
    assert all(row.tobytes() in states for g in a for row in sounding(g))
    assert all(np.array_equal(from_sounding(sounding(g)), g) for g in train)  # a lossless view of valid grids


def test_markov_baseline_follows_its_only_piece_where_every_context_is_unique():
    # two voices: the upper climbs, the lower holds and moves; every pair of states occurs once
    upper = [5, 6, 7, 8, 9, 10, 11, 12]
    lower = [3, TIE, 4, TIE, 5, TIE, 6, TIE]
    grid = np.array([upper, lower], np.uint8).T
    out = markov_grids([grid], 3, len(grid), order=2, seed=0, enc=Voices(4, 40, 60, 2))
    assert all(np.array_equal(g, grid) for g in out)
    # what a voice holds is part of the state: a tie continues this pitch, not whatever came before
    assert np.array_equal(sounding(grid)[:3, 1], [2 * 3 + 1, 2 * 3, 2 * 4 + 1])
    assert np.array_equal(from_sounding(np.array([[2 * 5 + 1], [2 * 5], [2 * 7]])).ravel(), [5, TIE, 7])


def test_evaluate_cli_orders_reference_markov_random(chorales_dir, tmp_path):
    run = lambda *a: subprocess.run([sys.executable, "-m", "gancomposer", *a], capture_output=True,  # noqa: E731
                                    text=True, timeout=300)
    for kind in ("markov", "random"):
        r = run("baseline", kind, "--data", str(chorales_dir), "--out", str(tmp_path / kind), "--n", "40")
        assert r.returncode == 0, r.stderr
    r = run("evaluate", "--generated", str(tmp_path / "markov"), "--baseline", f"random={tmp_path / 'random'}",
            "--reference", str(chorales_dir), "--out", str(tmp_path / "report"))
    assert r.returncode == 0, r.stderr
    lines = [line for line in r.stdout.splitlines() if line.startswith("| ")]
    assert [line.split("|")[1].strip() for line in lines[1:]] == ["generated", "random", "reference (valid vs train)"]
    rows = json.loads((tmp_path / "report" / "report.json").read_text())["rows"]
    ref, markov, rand = rows["reference (valid vs train)"], rows["generated"], rows["random"]
    assert ref["overlap_area"] > markov["overlap_area"] > rand["overlap_area"]
    assert ref["kl_divergence"] < markov["kl_divergence"] < rand["kl_divergence"]
    assert ref["frechet_distance"] < markov["frechet_distance"] < rand["frechet_distance"]
    gap = lambda row: abs(row["two_sample_accuracy"] - 0.5)  # noqa: E731
    assert gap(ref) < gap(markov) <= gap(rand)
    for name in ("report.md", "features.png", "pitch_classes.png", "piano_rolls.png"):
        assert (tmp_path / "report" / name).stat().st_size > 0
