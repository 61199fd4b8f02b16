"""Turn music files into a training dataset folder: fixed-length windows that training memory-maps.

A dataset folder holds::

    manifest.json       sources (with SHA-256), encoding, counts, skipped files and why
    train.npy           (windows, steps, cells) uint8 grids, transposed copies included
    valid.npy           the same for the validation pieces (never transposed)
    train_index.npy     (windows, 5) int32: piece number, first step, transposition, meter, key
    valid_index.npy
    rolls.npy           (total steps, cells) uint8: every piece whole, untransposed, one after another

A piece whose time signature changes is cut at each change into pieces of one meter. Windows start on the bar
lines of their piece's meter and hold whole bars, about as long in every meter (:func:`~.conditions.window_bars`);
a window shorter than the longest is stored padded with silence and used at its own length (the meter's
``window_steps``). Each window is labelled with its meter and its key (estimated once on the window, moved with
the transposition), the conditions of G and D; the manifest records each piece's key (estimated on the whole
piece), from which the style's mix of keys is counted.

The split into train and validation is by piece, never by window, so no bar of a validation piece is trained on.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable
from contextlib import closing
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from . import cache
from .conditions import KEYS, N_KEYS, Conditions, key_of, transpose_key, window_keys, window_bars
from .corpora import DEFAULT_CORPUS, get_corpus
from .encoding import DEFAULT_METER, Encoding, PianoRoll, Voices, fit_pitch_range, in_range
from .files import atomic_path, check_writable_folder, staged_folder, write_json_atomic
from .io import MIDI_SUFFIXES, Limits, check_file, find_music_files, read_file
from .processes import fork_map
from .errors import UserError
from .piece import Piece
from .theory import pitch_name, shift_to_c

FORMAT_VERSION = 2  # 2: meters and keys (windows of whole bars of each piece's meter, labelled)


@dataclass
class PrepareOptions:
    """Everything that decides what ``prepare`` writes (stored in the manifest)."""

    steps_per_quarter: int = 4
    pitch_range: tuple[int, int] | None = None  # None: fitted to the pieces
    window_bars: int = 4  # bars of 4/4 a window lasts; other meters get the whole bars closest to that length
    hop_bars: int = 1  # windows start on bar lines of each piece's own metre
    min_fill: float = 0.5  # a window needs this share of its steps sounding, or it is dropped
    valid_fraction: float = 0.1
    transpose: tuple[int, int] = (0, 0)  # augmentation of training pieces, semitones, inclusive
    normalize_key: bool = False  # move every piece to C major / A minor first
    encoding: str = "auto"  # roll, voices, or auto: voices when at most 6 hold the corpus (8 for single-line
    # parts), else the piano roll
    voices_from: str = "pitch"  # pitch: voices by pitch order; parts: from the parts where they are single lines
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


def _crashed(args: tuple[str, Limits]) -> Source:
    return Source(path=args[0], error="the reader crashed (or the system ended it, e.g. for memory)")


def load_sources(
    files: list[Path], limits: Limits = Limits(), *, workers: int | None = None, progress: bool = True
) -> list[Source]:
    """Read ``files`` in parallel over the cores, with a progress bar; order is kept."""
    jobs = [(str(f), limits) for f in files]
    workers = workers or os.cpu_count() or 1
    out: list[Source] = []
    with tqdm(total=len(jobs), desc="reading", unit="file", disable=not progress, file=sys.stderr) as bar:
        if workers <= 1 or len(jobs) <= 2:
            for job in jobs:
                out.append(_load_one(job))
                bar.update()
        else:
            chunk = max(1, min(64, len(jobs) // (workers * 8)))  # few round trips, yet a balanced end
            with closing(fork_map(_load_one, jobs, workers, _crashed, chunk)) as sources:
                for src in sources:
                    out.append(src)
                    bar.update()
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


def transpositions(piece: Piece, enc: Encoding, lo: int, hi: int) -> list[int]:
    """The shifts in ``lo..hi`` that keep every in-range note of ``piece`` inside the pitch range (0 always)."""
    kept = piece.pitch[in_range(piece, enc)]
    if not len(kept):
        return [0]
    pmin, pmax = int(kept.min()), int(kept.max())
    return sorted({0} | {t for t in range(lo, hi + 1) if pmin + t >= enc.low and pmax + t <= enc.high})


def meter_problem(meter: tuple[int, int], steps_per_quarter: int, max_bar_quarters: float) -> str | None:
    """Why a piece's time signature cannot place whole-bar windows on its bar lines, or None when it can."""
    num, den = meter
    if num <= 0 or den <= 0 or den & (den - 1) or den > 64:
        return f"time signature {num}/{den} is not a meter"
    quarters = num * 4 / den
    steps = quarters * steps_per_quarter
    if steps < 1 or abs(steps - round(steps)) > 1e-9:
        return (f"time signature {num}/{den}: a bar of {quarters:g} quarter notes does not fill whole steps "
                f"of a {steps_per_quarter}-per-quarter grid")
    if quarters > max_bar_quarters:
        return (f"time signature {num}/{den}: a bar of {quarters:g} quarter notes is longer than a training "
                f"window ({max_bar_quarters:g})")
    return None


def hop_steps(meter: tuple[int, int], hop_bars: int, steps_per_quarter: int) -> int:
    """Steps between window starts: ``hop_bars`` bars of the piece's meter, at least one quarter note, so a
    piece in 1/16 cannot flood the dataset with windows."""
    bar = round(meter[0] * 4 * steps_per_quarter / meter[1])
    return bar * max(hop_bars, -(-steps_per_quarter // bar))


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
    file gave a usable piece. The folder is built beside ``out`` and swapped in only when complete, so an
    interrupted ``prepare`` leaves the previous dataset (or none), never a mix.
    """
    out = check_dataset_target(out)
    files, missing = find_music_files(paths)
    if corpus or not paths:
        files = get_corpus(corpus or DEFAULT_CORPUS).files() + files
    with staged_folder(out) as staging:  # made first: an unwritable --out fails before any parsing
        skipped = [{"path": p, "reason": r} for p, r in missing]
        sources = load_sources(files, options.limits, progress=progress)
        pieces, dropped, fragments = _usable_pieces(sources, options)
        skipped += [{"path": s.path, "reason": s.error} for s in sources if s.error] + dropped
        if pieces and options.pitch_range:
            enc = PianoRoll(options.steps_per_quarter, *options.pitch_range)
        elif pieces:  # a fitted range: a piece mostly outside it is a stray, not the style
            enc = PianoRoll(options.steps_per_quarter, *fit_pitch_range([p for _, _, p in pieces]))
            pieces, outside = _mostly_in_range(pieces, enc)
            skipped += outside
        choice: list[str] = []  # why the encoding is what it is
        if pieces:
            enc = choose_encoding(options.encoding, enc, [p for _, _, p in pieces], options.voices_from,
                                  choice.append)
        for item in skipped:
            log(f"skipped {item['path']}: {item['reason']}")
        if not pieces:
            raise UserError(f"no usable piece among {len(files) + len(missing)} input path(s)")
        manifest = _build(pieces, enc, options, staging)
        manifest.update({
            "corpus": corpus if (corpus or not paths) else None,
            "encoding_choice": choice[-1] if choice else f"{options.encoding}, as asked",
            "sources": [
                {"path": s.path, "sha256": s.sha256, "pieces": len(s.pieces)} for s in sources if not s.error
            ],
            "skipped": skipped,
        })
        manifest["counts"].update({"files": len(files) + len(missing), "meter_fragments_left_out": fragments,
                                   "skipped_files": sum(1 for s in skipped if "piece" not in s)})
        write_json_atomic(staging / "manifest.json", manifest)
    return manifest


def check_dataset_target(out: str | os.PathLike) -> Path:
    """``out`` as a dataset folder to (re)write: refused in one line if it cannot be written, or if it holds
    something other than a dataset (it is replaced whole)."""
    out = check_writable_folder(out)
    if out.is_dir() and any(out.iterdir()) and not (out / "manifest.json").is_file():
        raise UserError(f"--out {out} is a folder with other files in it, not a dataset; choose a new folder")
    return out


def _usable_pieces(sources: list[Source], options: PrepareOptions) -> tuple[list[tuple[Source, int, Piece]],
                                                                           list[dict], int]:
    """The pieces that can be windowed (a piece whose meter changes cut into parts of one meter), one
    ``skipped`` entry per piece that cannot (its file is marked unusable when none of its pieces is left), and
    how many parts were left out as too short for a window: the odd short bar that a score gives a signature
    of its own (a partial bar before a repeat is often written as 1/8), which is no meter of the style."""
    pieces, dropped, fragments = [], [], 0
    shortest = options.min_fill * window_quarters(options)
    for src in sources:
        parts = []
        for piece in src.pieces:
            split = piece.split_at_meter_changes()
            parts.append([p for p in split if len(split) == 1 or p.end >= shortest])
            fragments += len(split) - len(parts[-1])
        if src.pieces and not any(parts):
            src.error = (f"its time signature changes {len(src.pieces[0].meter_changes)} times, and no stretch in "
                         "one meter is long enough for a training window")
        kept = 0
        several = len(src.pieces) > 1 or any(len(p) > 1 for p in parts)
        for i, part in ((i, part) for i, ps in enumerate(parts) for part in ps):
            problem = meter_problem(part.time_signature, options.steps_per_quarter, window_quarters(options))
            if problem:
                if several:
                    dropped.append({"path": f"{src.path}#{i + 1}", "piece": i + 1, "reason": problem})
                else:
                    src.error = problem
                continue
            if options.normalize_key:
                part = part.transpose(shift_to_c(part))
            pieces.append((src, i, part))
            kept += 1
        if src.pieces and not kept and not src.error:
            src.error = "no piece in a usable meter"
        if src.error:
            src.pieces = []
    return pieces, dropped, fragments


#: Share of sounding grid steps a number of voices must hold for ``auto`` and ``voices`` to choose it.
VOICE_COVERAGE = 0.99
MAX_VOICES = 8
#: The most voices ``auto`` chooses by polyphony alone: part music (chorales with their instrumental parts,
#: madrigals, string quartets with double stops) needs 4-6; piano music with full chords (a rag: 7) keeps the roll.
AUTO_MAX_VOICES = 6
#: Share of the pieces whose parts must each be a single line for ``auto`` to choose voices beyond
#: ``AUTO_MAX_VOICES`` (up to ``MAX_VOICES``): then the lines are the music's own (a motet for eight voices).
PART_MUSIC_SHARE = 0.9


def polyphony(pieces: list[Piece], roll: PianoRoll) -> np.ndarray:
    """How many notes sound at once, at each sounding step of ``pieces`` (on the grid of ``roll``)."""
    counts = [(roll.encode(p) > 0).sum(1) for p in pieces]
    counts = np.concatenate(counts) if counts else np.zeros(0, int)
    return counts[counts > 0]


def part_music(pieces: list[Piece], roll: PianoRoll, voices: int = MAX_VOICES) -> bool:
    """Whether (nearly) every piece is written in parts that are each a single line, at most ``voices`` of
    them (a score's parts or a MIDI file's tracks)."""
    lines = Voices(roll.steps_per_quarter, roll.low, roll.high, voices, by_parts=True)
    return bool(pieces) and sum(lines.follows_parts(p) for p in pieces) >= PART_MUSIC_SHARE * len(pieces)


def choose_encoding(kind: str, roll: PianoRoll, pieces: list[Piece], voices_from: str = "pitch",
                    log=lambda line: None) -> Encoding:
    """The encoding ``prepare --encoding`` asks for. ``voices`` gets as many voices as hold 99 % of the sounding
    steps (at most 8); ``auto`` picks the voices when that is at most 6 (melodies, part music: each line is
    then a line by construction, and the model learns in a third of the time the roll takes), or at most 8 when
    the pieces are written in single-line parts, and the piano roll otherwise (it keeps any polyphony).
    ``log`` gets one line saying why (the manifest's ``encoding_choice``)."""
    if kind not in ("auto", "roll", "voices"):
        raise UserError(f"unknown encoding {kind!r}; choose auto, roll or voices")
    if voices_from not in ("pitch", "parts"):
        raise UserError(f"unknown voices_from {voices_from!r}; choose pitch or parts")
    if kind == "roll":
        return roll
    sounding = polyphony(pieces, roll)
    needed = int(np.quantile(sounding, VOICE_COVERAGE, method="higher")) if len(sounding) else 1
    why = f"{VOICE_COVERAGE:.0%} of the sounding steps hold at most {needed} note{'s' * (needed > 1)}"
    if kind == "auto" and needed > AUTO_MAX_VOICES:
        if not (needed <= MAX_VOICES and part_music(pieces, roll)):
            log(f"the piano roll ({why}, more than {AUTO_MAX_VOICES} voices, and the parts are not "
                "single lines)")
            return roll
        why += f", in parts that are single lines in at least {PART_MUSIC_SHARE:.0%} of the pieces"
    voices = min(needed, MAX_VOICES)
    capped = f"; capped at {MAX_VOICES}" if needed > voices else ""
    log(f"{voices} voice{'s' * (voices > 1)} ({why}{capped})")
    return Voices(roll.steps_per_quarter, roll.low, roll.high, voices, voices_from == "parts")


def window_quarters(options: PrepareOptions) -> float:
    """Quarter notes a training window lasts, about, in every meter (exactly in 4/4)."""
    return options.window_bars * 4.0


def _mostly_in_range(pieces: list[tuple[Source, int, Piece]], enc: Encoding
                     ) -> tuple[list[tuple[Source, int, Piece]], list[dict]]:
    """Leave out (with a reason) the pieces with half or more of their notes outside the pitch range: such a
    piece is not in the style (a stray file), and what would be left of it is not music."""
    kept, skipped = [], []
    for src, i, piece in pieces:
        outside = int((~in_range(piece, enc)).sum())
        if 2 * outside >= len(piece):
            reason = (f"{outside} of {len(piece)} notes lie outside the pitch range "
                      f"{pitch_name(enc.low)}-{pitch_name(enc.high)} of the others")
            if len(src.pieces) == 1:
                src.error = reason
                skipped.append({"path": src.path, "reason": reason})
            else:
                skipped.append({"path": f"{src.path}#{i + 1}", "piece": i + 1, "reason": reason})
        else:
            kept.append((src, i, piece))
    return kept, skipped


def conditions_of(pieces: list[Piece], keys: list[int], enc: Encoding, options: PrepareOptions) -> Conditions:
    """The meters of ``pieces`` (most common first), each meter's window length, and the pieces per (meter,
    key), given each piece's key."""
    by_meter: dict[tuple[int, int], int] = {}
    for p in pieces:
        by_meter[p.time_signature] = by_meter.get(p.time_signature, 0) + 1
    meters = sorted(by_meter, key=lambda m: (-by_meter[m], m))
    counts = np.zeros((len(meters), N_KEYS))
    for p, k in zip(pieces, keys):
        counts[meters.index(p.time_signature), k] += 1
    steps = [window_bars(m, window_quarters(options)) * enc.steps_per_bar(m) for m in meters]
    return Conditions(meters, steps, counts)


def _build(pieces: list[tuple[Source, int, Piece]], enc: Encoding, options: PrepareOptions, folder: Path) -> dict:
    """Encode, window and split ``pieces``; write the arrays into ``folder``; return the manifest's body."""
    piece_keys = [key_of(p) for _, _, p in pieces]  # each piece's key, estimated once
    conditions = conditions_of([p for _, _, p in pieces], piece_keys, enc, options)
    window = max(conditions.window_steps)  # shorter windows are stored padded
    keys = [f"{src.sha256}#{i}" for src, i, _ in pieces]  # the parts of one piece go to one split
    splits = split_pieces(keys, options.valid_fraction, options.seed)

    data = _encode_and_window(pieces, piece_keys, splits, enc, conditions, options)
    arrays = _write_arrays(folder, data, window, enc)

    opts = asdict(options)
    opts["limits"] = asdict(options.limits)
    return {
        "format_version": FORMAT_VERSION,
        "encoding": enc.to_dict(),
        "window_steps": window,
        "meter": list(conditions.meters[0]),  # the most common meter: the one scores are taken in
        "conditions": conditions.to_dict(),
        "tempo": float(np.median([p.tempo for _, _, p in pieces])),  # quarter notes per minute, for decoding
        "options": opts,
        "counts": {
            "pieces": len(pieces),
            "train_pieces": splits.count("train"),
            "valid_pieces": splits.count("valid"),
            "train_windows": len(data.windows["train"]),
            "valid_windows": len(data.windows["valid"]),
            "notes_out_of_range": data.dropped_notes,
            "pieces_with_notes_out_of_range": data.pieces_out_of_range,
            "pieces_voiced_by_parts": data.pieces_by_parts,
        },
        "arrays": arrays,
        "pieces": data.piece_rows,
    }


@dataclass
class _Encoded:
    """Every piece encoded whole (``rolls``) and cut into windows per split, with what the manifest records."""

    rolls: list[np.ndarray] = field(default_factory=list)
    windows: dict[str, list] = field(default_factory=lambda: {"train": [], "valid": []})
    index: dict[str, list] = field(default_factory=lambda: {"train": [], "valid": []})  # see the module doc
    piece_rows: list[dict] = field(default_factory=list)
    dropped_notes: int = 0
    pieces_out_of_range: int = 0
    pieces_by_parts: int = 0  # pieces whose cells are their own parts (voices from score parts, MIDI tracks)


def _encode_and_window(pieces: list[tuple[Source, int, Piece]], piece_keys: list[int], splits: list[str],
                       enc: Encoding, conditions: Conditions, options: PrepareOptions) -> _Encoded:
    """Encode each piece, cut its windows on its own bar lines, and add transposed copies of training pieces."""
    data, offset, longest = _Encoded(), 0, max(conditions.window_steps)
    for n, ((src, _, piece), key, split) in enumerate(zip(pieces, piece_keys, splits)):
        meter = conditions.meters.index(piece.time_signature)
        window = conditions.window_steps[meter]
        outside = int((~in_range(piece, enc)).sum())
        data.dropped_notes += outside
        data.pieces_out_of_range += outside > 0
        roll = enc.encode(piece)
        data.rolls.append(roll)
        data.pieces_by_parts += enc.follows_parts(piece)
        hop = hop_steps(piece.time_signature, options.hop_bars, enc.steps_per_quarter)
        shifts = transpositions(piece, enc, *options.transpose) if split == "train" else [0]
        starts = windows_of(roll, window, hop, options.min_fill)
        # each window is labelled with the key it is in (a chorale in D minor has stretches in F major): what G
        # learns to write under a key is then music in that key, not any stretch of a piece in it
        keys = window_keys(roll, starts, window, enc)
        for t in shifts:
            shifted = roll if t == 0 else enc.encode(piece.transpose(t))
            padded = np.concatenate([shifted, np.zeros((longest, enc.cells), np.uint8)])
            for s, k in zip(starts, keys):
                cut = padded[s : s + longest].copy()
                cut[window:] = 0
                data.windows[split].append(cut)
                data.index[split].append((n, s, t, meter, transpose_key(k, t)))
        data.piece_rows.append({
            "name": piece.name, "source": src.path, "sha256": src.sha256, "split": split,
            "offset": offset, "steps": int(roll.shape[0]), "tempo": piece.tempo,
            "time_signature": list(piece.time_signature), "key": KEYS[key], "windows": len(starts),
        })
        offset += roll.shape[0]
    return data


ARRAYS = ("train", "valid", "train_index", "valid_index", "rolls")
INDEX_COLUMNS = 5  # piece, first step, transposition, meter, key


def _write_arrays(out: Path, data: _Encoded, window: int, enc: Encoding) -> dict:
    """Write the arrays; return, per array, its shape, dtype and SHA-256 for the manifest (checked on load)."""
    arrays = {}
    for split in ("train", "valid"):
        w = data.windows[split]
        arrays[split] = np.stack(w) if w else np.zeros((0, window, enc.cells), np.uint8)
        arrays[f"{split}_index"] = np.asarray(data.index[split], dtype=np.int32).reshape(-1, INDEX_COLUMNS)
    arrays["rolls"] = np.concatenate(data.rolls) if data.rolls else np.zeros((0, enc.cells), np.uint8)
    record = {}
    for name in ARRAYS:
        arr = np.ascontiguousarray(arrays[name])
        _save_npy(out / f"{name}.npy", arr)
        record[name] = {"shape": list(arr.shape), "dtype": str(arr.dtype),
                        "sha256": hashlib.sha256(arr.data).hexdigest()}
    return record


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
    def content_hash(self) -> str:
        """SHA-256 of the dataset's content (its arrays' checksums and encoding), the same on every machine."""
        content = {"arrays": self.manifest.get("arrays"), "encoding": self.manifest["encoding"],
                   "pieces": [(p["sha256"], p["split"], p["steps"]) for p in self.manifest["pieces"]]}
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()

    @property
    def meter(self) -> tuple[int, int]:
        """The most common meter of the pieces: the one scores are taken in."""
        return tuple(self.manifest.get("meter", DEFAULT_METER))

    @property
    def conditions(self) -> Conditions:
        """The meters, their window lengths and the style's mix of meters and keys."""
        return Conditions.from_dict(self.manifest["conditions"])

    def windows_in(self, split: str, meter: int) -> np.ndarray:
        """The windows of ``split`` in the meter numbered ``meter``, at that meter's own length."""
        windows, index = (self.train, self.train_index) if split == "train" else (self.valid, self.valid_index)
        steps = self.conditions.window_steps[meter]
        return np.asarray(windows[np.flatnonzero(index[:, 3] == meter)][:, :steps])

    def piece_grids(self, split: str | None = None, meter: tuple[int, int] | None = None) -> list[np.ndarray]:
        """Whole, untransposed pieces in ``split`` ('train', 'valid' or None for all), of one ``meter`` or of
        all, in the dataset's encoding."""
        return [
            np.asarray(self.rolls[p["offset"] : p["offset"] + p["steps"]])
            for p in self.manifest["pieces"]
            if (split is None or p["split"] == split) and (meter is None or tuple(p["time_signature"]) == meter)
        ]

    def piece_rolls(self, split: str | None = None, meter: tuple[int, int] | None = None) -> list[np.ndarray]:
        """:meth:`piece_grids` as piano rolls of ``encoding.roll`` (what metrics read, whatever the encoding)."""
        return [self.encoding.to_roll(g) for g in self.piece_grids(split, meter)]


def load_dataset(root: str | os.PathLike, *, verify: bool = True) -> Dataset:
    """Open a folder written by :func:`prepare`; one clear line if it is not one, or is damaged.

    Every array's shape and dtype is checked against the manifest, and (``verify``) its bytes against the
    SHA-256 recorded there, so a corrupted or mixed-up folder never trains silently.
    """
    root = Path(root)
    manifest_path = root / "manifest.json"
    if not manifest_path.is_file():
        raise UserError(f"{root}: not a dataset folder (no manifest.json); make one with `gancomposer prepare`")
    try:
        manifest = json.loads(manifest_path.read_text())
        if not isinstance(manifest, dict):
            raise ValueError("the manifest is not a JSON object")
        if manifest.get("format_version") != FORMAT_VERSION:
            raise UserError(f"{root}: dataset format {manifest.get('format_version')}, expected {FORMAT_VERSION}; "
                            "prepare it again")
        encoding = Encoding.from_dict(manifest["encoding"])
        arrays = {name: np.load(root / f"{name}.npy", mmap_mode="r", allow_pickle=False) for name in ARRAYS}
        _check_arrays(manifest, encoding, arrays, verify)
    except UserError:
        raise
    except Exception as e:  # whatever is wrong inside the folder, the answer is the same: prepare it again
        reason = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        if isinstance(e, KeyError):
            reason = f"the manifest has no {e}"
        raise UserError(f"{root}: damaged dataset folder ({reason}); prepare it again") from None
    return Dataset(root, manifest, encoding, **arrays)


def _check_arrays(manifest: dict, enc: Encoding, arrays: dict[str, np.ndarray], verify: bool) -> None:
    """Raise ValueError naming the first array that does not match what the manifest says it holds."""
    counts, window = manifest["counts"], int(manifest["window_steps"])
    steps = sum(int(p["steps"]) for p in manifest["pieces"])
    expected = {
        "train": (counts["train_windows"], window, enc.cells), "valid": (counts["valid_windows"], window, enc.cells),
        "train_index": (counts["train_windows"], INDEX_COLUMNS),
        "valid_index": (counts["valid_windows"], INDEX_COLUMNS),
        "rolls": (steps, enc.cells),
    }
    recorded = manifest.get("arrays")  # absent in datasets written by 0.1.0
    for name, arr in arrays.items():
        shape = tuple(recorded[name]["shape"]) if recorded else expected[name]
        if arr.shape != shape or shape != tuple(expected[name]):
            raise ValueError(f"{name}.npy holds {arr.shape}, the manifest says {shape}")
        if recorded and str(arr.dtype) != recorded[name]["dtype"]:
            raise ValueError(f"{name}.npy holds {arr.dtype}, the manifest says {recorded[name]['dtype']}")
        digest = hashlib.sha256(np.ascontiguousarray(arr).data).hexdigest() if verify and recorded else None
        if digest and digest != recorded[name]["sha256"]:
            raise ValueError(f"{name}.npy does not match the checksum in the manifest")
        if verify and not recorded and name in ("train", "valid", "rolls") and arr.size and arr.max() >= enc.states:
            raise ValueError(f"{name}.npy holds values outside the encoding's {enc.states} states")
