"""MusicXML, ABC and Humdrum through music21 (slow, pure Python: parsed under a time limit)."""

from __future__ import annotations

import os
import signal
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..piece import Piece


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`UserError` if the block runs longer than ``seconds`` (main thread only, Unix)."""
    usable = hasattr(signal, "SIGALRM") and threading.current_thread() is threading.main_thread()
    if not usable or seconds <= 0:
        yield
        return

    def expire(signum, frame):
        raise UserError(f"parsing took longer than {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def read_score(path: str | os.PathLike, *, timeout_s: float = 60.0) -> list[Piece]:
    """Read a MusicXML, ABC or Humdrum file; an ABC file with several tunes gives one piece per tune."""
    from music21 import converter, stream

    path = Path(path)
    with time_limit(timeout_s), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            # forceSource: never read music21's own pickle cache (we unpickle nothing).
            parsed = converter.parse(str(path), forceSource=True)
        except UserError:
            raise
        except Exception as e:
            msg = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            raise UserError(f"not a valid {path.suffix.lstrip('.').upper()} file ({msg})") from None
        scores = list(parsed.scores) if isinstance(parsed, stream.Opus) else [parsed]
        pieces = []
        for i, score in enumerate(scores):
            name = path.name if len(scores) == 1 else f"{path.name}#{i + 1}"
            pieces.append(score_to_piece(score, name))
    return pieces


def score_to_piece(score, name: str) -> Piece:
    """Flatten a music21 stream into a :class:`Piece`, shifting a pickup so ``t = 0`` is a bar line."""
    from music21 import note, tempo

    score = score.stripTies()
    flat = score.flatten()
    pitch, start, duration = [], [], []
    for n in flat.notes:
        ql = float(n.quarterLength)
        if ql <= 0 or isinstance(n, note.Unpitched):  # grace notes and percussion carry no grid length
            continue
        off = float(n.offset)
        for p in getattr(n, "pitches", ()):
            pitch.append(int(p.midi))
            start.append(off)
            duration.append(ql)
    parts = getattr(score, "parts", None)
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
    return Piece(np.asarray(pitch), start_arr, np.asarray(duration), qpm, ts, name)
