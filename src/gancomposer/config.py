"""Training configuration: plain data with every default in one visible block.

Resolution order: defaults <- ``--preset NAME`` <- ``--config FILE.toml`` <- ``key=value`` overrides.
Unknown keys are refused and values are type-checked, so a typo never trains silently with a default.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, fields
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from .losses import LOSSES
from .piece import MusicError


@dataclass
class TrainConfig:
    # --- generator ---
    rnn: str = "lstm"  # lstm | gru (G and D)
    latent_dim: int = 64  # size of the per-piece noise vector z
    step_noise_dim: int = 8  # noise per time step
    g_hidden: int = 256
    g_layers: int = 2
    chord_hidden: int = 64  # NADE layer linking the pitches of one step (0: pitches drawn independently)
    # --- discriminator ---
    d_hidden: int = 128
    d_layers: int = 1
    spectral_norm: bool = False  # on D's linear layers
    # --- adversarial training ---
    steps: int = 2000  # G updates (after pre-training)
    batch_size: int = 64
    loss: str = "gan"  # gan (classic, non-saturating G) | wgan-gp | hinge | lsgan
    d_steps: int = 1  # D updates per G update
    d_freeze_below: float = 0.0  # D sits out while its mean score of fresh fakes is below this (0: off)
    lr_g: float = 2e-4
    lr_d: float = 2e-4  # a different value gives the two time-scale update rule (TTUR)
    beta1: float = 0.5
    beta2: float = 0.999
    label_smoothing: float = 0.0  # one-sided: real label 1 - s (loss "gan" only)
    instance_noise: float = 0.0  # std of Gaussian noise on D's inputs, annealed linearly to 0
    instance_noise_steps: int = 1000
    r1_gamma: float = 0.0  # R1 penalty weight on real data
    gp_lambda: float = 10.0  # gradient penalty weight (wgan-gp)
    feature_matching: float = 0.0  # weight of the feature-matching term added to G's loss
    grad_clip: float = 0.0  # max gradient norm for G and D (0: off)
    mle_weight: float = 0.0  # teacher-forced likelihood term kept in G's loss during adversarial training
    ema_decay: float = 0.999  # moving average of G's weights used for sampling (0: off)
    gumbel_tau: float = 1.0  # temperature of the Gumbel-softmax gradient
    # --- maximum-likelihood (teacher-forcing) pre-training of G ---
    pretrain_steps: int = 0
    pretrain_lr: float = 1e-3
    d_pretrain_steps: int = 0  # D updates against the pre-trained G (frozen) before the adversarial phase
    # --- bookkeeping ---
    seed: int = 0
    log_every: int = 10
    eval_every: int = 250
    checkpoint_every: int = 250
    keep_checkpoints: int = 3
    samples: int = 8  # sample pieces written at each checkpoint, from fixed noise
    collapse_patience: int = 300  # steps of D(x) > 0.99 and D(G(z)) < 0.01 before stopping (0: off)
    device: str = "auto"  # auto | cpu | cuda
    amp: bool = True  # bfloat16 autocast on CUDA

    def validate(self) -> None:
        """Refuse values that cannot work, naming the key and the choices."""
        if self.loss not in LOSSES:
            raise MusicError(f"loss={self.loss!r}: choose one of {', '.join(LOSSES)}")
        if self.rnn not in ("lstm", "gru"):
            raise MusicError(f"rnn={self.rnn!r}: choose lstm or gru")
        if self.device not in ("auto", "cpu", "cuda"):
            raise MusicError(f"device={self.device!r}: choose auto, cpu or cuda")
        for name in ("latent_dim", "g_hidden", "g_layers", "d_hidden", "d_layers", "batch_size", "d_steps",
                     "log_every", "eval_every", "checkpoint_every", "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise MusicError(f"{name}={getattr(self, name)}: must be at least 1")
        for name in ("steps", "pretrain_steps", "d_pretrain_steps", "samples", "step_noise_dim", "chord_hidden"):
            if getattr(self, name) < 0:
                raise MusicError(f"{name}={getattr(self, name)}: must not be negative")
        if not 0 <= self.label_smoothing < 1 or not 0 <= self.ema_decay < 1:
            raise MusicError("label_smoothing and ema_decay must lie in [0, 1)")

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS: dict[str, dict] = {
    # Under a minute on a laptop CPU: for tests and for checking that a set-up works.
    "tiny": dict(g_hidden=32, g_layers=1, d_hidden=16, latent_dim=16, step_noise_dim=4, batch_size=16,
                 steps=30, pretrain_steps=20, eval_every=15, checkpoint_every=15, log_every=5, samples=4),
    # The recipe of the shipped Bach-chorale model (see MODEL_CARD.md).
    # Pre-train G by likelihood, then teach D to spot it (D needs a fast lr_d: at 1e-4 it learns nothing in
    # hundreds of steps), then a short adversarial phase with a likelihood anchor, D sitting out when far ahead.
    "bach": dict(g_hidden=256, g_layers=2, d_hidden=128, latent_dim=64, batch_size=32, pretrain_steps=3000,
                 pretrain_lr=2e-3, d_pretrain_steps=400, steps=350, lr_g=5e-5, lr_d=1e-3, d_freeze_below=0.2,
                 label_smoothing=0.1, feature_matching=0.1, mle_weight=10.0, ema_decay=0.995, eval_every=250,
                 checkpoint_every=250, keep_checkpoints=100),
}


def _coerce(name: str, typ: type, value):
    if typ is bool:
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("1", "true", "yes", "on"):
            return True
        if str(value).lower() in ("0", "false", "no", "off"):
            return False
        raise MusicError(f"{name}: expected true or false, got {value!r}")
    try:
        if typ is int and isinstance(value, float) and not value.is_integer():
            raise ValueError
        return typ(value)
    except (TypeError, ValueError):
        raise MusicError(f"{name}: expected {typ.__name__}, got {value!r}") from None


def apply(cfg: TrainConfig, values: dict, source: str) -> TrainConfig:
    """Set ``values`` on ``cfg`` with type checks; unknown keys are refused, naming ``source``."""
    types = {f.name: type(getattr(cfg, f.name)) for f in fields(cfg)}
    for key, value in values.items():
        key = key.replace("-", "_")
        if key not in types:
            raise MusicError(f"{source}: unknown setting {key!r} (see `gancomposer train --help-config`)")
        setattr(cfg, key, _coerce(key, types[key], value))
    return cfg


def resolve(preset: str | None = None, config_file: str | None = None, overrides: list[str] = ()) -> TrainConfig:
    """Build the training config from a preset, a TOML file and ``key=value`` strings, in that order."""
    cfg = TrainConfig()
    if preset:
        if preset not in PRESETS:
            raise MusicError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
        apply(cfg, PRESETS[preset], f"preset {preset}")
    if config_file:
        try:
            data = tomllib.loads(Path(config_file).read_text())
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise MusicError(f"{config_file}: cannot read TOML ({e})") from None
        apply(cfg, data.get("train", data), config_file)
    for item in overrides:
        if "=" not in item:
            raise MusicError(f"override {item!r}: expected key=value")
        key, value = item.split("=", 1)
        apply(cfg, {key: value}, "command line")
    cfg.validate()
    return cfg


# Settings added after checkpoints were first written, with the value that reproduces those older models.
_STORED_DEFAULTS = {"chord_hidden": 0}


def from_stored(values: dict, source: str = "checkpoint config") -> TrainConfig:
    """The config stored in a checkpoint (keys this version does not know are refused)."""
    return apply(TrainConfig(), {**_STORED_DEFAULTS, **values}, source)
