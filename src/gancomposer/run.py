"""A training run's bookkeeping: its state, how it starts or resumes, what it writes and how it is saved.

:mod:`.train` holds the method; this module holds what the method works on (:class:`Run`) and what survives
a stop: checkpoints of the networks, with the optimiser, batch and random states beside them for an exact
resume.
"""

from __future__ import annotations

import functools
import json
import math
import os
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from . import checkpoint, distributed, render
from .batches import Batches
from .conditions import Conditions
from .config import FIXED_ON_RESUME, Config, differences, from_stored
from .corpora import instrument_of
from .dataset import Dataset, load_dataset
from .encoding import Encoding
from .errors import UserError
from .files import check_writable_folder, remove_stale_temporaries, write_json_atomic
from .metrics import SCALAR_FEATURES, SCALARS, feature_matrix, frechet_distance
from .model import Condition, Generator, build_models, copy_network
from .monitor import Monitor
from .sampling import sample_grids

REFERENCE_WINDOWS = 512  # validation windows the validation score compares G's pieces with
EVAL_PIECES = 128  # pieces G composes for each validation score


def stream_seeds(seed: int, rank: int = 0) -> dict[str, int]:
    """Seeds of a run's random streams, one per purpose, derived from the run's seed (fixed formulas: changing
    one changes every run made since)."""
    return {"init": seed, "batches": seed * 7919 + rank, "noise": seed * 1000 + rank + 1, "samples": seed + 12345,
            "sample_sampling": seed, "eval_latents": seed + 999, "eval_sampling": seed + 1,
            "guard_latents": seed + 4242, "guard_sampling": seed + 4243, "held_out": seed * 7919 + rank + 77,
            "tuning_latents": seed + 5151, "tuning_sampling": seed + 5152, "confirm_latents": seed + 6161,
            "confirm_sampling": seed + 6162, "final_latents": seed + 7171, "final_sampling": seed + 7172}


@dataclass
class Progress:
    """Counters of a run, saved with every checkpoint; a resumed run goes on from them."""

    pretrain_iters: int = 0
    d_pretrain_iters: int = 0
    adversarial_iters: int = 0
    d_frozen_iters: int = 0  # adversarial iterations in which D sat out
    collapse_run: int = 0  # consecutive adversarial iterations with D(x) > 0.99 and D(G(z)) < 0.01
    best_score: float = math.inf  # lowest validation Fréchet distance so far
    d_fake: float = 0.5  # D's mean score of the latest fresh fakes
    seconds: float = 0.0  # training time before this process started
    # the quality guard of the adversarial phase (see guard.py)
    guard_evals: int = 0
    guard_last_iter: int = -1  # adversarial iterations done at the last evaluation
    guard_start: float | None = None  # quality of the pre-trained G
    guard_best: float = -math.inf
    guard_best_iter: int = 0  # adversarial iterations done when the best G was made
    guard_worse: int = 0  # evaluations in a row below the best by more than guard_tolerance
    guard_rollbacks: int = 0
    lr_g_scale: float = 1.0  # G's adversarial learning rate is lr_g times this
    adversarial_stopped: bool = False  # the guard ended the phase early
    d_accuracy: float = 0.5  # D's smoothed accuracy on held-out reals and fresh fakes (balance.py)
    lr_d_scale: float = 1.0  # D's learning rate is lr_d times this
    reward_baseline: float | None = None  # REINFORCE's moving average of G's rewards
    adversarial_weight: float = 0.0  # the weight of G's adversarial terms in its last update (adversarial_ratio)
    temperature: float | None = None  # the sampling temperature stored with the default model at the end
    pretrained_sweep: dict | None = None  # the pre-trained G's rows on the tuning stream, by temperature
    fresh: dict | None = None  # the final choice between the guard's best and the pre-trained G (guard.py)
    adversarial_temperature: float | None = None  # G's temperature in D's pre-training and the adversarial phase
    entropy_pre: float | None = None  # the pre-trained G's mean entropy along its own pieces (entropy_anchor)
    entropy_pre_n: int = 0  # batches in that mean
    matching_errors: dict = field(default_factory=dict)  # moving averages of the matching terms' differences

    @property
    def total(self) -> int:
        return self.pretrain_iters + self.d_pretrain_iters + self.adversarial_iters

    def add_pre_entropy(self, entropy: float) -> None:
        """Take one more batch's mean entropy of the (still pre-trained) G's choices into ``entropy_pre``."""
        n = self.entropy_pre_n
        self.entropy_pre = entropy if n == 0 else (self.entropy_pre * n + entropy) / (n + 1)
        self.entropy_pre_n = n + 1

    @classmethod
    def from_dict(cls, d: dict) -> Progress:
        """Also reads the counters of runs started by gancomposer 0.1.0."""
        old = {"pretrain_step": "pretrain_iters", "d_pretrain_step": "d_pretrain_iters", "step": "adversarial_iters",
               "d_frozen_steps": "d_frozen_iters", "collapse": "collapse_run", "best": "best_score"}
        known = {f.name for f in fields(cls)}
        return cls(**{old.get(k, k): v for k, v in d.items() if old.get(k, k) in known})


@dataclass
class Run:
    """Everything a training run holds: settings, data, networks, optimisers, progress and outputs."""

    config: Config
    folder: Path
    encoding: Encoding
    data_info: dict  # what sampling needs to know of the data: encoding, meter, tempo, window, instrument
    world: distributed.World
    device: torch.device
    G: Generator  # the plain networks, for saving and sampling ...
    D: torch.nn.Module
    G_ema: Generator | None
    opt_pre: torch.optim.Optimizer
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    batches: Batches
    ref_features: np.ndarray  # features of validation windows, for the validation score
    guard_reference: tuple | None = None  # the training pieces as the quality guard sees them
    guard_weights: dict | None = None  # the best weights so far, where a rollback returns to
    held_out: Batches | None = None  # batches of validation windows, for the adaptive balance
    governor: distributed.ThreadGovernor | None = None  # CPU threads that step down when the cores get busy
    progress: Progress = field(default_factory=Progress)
    g_net: torch.nn.Module | None = None  # ... and what training calls (DDP-wrapped under torchrun)
    d_net: torch.nn.Module | None = None
    monitor: Monitor | None = None
    started: float = field(default_factory=time.perf_counter)  # when this process started training
    iterations_at_start: int = 0
    seconds_at_start: float = 0.0  # training time of the earlier processes of a resumed run

    def adversarial_temperature(self) -> float:
        """G's sampling temperature in D's pre-training and the adversarial phase: the setting, or (0) the one at
        which the guard scores the pre-trained G best, found (by scoring G at each temperature) the first time it
        is asked for and kept in the progress."""
        p = self.progress
        if self.cfg.adversarial_temperature:  # set: used as it is (also when changed on resume)
            p.adversarial_temperature = self.cfg.adversarial_temperature
        elif p.adversarial_temperature is None:
            from . import guard

            t, sweep = guard.agreed(self, lambda: guard.best_temperature(self))
            p.adversarial_temperature, p.pretrained_sweep = t, {str(k): row for k, row in sweep.items()}
        return p.adversarial_temperature

    def piece_temperatures(self, rows: int) -> float | torch.Tensor:
        """The temperature of each of ``rows`` pieces of G in D's pre-training and the adversarial phase."""
        t, spread = self.adversarial_temperature(), self.cfg.temperature_spread
        if not spread:
            return t
        u = torch.rand(rows, device=self.device) * 2 - 1
        return t * torch.exp(spread * u)

    @property
    def cfg(self):
        return self.config.train

    @functools.cached_property
    def conditions(self) -> Conditions:
        return Conditions.from_dict(self.data_info["conditions"])

    @property
    def window(self) -> int:
        """Steps of a window in the most common meter (the one scores are taken in)."""
        return self.conditions.window_steps[0]

    @property
    def meter(self) -> tuple[int, int]:
        return tuple(self.data_info["meter"])

    @property
    def steps_per_bar(self) -> int:
        return self.encoding.steps_per_bar(self.meter)

    @property
    def sampler(self) -> Generator:
        """The G that composes: the moving average of G's weights when there is one."""
        return self.G_ema if self.G_ema is not None else self.G

    @property
    def amp(self):
        on = self.device.type == "cuda" and self.cfg.amp
        return torch.autocast("cuda", dtype=torch.bfloat16) if on else nullcontext()

    def networks(self) -> dict[str, torch.nn.Module]:
        """The networks a checkpoint or a rollback holds: G, D and (when kept) G's moving average."""
        return {"G": self.G, "D": self.D, **({"G_ema": self.G_ema} if self.G_ema is not None else {})}

    def seconds(self) -> float:
        """Training time of the run so far, earlier processes included."""
        return self.seconds_at_start + time.perf_counter() - self.started


def data_info(ds: Dataset, data_dir: str | os.PathLike) -> dict:
    """What a checkpoint records of its dataset: what sampling needs, and the dataset's name and content hash
    (never a path of the machine it was trained on)."""
    corpus = ds.manifest.get("corpus")
    return {"encoding": ds.encoding.to_dict(), "window_steps": int(ds.manifest["window_steps"]),
            "meter": list(ds.meter), "conditions": ds.conditions.to_dict(), "tempo": ds.tempo, "corpus": corpus,
            "program": instrument_of(corpus),
            "dataset": Path(data_dir).resolve().name, "dataset_sha256": ds.content_hash,
            "train_windows": int(len(ds.train))}


def start(data_dir: str | os.PathLike, run_dir: str | os.PathLike, config: Config, *, resume: bool = False,
          progress: bool = True, log=print) -> Run:
    """A run ready for its first (or next) iteration: data loaded, networks built (or restored), the run's
    settings written to ``run_dir/config.json``."""
    config.validate()
    check_writable_folder(run_dir)
    cfg, world = config.train, distributed.join(config.train.device)
    device = distributed.pick_device(cfg.device, world.local_rank)
    governor = None
    if device.type == "cpu":
        governor = distributed.ThreadGovernor.for_setting(cfg.threads)
        torch.set_num_threads(governor.threads)
    ds = load_dataset(data_dir)
    config = Config(config.model.for_data(ds.train, ds.encoding),  # "auto" settings become numbers here
                    config.train.for_data(len(ds.train)))
    cfg = config.train
    info = data_info(ds, data_dir)
    existing = sorted((Path(run_dir) / "checkpoints").glob("step-*.safetensors"))
    changes: list[dict] = []
    if resume:
        resume_from, changed = resume_point(Path(run_dir), existing, config, info,
                                            log if world.main else lambda line: None)
        changes = _recorded_changes(Path(run_dir))
    elif existing:
        raise UserError(f"{run_dir} already holds checkpoints: pass --resume to continue it, or choose another "
                        "--out")
    for folder in (Path(run_dir), Path(run_dir) / "checkpoints"):
        remove_stale_temporaries(folder)
    if len(ds.train) < cfg.batch_size:
        log(f"note: only {len(ds.train)} training windows; batches repeat windows")
    windows = torch.from_numpy(np.array(ds.train))  # a private, writable copy of the memory map
    seeds = stream_seeds(cfg.seed, world.rank)
    conditions = ds.conditions

    torch.manual_seed(seeds["init"])  # identical initial weights on every process
    spb = ds.encoding.steps_per_bar(ds.meter)
    G, D = build_models(config.model, ds.encoding, conditions)
    G.init_from_data(windows)
    G.to(device), D.to(device)
    G_ema = copy_network(G).requires_grad_(False) if cfg.ema_decay > 0 else None
    split = "valid" if len(ds.windows_in("valid", 0)) >= 2 else "train"  # scores are taken in the main meter
    run = Run(
        config, Path(run_dir), ds.encoding, info, world, device, G, D, G_ema,
        g_optimizer(cfg, G, cfg.pretrain_lr), *adversarial_optimizers(cfg, G, D, Progress()),
        Batches(windows, torch.from_numpy(np.array(ds.train_index[:, 3:5])), conditions.window_steps,
                cfg.batch_size, seeds["batches"], world.rank, world.size, conditions.keyed),
        feature_matrix(ds.windows_in(split, 0)[:REFERENCE_WINDOWS], ds.encoding, spb),
    )
    run.governor = governor
    if cfg.balance_target:
        held, labels = (ds.valid, ds.valid_index) if len(ds.valid) else (ds.train, ds.train_index)
        run.held_out = Batches(torch.from_numpy(np.array(held)), torch.from_numpy(np.array(labels[:, 3:5])),
                               conditions.window_steps, cfg.batch_size, seeds["held_out"], world.rank,
                               min(world.size, len(held)), conditions.keyed)
    if cfg.guard_every:
        from . import guard

        pieces = ds.piece_rolls("train", meter=ds.meter)
        if len(pieces) >= 2:
            run.guard_reference = guard.reference(run, pieces)
        elif world.main:  # its two-sample test holds pieces out, by piece
            log("note: the quality guard needs at least 2 training pieces; it is off for this run")
    torch.manual_seed(seeds["noise"])  # each process its own noise
    if resume:
        restore(run, resume_from)
        changes += [{"iteration": run.progress.total, "setting": k, "from": old, "to": new}
                    for k, (old, new) in changed.items()]
        if world.main:
            log(f"resuming {resume_from} at iteration {run.progress.total}")
    if world.main:  # the settings in force now, and when each changed: a true record of the run
        write_json_atomic(run.folder / "config.json", {**config.to_dict(), "data": run.data_info,
                                                       "world_size": world.size, "changes": changes})
    run.g_net, run.d_net = distributed.wrap(G, world, device), distributed.wrap(D, world, device)
    run.monitor = Monitor(run.folder, total=cfg.total_iters, done=run.progress.total, main=world.main, bar=progress)
    run.started, run.iterations_at_start, run.seconds_at_start = time.perf_counter(), run.progress.total, \
        run.progress.seconds
    return run


def _recorded_changes(run_dir: Path) -> list[dict]:
    """The settings changes ``config.json`` records from earlier resumes."""
    try:
        return list(json.loads((run_dir / "config.json").read_text()).get("changes", []))
    except (OSError, ValueError, AttributeError):
        return []


def adversarial_optimizers(cfg, G: torch.nn.Module, D: torch.nn.Module,
                           progress: Progress) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
    """Fresh Adam optimisers for G and D at their current learning rates (``lr_g`` and ``lr_d`` scaled by the
    guard's rollbacks and the balance)."""
    betas = (cfg.beta1, cfg.beta2)
    return (g_optimizer(cfg, G, cfg.lr_g * progress.lr_g_scale, betas, adversarial=True),
            torch.optim.Adam(D.parameters(), lr=cfg.lr_d * progress.lr_d_scale, betas=betas))


def g_optimizer(cfg, G: torch.nn.Module, lr: float, betas: tuple[float, float] = (0.9, 0.999), *,
                adversarial: bool = False) -> torch.optim.Adam:
    """Adam for G at ``lr``, with its voice-pair table (when it has one, and it learns at another rate than G's in
    either phase) in a second parameter group at :func:`table_lr_scale` times that rate.

    Why the table learns faster by likelihood: each of its entries has a gradient only at the steps whose context
    it scores, and Adam moves a weight that has a gradient at a share ``s`` of the steps by about
    ``lr * sqrt(s)`` per step; at G's own rate, 3,000 steps took the chorales' parallel fifths to about -3 while the
    data asked for lower, and their rate stayed ten times Bach's (docs/measurements.md, "The voice-pair table's
    learning rate").
    """
    # at 1 in both phases the table stays with the rest: the optimiser of a run made before the settings resumes
    separate = cfg.pairs_lr_scale != 1.0 or table_lr_scale(cfg, adversarial=True) != 1.0
    table = [G.pairs.table] if getattr(G, "pairs", None) is not None and separate else []
    rest = [p for p in G.parameters() if all(p is not t for t in table)]
    opt = torch.optim.Adam([{"params": rest}] + ([{"params": table}] if table else []), lr=lr, betas=betas)
    set_g_lr(cfg, opt, lr, adversarial)
    return opt


def table_lr_scale(cfg, adversarial: bool) -> float:
    """The voice-pair table's learning rate in multiples of G's: ``pairs_lr_scale`` in likelihood pre-training,
    ``adversarial_pairs_lr_scale`` in the adversarial phase. Why apart: the multiple that lets rare contexts
    learn from the likelihood also lets D's noisy gradient move them as fast (on the madrigals by up to 0.94 in 75
    adversarial updates at 30 times, 0.03 at G's rate, and the phase improved all three madrigal runs of the gain
    benchmark at G's rate, two at 30 times: docs/measurements.md, "The voice-pair table in the adversarial
    phase")."""
    if adversarial and cfg.adversarial_pairs_lr_scale != -1:
        return cfg.adversarial_pairs_lr_scale
    return cfg.pairs_lr_scale


def set_g_lr(cfg, opt: torch.optim.Optimizer, lr: float, adversarial: bool) -> None:
    """Set G's optimiser to ``lr``, and its voice-pair group (the second, see :func:`g_optimizer`) to
    :func:`table_lr_scale` times it."""
    for i, group in enumerate(opt.param_groups):
        group["lr"] = lr * (table_lr_scale(cfg, adversarial) if i else 1.0)


def resume_point(folder: Path, existing: list[Path], config: Config, data_now: dict,
                 log) -> tuple[Path, dict[str, tuple]]:
    """The newest checkpoint of the run in ``folder`` that can be resumed with ``config`` on this data, and the
    settings that change on resume (``{key: (old, new)}``).

    A damaged checkpoint is passed over, saying so. A change to a setting in
    :data:`~.config.FIXED_ON_RESUME`, or a dataset encoded differently from the run's, is refused in one line.
    """
    if not existing:
        raise UserError(f"{folder}: nothing to resume (no checkpoints/step-*.safetensors)")
    for path in reversed(existing):
        try:
            _, info = checkpoint.load(path)
            checkpoint.load_state(path)
            break
        except UserError as e:
            log(f"note: {e}; trying the checkpoint before it")
    else:
        raise UserError(f"{folder}: no checkpoint can be resumed (each one is damaged)")
    changed = differences(from_stored(info, str(path)), config)
    fixed = {k: v for k, v in changed.items() if k in FIXED_ON_RESUME}
    if fixed:
        listed = ", ".join(f"{k}={new} (the run's: {old})" for k, (old, new) in fixed.items())
        raise UserError(f"--resume continues a run with its own settings, and these differ: {listed}; drop them, "
                        "or start a new run in another --out")
    then = info["data"]
    for key in ("encoding", "window_steps", "meter", "conditions"):
        if then.get(key) is not None and then.get(key) != data_now[key]:
            raise UserError(f"this dataset's {key} ({data_now[key]}) differs from the run's ({then[key]}); "
                            "resume on the dataset the run was trained on")
    for k, (old, new) in changed.items():
        log(f"note: resuming with {k}={new} (was {old})")
    return path, changed


def restore(run: Run, path: Path) -> None:
    """Load weights, optimisers, progress, this process's batch order and random state from a checkpoint."""
    groups, _ = checkpoint.load(path)
    run.G.load_state_dict(groups["G"]), run.D.load_state_dict(groups["D"])
    if run.G_ema is not None:
        run.G_ema.load_state_dict(groups["G_ema"])
    state = checkpoint.load_state(path)
    if len(state["opt_g"]["param_groups"]) != len(run.opt_g.param_groups):
        raise UserError(f"{path}: written by an earlier gancomposer, whose optimiser held G's voice-pair table "
                        "with its other weights; resume it with that version, or start a new run")
    run.opt_pre.load_state_dict(state["opt_pre"]), run.opt_g.load_state_dict(state["opt_g"])
    run.opt_d.load_state_dict(state["opt_d"])
    run.progress = Progress.from_dict(state.get("progress", state.get("counters", {})))
    cfg, p = run.cfg, run.progress  # the learning rates in force: the same unless changed on resume
    set_g_lr(cfg, run.opt_pre, cfg.pretrain_lr, False), set_g_lr(cfg, run.opt_g, cfg.lr_g * p.lr_g_scale, True)
    for group in run.opt_d.param_groups:
        group["lr"] = cfg.lr_d * p.lr_d_scale
    run.guard_weights = state.get("guard_weights")
    run.batches.load_state_dict(state["batches"][run.world.rank])
    if run.held_out is not None and state.get("held_out"):
        run.held_out.load_state_dict(state["held_out"][run.world.rank])
    torch.set_rng_state(state["rng"][run.world.rank])
    if run.device.type == "cuda" and state.get("cuda_rng"):
        torch.cuda.set_rng_state(state["cuda_rng"][run.world.rank])


def save_checkpoint(run: Run, name: str, with_state: bool = True, extra: dict | None = None) -> Path:
    """Write ``checkpoints/NAME.safetensors`` (and, ``with_state``, the resume state beside it). Every process
    must call it for a resumable checkpoint: their batch and random states are gathered."""
    path = run.folder / "checkpoints" / f"{name}.safetensors"
    run.progress.seconds = run.seconds()
    state = None
    if with_state:
        world, device = run.world, run.device
        state = {
            "opt_pre": run.opt_pre.state_dict(), "opt_g": run.opt_g.state_dict(), "opt_d": run.opt_d.state_dict(),
            "progress": asdict(run.progress), "batches": distributed.gather(run.batches.state_dict(), world),
            "rng": distributed.gather(torch.get_rng_state(), world),
            "cuda_rng": distributed.gather(torch.cuda.get_rng_state(device), world) if device.type == "cuda" else [],
            "guard_weights": run.guard_weights,
            "held_out": distributed.gather(run.held_out.state_dict(), world) if run.held_out else None,
        }
    if run.world.main:
        p = run.progress
        info = {**run.config.to_dict(), "data": run.data_info, "iteration": p.total,
                "progress": {"pretrain_iters": p.pretrain_iters, "d_pretrain_iters": p.d_pretrain_iters,
                             "adversarial_iters": p.adversarial_iters,
                             "adversarial_temperature": p.adversarial_temperature},
                "training_seconds": round(p.seconds, 1),
                "best_score": p.best_score if math.isfinite(p.best_score) else None, **(extra or {})}
        checkpoint.save(path, run.networks(), info, state)
    return path


def scoring_condition(run: Run, n: int, seed: int) -> Condition:
    """Conditions of ``n`` pieces to score G with: the corpus's most common meter, keys drawn from the style's
    keys in that meter."""
    return Condition.of(*run.conditions.draw(n, seed, meter=0), run.conditions.keyed)


def validation_score(run: Run) -> float:
    """Fréchet distance between the features of G's pieces and of the validation windows (lower is better),
    both in the corpus's most common meter."""
    seeds = stream_seeds(run.cfg.seed)
    z = torch.randn(EVAL_PIECES, run.G.latent_dim, generator=torch.Generator().manual_seed(seeds["eval_latents"]))
    grids = sample_grids(run.sampler, z.to(run.device), run.window, seed=seeds["eval_sampling"],
                         cond=scoring_condition(run, EVAL_PIECES, seeds["eval_latents"]))
    feats = feature_matrix(grids, run.encoding, run.steps_per_bar)
    score = frechet_distance(feats, run.ref_features)
    means = feats[:, SCALARS].mean(0)
    run.monitor.scalars({"valid/frechet_distance": score,
                         **{f"valid/{name}": float(m) for name, m in zip(SCALAR_FEATURES, means)}}, run.progress.total)
    return score


def write_samples(run: Run) -> None:
    """MIDI files and a TensorBoard picture of pieces from fixed noise, comparable from checkpoint to checkpoint;
    their meters and keys are drawn from the style's mix."""
    seeds, n, conditions = stream_seeds(run.cfg.seed), run.cfg.samples, run.conditions
    z = torch.randn(n, run.G.latent_dim, generator=torch.Generator().manual_seed(seeds["samples"]))
    meters, keys = conditions.draw(n, seeds["samples"])
    grids = sample_grids(run.sampler, z.to(run.device), max(conditions.window_steps), seed=seeds["sample_sampling"],
                         cond=Condition.of(meters, keys, conditions.keyed))
    folder = run.folder / "samples" / f"step-{run.progress.total:06d}"
    for i, (grid, m) in enumerate(zip(grids, meters)):
        render.write_grids(grid[None, : conditions.window_steps[m]], run.encoding, [folder / f"sample-{i}.mid"],
                           tempo=run.data_info["tempo"], meter=conditions.meters[m], force=True, skip_silent=True)
    run.monitor.image("samples/piano_roll", render.grids_image(np.stack([run.encoding.to_roll(g) for g in grids])),
                      run.progress.total)


def summary(run: Run) -> dict:
    """What ``train`` returns: plain data on the run's progress and its default model."""
    p = run.progress
    return {"iterations": p.total, "best_score": p.best_score, "main": run.world.main,
            "checkpoint": str(run.folder / "checkpoints" / f"step-{p.total:06d}.safetensors"),
            "seconds": time.perf_counter() - run.started,
            "guard": None if not p.guard_evals else {
                "best_adversarial_iters": p.guard_best_iter, "best_quality": p.guard_best,
                "pretrained_quality": p.guard_start, "gain": p.guard_best - p.guard_start,
                "fresh": p.fresh,
                "rollbacks": p.guard_rollbacks, "stopped_early": p.adversarial_stopped,
                "temperature": p.temperature, "adversarial_temperature": p.adversarial_temperature}}
