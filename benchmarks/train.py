"""Benchmark: training throughput of the recurrent GAN at a fixed size, and the share of this machine's own
matmul FLOP/s that training achieves, both measured in this one run.

Fixed size: batch 64, windows of 64 steps, G and D with hidden 256 and 2 layers (LSTM), G's chord layer
at its default width, d_updates 1.
The per-step time is the difference between two training runs of different lengths divided by the
difference in steps, so set-up, the final evaluation and checkpoint writing cancel out.

FLOPs are counted analytically (PyTorch's FLOP counter does not see fused RNN kernels): a recurrent layer
does 2 * gates * hidden * (input + hidden) FLOPs per sample-step forward, a linear layer 2 * in * out; a
forward-and-backward pass is 3x the forward. One adversarial step is G forward (no grad) + D on 2B
pieces forward-and-backward, then G and D forward-and-backward on B pieces: 4 F_G + 9 F_D.

    python benchmarks/train.py [--short 2 --long 6] [--device auto|cpu|cuda]

On CUDA the step runs under bfloat16 autocast (the default ``amp``) and the peak is the GPU's fp32 matmul
(TF32 off), so the share is a rough guide there.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from prepare import chorale_like  # noqa: E402

from gancomposer.config import resolve  # noqa: E402
from gancomposer.dataset import PrepareOptions, prepare  # noqa: E402
from gancomposer.io.midi import write_midi  # noqa: E402
from gancomposer.train import train  # noqa: E402

SIZE = ["batch_size=64", "g_hidden=256", "g_layers=2", "d_hidden=256", "d_layers=2", "latent_dim=64",
        "step_noise_dim=8", "pretrain_iters=0", "d_pretrain_iters=0", "d_updates=1", "samples=0", "ema_decay=0.999",
        "guard_every=0"]


def matmul_flops(device: torch.device, n: int = 2048, repeats: int = 10) -> float:
    """Best FLOP/s of an n x n fp32 matmul on ``device`` (on the CPU with the current thread count)."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    a @ b
    sync()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        sync()
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def step_flops(batch: int, steps: int, pitches: int, spb: int, hidden: int, layers: int, latent: int,
               noise: int, chord: int) -> float:
    gates = 4
    rnn = lambda i, h: 2 * gates * h * (i + h)  # noqa: E731
    g = sum(rnn(hidden, hidden) for _ in range(layers))
    g += 2 * (2 * pitches) * hidden + 2 * hidden * 3 * pitches + 2 * (spb + noise) * hidden
    g += 2 * hidden * chord + pitches * (2 * chord * 3 + 2 * 3 * chord)  # the chord layer: in, read-out, moves
    d = 2 * (2 * pitches + spb) * hidden
    d += sum(2 * rnn(hidden if i == 0 else 2 * hidden, hidden) for i in range(layers))
    f_g, f_d = g * batch * steps, d * batch * steps
    return 4 * f_g + 9 * f_d


def main() -> None:
    ap = argparse.ArgumentParser(description="GAN training throughput and FLOP utilisation")
    ap.add_argument("--short", type=int, default=2)
    ap.add_argument("--long", type=int, default=6)
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    args = ap.parse_args()
    device = torch.device("cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
                          else "cpu")
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "midi"
        for i in range(40):
            write_midi(chorale_like(rng), src / f"{i}.mid")
        m = prepare([str(src)], Path(tmp) / "data", options=PrepareOptions(pitch_range=(36, 84)),
                    progress=False, log=lambda s: None)
        times = {}
        for n in (args.short, args.long):
            cfg = resolve(None, None, SIZE + [f"adversarial_iters={n}", f"eval_every={n}", f"checkpoint_every={n}",
                                            f"device={device.type}"])
            t = time.perf_counter()
            train(Path(tmp) / "data", Path(tmp) / f"run{n}", cfg, progress=False, log=lambda s: None)
            times[n] = time.perf_counter() - t
        peak = matmul_flops(device)
    per_step = (times[args.long] - times[args.short]) / (args.long - args.short)
    pitches = m["encoding"]["high"] - m["encoding"]["low"] + 1
    flops = step_flops(64, 64, pitches, 16, 256, 2, 64, 8, cfg.model.chord_hidden)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device: {where}; threads: {torch.get_num_threads()}; cores: {os.cpu_count()}; torch {torch.__version__}")
    print(f"size: batch 64, 64 steps, {pitches} pitches, G and D hidden 256 x 2 LSTM layers")
    print(f"seconds per adversarial step (1 D + 1 G update): {per_step:.3f}")
    print(f"training pieces per second (real pieces seen): {64 / per_step:.1f}")
    print(f"FLOPs per step: {flops / 1e9:.1f} GFLOP -> achieved {flops / per_step / 1e9:.1f} GFLOP/s")
    print(f"{where} matmul (2048^2 fp32): {peak / 1e9:.1f} GFLOP/s")
    print(f"share of matmul FLOP/s achieved: {100 * flops / per_step / peak:.0f} %")


if __name__ == "__main__":
    main()
