"""Rolls out to files: MIDI (always), WAV audio and PNG piano rolls. Names are predictable and existing
files are never overwritten unless asked."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .encoding import Encoding, decode
from .io.midi import write_midi
from .piece import MusicError, Piece


def roll_to_piece(roll: np.ndarray, enc: Encoding, *, tempo: float = 100.0, name: str = "") -> Piece:
    return decode(roll, enc, tempo=tempo, time_signature=(4, 4), name=name)


def output_paths(folder: str | os.PathLike, prefix: str, n: int, suffix: str, force: bool) -> list[Path]:
    """``folder/prefix-000.suffix`` ...; refuses to overwrite an existing file unless ``force``."""
    folder = Path(folder)
    paths = [folder / f"{prefix}-{i:03d}.{suffix}" for i in range(n)]
    taken = [p for p in paths if p.exists()]
    if taken and not force:
        raise MusicError(f"{taken[0]} exists; use --force to overwrite or choose another --out")
    return paths


def write_rolls_midi(rolls: list[np.ndarray], enc: Encoding, folder: str | os.PathLike, *, prefix: str,
                     tempo: float = 100.0, program: int = 0, force: bool = False) -> list[Path]:
    """Write each roll as a MIDI file; returns the paths."""
    paths = output_paths(folder, prefix, len(rolls), "mid", force)
    for roll, path in zip(rolls, paths):
        write_midi(roll_to_piece(roll, enc, tempo=tempo, name=path.stem), path, program=program)
    return paths
