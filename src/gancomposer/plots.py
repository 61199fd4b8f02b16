"""Pictures (the one module that imports matplotlib): piano rolls with bar lines and pitch names, and the
figures of an evaluation report.

Figures are made with matplotlib's object interface (``Figure``), never ``pyplot``: that needs no backend
switch, so importing gancomposer in a notebook leaves the notebook's plotting alone.
"""

from __future__ import annotations

import os

import numpy as np

from .encoding import HOLD, ONSET, PianoRoll
from .files import atomic_path
from .theory import PITCH_NAMES, pitch_name


def _figure(**kw):
    from matplotlib.figure import Figure

    return Figure(**kw)


def _save(fig, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")


def roll_shades(roll: np.ndarray) -> np.ndarray:
    """Grey levels of piano-roll cells, the same in every picture: onsets 1, held notes 0.6, silence 0."""
    return np.where(roll == ONSET, 1.0, np.where(roll == HOLD, 0.6, 0.0))


def draw_roll(ax, roll: np.ndarray, enc: PianoRoll, steps_per_bar: int, title: str = "") -> None:
    """Draw a roll on ``ax``: notes as bars (onsets darker), bar lines, pitch names on the y axis."""
    steps, pitches = roll.shape
    img = roll_shades(roll).T
    cols = np.flatnonzero((roll != 0).any(0))
    lo, hi = (max(0, cols[0] - 2), min(pitches - 1, cols[-1] + 2)) if len(cols) else (0, pitches - 1)
    ax.imshow(img[lo : hi + 1], origin="lower", aspect="auto", cmap="Blues", vmin=0, vmax=1,
              extent=(0, steps, enc.low + lo - 0.5, enc.low + hi + 0.5), interpolation="nearest")
    for b in range(0, steps + 1, steps_per_bar):
        ax.axvline(b, color="0.55", lw=0.8)
    c_pitches = [p for p in range(enc.low + lo, enc.low + hi + 1) if p % 12 == 0]
    ticks = c_pitches or [enc.low + lo, enc.low + hi]
    ax.set_yticks(ticks, [pitch_name(p) for p in ticks])
    ax.set_xticks(range(0, steps + 1, steps_per_bar), [str(i + 1) for i in range(0, steps // steps_per_bar + 1)])
    ax.set_xlabel("bar")
    if title:
        ax.set_title(title, fontsize=9)


def save_roll_png(roll: np.ndarray, enc: PianoRoll, path: str | os.PathLike, *, steps_per_bar: int = 16,
                  title: str = "") -> None:
    """A piano-roll picture of one piece, sized to its length."""
    width = min(24, 3 + roll.shape[0] / steps_per_bar * 1.2)
    fig = _figure(figsize=(width, 3.6))
    ax = fig.subplots()
    draw_roll(ax, roll, enc, steps_per_bar, title)
    _save(fig, path)


def save_rolls_grid(rolls: list[np.ndarray], enc: PianoRoll, path: str | os.PathLike, titles: list[str],
                    steps_per_bar: int = 16) -> None:
    fig = _figure(figsize=(10, 2.4 * len(rolls)))
    axes = fig.subplots(len(rolls), 1, squeeze=False)
    for ax, roll, title in zip(axes[:, 0], rolls, titles):
        draw_roll(ax, roll, enc, steps_per_bar, title)
    fig.tight_layout()
    _save(fig, path)


def save_feature_distributions(sets: dict[str, np.ndarray], names: list[str], path: str | os.PathLike) -> None:
    """Overlaid histograms of each scalar feature for every set (columns of each matrix in ``names`` order)."""
    cols = 4
    rows = int(np.ceil(len(names) / cols))
    fig = _figure(figsize=(3.2 * cols, 2.4 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, name in enumerate(names):
        ax = axes[i // cols, i % cols]
        values = np.concatenate([m[:, i] for m in sets.values()])
        bins = np.histogram_bin_edges(values, bins=20)
        for label, m in sets.items():
            ax.hist(m[:, i], bins=bins, density=True, histtype="step", lw=1.4, label=label)
        ax.set_title(name, fontsize=9)
    for j in range(len(names), rows * cols):
        axes[j // cols, j % cols].axis("off")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    _save(fig, path)


def save_pitch_class_histograms(hists: dict[str, np.ndarray], path: str | os.PathLike) -> None:
    fig = _figure(figsize=(8, 3))
    ax = fig.subplots()
    width = 0.8 / len(hists)
    for k, (label, h) in enumerate(hists.items()):
        ax.bar(np.arange(12) + k * width, h, width, label=label)
    ax.set_xticks(np.arange(12) + 0.4 - width / 2, PITCH_NAMES)
    ax.set_ylabel("share of sounding time")
    ax.legend(fontsize=7)
    _save(fig, path)


def save_curve(xs: list[float], series: dict[str, list[float]], xlabel: str, path: str | os.PathLike,
               title: str = "", levels: dict[str, dict[str, float]] | None = None, mark: float | None = None,
               mark_label: str = "") -> None:
    """One small panel per series against a shared x axis (e.g. metrics against training minutes), with
    optional horizontal ``levels`` per series (e.g. baselines) and a vertical ``mark``."""
    fig = _figure(figsize=(3.8 * len(series), 3.2))
    axes = fig.subplots(1, len(series), squeeze=False)
    for ax, (name, ys) in zip(axes[0], series.items()):
        ax.plot(xs, ys, marker="o", label="model")
        for k, (label, value) in enumerate((levels or {}).get(name, {}).items()):
            ax.axhline(value, ls="--", lw=1, color=f"C{k + 1}", label=label)
        if mark is not None:
            ax.axvline(mark, color="0.5", lw=0.8, ls=":", label=mark_label or None)
        ax.legend(fontsize=6)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path)


