"""The autoencoders' networks and losses.

An encoder squeezes an image into a short code; a decoder rebuilds the image
from the code (its output is pixel logits; sigmoid(logit) is the pixel value).
A VAE's encoder outputs (mu, log sigma^2) of q(z|x) = N(mu, sigma^2).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import UserError

RECON_LOSSES = ("bce", "mse")


def reconstruction_loss(kind: str, logits: torch.Tensor, target01: torch.Tensor) -> torch.Tensor:
    """Per-image reconstruction error summed over pixels, averaged over the batch.

    - ``bce``: -sum_i [x_i log p_i + (1 - x_i) log(1 - p_i)] with p = sigmoid(logit),
      the negative log-likelihood of the pixels under independent Bernoullis.
    - ``mse``: sum_i (p_i - x_i)^2.
    """
    logits, target01 = logits.float(), target01.float()
    if kind == "bce":
        per_pixel = F.binary_cross_entropy_with_logits(logits, target01, reduction="none")
    elif kind == "mse":
        per_pixel = (torch.sigmoid(logits) - target01).pow(2)
    else:
        raise UserError(f"unknown reconstruction loss {kind!r}; choose one of {', '.join(RECON_LOSSES)}")
    return per_pixel.flatten(1).sum(1).mean()


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q(z|x) || N(0, I)) per image, averaged over the batch:

    KL = -1/2 * sum_j (1 + log sigma_j^2 - mu_j^2 - sigma_j^2)

    It is zero exactly when q(z|x) is the prior, and never negative.
    """
    mu, logvar = mu.float(), logvar.float()
    return (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)).mean()


def vae_loss(kind: str, logits, target01, mu, logvar, beta: float = 1.0):
    """The VAE's training loss, the negative evidence lower bound (ELBO):

    log p(x) >= ELBO = E_q(z|x)[log p(x|z)] - KL(q(z|x) || N(0, I))

    loss = reconstruction + beta * KL, with one z drawn by the
    reparameterisation z = mu + exp(0.5 * log sigma^2) * eps, eps ~ N(0, I),
    so the gradient flows through mu and sigma. beta = 1 is the ELBO itself
    (with the BCE reconstruction); beta > 1 trades sharpness for a smoother,
    more disentangled code space. Returns (loss, recon, kl).
    """
    recon = reconstruction_loss(kind, logits, target01)
    kl = kl_divergence(mu, logvar)
    return recon + beta * kl, recon, kl


def reparameterise(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """z = mu + exp(0.5 * logvar) * eps, eps ~ N(0, I)."""
    eps = torch.randn(mu.shape, device=mu.device, dtype=mu.dtype, generator=generator)
    return mu + torch.exp(0.5 * logvar) * eps


def mlp_encoder(shape: tuple[int, ...], hidden: int, out: int) -> nn.Sequential:
    """images (N, C, H, W) -> (N, out)."""
    return nn.Sequential(
        nn.Flatten(1),                                              # C*H*W
        nn.Linear(math.prod(shape), hidden), nn.ReLU(True),         # hidden
        nn.Linear(hidden, out),                                     # out
    )


def mlp_decoder(shape: tuple[int, ...], hidden: int, latent: int) -> nn.Sequential:
    """codes (N, latent) -> pixel logits (N, C, H, W)."""
    return nn.Sequential(
        nn.Linear(latent, hidden), nn.ReLU(True),                   # hidden
        nn.Linear(hidden, math.prod(shape)),                        # C*H*W
        nn.Unflatten(1, shape),                                     # C x H x W
    )


def _conv(cin: int, cout: int) -> list[nn.Module]:
    """Halve the side: 4x4 convolution with stride 2, then ReLU."""
    return [nn.Conv2d(cin, cout, 4, 2, 1), nn.ReLU(True)]


def _deconv(cin: int, cout: int) -> list[nn.Module]:
    """Double the side: 4x4 transposed convolution with stride 2, then ReLU."""
    return [nn.ConvTranspose2d(cin, cout, 4, 2, 1), nn.ReLU(True)]


def conv_encoder(nc: int, size: int, w: int, out: int) -> nn.Sequential:
    """images (N, nc, size, size) -> (N, out)."""
    if size == 28:
        return nn.Sequential(
            *_conv(nc, w),                      # w x 14 x 14
            *_conv(w, w * 2),                   # (w*2) x 7 x 7
            nn.Flatten(1),                      # (w*2)*7*7
            nn.Linear(w * 2 * 7 * 7, out),      # out
        )
    if size == 32:
        return nn.Sequential(
            *_conv(nc, w),                      # w x 16 x 16
            *_conv(w, w * 2),                   # (w*2) x 8 x 8
            *_conv(w * 2, w * 4),               # (w*4) x 4 x 4
            nn.Flatten(1),                      # (w*4)*4*4
            nn.Linear(w * 4 * 4 * 4, out),      # out
        )
    if size == 64:
        return nn.Sequential(
            *_conv(nc, w),                      # w x 32 x 32
            *_conv(w, w * 2),                   # (w*2) x 16 x 16
            *_conv(w * 2, w * 4),               # (w*4) x 8 x 8
            *_conv(w * 4, w * 8),               # (w*8) x 4 x 4
            nn.Flatten(1),                      # (w*8)*4*4
            nn.Linear(w * 8 * 4 * 4, out),      # out
        )
    raise UserError(f"the convolutional networks work on 28, 32 or 64 pixel images, not {size}; "
                    "re-import the data at one of those sizes or use the dense (mlp) network")


def conv_decoder(nc: int, size: int, w: int, latent: int) -> nn.Sequential:
    """codes (N, latent) -> pixel logits (N, nc, size, size)."""
    if size == 28:
        return nn.Sequential(
            nn.Linear(latent, w * 2 * 7 * 7), nn.ReLU(True),
            nn.Unflatten(1, (w * 2, 7, 7)),     # (w*2) x 7 x 7
            *_deconv(w * 2, w),                 # w x 14 x 14
            nn.ConvTranspose2d(w, nc, 4, 2, 1),  # nc x 28 x 28
        )
    if size == 32:
        return nn.Sequential(
            nn.Linear(latent, w * 4 * 4 * 4), nn.ReLU(True),
            nn.Unflatten(1, (w * 4, 4, 4)),     # (w*4) x 4 x 4
            *_deconv(w * 4, w * 2),             # (w*2) x 8 x 8
            *_deconv(w * 2, w),                 # w x 16 x 16
            nn.ConvTranspose2d(w, nc, 4, 2, 1),  # nc x 32 x 32
        )
    if size == 64:
        return nn.Sequential(
            nn.Linear(latent, w * 8 * 4 * 4), nn.ReLU(True),
            nn.Unflatten(1, (w * 8, 4, 4)),     # (w*8) x 4 x 4
            *_deconv(w * 8, w * 4),             # (w*4) x 8 x 8
            *_deconv(w * 4, w * 2),             # (w*2) x 16 x 16
            *_deconv(w * 2, w),                 # w x 32 x 32
            nn.ConvTranspose2d(w, nc, 4, 2, 1),  # nc x 64 x 64
        )
    raise UserError(f"the convolutional networks work on 28, 32 or 64 pixel images, not {size}; "
                    "re-import the data at one of those sizes or use the dense (mlp) network")
