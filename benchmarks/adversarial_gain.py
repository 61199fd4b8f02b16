"""Benchmark: what the adversarial phase gains over its own end of pre-training, per style and seed.

For each style and seed: prepare the style's dataset (once, cached), train the recipe under test on a shortened
schedule, then compose 96 pieces of 8 bars at the temperature the adversarial phase drew G at
(``adversarial_temperature``: by default where the guard found the pre-trained G best, or the value set) from
the run's end of pre-training (``checkpoints/pretrained.safetensors``, written by the quality guard when the
adversarial phase starts) and from the run's default model (``best.safetensors``), with each of three sampling
seeds (1234-1236), and evaluate each set exactly as ``gancomposer evaluate`` does against the dataset; a
model's numbers are the mean over the three sets (one set's two-sample accuracy moves by ±0.02-0.05 from seed
to seed, as much as the phase changes it). The last checkpoint is scored with seed 1234 alone. Prints one row
per run with the difference, and the spread of one model's score over the three sampling seeds (the sampling
noise of one set of 96) once per style.

With ``--control``, each run's adversarial phase is also run again without D's pull: from the run's own
checkpoint at the end of D's pre-training, resumed with G's adversarial terms scaled to nothing
(``adversarial_ratio=1e-9``), so the likelihood anchor, the moving average of G's weights, the guard and the last
check act exactly as in the run. Its default model is scored the same way, at the same temperature, and a second
table gives what D's pull adds: the run's default model minus the control's. A gain the control matches is the
anchor's, not the adversarial method's. Both default models are also scored each at the temperature it composes
at (its last check's choice), since D's pull changes how spread and how busy G's choices are, so the two are
best at different temperatures.

Resumable: each finished run leaves ``OUT/STYLE-sSEED/result.json`` and is skipped next time; an unfinished
run is continued with ``--resume``. Run it in the background:

    python benchmarks/adversarial_gain.py --out runs/gain [--styles oneills-irish,ryans-mammoth,monteverdi]
        [--seeds 0,1,2] [--window-bars N] [--control] [key=value ...]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from gancomposer.compose import Composer, check_key_guidance
from gancomposer.config import resolve
from gancomposer.dataset import PrepareOptions, prepare
from gancomposer.evaluate import evaluate
from gancomposer.train import train

MUSIC21 = Path(__import__("music21").__file__).parent / "corpus"
#: Styles: a bundled corpus by name, or a folder of music21's corpus (other composers' polyphonic scores).
STYLES = {"bach-chorales": None, "oneills-irish": None, "ryans-mammoth": None,
          "monteverdi": MUSIC21 / "monteverdi", "palestrina": MUSIC21 / "palestrina"}
#: The shortened schedule: the recipe's settings with a shorter likelihood pre-training (1,200 iterations where the
#: default takes up to 12,000); D's pre-training and the adversarial phase keep the recipe's own length, since they
#: are what is measured (about 5 minutes a run on 2 cores).
SHORT = ["pretrain_iters=1200", "eval_every=400", "checkpoint_every=400", "samples=0"]
HEADLINE = ("overlap_area", "two_sample_accuracy", "frechet_distance")
#: The control's change to the recipe: D's pull on G (its loss and the matching terms, rescaled together against
#: the likelihood anchor) a billionth of the anchor's, so G learns from the anchor alone; D still trains, so the
#: control draws the same random numbers as the run.
CONTROL = ["adversarial_ratio=1e-9"]


def dataset(style: str, root: Path, window_bars: int) -> Path:
    folder = root / "data" / style
    manifest = folder / "manifest.json"
    if not manifest.is_file():
        src = STYLES[style]
        paths, corpus = ([str(src)], None) if src else ([], style)
        options = PrepareOptions(transpose=(-3, 3), window_bars=window_bars)
        prepare(paths, folder, corpus=corpus, options=options, progress=False, log=lambda s: None)
    stored = json.loads(manifest.read_text())["options"]["window_bars"]
    if stored != window_bars:
        sys.exit(f"{folder}: prepared with {stored}-bar windows, not {window_bars}; use another --out")
    return folder


SEEDS = (1234, 1235, 1236)  # sampling seeds of the three sets a model's numbers are averaged over


def score(checkpoint: Path, data: Path, seed: int = SEEDS[0], temperature: float = 1.0,
          key_guidance: float | None = None) -> dict:
    """The evaluate row of 96 pieces × 8 bars composed by ``checkpoint`` (with ``key_guidance`` where given,
    else the checkpoint's own) against ``data``: its headline numbers."""
    composer = Composer.load(checkpoint)
    if key_guidance is not None:
        composer.generator.key_guidance = check_key_guidance(key_guidance)
    with tempfile.TemporaryDirectory() as tmp:
        for i, cp in enumerate(composer.compose(n=96, bars=8, seed=seed, temperature=temperature)):
            cp.save(Path(tmp) / f"{i:03d}.mid")
        row = evaluate({"model": tmp}, reference=str(data), log=lambda s: None)["rows"]["model"]
    return {k: row[k] for k in HEADLINE}


def mean_score(checkpoint: Path, data: Path, temperature: float = 1.0) -> tuple[dict, dict]:
    """The mean of :func:`score` over :data:`SEEDS`, and each number's spread (max - min) over them."""
    rows = [score(checkpoint, data, seed=s, temperature=temperature) for s in SEEDS]
    return ({k: sum(r[k] for r in rows) / len(rows) for k in HEADLINE},
            {k: max(r[k] for r in rows) - min(r[k] for r in rows) for k in HEADLINE})


def one_run(style: str, seed: int, root: Path, preset: str, extra: list[str], window_bars: int) -> dict:
    """Train (or continue) one run and evaluate its two models; the result is kept in ``result.json``."""
    folder = root / f"{style}-s{seed}"
    done = folder / "result.json"
    if done.is_file():
        return json.loads(done.read_text())
    data = dataset(style, root, window_bars)
    run, trained = folder / "run", folder / "trained.json"
    if not trained.is_file():
        config = resolve(preset, None, SHORT + extra + [f"seed={seed}"])
        resume = any((run / "checkpoints").glob("step-*.safetensors"))
        t = time.perf_counter()
        summary = train(data, run, config, resume=resume, progress=False, log=lambda s: None)
        trained.write_text(json.dumps({"minutes": (time.perf_counter() - t) / 60, "guard": summary["guard"]}))
    ck = run / "checkpoints"
    last = sorted(ck.glob("step-*.safetensors"))[-1]  # the phase's last G (after any rollback of the guard)
    # both models at the temperature the phase drew G at (the pre-trained G's best where it was tuned)
    t = (json.loads(trained.read_text())["guard"] or {}).get("adversarial_temperature") or 1.0
    pretrained, _ = mean_score(ck / "pretrained.safetensors", data, t)
    default, noise = mean_score(ck / "best.safetensors", data, t)
    result = {"style": style, "seed": seed, **json.loads(trained.read_text()), "sampling_seeds": list(SEEDS),
              "temperature": t, "pretrained": pretrained, "default": default,
              "last": score(last, data, temperature=t), "noise": noise}
    done.write_text(json.dumps(result, indent=1))
    return result


def control_run(style: str, seed: int, root: Path, preset: str, extra: list[str], window_bars: int,
                run_result: dict) -> dict:
    """The run's adversarial phase again without D's pull (:data:`CONTROL`), resumed from the run's checkpoint at
    the end of D's pre-training; its default model scored as the run's (``run_result``, from :func:`one_run`), at
    the same temperature. Kept in ``control.json``."""
    folder = root / f"{style}-s{seed}"
    done = folder / "control.json"
    data = dataset(style, root, window_bars)
    if done.is_file():  # without "composing": trained and scored, not yet scored where each model composes
        control = json.loads(done.read_text())
        return control if "composing" in control else composing(folder, data, run_result, control)
    config = resolve(preset, None, SHORT + extra + [f"seed={seed}"] + CONTROL)
    run, ctl = folder / "run", folder / "control"
    stored = json.loads((run / "config.json").read_text())["train"]
    step = stored["pretrain_iters"] + stored["d_pretrain_iters"]
    if not any((ctl / "checkpoints").glob("step-*.safetensors")):
        start = run / "checkpoints" / f"step-{step:06d}"
        if not start.with_suffix(".safetensors").is_file():
            sys.exit(f"{run}: no checkpoint at the end of D's pre-training (step {step}) to start the control from")
        (ctl / "checkpoints").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(run / "config.json", ctl / "config.json")
        for suffix in (".safetensors", ".state.pt"):
            shutil.copyfile(start.with_suffix(suffix), ctl / "checkpoints" / start.with_suffix(suffix).name)
    t = time.perf_counter()
    summary = train(data, ctl, config, resume=True, progress=False, log=lambda s: None)
    temperature = run_result["temperature"]
    default, noise = mean_score(ctl / "checkpoints" / "best.safetensors", data, temperature)
    result = {"minutes": (time.perf_counter() - t) / 60, "guard": summary["guard"], "temperature": temperature,
              "default": default, "noise": noise}
    done.write_text(json.dumps(result, indent=1))
    return composing(folder, data, run_result, result)


def composing(folder: Path, data: Path, run_result: dict, control: dict) -> dict:
    """``control`` with both default models also scored each at the temperature it composes at (its last check's
    choice), where that differs from the phase's: D's pull changes how spread and how busy G's choices are, so at
    the phase's temperature the control could look worse than it is where it is used. Kept in ``control.json``."""
    own = {}
    for name, result in (("run", run_result), ("control", control)):
        t = ((result.get("guard") or {}).get("fresh") or {}).get("temperature") or result["temperature"]
        weights = folder / name / "checkpoints" / "best.safetensors"
        own[name] = {"temperature": t, "scores": result["default"] if t == result["temperature"] else
                     mean_score(weights, data, t)[0]}
    control = {**control, "composing": own}
    (folder / "control.json").write_text(json.dumps(control, indent=1))
    return control


def difference(a: dict, b: dict) -> dict:
    """``a - b`` for each headline number."""
    return {k: a[k] - b[k] for k in HEADLINE}


def improves(d: dict) -> bool:
    """Whether a difference is better on both numbers (overlap area up, two-sample accuracy down)."""
    return d["overlap_area"] > 0 and d["two_sample_accuracy"] < 0


def row(x: dict) -> str:
    """Overlap area / two-sample accuracy / Fréchet distance."""
    return f"{x['overlap_area']:.3f} / {x['two_sample_accuracy']:.3f} / {x['frechet_distance']:.1f}"


def signed(d: dict) -> str:
    """A difference of overlap area / two-sample accuracy."""
    return f"{d['overlap_area']:+.3f} / {d['two_sample_accuracy']:+.3f}"


def where_composed(x: dict) -> str:
    """A model scored where it composes: overlap area / two-sample accuracy (temperature)."""
    return f"{x['scores']['overlap_area']:.3f} / {x['scores']['two_sample_accuracy']:.3f} ({x['temperature']:g})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/gain")
    ap.add_argument("--styles", default="oneills-irish,ryans-mammoth,monteverdi")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--preset", default=None, help="the recipe under test, before the shortened schedule "
                    "(default: the default recipe, no preset)")
    ap.add_argument("--window-bars", type=int, default=PrepareOptions().window_bars,
                    help="bars of 4/4 per training window (prepare's --window-bars)")
    ap.add_argument("--control", action="store_true", help="also run each adversarial phase without D's pull "
                    "and print what the pull adds")
    ap.add_argument("overrides", nargs="*", help="settings of the recipe under test (key=value)")
    args = ap.parse_args()
    root = Path(args.out)
    root.mkdir(parents=True, exist_ok=True)
    print(f"recipe: {'--preset ' + args.preset if args.preset else 'default'} {' '.join(SHORT + args.overrides)}; "
          f"{args.window_bars}-bar windows; threads {os.environ.get('OMP_NUM_THREADS', 'auto')}")
    print(f"(each model: the mean over sampling seeds {', '.join(map(str, SEEDS))}; "
          f"the last checkpoint: seed {SEEDS[0]})")
    print("| style | seed | temperature | minutes | pre-training end: overlap / two-sample / Fréchet | default model | "
          "gain in overlap | gain in two-sample (lower is better) | both better | last checkpoint |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    better = total = 0
    controls = []
    for style in args.styles.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            r = one_run(style, seed, root, args.preset, args.overrides, args.window_bars)
            gain = difference(r["default"], r["pretrained"])
            both = improves(gain)
            better, total = better + both, total + 1
            last = row(r["last"]) if "last" in r else "-"
            print(f"| {style} | {seed} | {r.get('temperature', 1.0):g} | {r['minutes']:.1f} | {row(r['pretrained'])} | "
                  f"{row(r['default'])} | {gain['overlap_area']:+.3f} | {gain['two_sample_accuracy']:+.3f} | "
                  f"{'yes' if both else 'no'} | {last} |", flush=True)
            if args.control:
                c = control_run(style, seed, root, args.preset, args.overrides, args.window_bars, r)
                controls.append((style, seed, r, c))
            if seed == 0:
                n = r["noise"]
                print(f"|  | sampling noise (3 seeds, one model) | | | | | ±{n['overlap_area']:.3f} | "
                      f"±{n['two_sample_accuracy']:.3f} | | |", flush=True)
    print(f"\nthe adversarial phase improved both numbers in {better} of {total} runs")
    if controls:
        print_controls(controls)
    sys.stdout.flush()


def print_controls(controls: list[tuple[str, int, dict, dict]]) -> None:
    """The second table: each run's gain, its control's, and what D's pull adds (the difference)."""
    print("\n| style | seed | temperature | gain of the run: overlap / two-sample | gain without D's pull (control) | "
          "what D's pull adds | both better | each where it composes: run (T) / control (T) | what D's pull adds "
          "there | control's guard choice | minutes |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    adds = adds_there = 0
    for style, seed, r, c in controls:
        pull = difference(r["default"], c["default"])
        both = improves(pull)
        adds += both
        guard = c.get("guard") or {}
        run, bare_own = c["composing"]["run"], c["composing"]["control"]
        there = difference(run["scores"], bare_own["scores"])
        adds_there += improves(there)
        print(f"| {style} | {seed} | {r['temperature']:g} | {signed(difference(r['default'], r['pretrained']))} | "
              f"{signed(difference(c['default'], r['pretrained']))} | {signed(pull)} | {'yes' if both else 'no'} | "
              f"{where_composed(run)} / {where_composed(bare_own)} | {signed(there)} | "
              f"{guard.get('best_adversarial_iters', '-')} | {c['minutes']:.1f} |", flush=True)
    print(f"\nD's pull added to both numbers in {adds} of {len(controls)} runs at the phase's temperature, and in "
          f"{adds_there} with each model where it composes")


if __name__ == "__main__":
    main()
