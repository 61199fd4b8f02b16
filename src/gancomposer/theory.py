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


def estimate_key(piece: Piece) -> tuple[int, str]:
    """Krumhansl–Schmuckler key estimate: ``(tonic pitch class, 'major' | 'minor')``."""
    w = pitch_class_weights(piece)
    if w.sum() == 0:
        return 0, "major"
    best = (-np.inf, 0, "major")
    for tonic in range(12):
        rotated = np.roll(w, -tonic)
        for mode, prof in (("major", MAJOR_PROFILE), ("minor", MINOR_PROFILE)):
            r = np.corrcoef(rotated, prof)[0, 1]
            if np.isfinite(r) and r > best[0]:
                best = (r, tonic, mode)
    return best[1], best[2]


def shift_to_c(piece: Piece) -> int:
    """Semitones (in -6..5) that move the piece's estimated key to C major or A minor."""
    tonic, mode = estimate_key(piece)
    target = 0 if mode == "major" else 9
    return (target - tonic + 6) % 12 - 6
