"""Autoencoders: ``vae`` (fully connected), ``conv_vae`` and ``ae``: the declarations.

An encoder squeezes an image into a short code; a decoder rebuilds the image
from the code. The plain autoencoder (``ae``) learns codes that only have to be
decodable, so random codes decode to noise unless we sample them from where
the training codes actually lie (a Gaussian fitted to them). The variational
autoencoder (VAE) instead encodes each image as a distribution
q(z|x) = N(mu(x), sigma^2(x)) and is pushed towards the prior N(0, I), so that
decoding z ~ N(0, I) gives new images.

All three see images in [0, 1]; the decoder outputs logits and sigmoid(logit)
is the pixel value.
"""

from __future__ import annotations

from ...registry import ModelSpec, register
from ...image_presets import image_preset_rule
from .config import AEConfig, AutoencoderKnobs, ConditionalAutoencoderKnobs, ConvVAEConfig, VAEConfig
from .networks import RECON_LOSSES, conv_decoder, conv_encoder, kl_divergence, mlp_decoder, mlp_encoder, \
    reconstruction_loss, reparameterise, vae_loss  # noqa: F401 - as vae.<name>
from .explain import autoencoder_explanation
from .trainer import CONV_SIZES, AETrainer, ConvVAETrainer, VAETrainer

# ---- what the autoencoders declare ------------------------------------------------------

METRICS = {
    "loss": ("Training loss", "The model's own loss on its last training batches (reconstruction + beta * KL for a VAE).", "lower"),
    "recon": ("Reconstruction loss", "How badly the decoder rebuilt its training inputs in the last batches (summed "
              "over pixels, per image).", "lower"),
    "kl": ("KL divergence", "How far the codes of the last training batches are from the prior N(0, I), in nats."),
    "grad_norm": ("Gradient norm", "Size of the last weight update's gradient."),
}
LOSSES = ("Losses", ("loss", "val_loss"), "What the optimiser minimises; the held-out curve is the same loss on the "
          "tenth of the images it never trains on, and the dotted line marks the best checkpoint by it.")
VAE = dict(
    family="vae", data_kind="image", knobs=AutoencoderKnobs, capabilities={"interpolate", "reconstruct"},
    charts=[LOSSES,
            ("Reconstruction", ("recon",), "How badly the decoder rebuilds its input (nats per image for bce)."),
            ("KL divergence", ("kl",), "How far the codes are from the prior N(0, I) (nats per image).")],
    metrics=METRICS, eval_budget=5000, best_by="val_loss",
    explain=lambda settings: autoencoder_explanation("vae", settings["recon_loss"]),
    film_caption="The decoder's output for the same fixed codes z ~ N(0, I) at every frame.",
)

def _fits_conv(summary: dict) -> str | None:
    size = summary.get("size")
    if size not in CONV_SIZES:
        return f"conv_vae needs 28, 32 or 64 pixel images (this set is {size} px); use vae or re-import at a supported size"
    return None


#: an autoencoder's preset rule (see :mod:`aigc_core.image_presets`): below 2,000 images every
#: training image is a random crop scaled back up, so the decoder does not learn the set by heart
VAE_FEW_IMAGES = 2000


def _autoencoder_rule(config_cls, widths):
    return image_preset_rule(config_cls, widths=widths, regulariser="augment", few=VAE_FEW_IMAGES, small="crop")


_QUICK_TRAIN = {"steps": 2000, "max_seconds": 30, "log_every": 25, "sample_every": 200}
_STANDARD_TRAIN = {"steps": 10000, "max_seconds": 240, "log_every": 50, "sample_every": 500}

register(ModelSpec(
    name="vae",
    labs=("latent",),
    title="VAE (fully connected)",
    **VAE,
    description="Encodes each image as a small cloud in a 20-number code space, then learns to draw images from any point near the centre.",
    config_cls=VAEConfig,
    trainer_cls=VAETrainer,
    fit_preset=_autoencoder_rule(VAEConfig, ("hidden",)),
    tiny={"model": {"hidden": 32, "latent_dim": 4, "batch_size": 8}},
    presets={"Quick": {"model": {"hidden": 256, "batch_size": 128}, "train": dict(_QUICK_TRAIN)},
             "Standard": {"model": {"hidden": 400, "batch_size": 128}, "train": dict(_STANDARD_TRAIN)}},
))

register(ModelSpec(
    name="conv_vae",
    labs=("latent",),
    title="VAE (convolutional)",
    **dict(VAE, knobs=ConditionalAutoencoderKnobs, capabilities={"interpolate", "reconstruct", "condition"},
           film_caption=VAE["film_caption"] + " A class-conditional run: one row per class, the same codes in "
                                              "each row.",
           explain=lambda settings: autoencoder_explanation("vae", settings["recon_loss"],
                                                            conditional=settings.get("conditional", False))),
    description="A VAE whose encoder and decoder are convolutional, so it sees strokes and edges rather than single pixels.",
    config_cls=ConvVAEConfig,
    trainer_cls=ConvVAETrainer,
    fit_preset=_autoencoder_rule(ConvVAEConfig, ("width",)),
    tiny={"model": {"width": 8, "latent_dim": 4, "batch_size": 8, "conditional": True}},
    presets={"Quick": {"model": {"width": 16, "batch_size": 64}, "train": dict(_QUICK_TRAIN, steps=1500)},
             "Standard": {"model": {"width": 32, "batch_size": 128}, "train": dict(_STANDARD_TRAIN)}},
    fits=_fits_conv,
))

register(ModelSpec(
    name="ae",
    labs=("latent",),
    title="Autoencoder",
    family="ae",
    data_kind="image",
    knobs=AutoencoderKnobs,
    capabilities={"interpolate", "reconstruct"},
    charts=[LOSSES, ("Gradient norm", ("grad_norm",), "How hard the optimiser is pushing the weights.")],
    metrics={**METRICS, "loss": ("Training loss", "The reconstruction error of the last training batches, per image.", "lower")},
    explain=lambda settings: autoencoder_explanation("ae", settings["recon_loss"]),
    film_caption="Top row: fixed real images; bottom row: their reconstructions.",
    eval_budget=5000, best_by="val_loss",
    tiny={"model": {"hidden": 32, "latent_dim": 4, "batch_size": 8}},
    description="The simplest generative model: squeeze, rebuild, then decode codes drawn near the training codes.",
    config_cls=AEConfig,
    trainer_cls=AETrainer,
    fit_preset=_autoencoder_rule(AEConfig, ("hidden", "width")),
    presets={"Quick": {"model": {"hidden": 256, "batch_size": 128}, "train": dict(_QUICK_TRAIN)},
             "Standard": {"model": {"hidden": 400, "batch_size": 128}, "train": dict(_STANDARD_TRAIN)}},
))
