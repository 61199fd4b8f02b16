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
    """Read a format 0 or 1 MIDI file; notes of all (non-drum) tracks are merged into one piece.

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
    keep = (duration > 0) & (pitch >= 0) & (pitch <= 127) & (start >= 0)
    tempo = float(score.tempos[0].qpm) if len(score.tempos) else 120.0
    if not (10.0 <= tempo <= 1000.0):
        tempo = 120.0
    ts = (4, 4)
    if len(score.time_signatures):
        ts = (int(score.time_signatures[0].numerator), int(score.time_signatures[0].denominator))
    return Piece(pitch[keep], start[keep], duration[keep], tempo, ts, Path(path).name, velocity[keep])


def write_midi(
    piece: Piece, path: str | os.PathLike, *, program: int = 0, track_name: str = "gancomposer"
) -> None:
    """Write ``piece`` as a one-track, format 1 MIDI file (atomically), with its tempo and time signature."""
    score = symusic.Score(TICKS_PER_QUARTER)
    score.tempos.append(symusic.Tempo(0, float(piece.tempo)))
    score.time_signatures.append(symusic.TimeSignature(0, *piece.time_signature))
    track = symusic.Track(track_name, int(program), False)
    starts = np.round(piece.start * TICKS_PER_QUARTER).astype(np.int64)
    ends = np.round((piece.start + piece.duration) * TICKS_PER_QUARTER).astype(np.int64)
    velocity = piece.velocity if piece.velocity is not None else np.full(len(piece), 80)
    for p, s, e, v in zip(piece.pitch.tolist(), starts.tolist(), ends.tolist(), velocity.tolist()):
        track.notes.append(symusic.Note(s, max(1, e - s), p, int(min(127, max(1, v)))))
    score.tracks.append(track)
    with atomic_path(path) as tmp:
        score.dump_midi(str(tmp))
