"""Tabular benchmarks: how useful synthetic rows are after at most 30 s of
training on the CPU, and how long the fit takes.

For each table (``iris``, and the simulated ``ecommerce`` sessions) and each
model (``tab_gan`` and ``tab_vae`` with their Quick presets), a trainer is built
with the run's usual split (20% of the rows held out, stratified by the label)
and trained on the CPU until its preset's step budget or 30 s of wall time,
whichever comes first. It then makes as many synthetic rows as there are real
training rows, and two classifiers (scikit-learn's logistic regression and a
100-tree random forest) are trained once on the real training rows and once on
the synthetic rows; both are tested on the same held-out real rows.

Figures per table and model (``tabular.<table>.<model>.*``):

- ``tstr_ratio``: TSTR accuracy / TRTR accuracy, averaged over the two
  classifiers (the ``_mean`` and ``_min`` over seeds); ``tstr_ratio_lr`` and
  ``tstr_ratio_rf`` per classifier (mean over seeds);
- ``fit_s``: training wall time (mean over seeds), ``steps``: steps taken,
  ``steps_per_s``: their ratio (a busy machine shows here);
- ``fidelity``: the report's column-shape / pair-trend score (mean).

The target: ``tab_gan`` at least 0.95 on both tables. When the ``ctgan``
package happens to be importable (it is not a dependency of this project),
``CTGAN()`` at its defaults (300 epochs) is fitted on the same training rows and
scored the same way, under ``tabular.<table>.ctgan.*``.

Threads: the networks are small; training uses one thread (on a busy 2-core
machine, two threads waiting on each other are many times slower, and on a
quiet one they gain little). Timings still depend on what else the machine is
doing.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from ..config import from_dict
from ..data.catalog import load_dataset
from ..registry import get_model

TABLES = ["iris", "ecommerce"]
MODELS = ["tab_gan", "tab_vae"]
MAX_SECONDS = 30.0
SEEDS = (0, 1, 2)
QUICK_SEEDS = (0,)


def build(model: str, data, seed: int, overrides: dict | None = None):
    """A trainer with the model's Quick preset (plus ``overrides``), on the CPU."""
    spec = get_model(model)
    values = {**spec.presets["Quick"]["model"], **(overrides or {})}
    torch.manual_seed(seed)
    return spec.trainer_cls(from_dict(spec.config_cls, values), data, torch.device("cpu"), seed)


def train_for(trainer, steps: int, seconds: float = MAX_SECONDS) -> tuple[int, float]:
    """Train until ``steps`` are done or ``seconds`` have passed; (steps, seconds)."""
    trainer.train_mode(True)
    start, done = time.perf_counter(), 0
    while done < steps and time.perf_counter() - start < seconds:
        trainer.step()
        done += 1
    took = time.perf_counter() - start
    trainer.train_mode(False)
    return done, took


def score(real_train, real_test, synth, types, label, seed: int) -> dict[str, float]:
    from ..metrics.tabular import fidelity, usefulness

    use = usefulness(real_train, real_test, synth, label, types, seed=seed)
    return dict(tstr_ratio=use["tstr_accuracy_ratio"],
                tstr_ratio_lr=use["classifiers"]["logistic_regression"]["accuracy_ratio"],
                tstr_ratio_rf=use["classifiers"]["random_forest"]["accuracy_ratio"],
                trtr_accuracy=use["trtr_accuracy"], fidelity=fidelity(real_train, synth, types)["fidelity"])


def one_model(model: str, data, seed: int, overrides: dict | None = None, seconds: float = MAX_SECONDS) -> dict:
    spec = get_model(model)
    trainer = build(model, data, seed, overrides)
    steps, took = train_for(trainer, int(spec.presets["Quick"]["train"]["steps"]), seconds)
    synth = trainer.sample(len(trainer.real_train), seed)
    return dict(steps=steps, fit_s=took, **score(trainer.real_train, trainer.real_test, synth, trainer.types,
                                                  trainer.label, seed))


def _ctgan_available() -> bool:
    try:
        import ctgan  # noqa: F401
    except Exception:  # noqa: BLE001 - absent or broken: no baseline row
        return False
    return True


def one_ctgan(data, seed: int) -> dict:
    """CTGAN at its defaults on the same split the studio's models use."""
    from ctgan import CTGAN

    trainer = build("tab_vae", data, seed)  # only for its split, types and label
    types = trainer.types
    discrete = [c for c, t in types.items() if t != "numeric"]
    bools = [c for c, t in types.items() if t == "boolean"]
    train = trainer.real_train.copy()
    train[bools] = train[bools].astype(str)
    torch.manual_seed(seed)
    np.random.seed(seed)
    model = CTGAN()
    start = time.perf_counter()
    model.fit(train, discrete_columns=discrete)
    took = time.perf_counter() - start
    synth = model.sample(len(train))
    for c in bools:
        synth[c] = synth[c].astype(str) == "True"
    steps = int(model._epochs) * max(len(train) // int(model._batch_size), 1)  # CTGAN's own count of G steps
    return dict(steps=steps, fit_s=took,
                **score(trainer.real_train, trainer.real_test, synth, types, trainer.label, seed))


def _collect(out: dict, prefix: str, runs: list[dict]) -> None:
    ratios = [r["tstr_ratio"] for r in runs]
    out[f"{prefix}.tstr_ratio_mean"] = float(np.mean(ratios))
    out[f"{prefix}.tstr_ratio_min"] = float(np.min(ratios))
    for key in ("tstr_ratio_lr", "tstr_ratio_rf", "trtr_accuracy", "fidelity", "fit_s", "steps"):
        out[f"{prefix}.{key}"] = float(np.mean([r[key] for r in runs]))
    out[f"{prefix}.steps_per_s"] = float(np.mean([r["steps"] / max(r["fit_s"], 1e-9) for r in runs]))


def run(quick: bool = False, tables: list[str] | None = None, models: list[str] | None = None) -> dict:
    seeds = QUICK_SEEDS if quick else SEEDS
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    out: dict = {}
    try:
        for table in tables or TABLES:
            data = load_dataset(table)
            for model in models or MODELS:
                _collect(out, f"tabular.{table}.{model}", [one_model(model, data, s) for s in seeds])
            if _ctgan_available():
                _collect(out, f"tabular.{table}.ctgan", [one_ctgan(data, s) for s in seeds])
    finally:
        torch.set_num_threads(threads)
    out["tabular.note"] = (
        f"Quick presets on the CPU, one thread, at most {MAX_SECONDS:.0f} s or the preset's steps; seeds "
        f"{', '.join(map(str, seeds))}; tstr_ratio = accuracy on held-out real rows (20%, stratified) of classifiers "
        "trained on as many synthetic rows as real training rows / trained on the real rows, mean of logistic "
        "regression and random forest"
        + ("; ctgan: CTGAN() at its defaults on the same split" if _ctgan_available() else "; ctgan not installed"))
    return out
