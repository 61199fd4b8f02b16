"""Several processes under ``torchrun``: joining the process group, the device of each, and the few
collective operations training needs. A process that ``torchrun`` did not start is alone: every function
here is then a no-op."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from .errors import UserError


@dataclass
class World:
    """This process's place among the training processes."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    owns_group: bool = False  # this code started the process group, so it ends it
    grouped: bool = False  # in a process group (under torchrun, even alone: the same code path as many)

    @property
    def main(self) -> bool:
        """Rank 0 alone writes files, logs and shows progress."""
        return self.rank == 0


def join(device_kind: str) -> World:
    """Join the process group that ``torchrun`` describes in the environment (nothing for a process it did
    not start). One process under ``torchrun`` joins a group of one, so that a single GPU runs the same path
    (NCCL, DistributedDataParallel) as many do, with the same result as training without ``torchrun``."""
    if "WORLD_SIZE" not in os.environ:
        return World()
    owns = not dist.is_initialized()
    if owns:
        cuda = device_kind == "cuda" or (device_kind == "auto" and torch.cuda.is_available())
        dist.init_process_group("nccl" if cuda else "gloo")
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), owns, True)


def leave(world: World) -> None:
    """End the process group if :func:`join` started it."""
    if world.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def pick_device(kind: str, local_rank: int) -> torch.device:
    """The device to train on: ``auto`` takes this process's GPU when there is one."""
    if kind == "cuda" or (kind == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise UserError("device=cuda but no CUDA GPU is available")
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def cpu_threads(requested: int = 0) -> int:
    """Threads for torch's CPU kernels: ``requested``; else ``OMP_NUM_THREADS`` when set; else the cores this
    process may run on that other work is not already using (by the 1-minute load average), shared among this
    machine's training processes. Two torch jobs that each take every core slow each other down tenfold or
    more, because their threads spin while waiting for each other."""
    if requested > 0:
        return requested
    if _omp_threads():
        return _omp_threads()
    others = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return threads_for(_cores(), others, _local_processes())


def _omp_threads() -> int:
    """``OMP_NUM_THREADS`` when set to a positive number, else 0."""
    value = os.environ.get("OMP_NUM_THREADS", "")
    return int(value) if value.isdigit() else 0


def _cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _local_processes() -> int:
    return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def threads_for(cores: int, others_load: float, processes: int = 1) -> int:
    """CPU threads for one of ``processes`` training processes when other work keeps ``others_load`` cores busy."""
    free = cores - int(others_load + 0.5)
    return max(1, min(cores, free) // max(1, processes))


class ThreadGovernor:
    """Threads chosen automatically, re-chosen every ``every_s`` seconds: when another job starts competing
    for the cores, this one steps down (two jobs whose threads spin for every core slow each other tenfold or
    more), and it steps back up when the cores are free again. The other work's load is the 1-minute load
    average less this process's own recent CPU use, so it reacts within about a minute."""

    def __init__(self, threads: int, *, auto: bool, every_s: float = 20.0, clock=time.monotonic,
                 cpu_seconds=lambda: sum(os.times()[:2]), loadavg=lambda: os.getloadavg()[0]):
        self.threads, self.auto, self.every_s = threads, auto and hasattr(os, "getloadavg"), every_s
        self.clock, self.cpu_seconds, self.loadavg = clock, cpu_seconds, loadavg
        self.cores, self.processes = _cores(), _local_processes()
        self.last, self.last_cpu = clock(), cpu_seconds()

    @classmethod
    def for_setting(cls, requested: int) -> ThreadGovernor:
        """Threads for the ``threads`` setting (see :func:`cpu_threads`), re-chosen only when nothing fixed them."""
        return cls(cpu_threads(requested), auto=requested <= 0 and not _omp_threads())

    def check(self) -> int | None:
        """The new thread count when it should change now, else None."""
        now = self.clock()
        if not self.auto or now - self.last < self.every_s:
            return None
        cpu = self.cpu_seconds()
        own = (cpu - self.last_cpu) / (now - self.last)
        self.last, self.last_cpu = now, cpu
        want = threads_for(self.cores, max(0.0, self.loadavg() - own * self.processes), self.processes)
        if want == self.threads:
            return None
        self.threads = want
        return want


def wrap(module: torch.nn.Module, world: World, device: torch.device) -> torch.nn.Module:
    """``module`` in DistributedDataParallel in a process group, even of one (G and D each in their own)."""
    if not world.grouped:
        return module
    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(module, device_ids=ids)


def any_process(flag: bool, world: World, device: torch.device) -> bool:
    """True on every process if ``flag`` is true on any (so all stop or skip together)."""
    if not world.grouped:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def mean(value: float, world: World, device: torch.device) -> float:
    """``value`` averaged over the processes."""
    if not world.grouped:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t.item()) / world.size


def average_gradients(params: list[torch.nn.Parameter], world: World) -> None:
    """Average the gradients of ``params`` over the processes (what DDP does in its backward, for gradients
    set by hand)."""
    if not world.grouped:
        return
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)  # every process must take part in every reduction
        dist.all_reduce(p.grad)
        p.grad /= world.size


def gather(obj: Any, world: World) -> list:
    """``obj`` of every process, by rank."""
    if not world.grouped:
        return [obj]
    out = [None] * world.size
    dist.all_gather_object(out, obj)
    return out
