"""A content-addressed cache of parsed pieces, so slow formats (MusicXML, ABC, Humdrum) parse only once.

Entries are ``.npz`` files of plain arrays loaded with ``allow_pickle=False``; the key is the file's
SHA-256 plus the reader version, so an edited file is parsed again and a stale cache is never trusted.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import platformdirs

from .files import atomic_path
from .piece import Piece

#: Bump when a reader's output changes, so old entries are ignored.
READER_VERSION = 1


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


def load_pieces(sha: str) -> list[Piece] | None:
    """The cached pieces of the file with this hash, or None."""
    path = _entry(sha)
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            bounds = z["bounds"]
            pieces = []
            for i, name in enumerate(z["names"].tolist()):
                a, b = bounds[i], bounds[i + 1]
                pieces.append(Piece(
                    z["pitch"][a:b], z["start"][a:b], z["duration"][a:b],
                    float(z["tempo"][i]), tuple(z["ts"][i].tolist()), name,
                ))
            return pieces
    except Exception:  # a damaged entry is simply parsed again
        return None


def store_pieces(sha: str, pieces: list[Piece]) -> None:
    """Cache ``pieces`` under the file hash ``sha`` (atomically; errors are ignored, a cache is optional)."""
    try:
        bounds = np.cumsum([0] + [len(p) for p in pieces])
        with atomic_path(_entry(sha)) as tmp, open(tmp, "wb") as f:
            np.savez(
                f,
                pitch=np.concatenate([p.pitch for p in pieces]),
                start=np.concatenate([p.start for p in pieces]),
                duration=np.concatenate([p.duration for p in pieces]),
                bounds=bounds,
                tempo=np.array([p.tempo for p in pieces]),
                ts=np.array([p.time_signature for p in pieces], dtype=np.int64).reshape(-1, 2),
                names=np.array([p.name for p in pieces], dtype=str),
            )
    except OSError:
        pass
