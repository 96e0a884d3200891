"""Generative adversarial networks: ``mlp_gan``, ``dcgan`` and ``toy_gan``: the declarations.

A generator G turns noise z ~ N(0, I) into an image (or a 2-D point); a
discriminator D scores how real its input looks. They are trained in turns:
``d_steps`` updates of D on a real batch and a generated batch, then one update
of G through D's judgement of the same generated batch. The three losses live
in one place (:func:`discriminator_loss`, :func:`generator_loss`,
:func:`gradient_penalty`) and their docstrings are the formulas the pages show.

Images are trained in [-1, 1] (the range of G's tanh output) and handed out in
[0, 1]. The film strip decodes one fixed noise batch, drawn once from the run's
seed and kept in the checkpoint, so every frame shows the same 64 "faces" of
the generator as it learns.
"""

from __future__ import annotations

from ...registry import ModelSpec, register
from ...image_presets import image_preset_rule
from ...train.utils import slerp  # noqa: F401 - as gan.slerp
from .config import ConditionalGANKnobs, DCGANConfig, GANKnobs, MLPGANConfig, ToyGANConfig
from .networks import CRITIC_LOSSES, DCGAN_SIZES, LOSSES, LabelledGenerator, PatchConvTranspose2d, \
    ProjectionDiscriminator, ScoreConv2d, clip_weights, dcgan_discriminator, dcgan_generator, discriminator_loss, \
    generator_loss, gradient_penalty, mlp_discriminator, mlp_generator, split_batch_norm, toy_discriminator, \
    toy_generator  # noqa: F401 - as gan.<name>
from .explain import gan_explanation
from .trainer import DCGANTrainer, MLPGANTrainer, ToyGANTrainer

# ---- what every GAN declares ---------------------------------------------------------

CHARTS = [
    ("Losses", ("loss_d", "loss_g"), "What the optimiser minimises."),
    ("D(x) and D(G(z))", ("d_real", "d_fake"),
     "The discriminator's average verdict on real and on generated samples (probabilities for the "
     "non-saturating loss, raw scores for WGAN-GP and hinge)."),
    ("Gradient norms", ("grad_norm_d", "grad_norm_g", "gp"),
     "How hard each player is being pushed; a sudden spike often comes just before a collapse."),
    ("Wasserstein estimate", ("wasserstein",),
     "WGAN and WGAN-GP: E[D(x)] - E[D(G(z))], the critic's estimate of how far apart real and generated data are; "
     "it should shrink as the samples improve."),
    ("Critic weights (WGAN)", ("critic_weight_max",),
     "The largest critic weight after clipping: pinned at the clip value c means the clip, not learning, is "
     "shaping the critic."),
]
_GAME = "A GAN's losses are a game between two players; neither number alone says which run is better."
METRICS = {
    "loss_d": ("Discriminator loss", _GAME),
    "loss_g": ("Generator loss", _GAME),
    "d_real": ("D(x) on real data", "The discriminator's average verdict on real samples in the last training "
               "batches (a probability for the non-saturating loss, a raw score for WGAN-GP and hinge)."),
    "d_fake": ("D(G(z)) on generated data", "The discriminator's average verdict on generated samples in the last "
               "training batches."),
    "grad_norm_d": ("Discriminator gradient norm", "Size of the discriminator's last gradient; a sudden spike often comes "
                    "before a collapse."),
    "grad_norm_g": ("Generator gradient norm", "Size of the generator's last gradient; a sudden spike often comes before "
                    "a collapse."),
    "gp": ("Gradient penalty", "WGAN-GP's penalty: how far the critic's gradient norm is from 1 between real and "
           "generated samples."),
    "wasserstein": ("Wasserstein estimate", "The critic's mean score on real minus on generated samples in the last "
                    "training batches (WGAN and WGAN-GP); it shrinks as generated samples get harder to tell apart, "
                    "but critics of different runs are not on the same scale."),
    "critic_weight_max": ("Largest critic weight", "The largest |w| among the critic's weights after clipping to "
                          "[-c, c] (WGAN); at c, the clip is holding the weights at its edges."),
}
IMAGE_CAPTION = "The generator's output for the same fixed noise at every frame: watch shapes appear."
IMAGE_GAN = dict(family="gan", data_kind="image", knobs=GANKnobs, capabilities={"interpolate"}, charts=CHARTS,
                 metrics=METRICS, film_caption=IMAGE_CAPTION, eval_budget=5000,
                 explain=lambda settings: gan_explanation(settings["loss"], points=False,
                                                          conditional=settings.get("conditional", False),
                                                          augment=settings.get("augment", "none")))


#: a GAN's preset rule (see :mod:`aigc_core.image_presets`): below 2,000 images D sees DiffAugment'd
#: images (translation; below 400, translation and cutout), so it cannot simply memorise the real set
GAN_FEW_IMAGES = 2000


def _gan_rule(config_cls, widths, conditional=False, bf16_cpu=False):
    return image_preset_rule(config_cls, widths=widths, regulariser="augment", few=GAN_FEW_IMAGES,
                             small="translation", tiny="translation,cutout", conditional=conditional,
                             bf16_cpu=bf16_cpu)


def _fits_dcgan(summary: dict) -> str | None:
    size = summary.get("size")
    if size not in DCGAN_SIZES:
        return f"dcgan needs 28, 32 or 64 pixel images (this set is {size} px); use mlp_gan or re-import at a supported size"
    return None


register(ModelSpec(
    name="mlp_gan",
    title="GAN (fully connected)",
    **IMAGE_GAN,
    description="The first GAN: a generator and a discriminator made of dense layers, playing a game.",
    config_cls=MLPGANConfig,
    trainer_cls=MLPGANTrainer,
    fit_preset=_gan_rule(MLPGANConfig, ("width",)),
    tiny={"model": {"width": 16, "nz": 8, "batch_size": 8}},
    presets={
        # The generator batch-normalised (g_norm): Quick, seed 0, 30 CPU s, FID on the set's feature net,
        # without -> with: glyphs 418 (collapsed: D scored real 0.996, fake 0.004) -> 22.6, photo
        # patches 22.8 -> 7.4, 8-px digits 48.8 -> 1.75 (4 -> 10 digits covered).
        "Quick": {"model": {"width": 128, "batch_size": 64, "lr_g": 2e-4, "lr_d": 2e-4, "g_norm": "batch"},
                  "train": {"steps": 3000, "max_seconds": 30, "log_every": 25, "sample_every": 200}},
        "Standard": {"model": {"width": 256, "batch_size": 64, "g_norm": "batch"},
                     "train": {"steps": 20000, "max_seconds": 300, "log_every": 50, "sample_every": 500}},
    },
))

register(ModelSpec(
    name="dcgan",
    title="DCGAN (convolutional GAN)",
    **dict(IMAGE_GAN, knobs=ConditionalGANKnobs, capabilities={"interpolate", "condition"},
           film_caption=IMAGE_CAPTION + " A class-conditional run: one row per class, the same noise in each row."),
    description="Transposed convolutions paint the image up from a small feature map; a convolutional discriminator judges it.",
    config_cls=DCGANConfig,
    trainer_cls=DCGANTrainer,
    fit_preset=_gan_rule(DCGANConfig, ("ngf", "ndf"), conditional=True, bf16_cpu=True),
    tiny={"model": {"ngf": 8, "ndf": 8, "nz": 16, "batch_size": 8, "conditional": True}},
    presets={
        "Quick": {"model": {"ngf": 32, "ndf": 32, "batch_size": 64},
                  "train": {"steps": 1500, "max_seconds": 30, "log_every": 25, "sample_every": 100}},
        # Standard samples from the generator's moving average: a run of a few
        # thousand steps wobbles, and where D dominates (shapes) the last
        # weights can land anywhere in the wobble. Fitted Standard, bf16, one
        # thread, FID on each set's feature net, without -> with: shapes
        # 166.8 -> 66.6 (recognised 12% -> 26%), china600 0.85 -> 0.48, glyphs
        # 1.057 -> 1.059 (96.5% -> 97.3%), flower600 (unseen) 1.39 -> 1.54.
        "Standard": {"model": {"ngf": 64, "ndf": 64, "batch_size": 64, "ema_decay": 0.999},
                     "train": {"steps": 5000, "max_seconds": 300, "log_every": 25, "sample_every": 250}},
    },
    fits=_fits_dcgan,
))

register(ModelSpec(
    name="toy_gan",
    title="Toy GAN (2-D points)",
    family="gan",
    data_kind="points",
    labs=("gan2d",),
    knobs=GANKnobs,
    charts=CHARTS,
    metrics=METRICS,
    explain=lambda settings: gan_explanation(settings["loss"], points=True),
    film_caption="Grey: real points; orange: points the generator makes from the same fixed noise.",
    eval_budget=2000,
    tiny={"model": {"width": 16, "nz": 4, "batch_size": 32}},
    description="A small GAN on points in the plane, where you can watch every sample chase the data.",
    config_cls=ToyGANConfig,
    trainer_cls=ToyGANTrainer,
    presets={
        # hinge: on the ring of 8 Gaussians the non-saturating loss typically
        # collapses onto one or two modes in a short run; hinge covers all 8.
        "Quick": {"model": {"width": 128, "batch_size": 256, "loss": "hinge"},
                  "train": {"steps": 3000, "max_seconds": 30, "log_every": 25, "sample_every": 100}},
        "Standard": {"model": {"width": 256, "batch_size": 512, "loss": "hinge"},
                     "train": {"steps": 20000, "max_seconds": 180, "log_every": 50, "sample_every": 250}},
    },
))
