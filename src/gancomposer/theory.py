"""Small music-theory helpers shared by data preparation and metrics (no third-party music library)."""

from __future__ import annotations

import numpy as np

from .piece import Piece

# Krumhansl & Kessler (1982) key profiles, tonic first.
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
MAJOR_SCALE = np.array([0, 2, 4, 5, 7, 9, 11])
MINOR_SCALE = np.array([0, 2, 3, 5, 7, 8, 10])
PITCH_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


def pitch_name(pitch: int) -> str:
    """Scientific pitch name, e.g. 60 -> 'C4'."""
    return f"{PITCH_NAMES[pitch % 12]}{pitch // 12 - 1}"


def pitch_class_weights(piece: Piece) -> np.ndarray:
    """Duration-weighted pitch-class histogram (12 numbers, not normalised)."""
    return np.bincount(piece.pitch % 12, weights=piece.duration, minlength=12)


def _profiles() -> np.ndarray:
    """``(24, 12)``: the major profile rotated to each tonic, then the minor one, each standardised."""
    rows = [np.roll(prof, tonic) for prof in (MAJOR_PROFILE, MINOR_PROFILE) for tonic in range(12)]
    p = np.asarray(rows)
    return (p - p.mean(1, keepdims=True)) / p.std(1, keepdims=True)


PROFILES = _profiles()


def key_indices(weights: np.ndarray) -> np.ndarray:
    """Krumhansl–Schmuckler for many ``(n, 12)`` pitch-class histograms at once: for each, the index
    ``12 * mode + tonic`` (mode 0 major, 1 minor) of the key whose profile correlates best with it (C major for
    silence or a flat histogram)."""
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    sd = w.std(1, keepdims=True)
    z = (w - w.mean(1, keepdims=True)) / np.where(sd > 0, sd, 1.0)
    return np.where(sd[:, 0] > 0, np.argmax(z @ PROFILES.T, axis=1), 0)


def key_from_weights(weights: np.ndarray) -> tuple[int, str]:
    """:func:`key_indices` of one histogram, as ``(tonic pitch class, 'major' | 'minor')``."""
    best = int(key_indices(weights)[0])
    return best % 12, "major" if best < 12 else "minor"


def estimate_key(piece: Piece) -> tuple[int, str]:
    """Krumhansl–Schmuckler key estimate of a piece from its duration-weighted pitch-class histogram."""
    return key_from_weights(pitch_class_weights(piece))


def shift_to_c(piece: Piece) -> int:
    """Semitones (in -6..5) that move the piece's estimated key to C major or A minor."""
    tonic, mode = estimate_key(piece)
    target = 0 if mode == "major" else 9
    return (target - tonic + 6) % 12 - 6
