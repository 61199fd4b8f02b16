"""Objective features of piano-roll windows and a distance between two sets of them (no torch here).

Every feature is a pure function of one ``(steps, pitches)`` roll of OFF/ONSET/HOLD states.
"""

from __future__ import annotations

import numpy as np

from .encoding import OFF, ONSET, Encoding


def pitch_class_histogram(roll: np.ndarray, enc: Encoding) -> np.ndarray:
    """Share of sounding cells per pitch class (12 numbers summing to 1; all zero for a silent roll).

    Pitch class of column ``i`` is ``(enc.low + i) % 12``: pitches are grouped by class, never by neighbours.
    """
    per_pitch = (roll != OFF).sum(0)
    hist = np.bincount((np.arange(roll.shape[1]) + enc.low) % 12, weights=per_pitch, minlength=12)
    total = hist.sum()
    return hist / total if total else hist


def polyphony(roll: np.ndarray) -> float:
    """Mean number of sounding pitches over the steps where at least one sounds (0 for silence)."""
    counts = (roll != OFF).sum(1)
    sounding = counts > 0
    return float(counts[sounding].mean()) if sounding.any() else 0.0


def onsets_per_beat(roll: np.ndarray, enc: Encoding) -> float:
    """Notes started per quarter-note beat."""
    return float((roll == ONSET).sum() / (roll.shape[0] / enc.steps_per_quarter))


def empty_beat_rate(roll: np.ndarray, enc: Encoding) -> float:
    """Share of whole beats in which no note sounds (a trailing partial beat is ignored)."""
    spq = enc.steps_per_quarter
    beats = roll.shape[0] // spq
    if beats == 0:
        return 0.0
    sounding = (roll[: beats * spq] != OFF).any(1).reshape(beats, spq)
    return float((~sounding.any(1)).mean())


def pitch_range(roll: np.ndarray) -> int:
    """Highest minus lowest sounding pitch, in semitones (0 for silence)."""
    cols = np.flatnonzero((roll != OFF).any(0))
    return int(cols[-1] - cols[0]) if len(cols) else 0


def n_pitch_classes(roll: np.ndarray, enc: Encoding) -> int:
    """Number of distinct pitch classes that sound."""
    return int((pitch_class_histogram(roll, enc) > 0).sum())


SCALAR_FEATURES = ("polyphony", "onsets_per_beat", "empty_beat_rate", "pitch_range", "n_pitch_classes")


def window_features(roll: np.ndarray, enc: Encoding) -> np.ndarray:
    """The scalar features (in ``SCALAR_FEATURES`` order) followed by the 12-bin pitch-class histogram."""
    return np.concatenate([
        [polyphony(roll), onsets_per_beat(roll, enc), empty_beat_rate(roll, enc), pitch_range(roll),
         n_pitch_classes(roll, enc)],
        pitch_class_histogram(roll, enc),
    ])


def feature_matrix(rolls, enc: Encoding) -> np.ndarray:
    """``(n, 17)`` features of many windows."""
    return np.stack([window_features(np.asarray(r), enc) for r in rolls])


def feature_distance(generated: np.ndarray, reference: np.ndarray) -> float:
    """How far two sets of window features lie apart; 0 for identical statistics, lower is better.

    Mean over scalar features of ``|mean_g - mean_r| / std_r`` and ``|log(std_g / std_r)|``, plus the
    L1 distance between the two mean pitch-class histograms.
    """
    k = len(SCALAR_FEATURES)
    g, r = generated[:, :k], reference[:, :k]
    sr = r.std(0) + 1e-6
    mean_gap = np.abs(g.mean(0) - r.mean(0)) / sr
    spread_gap = np.abs(np.log((g.std(0) + 1e-6) / sr))
    pcs = np.abs(generated[:, k:].mean(0) - reference[:, k:].mean(0)).sum()
    return float(np.mean(mean_gap) + np.mean(spread_gap) + pcs)
