"""Random training batches from a shard of the windows: epoch by epoch, from a generator of their own, so a
resumed run draws exactly the batches the uninterrupted one would have.

A batch holds windows of one meter, cut to that meter's length (windows of different meters differ in length);
the meter of each batch is drawn in proportion to how many windows each meter has.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from .errors import UserError
from .model import Condition


class Batch(NamedTuple):
    grid: torch.Tensor  # (batch, steps, cells) uint8
    cond: Condition  # each window's meter and key

    def to(self, device) -> Batch:
        return Batch(self.grid.to(device), self.cond.to(device))


class Batches:
    """Random batches of training windows from this process's shard, epoch by epoch per meter, resumable."""

    def __init__(self, windows: torch.Tensor, labels: torch.Tensor, window_steps: list[int], batch_size: int,
                 seed: int, rank: int = 0, world: int = 1, keyed: bool = True):
        """``labels`` ``(windows, 2)``: each window's meter and key; ``window_steps``: each meter's length."""
        self.shard, self.labels = windows[rank::world], labels[rank::world].long()
        if len(self.shard) == 0:
            raise UserError(f"no training windows for process {rank} of {world}")
        self.steps, self.keyed = list(window_steps), keyed
        self.buckets = [torch.nonzero(self.labels[:, 0] == m).flatten() for m in range(len(self.steps))]
        self.sizes = torch.tensor([len(b) for b in self.buckets], dtype=torch.float64)
        self.batch_size = batch_size
        self.gen = torch.Generator().manual_seed(seed)
        self.orders = [torch.randperm(len(b), generator=self.gen) for b in self.buckets]
        self.pos = [0] * len(self.buckets)

    def next(self) -> Batch:
        """A batch of one meter; a new permutation of that meter's windows starts when its epoch runs out."""
        m = 0 if len(self.buckets) == 1 else int(torch.multinomial(self.sizes, 1, generator=self.gen))
        parts, need = [], self.batch_size
        while need > 0:
            if self.pos[m] >= len(self.orders[m]):
                self.orders[m], self.pos[m] = torch.randperm(len(self.buckets[m]), generator=self.gen), 0
            take = self.orders[m][self.pos[m] : self.pos[m] + need]
            parts.append(take)
            self.pos[m] += len(take)
            need -= len(take)
        rows = self.buckets[m][torch.cat(parts)]
        labels = self.labels[rows]
        return Batch(self.shard[rows, : self.steps[m]], Condition(labels[:, 0], labels[:, 1] if self.keyed else None))

    def state_dict(self) -> dict:
        return {"gen": self.gen.get_state(), "orders": self.orders, "pos": self.pos}

    def load_state_dict(self, s: dict) -> None:
        self.gen.set_state(s["gen"])
        self.orders, self.pos = list(s["orders"]), [int(p) for p in s["pos"]]
