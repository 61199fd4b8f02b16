import numpy as np
import pytest
from helpers import piece, scale_piece

from gancomposer.encoding import HOLD, OFF, ONSET, Encoding, PianoRoll, snap_to_grid

ENC = PianoRoll(steps_per_quarter=4, low=48, high=72)


def test_repeated_notes_keep_their_onsets():
    p = piece([(60, 0, 1), (60, 1, 1)])
    roll = ENC.encode(p)
    assert roll[:, 60 - 48].tolist() == [ONSET, HOLD, HOLD, HOLD, ONSET, HOLD, HOLD, HOLD]
    assert ENC.decode(roll).notes() == [(60, 0.0, 1.0), (60, 1.0, 1.0)]


def test_docstring_example_half_note_under_two_quarters():
    p = piece([(60, 0, 2), (64, 0, 1), (64, 1, 1)])
    roll = ENC.encode(p)
    assert roll[:, 64 - 48].tolist() == [1, 2, 2, 2, 1, 2, 2, 2]
    assert roll[:, 60 - 48].tolist() == [1, 2, 2, 2, 2, 2, 2, 2]
    assert (roll[:, [i for i in range(ENC.n_pitches) if i not in (12, 16)]] == OFF).all()


def test_polyphony_and_rests_round_trip():
    p = piece([(48, 0, 4), (55, 0.25, 0.5), (60, 0.25, 3.75), (72, 3, 0.25), (64, 6, 0.5)])
    back = ENC.decode(ENC.encode(p))
    assert back.notes() == p.notes()


def test_off_grid_notes_snap_and_last_at_least_one_step():
    p = piece([(60, 0.1, 0.05), (62, 1.13, 0.9)])
    assert ENC.decode(ENC.encode(p)).notes() == [(60, 0.0, 0.25), (62, 1.25, 0.75)]


def test_unison_of_two_voices_is_the_canonical_union():
    # alto holds C4 for two beats while the tenor re-attacks it on beat 2 for one beat
    p = piece([(60, 0, 2), (60, 1, 0.5)])
    canon = snap_to_grid(p, 4)
    assert canon.notes() == [(60, 0.0, 1.0), (60, 1.0, 1.0)]
    assert ENC.decode(ENC.encode(p)).notes() == canon.notes()


def test_hold_after_silence_starts_a_note():
    roll = np.zeros((6, ENC.n_pitches), np.uint8)
    roll[2:5, 0] = HOLD
    assert ENC.decode(roll).notes() == [(48, 0.5, 0.75)]


def test_notes_outside_the_range_are_left_out_and_padding():
    p = piece([(40, 0, 1), (60, 0, 1)])
    roll = ENC.encode(p, n_steps=16)
    assert roll.shape == (16, ENC.n_pitches)
    assert ENC.decode(roll).notes() == [(60, 0.0, 1.0)]
    assert ENC.encode(p, n_steps=2).shape[0] == 2


def test_other_grids_round_trip():
    enc = PianoRoll(steps_per_quarter=12, low=48, high=72)
    p = piece([(60, 0, 1 / 3), (62, 1 / 3, 1 / 3), (64, 2 / 3, 4 / 3)])
    back = enc.decode(enc.encode(p))
    assert [(a, round(b, 9), round(c, 9)) for a, b, c in back.notes()] == [
        (a, round(b, 9), round(c, 9)) for a, b, c in p.notes()]


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        PianoRoll(steps_per_quarter=0)
    with pytest.raises(ValueError):
        PianoRoll(low=80, high=60)
    with pytest.raises(ValueError):
        ENC.decode(np.zeros((4, 3), np.uint8))


def test_scale_round_trip_through_a_midi_file(tmp_path):
    from gancomposer.io.midi import read_midi, write_midi

    p = scale_piece()
    write_midi(p, tmp_path / "s.mid")
    back = read_midi(tmp_path / "s.mid")
    enc = PianoRoll(4, 40, 80)
    assert enc.decode(enc.encode(back)).notes() == p.notes()


def test_the_roll_is_an_encoding_and_round_trips_through_its_dict():
    enc = PianoRoll(4, 50, 80)
    assert isinstance(enc, Encoding)
    assert (enc.cells, enc.states, enc.features_per_step) == (31, 3, 62)
    assert enc.steps_per_bar((4, 4)) == 16 and enc.steps_per_bar((3, 4)) == 12 and enc.steps_per_bar((6, 8)) == 12
    assert Encoding.from_dict(enc.to_dict()) == enc
    # datasets and checkpoints written by 0.1.0 stored the roll without its kind
    assert Encoding.from_dict({"steps_per_quarter": 4, "low": 50, "high": 80}) == enc
    with pytest.raises(ValueError, match="unknown encoding 'midi-like'"):
        Encoding.from_dict({"kind": "midi-like"})
