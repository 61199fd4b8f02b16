"""Checkpoints that are safe to open: weights in safetensors, settings as JSON inside the same file.

A checkpoint ``NAME.safetensors`` holds the tensors of G, D and G's moving average (``G.``, ``D.``,
``G_ema.`` prefixes) and, in its metadata, the networks' own config (``model``) apart from the training options
(``train``), the data's encoding, meter and tempo (``data``) and the progress counters: it alone is enough to
sample. Checkpoints of version 1 (gancomposer 0.1.0: one flat ``config``) are read into the same form.
Optimiser and RNG states for an exact resume sit beside it in ``NAME.state.pt``, loaded with
``torch.load(weights_only=True)`` (tensors and plain containers only, never arbitrary objects).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .conditions import Conditions
from .config import from_stored, model_config
from .encoding import DEFAULT_METER, Encoding
from .errors import UserError
from .files import atomic_path, disk_error
from .model import Generator

CHECKPOINT_VERSION = 2
READABLE_VERSIONS = (1, 2)


def save(path: str | os.PathLike, models: dict[str, torch.nn.Module], info: dict, state: dict | None = None) -> None:
    """Write ``models`` and ``info`` to ``path`` (and ``state`` beside it), each file atomically."""
    path = Path(path)
    tensors = {
        f"{name}.{key}": value.detach().cpu().contiguous()
        for name, module in models.items()
        for key, value in module.state_dict().items()
    }
    meta = {"gancomposer": json.dumps({"checkpoint_version": CHECKPOINT_VERSION, **info})}
    try:
        if state is not None:  # state first: a checkpoint never points at a missing resume file
            with atomic_path(state_path(path)) as tmp:
                torch.save(state, tmp)
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata=meta)
    except Exception as e:  # a full disk (each writer words it its own way): the earlier checkpoints are intact
        raise disk_error(e, path) from None


def update_info(path: str | os.PathLike, extra: dict) -> None:
    """Add ``extra`` to the metadata of the checkpoint ``path`` (its tensors unchanged), atomically."""
    with safe_open(str(path), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        info = json.loads((f.metadata() or {})["gancomposer"])
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"gancomposer": json.dumps({**info, **extra})})


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
                raise UserError(f"{path}: not a gancomposer checkpoint (no gancomposer metadata)")
            groups: dict[str, dict[str, torch.Tensor]] = {}
            for key in f.keys():
                name, sub = key.split(".", 1)
                groups.setdefault(name, {})[sub] = f.get_tensor(key)
    except UserError:
        raise
    except Exception as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(f"{path}: cannot read checkpoint ({reason})") from None
    info = json.loads(meta["gancomposer"])
    if info.get("checkpoint_version") not in READABLE_VERSIONS:
        raise UserError(f"{path}: checkpoint version {info.get('checkpoint_version')}; this version of "
                        f"gancomposer reads {', '.join(map(str, READABLE_VERSIONS))}")
    return groups, _upgrade(info, path)


def _upgrade(info: dict, path: Path) -> dict:
    """Version-1 metadata in today's form: ``model`` and ``train`` apart, progress under today's names."""
    if info["checkpoint_version"] == 1:
        info = dict(info)
        info.update(from_stored(info, str(path)).to_dict())
        del info["config"]
        info["progress"] = {"pretrain_iters": info.pop("pretrain_step", 0),
                            "d_pretrain_iters": info.pop("d_pretrain_step", 0),
                            "adversarial_iters": info.pop("adversarial_step", 0)}
        info["iteration"] = info.pop("step", 0)
        info["checkpoint_version"] = CHECKPOINT_VERSION
    return info


def generator_weights(groups: dict[str, dict[str, torch.Tensor]], path: str | os.PathLike) -> dict:
    """G's weights to compose with: the moving average when the checkpoint has one, else G itself."""
    weights = groups.get("G_ema") or groups.get("G")
    if weights is None:
        raise UserError(f"{path}: holds no generator weights")
    return weights


def grid_of(info: dict) -> tuple[Encoding, Conditions]:
    """The encoding a checkpoint's generator composes in, and its meters and keys (one meter and no keys for
    a model made before they were learned)."""
    data = info["data"]
    if "conditions" in data:
        return Encoding.from_dict(data["encoding"]), Conditions.from_dict(data["conditions"])
    return (Encoding.from_dict(data["encoding"]),
            Conditions.single(tuple(data.get("meter", DEFAULT_METER)), int(data.get("window_steps", 64))))


def load_generator(path: str | os.PathLike) -> tuple[Generator, dict]:
    """The generator a checkpoint file describes, its weights loaded, and the checkpoint's metadata.

    The stored settings are checked against the weights' shapes before the network is built, so edited
    metadata cannot make it allocate a network the weights do not describe.
    """
    groups, info = load(path)
    try:
        model_cfg = model_config(info["model"], str(path))  # the network alone: training options play no part
        enc, conditions = grid_of(info)
    except (KeyError, TypeError, ValueError, UserError) as e:
        raise UserError(f"{path}: damaged checkpoint settings ({e})") from None
    weights = generator_weights(groups, path)
    g = built_to_fit(lambda: Generator.from_config(model_cfg, enc, conditions), weights, path)
    g.load_state_dict(weights)
    return g, info


def built_to_fit(build, weights: dict[str, torch.Tensor], path: str | os.PathLike) -> torch.nn.Module:
    """``build()``, once a shape-only build (on the meta device: no memory) shows that ``weights`` fit it."""
    with torch.device("meta"):
        probe = build()
    expected = {k: tuple(v.shape) for k, v in probe.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in weights.items()}
    if expected != found:
        key = next((k for k in sorted(expected.keys() | found.keys()) if expected.get(k) != found.get(k)))
        raise UserError(f"{path}: the stored settings do not fit the weights ({key}: settings give "
                        f"{expected.get(key, 'nothing')}, the file holds {found.get(key, 'nothing')})")
    return build()


def load_state(path: str | os.PathLike) -> dict:
    """The resume state beside checkpoint ``path`` (weights-only unpickling: tensors and plain data)."""
    sp = state_path(path)
    if not sp.is_file():
        raise UserError(f"{path}: no resume state ({sp.name}) beside it")
    try:
        state = torch.load(sp, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, or a pickle that asks for code (refused: nothing ran)
        reason = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        if "weights_only" in str(e) or "Unsupported global" in str(e):
            reason = "it asks to run code, which is refused"
        raise UserError(f"{sp}: not a valid resume state ({reason})") from None
    if not isinstance(state, dict):
        raise UserError(f"{sp}: not a valid resume state (not a dictionary)")
    return state


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
    raise UserError(f"{run_or_file}: no checkpoint found (expected a .safetensors file or a run folder)")


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
    weights = generator_weights(groups, src)
    info = {**info, "exported_from": info.get("exported_from", src.name), **(extra or {})}  # a re-export keeps it
    info.pop("checkpoint_version", None)
    if "dataset" in info.get("data", {}):  # runs before 0.2 stored the training machine's path: keep the name
        info["data"] = {**info["data"], "dataset": Path(info["data"]["dataset"]).name}
    tensors = {f"G.{k}": v.contiguous() for k, v in weights.items()}
    meta = {"gancomposer": json.dumps({"checkpoint_version": CHECKPOINT_VERSION, **info})}
    with atomic_path(out) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return Path(out)
