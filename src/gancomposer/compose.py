"""Composing with a trained generator: the Python API behind ``generate``, ``interpolate`` and the web app.

    from gancomposer import Composer

    composer = Composer.load()                 # the pretrained Bach-chorale model shipped in the package
    pieces = composer.compose(n=4, bars=8, seed=0)
    minor = composer.compose(n=4, bars=8, seed=0, key="D minor", meter="3/4")
    pieces[0].save_midi("chorale.mid")
    pieces[0].save_wav("chorale.wav")
    pieces[0].save_png("chorale.png")
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import checkpoint, render
from .conditions import KEYS, Conditions, meter_name, parse_key, parse_meter
from .corpora import instrument_of
from .encoding import DEFAULT_METER, Encoding
from .errors import UserError
from .model import Condition, Generator
from .piece import Piece
from .sampling import sample_blocks, sample_grids

PRETRAINED_DIR = Path(__file__).parent / "pretrained"
DEFAULT_MODEL = PRETRAINED_DIR / "bach-chorales.safetensors"


#: Seeds are drawn from this range (kept to 32 bits so a seed fits anywhere, JSON and JavaScript included).
MAX_SEED = 2**32 - 1
#: Long pieces are composed this many bars at a time (the result is the same as one pass).
CHUNK_BARS = 4
#: Pieces composed in one batched pass; more come in further batches, so memory does not grow with ``n``.
BATCH = 256
#: What a request may ask for: beyond these the music is noise or silence, or the wait is hours.
TEMPERATURE_RANGE = (0.05, 5.0)
MAX_BARS = 4096


@dataclass
class ComposedPiece:
    """One composed piece: its grid, the decoded notes, and how to save it."""

    grid: np.ndarray  # (steps, cells) in the model's encoding
    piece: Piece
    encoding: Encoding
    program: int = 0
    seed: int = 0
    meta: dict = field(default_factory=dict)
    meter: tuple[int, int] = DEFAULT_METER

    @property
    def bars(self) -> int:
        return len(self.grid) // self.encoding.steps_per_bar(self.meter)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the piece as MIDI, WAV or PNG, by the suffix of ``path``."""
        return render.save(self.piece, path, grid=self.grid, enc=self.encoding, program=self.program,
                           meter=self.meter)

    def save_midi(self, path: str | os.PathLike) -> Path:
        return self.save(Path(path).with_suffix(".mid"))

    def save_wav(self, path: str | os.PathLike) -> Path:
        return self.save(Path(path).with_suffix(".wav"))

    def save_png(self, path: str | os.PathLike) -> Path:
        return self.save(Path(path).with_suffix(".png"))


def _slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation: Gaussian latents keep their typical norm along the way."""
    an, bn = a / a.norm(), b / b.norm()
    omega = torch.arccos((an * bn).sum().clamp(-1 + 1e-7, 1 - 1e-7))
    if omega.abs() < 1e-6:
        return (1 - t) * a + t * b
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)


class Composer:
    """A generator ready to compose, loaded from a checkpoint, a run folder or the shipped model."""

    def __init__(self, generator: Generator, encoding: Encoding, conditions: Conditions | None = None, *,
                 tempo: float = 100.0, program: int = 0, name: str = "model", info: dict | None = None,
                 temperature: float = 1.0, key_guidance: float = 1.0):
        self.generator = generator.eval()
        # the weight of the key's learned scale-degree bias while composing; set at export
        # (`gancomposer export --key-guidance`)
        self.generator.key_guidance = check_key_guidance(key_guidance)
        self.encoding = encoding
        self.conditions = conditions or Conditions.single(DEFAULT_METER, encoding.steps_per_bar(DEFAULT_METER) * 4)
        self.temperature = temperature  # the default; set at export (`gancomposer export --temperature`)
        self.tempo, self.program, self.name = tempo, program, name
        self.info = info or {}
        self.meter = self.conditions.meters[0]  # the style's most common meter
        self.steps_per_bar = encoding.steps_per_bar(self.meter)

    @classmethod
    def load(cls, path: str | os.PathLike | None = None, *, device: str = "cpu") -> Composer:
        """Load a checkpoint file, a run folder (its best checkpoint) or a shipped model by name (see
        :func:`shipped_models`); None loads the default shipped model.

        The moving average of G's weights is used when the checkpoint has one.
        """
        shipped = shipped_models()
        if path is None:
            if not DEFAULT_MODEL.is_file():
                raise UserError(f"the pretrained model is missing from this installation ({DEFAULT_MODEL})")
            path = DEFAULT_MODEL
        elif not Path(path).exists():
            if str(path) not in shipped:
                raise UserError(f"{path}: no such checkpoint or run folder, nor a shipped model "
                                f"({', '.join(shipped)})")
            path = shipped[str(path)]
        file = checkpoint.find(path, prefer="best")
        g, info = checkpoint.load_generator(file)
        data, (enc, conditions) = info["data"], checkpoint.grid_of(info)
        return cls(g.to(device), enc, conditions, tempo=float(data.get("tempo", 100.0)),
                   program=int(data.get("program", instrument_of(data.get("corpus")))),
                   name=Path(path).stem if Path(path).is_file() else Path(path).name, info=info,
                   temperature=float(info.get("temperature", 1.0)),
                   key_guidance=float(info.get("key_guidance", 1.0)))

    @property
    def meters(self) -> list[str]:
        """The meters the model composes in, most common in its style first."""
        return [meter_name(m) for m in self.conditions.meters]

    @property
    def keys(self) -> list[str]:
        """The keys the model can be asked for (none for a model trained without keys)."""
        return list(KEYS) if self.conditions.keyed else []

    def choose(self, n: int, seed: int, key: str | None = None, meter: str | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """Meter and key indices of ``n`` pieces: those asked for, and the rest drawn from the style's mix
        (deterministic in ``seed``). Unknown names are refused in one line."""
        m = None if meter is None else parse_meter(meter, self.conditions.meters)
        k = None
        if key is not None:
            if not self.conditions.keyed:
                raise UserError(f"{self.name} was trained without keys; it cannot be asked for one")
            k = parse_key(key)
        return self.conditions.draw(n, seed, meter=m, key=k)

    @property
    def latent_dim(self) -> int:
        return self.generator.latent_dim

    def latents(self, n: int, seed: int) -> torch.Tensor:
        """The latent vectors of ``n`` pieces for ``seed``."""
        if not 0 <= seed <= MAX_SEED:
            raise UserError(f"seed must lie in 0..{MAX_SEED}, got {seed}")
        gen = torch.Generator().manual_seed(seed)
        return torch.randn(n, self.latent_dim, generator=gen)

    def steps(self, bars: int, meters: np.ndarray) -> np.ndarray:
        """Grid steps of ``bars`` bars in each of the meters ``meters`` (indices)."""
        return np.array([bars * self.encoding.steps_per_bar(self.conditions.meters[m]) for m in meters], int)

    def _condition(self, meters: np.ndarray, keys: np.ndarray) -> Condition:
        return Condition.of(meters, keys, self.conditions.keyed)

    def compose_latents(self, z: torch.Tensor, bars: int, *, seed: int = 0, temperature: float | None = None,
                        meters: np.ndarray | None = None, keys: np.ndarray | None = None,
                        progress: Callable[[int], None] | None = None) -> list[np.ndarray]:
        """Grids for the latents ``z`` (one batched pass) in the meters and keys given by index (default: the
        most common meter, the first key), ``bars`` bars long; one continuous performance of G however long.
        ``progress`` is called with the grid steps done after each chunk."""
        temperature = check_request(bars, self.temperature if temperature is None else temperature)
        meters = np.zeros(len(z), np.int64) if meters is None else meters
        keys = np.zeros(len(z), np.int64) if keys is None else keys
        steps = self.steps(bars, meters)
        device = next(self.generator.parameters()).device
        grids = sample_grids(self.generator, z.to(device), int(steps.max()), seed=seed, temperature=temperature,
                             cond=self._condition(meters, keys), chunk_steps=CHUNK_BARS * self.steps_per_bar,
                             progress=progress)
        return [g[:s] for g, s in zip(grids, steps)]

    def _pieces(self, grids: list[np.ndarray], seed: int, names: list[str], meta: list[dict], meters: np.ndarray,
                keys: np.ndarray) -> list[ComposedPiece]:
        out = []
        for grid, name, m, mi, ki in zip(grids, names, meta, meters, keys):
            meter = self.conditions.meters[mi]
            info = {**m, "meter": meter_name(meter), **({"key": KEYS[ki]} if self.conditions.keyed else {})}
            piece = render.grid_to_piece(grid, self.encoding, tempo=self.tempo, meter=meter, name=name)
            out.append(ComposedPiece(grid, piece, self.encoding, self.program, seed, info, meter))
        return out

    def compose(self, n: int = 4, bars: int = 8, seed: int = 0, temperature: float | None = None, *,
                key: str | None = None, meter: str | None = None) -> list[ComposedPiece]:
        """``n`` new pieces of ``bars`` bars; the same (n, seed) always gives the same music.

        ``temperature`` scales G's logits before each draw (< 1 safer, > 1 wilder); None uses the model's own.
        ``key`` (e.g. ``"D minor"``) and ``meter`` (e.g. ``"6/8"``, one of :attr:`meters`) fix what the
        pieces are written in; what is not fixed is drawn, piece by piece, from the style's own mix.
        """
        return [cp for batch in self.compose_batches(n, bars, seed, temperature, key=key, meter=meter)
                for cp in batch]

    def compose_batches(self, n: int, bars: int = 8, seed: int = 0, temperature: float | None = None,
                        progress: Callable[[int], None] | None = None, *, key: str | None = None,
                        meter: str | None = None) -> Iterator[list[ComposedPiece]]:
        """:meth:`compose`, a batch of up to :data:`BATCH` pieces at a time, so that a caller can write each
        batch before the next is made. ``progress`` is called with the grid steps composed, summed over pieces.
        A bad request is refused here, before the first batch is asked for.
        """
        if n < 1:
            raise UserError(f"n must be at least 1, got {n}")
        check_request(bars, self.temperature if temperature is None else temperature)
        z = self.latents(n, seed)
        meters, keys = self.choose(n, seed, key, meter)
        return self._batches(z, bars, seed, temperature, progress, meters, keys)

    def _batches(self, z: torch.Tensor, bars: int, seed: int, temperature: float | None,
                 progress: Callable[[int], None] | None, meters: np.ndarray,
                 keys: np.ndarray) -> Iterator[list[ComposedPiece]]:
        n = len(z)
        for first in range(0, n, BATCH):
            part = slice(first, min(n, first + BATCH))
            count = part.stop - first
            block_seed = seed if first == 0 else _block_seed(seed, first // BATCH)
            done = (lambda steps, c=count: progress(steps * c)) if progress else None
            grids = self.compose_latents(z[part], bars, seed=block_seed, temperature=temperature,
                                         meters=meters[part], keys=keys[part], progress=done)
            names = [f"seed{seed}-{i}" for i in range(first, part.stop)]
            yield self._pieces(grids, seed, names, [{"index": i} for i in range(first, part.stop)], meters[part],
                               keys[part])

    def compose_many(self, requests: list[tuple[int, int, int, float | None, str | None, str | None]],
                     progress: Callable[[int], None] | None = None) -> list[list[ComposedPiece]]:
        """Several ``(n, bars, seed, temperature, key, meter)`` requests in one batched pass (how the web app
        serves requests that arrive together); each gets exactly the pieces :meth:`compose` gives it alone.
        Each ``n`` is at most :data:`BATCH`. ``progress`` is called with the grid steps done after each chunk
        (it may raise to stop)."""
        blocks, chosen = [], []
        for n, bars, seed, temperature, key, meter in requests:
            if not 1 <= n <= BATCH:
                raise UserError(f"n must lie in 1..{BATCH}, got {n}")
            t = check_request(bars, self.temperature if temperature is None else temperature)
            z = self.latents(n, seed)
            meters, keys = self.choose(n, seed, key, meter)
            blocks.append((z, seed, t, self._condition(meters, keys)))
            chosen.append((meters, keys, self.steps(bars, meters)))
        device = next(self.generator.parameters()).device
        grids = sample_blocks(self.generator, [(z.to(device), s, t, c) for z, s, t, c in blocks],
                              int(max(steps.max() for _, _, steps in chosen)),
                              chunk_steps=CHUNK_BARS * self.steps_per_bar, progress=progress)
        return [self._pieces([g[:s] for g, s in zip(block, steps)], seed, [f"seed{seed}-{i}" for i in range(n)],
                             [{"index": i} for i in range(n)], meters, keys)
                for block, (meters, keys, steps), (n, _, seed, *_) in zip(grids, chosen, requests)]

    def interpolate(self, seed_a: int, seed_b: int, pieces: int = 5, bars: int = 4,
                    temperature: float | None = None) -> list[ComposedPiece]:
        """A walk of ``pieces`` pieces through latent space from the first piece of ``seed_a`` to that of
        ``seed_b``, both ends included.

        Only the latent vector moves; the sampling noise stays fixed, so what changes is the model's idea
        of the piece.
        """
        if pieces < 2:
            raise UserError(f"an interpolation needs at least 2 pieces, got {pieces}")
        za, zb = self.latents(1, seed_a)[0], self.latents(1, seed_b)[0]
        ts = np.linspace(0, 1, pieces)
        z = torch.stack([_slerp(za, zb, float(t)) for t in ts])
        meters, keys = (np.repeat(x, pieces) for x in self.choose(1, seed_a))  # the walk stays in one meter and key
        # the same sampling noise for every piece of the walk: compose them one by one from one seed
        grids = [self.compose_latents(z[i : i + 1], bars, seed=seed_a, temperature=temperature, meters=meters[:1],
                                      keys=keys[:1])[0]
                 for i in range(pieces)]
        names = [f"interp-{seed_a}-{seed_b}-{i}" for i in range(pieces)]
        return self._pieces(grids, seed_a, names, [{"t": float(t)} for t in ts], meters, keys)


def shipped_models() -> dict[str, Path]:
    """The models shipped in the package, by name (the default first)."""
    found = sorted(PRETRAINED_DIR.glob("*.safetensors"), key=lambda p: (p != DEFAULT_MODEL, p.stem))
    return {p.stem: p for p in found}


#: Key guidance a model may be exported with: 0 ignores the key's scale-degree bias, 1 composes as trained.
KEY_GUIDANCE_RANGE = (0.0, 4.0)


def check_key_guidance(weight: float) -> float:
    """Refuse, in one line, a key guidance outside :data:`KEY_GUIDANCE_RANGE`."""
    lo, hi = KEY_GUIDANCE_RANGE
    if not (isinstance(weight, (int, float)) and math.isfinite(weight) and lo <= weight <= hi):
        raise UserError(f"key guidance must lie in {lo:g}..{hi:g}, got {weight}")
    return float(weight)


def check_request(bars: int, temperature: float) -> float:
    """Refuse, in one line, a length or temperature no piece can come of (or that would run for hours)."""
    if not 1 <= bars <= MAX_BARS:
        raise UserError(f"bars must lie in 1..{MAX_BARS}, got {bars}")
    lo, hi = TEMPERATURE_RANGE
    if not (math.isfinite(temperature) and lo <= temperature <= hi):
        raise UserError(f"temperature must lie in {lo:g}..{hi:g}, got {temperature}")
    return float(temperature)


def _block_seed(seed: int, block: int) -> int:
    """The sampling seed of the ``block``-th batch of a request (the first uses ``seed`` itself)."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{block}".encode()).digest()[:4], "big")


def concatenate(pieces: list[ComposedPiece], gap_bars: int = 1) -> Piece:
    """One piece that plays ``pieces`` in turn, with ``gap_bars`` of rest between them."""
    if not pieces:
        raise UserError("nothing to concatenate")
    first = pieces[0]
    spq = first.encoding.steps_per_quarter
    bar_q = first.encoding.steps_per_bar(first.meter) / spq
    offset, parts = 0.0, []
    for cp in pieces:
        p = cp.piece
        parts.append((p.pitch, p.start + offset, p.duration))
        offset += (len(cp.grid) / spq) + gap_bars * bar_q
    return Piece(np.concatenate([a for a, _, _ in parts]), np.concatenate([b for _, b, _ in parts]),
                 np.concatenate([c for _, _, c in parts]), first.piece.tempo, first.piece.time_signature,
                 "interpolation")
