"""How faithful, useful and private synthetic rows are, compared with real ones.

Three reports, each a plain dict of numbers and chart data:

- :func:`fidelity` - does each column have the right shape, and do pairs of
  columns move together as they do in the real table?
- :func:`usefulness` - do classifiers trained on synthetic rows predict real
  rows as well as classifiers trained on real rows ("train on synthetic, test
  on real", TSTR)? And does adding synthetic rows to a small real training set
  help?
- :func:`privacy` - how close is each synthetic row to its nearest real row,
  and how many are exact copies?

:func:`tabular_report` runs all three and puts the headline numbers under flat
keys (``fidelity``, ``tstr_accuracy_ratio``, ``dcr_median``,
``exact_copy_rate``, ...) for ``eval --json``; :func:`report_html` turns a
report into one self-contained HTML page (tables and inline PNG charts, works
offline).

Evaluating a table run (``eval``, the end-of-run numbers): the tabular
trainer draws synthetic rows (seed 0), calls :func:`tabular_report` with the
run's real training rows (held-out rows as the test set and privacy
yardstick) and keeps :func:`report_scores`, only floats, under these keys:

- ``fidelity`` (0..1, higher better): mean of ``column_shapes`` and
  ``pair_trends``; ``column_shapes``: mean per column of 1 - KS statistic
  (numbers) or 1 - total variation distance (categories); ``pair_trends``:
  mean per pair of columns of 1 - |r_real - r_synth| / 2 or 1 - TV distance of
  the joint shares.
- with a label column and held-out rows: ``trtr_accuracy``,
  ``tstr_accuracy`` (accuracy on held-out real rows of classifiers trained on
  real / synthetic rows, mean of logistic regression and random forest),
  ``tstr_accuracy_ratio`` (TSTR / TRTR; 1 = synthetic rows teach as much as
  real ones; higher better), ``tstr_accuracy_ratio_lr``,
  ``tstr_accuracy_ratio_rf`` (per classifier), ``trtr_f1``, ``tstr_f1``,
  ``tstr_f1_ratio`` (macro F1), ``aug_small_accuracy``, ``aug_accuracy``,
  ``aug_uplift``, ``aug_f1_uplift`` (a small real set alone against the same
  set plus the synthetic rows; uplift higher better).
- privacy: ``dcr_median``, ``dcr_p05`` (distance from synthetic rows to the
  closest real training row, in standard deviations; ``holdout_dcr_median`` is
  the same for held-out real rows, the yardstick), ``exact_copy_rate``,
  ``holdout_copy_rate`` (share of rows that are exact copies of a training
  row; lower is more private).
- ``rows_real``, ``rows_synth``: how many rows were compared.
"""

from __future__ import annotations

import base64
import html
import io
import math
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFont

REAL_COLOUR = (66, 133, 244)
SYNTH_COLOUR = (244, 128, 36)
OTHER = "(other)"


# ---------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------

def _columns(types: dict[str, str], kinds: tuple[str, ...]) -> list[str]:
    return [c for c, k in types.items() if k in kinds]


def _as_text(series: pd.Series) -> pd.Series:
    """Category values as text so real and synthetic compare alike (True, 1.0 -> "1")."""
    def one(v):
        if isinstance(v, (bool, np.bool_)):
            return "True" if v else "False"
        if isinstance(v, (float, np.floating)) and float(v).is_integer():
            return str(int(v))
        return str(v)
    return series.map(one)


def _numbers(series: pd.Series) -> np.ndarray:
    return pd.to_numeric(series, errors="coerce").astype(float).to_numpy()


def _histogram_bins(real: np.ndarray, bins: int = 20) -> np.ndarray:
    """Bin edges from the real column: one bar per value for small whole-number ranges."""
    lo, hi = float(np.min(real)), float(np.max(real))
    if np.all(np.mod(real, 1) == 0) and hi - lo < bins:
        return np.arange(lo - 0.5, hi + 1.5)
    if hi == lo:
        return np.array([lo - 0.5, lo + 0.5])
    return np.linspace(lo, hi, bins + 1)


def column_histogram(real: pd.Series, synth: pd.Series, kind: str, bins: int = 20, top: int = 12) -> dict:
    """Overlaid histogram data: real and synthetic shares per bin or category."""
    if kind == "numeric":
        r, s = _numbers(real), _numbers(synth)
        r, s = r[np.isfinite(r)], s[np.isfinite(s)]
        edges = _histogram_bins(r, bins)
        rc, _ = np.histogram(np.clip(r, edges[0], edges[-1]), edges)
        sc, _ = np.histogram(np.clip(s, edges[0], edges[-1]), edges) if len(s) else (np.zeros(len(edges) - 1), None)
        return dict(kind="numeric", edges=edges.tolist(), real=(rc / max(1, rc.sum())).tolist(),
                    synth=(sc / max(1, sc.sum())).tolist())
    r, s = _as_text(real.dropna()), _as_text(synth.dropna())
    order = r.value_counts().index.tolist()
    shown = order[:top]
    rp = r.value_counts(normalize=True).reindex(shown, fill_value=0.0).tolist()
    sp = s.value_counts(normalize=True).reindex(shown, fill_value=0.0).tolist() if len(s) else [0.0] * len(shown)
    if len(order) > top or (len(s) and not set(s.unique()) <= set(shown)):
        shown.append(OTHER)
        rp.append(max(0.0, 1.0 - sum(rp)))
        sp.append(max(0.0, 1.0 - sum(sp)) if len(s) else 0.0)
    return dict(kind="categorical", labels=[str(x) for x in shown], real=rp, synth=sp)


# ---------------------------------------------------------------------------
# Fidelity
# ---------------------------------------------------------------------------

def column_shape_score(real: pd.Series, synth: pd.Series, kind: str) -> float:
    """1 - KS statistic for numbers (1 - the largest gap between the two
    cumulative distributions); 1 - total variation distance for categories
    (1 - half the summed gaps between the two sets of shares). 1 = same shape."""
    if kind == "numeric":
        from scipy.stats import ks_2samp

        r, s = _numbers(real), _numbers(synth)
        r, s = r[np.isfinite(r)], s[np.isfinite(s)]
        if not len(r) or not len(s):
            return 0.0
        return float(1.0 - ks_2samp(r, s).statistic)
    r, s = _as_text(real.dropna()), _as_text(synth.dropna())
    if not len(r) or not len(s):
        return 0.0
    p, q = r.value_counts(normalize=True), s.value_counts(normalize=True)
    cats = p.index.union(q.index)
    return float(1.0 - 0.5 * np.abs(p.reindex(cats, fill_value=0) - q.reindex(cats, fill_value=0)).sum())


def _binned(series: pd.Series, kind: str, edges: np.ndarray | None) -> pd.Series:
    if kind != "numeric":
        return _as_text(series)
    values = _numbers(series)
    return pd.Series(np.searchsorted(edges, values, side="right"), index=series.index).astype(str)


def _quantile_edges(real: pd.Series, bins: int = 10) -> np.ndarray:
    values = _numbers(real)
    return np.unique(np.quantile(values[np.isfinite(values)], np.linspace(0, 1, bins + 1)[1:-1]))


def pair_trend_score(real: pd.DataFrame, synth: pd.DataFrame, a: str, b: str, types: dict[str, str]) -> tuple[float, str]:
    """How alike two columns move together in both tables (1 = alike).

    Two numeric or yes/no columns: 1 - |r_real - r_synth| / 2 with Pearson's r
    ("correlation similarity"). Otherwise numbers are cut into ten bins at the
    real deciles and the joint shares of (a, b) are compared:
    1 - total variation distance ("contingency similarity").
    """
    ka, kb = types[a], types[b]
    if ka != "categorical" and kb != "categorical":
        def corr(f):
            x, y = _numbers(f[a]), _numbers(f[b])
            if np.std(x) == 0 or np.std(y) == 0:
                return 0.0
            return float(np.corrcoef(x, y)[0, 1])
        return float(1.0 - abs(corr(real) - corr(synth)) / 2.0), "correlation"
    ea = _quantile_edges(real[a]) if ka == "numeric" else None
    eb = _quantile_edges(real[b]) if kb == "numeric" else None

    def joint(f):
        pairs = _binned(f[a], ka, ea) + "\x1f" + _binned(f[b], kb, eb)
        return pairs.value_counts(normalize=True)
    p, q = joint(real), joint(synth)
    cats = p.index.union(q.index)
    return float(1.0 - 0.5 * np.abs(p.reindex(cats, fill_value=0) - q.reindex(cats, fill_value=0)).sum()), "contingency"


def correlation_matrix(frame: pd.DataFrame, types: dict[str, str]) -> dict:
    """Pearson's r between numeric and yes/no columns, for the heat maps."""
    cols = _columns(types, ("numeric", "boolean"))
    if len(cols) < 2:
        return dict(columns=cols, matrix=[])
    values = frame[cols].apply(_numbers).astype(float)
    return dict(columns=cols, matrix=values.corr().fillna(0.0).to_numpy().round(4).tolist())


def fidelity(real: pd.DataFrame, synth: pd.DataFrame, types: dict[str, str]) -> dict[str, Any]:
    """Column shapes, pair trends and the chart data to show them.

    ``fidelity`` = mean of ``column_shapes`` (average per-column shape score)
    and ``pair_trends`` (average pair score); each lies in 0..1, 1 = the
    synthetic table is statistically indistinguishable on these views.
    """
    cols = [c for c in types if c in real.columns and c in synth.columns]
    columns = {}
    for c in cols:
        columns[c] = dict(type=types[c], score=column_shape_score(real[c], synth[c], types[c]),
                          metric="KS complement" if types[c] == "numeric" else "TV complement",
                          histogram=column_histogram(real[c], synth[c], types[c]))
    pairs = []
    for i, a in enumerate(cols):
        for b in cols[i + 1:]:
            score, metric = pair_trend_score(real, synth, a, b, types)
            pairs.append(dict(a=a, b=b, score=score, metric=metric))
    shapes = float(np.mean([v["score"] for v in columns.values()])) if columns else 0.0
    trends = float(np.mean([p["score"] for p in pairs])) if pairs else shapes
    return dict(
        fidelity=(shapes + trends) / 2.0, column_shapes=shapes, pair_trends=trends, columns=columns, pairs=pairs,
        correlation_real=correlation_matrix(real, types), correlation_synth=correlation_matrix(synth, types),
    )


# ---------------------------------------------------------------------------
# Usefulness: train on synthetic, test on real
# ---------------------------------------------------------------------------

def _classifiers(seed: int) -> dict:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    return {
        "logistic_regression": lambda: LogisticRegression(max_iter=2000),
        "random_forest": lambda: RandomForestClassifier(n_estimators=100, min_samples_leaf=2, random_state=seed, n_jobs=1),
    }


def _feature_encoder(features: list[str], types: dict[str, str]):
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    num = [c for c in features if types[c] != "categorical"]
    cat = [c for c in features if types[c] == "categorical"]
    parts = []
    if num:
        parts.append(("numbers", StandardScaler(), num))
    if cat:
        parts.append(("categories", OneHotEncoder(handle_unknown="ignore"), cat))
    return ColumnTransformer(parts)


def _features(frame: pd.DataFrame, features: list[str], types: dict[str, str]) -> pd.DataFrame:
    out = {}
    for c in features:
        out[c] = _as_text(frame[c]).astype(object) if types[c] == "categorical" else _numbers(frame[c])
    return pd.DataFrame(out, index=frame.index)


def _fit_score(make, train: pd.DataFrame, test: pd.DataFrame, label: str, types: dict[str, str]) -> dict[str, float]:
    """Accuracy and macro F1 on ``test`` of a classifier fitted on ``train``."""
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.pipeline import make_pipeline

    features = [c for c in types if c != label]
    y_train, y_test = _as_text(train[label]).to_numpy(), _as_text(test[label]).to_numpy()
    if len(np.unique(y_train)) < 2:
        # one class only (a collapsed generator): the classifier can only say that class
        predicted = np.full(len(test), y_train[0] if len(y_train) else "")
    else:
        model = make_pipeline(_feature_encoder(features, types), make())
        model.fit(_features(train, features, types), y_train)
        predicted = model.predict(_features(test, features, types))
    return dict(accuracy=float(accuracy_score(y_test, predicted)),
                f1=float(f1_score(y_test, predicted, average="macro", zero_division=0)))


def _small_sample(frame: pd.DataFrame, label: str, size: int, seed: int) -> pd.DataFrame:
    """A stratified random subset of ``size`` rows (each class kept when possible)."""
    if size >= len(frame):
        return frame
    rng = np.random.default_rng(seed)
    y = _as_text(frame[label]).to_numpy()
    picked = []
    for cls in np.unique(y):  # at least one row per class, then fill at random
        picked.append(rng.choice(np.flatnonzero(y == cls)))
    rest = np.setdiff1d(np.arange(len(frame)), picked)
    picked += list(rng.choice(rest, size=max(0, size - len(picked)), replace=False))
    return frame.iloc[np.sort(picked)]


def usefulness(real_train: pd.DataFrame, real_test: pd.DataFrame, synth: pd.DataFrame, label: str,
               types: dict[str, str], small_share: float = 0.1, small_min: int = 30, seed: int = 0) -> dict[str, Any]:
    """TSTR against TRTR, and augmentation uplift, with two classifiers.

    - TRTR: a classifier trained on the real training rows, tested on held-out
      real rows; TSTR: the same classifier trained on the synthetic rows,
      tested on the same real rows. ``tstr_accuracy_ratio`` = TSTR accuracy /
      TRTR accuracy (1 = synthetic rows teach as much as real ones).
    - Augmentation: a small real training set (``small_share`` of the real
      training rows, at least ``small_min``) alone, against the same rows plus
      the synthetic rows. ``aug_uplift`` = accuracy with - accuracy without.
      (The generator itself was fitted on all real training rows, so this
      measures how much of that knowledge the synthetic rows carry over.)

    Accuracy is the share of test rows predicted right; F1 is the macro
    average over classes of 2PR/(P+R), which a majority-class guess cannot
    score well on.
    """
    if label not in real_train.columns or label not in synth.columns:
        return {}
    types = {c: t for c, t in types.items() if c in real_train.columns}
    per, small = {}, _small_sample(real_train, label, max(small_min, int(small_share * len(real_train))), seed)
    augmented = pd.concat([small, synth[list(small.columns)]], ignore_index=True)
    for name, make in _classifiers(seed).items():
        trtr = _fit_score(make, real_train, real_test, label, types)
        tstr = _fit_score(make, synth, real_test, label, types)
        alone = _fit_score(make, small, real_test, label, types)
        with_synth = _fit_score(make, augmented, real_test, label, types)
        per[name] = dict(
            trtr_accuracy=trtr["accuracy"], tstr_accuracy=tstr["accuracy"], trtr_f1=trtr["f1"], tstr_f1=tstr["f1"],
            accuracy_ratio=tstr["accuracy"] / trtr["accuracy"] if trtr["accuracy"] > 0 else 0.0,
            f1_ratio=tstr["f1"] / trtr["f1"] if trtr["f1"] > 0 else 0.0,
            small_accuracy=alone["accuracy"], augmented_accuracy=with_synth["accuracy"],
            small_f1=alone["f1"], augmented_f1=with_synth["f1"],
        )

    def mean(key):
        return float(np.mean([v[key] for v in per.values()]))
    return dict(
        label=label, classifiers=per, small_rows=len(small), train_rows=len(real_train), test_rows=len(real_test),
        synth_rows=len(synth), trtr_accuracy=mean("trtr_accuracy"), tstr_accuracy=mean("tstr_accuracy"),
        tstr_accuracy_ratio=mean("accuracy_ratio"), trtr_f1=mean("trtr_f1"), tstr_f1=mean("tstr_f1"),
        tstr_f1_ratio=mean("f1_ratio"), aug_small_accuracy=mean("small_accuracy"),
        aug_accuracy=mean("augmented_accuracy"), aug_uplift=mean("augmented_accuracy") - mean("small_accuracy"),
        aug_f1_uplift=mean("augmented_f1") - mean("small_f1"),
    )


# ---------------------------------------------------------------------------
# Privacy: distance to the closest real row
# ---------------------------------------------------------------------------

def _distance_space(real: pd.DataFrame, types: dict[str, str]):
    """A function mapping a table to points where one standard deviation of a
    number, or a different category, each count as distance 1."""
    num = _columns(types, ("numeric", "boolean"))
    cat = _columns(types, ("categorical",))
    mean = {c: np.nanmean(_numbers(real[c])) for c in num}
    std = {c: (np.nanstd(_numbers(real[c])) or 1.0) for c in num}
    cats = {c: sorted(_as_text(real[c]).unique()) for c in cat}

    def encode(frame: pd.DataFrame) -> np.ndarray:
        parts = [((_numbers(frame[c]) - mean[c]) / std[c])[:, None] for c in num]
        for c in cat:
            text = _as_text(frame[c]).to_numpy()
            # one-hot scaled so two different categories are distance 1 apart
            parts.append((text[:, None] == np.asarray(cats[c])[None, :]).astype(float) / math.sqrt(2))
        return np.nan_to_num(np.hstack(parts)) if parts else np.zeros((len(frame), 0))
    return encode


def _row_keys(frame: pd.DataFrame, cols: list[str]) -> pd.Series:
    text = {c: _as_text(frame[c].map(lambda v: round(v, 9) if isinstance(v, (float, np.floating)) else v)) for c in cols}
    return pd.DataFrame(text, index=frame.index).agg("\x1f".join, axis=1)


def privacy(real: pd.DataFrame, synth: pd.DataFrame, types: dict[str, str], holdout: pd.DataFrame | None = None,
            max_rows: int = 5000, seed: int = 0) -> dict[str, Any]:
    """Distance from each synthetic row to its closest real row (DCR), and copies.

    Rows are placed in a space where numbers are standardised with the real
    mean and standard deviation and categories are one-hot (a different
    category counts as distance 1). ``dcr_median`` is the median distance;
    ``exact_copy_rate`` the share of synthetic rows identical to some real row.
    With ``holdout`` (real rows the generator never saw), the same numbers for
    those rows are the yardstick: synthetic rows much closer to the training
    rows than fresh real rows are a sign of memorisation.
    """
    from sklearn.neighbors import NearestNeighbors

    cols = [c for c in types if c in real.columns and c in synth.columns]
    types = {c: types[c] for c in cols}
    rng = np.random.default_rng(seed)
    if len(synth) > max_rows:
        synth = synth.iloc[np.sort(rng.choice(len(synth), max_rows, replace=False))]
    encode = _distance_space(real, types)
    index = NearestNeighbors(n_neighbors=1).fit(encode(real))
    dcr = index.kneighbors(encode(synth))[0][:, 0]
    real_keys = set(_row_keys(real, cols))
    copies = float(_row_keys(synth, cols).isin(real_keys).mean()) if len(synth) else 0.0
    out = dict(dcr_median=float(np.median(dcr)), dcr_p05=float(np.quantile(dcr, 0.05)), exact_copy_rate=copies,
               dcr=np.quantile(dcr, np.linspace(0, 1, 21)).tolist())
    if holdout is not None and len(holdout):
        hold = index.kneighbors(encode(holdout[cols]))[0][:, 0]
        out.update(holdout_dcr_median=float(np.median(hold)), holdout_dcr_p05=float(np.quantile(hold, 0.05)),
                   holdout_copy_rate=float(_row_keys(holdout, cols).isin(real_keys).mean()),
                   holdout_dcr=np.quantile(hold, np.linspace(0, 1, 21)).tolist())
    return out


# ---------------------------------------------------------------------------
# The combined report
# ---------------------------------------------------------------------------

def tabular_report(real_train: pd.DataFrame, real_test: pd.DataFrame | None, synth: pd.DataFrame,
                   types: dict[str, str], label: str | None = None, seed: int = 0) -> dict[str, Any]:
    """Fidelity, usefulness (when there is a label and held-out rows) and privacy.

    Headline numbers sit under flat keys (all floats): ``fidelity``,
    ``column_shapes``, ``pair_trends``, ``trtr_accuracy``, ``tstr_accuracy``,
    ``tstr_accuracy_ratio``, ``tstr_f1_ratio``, ``aug_uplift``,
    ``dcr_median``, ``holdout_dcr_median``, ``exact_copy_rate``,
    ``holdout_copy_rate``, ``rows_real``, ``rows_synth``. Everything for the
    charts is under ``details`` (``fidelity``, ``usefulness``, ``privacy``);
    :func:`report_scores` gives only the flat numbers.
    """
    fid = fidelity(real_train, synth, types)
    use = usefulness(real_train, real_test, synth, label, types, seed=seed) \
        if label and real_test is not None and len(real_test) and real_train[label].nunique() > 1 else {}
    priv = privacy(real_train, synth, types, holdout=real_test, seed=seed)
    flat: dict[str, Any] = dict(fidelity=fid["fidelity"], column_shapes=fid["column_shapes"], pair_trends=fid["pair_trends"])
    for key in ("trtr_accuracy", "tstr_accuracy", "tstr_accuracy_ratio", "trtr_f1", "tstr_f1", "tstr_f1_ratio",
                "aug_small_accuracy", "aug_accuracy", "aug_uplift", "aug_f1_uplift"):
        if key in use:
            flat[key] = use[key]
    for short, name in (("lr", "logistic_regression"), ("rf", "random_forest")):
        if use:
            flat[f"tstr_accuracy_ratio_{short}"] = use["classifiers"][name]["accuracy_ratio"]
    for key in ("dcr_median", "dcr_p05", "exact_copy_rate", "holdout_dcr_median", "holdout_copy_rate"):
        if key in priv:
            flat[key] = priv[key]
    flat.update(rows_real=float(len(real_train)), rows_synth=float(len(synth)))
    flat["details"] = dict(fidelity=fid, usefulness=use, privacy=priv, label=label, types=dict(types))
    return flat


def report_scores(report: dict[str, Any]) -> dict[str, float]:
    """Only the flat headline numbers of a :func:`tabular_report`."""
    return {k: float(v) for k, v in report.items() if k != "details" and isinstance(v, (int, float))}


# ---------------------------------------------------------------------------

def _font(size: int = 11):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType sizes
        return ImageFont.load_default()


def _short(text: str, n: int = 9) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _number(x: float) -> str:
    return f"{x:.0f}" if abs(x) >= 100 or float(x).is_integer() else f"{x:.3g}"


def histogram_panel(title: str, hist: dict, width: int = 240, height: int = 150) -> Image.Image:
    """One chart: real shares as solid blue bars, synthetic as orange outlines."""
    img = Image.new("RGB", (width, height), "white")
    draw, font = ImageDraw.Draw(img), _font(11)
    left, right, top, bottom = 8, width - 8, 20, height - 22
    draw.text((left, 3), _short(title, 34), fill=(30, 30, 30), font=font)
    real, synth = np.asarray(hist["real"], float), np.asarray(hist["synth"], float)
    peak = max(float(real.max(initial=0)), float(synth.max(initial=0)), 1e-9)
    n = len(real)
    slot = (right - left) / max(1, n)
    draw.line([(left, bottom), (right, bottom)], fill=(160, 160, 160))
    for i in range(n):
        x0, x1 = left + i * slot + 1, left + (i + 1) * slot - 1
        if hist["kind"] == "categorical":
            x1 = max(x0 + 1, x1 - slot * 0.15)
        hr, hs = (bottom - top) * real[i] / peak, (bottom - top) * synth[i] / peak
        if hr > 0:
            draw.rectangle([x0, bottom - hr, x1, bottom], fill=REAL_COLOUR)
        if hs > 0:
            draw.rectangle([x0, bottom - hs, x1, bottom], outline=SYNTH_COLOUR, width=2)
    if hist["kind"] == "numeric":
        edges = hist["edges"]
        draw.text((left, bottom + 4), _number(edges[0]), fill=(90, 90, 90), font=font)
        label = _number(edges[-1])
        draw.text((right - 6 * len(label), bottom + 4), label, fill=(90, 90, 90), font=font)
    else:
        step = max(1, int(math.ceil(n * 50 / (right - left))))
        for i in range(0, n, step):
            draw.text((left + i * slot + 1, bottom + 4), _short(hist["labels"][i], max(3, int(slot * step / 7))),
                      fill=(90, 90, 90), font=font)
    return img


def histogram_strip(real: pd.DataFrame, synth: pd.DataFrame, types: dict[str, str], columns: list[str],
                    width: int = 240, height: int = 150) -> Image.Image:
    """Panels side by side (with a legend) for a few columns: the film strip frame."""
    panels = [histogram_panel(c, column_histogram(real[c], synth[c], types[c]), width, height) for c in columns]
    legend_h = 18
    img = Image.new("RGB", (width * len(panels), height + legend_h), "white")
    for i, panel in enumerate(panels):
        img.paste(panel, (i * width, legend_h))
    draw, font = ImageDraw.Draw(img), _font(11)
    draw.rectangle([8, 5, 18, 13], fill=REAL_COLOUR)
    draw.text((22, 3), "real", fill=(30, 30, 30), font=font)
    draw.rectangle([60, 5, 70, 13], outline=SYNTH_COLOUR, width=2)
    draw.text((74, 3), "synthetic", fill=(30, 30, 30), font=font)
    return img


def _png_data_uri(image: Image.Image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


# ---------------------------------------------------------------------------
# HTML report
# ---------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;max-width:1100px}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:4px 8px;text-align:right}
th{background:#f5f5f5}td.l,th.l{text-align:left}.note{color:#555;font-size:.92em;max-width:900px}
.grid{display:flex;flex-wrap:wrap;gap:8px}.grid figure{margin:0}.score{font-weight:600}
"""


def _fmt(x: Any, pct: bool = False) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    if pct:
        return f"{100 * x:.1f}%"
    return f"{x:.3f}" if isinstance(x, float) else html.escape(str(x))


def _heat_table(corr: dict) -> str:
    cols, matrix = corr.get("columns", []), corr.get("matrix", [])
    if not matrix:
        return "<p class='note'>fewer than two numeric columns</p>"
    rows = ["<tr><th></th>" + "".join(f"<th>{html.escape(_short(c, 10))}</th>" for c in cols) + "</tr>"]
    for c, line in zip(cols, matrix):
        cells = []
        for v in line:
            # blue for positive, red for negative; stronger colour for stronger correlation
            a = min(1.0, abs(v))
            colour = f"rgba(66,133,244,{a:.2f})" if v >= 0 else f"rgba(219,68,55,{a:.2f})"
            cells.append(f"<td style='background:{colour}'>{v:+.2f}</td>")
        rows.append(f"<tr><th class='l'>{html.escape(_short(c, 14))}</th>" + "".join(cells) + "</tr>")
    return "<table>" + "".join(rows) + "</table>"


def report_html(report: dict[str, Any], title: str = "Synthetic table report") -> str:
    """The whole report as one HTML page: scores with their meaning, overlaid
    histograms (inline PNG), correlation heat maps, usefulness and privacy
    tables. Needs no network and no files beside it."""
    details = report.get("details", {})
    fid, use, priv = details.get("fidelity", {}), details.get("usefulness", {}), details.get("privacy", {})
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
           f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>"]
    out.append(f"<p class='note'>{int(report.get('rows_real', 0))} real training rows compared with "
               f"{int(report.get('rows_synth', 0))} synthetic rows.</p>")
    summary = [
        ("Fidelity", report.get("fidelity"), False, "average of column shapes and pair trends (1 = indistinguishable on these views)"),
        ("Column shapes", report.get("column_shapes"), False, "1 - KS statistic for numbers, 1 - total variation distance for categories"),
        ("Pair trends", report.get("pair_trends"), False, "how alike pairs of columns move together (correlation / contingency similarity)"),
    ]
    if "tstr_accuracy_ratio" in report:
        summary += [
            ("TSTR accuracy ratio", report["tstr_accuracy_ratio"], False,
             "accuracy of classifiers trained on synthetic rows / trained on real rows, both tested on held-out real rows"),
            ("TSTR F1 ratio", report.get("tstr_f1_ratio"), False, "the same for macro F1"),
            ("Augmentation uplift", report.get("aug_uplift"), True,
             "accuracy gained by adding the synthetic rows to a small real training set"),
        ]
    summary += [
        ("Median distance to closest real row", report.get("dcr_median"), False,
         f"held-out real rows: {_fmt(report.get('holdout_dcr_median'))} (similar or larger is good; much smaller suggests copying)"),
        ("Exact copies of real rows", report.get("exact_copy_rate"), True,
         f"held-out real rows that also appear in the training rows: {_fmt(report.get('holdout_copy_rate'), True)}"),
    ]
    out.append("<h2>Summary</h2><table><tr><th class='l'>Score</th><th>Value</th><th class='l'>Meaning</th></tr>")
    for name, value, pct, meaning in summary:
        out.append(f"<tr><td class='l'>{name}</td><td class='score'>{_fmt(value, pct)}</td><td class='l'>{html.escape(meaning)}</td></tr>")
    out.append("</table>")

    if fid:
        out.append("<h2>Fidelity: columns</h2><p class='note'>Blue bars: real rows; orange outlines: synthetic rows. "
                   "Heights are shares of rows.</p><div class='grid'>")
        for col, info in fid.get("columns", {}).items():
            img = histogram_panel(f"{col} ({info['metric']} {info['score']:.2f})", info["histogram"], 260, 160)
            out.append(f"<figure><img alt='{html.escape(col)}' src='{_png_data_uri(img)}'></figure>")
        out.append("</div><h2>Fidelity: pairs of columns</h2><table><tr><th class='l'>Column A</th><th class='l'>Column B</th>"
                   "<th>Score</th><th class='l'>Measure</th></tr>")
        for p in sorted(fid.get("pairs", []), key=lambda p: p["score"]):
            out.append(f"<tr><td class='l'>{html.escape(p['a'])}</td><td class='l'>{html.escape(p['b'])}</td>"
                       f"<td>{p['score']:.3f}</td><td class='l'>{p['metric']}</td></tr>")
        out.append("</table><h2>Correlations (Pearson's r)</h2><div class='grid'><figure><figcaption>real</figcaption>"
                   f"{_heat_table(fid.get('correlation_real', {}))}</figure><figure><figcaption>synthetic</figcaption>"
                   f"{_heat_table(fid.get('correlation_synth', {}))}</figure></div>")
    if use:
        out.append(f"<h2>Usefulness: predicting {html.escape(str(use['label']))}</h2>"
                   f"<p class='note'>Trained on {use['train_rows']} real or {use['synth_rows']} synthetic rows, tested on "
                   f"{use['test_rows']} held-out real rows. Augmentation: {use['small_rows']} real rows alone, then with the "
                   "synthetic rows added.</p><table><tr><th class='l'>Classifier</th><th>Real → real accuracy</th>"
                   "<th>Synthetic → real accuracy</th><th>Ratio</th><th>Real F1</th><th>Synthetic F1</th>"
                   "<th>Small real</th><th>Small real + synthetic</th></tr>")
        for name, v in use["classifiers"].items():
            out.append(f"<tr><td class='l'>{name.replace('_', ' ')}</td><td>{v['trtr_accuracy']:.3f}</td>"
                       f"<td>{v['tstr_accuracy']:.3f}</td><td>{v['accuracy_ratio']:.3f}</td><td>{v['trtr_f1']:.3f}</td>"
                       f"<td>{v['tstr_f1']:.3f}</td><td>{v['small_accuracy']:.3f}</td><td>{v['augmented_accuracy']:.3f}</td></tr>")
        out.append("</table>")
    if priv:
        out.append("<h2>Privacy</h2><p class='note'>Distance from each synthetic row to its closest real training row "
                   "(numbers in standard deviations, a different category counts 1). Real rows the model never saw "
                   "are the yardstick.</p><table><tr><th class='l'></th><th>5th percentile</th><th>Median</th>"
                   "<th>Exact copies</th></tr>")
        out.append(f"<tr><td class='l'>synthetic rows</td><td>{_fmt(priv.get('dcr_p05'))}</td><td>{_fmt(priv.get('dcr_median'))}</td>"
                   f"<td>{_fmt(priv.get('exact_copy_rate'), True)}</td></tr>")
        if "holdout_dcr_median" in priv:
            out.append(f"<tr><td class='l'>held-out real rows</td><td>{_fmt(priv.get('holdout_dcr_p05'))}</td>"
                       f"<td>{_fmt(priv.get('holdout_dcr_median'))}</td><td>{_fmt(priv.get('holdout_copy_rate'), True)}</td></tr>")
        out.append("</table>")
    out.append("</body></html>")
    return "\n".join(out)
