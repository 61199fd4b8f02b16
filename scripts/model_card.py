"""Evaluate every checkpoint of a training run against the chorales, beside the baselines, and draw the
time-to-quality curve for MODEL_CARD.md.

    python scripts/model_card.py runs/bach --out docs/model_card [--pieces 96 --bars 8]

For each ``step-*.safetensors`` it composes pieces from the moving-average generator with a fixed seed,
runs the same comparison as ``gancomposer evaluate`` and records the headline numbers against the
training wall-clock time stored in the checkpoint. Writes ``curve.json``, ``time_to_quality.png`` and
``table.md`` (the latest checkpoint meeting the quality bars, or else the one with the lowest Fréchet
distance, against the baselines).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from gancomposer import checkpoint
from gancomposer.baselines import markov_grids, random_rolls
from gancomposer.compose import Composer
from gancomposer.dataset import load_dataset
from gancomposer.evaluate import evaluate, markdown_table
from gancomposer.plots import save_curve
from gancomposer.render import numbered_paths, write_grids


def meets_bars(row: dict, markov: dict) -> bool:
    """The shipped-model bars of the compose issue."""
    better = row["overlap_area"] > markov["overlap_area"] and (
        row["two_sample_accuracy"] < markov["two_sample_accuracy"]
        or (row["two_sample_accuracy"] == markov["two_sample_accuracy"] == 1.0
            and row["frechet_distance"] < markov["frechet_distance"]))
    return (better and row["copied_2bar_windows"] <= 0.03 and row["silent_4bar_windows"] <= 0.02
            and row["pitch_classes_used"] >= 10)


def pretrain_end(points: list[dict]) -> float | None:
    """Training minutes of the last checkpoint before the adversarial phase (None if there is none)."""
    before = [p["minutes"] for p in points if p["adversarial_iters"] == 0]
    return max(before) if before and len(before) < len(points) else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--data", default="data/bach", help="the run's dataset folder (the reference)")
    ap.add_argument("--out", default="docs/model_card")
    ap.add_argument("--pieces", type=int, default=96)
    ap.add_argument("--bars", type=int, default=8)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--every", type=int, default=1, help="evaluate every k-th checkpoint (the last is always kept)")
    ap.add_argument("--machine", default="this 2-core CPU", help="what trained the run (the curve's axis label)")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ds = load_dataset(args.data)
    steps = args.bars * ds.encoding.steps_per_bar(ds.meter)
    points = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        markov = markov_grids(ds.piece_grids("train"), args.pieces, steps, seed=args.seed, enc=ds.encoding)
        noise = random_rolls(ds.piece_rolls("train"), args.pieces, steps, seed=args.seed)
        for name, (grids, enc) in {"markov": (markov, ds.encoding), "random": (noise, ds.encoding.roll)}.items():
            write_grids(grids, enc, numbered_paths(tmp / name, name, args.pieces, "mid"), tempo=ds.tempo,
                        meter=ds.meter)
        baselines = evaluate({"markov": str(tmp / "markov"), "random": str(tmp / "random")}, reference=args.data,
                             log=lambda s: None)["rows"]
        every = max(1, args.every)
        found = sorted(Path(args.run, "checkpoints").glob("step-*.safetensors"))
        chosen_ones = found[every - 1 :: every]
        if found and found[-1] not in chosen_ones:
            chosen_ones.append(found[-1])
        for ck in chosen_ones:
            _, info = checkpoint.load(ck)
            composer = Composer.load(ck)
            folder = tmp / ck.stem
            for i, cp in enumerate(composer.compose(n=args.pieces, bars=args.bars, seed=args.seed,
                                                    temperature=args.temperature)):
                cp.save_midi(folder / f"{i:03d}.mid")
            report = evaluate({"model": str(folder)}, reference=args.data, log=lambda s: None)
            rows = report["rows"] = {"model": report["rows"]["model"], **baselines}
            point = {"checkpoint": ck.name, "iteration": info["iteration"], "minutes": info["training_seconds"] / 60,
                     "adversarial_iters": info["progress"]["adversarial_iters"],
                     "meets_bars": meets_bars(rows["model"], rows["markov"]), "report": report}
            points.append(point)
            m = rows["model"]
            print(f"{ck.name}: iteration {point['iteration']}, {point['minutes']:.2f} min, adversarial "
                  f"{point['adversarial_iters']}  OA {m['overlap_area']:.3f}  "
                  f"C2ST {m['two_sample_accuracy']:.3f}  FD {m['frechet_distance']:.1f}  "
                  f"copied {m['copied_2bar_windows']:.3f}  silent {m['silent_4bar_windows']:.3f}  "
                  f"bars met: {point['meets_bars']}", file=sys.stderr)
    if not points:
        raise SystemExit(f"{args.run}: no step checkpoints")
    (out / "curve.json").write_text(json.dumps(points, indent=1))
    mins = [p["minutes"] for p in points]
    rows = [p["report"]["rows"] for p in points]
    series = {
        "mean overlap area (higher)": [r["model"]["overlap_area"] for r in rows],
        "two-sample accuracy (0.5 best)": [r["model"]["two_sample_accuracy"] for r in rows],
        "Fréchet distance (lower)": [r["model"]["frechet_distance"] for r in rows],
    }
    base = points[0]["report"]["rows"]
    keys = {"mean overlap area (higher)": "overlap_area", "two-sample accuracy (0.5 best)": "two_sample_accuracy",
            "Fréchet distance (lower)": "frechet_distance"}
    levels = {name: {"Markov baseline": base["markov"][key], "real (valid vs train)":
                     base["reference (valid vs train)"][key]} for name, key in keys.items()}
    save_curve(mins, series, f"training minutes ({args.machine})", out / "time_to_quality.png",
               title=f"evaluate's headline numbers against training time (temperature {args.temperature:g})",
               levels=levels, mark=pretrain_end(points), mark_label="adversarial phase starts")

    meeting = [p for p in points if p["meets_bars"]]
    chosen = meeting[-1] if meeting else min(
        points, key=lambda p: p["report"]["rows"]["model"]["frechet_distance"])
    (out / "table.md").write_text(
        f"checkpoint {chosen['checkpoint']} (iteration {chosen['iteration']}, {chosen['minutes']:.1f} training "
        "minutes), "
        f"meets the bars: {chosen['meets_bars']}\n\n" + markdown_table(chosen["report"]) + "\n")
    print(json.dumps({"chosen": chosen["checkpoint"], "meets_bars": chosen["meets_bars"]}))


if __name__ == "__main__":
    main()
