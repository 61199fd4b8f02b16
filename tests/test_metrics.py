"""Every feature on lopsided hand-made pieces, with answers worked out by hand; set comparisons."""

import math

import numpy as np
import pytest
from helpers import piece

from gancomposer.encoding import PianoRoll
from gancomposer.metrics import copy_rate, frechet_distance, kl_divergence, overlap_area, training_window_keys
from gancomposer.metrics import features as F

ENC = PianoRoll(4, 50, 80)  # low is not a multiple of 12, so a pitch-class offset bug would show


def roll(notes, steps=16):
    return ENC.encode(piece(notes), n_steps=steps)


# C4 for 3 beats, E4 for 1 beat after it, C5 for the last beat: 16 steps
LOPSIDED = roll([(60, 0, 3), (64, 3, 1), (72, 3, 1)])


def test_pitch_class_histogram_groups_by_class_not_neighbours():
    h = F.pitch_class_histogram(LOPSIDED, ENC)
    # sounding cells: C4 12 + C5 4 = 16 for class C, E4 4 for class E
    assert h[0] == pytest.approx(0.8) and h[4] == pytest.approx(0.2)
    assert h.sum() == pytest.approx(1.0) and np.count_nonzero(h) == 2


def test_counts_range_and_entropy():
    assert F.pitch_count(LOPSIDED) == 3
    assert F.used_pitch_classes(LOPSIDED, ENC) == 2
    assert F.pitch_range(LOPSIDED) == 12
    assert F.pitch_class_entropy(LOPSIDED, ENC) == pytest.approx(-(0.8 * math.log2(0.8) + 0.2 * math.log2(0.2)))


def test_empty_beat_rate_is_the_empty_share():
    r = roll([(60, 0, 1)])  # one beat of sound, three silent beats
    assert F.empty_beat_rate(r, ENC) == pytest.approx(0.75)


def test_polyphony_counts_only_sounding_steps():
    r = roll([(60, 0, 2), (64, 0, 1)], steps=32)  # 4 steps of two notes, 4 of one, 24 silent
    assert F.polyphony(r) == pytest.approx(1.5)


def test_note_count_onset_rate_and_inter_onset_interval():
    r = roll([(60, 0, 1), (62, 1, 0.5), (64, 1.5, 2.5)])  # onsets at steps 0, 4, 6
    assert F.note_count(r) == 3
    assert F.onsets_per_beat(r, ENC) == pytest.approx(3 / 4)
    assert F.mean_inter_onset_interval(r, ENC) == pytest.approx((1 + 0.5) / 2)


def test_note_length_histogram():
    r = roll([(60, 0, 1), (62, 1, 0.5), (64, 1.5, 1.5), (65, 3, 6)], steps=40)
    h = F.note_length_histogram(r, ENC)
    classes = list(F.NOTE_LENGTH_CLASSES)
    assert h[classes.index(1.0)] == 0.25 and h[classes.index(0.5)] == 0.25 and h[classes.index(1.5)] == 0.25
    assert h[-1] == 0.25  # six beats: longer than a whole note
    assert h.sum() == pytest.approx(1.0)


def test_scale_consistency_best_of_24_scales():
    notes = [(p, i * 0.5, 0.5) for i, p in enumerate([60, 62, 64, 65, 67, 69, 71, 61])]
    assert F.scale_consistency(roll(notes), ENC) == pytest.approx(7 / 8)
    assert F.scale_consistency(roll([]), ENC) == 1.0


def test_qualified_note_rate():
    r = roll([(60, 0, 0.25), (62, 0.25, 0.25), (64, 0.5, 0.75), (65, 1.25, 1)])  # 1, 1, 3, 4 steps
    assert F.qualified_note_rate(r) == 0.5


def test_groove_consistency():
    bar1 = [(60, b, 0.5) for b in (0, 1, 2, 3)]
    bar2 = [(60, 4 + b, 0.5) for b in (0, 1, 2)] + [(60, 7, 0.25), (62, 7.5, 0.5)]  # one extra onset
    r = roll(bar1 + bar2, steps=32)
    assert F.groove_consistency(r, 16) == pytest.approx(1 - 1 / 16)


def test_repetition_rate_counts_transposed_repeats():
    motif = [(60, 0, 1), (64, 1, 1), (67, 2, 2)]
    bar2 = [(p + 2, s + 4, d) for p, s, d in motif]
    bar3 = [(70, 8, 4)]
    r = roll(motif + bar2 + bar3, steps=48)
    assert F.repetition_rate(r, 16) == 0.5


def test_top_voice_skips_inner_notes_under_a_held_melody_note():
    r = roll([(72, 0, 1), (74, 1, 1), (76, 2, 2), (67, 3, 1), (55, 0, 4)])
    assert (F.top_voice(r) + ENC.low).tolist() == [72, 74, 76]
    assert F.mean_melodic_interval(r) == 2.0


def test_parallel_fifths_between_outer_voices():
    top = [(72, 0, 1), (74, 1, 1), (76, 2, 1), (77, 3, 1)]
    bottom = [(65, 0, 1), (67, 1, 2), (69, 3, 1)]
    # moves: C5/F4 -> D5/G4 both up, fifth to fifth (parallel); D5 -> E5 over a held G4 (not common);
    # E5/G4 -> F5/A4 both up, sixth to sixth-minus (not perfect)
    assert F.parallel_perfect_rate(roll(top + bottom)) == 0.5


def test_silent_window_values_are_defined():
    silent = roll([])
    v = F.feature_vector(silent, ENC, 16)
    assert np.isfinite(v).all() and v[F.SCALAR_FEATURES.index("empty_beat_rate")] == 1.0


def test_overlap_area_and_kl():
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, 300)
    assert overlap_area(a, a) == pytest.approx(1.0, abs=1e-9)
    assert kl_divergence(a, a) == pytest.approx(0.0, abs=1e-9)
    far = rng.normal(50, 1, 300)
    assert overlap_area(a, far) < 0.01
    near = rng.normal(0.5, 1, 300)
    assert 0.5 < overlap_area(a, near) < 0.95 and kl_divergence(a, near) > kl_divergence(a, a)
    assert overlap_area(np.ones(10), np.ones(10)) == pytest.approx(1.0)  # constant sets work


def test_frechet_distance_zero_for_same_set_and_grows_with_shift():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 5))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(a + 0.5, a) < frechet_distance(a + 2.0, a)


def test_frechet_distance_stays_finite_on_a_feature_the_reference_never_varies():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(400, 3))
    ref[:, 2] = 0.0  # e.g. no repeated bar in any reference window
    shifted = ref + [0.1, 0.1, 0.0]
    gen = shifted.copy()
    gen[:3, 2] = 0.05  # three generated windows repeat a little
    assert frechet_distance(gen, ref) < 1.0
    assert frechet_distance(gen, ref) > frechet_distance(shifted, ref)


def test_copy_rate_verbatim_transposed_and_random():
    rng = np.random.default_rng(0)
    train = [ENC.encode(piece([(int(p), i * 0.5, 0.5) for i, p in enumerate(rng.integers(55, 70, 64))]))]
    keys = training_window_keys(train, 32)
    excerpts = np.stack([train[0][8:40], np.roll(train[0][16:48], 3, axis=1)])  # one moved up 3 semitones
    assert copy_rate(excerpts, keys) == 1.0
    noise = rng.integers(0, 3, size=(5, 32, ENC.n_pitches)).astype(np.uint8)
    assert copy_rate(noise, keys) == 0.0
