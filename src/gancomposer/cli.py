"""The ``gancomposer`` command: parses arguments, calls the library, prints results. Nothing else."""

from __future__ import annotations

import argparse
import errno
import os
import sys
from pathlib import Path

from .errors import UserError


def _range(text: str) -> tuple[int, int]:
    """Parse 'LO..HI' (e.g. '-5..6') into a pair of ints."""
    try:
        lo, hi = (int(x) for x in text.split(".."))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW..HIGH such as -5..6, got {text!r}") from None
    if lo > hi:
        raise argparse.ArgumentTypeError(f"LOW must not exceed HIGH in {text!r}")
    return lo, hi


class _HelpConfig(argparse.Action):
    """``--help-config``: list every training setting with its default and the presets, then exit."""

    def __init__(self, option_strings, dest, **kw):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kw)

    def __call__(self, parser, namespace, values, option_string=None):
        from .config import describe

        print(describe())
        parser.exit()


def cmd_corpora(args: argparse.Namespace) -> int:
    from .corpora import CORPORA, DEFAULT_CORPUS, count_pieces

    for c in CORPORA.values():
        files = c.files()
        mark = " (default)" if c.name == DEFAULT_CORPUS else ""
        print(f"{c.name:<15} {count_pieces(files):>5} pieces  {c.description}{mark}")
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from .conditions import meter_name
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
        encoding=args.encoding,
        voices_from=args.voices_from,
        seed=args.seed,
        limits=Limits(
            max_bytes=int(args.max_file_mb * 2**20), max_notes=args.max_notes,
            timeout_s=args.timeout, include_drums=args.include_drums,
        ),
    )
    log = lambda line: print(line, file=sys.stderr)  # noqa: E731
    m = prepare(args.paths, args.out, corpus=args.corpus, options=options, progress=not args.quiet, log=log)
    c, e = m["counts"], m["encoding"]
    cells = "a piano roll"
    if e["kind"] == "voices":
        cells = f"{e['voices']} voice{'s' * (e['voices'] > 1)}"
        if c.get("pieces_voiced_by_parts"):
            cells += f" (from the parts in {c['pieces_voiced_by_parts']} pieces, by pitch order in the rest)"
    print(
        f"prepared {args.out}: {c['pieces']} pieces ({c['train_pieces']} train, {c['valid_pieces']} valid); "
        f"{c['train_windows']} train and {c['valid_windows']} valid windows of whole bars in "
        f"{', '.join(meter_name(x) for x in m['conditions']['meters'])}; "
        + cells + f" over {e['high'] - e['low'] + 1} pitches ({pitch_name(e['low'])}-{pitch_name(e['high'])}); "
        f"skipped {c['skipped_files']} of {c['files']} files"
        + (f"; {c['notes_out_of_range']} notes outside the pitch range left out (in "
           f"{c['pieces_with_notes_out_of_range']} pieces)" if c.get("notes_out_of_range") else "")
    )
    print(f"encoding: {m['encoding_choice']}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .config import resolve, stored_run_config
    from .train import train

    flags = [f"device={args.device}"] * bool(args.device) + [f"seed={args.seed}"] * (args.seed is not None)
    flags += [f"threads={args.threads}"] * (args.threads is not None)
    base = stored_run_config(args.out) if args.resume else None  # a resumed run keeps its own settings
    config = resolve(args.preset, args.config, args.overrides + flags, base=base)
    summary = train(args.data, args.out, config, resume=args.resume, progress=not args.quiet,
                    log=lambda line: print(line, file=sys.stderr))
    if not summary["main"]:
        return 0
    print(f"trained {summary['iterations']} iterations in {summary['seconds']:.0f} s; last checkpoint "
          f"{summary['checkpoint']}")
    g = summary["guard"]
    if g is None:
        print(f"best validation Fréchet feature distance {summary['best_score']:.2f} (checkpoints/best.safetensors)")
    else:
        print(_guard_summary(g))
    return 0


def _guard_summary(g: dict) -> str:
    """The line that says where a run's default model came from and what the adversarial phase did."""
    fresh = g.get("fresh")
    kept_pretrained = g["best_adversarial_iters"] == 0 or (fresh or {}).get("kept") == "pretrained"
    where = "the end of pre-training" if kept_pretrained else f"adversarial iteration {g['best_adversarial_iters']}"
    drawn = f", at temperature {g['adversarial_temperature']:g}" if g.get("adversarial_temperature") else ""
    line = (f"default model (checkpoints/best.safetensors): {where}; the guard's best (quality = overlap area - "
            f"two-sample accuracy{drawn}) {g['best_quality']:.3f} against {g['pretrained_quality']:.3f} after "
            f"pre-training ({g['gain']:+.3f}); {g['rollbacks']} rollbacks")
    if g["stopped_early"]:
        line += "; phase ended early"
    if fresh and "adversarial_quality" in fresh:
        a, b = fresh["adversarial_quality"], fresh["pretrained_quality"]
        line += (f"; on fresh pieces, each at its own temperature, the guard's best {a:.3f} against the pre-trained "
                 f"G's {b:.3f} ({a - b:+.3f}{', so the pre-trained G was kept' if a <= b else ''})")
    if g.get("temperature"):
        line += f"; it composes at temperature {g['temperature']:g}, where it scores best"
    return line


def cmd_baseline(args: argparse.Namespace) -> int:
    from .baselines import markov_grids, random_rolls
    from .dataset import load_dataset
    from .files import check_writable_folder
    from .render import numbered_paths, write_grids

    check_writable_folder(args.out)
    ds = load_dataset(args.data)
    steps = args.bars * ds.encoding.steps_per_bar(ds.meter)
    if args.kind == "markov":
        enc = ds.encoding
        grids = markov_grids(ds.piece_grids("train"), args.n, steps, order=args.order, seed=args.seed, enc=enc)
    else:
        enc = ds.encoding.roll
        grids = random_rolls(ds.piece_rolls("train"), args.n, steps, seed=args.seed)
    paths = write_grids(grids, enc, numbered_paths(args.out, args.kind, len(grids), "mid"), tempo=ds.tempo,
                        meter=ds.meter, force=args.force)
    print(f"wrote {len(paths)} {args.kind} pieces of {args.bars} bars to {args.out}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluate import evaluate, markdown_table
    from .files import check_writable_folder

    if args.out:
        check_writable_folder(args.out)
    sets = {"generated": args.generated}
    for item in args.baseline or []:
        name, _, folder = item.partition("=")
        if not folder:
            raise UserError(f"--baseline {item!r}: expected NAME=FOLDER")
        sets[name] = folder
    report = evaluate(sets, reference=args.reference, corpus=args.corpus, out=args.out,
                      log=lambda line: print(line, file=sys.stderr))
    print(markdown_table(report))
    if args.out:
        print(f"\nreport: {Path(args.out) / 'report.md'}")
    return 0


def _formats(text: str) -> list[str]:
    from .render import FORMATS

    formats = [f.strip().lower() for f in text.split(",") if f.strip()]
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise argparse.ArgumentTypeError(f"formats are mid, wav and png (comma-separated), got {text!r}")
    return formats


def _program(text: str) -> int:
    from .audio import INSTRUMENTS

    if text.isdigit() and 0 <= int(text) <= 127:
        return int(text)
    if text.lower() in INSTRUMENTS:
        return INSTRUMENTS[text.lower()]
    raise argparse.ArgumentTypeError(f"instrument: one of {', '.join(INSTRUMENTS)} or a GM program 0-127")


def _save_all(pieces, out: Path, formats: list[str], force: bool, extra: tuple[Path, ...] = ()) -> list[Path]:
    """Write each piece in each format; refuses to overwrite (any of them or ``extra``) unless ``force``."""
    from .render import refuse_overwrite

    targets = [(cp, out / f"{cp.piece.name}.{fmt}") for cp in pieces for fmt in formats]
    refuse_overwrite([p for _, p in targets] + list(extra), force)
    return [cp.save(path) for cp, path in targets]


def cmd_generate(args: argparse.Namespace) -> int:
    import random

    from tqdm import tqdm

    from .compose import MAX_SEED, Composer
    from .files import check_writable_folder
    from .render import refuse_overwrite

    composer = Composer.load(args.model)
    if args.instrument is not None:
        composer.program = args.instrument
    seed = args.seed if args.seed is not None else random.randint(0, MAX_SEED)
    bar = tqdm(total=args.n * args.bars * composer.steps_per_bar, unit="step", desc="composing", delay=1.0,
               file=sys.stderr, leave=False)
    batches = composer.compose_batches(args.n, args.bars, seed, args.temperature, progress=bar.update,
                                       key=args.key, meter=args.meter)  # checks the request
    out = check_writable_folder(args.out)
    refuse_overwrite((out / f"seed{seed}-{i}.{fmt}" for i in range(args.n) for fmt in args.format), args.force)
    written, notes = 0, 0
    # batch by batch: each is written before the next is composed, so memory does not grow with --n
    for batch in batches:
        written += len(_save_all(batch, out, args.format, force=True))
        notes += sum(len(cp.piece) for cp in batch)
    bar.close()
    print(f"composed {args.n} pieces of {args.bars} bars ({notes} notes) with seed {seed} "
          f"using {composer.name}; wrote {written} files to {args.out}")
    return 0


def cmd_interpolate(args: argparse.Namespace) -> int:
    from .compose import Composer, concatenate
    from .files import check_writable_folder
    from .render import save

    check_writable_folder(args.out)
    composer = Composer.load(args.model)
    pieces = composer.interpolate(args.seed_a, args.seed_b, pieces=args.pieces, bars=args.bars,
                                  temperature=args.temperature)
    walk = Path(args.out) / f"interp-{args.seed_a}-{args.seed_b}-all.mid"
    written = _save_all(pieces, Path(args.out), args.format, args.force, extra=(walk,))
    save(concatenate(pieces), walk, program=composer.program)
    print(f"wrote {len(pieces)} pieces from seed {args.seed_a} to seed {args.seed_b} ({len(written)} files) "
          f"and {walk}, which plays them in turn")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from .compose import Composer, shipped_models

    for i, (name, path) in enumerate(shipped_models().items()):
        composer = Composer.load(path)
        meters, keys = composer.conditions.shares()
        top = list(keys.items())[:6]
        print(f"{name}{' (default)' if i == 0 else ''}: {path.stat().st_size / 2**20:.1f} MiB, "
              f"{composer.info['data'].get('corpus') or 'own data'}")
        print("  meters: " + ", ".join(f"{m} {s:.0%}" for m, s in meters.items()))
        print("  keys:   " + (", ".join(f"{k} {s:.0%}" for k, s in top) + (", ..." if len(keys) > 6 else "")
                              if composer.conditions.keyed else "(trained without keys)"))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .checkpoint import export_generator
    from .compose import check_key_guidance
    from .files import check_writable_folder

    check_writable_folder(Path(args.out).parent)
    extra = {} if args.temperature is None else {"temperature": args.temperature}
    if args.key_guidance is not None:
        extra["key_guidance"] = check_key_guidance(args.key_guidance)
    path = export_generator(args.model, args.out, extra)
    print(f"exported the generator of {args.model} to {path} ({path.stat().st_size / 2**20:.1f} MiB)")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import socket

    import uvicorn

    from .web.app import LOOPBACK_HOSTS, create_app, find_models

    models = find_models(args.runs)
    if args.model:
        models = {Path(args.model).stem if Path(args.model).is_file() else Path(args.model).name: Path(args.model),
                  **models}
    if not models:
        raise UserError("no model to serve: pass --model or --runs, or reinstall the package")
    hosts = LOOPBACK_HOSTS + tuple(args.allow_host or ()) + ((args.host,) if args.host not in ("0.0.0.0", "::") else ())
    if args.host not in LOOPBACK_HOSTS:
        print(f"gancomposer: warning: serving on {args.host} lets other machines on the network compose and "
              f"read files; requests must name one of these hosts: {', '.join(hosts)} (add more with "
              "--allow-host)", file=sys.stderr)
    try:  # bind first: "serving at" is printed only once the port is ours
        sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((args.host, args.port))
        sock.listen(2048)
    except OSError as e:
        raise UserError(f"cannot serve on {args.host}:{args.port}: {e.strerror or e}"
                        + (" (another program uses that port; choose one with --port)"
                           if e.errno == errno.EADDRINUSE else "")) from None
    app = create_app(models, args.out, workers=args.workers, keep_pieces=args.keep_pieces, keep_mb=args.keep_mb,
                     allowed_hosts=hosts)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    where = f"http://{'localhost' if args.host in LOOPBACK_HOSTS else args.host}:{sock.getsockname()[1]}/"
    print(f"gancomposer: serving {', '.join(models)} at {where} (API docs at {where}docs); Ctrl-C stops",
          flush=True)
    server.run(sockets=[sock])
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    import time

    from .audio import fluidsynth_available
    from .compose import Composer
    from .files import check_writable_folder

    check_writable_folder(args.out)
    t = time.perf_counter()
    composer = Composer.load()
    pieces = composer.compose(n=8, bars=8, seed=args.seed)
    out = Path(args.out)
    written = _save_all(pieces, out, ["mid", "wav", "png"], force=True)  # the demo's own folder
    engine = "FluidSynth" if fluidsynth_available() else "the built-in synthesizer"
    print(f"composed 8 pieces of 8 bars with the shipped Bach-chorale model (seed {args.seed}) in "
          f"{time.perf_counter() - t:.1f} s; audio by {engine}")
    for cp in pieces:
        conditions = ", ".join(cp.meta[k] for k in ("key", "meter") if k in cp.meta)
        print(f"  {out / cp.piece.name}.mid  .wav  .png   ({conditions}, {len(cp.piece)} notes)")
    print(f"{len(written)} files in {out.resolve()}; play a .wav, open a .mid in any MIDI player, "
          "or run `gancomposer serve` to compose in the browser")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gancomposer", description="Learn a musical style and compose new pieces with a recurrent GAN."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("corpora", help="list the bundled corpora that work offline")
    p.set_defaults(func=cmd_corpora)

    _add_data_commands(sub)
    _add_compose_commands(sub)
    return parser


def _add_data_commands(sub) -> None:
    """prepare, train, baseline, evaluate."""
    p = sub.add_parser("prepare", help="turn music files or a bundled corpus into a training dataset folder")
    p.add_argument("paths", nargs="*", help="music files or folders (searched recursively)")
    p.add_argument("--corpus", help="a bundled corpus (default when no path is given: bach-chorales)")
    p.add_argument("--out", required=True, help="dataset folder to write")
    p.add_argument("--steps-per-quarter", type=int, default=4, help="grid resolution (4 = 16th notes)")
    p.add_argument("--pitch-range", type=_range, metavar="LOW..HIGH", help="MIDI pitches kept (default: fitted)")
    p.add_argument("--window-bars", type=int, default=4, help="bars per training window")
    p.add_argument("--hop-bars", type=int, default=1, help="bars between window starts")
    p.add_argument("--valid-fraction", type=float, default=0.1, help="share of pieces held out for validation")
    p.add_argument("--transpose", type=_range, default=(0, 0), metavar="LOW..HIGH",
                   help="augment training pieces by these transpositions, e.g. -5..6")
    p.add_argument("--normalize-key", action="store_true", help="move every piece to C major / A minor")
    p.add_argument("--encoding", choices=("auto", "roll", "voices"), default="auto",
                   help="roll: a piano roll (any polyphony); voices: monophonic lines; auto (default): voices when "
                        "at most 6 hold the corpus (8 when its parts are single lines), else the roll")
    p.add_argument("--voices-from", choices=("pitch", "parts"), default="pitch",
                   help="how notes go to voices: pitch (default): by pitch order at each onset; parts: each score "
                        "part or MIDI track that is a single line keeps its own voice")
    p.add_argument("--seed", type=int, default=0, help="seed of the train/validation split")
    p.add_argument("--include-drums", action="store_true", help="keep MIDI drum tracks")
    p.add_argument("--max-file-mb", type=float, default=4.0, help="skip files larger than this")
    p.add_argument("--max-notes", type=int, default=100_000, help="skip files with more notes than this")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds allowed to parse one score file")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("train", help="train the recurrent GAN on a prepared dataset folder",
                       description="Train G and D adversarially. Settings: defaults <- --preset <- --config <- "
                                   "key=value overrides (e.g. adversarial_iters=500 loss=hinge d_updates=2).")
    p.add_argument("--data", required=True, help="dataset folder written by `gancomposer prepare`")
    p.add_argument("--out", required=True, help="run folder (checkpoints, samples, TensorBoard logs)")
    p.add_argument("--preset", help="tiny (seconds, for tests) or bach (the shipped model's recipe)")
    p.add_argument("--config", help="TOML file of settings (a [train] table or top-level keys)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out exactly where it stopped")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="where to train (default auto)")
    p.add_argument("--seed", type=int, help="random seed (same seed, same run on the CPU)")
    p.add_argument("--threads", type=int, help="CPU threads (default: the cores not busy with other work)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="settings, see --help-config")
    p.add_argument("--help-config", action=_HelpConfig, help="list every setting with its default, and the presets")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("baseline", help="compose with a non-neural baseline (Markov chain or random notes)")
    p.add_argument("kind", choices=["markov", "random"])
    p.add_argument("--data", required=True, help="dataset folder written by `gancomposer prepare`")
    p.add_argument("--out", required=True, help="folder for the MIDI files")
    p.add_argument("--n", type=int, default=32, help="number of pieces")
    p.add_argument("--bars", type=int, default=8, help="bars per piece")
    p.add_argument("--order", type=int, default=2, help="Markov order, in grid steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="overwrite existing files")
    p.set_defaults(func=cmd_baseline)

    p = sub.add_parser("evaluate", help="compare generated music with a reference style; write a report")
    p.add_argument("--generated", required=True, help="folder of generated MIDI files")
    p.add_argument("--reference", help="a dataset folder or a folder of music (default: the bundled corpus)")
    p.add_argument("--corpus", help="a bundled corpus as the reference (default bach-chorales)")
    p.add_argument("--baseline", action="append", metavar="NAME=FOLDER",
                   help="another set to put beside it, e.g. markov=out/markov (repeatable)")
    p.add_argument("--out", help="folder for report.json, report.md and plots")
    p.set_defaults(func=cmd_evaluate)



def _add_compose_commands(sub) -> None:
    """generate, interpolate, export, serve, demo."""

    def compose_options(p, with_n: bool) -> None:
        p.add_argument("--model", help="a shipped model's name (`gancomposer models`), a checkpoint file or a run "
                                       "folder (default: the shipped Bach model)")
        p.add_argument("--bars", type=int, default=8, help="bars per piece (any length)")
        if with_n:
            p.add_argument("--n", type=int, default=4, help="number of pieces (one batched pass)")
            p.add_argument("--seed", type=int, help="same seed, same music (default: random)")
            p.add_argument("--key", help='e.g. "D minor" or "F# major" (default: drawn from the style\'s keys)')
            p.add_argument("--meter", help="e.g. 6/8, one of the model's meters (default: drawn from the style's)")
        p.add_argument("--temperature", type=float, help="< 1 safer, > 1 wilder (default: the model's own)")
        p.add_argument("--out", default="output", help="output folder")
        p.add_argument("--format", type=_formats, default=["mid"], help="any of mid,wav,png")
        p.add_argument("--instrument", type=_program, help="organ, choir, piano, ... or a GM program number")
        p.add_argument("--force", action="store_true", help="overwrite existing files")

    p = sub.add_parser("generate", help="compose new pieces as MIDI, WAV and PNG")
    compose_options(p, with_n=True)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("interpolate", help="walk through latent space between two seeds")
    p.add_argument("--seed-a", type=int, required=True)
    p.add_argument("--seed-b", type=int, required=True)
    p.add_argument("--pieces", type=int, default=5, help="pieces along the walk, both ends included")
    compose_options(p, with_n=False)
    p.set_defaults(func=cmd_interpolate, bars=4)

    p = sub.add_parser("models", help="list the shipped models with their meters and keys")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("export", help="write a checkpoint's generator alone (what the package ships)")
    p.add_argument("--model", required=True, help="checkpoint file or run folder (its best checkpoint)")
    p.add_argument("--out", required=True, help="the .safetensors file to write")
    p.add_argument("--temperature", type=float, help="the sampling temperature users get by default (1.0)")
    p.add_argument("--key-guidance", type=float, help="weight of the key's learned scale-degree bias while composing "
                   "(1.0: as trained; above 1 holds the pieces closer to their key's scale)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("serve", help="a local web page to compose, listen and download")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--model", help="a checkpoint or run folder to offer first")
    p.add_argument("--runs", help="a folder searched for training runs to offer too")
    p.add_argument("--out", help="folder for composed files (default: a new temporary folder)")
    p.add_argument("--workers", type=int, default=2, help="pieces composed at once; more requests queue")
    p.add_argument("--keep-pieces", type=int, default=500, help="pieces kept in --out; the oldest are deleted")
    p.add_argument("--keep-mb", type=float, default=500, help="megabytes kept in --out; the oldest are deleted")
    p.add_argument("--allow-host", action="append", metavar="NAME",
                   help="a host name requests may use besides this machine's loopback names (repeatable)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("demo", help="compose 8 pieces with the shipped model into output/ (what `make demo` runs)")
    p.add_argument("--out", default="output", help="folder for the results (its demo files are replaced)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_demo)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status. User and operating-system errors print one line, never a
    traceback."""
    from .files import disk_error
    from .processes import sigterm_as_interrupt

    try:
        with sigterm_as_interrupt():  # a stop unwinds like Ctrl-C: temporaries are removed, work is kept
            args = build_parser().parse_args(argv)  # inside: --help-config prints while parsing
            return args.func(args)
    except UserError as e:
        print(f"gancomposer: error: {e}", file=sys.stderr)
        return 1
    except MemoryError:
        print("gancomposer: error: out of memory", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `gancomposer ... | head` closed the pipe: not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # keep the exit-time flush quiet
        return 0
    except OSError as e:  # a full disk, a folder that went read-only: the system's reason, in one line
        print(f"gancomposer: error: {disk_error(e)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("gancomposer: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
