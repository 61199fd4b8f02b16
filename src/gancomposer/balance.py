"""Adaptive balance of D and G: D's learning rate follows D's accuracy on held-out pieces.

A D far ahead of G gives G vanishing or misleading gradients (G then buys D's approval with whatever D happens
to punish least); a D far behind gives noise. After every adversarial iteration D scores a batch of held-out
real pieces (the validation windows, which it never trains on) and the fresh fakes of its last update, both
before learning from them. Its accuracy, smoothed, is compared with ``balance_target``: above it, D's learning
rate shrinks by ``exp(balance_rate * (target - accuracy))`` per iteration, below it the rate grows back, up to
``lr_d`` (after StyleGAN2-ADA, whose augmentation strength follows D's overfitting signal the same way).
Held-out reals matter: a D that memorises the training pieces scores them high while still doing no better on
unseen music.
"""

from __future__ import annotations

import math

import torch

from . import distributed
from .model import grid_features
from .run import Run

SMOOTHING = 0.9  # weight of the past in the smoothed accuracy
MIN_SCALE = 1e-3  # D's learning rate never falls below lr_d times this


def held_out_accuracy(run: Run, fake_logits: torch.Tensor) -> float:
    """D's accuracy on a batch of held-out reals (``D(x) > 1/2``) and on fresh fakes (``D(G(z)) < 1/2``),
    averaged over the training processes."""
    real = run.held_out.next().to(run.device)
    with torch.no_grad(), run.amp:
        logits = run.D(grid_features(real.grid, run.G.states), real.cond).logits.float()
    acc = 0.5 * ((logits > 0).float().mean().item() + (fake_logits.detach() < 0).float().mean().item())
    return distributed.mean(acc, run.world, run.device)


def observe(run: Run, fake_logits: torch.Tensor) -> float:
    """Update the smoothed accuracy and D's learning rate from it; returns the batch accuracy."""
    p, cfg = run.progress, run.cfg
    acc = held_out_accuracy(run, fake_logits)
    p.d_accuracy = SMOOTHING * p.d_accuracy + (1 - SMOOTHING) * acc
    p.lr_d_scale = scale_after(p.lr_d_scale, p.d_accuracy, cfg.balance_target, cfg.balance_rate)
    for group in run.opt_d.param_groups:
        group["lr"] = cfg.lr_d * p.lr_d_scale
    return acc


def scale_after(scale: float, accuracy: float, target: float, rate: float) -> float:
    """The next multiplier of D's learning rate: down while D is more accurate than ``target``, up while less."""
    return min(1.0, max(MIN_SCALE, scale * math.exp(rate * (target - accuracy))))
