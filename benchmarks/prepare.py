"""Benchmark: MIDI files parsed and encoded per second on this machine's cores.

Makes a few hundred chorale-sized MIDI files (4 voices, 16 bars, ~230 notes; the bundled chorales
average 243 notes), then times
``load_sources`` (parallel parse) followed by the encoding of every piece, and the whole ``prepare``, for
each encoding (the piano roll, and four voices).

    python benchmarks/prepare.py [--files 400] [--encodings roll,voices]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from gancomposer.dataset import PrepareOptions, load_sources, prepare
from gancomposer.encoding import PianoRoll, Voices
from gancomposer.io.midi import write_midi
from gancomposer.piece import Piece


def chorale_like(rng: np.random.Generator, bars: int = 16) -> Piece:
    """Four voices moving in quarters and eighths within their ranges."""
    pitch, start, dur = [], [], []
    for low, high in ((60, 79), (55, 72), (48, 67), (36, 60)):
        t = 0.0
        p = int(rng.integers(low, high))
        while t < bars * 4:
            d = float(rng.choice([0.5, 1.0, 1.0, 2.0]))
            p = int(np.clip(p + rng.integers(-3, 4), low, high))
            pitch.append(p)
            start.append(t)
            dur.append(d)
            t += d
    return Piece(np.array(pitch), np.array(start), np.array(dur), 90.0, (4, 4))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=400)
    ap.add_argument("--encodings", default="roll,voices")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "midi"
        folder.mkdir()
        notes = 0
        for i in range(args.files):
            p = chorale_like(rng)
            notes += len(p)
            write_midi(p, folder / f"{i:04d}.mid")
        files = sorted(folder.iterdir())
        print(f"cores: {os.cpu_count()}; files: {args.files}; notes per file: {notes / args.files:.0f}")
        for kind in args.encodings.split(","):
            enc = {"roll": PianoRoll(4, 36, 84), "voices": Voices(4, 36, 84, 4)}[kind]
            best = float("inf")
            for _ in range(3):
                t = time.perf_counter()
                sources = load_sources(files, progress=False)
                grids = [enc.encode(p) for s in sources for p in s.pieces]
                best = min(best, time.perf_counter() - t)
            assert len(grids) == args.files
            t = time.perf_counter()
            prepare([str(folder)], Path(tmp) / f"ds-{kind}", options=PrepareOptions(encoding=kind), progress=False,
                    log=lambda s: None)
            whole = time.perf_counter() - t
            print(f"{kind}: parse + encode: {args.files / best:,.0f} files/s (best of 3, {best:.3f} s); whole prepare "
                  f"(parse, hash, encode, window, split, write): {args.files / whole:,.0f} files/s")


if __name__ == "__main__":
    main()
