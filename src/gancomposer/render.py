"""From a model's grids to what people open: pieces, MIDI, WAV and PNG files.

The one route from a grid to a file: training samples, :class:`~gancomposer.compose.Composer`, the web app,
baselines and evaluation reports all go through here. Names are predictable and existing files are never
overwritten unless asked.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .encoding import DEFAULT_METER, Encoding
from .errors import UserError
from .piece import Piece

#: Output formats and what each holds.
FORMATS = {"mid": "standard MIDI file", "wav": "audio", "png": "piano-roll picture"}


def grid_to_piece(grid: np.ndarray, enc: Encoding, *, tempo: float = 100.0,
                  meter: tuple[int, int] = DEFAULT_METER, name: str = "") -> Piece:
    """The notes of a ``(steps, cells)`` grid, played at ``tempo`` in ``meter``."""
    return enc.decode(grid, tempo=tempo, meter=meter, name=name)


def refuse_overwrite(paths: Iterable[Path], force: bool) -> None:
    """Stop before writing anything if one of ``paths`` exists, unless ``force``."""
    taken = [p for p in paths if Path(p).exists()]
    if taken and not force:
        raise UserError(f"{taken[0]} exists; use --force to overwrite or choose another --out")


def save(piece: Piece, path: str | os.PathLike, *, grid: np.ndarray | None = None, enc: Encoding | None = None,
         program: int = 0, meter: tuple[int, int] = DEFAULT_METER) -> Path:
    """Write ``piece`` in the format its suffix names (``.mid``, ``.wav`` or ``.png``; a picture needs the
    ``grid`` and ``enc`` it came from)."""
    path = Path(path)
    kind = path.suffix.lower().lstrip(".")
    if kind == "mid":
        from .io.midi import write_midi

        write_midi(piece, path, program=program)
    elif kind == "wav":
        from .audio import render_wav

        render_wav(piece, path, program=program)
    elif kind == "png":
        if grid is None or enc is None:
            raise UserError(f"{path}: a piano-roll picture needs the piece's grid and encoding")
        from .plots import save_roll_png

        save_roll_png(enc.to_roll(grid), enc.roll, path, steps_per_bar=enc.steps_per_bar(meter), title=piece.name)
    else:
        raise UserError(f"{path}: unknown output format; choose one of {', '.join(FORMATS)}")
    return path


def write_grids(grids: Iterable[np.ndarray], enc: Encoding, paths: list[Path], *, tempo: float = 100.0,
                meter: tuple[int, int] = DEFAULT_METER, program: int = 0, force: bool = False,
                skip_silent: bool = False) -> list[Path]:
    """Write each grid to its path (format by suffix); returns the paths written."""
    refuse_overwrite(paths, force)
    written = []
    for grid, path in zip(grids, paths):
        piece = grid_to_piece(grid, enc, tempo=tempo, meter=meter, name=Path(path).stem)
        if skip_silent and not len(piece):
            continue
        written.append(save(piece, path, grid=grid, enc=enc, program=program, meter=meter))
    return written


def numbered_paths(folder: str | os.PathLike, prefix: str, n: int, suffix: str) -> list[Path]:
    """``folder/prefix-000.suffix``, ``folder/prefix-001.suffix``, ..."""
    return [Path(folder) / f"{prefix}-{i:03d}.{suffix}" for i in range(n)]


def grids_image(grids: np.ndarray) -> np.ndarray:
    """``(n, T, P)`` piano rolls stacked into one ``(1, n * P, T)`` image, high pitches on top (TensorBoard)."""
    from .plots import roll_shades

    img = roll_shades(np.asarray(grids))[:, :, ::-1]
    return np.concatenate(list(img.transpose(0, 2, 1)), axis=0)[None].astype(np.float32)
