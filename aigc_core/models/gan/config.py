"""The GANs' settings (one dataclass per model) and sampling knobs."""

from __future__ import annotations

from dataclasses import dataclass

from ...config import conditional_problems, param
from ...train.augment import GAN_AUGMENTS
from .networks import LOSSES

LOSS_HELP = ("nonsaturating: the original GAN objective with G maximising log D(G(z)); "
             "wgan_gp: Wasserstein critic with a gradient penalty (the critic then uses layer norm, "
             "not batch norm, because the penalty is defined per image); hinge: margin loss used by many modern GANs; "
             "wgan: the original Wasserstein GAN, critic weights clipped to [-c, c] and RMSProp, to compare with "
             "wgan_gp; the paper used learning rates 5e-5 and 5 D steps per G step (what --set loss=wgan gets "
             "unless those are set too).")
AUGMENT_HELP = ("DiffAugment: the same random shifts (translation), holes (cutout) and colour changes (color) "
                "applied to real and generated images before D sees them, in D's and G's steps. Keeps D from "
                "memorising a small data set (a few hundred images); little use on thousands.")
CLIP_HELP = "Only for wgan: every critic weight is clipped to [-c, c] after each critic step."
CONDITIONAL_HELP = ("Train on the data set's classes (it needs labelled images): G gets the class with the noise, "
                    "D scores image and class together (a projection discriminator), and samples can be asked for "
                    "a class.")


class WGANDefaults:
    """The original WGAN's own settings, used when loss=wgan and the user set none."""

    @staticmethod
    def implied_defaults(values: dict) -> dict:
        if str(values.get("loss", "")).strip() == "wgan":
            return {"lr_g": 5e-5, "lr_d": 5e-5, "d_steps": 5}
        return {}



@dataclass
class MLPGANConfig(WGANDefaults):
    """Fully connected GAN (the first GAN on handwritten digits)."""

    nz: int = param(100, "Noise size (nz)", "Length of the random vector z the generator starts from.", min=2, max=512)
    width: int = param(256, "Width", "Units in the narrowest hidden layer; the others are 2x and 4x this.", min=16, max=2048, step=16)
    loss: str = param("nonsaturating", "Loss", LOSS_HELP, choices=LOSSES)
    lr_g: float = param(2e-4, "Generator learning rate", "Adam step size for G.", min=1e-6, max=1e-1, log=True)
    lr_d: float = param(2e-4, "Discriminator learning rate", "Adam step size for D (some set it higher than G's, e.g. 4e-4 vs 1e-4).", min=1e-6, max=1e-1, log=True)
    beta1: float = param(0.5, "Adam beta1", "Momentum; 0.5 (not the usual 0.9) keeps the two players from overshooting.", min=0.0, max=0.999, step=0.05, advanced=True)
    beta2: float = param(0.999, "Adam beta2", "Averaging of squared gradients.", min=0.0, max=0.9999, step=0.001, advanced=True)
    batch_size: int = param(64, "Batch size", "Real images per step (and as many generated ones).", min=2, max=4096)
    d_steps: int = param(1, "D steps per G step", "Discriminator updates per generator update (WGAN-GP often uses 5).", min=1, max=10, advanced=True)
    gp_weight: float = param(10.0, "Gradient penalty weight (lambda)", "Only for wgan_gp.", min=0.0, max=100.0, step=1.0, advanced=True)
    clip_value: float = param(0.01, "Weight clip (c)", CLIP_HELP, min=1e-4, max=1.0, step=0.005, advanced=True)
    augment: str = param("none", "Augment (DiffAugment)", AUGMENT_HELP, choices=GAN_AUGMENTS)
    g_norm: str = param("none", "Generator batch norm", "batch: the generator's two wider layers are batch-normalised "
                        "(as DCGAN's are), which keeps the discriminator from winning outright: on the built-in glyphs "
                        "the Quick preset without it collapsed (FID 418, no sample recognised) and reached FID 23 with "
                        "it. none: the 2014 layout (runs made before this setting keep it). Both presets use batch.",
                        choices=("batch", "none"))


@dataclass
class DCGANConfig(WGANDefaults):
    """Deep convolutional GAN (Radford et al. 2015)."""

    nz: int = param(100, "Noise size (nz)", "Length of the random vector z the generator starts from.", min=2, max=512)
    ngf: int = param(64, "Generator width (ngf)", "Feature maps in the generator's last hidden layer; earlier layers have 2x, 4x, 8x.", min=8, max=256, step=8)
    ndf: int = param(64, "Discriminator width (ndf)", "Feature maps in the discriminator's first layer; later layers have 2x, 4x, 8x.", min=8, max=256, step=8)
    loss: str = param("nonsaturating", "Loss", LOSS_HELP, choices=LOSSES)
    lr_g: float = param(2e-4, "Generator learning rate", "Adam step size for G.", min=1e-6, max=1e-1, log=True)
    lr_d: float = param(2e-4, "Discriminator learning rate", "Adam step size for D (some set it higher than G's, e.g. 4e-4 vs 1e-4).", min=1e-6, max=1e-1, log=True)
    beta1: float = param(0.5, "Adam beta1", "Momentum; 0.5 (not the usual 0.9) keeps the two players from overshooting.", min=0.0, max=0.999, step=0.05, advanced=True)
    beta2: float = param(0.999, "Adam beta2", "Averaging of squared gradients.", min=0.0, max=0.9999, step=0.001, advanced=True)
    batch_size: int = param(64, "Batch size", "Real images per step (and as many generated ones).", min=2, max=4096)
    d_steps: int = param(1, "D steps per G step", "Discriminator updates per generator update (WGAN-GP often uses 5).", min=1, max=10, advanced=True)
    gp_weight: float = param(10.0, "Gradient penalty weight (lambda)", "Only for wgan_gp.", min=0.0, max=100.0, step=1.0, advanced=True)
    clip_value: float = param(0.01, "Weight clip (c)", CLIP_HELP, min=1e-4, max=1.0, step=0.005, advanced=True)
    augment: str = param("none", "Augment (DiffAugment)", AUGMENT_HELP, choices=GAN_AUGMENTS)
    ema_decay: float = param(0.0, "Generator EMA decay", "0 = off. Otherwise samples come from a moving average of "
                             "the generator's weights with this decay (warmed up as min(decay, (1+n)/(10+n)) "
                             "after n steps), which smooths the wobble of the game: cleaner samples, most of all "
                             "from short runs.", min=0.0, max=0.9999, step=0.001, advanced=True)
    channels_last: bool = param(True, "Channels-last memory layout", "Store feature maps pixel by pixel (NHWC); faster convolutions on most CPUs and GPUs.", advanced=True)
    conditional: bool = param(False, "Class-conditional", CONDITIONAL_HELP)

    def data_problems(self, summary: dict) -> list[str]:
        return conditional_problems(self.conditional, summary)


@dataclass
class ToyGANConfig(WGANDefaults):
    """Small fully connected GAN on 2-D points, where you can see every sample."""

    nz: int = param(8, "Noise size (nz)", "Length of z; 2-D data needs only a few dimensions.", min=1, max=128)
    width: int = param(128, "Width", "Units in each hidden layer.", min=8, max=1024, step=8)
    loss: str = param("nonsaturating", "Loss", LOSS_HELP, choices=LOSSES)
    lr_g: float = param(1e-3, "Generator learning rate", "Adam step size for G.", min=1e-6, max=1e-1, log=True)
    lr_d: float = param(1e-3, "Discriminator learning rate", "Adam step size for D.", min=1e-6, max=1e-1, log=True)
    beta1: float = param(0.5, "Adam beta1", "Momentum; 0.5 keeps the two players from overshooting.", min=0.0, max=0.999, step=0.05, advanced=True)
    beta2: float = param(0.999, "Adam beta2", "Averaging of squared gradients.", min=0.0, max=0.9999, step=0.001, advanced=True)
    batch_size: int = param(256, "Batch size", "Real points per step (and as many generated ones).", min=2, max=8192)
    d_steps: int = param(1, "D steps per G step", "Discriminator updates per generator update.", min=1, max=10, advanced=True)
    gp_weight: float = param(0.1, "Gradient penalty weight (lambda)", "Only for wgan_gp; 2-D data has a small scale, so a small lambda.", min=0.0, max=100.0, step=0.1, advanced=True)
    clip_value: float = param(0.01, "Weight clip (c)", CLIP_HELP, min=1e-4, max=1.0, step=0.005, advanced=True)


@dataclass
class GANKnobs:
    """What a GAN's samples can be asked for."""

    truncation: float = param(1.0, "Truncation", "Scales the noise z. Below 1: more typical, cleaner, less varied "
                              "samples; 0 gives the generator's single 'average' sample; above 1: more varied and "
                              "stranger.", min=0.0, max=2.0, step=0.05)


@dataclass
class ConditionalGANKnobs(GANKnobs):
    """A GAN that may have been trained on classes."""

    label: str = param("all", "Class", "Which class to draw: a class name or index (0, 1, ...); all = classes "
                       "drawn at random. Only for a run trained with conditional=true.")
