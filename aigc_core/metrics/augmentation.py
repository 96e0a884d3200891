"""The augmentation study the source describes: do synthetic rows help a
downstream model?

The source's e-commerce recommender: user-behaviour columns are modelled, a
GAN makes new rows, real and synthetic rows are merged, the model is
retrained, and accuracy, recall and F1 are compared with the real-only model.
Done honestly:

1. the real rows are split into training and test rows **before** the
   generator trains (the table trainers split at set-up and keep the split in
   every checkpoint), so the generator never sees a test row;
2. the downstream model (a random forest, the same one every time) is trained
   on the real training rows alone, and on the real training rows plus
   synthetic rows, for several amounts of synthetic rows (0.5x, 1x, 2x the
   real training rows);
3. both are scored on the same real test rows: accuracy, precision, recall
   and F1. With two classes, precision, recall and F1 are those of the
   positive class (``True``/``1``/``yes``, else the rarer class: the buyers,
   for a purchase model); with more, their macro averages;
4. a small-real-data setting, a tenth of the training rows (at least 30),
   alone and with synthetic rows added (as many as the full training set),
   where augmentation should help most. The generator learnt from all the
   training rows, so this shows how much of that the synthetic rows carry to
   a model that had only a few real ones.

As a check on step 1, ``aug_test_copy_rate`` is the share of test rows that
appear verbatim among as many synthetic rows as there are real training rows;
``aug_test_copy_rate_chance`` is the same share among the real training rows
(duplicates that exist anyway, common in tables of small whole numbers).
A generator that had seen the test rows would copy far more of them.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pandas as pd

from ..errors import UserError

AMOUNTS = (0.5, 1.0, 2.0)
SMALL_SHARE = 0.1
SMALL_MIN = 30
MAX_SYNTH_ROWS = 20_000
METRICS = ("accuracy", "precision", "recall", "f1")
#: what the downstream model is for, on the built-in tables the source's story fits
TASKS = {
    "ecommerce": "Purchase model behind the recommender: predict from a session's views, searches, cart adds, "
                 "time, device and visits whether it ends in a purchase (whom to recommend to).",
}
_POSITIVE = ("true", "1", "yes", "y")


def amount_key(amount: float) -> str:
    """0.5 -> "0_5x", 2.0 -> "2x" (JSON keys without dots)."""
    return f"{amount:g}x".replace(".", "_")


def _downstream(seed: int):
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=100, min_samples_leaf=2, random_state=seed, n_jobs=1)


def _positive_class(labels: pd.Series) -> str | None:
    """The class precision and recall are about when there are two: a
    true/yes/1 value, else the rarer one."""
    from .tabular import _as_text

    values = _as_text(labels.dropna())
    classes = sorted(values.unique())
    if len(classes) != 2:
        return None
    for c in classes:
        if c.strip().lower() in _POSITIVE:
            return c
    counts = values.value_counts()
    return str(counts.index[-1])


def score_model(train: pd.DataFrame, test: pd.DataFrame, label: str, types: dict[str, str],
                positive: str | None, seed: int = 0) -> dict[str, float]:
    """Accuracy, precision, recall and F1 on ``test`` of the downstream model fitted on ``train``."""
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support
    from sklearn.pipeline import make_pipeline

    from .tabular import _as_text, _feature_encoder, _features

    features = [c for c in types if c != label]
    y_train, y_test = _as_text(train[label]).to_numpy(), _as_text(test[label]).to_numpy()
    if len(np.unique(y_train)) < 2:
        predicted = np.full(len(test), y_train[0] if len(y_train) else "")
    else:
        model = make_pipeline(_feature_encoder(features, types), _downstream(seed))
        model.fit(_features(train, features, types), y_train)
        predicted = model.predict(_features(test, features, types))
    if positive is not None:
        p, r, f, _ = precision_recall_fscore_support(y_test, predicted, pos_label=positive, average="binary",
                                                     zero_division=0)
    else:
        p, r, f, _ = precision_recall_fscore_support(y_test, predicted, average="macro", zero_division=0)
    return {"accuracy": float(accuracy_score(y_test, predicted)), "precision": float(p), "recall": float(r),
            "f1": float(f)}


def _small_sample(frame: pd.DataFrame, label: str, seed: int) -> pd.DataFrame:
    from .tabular import _small_sample as stratified

    return stratified(frame, label, max(SMALL_MIN, int(SMALL_SHARE * len(frame))), seed)


def _copy_rate(rows: pd.DataFrame, pool: pd.DataFrame, columns: list[str]) -> float:
    from .tabular import _row_keys

    if not len(rows) or not len(pool):
        return 0.0
    return float(_row_keys(rows, columns).isin(set(_row_keys(pool, columns))).mean())


def augmentation_study(real_train: pd.DataFrame, real_test: pd.DataFrame, synthesize: Callable[[int, int], pd.DataFrame],
                       label: str, types: dict[str, str], amounts=AMOUNTS, seed: int = 0,
                       task: str | None = None) -> dict[str, Any]:
    """The study on a given split. ``synthesize(n, seed)`` returns ``n``
    synthetic rows from a generator that was trained on ``real_train`` only.

    Returns the flat keys (``aug_real_accuracy`` ... ``aug_mixed_f1`` at 1x,
    ``aug_mixed_<amount>_<metric>`` per amount, ``aug_small_real_<metric>``,
    ``aug_small_mixed_<metric>``, row counts and the copy check) and, under
    ``details``, the same as a table for a page."""
    if label not in real_train.columns:
        raise UserError(f"the augmentation study needs a label column; {label!r} is not in the table")
    if not len(real_test):
        raise UserError("the augmentation study needs held-out real rows; train with holdout above 0")
    if real_train[label].nunique() < 2:
        raise UserError(f"the training rows have only one value of {label!r}; there is nothing to predict")
    types = {c: t for c, t in types.items() if c in real_train.columns}
    columns = list(types)
    positive = _positive_class(real_train[label])
    biggest = max(1, min(MAX_SYNTH_ROWS, round(max(amounts) * len(real_train))))
    synth = synthesize(biggest, seed)[columns].reset_index(drop=True)
    out: dict[str, Any] = {}
    real = score_model(real_train, real_test, label, types, positive, seed)
    rows = [{"setting": "real training rows only", "real_rows": len(real_train), "synthetic_rows": 0, **real}]
    for metric, value in real.items():
        out[f"aug_real_{metric}"] = value
    for amount in amounts:
        k = max(1, min(len(synth), round(amount * len(real_train))))
        mixed = score_model(pd.concat([real_train[columns], synth.iloc[:k]], ignore_index=True), real_test, label,
                            types, positive, seed)
        rows.append({"setting": f"real + {amount:g}x synthetic", "real_rows": len(real_train), "synthetic_rows": k,
                     **mixed})
        for metric, value in mixed.items():
            out[f"aug_mixed_{amount_key(amount)}_{metric}"] = value
            if amount == 1.0:
                out[f"aug_mixed_{metric}"] = value
    small = _small_sample(real_train[columns], label, seed)
    k = max(1, min(len(synth), len(real_train)))
    small_real = score_model(small, real_test, label, types, positive, seed)
    small_mixed = score_model(pd.concat([small, synth.iloc[:k]], ignore_index=True), real_test, label, types,
                              positive, seed)
    rows.append({"setting": "small real set only", "real_rows": len(small), "synthetic_rows": 0, **small_real})
    rows.append({"setting": "small real set + synthetic", "real_rows": len(small), "synthetic_rows": k,
                 **small_mixed})
    for metric in METRICS:
        out[f"aug_small_real_{metric}"] = small_real[metric]
        out[f"aug_small_mixed_{metric}"] = small_mixed[metric]
    out.update(aug_train_rows=float(len(real_train)), aug_test_rows=float(len(real_test)),
               aug_small_rows=float(len(small)),
               # as many synthetic rows as real training rows, so the two copy rates search pools of one size
               aug_test_copy_rate=_copy_rate(real_test, synth.iloc[:len(real_train)], columns),
               aug_test_copy_rate_chance=_copy_rate(real_test, real_train, columns))
    out["details"] = {"task": task or f"Predict {label!r} from the other columns.", "label": label,
                      "positive_class": positive, "averaging": "positive class" if positive else "macro",
                      "model": "random forest (100 trees)", "table": rows}
    return out


def run_study(trainer, seed: int = 0, amounts=AMOUNTS) -> dict[str, Any]:
    """The study for a trained table run: its own split (made before it
    trained, kept in its checkpoint) and its own synthetic rows."""
    train_rows, test_rows = np.asarray(trainer.train_rows), np.asarray(trainer.test_rows)
    if np.intersect1d(train_rows, test_rows).size:
        raise UserError("this run's training and test rows overlap, so the study would test on rows the "
                        "generator saw; train the run again")
    label = getattr(trainer, "label", None)
    if not label:
        raise UserError("the augmentation study needs a label column; choose one when importing the table")
    task = TASKS.get(getattr(trainer.data, "name", ""))
    return augmentation_study(trainer.real_train, trainer.real_test, lambda n, s: trainer.sample(n, s), label,
                              trainer.types, amounts=amounts, seed=seed, task=task)


def augmentation_scores(trainer, seed: int = 0) -> dict[str, float]:
    """Only the flat numbers of :func:`run_study` (for ``eval --json``);
    empty when the run has no label or no held-out rows."""
    if not getattr(trainer, "label", None) or not len(getattr(trainer, "test_rows", [])):
        return {}
    try:
        study = run_study(trainer, seed)
    except UserError:
        return {}
    return {k: float(v) for k, v in study.items() if k != "details"}


def headline(metrics: dict, dataset: str | None = None, label: str | None = None) -> dict | None:
    """The study as a table for a page, from a run's stored numbers (no
    refitting): ``task`` (what the downstream model is for), ``rows`` (one
    per setting: setting, real and synthetic rows, accuracy, precision,
    recall, F1) and ``note`` (the split and the copy check in words); None
    when the run has no study (no label, no held-out rows, not a table)."""
    if "aug_real_accuracy" not in metrics:
        return None
    train, small = int(metrics.get("aug_train_rows", 0)), int(metrics.get("aug_small_rows", 0))
    settings = [("real training rows only", "aug_real_", train, 0)]
    settings += [(f"real + {a:g}x synthetic", f"aug_mixed_{amount_key(a)}_", train, round(a * train)) for a in AMOUNTS]
    settings += [("small real set only", "aug_small_real_", small, 0),
                 ("small real set + synthetic", "aug_small_mixed_", small, train)]
    rows = [{"setting": name, "real_rows": real, "synthetic_rows": synth,
             **{m: float(metrics[prefix + m]) for m in METRICS}}
            for name, prefix, real, synth in settings if f"{prefix}accuracy" in metrics]
    task = TASKS.get(dataset or "") or (f"Predict {label!r} from the other columns." if label else
                                       "Predict the label column from the other columns.")
    note = (f"Every model is scored on the same {int(metrics.get('aug_test_rows', 0))} real test rows, split off "
            "before the generator trained. Test rows found among the synthetic rows: "
            f"{metrics.get('aug_test_copy_rate', 0.0):.1%} (among the real training rows: "
            f"{metrics.get('aug_test_copy_rate_chance', 0.0):.1%}).")
    return {"task": task, "rows": rows, "note": note}


def _info(label: str, better: str | None, how: str) -> dict:
    return {"label": label, "better": better, "how": how}


METRIC_INFO: dict[str, dict] = {}
for _metric, _name in (("accuracy", "accuracy"), ("precision", "precision"), ("recall", "recall"), ("f1", "F1")):
    METRIC_INFO[f"aug_real_{_metric}"] = _info(
        f"Downstream {_name}, real rows only", None,
        f"The downstream model (random forest) trained on the real training rows only, its {_name} on the real "
        "test rows the generator never saw (positive class for two classes, macro average otherwise).")
    METRIC_INFO[f"aug_mixed_{_metric}"] = _info(
        f"Downstream {_name}, real + synthetic", "higher",
        f"The same model trained on the real training rows plus as many synthetic rows, its {_name} on the same "
        "real test rows; above the real-only figure means the synthetic rows helped.")
    METRIC_INFO[f"aug_small_real_{_metric}"] = _info(
        f"Downstream {_name}, small real set", None,
        f"The downstream model trained on a tenth of the real training rows (at least 30), its {_name}.")
    METRIC_INFO[f"aug_small_mixed_{_metric}"] = _info(
        f"Downstream {_name}, small real set + synthetic", "higher",
        f"The same small real set plus as many synthetic rows as the full training set, its {_name}.")
    for _amount in AMOUNTS:
        METRIC_INFO[f"aug_mixed_{amount_key(_amount)}_{_metric}"] = _info(
            f"Downstream {_name}, real + {_amount:g}x synthetic", "higher",
            f"The downstream model trained on the real training rows plus {_amount:g} times as many synthetic rows, "
            f"its {_name} on the real test rows.")
METRIC_INFO["aug_train_rows"] = _info("Real training rows (study)", None,
                                      "Real rows the generator and the downstream model trained on.")
METRIC_INFO["aug_test_rows"] = _info("Real test rows (study)", None,
                                     "Real rows split off before the generator trained; every model is scored on them.")
METRIC_INFO["aug_small_rows"] = _info("Small real set (study)", None,
                                      "Real training rows in the small-real-data setting.")
METRIC_INFO["aug_test_copy_rate_chance"] = _info(
    "Test rows also among the training rows", None,
    "Share of the real test rows that appear verbatim among the real training rows: the copy rate to expect anyway.")
METRIC_INFO["aug_test_copy_rate"] = _info(
    "Test rows copied by the generator", "lower",
    "Share of the real test rows that appear verbatim among the synthetic rows; compare with "
    "aug_test_copy_rate_chance (the same share among the real training rows). Much higher would mean the "
    "generator saw test rows.")
