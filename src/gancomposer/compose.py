"""Composing with a trained generator: the Python API behind ``generate``, ``interpolate`` and the web app.

    from gancomposer import Composer

    composer = Composer.load()                 # the pretrained Bach-chorale model shipped in the package
    pieces = composer.compose(n=4, bars=8, seed=0)
    pieces[0].save_midi("chorale.mid")
    pieces[0].save_wav("chorale.wav")
    pieces[0].save_png("chorale.png")
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import checkpoint
from .config import from_stored
from .encoding import Encoding
from .model import Generator
from .piece import MusicError, Piece
from .render import roll_to_piece

PRETRAINED_DIR = Path(__file__).parent / "pretrained"
DEFAULT_MODEL = PRETRAINED_DIR / "bach-chorales.safetensors"
#: Seeds are drawn from this range (kept to 32 bits so a seed fits anywhere, JSON and JavaScript included).
MAX_SEED = 2**32 - 1


@dataclass
class ComposedPiece:
    """One composed piece: its roll on the grid, the decoded notes, and how to save it."""

    roll: np.ndarray  # (steps, pitches) OFF/ONSET/HOLD
    piece: Piece
    encoding: Encoding
    program: int = 0
    seed: int = 0
    meta: dict = field(default_factory=dict)

    def save_midi(self, path: str | os.PathLike) -> Path:
        from .io.midi import write_midi

        write_midi(self.piece, path, program=self.program)
        return Path(path)

    def save_wav(self, path: str | os.PathLike, *, engine: str = "auto") -> str:
        """Write audio; returns the engine used ("fluidsynth" or "numpy")."""
        from .audio import render_wav

        return render_wav(self.piece, path, program=self.program, engine=engine)

    def save_png(self, path: str | os.PathLike) -> Path:
        from .plots import save_roll_png

        save_roll_png(self.roll, self.encoding, path, steps_per_bar=self.encoding.steps_per_bar((4, 4)),
                      title=self.piece.name)
        return Path(path)


def _slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation: Gaussian latents keep their typical norm along the way."""
    an, bn = a / a.norm(), b / b.norm()
    omega = torch.arccos((an * bn).sum().clamp(-1 + 1e-7, 1 - 1e-7))
    if omega.abs() < 1e-6:
        return (1 - t) * a + t * b
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)


class Composer:
    """A generator ready to compose, loaded from a checkpoint, a run folder or the shipped model."""

    def __init__(self, generator: Generator, encoding: Encoding, *, tempo: float = 100.0, program: int = 0,
                 name: str = "model", info: dict | None = None, temperature: float = 1.0):
        self.generator = generator.eval()
        self.encoding = encoding
        self.temperature = temperature  # the default; set at export (`gancomposer export --temperature`)
        self.tempo, self.program, self.name = tempo, program, name
        self.info = info or {}
        self.steps_per_bar = encoding.steps_per_bar((4, 4))

    @classmethod
    def load(cls, path: str | os.PathLike | None = None, *, device: str = "cpu") -> Composer:
        """Load a checkpoint file or run folder (its best checkpoint); None loads the shipped model.

        The moving average of G's weights is used when the checkpoint has one.
        """
        if path is None:
            if not DEFAULT_MODEL.is_file():
                raise MusicError(f"the pretrained model is missing from this installation ({DEFAULT_MODEL})")
            path = DEFAULT_MODEL
        file = checkpoint.find(path, prefer="best")
        groups, info = checkpoint.load(file)
        cfg = from_stored(info["config"], f"{file} config")
        enc = Encoding.from_dict(info["data"]["encoding"])
        g = Generator.from_config(cfg, enc.n_pitches, enc.steps_per_bar((4, 4)))
        weights = groups.get("G_ema") or groups.get("G")
        if weights is None:
            raise MusicError(f"{file}: holds no generator weights")
        try:
            g.load_state_dict(weights)
        except RuntimeError as e:
            raise MusicError(f"{file}: weights do not fit the stored config ({str(e).splitlines()[0]})") from None
        data = info["data"]
        program = data.get("program", 19 if data.get("corpus") == "bach-chorales" else 0)
        return cls(g.to(device), enc, tempo=float(data.get("tempo", 100.0)), program=int(program),
                   name=Path(path).stem if Path(path).is_file() else Path(path).name, info=info,
                   temperature=float(info.get("temperature", 1.0)))

    @property
    def latent_dim(self) -> int:
        return self.generator.latent_dim

    def latents(self, n: int, seed: int) -> torch.Tensor:
        """The latent vectors of ``n`` pieces for ``seed``."""
        if not 0 <= seed <= MAX_SEED:
            raise MusicError(f"seed must lie in 0..{MAX_SEED}, got {seed}")
        gen = torch.Generator().manual_seed(seed)
        return torch.randn(n, self.latent_dim, generator=gen)

    def compose_latents(self, z: torch.Tensor, bars: int, *, seed: int = 0, temperature: float | None = None,
                        chunk_bars: int = 4) -> list[np.ndarray]:
        """Rolls for the latents ``z`` (one batched pass), ``bars`` bars long.

        Pieces longer than a chunk are composed chunk by chunk with the recurrent state, the last output
        and the bar position carried on, so a long piece is one continuous performance of G.
        """
        if bars < 1:
            raise MusicError(f"bars must be at least 1, got {bars}")
        temperature = self.temperature if temperature is None else temperature
        if temperature <= 0:
            raise MusicError(f"temperature must be positive, got {temperature}")
        gen = torch.Generator().manual_seed(seed)
        device = next(self.generator.parameters()).device
        z = z.to(device)
        parts, carry, left = [], None, bars * self.steps_per_bar
        with torch.no_grad():
            while left > 0:
                steps = min(left, chunk_bars * self.steps_per_bar)
                onehot, _, carry = self.generator(z, steps, generator=gen, temperature=temperature, carry=carry)
                parts.append(onehot.argmax(-1).to(torch.uint8).cpu().numpy())
                left -= steps
        rolls = np.concatenate(parts, axis=1)
        return list(rolls)

    def _pieces(self, rolls: list[np.ndarray], seed: int, names: list[str], meta: list[dict]) -> list[ComposedPiece]:
        return [
            ComposedPiece(roll, roll_to_piece(roll, self.encoding, tempo=self.tempo, name=name), self.encoding,
                          self.program, seed, m)
            for roll, name, m in zip(rolls, names, meta)
        ]

    def compose(self, n: int = 4, bars: int = 8, seed: int = 0,
                temperature: float | None = None) -> list[ComposedPiece]:
        """``n`` new pieces of ``bars`` bars, in one batched pass; the same (n, seed) always gives the same music.

        ``temperature`` scales G's logits before each draw (< 1 safer, > 1 wilder); None uses the model's own.
        """
        if n < 1:
            raise MusicError(f"n must be at least 1, got {n}")
        rolls = self.compose_latents(self.latents(n, seed), bars, seed=seed, temperature=temperature)
        names = [f"seed{seed}-{i}" for i in range(n)]
        return self._pieces(rolls, seed, names, [{"index": i} for i in range(n)])

    def interpolate(self, seed_a: int, seed_b: int, steps: int = 5, bars: int = 4,
                    temperature: float | None = None) -> list[ComposedPiece]:
        """A walk through latent space from the first piece of ``seed_a`` to that of ``seed_b``.

        Only the latent vector moves; the sampling noise stays fixed, so what changes is the model's idea
        of the piece.
        """
        if steps < 2:
            raise MusicError(f"an interpolation needs at least 2 steps, got {steps}")
        za, zb = self.latents(1, seed_a)[0], self.latents(1, seed_b)[0]
        ts = np.linspace(0, 1, steps)
        z = torch.stack([_slerp(za, zb, float(t)) for t in ts])
        # the same sampling noise for every piece of the walk: compose them one by one from one seed
        rolls = [self.compose_latents(z[i : i + 1], bars, seed=seed_a, temperature=temperature)[0]
                 for i in range(steps)]
        names = [f"interp-{seed_a}-{seed_b}-{i}" for i in range(steps)]
        return self._pieces(rolls, seed_a, names, [{"t": float(t)} for t in ts])


def concatenate(pieces: list[ComposedPiece], gap_bars: int = 1) -> Piece:
    """One piece that plays ``pieces`` in turn, with ``gap_bars`` of rest between them."""
    if not pieces:
        raise MusicError("nothing to concatenate")
    enc = pieces[0].encoding
    bar_q = enc.steps_per_bar((4, 4)) / enc.steps_per_quarter
    offset, parts = 0.0, []
    for cp in pieces:
        p = cp.piece
        parts.append((p.pitch, p.start + offset, p.duration))
        offset += (len(cp.roll) / enc.steps_per_quarter) + gap_bars * bar_q
    first = pieces[0].piece
    return Piece(np.concatenate([a for a, _, _ in parts]), np.concatenate([b for _, b, _ in parts]),
                 np.concatenate([c for _, _, c in parts]), first.tempo, first.time_signature, "interpolation")
