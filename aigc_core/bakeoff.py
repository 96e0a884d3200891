"""The bake-off: several models trained on the same data, with the same
budget and the same seed, then laid side by side.

The budget is one of :data:`BUDGETS`: processor seconds (``cpu``, the
default: a model is not cut short because another process took the CPU
while it trained), clock seconds (``wall``) or optimisation steps
(``steps``); the report says which.

A bake-off is a small JSON record under ``$AIGC_HOME/bakeoffs/<id>.json``
(data set, budget, seed, the run ids); the runs themselves are ordinary runs
in the run store, queued for the background worker like any other, so the
Compare page can start a bake-off and come back to it later, and the command
line can wait for it. On a machine with one training slot the runs train one
after another, so no model gets a share of the CPU that another one wanted.

:func:`bakeoff_report` turns a finished (or still running) bake-off into a
plain dict: a leaderboard with every metric and its best value marked, the
curves, a sample grid per model from the same seed, and copy-detection pairs
for image models. :func:`export_html` writes that report as one
self-contained HTML file (images as data URIs, charts as inline SVG).
"""

from __future__ import annotations

import base64
import html
import json
import math
import secrets
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from .errors import UserError
from .metrics.features import FEATURE_NOTE
from .paths import aigc_home, write_atomic

MIN_MODELS = 2
#: what a bake-off's budget counts, in words for the report
BUDGETS = {"cpu": "processor seconds", "wall": "seconds on the clock", "steps": "optimisation steps"}
#: how many samples each model shows in the report, and from which seed
SAMPLE_COUNT = 16
SAMPLE_SEED = 0
POLL_S = 1.0

# What the budget bought each model: shown in the leaderboard, never "better".
BUDGET_COLUMNS = {
    "steps_trained": {"label": "Steps trained", "better": None,
                      "how": "Optimisation steps the model managed within the shared budget."},
    "train_seconds": {"label": "Training time (s)", "better": None,
                      "how": "Seconds spent training on the bake-off's clock (processor seconds for a CPU-time "
                             "budget; pauses and the final evaluation excluded)."},
}
#: the metric a leaderboard is ranked by: the first of these that every run has
HEADLINE = ("fid", "val_bpc", "kid", "elbo", "val_elbo", "fidelity", "val_loss")

def metric_info(model: str | None = None) -> dict:
    """Metric key -> {"label", "better" ("lower" | "higher" | None), "how"}:
    :func:`aigc_core.registry.metric_info` (the loop's, the quality numbers',
    and what every model declares about its logged numbers)."""
    from .registry import metric_info as declared

    return declared(model)


def _logged_while_training(key: str) -> bool:
    """A number some model logs as it trains (its own words on its spec), or the loop's speed."""
    from .metrics.labels import LOOP_METRICS
    from .registry import all_models

    return key in LOOP_METRICS or any(key in spec.metrics and not key.startswith("val_") for spec in all_models())


def bakeoffs_dir() -> Path:
    path = aigc_home() / "bakeoffs"
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class Bakeoff:
    id: str
    dataset: str
    models: list[str]
    run_ids: list[str]
    max_seconds: float
    seed: int
    preset: str | None
    created: float = field(default_factory=time.time)
    #: who started it (workshop mode: its runs are theirs); None for one from before workshop mode
    user: str | None = None
    #: what the budget counts (:data:`BUDGETS`); records made before budgets had a choice were on the clock
    budget: str = "wall"
    steps: int = 0

    @property
    def budget_text(self) -> str:
        """``60 processor seconds each``, ``500 optimisation steps each``."""
        amount = f"{self.steps:,}" if self.budget == "steps" else f"{self.max_seconds:g}"
        return f"{amount} {BUDGETS[self.budget]} each"

    @property
    def title(self) -> str:
        when = time.strftime("%d %b %H:%M", time.localtime(self.created))
        return f"{', '.join(self.models)} on {self.dataset}, {self.budget_text} ({when})"

    def runs(self, store=None) -> list:
        from .runs.store import RunStore

        store = store or RunStore()
        return [store.get(i) for i in self.run_ids if store.exists(i)]

    def finished(self, store=None) -> bool:
        """True when every run has ended (completed, stopped, failed or interrupted)."""
        from .runs.store import FINISHED

        return all(r.status in FINISHED for r in self.runs(store))


# ---- starting ------------------------------------------------------------------------

def bakeoff_configs(dataset: str, models: list[str], max_seconds: float, *, seed: int = 0,
                    preset: str | None = "Quick", actor=None, budget: str = "cpu", steps: int = 0) -> list[dict]:
    """One run config per model: the model's own settings (its ``preset`` when it
    has one), but the same data, seed and budget for all of them: ``max_seconds``
    processor seconds (``budget="cpu"``) or clock seconds (``"wall"``), or
    ``steps`` optimisation steps (``"steps"``).

    Every problem (an unknown model, a model that cannot train on this data, a
    repeated model, a missing budget) is reported at once, before anything is
    queued."""
    from .registry import get_model
    from .runs.api import make_config

    models = [m.strip() for m in models if m and m.strip()]
    if len(models) < MIN_MODELS:
        raise UserError(f"a bake-off needs at least {MIN_MODELS} models to compare; you gave "
                        f"{len(models)} ({', '.join(models) or 'none'})")
    repeated = sorted({m for m in models if models.count(m) > 1})
    if repeated:
        raise UserError(f"{', '.join(repeated)} is listed twice; with the same data, budget and seed a second run "
                        "would be an exact copy. List each model once")
    if budget not in BUDGETS:
        raise UserError(f"a bake-off's budget is one of {', '.join(BUDGETS)}; got {budget!r}")
    if budget == "steps":
        if not steps or steps <= 0:
            raise UserError("give the bake-off a number of steps (for example --steps 500)")
        limits = {"steps": int(steps), "max_seconds": 0.0}
    else:
        if not max_seconds or max_seconds <= 0 or not math.isfinite(max_seconds):
            raise UserError("give the bake-off a time budget in seconds (for example --max-seconds 60)")
        # steps=0 is "no step limit": the clock alone ends every run
        limits = {"steps": 0, "max_seconds": float(max_seconds), "clock": budget}
    configs, problems = [], []
    for name in models:
        try:
            spec = get_model(name)
            use_preset = preset if preset in spec.presets else None
            configs.append(make_config(name, dataset, preset=use_preset, train_set={**limits, "seed": int(seed)},
                                       **({"actor": actor} if actor is not None else {})))
        except UserError as exc:
            problems.append(str(exc))
    if problems:
        raise UserError("nothing was queued: " + "; ".join(problems))
    return configs


def start_bakeoff(dataset: str, models: list[str], max_seconds: float, *, seed: int = 0,
                  preset: str | None = "Quick", store=None, start: bool = True, actor=None, budget: str = "cpu",
                  steps: int = 0) -> Bakeoff:
    """Queue one run per model and record the bake-off; returns at once.

    ``start=False`` only queues the runs (a test then trains them itself). In
    workshop mode the runs are ``actor``'s, and all of them must fit in their
    limit of runs at once, so a bake-off is never queued half."""
    from .room.identity import LOCAL
    from .room.limits import check_active_runs
    from .runs.api import active_runs, submit
    from .runs.store import RunStore

    actor = actor or LOCAL
    configs = bakeoff_configs(dataset, models, max_seconds, seed=seed, preset=preset, actor=actor, budget=budget,
                              steps=steps)
    store = store or RunStore()
    check_active_runs(actor, active_runs(store, actor) + len(configs) - 1)
    bakeoff_id = f"bakeoff-{time.strftime('%m%d-%H%M%S')}-{secrets.token_hex(2)}"
    run_ids = []
    for config in configs:
        run = submit(config, name=f"{config['model']} · bake-off {bakeoff_id[-4:]}", store=store, start=False,
                     actor=actor)
        run_ids.append(run.id)
    bakeoff = Bakeoff(id=bakeoff_id, dataset=dataset, models=[c["model"] for c in configs], run_ids=run_ids,
                      max_seconds=0.0 if budget == "steps" else float(max_seconds), seed=int(seed), preset=preset,
                      budget=budget, steps=int(steps) if budget == "steps" else 0, user=actor.name)
    write_atomic(bakeoffs_dir() / f"{bakeoff_id}.json", json.dumps(asdict(bakeoff), indent=2).encode())
    if start:
        from .runs.queue import dispatch

        dispatch(store)
    return bakeoff


def load_bakeoff(bakeoff_id: str) -> Bakeoff:
    path = bakeoffs_dir() / f"{Path(bakeoff_id).name}.json"
    if not path.exists():
        raise UserError(f"no bake-off called {bakeoff_id!r}; the Compare page lists the earlier ones")
    return Bakeoff(**json.loads(path.read_text()))


def list_bakeoffs(actor=None) -> list[Bakeoff]:
    """Every recorded bake-off ``actor`` may see (their own; all for the teacher and the single user), newest first."""
    from .room.policy import can_see

    out = []
    for path in bakeoffs_dir().glob("bakeoff-*.json"):
        try:
            b = Bakeoff(**json.loads(path.read_text()))
        except (ValueError, TypeError):
            continue  # a damaged record must not hide the others
        if actor is None or can_see(actor, b.user or "local"):
            out.append(b)
    return sorted(out, key=lambda b: b.created, reverse=True)


def wait_for_bakeoff(bakeoff: Bakeoff, store=None, echo: Callable[[str], None] = print,
                     poll_s: float = POLL_S, timeout_s: float | None = None) -> None:
    """Block until every run of the bake-off has ended, saying how each one is doing."""
    from .runs.queue import dispatch
    from .runs.store import RunStore

    store = store or RunStore()
    told: dict[str, tuple] = {}
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        store.refresh()  # a dead worker shows as interrupted, so the wait ends
        dispatch(store)  # and the next queued run gets the free slot
        runs = bakeoff.runs(store)
        for r in runs:
            news = (r.status, int(r.progress * 10))
            if told.get(r.id) != news:
                told[r.id] = news
                extra = f" ({r.message})" if r.message and r.status in ("failed", "interrupted") else ""
                echo(f"{r.model:12s} {r.status:11s} {100 * r.progress:3.0f}%  step {r.step}{extra}")
        if bakeoff.finished(store):
            return
        if deadline is not None and time.monotonic() > deadline:
            raise UserError(f"the bake-off {bakeoff.id} did not finish within {timeout_s:g} s; its runs carry on "
                            "in the background (see `python -m aigc_core runs`)")
        time.sleep(poll_s)


def run_bakeoff(dataset: str, models: list[str], max_seconds: float, out: str | None = None,
                echo: Callable[[str], None] = print, *, seed: int = 0, preset: str | None = "Quick",
                budget: str = "cpu", steps: int = 0) -> dict:
    """Queue the runs, wait for them, build the report and (with ``out``) write
    it as HTML. Returns the report without its images (fit for ``--json``)."""
    bakeoff = start_bakeoff(dataset, models, max_seconds, seed=seed, preset=preset, budget=budget, steps=steps)
    echo(f"bake-off {bakeoff.id}: {', '.join(bakeoff.models)} on {dataset}, {bakeoff.budget_text}, seed {seed}")
    wait_for_bakeoff(bakeoff, echo=echo)
    report = bakeoff_report(bakeoff.id)
    for line in leaderboard_lines(report):
        echo(line)
    if out:
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(export_html(report), encoding="utf-8")
        echo(f"wrote the report to {path}")
    summary = report_summary(report)
    if out:
        summary["out"] = str(out)
    return summary


# ---- the report -------------------------------------------------------------------

def best_runs(values: dict[str, float | None], better: str | None) -> list[str]:
    """The run(s) holding the best value; none when the metric has no better
    direction, fewer than two runs have a number, or all numbers are equal."""
    finite = {k: v for k, v in values.items() if v is not None and math.isfinite(v)}
    if better not in ("lower", "higher") or len(finite) < 2 or len(set(finite.values())) < 2:
        return []
    best = min(finite.values()) if better == "lower" else max(finite.values())
    return [k for k, v in finite.items() if v == best]


def metric_order(key: str, info: dict) -> tuple:
    """Quality metrics first, then held-out numbers, then training losses and speed, then the rest; a
    bake-off's budget columns last. The Compare page sorts its numbers table with this too."""
    if key in BUDGET_COLUMNS:
        tier = 4
    elif key in info and not _logged_while_training(key):
        tier = 0
    elif key.startswith("val_"):
        tier = 1
    elif _logged_while_training(key):
        tier = 2
    else:
        tier = 3
    return tier, key


def leaderboard(numbers: dict[str, dict[str, float]], info: dict) -> dict:
    """``numbers``: run id -> {metric: value}. Returns the metric columns (in
    display order, each with its label, better direction, explanation and best
    run ids) and the run ids ranked by the headline metric."""
    keys = sorted({k for nums in numbers.values() for k in nums}, key=lambda k: metric_order(k, info))
    columns = []
    for key in keys:
        entry = info.get(key) or BUDGET_COLUMNS.get(key) or {}
        values = {rid: _number(nums.get(key)) for rid, nums in numbers.items()}
        columns.append({"key": key, "label": entry.get("label", key), "better": entry.get("better"),
                        "how": entry.get("how", "Logged by the model while it trained."),
                        "best": best_runs(values, entry.get("better"))})
    ranked_by = next((k for k in HEADLINE if k in info and info[k].get("better") in ("lower", "higher")
                      and all(_number(nums.get(k)) is not None for nums in numbers.values())), None)
    order = list(numbers)
    if ranked_by:
        sign = 1 if info[ranked_by]["better"] == "lower" else -1
        order.sort(key=lambda rid: sign * numbers[rid][ranked_by])
    return {"columns": columns, "order": order, "ranked_by": ranked_by}


def _number(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def bakeoff_report(bakeoff_id: str, store=None, *, seed: int = SAMPLE_SEED, with_samples: bool = True) -> dict:
    """Everything the page and the HTML file show about a bake-off, as plain
    data: runs, leaderboard, curves, samples (PNG images base64-encoded) and
    copy-detection pairs. Works on a bake-off still in progress too (its
    numbers are then the latest logged ones)."""
    from .registry import get_model
    from .runs.store import RunStore

    store = store or RunStore()
    bakeoff = load_bakeoff(bakeoff_id)
    runs = bakeoff.runs(store)
    if not runs:
        raise UserError(f"the runs of bake-off {bakeoff.id} have all been deleted, so there is nothing to report")
    info = metric_info()
    numbers, entries = {}, []
    for r in runs:
        nums = {k: v for k, v in (r.final_metrics or store.last_metrics(r.id)).items() if _number(v) is not None}
        nums["steps_trained"] = float(r.step)
        nums["train_seconds"] = round(float(r.train_seconds), 2)
        numbers[r.id] = nums
        entries.append({"run_id": r.id, "model": r.model, "label": get_model(r.model).title, "status": r.status,
                        "message": r.message or "", "step": r.step, "train_seconds": r.train_seconds,
                        "progress": r.progress, "device": r.device_name or r.device or "", "values": nums})
    board = leaderboard(numbers, info)
    by_id = {e["run_id"]: e for e in entries}
    report = {
        "id": bakeoff.id, "title": bakeoff.title, "dataset": bakeoff.dataset, "models": bakeoff.models,
        "max_seconds": bakeoff.max_seconds, "seed": bakeoff.seed, "preset": bakeoff.preset,
        "budget": bakeoff.budget, "budget_steps": bakeoff.steps, "budget_text": bakeoff.budget_text,
        "created": bakeoff.created, "finished": bakeoff.finished(store), "sample_seed": seed,
        "runs": [by_id[i] for i in board["order"]], "columns": board["columns"], "ranked_by": board["ranked_by"],
        "curves": _curves(runs, store), "samples": {}, "copies": {}, "feature_note": FEATURE_NOTE,
    }
    if with_samples:
        for r in runs:
            report["samples"][r.id] = _samples(r, bakeoff.dataset, seed, store)
            pairs = _copy_pairs(r, bakeoff.dataset, seed, store)
            if pairs:
                report["copies"][r.id] = pairs
    return report


def _curves(runs, store, max_points: int = 400) -> dict:
    """metric -> run id -> {"step": [...], "seconds": [...], "value": [...]}
    (seconds since the run's first log; thinned evenly to ``max_points``)."""
    out: dict[str, dict] = {}
    for r in runs:
        frame = store.metrics(r.id)
        if frame.empty:
            continue
        t0 = float(frame["wall"].min())
        for key, part in frame.groupby("key", sort=True):
            part = part.sort_values("step")
            if len(part) > max_points:
                part = part.iloc[[round(i * (len(part) - 1) / (max_points - 1)) for i in range(max_points)]]
            values = [_number(v) for v in part["value"]]
            out.setdefault(key, {})[r.id] = {"step": [int(s) for s in part["step"]],
                                             "seconds": [round(float(w) - t0, 3) for w in part["wall"]],
                                             "value": values}
    return out


def _b64_png(image) -> str:
    from .imaging import png_bytes

    return base64.b64encode(png_bytes(image)).decode("ascii")


def _samples(run, dataset: str, seed: int, store) -> dict:
    """A few samples from the run's best checkpoint (its last, without a held-out loss), all models from the same seed."""
    from .sample import load_for_sampling

    try:
        trainer, _, step = load_for_sampling(run.id, store=store)
    except UserError as exc:
        return {"kind": "none", "error": str(exc)}
    return sample_preview(run, trainer, step, seed, dataset)


#: how each kind of data is previewed: (count, sampling knobs, preview of the samples)
def _image_preview(trainer, samples, dataset) -> dict:
    from .imaging import grid_image, upscale

    return {"png": _b64_png(upscale(grid_image(samples, nrow=4), 240))}


def _points_preview(trainer, samples, dataset) -> dict:
    from .data.catalog import load_dataset

    real = load_dataset(dataset).points
    return {"svg": svg_scatter(real[:512].tolist(), samples.tolist())}


def _text_preview(trainer, samples, dataset) -> dict:
    return {"lines": getattr(trainer, "mode", "") == "lines", "texts": [str(t) for t in samples]}


def _table_preview(trainer, samples, dataset) -> dict:
    return {"columns": [str(c) for c in samples.columns],
            "rows": [[str(v) for v in row] for row in samples.itertuples(index=False)]}


PREVIEWS = {"image": _image_preview, "points": _points_preview, "text": _text_preview, "table": _table_preview}


def _preview_knobs(trainer, kind: str) -> tuple[int, dict]:
    if kind == "text":  # a little below temperature 1, whole items or a paragraph
        lines = getattr(trainer, "mode", "") == "lines"
        return (8 if lines else 2), {"length": 40 if lines else 200, "temperature": 0.8}
    return {"image": SAMPLE_COUNT, "points": 512, "table": 8}.get(kind, SAMPLE_COUNT), {}


def sample_preview(run, trainer, step: int, seed: int, dataset: str | None = None) -> dict:
    """A small, JSON-able preview of a run's samples for reports and side-by-side
    views: ``{"kind": <data kind>, "step": ..., ...}`` (or kind ``none`` and an error)."""
    preview = PREVIEWS.get(run.data_kind)
    if preview is None:
        return {"kind": "none", "error": f"no samples for {run.data_kind} data"}
    try:
        n, knobs = _preview_knobs(trainer, run.data_kind)
        samples = trainer.sample(n, seed, **knobs)
        return {"kind": run.data_kind, "step": step, **preview(trainer, samples, dataset or run.dataset)}
    except Exception as exc:  # noqa: BLE001 - one model's broken sampler must not sink the report
        return {"kind": "none", "error": f"sampling failed: {type(exc).__name__}: {exc}"}


def _copy_pairs(run, dataset: str, seed: int, store, count: int = 8) -> list[dict]:
    """For image models: samples beside their nearest training image, with the
    distance."""
    if run.data_kind != "image":
        return []
    from .data.catalog import load_dataset
    from .imaging import upscale
    from .metrics.image import nearest_neighbours
    from .sample import load_for_sampling

    try:
        trainer, _, _ = load_for_sampling(run.id, store=store)
        samples = trainer.sample(count, seed)
        data = load_dataset(dataset)
        found = nearest_neighbours(samples, data, run_id=run.id)
    except (UserError, TypeError, ValueError, RuntimeError):
        return []
    return [{"sample": _b64_png(upscale(_pil(samples[i]), 84)), "neighbour": _b64_png(upscale(_pil(nn), 84)),
             "distance": float(d)} for i, (nn, d) in enumerate(zip(found["images"], found["distances"]))]


def _pil(image01):
    from .imaging import grid_image

    return grid_image(image01.unsqueeze(0), nrow=1, padding=0)


def report_summary(report: dict) -> dict:
    """The report without images, curves or samples: what ``--json`` prints."""
    return {"bakeoff_id": report["id"], "dataset": report["dataset"], "max_seconds": report["max_seconds"],
            "budget": report["budget"], "budget_text": report["budget_text"],
            "seed": report["seed"], "ranked_by": report["ranked_by"],
            "runs": [{k: e[k] for k in ("run_id", "model", "status", "step", "train_seconds", "values")}
                     for e in report["runs"]],
            "best": {c["key"]: c["best"] for c in report["columns"] if c["best"]}}


def leaderboard_lines(report: dict) -> list[str]:
    """The leaderboard for the terminal: a row per metric, a column per model
    (in rank order), the best value of each row starred."""
    runs = report["runs"]
    widths = [max(12, len(e["model"]) + 2) for e in runs]
    lines = [f"{'metric':28s}" + "".join(f"{e['model']:>{w}s}" for e, w in zip(runs, widths))]
    for c in report["columns"]:
        cells = []
        for e, w in zip(runs, widths):
            v = e["values"].get(c["key"])
            text = "" if v is None else format(v, ".4g") + ("*" if e["run_id"] in c["best"] else " ")
            cells.append(f"{text:>{w}s}")
        lines.append(f"{c['key'][:28]:28s}" + "".join(cells))
    ranked = f"models ranked by {report['ranked_by']}; " if report["ranked_by"] else ""
    lines.append(f"{ranked}* marks the best value of each row")
    return lines


# ---- plain SVG charts (no plotting library, no network) -----------------------------

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def svg_line_chart(series: dict[str, tuple[list[float], list[float]]], title: str, x_label: str,
                   width: int = 560, height: int = 300) -> str:
    """Overlaid lines, one per name: ``{name: (xs, ys)}``, as an inline SVG."""
    left, right, top, bottom = 62, 12, 28, 64
    pts = {n: [(x, y) for x, y in zip(xs, ys) if y is not None and math.isfinite(y)] for n, (xs, ys) in series.items()}
    every = [p for ps in pts.values() for p in ps]
    if not every:
        return ""
    x_lo, x_hi = min(p[0] for p in every), max(p[0] for p in every)
    y_lo, y_hi = min(p[1] for p in every), max(p[1] for p in every)
    if x_hi == x_lo:
        x_hi = x_lo + 1
    if y_hi == y_lo:
        y_lo, y_hi = y_lo - 0.5, y_hi + 0.5
    pw, ph = width - left - right, height - top - bottom

    def sx(x):
        return left + (x - x_lo) / (x_hi - x_lo) * pw

    def sy(y):
        return top + ph - (y - y_lo) / (y_hi - y_lo) * ph

    e = html.escape
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
             f'<text x="{left}" y="16" font-size="13" font-weight="bold">{e(title)}</text>',
             f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#bbb"/>']
    for t in _ticks(y_lo, y_hi):
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{sy(t):.1f}" y2="{sy(t):.1f}" stroke="#eee"/>'
                     f'<text x="{left - 4}" y="{sy(t) + 4:.1f}" text-anchor="end">{t:.4g}</text>')
    for t in _ticks(x_lo, x_hi):
        parts.append(f'<text x="{sx(t):.1f}" y="{top + ph + 14}" text-anchor="middle">{t:.4g}</text>')
    parts.append(f'<text x="{left + pw / 2}" y="{top + ph + 30}" text-anchor="middle">{e(x_label)}</text>')
    for i, (name, ps) in enumerate(pts.items()):
        colour = PALETTE[i % len(PALETTE)]
        if len(ps) == 1:
            parts.append(f'<circle cx="{sx(ps[0][0]):.1f}" cy="{sy(ps[0][1]):.1f}" r="3" fill="{colour}"/>')
        elif ps:
            path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in ps)
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.6" points="{path}"/>')
        lx, ly = left + (i % 3) * (pw / 3), top + ph + 44 + (i // 3) * 14  # legend: three names a row
        parts.append(f'<rect x="{lx:.1f}" y="{ly - 8:.1f}" width="10" height="10" fill="{colour}"/>'
                     f'<text x="{lx + 14:.1f}" y="{ly + 1:.1f}">{e(name[:38])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def svg_scatter(real: list[list[float]], fake: list[list[float]], size: int = 260) -> str:
    """2-D points: real in grey, generated in orange, on the same axes."""
    every = real + fake
    if not every:
        return ""
    xs, ys = [p[0] for p in every], [p[1] for p in every]
    lo, hi = min(min(xs), min(ys)), max(max(xs), max(ys))
    # keep far outliers of a bad generator from squashing the real data into a dot
    rx, ry = [p[0] for p in real] or xs, [p[1] for p in real] or ys
    span = max(max(rx) - min(rx), max(ry) - min(ry), 1e-6)
    lo = max(lo, min(min(rx), min(ry)) - span)
    hi = min(hi, max(max(rx), max(ry)) + span)
    if hi <= lo:
        hi = lo + 1

    def s(v):
        return 6 + (min(max(v, lo), hi) - lo) / (hi - lo) * (size - 12)

    dots = [f'<circle cx="{s(x):.1f}" cy="{size - s(y):.1f}" r="1.6" fill="#999"/>' for x, y in real]
    dots += [f'<circle cx="{s(x):.1f}" cy="{size - s(y):.1f}" r="1.6" fill="#ff7f0e" fill-opacity="0.7"/>' for x, y in fake]
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" viewBox="0 0 {size} {size}">'
            f'<rect width="{size}" height="{size}" fill="white" stroke="#ccc"/>{"".join(dots)}</svg>')


def curve_keys(report: dict, limit: int = 6) -> list[str]:
    """The curves worth drawing: metrics logged more than once by every run,
    losses and held-out numbers first."""
    run_ids = [e["run_id"] for e in report["runs"]]
    shared = [k for k, per_run in report["curves"].items()
              if all(len(per_run.get(rid, {}).get("step", [])) > 1 for rid in run_ids)]
    rank = {"loss": 0, "val_bpc": 1, "val_loss": 2, "loss_g": 3, "loss_d": 4}
    shared.sort(key=lambda k: (rank.get(k, 5 if k.startswith(("loss", "val_")) else 6), k))
    return shared[:limit]


# ---- HTML export --------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px}h2{font-size:18px;margin-top:28px}
table{border-collapse:collapse;font-size:13px}th,td{border:1px solid #ddd;padding:4px 8px;text-align:right}
th{background:#f5f5f5}td.name,th.name{text-align:left}td.best{background:#e6f4ea;font-weight:bold}
.grid{display:flex;flex-wrap:wrap;gap:16px}.card{border:1px solid #ddd;padding:8px;border-radius:6px}
.card h3{font-size:14px;margin:0 0 6px 0}pre{white-space:pre-wrap;font-size:12px;max-width:360px}
details{margin:2px 0}summary{cursor:pointer}.note{color:#666;font-size:12px}img{image-rendering:pixelated}
"""


def export_html(report: dict) -> str:
    """The report as one self-contained HTML page: no scripts, no links to
    fetch; images are data URIs and charts inline SVG."""
    e = html.escape
    names = {x["run_id"]: x["label"] for x in report["runs"]}
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(report["created"]))
    out = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Bake-off on {e(report['dataset'])}"
           f"</title><style>{_CSS}</style></head><body>",
           f"<h1>Bake-off: {e(', '.join(report['models']))} on {e(report['dataset'])}</h1>",
           f"<p>Every model trained on <b>{e(report['dataset'])}</b> for <b>{e(report['budget_text'])}</b> "
           f"with seed <b>{report['seed']}</b> (started {e(when)}; bake-off {e(report['id'])}).</p>"]
    if not report["finished"]:
        out.append("<p><b>Some runs were still training when this report was made; their numbers are the latest "
                   "logged ones.</b></p>")

    out.append("<h2>Leaderboard</h2>")
    if report["ranked_by"]:
        col = next(c for c in report["columns"] if c["key"] == report["ranked_by"])
        out.append(f"<p>Ranked by {e(col['label'])} ({col['better']} is better). The best value of each column is "
                   "highlighted and starred.</p>")
    # a row per metric and a column per model (in rank order): 2-6 models stay readable with many metrics
    out.append("<table><tr><th class='name'>Metric</th>")
    for rank, x in enumerate(report["runs"], 1):
        place = f"#{rank} " if report["ranked_by"] else ""
        out.append(f"<th>{place}{e(x['label'])}<br><span class='note'>{e(x['status'])} · {e(x['run_id'])}</span></th>")
    out.append("</tr>")
    for c in report["columns"]:
        arrow = {"lower": " ↓", "higher": " ↑"}.get(c["better"], "")
        out.append(f"<tr><td class='name' title='{e(c['how'])}'>{e(c['label'])}{arrow}</td>")
        for x in report["runs"]:
            v = x["values"].get(c["key"])
            if x["run_id"] in c["best"]:
                out.append(f"<td class='best'>{v:.4g} ★</td>")
            else:
                out.append(f"<td>{'' if v is None else format(v, '.4g')}</td>")
        out.append("</tr>")
    out.append("</table><p class='note'>↓ lower is better, ↑ higher is better. " + e(report["feature_note"]) + "</p>")
    out.append("<h3>How each number is computed</h3>")
    for c in report["columns"]:
        better = {"lower": "lower is better", "higher": "higher is better"}.get(c["better"], "no better direction")
        out.append(f"<details><summary><b>{e(c['label'])}</b> (<code>{e(c['key'])}</code>, {better})</summary>"
                   f"<p>{e(c['how'])}</p></details>")

    keys = curve_keys(report)
    if keys:
        out.append("<h2>Curves</h2><p class='note'>Horizontal axis: seconds since each run's first log, so the "
                   "lines show what each model reached within the same time.</p><div class='grid'>")
        for key in keys:
            per_run = report["curves"][key]
            series = {names[rid]: (c["seconds"], c["value"]) for rid, c in per_run.items() if rid in names}
            out.append(svg_line_chart(series, key, "seconds of training"))
        out.append("</div>")

    if report["samples"]:
        out.append(f"<h2>Samples side by side (seed {report['sample_seed']})</h2><div class='grid'>")
        for x in report["runs"]:
            s = report["samples"].get(x["run_id"], {"kind": "none", "error": "not sampled"})
            out.append(f"<div class='card'><h3>{e(x['label'])}</h3>{_sample_html(s)}</div>")
        out.append("</div>")

    if report["copies"]:
        out.append("<h2>Copy detection</h2><p class='note'>Each sample beside its nearest training image and their "
                   "distance in the feature space; a tiny distance means the model may be repeating its data.</p>")
        for x in report["runs"]:
            pairs = report["copies"].get(x["run_id"])
            if not pairs:
                continue
            out.append(f"<h3>{e(x['label'])}</h3><div class='grid'>")
            for p in pairs:
                out.append(f"<div class='card'><img alt='sample' src='data:image/png;base64,{p['sample']}'> "
                           f"<img alt='nearest training image' src='data:image/png;base64,{p['neighbour']}'>"
                           f"<br><span class='note'>distance {p['distance']:.3g}</span></div>")
            out.append("</div>")
    out.append("<p class='note'>Made with AIGC Studio.</p></body></html>")
    return "\n".join(out)


def _sample_html(s: dict) -> str:
    e = html.escape
    step = f"<p class='note'>step {s['step']}</p>" if "step" in s else ""
    if s["kind"] == "image":
        return f"<img alt='samples' src='data:image/png;base64,{s['png']}'>{step}"
    if s["kind"] == "points":
        return s["svg"] + "<p class='note'>grey: real points, orange: generated</p>" + step
    if s["kind"] == "text":
        return f"<pre>{e(chr(10).join(s['texts']) if s['lines'] else (chr(10) * 2).join(s['texts']))}</pre>{step}"
    if s["kind"] == "table":
        head = "".join(f"<th>{e(c)}</th>" for c in s["columns"])
        rows = "".join("<tr>" + "".join(f"<td>{e(v)}</td>" for v in row) + "</tr>" for row in s["rows"])
        return f"<table><tr>{head}</tr>{rows}</table>{step}"
    return f"<p>{e(s.get('error', 'no samples'))}</p>"
