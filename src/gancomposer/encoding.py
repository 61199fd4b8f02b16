"""Encodings: how a piece becomes a grid of categorical cells on a time grid, and back.

:class:`Encoding` is the one interface that the model, training, sampling and evaluation use: a piece is a
``(steps, cells)`` array of small integers, each cell one of ``states`` categories, state 0 meaning that
nothing sounds there. The networks see each cell as the one-hot of its state without state 0, so a silent
cell is all zeros (:attr:`Encoding.features_per_step` numbers per grid step). A second encoding is a second
implementation of this interface.

:class:`PianoRoll`, the encoding of today's models, has a cell per pitch. Each cell holds one of three states::

    OFF   = 0   the pitch is silent in this step
    ONSET = 1   a note of this pitch starts in this step
    HOLD  = 2   a note of this pitch, started earlier, still sounds

Keeping ONSET apart from HOLD is what lets repeated notes survive (``C C`` is ``1 2 1 2``, not ``1 2 2 2``),
and a grid column per pitch keeps any polyphony. Example: a C4 half note under two E4 quarter notes on a
16th grid (4 steps per quarter)::

    step   0 1 2 3 4 5 6 7
    E4     1 2 2 2 1 2 2 2
    C4     1 2 2 2 2 2 2 2

A piano roll holds at most one sounding note per pitch, so two voices on one pitch at once (a unison) become
one note: the canonical on-grid form (:func:`snap_to_grid`) sounds a pitch over the union of its notes and
starts a new note at every onset, as a synthesizer playing one MIDI channel does. For on-grid music,
``decode(encode(piece))`` equals ``snap_to_grid(piece)`` exactly.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import ClassVar

import numpy as np

from .piece import Piece

OFF, ONSET, HOLD = 0, 1, 2
N_STATES = 3
#: The meter that windows, bar positions and decoded pieces assume until a dataset records another.
DEFAULT_METER: tuple[int, int] = (4, 4)


class Encoding(ABC):
    """A piece as a ``(steps, cells)`` grid of categorical states on a grid of ``steps_per_quarter``.

    Implementations are frozen dataclasses registered in :data:`ENCODINGS` under their ``kind``.
    """

    kind: ClassVar[str]
    steps_per_quarter: int

    @property
    @abstractmethod
    def cells(self) -> int:
        """Categorical cells per grid step."""

    @property
    @abstractmethod
    def states(self) -> int:
        """Categories per cell; state 0 means nothing sounds in the cell."""

    @property
    def features_per_step(self) -> int:
        """Numbers per grid step the networks see: each cell's one-hot without state 0."""
        return self.cells * (self.states - 1)

    def steps_per_bar(self, meter: tuple[int, int] = DEFAULT_METER) -> int:
        """Grid steps in one bar of ``meter`` (numerator, denominator)."""
        num, den = meter
        return int(round(num * 4 * self.steps_per_quarter / den))

    @property
    def chord_block(self) -> int:
        """Cells G draws together within one grid step, each block seeing the blocks drawn before it: one (every
        cell sees every cell before it) unless an encoding has too many cells for that to be fast."""
        return 1

    @property
    @abstractmethod
    def hold_state(self) -> int:
        """The state that carries a cell's note on from the step before; every state but 0 and this one
        starts a note."""

    def longest_still(self, grids: np.ndarray) -> int:
        """The most grid steps in a row, in any of ``grids`` ``(N, steps, cells)``, in which something sounds
        and nothing starts (a held chord; a fermata)."""
        longest = 0
        for lo in range(0, len(grids), 4096):  # a memory map of any size, a slice at a time
            g = np.asarray(grids[lo : lo + 4096])
            sounding = (g != 0).any(2)
            moving = ((g != 0) & (g != self.hold_state)).any(2) | ~sounding
            run = np.zeros(len(g), dtype=np.int64)
            for t in range(g.shape[1]):
                run = np.where(moving[:, t], 0, run + 1)
                longest = max(longest, int(run.max()))
        return longest

    @abstractmethod
    def encode(self, piece: Piece, n_steps: int | None = None) -> np.ndarray:
        """``piece`` as a ``(steps, cells)`` uint8 grid; ``n_steps`` pads with silence or cuts."""

    def follows_parts(self, piece: Piece) -> bool:
        """Whether :meth:`encode` writes ``piece``'s parts (score parts, MIDI tracks) as its cells."""
        return False

    @abstractmethod
    def decode(self, grid: np.ndarray, *, tempo: float = 100.0, meter: tuple[int, int] = DEFAULT_METER,
               name: str = "") -> Piece:
        """The notes of a ``(steps, cells)`` grid."""

    @abstractmethod
    def state_pitch_classes(self) -> np.ndarray:
        """``(cells, states)``: the pitch class of the note each state of each cell sounds, -1 for a state that
        sounds no pitch of its own (what lets a model learn what a key means once, by scale degree)."""

    @property
    def roll(self) -> PianoRoll:
        """The piano roll over the same pitches and grid: what metrics, baselines and pictures read."""
        return PianoRoll(self.steps_per_quarter, self.low, self.high)

    def to_roll(self, grid: np.ndarray) -> np.ndarray:
        """``grid`` as a roll of :attr:`roll`."""
        return self.roll.encode(self.decode(grid), n_steps=len(grid))

    def to_dict(self) -> dict:
        return {"kind": self.kind, **asdict(self)}

    @staticmethod
    def from_dict(d: dict) -> Encoding:
        """The encoding a dict from :meth:`to_dict` describes (a dict without ``kind`` is a piano roll)."""
        kind = d.get("kind", PianoRoll.kind)
        if kind not in ENCODINGS:
            raise ValueError(f"unknown encoding {kind!r}; this version knows {', '.join(ENCODINGS)}")
        return ENCODINGS[kind].from_fields(d)


@dataclass(frozen=True)
class PianoRoll(Encoding):
    """A cell per pitch in ``low..high``, each OFF, ONSET or HOLD.

    Attributes:
        steps_per_quarter: grid resolution; 4 means a 16th-note grid.
        low: lowest MIDI pitch kept (inclusive).
        high: highest MIDI pitch kept (inclusive).
    """

    kind: ClassVar[str] = "roll"
    steps_per_quarter: int = 4
    low: int = 36
    high: int = 84

    def __post_init__(self) -> None:
        if not 1 <= self.steps_per_quarter <= 96:
            raise ValueError(f"steps_per_quarter must lie in 1..96, got {self.steps_per_quarter}")
        if not 0 <= self.low <= self.high <= 127:
            raise ValueError(f"need 0 <= low <= high <= 127, got low={self.low}, high={self.high}")

    @property
    def n_pitches(self) -> int:
        return self.high - self.low + 1

    @property
    def cells(self) -> int:
        return self.n_pitches

    @property
    def states(self) -> int:
        return N_STATES

    @property
    def hold_state(self) -> int:
        return HOLD

    @property
    def chord_block(self) -> int:
        # three semitones hold two voices only a second apart, which chorales rarely have, and drawing three
        # pitches at once makes sampling three times faster than one pitch at a time
        return 3

    @classmethod
    def from_fields(cls, d: dict) -> PianoRoll:
        return cls(**{k: int(d[k]) for k in ("steps_per_quarter", "low", "high")})

    @property
    def roll(self) -> PianoRoll:
        return self

    def state_pitch_classes(self) -> np.ndarray:
        pcs = np.repeat(((self.low + np.arange(self.cells)) % 12)[:, None], self.states, axis=1)
        pcs[:, OFF] = -1
        return pcs

    def to_roll(self, grid: np.ndarray) -> np.ndarray:
        return np.asarray(grid)

    def encode(self, piece: Piece, n_steps: int | None = None) -> np.ndarray:
        return encode_roll(piece, self, n_steps)

    def decode(self, grid: np.ndarray, *, tempo: float = 100.0, meter: tuple[int, int] = DEFAULT_METER,
               name: str = "") -> Piece:
        return decode_roll(grid, self, tempo=tempo, meter=meter, name=name)


REST, TIE = 0, 1  # the two states of a voice cell that are not a new note


@dataclass(frozen=True)
class Voices(Encoding):
    """``voices`` monophonic lines, top first, on one grid: each cell is REST, TIE (the voice's note goes on) or
    the onset of one pitch in ``low..high``, so a melody is a melody by construction and a voice never has two
    notes at once. Notes go to voices by pitch order at each onset, held notes keeping their voice; a note that
    finds no free voice takes over the one whose note started first (ending it). With ``by_parts``, a piece whose
    parts (score parts, MIDI tracks) are single lines, no more of them than voices, gets a voice per part
    instead, highest part first, so crossing parts keep their lines. For music of at most
    ``voices`` notes at a time on the grid, ``decode(encode(piece))`` equals ``snap_to_grid(piece)``.

    Attributes:
        steps_per_quarter: grid resolution; 4 means a 16th-note grid.
        low, high: the pitch range (inclusive).
        voices: the number of lines (1 for a melody).
        by_parts: voices from the piece's parts where they are lines (else by pitch order).
    """

    kind: ClassVar[str] = "voices"
    steps_per_quarter: int = 4
    low: int = 36
    high: int = 84
    voices: int = 1
    by_parts: bool = False

    def __post_init__(self) -> None:
        PianoRoll.__post_init__(self)  # the same checks of grid and range
        if not 1 <= self.voices <= 16:
            raise ValueError(f"voices must lie in 1..16, got {self.voices}")

    @property
    def cells(self) -> int:
        return self.voices

    @property
    def states(self) -> int:
        return 2 + self.high - self.low + 1

    @property
    def hold_state(self) -> int:
        return TIE

    def state_pitch_classes(self) -> np.ndarray:
        pcs = np.concatenate([[-1, -1], (self.low + np.arange(self.high - self.low + 1)) % 12])
        return np.repeat(pcs[None], self.voices, axis=0)

    @classmethod
    def from_fields(cls, d: dict) -> Voices:
        return cls(**{k: int(d[k]) for k in ("steps_per_quarter", "low", "high", "voices")},
                   by_parts=bool(d.get("by_parts", False)))

    def _grid_notes(self, piece: Piece) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        """Onset and end steps, pitch and part (None without parts) of the piece's notes in range."""
        keep = in_range(piece, self)
        on, off = grid_times(piece, self.steps_per_quarter)
        return (on[keep], off[keep], piece.pitch[keep].astype(np.int64),
                None if piece.part is None else piece.part[keep])

    def encode(self, piece: Piece, n_steps: int | None = None) -> np.ndarray:
        on, off, pitch, part = self._grid_notes(piece)
        steps = int(off.max()) if len(off) else 0
        grid = np.zeros((max(steps, n_steps or 0), self.voices), np.uint8)
        lines = self._part_lines(part, on, off, pitch)
        if lines is not None:  # each part is a line: it keeps its voice (crossings and all)
            _write_notes(grid, lines, on, off, (2 + pitch - self.low).astype(np.uint8))
            return grid[:n_steps] if n_steps is not None else grid[:steps]
        order = np.lexsort((-pitch, on))  # by onset, then from the top down
        on, off, state = on[order], off[order].copy(), (2 + pitch[order] - self.low).astype(np.uint8)
        ends, starts = [0] * self.voices, [-1] * self.voices  # the note each voice holds...
        last = [0] * self.voices  # ...and its number
        assigned, voices = [-1] * len(on), range(self.voices)
        for j, (a, b) in enumerate(zip(on.tolist(), off.tolist())):
            for v in voices:  # the first free voice
                if ends[v] <= a and starts[v] != a:
                    break
            else:  # every voice busy: the note started first gives way, unless all started here too
                v = min(voices, key=starts.__getitem__)
                if starts[v] == a:
                    continue
                off[last[v]] = a  # the note given up ends where this one starts
            assigned[j], last[v], ends[v], starts[v] = v, j, b, a
        voice = np.asarray(assigned, np.int64)
        kept = voice >= 0
        _write_notes(grid, voice[kept], on[kept], off[kept], state[kept])
        return grid[:n_steps] if n_steps is not None else grid[:steps]

    def follows_parts(self, piece: Piece) -> bool:
        if not self.by_parts or piece.part is None:
            return False
        on, off, pitch, part = self._grid_notes(piece)
        return self._part_lines(part, on, off, pitch) is not None

    def _part_lines(self, part: np.ndarray | None, on: np.ndarray, off: np.ndarray, pitch: np.ndarray
                    ) -> np.ndarray | None:
        """The voice of each note when the piece's parts can be its voices: at least two parts and no more than
        the voices, each a single line on the grid (no two of its notes overlap); the highest part (by mean
        pitch) is voice 0. None otherwise (the notes are then split by pitch order)."""
        if not self.by_parts or part is None or not len(part):
            return None
        names, idx = np.unique(part, return_inverse=True)
        if not 2 <= len(names) <= self.voices:
            return None
        order = np.lexsort((on, idx))
        same = idx[order][1:] == idx[order][:-1]
        if (same & (on[order][1:] < off[order][:-1])).any():  # a part with two notes at once
            return None
        height = np.bincount(idx, weights=pitch) / np.bincount(idx)
        rank = np.empty(len(names), np.int64)
        rank[np.argsort(-height, kind="stable")] = np.arange(len(names))
        return rank[idx]

    def decode(self, grid: np.ndarray, *, tempo: float = 100.0, meter: tuple[int, int] = DEFAULT_METER,
               name: str = "") -> Piece:
        grid = np.asarray(grid)
        if grid.ndim != 2 or grid.shape[1] != self.voices:
            raise ValueError(f"expected a grid of shape (steps, {self.voices}), got {grid.shape}")
        # a note starts at each onset cell and lasts through the TIE cells after it (a TIE after a rest is silence)
        v, s = np.nonzero(grid.T >= 2)
        cols = np.concatenate([grid.T, np.full((self.voices, 1), REST, grid.dtype)], axis=1).reshape(-1)
        idx = np.arange(len(cols))
        next_not_tie = np.minimum.accumulate(np.where(cols != TIE, idx, len(cols))[::-1])[::-1]
        flat = v * (grid.shape[0] + 1) + s
        length = next_not_tie[flat + 1] - flat
        spq = self.steps_per_quarter
        return Piece(grid[s, v].astype(np.int64) - 2 + self.low, s / spq, length / spq, tempo, meter, name, part=v)


def _write_notes(grid: np.ndarray, voice: np.ndarray, start: np.ndarray, end: np.ndarray, state: np.ndarray
                 ) -> None:
    """Write notes into a voices grid: each its onset state, then TIE up to its end (notes of one voice must not
    overlap)."""
    held = np.maximum(end - start - 1, 0)
    first = np.repeat(start + 1 - np.cumsum(held) + held, held)  # where each note's run of TIE cells begins
    grid[first + np.arange(len(first)), np.repeat(voice, held)] = TIE
    grid[start, voice] = state


ENCODINGS: dict[str, type[Encoding]] = {PianoRoll.kind: PianoRoll, Voices.kind: Voices}


def pitch_span(pieces: list[Piece]) -> tuple[int, int]:
    """The lowest and highest pitch used across ``pieces``."""
    used = [p.pitch for p in pieces if len(p)]
    if not used:
        raise ValueError("cannot fit a pitch range to pieces without notes")
    allp = np.concatenate(used)
    return int(allp.min()), int(allp.max())


#: A group of pitches cut off from the rest by more than this many unused semitones is an outlier candidate.
OUTLIER_GAP = 12


def fit_pitch_range(pieces: list[Piece], coverage: float = 0.999) -> tuple[int, int]:
    """A pitch range for training that one odd file cannot widen.

    Pitches fall into groups separated by gaps of more than an octave. A group is kept when it is the largest,
    or when it holds at least 1 % of the notes and more than one piece uses it (any piece, if there is only
    one), so stray notes of a single file far above or below the style are left out. Within what is kept, the
    range is the narrowest one holding ``coverage`` of the notes, the rest split evenly between the two ends.
    Notes outside are dropped when encoding (counted with :func:`in_range`).
    """
    used = [p for p in pieces if len(p)]
    if not used:
        raise ValueError("cannot fit a pitch range to pieces without notes")
    uses = np.zeros((len(used), 128), bool)  # which pitches each piece uses
    counts = np.zeros(128, np.int64)
    for i, p in enumerate(used):
        pitches = np.clip(p.pitch.astype(np.int64), 0, 127)
        counts += np.bincount(pitches, minlength=128)
        uses[i, pitches] = True
    total, min_support = counts.sum(), min(2, len(used))
    present = np.flatnonzero(counts)
    groups = np.split(present, np.flatnonzero(np.diff(present) > OUTLIER_GAP + 1) + 1)
    largest = max(range(len(groups)), key=lambda i: counts[groups[i]].sum())
    keep = [g for i, g in enumerate(groups) if i == largest
            or (counts[g].sum() >= 0.01 * total and uses[:, g].any(axis=1).sum() >= min_support)]
    lo, hi = int(min(g[0] for g in keep)), int(max(g[-1] for g in keep))
    kept = counts.copy()
    kept[:lo] = kept[hi + 1:] = 0
    tail = (1.0 - coverage) / 2 * kept.sum()
    below, above = np.cumsum(kept), np.cumsum(kept[::-1])[::-1]
    lo = max(lo, int(np.flatnonzero(below > tail)[0]))
    hi = min(hi, int(np.flatnonzero(above > tail)[-1]))
    return lo, hi


def grid_times(piece: Piece, steps_per_quarter: int) -> tuple[np.ndarray, np.ndarray]:
    """Onset and offset of every note in grid steps (rounded; every note lasts at least one step)."""
    on = np.round(piece.start * steps_per_quarter).astype(np.int64)
    off = np.round((piece.start + piece.duration) * steps_per_quarter).astype(np.int64)
    return on, np.maximum(off, on + 1)


def snap_to_grid(piece: Piece, steps_per_quarter: int = 4) -> Piece:
    """The canonical on-grid form of ``piece``: what the grid can hold, computed note by note.

    Times are rounded to the grid (at least one step long). For each pitch, the pitch sounds over the
    union of its notes, and each distinct onset starts a note that lasts to the next onset or to the end of
    that sounding stretch. This is a plain reference implementation, independent of :func:`encode`.
    """
    on, off = grid_times(piece, steps_per_quarter)
    out_p, out_s, out_e = [], [], []
    for p in np.unique(piece.pitch).tolist():
        sel = piece.pitch == p
        intervals = sorted(zip(on[sel].tolist(), off[sel].tolist()))
        spans: list[list[int]] = []
        for a, b in intervals:
            if spans and a <= spans[-1][1]:
                spans[-1][1] = max(spans[-1][1], b)
            else:
                spans.append([a, b])
        onsets = sorted(set(on[sel].tolist()))
        for a, b in spans:
            inside = [o for o in onsets if a <= o < b]
            for i, o in enumerate(inside):
                out_p.append(p)
                out_s.append(o)
                out_e.append(inside[i + 1] if i + 1 < len(inside) else b)
    s = np.asarray(out_s, dtype=np.float64)
    e = np.asarray(out_e, dtype=np.float64)
    return Piece(
        np.asarray(out_p), s / steps_per_quarter, (e - s) / steps_per_quarter,
        piece.tempo, piece.time_signature, piece.name,
    )


def in_range(piece: Piece, enc: Encoding) -> np.ndarray:
    """Boolean mask of the notes whose pitch lies in the encoding's range."""
    return (piece.pitch >= enc.low) & (piece.pitch <= enc.high)


def encode_roll(piece: Piece, enc: PianoRoll, n_steps: int | None = None) -> np.ndarray:
    """Encode ``piece`` as a ``(steps, enc.n_pitches)`` uint8 roll of OFF/ONSET/HOLD.

    Notes outside the pitch range are left out (count them first with :func:`in_range`). ``n_steps`` pads
    or cuts the roll to a length; by default it ends where the last note ends.
    """
    keep = in_range(piece, enc)
    on, off = grid_times(piece, enc.steps_per_quarter)
    on, off, col = on[keep], off[keep], (piece.pitch[keep] - enc.low).astype(np.int64)
    steps = int(off.max()) if len(off) else 0
    # Sounding cells via a difference array: +1 at each onset, -1 at each offset, then a running sum.
    size = (steps + 1) * enc.n_pitches
    diff = np.bincount(on * enc.n_pitches + col, minlength=size)
    diff -= np.bincount(off * enc.n_pitches + col, minlength=size)
    sounding = np.cumsum(diff.reshape(steps + 1, enc.n_pitches)[:steps], axis=0) > 0
    roll = sounding.view(np.uint8) * np.uint8(HOLD)
    roll[on, col] = ONSET
    if n_steps is not None:
        if n_steps <= steps:
            roll = roll[:n_steps]
        else:
            roll = np.concatenate([roll, np.zeros((n_steps - steps, enc.n_pitches), np.uint8)])
    return roll


def note_runs(roll: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(column, start step, length in steps)`` of every note in a roll.

    A note starts at every ONSET, and at a HOLD that follows silence (a generator may emit that);
    it lasts while the following cells are HOLD.
    """
    steps, pitches = roll.shape
    # Work per pitch on one flat row with a silent cell after each pitch's steps, so runs never cross pitches.
    cols = np.concatenate([roll.T, np.zeros((pitches, 1), roll.dtype)], axis=1).reshape(-1)
    prev = np.concatenate([[OFF], cols[:-1]])
    starts = np.flatnonzero((cols == ONSET) | ((cols == HOLD) & (prev == OFF)))
    # For each cell, the index of the first cell at or after it that is not HOLD.
    idx = np.arange(len(cols))
    next_not_hold = np.minimum.accumulate(np.where(cols != HOLD, idx, len(cols))[::-1])[::-1]
    ends = next_not_hold[np.minimum(starts + 1, len(cols) - 1)]
    return starts // (steps + 1), starts % (steps + 1), ends - starts


def decode_roll(
    roll: np.ndarray, enc: PianoRoll, *, tempo: float = 100.0, meter: tuple[int, int] = DEFAULT_METER,
    name: str = "",
) -> Piece:
    """Turn a ``(steps, pitches)`` roll of OFF/ONSET/HOLD back into notes (see :func:`note_runs`)."""
    roll = np.asarray(roll)
    if roll.ndim != 2 or roll.shape[1] != enc.n_pitches:
        raise ValueError(f"expected a roll of shape (steps, {enc.n_pitches}), got {roll.shape}")
    col, on, length = note_runs(roll)
    spq = enc.steps_per_quarter
    return Piece(col + enc.low, on / spq, length / spq, tempo, meter, name)
