"""A content-addressed cache of parsed pieces, so slow formats (MusicXML, ABC, Humdrum) parse only once.

Entries are ``.npz`` files of plain arrays loaded with ``allow_pickle=False``; the key is the file's
SHA-256 plus the reader version, so an edited file is parsed again and a stale cache is never trusted.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import numpy as np
import platformdirs

from .files import atomic_path
from .piece import Piece

#: Bump when a reader's output changes, so old entries are ignored.
READER_VERSION = 3  # 3: each note's part


def cache_dir() -> Path:
    """``$GANCOMPOSER_CACHE`` if set, else the user cache directory."""
    env = os.environ.get("GANCOMPOSER_CACHE")
    return Path(env) if env else Path(platformdirs.user_cache_dir("gancomposer"))


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _entry(sha: str) -> Path:
    return cache_dir() / f"pieces-v{READER_VERSION}" / sha[:2] / f"{sha}.npz"


def pieces_to_bytes(pieces: list[Piece]) -> bytes:
    """``pieces`` as the bytes of an ``.npz`` of plain arrays (what the cache stores and a reader child sends)."""
    bounds = np.cumsum([0] + [len(p) for p in pieces])
    buf = io.BytesIO()
    np.savez(
        buf,
        pitch=np.concatenate([p.pitch for p in pieces]) if pieces else np.zeros(0, np.int16),
        start=np.concatenate([p.start for p in pieces]) if pieces else np.zeros(0),
        duration=np.concatenate([p.duration for p in pieces]) if pieces else np.zeros(0),
        bounds=bounds,
        tempo=np.array([p.tempo for p in pieces], dtype=np.float64),
        ts=np.array([p.time_signature for p in pieces], dtype=np.int64).reshape(-1, 2),
        names=np.array([p.name for p in pieces], dtype=str),
        changes=np.array([(i, *c) for i, p in enumerate(pieces) for c in p.meter_changes],
                         dtype=np.float64).reshape(-1, 4),
        part=np.concatenate([p.part if p.part is not None else np.full(len(p), -1, np.int16) for p in pieces])
        if pieces else np.zeros(0, np.int16),
    )
    return buf.getvalue()


def pieces_from_bytes(data: bytes) -> list[Piece]:
    """The inverse of :func:`pieces_to_bytes` (``allow_pickle=False``: plain arrays only)."""
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        bounds, changes = z["bounds"], z["changes"]
        return [
            Piece(z["pitch"][a:b], z["start"][a:b], z["duration"][a:b], float(z["tempo"][i]),
                  tuple(z["ts"][i].tolist()), name,
                  meter_changes=tuple((t, int(n), int(d)) for _, t, n, d in changes[changes[:, 0] == i]),
                  part=z["part"][a:b] if b > a and z["part"][a] >= 0 else None)
            for i, name, a, b in zip(range(len(bounds) - 1), z["names"].tolist(), bounds[:-1], bounds[1:])
        ]


def load_pieces(sha: str) -> list[Piece] | None:
    """The cached pieces of the file with this hash, or None."""
    path = _entry(sha)
    if not path.exists():
        return None
    try:
        return pieces_from_bytes(path.read_bytes())
    except Exception:  # a damaged entry is simply parsed again
        return None


def store_pieces(sha: str, pieces: list[Piece]) -> None:
    """Cache ``pieces`` under the file hash ``sha`` (atomically; errors are ignored, a cache is optional)."""
    try:
        with atomic_path(_entry(sha)) as tmp:
            tmp.write_bytes(pieces_to_bytes(pieces))
    except OSError:
        pass
