"""Training the recurrent GAN: three phases of plain loops over one :class:`Run` state.

1. **Likelihood pre-training** (``pretrain_iters``): G learns to predict real pieces with teacher forcing
   (C-RNN-GAN's recipe), so the adversarial phase starts from a G that already writes plausible notes.
2. **D pre-training** (``d_pretrain_iters``): D alone learns to tell that frozen G from real music, so G's first
   adversarial gradients come from a D that can tell, not from random weights.
3. **Adversarial training** (``adversarial_iters``), the classic formulation with ``loss="gan"``:
   ``d_updates`` times, D sees real pieces x (label 1) and G(z) (label 0) and minimises
   mean -log D(x) + mean -log(1 - D(G(z))); then G minimises mean -log D(G(z)) against the current D.

After every iteration the run scores G on validation when due, keeping the best, and checkpoints when due.
Under ``torchrun`` every process trains on its own shard of the windows; G and D are wrapped in separate
DistributedDataParallel modules with their own optimisers, D's forward in G's update runs inside
``no_sync()`` (its gradients are discarded), and only rank 0 writes files.
"""

from __future__ import annotations

import os
import time
from contextlib import nullcontext
from dataclasses import dataclass

import torch

from . import balance, checkpoint, distributed, guard
from .config import Config
from .errors import UserError
from .losses import (BASELINE_DECAY, get_loss, gradient_penalty, instance_noise_std, interpolate, matching,
                     mean_entropy, r1_penalty, sample_rewards, score_function_loss, teacher_forced_nll)
from .model import Condition, grid_features, onehot_to_features
from .processes import sigterm_as_interrupt
from .run import Run, save_checkpoint, start, summary, validation_score, write_samples

class TrainingStopped(UserError):
    """Training cannot go on (non-finite loss, collapse); the message says why and what was kept."""


class TrainingInterrupted(UserError):
    """Ctrl-C or SIGTERM: a checkpoint was saved and the run can be resumed."""


@dataclass
class DStep:
    """One D update: the real batch it saw (grid, conditions, noised features), D's logits on it and on fakes."""

    real_grid: torch.Tensor
    cond: Condition
    real: torch.Tensor
    real_logits: torch.Tensor
    fake_logits: torch.Tensor
    loss: torch.Tensor
    grad_norm: float


def train(data_dir: str | os.PathLike, run_dir: str | os.PathLike, config: Config, *, resume: bool = False,
          progress: bool = True, log=print) -> dict:
    """Train on the dataset folder ``data_dir``, writing checkpoints, samples and TensorBoard logs to ``run_dir``.

    Returns a summary (iterations, best validation score, last checkpoint, whether this is the main process).
    Raises :class:`TrainingStopped` (non-finite loss, collapse) or :class:`TrainingInterrupted` (Ctrl-C, SIGTERM).
    """
    run = start(data_dir, run_dir, config, resume=resume, progress=progress, log=log)
    try:
        with sigterm_as_interrupt():
            run_phases(run)
    except KeyboardInterrupt:
        path = save_checkpoint(run, f"step-{run.progress.total:06d}")
        raise TrainingInterrupted(f"interrupted at iteration {run.progress.total}; saved {path}; "
                                  "continue with --resume") from None
    finally:
        run.monitor.close()
        distributed.leave(run.world)
    return summary(run)


def run_phases(run: Run) -> None:
    """The method, phase by phase; each iteration ends by scoring and checkpointing when due."""
    cfg = run.cfg
    while run.progress.pretrain_iters < cfg.pretrain_iters:
        pretrain_step(run)
        end_iteration(run)
    while run.progress.d_pretrain_iters < cfg.d_pretrain_iters:
        d_pretrain_step(run)
        end_iteration(run)
    while run.progress.adversarial_iters < cfg.adversarial_iters and not run.progress.adversarial_stopped:
        if guard.due(run):  # at the start of the phase, then every guard_every iterations
            guard.check(run)
            if run.progress.adversarial_stopped:
                break
        adversarial_step(run)
        end_iteration(run)
    if cfg.adversarial_iters and guard.due(run, final=True):
        guard.check(run)  # the phase's last G
    if cfg.tune_temperature and run.world.main:
        run.progress.temperature = (guard.tune_temperature(run) or {}).get("temperature")
    evaluate_and_checkpoint(run, final=True)


def pretrain_step(run: Run) -> None:
    """One likelihood update of G on a real batch, with teacher forcing."""
    real = run.batches.next().to(run.device)
    z = torch.randn(real.grid.shape[0], run.G.latent_dim, device=run.device)
    with run.amp:
        loss = teacher_forced_nll(run.g_net, z, real.grid, real.cond)
    norm = optimizer_step(run, loss, run.opt_pre, run.G, "the pre-training loss")
    update_ema(run.G_ema, run.G, run.cfg.ema_decay)
    run.progress.pretrain_iters += 1
    if _log_due(run):
        run.monitor.scalars({"pretrain/nll": loss.item(), "pretrain/grad_norm": norm}, run.progress.total)
        run.monitor.status(f"pretrain nll={loss.item():.3f}")


def d_pretrain_step(run: Run) -> None:
    """One update of D against the frozen pre-trained G."""
    d = d_step(run, instance_noise_std(run.cfg, 0))
    run.progress.d_pretrain_iters += 1
    if _log_due(run):
        d_real = torch.sigmoid(d.real_logits.detach()).mean().item()
        run.monitor.scalars({"loss/d": d.loss.item(), "D/real": d_real, "D/fake": run.progress.d_fake,
                             "grad_norm/d": d.grad_norm}, run.progress.total)
        run.monitor.status(f"D pre-training D(x)={d_real:.2f} D(G(z))={run.progress.d_fake:.2f}")


def adversarial_step(run: Run) -> None:
    """``d_updates`` D updates, then one G update; D sits out while far ahead (``d_freeze_below``)."""
    cfg, p, world = run.cfg, run.progress, run.world
    sigma = instance_noise_std(cfg, p.adversarial_iters)
    # C-RNN-GAN's "freeze the stronger network": while D scores fresh fakes below d_freeze_below it sits
    # out, so G can catch up instead of chasing a D that only grows more certain
    frozen = cfg.d_freeze_below > 0 and distributed.any_process(p.d_fake < cfg.d_freeze_below, world, run.device)
    p.d_frozen_iters += int(frozen)
    for _ in range(cfg.d_updates):
        d = d_step(run, sigma, learn=not frozen)
    loss_g, norm_g = g_step(run, d, sigma)
    p.adversarial_iters += 1
    if cfg.balance_target:  # D's learning rate follows its accuracy on held-out reals and fresh fakes
        balance.observe(run, d.fake_logits)
    d_real = torch.sigmoid(d.real_logits.detach()).mean().item()
    won = cfg.loss != "wgan-gp" and d_real > 0.99 and p.d_fake < 0.01
    p.collapse_run = p.collapse_run + 1 if won else 0
    if distributed.any_process(0 < cfg.collapse_patience <= p.collapse_run, world, run.device):
        _stop(run, f"collapse: D(x) > 0.99 and D(G(z)) < 0.01 for {p.collapse_run} iterations "
                   "(try label_smoothing, instance_noise, r1_gamma or a lower lr_d)")
    if _log_due(run):
        run.monitor.scalars({"D/frozen": float(frozen), "loss/d": d.loss.item(), "loss/g": loss_g, "D/real": d_real,
                             "D/fake": p.d_fake, "grad_norm/d": d.grad_norm, "grad_norm/g": norm_g,
                             "instance_noise": sigma, "D/held_out_accuracy": p.d_accuracy,
                             "D/lr_scale": p.lr_d_scale, "G/adversarial_weight": p.adversarial_weight}, p.total)
        rate = (p.total - run.iterations_at_start) / max(1e-9, time.perf_counter() - run.started)
        run.monitor.status(f"D(x)={d_real:.2f} D(G(z))={p.d_fake:.2f} loss_d={d.loss.item():.3f} "
                           f"loss_g={loss_g:.3f} {rate:.2f} it/s{guard.status(run)}")


def d_step(run: Run, sigma: float, learn: bool = True) -> DStep:
    """One update of D on real pieces (label 1) and fresh fakes (label 0), both with instance noise ``sigma``;
    with ``learn=False`` D only scores them (it is sitting out)."""
    cfg, states = run.cfg, run.G.states
    real_grid, cond = run.batches.next().to(run.device)
    real = grid_features(real_grid, states)
    b, steps = real.shape[:2]
    z = torch.randn(b, run.G.latent_dim, device=run.device)
    with torch.no_grad(), run.amp:
        out = run.g_net(z, steps, cond=cond, tau=cfg.gumbel_tau, temperature=run.piece_temperatures(b))
        fake = onehot_to_features(out.onehot).float()
        if cfg.entropy_anchor > 0 and (not run.progress.adversarial_iters or run.progress.entropy_pre is None):
            run.progress.add_pre_entropy(mean_entropy(out.logits).item())  # G is the pre-trained G (or resumed)
    if sigma > 0:
        real, fake = real + sigma * torch.randn_like(real), fake + sigma * torch.randn_like(fake)
    gp, r1 = learn and cfg.loss == "wgan-gp", learn and cfg.r1_gamma > 0
    parts = [real.requires_grad_(r1), fake]
    if gp:
        x_hat = interpolate(real, fake)
        parts.append(x_hat)
    grad = torch.enable_grad() if learn else torch.no_grad()
    with grad, torch.backends.cudnn.flags(enabled=not (gp or r1)), run.amp:  # no double backward in cuDNN RNNs
        logits = run.d_net(torch.cat(parts), cond.repeat(len(parts))).logits.float()
        r, f = logits[:b], logits[b : 2 * b]
        loss = get_loss(cfg.loss).d(r, f, cfg.label_smoothing)
        if gp:
            loss = loss + cfg.gp_lambda * gradient_penalty(logits[2 * b :], x_hat)
        if r1:
            loss = loss + 0.5 * cfg.r1_gamma * r1_penalty(r, real)
    norm = optimizer_step(run, loss, run.opt_d, run.D, "D's loss") if learn else 0.0
    run.progress.d_fake = torch.sigmoid(f.detach()).mean().item()
    return DStep(real_grid, cond, real, r, f, loss, norm)


def g_step(run: Run, d: DStep, sigma: float) -> tuple[float, float]:
    """One update of G against the current D (plus the matching terms and the likelihood anchor on the real
    batch of D's last update); returns G's loss and gradient norm."""
    cfg, p, reinforce = run.cfg, run.progress, run.cfg.estimator == "reinforce"
    balanced = cfg.adversarial_ratio > 0  # (needs mle_weight > 0: validated) gradients set by hand, no DDP hooks
    z = torch.randn(d.real.shape[0], run.G.latent_dim, device=run.device)
    with run.amp:
        out = (run.G if balanced else run.g_net)(z, d.real_grid.shape[1], cond=d.cond, tau=cfg.gumbel_tau,
                                                 temperature=run.piece_temperatures(z.shape[0]))
        fake = onehot_to_features(out.onehot.detach() if reinforce else out.onehot)  # reinforce: no path via D
        if sigma > 0:
            fake = fake + sigma * torch.randn_like(fake)
        with run.d_net.no_sync() if run.world.grouped else nullcontext():  # D's gradients are discarded
            scored = run.d_net(fake, d.cond)
            adversarial = get_loss(cfg.loss)
            loss = adversarial.g(scored.logits.float())
            if reinforce:
                rewards = sample_rewards(adversarial, scored.logits)
                base = rewards.mean().item() if p.reward_baseline is None else p.reward_baseline
                loss = score_function_loss(out.logits, out.onehot, rewards, base)
                p.reward_baseline = BASELINE_DECAY * base + (1 - BASELINE_DECAY) * rewards.mean().item()
            loss = loss + matching(cfg, run.D, d.real, fake, scored.features, d.cond, p.matching_errors)
        if cfg.mle_weight > 0:  # the likelihood anchor: G keeps explaining real pieces while it learns from D
            anchor = cfg.mle_weight * teacher_forced_nll(run.G, z, d.real_grid, d.cond)
        # G keeps the pre-trained G's spread of choices, so D's pull cannot merely sharpen it (not rescaled)
        spread = cfg.entropy_anchor * (mean_entropy(out.logits) - p.entropy_pre) ** 2 if cfg.entropy_anchor else 0
    total = (loss + anchor if cfg.mle_weight > 0 else loss) + spread
    # balanced: D's pull is rescaled to adversarial_ratio times the anchor's at every update, and with
    # orthogonal_pull it keeps no part that a change of temperature would also make (balance.py)
    held = balance.temperature_moves(run, out.logits) if cfg.orthogonal_pull else ()
    gradients = (lambda: balance.g_gradients(run, loss, anchor, spread, held)) if balanced else None
    norm = optimizer_step(run, total, run.opt_g, run.G, "G's loss", gradients)
    update_ema(run.G_ema, run.G, cfg.ema_decay)
    return (p.adversarial_weight * loss.detach() + anchor.detach() + spread if balanced else total).item(), norm


def end_iteration(run: Run) -> None:
    run.monitor.tick()
    threads = run.governor.check() if run.governor else None
    if threads:
        torch.set_num_threads(threads)
        run.monitor.scalars({"threads": threads}, run.progress.total)
    evaluate_and_checkpoint(run)


def evaluate_and_checkpoint(run: Run, final: bool = False) -> None:
    """Score G on validation and keep the best when due, then checkpoint (with samples) when due. ``final``:
    after the last iteration, whose own call already did what was due then; the run ends on a checkpoint, with a
    score, either way."""
    it = run.progress.total
    eval_due, checkpoint_due = it % run.cfg.eval_every == 0, it % run.cfg.checkpoint_every == 0
    if final:
        if checkpoint_due:
            return
        eval_due, checkpoint_due = not eval_due, True
    if run.world.main and eval_due:
        score = validation_score(run)
        if score < run.progress.best_score and not run.progress.guard_evals:  # once it runs, the guard keeps the best
            run.progress.best_score = score
            save_checkpoint(run, "best", with_state=False)
    if checkpoint_due:
        save_checkpoint(run, f"step-{it:06d}")  # every process takes part: RNG states are gathered
        if run.world.main:
            checkpoint.prune(run.folder / "checkpoints", run.cfg.keep_checkpoints)
            if run.cfg.samples:
                write_samples(run)


def optimizer_step(run: Run, loss: torch.Tensor, opt: torch.optim.Optimizer, net: torch.nn.Module,
                   what: str, gradients=None) -> float:
    """One optimiser step on ``loss`` (all processes stop first if it is not finite), its gradients made by
    ``loss.backward()`` or by ``gradients()``; returns the gradient norm."""
    if distributed.any_process(not torch.isfinite(loss).item(), run.world, run.device):
        _stop(run, f"{what} became {loss.item()}")
    opt.zero_grad(set_to_none=True)
    (gradients or loss.backward)()
    norm = clip_gradients(net.parameters(), run.cfg.grad_clip)
    opt.step()
    return norm


def clip_gradients(params, max_norm: float) -> float:
    """Clip the gradients' total norm to ``max_norm`` (0: no clipping); returns the norm before clipping."""
    params = [p for p in params if p.grad is not None]
    if max_norm > 0:
        return float(torch.nn.utils.clip_grad_norm_(params, max_norm))
    return balance.total_norm(p.grad for p in params)


def update_ema(ema: torch.nn.Module | None, model: torch.nn.Module, decay: float) -> None:
    """Move the averaged weights ``ema`` a step ``1 - decay`` towards ``model``'s."""
    if ema is None:
        return
    with torch.no_grad():
        for pe, p in zip(ema.parameters(), model.parameters()):
            pe.lerp_(p.detach(), 1 - decay)


def _log_due(run: Run) -> bool:
    return run.world.main and run.progress.total % run.cfg.log_every == 0


def _stop(run: Run, reason: str) -> None:
    kept = sorted((run.folder / "checkpoints").glob("step-*.safetensors"))
    where = f"the last good checkpoint is {kept[-1]}" if kept else "no checkpoint had been written yet"
    raise TrainingStopped(f"training stopped at iteration {run.progress.total}: {reason}; {where}")
