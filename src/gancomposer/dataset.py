"""Turn music files into a training dataset folder: fixed-length windows that training memory-maps.

A dataset folder holds::

    manifest.json       sources (with SHA-256), encoding, counts, skipped files and why
    train.npy           (windows, steps, pitches) uint8 rolls of OFF/ONSET/HOLD, transposed copies included
    valid.npy           the same for the validation pieces (never transposed)
    train_index.npy     (windows, 3) int32: piece number, first step, transposition
    valid_index.npy
    rolls.npy           (total steps, pitches) uint8: every piece whole, untransposed, one after another

The split into train and validation is by piece, never by window, so no bar of a validation piece is trained on.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from . import cache
from .corpora import DEFAULT_CORPUS, get_corpus
from .encoding import DEFAULT_METER, Encoding, PianoRoll, fit_pitch_range, in_range
from .files import atomic_path, write_json_atomic
from .io import MIDI_SUFFIXES, Limits, check_file, find_music_files, read_file
from .errors import UserError
from .piece import Piece
from .theory import shift_to_c

FORMAT_VERSION = 1


@dataclass
class PrepareOptions:
    """Everything that decides what ``prepare`` writes (stored in the manifest)."""

    steps_per_quarter: int = 4
    pitch_range: tuple[int, int] | None = None  # None: fitted to the pieces
    window_bars: int = 4  # bars of the dataset's meter; the window length in steps is fixed for every piece
    hop_bars: int = 1  # windows start on bar lines of each piece's own metre
    min_fill: float = 0.5  # a window needs this share of its steps sounding, or it is dropped
    valid_fraction: float = 0.1
    transpose: tuple[int, int] = (0, 0)  # augmentation of training pieces, semitones, inclusive
    normalize_key: bool = False  # move every piece to C major / A minor first
    seed: int = 0
    limits: Limits = field(default_factory=Limits)


@dataclass
class Source:
    """One input file and what came of it."""

    path: str
    sha256: str = ""
    pieces: list[Piece] = field(default_factory=list)
    error: str | None = None


def _load_one(args: tuple[str, Limits]) -> Source:
    """Read one file (through the cache for the slow formats). Runs in a worker process."""
    path, limits = args
    src = Source(path)
    try:
        check_file(Path(path), limits)
        src.sha256 = cache.file_sha256(path)
        slow = not path.lower().endswith(MIDI_SUFFIXES)
        key = f"{src.sha256}-d{int(limits.include_drums)}"
        cached = cache.load_pieces(key) if slow else None
        if cached is None:
            cached = read_file(path, limits)
            if slow:
                cache.store_pieces(key, cached)
        src.pieces = cached
    except UserError as e:
        src.error = str(e)
    except MemoryError:
        src.error = "ran out of memory while reading"
    except Exception as e:  # a reader bug on odd input must skip the file, not end the run
        src.error = f"unreadable ({type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''})"
    return src


def load_sources(
    files: list[Path], limits: Limits = Limits(), *, workers: int | None = None, progress: bool = True
) -> list[Source]:
    """Read ``files`` in parallel over the cores, with a progress bar; order is kept."""
    jobs = [(str(f), limits) for f in files]
    workers = workers or os.cpu_count() or 1
    bar = tqdm(total=len(jobs), desc="reading", unit="file", disable=not progress, file=sys.stderr)
    out: list[Source] = []
    if workers <= 1 or len(jobs) <= 2:
        for job in jobs:
            out.append(_load_one(job))
            bar.update()
    else:
        chunk = max(1, min(64, len(jobs) // (workers * 8)))
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            for src in pool.imap(_load_one, jobs, chunksize=chunk):
                out.append(src)
                bar.update()
    bar.close()
    return out


def _split_key(seed: int, key: str) -> str:
    return hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()


def split_pieces(keys: list[str], valid_fraction: float, seed: int) -> list[str]:
    """Assign each piece (by a stable key) to 'train' or 'valid'; deterministic for a seed.

    At least one piece goes to validation when there are two or more pieces and the fraction is > 0.
    """
    n = len(keys)
    n_valid = int(round(n * valid_fraction))
    if valid_fraction > 0 and n >= 2:
        n_valid = min(max(n_valid, 1), n - 1)
    order = sorted(range(n), key=lambda i: _split_key(seed, keys[i]))
    valid = set(order[:n_valid])
    return ["valid" if i in valid else "train" for i in range(n)]


def windows_of(roll: np.ndarray, window: int, hop: int, min_fill: float) -> list[int]:
    """First steps of the windows taken from one piece's roll (the tail is padded with silence)."""
    steps = roll.shape[0]
    sounding = (roll > 0).any(axis=1)
    starts = []
    for s in range(0, max(steps - window, 0) + 1 if steps >= window else 1, hop):
        part = sounding[s : s + window]
        if part.sum() >= min_fill * window:
            starts.append(s)
    return starts


def transpositions(piece: Piece, enc: PianoRoll, lo: int, hi: int) -> list[int]:
    """The shifts in ``lo..hi`` that keep every note of ``piece`` inside the pitch range."""
    pmin, pmax = int(piece.pitch.min()), int(piece.pitch.max())
    return [t for t in range(lo, hi + 1) if pmin + t >= enc.low and pmax + t <= enc.high]


def prepare(
    paths: list[str],
    out: str | os.PathLike,
    *,
    corpus: str | None = None,
    options: PrepareOptions = PrepareOptions(),
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict:
    """Read, encode, window and split music into the dataset folder ``out``; returns the manifest.

    Unusable files are skipped, each reported by ``log`` in one line. Raises :class:`UserError` when no
    file gave a usable piece.
    """
    out = Path(out)
    files, missing = find_music_files(paths)
    if corpus or not paths:
        files = get_corpus(corpus or DEFAULT_CORPUS).files() + files
    skipped = [{"path": p, "reason": r} for p, r in missing]
    sources = load_sources(files, options.limits, progress=progress)
    skipped += [{"path": s.path, "reason": s.error} for s in sources if s.error]
    for item in skipped:
        log(f"skipped {item['path']}: {item['reason']}")

    pieces: list[tuple[Source, int, Piece]] = []
    for src in sources:
        for i, piece in enumerate(src.pieces):
            if options.normalize_key:
                piece = piece.transpose(shift_to_c(piece))
            pieces.append((src, i, piece))
    if not pieces:
        raise UserError(f"no usable piece among {len(files) + len(missing)} input path(s)")

    spq = options.steps_per_quarter
    lo, hi = options.pitch_range or fit_pitch_range([p for _, _, p in pieces])
    enc = PianoRoll(spq, lo, hi)
    meter = DEFAULT_METER  # what windows and the networks' bar positions assume, recorded in the manifest
    window = options.window_bars * enc.steps_per_bar(meter)
    keys = [f"{src.sha256}#{i}" for src, i, _ in pieces]
    splits = split_pieces(keys, options.valid_fraction, options.seed)

    data = _encode_and_window(pieces, splits, enc, window, options)
    _write_arrays(out, data, window, enc)

    opts = asdict(options)
    opts["limits"] = asdict(options.limits)
    manifest = {
        "format_version": FORMAT_VERSION,
        "encoding": enc.to_dict(),
        "window_steps": window,
        "meter": list(meter),
        "tempo": float(np.median([p.tempo for _, _, p in pieces])),  # quarter notes per minute, for decoding
        "options": opts,
        "corpus": corpus if (corpus or not paths) else None,
        "counts": {
            "files": len(files) + len(missing),
            "skipped_files": len(skipped),
            "pieces": len(pieces),
            "train_pieces": splits.count("train"),
            "valid_pieces": splits.count("valid"),
            "train_windows": len(data.windows["train"]),
            "valid_windows": len(data.windows["valid"]),
            "notes_out_of_range": data.dropped_notes,
        },
        "sources": [
            {"path": s.path, "sha256": s.sha256, "pieces": len(s.pieces)} for s in sources if not s.error
        ],
        "skipped": skipped,
        "pieces": data.piece_rows,
    }
    write_json_atomic(out / "manifest.json", manifest)
    return manifest


@dataclass
class _Encoded:
    """Every piece encoded whole (``rolls``) and cut into windows per split, with what the manifest records."""

    rolls: list[np.ndarray] = field(default_factory=list)
    windows: dict[str, list] = field(default_factory=lambda: {"train": [], "valid": []})
    index: dict[str, list] = field(default_factory=lambda: {"train": [], "valid": []})  # (piece, step, shift)
    piece_rows: list[dict] = field(default_factory=list)
    dropped_notes: int = 0


def _encode_and_window(pieces: list[tuple[Source, int, Piece]], splits: list[str], enc: PianoRoll, window: int,
                       options: PrepareOptions) -> _Encoded:
    """Encode each piece, cut its windows on its own bar lines, and add transposed copies of training pieces."""
    data, offset = _Encoded(), 0
    for n, ((src, _, piece), split) in enumerate(zip(pieces, splits)):
        data.dropped_notes += int((~in_range(piece, enc)).sum())
        roll = enc.encode(piece)
        data.rolls.append(roll)
        hop = options.hop_bars * enc.steps_per_bar(piece.time_signature)
        shifts = transpositions(piece, enc, *options.transpose) if split == "train" else [0]
        starts = windows_of(roll, window, hop, options.min_fill)
        for t in shifts:
            shifted = roll if t == 0 else enc.encode(piece.transpose(t))
            padded = np.concatenate([shifted, np.zeros((window, enc.n_pitches), np.uint8)])
            for s in starts:
                data.windows[split].append(padded[s : s + window])
                data.index[split].append((n, s, t))
        data.piece_rows.append({
            "name": piece.name, "source": src.path, "sha256": src.sha256, "split": split,
            "offset": offset, "steps": int(roll.shape[0]), "tempo": piece.tempo,
            "time_signature": list(piece.time_signature), "windows": len(starts),
        })
        offset += roll.shape[0]
    return data


def _write_arrays(out: Path, data: _Encoded, window: int, enc: PianoRoll) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for split in ("train", "valid"):
        w = data.windows[split]
        _save_npy(out / f"{split}.npy", np.stack(w) if w else np.zeros((0, window, enc.n_pitches), np.uint8))
        _save_npy(out / f"{split}_index.npy", np.asarray(data.index[split], dtype=np.int32).reshape(-1, 3))
    rolls = np.concatenate(data.rolls) if data.rolls else np.zeros((0, enc.n_pitches), np.uint8)
    _save_npy(out / "rolls.npy", rolls)


def _save_npy(path: Path, arr: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, arr, allow_pickle=False)


@dataclass
class Dataset:
    """A prepared dataset folder, memory-mapped."""

    root: Path
    manifest: dict
    encoding: Encoding
    train: np.ndarray  # (windows, steps, pitches) uint8
    valid: np.ndarray
    train_index: np.ndarray
    valid_index: np.ndarray
    rolls: np.ndarray

    @property
    def tempo(self) -> float:
        """The median tempo of the pieces (quarter notes per minute): what decoded samples are played at."""
        if "tempo" in self.manifest:
            return float(self.manifest["tempo"])
        return float(np.median([p["tempo"] for p in self.manifest["pieces"]]))  # datasets prepared by 0.1.0

    @property
    def meter(self) -> tuple[int, int]:
        """The meter that windows and bar positions assume."""
        return tuple(self.manifest.get("meter", DEFAULT_METER))

    def piece_rolls(self, split: str | None = None) -> list[np.ndarray]:
        """Whole, untransposed rolls of the pieces in ``split`` ('train', 'valid' or None for all)."""
        return [
            self.rolls[p["offset"] : p["offset"] + p["steps"]]
            for p in self.manifest["pieces"]
            if split is None or p["split"] == split
        ]


def load_dataset(root: str | os.PathLike) -> Dataset:
    """Open a folder written by :func:`prepare`; a clear error if it is not one."""
    root = Path(root)
    manifest_path = root / "manifest.json"
    if not manifest_path.is_file():
        raise UserError(f"{root}: not a dataset folder (no manifest.json); make one with `gancomposer prepare`")
    import json

    try:
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("format_version") != FORMAT_VERSION:
            raise UserError(f"{root}: dataset format {manifest.get('format_version')}, expected {FORMAT_VERSION}; "
                             "prepare it again")
        arrays = {
            name: np.load(root / f"{name}.npy", mmap_mode="r", allow_pickle=False)
            for name in ("train", "valid", "train_index", "valid_index", "rolls")
        }
    except (OSError, ValueError, KeyError) as e:
        raise UserError(f"{root}: damaged dataset folder ({e}); prepare it again") from None
    return Dataset(root, manifest, Encoding.from_dict(manifest["encoding"]), **arrays)
