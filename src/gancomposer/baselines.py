"""Non-neural baselines on the same data and encoding: a Markov chain over grid states, and random notes.

Both produce grids that decode to MIDI exactly like the GAN's, so a report can set model, baselines and
real data side by side. The Markov chain runs over the dataset's own encoding (a step of the piano roll is a
chord with its onsets; a step of the voices encoding is the pitch each voice sounds and whether it starts
there, so its lines stay lines); random notes are a piano roll whatever the encoding.
"""

from __future__ import annotations

import numpy as np

from .encoding import HOLD, OFF, ONSET, REST, TIE, Encoding, Voices, note_runs


def sounding(grid: np.ndarray) -> np.ndarray:
    """A voices grid as what each voice sounds at each step: 0 for silence, else ``2 * token + onset`` with the
    token of the pitch it sounds (a TIE carries the pitch of the note it continues)."""
    grid = np.asarray(grid, np.int64)
    out = np.zeros_like(grid)
    current = np.zeros(grid.shape[1], np.int64)  # the pitch token each voice sounds, 0 for none
    for t, row in enumerate(grid):
        current = np.where(row >= 2, row, np.where(row == TIE, current, 0))
        out[t] = np.where(current > 0, 2 * current + (row >= 2), 0)
    return out


def from_sounding(states: np.ndarray) -> np.ndarray:
    """The voices grid of :func:`sounding` states: a voice's note goes on (TIE) while it keeps its pitch and
    no new onset comes, whatever the states drawn before it held."""
    token, onset = states // 2, states % 2 == 1
    before = np.vstack([np.zeros((1, states.shape[1]), np.int64), token[:-1]])
    new = onset | (token != before)
    return np.where(token == 0, REST, np.where(new, token, TIE)).astype(np.uint8)


def markov_grids(
    piece_grids: list[np.ndarray], n: int, steps: int, *, order: int = 2, seed: int = 0,
    enc: Encoding | None = None,
) -> list[np.ndarray]:
    """``n`` grids of ``steps`` steps from an order-``order`` Markov chain over whole grid states.

    A *state* is one step's full row: in a piano roll the OFF/ONSET/HOLD column (a chord with its onsets), in
    the voices encoding (``enc``) the :func:`sounding` pitch of every voice and whether it starts there (its
    TIE tokens alone would not say which pitch goes on). Each piece is a sequence of states preceded by
    ``order`` start markers; the next state is drawn from the counts of what followed the last ``order``
    states in the training pieces, backing off to shorter contexts when a context was never seen (order 0
    draws from all states).
    """
    if order < 0:
        raise ValueError(f"order must be >= 0, got {order}")
    voices = isinstance(enc, Voices)
    if voices:
        piece_grids = [sounding(g) for g in piece_grids]
    rng = np.random.default_rng(seed)
    vocab: dict[bytes, int] = {}
    states: list[np.ndarray] = []
    counts: list[dict[tuple, dict[int, int]]] = [dict() for _ in range(order + 1)]
    start = -1
    for grid in piece_grids:
        seq = [start] * order
        for row in grid:
            key = row.tobytes()
            if key not in vocab:
                vocab[key] = len(states)
                states.append(row.copy())
            seq.append(vocab[key])
        for i in range(order, len(seq)):
            for k in range(order + 1):
                ctx = tuple(seq[i - k : i])
                table = counts[k].setdefault(ctx, {})
                table[seq[i]] = table.get(seq[i], 0) + 1
    if not states:
        raise ValueError("the Markov baseline needs at least one non-empty piece")
    out = []
    for _ in range(n):
        seq = [start] * order
        for _ in range(steps):
            for k in range(order, -1, -1):
                table = counts[k].get(tuple(seq[len(seq) - k :]) if k else ())
                if table:
                    break
            ids = np.fromiter(table.keys(), int)
            p = np.fromiter(table.values(), float)
            seq.append(int(rng.choice(ids, p=p / p.sum())))
        grid = np.stack([states[i] for i in seq[order:]])
        out.append(from_sounding(grid) if voices else grid)
    return out


def random_rolls(piece_rolls: list[np.ndarray], n: int, steps: int, *, seed: int = 0) -> list[np.ndarray]:
    """``n`` rolls of random notes: uniform pitches in range, onsets at the training data's note rate,
    lengths drawn from the training notes' lengths (the floor any model must clear)."""
    rng = np.random.default_rng(seed)
    lengths, total_notes, total_steps = [], 0, 0
    for roll in piece_rolls:
        _, _, length = note_runs(roll)
        lengths.append(length)
        total_notes += len(length)
        total_steps += len(roll)
    lengths = np.concatenate(lengths) if lengths else np.array([4])
    rate = total_notes / max(1, total_steps)
    pitches = piece_rolls[0].shape[1]
    out = []
    for _ in range(n):
        roll = np.full((steps, pitches), OFF, np.uint8)
        for _ in range(rng.poisson(rate * steps)):
            p, s = rng.integers(pitches), rng.integers(steps)
            e = min(steps, s + int(rng.choice(lengths)))
            roll[s + 1 : e, p] = np.where(roll[s + 1 : e, p] == ONSET, ONSET, HOLD)
            roll[s, p] = ONSET
        out.append(roll)
    return out
