"""The table encoder: rows of a table <-> vectors of numbers a network can learn.

Numbers become standard normals (``quantile``: z = Phi^-1(F(x))), a mixture
mode plus a scaled offset (``gmm``, mode-specific normalisation as in CTGAN),
z-scores (``standard``: z = (x - mean) / std, which keeps straight-line
relations between columns straight) or, with ``auto``, each column the one its
values suit (:func:`auto_encoding`); categories and yes/no columns become one-hot blocks. Everything fitted is kept
as JSON values and arrays (never pickled), so a checkpoint can carry it. The
tabular models (``aigc_core.models.tabular``) explain how they use it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ..errors import UserError

QUANTILE_EPS = 1e-4  # keeps Phi^-1 finite: encoded numbers stay within about +-3.7
FIT_ROWS = 20_000  # rows used to fit quantiles / mixtures on very large tables
ENCODINGS = ("quantile", "gmm", "standard", "auto")
#: ``auto``: a column whose values are at least this share distinct ...
AUTO_DISTINCT = 0.9
#: ... and whose skewness is at most this (either way) is z-scored; any other is quantile-encoded
AUTO_SKEW = 1.0
TRUE_TOKENS = {"true", "yes", "y", "t", "1", "1.0"}
FALSE_TOKENS = {"false", "no", "n", "f", "0", "0.0"}


# ---------------------------------------------------------------------------
# Rows <-> vectors
# ---------------------------------------------------------------------------

@dataclass
class Span:
    """One slice of an encoded row: a number (``value``), the mixture mode of a
    number (``mode``) or a category block (``category``)."""

    column: str
    kind: str
    start: int
    width: int
    activation: str  # "linear" | "tanh" | "softmax"

    @property
    def stop(self) -> int:
        return self.start + self.width


def _decimals(values: np.ndarray) -> int:
    """Fewest decimals that write every value exactly (-1 = more than 6)."""
    for k in range(7):
        scaled = values * 10.0**k
        if np.allclose(scaled, np.round(scaled), rtol=0, atol=1e-6 * max(1.0, float(np.abs(scaled).max(initial=0)))):
            return k
    return -1


class TableEncoder:
    """Turns table rows into vectors and back (see the module docstring).

    ``columns`` holds one dict per column: ``name``, ``type``; numbers add
    ``encoding``, ``integer``, ``min``, ``max``, ``decimals`` and either
    ``quantiles`` or ``means``/``stds``/``weights``; categories add
    ``categories``.
    """

    def __init__(self, columns: list[dict]):
        self.columns = columns
        self.spans: list[Span] = []
        start = 0
        for col in columns:
            if col["type"] == "numeric" and col["encoding"] == "gmm":
                self.spans.append(Span(col["name"], "value", start, 1, "tanh"))
                self.spans.append(Span(col["name"], "mode", start + 1, len(col["means"]), "softmax"))
                start += 1 + len(col["means"])
            elif col["type"] == "numeric":
                self.spans.append(Span(col["name"], "value", start, 1, "linear"))
                start += 1
            else:
                self.spans.append(Span(col["name"], "category", start, len(col["categories"]), "softmax"))
                start += len(col["categories"])
        self.dim = start

    # ---- fitting ----------------------------------------------------------------
    @classmethod
    def fit(cls, frame: pd.DataFrame, types: dict[str, str], encoding: str = "quantile", max_modes: int = 10,
            seed: int = 0) -> "TableEncoder":
        if encoding not in ENCODINGS:
            raise UserError(f"numeric encoding must be one of {', '.join(ENCODINGS)}; got {encoding!r}")
        rng = np.random.default_rng(seed)
        if len(frame) > FIT_ROWS:
            frame = frame.iloc[np.sort(rng.choice(len(frame), FIT_ROWS, replace=False))]
        columns = []
        for name, kind in types.items():
            series = frame[name]
            if kind == "numeric":
                values = pd.to_numeric(series, errors="coerce").astype(float).to_numpy()
                values = values[np.isfinite(values)]
                if not len(values):
                    raise UserError(f"column {name!r} has no numbers to learn from")
                col = dict(name=name, type=kind, encoding=auto_encoding(values) if encoding == "auto" else encoding,
                           integer=bool(pd.api.types.is_integer_dtype(series.dtype)),
                           min=float(values.min()), max=float(values.max()), decimals=_decimals(values))
                if col["encoding"] == "quantile":
                    col.update(_fit_quantiles(values))
                elif col["encoding"] == "standard":
                    col.update(mean=float(values.mean()), std=float(max(values.std(), 1e-6)))
                else:
                    col.update(_fit_mixture(values, max_modes, seed))
            elif kind == "boolean":
                col = dict(name=name, type=kind, categories=[False, True])
            else:
                col = dict(name=name, type="categorical", categories=sorted(series.dropna().astype(str).unique().tolist()))
            columns.append(col)
        return cls(columns)

    # ---- rows -> vectors ----------------------------------------------------------
    def encode(self, frame: pd.DataFrame, rng: np.random.Generator | None = None) -> np.ndarray:
        """(N, dim) float32. With ``rng``, gmm modes are drawn from their
        posterior (as CTGAN does); without it, the most likely mode is used."""
        n = len(frame)
        out = np.zeros((n, self.dim), dtype=np.float32)
        spans = {(s.column, s.kind): s for s in self.spans}
        for col in self.columns:
            series = frame[col["name"]]
            if col["type"] == "numeric":
                x = pd.to_numeric(series, errors="coerce").astype(float).to_numpy()
                value = spans[(col["name"], "value")]
                if col["encoding"] == "quantile":
                    lo, hi = self.quantile_bounds(col, x)
                    out[:, value.start] = _ndtri(0.5 * (lo + hi))
                elif col["encoding"] == "standard":
                    out[:, value.start] = (np.nan_to_num(x, nan=col["mean"]) - col["mean"]) / col["std"]
                else:
                    alpha, mode = _mixture_encode(col, x, rng)
                    out[:, value.start] = alpha
                    out[np.arange(n), spans[(col["name"], "mode")].start + mode] = 1.0
            else:
                block = spans[(col["name"], "category")]
                out[np.arange(n), block.start + self.category_index(col, series)] = 1.0
        return out

    @staticmethod
    def quantile_bounds(col: dict, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The range [F(x-), F(x)] of the distribution function at each value:
        a single point for a value seen once, a whole interval for tied values
        (the same interpolation scikit-learn's QuantileTransformer uses, from
        both sides)."""
        q = np.asarray(col["quantiles"], dtype=float)
        ref = np.linspace(0.0, 1.0, len(q))
        hi = np.interp(x, q, ref)
        lo = -np.interp(-x, -q[::-1], -ref[::-1])
        return np.clip(lo, QUANTILE_EPS, 1 - QUANTILE_EPS), np.clip(hi, QUANTILE_EPS, 1 - QUANTILE_EPS)

    @staticmethod
    def category_index(col: dict, series: pd.Series) -> np.ndarray:
        if col["type"] == "boolean":
            return series.map(lambda v: 1 if _as_bool(v) else 0).to_numpy(dtype=np.int64)
        lookup = {c: i for i, c in enumerate(col["categories"])}
        # a category never seen in training (a held-out row) maps to the first one
        return series.astype(str).map(lambda v: lookup.get(v, 0)).to_numpy(dtype=np.int64)

    # ---- vectors -> rows ----------------------------------------------------------
    def decode(self, matrix: np.ndarray) -> pd.DataFrame:
        """A table from (N, dim) vectors whose category blocks are one-hot (or
        scores: the largest wins), with every column in its original type and
        range: numbers clipped to the seen range and rounded to the seen
        number of decimals, whole numbers as integers, categories from their set."""
        spans = {(s.column, s.kind): s for s in self.spans}
        out = {}
        for col in self.columns:
            name = col["name"]
            if col["type"] == "numeric":
                v = matrix[:, spans[(name, "value")].start].astype(float)
                if col["encoding"] == "quantile":
                    q = np.asarray(col["quantiles"], dtype=float)
                    x = np.interp(_ndtr(v), np.linspace(0.0, 1.0, len(q)), q)
                elif col["encoding"] == "standard":
                    x = v * col["std"] + col["mean"]
                else:
                    mode_span = spans[(name, "mode")]
                    k = matrix[:, mode_span.start:mode_span.stop].argmax(1)
                    x = np.clip(v, -1, 1) * 4 * np.asarray(col["stds"])[k] + np.asarray(col["means"])[k]
                x = np.clip(x, col["min"], col["max"])
                if col["integer"]:
                    out[name] = np.round(x).astype(np.int64)
                else:
                    out[name] = np.round(x, col["decimals"]) if col["decimals"] >= 0 else x
            else:
                block = spans[(name, "category")]
                k = matrix[:, block.start:block.stop].argmax(1)
                cats = col["categories"]
                out[name] = np.asarray(cats, dtype=bool)[k] if col["type"] == "boolean" else \
                    pd.Series(np.asarray(cats, dtype=object)[k], dtype=str)
        return pd.DataFrame(out)

    # ---- checkpoint ---------------------------------------------------------------
    def state(self) -> list[dict]:
        """JSON values and tensors only (the checkpoint stores no pickles)."""
        out = []
        for col in self.columns:
            item = {}
            for k, v in col.items():
                item[k] = torch.tensor(np.asarray(v, dtype=np.float64)) if k in ("quantiles", "means", "stds", "weights") else v
            out.append(item)
        return out

    @classmethod
    def from_state(cls, state: list[dict]) -> "TableEncoder":
        columns = []
        for item in state:
            col = {}
            for k, v in item.items():
                col[k] = v.cpu().double().numpy() if isinstance(v, torch.Tensor) else v
            columns.append(col)
        return cls(columns)


def _ndtri(u):
    from scipy.special import ndtri

    return ndtri(u)


def _ndtr(z):
    from scipy.special import ndtr

    return ndtr(z)


def _as_bool(v) -> bool:
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    return str(v).strip().lower() in TRUE_TOKENS


def auto_encoding(values: np.ndarray) -> str:
    """``standard`` for a column of (nearly) all-distinct, roughly symmetric
    numbers (measurements), ``quantile`` for anything else (counts and other
    whole numbers with many ties, skewed or heavy-tailed columns), which the
    quantile map makes normal. Why z-scores there: they keep a column that is
    a weighted sum of others exactly that in the encoded row, where the
    networks and the moment-matching covariances can follow it; the quantile
    map bends such relations."""
    n = len(values)
    if n < 3 or len(np.unique(values)) < AUTO_DISTINCT * n:
        return "quantile"
    from scipy.stats import skew

    lean = float(skew(values)) if values.std() > 0 else 0.0
    return "standard" if abs(lean) <= AUTO_SKEW else "quantile"


def _fit_quantiles(values: np.ndarray) -> dict:
    n_q = int(min(1000, len(values)))
    return dict(quantiles=np.quantile(values, np.linspace(0.0, 1.0, n_q)))


def _fit_mixture(values: np.ndarray, max_modes: int, seed: int) -> dict:
    """Mode-specific normalisation: a Dirichlet-process Gaussian mixture keeps
    only the modes it needs (weights below 0.5% are dropped)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import BayesianGaussianMixture

    n_modes = int(max(1, min(max_modes, len(np.unique(values)))))
    gm = BayesianGaussianMixture(n_components=n_modes, weight_concentration_prior_type="dirichlet_process",
                                 weight_concentration_prior=0.001, max_iter=100, n_init=1, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm.fit(values.reshape(-1, 1))
    keep = gm.weights_ > 0.005
    stds = np.sqrt(gm.covariances_.reshape(-1))[keep]
    return dict(means=gm.means_.reshape(-1)[keep], stds=np.maximum(stds, 1e-6), weights=gm.weights_[keep] / gm.weights_[keep].sum())


def _mixture_encode(col: dict, x: np.ndarray, rng: np.random.Generator | None):
    means, stds, weights = (np.asarray(col[k], dtype=float) for k in ("means", "stds", "weights"))
    logp = np.log(weights)[None, :] - 0.5 * ((x[:, None] - means[None, :]) / stds[None, :]) ** 2 - np.log(stds)[None, :]
    post = np.exp(logp - logp.max(1, keepdims=True))
    post /= post.sum(1, keepdims=True)
    if rng is None:
        mode = post.argmax(1)
    else:
        mode = (post.cumsum(1) > rng.random((len(x), 1))).argmax(1)
    alpha = np.clip((x - means[mode]) / (4 * stds[mode]), -0.99, 0.99)
    return alpha, mode
