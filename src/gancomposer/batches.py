"""Random training batches from a shard of the windows: epoch by epoch, from a generator of their own, so a
resumed run draws exactly the batches the uninterrupted one would have."""

from __future__ import annotations

import torch

from .errors import UserError


class Batches:
    """Random batches of training windows from this process's shard, epoch by epoch, resumable."""

    def __init__(self, windows: torch.Tensor, batch_size: int, seed: int, rank: int = 0, world: int = 1):
        self.shard = windows[rank::world]
        if len(self.shard) == 0:
            raise UserError(f"no training windows for process {rank} of {world}")
        self.batch_size = batch_size
        self.gen = torch.Generator().manual_seed(seed)
        self.order, self.pos = torch.randperm(len(self.shard), generator=self.gen), 0

    def next(self) -> torch.Tensor:
        """``(batch, steps, cells)`` uint8; a new permutation starts when the epoch runs out."""
        parts, need = [], self.batch_size
        while need > 0:
            if self.pos >= len(self.order):
                self.order, self.pos = torch.randperm(len(self.shard), generator=self.gen), 0
            take = self.order[self.pos : self.pos + need]
            parts.append(take)
            self.pos += len(take)
            need -= len(take)
        return self.shard[torch.cat(parts)]

    def state_dict(self) -> dict:
        return {"gen": self.gen.get_state(), "order": self.order, "pos": self.pos}

    def load_state_dict(self, s: dict) -> None:
        self.gen.set_state(s["gen"])
        self.order, self.pos = s["order"], int(s["pos"])
