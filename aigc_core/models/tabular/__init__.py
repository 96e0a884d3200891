"""Tabular generators (the declarations): ``tab_gan`` (a conditional Wasserstein GAN, after CTGAN)
and ``tab_vae`` (a conditional VAE, after TVAE).

A table mixes numbers and categories, so both models first turn each row into
a vector of numbers with a :class:`TableEncoder` and learn to produce such
vectors; sampling decodes them back into a table with the original column
names, types and ranges.

- **Numbers** get one of these encodings (the ``numeric_encoding`` setting):

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
  - ``standard``: z = (x - mean) / std, which keeps a column that is a
    weighted sum of others exactly that; ``auto`` z-scores columns of nearly
    all-distinct, roughly symmetric numbers and quantile-maps the rest (what
    wide tables get from ``tab_gan``'s preset rule, see ``fit.py``).

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

import functools

from ...data.table_encoder import TableEncoder  # noqa: F401 - as tabular.TableEncoder
from ...registry import ModelSpec, register
from .config import TableKnobs, TabGANConfig, TabVAEConfig
from .networks import Residual, TabCritic, TabGenerator, TabVAEDecoder, TabVAEEncoder, activate  # noqa: F401
from .explain import tabular_explanation
from .fit import fit_table_preset
from .trainer import MIN_ROWS, TabGANTrainer, TabularTrainer, TabVAETrainer, split_rows  # noqa: F401

TABLE = dict(family="tabular", data_kind="table", knobs=TableKnobs, capabilities={"condition"},
             film_caption="Histograms of real (blue) against synthetic (orange) values of up to three columns.")

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
    **TABLE,
    charts=[("Losses", ("loss_d", "loss_g"), "What the optimiser minimises."),
            ("Wasserstein estimate", ("wasserstein",),
             "E[D(real)] - E[D(synthetic)]: the critic's estimate of how far apart real and synthetic rows are."),
            ("Penalty and condition", ("gradient_penalty", "condition_ce", "moment_gap"),
             "The gradient penalty keeps the critic smooth; the condition cross-entropy says whether rows carry "
             "the value they were asked for; the moment gap (when moment matching is on) how far each value's "
             "column means, spreads and covariances are from the real ones.")],
    metrics={"loss_d": ("Critic loss", "The critic's Wasserstein loss plus the gradient penalty; a game between "
                        "two players, so it alone does not say which run is better."),
             "loss_g": ("Generator loss", "The generator's loss: minus the critic's score of its rows, plus the condition "
                        "cross-entropy."),
             "wasserstein": ("Wasserstein estimate", "The critic's mean score on real rows minus on generated rows "
                             "in the last batches; it shrinks as the generated rows get harder to tell apart, but "
                             "only within one run."),
             "gradient_penalty": ("Gradient penalty", "WGAN-GP's penalty: how far the critic's gradient norm is "
                                  "from 1 between real and generated rows."),
             "condition_ce": ("Condition cross-entropy", "How far generated rows are from carrying the condition "
                              "value they were asked for.", "lower"),
             "moment_gap": ("Moment gap", "Squared distance between the generated and the real rows' column means "
                            "spreads and covariances, per value of the condition, in the encoded space (0 when moment matching "
                            "is off).", "lower")},
    explain=tabular_explanation("tab_gan"),
    tiny={"model": {"hidden": 16, "layers": 1, "batch_size": 20, "pac": 2, "noise_dim": 8}},
    description="A generator makes rows from noise and a chosen column's value; a critic compares packs of real and "
                "generated rows (Wasserstein loss with gradient penalty). After CTGAN.",
    config_cls=TabGANConfig,
    trainer_cls=TabGANTrainer,
    fit_preset=functools.partial(fit_table_preset, TabGANConfig),
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
    **TABLE,
    charts=[("Losses", ("loss",), "What the optimiser minimises."),
            ("Reconstruction and KL", ("recon", "kl"), "The two parts of the tabular VAE's loss.")],
    metrics={"loss": ("Training loss", "w * reconstruction + KL on the last training batches.", "lower"),
             "recon": ("Reconstruction loss", "How badly the decoder rebuilt its training rows in the last batches.",
                       "lower"),
             "kl": ("KL divergence", "How far the codes of the last training batches are from the prior N(0, I), "
                    "in nats.")},
    explain=tabular_explanation("tab_vae"),
    tiny={"model": {"hidden": 16, "layers": 1, "latent_dim": 4, "batch_size": 20}},
    description="An encoder squeezes each row into a small code, a decoder rebuilds it; new rows are decoded from "
                "random codes. After TVAE.",
    config_cls=TabVAEConfig,
    trainer_cls=TabVAETrainer,
    fit_preset=functools.partial(fit_table_preset, TabVAEConfig),
    presets={
        "Quick": {"model": {"hidden": 128, "latent_dim": 32, "batch_size": 200, "lr": 1e-3},
                  "train": {"steps": 3000, "max_seconds": 30, "log_every": 25, "sample_every": 250}},
        "Standard": {"model": {"hidden": 256, "latent_dim": 64, "batch_size": 500, "lr": 1e-3},
                     "train": {"steps": 20000, "max_seconds": 300, "log_every": 50, "sample_every": 1000}},
    },
    fits=_fits_table,
))
