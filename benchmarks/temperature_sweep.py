"""Benchmark: quality against diversity, the pre-trained G beside the adversarially trained one.

For a run folder written by `gancomposer train` (with the quality guard, so it holds
``checkpoints/pretrained.safetensors`` from the end of pre-training) this composes 96 pieces of 8 bars at each
temperature from each model and evaluates them as ``gancomposer evaluate`` does against the run's dataset.
Prints a table and draws overlap area and two-sample accuracy against temperature, one curve per model: an
adversarial G that is better lies above the pre-trained curve (overlap) and below it (two-sample accuracy) at
equal temperature, not merely at another point of the same curve.

The phase moves the chorale model's numbers by about as much as one set of 96 pieces moves from one sampling seed
to the next, so the table also gives, per temperature, the default model's difference from the pre-trained G
set by set (both models drawn with the same sampling seeds, paired) as mean ± standard error over the sets, and
says "above" only where the mean is better on both numbers and "resolved" where both lie more than two standard
errors from 0. Every set's scores are kept in ``--scores`` (JSON), so an interrupted sweep goes on where it
stopped and more sets can be added later.

    python benchmarks/temperature_sweep.py RUN DATA [--temperatures 0.8,0.9,1.0,1.1,1.2] [--plot sweep.png]
        [--sets 3] [--key-guidance W] [--no-last] [--adversarial CHECKPOINT] [--scores sweep.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
from pathlib import Path

from adversarial_gain import HEADLINE, score  # a sibling script: 96 pieces × 8 bars of a checkpoint, evaluated
from matplotlib.figure import Figure

FIRST_SEED = 1234  # sampling seeds FIRST_SEED, FIRST_SEED + 1, ...: set k of every model and temperature alike
PRETRAINED, DEFAULT = "end of pre-training", "default model (best)"  # the two models the paired rows compare


def mean_and_error(values: list[float]) -> tuple[float, float]:
    """The mean and its standard error (sample standard deviation / √n; 0 for one value)."""
    error = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0
    return statistics.fmean(values), error


def paired(rows: dict, temps: list[float], sets: int, adversarial: str = DEFAULT) -> list[dict]:
    """Per temperature: the adversarial model's (by default the run's default model) difference from the
    pre-trained G, set by set, as mean ± error."""
    out = []
    for t in temps:
        a, b = rows[adversarial][str(t)], rows[PRETRAINED][str(t)]
        oa = mean_and_error([a[k]["overlap_area"] - b[k]["overlap_area"] for k in range(sets)])
        acc = mean_and_error([a[k]["two_sample_accuracy"] - b[k]["two_sample_accuracy"] for k in range(sets)])
        above = oa[0] > 0 and acc[0] < 0
        # one set has no spread to measure the noise by, so it can say "above" but never "resolved"
        resolved = above and sets > 1 and oa[0] > 2 * oa[1] and -acc[0] > 2 * acc[1]
        out.append({"temperature": t, "overlap": oa, "two_sample": acc, "above": above, "resolved": resolved})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("data")
    ap.add_argument("--temperatures", default="0.8,0.9,1.0,1.1,1.2")
    ap.add_argument("--plot", default="temperature-sweep.png")
    ap.add_argument("--sets", type=int, default=1, help="sets of 96 pieces per point, each its own sampling seed")
    ap.add_argument("--key-guidance", type=float, default=None,
                    help="compose every model with this key guidance (default: each checkpoint's own, 1 in a run)")
    ap.add_argument("--no-last", action="store_true", help="leave out the last adversarial checkpoint")
    ap.add_argument("--adversarial", default=None, help="compare this adversarial checkpoint with the pre-trained "
                    "G instead of the run's default model (best.safetensors); named by its file in the table")
    ap.add_argument("--scores", default=None, help="JSON file of every set's scores (default: beside the plot)")
    args = ap.parse_args()
    ck = Path(args.run) / "checkpoints"
    kind = "adversarial G" if args.adversarial else "default model"  # the plot's short name for it
    adversarial = f"{kind} ({Path(args.adversarial).stem})" if args.adversarial else DEFAULT
    models = {PRETRAINED: ck / "pretrained.safetensors",
              adversarial: Path(args.adversarial) if args.adversarial else ck / "best.safetensors"}
    if not args.no_last:
        models["last adversarial"] = sorted(ck.glob("step-*.safetensors"))[-1]
    temps = [float(t) for t in args.temperatures.split(",")]
    store = Path(args.scores or Path(args.plot).with_suffix(".json"))
    # kept scores are reused only for the same files (a run trained again into the folder starts afresh)
    key = {"models": {name: [str(path.resolve()), path.stat().st_mtime_ns] for name, path in models.items()},
           "data": str(Path(args.data).resolve()), "key_guidance": args.key_guidance}
    saved = json.loads(store.read_text()) if store.is_file() else {}
    rows = saved.get("rows", {}) if saved.get("key") == key else {}
    for name, path in models.items():
        for t in temps:
            done = rows.setdefault(name, {}).setdefault(str(t), [])
            while len(done) < args.sets:
                done.append(score(path, args.data, FIRST_SEED + len(done), t, args.key_guidance))
                tmp = store.with_suffix(".tmp")
                tmp.write_text(json.dumps({"key": key, "rows": rows}, indent=1))
                os.replace(tmp, store)  # atomic: an interrupted sweep keeps every set it finished
    mean = {name: [{k: sum(r[k] for r in rows[name][str(t)][: args.sets]) / args.sets for k in HEADLINE}
                   for t in temps] for name in models}
    guidance = "each checkpoint's own" if args.key_guidance is None else f"{args.key_guidance:g}"
    print(f"{args.sets} set(s) of 96 × 8 per point, sampling seeds {FIRST_SEED}-{FIRST_SEED + args.sets - 1}, "
          f"key guidance {guidance}; overlap area / two-sample accuracy")
    print("| model | " + " | ".join(f"T={t:g}" for t in temps) + " |")
    print("|---|" + "---|" * len(temps))
    for name, means in mean.items():
        print(f"| {name} | " + " | ".join(f"{r['overlap_area']:.3f} / {r['two_sample_accuracy']:.3f}"
                                         for r in means) + " |")
    diffs = paired(rows, temps, args.sets, adversarial)
    print(f"| {adversarial} − {PRETRAINED}, paired (mean ± standard error) | "
          + " | ".join(f"{d['overlap'][0]:+.3f} ± {d['overlap'][1]:.3f} / {d['two_sample'][0]:+.3f} ± "
                       f"{d['two_sample'][1]:.3f}" for d in diffs) + " |")
    print("| verdict | " + " | ".join("above, resolved" if d["resolved"] else "above" if d["above"] else "not above"
                                      for d in diffs) + " |")
    fig = Figure(figsize=(13.5, 3.6))
    axes = fig.subplots(1, 3)
    for ax, k, label in zip(axes, ("overlap_area", "two_sample_accuracy"),
                            ("overlap area (higher is closer)", "two-sample accuracy (lower is closer)")):
        for name, means in mean.items():
            ax.plot(temps, [r[k] for r in means], marker="o", label=name)
        ax.set_title(label)
    # the comparison itself: both differences signed so that up is better, with two standard errors each way
    for sign, part, label, shift in ((1, "overlap", "overlap area", -0.01), (-1, "two_sample", "− two-sample accuracy",
                                                                            0.01)):
        axes[2].errorbar([t + shift for t in temps], [sign * d[part][0] for d in diffs],
                         yerr=[2 * d[part][1] for d in diffs], marker="o", capsize=3, label=label)
    axes[2].axhline(0, color="black", lw=0.8)
    axes[2].set_title(f"{kind} − pre-trained, paired (± 2 s.e.)")
    for ax in axes:
        ax.set_xlabel("temperature")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.plot, dpi=110)
    print(f"plot: {args.plot}; every set's scores: {store}")


if __name__ == "__main__":
    main()
