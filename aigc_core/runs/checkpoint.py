"""Checkpoints: one ``.safetensors`` file per save, never a pickle.

A trainer's state is a nested structure (network weights, optimiser states
with integer keys and hyper-parameters, the RNG state, extra tensors). We split
it into the tensors, which go into the safetensors body, and a JSON tree for
everything else, which goes into the file's metadata. Loading needs nothing but
``safetensors`` and ``json``: a checkpoint cannot run code.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save as st_save

from ..errors import UserError
from ..paths import write_atomic
from .folder import RunFolder, step_stem

STATE_KEY = "aigc_state"
CKPT_RE = re.compile(r"^step_(\d+)\.safetensors$")
KEEP_LAST = 3
PICKLE_SUFFIXES = {".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin", ".joblib"}


def _flatten(obj: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, torch.Tensor):
        # clone: tied weights share storage, which safetensors refuses to save
        tensors[prefix] = obj.detach().to("cpu").clone().contiguous()
        return {"__tensor__": prefix}
    if isinstance(obj, dict):
        return {"__dict__": [[k, _flatten(v, f"{prefix}.{k}", tensors)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return [_flatten(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} at {prefix!r} in a checkpoint")


def _unflatten(tree: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(tree, dict) and "__tensor__" in tree:
        return tensors[tree["__tensor__"]]
    if isinstance(tree, dict) and "__dict__" in tree:
        return {k: _unflatten(v, tensors) for k, v in tree["__dict__"]}
    if isinstance(tree, list):
        return [_unflatten(v, tensors) for v in tree]
    return tree


def state_to_bytes(state: dict[str, Any], meta: dict[str, str] | None = None) -> bytes:
    tensors: dict[str, torch.Tensor] = {}
    tree = _flatten(state, "s", tensors)
    metadata = {STATE_KEY: json.dumps(tree), **(meta or {})}
    return st_save(tensors, metadata=metadata)


def load_state(path: Path, *, device: str | torch.device = "cpu") -> tuple[dict[str, Any], dict[str, str]]:
    """Read a checkpoint; returns (state, metadata)."""
    path = Path(path)
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise UserError(refusal_message(path.name))
    try:
        with safe_open(str(path), framework="pt", device=str(device)) as fh:
            metadata = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except UserError:
        raise
    except Exception as exc:  # safetensors raises its own error types for bad headers
        raise UserError(f"{path.name} is not a valid .safetensors checkpoint ({exc})") from None
    if STATE_KEY not in metadata:
        raise UserError(f"{path.name} is a safetensors file but not an AIGC Studio checkpoint (no '{STATE_KEY}' metadata)")
    try:
        return _unflatten(json.loads(metadata[STATE_KEY]), tensors), metadata
    except (ValueError, KeyError, TypeError, AttributeError) as exc:  # edited or cut-off metadata
        raise UserError(f"{path.name} is an AIGC Studio checkpoint with damaged metadata ({type(exc).__name__}: "
                        f"{str(exc)[:120]})") from None


def refusal_message(filename: str) -> str:
    return (f"{filename} is a pickled PyTorch/Python file. AIGC Studio never opens pickles, because loading "
            "one can run arbitrary code on this machine. Export the weights as .safetensors (or use a run "
            "exported from the studio, a .zip) and try again.")


def save_checkpoint(folder: Path, step: int, state: dict[str, Any], meta: dict[str, str] | None = None) -> Path:
    """Write ``step_<n>.safetensors`` atomically and keep the last few."""
    return write_checkpoint(folder, step, state_to_bytes(state, {"step": str(step), **(meta or {})}))


def write_checkpoint(folder: Path, step: int, data: bytes) -> Path:
    """Write a checkpoint's bytes (made by :func:`state_to_bytes`, here or on a
    Ray worker) as ``step_<n>.safetensors`` atomically and keep the last few."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{step_stem(step)}{RunFolder.CHECKPOINT_SUFFIX}"
    write_atomic(path, data)
    for old in list_checkpoints(folder)[:-KEEP_LAST]:
        old.unlink(missing_ok=True)
    return path


def list_checkpoints(folder: Path) -> list[Path]:
    if not folder.exists():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := CKPT_RE.match(p.name))]
    return [p for _, p in sorted(found)]


BROKEN_SUFFIX = ".broken"


def load_latest_good(folder: Path, *, device: str | torch.device = "cpu", say=None):
    """The newest checkpoint that can be read: (step, path, state), or None.

    A checkpoint that cannot be read (cut short by a full disk or a crash) is
    renamed ``<name>.broken`` (kept for a look, no longer counted, so it is
    neither pruned in place of good ones nor picked again) and the one before
    it is tried; ``say`` is told which was skipped and why."""
    for path in reversed(list_checkpoints(folder)):
        try:
            state, _ = load_state(path, device=device)
        except UserError as exc:
            path.replace(path.with_name(path.name + BROKEN_SUFFIX))
            if say:
                say(f"checkpoint {path.name} could not be read ({exc}); it was set aside as "
                    f"{path.name + BROKEN_SUFFIX} and the previous checkpoint is used instead")
            continue
        return int(CKPT_RE.match(path.name).group(1)), path, state
    return None


def latest_checkpoint(folder: Path) -> tuple[int, Path] | None:
    found = list_checkpoints(folder)
    if not found:
        return None
    path = found[-1]
    return int(CKPT_RE.match(path.name).group(1)), path


# ---- the best checkpoint (by held-out loss) -----------------------------------------
# ``best.safetensors`` beside the step files: the weights with the lowest held-out
# loss so far (the full state, like any checkpoint). Its header says where it came
# from: the step, the held-out key and value, and every held-out number measured
# there (JSON), so the page, a resumed worker and ``repair`` read it without
# loading a tensor. It is not a step file, so pruning and resuming never touch it.
BEST_NAME = "best.safetensors"
CHECKPOINT_CHOICES = ("best", "last")


def save_best(folder: Path, step: int, state: dict[str, Any], key: str, value: float,
              held_out: dict[str, float], meta: dict[str, str] | None = None) -> Path:
    """Write ``best.safetensors`` atomically (replacing the previous best)."""
    return write_best(folder, best_bytes(step, state, key, value, held_out, meta))


def best_bytes(step: int, state: dict[str, Any], key: str, value: float, held_out: dict[str, float],
               meta: dict[str, str] | None = None) -> bytes:
    """A best checkpoint's file (the state, with the step and the held-out numbers in its header)."""
    header = {"step": str(step), "best_key": key, "best_value": repr(float(value)),
              "held_out": json.dumps(held_out), **(meta or {})}
    return state_to_bytes(state, header)


def write_best(folder: Path, data: bytes) -> Path:
    """Write a best checkpoint's bytes (made here or on a Ray worker) as ``best.safetensors`` atomically."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / BEST_NAME
    write_atomic(path, data)
    return path


def best_checkpoint(folder: Path) -> dict[str, Any] | None:
    """``{"step", "path", "key", "value", "held_out"}`` of a run's best checkpoint,
    read from its header only; ``None`` when there is none (a run from before
    best checkpoints, a model without a held-out loss) or it cannot be read."""
    path = Path(folder) / BEST_NAME
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
        held_out = json.loads(meta.get("held_out") or "{}")
        return {"step": int(meta["step"]), "path": path, "key": meta["best_key"],
                "value": float(meta["best_value"]), "held_out": held_out if isinstance(held_out, dict) else {}}
    except Exception:  # noqa: BLE001 - a damaged best file: the last checkpoint still serves
        return None


def chosen_checkpoint(folder: Path, which: str = "best") -> tuple[int, Path] | None:
    """``(step, path)`` of the checkpoint to sample or export from: ``best`` (the
    lowest held-out loss; the last when the run has no best checkpoint) or
    ``last`` (the newest step file)."""
    if which not in CHECKPOINT_CHOICES:
        raise UserError(f"checkpoint must be one of {', '.join(CHECKPOINT_CHOICES)}; got {which!r}")
    latest = latest_checkpoint(folder)
    if which == "best":
        best = best_checkpoint(folder)
        if best is not None:
            return best["step"], best["path"]
    return latest


# ---- weights only (sampling) ------------------------------------------------------
# The parts of a trainer's state sampling needs: the networks and the extra state
# (fixed noise, a vocabulary). The optimiser state (Adam: twice the weights) and
# the RNG stay on disk.
WEIGHT_PARTS = ("nets", "extra")


def _weights_tree(metadata: dict[str, str], name: str) -> Any:
    if STATE_KEY not in metadata:
        raise UserError(f"{name} is a safetensors file but not an AIGC Studio checkpoint (no '{STATE_KEY}' metadata)")
    tree = json.loads(metadata[STATE_KEY])
    return {"__dict__": [[k, v] for k, v in tree["__dict__"] if k in WEIGHT_PARTS]}


def _tensor_names(tree: Any, out: list[str]) -> list[str]:
    if isinstance(tree, dict) and "__tensor__" in tree:
        out.append(tree["__tensor__"])
    elif isinstance(tree, dict) and "__dict__" in tree:
        for _, v in tree["__dict__"]:
            _tensor_names(v, out)
    elif isinstance(tree, list):
        for v in tree:
            _tensor_names(v, out)
    return out


def weight_shapes(path: Path) -> dict[str, list[int]]:
    """Shape of every network weight in a checkpoint, read from its header only."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as fh:
            tree = _weights_tree(fh.metadata() or {}, path.name)
            nets = {"__dict__": [e for e in tree["__dict__"] if e[0] == "nets"]}
            return {k: fh.get_slice(k).get_shape() for k in _tensor_names(nets, [])}
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types for bad headers
        raise UserError(f"{path.name} is not a valid .safetensors checkpoint ({exc})") from None


def load_weights(path: Path, *, device: str | torch.device = "cpu") -> tuple[dict[str, Any], dict[str, str]]:
    """Like :func:`load_state`, but reads only the networks and the extra state:
    (``{"nets": ..., "extra": ...}``, metadata); other tensors are never read."""
    path = Path(path)
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise UserError(refusal_message(path.name))
    try:
        with safe_open(str(path), framework="pt", device=str(device)) as fh:
            metadata = fh.metadata() or {}
            tree = _weights_tree(metadata, path.name)
            tensors = {k: fh.get_tensor(k) for k in _tensor_names(tree, [])}
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise UserError(f"{path.name} is not a valid .safetensors checkpoint ({exc})") from None
    return _unflatten(tree, tensors), metadata
