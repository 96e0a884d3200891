"""The closed data loop: people rate samples, the ones they liked join the data.

In the Gallery a person gives a sample a thumbs up or down. Each rating is a
row in the run store (``store.rate``) with what is needed to make the sample
again (seed, index, sampling knobs, checkpoint step). A liked image is also
kept as a PNG in the run folder (``liked/<item>.png``): a running run keeps
only its last few checkpoints, so "regenerate it later" could otherwise give a
different picture from the one that was liked. Liked text and table rows are
small and live in the rating's payload.

:func:`loop_plan` says what a new data set would contain and
:func:`make_dataset_from_liked` saves it (original data plus the liked samples)
as an uploaded set that the Train page can pick like any other.

What goes in, honestly:

- images: every original image plus every liked image. Generated images have
  no class, so the new set has no labels.
- line-mode text (names, titles): liked items that are not already items of the
  data set (a copy adds nothing new), placed before the original lines, so they
  land in the training split and not in the held-out last 10%.
- stream text: liked passages placed before the original text, for the same reason.
- tables: every original row plus every liked row, with the original column types.
- 2-D points have no data loop (a single point is not something one rates).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from .data.catalog import check_name, list_datasets, load_dataset, save_uploaded
from .data.kinds import KINDS
from .errors import UserError
from .room.identity import LOCAL, Actor
from .runs.store import RunStore

UP, DOWN = 1, 0
RATEABLE_KINDS = tuple(kind.name for kind in KINDS.values() if kind.rateable)


def _store(store: RunStore | None) -> RunStore:
    return store or RunStore()


def _knob_text(knobs: dict | None) -> str:
    """A short stable text for sampling knobs, part of an item's id."""
    if not knobs:
        return "-"
    return ",".join(f"{k}={knobs[k]}" for k in sorted(knobs))


def image_item(step: int, seed: int, index: int, knobs: dict | None = None) -> str:
    """The id of sample ``index`` of ``sample(n, seed, **knobs)`` at a checkpoint step
    (the same seed gives the same sample whatever the count)."""
    return f"image|{step}|{seed}|{index}|{_knob_text(knobs)}"


def text_item(step: int, seed: int, index: int, knobs: dict | None = None) -> str:
    return f"text|{step}|{seed}|{index}|{_knob_text(knobs)}"


def row_item(step: int, seed: int, index: int, condition: dict | None = None) -> str:
    return f"row|{step}|{seed}|{index}|{_knob_text(condition)}"


def _file_name(item: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "=.-" else "_" for ch in item) + ".png"


# ---- rating -----------------------------------------------------------------------

def rate_image(run_id: str, image01: torch.Tensor, rating: int, *, step: int, seed: int, index: int,
               knobs: dict | None = None, store: RunStore | None = None, actor: Actor = LOCAL) -> str:
    """Rate one generated image ((C, H, W) float in [0, 1]); a liked image's
    pixels are kept so the data loop uses exactly what was liked."""
    store = _store(store)
    run = store.get(run_id, actor=actor)
    item = image_item(step, seed, index, knobs)
    path = run.folder.liked_file(_file_name(item))
    payload = dict(kind="image", step=int(step), seed=int(seed), index=int(index), knobs=dict(knobs or {}))
    if int(rating) == UP:
        path.parent.mkdir(parents=True, exist_ok=True)
        pixels = image01.detach().float().cpu().clamp(0, 1).mul(255).round().to(torch.uint8)   # (C, H, W)
        array = pixels[0].numpy() if pixels.shape[0] == 1 else pixels.permute(1, 2, 0).numpy()
        Image.fromarray(array).save(path, format="PNG")
        payload["file"] = path.relative_to(run.folder.path).as_posix()  # the folder may move (export, import)
    elif not _liked_by_others(store, run_id, item, actor):
        path.unlink(missing_ok=True)
    store.rate(run_id, item, int(rating), payload, actor=actor)
    return item


def rate_text(run_id: str, text: str, rating: int, *, step: int, seed: int, index: int,
              knobs: dict | None = None, store: RunStore | None = None, actor: Actor = LOCAL) -> str:
    """Rate one generated text (the whole sample, prompt included)."""
    store = _store(store)
    item = text_item(step, seed, index, knobs)
    store.rate(run_id, item, int(rating), dict(kind="text", step=int(step), seed=int(seed), index=int(index),
                                               knobs=dict(knobs or {}), text=str(text)), actor=actor)
    return item


def rate_row(run_id: str, row: dict, rating: int, *, step: int, seed: int, index: int,
             condition: dict | None = None, store: RunStore | None = None, actor: Actor = LOCAL) -> str:
    """Rate one generated table row (``row``: column -> value, JSON-able)."""
    store = _store(store)
    item = row_item(step, seed, index, condition)
    store.rate(run_id, item, int(rating), dict(kind="row", step=int(step), seed=int(seed), index=int(index),
                                               condition=dict(condition or {}), row=dict(row)), actor=actor)
    return item


def _liked_by_others(store: RunStore, run_id: str, item: str, actor: Actor) -> bool:
    """Whether someone other than ``actor`` liked this sample (its kept PNG is theirs too)."""
    return any(r["item"] == item and r["user"] != actor.name and int(r["rating"]) == UP
               for r in store.ratings(run_id))


def unrate(run_id: str, item: str, store: RunStore | None = None, actor: Actor = LOCAL) -> None:
    """Take ``actor``'s rating back (and forget a liked image's pixels nobody else liked)."""
    store = _store(store)
    run = store.get(run_id, actor=actor)
    if not _liked_by_others(store, run_id, item, actor):
        run.folder.liked_file(_file_name(item)).unlink(missing_ok=True)
    store.unrate(run_id, item, actor=actor)  # the folder's copy records it too, so `repair` does not bring it back


def liked(run_id: str, store: RunStore | None = None, actor: Actor = LOCAL) -> list[dict]:
    """``actor``'s thumbs-up ratings of the run, oldest first; an image's entry has ``path``
    (its kept PNG), a text's ``text``, a row's ``row``."""
    store = _store(store)
    run = store.get(run_id, actor=actor)
    out = []
    for r in _liked(run_id, store, actor):
        entry = dict(item=r["item"], **r["payload"])
        if entry.get("file"):
            entry["path"] = run.folder / entry["file"]
        out.append(entry)
    return out


def ratings_by_item(run_id: str, store: RunStore | None = None, actor: Actor = LOCAL) -> dict[str, int]:
    """item -> rating (1 up, 0 down) ``actor`` gave for a run."""
    return {r["item"]: int(r["rating"]) for r in _store(store).ratings(run_id, actor=actor)}


def rating_counts(run_id: str, store: RunStore | None = None, actor: Actor = LOCAL) -> dict[str, int]:
    rows = _store(store).ratings(run_id, actor=actor)
    up = sum(1 for r in rows if int(r["rating"]) == UP)
    return {"up": up, "down": len(rows) - up, "total": len(rows)}


# ---- what a new data set would hold ------------------------------------------------

@dataclass
class LoopPlan:
    """What :func:`make_dataset_from_liked` would build, in words and numbers."""

    run_id: str
    dataset: str
    kind: str
    original_count: int = 0
    liked: int = 0
    used: int = 0          # liked samples that go in (each ``repeat`` times)
    repeat: int = 1
    added: int = 0         # units (images, lines, characters, rows) they add
    unit: str = "samples"
    skipped: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    suggested_name: str = ""

    @property
    def total(self) -> int:
        return self.original_count + self.added

    @property
    def share(self) -> float:
        """The fraction of the new set that comes from liked samples."""
        return self.added / self.total if self.total else 0.0

    def describe(self) -> str:
        text = f"{self.original_count:,} {self.unit} from {self.dataset!r} + {self.used:,} liked " \
               f"{'sample' if self.used == 1 else 'samples'}"
        if self.repeat > 1:
            text += f" × {self.repeat} copies"
        if self.unit == "characters" or self.repeat > 1:
            text += f" ({self.added:,} {self.unit})"
        text += f" = {self.total:,} {self.unit}"
        if self.skipped:
            text += " (" + "; ".join(f"{n} left out: {why}" for why, n in self.skipped.items()) + ")"
        return text


def _liked(run_id: str, store: RunStore, actor: Actor = LOCAL) -> list[dict]:
    # the teacher sees everyone's ratings: a sample two people liked goes in once
    once = {r["item"]: r for r in store.ratings(run_id, actor=actor) if int(r["rating"]) == UP}
    return list(once.values())


def _liked_images(run, liked: list[dict], shape: tuple[int, ...], skipped: dict[str, int]) -> list[torch.Tensor]:
    out = []
    for r in liked:
        rel = r["payload"].get("file")
        path = run.folder / rel if rel else None
        if path is None or not path.is_file():
            skipped["the liked image's file is missing"] = skipped.get("the liked image's file is missing", 0) + 1
            continue
        with Image.open(path) as im:
            im.load()
            array = np.asarray(im.convert("L" if shape[0] == 1 else "RGB"))
        pixels = torch.from_numpy(array.copy())
        pixels = pixels[None] if pixels.dim() == 2 else pixels.permute(2, 0, 1)     # (C, H, W) uint8
        if tuple(pixels.shape) != tuple(shape):
            why = f"size differs from the data set's {shape[1]}x{shape[2]}"
            skipped[why] = skipped.get(why, 0) + 1
            continue
        out.append(pixels)
    return out


def _liked_texts(liked: list[dict]) -> list[str]:
    return [r["payload"]["text"] for r in liked if r["payload"].get("kind") == "text" and r["payload"].get("text")]


def _liked_rows(liked: list[dict]) -> list[dict]:
    return [r["payload"]["row"] for r in liked if r["payload"].get("kind") == "row" and r["payload"].get("row")]


def _line_items(texts: list[str]) -> list[str]:
    return [line.strip() for t in texts for line in t.split("\n") if line.strip()]


def suggest_name(dataset: str, taken: set[str] | None = None) -> str:
    taken = taken if taken is not None else {d.name for d in list_datasets()}
    base = f"{dataset[:48]}-liked"
    name, i = base, 2
    while name in taken:
        name, i = f"{base}-{i}", i + 1
    return name


MAX_REPEAT = 100


def keep_some(original, count: int):
    """``count`` images or lines of a data set picked at random (seeded, in their
    order), or its first ``count`` characters; so a few liked samples can weigh
    half of a fine-tune set without copying each of them a thousand times.
    Tables keep every row: a fine-tuned table run keeps its parent's held-out
    rows, which must all still be there."""
    from .data.base import ImageData, TextData

    count = int(count)
    if count < 1:
        raise UserError(f"keep at least one original sample; got {count}")
    gen = torch.Generator().manual_seed(0)
    if isinstance(original, ImageData) and count < len(original):
        idx = torch.randperm(len(original), generator=gen)[:count].sort().values
        labels = original.labels[idx] if original.labels is not None else None
        return ImageData(original.name, original.images[idx], labels, original.class_names, original.description)
    if isinstance(original, TextData) and original.mode == "lines":
        items = [line for line in original.text.split("\n") if line]
        if count < len(items):
            idx = torch.randperm(len(items), generator=gen)[:count].sort().values.tolist()
            return TextData(original.name, "\n".join(items[i] for i in idx), "lines", original.description)
    elif isinstance(original, TextData) and count < len(original.text):
        return TextData(original.name, original.text[:count], "stream", original.description)
    return original


def _build(run_id: str, store: RunStore, name: str | None, repeat: int = 1, keep_original: int | None = None,
           actor: Actor = LOCAL):
    """(plan, data or None): the new data set's contents (the samples ``actor`` liked), without saving it
    (``keep_original``: at most this many original images or lines, see :func:`keep_some`)."""
    run = store.get(run_id, actor=actor)
    repeat = int(repeat)
    if not 1 <= repeat <= MAX_REPEAT:
        raise UserError(f"each liked sample can go in 1 to {MAX_REPEAT} times; got {repeat}")
    plan = LoopPlan(run_id=run_id, dataset=run.dataset, kind=run.data_kind, repeat=repeat)
    if run.data_kind not in RATEABLE_KINDS:
        plan.notes.append("Point sets have no data loop: rate images, text or table rows instead")
        return plan, None
    liked = _liked(run_id, store, actor)
    plan.liked = len(liked)
    try:
        original = load_dataset(run.dataset)
    except UserError:
        raise UserError(f"the run's data set {run.dataset!r} no longer exists, so there is nothing to add the "
                        "liked samples to; upload it again under the same name first") from None
    if keep_original is not None:
        original = keep_some(original, keep_original)
    new_name = name or suggest_name(run.dataset)
    plan.suggested_name = new_name
    description = f"{run.dataset} plus samples liked in the Gallery from run {run.name}"
    return _JOIN[run.data_kind](run, plan, liked, original, new_name, description, repeat)


# ---- how liked samples join the original data, for each kind that can be rated -------------

def _join_images(run, plan: LoopPlan, liked, original, new_name: str, description: str, repeat: int):
    from .data.base import ImageData

    plan.unit = "images"
    plan.original_count = len(original)
    images = _liked_images(run, liked, tuple(original.images.shape[1:]), plan.skipped)
    plan.used, plan.added = len(images), len(images) * repeat
    if original.labels is not None:
        plan.notes.append("Generated images have no class, so the new set has no labels")
    if not images:
        return plan, None
    liked_images = torch.stack(images).repeat(repeat, 1, 1, 1)                 # (used * repeat, C, H, W)
    return plan, ImageData(new_name, torch.cat([original.images, liked_images]), description=description)


def _join_texts(run, plan: LoopPlan, liked, original, new_name: str, description: str, repeat: int):
    from .data.base import TextData

    texts = _liked_texts(liked)
    if original.mode == "lines":
        plan.unit = "lines"
        items = [line for line in original.text.split("\n") if line]
        plan.original_count = len(items)
        known, new = set(items), []
        for item in _line_items(texts):
            if item in known:
                plan.skipped["already in the data set"] = plan.skipped.get("already in the data set", 0) + 1
                continue
            known.add(item)
            new.append(item)
        plan.used, plan.added = len(new), len(new) * repeat
        plan.notes.append("Liked lines go before the original lines, so they are trained on "
                          "(the last 10% of lines is held out for validation)")
        data = TextData(new_name, "\n".join(new * repeat + items), mode="lines",
                        description=description) if new else None
        return plan, data
    plan.unit = "characters"
    plan.original_count = len(original.text)
    passages = [t.strip() for t in texts if t.strip()]
    plan.used = len(passages)
    plan.notes.append("Liked passages go before the original text, so they are trained on "
                      "(the last 10% of the text is held out for validation)")
    if not passages:
        return plan, None
    text = "\n\n".join(passages * repeat + [original.text])
    plan.added = len(text) - len(original.text)
    return plan, TextData(new_name, text, mode="stream", description=description)


def _join_rows(run, plan: LoopPlan, liked, original, new_name: str, description: str, repeat: int):
    import pandas as pd

    from .data.base import TableData

    plan.unit = "rows"
    frame = original.frame
    plan.original_count = len(frame)
    rows = _liked_rows(liked)
    plan.used, plan.added = len(rows), len(rows) * repeat
    if not rows:
        return plan, None
    extra = pd.DataFrame(rows)
    missing = [c for c in frame.columns if c not in extra.columns]
    if missing:
        raise UserError(f"the liked rows lack the column(s) {', '.join(map(str, missing))}; was the data set "
                        f"{run.dataset!r} replaced after the run? Rate new rows from a run on the current data")
    extra = extra[list(frame.columns)]
    for col in frame.columns:
        kind = original.column_types.get(col)
        if kind == "numeric":
            values = pd.to_numeric(extra[col], errors="coerce")
            extra[col] = values.round().astype(frame[col].dtype) if pd.api.types.is_integer_dtype(frame[col].dtype) \
                and values.notna().all() else values
        elif kind == "boolean":
            extra[col] = extra[col].map(lambda v: str(v).strip().lower() in {"1", "true", "yes"}).astype(frame[col].dtype)
        else:
            extra[col] = extra[col].astype(str)
    data = TableData(new_name, pd.concat([frame] + [extra] * repeat, ignore_index=True), dict(original.column_types),
                     original.label_column, description=description)
    return plan, data


_JOIN = {"image": _join_images, "text": _join_texts, "table": _join_rows}


def loop_plan(run_id: str, name: str | None = None, store: RunStore | None = None, repeat: int = 1,
              keep_original: int | None = None, actor: Actor = LOCAL) -> LoopPlan:
    """What a data set made from this run's liked samples would contain."""
    return _build(run_id, _store(store), name, repeat, keep_original, actor)[0]


def make_dataset_from_liked(run_id: str, name: str | None = None, store: RunStore | None = None, repeat: int = 1,
                            keep_original: int | None = None, actor: Actor = LOCAL):
    """Save the original data plus the liked samples (each ``repeat`` times, so a
    handful of them weighs something against thousands of originals) as a new
    data set; returns (its :class:`~aigc_core.data.catalog.DatasetInfo`, the
    :class:`LoopPlan`)."""
    store = _store(store)
    if name is not None:
        name = check_name(name)
    plan, data = _build(run_id, store, name, repeat, keep_original, actor)
    if data is None:
        if plan.notes and plan.kind not in RATEABLE_KINDS:
            raise UserError(plan.notes[0])
        if plan.liked and not plan.used:
            raise UserError("none of the liked samples can be added (" +
                            "; ".join(f"{n}: {why}" for why, n in plan.skipped.items()) + ")")
        raise UserError("no liked samples yet: give some samples a thumbs up first")
    info = save_uploaded(data, extra_meta={"derived_from": plan.dataset, "liked_from_run": run_id,
                                           "liked_added": plan.used, "liked_repeat": plan.repeat}, actor=actor)
    return info, plan


def row_dict(frame, index: int) -> dict:
    """Row ``index`` of a DataFrame as plain JSON values (numpy scalars to Python)."""
    return json.loads(frame.iloc[[index]].to_json(orient="records", date_format="iso"))[0]
