"""The GANs' networks and losses.

A generator G turns noise z ~ N(0, I) into an image (or a 2-D point); a
discriminator D scores how real its input looks. The three losses
(:func:`discriminator_loss`, :func:`generator_loss`, :func:`gradient_penalty`)
live here, and their docstrings are the formulas the Train page shows.
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import UserError

LOSSES = ("nonsaturating", "wgan_gp", "hinge")


# ---------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------

def discriminator_loss(kind: str, real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """The discriminator's (critic's) loss on raw scores D(x) and D(G(z)).

    The game is  min_G max_D V(D, G) = E_x[log D(x)] + E_z[log(1 - D(G(z)))].

    - ``nonsaturating``: D outputs a logit s, D(x) = sigmoid(s), and minimises
      L_D = -E_x[log D(x)] - E_z[log(1 - D(G(z)))]
      computed as binary cross-entropy with logits (real = 1, fake = 0),
      which is stable where sigmoid saturates.
    - ``wgan_gp``: D is a critic with an unbounded score and minimises
      L_D = E_z[D(G(z))] - E_x[D(x)]   (+ lambda * gradient penalty, added by the trainer)
      i.e. it maximises the Wasserstein estimate E_x[D(x)] - E_z[D(G(z))].
    - ``hinge``: L_D = E_x[max(0, 1 - D(x))] + E_z[max(0, 1 + D(G(z)))].
    """
    real_scores, fake_scores = real_scores.float(), fake_scores.float()
    if kind == "nonsaturating":
        return (F.binary_cross_entropy_with_logits(real_scores, torch.ones_like(real_scores))
                + F.binary_cross_entropy_with_logits(fake_scores, torch.zeros_like(fake_scores)))
    if kind == "wgan_gp":
        return fake_scores.mean() - real_scores.mean()
    if kind == "hinge":
        return F.relu(1.0 - real_scores).mean() + F.relu(1.0 + fake_scores).mean()
    raise UserError(f"unknown GAN loss {kind!r}; choose one of {', '.join(LOSSES)}")


def generator_loss(kind: str, fake_scores: torch.Tensor) -> torch.Tensor:
    """The generator's loss on D's raw scores of generated samples.

    - ``nonsaturating``: L_G = -E_z[log D(G(z))]. Minimising
      E_z[log(1 - D(G(z)))] instead (the minimax form) gives G almost no
      gradient early on, when D easily rejects its samples; this form has the
      same fixed point and strong gradients exactly then.
    - ``wgan_gp`` and ``hinge``: L_G = -E_z[D(G(z))].
    """
    fake_scores = fake_scores.float()
    if kind == "nonsaturating":
        return F.binary_cross_entropy_with_logits(fake_scores, torch.ones_like(fake_scores))
    if kind in ("wgan_gp", "hinge"):
        return -fake_scores.mean()
    raise UserError(f"unknown GAN loss {kind!r}; choose one of {', '.join(LOSSES)}")


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """WGAN-GP's gradient penalty  E_xhat[(||grad_xhat D(xhat)||_2 - 1)^2].

    xhat = eps * x + (1 - eps) * G(z) with eps ~ U[0, 1] drawn per example, so
    the penalty pushes the critic towards slope 1 on the lines between real
    and generated samples (a soft 1-Lipschitz constraint). The full critic
    loss is  L_D = E_z[D(G(z))] - E_x[D(x)] + lambda * penalty.

    The result is differentiable with respect to the critic's weights
    (``create_graph=True``); this is why the critic must not use batch norm:
    the penalty is defined per example, and batch statistics would couple them.
    """
    eps_shape = (real.shape[0],) + (1,) * (real.dim() - 1)
    eps = torch.rand(eps_shape, device=real.device, generator=generator, dtype=real.dtype)
    xhat = (eps * real + (1 - eps) * fake.detach()).requires_grad_(True)
    scores = critic(xhat).float()
    (grad,) = torch.autograd.grad(scores.sum(), xhat, create_graph=True)
    # the small constant keeps the square root differentiable at a zero gradient
    slope = grad.float().flatten(1).pow(2).sum(1).add(1e-12).sqrt()
    return (slope - 1).pow(2).mean()


# ---------------------------------------------------------------------------
# Networks
# ---------------------------------------------------------------------------

DCGAN_SIZES = (28, 32, 64)


def _dcgan_init(module: nn.Module) -> None:
    # The DCGAN paper's initialisation: weights ~ N(0, 0.02), norm scales ~ N(1, 0.02).
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class SplitBatchNorm2d(nn.BatchNorm2d):
    """Batch norm that can normalise equal parts of a batch separately.

    The discriminator judges the real and the generated batch in one pass
    (one convolution over 2B images is faster than two over B), but batch
    norm must not mix them: with ``splits = 2`` each half gets its own batch
    statistics and its own running-statistics update, exactly as two
    separate passes would. Saved weights are those of a plain BatchNorm2d.
    """

    splits = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.splits == 1 or not self.training:
            return super().forward(x)
        return torch.cat([super(SplitBatchNorm2d, self).forward(part) for part in x.chunk(self.splits)])


@contextlib.contextmanager
def split_batch_norm(net: nn.Module, splits: int):
    """Within the block, ``net``'s batch norms treat the batch as ``splits`` batches."""
    norms = [m for m in net.modules() if isinstance(m, SplitBatchNorm2d)]
    for m in norms:
        m.splits = splits
    try:
        yield
    finally:
        for m in norms:
            m.splits = 1


def _dense(nz: int, c: int, side: int) -> list[nn.Module]:
    """Noise to the first feature map. A 1x1 -> side x side transposed
    convolution is the same linear map as this dense layer; the dense layer
    is several times faster on CPUs."""
    return [nn.Linear(nz, c * side * side, bias=False), nn.Unflatten(1, (c, side, side)),
            nn.BatchNorm2d(c), nn.ReLU(True)]


def _up(cin: int, cout: int) -> list[nn.Module]:
    """Double the side: 4x4 transposed convolution with stride 2, batch norm, ReLU."""
    return [nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True)]


def _down(cin: int, cout: int, norm: str) -> list[nn.Module]:
    """Halve the side: 4x4 convolution with stride 2, a norm, LeakyReLU(0.2)."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 4, 2, 1, bias=norm == "none")]
    if norm == "batch":
        layers.append(SplitBatchNorm2d(cout))
    elif norm == "layer":
        # GroupNorm with one group normalises each example over (C, H, W):
        # layer norm for feature maps, the drop-in WGAN-GP recommends.
        layers.append(nn.GroupNorm(1, cout))
    layers.append(nn.LeakyReLU(0.2, True))
    return layers


def dcgan_generator(nz: int, ngf: int, nc: int, size: int) -> nn.Sequential:
    """z (N, nz) -> images (N, nc, size, size) in [-1, 1]."""
    if size == 28:
        return nn.Sequential(
            *_dense(nz, ngf * 2, 7),      # (ngf*2) x 7 x 7
            *_up(ngf * 2, ngf),           # ngf x 14 x 14
            nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False),
            nn.Tanh(),                    # nc x 28 x 28
        )
    if size == 32:
        return nn.Sequential(
            *_dense(nz, ngf * 4, 4),      # (ngf*4) x 4 x 4
            *_up(ngf * 4, ngf * 2),       # (ngf*2) x 8 x 8
            *_up(ngf * 2, ngf),           # ngf x 16 x 16
            nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False),
            nn.Tanh(),                    # nc x 32 x 32
        )
    if size == 64:
        return nn.Sequential(
            *_dense(nz, ngf * 8, 4),      # (ngf*8) x 4 x 4
            *_up(ngf * 8, ngf * 4),       # (ngf*4) x 8 x 8
            *_up(ngf * 4, ngf * 2),       # (ngf*2) x 16 x 16
            *_up(ngf * 2, ngf),           # ngf x 32 x 32
            nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False),
            nn.Tanh(),                    # nc x 64 x 64
        )
    raise UserError(f"dcgan works on 28, 32 or 64 pixel images, not {size}; re-import the data at one of those sizes or use mlp_gan")


def dcgan_discriminator(ndf: int, nc: int, size: int, norm: str = "batch") -> nn.Sequential:
    """images (N, nc, size, size) -> one raw score (logit) per image, (N,).

    ``norm`` is ``batch`` (the DCGAN paper) or ``layer`` (for WGAN-GP). The
    first layer has no norm, as in the paper: normalising the raw pixels would
    throw away their mean and contrast.
    """
    if size == 28:
        return nn.Sequential(
            *_down(nc, ndf, "none"),            # ndf x 14 x 14
            *_down(ndf, ndf * 2, norm),         # (ndf*2) x 7 x 7
            nn.Conv2d(ndf * 2, 1, 7, 1, 0),     # 1 x 1 x 1
            nn.Flatten(0),                      # (N,)
        )
    if size == 32:
        return nn.Sequential(
            *_down(nc, ndf, "none"),            # ndf x 16 x 16
            *_down(ndf, ndf * 2, norm),         # (ndf*2) x 8 x 8
            *_down(ndf * 2, ndf * 4, norm),     # (ndf*4) x 4 x 4
            nn.Conv2d(ndf * 4, 1, 4, 1, 0),     # 1 x 1 x 1
            nn.Flatten(0),                      # (N,)
        )
    if size == 64:
        return nn.Sequential(
            *_down(nc, ndf, "none"),            # ndf x 32 x 32
            *_down(ndf, ndf * 2, norm),         # (ndf*2) x 16 x 16
            *_down(ndf * 2, ndf * 4, norm),     # (ndf*4) x 8 x 8
            *_down(ndf * 4, ndf * 8, norm),     # (ndf*8) x 4 x 4
            nn.Conv2d(ndf * 8, 1, 4, 1, 0),     # 1 x 1 x 1
            nn.Flatten(0),                      # (N,)
        )
    raise UserError(f"dcgan works on 28, 32 or 64 pixel images, not {size}; re-import the data at one of those sizes or use mlp_gan")


def mlp_generator(nz: int, width: int, shape: tuple[int, ...]) -> nn.Sequential:
    """z (N, nz) -> images (N, *shape) in [-1, 1]."""
    out = math.prod(shape)
    return nn.Sequential(
        nn.Linear(nz, width), nn.LeakyReLU(0.2, True),                # width
        nn.Linear(width, 2 * width), nn.LeakyReLU(0.2, True),         # 2*width
        nn.Linear(2 * width, 4 * width), nn.LeakyReLU(0.2, True),     # 4*width
        nn.Linear(4 * width, out), nn.Tanh(),                         # C*H*W
        nn.Unflatten(1, shape),                                       # C x H x W
    )


def mlp_discriminator(width: int, shape: tuple[int, ...]) -> nn.Sequential:
    """images (N, *shape) -> one raw score (logit) per image, (N,)."""
    return nn.Sequential(
        nn.Flatten(1),                                                # C*H*W
        nn.Linear(math.prod(shape), 4 * width), nn.LeakyReLU(0.2, True),  # 4*width
        nn.Linear(4 * width, 2 * width), nn.LeakyReLU(0.2, True),     # 2*width
        nn.Linear(2 * width, width), nn.LeakyReLU(0.2, True),         # width
        nn.Linear(width, 1), nn.Flatten(0),                           # (N,)
    )


def toy_generator(nz: int, width: int) -> nn.Sequential:
    """z (N, nz) -> points (N, 2); a linear output, since points are unbounded."""
    return nn.Sequential(
        nn.Linear(nz, width), nn.ReLU(True),      # width
        nn.Linear(width, width), nn.ReLU(True),   # width
        nn.Linear(width, width), nn.ReLU(True),   # width
        nn.Linear(width, 2),                      # 2
    )


def toy_discriminator(width: int) -> nn.Sequential:
    """points (N, 2) -> one raw score per point, (N,)."""
    return nn.Sequential(
        nn.Linear(2, width), nn.LeakyReLU(0.2, True),      # width
        nn.Linear(width, width), nn.LeakyReLU(0.2, True),  # width
        nn.Linear(width, width), nn.LeakyReLU(0.2, True),  # width
        nn.Linear(width, 1), nn.Flatten(0),                # (N,)
    )
