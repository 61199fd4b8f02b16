"""Benchmark: does a model write in the keys and meters it is asked for, and in its style's own mix by default?

For a model (a shipped model's name, a checkpoint or a run) and the dataset of its style, prints:

- default sampling (``--n`` pieces of ``--bars`` bars): the L1 distance between the mean pitch-class histogram
  (duration-weighted, per piece, then averaged) of the composed pieces and of the style's real pieces; the
  meters composed against the style's meter mix; the share of pieces that are a single melodic line;
- how often the style's own pieces keep the key of their training label over ``--bars`` bars (what a G that
  modulates as the style does would reach);
- for each ``--key`` (default "D minor"): the share of ``--key-n`` pieces whose key, estimated twice, is the
  one asked for: by our Krumhansl–Kessler estimate (the one training labels come from) and by music21's
  ``analyze('key')`` on the written MIDI file (an independent judge);
- for each ``--meter``: the share of ``--key-n`` pieces written as MIDI files whose time signature is that meter,
  whose length is a whole number of its bars, and whose notes start on the grid of that meter.

    python benchmarks/keys_and_meters.py --model bach-chorales --data DATA [--key "D minor" --meter 3/4]
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import symusic
import torch

from gancomposer.compose import Composer
from gancomposer.conditions import KEYS, key_of, meter_name, window_keys
from gancomposer.dataset import load_dataset
from gancomposer.metrics.features import pitch_class_histogram


def mean_histogram(rolls: list[np.ndarray], enc) -> np.ndarray:
    return np.mean([pitch_class_histogram(r, enc) for r in rolls if (r > 0).any()], axis=0)


def music21_key(path: Path) -> str:
    from music21 import converter

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        k = converter.parse(str(path), forceSource=True).analyze("key")
    tonic = {"C#": "C#", "D-": "C#", "D#": "Eb", "E-": "Eb", "F#": "F#", "G-": "F#", "G#": "Ab", "A-": "Ab",
             "A#": "Bb", "B-": "Bb"}.get(k.tonic.name, k.tonic.name)
    return f"{tonic} {k.mode}"


def real_key_agreement(ds, bars: int) -> tuple[int, int]:
    """How often the style's own pieces stay in their label's key: of the training pieces' windows in their
    most common meter that start on a bar line and have ``bars`` bars to go, how many have the same estimated
    key over ``bars`` bars as over the training window their label comes from."""
    meter = ds.conditions.meters[0]
    bar, window = ds.encoding.steps_per_bar(meter), ds.conditions.window_steps[0]
    same = total = 0
    for grid in ds.piece_grids("train", meter):
        starts = list(range(0, len(grid) - max(window, bars * bar) + 1, bar))
        if starts:
            labels = window_keys(grid, starts, window, ds.encoding)
            longer = window_keys(grid, starts, bars * bar, ds.encoding)
            same, total = same + sum(a == b for a, b in zip(labels, longer)), total + len(starts)
    return same, total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="a shipped model's name, a checkpoint or a run (default: the shipped model)")
    ap.add_argument("--data", required=True, help="the dataset folder of the model's style")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--bars", type=int, default=8)
    ap.add_argument("--key", action="append", help='asked-for keys to check (default: "D minor")')
    ap.add_argument("--meter", action="append", default=[], help="asked-for meters to check")
    ap.add_argument("--key-n", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(2)
    composer, ds = Composer.load(args.model), load_dataset(args.data)
    enc = composer.encoding

    pieces = composer.compose(n=args.n, bars=args.bars, seed=args.seed)
    real = mean_histogram(ds.piece_rolls(), ds.encoding.roll)
    made = mean_histogram([enc.to_roll(p.grid) for p in pieces], enc.roll)
    print(f"{composer.name}: {args.n} pieces x {args.bars} bars, default sampling (seed {args.seed})")
    print(f"  L1 between mean pitch-class histograms, composed vs the style's {len(ds.piece_rolls())} pieces: "
          f"{np.abs(made - real).sum():.3f}")
    style = composer.conditions.shares()[0]
    composed = Counter(meter_name(p.meter) for p in pieces)
    print("  meters composed: " + ", ".join(f"{m} {c / args.n:.0%}" for m, c in composed.most_common())
          + "  (style: " + ", ".join(f"{m} {s:.0%}" for m, s in style.items()) + ")")
    lines = sum(bool((p.piece.start[1:] >= (p.piece.start + p.piece.duration)[:-1] - 1e-9).all()) for p in pieces)
    print(f"  single melodic lines: {lines}/{args.n}")
    top = Counter(KEYS[key_of(p.piece)] for p in pieces).most_common(5)
    print("  estimated keys composed: " + ", ".join(f"{k} {c / args.n:.0%}" for k, c in top))

    if composer.keys:
        same, total = real_key_agreement(ds, args.bars)
        print(f"  the style's own {meter_name(ds.conditions.meters[0])} windows: the key of their first "
              f"{args.bars} bars is their training label's key in {same}/{total} ({same / max(total, 1):.0%})")

    with tempfile.TemporaryDirectory() as tmp:
        for key in (args.key or ["D minor"]) if composer.keys else []:
            asked = composer.compose(n=args.key_n, bars=args.bars, seed=args.seed + 1, key=key)
            ours = sum(KEYS[key_of(p.piece)] == key for p in asked)
            theirs = 0
            for i, p in enumerate(asked):
                theirs += music21_key(p.save_midi(Path(tmp) / f"{i}.mid")) == key
            print(f"  --key {key!r}: estimated {key} in {ours}/{args.key_n} (Krumhansl-Kessler), "
                  f"{theirs}/{args.key_n} (music21 analyze('key'))")
        for meter in args.meter:
            asked = composer.compose(n=args.key_n, bars=args.bars, seed=args.seed + 2, meter=meter)
            good = 0
            for i, p in enumerate(asked):
                score = symusic.Score(str(p.save_midi(Path(tmp) / f"m{i}.mid")))
                sig = score.time_signatures[0]
                bar = p.encoding.steps_per_bar(p.meter)
                on_grid = all((n.time * enc.steps_per_quarter) % score.ticks_per_quarter == 0
                              for t in score.tracks for n in t.notes)
                good += (f"{sig.numerator}/{sig.denominator}" == meter and len(p.grid) % bar == 0 and on_grid)
            print(f"  --meter {meter}: {good}/{args.key_n} MIDI files in {meter}, whole bars, notes on its grid")


if __name__ == "__main__":
    main()
