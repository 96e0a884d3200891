"""Starting runs: the calls pages and the command line make.

A run config is a plain dict::

    {"model": "dcgan", "dataset": "glyphs", "preset": "Quick",
     "model_config": {...every field of the model's config...},
     "train": {...every field of TrainSettings...}}

It is written to ``runs/<id>/config.json`` and is all a worker needs.
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from dataclasses import asdict

from ..config import TrainSettings, config_problems, from_dict
from ..data.catalog import dataset_info
from ..errors import UserError
from ..registry import get_model
from ..room.limits import Limits, apply_time_ceiling, check_cost
from .checkpoint import PICKLE_SUFFIXES, latest_checkpoint, load_state, refusal_message
from .queue import claim, dispatch
from .store import RunStore


def make_config(model: str, dataset: str, *, preset: str | None = None, model_set: dict | None = None,
                train_set: dict | None = None) -> dict:
    """A complete, validated run config: preset values first, then the user's."""
    spec = get_model(model)
    info = dataset_info(dataset)
    if info.kind != spec.data_kind:
        raise UserError(f"{spec.title} trains on {spec.data_kind} data, but {dataset!r} is {info.kind} data; "
                        f"choose a {spec.data_kind} data set or another model")
    reason = spec.fits(info.summary) if info.summary else None
    if reason:
        raise UserError(f"{spec.title} cannot train on {dataset!r}: {reason}")
    model_values, train_values = {}, {}
    if preset:
        if preset not in spec.presets:
            raise UserError(f"{spec.title} has no preset {preset!r}; presets: {', '.join(spec.presets)}")
        model_values.update(spec.presets[preset].get("model", {}))
        train_values.update(spec.presets[preset].get("train", {}))
    # keys that belong to the other half are routed for convenience (--set steps=100)
    train_fields = set(TrainSettings.__dataclass_fields__)
    for k, v in (model_set or {}).items():
        (train_values if k in train_fields and k not in spec.config_cls.__dataclass_fields__ else model_values)[k] = v
    train_values.update(train_set or {})
    model_cfg = from_dict(spec.config_cls, model_values)
    settings = from_dict(TrainSettings, train_values)
    if not settings.steps and not settings.max_seconds:
        raise UserError("give the run a budget: a number of steps, a time limit, or both")
    problems = config_problems(model_cfg)
    if problems:
        raise UserError("; ".join(problems))
    limits = Limits.from_env()
    config = {"model": spec.name, "dataset": dataset, "preset": preset, "model_config": asdict(model_cfg),
              "train": apply_time_ceiling(asdict(settings), limits)}
    check_cost(config, limits)  # the model's size and memory, before anything is queued
    return config


def submit(config: dict, *, name: str | None = None, store: RunStore | None = None, start: bool = True):
    """Queue a run for a background worker (and start it if a slot is free)."""
    store = store or RunStore()
    spec = get_model(config["model"])
    run = store.create(model=spec.name, family=spec.family, dataset=config["dataset"], data_kind=spec.data_kind,
                       config=config, name=name)
    if start:
        dispatch(store)
    return store.get(run.id)


def run_in_foreground(config: dict, *, name: str | None = None, store: RunStore | None = None, echo=print):
    """Train in this process (the command line's ``train`` without ``--detach``).

    The run still waits its turn in the queue, so it never oversubscribes the
    machine; other processes see it in the run store like any other run."""
    from ..train.loop import train_run

    store = store or RunStore()
    spec = get_model(config["model"])
    run = store.create(model=spec.name, family=spec.family, dataset=config["dataset"], data_kind=spec.data_kind,
                       config=config, name=name, owner="foreground")
    echo(f"run {run.id}")
    told = False
    while not claim(store, run.id):
        if store.get(run.id).status != "queued":
            return store.get(run.id)
        if not told:
            echo("waiting in the queue for a free training slot ...")
            told = True
        time.sleep(1.0)
    train_run(run.id, store, echo=echo)
    dispatch(store)
    return store.get(run.id)


def resume(run_id: str, store: RunStore | None = None):
    store = store or RunStore()
    store.refresh()
    run = store.request(run_id, "resume")
    dispatch(store)
    return store.get(run.id)


# ---- export / import ------------------------------------------------------------

def export_run(run_id: str, store: RunStore | None = None) -> bytes:
    """A zip with config.json, the latest weights (model.safetensors), a short
    model card and the latest film-strip frame."""
    store = store or RunStore()
    run = store.get(run_id)
    found = latest_checkpoint(run.folder / "checkpoints")
    if not found:
        raise UserError(f"run {run_id} has no checkpoint yet; let it train a little first")
    step, ckpt = found
    frames = sorted((run.folder / "samples").glob("step_*"))
    card = [f"# {run.name}", "", f"- model: {run.model} ({run.family})", f"- data set: {run.dataset}",
            f"- trained steps: {step}", f"- training time: {run.train_seconds:.0f} s on {run.device_name or run.device}",
            f"- status: {run.status}", "", "## Final metrics", ""]
    card += [f"- {k}: {v:.4g}" for k, v in sorted(run.final_metrics.items())] or ["(none yet)"]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("config.json", json.dumps({**run.config, "name": run.name, "step": step,
                                               "train_seconds": run.train_seconds,
                                               "final_metrics": run.final_metrics}, indent=2))
        zf.write(ckpt, "model.safetensors")
        zf.writestr("MODEL_CARD.md", "\n".join(card) + "\n")
        if frames:
            zf.write(frames[-1], f"latest_sample{frames[-1].suffix}")
    return buf.getvalue()


MAX_IMPORT_BYTES = 500 * 1024 * 1024


def import_run(data: bytes, filename: str = "run.zip", store: RunStore | None = None):
    """Import a run exported by the studio. Pickled files are refused."""
    import pathlib

    store = store or RunStore()
    suffix = pathlib.Path(filename).suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        raise UserError(refusal_message(filename))
    if suffix != ".zip" or not zipfile.is_zipfile(io.BytesIO(data)):
        raise UserError(f"{filename} is not a run exported from AIGC Studio (expected a .zip with config.json and model.safetensors)")
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = set(zf.namelist())
        for n in names:
            if pathlib.PurePosixPath(n).suffix.lower() in PICKLE_SUFFIXES:
                raise UserError(refusal_message(n))
        if not {"config.json", "model.safetensors"} <= names:
            raise UserError(f"{filename} lacks config.json or model.safetensors; is it a run exported from the studio?")
        if sum(i.file_size for i in zf.infolist()) > MAX_IMPORT_BYTES:
            raise UserError(f"{filename} unpacks to more than {MAX_IMPORT_BYTES // 2**20} MB; refusing to import it")
        try:
            config = json.loads(zf.read("config.json"))
        except ValueError:
            raise UserError(f"config.json in {filename} is not valid JSON") from None
        weights = zf.read("model.safetensors")
        sample = next((n for n in names if n.startswith("latest_sample")), None)
        sample_bytes = zf.read(sample) if sample else None
    for key in ("model", "dataset", "model_config", "train"):
        if key not in config:
            raise UserError(f"config.json in {filename} has no {key!r}; is it a run exported from the studio?")
    spec = get_model(config["model"])
    step = int(config.get("step", 0))
    clean = {k: config[k] for k in ("model", "dataset", "preset", "model_config", "train") if k in config}
    run = store.create(model=spec.name, family=spec.family, dataset=config["dataset"], data_kind=spec.data_kind,
                       config=clean, name=f"{config.get('name', spec.name)} (imported)")
    ckpt = run.folder / "checkpoints" / f"step_{step:08d}.safetensors"
    ckpt.write_bytes(weights)
    try:
        load_state(ckpt)
    except UserError:
        store.delete(run.id)
        raise
    if sample_bytes:
        (run.folder / "samples" / f"step_{step:08d}{pathlib.Path(sample).suffix}").write_bytes(sample_bytes)
    store.update(run.id, step=step, train_seconds=float(config.get("train_seconds", 0)),
                 final_metrics=config.get("final_metrics", {}))
    store.set_status(run.id, "completed", "imported from an exported run")
    return store.get(run.id)
