"""Which model (and preset) to start from for a data set: read from measurements
kept in the repository, never guessed.

``aigc_core/benchmarks/recommend.json`` holds, per device type (``cpu``,
``cuda``, ...) and per *shape* of data (:func:`data_shape`: grey or colour
images, small or large; text as a stream or as lines; tables), what every
model of that kind reached with its Quick preset on one representative data
set: the headline quality number (:data:`HEADLINES`), the steps it trained
and the seconds it took. :func:`recommend` picks, among the models that can
train on the chosen set, the one with the best headline number, and says why
in one line.

:func:`measure` makes those figures: it trains each model with its Quick
preset and seed 0 on the processor-seconds clock (so a busy machine slows a
run down without cutting it short), and writes the results with the date,
the machine, its thread count and its load. ``python -m aigc_core recommend
--measure`` re-measures every shape on its reference set (:data:`REFERENCE_SETS`),
``--measure --dataset NAME`` one set.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from .errors import UserError
from .room.identity import LOCAL, Actor

MEASUREMENTS = Path(__file__).resolve().parent / "benchmarks" / "recommend.json"
PRESET = "Quick"
#: images up to this many pixels a side are "small" (28 and 32 px uploads, the 8 px digits)
SMALL_IMAGE = 32
#: the number a model is ranked by, per kind of data, and which way is better
HEADLINES = {
    "image": ("fid", "lower"),
    "text": ("val_bpc", "lower"),
    "table": ("tstr_accuracy_ratio", "higher"),
    "points": ("coverage", "higher"),
}
#: the set each shape is measured on by ``recommend --measure``; ``photo_patches``
#: is made (and imported with the upload defaults) when it is missing
REFERENCE_SETS = {
    "image-colour-small": "photo_patches",
    "image-grey-small": "glyphs",
    "text-lines": "unicode_names",
    "table": "ecommerce",
}
PHOTO_SET = "photo_patches"
_WORDS = {"image-colour-small": "colour images up to 32 px", "image-colour-large": "colour images of 64 px",
          "image-grey-small": "grey images up to 32 px", "image-grey-large": "grey images of 64 px",
          "text-lines": "text read as one item per line", "text-stream": "text read as one stream",
          "table": "tables", "points": "2-D points"}


@dataclass
class Recommendation:
    """The model and preset to start from, and why (one line)."""

    model: str
    preset: str
    why: str
    #: the shape of data the figures were measured on, and the device type
    shape: str | None = None
    device: str | None = None
    #: model -> headline number, for the models that can train on the set
    measured: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def data_shape(kind: str, summary: dict | None) -> str:
    """The measurement bucket of a data set: ``image-colour-small``, ``text-lines``, ``table`` ..."""
    summary = summary or {}
    if kind == "image":
        colour = "colour" if int(summary.get("channels") or 1) == 3 else "grey"
        size = "small" if int(summary.get("size") or SMALL_IMAGE) <= SMALL_IMAGE else "large"
        return f"image-{colour}-{size}"
    if kind == "text":
        return f"text-{summary.get('mode') or 'stream'}"
    return kind


def load_measurements(path: Path | None = None) -> dict:
    path = Path(path or MEASUREMENTS)
    if not path.is_file():
        return {"devices": {}}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise UserError(f"the measurements file {path} is damaged ({exc}); re-measure with "
                        "`python -m aigc_core recommend --measure`") from None
    data.setdefault("devices", {})
    return data


def _entry_for(measurements: dict, device: str, shape: str, kind: str) -> tuple[str, str, dict] | None:
    """(device, shape, entry) of the closest measurement: this device first, then the CPU's; this
    shape first, then the same kind and colour at another size, then any shape of the kind."""
    devices = [device] + (["cpu"] if device != "cpu" else [])
    for dev in devices:
        shapes = measurements["devices"].get(dev, {})
        if shape in shapes:
            return dev, shape, shapes[shape]
    prefix = shape.rsplit("-", 1)[0] + "-" if shape.count("-") == 2 else None
    for dev in devices:
        shapes = measurements["devices"].get(dev, {})
        for key in sorted(shapes):
            if prefix and key.startswith(prefix):
                return dev, key, shapes[key]
        for key in sorted(shapes):
            if key == kind or key.startswith(kind + "-"):
                return dev, key, shapes[key]
    return None


def _fmt(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"


def recommend(dataset: str, device: str = "auto", *, actor: Actor = LOCAL,
              measurements: Path | None = None) -> Recommendation:
    """The model and preset with the best measured Quick-budget result for data like ``dataset``
    on ``device`` (``auto``, ``cpu``, ``cuda``, ``mps``), among the models that can train on it."""
    from .data.catalog import dataset_info
    from .registry import get_model, models_for
    from .train.device import pick_device

    info = dataset_info(dataset, actor=actor)
    specs = models_for(info.kind, info.summary or None)
    # a model without the measured preset (a plug-in's) is offered last
    fitting = [s.name for s in specs if PRESET in s.presets] + [s.name for s in specs if PRESET not in s.presets]
    if not fitting:
        raise UserError(f"no model can train on {dataset!r} ({info.kind} data)")
    device_type = pick_device(device).type  # a device this machine lacks is a UserError there
    if len(fitting) == 1:
        return Recommendation(fitting[0], PRESET if PRESET in get_model(fitting[0]).presets else "Custom",
                              f"{fitting[0]} is the only model that can train on {_WORDS.get(info.kind, info.kind)} "
                              "like this set.", None, None, {})
    shape = data_shape(info.kind, info.summary)
    found = _entry_for(load_measurements(measurements), device_type, shape, info.kind)
    if found is None:
        return Recommendation(fitting[0], PRESET, f"{fitting[0]} is the first model that fits {_WORDS.get(shape, shape)}; "
                              f"no Quick-budget measurements of that kind of data are kept yet (make them with "
                              f"`python -m aigc_core recommend --measure --dataset {dataset}`).", None, None, {})
    measured_on, measured_shape, entry = found
    key, better = entry.get("metric") or HEADLINES[info.kind][0], entry.get("better") or HEADLINES[info.kind][1]
    scores = {m: r[key] for m, r in entry.get("results", {}).items()
              if m in fitting and isinstance(r.get(key), (int, float)) and math.isfinite(r[key])}
    if not scores:
        return Recommendation(fitting[0], PRESET, f"{fitting[0]} is the first model that fits; none of the models "
                              f"measured on {entry.get('dataset', 'the reference set')} can train on {dataset}.",
                              measured_shape, measured_on, {})
    ranked = sorted(scores, key=lambda m: scores[m], reverse=better == "higher")
    best = ranked[0]
    label = entry.get("metric_label") or key
    others = ", ".join(f"{m} {_fmt(scores[m])}" for m in ranked[1:4])
    where = entry.get("dataset_words") or entry.get("dataset", "a reference set")
    caveat = ""
    if measured_shape != shape:
        caveat = f"; measured on {_WORDS.get(measured_shape, measured_shape)}, the closest kept"
    if measured_on != device_type:
        caveat += f"; measured on the {measured_on.upper()}, none kept for {device_type.upper()}"
    fits = "" if len(scores) == len(entry.get("results", {})) else ", counting only those that can train on this set"
    why = (f"{best} made the best samples of the {len(scores)} models measured in the {PRESET} "
           f"budget on {where}{fits}: {label} {_fmt(scores[best])}"
           + (f" ({others}; {better} is better)" if others else f" ({better} is better)") + caveat + ".")
    return Recommendation(best, PRESET, why, measured_shape, measured_on, scores)


# ---- measuring ---------------------------------------------------------------------

def ensure_photo_set(actor: Actor = LOCAL, echo: Callable[[str], None] = print) -> str:
    """The colour photo reference set, imported with the upload defaults when it is missing."""
    from .data.catalog import list_datasets
    from .data.uploads import import_and_save
    from .benchmarks.photos import photo_patches_zip

    if PHOTO_SET not in {d.name for d in list_datasets(actor=actor)}:
        report = import_and_save(photo_patches_zip(), PHOTO_SET, filename=f"{PHOTO_SET}.zip", actor=actor)
        echo(f"imported {PHOTO_SET}: {report.accepted} images, {report.data.size} px, {report.data.channels} channels")
    return PHOTO_SET


def measure(dataset: str, models: list[str] | None = None, *, out: Path | None = None, seed: int = 0,
            threads: int | None = None, echo: Callable[[str], None] = print, actor: Actor = LOCAL) -> dict:
    """Train every model that fits ``dataset`` (or ``models``) with its Quick preset on the
    processor-seconds clock, and record their headline numbers in the measurements file
    under this device type and the set's shape. Returns the entry written."""
    import torch

    from .data.catalog import dataset_info
    from .registry import get_model, models_for
    from .runs.api import make_config, run_in_foreground
    from .train.device import device_name, pick_device

    if dataset == PHOTO_SET:
        ensure_photo_set(actor, echo)
    info = dataset_info(dataset, actor=actor)
    fitting = [s.name for s in models_for(info.kind, info.summary or None)]
    chosen = models or fitting
    unfit = [m for m in chosen if m not in fitting]
    if unfit:
        for m in unfit:
            get_model(m)  # an unknown name gets the registry's message
        raise UserError(f"{', '.join(unfit)} cannot train on {dataset!r}; the models that can: {', '.join(fitting)}")
    if threads:
        torch.set_num_threads(int(threads))
    key, better = HEADLINES[info.kind]
    device = pick_device("auto")
    load_before = os.getloadavg()
    results = {}
    for name in chosen:
        config = make_config(name, dataset, preset=PRESET, train_set={"clock": "cpu", "seed": int(seed)}, actor=actor)
        t0 = time.perf_counter()
        run = run_in_foreground(config, name=f"{name} · recommend measurement", echo=lambda m: None, actor=actor)
        numbers = run.final_metrics or {}
        results[name] = {key: numbers.get(key), "steps": run.step, "train_seconds": round(run.train_seconds, 1),
                         "wall_seconds": round(time.perf_counter() - t0, 1), "status": run.status}
        if info.kind == "image":
            results[name].update({k: numbers.get(k) for k in ("kid", "precision", "recall") if k in numbers})
        shown = "-" if numbers.get(key) is None else _fmt(numbers[key])
        echo(f"{name:10s} {key} {shown:>8s}  {run.step:6d} steps  {run.train_seconds:6.1f} s  ({run.status})")
    from .registry import metric_info

    summary = dict(info.summary or {})
    entry = {
        "dataset": dataset,
        "dataset_words": _dataset_words(dataset, info.kind, summary),
        "summary": summary,
        "metric": key, "metric_label": metric_info().get(key, {}).get("label", key), "better": better,
        "preset": PRESET, "clock": "cpu", "seed": int(seed),
        "results": results,
        "measured": {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "device": device_name(device),
                     "machine": platform.machine(), "cpus": os.cpu_count(), "threads": torch.get_num_threads(),
                     "torch": torch.__version__, "load_before": [round(x, 2) for x in load_before],
                     "load_after": [round(x, 2) for x in os.getloadavg()]},
    }
    path = Path(out or MEASUREMENTS)
    data = load_measurements(path)
    data["about"] = ("Quick-budget results per model, per device type and shape of data; read by "
                     "aigc_core.recommend, written by `python -m aigc_core recommend --measure`.")
    data["devices"].setdefault(device.type, {})[data_shape(info.kind, info.summary)] = entry
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)
    return entry


def _dataset_words(dataset: str, kind: str, summary: dict) -> str:
    count = summary.get("count")
    if kind == "image":
        colour = "colour" if summary.get("channels") == 3 else "grey"
        what = f"{colour} photo patches" if dataset == PHOTO_SET else f"{colour} images of {dataset}"
        return f"{count:,} {what} ({summary.get('size')} px)" if count else dataset
    if kind == "table":
        return f"the {dataset} table ({count:,} rows)" if count else f"the {dataset} table"
    return f"the {dataset} text" if kind == "text" else dataset


def measure_all(echo: Callable[[str], None] = print, out: Path | None = None, threads: int | None = None,
                actor: Actor = LOCAL) -> dict:
    """Every shape in :data:`REFERENCE_SETS` measured on its reference set."""
    done = {}
    for shape, dataset in REFERENCE_SETS.items():
        echo(f"[{shape}] on {dataset}")
        done[shape] = measure(dataset, out=out, threads=threads, echo=echo, actor=actor)
    return done
