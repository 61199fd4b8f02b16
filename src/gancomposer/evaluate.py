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
from .encoding import DEFAULT_METER, PianoRoll, pitch_span
from .errors import UserError
from .files import write_bytes_atomic, write_json_atomic
from .io import find_music_files
from .metrics import (PITCH_CLASSES, SCALAR_FEATURES, SCALARS, classifier_two_sample_test, copy_rate,
                      feature_matrix, frechet_distance, kl_divergence, overlap_area, training_window_keys)

FEATURE_VERSION = 1
WINDOW_BARS = 4  # every set is compared in windows of this many bars
COPY_BARS = 2  # windows of this many bars are looked up in the training data
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
    """The real music a set is compared with: its encoding, meter, and training and validation pieces."""

    name: str
    enc: PianoRoll
    train: list[np.ndarray]
    valid: list[np.ndarray]
    meter: tuple[int, int] = DEFAULT_METER

    @property
    def bar(self) -> int:
        return self.enc.steps_per_bar(self.meter)


@dataclass
class FeatureSet:
    """A set of pieces as the comparison sees it: 4-bar windows and their features, and 2-bar windows for the
    copy check."""

    windows: WindowSet
    features: np.ndarray  # (windows, N_FEATURES)
    copy_windows: np.ndarray  # (n, 2 bars, pitches), every bar


def feature_set(rolls: list[np.ndarray], ref: Reference, features: np.ndarray | None = None) -> FeatureSet:
    """Windows and features of ``rolls`` on the reference's grid (``features`` when already computed)."""
    ws = cut_windows(rolls, WINDOW_BARS * ref.bar)
    if features is None:
        features = feature_matrix(ws.windows, ref.enc, ref.bar)
    return FeatureSet(ws, features, cut_windows(rolls, COPY_BARS * ref.bar, ref.bar).windows)


@dataclass
class ReferenceFeatures:
    train: FeatureSet
    valid: FeatureSet
    copy_keys: set[bytes]  # transposition-free keys of every 2-bar stretch of the training pieces


def _corpus_dataset(corpus: str) -> Path:
    """The bundled corpus prepared once into the cache (reused while the corpus is unchanged)."""
    import music21

    folder = cache.cache_dir() / "datasets" / f"{corpus}-music21-{music21.__version__}"
    if not (folder / "manifest.json").is_file():
        prepare([], folder, corpus=corpus, progress=False, log=lambda s: None)
    return folder


def read_rolls(paths: list[str], enc: PianoRoll | None = None, *, steps_per_quarter: int = 4,
               log=print) -> tuple[list[np.ndarray], PianoRoll]:
    """Encode every piece in ``paths`` (files or folders) with ``enc``; with none given, fit a piano roll on
    a grid of ``steps_per_quarter`` to the pieces."""
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
        raise UserError(f"no usable piece in {', '.join(map(str, paths))}")
    enc = enc or PianoRoll(steps_per_quarter, *pitch_span(pieces))
    return [enc.encode(p) for p in pieces], enc


def load_reference(reference: str | None = None, corpus: str | None = None, log=print) -> Reference:
    """A dataset folder, a folder of music (split in halves by piece) or a bundled corpus (the default)."""
    if reference is None or (Path(reference) / "manifest.json").is_file():
        folder = Path(reference) if reference else _corpus_dataset(corpus or "bach-chorales")
        ds = load_dataset(folder)
        name = reference or corpus or "bach-chorales"
        return Reference(str(name), ds.encoding.roll, ds.piece_rolls("train"), ds.piece_rolls("valid"), ds.meter)
    rolls, enc = read_rolls([reference], log=log)
    split = split_pieces([f"{i}" for i in range(len(rolls))], 0.5, seed=0)
    return Reference(reference, enc, [r for r, s in zip(rolls, split) if s == "train"],
                     [r for r, s in zip(rolls, split) if s == "valid"])


def reference_features(ref: Reference) -> ReferenceFeatures:
    """Features of the reference's windows and its copy keys, cached by the data's content."""
    window = WINDOW_BARS * ref.bar
    h = hashlib.sha256(json.dumps([FEATURE_VERSION, ref.enc.to_dict(), window, ref.bar]).encode())
    for r in ref.train + [np.zeros(1, np.uint8)] + ref.valid:
        h.update(np.ascontiguousarray(r).tobytes())
    path = cache.cache_dir() / "features" / f"{h.hexdigest()}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            return ReferenceFeatures(feature_set(ref.train, ref, z["train"]), feature_set(ref.valid, ref, z["valid"]),
                                     set(z["keys"].tolist()))
    out = ReferenceFeatures(feature_set(ref.train, ref), feature_set(ref.valid, ref),
                            training_window_keys(ref.train, COPY_BARS * ref.bar))
    path.parent.mkdir(parents=True, exist_ok=True)
    import io

    buf = io.BytesIO()
    np.savez(buf, train=out.train.features, valid=out.valid.features,
             keys=np.array(sorted(out.copy_keys), dtype="S16"))
    write_bytes_atomic(path, buf.getvalue())
    return out


def compare(gen: FeatureSet, ref: FeatureSet, copy_keys: set[bytes]) -> dict:
    """One report row: the headline numbers and per-feature statistics of ``gen`` against ``ref``."""
    per_feature = {}
    for i, name in enumerate(SCALAR_FEATURES):
        g, r = gen.features[:, SCALARS][:, i], ref.features[:, SCALARS][:, i]
        per_feature[name] = {
            "overlap_area": overlap_area(g, r), "kl_divergence": kl_divergence(r, g),
            "mean": float(g.mean()), "std": float(g.std()),
            "reference_mean": float(r.mean()), "reference_std": float(r.std()),
        }
    silent = ~(gen.windows.windows != 0).any(axis=(1, 2))
    pitch_classes = gen.features[:, PITCH_CLASSES]
    return {
        "windows": int(len(gen.windows.windows)), "pieces": int(len(np.unique(gen.windows.groups))),
        "overlap_area": float(np.mean([v["overlap_area"] for v in per_feature.values()])),
        "kl_divergence": float(np.mean([v["kl_divergence"] for v in per_feature.values()])),
        "two_sample_accuracy": classifier_two_sample_test(gen.features, gen.windows.groups, ref.features,
                                                          ref.windows.groups),
        "frechet_distance": frechet_distance(gen.features, ref.features),
        "copied_2bar_windows": copy_rate(gen.copy_windows, copy_keys),
        "silent_4bar_windows": float(silent.mean()) if len(silent) else 0.0,
        "pitch_classes_used": int((pitch_classes.sum(0) > 0).sum()),
        "pitch_class_histogram": pitch_classes.mean(0).tolist(),
        "features": per_feature,
    }


def evaluate(
    generated: dict[str, str], *, reference: str | None = None, corpus: str | None = None,
    out: str | os.PathLike | None = None, log=print,
) -> dict:
    """Compare each named folder of generated music with the reference; write report files to ``out``."""
    ref = load_reference(reference, corpus, log=log)
    rf = reference_features(ref)
    if len(rf.valid.windows.windows) == 0 or len(rf.train.windows.windows) == 0:
        raise UserError("the reference needs pieces in both its training and validation splits")
    rows, examples, feats = {}, {}, {"reference (train)": rf.train.features}
    for name, folder in generated.items():
        rolls, _ = read_rolls([folder], ref.enc, log=log)
        fs = feature_set(rolls, ref)
        rows[name] = compare(fs, rf.train, rf.copy_keys)
        examples[name], feats[name] = fs.windows.windows[:3], fs.features
    rows["reference (valid vs train)"] = compare(rf.valid, rf.train, rf.copy_keys)
    report = {"reference": ref.name, "encoding": ref.enc.to_dict(), "window_steps": WINDOW_BARS * ref.bar,
              "rows": rows, "headline": {k: {"label": v[0], "better": v[1]} for k, v in HEADLINE.items()}}
    if out is not None:
        write_report(report, Path(out), feats, examples, ref.enc, ref.bar)
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


def write_report(report: dict, out: Path, feats: dict, examples: dict, enc: PianoRoll, bar: int) -> None:
    from . import plots

    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "report.json", report)
    plots.save_feature_distributions({n: f[:, SCALARS] for n, f in feats.items()}, list(SCALAR_FEATURES),
                                     out / "features.png")
    plots.save_pitch_class_histograms({n: f[:, PITCH_CLASSES].mean(0) for n, f in feats.items()},
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
