"""Diffusion models: ``ddpm``: the declarations.

Images are destroyed by the forward process q(x_t | x_0) (Gaussian noise
added over T levels on a cosine schedule) and a small UNet learns to name the
noise at any level (the DDPM objective); sampling walks back from pure noise
with the ancestral or the DDIM update, in a chosen number of steps. The
formulas are in :mod:`.networks` (and on the explanation panel), the trainer
with its EMA weights in :mod:`.trainer`.
"""

from __future__ import annotations

from ...registry import ModelSpec, register
from .config import DDPMConfig, DDPMKnobs
from .explain import ddpm_explanation
from .networks import SAMPLERS, UNet, ancestral_update, cosine_alpha_bar, ddim_update, noise_prediction_loss, \
    q_sample, sampling_levels  # noqa: F401 - the network, schedule and updates, as diffusion.<name>
from .trainer import DDPMTrainer

CHARTS = [
    ("Loss", ("loss",), "The noise-prediction error ||eps - eps_theta(x_t, t)||^2 per pixel: it starts at 1 "
                        "(predicting no noise) and falls as the UNet learns to see the image under the noise."),
    ("Loss by noise level", ("loss_t1", "loss_t2", "loss_t3", "loss_t4"),
     "The same error for each quarter of the noise levels (t1: the least noisy quarter, t4: the noisiest). Almost "
     "clean images hide their little noise well, so t1 stays highest; at the noisiest levels the noise is "
     "nearly all there is and is easy to name."),
    ("Gradient norm", ("grad_norm",), "Size of the whole gradient before clipping; spikes above the clip are cut down."),
    ("Learning rate", ("lr",), "The Adam step size: a linear warm-up, then constant."),
]

METRICS = {
    "loss": ("Noise-prediction loss", "Mean squared error between the added noise and the UNet's guess, per pixel.",
             "lower"),
    "loss_t1": ("Loss, least noisy quarter", "The loss at the quarter of noise levels closest to the clean image.",
                "lower"),
    "loss_t2": ("Loss, second quarter", "The loss at the second quarter of the noise levels.", "lower"),
    "loss_t3": ("Loss, third quarter", "The loss at the third quarter of the noise levels.", "lower"),
    "loss_t4": ("Loss, noisiest quarter", "The loss at the quarter of noise levels closest to pure noise.", "lower"),
    "grad_norm": ("Gradient norm", "L2 norm of the UNet's gradient before clipping."),
    "lr": ("Learning rate", "Adam's step size at this step."),
}

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
    knobs=DDPMKnobs,
    capabilities={"denoise"},
    charts=CHARTS,
    metrics=METRICS,
    explain=ddpm_explanation,
    film_caption=FILM_CAPTION,
    # Every sample costs `sample_steps` UNet passes (50 by default): 1,000 samples keep the end-of-run
    # evaluation near a minute on a busy 2-core CPU (5,000 took 435 s); FID on fewer samples reads higher,
    # so compare models with `eval --run ID -n N` at the same N.
    eval_budget=1000,
    tiny={"model": {"width": 8, "blocks": 1, "patch": 2, "batch_size": 8, "timesteps": 100, "sample_steps": 3}},
    presets={
        # width 16 is not enough: at 600 s on a busy CPU it scored FID 257 on glyphs, width 32 scored 11
        "Quick": {"model": {"width": 32, "patch": 2, "batch_size": 64},
                  "train": {"steps": 3000, "max_seconds": 30, "log_every": 25, "sample_every": 200}},
        # the 600-s recipe on glyphs, as measured: batch 64 reached FID 2.98 (2,000 samples, 50 ancestral
        # steps) after 1,749 steps on a busy CPU; batch 32 (twice the steps) is untested for quality
        "Standard": {"model": {"width": 32, "patch": 2, "batch_size": 64},
                     "train": {"steps": 20000, "max_seconds": 600, "log_every": 25, "sample_every": 500}},
    },
    fits=_fits,
))
