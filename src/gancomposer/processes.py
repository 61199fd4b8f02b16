"""Child processes that can be stopped: workers that die with their parent, and work run in a forked child
under a wall-clock and memory limit (a stuck C-level parser cannot be interrupted from inside)."""

from __future__ import annotations

import ctypes
import os
import resource
import select
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from .errors import UserError

_PR_SET_PDEATHSIG = 1
_STOPS = {signal.SIGINT, signal.SIGTERM}


@contextmanager
def stops_held() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM while processes are forked, and deliver them after: a signal that lands inside
    ``fork`` runs its handler in an at-fork callback, where Python ignores the exception it raises. Children
    start with the signals held too; they release them with :func:`release_stops`."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _STOPS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def release_stops() -> None:
    """In a child started under :func:`stops_held`: ignore Ctrl-C (the parent ends its children), die at once
    on SIGTERM, and let both through again."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOPS)


def die_with_parent() -> None:
    """Ask Linux to kill this process when its parent dies (so a ``kill -9``'d run leaves no orphans behind
    writing tracebacks to a closed pipe); elsewhere a no-op."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):
            pass


def _vm_size() -> int:
    """This process's virtual memory size in bytes (0 where /proc is missing)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


def run_limited(work: Callable[[], bytes], *, timeout_s: float, memory_bytes: int) -> bytes:
    """Run ``work`` in a forked child and return the bytes it returns.

    The child may use ``memory_bytes`` of address space beyond what it inherits and ``timeout_s`` seconds of
    wall time, else it is killed and :class:`UserError` says which limit was hit. A :class:`UserError` raised
    by ``work`` comes back with its message. Only bytes cross the pipe (nothing is unpickled).
    """
    read_fd, write_fd = os.pipe()
    with stops_held():
        pid = os.fork()
    if pid == 0:  # the child: never returns, never runs the parent's cleanup
        status = 1
        try:
            os.close(read_fd)
            die_with_parent()
            release_stops()
            devnull = os.open(os.devnull, os.O_WRONLY)  # parsers print warnings; the caller reports in one line
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            if memory_bytes > 0 and _vm_size():
                limit = _vm_size() + memory_bytes
                resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            try:
                payload, status = b"\x00" + work(), 0
            except UserError as e:
                payload = b"\x01" + str(e).encode()
            except MemoryError:
                payload = b"\x02"
            except BaseException as e:  # noqa: BLE001 - a reader bug on odd input: report, do not crash
                payload = b"\x01" + f"unreadable ({type(e).__name__})".encode()
            with os.fdopen(write_fd, "wb") as out:
                out.write(payload)
        finally:
            os._exit(status)
    os.close(write_fd)
    chunks, deadline, killed = [], time.monotonic() + timeout_s, False
    with os.fdopen(read_fd, "rb", buffering=0) as pipe:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([pipe], [], [], left)[0]:
                os.kill(pid, signal.SIGKILL)
                killed = True
                break
            chunk = pipe.read(1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    os.waitpid(pid, 0)
    if killed:
        raise UserError(f"parsing took longer than {timeout_s:g} s")
    data = b"".join(chunks)
    if data[:1] == b"\x02":
        raise UserError(f"needed more than the {memory_bytes / 2**30:g} GiB of memory allowed")
    if not data:
        raise UserError(f"the reader crashed (or ran out of the {memory_bytes / 2**30:g} GiB of memory allowed)")
    if data[:1] == b"\x01":
        raise UserError(data[1:].decode(errors="replace"))
    return data[1:]


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (a scheduler's stop, ``kill``) is treated like Ctrl-C: save, then leave."""
    def on_term(signum, frame):
        raise KeyboardInterrupt

    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, on_term) if in_main_thread else None
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
