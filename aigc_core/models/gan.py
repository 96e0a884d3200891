"""Generative adversarial networks: ``mlp_gan``, ``dcgan`` and ``toy_gan``.

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

import contextlib
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from torch import nn

from ..config import param
from ..data.base import ImageData, PointData
from ..errors import UserError
from ..imaging import from_unit_range, grid_image
from ..registry import ModelSpec, register
from ..train.base import Trainer

LOSSES = ("nonsaturating", "wgan_gp", "hinge")
FILM_STRIP_SIZE = 64  # images in one film-strip frame (an 8 x 8 grid)
TOY_FILM_STRIP_POINTS = 1000
LOSS_HELP = ("nonsaturating: the original GAN objective with G maximising log D(G(z)); "
             "wgan_gp: Wasserstein critic with a gradient penalty (the critic then uses layer norm, "
             "not batch norm, because the penalty is defined per image); hinge: margin loss used by many modern GANs.")


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
# Latent helpers (shared with the VAEs)
# ---------------------------------------------------------------------------

def seeded_noise(n: int, dim: int, seed: int) -> torch.Tensor:
    """``n`` draws of z ~ N(0, I) of size ``dim`` from ``seed`` on the CPU.

    Row i depends only on the seed, never on the device or on ``n``'s later
    rows, so ``sample(1, seed)`` is the first image of ``sample(64, seed)``.
    """
    gen = torch.Generator().manual_seed(int(seed))
    # One draw per row: a single randn(n, dim) fills values in a pattern that
    # depends on the total size, which would change row 0 with n.
    return torch.stack([torch.randn(dim, generator=gen) for _ in range(n)]) if n else torch.zeros(0, dim)


def slerp(a: torch.Tensor, b: torch.Tensor, steps: int) -> torch.Tensor:
    """``steps`` points on the great circle from ``a`` to ``b`` (both ``(dim,)``).

    Spherical rather than straight-line interpolation: Gaussian noise lives
    near a sphere of radius sqrt(dim), and the midpoint of a straight line is
    much closer to the origin than any z the generator saw in training.
    """
    if steps < 2:
        raise UserError("an interpolation needs at least 2 steps")
    t = torch.linspace(0, 1, steps, dtype=torch.float64).unsqueeze(1)
    a64, b64 = a.double(), b.double()
    cos = torch.dot(a64 / a64.norm(), b64 / b64.norm()).clamp(-1, 1)
    omega = torch.arccos(cos)
    if omega.abs() < 1e-4:  # (almost) the same direction: a straight line is the same path
        path = (1 - t) * a64 + t * b64
    else:
        path = (torch.sin((1 - t) * omega) * a64 + torch.sin(t * omega) * b64) / torch.sin(omega)
    path[0], path[-1] = a64, b64  # exact endpoints, whatever the rounding
    return path.to(a.dtype)


@contextlib.contextmanager
def eval_mode(*nets: nn.Module):
    """Evaluation mode (batch norm uses running statistics, so one sample does
    not depend on the others in its batch); restores the previous mode."""
    was = [net.training for net in nets]
    for net in nets:
        net.eval()
    try:
        yield
    finally:
        for net, on in zip(nets, was):
            net.train(on)


def _check_truncation(truncation: float) -> float:
    truncation = float(truncation)
    if not 0.0 <= truncation <= 2.0:
        raise UserError(f"truncation must be between 0 and 2 (1 = no truncation); got {truncation}")
    return truncation


def _check_count(n: int) -> int:
    n = int(n)
    if not 1 <= n <= 10_000:
        raise UserError(f"ask for between 1 and 10000 samples; got {n}")
    return n


def total_grad_norm(params) -> torch.Tensor:
    """L2 norm of all gradients together, as a device tensor (no host sync)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.nn.utils.get_total_norm(grads, foreach=True)


def adam(params, lr: float, betas: tuple[float, float], device: torch.device) -> torch.optim.Adam:
    # The fused kernel does the whole update in one pass over the parameters;
    # it exists for CPU and CUDA (not every other backend).
    fused = device.type in ("cpu", "cuda")
    return torch.optim.Adam(params, lr=lr, betas=betas, fused=fused, foreach=None if fused else True)


def match_param_layout(optims) -> None:
    """Give loaded optimiser state tensors the memory layout of their parameters.

    Checkpoints store tensors contiguous (NCHW), while channels-last weights are
    NHWC; the fused Adam kernel pairs elements by memory position, so after a
    resume it would mix up the moments of different weights unless the layouts
    match again.
    """
    for opt in optims.values():
        for group in opt.param_groups:
            for p in group["params"]:
                state = opt.state.get(p, {})
                for key, value in state.items():
                    if isinstance(value, torch.Tensor) and value.shape == p.shape and value.stride() != p.stride():
                        state[key] = torch.empty_like(p, dtype=value.dtype).copy_(value)


# ---------------------------------------------------------------------------
# Configs
# ---------------------------------------------------------------------------

@dataclass
class MLPGANConfig:
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


@dataclass
class DCGANConfig:
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
    channels_last: bool = param(True, "Channels-last memory layout", "Store feature maps pixel by pixel (NHWC); faster convolutions on most CPUs and GPUs.", advanced=True)


@dataclass
class ToyGANConfig:
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


# ---------------------------------------------------------------------------
# Trainers
# ---------------------------------------------------------------------------

class GANTrainer(Trainer):
    """Alternating GAN training shared by the three GANs.

    Subclasses build ``self.nets["G"]`` and ``self.nets["D"]`` in
    :meth:`build_nets`, and say how to take a real batch and draw a frame.
    """

    loss_names = {"loss_d": "the discriminator's loss", "loss_g": "the generator's loss"}
    nan_hint = "try lower learning rates, or the wgan_gp or hinge loss"
    channels_last = False
    joint_d_pass = True

    def __init__(self, cfg, data, device: torch.device, seed: int, autocast: torch.dtype | None = None):
        super().__init__(cfg, data, device, seed, autocast)
        self.batch_size = cfg.batch_size
        if cfg.loss not in LOSSES:
            raise UserError(f"unknown GAN loss {cfg.loss!r}; choose one of {', '.join(LOSSES)}")
        self.prepare_data(data)
        # Weights start from the run's seed whatever the global RNG holds.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            G, D = self.build_nets()
        if self.channels_last:
            G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
        self.nets = {"G": G.to(device), "D": D.to(device)}
        betas = (cfg.beta1, cfg.beta2)
        self.optims = {"G": adam(self.nets["G"].parameters(), cfg.lr_g, betas, device),
                       "D": adam(self.nets["D"].parameters(), cfg.lr_d, betas, device)}
        self.fixed_noise = torch.randn(self.film_strip_count, cfg.nz, device=device, generator=self.gen)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest kernels

    film_strip_count = FILM_STRIP_SIZE

    # ---- subclass hooks --------------------------------------------------------
    def prepare_data(self, data) -> None:
        raise NotImplementedError

    def build_nets(self) -> tuple[nn.Module, nn.Module]:
        raise NotImplementedError

    def real_batch(self) -> torch.Tensor:
        raise NotImplementedError

    # ---- training --------------------------------------------------------------
    def noise(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.cfg.nz, device=self.device, generator=self.gen)

    def step(self) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        G, D = self.nets["G"], self.nets["D"]
        opt_g, opt_d = self.optims["G"], self.optims["D"]
        B = cfg.batch_size
        out: dict[str, torch.Tensor] = {}

        # 1. Discriminator: d_steps updates on real vs generated batches. Only
        #    the last generated batch keeps G's graph: the G step reuses it
        #    instead of running the generator again.
        for i in range(cfg.d_steps):
            last = i == cfg.d_steps - 1
            real = self.real_batch()
            z = self.noise(B)
            with self.autocast_ctx():
                if last:
                    fake = G(z)
                else:
                    with torch.no_grad():
                        fake = G(z)
                if self.joint_d_pass:
                    # one pass over [real; fake]; batch norm still sees them apart
                    with split_batch_norm(D, 2):
                        scores = D(torch.cat([real, fake.detach()]))
                    real_scores, fake_scores = scores[:B], scores[B:]
                else:
                    real_scores = D(real)
                    fake_scores = D(fake.detach())
                loss_d = discriminator_loss(cfg.loss, real_scores, fake_scores)
                if cfg.loss == "wgan_gp":
                    gp = gradient_penalty(D, real, fake, self.gen)
                    loss_d = loss_d + cfg.gp_weight * gp
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            grad_norm_d = total_grad_norm(D.parameters())
            opt_d.step()

        # 2. Generator: one update through D's verdict on the same fake batch.
        #    D's weights need no gradients here, which saves a third of D's
        #    backward pass.
        D.requires_grad_(False)
        try:
            with self.autocast_ctx():
                loss_g = generator_loss(cfg.loss, D(fake))
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
        finally:
            D.requires_grad_(True)
        grad_norm_g = total_grad_norm(G.parameters())
        opt_g.step()

        real_scores, fake_scores = real_scores.detach().float(), fake_scores.detach().float()
        if cfg.loss == "nonsaturating":  # probabilities, as the charts explain D(x)
            real_scores, fake_scores = torch.sigmoid(real_scores), torch.sigmoid(fake_scores)
        out.update(loss_d=loss_d.detach(), loss_g=loss_g.detach(),
                   d_real=real_scores.mean(), d_fake=fake_scores.mean(),
                   grad_norm_d=grad_norm_d, grad_norm_g=grad_norm_g)
        if cfg.loss == "wgan_gp":
            out["gp"] = gp.detach()
        return out

    # ---- generation --------------------------------------------------------------
    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """Raw generator output for noise ``z`` (any device), on the CPU as float."""
        G = self.nets["G"]
        chunks = []
        with eval_mode(G), torch.inference_mode(), self.autocast_ctx():
            for part in z.split(256):
                chunks.append(G(part.to(self.device)).float().cpu())
        return torch.cat(chunks)

    def to_output(self, raw: torch.Tensor) -> torch.Tensor:
        """Generator output -> what :meth:`sample` hands out (images in [0, 1])."""
        return from_unit_range(raw)

    def sample(self, n: int, seed: int, truncation: float = 1.0) -> torch.Tensor:
        """``n`` samples from noise seeded by ``seed``: images (N, C, H, W) in
        [0, 1] (points: (N, 2)), float on the CPU.

        ``truncation`` psi scales the noise, z -> psi * z: below 1 the samples
        move towards the generator's "average" output (cleaner, less varied);
        0 gives that single average sample; above 1 more varied and stranger.
        """
        n, psi = _check_count(n), _check_truncation(truncation)
        return self.to_output(self.generate(seeded_noise(n, self.cfg.nz, seed) * psi))

    def interpolate(self, seed_a: int, seed_b: int, steps: int = 8, truncation: float = 1.0) -> torch.Tensor:
        """A walk from ``sample(1, seed_a)`` to ``sample(1, seed_b)`` in ``steps``
        frames, along the spherical path between their noise vectors."""
        psi = _check_truncation(truncation)
        if not 2 <= int(steps) <= 256:
            raise UserError(f"an interpolation takes between 2 and 256 steps; got {steps}")
        za, zb = seeded_noise(1, self.cfg.nz, seed_a)[0], seeded_noise(1, self.cfg.nz, seed_b)[0]
        return self.to_output(self.generate(slerp(za, zb, int(steps)) * psi))

    # ---- checkpoints -------------------------------------------------------------
    def load_state(self, state, *, weights_only: bool = False) -> None:
        super().load_state(state, weights_only=weights_only)
        match_param_layout(self.optims)

    def extra_state(self) -> dict:
        return {"fixed_noise": self.fixed_noise.detach().cpu()}

    def load_extra_state(self, extra: dict) -> None:
        if "fixed_noise" in extra:
            self.fixed_noise = extra["fixed_noise"].to(self.device, torch.float32)


class ImageGANTrainer(GANTrainer):
    """A GAN on an :class:`ImageData` set; the images live on the device as
    one uint8 tensor (a quarter of the memory of floats) and each batch is
    taken by indexing it."""

    def prepare_data(self, data) -> None:
        if not isinstance(data, ImageData):
            raise UserError(f"{type(self).__name__.replace('Trainer', '')} trains on images; "
                            f"{getattr(data, 'name', 'this data set')!r} holds {getattr(data, 'kind', 'other data')}")
        if len(data) < 2:
            raise UserError("a GAN needs at least 2 training images")
        self.image_shape = (data.channels, data.size, data.size)
        images = data.images.to(self.device)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        self.images = images

    def real_batch(self) -> torch.Tensor:
        idx = torch.randint(self.images.shape[0], (self.cfg.batch_size,), device=self.device, generator=self.gen)
        batch = self.images[idx].float().div_(127.5).sub_(1.0)  # [0, 255] -> [-1, 1]
        if self.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        return batch

    def film_strip(self) -> Image.Image:
        return grid_image(self.to_output(self.generate(self.fixed_noise)), nrow=8)


class MLPGANTrainer(ImageGANTrainer):
    def build_nets(self):
        cfg = self.cfg
        return mlp_generator(cfg.nz, cfg.width, self.image_shape), mlp_discriminator(cfg.width, self.image_shape)


class DCGANTrainer(ImageGANTrainer):
    def __init__(self, cfg, data, device, seed, autocast=None):
        self.channels_last = bool(cfg.channels_last)
        super().__init__(cfg, data, device, seed, autocast)

    def build_nets(self):
        cfg = self.cfg
        nc, size, _ = self.image_shape
        norm = "layer" if cfg.loss == "wgan_gp" else "batch"
        G = dcgan_generator(cfg.nz, cfg.ngf, nc, size)
        D = dcgan_discriminator(cfg.ndf, nc, size, norm)
        G.apply(_dcgan_init)
        D.apply(_dcgan_init)
        return G, D


class ToyGANTrainer(GANTrainer):
    """A GAN on 2-D points; its film strip is a scatter plot on fixed axes."""

    film_strip_count = TOY_FILM_STRIP_POINTS

    def prepare_data(self, data) -> None:
        if not isinstance(data, PointData):
            raise UserError(f"toy_gan trains on 2-D point sets; {getattr(data, 'name', 'this data set')!r} "
                            f"holds {getattr(data, 'kind', 'other data')}")
        points = data.points.float()
        if points.dim() != 2 or points.shape[1] != 2 or len(points) < 2:
            raise UserError("toy_gan needs at least 2 points with 2 coordinates each")
        self.points = points.to(self.device)
        # Fixed axes (a square around the data with a margin), so frames line up.
        lo, hi = points.min(0).values, points.max(0).values
        centre, half = (lo + hi) / 2, float((hi - lo).max()) / 2 * 1.25 + 1e-6
        self.axes = (float(centre[0]) - half, float(centre[0]) + half,
                     float(centre[1]) - half, float(centre[1]) + half)
        shown = torch.randperm(len(points), generator=torch.Generator().manual_seed(0))[:2000]
        self.shown_real = points[shown]

    def build_nets(self):
        return toy_generator(self.cfg.nz, self.cfg.width), toy_discriminator(self.cfg.width)

    def real_batch(self) -> torch.Tensor:
        idx = torch.randint(self.points.shape[0], (self.cfg.batch_size,), device=self.device, generator=self.gen)
        return self.points[idx]

    def to_output(self, raw: torch.Tensor) -> torch.Tensor:
        return raw

    def film_strip(self) -> Image.Image:
        return scatter_image(self.shown_real, self.generate(self.fixed_noise), self.axes)


def scatter_image(real: torch.Tensor, fake: torch.Tensor, axes: tuple[float, float, float, float],
                  side: int = 320) -> Image.Image:
    """Real points in grey, generated points in orange, on fixed axes."""
    x0, x1, y0, y1 = axes
    img = Image.new("RGB", (side, side), "white")
    draw = ImageDraw.Draw(img)
    margin = 4

    def to_px(pts: torch.Tensor):
        px = (pts[:, 0] - x0) / (x1 - x0) * (side - 2 * margin) + margin
        py = (1 - (pts[:, 1] - y0) / (y1 - y0)) * (side - 2 * margin) + margin  # y grows upwards
        return zip(px.tolist(), py.tolist())

    mid_x = (0 - x0) / (x1 - x0) * (side - 2 * margin) + margin
    mid_y = (1 - (0 - y0) / (y1 - y0)) * (side - 2 * margin) + margin
    draw.line([(mid_x, 0), (mid_x, side)], fill=(225, 225, 225))  # the axes through the origin
    draw.line([(0, mid_y), (side, mid_y)], fill=(225, 225, 225))
    for x, y in to_px(real.float()):
        draw.ellipse([x - 1.5, y - 1.5, x + 1.5, y + 1.5], fill=(170, 170, 170))
    fake = fake.float()
    fake = fake[torch.isfinite(fake).all(1)]
    for x, y in to_px(fake):
        if -side < x < 2 * side and -side < y < 2 * side:
            draw.ellipse([x - 1.5, y - 1.5, x + 1.5, y + 1.5], fill=(230, 110, 20))
    return img


# ---------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------

def _fits_dcgan(summary: dict) -> str | None:
    size = summary.get("size")
    if size not in DCGAN_SIZES:
        return f"dcgan needs 28, 32 or 64 pixel images (this set is {size} px); use mlp_gan or re-import at a supported size"
    return None


register(ModelSpec(
    name="mlp_gan",
    title="GAN (fully connected)",
    family="gan",
    data_kind="image",
    description="The first GAN: a generator and a discriminator made of dense layers, playing a game.",
    config_cls=MLPGANConfig,
    trainer_cls=MLPGANTrainer,
    presets={
        "Quick": {"model": {"width": 128, "batch_size": 64, "lr_g": 2e-4, "lr_d": 2e-4},
                  "train": {"steps": 3000, "max_seconds": 30, "log_every": 25, "sample_every": 200}},
        "Standard": {"model": {"width": 256, "batch_size": 64},
                     "train": {"steps": 20000, "max_seconds": 300, "log_every": 50, "sample_every": 500}},
    },
))

register(ModelSpec(
    name="dcgan",
    title="DCGAN (convolutional GAN)",
    family="gan",
    data_kind="image",
    description="Transposed convolutions paint the image up from a small feature map; a convolutional discriminator judges it.",
    config_cls=DCGANConfig,
    trainer_cls=DCGANTrainer,
    presets={
        "Quick": {"model": {"ngf": 32, "ndf": 32, "batch_size": 64},
                  "train": {"steps": 1500, "max_seconds": 30, "log_every": 25, "sample_every": 100}},
        "Standard": {"model": {"ngf": 64, "ndf": 64, "batch_size": 64},
                     "train": {"steps": 5000, "max_seconds": 300, "log_every": 25, "sample_every": 250}},
    },
    fits=_fits_dcgan,
))

register(ModelSpec(
    name="toy_gan",
    title="Toy GAN (2-D points)",
    family="gan",
    data_kind="points",
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
