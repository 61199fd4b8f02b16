"""prepare(): windows, the split by piece, augmentation, key normalisation, the cache, the manifest."""

import json

import numpy as np
from helpers import piece, scale_piece, write_piece

from gancomposer import cache
from gancomposer.dataset import (PrepareOptions, load_dataset, prepare, split_pieces, transpositions,
                                 windows_of)
from gancomposer.encoding import PianoRoll
from gancomposer.theory import estimate_key, shift_to_c


def quiet(paths, out, **kw):
    return prepare([str(p) for p in paths], out, progress=False, log=lambda s: None, **kw)


def test_split_is_by_piece_deterministic_and_nonempty():
    keys = [f"k{i}" for i in range(50)]
    a = split_pieces(keys, 0.2, seed=1)
    assert a == split_pieces(keys, 0.2, seed=1)
    assert a.count("valid") == 10
    assert a != split_pieces(keys, 0.2, seed=2)
    assert split_pieces(["a", "b"], 0.01, seed=0).count("valid") == 1
    assert split_pieces(["a"], 0.5, seed=0) == ["train"]


def test_windows_start_on_bars_and_skip_silence():
    roll = np.zeros((100, 5), np.uint8)
    roll[:40, 0] = 2
    roll[80:, 1] = 2
    # windows of 32 steps, hop 16: starts 0,16,32,48,64 sound for 32,24,8,0,16 steps; 16 are needed
    assert windows_of(roll, 32, 16, 0.5) == [0, 16, 64]
    assert windows_of(roll[:10], 32, 16, 0.25) == [0]  # a short piece gives one padded window


def test_transpositions_keep_notes_in_range():
    enc = PianoRoll(4, 55, 70)
    p = piece([(60, 0, 1), (67, 1, 1)])
    assert transpositions(p, enc, -6, 6) == [-5, -4, -3, -2, -1, 0, 1, 2, 3]


def test_prepare_writes_windows_split_by_piece_and_manifest(tmp_path):
    files = [write_piece(tmp_path / f"in/p{i}.mid", scale_piece(offset=i % 3, bars=6)) for i in range(10)]
    m = quiet([tmp_path / "in"], tmp_path / "ds", options=PrepareOptions(valid_fraction=0.2, transpose=(-2, 2)))
    ds = load_dataset(tmp_path / "ds")
    c = m["counts"]
    assert (c["pieces"], c["train_pieces"], c["valid_pieces"]) == (10, 8, 2)
    assert ds.train.shape == (c["train_windows"], 64, ds.encoding.cells)
    # 6 bars, 4-bar windows, 1-bar hop: 3 windows per piece; training pieces in up to 5 keys
    assert c["valid_windows"] == 2 * 3
    assert set(ds.train_index[:, 2].tolist()) <= {-2, -1, 0, 1, 2}
    assert (ds.valid_index[:, 2] == 0).all()
    train_pieces = set(ds.train_index[:, 0].tolist())
    valid_pieces = set(ds.valid_index[:, 0].tolist())
    assert not train_pieces & valid_pieces
    for row in m["pieces"]:
        assert row["split"] == ("valid" if m["pieces"].index(row) in valid_pieces else "train")
    assert {s["sha256"] for s in m["sources"]} == {cache.file_sha256(f) for f in files}
    assert m["encoding"] == ds.encoding.to_dict()
    # a window decodes back to the piece's own notes in that stretch
    n, start, t, meter, key = ds.valid_index[0]
    assert m["conditions"]["meters"][meter] == m["pieces"][n]["time_signature"]
    notes = ds.encoding.decode(ds.valid[0]).notes()
    assert notes and all(0 <= s < 16 for _, s, _ in notes)
    # the whole untransposed roll of each piece is kept
    assert sum(r.shape[0] for r in ds.piece_rolls()) == ds.rolls.shape[0]
    assert json.loads((tmp_path / "ds" / "manifest.json").read_text())["counts"] == c


def test_pitch_range_fitted_or_given_and_out_of_range_counted(tmp_path):
    write_piece(tmp_path / "in/a.mid", piece([(50, 0, 4), (62, 0, 4), (90, 4, 4), (55, 4, 4)]))
    m = quiet([tmp_path / "in"], tmp_path / "ds")
    assert (m["encoding"]["low"], m["encoding"]["high"]) == (50, 90)
    m = quiet([tmp_path / "in"], tmp_path / "ds2", options=PrepareOptions(pitch_range=(48, 72)))
    assert m["counts"]["notes_out_of_range"] == 1


def test_normalize_key_moves_to_c_major_or_a_minor():
    g_major = scale_piece(offset=7)
    assert estimate_key(g_major) == (7, "major")
    assert shift_to_c(g_major) == 5  # G up a fourth to C (the smaller move than down a fifth)
    a_minor_like = piece([(57, 0, 2), (60, 2, 1), (64, 3, 1), (69, 4, 2), (62, 6, 1), (65, 7, 1), (64, 8, 4)])
    assert estimate_key(a_minor_like) == (9, "minor") and shift_to_c(a_minor_like) == 0


def test_slow_formats_are_cached_by_content(tmp_path, monkeypatch):
    from test_io import ABC

    import gancomposer.dataset as dataset

    (tmp_path / "in").mkdir()
    f = tmp_path / "in" / "t.abc"
    f.write_text(ABC)
    calls = []
    real = dataset.read_file
    monkeypatch.setattr(dataset, "read_file", lambda *a, **k: calls.append(a) or real(*a, **k))
    first = quiet([f], tmp_path / "ds1", options=PrepareOptions(valid_fraction=0))
    second = quiet([f], tmp_path / "ds2", options=PrepareOptions(valid_fraction=0))
    assert len(calls) == 1 and first["counts"] == second["counts"] and first["counts"]["pieces"] == 2
    f.write_text(ABC.replace("CDEF", "EDCD"))  # changed content: parsed again
    quiet([f], tmp_path / "ds3", options=PrepareOptions(valid_fraction=0))
    assert len(calls) == 2


def test_fitted_range_ignores_one_files_stray_notes_and_trims_rare_extremes():
    from gancomposer.encoding import fit_pitch_range

    style = [scale_piece(offset=i) for i in range(3)]  # pitches 48-74
    stray = piece([(0, 0, 1), (127, 1, 1), (60, 2, 1)])
    assert fit_pitch_range(style + [stray]) == (48, 74)
    # a far group that two pieces share and that holds >= 1 % of the notes is the style: kept
    high = [piece([(100, i, 1) for i in range(20)]), piece([(101, i, 1) for i in range(20)])]
    assert fit_pitch_range(style + high) == (48, 101)
    # in a large corpus the rarest 0.1 % at the ends is left out
    big = piece([(60 + i % 12, i, 1) for i in range(100_000)] + [(50, 0, 1), (80, 0, 1)])
    assert fit_pitch_range([big]) == (60, 71)
    assert fit_pitch_range([big], coverage=1.0) == (50, 80)


def test_meters_that_cannot_be_windowed_are_named_and_short_bars_hop_a_quarter():
    from gancomposer.dataset import hop_steps, meter_problem

    assert meter_problem((4, 4), 4, 16) is None and meter_problem((6, 8), 4, 16) is None
    assert meter_problem((3, 16), 4, 16) is None
    assert "not a meter" in meter_problem((0, 4), 4, 16)
    assert "not a meter" in meter_problem((4, 3), 4, 16)
    assert "whole steps" in meter_problem((1, 32), 4, 16)
    assert "longer than a training window" in meter_problem((7, 1), 4, 16)
    assert hop_steps((4, 4), 1, 4) == 16 and hop_steps((6, 8), 2, 4) == 24
    assert hop_steps((1, 16), 1, 4) == 4 and hop_steps((3, 16), 1, 4) == 6  # whole bars, >= a quarter


def test_an_interrupted_prepare_keeps_the_previous_dataset_whole(tmp_path, monkeypatch):
    import pytest

    import gancomposer.dataset as dataset

    for i in range(4):
        write_piece(tmp_path / f"in/p{i}.mid", scale_piece(offset=i))
    before = quiet([tmp_path / "in"], tmp_path / "ds")
    files_before = {p.name: p.read_bytes() for p in (tmp_path / "ds").iterdir()}
    write_piece(tmp_path / "in/wide.mid", scale_piece(offset=9))  # a new range: arrays of another shape

    def killed(*a, **k):
        raise KeyboardInterrupt  # arrays written, manifest not yet

    monkeypatch.setattr(dataset, "write_json_atomic", killed)
    with pytest.raises(KeyboardInterrupt):
        quiet([tmp_path / "in"], tmp_path / "ds")
    assert {p.name: p.read_bytes() for p in (tmp_path / "ds").iterdir()} == files_before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "in"]  # no staging folder left
    assert load_dataset(tmp_path / "ds").manifest["counts"] == before["counts"]


def test_leftovers_of_a_killed_prepare_are_cleared_by_the_next_one(tmp_path):
    for i in range(3):
        write_piece(tmp_path / f"in/p{i}.mid", scale_piece(offset=i))
    dead = 2**22 + 12345  # above Linux's pid_max: no such process
    (tmp_path / f".ds.{dead}.partial").mkdir()
    (tmp_path / f".ds.{dead}.partial" / "train.npy").write_bytes(b"x" * 1000)
    quiet([tmp_path / "in"], tmp_path / "ds")
    (tmp_path / "ds" / f".train.npy.{dead}.abc123.tmp").write_bytes(b"x")  # a killed pre-staging writer
    # a swap cut between its two renames: the old folder is put back, then replaced properly
    (tmp_path / "ds").rename(tmp_path / f".ds.{dead}.old")
    quiet([tmp_path / "in"], tmp_path / "ds")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "in"]
    assert not [p for p in (tmp_path / "ds").iterdir() if p.name.startswith(".")]
    load_dataset(tmp_path / "ds")


def test_damaged_datasets_are_refused_in_one_line(tmp_path):
    import shutil

    import pytest

    from gancomposer.errors import UserError

    for i in range(3):
        write_piece(tmp_path / f"in/p{i}.mid", scale_piece(offset=i))
    quiet([tmp_path / "in"], tmp_path / "good")

    def damaged(name, change):
        target = tmp_path / name
        shutil.copytree(tmp_path / "good", target)
        change(target)
        with pytest.raises(UserError) as e:
            load_dataset(target)
        assert "\n" not in str(e.value) and str(target) in str(e.value)
        return str(e.value)

    def flip_one_value(d):
        a = np.load(d / "rolls.npy")
        a[3, 1] = 7
        np.save(d / "rolls.npy", a)

    def other_shape(d):
        np.save(d / "train.npy", np.zeros((5, 64, 128), np.uint8))

    def drop_key(d):
        m = json.loads((d / "manifest.json").read_text())
        del m["counts"]
        (d / "manifest.json").write_text(json.dumps(m))

    assert "checksum" in damaged("flipped", flip_one_value)
    assert "(5, 64, 128)" in damaged("shape", other_shape)
    assert "no 'counts'" in damaged("nokey", drop_key)
    damaged("empty", lambda d: (d / "train.npy").write_bytes(b""))
    damaged("random", lambda d: (d / "valid.npy").write_bytes(np.random.default_rng(0).bytes(5000)))
    damaged("json", lambda d: (d / "manifest.json").write_text("[1, 2"))
    damaged("list", lambda d: (d / "manifest.json").write_text("[1, 2]"))


def test_an_out_folder_that_cannot_be_used_is_refused_before_reading(tmp_path):
    import pytest

    from gancomposer.errors import UserError

    write_piece(tmp_path / "in/p.mid", scale_piece())
    (tmp_path / "file").write_text("x")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    for out, why in [(tmp_path / "file", "is a file"), (tmp_path / "file" / "ds", "which is a file"),
                     (tmp_path / "mine", "not a dataset")]:
        with pytest.raises(UserError, match=why):
            quiet([tmp_path / "in"], out)
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "precious"
