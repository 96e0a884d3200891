"""Rate samples by a rule, so the data loop can be shown in a minute.

Rating 200 samples by hand is not a demo. A rule stands in for a person: the
run makes ``n`` fresh samples, the rule likes some of them, and every sample
gets a thumbs up or down in the run store exactly as a Gallery click would
(the payload also names the rule, so the per-run human score leaves these
ratings out).

Rules (``--rule``):

- images: ``class=7`` (or a class name: ``class=circle``) likes the samples
  the data set's classifier (:mod:`aigc_core.metrics.features`) reads as that
  class with at least :data:`CLASS_CONFIDENCE` probability;
  ``brightest=0.25`` likes the brightest quarter (mean pixel value).
- text: ``contains=xyz`` likes samples with that text in them;
  ``longest=0.25`` likes the longest quarter.
- tables: ``column=value`` likes rows whose column has that value
  (``purchase=True``, ``device=mobile``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .errors import UserError
from .runs.store import RunStore

#: a sample counts as a class when the classifier gives it at least this probability
CLASS_CONFIDENCE = 0.5
DEFAULT_N = 200
MAX_N = 5000
#: rule ratings use their own seeds, so the before/after comparison's samples are fresh ones
RATE_SEED = 4242


@dataclass
class Rule:
    """A parsed rule: ``kind`` (class, brightest, contains, longest, column)
    and its argument."""

    text: str
    kind: str
    value: object
    column: str | None = None

    def describe(self) -> str:
        if self.kind == "class":
            return f"like every sample the classifier reads as {self.value}"
        if self.kind == "brightest":
            return f"like the brightest {self.value:.0%}"
        if self.kind == "contains":
            return f"like every sample containing {self.value!r}"
        if self.kind == "longest":
            return f"like the longest {self.value:.0%}"
        return f"like every row with {self.column} = {self.value}"


RULE_HELP = {
    "image": "class=7 (the classifier reads it as class 7) or brightest=0.25 (the brightest quarter)",
    "text": "contains=TEXT (samples containing TEXT) or longest=0.25 (the longest quarter)",
    "table": "COLUMN=VALUE (rows whose COLUMN has VALUE, e.g. purchase=True)",
}


def _share(key: str, value: str) -> float:
    try:
        share = float(value)
    except ValueError:
        raise UserError(f"{key}= expects a share between 0 and 1 (e.g. {key}=0.25); got {value!r}") from None
    if not 0 < share < 1:
        raise UserError(f"{key}= expects a share between 0 and 1 (e.g. {key}=0.25); got {value}")
    return share


def parse_rule(text: str, data_kind: str, data=None) -> Rule:
    """Parse ``text`` for a run on ``data_kind`` data (``data``: its data set,
    to check classes and columns)."""
    text = (text or "").strip()
    if data_kind not in RULE_HELP:
        raise UserError(f"{data_kind} runs have no rating rules; rules exist for images, text and tables")
    if "=" not in text:
        raise UserError(f"a rule looks like KEY=VALUE; for {data_kind} runs: {RULE_HELP[data_kind]}")
    key, value = (part.strip() for part in text.split("=", 1))
    if data_kind == "image":
        if key == "class":
            return Rule(text, "class", _class_index(value, data))
        if key == "brightest":
            return Rule(text, "brightest", _share(key, value))
    elif data_kind == "text":
        if key == "contains":
            if not value:
                raise UserError("contains= needs some text to look for")
            return Rule(text, "contains", value)
        if key == "longest":
            return Rule(text, "longest", _share(key, value))
    else:
        columns = list(getattr(data, "column_types", {}) or {})
        if key in columns:
            return Rule(text, "column", value, column=key)
        raise UserError(f"the table has no column {key!r}; columns: {', '.join(columns)}")
    raise UserError(f"unknown rule {key!r} for {data_kind} runs; use {RULE_HELP[data_kind]}")


def _class_index(value: str, data) -> int:
    names = list(getattr(data, "class_names", None) or [])
    labels = getattr(data, "labels", None)
    if labels is None or not len(labels):
        raise UserError(f"{getattr(data, 'name', 'this data set')!r} has no classes, so class= cannot be read; "
                        "try brightest=0.25")
    count = int(labels.max()) + 1
    if value in names:
        return names.index(value)
    try:
        index = int(value)
    except ValueError:
        raise UserError(f"no class {value!r}; classes: {', '.join(names) or f'0 to {count - 1}'}") from None
    if not 0 <= index < count:
        raise UserError(f"no class {index}; classes are 0 to {count - 1}")
    return index


# ---- which data set judges a run's images ------------------------------------------------

def reference_data(run, store: RunStore | None = None):
    """The data set whose classifier and feature net judge a run's images:
    the run's own when it has labels, else the nearest labelled one up its
    chain of fine-tune parents (a set made of liked samples has no labels,
    but its samples are still digits to the original set's classifier)."""
    from .data.catalog import load_dataset

    store = store or RunStore()
    seen = set()
    current = run
    first = None
    while current is not None and current.id not in seen:
        seen.add(current.id)
        try:
            data = load_dataset(current.dataset)
        except UserError:
            data = None
        if data is not None:
            first = first or data
            if getattr(data, "labels", None) is not None and len(data.labels):
                return data
        parent = current.config.get("parent_run")
        current = store.get(parent) if parent and store.exists(parent) else None
    if first is None:
        raise UserError(f"the data set of run {run.name} ({run.dataset!r}) no longer exists")
    return first


def classify(images: torch.Tensor, data) -> tuple[torch.Tensor, torch.Tensor]:
    """(class, probability) per image from the data set's classifier; the
    class is -1 for "none of these"."""
    from .metrics.features import feature_net, one_thread

    net = feature_net(data)
    if not net.labelled:
        raise UserError(f"{data.name!r} has no classes, so its images cannot be classified")
    with torch.no_grad(), one_thread():
        probs = torch.cat([net.class_probs(part) for part in images.split(500)])
    best, cls = probs.max(1)
    cls = torch.where(cls == net.classes, torch.full_like(cls, -1), cls)
    return cls, best


def likes(rule: Rule, samples, data=None) -> list[bool]:
    """Which samples the rule likes (images: (N, C, H, W) in [0, 1]; text: a
    list of str; tables: a DataFrame)."""
    if rule.kind == "class":
        cls, prob = classify(samples, data)
        return [bool(c == rule.value and p >= CLASS_CONFIDENCE) for c, p in zip(cls.tolist(), prob.tolist())]
    if rule.kind in ("brightest", "longest"):
        scores = samples.float().flatten(1).mean(1).tolist() if rule.kind == "brightest" else [len(s) for s in samples]
        keep = max(1, round(rule.value * len(scores)))
        order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
        chosen = set(order[:keep])
        return [i in chosen for i in range(len(scores))]
    if rule.kind == "contains":
        return [rule.value in s for s in samples]
    column = samples[rule.column]
    wanted = rule.value.strip().lower()
    return [_same(v, wanted) for v in column.tolist()]


def rule_shares(rule: Rule, before, after, data=None) -> tuple[float, float]:
    """The share of ``before`` and of ``after`` samples the rule likes. A
    relative rule (the brightest or longest quarter) keeps the cut-off it has
    on ``before``, so "more bright samples after" can show."""
    if rule.kind in ("brightest", "longest"):
        def scores(samples):
            return samples.float().flatten(1).mean(1).tolist() if rule.kind == "brightest" else [len(x) for x in samples]
        ranked = sorted(scores(before), reverse=True)
        cut = ranked[max(1, round(rule.value * len(ranked))) - 1]
        return (sum(v >= cut for v in scores(before)) / max(1, len(ranked)),
                sum(v >= cut for v in scores(after)) / max(1, len(after)))
    return (sum(likes(rule, before, data)) / max(1, len(before)),
            sum(likes(rule, after, data)) / max(1, len(after)))


def _same(value, wanted: str) -> bool:
    if isinstance(value, bool):
        return wanted in (("true", "1", "yes") if value else ("false", "0", "no"))
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip().lower() == wanted


# ---- rate ----------------------------------------------------------------------------------

def rate_by_rule(run_id: str, rule_text: str, n: int = DEFAULT_N, seed: int = RATE_SEED,
                 store: RunStore | None = None) -> dict:
    """Make ``n`` samples from the run's latest checkpoint, rate each by the
    rule, and store the ratings; returns counts and the rule in words."""
    from . import data_loop
    from .sample import load_for_sampling

    store = store or RunStore()
    n = int(n)
    if not 1 <= n <= MAX_N:
        raise UserError(f"rate between 1 and {MAX_N} samples; got {n}")
    run = store.get(run_id)
    reference = reference_data(run, store) if run.data_kind == "image" else None
    trainer, run, step = load_for_sampling(run_id, store=store)
    rule = parse_rule(rule_text, run.data_kind, reference if run.data_kind == "image" else trainer.data)
    with torch.no_grad():
        samples = trainer.sample(n, seed)
    verdicts = likes(rule, samples, reference)
    items = []
    for i, liked in enumerate(verdicts):
        rating = data_loop.UP if liked else data_loop.DOWN
        where = dict(step=step, seed=seed, index=i, store=store)
        if run.data_kind == "image":
            items.append(data_loop.rate_image(run_id, samples[i], rating, **where))
        elif run.data_kind == "text":
            items.append(data_loop.rate_text(run_id, samples[i], rating, **where))
        else:
            items.append(data_loop.rate_row(run_id, data_loop.row_dict(samples, i), rating, **where))
    # mark them as the rule's, so the human score leaves them out
    mine = set(items)
    for r in store.ratings(run_id):
        if r["item"] in mine:
            store.rate(run_id, r["item"], int(r["rating"]), {**r["payload"], "rule": rule.text})
    up = sum(verdicts)
    return {"run_id": run_id, "rule": rule.text, "meaning": rule.describe(), "rated": n, "liked": up,
            "disliked": n - up, "step": step, "seed": seed}


MAX_FILE_ROWS = 5000
_UP_WORDS, _DOWN_WORDS = {"1", "up", "like", "liked", "yes", "true"}, {"0", "down", "dislike", "no", "false"}


def rate_from_file(run_id: str, data: bytes, filename: str = "ratings.csv", store: RunStore | None = None) -> dict:
    """Ratings from a CSV with the columns ``seed,index,rating``: sample
    ``index`` of ``sample(n, seed)`` at the run's latest checkpoint gets a
    thumbs up (``1``, ``up``, ``like``) or down (``0``, ``down``, ``dislike``),
    the way ratings collected elsewhere (a form, a spreadsheet) come back in."""
    import csv
    import io

    from . import data_loop
    from .sample import load_for_sampling

    store = store or RunStore()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UserError(f"{filename} is not UTF-8 text; save it as CSV (UTF-8)") from None
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows or not {"seed", "index", "rating"} <= {k.strip().lower() for k in rows[0] if k}:
        raise UserError(f"{filename} needs a header line with the columns seed,index,rating")
    if len(rows) > MAX_FILE_ROWS:
        raise UserError(f"{filename} has {len(rows)} ratings; at most {MAX_FILE_ROWS} are read at once")
    wanted: dict[int, dict[int, int]] = {}
    for line, row in enumerate(rows, start=2):
        row = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
        word = row["rating"].lower()
        if word not in _UP_WORDS | _DOWN_WORDS:
            raise UserError(f"{filename} line {line}: rating {row['rating']!r} is neither up (1) nor down (0)")
        try:
            seed, index = int(row["seed"]), int(row["index"])
        except ValueError:
            raise UserError(f"{filename} line {line}: seed and index must be whole numbers") from None
        if not 0 <= index < MAX_N:
            raise UserError(f"{filename} line {line}: index must be between 0 and {MAX_N - 1}")
        wanted.setdefault(seed, {})[index] = data_loop.UP if word in _UP_WORDS else data_loop.DOWN
    trainer, run, step = load_for_sampling(run_id, store=store)
    liked = 0
    for seed, picks in wanted.items():
        with torch.no_grad():
            samples = trainer.sample(max(picks) + 1, seed)
        for index, rating in picks.items():
            where = dict(step=step, seed=seed, index=index, store=store)
            if run.data_kind == "image":
                data_loop.rate_image(run_id, samples[index], rating, **where)
            elif run.data_kind == "text":
                data_loop.rate_text(run_id, samples[index], rating, **where)
            elif run.data_kind == "table":
                data_loop.rate_row(run_id, data_loop.row_dict(samples, index), rating, **where)
            else:
                raise UserError(f"{run.data_kind} runs have no ratings")
            liked += rating
    rated = sum(len(p) for p in wanted.values())
    return {"run_id": run_id, "rated": rated, "liked": liked, "disliked": rated - liked, "step": step}
