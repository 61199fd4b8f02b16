"""Adversarial losses, computed from D's logits (never from probabilities) for numerical stability.

Batch sums in the textbook formulas are batch means here (a constant factor the learning rate absorbs).

``gan`` (the classic formulation, the default), with ``r`` = D's logit on real pieces, ``f`` on fakes,
``D = sigmoid``:

    D minimises  mean[-log D(x)] + mean[-log(1 - D(G(z)))]  = mean softplus(-r) + mean softplus(f)
    G minimises  mean[-log D(G(z))]                        = mean softplus(-f)   (non-saturating)

With one-sided label smoothing ``s``, the real target is ``1 - s``: the real term becomes
``(1 - s) softplus(-r) + s softplus(r)``.

``wgan-gp``  D: mean f - mean r (+ gradient penalty);  G: -mean f
``hinge``    D: mean relu(1 - r) + mean relu(1 + f);   G: -mean f
``lsgan``    D: mean (r - 1)^2 / 2 + mean f^2 / 2;      G: mean (f - 1)^2 / 2
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from .errors import UserError

if TYPE_CHECKING:
    from .config import TrainConfig
    from .model import Condition, Discriminator


@dataclass(frozen=True)
class AdversarialLoss:
    """D's loss on its logits for real and fake pieces, and G's on D's logits for its fakes."""

    d: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]
    g: Callable[[torch.Tensor], torch.Tensor]


def _gan_d(r: torch.Tensor, f: torch.Tensor, s: float) -> torch.Tensor:
    return ((1 - s) * F.softplus(-r) + s * F.softplus(r)).mean() + F.softplus(f).mean()


#: The one registry of adversarial losses; ``label_smoothing`` (the third argument of ``d``) is read by
#: ``gan`` only.
LOSSES: dict[str, AdversarialLoss] = {
    "gan": AdversarialLoss(_gan_d, lambda f: F.softplus(-f).mean()),
    "wgan-gp": AdversarialLoss(lambda r, f, s: f.mean() - r.mean(), lambda f: -f.mean()),
    "hinge": AdversarialLoss(lambda r, f, s: F.relu(1 - r).mean() + F.relu(1 + f).mean(), lambda f: -f.mean()),
    "lsgan": AdversarialLoss(lambda r, f, s: 0.5 * ((r - 1) ** 2).mean() + 0.5 * (f**2).mean(),
                             lambda f: 0.5 * ((f - 1) ** 2).mean()),
}


def get_loss(kind: str) -> AdversarialLoss:
    """The loss called ``kind``; a clear error lists the choices otherwise."""
    try:
        return LOSSES[kind]
    except KeyError:
        raise UserError(f"unknown loss {kind!r}; choose one of: {', '.join(LOSSES)}") from None


def teacher_forced_nll(g, z: torch.Tensor, grid: torch.Tensor, cond=None) -> torch.Tensor:
    """Mean negative log-likelihood per cell of real pieces ``grid`` ``(B, T, P)``, composed under ``cond``
    (their meters and keys), under G with teacher forcing (``g`` may be wrapped in DistributedDataParallel)."""
    logits = g(z, cond=cond, teacher=grid).logits
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), grid.reshape(-1).long())


#: How slowly REINFORCE's baseline (a moving average of the rewards) follows them.
BASELINE_DECAY = 0.9


def sample_rewards(loss: AdversarialLoss, fake_logits: torch.Tensor) -> torch.Tensor:
    """Each fake piece's reward: minus G's adversarial loss on that piece alone (``log D(G(z))`` for gan)."""
    return -torch.stack([loss.g(f.reshape(1)) for f in fake_logits.detach().float()])


def score_function_loss(logits: torch.Tensor, onehot: torch.Tensor, rewards: torch.Tensor,
                        baseline: float) -> torch.Tensor:
    """REINFORCE (Williams 1992) as SeqGAN uses it: minimising this moves G's probability of each sampled
    piece up in proportion to how much its reward beats the baseline. The log-probability of a piece is the sum
    over its cells of the sampled states' log-probabilities, averaged over steps (so the step size does not
    grow with the piece's length). ``logits`` ``(B, T, P, S)`` are those the samples ``onehot`` were drawn
    from."""
    logp = (F.log_softmax(logits.float(), -1) * onehot.detach().float()).sum((-1, -2)).mean(-1)
    return -((rewards.detach() - baseline) * logp).mean()


def mean_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Mean entropy in nats of the categorical distributions ``logits`` ``(..., S)`` (masked states, at a large
    negative logit, count as impossible)."""
    logp = F.log_softmax(logits.float(), -1)
    return -(logp.exp() * logp).sum(-1).mean()


def expected_onsets(logits: torch.Tensor, hold_state: int) -> torch.Tensor:
    """Mean over pieces and steps of the notes expected to start per grid step under the categorical distributions
    ``logits`` ``(B, T, P, S)``: the probability of every state but 0 (OFF or REST) and ``hold_state`` (HOLD or
    TIE), summed over the cells."""
    onset = torch.ones(logits.shape[-1], device=logits.device)
    onset[0] = onset[hold_state] = 0
    return (torch.softmax(logits.float(), -1) * onset).sum((-1, -2)).mean()


def input_grad_norm2(outputs: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """Per-sample squared norm of d(outputs)/d(inputs), kept in the graph for a double backward.

    ``inputs`` must require grad and be what produced ``outputs`` (one D forward, so DDP sees one pass).
    Samples are independent in D (no batch norm), so the gradient of the sum is each sample's own.
    """
    (grad,) = torch.autograd.grad(outputs.sum(), inputs, create_graph=True)
    return grad.pow(2).flatten(1).sum(1)


def gradient_penalty(hat_logits: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """WGAN-GP (Gulrajani et al. 2017): mean (||grad D(x_hat)|| - 1)^2, ``x_hat`` between real and fake."""
    return ((input_grad_norm2(hat_logits, x_hat) + 1e-12).sqrt() - 1).pow(2).mean()


def r1_penalty(real_logits: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """R1 (Mescheder et al. 2018): mean ||grad D(x)||^2 on real pieces; the loss adds gamma / 2 times it."""
    return input_grad_norm2(real_logits, real).mean()


def interpolate(real: torch.Tensor, fake: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random points on the lines between real and fake pieces (a leaf that requires grad)."""
    a = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), generator=generator, device=real.device)
    return (a * real.detach() + (1 - a) * fake.detach()).requires_grad_(True)


def feature_matching(real_features: torch.Tensor, fake_features: torch.Tensor) -> torch.Tensor:
    """Salimans et al. 2016: squared distance between the batch means of D's penultimate features."""
    return (real_features.detach().mean(0) - fake_features.mean(0)).pow(2).sum()


def matching(cfg: TrainConfig, D: Discriminator, real: torch.Tensor, fake: torch.Tensor,
             fake_features: torch.Tensor, cond: Condition, errors: dict | None = None) -> torch.Tensor | float:
    """G's matching terms (``cfg``'s weights): the squared distance between the batch means of what D reads in
    the real pieces ``real`` and in G's pieces ``fake`` (whose penultimate features D gave as ``fake_features``):
    its penultimate features (:func:`feature_matching`), each piece's statistics, each piece's chromaticity. 0
    where every weight is 0.

    With ``cfg.matching_smoothing`` and a dict ``errors`` (kept between updates), the statistics' and the
    chromaticity's terms pull along a moving average of the difference between the two batch means instead of
    this batch's own (:func:`smoothed_target`); D's features change with D at every update and are matched as
    they are."""
    readings = {"feature_matching": lambda x: D(x, cond).features,
                "statistics_matching": lambda x: D.piece_statistics(x, cond),
                "chromaticity_matching": lambda x: D.statistics.chromaticity(x)}
    loss = 0
    for name, read in readings.items():
        if getattr(cfg, name) > 0:
            with torch.no_grad():  # the real batch's readings are the targets
                target = read(real.detach()).float()
            reading = (fake_features if name == "feature_matching" else read(fake)).float()
            if name != "feature_matching" and cfg.matching_smoothing > 0 and errors is not None:
                mean = reading.mean(0)
                aim = smoothed_target(mean.detach(), target.mean(0), errors, name, cfg.matching_smoothing)
                loss = loss + getattr(cfg, name) * (mean - aim).pow(2).sum()
            else:
                loss = loss + getattr(cfg, name) * feature_matching(target, reading)
    return loss


def smoothed_target(fake_mean: torch.Tensor, real_mean: torch.Tensor, errors: dict, name: str,
                    smoothing: float) -> torch.Tensor:
    """The target that makes ``(mean - target)^2``'s gradient follow the moving average of ``fake_mean -
    real_mean`` (``errors[name]``, updated here: ``smoothing`` the weight of the past, the first batch's own
    difference to start) instead of this batch's difference alone.

    Why: with 32 pieces a batch, the difference between one batch's mean statistics and the real batch's was mostly
    sampling noise (its batch-to-batch variance 2.5-5.6 times the squared mean difference, at the start of the
    madrigals' and Ryan's phases), and the noise flipped the terms' gradient back and forth along one direction
    (cosines of -0.95 and +0.94 between successive batches' statistics and chromaticity gradients), so most of the
    share of G's rescaled pull that the terms took was noise (docs/measurements.md, session 31)."""
    now = fake_mean - real_mean
    before = errors.get(name)
    error = now if before is None else smoothing * torch.tensor(before, device=now.device) + (1 - smoothing) * now
    errors[name] = error.tolist()
    return fake_mean - error


def instance_noise_std(cfg: TrainConfig, iteration: int) -> float:
    """Std of the Gaussian noise added to D's inputs at adversarial ``iteration`` (``cfg``: the training
    settings): ``instance_noise`` falling linearly to 0 over ``instance_noise_iters``."""
    return cfg.instance_noise * max(0.0, 1 - iteration / max(1, cfg.instance_noise_iters))
