"""The tabular models' settings and sampling knobs."""

from __future__ import annotations

from dataclasses import dataclass

from ...config import param
from ...data.table_encoder import ENCODINGS

#: moment matching compares covariances while (condition values) x (encoded width)^2 stays below this
#: (4 MB; a step then costs at most batch x this many multiplications more)
MAX_COVARIANCE_ENTRIES = 1_000_000
#: ``clusters``: each half of a split needs at least this many training rows
MIN_CLUSTER_ROWS = 30
#: ``clusters``: a split is kept when the Anderson-Darling statistic of the rows along it exceeds this
CLUMP_SPLIT_A2 = 1.8692
#: ``clusters``: k-means is fitted on at most this many rows of a value (all of them are assigned)
MAX_CLUSTER_FIT_ROWS = 20_000

# ---------------------------------------------------------------------------
# Configs
# ---------------------------------------------------------------------------

COND_HELP = ("A categorical or yes/no column the model is conditioned on, so you can ask for rows with a given value "
             "and rare values are learned. Empty = the label column (or the first categorical column); 'none' = no condition.")
ENC_HELP = ("How numbers are fed to the networks. quantile: each column mapped to a standard normal through its "
            "distribution function (fast, robust to skew). gmm: CTGAN's mode-specific normalisation with a Gaussian "
            "mixture per column (a value = its mode + its position within the mode). standard: z-scores, which keep "
            "a column that is a sum of others exactly that. auto: z-scores for columns of nearly all-distinct, "
            "roughly symmetric numbers, quantile for the rest.")


@dataclass
class TabGANConfig:
    """Conditional WGAN-GP for tables (CTGAN-style)."""

    condition_column: str = param("", "Condition on column", COND_HELP)
    numeric_encoding: str = param("quantile", "Numeric encoding", ENC_HELP, choices=ENCODINGS)
    max_modes: int = param(10, "Mixture modes (gmm)", "Most modes per numeric column for the gmm encoding.", min=1, max=30, advanced=True)
    noise_dim: int = param(64, "Noise size", "Length of the random vector z each row starts from.", min=2, max=512)
    hidden: int = param(128, "Hidden width", "Units per hidden layer of the generator and the critic.", min=16, max=1024, step=16)
    layers: int = param(2, "Hidden layers", "Residual blocks in the generator, dense layers in the critic.", min=1, max=6)
    batch_size: int = param(200, "Batch size", "Real rows per step (and as many generated ones); a multiple of the packing.", min=10, max=10000, step=10,
                         multiple_of="pac")
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
    clusters: int = param(0, "Clusters per value", "Splits each condition value's training rows into up to this many "
                          "clumps (G-means: k-means halves kept only where the rows clearly form two bumps, at least "
                          f"{MIN_CLUSTER_ROWS} rows each; a table whose numbers are all tied counts or pixels, which the "
                          "test cannot judge, is split by k-means alone) and tells the generator and the critic which group a row "
                          "is from, each group drawn in its real share, so a value whose rows form several clumps "
                          "keeps all of them instead of a few or the space between them. 0 = off.",
                          min=0, max=16, advanced=True)
    moment_weight: float = param(0.0, "Moment matching weight", "Also pulls the means, spreads and covariances of the "
                                 "encoded columns of the generated rows, per value of the condition, towards the real rows' "
                                 "(weighted by this), so each value's rows get its columns right even where the "
                                 "critic sees the condition as one input among many (wide tables). 0 = off.",
                                 min=0.0, max=10.0, step=0.1, advanced=True)
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


@dataclass
class TableKnobs:
    """What a tabular model's rows can be asked for."""

    condition: str = param("", "Fix a column's value", "column=value (for example purchase=1): every generated row "
                           "then has that value; several as column=value, column=value. Empty = no condition.")
