"""Standard MIDI files through symusic (a C++ parser, ~100x faster than the pure-Python ones)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import symusic

from ..files import atomic_path
from ..errors import UserError
from ..piece import Piece

#: Ticks per quarter written to files: a multiple of every common grid (4, 8, 12, 16, 24 steps per quarter),
#: so each grid step is a whole number of ticks.
TICKS_PER_QUARTER = 480


def read_midi(path: str | os.PathLike, *, include_drums: bool = False, max_tracks: int = 1024) -> Piece:
    """Read a format 0 or 1 MIDI file; notes of all (non-drum) tracks are merged into one piece, each note
    remembering its track as its part when there are several.

    The time signature is kept as written (``prepare`` judges whether it can be used); an unusable tempo
    becomes 120 quarter notes per minute.
    """
    with open(path, "rb") as f:
        head = f.read(14)
    if head[:4] == b"MThd" and len(head) == 14:
        fmt, tracks = int.from_bytes(head[8:10], "big"), int.from_bytes(head[10:12], "big")
        if fmt == 2:
            raise UserError("MIDI format 2 (independent sequences, not one piece) is not supported")
        if tracks > max_tracks:
            raise UserError(f"{tracks:,} tracks, over the cap of {max_tracks:,}")
    try:
        score = symusic.Score(str(path))
    except Exception as e:  # symusic raises RuntimeError with a message for every malformed file
        reason = str(e).replace("MiniMidi: ", "").replace(": iostream error", "").replace("Invaild", "Invalid")
        raise UserError(f"not a valid MIDI file ({reason.rstrip('!')})") from None
    tpq = score.ticks_per_quarter
    if tpq <= 0:
        raise UserError(f"not a valid MIDI file (ticks per quarter is {tpq})")
    arrays = [t.notes.numpy() for t in score.tracks if include_drums or not t.is_drum]
    arrays = [a for a in arrays if len(a["pitch"])]
    if not arrays:
        kinds = "notes" if not any(t.is_drum for t in score.tracks) else "non-drum notes"
        raise UserError(f"no {kinds}")
    pitch = np.concatenate([a["pitch"] for a in arrays]).astype(np.int16)
    start = np.concatenate([a["time"] for a in arrays]).astype(np.float64) / tpq
    duration = np.concatenate([a["duration"] for a in arrays]).astype(np.float64) / tpq
    velocity = np.concatenate([a["velocity"] for a in arrays]).astype(np.int16)
    part = np.repeat(np.arange(len(arrays), dtype=np.int16), [len(a["pitch"]) for a in arrays])
    keep = (duration > 0) & (pitch >= 0) & (pitch <= 127) & (start >= 0)
    tempo = float(score.tempos[0].qpm) if len(score.tempos) else 120.0
    if not (10.0 <= tempo <= 1000.0):
        tempo = 120.0
    ts, changes = meters_of([(sig.time / tpq, int(sig.numerator), int(sig.denominator))
                             for sig in score.time_signatures])
    return Piece(pitch[keep], start[keep], duration[keep], tempo, ts, Path(path).name, velocity[keep], changes,
                 part[keep] if len(arrays) > 1 else None)


def meters_of(signatures: list[tuple[float, int, int]]) -> tuple[tuple[int, int], tuple]:
    """The first meter and the later changes of a list of ``(time, numerator, denominator)`` signatures (4/4
    without any); of several at one time the last counts, and a repeat of the meter in force is no change."""
    at: dict[float, tuple[int, int]] = {}
    for t, num, den in sorted(signatures, key=lambda s: s[0]):
        at[round(t, 6)] = (num, den)
    times = sorted(at)
    if not times:
        return (4, 4), ()
    first, changes = at[times[0]], []
    current = first
    for t in times[1:]:
        if at[t] != current:
            changes.append((t, *at[t]))
            current = at[t]
    return first, tuple(changes)


def write_midi(
    piece: Piece, path: str | os.PathLike, *, program: int = 0, track_name: str = "gancomposer"
) -> None:
    """Write ``piece`` as a format 1 MIDI file (atomically), with its tempo and time signatures: one track, or
    one per part (named ``voice 1``, ``voice 2``, ... top first) when the piece has parts."""
    score = symusic.Score(TICKS_PER_QUARTER)
    score.tempos.append(symusic.Tempo(0, float(piece.tempo)))
    score.time_signatures.append(symusic.TimeSignature(0, *piece.time_signature))
    for t, num, den in piece.meter_changes:
        score.time_signatures.append(symusic.TimeSignature(int(round(t * TICKS_PER_QUARTER)), num, den))
    starts = np.round(piece.start * TICKS_PER_QUARTER).astype(np.int64)
    ends = np.round((piece.start + piece.duration) * TICKS_PER_QUARTER).astype(np.int64)
    velocity = piece.velocity if piece.velocity is not None else np.full(len(piece), 80)
    parts = piece.part if piece.part is not None else np.zeros(len(piece), np.int16)
    for part in np.unique(parts).tolist() or [0]:  # an empty piece still gets its one track
        name = f"voice {part + 1}" if piece.part is not None else track_name
        track = symusic.Track(name, int(program), False)
        for i in np.flatnonzero(parts == part).tolist():
            track.notes.append(symusic.Note(int(starts[i]), max(1, int(ends[i] - starts[i])), int(piece.pitch[i]),
                                            int(min(127, max(1, velocity[i])))))
        score.tracks.append(track)
    with atomic_path(path) as tmp:
        score.dump_midi(str(tmp))
