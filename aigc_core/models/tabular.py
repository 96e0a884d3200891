"""Tabular generators: ``tab_gan`` (a conditional Wasserstein GAN, after CTGAN)
and ``tab_vae`` (a conditional VAE, after TVAE).

A table mixes numbers and categories, so both models first turn each row into
a vector of numbers with a :class:`TableEncoder` and learn to produce such
vectors; sampling decodes them back into a table with the original column
names, types and ranges.

- **Numbers** get one of two encodings (the ``numeric_encoding`` setting):

  - ``quantile``: x -> z = Phi^-1(F(x)), where F is the column's empirical
    distribution function (from up to 1,000 quantiles) and Phi^-1 the
    standard normal quantile function. Every column becomes a standard normal
    whatever its shape (skewed, heavy-tailed, bimodal), which is easy for a
    network to match. Tied values (whole numbers) are spread at random over
    their share of F each time a batch is drawn, so counts such as "cart adds"
    look continuous to the networks and decode back exactly.
  - ``gmm`` (mode-specific normalisation, as in CTGAN): a Bayesian Gaussian
    mixture with up to ``max_modes`` modes is fitted to the column; a value
    becomes (which mode k it came from, one-hot) and
    alpha = (x - mu_k) / (4 sigma_k) in (-1, 1).

- **Categories and yes/no columns** become one-hot blocks. The generator
  outputs logits for each block; in training they pass through a
  Gumbel-softmax (a differentiable, nearly one-hot sample); in sampling a
  category is drawn from softmax(logits).

- **Conditioning** (``condition_column``, by default the label column): the
  networks get the one-hot value of that column as an extra input c. Training
  draws c with probability proportional to log(1 + count) ("training by
  sampling", so rare classes are seen often enough to be learned) and takes
  real rows with that value; sampling draws c with the real frequencies, or
  fixes it: ``sample(1000, seed, condition={"purchase": 1})``. A sampled row
  is p(c) p(rest | c): its condition column states the value c that was asked
  for, so the classes come in the real shares (or only the one fixed).

Everything fitted (quantiles, mixtures, category lists, the train/held-out
split) is kept in the checkpoint as tensors and JSON values, never pickled.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from ..config import param
from ..data.base import TableData
from ..data.table_encoder import ENCODINGS, FALSE_TOKENS, QUANTILE_EPS, TRUE_TOKENS, Span, TableEncoder
from ..errors import UserError
from ..registry import ModelSpec, register
from ..train.base import Trainer

MIN_ROWS = 20
MAX_SAMPLES = 1_000_000
FILM_STRIP_ROWS = 1000


# ---------------------------------------------------------------------------
# Output activations (shared by both models)
# ---------------------------------------------------------------------------

def gumbel_softmax(logits: torch.Tensor, tau: float, gen: torch.Generator) -> torch.Tensor:
    """softmax((logits + g) / tau) with Gumbel noise g = -log(-log U): a
    differentiable stand-in for drawing a category from softmax(logits); the
    lower the temperature tau, the closer to one-hot."""
    u = torch.rand(logits.shape, generator=gen, device=logits.device).clamp_(1e-10, 1 - 1e-10)
    return F.softmax((logits - torch.log(-torch.log(u))) / tau, dim=1)


def sample_one_hot(logits: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """A category drawn from softmax(logits) (Gumbel-max), as a one-hot row."""
    u = torch.rand(logits.shape, generator=gen, device=logits.device).clamp_(1e-10, 1 - 1e-10)
    picked = (logits - torch.log(-torch.log(u))).argmax(1)
    return F.one_hot(picked, logits.shape[1]).to(logits.dtype)


def activate(raw: torch.Tensor, spans: list[Span], tau: float, gen: torch.Generator, hard: bool = False) -> torch.Tensor:
    """Raw network outputs -> an encoded row: tanh for mixture values, identity
    for quantile values, Gumbel-softmax (``hard``: a sampled one-hot) for each
    category or mode block."""
    parts = []
    for s in spans:
        block = raw[:, s.start:s.stop]
        if s.activation == "tanh":
            parts.append(torch.tanh(block))
        elif s.activation == "linear":
            parts.append(block)
        else:
            parts.append(sample_one_hot(block, gen) if hard else gumbel_softmax(block, tau, gen))
    return torch.cat(parts, dim=1)


# ---------------------------------------------------------------------------
# Configs
# ---------------------------------------------------------------------------

COND_HELP = ("A categorical or yes/no column the model is conditioned on, so you can ask for rows with a given value "
             "and rare values are learned. Empty = the label column (or the first categorical column); 'none' = no condition.")
ENC_HELP = ("How numbers are fed to the networks. quantile: each column mapped to a standard normal through its "
            "distribution function (fast, robust to skew). gmm: CTGAN's mode-specific normalisation with a Gaussian "
            "mixture per column (a value = its mode + its position within the mode).")


@dataclass
class TabGANConfig:
    """Conditional WGAN-GP for tables (CTGAN-style)."""

    condition_column: str = param("", "Condition on column", COND_HELP)
    numeric_encoding: str = param("quantile", "Numeric encoding", ENC_HELP, choices=ENCODINGS)
    max_modes: int = param(10, "Mixture modes (gmm)", "Most modes per numeric column for the gmm encoding.", min=1, max=30, advanced=True)
    noise_dim: int = param(64, "Noise size", "Length of the random vector z each row starts from.", min=2, max=512)
    hidden: int = param(128, "Hidden width", "Units per hidden layer of the generator and the critic.", min=16, max=1024, step=16)
    layers: int = param(2, "Hidden layers", "Residual blocks in the generator, dense layers in the critic.", min=1, max=6)
    batch_size: int = param(200, "Batch size", "Real rows per step (and as many generated ones); a multiple of the packing.", min=10, max=10000, step=10)
    pac: int = param(10, "Packing", "The critic judges packs of this many rows at once, which makes a generator that repeats itself easy to spot (PacGAN).", min=1, max=20, advanced=True)
    lr_g: float = param(1e-3, "Generator learning rate", "Adam step size for G.", min=1e-6, max=1e-1, log=True)
    lr_d: float = param(1e-3, "Critic learning rate", "Adam step size for the critic.", min=1e-6, max=1e-1, log=True)
    d_steps: int = param(1, "Critic steps per G step", "Critic updates per generator update.", min=1, max=10, advanced=True)
    gp_weight: float = param(10.0, "Gradient penalty weight (lambda)", "Keeps the critic 1-Lipschitz, as the Wasserstein distance needs.", min=0.0, max=100.0, step=1.0, advanced=True)
    tau: float = param(0.2, "Gumbel-softmax temperature", "Lower = category outputs closer to one-hot in training.", min=0.05, max=2.0, step=0.05, advanced=True)
    dropout: float = param(0.5, "Critic dropout", "Dropout between the critic's layers (CTGAN uses 0.5).", min=0.0, max=0.9, step=0.05, advanced=True)
    ema: float = param(0.995, "Generator averaging (EMA)", "Samples come from a running average of the generator's weights, "
                       "w_avg <- ema * w_avg + (1 - ema) * w, which smooths out the last steps' wobble. 0 = off.",
                       min=0.0, max=0.9999, step=0.001, advanced=True)
    lr_decay_steps: int = param(0, "Learning-rate decay (steps)", "Both learning rates follow a cosine from their set "
                                "value down to a tenth over this many steps, then stay there, so the last steps make "
                                "small corrections. 0 = constant.", min=0, max=10_000_000, step=100, advanced=True)
    holdout: float = param(0.2, "Held-out share", "Share of rows kept out of training, for the usefulness and privacy reports.", min=0.0, max=0.5, step=0.05)


@dataclass
class TabVAEConfig:
    """Conditional VAE for tables (TVAE-style)."""

    condition_column: str = param("", "Condition on column", COND_HELP)
    numeric_encoding: str = param("quantile", "Numeric encoding", ENC_HELP, choices=ENCODINGS)
    max_modes: int = param(10, "Mixture modes (gmm)", "Most modes per numeric column for the gmm encoding.", min=1, max=30, advanced=True)
    latent_dim: int = param(32, "Latent size", "Length of the code z a row is compressed to.", min=2, max=256)
    hidden: int = param(128, "Hidden width", "Units per hidden layer of the encoder and decoder.", min=16, max=1024, step=16)
    layers: int = param(2, "Hidden layers", "Dense layers in the encoder and in the decoder.", min=1, max=6)
    batch_size: int = param(200, "Batch size", "Real rows per step.", min=10, max=10000, step=10)
    lr: float = param(1e-3, "Learning rate", "Adam step size.", min=1e-6, max=1e-1, log=True)
    recon_weight: float = param(2.0, "Reconstruction weight", "Weight of the reconstruction term against the KL term (TVAE uses 2).", min=0.1, max=20.0, step=0.1, advanced=True)
    holdout: float = param(0.2, "Held-out share", "Share of rows kept out of training, for the usefulness and privacy reports.", min=0.0, max=0.5, step=0.05)


# ---------------------------------------------------------------------------
# Networks
# ---------------------------------------------------------------------------

class Residual(nn.Module):
    """fc -> batch norm -> ReLU, with the block's input passed along beside its
    output (CTGAN's generator block), so later layers see the noise and the
    condition directly."""

    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.fc = nn.Linear(dim_in, dim_out)
        self.bn = nn.BatchNorm1d(dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([F.relu(self.bn(self.fc(x))), x], dim=1)


class TabGenerator(nn.Module):
    def __init__(self, in_dim: int, hidden: int, layers: int, out_dim: int):
        super().__init__()
        blocks = [Residual(in_dim + i * hidden, hidden) for i in range(layers)]
        self.body = nn.Sequential(*blocks)                        # (B, in_dim) -> (B, in_dim + layers*hidden)
        self.head = nn.Linear(in_dim + layers * hidden, out_dim)  # -> (B, out_dim): values and category logits

    def forward(self, z_and_c: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(z_and_c))


class TabCritic(nn.Module):
    """Scores packs of ``pac`` rows (each row with its condition) at once."""

    def __init__(self, in_dim: int, hidden: int, layers: int, pac: int, dropout: float):
        super().__init__()
        self.pac, self.in_dim = pac, in_dim
        stack, width = [], in_dim * pac
        for _ in range(layers):
            stack += [nn.Linear(width, hidden), nn.LeakyReLU(0.2), nn.Dropout(dropout)]  # (B/pac, hidden)
            width = hidden
        stack.append(nn.Linear(width, 1))                                              # (B/pac, 1): the score
        self.net = nn.Sequential(*stack)

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        return self.net(rows.reshape(-1, self.pac * self.in_dim))  # (B, in_dim) -> (B/pac, pac*in_dim) -> (B/pac, 1)


class TabVAEEncoder(nn.Module):
    """q(z | x, c) = N(mu, sigma^2)."""

    def __init__(self, in_dim: int, hidden: int, layers: int, latent: int):
        super().__init__()
        stack, width = [], in_dim
        for _ in range(layers):
            stack += [nn.Linear(width, hidden), nn.ReLU()]  # (B, hidden)
            width = hidden
        self.body = nn.Sequential(*stack)
        self.mu = nn.Linear(width, latent)                   # (B, latent)
        self.logvar = nn.Linear(width, latent)               # (B, latent)

    def forward(self, x_and_c: torch.Tensor):
        h = self.body(x_and_c)
        return self.mu(h), self.logvar(h)


class TabVAEDecoder(nn.Module):
    """p(x | z, c): values with a learned spread sigma per number, logits per category block."""

    def __init__(self, in_dim: int, hidden: int, layers: int, out_dim: int):
        super().__init__()
        stack, width = [], in_dim
        for _ in range(layers):
            stack += [nn.Linear(width, hidden), nn.ReLU()]  # (B, hidden)
            width = hidden
        stack.append(nn.Linear(width, out_dim))             # (B, out_dim)
        self.net = nn.Sequential(*stack)
        self.log_sigma = nn.Parameter(torch.full((out_dim,), math.log(0.1)))

    def forward(self, z_and_c: torch.Tensor):
        # TVAE keeps sigma in [0.01, 1]: a sigma near zero would let the
        # reconstruction term dominate without bound.
        return self.net(z_and_c), self.log_sigma.clamp(math.log(0.01), 0.0)


# ---------------------------------------------------------------------------
# Trainers
# ---------------------------------------------------------------------------

def _check_count(n) -> int:
    n = int(n)
    if not 1 <= n <= MAX_SAMPLES:
        raise UserError(f"ask for between 1 and {MAX_SAMPLES:,} rows; got {n}")
    return n


def split_rows(n: int, labels: np.ndarray | None, holdout: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and held-out row numbers: stratified by the label when every class
    has at least two rows."""
    if holdout <= 0:
        return np.arange(n), np.arange(0)
    from sklearn.model_selection import train_test_split

    rows = np.arange(n)
    try:
        train, test = train_test_split(rows, test_size=holdout, random_state=seed, stratify=labels)
    except ValueError:
        train, test = train_test_split(rows, test_size=holdout, random_state=seed)
    return np.sort(train), np.sort(test)


class TabularTrainer(Trainer):
    """What both tabular models share: the split, the encoder, the condition
    sampler, sampling a table, the film strip and the report."""

    loss_names = {"loss_d": "the critic's loss", "loss_g": "the generator's loss", "loss": "the VAE loss"}
    nan_hint = "try a lower learning rate or the 'quantile' numeric encoding"

    def __init__(self, cfg, data, device, seed, autocast=None):
        # Small MLPs: float32 throughout (bf16 saves nothing here and blurs the gradient penalty).
        super().__init__(cfg, data, device, seed, None)
        if not isinstance(data, TableData):
            raise UserError(f"{type(self).__name__.replace('Trainer', '')} trains on tables; pick a table data set")
        self.types = {c: t for c, t in data.column_types.items() if t in ("numeric", "categorical", "boolean")}
        if len(self.types) < 2:
            raise UserError("a table needs at least two columns to learn how they relate")
        if len(data) < MIN_ROWS:
            raise UserError(f"the table has {len(data)} rows; at least {MIN_ROWS} are needed")
        self.label = data.label_column if data.label_column in self.types else None
        self.frame = data.frame.reset_index(drop=True)[list(self.types)]
        self.batch_size = int(cfg.batch_size)
        labels = self.frame[self.label].astype(str).to_numpy() if self.label else None
        train_rows, test_rows = split_rows(len(self.frame), labels, float(cfg.holdout), seed)
        encoder = TableEncoder.fit(self.frame.iloc[train_rows], self.types, cfg.numeric_encoding, cfg.max_modes, seed)
        self.cond_column = self._pick_condition(cfg.condition_column)
        self._set_fitted(encoder, train_rows, test_rows)

    # ---- set-up ---------------------------------------------------------------------
    def _pick_condition(self, wanted: str) -> str | None:
        wanted = (wanted or "").strip()
        if wanted.lower() == "none":
            return None
        if wanted:
            if wanted not in self.types:
                raise UserError(f"condition column {wanted!r} is not in the table; columns: {', '.join(self.types)}")
            if self.types[wanted] == "numeric":
                raise UserError(f"condition column {wanted!r} is numeric; choose a categorical or yes/no column")
            return wanted
        if self.label and self.types[self.label] != "numeric":
            return self.label
        return next((c for c, t in self.types.items() if t != "numeric"), None)

    def _set_fitted(self, encoder: TableEncoder, train_rows: np.ndarray, test_rows: np.ndarray) -> None:
        """Put the encoded training rows and the condition sampler on the device."""
        self.encoder, self.train_rows, self.test_rows = encoder, np.asarray(train_rows), np.asarray(test_rows)
        self.real_train = self.frame.iloc[self.train_rows].reset_index(drop=True)
        self.real_test = self.frame.iloc[self.test_rows].reset_index(drop=True)
        dev = self.device
        rng = np.random.default_rng(self.seed)
        self.data_dim = encoder.dim
        self.encoded = torch.tensor(encoder.encode(self.real_train, rng), device=dev)  # (N, data_dim)
        # Quantile-encoded numbers: keep each value's [F(x-), F(x)] to re-draw ties every batch.
        q_cols, lows, highs = [], [], []
        for col, span in zip(encoder.columns, [s for s in encoder.spans if s.kind != "mode"]):
            if col["type"] == "numeric" and col["encoding"] == "quantile":
                x = pd.to_numeric(self.real_train[col["name"]], errors="coerce").astype(float).to_numpy()
                lo, hi = encoder.quantile_bounds(col, x)
                q_cols.append(span.start)
                lows.append(lo)
                highs.append(hi)
        self.q_cols = torch.tensor(q_cols, dtype=torch.long, device=dev)
        self.q_low = torch.tensor(np.stack(lows, 1) if lows else np.zeros((len(self.real_train), 0)), dtype=torch.float32, device=dev)
        self.q_width = torch.tensor(np.stack(highs, 1) if highs else np.zeros((len(self.real_train), 0)), dtype=torch.float32, device=dev) - self.q_low
        # Condition: per-value row lists for training by sampling.
        if self.cond_column:
            self.cond_info = next(c for c in encoder.columns if c["name"] == self.cond_column)
            self.cond_span = next(s for s in encoder.spans if s.column == self.cond_column)
            values = encoder.category_index(self.cond_info, self.real_train[self.cond_column])
            self.cond_dim = len(self.cond_info["categories"])
            counts = np.bincount(values, minlength=self.cond_dim).astype(float)
            train_p = np.log1p(counts) * (counts > 0)
            self.cond_train_p = torch.tensor(train_p / train_p.sum(), dtype=torch.float32, device=dev)
            self.cond_real_p = torch.tensor(counts / counts.sum(), dtype=torch.float32, device=dev)
            order = np.argsort(values, kind="stable")
            self.rows_by_cond = torch.tensor(order, dtype=torch.long, device=dev)
            self.cond_start = torch.tensor(np.concatenate([[0], np.cumsum(counts)[:-1]]), dtype=torch.long, device=dev)
            self.cond_count = torch.tensor(counts, dtype=torch.long, device=dev)
        else:
            self.cond_info, self.cond_span, self.cond_dim = None, None, 0

    # ---- one step ---------------------------------------------------------------------
    def step(self) -> dict[str, torch.Tensor]:
        """One :meth:`train_step` on one CPU thread. These matrices are small
        (a few hundred rows by a few hundred units): a second thread gains
        little, and on a busy machine threads waiting on each other make a
        step many times slower. The thread count is put back afterwards."""
        threads = torch.get_num_threads()
        if self.device.type != "cpu" or threads == 1:
            return self.train_step()
        torch.set_num_threads(1)
        try:
            return self.train_step()
        finally:
            torch.set_num_threads(threads)

    def train_step(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    # ---- batches --------------------------------------------------------------------
    def draw_conditions(self, n: int, gen: torch.Generator, train: bool = True):
        """Condition indices (n,) and one-hot vectors (n, cond_dim); ``train``
        draws with log-frequency weights, otherwise in the real proportions."""
        if not self.cond_dim:
            return None, torch.zeros(n, 0, device=self.device)
        if train:
            idx = torch.multinomial(self.cond_train_p, n, replacement=True, generator=gen)
        else:
            # the real shares, as exactly as n rows allow (the remainder drawn at random)
            counts = torch.floor(self.cond_real_p * n).long()
            rest = n - int(counts.sum())
            if rest:
                counts += torch.bincount(torch.multinomial(self.cond_real_p, rest, replacement=True, generator=gen),
                                         minlength=self.cond_dim)
            idx = torch.repeat_interleave(torch.arange(self.cond_dim, device=self.device), counts)
            idx = idx[torch.randperm(n, device=self.device, generator=gen)]
        return idx, F.one_hot(idx, self.cond_dim).float()

    def real_batch(self, cond_idx: torch.Tensor | None, n: int) -> torch.Tensor:
        """(n, data_dim) real encoded rows (with the given condition values)."""
        u = torch.rand(n, device=self.device, generator=self.gen)
        if cond_idx is None:
            rows = (u * len(self.encoded)).long().clamp_(max=len(self.encoded) - 1)
        else:
            count = self.cond_count[cond_idx]
            offset = torch.minimum((u * count).long(), count - 1)
            rows = self.rows_by_cond[self.cond_start[cond_idx] + offset]
        batch = self.encoded[rows]
        if len(self.q_cols):
            jitter = torch.rand(n, len(self.q_cols), device=self.device, generator=self.gen)
            u01 = (self.q_low[rows] + jitter * self.q_width[rows]).clamp_(QUANTILE_EPS, 1 - QUANTILE_EPS)
            batch[:, self.q_cols] = torch.special.ndtri(u01)
        return batch

    # ---- sampling ---------------------------------------------------------------------
    def generate(self, cond: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """(n, data_dim) encoded rows with one-hot category blocks, for
        condition vectors ``cond`` (n, cond_dim)."""
        raise NotImplementedError

    def _condition_targets(self, condition: dict | None):
        """Split a condition into the trained column's index and other filters."""
        fixed, filters = None, {}
        for col, value in (condition or {}).items():
            if col not in self.types:
                raise UserError(f"cannot fix column {col!r}: it is not in the table ({', '.join(self.types)})")
            if self.types[col] == "numeric":
                raise UserError(f"only categorical or yes/no columns can be fixed; {col!r} holds numbers")
            info = next(c for c in self.encoder.columns if c["name"] == col)
            matched = _match_category(info, value)
            if col == self.cond_column:
                fixed = (info["categories"].index(matched), matched)
            else:
                filters[col] = matched
        return fixed, filters

    def sample(self, n: int, seed: int, condition: dict | None = None, **knobs) -> pd.DataFrame:
        """``n`` rows as a DataFrame with the original columns and types.

        ``condition={"purchase": 1}`` fixes a column's value: for the column
        the model was conditioned on, the condition vector asks for it
        directly; other categorical columns are met by generating more rows and
        keeping the matching ones (a rare value can then be refused).
        """
        if knobs:
            raise UserError(f"unknown sampling option(s) {', '.join(knobs)}; tables accept 'condition'")
        n = _check_count(n)
        fixed, filters = self._condition_targets(condition)
        gen = torch.Generator(device=self.device)
        gen.manual_seed(int(seed))
        kept, have, made = [], 0, 0
        modes = {k: net.training for k, net in self.nets.items()}
        self.train_mode(False)  # batch norm with its running statistics, no dropout
        try:
            while have < n:
                have, made = self._sample_round(n, fixed, filters, gen, kept, have, made)
        finally:
            for k, net in self.nets.items():
                net.train(modes[k])
        out = pd.concat(kept, ignore_index=True).iloc[:n].reset_index(drop=True)
        return out[list(self.types)]

    def _sample_round(self, n, fixed, filters, gen, kept, have, made):
        """Generate one batch, keep the rows that meet the condition."""
        want = min(50_000, n - have if not filters else max(1000, 2 * (n - have)))
        if fixed is not None:
            idx = torch.full((want,), fixed[0], dtype=torch.long, device=self.device)
            cond = F.one_hot(idx, self.cond_dim).float()
        else:
            idx, cond = self.draw_conditions(want, gen, train=False)
        with torch.no_grad():
            rows = self.encoder.decode(self.generate(cond, gen).cpu().numpy())
        made += want
        if idx is not None:
            # A row is made as p(c) p(rest | c): the condition vector asked for
            # this value (in the real shares, or the one fixed), so the column
            # states it exactly.
            cats = self.cond_info["categories"]
            picked = idx.cpu().numpy()
            rows[self.cond_column] = np.asarray(cats, dtype=bool)[picked] if self.cond_info["type"] == "boolean" \
                else pd.Series(np.asarray(cats, dtype=object)[picked], dtype=str)
        for col, value in filters.items():
            rows = rows[rows[col] == value]
        kept.append(rows)
        have += len(rows)
        if filters and have < n and made >= max(100_000, 20 * n):
            shown = ", ".join(f"{c} = {v}" for c, v in filters.items())
            raise UserError(f"only {have} of {made:,} generated rows had {shown}; the model rarely makes that value. "
                            f"Ask for fewer rows, or train with condition_column set to {next(iter(filters))!r}")
        return have, made

    def film_strip(self):
        """Real (blue) against synthetic (orange) histograms of up to three
        columns: the condition column and the first numeric ones, from the
        same seeded draw every time."""
        from ..metrics.tabular import histogram_strip

        numeric = [c for c, t in self.types.items() if t == "numeric" and c != self.cond_column]
        others = [c for c in self.types if c not in numeric and c != self.cond_column]
        shown = ([self.cond_column] if self.cond_column else []) + numeric
        shown = (shown + others)[:3]
        synth = self.sample(FILM_STRIP_ROWS, seed=self.seed + 1)
        return histogram_strip(self.real_train, synth, self.types, shown)

    # ---- reports ------------------------------------------------------------------------
    def report(self, n: int | None = None, seed: int = 0) -> dict:
        """The fidelity / usefulness / privacy report (see
        :func:`aigc_core.metrics.tabular.tabular_report`) of ``n`` synthetic rows
        (default: as many as the training rows) against the training rows, with
        the held-out rows as the test set."""
        from ..metrics.tabular import tabular_report

        synth = self.sample(n or len(self.real_train), seed)
        return tabular_report(self.real_train, self.real_test if len(self.real_test) else None, synth,
                              self.types, self.label, seed=seed)

    def evaluate(self) -> dict[str, float]:
        from ..metrics.tabular import report_scores

        return report_scores(self.report())

    # ---- checkpoint -------------------------------------------------------------------
    def extra_state(self) -> dict:
        return {"encoder": self.encoder.state(), "cond_column": self.cond_column or "",
                "train_rows": torch.tensor(self.train_rows, dtype=torch.long),
                "test_rows": torch.tensor(self.test_rows, dtype=torch.long)}

    def load_state(self, state: dict, *, weights_only: bool = False) -> None:
        # the encoding first: a checkpoint for another table gets a plain
        # message instead of a mismatch deep in the network weights
        self.load_extra_state(state.get("extra") or {})
        super().load_state(state, weights_only=weights_only)

    def load_extra_state(self, extra: dict) -> None:
        if "encoder" not in extra:
            return
        encoder = TableEncoder.from_state(extra["encoder"])
        if encoder.dim != self.encoder.dim:
            raise UserError("this checkpoint was trained on a table with different columns or categories; "
                            "it cannot be used with the data set as it is now")
        self.cond_column = extra.get("cond_column") or None
        self._set_fitted(encoder, extra["train_rows"].cpu().numpy(), extra["test_rows"].cpu().numpy())


def _match_category(info: dict, value):
    """The stored category a user's value means (1, "yes", True -> True)."""
    if info["type"] == "boolean":
        text = str(value).strip().lower() if not isinstance(value, (bool, np.bool_)) else str(bool(value)).lower()
        if text in TRUE_TOKENS:
            return True
        if text in FALSE_TOKENS:
            return False
        raise UserError(f"{info['name']!r} is a yes/no column; ask for True or False (or 1/0), not {value!r}")
    cats = info["categories"]
    text = str(int(value)) if isinstance(value, float) and value.is_integer() else str(value).strip()
    if text in cats:
        return text
    lower = {c.lower(): c for c in cats}
    if text.lower() in lower:
        return lower[text.lower()]
    raise UserError(f"{info['name']!r} has no value {value!r}; its values are {', '.join(map(str, cats[:20]))}"
                    f"{', ...' if len(cats) > 20 else ''}")


class TabGANTrainer(TabularTrainer):
    """Conditional WGAN-GP with packing.

    Critic:    L_D = E_z[D(G(z, c), c)] - E_x[D(x, c)] + lambda * E[(||grad D(x_hat, c)||_2 - 1)^2]
    Generator: L_G = -E_z[D(G(z, c), c)] + CE(G(z, c)[block of the condition column], c)

    x_hat mixes a pack of real rows with a pack of generated rows at a random
    point between them; the cross-entropy term makes the generated row carry
    the value it was asked for. The critic scores real and generated packs in
    one pass; with ``lr_decay_steps`` both learning rates follow a cosine down
    to a tenth.
    """

    def __init__(self, cfg, data, device, seed, autocast=None):
        super().__init__(cfg, data, device, seed, autocast)
        if cfg.batch_size % cfg.pac:
            raise UserError(f"batch size ({cfg.batch_size}) must be a multiple of the packing ({cfg.pac})")
        in_g = cfg.noise_dim + self.cond_dim
        self.G = TabGenerator(in_g, cfg.hidden, cfg.layers, self.data_dim).to(device)
        self.D = TabCritic(self.data_dim + self.cond_dim, cfg.hidden, cfg.layers, cfg.pac, cfg.dropout).to(device)
        self.nets = {"G": self.G, "D": self.D}
        self.G_avg = None
        if cfg.ema > 0:
            self.G_avg = copy.deepcopy(self.G).requires_grad_(False)
            self.nets["G_avg"] = self.G_avg
        self.steps_done = 0  # for the learning-rate decay; kept in checkpoints
        self.optims = {
            "G": torch.optim.Adam(self.G.parameters(), lr=cfg.lr_g, betas=(0.5, 0.9), weight_decay=1e-6, foreach=True),
            "D": torch.optim.Adam(self.D.parameters(), lr=cfg.lr_d, betas=(0.5, 0.9), weight_decay=1e-6, foreach=True),
        }

    def gradient_penalty(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """E[(||grad_x_hat D(x_hat)||_2 - 1)^2] over packs, x_hat = a x + (1 - a) x_fake."""
        pac, width = self.cfg.pac, real.shape[1]
        a = torch.rand(real.shape[0] // pac, 1, 1, device=self.device, generator=self.gen)
        a = a.expand(-1, pac, width).reshape(-1, width)                        # one mixing weight per pack
        x_hat = (a * real + (1 - a) * fake).requires_grad_(True)              # (B, width)
        grad, = torch.autograd.grad(self.D(x_hat).sum(), x_hat, create_graph=True)
        return ((grad.reshape(-1, pac * width).norm(dim=1) - 1) ** 2).mean()  # norm over a whole pack

    def _fake(self, cond: torch.Tensor):
        z = torch.randn(cond.shape[0], self.cfg.noise_dim, device=self.device, generator=self.gen)
        raw = self.G(torch.cat([z, cond], dim=1))                   # (B, data_dim)
        return raw, activate(raw, self.encoder.spans, self.cfg.tau, self.gen)

    def lr_scale(self) -> float:
        """1 at the start, a cosine down to 0.1 at ``lr_decay_steps``, 0.1 after."""
        if not self.cfg.lr_decay_steps:
            return 1.0
        progress = min(1.0, self.steps_done / self.cfg.lr_decay_steps)
        return 0.1 + 0.45 * (1.0 + math.cos(math.pi * progress))

    def train_step(self) -> dict[str, torch.Tensor]:
        cfg, B = self.cfg, self.cfg.batch_size
        if cfg.lr_decay_steps:
            scale = self.lr_scale()
            for name, base in (("G", cfg.lr_g), ("D", cfg.lr_d)):
                for group in self.optims[name].param_groups:
                    group["lr"] = base * scale
        self.steps_done += 1
        for p in self.D.parameters():
            p.requires_grad_(True)
        for _ in range(cfg.d_steps):
            cond_idx, cond = self.draw_conditions(B, self.gen)       # (B,), (B, cond_dim)
            real = self.real_batch(cond_idx, B)                       # (B, data_dim)
            with torch.no_grad():
                _, fake = self._fake(cond)                            # (B, data_dim)
            real_in, fake_in = torch.cat([real, cond], 1), torch.cat([fake, cond], 1)
            scores = self.D(torch.cat([real_in, fake_in]))           # (2B/pac, 1): real packs, then fake packs
            d_real, d_fake = scores[: B // cfg.pac].mean(), scores[B // cfg.pac:].mean()
            gp = self.gradient_penalty(real_in, fake_in)
            loss_d = d_fake - d_real + cfg.gp_weight * gp
            self.optims["D"].zero_grad(set_to_none=True)
            loss_d.backward()
            self.optims["D"].step()

        for p in self.D.parameters():  # the critic is only a judge in G's step
            p.requires_grad_(False)
        cond_idx, cond = self.draw_conditions(B, self.gen)
        raw, fake = self._fake(cond)
        adversarial = -self.D(torch.cat([fake, cond], 1)).mean()
        if cond_idx is not None:
            cond_ce = F.cross_entropy(raw[:, self.cond_span.start:self.cond_span.stop], cond_idx)
        else:
            cond_ce = torch.zeros((), device=self.device)
        loss_g = adversarial + cond_ce
        self.optims["G"].zero_grad(set_to_none=True)
        loss_g.backward()
        self.optims["G"].step()
        if self.G_avg is not None:
            self._update_average()
        return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach(), "wasserstein": (d_real - d_fake).detach(),
                "gradient_penalty": gp.detach(), "condition_ce": cond_ce.detach()}

    @torch.no_grad()
    def _update_average(self) -> None:
        w = 1.0 - self.cfg.ema
        for avg, live in zip(self.G_avg.parameters(), self.G.parameters()):
            avg.lerp_(live, w)
        for avg, live in zip(self.G_avg.buffers(), self.G.buffers()):
            avg.copy_(live)  # batch-norm statistics follow the live generator

    def extra_state(self) -> dict:
        return {**super().extra_state(), "steps_done": torch.tensor(self.steps_done, dtype=torch.long)}

    def load_extra_state(self, extra: dict) -> None:
        super().load_extra_state(extra)
        if "steps_done" in extra:
            self.steps_done = int(extra["steps_done"])

    def generate(self, cond: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        G = self.G_avg if self.G_avg is not None else self.G
        out = []
        for chunk in cond.split(10_000):
            z = torch.randn(chunk.shape[0], self.cfg.noise_dim, device=self.device, generator=gen)
            raw = G(torch.cat([z, chunk], dim=1))
            out.append(activate(raw, self.encoder.spans, self.cfg.tau, gen, hard=True))
        return torch.cat(out)


class TabVAETrainer(TabularTrainer):
    """Conditional VAE.

    loss = (w * reconstruction + KL) / batch, with
    reconstruction = sum over numbers of (x - x_hat)^2 / (2 sigma^2) + log sigma
                   + sum over category blocks of the cross-entropy,
    KL(q(z|x,c) || N(0, I)) = -1/2 * sum(1 + log sigma_z^2 - mu^2 - sigma_z^2).
    New rows: z ~ N(0, I), decode with the condition c, add sigma-scaled noise
    to numbers and draw each category from its softmax.
    """

    def __init__(self, cfg, data, device, seed, autocast=None):
        super().__init__(cfg, data, device, seed, autocast)
        self.E = TabVAEEncoder(self.data_dim + self.cond_dim, cfg.hidden, cfg.layers, cfg.latent_dim).to(device)
        self.Dec = TabVAEDecoder(cfg.latent_dim + self.cond_dim, cfg.hidden, cfg.layers, self.data_dim).to(device)
        self.nets = {"E": self.E, "Dec": self.Dec}
        params = list(self.E.parameters()) + list(self.Dec.parameters())
        self.optims = {"VAE": torch.optim.Adam(params, lr=cfg.lr, weight_decay=1e-5, foreach=True)}
        value = [s for s in self.encoder.spans if s.kind == "value"]
        self.value_cols = torch.tensor([s.start for s in value], dtype=torch.long, device=device)
        self.value_tanh = torch.tensor([s.activation == "tanh" for s in value], dtype=torch.bool, device=device)

    def _values(self, raw: torch.Tensor) -> torch.Tensor:
        v = raw[:, self.value_cols]
        return torch.where(self.value_tanh, torch.tanh(v), v)

    def train_step(self) -> dict[str, torch.Tensor]:
        B = self.cfg.batch_size
        cond_idx, cond = self.draw_conditions(B, self.gen)
        x = self.real_batch(cond_idx, B)                                      # (B, data_dim)
        mu, logvar = self.E(torch.cat([x, cond], 1))                          # (B, latent) each
        eps = torch.randn(mu.shape, device=self.device, generator=self.gen)
        z = mu + torch.exp(0.5 * logvar) * eps                                # reparameterisation
        raw, log_sigma = self.Dec(torch.cat([z, cond], 1))                    # (B, data_dim), (data_dim,)
        ls = log_sigma[self.value_cols]
        numbers = ((x[:, self.value_cols] - self._values(raw)) ** 2 / (2 * torch.exp(2 * ls)) + ls).sum()
        categories = sum(F.cross_entropy(raw[:, s.start:s.stop], x[:, s.start:s.stop].argmax(1), reduction="sum")
                         for s in self.encoder.spans if s.activation == "softmax")
        recon = (numbers + categories) / B
        kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / B
        loss = self.cfg.recon_weight * recon + kl
        self.optims["VAE"].zero_grad(set_to_none=True)
        loss.backward()
        self.optims["VAE"].step()
        return {"loss": loss.detach(), "recon": recon.detach(), "kl": kl.detach()}

    def generate(self, cond: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        out = []
        for chunk in cond.split(10_000):
            z = torch.randn(chunk.shape[0], self.cfg.latent_dim, device=self.device, generator=gen)
            raw, log_sigma = self.Dec(torch.cat([z, chunk], dim=1))
            rows = activate(raw, self.encoder.spans, 1.0, gen, hard=True)
            noise = torch.randn(chunk.shape[0], len(self.value_cols), device=self.device, generator=gen)
            values = self._values(raw) + noise * torch.exp(log_sigma[self.value_cols])
            rows[:, self.value_cols] = torch.where(self.value_tanh, values.clamp(-1, 1), values)
            out.append(rows)
        return torch.cat(out)


# ---------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------

def _fits_table(summary: dict) -> str | None:
    if summary.get("count", 0) < MIN_ROWS:
        return f"needs at least {MIN_ROWS} rows"
    if summary.get("columns", 0) < 2:
        return "needs at least two columns"
    return None


register(ModelSpec(
    name="tab_gan",
    title="Tabular GAN (conditional WGAN-GP)",
    family="tabular",
    data_kind="table",
    description="A generator makes rows from noise and a chosen column's value; a critic compares packs of real and "
                "generated rows (Wasserstein loss with gradient penalty). After CTGAN.",
    config_cls=TabGANConfig,
    trainer_cls=TabGANTrainer,
    presets={
        # The 30 s recipe: about 290 steps/s on one core of a quiet 2-core CPU (e-commerce table), so 4,000
        # steps take 14-20 s there; a busy machine stops at 30 s (1,500+ steps already reach 0.95x TSTR).
        "Quick": {"model": {"hidden": 128, "layers": 2, "batch_size": 200, "lr_g": 1e-3, "lr_d": 1e-3,
                            "lr_decay_steps": 4000},
                  "train": {"steps": 4000, "max_seconds": 30, "log_every": 25, "sample_every": 250}},
        "Standard": {"model": {"hidden": 256, "layers": 2, "batch_size": 500, "lr_g": 2e-4, "lr_d": 2e-4},
                     "train": {"steps": 20000, "max_seconds": 300, "log_every": 50, "sample_every": 1000}},
    },
    fits=_fits_table,
))

register(ModelSpec(
    name="tab_vae",
    title="Tabular VAE",
    family="tabular",
    data_kind="table",
    description="An encoder squeezes each row into a small code, a decoder rebuilds it; new rows are decoded from "
                "random codes. After TVAE.",
    config_cls=TabVAEConfig,
    trainer_cls=TabVAETrainer,
    presets={
        "Quick": {"model": {"hidden": 128, "latent_dim": 32, "batch_size": 200, "lr": 1e-3},
                  "train": {"steps": 3000, "max_seconds": 30, "log_every": 25, "sample_every": 250}},
        "Standard": {"model": {"hidden": 256, "latent_dim": 64, "batch_size": 500, "lr": 1e-3},
                     "train": {"steps": 20000, "max_seconds": 300, "log_every": 50, "sample_every": 1000}},
    },
    fits=_fits_table,
))
