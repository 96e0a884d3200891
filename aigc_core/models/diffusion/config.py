"""DDPM's settings and its sampling knobs."""

from __future__ import annotations

from dataclasses import dataclass

from ...config import param
from .networks import SAMPLERS

SAMPLER_HELP = ("ancestral: the original DDPM chain, fresh noise at every step, which also washes out a young "
                "model's small mistakes (cleaner strokes); ddim: deterministic, the same noise always gives the "
                "same image, and good in fewer steps.")


@dataclass
class DDPMConfig:
    """Denoising diffusion with a small UNet (Ho et al. 2020; cosine schedule, DDIM sampling)."""

    width: int = param(32, "UNet width", "Feature maps at full size; the two smaller levels have twice as many.",
                       min=8, max=256, step=8)
    blocks: int = param(1, "Residual blocks per level", "Residual blocks on each level of the UNet, on the way down and up.",
                        min=1, max=4)
    patch: int = param(2, "Pixel patch", "1: the UNet works on every pixel; 2: it folds each 2 x 2 block of pixels "
                       "into channels and works at half the side, about four times faster with a little less fine "
                       "detail.", choices=(1, 2))
    timesteps: int = param(1000, "Noise levels (T)", "How many small noising steps turn an image into pure noise; "
                           "samplers may visit only some of them.", min=10, max=4000, step=10, advanced=True)
    lr: float = param(2e-3, "Learning rate", "Adam step size (after a short warm-up).", min=1e-6, max=1e-1, log=True)
    warmup: int = param(100, "Warm-up steps", "The learning rate rises linearly from 0 over these steps.",
                        min=0, max=100_000, advanced=True)
    batch_size: int = param(64, "Batch size", "Real images per step, each noised to its own random level.",
                            min=4, max=4096)
    ema_decay: float = param(0.999, "EMA decay", "Sampling uses an exponential moving average of the weights; each step "
                             "keeps this share of the average (early on less: (1 + n) / (10 + n) after n steps).",
                             min=0.0, max=0.99999, step=0.0005, advanced=True)
    grad_clip: float = param(1.0, "Gradient clip", "Largest gradient norm a step may use (0 = no clipping).",
                             min=0.0, max=100.0, step=0.5, advanced=True)
    sample_steps: int = param(50, "Sampling steps (default)", "Denoising steps the evaluation and the Gallery start "
                              "with; more is slower and usually a little sharper.", min=1, max=4000)
    sampler: str = param("ancestral", "Sampler (default)", SAMPLER_HELP, choices=SAMPLERS)


@dataclass
class DDPMKnobs:
    """Sampling controls: the keyword arguments of ``DDPMTrainer.sample`` and
    ``DDPMTrainer.denoise_path``."""

    steps: int = param(50, "Sampling steps", "Denoising steps from pure noise to the image: more is slower and "
                       "usually cleaner (ancestral gains up to a hundred or more, DDIM levels off sooner).",
                       min=1, max=1000)
    sampler: str = param("ancestral", "Sampler", SAMPLER_HELP, choices=SAMPLERS)
    eta: float = param(0.0, "DDIM eta", "Fresh noise per DDIM step: 0 = deterministic, 1 = as random as ancestral.",
                       min=0.0, max=1.0, step=0.1)
