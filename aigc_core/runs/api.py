"""Starting runs: the calls pages and the command line make.

A run config is a plain dict::

    {"model": "dcgan", "dataset": "glyphs", "preset": "Quick",
     "model_config": {...every field of the model's config...},
     "train": {...every field of TrainSettings...}}

It is written to ``runs/<id>/config.json`` and is all a worker needs.

Every call takes the ``actor`` it acts for (default: the single local user):
a participant trains only on data sets they may see, has at most
``AIGC_MAX_ACTIVE_RUNS`` runs queued or training, and controls, exports or
samples only runs the room's rules allow (:mod:`aigc_core.room.policy`).
"""

from __future__ import annotations

import io
import json
import math
import os
import pathlib
import secrets
import shutil
import time
import zipfile
from dataclasses import asdict

from ..config import TrainSettings, config_problems, from_dict
from ..data.catalog import check_name, dataset_info
from ..data.uploads import open_zip
from ..errors import UserError
from ..paths import runs_dir
from ..registry import get_model
from ..room.identity import LOCAL, Actor
from ..room.limits import Limits, apply_time_ceiling, check_active_runs
from ..room.model_cost import check_cost
from .checkpoint import PICKLE_SUFFIXES, chosen_checkpoint, latest_checkpoint, load_state, refusal_message
from .folder import RunFolder
from .queue import claim, dispatch
from .store import HOLDS_SLOT, MAX_NAME, RunStore, clean_name


def make_config(model: str, dataset: str, *, preset: str | None = None, model_set: dict | None = None,
                train_set: dict | None = None, actor: Actor = LOCAL) -> dict:
    """A complete, validated run config: preset values first, then the user's."""
    spec = get_model(model)
    info = dataset_info(dataset, actor=actor)
    if info.kind != spec.data_kind:
        raise UserError(f"{spec.title} trains on {spec.data_kind} data, but {dataset!r} is {info.kind} data; "
                        f"choose a {spec.data_kind} data set or another model")
    reason = spec.fits(info.summary) if info.summary else None
    if reason:
        raise UserError(f"{spec.title} cannot train on {dataset!r}: {reason}")
    model_values, train_values = {}, {}
    fitted_why = ""
    if preset:
        from ..train.device import device_type

        wanted_device = (train_set or {}).get("device") or (model_set or {}).get("device") or "auto"
        fitted, fitted_why = spec.preset(preset, info.summary, device_type(str(wanted_device)))
        model_values.update(fitted.get("model", {}))
        train_values.update(fitted.get("train", {}))
    # keys that belong to the other half are routed for convenience (--set steps=100)
    train_fields = set(TrainSettings.__dataclass_fields__)
    for k, v in (model_set or {}).items():
        (train_values if k in train_fields and k not in spec.config_cls.__dataclass_fields__ else model_values)[k] = v
    train_values.update(train_set or {})
    model_cfg = from_dict(spec.config_cls, model_values)
    settings = from_dict(TrainSettings, train_values)
    if not settings.steps and not settings.max_seconds:
        raise UserError("give the run a budget: a number of steps, a time limit, or both")
    problems = config_problems(model_cfg, info.summary or {})
    if problems:
        raise UserError("; ".join(problems))
    limits = Limits.from_env()
    config = {"model": spec.name, "dataset": dataset, "preset": preset, "model_config": asdict(model_cfg),
              "train": apply_time_ceiling(asdict(settings), limits)}
    if fitted_why:
        config["preset_fit"] = fitted_why  # how the preset was fitted to this data set (shown with the run)
    check_cost(config, limits)  # the model's size and memory, before anything is queued
    return config


def active_runs(store: RunStore, actor: Actor) -> int:
    """How many runs ``actor`` has queued or training (a paused run that gave its slot back does not count)."""
    rows = store._query(f"SELECT COUNT(*) AS n FROM runs WHERE user IS ? AND (status = 'queued' OR {HOLDS_SLOT})",
                        (actor.name,))
    return int(rows[0]["n"])


def submit(config: dict, *, name: str | None = None, store: RunStore | None = None, start: bool = True,
           actor: Actor = LOCAL):
    """Queue a run for a background worker (and start it if a slot is free)."""
    from .executors import get_executor

    store = store or RunStore()
    spec = get_model(config["model"])
    dataset_info(config["dataset"], actor=actor)
    check_active_runs(actor, active_runs(store, actor))
    if start:
        get_executor()  # AIGC_EXECUTOR=ray without Ray installed: say how to get it before a run is made
    run = store.create(model=spec.name, family=spec.family, dataset=config["dataset"], data_kind=spec.data_kind,
                       config=config, name=name, actor=actor)
    if start:
        dispatch(store)
    return store.get(run.id)


def run_in_foreground(config: dict, *, name: str | None = None, store: RunStore | None = None, echo=print,
                      actor: Actor = LOCAL):
    """Train in the foreground (the command line's ``train`` without ``--detach``):
    in this process, or with ``AIGC_EXECUTOR=ray`` on the cluster while this
    command follows it.

    The run still waits its turn in the queue, so it never oversubscribes the
    machine; other processes see it in the run store like any other run."""
    from ..train.loop import train_run
    from .executors import get_executor

    executor = get_executor()  # without Ray installed, the error comes before a run is made
    store = store or RunStore()
    spec = get_model(config["model"])
    dataset_info(config["dataset"], actor=actor)
    check_active_runs(actor, active_runs(store, actor))
    run = store.create(model=spec.name, family=spec.family, dataset=config["dataset"], data_kind=spec.data_kind,
                       config=config, name=name, owner="foreground", actor=actor, pid=os.getpid())
    echo(f"run {run.id}")
    told = False
    while not claim(store, run.id):
        if store.get(run.id).status != "queued":
            return store.get(run.id)
        if not told:
            echo("waiting in the queue for a free training slot ...")
            told = True
        time.sleep(1.0)
    if executor.name == "local":
        train_run(run.id, store, echo=echo)
    else:
        executor.submit(store, run.id)
        follow(store, run.id, echo)
    dispatch(store)
    return store.get(run.id)


def follow(store: RunStore, run_id: str, echo=print, every: float = 1.0) -> None:
    """Say what a run on another executor does (status changes, steps) until it ends.
    Ctrl-C leaves it training; ``python -m aigc_core runs`` finds it again."""
    from .store import FINISHED

    said_status, said_step, said_at = None, -1, 0.0
    try:
        while True:
            run = store.get(run_id)
            if run.status != said_status:
                echo(f"{run.status}" + (f" on {run.device_name}" if run.status == "running" and run.device_name else "")
                     + (f": {run.message}" if run.message else ""))
                said_status = run.status
            if run.step != said_step and time.monotonic() - said_at >= 5 * every:
                shown = ", ".join(f"{k}={v:.4g}" for k, v in store.last_metrics(run_id).items() if k.startswith("loss"))
                echo(f"step {run.step}" + (f": {shown}" if shown else ""))
                said_step, said_at = run.step, time.monotonic()
            if run.status in FINISHED or (run.status == "paused" and run.claim is None):
                return
            time.sleep(every)
    except KeyboardInterrupt:
        echo(f"run {run_id} goes on training on the cluster; `python -m aigc_core runs` shows it, "
             f"`python -m aigc_core control {run_id} stop` stops it")
        raise


def resume(run_id: str, store: RunStore | None = None, *, actor: Actor = LOCAL):
    """Resume a run: a paused run that still holds its slot carries on; any
    other goes back to the queue (within the actor's limit of active runs)."""
    store = store or RunStore()
    store.refresh()
    run = store.get_to_change(run_id, actor)
    if run.status != "queued" and not run.holds_slot:
        check_active_runs(actor, active_runs(store, actor))
    run = store.request(run_id, "resume", actor=actor)
    dispatch(store)
    return store.get(run.id)


def control(run_id: str, action: str, store: RunStore | None = None, *, actor: Actor = LOCAL):
    """Pause, resume, stop, publish, unpublish or delete a run, as ``actor``."""
    store = store or RunStore()
    if action == "resume":
        return resume(run_id, store, actor=actor)
    if action in ("publish", "unpublish"):
        return store.publish(run_id, action == "publish", actor=actor)
    if action == "delete":
        run = store.get_to_change(run_id, actor)
        store.delete(run_id, actor=actor)
        return run
    from .executors import executor_of

    return executor_of(store.get(run_id, actor=actor)).control(store, run_id, action, actor=actor)


# ---- export / import ------------------------------------------------------------

def export_run(run_id: str, store: RunStore | None = None, *, actor: Actor = LOCAL, checkpoint: str = "best") -> bytes:
    """A zip with config.json, the weights (model.safetensors: the best
    checkpoint by held-out loss, or the last; see
    :func:`aigc_core.runs.checkpoint.chosen_checkpoint`), a short model card and
    the latest film-strip frame. The config's ``step`` is the exported weights'."""
    store = store or RunStore()
    run = store.get(run_id, actor=actor)
    found = chosen_checkpoint(run.folder.checkpoints, checkpoint)
    if not found:
        raise UserError(f"run {run_id} has no checkpoint yet; let it train a little first")
    step, ckpt = found
    latest = run.folder.latest_frame()
    last = latest_checkpoint(run.folder.checkpoints)
    weights = (f"- weights: the best checkpoint by held-out loss, step {step} of {last[0]}"
               if last and step != last[0] else f"- weights: step {step}, the last")
    card = [f"# {run.name}", "", f"- model: {run.model} ({run.family})", f"- data set: {run.dataset}",
            f"- trained steps: {run.step}", weights,
            f"- training time: {run.train_seconds:.0f} s on {run.device_name or run.device}",
            f"- status: {run.status}", "", "## Final metrics", ""]
    card += [f"- {k}: {v:.4g}" for k, v in sorted(run.final_metrics.items())] or ["(none yet)"]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("config.json", json.dumps({**run.config, "name": run.name, "step": step,
                                               "train_seconds": run.train_seconds,
                                               "final_metrics": run.final_metrics}, indent=2))
        zf.write(ckpt, "model.safetensors")
        zf.writestr("MODEL_CARD.md", "\n".join(card) + "\n")
        if latest:
            zf.write(latest, f"latest_sample{latest.suffix}")
    return buf.getvalue()


MAX_IMPORT_BYTES = 500 * 1024 * 1024
#: an export holds four files; a few more (a README someone added) are tolerated
MAX_IMPORT_MEMBERS = 16
MAX_IMPORT_CONFIG_BYTES = 1024 * 1024
MAX_IMPORT_STEP = 10**10
SAMPLE_SUFFIXES = (".png", ".txt")


def _finite(value, what: str, lo: float, hi: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UserError(f"{what} must be a number; got {str(value)[:40]!r}") from None
    if not math.isfinite(number) or not lo <= number <= hi:
        raise UserError(f"{what} must be a finite number from {lo:g} to {hi:g}; got {number}")
    return number


def _validated_import(config, filename: str) -> tuple[dict, dict]:
    """(clean run config, row fields) from an export's config.json, every value
    checked as if a user had typed it; UserError on the first bad one."""
    if not isinstance(config, dict):
        raise UserError(f"config.json in {filename} is not a JSON object")
    for key in ("model", "dataset", "model_config", "train"):
        if key not in config:
            raise UserError(f"config.json in {filename} has no {key!r}; is it a run exported from the studio?")
    if not isinstance(config["model"], str):
        raise UserError(f"config.json in {filename}: 'model' must be a model name")
    spec = get_model(config["model"])
    dataset = check_name(config["dataset"])
    for key in ("model_config", "train"):
        if not isinstance(config[key], dict):
            raise UserError(f"config.json in {filename}: {key!r} must be an object of settings")
    model_cfg = from_dict(spec.config_cls, config["model_config"])
    settings = from_dict(TrainSettings, config["train"])
    preset = config.get("preset")
    if preset is not None and preset not in spec.presets:
        preset = None  # a preset of another version: the settings themselves are what counts
    final = config.get("final_metrics") or {}
    if not isinstance(final, dict):
        raise UserError(f"config.json in {filename}: 'final_metrics' must be an object of numbers")
    final_metrics = {str(k)[:64]: _finite(v, f"final metric {str(k)[:64]!r}", -1e30, 1e30)
                     for k, v in list(final.items())[:200]}
    name = config.get("name")
    clean = {"model": spec.name, "dataset": dataset, "preset": preset, "model_config": asdict(model_cfg),
             "train": asdict(settings)}
    fields = dict(name=f"{clean_name(name if isinstance(name, str) else spec.name)[:MAX_NAME - 11]} (imported)",
                  step=int(_finite(config.get("step", 0), "the step", 0, MAX_IMPORT_STEP)),
                  train_seconds=_finite(config.get("train_seconds", 0), "the training time", 0, 1e9),
                  final_metrics=final_metrics)
    return clean, fields


def import_run(data: bytes, filename: str = "run.zip", store: RunStore | None = None, *, actor: Actor = LOCAL):
    """Import a run exported by the studio. Pickled files are refused.

    All or nothing: everything is read and checked before anything is written;
    the files go to a hidden temporary folder that is renamed into place, and
    the run's row is inserted as ``completed`` in one statement. A run is never
    visible (or claimable by the queue) half-imported."""
    store = store or RunStore()
    suffix = pathlib.Path(filename).suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        raise UserError(refusal_message(filename))
    if suffix != ".zip" or not zipfile.is_zipfile(io.BytesIO(data)):
        raise UserError(f"{filename} is not a run exported from AIGC Studio (expected a .zip with config.json and model.safetensors)")
    with open_zip(data, filename, max_members=MAX_IMPORT_MEMBERS) as zf:
        infos = zf.infolist()
        names = {i.filename for i in infos}
        for n in names:
            if pathlib.PurePosixPath(n).suffix.lower() in PICKLE_SUFFIXES:
                raise UserError(refusal_message(n))
        if not {"config.json", "model.safetensors"} <= names:
            raise UserError(f"{filename} lacks config.json or model.safetensors; is it a run exported from the studio?")
        if sum(i.file_size for i in infos) > MAX_IMPORT_BYTES:
            raise UserError(f"{filename} unpacks to more than {MAX_IMPORT_BYTES // 2**20} MB; refusing to import it")
        if zf.getinfo("config.json").file_size > MAX_IMPORT_CONFIG_BYTES:
            raise UserError(f"config.json in {filename} is larger than {MAX_IMPORT_CONFIG_BYTES // 1024} KB; it is not an exported run")
        sample = next((n for n in sorted(names) if n.startswith("latest_sample")
                       and pathlib.PurePosixPath(n).suffix.lower() in SAMPLE_SUFFIXES and "/" not in n), None)
        try:
            config = json.loads(zf.read("config.json"))
            weights = zf.read("model.safetensors")
            sample_bytes = zf.read(sample) if sample else None
        except ValueError:
            raise UserError(f"config.json in {filename} is not valid JSON") from None
        except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
            raise UserError(f"{filename} is damaged ({exc})") from None
    config, fields = _validated_import(config, filename)
    spec = get_model(config["model"])

    staging = RunFolder(runs_dir() / f".import-{secrets.token_hex(8)}")
    try:
        staging.create()
        ckpt = staging.checkpoint(fields["step"])
        ckpt.write_bytes(weights)
        _, meta = load_state(ckpt)  # a valid studio checkpoint, or a UserError saying why not
        if meta.get("model", spec.name) != spec.name:
            raise UserError(f"model.safetensors in {filename} holds a {meta['model']} model, "
                            f"but its config.json says {spec.name}")
        if sample_bytes is not None:
            staging.frame(fields["step"], pathlib.PurePosixPath(sample).suffix.lower()).write_bytes(sample_bytes)
        run_id, folder = _move_into_place(staging, spec.name)
    except BaseException:
        shutil.rmtree(staging.path, ignore_errors=True)
        raise
    try:
        store.insert(run_id, folder, model=spec.name, family=spec.family, dataset=config["dataset"],
                     data_kind=spec.data_kind, config=config, owner="worker", status="completed",
                     message="imported from an exported run", finished=time.time(), user=actor.name, **fields)
    except BaseException:
        shutil.rmtree(folder.path, ignore_errors=True)
        raise
    return store.get(run_id)


def _move_into_place(staging: RunFolder, model: str) -> tuple[str, RunFolder]:
    """Rename the finished staging folder to a fresh run id (never onto an existing folder)."""
    stamp = time.strftime("%m%d-%H%M%S")
    for _ in range(50):
        run_id = f"{model}-{stamp}-{secrets.token_hex(2)}"
        target = staging.path.with_name(run_id)
        if target.exists():
            continue
        try:
            os.rename(staging.path, target)  # fails on an existing non-empty folder; run folders never are empty
        except OSError:
            continue
        return run_id, RunFolder(target)
    raise UserError("could not find a free run id; try again")
