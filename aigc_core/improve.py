"""Close the data loop: fine-tune a run on what people liked, and measure the shift.

Two pieces:

- **Fine-tune from a run** (``train --from RUN_ID``): :func:`finetune_config`
  makes a run config with the parent's architecture (its whole model config)
  on any data set of the same kind, and names the parent (``parent_run``) and
  the checkpoint step it starts from (``init_from``). The training loop calls
  :func:`load_parent_weights` before step 0 of such a run when it has no
  checkpoint of its own yet. This is also "pre-train, then fine-tune" for text.
- **Improve with my ratings**: build a data set from the run's liked samples
  mixed with the original data at a chosen share (:func:`plan_mix`),
  fine-tune the run on it for a short budget (:func:`start_improve`), and then
  compare before and after from the same seeds (:func:`measure_improvement`):
  the share of fresh samples a preference model trained on the ratings
  expects the person to like (:mod:`aigc_core.preference`, with its
  own held-out accuracy), and for labelled image sets the share of each
  class. :func:`improve` does both halves in one call (the command line).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import torch

from .errors import UserError
from .train.parent import parent_checkpoint
from .runs.store import RunStore

#: the default share of the fine-tune data that comes from liked samples
DEFAULT_LIKED_SHARE = 0.5
#: how long "Improve with my ratings" fine-tunes by default (seconds)
DEFAULT_SECONDS = 60.0
#: fresh samples compared before and after (the same seeds for both)
DEFAULT_COMPARE_N = 400
COMPARE_SEED = 7919
#: samples drawn for the side-by-side picture
SIDE_BY_SIDE_N = 16


# ---- fine-tune from a run ----------------------------------------------------------------

def finetune_config(parent_id: str, dataset: str | None = None, *, train_set: dict | None = None,
                    model_set: dict | None = None, finetune_optimizer: bool = True,
                    store: RunStore | None = None, actor=None) -> dict:
    """A run config that starts from ``parent_id``'s latest weights.

    The model config is the parent's (a fine-tune keeps the architecture);
    the training settings are the parent's with ``train_set`` on top (a
    budget, usually). ``model_set`` may change what does not change a
    network's shape (a learning rate); a shape change is refused when the
    weights are loaded. ``dataset`` defaults to the parent's own. With
    ``finetune_optimizer`` the optimiser state (Adam's moment estimates) is
    carried over too when its shapes match, so the first steps do not jolt
    the weights."""
    from .runs.api import make_config

    from .room.identity import LOCAL

    actor = actor or LOCAL
    store = store or RunStore()
    parent = store.get(parent_id, actor=actor)  # a participant fine-tunes their own or published runs
    step, _ = parent_checkpoint(parent)
    train = {k: v for k, v in parent.config.get("train", {}).items() if k not in ("steps", "max_seconds")}
    train.update(train_set or {})
    train.setdefault("steps", 0)
    train.setdefault("max_seconds", 0.0)
    model = {**parent.config.get("model_config", {}), **(model_set or {})}
    config = make_config(parent.model, dataset or parent.dataset, model_set=model, train_set=train, actor=actor)
    config.update(parent_run=parent.id, init_from=step, finetune_optimizer=bool(finetune_optimizer))
    return config


# ---- the loop's data: liked samples weighed against the original data ----------------------

@dataclass
class LoopMix:
    """How a fine-tune set mixes liked samples with the original data."""

    liked_share: float        # asked for
    repeat: int               # copies of each liked sample
    keep_original: int | None  # originals kept (None: all)
    plan: object = None       # the data loop's LoopPlan for this mix

    @property
    def actual_share(self) -> float:
        return self.plan.share if self.plan is not None else 0.0

    def describe(self) -> str:
        text = f"liked samples are {self.actual_share:.0%} of the fine-tune data (asked for {self.liked_share:.0%}): "
        return text + self.plan.describe()


def plan_mix(run_id: str, liked_share: float = DEFAULT_LIKED_SHARE, store: RunStore | None = None) -> LoopMix:
    """Copies of each liked sample and originals to keep so that liked
    samples make up ``liked_share`` of the fine-tune set.

    With L units of liked samples (images, lines, characters or rows), O of
    original data and r copies: share = r L / (r L + O), so
    r = share / (1 - share) * O / L. When r would pass the data loop's cap,
    images and text keep fewer originals instead, O' = r L (1 - share) / share;
    tables keep all their rows (a fine-tune keeps its parent's held-out rows),
    so their share can fall short of the one asked for, and says so."""
    from .data_loop import MAX_REPEAT, loop_plan

    share = float(liked_share)
    if not 0.0 < share < 1.0:
        raise UserError(f"the share of liked samples must be between 0 and 1 (e.g. 0.5); got {liked_share}")
    store = store or RunStore()
    once = loop_plan(run_id, store=store)
    if once.notes and once.kind not in ("image", "text", "table"):
        raise UserError(once.notes[0])
    if not once.used:
        if once.liked:
            raise UserError("none of the liked samples can be added (" +
                            "; ".join(f"{n}: {why}" for why, n in once.skipped.items()) + ")")
        raise UserError("no liked samples yet: give some samples a thumbs up (or rate by a rule) first")
    units = max(1, once.added)
    wanted = share / (1.0 - share) * once.original_count / units
    repeat = int(min(MAX_REPEAT, max(1, round(wanted))))
    keep = None
    if repeat < wanted and once.kind in ("image", "text"):
        keep = max(1, round(repeat * units * (1.0 - share) / share))
    plan = loop_plan(run_id, store=store, repeat=repeat, keep_original=keep)
    for _ in range(3):
        # liked lines that copy an original line are left out, and fewer originals leave out fewer of
        # them; settle the count of originals on what the thinned set really adds
        if keep is None or not plan.added or abs(plan.share - share) < 0.01:
            break
        keep = max(1, round(plan.added * (1.0 - share) / share))
        plan = loop_plan(run_id, store=store, repeat=repeat, keep_original=keep)
    return LoopMix(share, repeat, keep, plan)


# ---- Improve with my ratings -------------------------------------------------------------

@dataclass
class ImproveReport:
    """What one turn of the loop did and how far the model moved."""

    run_id: str
    parent_run: str
    dataset: str
    mix: str
    liked_share: float
    repeat: int
    fine_tune_seconds: float
    seconds: float
    compared: int
    preference_before: float | None = None
    preference_after: float | None = None
    preference_held_out_accuracy: float | None = None
    preference_baseline_accuracy: float | None = None
    preference_held_out_auc: float | None = None
    preference_rated: int = 0
    preference_note: str = ""
    class_shares_before: dict[str, float] = field(default_factory=dict)
    class_shares_after: dict[str, float] = field(default_factory=dict)
    rule: str | None = None                 # when a rule made the ratings: the share it likes, before and after
    rule_share_before: float | None = None
    rule_share_after: float | None = None
    before_file: str | None = None
    after_file: str | None = None
    before_text: list[str] = field(default_factory=list)
    after_text: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


REPORT_FILE = "improve.json"


def start_improve(run_id: str, *, max_seconds: float = DEFAULT_SECONDS, liked_share: float = DEFAULT_LIKED_SHARE,
                  name: str | None = None, detach: bool = True, store: RunStore | None = None, echo=None):
    """Start the fine-tune of "Improve with my ratings"; returns the child run.

    Saves a data set of the liked samples mixed with the original data
    (:func:`plan_mix`) and queues a run that starts from ``run_id``'s
    weights and fine-tunes on it for ``max_seconds``. With ``detach`` the
    run trains in a worker (a page then watches the run store and calls
    :func:`measure_improvement` once it has finished); without, it trains in
    this process first."""
    from . import data_loop
    from .runs.api import run_in_foreground, submit

    say = echo or (lambda _m: None)
    store = store or RunStore()
    parent = store.get(run_id)
    if parent.status not in ("completed", "stopped", "interrupted", "failed"):
        raise UserError(f"run {parent.name} is {parent.status}; improve a run once it has stopped training")
    max_seconds = float(max_seconds)
    if not 1.0 <= max_seconds <= 3600.0:
        raise UserError(f"fine-tune for between 1 and 3600 seconds; got {max_seconds:g}")
    mix = plan_mix(run_id, liked_share, store)
    say(mix.describe())
    info, _ = data_loop.make_dataset_from_liked(run_id, store=store, repeat=mix.repeat,
                                                keep_original=mix.keep_original)
    config = finetune_config(run_id, info.name, train_set={"max_seconds": max_seconds, "steps": 0}, store=store)
    config["end_of_run_evaluation"] = False  # the before/after comparison is this run's measure
    config["improve"] = {"liked_share": mix.actual_share, "repeat": mix.repeat, "mix": mix.describe()}
    name = name or f"{parent.name} + ratings"
    child = submit(config, name=name, store=store) if detach else \
        run_in_foreground(config, name=name, store=store, echo=say)
    store.update(child.id, note=mix.describe())
    return store.get(child.id)


def measure_improvement(child_id: str, compare_n: int = DEFAULT_COMPARE_N, store: RunStore | None = None,
                        echo=None) -> ImproveReport:
    """Before and after for a finished fine-tune made by :func:`start_improve`:
    ``compare_n`` fresh samples from the same seeds, from the parent and from
    the child; the share the preference model (fitted on the parent's
    ratings) expects the person to like, and for labelled image sets the
    share of each class. Saved as ``improve.json`` in the child's folder
    (:func:`improve_report` reads it back)."""
    import json

    from .paths import write_atomic

    say = echo or (lambda _m: None)
    store = store or RunStore()
    compare_n = int(compare_n)
    if not 8 <= compare_n <= 5000:
        raise UserError(f"compare between 8 and 5000 fresh samples; got {compare_n}")
    child = store.get(child_id)
    facts = child.config.get("improve")
    if not facts or not child.config.get("parent_run"):
        raise UserError(f"run {child.name} was not made by 'Improve with my ratings'")
    if child.status not in ("completed", "stopped"):
        raise UserError(f"the fine-tune is {child.status}" + (f" ({child.message})" if child.message else "")
                        + "; before and after can be compared once it has finished")
    parent = store.get(child.config["parent_run"])
    t0 = time.perf_counter()
    preference, note = None, ""
    try:
        preference = _fit_preference(parent.id, store)
    except UserError as exc:
        note = str(exc)
    report = ImproveReport(run_id=child.id, parent_run=parent.id, dataset=child.dataset, mix=facts["mix"],
                           liked_share=facts["liked_share"], repeat=facts["repeat"],
                           fine_tune_seconds=child.train_seconds, seconds=0.0, compared=compare_n,
                           preference_note=note)
    _compare(report, parent, child, preference, compare_n, store)
    report.seconds = round(time.perf_counter() - t0, 2)
    say(f"compared {report.compared} samples before and after in {report.seconds:.0f} s")
    write_atomic(child.folder / REPORT_FILE, json.dumps(report.to_dict(), indent=2).encode())
    return report


def improve(run_id: str, *, max_seconds: float = DEFAULT_SECONDS, liked_share: float = DEFAULT_LIKED_SHARE,
            compare_n: int = DEFAULT_COMPARE_N, name: str | None = None, store: RunStore | None = None,
            echo=None) -> ImproveReport:
    """One turn of the loop in this process (the command line's ``improve``):
    :func:`start_improve` without detaching, then :func:`measure_improvement`.
    ``seconds`` in the report is the whole turn, fine-tune included."""
    t0 = time.perf_counter()
    store = store or RunStore()
    if not 8 <= int(compare_n) <= 5000:
        raise UserError(f"compare between 8 and 5000 fresh samples; got {compare_n}")
    child = start_improve(run_id, max_seconds=max_seconds, liked_share=liked_share, name=name, detach=False,
                          store=store, echo=echo)
    if child.status not in ("completed", "stopped"):
        raise UserError(f"the fine-tune did not finish ({child.status}: {child.message})")
    report = measure_improvement(child.id, compare_n, store, echo)
    report.seconds = round(time.perf_counter() - t0, 2)
    return report


def _fit_preference(run_id: str, store: RunStore):
    from .preference import fit_preference

    return fit_preference(run_id, store)


def improve_report(run_id: str, store: RunStore | None = None) -> dict | None:
    """The saved report of a run made by :func:`improve` (None for other runs)."""
    import json

    store = store or RunStore()
    path = store.get(run_id).folder / REPORT_FILE
    return json.loads(path.read_text()) if path.exists() else None


def _compare(report: ImproveReport, parent, child, preference, n: int, store: RunStore) -> None:
    """Fill in the before/after figures from the same seeds."""
    from .sample import load_for_sampling

    before_trainer, _, _ = load_for_sampling(parent.id, store=store)
    after_trainer, _, _ = load_for_sampling(child.id, store=store)
    if parent.data_kind == "text":
        n = min(n, 100)  # long texts: a hundred samples is plenty for a share
        report.compared = n
    with torch.no_grad():
        before = before_trainer.sample(n, COMPARE_SEED)
        after = after_trainer.sample(n, COMPARE_SEED)
    rule = _rating_rule(parent.id, store)
    if rule is not None:
        from .rating_rules import parse_rule, reference_data, rule_shares

        judge = reference_data(parent, store) if parent.data_kind == "image" else before_trainer.data
        report.rule = rule
        report.rule_share_before, report.rule_share_after = rule_shares(
            parse_rule(rule, parent.data_kind, judge), before, after, judge)
    if preference is not None:
        report.preference_before = preference.expected_share(before)
        report.preference_after = preference.expected_share(after)
        report.preference_held_out_accuracy = preference.held_out_accuracy
        report.preference_baseline_accuracy = preference.baseline_accuracy
        report.preference_held_out_auc = preference.held_out_auc
        report.preference_rated = preference.rated
        report.preference_note = preference.describe()
    if parent.data_kind == "image":
        from .imaging import grid_image
        from .rating_rules import reference_data

        reference = reference_data(parent, store)
        if getattr(reference, "labels", None) is not None and len(reference.labels):
            report.class_shares_before = class_shares(before, reference)
            report.class_shares_after = class_shares(after, reference)
        folder = child.folder / "improve"
        folder.mkdir(parents=True, exist_ok=True)
        k = min(SIDE_BY_SIDE_N, n)
        grid_image(before[:k], nrow=8).save(folder / "before.png")
        grid_image(after[:k], nrow=8).save(folder / "after.png")
        report.before_file, report.after_file = "improve/before.png", "improve/after.png"
    elif parent.data_kind == "text":
        report.before_text, report.after_text = list(before[:8]), list(after[:8])


def _rating_rule(run_id: str, store: RunStore) -> str | None:
    """The rule that made a run's ratings, when one rule made all of them."""
    rules = {r["payload"].get("rule") for r in store.ratings(run_id)}
    return rules.pop() if len(rules) == 1 and None not in rules else None


def class_shares(images: torch.Tensor, data) -> dict[str, float]:
    """The share of images the data set's classifier reads as each class
    (at :data:`aigc_core.rating_rules.CLASS_CONFIDENCE`), plus "unclear"."""
    from .rating_rules import CLASS_CONFIDENCE, classify

    cls, prob = classify(images, data)
    names = list(data.class_names or [str(i) for i in range(int(data.labels.max()) + 1)])
    sure = prob >= CLASS_CONFIDENCE
    out = {name: float(((cls == i) & sure).float().mean()) for i, name in enumerate(names)}
    out["unclear"] = float(1.0 - sum(out.values()))
    return out
