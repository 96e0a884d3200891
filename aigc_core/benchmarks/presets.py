"""The presets' fitting rules on data they were and were not tuned on
(``python -m aigc_core bench --only presets``).

Each family's preset is fitted to each data set by the model's own rule
(:meth:`aigc_core.registry.ModelSpec.preset`, device ``cpu``), trained, and
scored on held-out data. The data sets come in two groups
(:mod:`aigc_core.benchmarks.corpora`): ``tuned`` (what the rules were tuned
on) and ``unseen`` (only measured), and the figures keep them apart.

**Text.** The anchor is the small-CPU GPT recipe
(:data:`aigc_core.benchmarks.text.BASELINE`: 4 layers x 128, context 64, batch
12, AdamW at 1e-3) for its 2,000 iterations with the cosine over them, which
take about :data:`TEXT_SECONDS` of CPU time on a quiet 2-core machine.
``char_gpt``'s Standard preset, fitted to the corpus, then trains for its
fitted steps or as much CPU time as the recipe took, whichever comes first,
its learning rate's cosine following whichever is nearer its end. Both are
scored on the corpus's held-out last 10% (``val_loss``, nats per character). Target: the preset at least 0.05 nats
below the recipe on every corpus (``text.<corpus>.minus_recipe`` <= -0.05).

**Tables.** ``tab_gan``'s Quick preset (the 30 s recipe the target names),
fitted to the table, trains until its fitted steps or :data:`TABLE_SECONDS` of
CPU time, and is scored by TSTR (:mod:`aigc_core.benchmarks.tabular`): the
accuracy of classifiers trained on synthetic rows over those trained on the
real rows, on held-out real rows. Target: >= 0.95 on every table. Every table
arrives as an uploaded CSV file would, with no label named: the importer
infers the column types and guesses the label, and the guess is what the model
conditions on and the score predicts. The guessed column is in the figures
(``label_guessed``); a guess that is not the table's class column is reported
as ``label_wrong`` and that table is not scored.

Measurement: one torch thread on both sides of every comparison and the
process's CPU clock for the budgets, so other work on a shared machine slows a
run without shortening it; the load average is printed with the figures.
"""

from __future__ import annotations

import os
import time

import numpy as np
import torch

from ..config import from_dict
from ..registry import get_model
from . import corpora
from .text import BASELINE

TEXT_SECONDS = 110.0
RECIPE_STEPS = 2000
TABLE_SECONDS = 30.0
TABLE_SEEDS = (0, 1, 2)
QUICK_TABLE_SECONDS = 5.0
QUICK_RECIPE_STEPS = 200


def train_budget(trainer, steps: int, seconds: float) -> tuple[int, float]:
    """Train for ``steps`` or ``seconds`` of this process's CPU time, whichever
    comes first; a text trainer's cosine follows the nearer of the two.
    Returns (steps taken, CPU seconds used)."""
    start, done = time.process_time(), 0
    if hasattr(trainer, "budget_progress"):
        trainer.budget_progress = lambda: max(done / steps, (time.process_time() - start) / seconds)
    trainer.train_mode(True)
    while done < steps and time.process_time() - start < seconds:
        trainer.step()
        done += 1
    trainer.train_mode(False)
    return done, time.process_time() - start


def _trainer(model: str, values: dict, data, seed: int = 0):
    spec = get_model(model)
    torch.manual_seed(seed)
    return spec.trainer_cls(from_dict(spec.config_cls, values), data, torch.device("cpu"), seed)


def text_row(name: str, group: str, data, quick: bool) -> dict:
    """The recipe first, for its iterations; then the fitted preset for the
    same CPU time (on a quiet 2-core machine the recipe's 2,000 iterations
    take about :data:`TEXT_SECONDS`), so a loaded machine slows both sides
    alike instead of shortening only the preset's run."""
    spec = get_model("char_gpt")
    fitted, why = spec.preset("Standard", data.summary(), "cpu")
    out: dict = {f"text.{name}.group": group, f"text.{name}.chars": len(data.text), f"text.{name}.rule": why}
    recipe_steps = QUICK_RECIPE_STEPS if quick else RECIPE_STEPS
    trainer = _trainer("char_gpt", dict(BASELINE, lr_decay_steps=recipe_steps), data)
    steps, budget = train_budget(trainer, recipe_steps, float("inf"))
    recipe = trainer.evaluate()["val_loss"]
    out.update({f"text.{name}.recipe.val_loss": recipe, f"text.{name}.recipe.steps": steps,
                f"text.{name}.recipe.cpu_s": budget})
    trainer = _trainer("char_gpt", fitted["model"], data)
    steps, used = train_budget(trainer, int(fitted["train"]["steps"]), budget)
    preset = trainer.evaluate()["val_loss"]
    out.update({f"text.{name}.preset.val_loss": preset, f"text.{name}.preset.steps": steps,
                f"text.{name}.preset.cpu_s": used,
                f"text.{name}.preset.passes": steps * trainer.tokens_per_step / len(trainer.train_text),
                f"text.{name}.minus_recipe": preset - recipe})
    return out


def table_row(name: str, table: "corpora.BenchTable", quick: bool) -> dict:
    """Figures for one table, its label being the importer's guess: a guess
    other than the class column is reported (``label_wrong``) and the table is
    not trained on, as its scores would measure the wrong column."""
    from .tabular import score

    data, prefix = table.data, f"tabular.{name}"
    out: dict = {f"{prefix}.group": table.group, f"{prefix}.rows": len(data), f"{prefix}.columns": len(data.column_types),
                 f"{prefix}.label_guessed": table.guessed or "", f"{prefix}.label_reason": table.reason}
    if not table.guessed_right:
        out[f"{prefix}.label_wrong"] = f"the importer guessed {table.guessed!r}; the classes are in {table.classes!r}"
        return out
    spec = get_model("tab_gan")
    fitted, why = spec.preset("Quick", data.summary(), "cpu")
    runs = []
    for seed in TABLE_SEEDS[:1] if quick else TABLE_SEEDS:
        trainer = _trainer("tab_gan", fitted["model"], data, seed)
        steps, used = train_budget(trainer, int(fitted["train"]["steps"]),
                                   QUICK_TABLE_SECONDS if quick else TABLE_SECONDS)
        synth = trainer.sample(len(trainer.real_train), seed)
        runs.append(dict(steps=steps, cpu_s=used, **score(trainer.real_train, trainer.real_test, synth,
                                                          trainer.types, trainer.label, seed)))
    ratios = [r["tstr_ratio"] for r in runs]
    out.update({f"{prefix}.rule": why,
                f"{prefix}.tab_gan.tstr_ratio_mean": float(np.mean(ratios)),
                f"{prefix}.tab_gan.tstr_ratio_min": float(np.min(ratios)),
                f"{prefix}.tab_gan.tstr_ratio_seeds": " ".join(f"{r:.3f}" for r in ratios),
                f"{prefix}.tab_gan.steps": float(np.mean([r["steps"] for r in runs])),
                f"{prefix}.tab_gan.cpu_s": float(np.mean([r["cpu_s"] for r in runs])),
                f"{prefix}.load": " ".join(f"{x:.2f}" for x in os.getloadavg())})
    return out


def run(quick: bool = False, texts: list[str] | None = None, tables: list[str] | None = None) -> dict:
    """Every corpus and table, or, when ``texts`` or ``tables`` names some,
    only the ones named (``--tables blobs`` alone trains no text)."""
    if texts is not None or tables is not None:
        texts, tables = texts or [], tables or []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    out: dict = {"presets.load_at_start": " ".join(f"{x:.2f}" for x in os.getloadavg())}
    try:
        found, missing = corpora.text_corpora(texts) if texts != [] else ({}, [])
        for group in ("tuned", "unseen"):
            for name, (g, data) in found.items():
                if g == group:
                    out.update(text_row(name, g, data, quick))
        if missing:
            out["text.missing"] = ", ".join(missing) + " (their material is not on this machine)"
        bench_tables = corpora.tables(tables) if tables != [] else {}
        for group in ("tuned", "unseen"):
            for name, table in bench_tables.items():
                if table.group == group:
                    out.update(table_row(name, table, quick))
    finally:
        torch.set_num_threads(threads)
    out["presets.load_at_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    out["presets.note"] = (
        "one torch thread, CPU-time budgets; text: the small-CPU GPT recipe for "
        f"{QUICK_RECIPE_STEPS if quick else RECIPE_STEPS} iterations, then char_gpt Standard fitted to each corpus for "
        "its steps or the CPU time the recipe took, "
        "val_loss in nats per character on the last 10%, target minus_recipe <= -0.05; tables: tab_gan Quick fitted "
        f"to each table (imported as a CSV, label guessed), its steps or {QUICK_TABLE_SECONDS if quick else TABLE_SECONDS:.0f} CPU s, seeds "
        f"{', '.join(map(str, TABLE_SEEDS[:1] if quick else TABLE_SEEDS))}, "
        "target tstr_ratio >= 0.95; group tuned = the rules were tuned on it, unseen = only measured")
    return out
