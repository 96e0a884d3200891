"""The autoencoders' settings and sampling knobs."""

from __future__ import annotations

from dataclasses import dataclass

from ...config import conditional_problems, param
from ...train.augment import CLASSIC_AUGMENTS
from .networks import RECON_LOSSES

AUGMENT_HELP = ("Random changes to each training image at every step, so a small data set goes further: crop (a "
                "slightly smaller window scaled back up), rotate (up to 15 degrees), flip (left-right mirror; not "
                "for digits or letters, whose mirror image is not one of them).")
CONDITIONAL_HELP = ("A conditional VAE: encoder and decoder are told each image's class (it needs labelled images), "
                    "so samples can be asked for a class and the code keeps only the style.")


@dataclass
class VAEConfig:
    """Variational autoencoder with dense layers (Kingma & Welling 2013)."""

    latent_dim: int = param(20, "Latent size", "Length of the code z each image is squeezed into.", min=2, max=512)
    hidden: int = param(400, "Hidden units", "Units in the encoder's and decoder's hidden layers.", min=16, max=4096, step=16)
    recon_loss: str = param("bce", "Reconstruction loss", "bce: pixels as probabilities (sharper for black-and-white images); mse: squared error.", choices=RECON_LOSSES)
    beta: float = param(1.0, "beta (weight of the KL term)", "1 = the ELBO; higher pushes codes closer to N(0, I) (smoother, blurrier).", min=0.0, max=20.0, step=0.1)
    lr: float = param(1e-3, "Learning rate", "Adam step size.", min=1e-6, max=1e-1, log=True)
    batch_size: int = param(128, "Batch size", "Images per step.", min=2, max=4096)
    augment: str = param("none", "Augment (data)", AUGMENT_HELP, choices=CLASSIC_AUGMENTS)


@dataclass
class ConvVAEConfig:
    """Variational autoencoder with convolutions (28, 32 or 64 pixel images)."""

    latent_dim: int = param(20, "Latent size", "Length of the code z each image is squeezed into.", min=2, max=512)
    width: int = param(32, "Width", "Feature maps in the first convolution; each later one doubles.", min=8, max=256, step=8)
    recon_loss: str = param("bce", "Reconstruction loss", "bce: pixels as probabilities (sharper for black-and-white images); mse: squared error.", choices=RECON_LOSSES)
    beta: float = param(1.0, "beta (weight of the KL term)", "1 = the ELBO; higher pushes codes closer to N(0, I) (smoother, blurrier).", min=0.0, max=20.0, step=0.1)
    lr: float = param(1e-3, "Learning rate", "Adam step size.", min=1e-6, max=1e-1, log=True)
    batch_size: int = param(128, "Batch size", "Images per step.", min=2, max=4096)
    augment: str = param("none", "Augment (data)", AUGMENT_HELP, choices=CLASSIC_AUGMENTS)
    channels_last: bool = param(True, "Channels-last memory layout", "Store feature maps pixel by pixel (NHWC); faster convolutions on most CPUs and GPUs.", advanced=True)
    conditional: bool = param(False, "Class-conditional", CONDITIONAL_HELP)

    def data_problems(self, summary: dict) -> list[str]:
        return conditional_problems(self.conditional, summary)


@dataclass
class AEConfig:
    """Plain autoencoder; new images come from codes drawn near the training codes."""

    latent_dim: int = param(20, "Latent size", "Length of the code each image is squeezed into.", min=2, max=512)
    network: str = param("mlp", "Network", "mlp: dense layers (any image size); conv: convolutions (28, 32 or 64 px).", choices=("mlp", "conv"))
    hidden: int = param(400, "Hidden units (mlp)", "Units in the hidden layers of the dense network.", min=16, max=4096, step=16)
    width: int = param(32, "Width (conv)", "Feature maps in the first convolution of the conv network.", min=8, max=256, step=8)
    recon_loss: str = param("bce", "Reconstruction loss", "bce: pixels as probabilities; mse: squared error.", choices=RECON_LOSSES)
    lr: float = param(1e-3, "Learning rate", "Adam step size.", min=1e-6, max=1e-1, log=True)
    batch_size: int = param(128, "Batch size", "Images per step.", min=2, max=4096)
    augment: str = param("none", "Augment (data)", AUGMENT_HELP, choices=CLASSIC_AUGMENTS)


@dataclass
class AutoencoderKnobs:
    """What an autoencoder's samples can be asked for."""

    temperature: float = param(1.0, "Temperature", "Scales the random code. Below 1: more typical, less varied "
                               "images.", min=0.0, max=2.0, step=0.05)


@dataclass
class ConditionalAutoencoderKnobs(AutoencoderKnobs):
    """A VAE that may have been trained on classes."""

    label: str = param("all", "Class", "Which class to draw: a class name or index (0, 1, ...); all = classes "
                       "drawn at random. Only for a run trained with conditional=true.")
