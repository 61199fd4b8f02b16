"""Benchmark: quality against diversity, the pre-trained G beside the adversarially trained one.

For a run folder written by `gancomposer train` (with the quality guard, so it holds
``checkpoints/pretrained.safetensors`` from the end of pre-training) this composes 96 pieces of 8 bars at each
temperature from each model and evaluates them as ``gancomposer evaluate`` does against the run's dataset.
Prints a table and draws overlap area and two-sample accuracy against temperature, one curve per model: an
adversarial G that is better lies above the pre-trained curve (overlap) and below it (two-sample accuracy) at
equal temperature, not merely at another point of the same curve.

    python benchmarks/temperature_sweep.py RUN DATA [--temperatures 0.8,0.9,1.0,1.1,1.2] [--plot sweep.png] [--sets 3]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from adversarial_gain import score  # a sibling script: 96 pieces × 8 bars of a checkpoint, evaluated
from matplotlib.figure import Figure


def scores(checkpoint: Path, data: str, temperature: float, sets: int = 1) -> dict:
    """Overlap area and two-sample accuracy of 96 pieces × 8 bars, the mean over ``sets`` sampling seeds from
    1234 up."""
    rows = [score(checkpoint, data, seed, temperature) for seed in range(1234, 1234 + sets)]
    return {k: sum(r[k] for r in rows) / sets for k in ("overlap_area", "two_sample_accuracy")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("data")
    ap.add_argument("--temperatures", default="0.8,0.9,1.0,1.1,1.2")
    ap.add_argument("--plot", default="temperature-sweep.png")
    ap.add_argument("--sets", type=int, default=1, help="sets of 96 pieces per point, each its own sampling seed")
    args = ap.parse_args()
    ck = Path(args.run) / "checkpoints"
    models = {"end of pre-training": ck / "pretrained.safetensors", "default model (best)": ck / "best.safetensors",
              "last adversarial": sorted(ck.glob("step-*.safetensors"))[-1]}
    temps = [float(t) for t in args.temperatures.split(",")]
    table = {name: [scores(path, args.data, t, args.sets) for t in temps] for name, path in models.items()}
    print("| model | " + " | ".join(f"T={t:g}" for t in temps) + " |")
    print("|---|" + "---|" * len(temps))
    for name, rows in table.items():
        print(f"| {name} | " + " | ".join(f"{r['overlap_area']:.3f} / {r['two_sample_accuracy']:.3f}" for r in rows)
              + " |")
    fig = Figure(figsize=(9, 3.6))
    for ax, key, label in zip(fig.subplots(1, 2), ("overlap_area", "two_sample_accuracy"),
                              ("overlap area (higher is closer)", "two-sample accuracy (lower is closer)")):
        for name, rows in table.items():
            ax.plot(temps, [r[key] for r in rows], marker="o", label=name)
        ax.set_xlabel("temperature")
        ax.set_title(label)
        ax.grid(alpha=0.3)
    fig.axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.plot, dpi=110)
    print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
