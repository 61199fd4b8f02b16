"""Checkpoints that are safe to open: weights in safetensors, settings as JSON inside the same file.

A checkpoint ``NAME.safetensors`` holds the tensors of G, D and G's moving average (``G.``, ``D.``,
``G_ema.`` prefixes) and, in its metadata, the training config, the encoding and progress counters: it alone is
enough to sample. Optimiser and RNG states for an exact resume sit beside it in ``NAME.state.pt``, loaded
with ``torch.load(weights_only=True)`` (tensors and plain containers only, never arbitrary objects).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .files import atomic_path
from .piece import MusicError

CHECKPOINT_VERSION = 1


def save(path: str | os.PathLike, models: dict[str, torch.nn.Module], info: dict, state: dict | None = None) -> None:
    """Write ``models`` and ``info`` to ``path`` (and ``state`` beside it), each file atomically."""
    path = Path(path)
    tensors = {
        f"{name}.{key}": value.detach().cpu().contiguous()
        for name, module in models.items()
        for key, value in module.state_dict().items()
    }
    meta = {"gancomposer": json.dumps({"checkpoint_version": CHECKPOINT_VERSION, **info})}
    if state is not None:  # state first: a checkpoint never points at a missing resume file
        with atomic_path(state_path(path)) as tmp:
            torch.save(state, tmp)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)


def state_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path.with_name(path.name.replace(".safetensors", ".state.pt"))


def load(path: str | os.PathLike) -> tuple[dict[str, dict[str, torch.Tensor]], dict]:
    """Read a checkpoint: ``({model name: state dict}, info)``; a clear error if it is not one."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if "gancomposer" not in meta:
                raise MusicError(f"{path}: not a gancomposer checkpoint (no gancomposer metadata)")
            groups: dict[str, dict[str, torch.Tensor]] = {}
            for key in f.keys():
                name, sub = key.split(".", 1)
                groups.setdefault(name, {})[sub] = f.get_tensor(key)
    except MusicError:
        raise
    except Exception as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise MusicError(f"{path}: cannot read checkpoint ({reason})") from None
    info = json.loads(meta["gancomposer"])
    if info.get("checkpoint_version") != CHECKPOINT_VERSION:
        raise MusicError(f"{path}: checkpoint version {info.get('checkpoint_version')}, expected {CHECKPOINT_VERSION}")
    return groups, info


def load_state(path: str | os.PathLike) -> dict:
    """The resume state beside checkpoint ``path`` (weights-only unpickling: tensors and plain data)."""
    sp = state_path(path)
    if not sp.is_file():
        raise MusicError(f"{path}: no resume state ({sp.name}) beside it")
    return torch.load(sp, map_location="cpu", weights_only=True)


def find(run_or_file: str | os.PathLike, prefer: str = "best") -> Path:
    """A checkpoint file given itself or a run folder (``best`` or ``latest`` in that folder)."""
    p = Path(run_or_file)
    if p.is_file():
        return p
    folder = p / "checkpoints" if (p / "checkpoints").is_dir() else p
    steps = sorted(folder.glob("step-*.safetensors"))
    best = folder / "best.safetensors"
    if prefer == "best" and best.is_file():
        return best
    if steps:
        return steps[-1]
    if best.is_file():
        return best
    raise MusicError(f"{run_or_file}: no checkpoint found (expected a .safetensors file or a run folder)")


def prune(folder: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` step checkpoints (and their resume states)."""
    for old in sorted(folder.glob("step-*.safetensors"))[:-keep]:
        old.unlink(missing_ok=True)
        state_path(old).unlink(missing_ok=True)


def export_generator(source: str | os.PathLike, out: str | os.PathLike, extra: dict | None = None) -> Path:
    """Write the generator of a checkpoint (its moving average when there is one) as a small sampling-only
    checkpoint: what the package ships as its pretrained model."""
    src = find(source, prefer="best")
    groups, info = load(src)
    weights = groups.get("G_ema") or groups.get("G")
    if weights is None:
        raise MusicError(f"{src}: holds no generator weights")
    info = {**info, "exported_from": src.name, **(extra or {})}
    info.pop("checkpoint_version", None)
    tensors = {f"G.{k}": v.contiguous() for k, v in weights.items()}
    meta = {"gancomposer": json.dumps({"checkpoint_version": CHECKPOINT_VERSION, **info})}
    with atomic_path(out) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return Path(out)
