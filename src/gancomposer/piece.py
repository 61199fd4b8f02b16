"""The one in-memory form of a piece of music: notes with times in quarter notes.

Every reader produces a :class:`Piece` and every writer consumes one, so the rest of the
library never sees a file format. Times are in quarter notes (floats) from the first downbeat,
so a pickup bar starts at a negative-free offset: readers shift a piece so that ``t = 0`` is a bar line.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Piece:
    """A piece as parallel note arrays, sorted by (start, pitch).

    Attributes:
        pitch: MIDI pitch numbers, shape ``(n,)``, int16.
        start: onset times in quarter notes, shape ``(n,)``, float64.
        duration: durations in quarter notes (> 0), shape ``(n,)``, float64.
        tempo: quarter notes per minute.
        time_signature: ``(numerator, denominator)``.
        name: a label (usually the file name, plus the tune number for multi-tune files).
        meter_changes: later time signatures, as ``(time in quarter notes, numerator, denominator)``, in time
            order (``time_signature`` holds from 0 to the first of them).
        part: the voice (part, track) each note belongs to, ``(n,)``, or None when the piece has no parts;
            a MIDI file gets one track per part.
    """

    pitch: np.ndarray
    start: np.ndarray
    duration: np.ndarray
    tempo: float = 100.0
    time_signature: tuple[int, int] = (4, 4)
    name: str = ""
    velocity: np.ndarray | None = field(default=None, repr=False)
    meter_changes: tuple[tuple[float, int, int], ...] = ()
    part: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.pitch = np.asarray(self.pitch, dtype=np.int16).reshape(-1)
        self.start = np.asarray(self.start, dtype=np.float64).reshape(-1)
        self.duration = np.asarray(self.duration, dtype=np.float64).reshape(-1)
        n = len(self.pitch)
        if len(self.start) != n or len(self.duration) != n:
            raise ValueError(
                f"pitch, start and duration must have one length, got {n}, {len(self.start)}, {len(self.duration)}"
            )
        if self.velocity is not None:
            self.velocity = np.asarray(self.velocity, dtype=np.int16).reshape(-1)
        if self.part is not None:
            self.part = np.asarray(self.part, dtype=np.int16).reshape(-1)
            if len(self.part) != n:
                raise ValueError(f"part must have one entry per note, got {len(self.part)} for {n} notes")
        order = np.lexsort((self.pitch, self.start))
        if not np.all(order == np.arange(n)):
            self.pitch, self.start, self.duration = self.pitch[order], self.start[order], self.duration[order]
            if self.velocity is not None:
                self.velocity = self.velocity[order]
            if self.part is not None:
                self.part = self.part[order]
        self.time_signature = (int(self.time_signature[0]), int(self.time_signature[1]))
        self.meter_changes = tuple((float(t), int(n), int(d)) for t, n, d in self.meter_changes)

    def __len__(self) -> int:
        return len(self.pitch)

    @property
    def end(self) -> float:
        """Time in quarter notes at which the last note stops (0 for an empty piece)."""
        return float((self.start + self.duration).max()) if len(self) else 0.0

    @property
    def bar_quarters(self) -> float:
        """Length of one bar in quarter notes, from the time signature."""
        num, den = self.time_signature
        return num * 4.0 / den

    def notes(self) -> list[tuple[int, float, float]]:
        """The notes as ``(pitch, start, duration)`` tuples, sorted; handy for comparisons."""
        return list(zip(self.pitch.tolist(), self.start.tolist(), self.duration.tolist()))

    def transpose(self, semitones: int) -> Piece:
        """A copy shifted by ``semitones``."""
        return Piece(
            self.pitch + semitones, self.start.copy(), self.duration.copy(),
            self.tempo, self.time_signature, self.name, self.velocity, self.meter_changes, self.part,
        )

    def split_at_meter_changes(self) -> list[Piece]:
        """The piece cut at each change of time signature into pieces of one meter, each starting at 0 (notes
        that sound across a cut end there); parts without notes are left out."""
        if not self.meter_changes:
            return [self]
        cuts = [(0.0, *self.time_signature), *self.meter_changes]
        out = []
        for j, (t0, num, den) in enumerate(cuts):
            t1 = cuts[j + 1][0] if j + 1 < len(cuts) else np.inf
            sel = (self.start >= t0 - 1e-9) & (self.start < t1 - 1e-9)
            if not sel.any():
                continue
            end = np.minimum(self.start[sel] + self.duration[sel], t1)
            out.append(Piece(self.pitch[sel], self.start[sel] - t0, end - self.start[sel], self.tempo, (num, den),
                             f"{self.name} (part {j + 1}, {num}/{den})",
                             None if self.velocity is None else self.velocity[sel],
                             part=None if self.part is None else self.part[sel]))
        return out
