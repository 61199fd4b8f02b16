"""The bundled chorales: every one survives the round trip, and `prepare` on them is cached."""

import json
import time

from gancomposer.dataset import load_dataset, load_sources
from gancomposer.encoding import Encoding, PianoRoll, Voices, grid_times, pitch_span, snap_to_grid
from gancomposer.corpora import get_corpus


def test_every_bundled_chorale_round_trips(chorales_dir):
    sources = load_sources(get_corpus("bach-chorales").files(), progress=False)
    pieces = [p for s in sources for p in s.pieces]
    assert len(pieces) >= 340
    enc: Encoding = PianoRoll(4, *pitch_span(pieces))  # through the interface
    merged = 0
    for p in pieces:
        canon = snap_to_grid(p, 4)
        assert enc.decode(enc.encode(p)).notes() == canon.notes(), p.name
        merged += len(p) - len(canon)
    # Unisons and instruments doubling a voice (colla parte) merge; they are a small share of all notes.
    assert merged < 0.05 * sum(len(p) for p in pieces)
    # as voices from the parts, every note on the grid comes back, unisons too
    voices, by_parts = Voices(4, *pitch_span(pieces), 6, by_parts=True), 0
    for p in pieces:
        on, off = grid_times(p, 4)
        on_grid = sorted(zip(p.pitch.tolist(), (on / 4).tolist(), ((off - on) / 4).tolist()))
        decoded = voices.decode(voices.encode(p))
        if voices.follows_parts(p):
            by_parts += 1
            assert sorted(decoded.notes()) == on_grid, p.name
    assert by_parts >= 330


def test_prepare_chorales_counts_and_second_run_is_fast(chorales_dir, tmp_path):
    from gancomposer.dataset import prepare

    manifest = json.loads((chorales_dir / "manifest.json").read_text())
    assert manifest["counts"]["pieces"] >= 340
    assert manifest["counts"]["skipped_files"] == 0
    t = time.perf_counter()
    again = prepare([], tmp_path / "again", corpus="bach-chorales", progress=False)
    assert time.perf_counter() - t < 5.0
    assert again["counts"] == manifest["counts"]
    ds = load_dataset(chorales_dir)
    cond = ds.conditions
    assert cond.meters[0] == (4, 4) and (3, 4) in cond.meters  # most chorales are in 4/4, some in 3/4
    assert cond.window_steps[0] == 64 and cond.window_steps[cond.meters.index((3, 4))] == 5 * 12
    assert ds.train.shape[1:] == (max(cond.window_steps), ds.encoding.cells)
    assert ds.windows_in("train", 0).shape[1:] == (64, ds.encoding.cells)
    assert len(ds.valid) > 0
