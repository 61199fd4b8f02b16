"""What a training run shows while it runs: TensorBoard curves and pictures, and the progress bar.
Only the main process shows anything; on the others every method does nothing."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm


class Monitor:
    """TensorBoard scalars and images under ``folder/tensorboard``, and a progress bar on stderr."""

    def __init__(self, folder: Path, *, total: int, done: int, main: bool, bar: bool):
        self.writer = None
        if main:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(folder / "tensorboard"))
        self.bar = tqdm(total=total, initial=done, disable=not (bar and main), desc="train", unit="iter",
                        file=sys.stderr, dynamic_ncols=True)

    def scalars(self, values: dict[str, float], iteration: int) -> None:
        if self.writer is not None:
            for key, value in values.items():
                self.writer.add_scalar(key, value, iteration)

    def image(self, tag: str, image: np.ndarray, iteration: int) -> None:
        """A ``(1, H, W)`` grey image in 0..1."""
        if self.writer is not None:
            self.writer.add_image(tag, image, iteration, dataformats="CHW")

    def status(self, text: str) -> None:
        self.bar.set_postfix_str(text)

    def tick(self) -> None:
        self.bar.update()

    def close(self) -> None:
        self.bar.close()
        if self.writer is not None:
            self.writer.close()
