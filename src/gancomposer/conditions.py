"""What a piece is composed under besides noise: its meter and its key.

Each training window is labelled with its piece's meter (an index into the dataset's own list of meters) and
the key it is in (one of the 24 major and minor keys, estimated once per window; a transposed copy carries its
moved key); each piece's key is estimated once too, for the style's mix.
G and D are conditioned on both. At sampling, a meter or key the user does not fix is drawn from the style's
own mix: the table of how many pieces of the corpus are in each (meter, key), so that a set of composed pieces
has the style's meters and keys, and a fixed meter gets the keys that go with it in that style.
This module imports no torch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .errors import UserError
from .piece import Piece
from .theory import estimate_key, key_indices

TONICS = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
MODES = ("major", "minor")
#: The 24 keys, index = 12 * mode + tonic pitch class: "C major" is 0, "A minor" is 21.
KEYS = tuple(f"{t} {m}" for m in MODES for t in TONICS)
N_KEYS = len(KEYS)
_LETTERS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


def key_index(tonic: int, mode: str) -> int:
    """The index of the key with tonic pitch class ``tonic`` and ``mode`` ('major' or 'minor')."""
    return 12 * MODES.index(mode) + tonic % 12


def key_of(piece: Piece) -> int:
    """The piece's key as an index into :data:`KEYS` (Krumhansl–Kessler profiles, see :func:`estimate_key`)."""
    return key_index(*estimate_key(piece))


def window_keys(grid: np.ndarray, starts: list[int], steps: int, enc) -> list[int]:
    """The key of each window ``grid[s : s + steps]`` of a piece encoded by ``enc`` (an
    :class:`~.encoding.Encoding`): the estimate of :func:`key_of`, from the grid steps each pitch sounds."""
    roll = enc.to_roll(grid) > 0
    sounding = np.concatenate([np.zeros((1, roll.shape[1])), np.cumsum(roll, 0)])  # steps sounding before t
    ends = np.minimum(np.asarray(starts, int) + steps, len(roll))
    per_pitch = sounding[ends] - sounding[np.asarray(starts, int)]
    to_class = np.eye(12)[(enc.low + np.arange(roll.shape[1])) % 12]
    return key_indices(per_pitch @ to_class).tolist() if len(starts) else []


def transpose_key(key: int, semitones: int) -> int:
    """The key a piece in ``key`` is in after moving it by ``semitones``."""
    return 12 * (key // 12) + (key + semitones) % 12


def parse_key(name: str) -> int:
    """``"D minor"``, ``"d minor"``, ``"F# major"``, ``"Bb"`` (major), ``"Bbm"`` or ``"c#m"`` -> a key index;
    anything else is refused in one line listing the valid names."""
    m = re.fullmatch(r"\s*([A-Ga-g])\s*(#|b|♯|♭)?\s*(major|minor|maj|min|m|)\s*", name or "", re.IGNORECASE)
    if not m:
        raise UserError(f"unknown key {name!r}; valid keys: {', '.join(KEYS)}")
    letter, accidental, mode = m.groups()
    tonic = _LETTERS[letter.upper()] + {"#": 1, "♯": 1, "b": -1, "♭": -1}.get(accidental or "", 0)
    minor = mode.lower() in ("minor", "min", "m") or (mode == "" and letter.islower())
    return key_index(tonic, "minor" if minor else "major")


def meter_name(meter: tuple[int, int]) -> str:
    return f"{meter[0]}/{meter[1]}"


def parse_meter(name: str, meters: list[tuple[int, int]]) -> int:
    """``"6/8"`` -> its index in ``meters`` (a model's meters); refused in one line listing them otherwise."""
    m = re.fullmatch(r"\s*(\d{1,3})\s*/\s*(\d{1,3})\s*", name or "")
    meter = (int(m.group(1)), int(m.group(2))) if m else None
    if meter not in meters:
        raise UserError(f"unknown meter {name!r} for this model; its meters: "
                        f"{', '.join(meter_name(x) for x in meters)}")
    return meters.index(meter)


def window_bars(meter: tuple[int, int], quarters: float) -> int:
    """Whole bars of ``meter`` in a training window of about ``quarters`` quarter notes (at least one), so that
    windows of every meter last about as long: 4 bars of 4/4, 5 of 3/4 or 6/8, 4 of 9/8, 8 of 2/4."""
    bar = meter[0] * 4 / meter[1]
    return max(1, int(np.floor(quarters / bar + 0.5)))


@dataclass
class Conditions:
    """A dataset's (and its models') meters and the style's mix of meters and keys.

    Attributes:
        meters: the meters, most common first; a window's meter label indexes this list.
        window_steps: grid steps of a training window in each meter (whole bars).
        counts: ``(len(meters), 24)`` pieces per (meter, key) in the corpus, untransposed.
        keyed: whether windows carry key labels (False for models made before keys were learned).
    """

    meters: list[tuple[int, int]]
    window_steps: list[int]
    counts: np.ndarray
    keyed: bool = True

    def __post_init__(self) -> None:
        self.meters = [tuple(int(x) for x in m) for m in self.meters]
        self.window_steps = [int(s) for s in self.window_steps]
        self.counts = np.asarray(self.counts, dtype=np.float64).reshape(len(self.meters), N_KEYS)

    @property
    def n_keys(self) -> int:
        """Keys the networks are conditioned on: 24, or 0 when there are no key labels."""
        return N_KEYS if self.keyed else 0

    def to_dict(self) -> dict:
        return {"meters": [list(m) for m in self.meters], "window_steps": self.window_steps,
                "counts": self.counts.astype(int).tolist(), "keyed": self.keyed}

    @classmethod
    def from_dict(cls, d: dict) -> Conditions:
        return cls(d["meters"], d["window_steps"], d["counts"], bool(d.get("keyed", True)))

    @classmethod
    def single(cls, meter: tuple[int, int], window_steps: int) -> Conditions:
        """One meter and no keys: what a model made before meters and keys were learned was trained on."""
        return cls([meter], [window_steps], np.ones((1, N_KEYS)), keyed=False)

    def shares(self) -> tuple[dict[str, float], dict[str, float]]:
        """The style's share of pieces in each meter and in each key (keys empty when not keyed), most common
        first."""
        total = self.counts.sum() or 1.0
        meters = {meter_name(m): float(c / total) for m, c in zip(self.meters, self.counts.sum(1))}
        keys = {KEYS[k]: float(c / total) for k, c in enumerate(self.counts.sum(0)) if c} if self.keyed else {}
        order = lambda d: dict(sorted(d.items(), key=lambda kv: -kv[1]))  # noqa: E731
        return order(meters), order(keys)

    def draw(self, n: int, seed: int, meter: int | None = None, key: int | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
        """``n`` (meter, key) index pairs drawn from the style's mix; a fixed ``meter`` or ``key`` is kept and
        the other drawn given it (from the whole mix when the style never pairs them). Deterministic in
        ``seed``; with neither fixed and a single meter and no keys, all zeros."""
        rng = np.random.default_rng([seed, 0x6B6579])
        table = self.counts.copy()
        if meter is not None:
            table[np.arange(len(table)) != meter] = 0
        if key is not None:
            table[:, np.arange(N_KEYS) != key] = 0
        if not table.sum():  # the style never has this meter with this key: draw each from its own margin
            table = np.outer(self.counts.sum(1) if meter is None else np.eye(len(self.meters))[meter],
                             self.counts.sum(0) if key is None else np.eye(N_KEYS)[key])
            table = table if table.sum() else np.ones_like(self.counts)
        cells = rng.choice(table.size, size=n, p=(table / table.sum()).reshape(-1))
        meters, keys = np.divmod(cells, N_KEYS)
        return meters.astype(np.int64), keys.astype(np.int64)
