"""Benchmark: a finished run's last check (the guard's best against the pre-trained G) made again with today's
code, on any adversarial checkpoint of the run.

Resumes a scratch copy of the run (its ``config.json``, last checkpoint and ``pretrained.safetensors``), chooses
each model's temperature on the tuning stream's pieces and scores both at their temperatures on the
``guard.FINAL_SETS`` paired final sets, exactly as ``guard.tune_temperature`` does when training ends, and prints
each set's quality (overlap area − two-sample accuracy) and the choice. The run folder is not written to.

    python benchmarks/last_check.py RUN DATA [--adversarial CHECKPOINT]   (default: RUN's best.safetensors)
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
from pathlib import Path

from gancomposer import checkpoint, guard
from gancomposer.config import from_stored
from gancomposer.run import start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("data")
    ap.add_argument("--adversarial", help="the adversarial G's checkpoint (default: the run's best.safetensors)")
    args = ap.parse_args()
    folder = Path(args.run)
    ck = folder / "checkpoints"
    last = sorted(ck.glob("step-*.safetensors"))[-1]
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "run"
        (copy / "checkpoints").mkdir(parents=True)
        shutil.copy(folder / "config.json", copy)
        for f in (last, last.with_suffix(".state.pt"), ck / "pretrained.safetensors"):
            shutil.copy(f, copy / "checkpoints")
        config = from_stored(json.loads((folder / "config.json").read_text()))
        run = start(args.data, copy, config, resume=True, progress=False, log=lambda line: None)
        key = "G_ema" if run.G_ema is not None else "G"
        models = {"adversarial": Path(args.adversarial) if args.adversarial else ck / "best.safetensors",
                  "pretrained": ck / "pretrained.safetensors"}
        finals = {}
        for name, path in models.items():
            sampler = guard.sampler_with(run, checkpoint.load(path)[0][key])
            t, sweep = guard.best_temperature(run, sampler)
            finals[name] = guard.final_qualities(run, sampler, t)
            print(f"{name} ({path}): temperature {t:g} (tuning stream {sweep[t]['quality']:.3f}); final sets "
                  + ", ".join(f"{q:.3f}" for q in finals[name]))
    a, b = (statistics.fmean(finals[n]) for n in models)  # the mean guard.tune_temperature compares
    diffs = [x - y for x, y in zip(finals["adversarial"], finals["pretrained"])]
    print(f"{folder}: adversarial {a:.4f}, pre-trained {b:.4f}, difference {a - b:+.4f} (per set "
          + ", ".join(f"{d:+.3f}" for d in diffs) + f") -> {'adversarial' if a > b else 'pretrained'} kept")


if __name__ == "__main__":
    main()
