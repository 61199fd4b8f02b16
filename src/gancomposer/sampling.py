"""Drawing pieces from a generator: the one sampler behind training samples, validation scores, ``Composer``
and the web app."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .model import BlockNoise, Condition, Generator


@torch.no_grad()
def sample_grids(generator: Generator, z: torch.Tensor, steps: int, *, seed: int, temperature: float = 1.0,
                 cond: Condition | None = None, chunk_steps: int = 64,
                 progress: Callable[[int], None] | None = None) -> np.ndarray:
    """``(n, steps, cells)`` uint8 grids for the latents ``z`` ``(n, latent_dim)`` under ``cond`` (each piece's
    meter and key), in one batched pass.

    The same ``seed`` gives the same music. Long pieces are composed ``chunk_steps`` at a time with the
    recurrent state, the last output and the bar position carried on, which draws exactly what one pass would
    while keeping each call's autograd-free buffers small.
    """
    noise = torch.Generator(device=z.device).manual_seed(seed)
    return _sample(generator, z, steps, noise, temperature, cond, chunk_steps, progress)


@torch.no_grad()
def sample_blocks(generator: Generator, blocks: list[tuple[torch.Tensor, int, float, Condition | None]], steps: int,
                  *, chunk_steps: int = 64, progress: Callable[[int], None] | None = None) -> list[np.ndarray]:
    """Several requests in one batched pass: for each ``(latents, seed, temperature, cond)`` block, the grids that
    :func:`sample_grids` gives it alone (each block draws its noise from its own seed)."""
    z = torch.cat([b[0] for b in blocks])
    cond = None if blocks[0][3] is None else Condition.cat([b[3] for b in blocks])
    sizes = [len(b[0]) for b in blocks]
    noise = BlockNoise([torch.Generator(device=z.device).manual_seed(b[1]) for b in blocks], sizes)
    temperature = torch.cat([torch.full((n,), float(b[2])) for n, b in zip(sizes, blocks)]).to(z.device)
    grids = _sample(generator, z, steps, noise, temperature, cond, chunk_steps, progress)
    return np.split(grids, np.cumsum(sizes)[:-1])


def _sample(generator: Generator, z: torch.Tensor, steps: int, noise, temperature, cond: Condition | None,
            chunk_steps: int, progress: Callable[[int], None] | None) -> np.ndarray:
    was_training = generator.training
    cond = None if cond is None else cond.to(z.device)
    generator.eval()
    parts, carry, left = [], None, steps
    try:
        while left > 0:
            n = min(left, chunk_steps)
            onehot, _, carry = generator(z, n, cond=cond, generator=noise, temperature=temperature, carry=carry)
            parts.append(onehot.argmax(-1).to(torch.uint8).cpu().numpy())
            left -= n
            if progress:
                progress(n)
    finally:
        generator.train(was_training)
    if not parts:
        return np.zeros((len(z), 0, generator.cells), np.uint8)
    return np.concatenate(parts, axis=1)
