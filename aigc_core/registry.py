"""One registry maps a model name to its spec: family, config, trainer, presets,
and what the model declares it can do.

Each family is one package under ``aigc_core/models/``; its ``__init__``
calls :func:`register` at import time. The pages, the command line, the
bake-off and the starters read the specs and render from them: none of them
names a model or a family.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

from .errors import UserError
from .plugins import plugin_modules

#: the family packages; a new family is one folder plus one line here
MODEL_MODULES = [
    "aigc_core.models.gan",
    "aigc_core.models.vae",
    "aigc_core.models.text",
    "aigc_core.models.tabular",
    "aigc_core.models.diffusion",
]

#: what a model can declare it does beyond ``sample``; each one is a Gallery
#: section and a trainer method (see :class:`ModelSpec`)
CAPABILITIES = frozenset({"interpolate", "reconstruct", "condition", "write", "attention", "denoise"})


class Chart(NamedTuple):
    """One chart of logged numbers on the Train page."""

    title: str
    keys: tuple[str, ...]
    why: str
    #: a final metric drawn as a dashed line on it (e.g. the held-out value)
    reference: str | None = None


class Metric(NamedTuple):
    """What a logged number is called and what it says."""

    label: str
    how: str
    better: str | None = None  # "lower" | "higher" | None (no better direction)


@dataclass
class NoKnobs:
    """A model whose samples take nothing but a count and a seed."""


@dataclass
class ModelSpec:
    """Everything the studio needs to know about one model, as data.

    - ``family``: the family package it comes from (shown, never branched on).
    - ``data_kind``: which kind of data set it trains on (``image``,
      ``points``, ``text``, ``table``; see :mod:`aigc_core.data.kinds`).
    - ``config_cls``: its settings, a dataclass of :func:`aigc_core.config.param`
      fields (the Train page's widgets).
    - ``trainer_cls(model_cfg, data, device, seed, autocast)``: see
      :class:`aigc_core.train.base.Trainer`.
    - ``presets``: name -> overrides, each a dict with optional ``model`` and
      ``train`` sub-dicts (``Quick`` trains in about 30 s on a laptop CPU).
    - ``fits(data_summary) -> str | None``: ``None`` when the model can train on
      a data set with that summary, else the reason it cannot.
    - ``knobs``: a dataclass of ``param`` fields: what ``sample(n, seed, **knobs)``
      takes. The Gallery builds its widgets from it, ``sample --set k=v`` checks
      values against it.
    - ``capabilities``: a subset of :data:`CAPABILITIES`; each means a trainer
      method and a Gallery section:

      - ``interpolate``: ``interpolate(seed_a, seed_b, steps, **knobs)`` -> images;
      - ``reconstruct``: ``reconstruct(images01)`` and a ``held_out`` uint8 tensor;
      - ``condition``: ``condition_choices()`` -> {name: [values]}. A name
        that is one of its knobs (an image model's class, ``label``) is picked
        from those values, and the Gallery can show one row of samples per
        value; an empty list means this run was trained without them. Other
        names are a table's columns, fixed through the ``condition`` knob
        (``column=value``);
      - ``write``: ``stream(prompt, length, seed, **knobs)`` yields characters,
        ``next_char_probs(prompt, temperature)``, ``mark_copies(items)``;
      - ``attention``: ``attention_maps(prompt)`` (layers, heads, T, T) and
        ``context_labels(prompt)``;
      - ``denoise``: ``denoise_path(seed, steps, n_frames, **knobs)`` -> (n_frames, C, H, W)
        in [0, 1], from pure noise (frame 0) to ``sample(1, seed, steps=steps, **knobs)``
        (the last frame); the Gallery passes the model's ``steps`` knob (sampling
        steps) as ``steps`` and its other knobs as they are.
    - ``charts``: the Train page's charts of its logged numbers, in order.
    - ``metrics``: key -> :class:`Metric` for every number its trainer logs
      (``step``'s keys and ``evaluate``'s); the end-of-run quality numbers are
      explained once for all models in :data:`aigc_core.metrics.labels.METRIC_INFO`.
    - ``derived``: curves computed from a logged number: key -> (source key, factor).
    - ``explain``: the explanation panel, Markdown with ``$$...$$`` LaTeX, or a
      function of the model's settings (a dict) returning it.
    - ``film_caption``: what one film-strip frame shows.
    - ``eval_budget``: samples drawn for the end-of-run quality metrics (0: the
      trainer's own ``evaluate`` does the whole job).
    - ``tiny``: settings small enough that tests build and train it in
      seconds on a CPU: ``{"model": {...}}``.
    - ``fit_preset(name, preset, summary, device_type) -> (preset, why)``: the
      model's written rule for fitting a preset to the data set (its summary:
      characters, images, rows) and the device type (``cpu``/``cuda``/``mps``):
      budget, size, dropout, weight decay. ``why`` is one line the Train page
      shows ("for 303 kB of text: 3 layers, dropout 0.1, ~4 passes"); ``""``
      when the preset stays as written. ``None``: presets are used as written.
    - ``best_by``: the key of a held-out loss (lower is better) its trainer's
      ``evaluate`` returns; the loop measures it every ``eval_every`` steps and
      keeps the best checkpoint by it. ``None``: the model has no held-out loss
      worth choosing by (the GANs: no likelihood), and its last weights are used.
    - ``early_stop``: early stopping's default (``TrainSettings.early_stop = auto``).
    - ``labs``: the Learn page's labs that explain this model (``gan2d``: the 2-D GAN lab, on the run's data
      set; ``latent``: the VAE latent lab); the Train page links a run to them.
    """

    name: str
    title: str
    family: str
    data_kind: str
    description: str
    config_cls: type
    trainer_cls: Callable
    presets: dict[str, dict] = field(default_factory=dict)
    fits: Callable[[dict], str | None] = lambda summary: None
    knobs: type = NoKnobs
    capabilities: frozenset = frozenset()
    charts: list[Chart] = field(default_factory=list)
    metrics: dict[str, Metric] = field(default_factory=dict)
    derived: dict[str, tuple[str, float]] = field(default_factory=dict)
    explain: str | Callable[[dict], str] = ""
    film_caption: str = ""
    eval_budget: int = 0
    tiny: dict = field(default_factory=dict)
    fit_preset: Callable[[str, dict, dict, str], tuple[dict, str]] | None = None
    best_by: str | None = None
    early_stop: bool = False
    labs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.capabilities = frozenset(self.capabilities)
        unknown = self.capabilities - CAPABILITIES
        if unknown:
            raise ValueError(f"{self.name}: unknown capabilities {sorted(unknown)}; known: {sorted(CAPABILITIES)}")
        if not dataclasses.is_dataclass(self.knobs):
            raise ValueError(f"{self.name}: knobs must be a dataclass of param fields")
        self.charts = [Chart(*c) for c in self.charts]
        self.metrics = {k: Metric(*v) for k, v in self.metrics.items()}

    def preset(self, name: str, summary: dict | None = None, device_type: str = "cpu") -> tuple[dict, str]:
        """Preset ``name`` fitted to a data set's summary and a device by the
        model's ``fit_preset`` rule: ``(preset, why)``; a fresh copy, ``why`` is
        ``""`` when nothing was fitted."""
        if name not in self.presets:
            raise UserError(f"{self.title} has no preset {name!r}; presets: {', '.join(self.presets)}")
        base = copy.deepcopy(self.presets[name])
        if self.fit_preset is None or not summary:
            return base, ""
        return self.fit_preset(name, base, dict(summary), device_type)

    def can(self, capability: str) -> bool:
        return capability in self.capabilities

    def explanation(self, model_config: dict | None = None) -> str:
        """The explanation panel (Markdown + LaTeX) for these settings."""
        if callable(self.explain):
            from .config import from_dict, to_dict

            settings = to_dict(from_dict(self.config_cls, model_config or {}, strict=False))
            return self.explain(settings)
        return self.explain or (f"**What is trained.** {self.description}\n\n**How to read the curves.** The loss "
                                "should fall; a loss that turns NaN stops the run: lower the learning rate.")

    def knob_fields(self) -> list[dict]:
        """The widget description of every sampling knob."""
        from .config import describe

        return describe(self.knobs)

    def parse_knobs(self, values: dict) -> dict:
        """Knob values (strings from ``--set`` or widget values) checked and
        converted through the knobs dataclass; only the knobs given come back."""
        from .config import from_dict

        try:
            checked = from_dict(self.knobs, values)
        except UserError as exc:
            names = ", ".join(f.name for f in dataclasses.fields(self.knobs)) or "none"
            raise UserError(f"{exc} (sampling settings of {self.name}: {names})") from None
        return {k: getattr(checked, k) for k in values}


_REGISTRY: dict[str, ModelSpec] = {}
_loaded = False


def register(spec: ModelSpec) -> ModelSpec:
    _REGISTRY[spec.name] = spec
    return spec


def _ensure_loaded() -> None:
    global _loaded
    if _loaded:
        return
    for mod in MODEL_MODULES + plugin_modules():
        importlib.import_module(mod)
    _loaded = True


def all_models() -> list[ModelSpec]:
    _ensure_loaded()
    return list(_REGISTRY.values())


def get_model(name: str) -> ModelSpec:
    _ensure_loaded()
    if name not in _REGISTRY:
        raise UserError(f"no model called {name!r}; choose one of {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def models_for(data_kind: str, summary: dict | None = None) -> list[ModelSpec]:
    """The models that can train on a data set of this kind (and shape)."""
    out = []
    for spec in all_models():
        if spec.data_kind != data_kind:
            continue
        if summary is not None and spec.fits(summary) is not None:
            continue
        out.append(spec)
    return out


def build_trainer(config: dict, device=None, data=None):
    """``(spec, settings, trainer)`` for a run config: fresh weights from the
    run's seed, on ``device`` (default: the one the settings ask for)."""
    import torch

    from .config import TrainSettings, from_dict
    from .data.catalog import load_dataset
    from .train.device import autocast_dtype, pick_device

    spec = get_model(config["model"])
    settings = from_dict(TrainSettings, config.get("train", {}))
    model_cfg = from_dict(spec.config_cls, config.get("model_config", {}))
    device = device or pick_device(settings.device)
    data = data if data is not None else load_dataset(config["dataset"])
    torch.manual_seed(settings.seed)  # weight initialisation follows the run's seed
    trainer = spec.trainer_cls(model_cfg, data, device, settings.seed, autocast_dtype(device, settings.precision))
    return spec, settings, trainer


def metric_info(model: str | None = None) -> dict[str, dict]:
    """Metric key -> {"label", "better" ("lower" | "higher" | None), "how"}:
    the numbers the training loop logs for every run, the end-of-run quality
    numbers, and what each model declares about its own logged numbers (the
    given model's own words first)."""
    from .metrics.labels import LOOP_METRICS, METRIC_INFO

    out: dict[str, dict] = {**LOOP_METRICS, **METRIC_INFO}
    specs = all_models()
    if model is not None:
        specs = [s for s in specs if s.name != model] + [get_model(model)]
    for spec in specs:
        for key, m in spec.metrics.items():
            if model is None and key in out:
                continue  # the first model to explain a shared key keeps it
            out[key] = {"label": m.label, "better": m.better, "how": m.how}
    return out
