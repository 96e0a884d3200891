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

LOSSES = ("nonsaturating", "wgan_gp", "hinge", "wgan")
#: losses whose D is a Wasserstein critic (unbounded score, E[D(x)] - E[D(G(z))] estimates the distance)
CRITIC_LOSSES = ("wgan_gp", "wgan")


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
    - ``wgan`` (the original WGAN, Arjovsky et al. 2017): the same critic loss
      without a penalty; the trainer instead clips every critic weight to
      [-c, c] after each step (:func:`clip_weights`), a crude way to keep D
      K-Lipschitz.
    - ``hinge``: L_D = E_x[max(0, 1 - D(x))] + E_z[max(0, 1 + D(G(z)))].
    """
    real_scores, fake_scores = real_scores.float(), fake_scores.float()
    if kind == "nonsaturating":
        return (F.binary_cross_entropy_with_logits(real_scores, torch.ones_like(real_scores))
                + F.binary_cross_entropy_with_logits(fake_scores, torch.zeros_like(fake_scores)))
    if kind in CRITIC_LOSSES:
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
    - ``wgan_gp``, ``wgan`` and ``hinge``: L_G = -E_z[D(G(z))].
    """
    fake_scores = fake_scores.float()
    if kind == "nonsaturating":
        return F.binary_cross_entropy_with_logits(fake_scores, torch.ones_like(fake_scores))
    if kind in ("wgan_gp", "wgan", "hinge"):
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


@torch.no_grad()
def clip_weights(critic: nn.Module, c: float) -> torch.Tensor:
    """The original WGAN's constraint: every critic weight w <- clip(w, -c, c)
    after each critic step, so D stays K-Lipschitz for some K that depends on
    c and the architecture. Returns the largest |w| after clipping (a device
    tensor, no host sync): it sits at c when the clip is doing the work.

    Why the penalty replaced it (Gulrajani et al. 2017): clipped weights pile
    up at -c and +c, so the critic uses a tiny part of its capacity (it learns
    very simple functions), and with a c slightly too large or small the
    gradients through a deep critic explode or vanish.
    """
    params = list(critic.parameters())
    for p in params:
        p.clamp_(-c, c)
    return torch.stack([p.abs().max() for p in params]).max()


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


class ScoreConv2d(nn.Conv2d):
    """D's score layer: a convolution whose kernel covers the whole feature
    map, so one dot product per image,

        score[b] = w . x[b] + bias   (w and x[b] read pixel by pixel, H*W*C numbers),

    computed as one matrix multiply on the CPU, where oneDNN's direct
    convolution runs this one-output shape about 10x slower. Same
    parameters and state dict as ``nn.Conv2d``; the result equals it up to
    float rounding, and the gradient of a channels-last map stays
    channels-last (reading it pixel by pixel is free)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu" or tuple(self.kernel_size) != tuple(x.shape[2:]) or any(self.padding):
            return super().forward(x)
        w = self.weight.permute(0, 2, 3, 1).flatten(1)                      # (cout, H*W*C)
        scores = F.linear(x.permute(0, 2, 3, 1).flatten(1), w, self.bias)    # (B, cout)
        return scores.view(x.shape[0], -1, 1, 1)                             # (B, cout, 1, 1)


class PatchConvTranspose2d(nn.ConvTranspose2d):
    """G's image layer (1 or 3 output channels) as one matrix multiply and a
    fold (col2im) on the CPU, where oneDNN's direct transposed convolution
    runs this few-output shape about 1.5x slower (forward and backward):

        cols[b, p] = W^T (cout*k*k x cin) @ x[b, :, p]   for each input pixel p,
        y[b] = fold(cols[b])   (each k x k block added in at stride s)

    Same parameters and state dict as ``nn.ConvTranspose2d``; the result
    equals it up to float rounding."""

    def forward(self, x: torch.Tensor, output_size=None) -> torch.Tensor:
        if x.device.type != "cpu" or output_size is not None or any(self.output_padding):
            return super().forward(x, output_size)
        B, _, H, W = x.shape
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        Ho, Wo = (H - 1) * sh - 2 * ph + kh, (W - 1) * sw - 2 * pw + kw
        cols = x.flatten(2).transpose(1, 2) @ self.weight.flatten(1)             # (B, H*W, cout*k*k)
        # fold reads a contiguous input several times faster than a transposed one
        y = F.fold(cols.transpose(1, 2).contiguous(), (Ho, Wo), self.kernel_size,
                   padding=self.padding, stride=self.stride)                    # (B, cout, Ho, Wo)
        return y if self.bias is None else y + self.bias.view(1, -1, 1, 1)


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


class FeatureMap(nn.Unflatten):
    """(N, C*H*W) -> (N, C, H, W), the dense layer's output as G's first
    feature map; channels-last in memory when ``channels_last`` is set (by a
    trainer that keeps its feature maps that way), so the norm and ReLU
    after it and the gradient the next convolution hands back share one
    layout: element-wise steps over mixed layouts run several times slower."""

    channels_last = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = super().forward(x)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


def _dense(nz: int, c: int, side: int) -> list[nn.Module]:
    """Noise to the first feature map. A 1x1 -> side x side transposed
    convolution is the same linear map as this dense layer; the dense layer
    is several times faster on CPUs."""
    return [nn.Linear(nz, c * side * side, bias=False), FeatureMap(1, (c, side, side)),
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
            PatchConvTranspose2d(ngf, nc, 4, 2, 1, bias=False),
            nn.Tanh(),                    # nc x 28 x 28
        )
    if size == 32:
        return nn.Sequential(
            *_dense(nz, ngf * 4, 4),      # (ngf*4) x 4 x 4
            *_up(ngf * 4, ngf * 2),       # (ngf*2) x 8 x 8
            *_up(ngf * 2, ngf),           # ngf x 16 x 16
            PatchConvTranspose2d(ngf, nc, 4, 2, 1, bias=False),
            nn.Tanh(),                    # nc x 32 x 32
        )
    if size == 64:
        return nn.Sequential(
            *_dense(nz, ngf * 8, 4),      # (ngf*8) x 4 x 4
            *_up(ngf * 8, ngf * 4),       # (ngf*4) x 8 x 8
            *_up(ngf * 4, ngf * 2),       # (ngf*2) x 16 x 16
            *_up(ngf * 2, ngf),           # ngf x 32 x 32
            PatchConvTranspose2d(ngf, nc, 4, 2, 1, bias=False),
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
            ScoreConv2d(ndf * 2, 1, 7, 1, 0),   # 1 x 1 x 1
            nn.Flatten(0),                      # (N,)
        )
    if size == 32:
        return nn.Sequential(
            *_down(nc, ndf, "none"),            # ndf x 16 x 16
            *_down(ndf, ndf * 2, norm),         # (ndf*2) x 8 x 8
            *_down(ndf * 2, ndf * 4, norm),     # (ndf*4) x 4 x 4
            ScoreConv2d(ndf * 4, 1, 4, 1, 0),   # 1 x 1 x 1
            nn.Flatten(0),                      # (N,)
        )
    if size == 64:
        return nn.Sequential(
            *_down(nc, ndf, "none"),            # ndf x 32 x 32
            *_down(ndf, ndf * 2, norm),         # (ndf*2) x 16 x 16
            *_down(ndf * 2, ndf * 4, norm),     # (ndf*4) x 8 x 8
            *_down(ndf * 4, ndf * 8, norm),     # (ndf*8) x 4 x 4
            ScoreConv2d(ndf * 8, 1, 4, 1, 0),   # 1 x 1 x 1
            nn.Flatten(0),                      # (N,)
        )
    raise UserError(f"dcgan works on 28, 32 or 64 pixel images, not {size}; re-import the data at one of those sizes or use mlp_gan")


def mlp_generator(nz: int, width: int, shape: tuple[int, ...], norm: str = "none") -> nn.Sequential:
    """z (N, nz) -> images (N, *shape) in [-1, 1]; ``norm="batch"`` batch-normalises
    the two wider hidden layers (before their activation)."""
    out = math.prod(shape)
    bn = (lambda n: [nn.BatchNorm1d(n)]) if norm == "batch" else (lambda n: [])  # noqa: E731
    return nn.Sequential(
        nn.Linear(nz, width), nn.LeakyReLU(0.2, True),                              # width
        nn.Linear(width, 2 * width), *bn(2 * width), nn.LeakyReLU(0.2, True),       # 2*width
        nn.Linear(2 * width, 4 * width), *bn(4 * width), nn.LeakyReLU(0.2, True),   # 4*width
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


# ---------------------------------------------------------------------------
# Class-conditional DCGAN
# ---------------------------------------------------------------------------

class LabelledGenerator(nn.Module):
    """G(z, y): the class y one-hot, appended to z, into an unconditional
    generator built for ``nz + classes`` inputs.

    The generator's first layer is linear, so appending a one-hot is the same
    as adding a learned per-class vector to its output: a class embedding of
    the first feature map, with no extra module.
    """

    def __init__(self, net: nn.Module, classes: int):
        super().__init__()
        self.net, self.classes = net, classes

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        onehot = F.one_hot(y, self.classes).to(z.dtype)        # (N, classes)
        return self.net(torch.cat([z, onehot], 1))              # (N, nz + classes) -> images


class ProjectionDiscriminator(nn.Module):
    """D(x, y) = w^T phi(x) + e_y^T phi(x)  (Miyato & Koyama 2018).

    phi(x) is the flattened last feature map of the DCGAN discriminator,
    w^T phi(x) its usual last layer (the unconditional score) and e_y a
    learned vector per class: the inner product says how well the image's
    features match the class asked for.

    Chosen over an auxiliary classifier head (AC-GAN): the projection keeps
    the GAN loss exactly as it is (so every loss choice, the gradient penalty
    and weight clipping work unchanged, one score per image), while AC-GAN
    adds a classification loss that rewards G for the *most easily
    classified* images of a class and so narrows the variety within a class;
    Miyato & Koyama report better class fidelity and variety with the
    projection.
    """

    def __init__(self, net: nn.Sequential, classes: int, feature_dim: int):
        super().__init__()
        self.body, self.head = net[:-2], net[-2:]               # features, then (last conv, flatten)
        self.embed = nn.Embedding(classes, feature_dim)
        nn.init.normal_(self.embed.weight, 0.0, 0.02)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.body(x)                                        # (N, C, s, s)
        projection = (self.embed(y).to(h.dtype) * h.flatten(1)).sum(1)   # (N,)
        return self.head(h) + projection                         # (N,)


def dcgan_feature_dim(ndf: int, size: int) -> int:
    """Length of phi(x), the discriminator's flattened last feature map."""
    return {28: ndf * 2 * 7 * 7, 32: ndf * 4 * 4 * 4, 64: ndf * 8 * 4 * 4}[size]
