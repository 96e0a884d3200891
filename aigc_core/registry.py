"""One registry maps a model name to its family, config, trainer and presets.

Each model module calls :func:`register` at import time. The Train page and the
command line read the registry; neither has per-model code.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable

from .errors import UserError

MODEL_MODULES = [
    "aigc_core.models.gan",
    "aigc_core.models.vae",
    "aigc_core.models.text",
    "aigc_core.models.tabular",
    "aigc_core.models.diffusion",
]


@dataclass
class ModelSpec:
    """Everything the studio needs to know about one model.

    - ``family``: ``gan`` | ``vae`` | ``ae`` | ``text`` | ``tabular`` (the
      explanation panel and the metrics follow the family).
    - ``data_kind``: which kind of data set it trains on (``image``,
      ``points``, ``text``, ``table``).
    - ``trainer_cls(model_cfg, data, device, seed)``: see
      :class:`aigc_core.train.base.Trainer`.
    - ``presets``: name -> overrides, each a dict with optional ``model`` and
      ``train`` sub-dicts (``Quick`` trains in about 30 s on a laptop CPU).
    - ``fits(data_summary) -> str | None``: ``None`` when the model can train on
      a data set with that summary, else the reason it cannot.
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


_REGISTRY: dict[str, ModelSpec] = {}
_loaded = False


def register(spec: ModelSpec) -> ModelSpec:
    _REGISTRY[spec.name] = spec
    return spec


def plugin_modules() -> list[str]:
    """Extra modules named in ``$AIGC_PLUGINS`` (comma-separated) that register
    their own models or data sets; worker processes import them too."""
    import os

    return [m.strip() for m in os.environ.get("AIGC_PLUGINS", "").split(",") if m.strip()]


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
