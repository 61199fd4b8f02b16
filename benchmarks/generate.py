"""Benchmark: seconds of music composed per second of compute, on one CPU core.

Composes 16 pieces of 32 bars in one batched pass with the shipped model (or --model), decodes them to
notes, and divides the music's length at its own tempo by the compute time. Best of 3.

    python benchmarks/generate.py [--model RUN[,RUN...]] [--n 16 --bars 32]

Give two models (say, one prepared with ``--encoding roll`` and one with ``voices``) to compare encodings.
"""

from __future__ import annotations

import argparse
import time

import torch

from gancomposer.compose import Composer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model")
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--bars", type=int, default=32)
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"threads: {torch.get_num_threads()}")
    for model in args.model.split(",") if args.model else [None]:
        composer = Composer.load(model)
        composer.compose(n=2, bars=1, seed=0)  # warm-up
        best = float("inf")
        for seed in range(3):
            t = time.perf_counter()
            pieces = composer.compose(n=args.n, bars=args.bars, seed=seed)
            best = min(best, time.perf_counter() - t)
        music = sum(len(p.grid) / composer.encoding.steps_per_quarter * 60 / composer.tempo for p in pieces)
        enc = composer.encoding
        print(f"model: {composer.name} ({enc.kind}, {enc.cells} cells; hidden {composer.generator.hidden} x "
              f"{composer.generator.layers} {composer.generator.kind.upper()})")
        print(f"  composed {args.n} pieces x {args.bars} bars = {music:.0f} s of music in {best:.2f} s of compute: "
              f"{music / best:,.0f} x real time on one core")


if __name__ == "__main__":
    main()
