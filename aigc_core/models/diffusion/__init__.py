"""Diffusion models: ``ddpm``.

Networks, schedule and the sampling updates are in :mod:`.networks`, the
trainer in :mod:`.trainer`; this module registers the model. The module-level
``KNOBS``, ``CAPABILITIES``, ``CHARTS``, ``METRIC_LABELS``, ``EXPLAIN`` and
``FILM_CAPTION`` describe the model for the pages (sampling controls, the
denoising scrubber, charts, the explanation panel).
"""

from __future__ import annotations

from dataclasses import dataclass

from ...config import param
from ...registry import ModelSpec, register
from .networks import SAMPLERS
from .trainer import DDPMConfig, DDPMTrainer


@dataclass
class KNOBS:
    """Sampling controls: the keyword arguments of ``DDPMTrainer.sample`` and
    ``DDPMTrainer.denoise_path``."""

    steps: int = param(50, "Sampling steps", "Denoising steps from pure noise to the image: more is slower and "
                       "usually cleaner (ancestral gains up to a hundred or more, DDIM levels off sooner).",
                       min=1, max=1000)
    sampler: str = param("ancestral", "Sampler", "ancestral: the original DDPM chain, fresh noise at every step, "
                         "which also washes out the model's small mistakes; ddim: deterministic, the same noise "
                         "always gives the same image, and good in fewer steps.", choices=SAMPLERS)
    eta: float = param(0.0, "DDIM eta", "Fresh noise per DDIM step: 0 = deterministic, 1 = as random as ancestral.",
                       min=0.0, max=1.0, step=0.1)


CAPABILITIES = {"denoise"}

CHARTS = [
    ("Loss", ["loss"], "The noise-prediction error ||eps - eps_theta(x_t, t)||^2 per pixel: it starts at 1 (predicting "
                       "no noise) and falls as the UNet learns to see the image under the noise."),
    ("Loss by noise level", ["loss_t1", "loss_t2", "loss_t3", "loss_t4"],
     "The same error for each quarter of the noise levels (t1: the least noisy quarter, t4: the noisiest). Almost "
     "clean images hide their little noise well, so t1 stays highest; at the noisiest levels the noise is "
     "nearly all there is and is easy to name."),
    ("Gradient norm", ["grad_norm"], "Size of the whole gradient before clipping; spikes above the clip are cut down."),
    ("Learning rate", ["lr"], "The Adam step size: a linear warm-up, then constant."),
]

METRIC_LABELS = {
    "loss": ("Noise-prediction loss", "Mean squared error between the added noise and the UNet's guess, per pixel."),
    "loss_t1": ("Loss, least noisy quarter", "The loss at the quarter of noise levels closest to the clean image."),
    "loss_t2": ("Loss, second quarter", "The loss at the second quarter of the noise levels."),
    "loss_t3": ("Loss, third quarter", "The loss at the third quarter of the noise levels."),
    "loss_t4": ("Loss, noisiest quarter", "The loss at the quarter of noise levels closest to pure noise."),
    "grad_norm": ("Gradient norm", "L2 norm of the UNet's gradient before clipping."),
    "lr": ("Learning rate", "Adam's step size at this step."),
}

EXPLAIN = r"""
**Denoising diffusion (DDPM).** Destroy images with noise step by step, and
train a network to undo one step; generating is undoing all of them, starting
from pure noise.

**Forward process.** After $t$ of $T$ noising steps an image $x_0$ is

$$q(x_t \mid x_0) = \mathcal{N}\!\left(\sqrt{\bar\alpha_t}\,x_0,\ (1-\bar\alpha_t)\,I\right),\qquad
x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon,\quad \epsilon\sim\mathcal{N}(0, I)$$

where the cosine schedule $\bar\alpha_t = f(t)/f(0)$, $f(t) = \cos^2\!\big(\tfrac{t/T + s}{1+s}\cdot\tfrac{\pi}{2}\big)$,
falls from almost 1 (the image) to almost 0 (pure noise).

**Objective.** A UNet $\epsilon_\theta(x_t, t)$ guesses the noise that was added, at a random level $t$:

$$L = \mathbb{E}_{x_0,\,t,\,\epsilon}\,\big\|\epsilon - \epsilon_\theta(x_t, t)\big\|^2$$

**Sampling.** Start from $x_T \sim \mathcal{N}(0, I)$ and walk down $S$ evenly spaced levels
$t \to s$. Each step first estimates the clean image
$\hat x_0 = \big(x_t - \sqrt{1-\bar\alpha_t}\,\epsilon_\theta(x_t, t)\big)/\sqrt{\bar\alpha_t}$ (clipped to the pixel range).

*DDIM* (deterministic for $\eta = 0$):

$$x_s = \sqrt{\bar\alpha_s}\,\hat x_0 + \sqrt{1-\bar\alpha_s-\sigma^2}\;\hat\epsilon + \sigma z,\qquad
\sigma = \eta\sqrt{\tfrac{1-\bar\alpha_s}{1-\bar\alpha_t}}\sqrt{1-\tfrac{\bar\alpha_t}{\bar\alpha_s}}$$

with $\hat\epsilon = (x_t - \sqrt{\bar\alpha_t}\,\hat x_0)/\sqrt{1-\bar\alpha_t}$.

*Ancestral* (the original DDPM chain): with $\beta = 1 - \bar\alpha_t/\bar\alpha_s$, draw

$$x_s = \frac{\sqrt{\bar\alpha_s}\,\beta}{1-\bar\alpha_t}\,\hat x_0 + \frac{\sqrt{1-\beta}\,(1-\bar\alpha_s)}{1-\bar\alpha_t}\,x_t
+ \sqrt{\tfrac{1-\bar\alpha_s}{1-\bar\alpha_t}\,\beta}\;z,\qquad z\sim\mathcal{N}(0, I)$$

Samples use an exponential moving average of the weights, which is smoother than the latest step's.
"""

FILM_CAPTION = ("The same 64 starting noises denoised by the averaged (EMA) weights in 10 DDIM steps at each "
                "checkpoint of training: static first, then blobs, then strokes, then digits.")


def _fits(summary: dict) -> str | None:
    size = summary.get("size")
    if not isinstance(size, int) or size % 4 or size < 8:
        return f"ddpm needs images whose side is a multiple of 4 (this set is {size} px); re-import at 28, 32 or 64 px"
    return None


register(ModelSpec(
    name="ddpm",
    title="Diffusion (DDPM)",
    family="diffusion",
    data_kind="image",
    description="Learns to remove noise one small step at a time; generating is starting from pure noise and "
                "denoising all the way to an image.",
    config_cls=DDPMConfig,
    trainer_cls=DDPMTrainer,
    presets={
        # width 16 is not enough: at 600 s on a busy CPU it scored FID 257 on glyphs, width 32 scored 11
        "Quick": {"model": {"width": 32, "patch": 2, "batch_size": 64},
                  "train": {"steps": 3000, "max_seconds": 30, "log_every": 25, "sample_every": 200}},
        "Standard": {"model": {"width": 32, "patch": 2, "batch_size": 64},
                     "train": {"steps": 20000, "max_seconds": 600, "log_every": 25, "sample_every": 500}},
    },
    fits=_fits,
))
