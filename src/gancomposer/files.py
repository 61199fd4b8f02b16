"""Atomic file writes: a crash, Ctrl-C or ``kill -9`` never leaves a half-written file or folder behind.

Temporaries carry the writing process's id in their names (``.NAME.PID.RANDOM.tmp``, ``.NAME.PID.partial``), so a
later run can tell the leftovers of a dead process from the work of a live one and clear them away.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import UserError

# mkstemp makes files private (0600); finished files get the mode a plain open() would give. The umask is
# read once, at import, because reading it means setting it, which is not safe while threads write files.
_UMASK = os.umask(0)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK

#: Names of our temporaries: a hidden name, the writer's pid, a random part, and a kind suffix.
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.(?:[A-Za-z0-9_]+\.tmp|partial|old)$")


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    write_bytes_atomic(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporaries that dead processes left in ``folder`` (not recursive); returns what went."""
    folder = Path(folder)
    removed: list[Path] = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for entry in entries:
        m = _TEMPORARY.match(entry.name)
        if m and _remove_if_dead(entry, int(m["pid"])):
            removed.append(entry)
    return removed


def _remove_if_dead(entry: Path, pid: int) -> bool:
    if _alive(pid):
        return False
    try:
        shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    except OSError:
        return False
    return True


def check_writable_folder(path: str | os.PathLike, what: str = "--out") -> Path:
    """Refuse, in one line and before any work is done, a folder that cannot be created or written."""
    path = Path(path)
    for parent in [path, *path.parents]:
        if parent.exists() or parent.is_symlink():
            if not parent.is_dir():
                where = "is a file" if parent == path else f"lies under {parent}, which is a file"
                raise UserError(f"{what} {path} {where}")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise UserError(f"{what} {path}: {parent} is not writable")
            break
    return path


@contextmanager
def staged_folder(target: str | os.PathLike) -> Iterator[Path]:
    """Build a folder in a temporary sibling and swap it in for ``target`` only once it is complete.

    If the process dies half-way, ``target`` still holds the previous complete folder (or nothing), and the
    sibling is cleared by the next call. A ``target`` that exists must be a folder: it is replaced whole.
    """
    target = Path(target).absolute()
    parent = target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        _recover(target)
        staging = parent / f".{target.name}.{os.getpid()}.partial"
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir()
    except OSError as e:
        raise UserError(f"cannot write {target}: {e.strerror or e}") from None
    try:
        yield staging
        old = parent / f".{target.name}.{os.getpid()}.old"
        if target.exists():
            os.replace(target, old)
        os.replace(staging, target)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _recover(target: Path) -> None:
    """Clear a dead writer's leftovers beside ``target``; put back the old folder if the swap was cut short."""
    if not target.exists():
        olds = sorted(target.parent.glob(f".{target.name}.*.old"), key=lambda p: p.stat().st_mtime)
        for old in reversed(olds):
            m = _TEMPORARY.match(old.name)
            if m and m["name"] == target.name and not _alive(int(m["pid"])):
                os.replace(old, target)
                break
    remove_stale_temporaries(target.parent)


def disk_error(e: Exception, path: str | os.PathLike | None = None) -> UserError:
    """A one-line :class:`UserError` for a failure while writing: a full disk, a size limit, permissions.

    Libraries word these differently (numpy: "N requested and M written"; torch's writer: "basic_ios::clear");
    they all come out as the system's reason.
    """
    filename = getattr(e, "filename", None)
    where = f" {path}" if path else (f" {filename}" if filename else "")
    errno_ = getattr(e, "errno", None)
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    full = ("requested and", "iostream", "failed writing", "No space left", "File too large", "Disk quota")
    if errno_ in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) or any(s in text for s in full):
        reason = "no space left (the disk is full, or a size limit was reached)"
    else:
        reason = getattr(e, "strerror", None) or text
    return UserError(f"cannot write{where}: {reason}")
