"""``gancomposer evaluate``: how close generated music is to a reference style, and that it is not copied.

Every set (the model's pieces, baselines, and the reference's own validation split) is cut into 4-bar
windows and compared with the reference's training split. The reference-vs-reference row (validation vs
training) shows the best value each number can reach.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import cache
from .dataset import load_dataset, load_sources, prepare, split_pieces
from .encoding import Encoding, encode, fit_pitch_range
from .files import write_bytes_atomic, write_json_atomic
from .io import find_music_files
from .metrics import (SCALAR_FEATURES, classifier_two_sample_test, copy_rate, feature_matrix,
                      frechet_distance, kl_divergence, overlap_area, training_window_keys)
from .piece import MusicError

FEATURE_VERSION = 1
HEADLINE = {  # key: (label, better)
    "overlap_area": ("mean overlap area", "higher"),
    "kl_divergence": ("mean KL divergence", "lower"),
    "two_sample_accuracy": ("two-sample accuracy", "closer to 0.5"),
    "frechet_distance": ("Fréchet feature distance", "lower"),
    "copied_2bar_windows": ("copied 2-bar windows", "lower"),
    "silent_4bar_windows": ("silent 4-bar windows", "lower"),
    "pitch_classes_used": ("pitch classes used", "12 like the reference"),
}


@dataclass
class WindowSet:
    """Fixed-length windows of a set of pieces, with the piece each came from."""

    windows: np.ndarray  # (n, steps, pitches) uint8
    groups: np.ndarray  # (n,) piece number


def cut_windows(rolls: list[np.ndarray], window: int, hop: int | None = None) -> WindowSet:
    """Windows every ``hop`` steps (default: back to back); a piece shorter than a window is padded."""
    hop = hop or window
    out, groups = [], []
    for i, roll in enumerate(rolls):
        if len(roll) < window:
            roll = np.concatenate([roll, np.zeros((window - len(roll), roll.shape[1]), roll.dtype)])
        for s in range(0, len(roll) - window + 1, hop):
            out.append(roll[s : s + window])
            groups.append(i)
    pitches = rolls[0].shape[1] if rolls else 0
    return WindowSet(np.stack(out) if out else np.zeros((0, window, pitches), np.uint8), np.asarray(groups))


@dataclass
class Reference:
    name: str
    enc: Encoding
    train: list[np.ndarray]
    valid: list[np.ndarray]


def _corpus_dataset(corpus: str) -> Path:
    """The bundled corpus prepared once into the cache (reused while the corpus is unchanged)."""
    import music21

    folder = cache.cache_dir() / "datasets" / f"{corpus}-music21-{music21.__version__}"
    if not (folder / "manifest.json").is_file():
        prepare([], folder, corpus=corpus, progress=False, log=lambda s: None)
    return folder


def read_rolls(paths: list[str], enc: Encoding | None = None, log=print) -> tuple[list[np.ndarray], Encoding]:
    """Encode every piece in ``paths`` (files or folders); with no encoding given, fit one to the pieces."""
    files, missing = find_music_files(paths)
    for p, reason in missing:
        log(f"skipped {p}: {reason}")
    sources = load_sources(files, progress=False)
    pieces = []
    for s in sources:
        if s.error:
            log(f"skipped {s.path}: {s.error}")
        pieces.extend(s.pieces)
    if not pieces:
        raise MusicError(f"no usable piece in {', '.join(map(str, paths))}")
    enc = enc or Encoding(4, *fit_pitch_range(pieces))
    return [encode(p, enc) for p in pieces], enc


def load_reference(reference: str | None = None, corpus: str | None = None, log=print) -> Reference:
    """A dataset folder, a folder of music (split in halves by piece) or a bundled corpus (the default)."""
    if reference is None or (Path(reference) / "manifest.json").is_file():
        folder = Path(reference) if reference else _corpus_dataset(corpus or "bach-chorales")
        ds = load_dataset(folder)
        name = reference or corpus or "bach-chorales"
        return Reference(str(name), ds.encoding, ds.piece_rolls("train"), ds.piece_rolls("valid"))
    rolls, enc = read_rolls([reference], log=log)
    split = split_pieces([f"{i}" for i in range(len(rolls))], 0.5, seed=0)
    return Reference(reference, enc, [r for r, s in zip(rolls, split) if s == "train"],
                     [r for r, s in zip(rolls, split) if s == "valid"])


def _reference_features(ref: Reference, window: int, bar: int):
    """Features of the reference's windows and its 2-bar copy keys, cached by the data's content."""
    h = hashlib.sha256(json.dumps([FEATURE_VERSION, ref.enc.to_dict(), window, bar]).encode())
    for r in ref.train + [np.zeros(1, np.uint8)] + ref.valid:
        h.update(np.ascontiguousarray(r).tobytes())
    path = cache.cache_dir() / "features" / f"{h.hexdigest()}.npz"
    train_w, valid_w = cut_windows(ref.train, window), cut_windows(ref.valid, window)
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            return train_w, valid_w, z["train"], z["valid"], set(z["keys"].tolist())
    train_f, valid_f = feature_matrix(train_w.windows, ref.enc), feature_matrix(valid_w.windows, ref.enc)
    keys = training_window_keys(ref.train, 2 * bar)
    path.parent.mkdir(parents=True, exist_ok=True)
    import io

    buf = io.BytesIO()
    np.savez(buf, train=train_f, valid=valid_f, keys=np.array(sorted(keys), dtype="S16"))
    write_bytes_atomic(path, buf.getvalue())
    return train_w, valid_w, train_f, valid_f, keys


def compare(gen: WindowSet, gen_f: np.ndarray, two_bar: np.ndarray, ref: WindowSet, ref_f: np.ndarray,
            keys: set[bytes], enc: Encoding) -> dict:
    """One report row: the headline numbers and per-feature statistics of ``gen`` against ``ref``."""
    per_feature = {}
    for i, name in enumerate(SCALAR_FEATURES):
        g, r = gen_f[:, i], ref_f[:, i]
        per_feature[name] = {
            "overlap_area": overlap_area(g, r), "kl_divergence": kl_divergence(r, g),
            "mean": float(g.mean()), "std": float(g.std()),
            "reference_mean": float(r.mean()), "reference_std": float(r.std()),
        }
    silent = ~(gen.windows != 0).any(axis=(1, 2))
    pch = gen_f[:, len(SCALAR_FEATURES) : len(SCALAR_FEATURES) + 12].mean(0)
    return {
        "windows": int(len(gen.windows)), "pieces": int(len(np.unique(gen.groups))),
        "overlap_area": float(np.mean([v["overlap_area"] for v in per_feature.values()])),
        "kl_divergence": float(np.mean([v["kl_divergence"] for v in per_feature.values()])),
        "two_sample_accuracy": classifier_two_sample_test(gen_f, gen.groups, ref_f, ref.groups),
        "frechet_distance": frechet_distance(gen_f, ref_f),
        "copied_2bar_windows": copy_rate(two_bar, keys),
        "silent_4bar_windows": float(silent.mean()) if len(silent) else 0.0,
        "pitch_classes_used": int((gen_f[:, len(SCALAR_FEATURES) : len(SCALAR_FEATURES) + 12].sum(0) > 0).sum()),
        "pitch_class_histogram": pch.tolist(),
        "features": per_feature,
    }


def evaluate(
    generated: dict[str, str], *, reference: str | None = None, corpus: str | None = None,
    out: str | os.PathLike | None = None, log=print,
) -> dict:
    """Compare each named folder of generated music with the reference; write report files to ``out``."""
    ref = load_reference(reference, corpus, log=log)
    bar = ref.enc.steps_per_bar((4, 4))
    window = 4 * bar
    train_w, valid_w, train_f, valid_f, keys = _reference_features(ref, window, bar)
    if len(valid_w.windows) == 0 or len(train_w.windows) == 0:
        raise MusicError("the reference needs pieces in both its training and validation splits")
    rows, examples, feats = {}, {}, {"reference (train)": train_f}
    for name, folder in generated.items():
        rolls, _ = read_rolls([folder], ref.enc, log=log)
        ws = cut_windows(rolls, window)
        f = feature_matrix(ws.windows, ref.enc)
        rows[name] = compare(ws, f, cut_windows(rolls, 2 * bar, bar).windows, train_w, train_f, keys, ref.enc)
        examples[name], feats[name] = ws.windows[:3], f
    rows["reference (valid vs train)"] = compare(
        valid_w, valid_f, cut_windows(ref.valid, 2 * bar, bar).windows, train_w, train_f, keys, ref.enc)
    report = {"reference": ref.name, "encoding": ref.enc.to_dict(), "window_steps": window, "rows": rows,
              "headline": {k: {"label": v[0], "better": v[1]} for k, v in HEADLINE.items()}}
    if out is not None:
        write_report(report, Path(out), feats, examples, ref.enc, bar)
    return report


def markdown_table(report: dict) -> str:
    """The headline numbers of every row as a Markdown table."""
    keys = list(HEADLINE)
    head = "| set | " + " | ".join(f"{HEADLINE[k][0]} ({HEADLINE[k][1]})" for k in keys) + " |"
    lines = [head, "|" + "---|" * (len(keys) + 1)]
    for name, row in report["rows"].items():
        cells = []
        for k in keys:
            v = row[k]
            cells.append(f"{100 * v:.1f} %" if k.startswith(("copied", "silent")) else
                         (str(v) if isinstance(v, int) else f"{v:.3f}"))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(report: dict, out: Path, feats: dict, examples: dict, enc: Encoding, bar: int) -> None:
    from . import plots

    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "report.json", report)
    k = len(SCALAR_FEATURES)
    plots.save_feature_distributions({n: f[:, :k] for n, f in feats.items()}, list(SCALAR_FEATURES),
                                     out / "features.png")
    plots.save_pitch_class_histograms({n: f[:, k : k + 12].mean(0) for n, f in feats.items()},
                                      out / "pitch_classes.png")
    rolls, titles = [], []
    for name, ws in examples.items():
        for i, w in enumerate(ws[:2]):
            rolls.append(w)
            titles.append(f"{name} #{i + 1}")
    if rolls:
        plots.save_rolls_grid(rolls, enc, out / "piano_rolls.png", titles, bar)
    per_feature = ["| feature | " + " | ".join(report["rows"]) + " |", "|" + "---|" * (len(report["rows"]) + 1)]
    for name in SCALAR_FEATURES:
        cells = [f"{r['features'][name]['overlap_area']:.2f}" for r in report["rows"].values()]
        per_feature.append(f"| {name} | " + " | ".join(cells) + " |")
    text = (
        f"# Evaluation against {report['reference']}\n\n"
        f"Every set is cut into 4-bar windows ({report['window_steps']} steps) and compared with the reference's "
        "training split. The last row compares the reference's own validation split with its training split: the "
        "best each number can reach.\n\n" + markdown_table(report) + "\n\n"
        "## Overlap area per feature\n\n" + "\n".join(per_feature) + "\n\n"
        "![feature distributions](features.png)\n\n![pitch classes](pitch_classes.png)\n\n"
        "![piano rolls](piano_rolls.png)\n"
    )
    write_bytes_atomic(out / "report.md", text.encode())
