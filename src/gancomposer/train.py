"""Adversarial training of the recurrent GAN: one plain loop, a D phase then a G phase.

Each adversarial step (the classic formulation, with ``loss="gan"``):

1. ``d_steps`` times: draw real pieces x and noise z, make G(z) without gradients, show D both at once
   (labels 1 and 0) and take one optimiser step on D's loss  mean -log D(x) + mean -log(1 - D(G(z))).
2. Draw noise z, make G(z) with gradients and take one optimiser step on G's loss  mean -log D(G(z)).

Before that, optionally, G is pre-trained by maximum likelihood with teacher forcing (C-RNN-GAN's recipe),
which gives the adversarial phase a generator that already writes plausible notes, and then D alone is
trained against that frozen G (``d_pretrain_steps``), so that G's first adversarial gradients come from a D
that can already tell it from real music rather than from random weights.

Under ``torchrun`` every process trains on its own shard of the windows; G and D are wrapped in separate
DistributedDataParallel modules with their own optimisers, D's forward in G's phase runs inside
``no_sync()`` (its gradients are discarded), and only rank 0 writes files.
"""

from __future__ import annotations

import copy
import math
import os
import signal
import sys
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm import tqdm

from . import checkpoint
from .config import TrainConfig
from .dataset import load_dataset
from .encoding import Encoding, decode
from .files import write_json_atomic
from .io.midi import write_midi
from .losses import d_loss, feature_matching, g_loss, gradient_penalty, interpolate, r1_penalty
from .metrics import SCALAR_FEATURES, feature_matrix, frechet_distance
from .model import Discriminator, Generator, onehot_to_features, roll_to_onehot
from .piece import MusicError


class TrainingStopped(MusicError):
    """Training cannot go on (non-finite loss, collapse); the message says why and what was kept."""


class TrainingInterrupted(MusicError):
    """Ctrl-C: a checkpoint was saved and the run can be resumed."""


def build_models(cfg: TrainConfig, enc: Encoding) -> tuple[Generator, Discriminator]:
    """G and D for an encoding (grid positions per bar of 4/4, pitch count)."""
    spb = enc.steps_per_bar((4, 4))
    g = Generator.from_config(cfg, enc.n_pitches, spb)
    d = Discriminator(n_pitches=enc.n_pitches, steps_per_bar=spb, rnn=cfg.rnn, hidden=cfg.d_hidden,
                      layers=cfg.d_layers, spectral_norm=cfg.spectral_norm)
    return g, d


class Batches:
    """Random batches of training windows from this process's shard, epoch by epoch, resumable."""

    def __init__(self, windows: torch.Tensor, batch_size: int, seed: int, rank: int = 0, world: int = 1):
        self.shard = windows[rank::world]
        if len(self.shard) == 0:
            raise MusicError(f"no training windows for process {rank} of {world}")
        self.batch_size = batch_size
        self.gen = torch.Generator().manual_seed(seed * 7919 + rank)
        self.order, self.pos = torch.randperm(len(self.shard), generator=self.gen), 0

    def next(self) -> torch.Tensor:
        """``(batch, steps, pitches)`` uint8; a new permutation starts when the epoch runs out."""
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


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device_kind: str) -> Dist:
    """Join the process group that ``torchrun`` describes in the environment (no-op for one process)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_kind == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def pick_device(kind: str, local_rank: int) -> torch.device:
    if kind == "cuda" or (kind == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise MusicError("device=cuda but no CUDA GPU is available")
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def _any(flag: bool, d: Dist, device: torch.device) -> bool:
    """True on every process if ``flag`` is true on any (so all stop together)."""
    if d.world == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def _gather(obj, d: Dist) -> list:
    if d.world == 1:
        return [obj]
    out = [None] * d.world
    dist.all_gather_object(out, obj)
    return out


def _clip(params, max_norm: float) -> float:
    params = [p for p in params if p.grad is not None]
    if max_norm > 0:
        return float(torch.nn.utils.clip_grad_norm_(params, max_norm))
    return float(torch.linalg.vector_norm(torch.stack([p.grad.detach().norm() for p in params]))) if params else 0.0


def roll_image(rolls: np.ndarray) -> np.ndarray:
    """``(n, T, P)`` rolls -> a ``(1, n * P, T)`` image: onsets white, held notes grey, high pitches on top."""
    img = np.where(rolls == 1, 1.0, np.where(rolls == 2, 0.5, 0.0))[:, :, ::-1]
    return np.concatenate(list(img.transpose(0, 2, 1)), axis=0)[None].astype(np.float32)


def compose_rolls(g: Generator, z: torch.Tensor, steps: int, seed: int, temperature: float = 1.0) -> np.ndarray:
    """Rolls ``(n, steps, P)`` uint8 from latents ``z``; the same seed gives the same music."""
    gen = torch.Generator(device=z.device).manual_seed(seed)
    was_training = g.training
    g.eval()
    with torch.no_grad():
        onehot, _, _ = g(z, steps, generator=gen, temperature=temperature)
    g.train(was_training)
    return onehot.argmax(-1).to(torch.uint8).cpu().numpy()


def train(
    data_dir: str | os.PathLike,
    run_dir: str | os.PathLike,
    cfg: TrainConfig,
    *,
    resume: bool = False,
    progress: bool = True,
    log=print,
) -> dict:
    """Train on the dataset folder ``data_dir``, writing checkpoints, samples and TensorBoard logs to ``run_dir``.

    Returns a summary (steps done, best validation score, last checkpoint). Raises :class:`TrainingStopped` on a
    non-finite loss or a collapse and :class:`TrainingInterrupted` on Ctrl-C, each after keeping what is good.
    """
    cfg.validate()
    d = setup_distributed(cfg.device)
    device = pick_device(cfg.device, d.local_rank)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" and cfg.amp else nullcontext()
    run, ckdir = Path(run_dir), Path(run_dir) / "checkpoints"
    ds = load_dataset(data_dir)
    enc, window = ds.encoding, int(ds.manifest["window_steps"])
    if len(ds.train) < cfg.batch_size:
        log(f"note: only {len(ds.train)} training windows; batches repeat windows")
    windows = torch.from_numpy(np.array(ds.train))  # a private, writable copy of the memory map
    tempos = [p["tempo"] for p in ds.manifest["pieces"]]
    data_info = {
        "encoding": enc.to_dict(), "window_steps": window, "tempo": float(np.median(tempos)),
        "corpus": ds.manifest.get("corpus"), "dataset": str(Path(data_dir).resolve()),
        "train_windows": int(len(ds.train)),
    }

    torch.manual_seed(cfg.seed)  # identical initial weights on every process
    G, D = build_models(cfg, enc)
    G.init_from_data(windows)
    G.to(device), D.to(device)
    G_ema = copy.deepcopy(G).requires_grad_(False) if cfg.ema_decay > 0 else None
    opt_pre = torch.optim.Adam(G.parameters(), lr=cfg.pretrain_lr)
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr_g, betas=(cfg.beta1, cfg.beta2))
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=(cfg.beta1, cfg.beta2))
    batches = Batches(windows, cfg.batch_size, cfg.seed, d.rank, d.world)
    torch.manual_seed(cfg.seed * 1000 + d.rank + 1)  # each process its own noise
    counters = {"pretrain_step": 0, "d_pretrain_step": 0, "step": 0, "d_fake": 0.5, "d_frozen_steps": 0,
                "best": math.inf, "collapse": 0, "seconds": 0.0}

    existing = sorted(ckdir.glob("step-*.safetensors"))
    if resume:
        if not existing:
            raise MusicError(f"{run}: nothing to resume (no checkpoints/step-*.safetensors)")
        groups, info = checkpoint.load(existing[-1])
        G.load_state_dict(groups["G"]), D.load_state_dict(groups["D"])
        if G_ema is not None:
            G_ema.load_state_dict(groups["G_ema"])
        state = checkpoint.load_state(existing[-1])
        opt_pre.load_state_dict(state["opt_pre"]), opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
        counters.update(state["counters"])
        batches.load_state_dict(state["batches"][d.rank])
        torch.set_rng_state(state["rng"][d.rank])
        if device.type == "cuda" and state.get("cuda_rng"):
            torch.cuda.set_rng_state(state["cuda_rng"][d.rank])
        if d.main:
            log(f"resuming {existing[-1]} at step {counters['pretrain_step'] + counters['step']}")
    elif existing:
        raise MusicError(f"{run} already holds checkpoints: pass --resume to continue it, or choose another --out")

    if d.main:
        write_json_atomic(run / "config.json", {"config": cfg.to_dict(), "data": data_info, "world_size": d.world})

    Gm, Dm = G, D  # the plain modules, for saving and sampling
    if d.world > 1:
        ids = [device.index] if device.type == "cuda" else None
        G = torch.nn.parallel.DistributedDataParallel(G, device_ids=ids)
        D = torch.nn.parallel.DistributedDataParallel(D, device_ids=ids)

    writer = None
    if d.main:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(run / "tensorboard"))
    fixed_z = torch.randn(cfg.samples or 1, cfg.latent_dim, generator=torch.Generator().manual_seed(cfg.seed + 12345))
    fixed_z = fixed_z.to(device)
    eval_z = torch.randn(128, cfg.latent_dim, generator=torch.Generator().manual_seed(cfg.seed + 999)).to(device)
    valid = ds.valid if len(ds.valid) else ds.train[:256]
    ref_features = feature_matrix(valid[:512], enc)

    def done() -> int:
        return counters["pretrain_step"] + counters["d_pretrain_step"] + counters["step"]

    def sampler() -> Generator:
        return G_ema if G_ema is not None else Gm

    def save(name: str, with_state: bool = True) -> Path:
        counters["seconds"] = seconds_before + time.perf_counter() - t0
        path = ckdir / f"{name}.safetensors"
        state = None
        if with_state:
            state = {
                "opt_pre": opt_pre.state_dict(), "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(),
                "counters": dict(counters), "batches": _gather(batches.state_dict(), d),
                "rng": _gather(torch.get_rng_state(), d),
                "cuda_rng": _gather(torch.cuda.get_rng_state(device), d) if device.type == "cuda" else [],
            }
        if d.main:
            models = {"G": Gm, "D": Dm}
            if G_ema is not None:
                models["G_ema"] = G_ema
            info = {"config": cfg.to_dict(), "data": data_info, "step": done(),
                    "pretrain_step": counters["pretrain_step"], "d_pretrain_step": counters["d_pretrain_step"],
                    "adversarial_step": counters["step"],
                    "training_seconds": round(counters["seconds"], 1),
                    "best_score": counters["best"] if math.isfinite(counters["best"]) else None}
            checkpoint.save(path, models, info, state)
        return path

    def write_samples() -> None:
        rolls = compose_rolls(sampler(), fixed_z, window, seed=cfg.seed)
        folder = run / "samples" / f"step-{done():06d}"
        for i, roll in enumerate(rolls[: cfg.samples]):
            piece = decode(roll, enc, tempo=data_info["tempo"], name=f"sample-{i}")
            if len(piece):
                write_midi(piece, folder / f"sample-{i}.mid")
        writer.add_image("samples/piano_roll", roll_image(rolls[: cfg.samples]), done(), dataformats="CHW")

    def evaluate() -> float:
        rolls = compose_rolls(sampler(), eval_z, window, seed=cfg.seed + 1)
        feats = feature_matrix(rolls, enc)
        score = frechet_distance(feats, ref_features)
        writer.add_scalar("valid/frechet_distance", score, done())
        for i, name in enumerate(SCALAR_FEATURES):
            writer.add_scalar(f"valid/{name}", float(feats[:, i].mean()), done())
        return score

    def periodic() -> None:
        if d.main and done() % cfg.eval_every == 0:
            score = evaluate()
            if score < counters["best"]:
                counters["best"] = score
                save("best", with_state=False)
        if done() % cfg.checkpoint_every == 0:
            save(f"step-{done():06d}")  # every process takes part: RNG states are gathered
            if d.main:
                checkpoint.prune(ckdir, cfg.keep_checkpoints)
                if cfg.samples:
                    write_samples()

    def stop(reason: str) -> None:
        kept = sorted(ckdir.glob("step-*.safetensors"))
        where = f"the last good checkpoint is {kept[-1]}" if kept else "no checkpoint had been written yet"
        raise TrainingStopped(f"training stopped at step {done()}: {reason}; {where}")

    # SIGTERM (a scheduler's stop, `kill`) is treated like Ctrl-C: save, then leave.
    def on_term(signum, frame):
        raise KeyboardInterrupt

    in_main_thread = threading.current_thread() is threading.main_thread()
    previous_term = signal.signal(signal.SIGTERM, on_term) if in_main_thread else None

    bar = tqdm(total=cfg.pretrain_steps + cfg.d_pretrain_steps + cfg.steps, initial=done(),
               disable=not (progress and d.main), desc="train", unit="step", file=sys.stderr, dynamic_ncols=True)
    def update(loss: torch.Tensor, opt: torch.optim.Optimizer, params, what: str) -> float:
        """One optimiser step on ``loss`` (stopping all processes first if it is not finite); the grad norm."""
        if _any(not torch.isfinite(loss).item(), d, device):
            stop(f"{what} became {loss.item()}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = _clip(params, cfg.grad_clip)
        opt.step()
        return norm

    def d_update(sigma: float, learn: bool = True):
        """One update of D on a batch of real pieces (label 1) and G's pieces (label 0); with ``learn=False``
        D only scores the batch (it is frozen).

        Returns the real batch (rolls and features), D's logits on real and fake, D's loss and grad norm.
        """
        real_rolls = batches.next().to(device)
        real = onehot_to_features(roll_to_onehot(real_rolls))
        b = real.shape[0]
        z = torch.randn(b, cfg.latent_dim, device=device)
        with torch.no_grad(), amp:
            fake = onehot_to_features(G(z, window, tau=cfg.gumbel_tau)[0]).float()
        if sigma > 0:
            real, fake = real + sigma * torch.randn_like(real), fake + sigma * torch.randn_like(fake)
        gp, r1 = learn and cfg.loss == "wgan-gp", learn and cfg.r1_gamma > 0
        parts = [real.requires_grad_(r1), fake]
        if gp:
            x_hat = interpolate(real, fake)
            parts.append(x_hat)
        grad = torch.enable_grad() if learn else torch.no_grad()
        with grad, torch.backends.cudnn.flags(enabled=not (gp or r1)), amp:  # no double backward in cuDNN RNNs
            logits = D(torch.cat(parts)).float()
            r, f = logits[:b], logits[b : 2 * b]
            loss_d = d_loss(cfg.loss, r, f, cfg.label_smoothing)
            if gp:
                loss_d = loss_d + cfg.gp_lambda * gradient_penalty(logits[2 * b :], x_hat)
            if r1:
                loss_d = loss_d + 0.5 * cfg.r1_gamma * r1_penalty(r, real)
        gnorm_d = update(loss_d, opt_d, Dm.parameters(), "D's loss") if learn else 0.0
        counters["d_fake"] = torch.sigmoid(f.detach()).mean().item()
        return real_rolls, real, r, f, loss_d, gnorm_d

    t0, steps0, seconds_before = time.perf_counter(), done(), counters["seconds"]
    try:
        # ---- phase 1: maximum-likelihood pre-training of G (teacher forcing) ----
        while counters["pretrain_step"] < cfg.pretrain_steps:
            real = batches.next().to(device)
            z = torch.randn(real.shape[0], cfg.latent_dim, device=device)
            with amp:
                loss = teacher_forced_nll(G, z, real)
            gnorm = update(loss, opt_pre, Gm.parameters(), "the pre-training loss")
            _ema(G_ema, Gm, cfg.ema_decay)
            counters["pretrain_step"] += 1
            if d.main and done() % cfg.log_every == 0:
                writer.add_scalar("pretrain/nll", loss.item(), done())
                writer.add_scalar("pretrain/grad_norm", gnorm, done())
                bar.set_postfix_str(f"pretrain nll={loss.item():.3f}")
            bar.update()
            periodic()

        # ---- phase 2: D learns to tell the pre-trained G from real music (G frozen) ----
        # Without it, G's first adversarial gradients come from an untrained D: noise that only undoes
        # what pre-training taught.
        while counters["d_pretrain_step"] < cfg.d_pretrain_steps:
            real_rolls, real, r, f, loss_d, gnorm_d = d_update(instance_noise_std(cfg, 0))
            counters["d_pretrain_step"] += 1
            if d.main and done() % cfg.log_every == 0:
                d_real, d_fake = torch.sigmoid(r.detach()).mean().item(), counters["d_fake"]
                for key, val in (("loss/d", loss_d.item()), ("D/real", d_real), ("D/fake", d_fake),
                                 ("grad_norm/d", gnorm_d)):
                    writer.add_scalar(key, val, done())
                bar.set_postfix_str(f"D pre-training D(x)={d_real:.2f} D(G(z))={d_fake:.2f}")
            bar.update()
            periodic()

        # ---- phase 3: adversarial training ----
        while counters["step"] < cfg.steps:
            sigma = instance_noise_std(cfg, counters["step"])
            # C-RNN-GAN's "freeze the stronger network": while D scores fresh fakes below d_freeze_below it
            # sits out, so G can catch up instead of chasing a D that only grows more certain
            frozen = cfg.d_freeze_below > 0 and _any(counters["d_fake"] < cfg.d_freeze_below, d, device)
            counters["d_frozen_steps"] += int(frozen)
            for _ in range(cfg.d_steps):  # D phase: d_steps updates on real (label 1) and generated (label 0)
                real_rolls, real, r, f, loss_d, gnorm_d = d_update(sigma, learn=not frozen)
            b = real.shape[0]

            # G phase: one update against the current D (D's gradients here are discarded)
            z = torch.randn(b, cfg.latent_dim, device=device)
            with amp:
                fake = onehot_to_features(G(z, window, tau=cfg.gumbel_tau)[0])
                if sigma > 0:
                    fake = fake + sigma * torch.randn_like(fake)
                with D.no_sync() if d.world > 1 else nullcontext():
                    f_logits, f_feats = D(fake, with_features=True)
                    loss_g = g_loss(cfg.loss, f_logits.float())
                    if cfg.feature_matching > 0:
                        with torch.no_grad():
                            _, r_feats = Dm(real.detach(), with_features=True)
                        loss_g = loss_g + cfg.feature_matching * feature_matching(r_feats.float(), f_feats.float())
                if cfg.mle_weight > 0:  # the likelihood anchor: G keeps explaining real pieces while it learns from D
                    loss_g = loss_g + cfg.mle_weight * teacher_forced_nll(Gm, z, real_rolls)
            gnorm_g = update(loss_g, opt_g, Gm.parameters(), "G's loss")
            _ema(G_ema, Gm, cfg.ema_decay)
            counters["step"] += 1

            d_real, d_fake = torch.sigmoid(r.detach()).mean().item(), counters["d_fake"]
            won = cfg.loss != "wgan-gp" and d_real > 0.99 and d_fake < 0.01
            counters["collapse"] = counters["collapse"] + 1 if won else 0
            if _any(cfg.collapse_patience > 0 and counters["collapse"] >= cfg.collapse_patience, d, device):
                stop(f"collapse: D(x) > 0.99 and D(G(z)) < 0.01 for {counters['collapse']} steps "
                     "(try label_smoothing, instance_noise, r1_gamma or a lower lr_d)")
            if d.main and done() % cfg.log_every == 0:
                writer.add_scalar("D/frozen", float(frozen), done())
                for key, val in (("loss/d", loss_d.item()), ("loss/g", loss_g.item()), ("D/real", d_real),
                                 ("D/fake", d_fake), ("grad_norm/d", gnorm_d), ("grad_norm/g", gnorm_g),
                                 ("instance_noise", sigma)):
                    writer.add_scalar(key, val, done())
                rate = (done() - steps0) / max(1e-9, time.perf_counter() - t0)
                bar.set_postfix_str(f"D(x)={d_real:.2f} D(G(z))={d_fake:.2f} loss_d={loss_d.item():.3f} "
                                    f"loss_g={loss_g.item():.3f} {rate:.2f} steps/s")
            bar.update()
            periodic()
    except KeyboardInterrupt:
        bar.close()
        path = save(f"step-{done():06d}")
        raise TrainingInterrupted(f"interrupted at step {done()}; saved {path}; continue with --resume") from None
    finally:
        bar.close()
        if writer is not None:
            writer.close()
        if previous_term is not None:
            signal.signal(signal.SIGTERM, previous_term)

    if done() % cfg.checkpoint_every:  # the last step was not a checkpoint step: make it one
        if d.main and done() % cfg.eval_every:
            score = evaluate()
            if score < counters["best"]:
                counters["best"] = score
                save("best", with_state=False)
        save(f"step-{done():06d}")
        if d.main:
            checkpoint.prune(ckdir, cfg.keep_checkpoints)
            if cfg.samples:
                write_samples()
    last = ckdir / f"step-{done():06d}.safetensors"
    return {"steps": done(), "best_score": counters["best"], "checkpoint": str(last),
            "seconds": time.perf_counter() - t0, "generator": Gm, "discriminator": Dm, "generator_ema": G_ema}


def teacher_forced_nll(g, z: torch.Tensor, rolls: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood per cell of real ``rolls`` under G with teacher forcing."""
    logits = g(z, teacher=rolls)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), rolls.reshape(-1).long())


def instance_noise_std(cfg: TrainConfig, step: int) -> float:
    """Std of the Gaussian noise added to D's inputs: ``instance_noise`` falling linearly to 0."""
    return cfg.instance_noise * max(0.0, 1 - step / max(1, cfg.instance_noise_steps))


def _ema(ema: Generator | None, model: Generator, decay: float) -> None:
    if ema is None:
        return
    with torch.no_grad():
        for pe, p in zip(ema.parameters(), model.parameters()):
            pe.lerp_(p.detach(), 1 - decay)
