"""Small builders of music files for tests: hand-made pieces and raw MIDI bytes."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from gancomposer.io.midi import write_midi
from gancomposer.piece import Piece


def piece(notes: list[tuple[int, float, float]], **kw) -> Piece:
    """A piece from ``(pitch, start, duration)`` tuples in quarter notes."""
    if not notes:
        return Piece(np.zeros(0), np.zeros(0), np.zeros(0), **kw)
    p, s, d = zip(*notes)
    return Piece(np.array(p), np.array(s), np.array(d), **kw)


def scale_piece(offset: int = 0, bars: int = 8) -> Piece:
    """A two-voice piece: a scale in eighths over half-note bass notes, ``bars`` bars of 4/4."""
    notes = []
    for i in range(bars * 8):
        notes.append((60 + offset + [0, 2, 4, 5, 7, 9, 11, 12][i % 8], i * 0.5, 0.5))
    for i in range(bars * 2):
        notes.append((48 + offset + (i % 3) * 2, i * 2.0, 2.0))
    return piece(notes, tempo=96.0, time_signature=(4, 4))


def write_piece(path: Path, p: Piece) -> Path:
    write_midi(p, path)
    return path


def vlq(n: int) -> bytes:
    """MIDI variable-length quantity."""
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    return bytes(reversed(out))


def track_chunk(events: bytes) -> bytes:
    return b"MTrk" + struct.pack(">I", len(events)) + events


def midi_file(tracks: list[bytes], division: int = 480, fmt: int = 1, ntracks: int | None = None) -> bytes:
    """Raw MIDI bytes; ``tracks`` are event streams (without the end-of-track event)."""
    head = b"MThd" + struct.pack(">IHHH", 6, fmt, len(tracks) if ntracks is None else ntracks, division)
    return head + b"".join(track_chunk(t + b"\x00\xff\x2f\x00") for t in tracks)


def note_events(notes: list[tuple[int, int, int]], channel: int = 0) -> bytes:
    """Events for ``(pitch, start_tick, duration_ticks)`` notes, sorted, with explicit status bytes."""
    ev = []
    for p, s, d in notes:
        ev.append((s, 1, bytes([0x90 | channel, p, 80])))
        ev.append((s + d, 0, bytes([0x80 | channel, p, 0])))
    ev.sort(key=lambda e: (e[0], e[1]))
    out, now = b"", 0
    for t, _, msg in ev:
        out += vlq(t - now) + msg
        now = t
    return out
