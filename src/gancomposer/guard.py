"""The quality guard of the adversarial phase: the adversarial phase may only make the music better.

At the start of the phase (G as pre-training left it) and every ``guard_every`` adversarial iterations, G
composes a fixed set of pieces (fixed latents, fixed sampling seed; 8 bars each, as long as users compose by
default, so the guard sees the bars past a training window's length that ``evaluate`` sees too) that is scored
as ``gancomposer evaluate`` scores a folder, against the training pieces: mean overlap area, two-sample accuracy
and Fréchet distance. G composes at the temperature it is drawn at in the phase (``adversarial_temperature``).
The guard's quality is ``overlap area - two-sample accuracy`` (higher is better; both lie in [0, 1]). The
training pieces, not the few validation ones: against the ~100 windows of a 5-piece validation split the
two-sample accuracy of 128 pieces jumped between 0.77 and 0.84 from one evaluation to the next (25 iterations
apart, at lr_g 5e-5), more than the adversarial phase is expected to change it; the test can use at most as
many generated pieces as there are reference windows.

Each evaluation scores G on two fixed sets (other latents, other sampling seeds) and takes the mean of the
two (``GUARD_PIECES`` pieces each): one set's score of one G spreads by about 0.02, as much as the phase moves
it on some styles. A G that scores above the best is kept; one that scores below the best by more than
``guard_tolerance`` (about twice the spread of one evaluation) counts as worse, and after ``guard_patience``
such evaluations in a row G, its average and D go back to the best weights, the optimisers start afresh and
G's learning rate is multiplied by ``guard_lr_decay``; after ``guard_rollbacks`` rollbacks the phase ends
early. (A guard that required a new best to beat the old one on each set apart, and counted any score below
the best as worse, was held by one lucky draw of the pre-trained G: on the chorales it rolled back every 75
iterations and never let the phase run.) The best G so far is kept (as ``best.safetensors``, the run's
default model, and in memory).

The best of some 16 noisy scores is biased upward, so the choice is checked once more on pieces neither set
holds: when training ends, the guard's best and the pre-trained G are each scored at every temperature of
:data:`TEMPERATURES` on the tuning stream's pieces to find each one's temperature, then both are scored, each at
its temperature, on :data:`FINAL_SETS` more sets (the same latents and sampling seeds for both), and the
default model is the one whose mean there is higher. So a run never hands the user a G worse than where
pre-training left it, by the same measure the user sees, and the gain it reports was measured on pieces that
chose neither the G nor its temperature.
"""

from __future__ import annotations

import copy
import math
import shutil
import statistics
from collections.abc import Callable
from typing import TypeVar

import torch

from . import checkpoint, distributed
from .files import atomic_path
from .evaluate import WINDOW_BARS, FeatureSet, Reference, compare, feature_set
from .model import copy_network
from .run import Run, adversarial_optimizers, save_checkpoint, scoring_condition, stream_seeds
from .sampling import sample_grids

T = TypeVar("T")

# pieces G composes for each guard evaluation: the same G's quality on three sets of 128 pieces spread by
# 0.033-0.040 on Ryan's Mammoth and the madrigals, as much as the adversarial phase moves it (so the guard kept
# lucky draws and rolled back on unlucky ones); on sets of 512 by 0.019-0.021, for 1-2 s more per evaluation
GUARD_PIECES = 512
GUARD_BARS = 8  # bars per piece: as long as composed by default (two of evaluate's 4-bar windows)
REFERENCE_WINDOWS = 2048  # at most about this many reference windows (their features are computed once)
# sets of GUARD_PIECES on which the guard's best and the pre-trained G are compared last: with one set (the
# tuning stream's, the one each temperature was chosen on) the comparison carried a noise of about 0.03 in
# quality, and on the chorales it handed back the pre-trained G where 24 paired sets of `temperature_sweep.py`
# put the adversarial G above it at every temperature (docs/measurements.md, session 29)
FINAL_SETS = 6
SET_STRIDE = 7919  # the seeds of a stream's sets k = 0, 1, ...: its own seeds plus k times this


def reference(run: Run, pieces: list) -> tuple[Reference, FeatureSet]:
    """The (training) pieces as the guard compares with them: every k-th piece of a large corpus, so that
    about ``REFERENCE_WINDOWS`` windows remain."""
    window = WINDOW_BARS * run.steps_per_bar  # in the corpus's most common meter, the pieces' own
    windows = sum(max(1, len(p) // window) for p in pieces)
    step = max(1, min(math.ceil(windows / REFERENCE_WINDOWS), len(pieces) // 2))  # two pieces at least
    ref = Reference("training pieces", run.encoding.roll, list(pieces[::step]), [], run.meter)
    return ref, feature_set(ref.train, ref)


def due(run: Run, final: bool = False) -> bool:
    """A guard evaluation is due at the start of the phase, every ``guard_every`` adversarial iterations and
    (``final``) for the phase's last G, once for each G."""
    p, every = run.progress, run.cfg.guard_every
    if every == 0 or run.guard_reference is None or p.adversarial_stopped or p.guard_last_iter == p.adversarial_iters:
        return False
    return final or p.guard_evals == 0 or p.adversarial_iters % every == 0


def score(run: Run, sampler=None, temperature: float = 1.0, stream: str = "guard", index: int = 0) -> dict:
    """The evaluate row of ``GUARD_PIECES`` pieces of ``GUARD_BARS`` bars against the training pieces, with the
    guard's ``quality``. ``stream`` names the seeds of the pieces' latents and sampling (``guard``: the fixed
    set the guard chooses G by; ``confirm``: the set that must agree; ``tuning``: the temperature's; ``final``:
    the sets of the last choice, ``index`` numbering them)."""
    seeds = stream_seeds(run.cfg.seed)
    n = GUARD_PIECES
    latents = seeds[f"{stream}_latents"] + SET_STRIDE * index
    z = torch.randn(n, run.G.latent_dim, generator=torch.Generator().manual_seed(latents))
    grids = sample_grids(sampler or run.sampler, z.to(run.device), GUARD_BARS * run.steps_per_bar,
                         seed=seeds[f"{stream}_sampling"] + SET_STRIDE * index, temperature=temperature,
                         cond=scoring_condition(run, n, latents))
    ref, ref_set = run.guard_reference
    row = compare(feature_set([run.encoding.to_roll(g) for g in grids], ref), ref_set, set())
    keep = ("overlap_area", "two_sample_accuracy", "frechet_distance")
    return {"quality": float(row["overlap_area"] - row["two_sample_accuracy"]), **{k: float(row[k]) for k in keep}}


def agreed(run: Run, scored: Callable[[], T]) -> T:
    """``scored()`` as rank 0 computed it, on every process (the others wait): under torchrun each process
    keeps, rolls back, stops and tunes its temperature on the same numbers, where scores computed apart could
    differ in the last bit on GPUs and send the processes' weights apart for good."""
    return distributed.gather(scored() if run.world.main else None, run.world)[0]


def pooled(run: Run, temperature: float) -> dict:
    """The evaluate rows of both fixed sets averaged (the guard's score of G), with each set's quality."""
    first, second = (score(run, temperature=temperature, stream=s) for s in ("guard", "confirm"))
    return {**{k: (first[k] + second[k]) / 2 for k in first}, "first_quality": first["quality"],
            "second_quality": second["quality"]}


def check(run: Run) -> dict:
    """Evaluate G; keep it if it is the best so far, roll back after ``guard_patience`` evaluations in a row
    that are worse than the best by more than ``guard_tolerance``."""
    p, cfg, t = run.progress, run.cfg, run.adversarial_temperature()
    row = {**agreed(run, lambda: pooled(run, t)), "adversarial_iters": p.adversarial_iters}
    p.guard_evals += 1
    p.guard_last_iter = p.adversarial_iters
    if p.guard_evals == 1:  # where pre-training left G: kept apart, to tell what the adversarial phase did
        p.guard_start = row["quality"]
        save_checkpoint(run, "pretrained", with_state=False, extra={"guard": row})
    if row["quality"] > p.guard_best:
        p.guard_best, p.guard_best_iter, p.guard_worse = row["quality"], p.adversarial_iters, 0
        run.guard_weights = snapshot(run)
        save_checkpoint(run, "best", with_state=False, extra={"guard": row})
    elif row["quality"] < p.guard_best - cfg.guard_tolerance:
        p.guard_worse += 1
        if p.guard_worse >= cfg.guard_patience:
            rollback(run)
    else:  # within the noise of the best: not a sign that the phase went wrong
        p.guard_worse = 0
    run.monitor.scalars({**{f"guard/{k}": v for k, v in row.items() if k != "adversarial_iters"},
                         "guard/best_quality": p.guard_best, "guard/rollbacks": p.guard_rollbacks,
                         "guard/lr_g": cfg.lr_g * p.lr_g_scale}, p.total)
    return row


def status(run: Run) -> str:
    """The guard so far, for the progress bar: the best G's quality over the pre-trained G's, where, rollbacks."""
    p = run.progress
    if not p.guard_evals:
        return ""
    return f" guard {p.guard_best - p.guard_start:+.3f} (iteration {p.guard_best_iter}), rollbacks {p.guard_rollbacks}"


def snapshot(run: Run) -> dict[str, dict[str, torch.Tensor]]:
    """Copies of the weights a rollback returns to."""
    return {name: copy.deepcopy(net.state_dict()) for name, net in run.networks().items()}


def rollback(run: Run) -> None:
    """Back to the best weights with fresh optimisers and a lower learning rate for G, or end the phase."""
    p, cfg = run.progress, run.cfg
    p.guard_worse = 0
    if p.guard_rollbacks >= cfg.guard_rollbacks:
        p.adversarial_stopped = True
    p.guard_rollbacks += 1
    p.lr_g_scale *= cfg.guard_lr_decay
    nets = run.networks()
    for name, state in run.guard_weights.items():
        nets[name].load_state_dict(state)
    run.opt_g, run.opt_d = adversarial_optimizers(cfg, run.G, run.D, p)
    p.matching_errors = {}  # they averaged the G rolled back from


#: Sampling temperatures the default model is tried at once training ends.
TEMPERATURES = (0.8, 0.85, 0.9, 0.95, 1.0, 1.05, 1.1)


def best_temperature(run: Run, sampler=None) -> tuple[float, dict]:
    """The temperature of :data:`TEMPERATURES` at which G (or ``sampler``) scores best on the tuning stream's
    pieces (ties: the one nearest 1.0), and each one's row; 1.0 without a guard reference."""
    if run.guard_reference is None:
        return 1.0, {}
    sweep = {t: score(run, sampler, t, stream="tuning") for t in TEMPERATURES}
    return _best_of(sweep), sweep


def _best_of(sweep: dict[float, dict]) -> float:
    """The temperature whose row scores best (ties: the one nearest 1.0)."""
    return max(sweep, key=lambda t: (sweep[t]["quality"], -abs(t - 1.0)))


def tune_temperature(run: Run) -> dict | None:
    """Choose the run's default model and its sampling temperature on pieces no earlier choice saw (the tuning
    stream's): the guard's best weights and (when those are an adversarial G) the pre-trained G are each scored
    at every temperature of :data:`TEMPERATURES`, and the better of the two, at its best temperature, is stored
    as ``best.safetensors`` (so composing with the run uses it). Returns ``{"kept", "temperature", "sweeps"}``:
    which of the two it is (``adversarial`` or ``pretrained``), its temperature, and each one's rows.

    Scored on other pieces than the guard's: the guard chose its weights because its two fixed sets scored them
    best, so on those sets the weights (and the temperature they were drawn at) look better than they are."""
    folder, p = run.folder / "checkpoints", run.progress
    best, pretrained = folder / "best.safetensors", folder / "pretrained.safetensors"
    if run.guard_weights is None or not best.is_file():
        return None
    key = "G_ema" if run.G_ema is not None else "G"
    own = "adversarial" if p.guard_best_iter > 0 else "pretrained"
    samplers = {own: sampler_with(run, run.guard_weights[key])}
    sweeps = {own: best_temperature(run, samplers[own])[1]}
    if own == "adversarial" and pretrained.is_file():
        samplers["pretrained"] = sampler_with(run, checkpoint.load(pretrained)[0][key])
        earlier = p.pretrained_sweep  # scored when the phase began, when its temperature was tuned
        sweeps["pretrained"] = ({float(t): row for t, row in earlier.items()} if earlier else
                                best_temperature(run, samplers["pretrained"])[1])
    at = {name: _best_of(sweep) for name, sweep in sweeps.items()}
    if len(sweeps) > 1:  # the two compared on the final sets, each at its temperature
        final = {name: statistics.fmean(final_qualities(run, samplers[name], at[name])) for name in sweeps}
    else:
        final = {own: max(row["quality"] for row in sweeps[own].values())}
    kept = max(final, key=lambda name: (final[name], name == "pretrained"))  # ties: the pre-trained G
    chosen = at[kept]
    if kept != own:
        with atomic_path(best) as tmp:
            shutil.copyfile(pretrained, tmp)
    rows = {name: {str(t): row for t, row in sweep.items()} for name, sweep in sweeps.items()}
    checkpoint.update_info(best, {"temperature": chosen, "temperature_sweep": rows[kept], "kept": kept})
    p.fresh = {"kept": kept, "temperature": chosen, **{f"{name}_quality": q for name, q in final.items()}}
    run.monitor.scalars({"guard/temperature": chosen}, p.total)
    return {"kept": kept, "temperature": chosen, "sweeps": rows}


def final_qualities(run: Run, sampler, temperature: float) -> list[float]:
    """The quality of ``sampler`` at ``temperature`` on each of the :data:`FINAL_SETS` sets of the final stream."""
    return [score(run, sampler, temperature, "final", k)["quality"] for k in range(FINAL_SETS)]


def sampler_with(run: Run, weights: dict[str, torch.Tensor]):
    """A copy of the run's sampler holding ``weights``."""
    sampler = copy_network(run.sampler)
    sampler.load_state_dict(weights)
    return sampler
