"""MusicXML, ABC and Humdrum through music21 (slow, pure Python: parsed in a child under time and memory limits)."""

from __future__ import annotations

import os
import warnings
import zipfile
from pathlib import Path

import numpy as np

from ..cache import pieces_from_bytes, pieces_to_bytes
from ..errors import UserError
from ..piece import Piece
from ..processes import run_limited
from .midi import meters_of


def check_archive(path: Path, max_unpacked_bytes: int) -> None:
    """Refuse a compressed score that would expand past the cap (a "zip bomb"), before anything unpacks it.

    The sizes an archive declares are what Python's zip reader stops at (and checks), so they bound the parse.
    """
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise UserError(f"not a valid MXL file ({str(e)[:120] or 'damaged archive'})") from None
    unpacked = sum(i.file_size for i in infos)
    packed = max(1, sum(i.compress_size for i in infos))
    if unpacked > max_unpacked_bytes:
        raise UserError(f"compressed score expands to {unpacked / 2**20:,.0f} MiB, over the cap of "
                        f"{max_unpacked_bytes / 2**20:,.0f} MiB")
    if unpacked > 1 << 20 and unpacked / packed > 200:
        raise UserError(f"compressed score expands {unpacked / packed:,.0f} times, a sign of a zip bomb")


def read_score(path: str | os.PathLike, limits=None) -> list[Piece]:
    """Read a MusicXML, ABC or Humdrum file; an ABC file with several tunes gives one piece per tune.

    The parse runs in a child process under ``limits`` (wall time, memory), so neither a parser stuck in C
    nor an exploding document can hang or exhaust the caller.
    """
    import music21.converter  # noqa: F401 - imported here, once, so each child starts with it loaded

    from . import Limits

    limits = limits or Limits()
    path = Path(path)
    if path.suffix.lower() == ".mxl":
        check_archive(path, limits.max_unpacked_bytes)
    if path.suffix.lower() == ".abc":
        tunes = sum(1 for line in path.read_bytes().splitlines() if line.lstrip().startswith(b"X:"))
        if tunes > limits.max_pieces:
            raise UserError(f"{tunes:,} tunes, over the cap of {limits.max_pieces:,} in one file")
    data = run_limited(lambda: pieces_to_bytes(_parse(path)), timeout_s=limits.timeout_s,
                       memory_bytes=limits.memory_bytes)
    return pieces_from_bytes(data)


def _parse(path: Path) -> list[Piece]:
    from music21 import converter, stream

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            # forceSource: never read music21's own pickle cache (we unpickle nothing).
            parsed = converter.parse(str(path), forceSource=True)
        except Exception as e:
            msg = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            raise UserError(f"not a valid {path.suffix.lstrip('.').upper()} file ({msg})") from None
        scores = list(parsed.scores) if isinstance(parsed, stream.Opus) else [parsed]
        return [score_to_piece(score, path.name if len(scores) == 1 else f"{path.name}#{i + 1}")
                for i, score in enumerate(scores)]


def score_to_piece(score, name: str) -> Piece:
    """Flatten a music21 stream into a :class:`Piece`, shifting a pickup so ``t = 0`` is a bar line."""
    from music21 import note, tempo

    score = score.stripTies()
    flat = score.flatten()
    parts = getattr(score, "parts", None)
    pitch, start, duration, part = [], [], [], []
    # part by part, so each note keeps its part (the voices encoding reads monophonic parts as its lines)
    for i, stream_ in enumerate(parts if parts is not None and len(parts) > 1 else [score]):
        for n in stream_.flatten().notes:
            ql = float(n.quarterLength)
            if ql <= 0 or isinstance(n, note.Unpitched):  # grace notes and percussion carry no grid length
                continue
            off = float(n.offset)
            for p in getattr(n, "pitches", ()):
                pitch.append(int(p.midi))
                start.append(off)
                duration.append(ql)
                part.append(i)
    first_part = parts[0] if parts is not None and len(parts) else score
    measures = first_part.getElementsByClass("Measure")
    # The first measure's own signature is the reliable one; flattened streams can carry spurious ones.
    ts_obj = measures[0].timeSignature if len(measures) and measures[0].timeSignature else None
    if ts_obj is None:
        found = first_part.recurse().getElementsByClass("TimeSignature")
        ts_obj = found[0] if len(found) else None
    ts = (int(ts_obj.numerator), int(ts_obj.denominator)) if ts_obj is not None else (4, 4)
    marks = flat.getElementsByClass(tempo.MetronomeMark)
    qpm = 100.0
    if len(marks):
        q = marks[0].getQuarterBPM()
        if q and 10 <= q <= 1000:
            qpm = float(q)
    shift = float(measures[0].paddingLeft) if len(measures) and measures[0].paddingLeft else 0.0
    start_arr = np.asarray(start, dtype=np.float64) + shift
    signatures = [(0.0, *ts)] + [(float(m.offset) + shift, int(m.timeSignature.numerator),
                                  int(m.timeSignature.denominator))
                                 for m in list(measures)[1:] if m.timeSignature is not None]
    ts, changes = meters_of(signatures)
    return Piece(np.asarray(pitch), start_arr, np.asarray(duration), qpm, ts, name, meter_changes=changes,
                 part=part if parts is not None and len(parts) > 1 else None)
