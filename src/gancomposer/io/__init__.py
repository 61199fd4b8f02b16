"""Reading and writing music files. Each third-party library is owned by one module here:
symusic by :mod:`.midi`, music21 by :mod:`.score`."""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from ..piece import Piece

MIDI_SUFFIXES = (".mid", ".midi")
SCORE_SUFFIXES = (".mxl", ".musicxml", ".xml", ".abc", ".krn")
MUSIC_SUFFIXES = MIDI_SUFFIXES + SCORE_SUFFIXES


@dataclass(frozen=True)
class Limits:
    """Caps that keep one hostile file from hanging the run or exhausting memory."""

    max_bytes: int = 4 * 1024 * 1024
    max_unpacked_bytes: int = 32 * 1024 * 1024  # what a compressed score (.mxl) may expand to
    memory_bytes: int = 1024 * 1024 * 1024  # address space a score parser may use beyond its start
    max_notes: int = 100_000
    max_tracks: int = 1024
    max_pieces: int = 1000  # tunes in one (ABC) file
    max_quarters: float = 8192.0
    timeout_s: float = 60.0
    include_drums: bool = False


def find_music_files(paths: list[str | os.PathLike]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Expand files and folders (recursively, sorted) into music files.

    Returns ``(files, problems)`` where ``problems`` lists ``(path, reason)`` for paths given that
    do not exist. Links are not followed into folders, so a link loop cannot make the walk endless.
    """
    files: list[Path] = []
    problems: list[tuple[str, str]] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            for root, dirs, names in os.walk(p):
                dirs.sort()
                for name in sorted(names):
                    if name.lower().endswith(MUSIC_SUFFIXES):
                        files.append(Path(root) / name)
        elif p.is_file() or p.is_symlink():
            files.append(p)
        else:
            problems.append((str(p), "no such file or folder"))
    return files, problems


def check_file(path: Path, limits: Limits) -> None:
    """Refuse, with the reason, a path that is not a readable regular file of sensible size."""
    try:
        st = path.stat()
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise UserError("symbolic link loop") from None
        raise UserError(f"cannot open ({e.strerror})") from None
    if not path.is_file():
        raise UserError("not a regular file")
    if st.st_size == 0:
        raise UserError("empty file")
    if st.st_size > limits.max_bytes:
        raise UserError(f"file is {st.st_size / 2**20:.1f} MiB, over the cap of {limits.max_bytes / 2**20:.1f} MiB")


def check_piece(piece: Piece, limits: Limits) -> None:
    """Refuse a parsed piece with no notes, or more notes or length than the caps allow."""
    if len(piece) == 0:
        raise UserError("no usable notes")
    if len(piece) > limits.max_notes:
        raise UserError(f"{len(piece):,} notes, over the cap of {limits.max_notes:,}")
    if piece.end > limits.max_quarters:
        raise UserError(f"lasts {piece.end:,.0f} quarter notes, over the cap of {limits.max_quarters:,.0f}")


def read_file(path: str | os.PathLike, limits: Limits = Limits()) -> list[Piece]:
    """Read one music file into pieces (a multi-tune ABC file gives one piece per tune).

    Raises :class:`UserError` with a one-line reason for anything unusable.
    """
    path = Path(path)
    check_file(path, limits)
    suffix = path.suffix.lower()
    if suffix in MIDI_SUFFIXES:
        from .midi import read_midi

        pieces = [read_midi(path, include_drums=limits.include_drums, max_tracks=limits.max_tracks)]
    elif suffix in SCORE_SUFFIXES:
        from .score import read_score

        pieces = read_score(path, limits)
    else:
        raise UserError(f"unknown file type {suffix!r}; expected one of {', '.join(MUSIC_SUFFIXES)}")
    usable = []
    reasons = []
    for piece in pieces:
        try:
            check_piece(piece, limits)
            usable.append(piece)
        except UserError as e:
            reasons.append(str(e))
    if not usable:
        raise UserError(reasons[0] if reasons else "no usable notes")
    return usable
