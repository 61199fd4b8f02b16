"""Per-window features of piano rolls: each a pure function with its definition and source.

Every function takes ``roll``, a ``(steps, pitches)`` array of OFF/ONSET/HOLD states (see
:mod:`gancomposer.encoding`), and, where pitch or time units matter, the :class:`Encoding`. A *note* is a run
that starts with an ONSET (or a HOLD after silence) and continues through HOLD cells, exactly as
:func:`gancomposer.encoding.decode` reads it. Silent windows give the value documented for that case.
"""

from __future__ import annotations

import numpy as np

from ..encoding import OFF, ONSET, Encoding, PianoRoll, note_runs
from ..theory import MAJOR_SCALE, MINOR_SCALE


def _sounding(roll: np.ndarray) -> np.ndarray:
    return roll != OFF


def pitch_count(roll: np.ndarray) -> int:
    """Number of distinct pitches that sound (Yang & Lerch's PC; MusPy ``n_pitches_used``)."""
    return int(_sounding(roll).any(0).sum())


def pitch_class_histogram(roll: np.ndarray, enc: PianoRoll) -> np.ndarray:
    """Share of sounding cells per pitch class, C first (12 numbers summing to 1; zeros when silent).

    Column ``i`` is pitch ``enc.low + i``, of class ``(enc.low + i) % 12``: pitches are grouped by class,
    never with their neighbours (the published "chroma" bug). Yang & Lerch's PCH, weighted by duration.
    """
    per_pitch = _sounding(roll).sum(0)
    hist = np.bincount((np.arange(roll.shape[1]) + enc.low) % 12, weights=per_pitch, minlength=12)
    total = hist.sum()
    return hist / total if total else hist


def used_pitch_classes(roll: np.ndarray, enc: PianoRoll) -> int:
    """Number of pitch classes that sound (MuseGAN's UPC, MusPy ``n_pitch_classes_used``)."""
    return int((pitch_class_histogram(roll, enc) > 0).sum())


def pitch_class_entropy(roll: np.ndarray, enc: PianoRoll) -> float:
    """Shannon entropy in bits of :func:`pitch_class_histogram` (MusPy ``pitch_class_entropy``); 0 if silent."""
    h = pitch_class_histogram(roll, enc)
    h = h[h > 0]
    return float(-(h * np.log2(h)).sum())


def pitch_range(roll: np.ndarray) -> int:
    """Highest minus lowest sounding pitch in semitones (Yang & Lerch's PR); 0 if silent."""
    cols = np.flatnonzero(_sounding(roll).any(0))
    return int(cols[-1] - cols[0]) if len(cols) else 0


def top_voice(roll: np.ndarray) -> np.ndarray:
    """Column of each note of the top voice, in time order.

    A note belongs to the top voice when it starts at a step where it is the highest pitch sounding
    (a note starting under a held higher note is an inner voice).
    """
    col, start, _ = note_runs(roll)
    sounding = _sounding(roll)
    highest = np.where(sounding.any(1), sounding.shape[1] - 1 - np.argmax(sounding[:, ::-1], axis=1), -1)
    keep = col >= highest[start]
    order = np.lexsort((-col[keep], start[keep]))
    s, c = start[keep][order], col[keep][order]
    first = np.concatenate([[True], s[1:] != s[:-1]])[: len(s)]  # one top note per onset step (the highest)
    return c[first]


def mean_melodic_interval(roll: np.ndarray) -> float:
    """Mean absolute interval in semitones between successive top-voice notes (Yang & Lerch's PI);
    0 with fewer than two."""
    melody = top_voice(roll)
    return float(np.abs(np.diff(melody)).mean()) if len(melody) > 1 else 0.0


def note_count(roll: np.ndarray) -> int:
    """Number of notes (Yang & Lerch's NC)."""
    return int(len(note_runs(roll)[0]))


def onsets_per_beat(roll: np.ndarray, enc: PianoRoll) -> float:
    """Notes started per quarter-note beat."""
    return note_count(roll) / (roll.shape[0] / enc.steps_per_quarter)


def mean_inter_onset_interval(roll: np.ndarray, enc: PianoRoll) -> float:
    """Mean time in beats between successive distinct onset times (Yang & Lerch's IOI); 0 with fewer than two."""
    _, start, _ = note_runs(roll)
    times = np.unique(start)
    return float(np.diff(times).mean() / enc.steps_per_quarter) if len(times) > 1 else 0.0


#: Note-length classes in beats (quarter = 1): 16th, 8th, dotted 8th, quarter, dotted quarter, half,
#: dotted half, whole; a note falls in the nearest class, longer notes in the last bin.
NOTE_LENGTH_CLASSES = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0)


def note_length_histogram(roll: np.ndarray, enc: PianoRoll) -> np.ndarray:
    """Share of notes in each length class of ``NOTE_LENGTH_CLASSES`` plus one bin for longer notes
    (Yang & Lerch's NLH, on straight values); zeros if silent."""
    _, _, length = note_runs(roll)
    hist = np.zeros(len(NOTE_LENGTH_CLASSES) + 1)
    if len(length) == 0:
        return hist
    beats = length / enc.steps_per_quarter
    classes = np.asarray(NOTE_LENGTH_CLASSES)
    idx = np.abs(beats[:, None] - classes[None, :]).argmin(1)
    idx[beats > classes[-1] * 1.25] = len(classes)
    np.add.at(hist, idx, 1)
    return hist / len(length)


def polyphony(roll: np.ndarray) -> float:
    """Mean number of sounding pitches over the steps where at least one sounds (MusPy ``polyphony``);
    0 if silent."""
    counts = _sounding(roll).sum(1)
    return float(counts[counts > 0].mean()) if (counts > 0).any() else 0.0


def empty_beat_rate(roll: np.ndarray, enc: PianoRoll) -> float:
    """Share of whole beats in which nothing sounds (MusPy ``empty_beat_rate``: the *empty* share,
    not the non-empty one); a trailing partial beat is ignored."""
    spq = enc.steps_per_quarter
    beats = roll.shape[0] // spq
    if beats == 0:
        return 0.0
    sounding = _sounding(roll[: beats * spq]).any(1).reshape(beats, spq)
    return float((~sounding.any(1)).mean())


def scale_consistency(roll: np.ndarray, enc: PianoRoll) -> float:
    """Largest share of notes that lie in one of the 24 major and natural-minor scales
    (MusPy ``scale_consistency``); 1 if silent (nothing is out of scale)."""
    col, _, _ = note_runs(roll)
    if len(col) == 0:
        return 1.0
    counts = np.bincount((col + enc.low) % 12, minlength=12)
    best = 0
    for tonic in range(12):
        for scale in (MAJOR_SCALE, MINOR_SCALE):
            best = max(best, counts[(scale + tonic) % 12].sum())
    return float(best / len(col))


def qualified_note_rate(roll: np.ndarray, min_steps: int = 3) -> float:
    """Share of notes lasting at least ``min_steps`` grid steps (MuseGAN's QN uses 3 steps; here the
    steps of this grid, where 3 is a dotted 8th on a 16th grid); 1 if silent."""
    _, _, length = note_runs(roll)
    return float((length >= min_steps).mean()) if len(length) else 1.0


def groove_consistency(roll: np.ndarray, steps_per_bar: int) -> float:
    """1 minus the mean Hamming distance between the onset patterns of neighbouring bars, over the
    bar length (Wu & Yang 2020; MusPy ``groove_consistency``); 1 with fewer than two bars."""
    bars = roll.shape[0] // steps_per_bar
    if bars < 2:
        return 1.0
    onset = (roll[: bars * steps_per_bar] == ONSET).any(1).reshape(bars, steps_per_bar)
    return float(1 - (onset[1:] != onset[:-1]).sum(1).mean() / steps_per_bar)


def repetition_rate(roll: np.ndarray, steps_per_bar: int) -> float:
    """Share of bars (after the first) that repeat an earlier bar of the window exactly, or transposed;
    silent bars are not counted as repeats. 0 with fewer than two bars."""
    bars = roll.shape[0] // steps_per_bar
    if bars < 2:
        return 0.0
    seen, repeats = set(), 0
    for b in range(bars):
        bar = roll[b * steps_per_bar : (b + 1) * steps_per_bar]
        cols = np.flatnonzero((bar != OFF).any(0))
        if len(cols) == 0:
            continue
        key = bar[:, cols[0] : cols[-1] + 1].tobytes() + bytes([cols[-1] - cols[0]])
        if b > 0 and key in seen:
            repeats += 1
        seen.add(key)
    return repeats / (bars - 1)


def parallel_perfect_rate(roll: np.ndarray) -> float:
    """Share of the outer voices' common moves that are parallel fifths or octaves.

    Outer voices are the highest and lowest sounding pitch at each step. A *common move* is a step where
    both change pitch, in the same direction, with something sounding before and after; it is *parallel
    perfect* when the interval between them (mod 12) is a fifth (7) or an octave/unison (0) both before and
    after. Bach avoids these; 0 when there is no common move.
    """
    s = _sounding(roll)
    any_ = s.any(1)
    top = np.where(any_, s.shape[1] - 1 - np.argmax(s[:, ::-1], axis=1), -1)
    bot = np.where(any_, np.argmax(s, axis=1), -1)
    ok = any_[1:] & any_[:-1] & (top[1:] != bot[1:]) & (top[:-1] != bot[:-1])
    dt, db = np.diff(top), np.diff(bot)
    common = ok & (dt != 0) & (db != 0) & (np.sign(dt) == np.sign(db))
    if not common.any():
        return 0.0
    before = (top[:-1] - bot[:-1]) % 12
    after = (top[1:] - bot[1:]) % 12
    perfect = common & (before == after) & np.isin(before, (0, 7))
    return float(perfect.sum() / common.sum())


#: The scalar features of a window, in the order of :func:`feature_vector`.
SCALAR_FEATURES = (
    "pitch_count", "used_pitch_classes", "pitch_class_entropy", "pitch_range", "mean_melodic_interval",
    "note_count", "onsets_per_beat", "mean_inter_onset_interval", "polyphony", "empty_beat_rate",
    "scale_consistency", "qualified_note_rate", "groove_consistency", "repetition_rate",
    "parallel_perfect_rate",
)
HISTOGRAM_FEATURES = tuple(f"pch_{i}" for i in range(12)) + tuple(
    f"nlh_{c:g}" for c in NOTE_LENGTH_CLASSES) + ("nlh_longer",)
#: Where each part of a feature vector lies: the scalars, the pitch-class histogram, the note-length histogram.
SCALARS = slice(0, len(SCALAR_FEATURES))
PITCH_CLASSES = slice(SCALARS.stop, SCALARS.stop + 12)
NOTE_LENGTHS = slice(PITCH_CLASSES.stop, PITCH_CLASSES.stop + len(NOTE_LENGTH_CLASSES) + 1)
N_FEATURES = NOTE_LENGTHS.stop


def feature_vector(roll: np.ndarray, enc: PianoRoll, steps_per_bar: int) -> np.ndarray:
    """All scalar features then the pitch-class and note-length histograms of one window, whose bars are
    ``steps_per_bar`` grid steps long."""
    spb = steps_per_bar
    scalars = [
        pitch_count(roll), used_pitch_classes(roll, enc), pitch_class_entropy(roll, enc), pitch_range(roll),
        mean_melodic_interval(roll), note_count(roll), onsets_per_beat(roll, enc),
        mean_inter_onset_interval(roll, enc), polyphony(roll), empty_beat_rate(roll, enc),
        scale_consistency(roll, enc), qualified_note_rate(roll), groove_consistency(roll, spb),
        repetition_rate(roll, spb), parallel_perfect_rate(roll),
    ]
    return np.concatenate([scalars, pitch_class_histogram(roll, enc), note_length_histogram(roll, enc)])


def feature_matrix(grids, enc: Encoding, steps_per_bar: int) -> np.ndarray:
    """``(n_windows, N_FEATURES)`` for many windows, grids of ``enc`` (read as piano rolls)."""
    rows = [feature_vector(enc.to_roll(np.asarray(g)), enc.roll, steps_per_bar) for g in grids]
    return np.stack(rows) if rows else np.zeros((0, N_FEATURES))
