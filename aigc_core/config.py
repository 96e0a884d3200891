"""Model and training configs as dataclasses whose fields describe their widgets.

Every tunable number a user can see is declared with :func:`param`: its label,
help text, range and step live in the field metadata, and the Train page turns
that metadata into widgets. Adding a model therefore needs no page code.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields
from typing import Any

from .errors import UserError


def param(
    default: Any,
    label: str,
    help: str = "",
    *,
    min: float | None = None,
    max: float | None = None,
    step: float | None = None,
    choices: tuple | None = None,
    advanced: bool = False,
    log: bool = False,
    multiple_of: str | None = None,
):
    """A config field with the metadata a form needs to show it.

    ``choices`` makes a select box; ``min``/``max`` bound numbers; ``advanced``
    fields go in an expander; ``log`` marks quantities (learning rates) that are
    best shown on a log scale; ``multiple_of`` names another field this one
    must be a whole multiple of (checked by :func:`config_problems`).
    """
    meta = dict(label=label, help=help, min=min, max=max, step=step,
                choices=choices, advanced=advanced, log=log, multiple_of=multiple_of)
    return field(default=default, metadata=meta)


def describe(config_cls) -> list[dict]:
    """The widget description of every field of a config class, in order."""
    out = []
    for f in fields(config_cls):
        meta = dict(f.metadata)
        if "label" not in meta:
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        out.append(dict(name=f.name, default=default, type=type(default).__name__, **meta))
    return out


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


def from_dict(config_cls, values: dict | None, *, strict: bool = True):
    """Build a config from a dict, converting and range-checking each value.

    Unknown keys are a :class:`UserError` when ``strict`` (a typo in
    ``--set`` should not be silently ignored). A config class may define
    ``implied_defaults(values) -> dict``: defaults that follow from other
    values given (the caller's own values always win).
    """
    values = dict(values or {})
    # a config class may imply defaults from other values (loss=wgan brings its own learning rates);
    # what the caller set always wins
    implied = getattr(config_cls, "implied_defaults", None)
    if callable(implied):
        values = {**implied(values), **values}
    known = {f.name: f for f in fields(config_cls)}
    unknown = sorted(set(values) - set(known))
    if unknown and strict:
        raise UserError(
            f"unknown setting(s) {', '.join(unknown)} for {config_cls.__name__}; "
            f"known settings: {', '.join(sorted(known))}"
        )
    kwargs = {}
    for name, f in known.items():
        if name not in values:
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        kwargs[name] = coerce(name, values[name], default, f.metadata)
    return config_cls(**kwargs)


def coerce(name: str, value: Any, default: Any, meta: dict | None = None):
    """Convert ``value`` (often a string from the command line) to the type of
    ``default`` and check it against the field's range and choices."""
    meta = meta or {}
    try:
        if isinstance(default, bool):
            if isinstance(value, str):
                low = value.strip().lower()
                if low not in {"true", "false", "1", "0", "yes", "no", "on", "off"}:
                    raise ValueError(value)
                value = low in {"true", "1", "yes", "on"}
            else:
                value = bool(value)
        elif isinstance(default, int):
            value = int(float(value)) if isinstance(value, str) else int(value)
        elif isinstance(default, float):
            value = float(value)
        elif isinstance(default, str):
            value = str(value)
        elif isinstance(default, (list, tuple)) and isinstance(value, str):
            value = type(default)(v.strip() for v in value.split(",") if v.strip())
    except (TypeError, ValueError, OverflowError):  # OverflowError: int("inf")
        raise UserError(f"setting {name!r} expects a {type(default).__name__}, got {value!r}") from None
    # NaN passes every range check (all comparisons are false) and inf overflows later, far from the
    # setting that caused it; refuse both here, where the message can name the setting
    if isinstance(value, float) and not math.isfinite(value):
        raise UserError(f"setting {name!r} must be a finite number; got {value}")
    choices = meta.get("choices")
    if choices and value not in choices:
        raise UserError(f"setting {name!r} must be one of {', '.join(map(str, choices))}; got {value!r}")
    lo, hi = meta.get("min"), meta.get("max")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if lo is not None and value < lo:
            raise UserError(f"setting {name!r} must be at least {lo}; got {value}")
        if hi is not None and value > hi:
            raise UserError(f"setting {name!r} must be at most {hi}; got {value}")
    return value


def config_problems(cfg, data_summary: dict | None = None) -> list[str]:
    """Why the settings of a config cannot work together (empty when they can).

    Three sources, checked when a run config is made so a form can show the
    reason and a run never starts only to fail: ``param(..., multiple_of=
    "other")`` on a field, a ``problems(self) -> list[str]`` method a config
    class may define for any other rule between its fields, and a
    ``data_problems(self, summary) -> list[str]`` method for rules between its
    settings and the data set's summary (``conditional=true`` needs classes)."""
    out = []
    for f in fields(cfg):
        other = f.metadata.get("multiple_of")
        if not other:
            continue
        value, divisor = getattr(cfg, f.name), getattr(cfg, other)
        if divisor and value % divisor:
            label = f.metadata.get("label", f.name)
            other_label = next((g.metadata.get("label", other) for g in fields(cfg) if g.name == other), other)
            near = [v for v in (value - value % divisor, value - value % divisor + divisor) if v > 0]
            out.append(f"{label} ({f.name} = {value}) must be a multiple of {other_label} ({other} = {divisor}); "
                       f"try {' or '.join(map(str, near))}")
    own = getattr(cfg, "problems", None)
    if callable(own):
        out += list(own())
    with_data = getattr(cfg, "data_problems", None)
    if callable(with_data) and data_summary is not None:
        out += list(with_data(data_summary))
    return out


def parse_sets(pairs: list[str] | None) -> dict[str, str]:
    """Turn ``["lr=0.001", "loss=wgan_gp"]`` into a dict (values stay strings)."""
    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise UserError(f"--set expects key=value, got {pair!r}")
        key, value = pair.split("=", 1)
        out[key.strip()] = value
    return out


@dataclass
class TrainSettings:
    """How long and how a run trains; shared by every model."""

    steps: int = param(2000, "Training steps", "Stop after this many optimisation steps (0 = no step limit).", min=0, max=10_000_000, step=100)
    max_seconds: float = param(0.0, "Time budget (seconds)", "Stop after this much training time (0 = no time limit). Pauses do not count.", min=0.0, max=7 * 24 * 3600.0, step=10.0)
    clock: str = param("wall", "Time budget clock", "What the time budget and the training time count: wall = seconds "
                       "on the clock; cpu = processor seconds this run used, so a run that shares the machine with "
                       "other work is not cut short by it (a bake-off's fair budget).", choices=("wall", "cpu"),
                       advanced=True)
    seed: int = param(0, "Seed", "Same seed, same data order and same starting weights.", min=0, max=2**31 - 1)
    device: str = param("auto", "Device", "auto = CUDA GPU, then Apple MPS, then CPU.", choices=("auto", "cpu", "cuda", "mps"), advanced=True)
    precision: str = param("auto", "Precision", "auto = bf16 autocast on CUDA, float32 elsewhere.", choices=("auto", "fp32", "bf16"), advanced=True)
    compile: bool = param(False, "torch.compile", "Compile the model for speed (falls back to eager mode if compiling fails).", advanced=True)
    log_every: int = param(25, "Log every (steps)", "How often losses are written to the chart.", min=1, max=10_000, advanced=True)
    sample_every: int = param(200, "Film strip every (steps)", "How often a frame of samples from the fixed noise is saved.", min=1, max=1_000_000, advanced=True)
    checkpoint_every: int = param(1000, "Checkpoint every (steps)", "How often the weights are saved (a final checkpoint is always written).", min=1, max=1_000_000, advanced=True)
    # Held-out checks, the best checkpoint and early stopping (models that declare a
    # held-out loss, ModelSpec.best_by). At every check the held-out loss L is measured
    # on the fixed held-out split. A check improves when L < best - min_delta; then the
    # weights are saved as the best checkpoint (which sampling and export use by
    # default). Early stop: the run ends once `patience` checks in a row have not
    # improved.
    eval_every: int = param(250, "Held-out check every (steps)", "How often the model is measured on the held-out "
                            "split during training (0 = only at the end); the best weights by that measure are kept "
                            "beside the last ones.", min=0, max=1_000_000, advanced=True)
    early_stop: str = param("auto", "Stop early", "Stop when the held-out loss has not improved for a while: auto = "
                            "what the model declares (on for text models, which memorise a small text; off for the "
                            "others); on; off.", choices=("auto", "on", "off"), advanced=True)
    # 3 checks: char GPT Standard on a 303 kB text (licences) had its best held-out loss at step 2000 of 3000
    # and rose after; 3 checks stop it at 2750, 5 would never fire within its budget
    patience: int = param(3, "Early-stop patience (checks)", "Stop after this many held-out checks in a row without "
                          "an improvement.", min=1, max=1000, advanced=True)
    min_delta: float = param(0.001, "Early-stop minimum improvement", "A held-out check counts as an improvement "
                             "only when the loss falls below the best so far by more than this (nats).",
                             min=0.0, max=10.0, step=0.001, advanced=True)


def conditional_problems(conditional: bool, summary: dict) -> list[str]:
    """Why a class-conditional image model cannot train on a data set (the GAN and VAE families' one rule)."""
    if conditional and summary.get("classes", 0) < 2:
        return ["conditional=true needs a labelled image set (at least 2 classes, e.g. glyphs, or an upload "
                "with one folder per class); this one has no classes: set conditional=false"]
    return []
