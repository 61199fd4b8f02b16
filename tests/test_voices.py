"""The voices encoding: monophonic lines on the grid, exact round trips, the pitch-order split, the automatic
choice of encoding, and a melody model that can only write single lines."""

import numpy as np

from gancomposer.compose import Composer
from gancomposer.config import resolve
from gancomposer.dataset import PrepareOptions, choose_encoding, load_dataset, prepare
from gancomposer.encoding import PianoRoll, Voices, snap_to_grid
from gancomposer.io.midi import read_midi, write_midi
from gancomposer.train import train
from helpers import piece, scale_piece, write_piece
from test_conditions import MAJOR, MINOR, tune


def test_round_trip_of_part_wise_music_with_unisons_rests_and_repeated_notes():
    enc = Voices(4, 40, 80, 2)
    # two parts: a unison on beat 1, a rest in the lower part, a repeated note in the upper one
    p = piece([(60, 0, 1), (60, 0, 2), (62, 1, 0.5), (62, 1.5, 0.5), (55, 3, 1), (64, 2, 2)])
    grid = enc.encode(p)
    assert grid.shape == (16, 2) and sorted(enc.decode(grid).notes()) == sorted(p.notes())  # both unison notes
    assert len(snap_to_grid(p)) == len(p) - 1  # a piano roll cannot hold the unison
    melody = tune(2, MINOR, (6, 8), 4)
    line = piece([n for n in melody.notes() if n[0] >= 60])
    one = Voices(4, 40, 90, 1)
    assert one.decode(one.encode(line)).notes() == line.notes()


def test_decoded_voices_are_one_midi_track_each_and_read_back_as_the_same_notes(tmp_path):
    import symusic

    enc = Voices(4, 40, 80, 3)
    p = piece([(72, 0, 1), (67, 0, 2), (48, 0, 4), (71, 1, 1), (50, 2.5, 0.5), (72, 2, 2)])
    decoded = enc.decode(enc.encode(p))
    assert decoded.part is not None and sorted(set(decoded.part.tolist())) == [0, 1, 2]
    write_midi(decoded, tmp_path / "v.mid")
    score = symusic.Score(str(tmp_path / "v.mid"))
    assert [t.name for t in score.tracks] == ["voice 1", "voice 2", "voice 3"]
    assert [sorted(n.pitch for n in t.notes) for t in score.tracks] == [[71, 72, 72], [50, 67], [48]]
    assert sorted(read_midi(tmp_path / "v.mid").notes()) == sorted(p.notes())


def test_parts_that_are_single_lines_keep_their_voices_even_where_they_cross():
    enc = Voices(4, 40, 80, 3, by_parts=True)
    # the alto (part 1) rises above the soprano (part 0) on beat 3; the bass (part 2) holds
    notes = [(72, 0, 1), (71, 1, 1), (67, 2, 2), (67, 0, 1), (69, 1, 1), (74, 2, 2), (48, 0, 4)]
    p = piece(notes, part=[0, 0, 0, 1, 1, 1, 2])
    grid = enc.encode(p)
    lines = [[int(c) - 2 + 40 for c in grid[:, v] if c >= 2] for v in range(3)]
    assert lines == [[72, 71, 67], [67, 69, 74], [48]]
    assert sorted(enc.decode(grid).notes()) == sorted(p.notes())
    by_pitch = enc.encode(piece(notes))  # without parts: the top note is voice 0 at every onset
    assert [int(c) - 2 + 40 for c in by_pitch[:, 0] if c >= 2] == [72, 71, 74]
    assert (Voices(4, 40, 80, 3).encode(p) == by_pitch).all()  # and so without by_parts
    old_manifest = {k: v for k, v in Voices(4, 40, 80, 3).to_dict().items() if k != "by_parts"}
    assert Voices.from_dict(enc.to_dict()) == enc and Voices.from_dict(old_manifest).by_parts is False
    chord = piece(notes + [(60, 0, 1)], part=[0, 0, 0, 1, 1, 1, 2, 2])  # a part with two notes at once
    assert (enc.encode(chord) == enc.encode(piece(notes + [(60, 0, 1)]))).all()  # so: by pitch order


def test_pitch_order_split_of_a_piano_piece_with_a_known_answer():
    enc = Voices(4, 36, 84, 3)
    # a held bass, chords above it, then a note that finds every voice busy
    p = piece([(48, 0, 4), (64, 0, 1), (67, 0, 1), (65, 1, 1), (69, 1, 1), (72, 2, 1), (60, 2, 1), (76, 2.5, 0.5)])
    grid = enc.encode(p)
    lines = [[(int(c) - 2 + 36, s) for s, c in enumerate(grid[:, v]) if c >= 2] for v in range(3)]
    # top voice first among free voices at each onset; the held bass keeps voice 0 (it was placed first, alone
    # under nothing: onsets at one step go from the top down, so 67 -> voice 0, 64 -> 1, 48 -> 2)
    assert lines == [[(67, 0), (69, 4), (72, 8)], [(64, 0), (65, 4), (60, 8)], [(48, 0), (76, 10)]]
    decoded = enc.decode(grid).notes()
    assert (48, 0.0, 2.5) in decoded  # the bass gave way to the newest note when every voice was busy


def test_auto_picks_voices_for_melodies_and_part_music_and_the_roll_for_full_chords():
    roll = PianoRoll(4, 40, 90)
    melodies = [piece([n for n in tune(t, MAJOR, (4, 4), 4).notes() if n[0] >= 60]) for t in range(3)]
    assert choose_encoding("auto", roll, melodies) == Voices(4, 40, 90, 1)
    assert choose_encoding("auto", roll, [scale_piece()]) == Voices(4, 40, 90, 2)
    # seven-note chords on every beat (a pianist's): more voices than part music needs, so the roll
    chords = piece([(p, float(b), 1.0) for b in range(16) for p in (43, 50, 55, 59, 62, 67, 71)])
    said = []
    assert choose_encoding("auto", roll, [chords], log=said.append) == roll
    assert said == ["the piano roll (99% of the sounding steps hold at most 7 notes, more than 6 "
                    "voices, and the parts are not single lines)"]
    assert choose_encoding("voices", roll, [chords]) == Voices(4, 40, 90, 7)
    assert choose_encoding("auto", roll, melodies, "parts") == Voices(4, 40, 90, 1, by_parts=True)
    assert choose_encoding("roll", roll, melodies) == roll
    # the same seven-note chords sung by seven single-line parts (a motet for seven voices): voices
    sung = piece([(p, float(b), 1.0) for b in range(16) for p in (43, 50, 55, 59, 62, 67, 71)],
                 part=np.array([v for b in range(16) for v in range(7)]))
    assert choose_encoding("auto", roll, [sung], log=said.append) == Voices(4, 40, 90, 7)
    assert said[-1] == ("7 voices (99% of the sounding steps hold at most 7 notes, in parts that are "
                        "single lines in at least 90% of the pieces)")
    # ...but not when a part plays chords (a piano part beside a voice)
    piano = piece(sung.notes(), part=np.array([0 if p < 60 else 1 for p in sung.pitch]))
    assert choose_encoding("auto", roll, [piano]) == roll


def test_a_melody_model_composes_single_lines_in_the_corpus_meters(tmp_path):
    folder = tmp_path / "tunes"
    folder.mkdir()
    for i, meter in enumerate([(6, 8), (6, 8), (2, 4), (2, 4), (6, 8), (2, 4)]):
        melody = tune(i, MAJOR if i % 2 else MINOR, meter, 8)
        write_piece(folder / f"tune{i}.mid", piece([n for n in melody.notes() if n[0] >= 60], time_signature=meter))
    prepare([str(folder)], tmp_path / "ds", options=PrepareOptions(transpose=(-2, 2)), progress=False,
            log=lambda line: None)
    ds = load_dataset(tmp_path / "ds")
    assert ds.manifest["encoding"]["kind"] == "voices" and ds.encoding.cells == 1
    train(tmp_path / "ds", tmp_path / "run", resolve("tiny", None, ["guard_every=0"]), progress=False,
          log=lambda line: None)
    c = Composer.load(tmp_path / "run")
    assert sorted(c.meters) == ["2/4", "6/8"]
    pieces = c.compose(n=12, bars=4, seed=0)
    assert {p.meta["meter"] for p in pieces} == {"2/4", "6/8"}  # drawn from the style's mix
    for p in pieces:
        ends = p.piece.start + p.piece.duration
        assert (p.piece.start[1:] >= ends[:-1] - 1e-9).all()  # one note at a time
        assert len(p.grid) == 4 * ds.encoding.steps_per_bar(p.meter)
    sixes = c.compose(n=4, bars=2, seed=1, meter="6/8")
    assert all(p.meter == (6, 8) and len(p.grid) == 24 for p in sixes)
