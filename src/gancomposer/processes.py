"""Child processes that can be stopped: workers that die with their parent, and work run in a forked child
under a wall-clock and memory limit (a stuck C-level parser cannot be interrupted from inside)."""

from __future__ import annotations

import ctypes
import os
import pickle
import resource
import select
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar

from .errors import UserError

_PR_SET_PDEATHSIG = 1
_STOPS = {signal.SIGINT, signal.SIGTERM}
T = TypeVar("T")
R = TypeVar("R")


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


def _read_exact(fd: int, n: int) -> bytes:
    """``n`` bytes from ``fd``, or fewer where the writer closed it first."""
    parts, got = [], 0
    while got < n:
        part = os.read(fd, min(n - got, 1 << 20))
        if not part:
            break
        parts.append(part)
        got += len(part)
    return b"".join(parts)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _serve(work: Callable[[T], R], items: Sequence[T], tasks: int, results: int) -> None:
    """A worker's life: read a run of item indices, send back its pickled results, until the parent closes."""
    while len(header := _read_exact(tasks, 8)) == 8:
        start, stop = int.from_bytes(header[:4], "little"), int.from_bytes(header[4:], "little")
        data = pickle.dumps([work(items[i]) for i in range(start, stop)], pickle.HIGHEST_PROTOCOL)
        _write_all(results, len(data).to_bytes(8, "little") + data)


class _Worker:
    def __init__(self, work: Callable[[T], R], items: Sequence[T], others: list[_Worker]) -> None:
        task_r, self.tasks = os.pipe()
        self.results, result_w = os.pipe()
        self.task: tuple[int, int] | None = None  # the run of indices it works on
        self.ended = False
        self.pid = os.fork()
        if self.pid == 0:  # the child: never returns, never runs the parent's cleanup
            try:
                release_stops()
                die_with_parent()
                for fd in [self.tasks, self.results] + [f for w in others for f in (w.tasks, w.results)]:
                    os.close(fd)  # others' ends held here would hide their EOFs from the parent and from them
                _serve(work, items, task_r, result_w)
            finally:
                os._exit(0)
        os.close(task_r)
        os.close(result_w)

    def give(self, task: tuple[int, int]) -> None:
        self.task = task
        _write_all(self.tasks, task[0].to_bytes(4, "little") + task[1].to_bytes(4, "little"))

    def receive(self) -> list | None:
        """The results of its task, or None when it died on it."""
        header = _read_exact(self.results, 8)
        if len(header) == 8:
            size = int.from_bytes(header, "little")
            data = _read_exact(self.results, size)
            if len(data) == size:
                return pickle.loads(data)  # our own child's bytes, not a file's
        return None

    def end(self, kill: bool) -> None:
        """Close its pipes (an idle worker then exits), or kill it; either way reap it."""
        if self.ended:
            return
        self.ended = True
        os.close(self.tasks)
        os.close(self.results)
        if kill:
            os.kill(self.pid, signal.SIGKILL)  # a zombie still takes the signal; only waitpid removes it
        os.waitpid(self.pid, 0)


def fork_map(
    work: Callable[[T], R], items: Sequence[T], workers: int, crashed: Callable[[T], R], chunk: int = 1
) -> Iterator[R]:
    """Yield ``work(item)`` for every item, in order, computed by ``workers`` forked children, ``chunk`` items
    to a task.

    ``crashed(item)`` stands in for the result of an item whose worker died on it (a reader's segfault, the
    kernel's out-of-memory kill): a fresh worker takes its place and the rest of its task is tried again one
    item at a time, so one bad item costs only itself. The parent holds no lock and starts no thread, so a
    Ctrl-C or SIGTERM may land anywhere in it and the workers are still killed and reaped
    (``multiprocessing.Pool`` can hang in ``terminate`` when the stop lands inside its locks). The children
    inherit ``items`` through the fork and are sent only indices.
    """
    todo = deque((i, min(i + chunk, len(items))) for i in range(0, len(items), chunk))
    pool: list[_Worker] = []
    done: dict[int, R] = {}
    wanted = 0
    finished = False
    try:
        for _ in range(max(1, min(workers, len(todo)))):
            with stops_held():  # a stop lands after the worker is in the pool, which the cleanup below ends
                pool.append(_Worker(work, items, pool))
        for w in pool:
            if todo:
                w.give(todo.popleft())
        while wanted < len(items):
            while wanted in done:
                yield done.pop(wanted)
                wanted += 1
            if wanted == len(items):
                break
            busy = {w.results: w for w in pool if w.task is not None}
            for fd in select.select(list(busy), [], [])[0]:
                w = busy[fd]
                (start, stop), w.task = w.task, None
                results = w.receive()
                if results is not None:
                    done.update(zip(range(start, stop), results))
                else:
                    if stop - start == 1:
                        done[start] = crashed(items[start])
                    else:
                        todo.extendleft((i, i + 1) for i in reversed(range(start, stop)))
                    w.end(kill=True)
                    with stops_held():
                        pool[pool.index(w)] = w = _Worker(work, items, [o for o in pool if o is not w])
                if todo:
                    w.give(todo.popleft())
        finished = True
    finally:
        for w in pool:
            w.end(kill=not finished)
