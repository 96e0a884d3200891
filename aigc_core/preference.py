"""A small preference model: what share of fresh samples would this person like?

After "Improve with my ratings" the question is whether the model now makes
more of what the person liked. Nobody can rate 400 fresh samples twice, so a
stand-in learns their taste from the ratings they gave:

    p(like | x) = sigmoid(w . phi(x) + b)        (logistic regression)

where phi(x) is an embedding of the sample:

- images: the data set's own feature net (:mod:`aigc_core.metrics.features`), 64 numbers
  standardised on real images (the same space FID is measured in);
- text: counts of the character 1- to 3-grams, hashed into 4,096 slots and
  scaled to unit length;
- table rows: numbers standardised and categories one-hot, as the table
  report's classifiers see them.

The share it expects the person to like is the mean of p(like | x) over
fresh samples. Its accuracy on a quarter of the ratings it never fitted
(against always guessing the more common answer) and its AUC there (how
often it ranks a liked sample above a not-liked one; 0.5 is chance) are
reported beside every figure, so nobody reads more into it than the ratings
support.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from .errors import UserError
from .runs.store import RunStore

#: the fewest liked and not-liked ratings the model is fitted on
MIN_EACH = 4
HELD_OUT = 0.25
SEED = 0
TEXT_FEATURES = 4096


@dataclass
class PreferenceModel:
    """A fitted preference model and how far to trust it."""

    kind: str
    embed: Callable[[Any], np.ndarray]
    model: Any
    rated: int
    liked: int
    held_out: int
    held_out_accuracy: float
    baseline_accuracy: float
    held_out_auc: float | None = None
    skipped: dict[str, int] = field(default_factory=dict)

    def probabilities(self, samples) -> np.ndarray:
        """p(like | x) per sample."""
        features = self.embed(samples)
        if not len(features):
            return np.zeros(0)
        return self.model.predict_proba(features)[:, 1]

    def expected_share(self, samples) -> float:
        """The share of ``samples`` the person is expected to like: the mean of p(like | x)."""
        p = self.probabilities(samples)
        return float(p.mean()) if len(p) else 0.0

    def facts(self) -> dict[str, float]:
        out = {"preference_held_out_accuracy": self.held_out_accuracy,
               "preference_baseline_accuracy": self.baseline_accuracy,
               "preference_rated": float(self.rated), "preference_liked": float(self.liked),
               "preference_held_out": float(self.held_out)}
        if self.held_out_auc is not None:
            out["preference_held_out_auc"] = self.held_out_auc
        return out

    def describe(self) -> str:
        return (f"preference model fitted on {self.rated} ratings ({self.liked} liked); it predicts "
                f"{self.held_out_accuracy:.0%} of {self.held_out} held-out ratings right (always guessing the more "
                f"common answer: {self.baseline_accuracy:.0%})"
                + (f"; it ranks a held-out liked sample above a not-liked one {self.held_out_auc:.0%} of the time "
                   "(AUC; 50% is chance)" if self.held_out_auc is not None else ""))


# ---- embeddings --------------------------------------------------------------------------

def image_embedder(data) -> Callable:
    from .metrics.features import feature_net, features_of, one_thread

    net = feature_net(data)

    def embed(images: torch.Tensor) -> np.ndarray:
        with one_thread():
            return features_of(net, images.float()).numpy()
    return embed


def text_embedder() -> Callable:
    from sklearn.feature_extraction.text import HashingVectorizer

    vectoriser = HashingVectorizer(analyzer="char", ngram_range=(1, 3), n_features=TEXT_FEATURES,
                                   alternate_sign=False, norm="l2", lowercase=False)
    return lambda texts: vectoriser.transform(list(texts)).toarray()


def table_embedder(data) -> Callable:
    import pandas as pd

    from .metrics.tabular import _feature_encoder, _features

    types = {c: t for c, t in data.column_types.items() if t in ("numeric", "categorical", "boolean")}
    columns = list(types)
    encoder = _feature_encoder(columns, types).fit(_features(data.frame, columns, types))

    def embed(rows) -> np.ndarray:
        frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
        out = encoder.transform(_features(frame[columns], columns, types))
        return out.toarray() if hasattr(out, "toarray") else np.asarray(out)
    return embed


def embedder_for(kind: str, data) -> Callable:
    if kind == "image":
        return image_embedder(data)
    if kind == "text":
        return text_embedder()
    if kind == "table":
        return table_embedder(data)
    raise UserError(f"{kind} runs have no preference model; it exists for images, text and tables")


# ---- the rated samples ---------------------------------------------------------------------

def rated_samples(run_id: str, store: RunStore | None = None, human_only: bool = False):
    """(samples, ratings, skipped) of a run's rated samples.

    Liked images are read from the pixels kept when they were liked; other
    images are made again from their checkpoint, seed and index (a
    checkpoint no longer kept is counted in ``skipped``). Text and rows come
    from the ratings themselves. ``human_only`` leaves out ratings made by a
    rule."""
    from PIL import Image

    store = store or RunStore()
    run = store.get(run_id)
    rows = [r for r in store.ratings(run_id) if not (human_only and r["payload"].get("rule"))]
    skipped: dict[str, int] = {}
    if run.data_kind == "text":
        kept = [r for r in rows if r["payload"].get("text") is not None]
        return [r["payload"]["text"] for r in kept], [int(r["rating"]) for r in kept], skipped
    if run.data_kind == "table":
        import pandas as pd

        kept = [r for r in rows if r["payload"].get("row")]
        return pd.DataFrame([r["payload"]["row"] for r in kept]), [int(r["rating"]) for r in kept], skipped
    if run.data_kind != "image":
        raise UserError(f"{run.data_kind} runs have no ratings to learn from")
    images: dict[str, torch.Tensor] = {}
    remake: dict[tuple, list[dict]] = {}
    for r in rows:
        p = r["payload"]
        path = run.folder / p["file"] if p.get("file") else None
        if path is not None and path.is_file():
            with Image.open(path) as im:
                array = np.asarray(im.convert("L" if im.mode in ("L", "1", "I") else "RGB")).copy()
            pixels = torch.from_numpy(array).float().div(255.0)
            images[r["item"]] = pixels[None] if pixels.dim() == 2 else pixels.permute(2, 0, 1)
        else:
            key = (int(p.get("step", -1)), int(p.get("seed", 0)), tuple(sorted((p.get("knobs") or {}).items())))
            remake.setdefault(key, []).append(r)
    for (step, seed, knobs), group in remake.items():
        trainer = _trainer_at(run, step)
        if trainer is None:
            why = "their checkpoint is no longer kept"
            skipped[why] = skipped.get(why, 0) + len(group)
            continue
        count = max(int(r["payload"]["index"]) for r in group) + 1
        with torch.no_grad():
            made = trainer.sample(count, seed, **dict(knobs)).float().cpu()
        for r in group:
            images[r["item"]] = made[int(r["payload"]["index"])]
    kept = [r for r in rows if r["item"] in images]
    shapes = {tuple(images[r["item"]].shape) for r in kept}
    if len(shapes) > 1:  # a liked PNG read with other channels than the samples: use the common shape
        common = max(shapes, key=lambda s: sum(tuple(images[r["item"]].shape) == s for r in kept))
        kept = [r for r in kept if tuple(images[r["item"]].shape) == common]
    stacked = torch.stack([images[r["item"]] for r in kept]) if kept else torch.zeros(0)
    return stacked, [int(r["rating"]) for r in kept], skipped


def _trainer_at(run, step: int):
    from .runs.checkpoint import load_weights
    from .registry import build_trainer

    path = run.folder.checkpoint(step)
    if step < 0 or not path.exists():
        return None
    try:
        state = load_weights(path)[0]
    except UserError:  # a damaged checkpoint: its samples cannot be made again
        return None
    _, _, trainer = build_trainer(run.config, device=torch.device("cpu"))
    trainer.load_state(state, weights_only=True)
    trainer.train_mode(False)
    return trainer


# ---- fitting -------------------------------------------------------------------------------

def fit_preference(run_id: str, store: RunStore | None = None, reference=None,
                   human_only: bool = False) -> PreferenceModel:
    """Fit the preference model on a run's ratings.

    A quarter of the ratings (stratified, seeded) is held out to measure it;
    the model that scores samples is then refitted on all of them.
    ``reference``: the data set whose feature space or columns embed the
    samples (default: the one :func:`aigc_core.rating_rules.reference_data`
    picks)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    from .rating_rules import reference_data

    store = store or RunStore()
    run = store.get(run_id)
    samples, ratings, skipped = rated_samples(run_id, store, human_only)
    y = np.asarray(ratings, dtype=int)
    liked, disliked = int(y.sum()), int(len(y) - y.sum())
    if liked < MIN_EACH or disliked < MIN_EACH:
        raise UserError(f"the preference model needs at least {MIN_EACH} liked and {MIN_EACH} not-liked samples; "
                        f"run {run.name} has {liked} liked and {disliked} not liked"
                        + (f" ({sum(skipped.values())} more could not be made again)" if skipped else ""))
    reference = reference if reference is not None else (reference_data(run, store) if run.data_kind == "image"
                                                         else _own_data(run))
    embed = embedder_for(run.data_kind, reference)
    x = embed(samples)
    idx = np.arange(len(y))
    fit_idx, test_idx = train_test_split(idx, test_size=HELD_OUT, random_state=SEED, stratify=y)

    def make():
        return LogisticRegression(max_iter=2000, C=1.0)
    held = make().fit(x[fit_idx], y[fit_idx])
    accuracy = float((held.predict(x[test_idx]) == y[test_idx]).mean())
    baseline = float((y[test_idx] == int(y[fit_idx].mean() >= 0.5)).mean())
    auc = None
    if 0 < y[test_idx].sum() < len(test_idx):
        from sklearn.metrics import roc_auc_score

        auc = float(roc_auc_score(y[test_idx], held.predict_proba(x[test_idx])[:, 1]))
    model = make().fit(x, y)
    return PreferenceModel(kind=run.data_kind, embed=embed, model=model, rated=len(y), liked=liked,
                           held_out=len(test_idx), held_out_accuracy=accuracy, baseline_accuracy=baseline,
                           held_out_auc=auc,
                           skipped=skipped)


def _own_data(run):
    from .data.catalog import load_dataset

    return load_dataset(run.dataset)
