"""Keeping the adversarial phase balanced: D's pace against G's, and D's pull on G against the real pieces'.

**D's learning rate follows D's accuracy on held-out pieces** (``balance_target``).

A D far ahead of G gives G vanishing or misleading gradients (G then buys D's approval with whatever D happens
to punish least); a D far behind gives noise. After every adversarial iteration D scores a batch of held-out
real pieces (the validation windows, which it never trains on) and the fresh fakes of its last update, both
before learning from them. Its accuracy, smoothed, is compared with ``balance_target``: above it, D's learning
rate shrinks by ``exp(balance_rate * (target - accuracy))`` per iteration, below it the rate grows back, up to
``lr_d`` (after StyleGAN2-ADA, whose augmentation strength follows D's overfitting signal the same way).
Held-out reals matter: a D that memorises the training pieces scores them high while still doing no better on
unseen music.

**D's pull keeps no part that temperature would also make** (``orthogonal_pull``, :func:`temperature_moves`).
A sampling temperature changes two things about G's pieces: how many notes start, and how spread its choices
are. D's pull changes the same two where they differ from the style at the phase's temperature (on the
chorales it made G 2 % busier at every temperature), which only moves G along its temperature curve: better
on one side of the temperature it was drawn at, worse on the other. Taking those directions out of the pull
leaves what no temperature gives. Drawn at one temperature, though, D never sees what G does much hotter, and
the pull changes that end by the way; with ``temperature_spread`` each piece comes at its own temperature and
the two numbers are held over all of them (on the chorales only both together lifted the whole curve, 0.8-1.2).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from . import distributed
from .losses import expected_onsets, mean_entropy
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


def temperature_moves(run: Run, logits: torch.Tensor) -> list[torch.Tensor]:
    """What a change of sampling temperature moves, measured along G's own pieces (``logits``, each drawn at its own
    temperature: the phase's, or one of ``temperature_spread`` around it): the notes G expects to start per step
    and the mean entropy of its choices. (Held also at a temperature 0.3 hotter, they left the chorale phase
    nothing to gain: docs/measurements.md.)"""
    return [expected_onsets(logits, run.G.hold_state), mean_entropy(logits)]


def g_gradients(run: Run, adversarial: torch.Tensor, anchor: torch.Tensor,
                extra: torch.Tensor | float = 0.0, held: Sequence[torch.Tensor] = ()) -> float:
    """Set G's gradients to those of ``w * adversarial + anchor + extra``, with ``w`` chosen afresh at every update
    so that the adversarial terms' gradient is ``adversarial_ratio`` times as long as the likelihood anchor's (after
    VQGAN's adaptive weight, here on the whole gradient). ``extra`` (the entropy anchor) keeps its own weight.
    With ``held`` (scalars of G's forward), the adversarial gradient first loses its components along their
    gradients. Returns ``w``, also kept in the run's progress.

    Why: with fixed weights the adversarial gradient was 1.5-3 times as long as the anchor's on two collections of
    folk tunes and 60-90 times on five-voice madrigals (where most cells are easy-to-predict holds, so the
    anchor's gradient is small, and a confident D's is large): one setting meant a different method on every
    style. The gradients are set by hand, so they are averaged over the processes here, not by DDP (each process
    takes its own pull apart against its own pieces' ``held``).
    """
    params = [p for p in run.G.parameters() if p.requires_grad]
    reuse = torch.is_tensor(extra)  # the extra term's gradient is taken from the same graph at the end
    g_adv = torch.autograd.grad(adversarial, params, allow_unused=True, retain_graph=reuse or bool(held))
    if held:
        directions = [torch.autograd.grad(q, params, allow_unused=True, retain_graph=reuse or i < len(held) - 1)
                      for i, q in enumerate(held)]
        g_adv = without(*(_filled(g, params) for g in (g_adv, *directions)))
    g_mle = torch.autograd.grad(anchor, params, allow_unused=True)
    n_adv, n_mle = total_norm(g_adv), total_norm(g_mle)
    weight = distributed.mean(run.cfg.adversarial_ratio * n_mle / n_adv if n_adv > 0 else 0.0, run.world,
                              run.device)
    g_extra = torch.autograd.grad(extra, params, allow_unused=True) if torch.is_tensor(extra) else [None] * len(params)
    for p, a, m, e in zip(params, g_adv, g_mle, g_extra):
        parts = [g for g in (m, None if a is None else weight * a, e) if g is not None]
        p.grad = sum(parts) if parts else None
    distributed.average_gradients(params, run.world)
    run.progress.adversarial_weight = weight
    return weight


def without(grads: list[torch.Tensor], *directions: list[torch.Tensor]) -> list[torch.Tensor]:
    """``grads`` (one tensor per parameter) less their components along each of ``directions`` (gradients of the
    same parameters), which are made orthonormal first (Gram-Schmidt); a direction that the earlier ones already
    span, to within ``1e-6`` of its length, is left out."""
    basis = []
    for d in directions:
        length = total_norm(d)
        for u in basis:
            d = _minus(d, u)
        n = total_norm(d)
        if n > 1e-6 * length:
            basis.append([x / n for x in d])
    for u in basis:
        grads = _minus(grads, u)
    return grads


def _minus(g: list[torch.Tensor], u: list[torch.Tensor]) -> list[torch.Tensor]:
    """``g`` less its component along the unit vector ``u``."""
    dot = sum((x * y).sum() for x, y in zip(g, u))
    return [x - dot * y for x, y in zip(g, u)]


def _filled(grads, params) -> list[torch.Tensor]:
    """``grads`` with zeros for the parameters they do not reach (``None``)."""
    return [torch.zeros_like(p) if g is None else g for g, p in zip(grads, params)]


def total_norm(grads) -> float:
    """The Euclidean norm of all of ``grads`` together (``None`` entries left out; 0 when there are none)."""
    norms = [g.detach().norm() for g in grads if g is not None]
    return float(torch.linalg.vector_norm(torch.stack(norms))) if norms else 0.0
