"""Settings as plain data: what the networks are (:class:`ModelConfig`) apart from how they are trained
(:class:`TrainConfig`), every default in one visible block, each with its help text.

Resolution order: defaults <- ``--preset NAME`` <- ``--config FILE.toml`` <- ``key=value`` overrides. Keys are
flat (``g_hidden=128``, ``lr_d=1e-3``); each belongs to exactly one of the two configs. Unknown keys are refused
and values are type-checked, so a typo never trains silently with a default. This module imports no torch.
"""

from __future__ import annotations

import copy
import json
import math
import sys
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from .errors import UserError


def setting(default, help: str, choices: tuple = ()):  # noqa: A002 - "help" reads best in the field blocks
    """A config field with its help text (shown by ``gancomposer train --help-config``) and allowed values."""
    return field(default=default, metadata={"help": help, "choices": choices})


#: A setting chosen from the dataset when a run starts (``key=auto``); ``config.json`` holds the value.
AUTO = -1
AUTO_SETTINGS = ("pretrain_iters", "eval_every", "checkpoint_every", "still_steps")


@dataclass
class ModelConfig:
    """The sizes and kinds of G and D: stored with the weights, and all that sampling needs besides the
    encoding."""

    rnn: str = setting("lstm", "recurrent cell of G and D", ("lstm", "gru"))
    latent_dim: int = setting(64, "size of the per-piece noise vector z")
    step_noise_dim: int = setting(8, "noise per grid step")
    g_hidden: int = setting(256, "G's recurrent width")
    g_layers: int = setting(2, "G's recurrent layers")
    chord_hidden: int = setting(64, "NADE layer linking the cells of one step (0: cells drawn independently)")
    voice_pairs: bool = setting(True, "with voices: G also scores how each voice moves against each voice drawn "
                                      "before it (the interval class between them before and after the step, "
                                      "each one's direction), learned from the data")
    still_steps: int = setting(AUTO, "most grid steps in a row G lets notes sound with none starting (auto: the "
                                   "longest such stretch in the training windows; 0: no limit)")
    d_hidden: int = setting(128, "D's recurrent width (per direction)")
    d_layers: int = setting(1, "D's recurrent layers")
    spectral_norm: bool = setting(False, "spectral normalisation of D's linear layers")
    d_statistics: bool = setting(True, "D also reads each piece's statistics (note density, rhythm, pitch "
                                      "classes, register, intervals, melodic motion; with voices, parallel fifths "
                                      "and octaves)")

    def validate(self) -> None:
        _check_choices(self)
        _at_least(self, 1, "latent_dim", "g_hidden", "g_layers", "d_hidden", "d_layers")
        _at_least(self, 0, "step_noise_dim", "chord_hidden", *(n for n in ("still_steps",) if getattr(self, n) != AUTO))
        for name in ("latent_dim", "step_noise_dim", "g_hidden", "chord_hidden", "d_hidden"):
            _within(self, name, 0, MAX_WIDTH)
        for name in ("g_layers", "d_layers"):
            _within(self, name, 0, MAX_LAYERS)

    def for_data(self, train_windows, encoding) -> ModelConfig:
        """A copy with ``still_steps=auto`` resolved: the longest stretch in the training windows (``encoding``
        grids) in which notes sound and none starts."""
        cfg = copy.copy(self)
        if cfg.still_steps == AUTO:
            cfg.still_steps = encoding.longest_still(train_windows)
        return cfg


#: Sizes beyond any sensible network: a typo or an edited file, refused before memory is spent on it.
MAX_WIDTH, MAX_LAYERS = 16384, 32


#: Likelihood pre-training's most updates under ``auto``: on large folders G was still learning, not memorising,
#: at 12,000 (the measurements are in the README, "The default recipe").
PRETRAIN_CAP = 12_000


#: Settings added after checkpoints were first written, with the value that reproduces (or truly describes) the
#: runs made before them: no chord layer, no voice pairs, no quality guard, no statistics in D, fixed adversarial
#: weights, the voice-pair table at G's learning rate (in both phases at the same multiple), no limit on held chords,
#: G drawn at temperature 1.0 in the adversarial phase, no chromaticity matching, a guard that counted any score
#: below the best as worse, each batch's own matching difference, G's pieces all at the phase's temperature.
DEFAULTS_BEFORE = {"chord_hidden": 0, "voice_pairs": False, "guard_every": 0, "d_statistics": False,
                   "adversarial_ratio": 0.0, "pairs_lr_scale": 1.0, "still_steps": 0,
                   "adversarial_pairs_lr_scale": -1.0, "adversarial_temperature": 1.0, "chromaticity_matching": 0.0,
                   "guard_tolerance": 0.0, "matching_smoothing": 0.0,
                   "temperature_spread": 0.0}


@dataclass
class TrainConfig:
    """How G and D are trained: the phases, the adversarial method, bookkeeping."""

    # --- maximum-likelihood (teacher-forcing) pre-training of G ---
    pretrain_iters: int = setting(AUTO, "G updates by likelihood before the adversarial phase (auto: 20 passes "
                                        "over the training windows, at most 12000)")
    pretrain_lr: float = setting(2e-3, "learning rate of likelihood pre-training")
    pairs_lr_scale: float = setting(30.0, "G's voice-pair table learns at this many times G's learning rate in "
                                          "likelihood pre-training (its entries each have a gradient at few "
                                          "steps)")
    adversarial_pairs_lr_scale: float = setting(1.0, "the voice-pair table's learning rate in the adversarial "
                                                     "phase, in multiples of G's (-1: pairs_lr_scale, as in runs "
                                                     "made before this setting)")
    d_pretrain_iters: int = setting(400, "D updates against the frozen pre-trained G before the adversarial phase")
    # --- adversarial training ---
    adversarial_iters: int = setting(400, "adversarial iterations (one G update each)")
    batch_size: int = setting(32, "pieces per batch")
    loss: str = setting("gan", "adversarial objective (gan: the classic one, G non-saturating)",
                        ("gan", "wgan-gp", "hinge", "lsgan"))
    d_updates: int = setting(1, "D updates per G update")
    d_freeze_below: float = setting(0.2, "D sits out while its mean score of fresh fakes is below this (0: off)")
    lr_g: float = setting(5e-4, "G's adversarial learning rate")
    lr_d: float = setting(1e-3, "D's learning rate (another value than lr_g gives TTUR)")
    beta1: float = setting(0.5, "Adam beta1 of the adversarial optimisers")
    beta2: float = setting(0.999, "Adam beta2 of the adversarial optimisers")
    label_smoothing: float = setting(0.1, "one-sided: D's real target is 1 - s (loss gan only)")
    instance_noise: float = setting(0.0, "std of Gaussian noise on D's inputs, annealed linearly to 0")
    instance_noise_iters: int = setting(1000, "adversarial iterations over which instance noise falls to 0")
    r1_gamma: float = setting(0.0, "R1 penalty weight on real data")
    gp_lambda: float = setting(10.0, "gradient penalty weight (wgan-gp)")
    feature_matching: float = setting(0.1, "weight of the feature-matching term in G's loss")
    statistics_matching: float = setting(10.0, "weight of the distance between the batch means of the pieces' "
                                               "statistics (as D reads them) of G's and of real pieces, in G's "
                                               "loss (needs d_statistics=true)")
    chromaticity_matching: float = setting(10.0, "weight of the distance between the batch means of how many pitch "
                                                "classes each piece uses and of their entropy, G's pieces against "
                                                "real ones, in G's loss (needs d_statistics=true)")
    matching_smoothing: float = setting(0.9, "the statistics and chromaticity matching terms pull along a moving "
                                             "average of the difference between G's and the real batch means, "
                                             "this the weight of the past (0: each batch's own difference)")
    grad_clip: float = setting(0.0, "max gradient norm for G and D (0: off)")
    mle_weight: float = setting(10.0, "weight of the likelihood anchor kept in G's adversarial loss")
    adversarial_ratio: float = setting(1.0, "rescale G's adversarial terms at every update so that their gradient "
                                            "is this many times as long as the likelihood anchor's (0: their "
                                            "own weights; needs mle_weight > 0)")
    entropy_anchor: float = setting(0.0, "weight of (H - H0)^2 in G's adversarial loss: H, the mean entropy of "
                                         "G's choices along its own pieces; H0, the same for the pre-trained G "
                                         "(measured in D's pre-training; set on resuming a run in its adversarial "
                                         "phase, on the G resumed). Keeps the phase from merely sharpening G")
    adversarial_temperature: float = setting(0.0, "temperature of G's pieces in D's pre-training and the adversarial "
                                                  "phase, where the guard also scores them (0: the one at which the "
                                                  "guard scores the pre-trained G best, found when pre-training ends; "
                                                  "1.0 without the guard)")
    temperature_spread: float = setting(0.3, "each of G's pieces in D's pre-training and the adversarial phase is "
                                             "drawn at the phase's temperature times exp(u), u uniform in "
                                             "[-spread, spread], so D sees (and G learns from) a range of "
                                             "temperatures, not one")
    orthogonal_pull: bool = setting(False, "D's pull on G (its loss and the matching terms) without the part a "
                                           "change of temperature would also make: less its components along the "
                                           "gradients of the notes G expects to start per step and of the entropy "
                                           "of its choices, along its own pieces (needs adversarial_ratio > 0)")
    ema_decay: float = setting(0.995, "moving average of G's weights used for sampling (0: off)")
    estimator: str = setting("gumbel", "G's gradient through its discrete samples: gumbel (straight-through "
                             "Gumbel-softmax) or reinforce (score function with a moving-average baseline, as "
                             "SeqGAN)", ("gumbel", "reinforce"))
    gumbel_tau: float = setting(1.0, "temperature of the Gumbel-softmax gradient")
    balance_target: float = setting(0.0, "D's held-out accuracy that its learning rate steers toward (0: off)")
    balance_rate: float = setting(0.05, "how fast D's learning rate follows its held-out accuracy")
    # --- the quality guard of the adversarial phase ---
    guard_every: int = setting(25, "adversarial iterations between quality-guard evaluations (0: no guard)")
    guard_patience: int = setting(3, "guard evaluations in a row below the best (by more than guard_tolerance) "
                                     "before rolling back to it")
    guard_tolerance: float = setting(0.03, "how far below the best quality an evaluation must score to count as "
                                           "worse: about twice the spread of one evaluation's score")
    guard_lr_decay: float = setting(0.5, "G's learning rate is multiplied by this at each rollback")
    guard_rollbacks: int = setting(3, "rollbacks before the guard ends the adversarial phase")
    tune_temperature: bool = setting(True, "at the end, score the guard's best and the pre-trained G at each "
                                           "sampling temperature (0.8-1.1) on fresh 8-bar pieces, as the guard "
                                           "scores, and keep the better at its best temperature")
    # --- bookkeeping (counted in training iterations of all phases together) ---
    seed: int = setting(0, "random seed (same seed, same run on the CPU)")
    log_every: int = setting(10, "iterations between log lines and TensorBoard points")
    eval_every: int = setting(AUTO, "iterations between validation scores (auto: about 10 in a run)")
    checkpoint_every: int = setting(AUTO, "iterations between checkpoints (auto: about 10 in a run)")
    keep_checkpoints: int = setting(3, "newest checkpoints kept")
    samples: int = setting(8, "sample pieces written at each checkpoint, from fixed noise")
    collapse_patience: int = setting(300, "iterations of D(x) > 0.99 and D(G(z)) < 0.01 before stopping (0: off)")
    device: str = setting("auto", "where to train", ("auto", "cpu", "cuda"))
    threads: int = setting(0, "CPU threads (0: OMP_NUM_THREADS if set, else the cores not busy with other work)")
    amp: bool = setting(True, "bfloat16 autocast on CUDA")

    def validate(self) -> None:
        _check_choices(self)
        _at_least(self, 1, "batch_size", "d_updates", "log_every", "keep_checkpoints",
                  *(n for n in ("eval_every", "checkpoint_every") if getattr(self, n) != AUTO))
        _at_least(self, 0, "adversarial_iters", "d_pretrain_iters", "samples", "threads", "guard_every",
                  "guard_rollbacks", *(n for n in ("pretrain_iters",) if getattr(self, n) != AUTO))
        _at_least(self, 1, "guard_patience")
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise UserError(f"{f.name}={value}: must be a finite number")
        for name in ("gumbel_tau", "pairs_lr_scale"):
            _within(self, name, 0, math.inf, low_open=True)
        for name in ("pretrain_lr", "lr_g", "lr_d"):  # 0 holds a network still
            _within(self, name, 0, math.inf)
        for name in ("beta1", "beta2", "label_smoothing", "ema_decay", "balance_target", "matching_smoothing"):
            _within(self, name, 0, 1, high_open=True)
        _within(self, "d_freeze_below", 0, 1)
        if self.adversarial_pairs_lr_scale != -1:
            _within(self, "adversarial_pairs_lr_scale", 0, math.inf, low_open=True)
        _within(self, "guard_lr_decay", 0, 1, low_open=True)
        for name in ("balance_rate", "instance_noise", "r1_gamma", "gp_lambda", "feature_matching", "grad_clip",
                     "mle_weight", "statistics_matching", "chromaticity_matching", "adversarial_ratio",
                     "adversarial_temperature", "temperature_spread", "entropy_anchor", "guard_tolerance"):
            _within(self, name, 0, math.inf)
        if self.adversarial_ratio > 0 and self.mle_weight == 0:
            raise UserError(f"adversarial_ratio={self.adversarial_ratio} measures the adversarial gradient against "
                            "the likelihood anchor's, and mle_weight=0 turns the anchor off: set mle_weight > 0, or "
                            "adversarial_ratio=0")
        if self.orthogonal_pull and self.adversarial_ratio == 0:
            raise UserError("orthogonal_pull=true works on D's pull as adversarial_ratio takes it apart from the "
                            "likelihood anchor, and adversarial_ratio=0 does not: set adversarial_ratio > 0, or "
                            "orthogonal_pull=false")

    @property
    def total_iters(self) -> int:
        return max(0, self.pretrain_iters) + self.d_pretrain_iters + self.adversarial_iters

    def for_data(self, train_windows: int) -> TrainConfig:
        """A copy with every ``auto`` setting resolved for a dataset of ``train_windows`` training windows:
        pre-training takes 20 passes over the windows (beyond that G learns them by heart), at most
        ``PRETRAIN_CAP`` updates, and the run is scored and checkpointed about 10 times, on multiples of 50
        iterations."""
        cfg = copy.copy(self)
        if cfg.pretrain_iters == AUTO:
            cfg.pretrain_iters = min(PRETRAIN_CAP, max(100, 20 * math.ceil(train_windows / cfg.batch_size)))
        cadence = max(50, round(cfg.total_iters / 10 / 50) * 50)
        for name in ("eval_every", "checkpoint_every"):
            if getattr(cfg, name) == AUTO:
                setattr(cfg, name, cadence)
        return cfg


@dataclass
class Config:
    """The two halves of a run's settings."""

    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def validate(self) -> None:
        self.model.validate()
        self.train.validate()
        for name in ("statistics_matching", "chromaticity_matching"):
            if getattr(self.train, name) > 0 and not self.model.d_statistics:
                raise UserError(f"{name}={getattr(self.train, name)} matches statistics that D computes, and "
                                f"d_statistics=false gives D none: set d_statistics=true, or {name}=0")

    def to_dict(self) -> dict:
        return {"model": asdict(self.model), "train": asdict(self.train)}


#: Keys renamed since 0.1.0: old configs and checkpoints still load, and the CLI names the new key.
RENAMED = {"steps": "adversarial_iters", "pretrain_steps": "pretrain_iters", "d_pretrain_steps": "d_pretrain_iters",
           "d_steps": "d_updates", "instance_noise_steps": "instance_noise_iters"}

PRESETS: dict[str, dict] = {
    # Under a minute on a laptop CPU: for tests and for checking that a set-up works. A plain GAN after a few
    # likelihood updates: every setting that would slow it down or hide what the adversarial losses do is off.
    "tiny": dict(g_hidden=32, g_layers=1, d_hidden=16, latent_dim=16, step_noise_dim=4, batch_size=16,
                 adversarial_iters=30, pretrain_iters=20, pretrain_lr=1e-3, d_pretrain_iters=0, lr_g=2e-4, lr_d=2e-4,
                 d_freeze_below=0.0, label_smoothing=0.0, feature_matching=0.0, statistics_matching=0.0,
                 chromaticity_matching=0.0, mle_weight=0.0, ema_decay=0.999, eval_every=15, checkpoint_every=15,
                 log_every=5, samples=4, adversarial_ratio=0.0, guard_every=0, d_statistics=False,
                 adversarial_temperature=1.0, temperature_spread=0.0, matching_smoothing=0.0),
    # The recipe of the shipped Irish model and of the roll Bach model shipped before (see the model cards),
    # pinned so that they can be trained again exactly whatever the defaults become (today it differs from them
    # in its fixed 3000 pre-training iterations, 350 adversarial ones, G's fixed adversarial weights, slower
    # learning rate and temperature 1.0 for every piece, the plain D without the matching terms, its checkpoint
    # cadence and in keeping every checkpoint).
    "bach": dict(g_hidden=256, g_layers=2, d_hidden=128, latent_dim=64, batch_size=32, pretrain_iters=3000,
                 pretrain_lr=2e-3, d_pretrain_iters=400, adversarial_iters=350, lr_g=5e-5, lr_d=1e-3,
                 d_freeze_below=0.2, label_smoothing=0.1, feature_matching=0.1, mle_weight=10.0, ema_decay=0.995,
                 adversarial_ratio=0.0, adversarial_temperature=1.0, d_statistics=False, statistics_matching=0.0,
                 chromaticity_matching=0.0, temperature_spread=0.0, matching_smoothing=0.0, eval_every=250,
                 checkpoint_every=250, keep_checkpoints=100),
}


def _check_choices(cfg) -> None:
    for f in fields(cfg):
        choices = f.metadata.get("choices")
        if choices and getattr(cfg, f.name) not in choices:
            raise UserError(f"{f.name}={getattr(cfg, f.name)!r}: choose one of {', '.join(choices)}")


def _within(cfg, name: str, low: float, high: float, *, low_open: bool = False, high_open: bool = False) -> None:
    value = getattr(cfg, name)
    if value < low or value > high or (low_open and value == low) or (high_open and value == high):
        if math.isinf(high):
            raise UserError(f"{name}={value}: must be {'>' if low_open else '>='} {low:g}")
        lo, hi = "(" if low_open else "[", ")" if high_open else "]"
        raise UserError(f"{name}={value}: must lie in {lo}{low:g}, {high:g}{hi}")


def _at_least(cfg, low: int, *names: str) -> None:
    for name in names:
        if getattr(cfg, name) < low:
            raise UserError(f"{name}={getattr(cfg, name)}: must be {'at least 1' if low else 'not negative'}")


def _coerce(name: str, typ: type, value):
    if name in AUTO_SETTINGS and str(value).lower() == "auto":
        return AUTO
    if typ is bool:
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("1", "true", "yes", "on"):
            return True
        if str(value).lower() in ("0", "false", "no", "off"):
            return False
        raise UserError(f"{name}: expected true or false, got {value!r}")
    try:
        if typ is int and isinstance(value, float) and not value.is_integer():
            raise ValueError
        return typ(value)
    except (TypeError, ValueError):
        raise UserError(f"{name}: expected {typ.__name__}, got {value!r}") from None


def _set(parts: tuple, values: dict, source: str) -> None:
    """Set each of ``values`` on the one of ``parts`` that owns its key, type-checked; unknown keys refused."""
    for key, value in values.items():
        key = key.replace("-", "_")
        part = next((p for p in parts if key in {f.name for f in fields(p)}), None)
        if part is None:
            hint = f" (renamed to {RENAMED[key]!r})" if key in RENAMED else ""
            raise UserError(f"{source}: unknown setting {key!r}{hint}; see `gancomposer train --help-config`")
        setattr(part, key, _coerce(key, type(getattr(part, key)), value))


def apply(config: Config, values: dict, source: str) -> Config:
    """Set flat ``values`` on whichever half of ``config`` owns each key."""
    _set((config.model, config.train), values, source)
    return config


def model_config(values: dict, source: str = "checkpoint") -> ModelConfig:
    """The network config stored in a checkpoint's ``model`` entry, checked (a setting the checkpoint
    predates takes the value that describes it, from :data:`DEFAULTS_BEFORE`)."""
    cfg = ModelConfig()
    before = {k: v for k, v in DEFAULTS_BEFORE.items() if hasattr(cfg, k)}
    _set((cfg,), {**before, **values}, f"{source} model settings")
    cfg.validate()
    return cfg


def resolve(preset: str | None = None, config_file: str | None = None, overrides: list[str] = (),
            base: Config | None = None) -> Config:
    """Build a run's settings from a preset, a TOML file and ``key=value`` strings, in that order, on top of
    ``base`` (the defaults; for a resumed run, its own stored settings).

    The TOML file may hold ``[model]`` and ``[train]`` tables, or the keys at its top level.
    """
    config = copy.deepcopy(base) if base is not None else Config()
    if preset:
        if preset not in PRESETS:
            raise UserError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
        apply(config, PRESETS[preset], f"preset {preset}")
    if config_file:
        try:
            data = tomllib.loads(Path(config_file).read_text())
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise UserError(f"{config_file}: cannot read TOML ({e})") from None
        tables = {k: v for k, v in data.items() if isinstance(v, dict) and k in ("model", "train")}
        flat = {k: v for k, v in data.items() if k not in tables}
        for values in (*tables.values(), flat):
            apply(config, values, config_file)
    for item in overrides:
        if "=" not in item:
            raise UserError(f"override {item!r}: expected key=value")
        key, value = item.split("=", 1)
        apply(config, {key: value}, "command line")
    config.validate()
    return config


def from_stored(info: dict, source: str = "checkpoint") -> Config:
    """The settings stored in a checkpoint or ``config.json``, including those written by gancomposer 0.1.0
    (one flat ``config`` with the old key names, before the chord layer existed)."""
    if "model" in info and "train" in info:
        values = {**DEFAULTS_BEFORE, **info["model"], **info["train"]}
    else:
        values = {**DEFAULTS_BEFORE, **info["config"]}
    return apply(Config(), {RENAMED.get(k, k): v for k, v in values.items()}, f"{source} settings")


#: Settings a resumed run cannot change: the networks' shapes, and what its saved optimiser, batch and random
#: states were made with. Any other setting may change on resume; it is used from there on (learning rates
#: also by the optimisers) and the change is recorded with its iteration in ``config.json``.
FIXED_ON_RESUME = frozenset({f.name for f in fields(ModelConfig)} | {"seed", "batch_size", "beta1", "beta2",
                                                                     "ema_decay"})


def differences(old: Config, new: Config) -> dict[str, tuple]:
    """``{key: (old value, new value)}`` for every setting that differs."""
    a, b = {**asdict(old.model), **asdict(old.train)}, {**asdict(new.model), **asdict(new.train)}
    return {k: (a[k], b[k]) for k in a if a[k] != b[k]}


def stored_run_config(run_dir: str | Path) -> Config | None:
    """The settings a run folder's ``config.json`` records, or None when it has none (or it is unreadable)."""
    try:
        return from_stored(json.loads((Path(run_dir) / "config.json").read_text()), "config.json")
    except (OSError, ValueError, KeyError, TypeError, UserError):
        return None


def describe() -> str:
    """Every setting with its default and help text, grouped by owner, then the presets."""
    lines = []
    for title, cls in (("model (stored with the weights)", ModelConfig), ("training", TrainConfig)):
        lines.append(f"# {title}")
        for f in fields(cls):
            default = f.default if f.default is not MISSING else None
            default = "auto" if f.name in AUTO_SETTINGS and default == AUTO else default
            choices = f" [{' | '.join(f.metadata['choices'])}]" if f.metadata.get("choices") else ""
            lines.append(f"{f.name} = {default!r}{choices}  # {f.metadata.get('help', '')}")
        lines.append("")
    for name, values in PRESETS.items():
        lines.append(f"preset {name}: " + " ".join(f"{k}={v}" for k, v in values.items()))
    return "\n".join(lines)
