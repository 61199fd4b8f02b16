"""The ``gancomposer`` command: parses arguments, calls the library, prints results. Nothing else."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .piece import MusicError


def _range(text: str) -> tuple[int, int]:
    """Parse 'LO..HI' (e.g. '-5..6') into a pair of ints."""
    try:
        lo, hi = (int(x) for x in text.split(".."))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW..HIGH such as -5..6, got {text!r}") from None
    if lo > hi:
        raise argparse.ArgumentTypeError(f"LOW must not exceed HIGH in {text!r}")
    return lo, hi


def cmd_corpora(args: argparse.Namespace) -> int:
    from .corpora import CORPORA, DEFAULT_CORPUS, count_pieces

    for c in CORPORA.values():
        files = c.files()
        mark = " (default)" if c.name == DEFAULT_CORPUS else ""
        print(f"{c.name:<15} {count_pieces(files):>5} pieces  {c.description}{mark}")
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from .dataset import PrepareOptions, prepare
    from .io import Limits
    from .theory import pitch_name

    options = PrepareOptions(
        steps_per_quarter=args.steps_per_quarter,
        pitch_range=args.pitch_range,
        window_bars=args.window_bars,
        hop_bars=args.hop_bars,
        valid_fraction=args.valid_fraction,
        transpose=args.transpose,
        normalize_key=args.normalize_key,
        seed=args.seed,
        limits=Limits(
            max_bytes=int(args.max_file_mb * 2**20), max_notes=args.max_notes,
            timeout_s=args.timeout, include_drums=args.include_drums,
        ),
    )
    log = lambda line: print(line, file=sys.stderr)  # noqa: E731
    m = prepare(args.paths, args.out, corpus=args.corpus, options=options, progress=not args.quiet, log=log)
    c, e = m["counts"], m["encoding"]
    print(
        f"prepared {args.out}: {c['pieces']} pieces ({c['train_pieces']} train, {c['valid_pieces']} valid); "
        f"{c['train_windows']} train and {c['valid_windows']} valid windows of {m['window_steps']} steps x "
        f"{e['high'] - e['low'] + 1} pitches ({pitch_name(e['low'])}-{pitch_name(e['high'])}); "
        f"skipped {c['skipped_files']} of {c['files']} files"
    )
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .config import resolve
    from .train import train

    cfg = resolve(args.preset, args.config, args.overrides)
    if args.device:
        cfg.device = args.device
    if args.seed is not None:
        cfg.seed = args.seed
    import torch.distributed as dist

    try:
        summary = train(args.data, args.out, cfg, resume=args.resume, progress=not args.quiet,
                        log=lambda line: print(line, file=sys.stderr))
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    if int(os.environ.get("RANK", "0")) == 0:
        best = summary["best_score"]
        print(f"trained {summary['steps']} steps in {summary['seconds']:.0f} s; last checkpoint "
              f"{summary['checkpoint']}; best validation feature distance {best:.3f}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    out = Path(args.out)
    print(f"preparing the bundled Bach chorales into {out / 'data'} ...")
    ns = build_parser().parse_args(["prepare", "--corpus", "bach-chorales", "--out", str(out / "data")])
    return cmd_prepare(ns)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gancomposer", description="Learn a musical style and compose new pieces with a recurrent GAN."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("corpora", help="list the bundled corpora that work offline")
    p.set_defaults(func=cmd_corpora)

    p = sub.add_parser("prepare", help="turn music files or a bundled corpus into a training dataset folder")
    p.add_argument("paths", nargs="*", help="music files or folders (searched recursively)")
    p.add_argument("--corpus", help="a bundled corpus (default when no path is given: bach-chorales)")
    p.add_argument("--out", required=True, help="dataset folder to write")
    p.add_argument("--steps-per-quarter", type=int, default=4, help="grid resolution (4 = 16th notes)")
    p.add_argument("--pitch-range", type=_range, metavar="LOW..HIGH", help="MIDI pitches kept (default: fitted)")
    p.add_argument("--window-bars", type=int, default=4, help="bars (of 4/4) per training window")
    p.add_argument("--hop-bars", type=int, default=1, help="bars between window starts")
    p.add_argument("--valid-fraction", type=float, default=0.1, help="share of pieces held out for validation")
    p.add_argument("--transpose", type=_range, default=(0, 0), metavar="LOW..HIGH",
                   help="augment training pieces by these transpositions, e.g. -5..6")
    p.add_argument("--normalize-key", action="store_true", help="move every piece to C major / A minor")
    p.add_argument("--seed", type=int, default=0, help="seed of the train/validation split")
    p.add_argument("--include-drums", action="store_true", help="keep MIDI drum tracks")
    p.add_argument("--max-file-mb", type=float, default=4.0, help="skip files larger than this")
    p.add_argument("--max-notes", type=int, default=100_000, help="skip files with more notes than this")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds allowed to parse one score file")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("train", help="train the recurrent GAN on a prepared dataset folder",
                       description="Train G and D adversarially. Settings: defaults <- --preset <- --config <- "
                                   "key=value overrides (e.g. steps=500 loss=hinge d_steps=2).")
    p.add_argument("--data", required=True, help="dataset folder written by `gancomposer prepare`")
    p.add_argument("--out", required=True, help="run folder (checkpoints, samples, TensorBoard logs)")
    p.add_argument("--preset", help="tiny (seconds, for tests) or bach (the shipped model's recipe)")
    p.add_argument("--config", help="TOML file of settings (a [train] table or top-level keys)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out exactly where it stopped")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="where to train (default auto)")
    p.add_argument("--seed", type=int, help="random seed (same seed, same run on the CPU)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="settings, see --help-config")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("demo", help="what `make demo` runs")
    p.add_argument("--out", default="output", help="folder for the results")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status. User errors print one line, never a traceback."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except MusicError as e:
        print(f"gancomposer: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("gancomposer: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
