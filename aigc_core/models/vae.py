"""Autoencoders: ``vae`` (fully connected), ``conv_vae`` and ``ae``.

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

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from ..config import param
from ..data.base import ImageData
from ..errors import UserError
from ..imaging import grid_image
from ..registry import ModelSpec, register
from ..train.base import Trainer
from .gan import _check_count, adam, eval_mode, match_param_layout, seeded_noise, slerp, total_grad_norm

RECON_LOSSES = ("bce", "mse")
CONV_SIZES = (28, 32, 64)
HELD_OUT_FRACTION = 0.1
SPLIT_SEED = 1234  # one split for every run on a data set, so their held-out numbers compare
FILM_STRIP_SIZE = 64
AE_STRIP_SIZE = 16  # real images shown above their reconstructions
MAX_FIT_CODES = 10_000


# ---------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------
# Configs
# ---------------------------------------------------------------------------

@dataclass
class VAEConfig:
    """Variational autoencoder with dense layers (Kingma & Welling 2013)."""

    latent_dim: int = param(20, "Latent size", "Length of the code z each image is squeezed into.", min=2, max=512)
    hidden: int = param(400, "Hidden units", "Units in the encoder's and decoder's hidden layers.", min=16, max=4096, step=16)
    recon_loss: str = param("bce", "Reconstruction loss", "bce: pixels as probabilities (sharper for black-and-white images); mse: squared error.", choices=RECON_LOSSES)
    beta: float = param(1.0, "beta (weight of the KL term)", "1 = the ELBO; higher pushes codes closer to N(0, I) (smoother, blurrier).", min=0.0, max=20.0, step=0.1)
    lr: float = param(1e-3, "Learning rate", "Adam step size.", min=1e-6, max=1e-1, log=True)
    batch_size: int = param(128, "Batch size", "Images per step.", min=2, max=4096)


@dataclass
class ConvVAEConfig:
    """Variational autoencoder with convolutions (28, 32 or 64 pixel images)."""

    latent_dim: int = param(20, "Latent size", "Length of the code z each image is squeezed into.", min=2, max=512)
    width: int = param(32, "Width", "Feature maps in the first convolution; each later one doubles.", min=8, max=256, step=8)
    recon_loss: str = param("bce", "Reconstruction loss", "bce: pixels as probabilities (sharper for black-and-white images); mse: squared error.", choices=RECON_LOSSES)
    beta: float = param(1.0, "beta (weight of the KL term)", "1 = the ELBO; higher pushes codes closer to N(0, I) (smoother, blurrier).", min=0.0, max=20.0, step=0.1)
    lr: float = param(1e-3, "Learning rate", "Adam step size.", min=1e-6, max=1e-1, log=True)
    batch_size: int = param(128, "Batch size", "Images per step.", min=2, max=4096)
    channels_last: bool = param(True, "Channels-last memory layout", "Store feature maps pixel by pixel (NHWC); faster convolutions on most CPUs and GPUs.", advanced=True)


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


# ---------------------------------------------------------------------------
# Networks
# ---------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------
# Trainers
# ---------------------------------------------------------------------------

def held_out_split(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train indices, held-out indices): the last 10% of a permutation seeded
    with a constant, so every run on the same data holds out the same images."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(SPLIT_SEED))
    n_val = max(1, int(round(n * HELD_OUT_FRACTION))) if n >= 2 else 0
    return perm[: n - n_val], perm[n - n_val:]


class AutoencoderTrainer(Trainer):
    """Shared by the VAEs and the plain autoencoder.

    The training images live on the device as one uint8 tensor and each batch
    is taken by indexing it; a fixed 10% is held out for :meth:`evaluate`.
    """

    variational = True
    loss_names = {"loss": "the VAE's loss (reconstruction + beta * KL)"}
    nan_hint = "try a lower learning rate"

    def __init__(self, cfg, data, device: torch.device, seed: int, autocast: torch.dtype | None = None):
        super().__init__(cfg, data, device, seed, autocast)
        if not isinstance(data, ImageData):
            raise UserError(f"this autoencoder trains on images; {getattr(data, 'name', 'this data set')!r} "
                            f"holds {getattr(data, 'kind', 'other data')}")
        if len(data) < 2:
            raise UserError("an autoencoder needs at least 2 images (one is held out to measure it)")
        self.batch_size = cfg.batch_size
        self.image_shape = (data.channels, data.size, data.size)
        self.channels_last = bool(getattr(cfg, "channels_last", False))
        train_idx, val_idx = held_out_split(len(data))
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        self.images = data.images[train_idx].to(device).contiguous(memory_format=memory_format)
        self.held_out = data.images[val_idx].to(device).contiguous(memory_format=memory_format)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            encoder, decoder = self.build_nets()
        if self.channels_last:
            encoder = encoder.to(memory_format=torch.channels_last)
            decoder = decoder.to(memory_format=torch.channels_last)
        self.nets = {"encoder": encoder.to(device), "decoder": decoder.to(device)}
        params = [p for net in self.nets.values() for p in net.parameters()]
        self.optims = {"adam": adam(params, cfg.lr, (0.9, 0.999), device)}
        self.fixed_noise = torch.randn(FILM_STRIP_SIZE, cfg.latent_dim, device=device, generator=self.gen)

    def build_nets(self) -> tuple[nn.Module, nn.Module]:
        raise NotImplementedError

    # ---- pieces ----------------------------------------------------------------
    def _to01(self, images_u8: torch.Tensor) -> torch.Tensor:
        x = images_u8.float().div_(255.0)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def _encode(self, x01: torch.Tensor):
        """(mu, logvar) for a VAE, (codes, None) for a plain autoencoder."""
        h = self.nets["encoder"](x01)
        if self.variational:
            mu, logvar = h.float().chunk(2, dim=1)
            return mu, logvar
        return h.float(), None

    def _losses(self, x01: torch.Tensor, generator: torch.Generator | None) -> dict[str, torch.Tensor]:
        mu, logvar = self._encode(x01)
        if self.variational:
            z = reparameterise(mu, logvar, generator)
            logits = self.nets["decoder"](z)
            loss, recon, kl = vae_loss(self.cfg.recon_loss, logits, x01, mu, logvar, self.cfg.beta)
            return {"loss": loss, "recon": recon, "kl": kl}
        logits = self.nets["decoder"](mu)
        recon = reconstruction_loss(self.cfg.recon_loss, logits, x01)
        return {"loss": recon, "recon": recon}

    # ---- training --------------------------------------------------------------
    def step(self) -> dict[str, torch.Tensor]:
        idx = torch.randint(self.images.shape[0], (self.cfg.batch_size,), device=self.device, generator=self.gen)
        x = self._to01(self.images[idx])
        with self.autocast_ctx():
            losses = self._losses(x, self.gen)
        opt = self.optims["adam"]
        opt.zero_grad(set_to_none=True)
        losses["loss"].backward()
        grad_norm = total_grad_norm(p for net in self.nets.values() for p in net.parameters())
        opt.step()
        out = {k: v.detach() for k, v in losses.items()}
        out["grad_norm"] = grad_norm
        return out

    def evaluate(self) -> dict[str, float]:
        """Loss on the held-out 10% (per image; for a VAE with the BCE loss
        also the ELBO in nats per image, higher is better)."""
        if self.held_out.shape[0] == 0:
            return {}
        gen = torch.Generator(device=self.device).manual_seed(0)  # the same eps every time
        sums: dict[str, float] = {}
        n = 0
        with eval_mode(*self.nets.values()), torch.no_grad(), self.autocast_ctx():
            for part in self.held_out.split(512):
                losses = self._losses(self._to01(part), gen)
                for k, v in losses.items():
                    sums[k] = sums.get(k, 0.0) + float(v) * part.shape[0]
                n += part.shape[0]
        out = {f"val_{k}": v / n for k, v in sums.items()}
        if self.variational and self.cfg.recon_loss == "bce":
            out["val_elbo"] = -(out["val_recon"] + out["val_kl"])
        return out

    # ---- generation --------------------------------------------------------------
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Codes (any device) -> images (N, C, H, W) in [0, 1] on the CPU."""
        chunks = []
        with eval_mode(*self.nets.values()), torch.inference_mode(), self.autocast_ctx():
            for part in z.split(256):
                chunks.append(torch.sigmoid(self.nets["decoder"](part.to(self.device, torch.float32)).float()).cpu())
        return torch.cat(chunks)

    def _images_in(self, images01: torch.Tensor) -> torch.Tensor:
        images01 = torch.as_tensor(images01).float()
        if images01.dim() == 3:
            images01 = images01.unsqueeze(0)
        if tuple(images01.shape[1:]) != self.image_shape:
            c, s, _ = self.image_shape
            raise UserError(f"this model works on {c}-channel {s}x{s} images; got shape {tuple(images01.shape[1:])}")
        return images01.clamp(0, 1)

    def encode(self, images01: torch.Tensor) -> torch.Tensor:
        """Images (N, C, H, W) in [0, 1] -> codes (N, latent_dim) on the CPU
        (the mean mu of q(z|x) for a VAE)."""
        images01 = self._images_in(images01)
        chunks = []
        with eval_mode(*self.nets.values()), torch.inference_mode(), self.autocast_ctx():
            for part in images01.split(256):
                x = part.to(self.device)
                if self.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                chunks.append(self._encode(x)[0].float().cpu())
        return torch.cat(chunks)

    def reconstruct(self, images01: torch.Tensor) -> torch.Tensor:
        """Images (N, C, H, W) in [0, 1] -> their reconstructions, same shape
        and range, on the CPU (decoded from the code's mean, no noise)."""
        return self.decode(self.encode(images01))

    def noise_to_codes(self, eps: torch.Tensor) -> torch.Tensor:
        """Standard normal noise -> codes to decode (the prior for a VAE)."""
        return eps

    def sample(self, n: int, seed: int, temperature: float = 1.0) -> torch.Tensor:
        """``n`` new images (N, C, H, W) in [0, 1] on the CPU, from noise seeded
        by ``seed``; ``temperature`` scales the noise (below 1: more typical,
        less varied images)."""
        n = _check_count(n)
        temperature = float(temperature)
        if not 0.0 <= temperature <= 2.0:
            raise UserError(f"temperature must be between 0 and 2; got {temperature}")
        eps = seeded_noise(n, self.cfg.latent_dim, seed) * temperature
        return self.decode(self.noise_to_codes(eps))

    def interpolate(self, seed_a: int, seed_b: int, steps: int = 8, temperature: float = 1.0) -> torch.Tensor:
        """A walk from ``sample(1, seed_a)`` to ``sample(1, seed_b)`` in ``steps``
        frames, along the spherical path between their noise vectors."""
        if not 2 <= int(steps) <= 256:
            raise UserError(f"an interpolation takes between 2 and 256 steps; got {steps}")
        dim = self.cfg.latent_dim
        path = slerp(seeded_noise(1, dim, seed_a)[0], seeded_noise(1, dim, seed_b)[0], int(steps))
        return self.decode(self.noise_to_codes(path * float(temperature)))

    def film_strip(self) -> Image.Image:
        """A frame: the fixed noise batch decoded (8 x 8)."""
        return grid_image(self.decode(self.noise_to_codes(self.fixed_noise.cpu())), nrow=8)

    # ---- checkpoints -------------------------------------------------------------
    def load_state(self, state, *, weights_only: bool = False) -> None:
        super().load_state(state, weights_only=weights_only)
        match_param_layout(self.optims)

    def extra_state(self) -> dict:
        return {"fixed_noise": self.fixed_noise.detach().cpu()}

    def load_extra_state(self, extra: dict) -> None:
        if "fixed_noise" in extra:
            self.fixed_noise = extra["fixed_noise"].to(self.device, torch.float32)


class VAETrainer(AutoencoderTrainer):
    def build_nets(self):
        cfg = self.cfg
        return (mlp_encoder(self.image_shape, cfg.hidden, 2 * cfg.latent_dim),   # -> (mu, log sigma^2)
                mlp_decoder(self.image_shape, cfg.hidden, cfg.latent_dim))


class ConvVAETrainer(AutoencoderTrainer):
    def build_nets(self):
        cfg = self.cfg
        nc, size, _ = self.image_shape
        return (conv_encoder(nc, size, cfg.width, 2 * cfg.latent_dim),            # -> (mu, log sigma^2)
                conv_decoder(nc, size, cfg.width, cfg.latent_dim))


class AETrainer(AutoencoderTrainer):
    """Plain autoencoder. Its codes follow no known distribution, so to make
    new images we fit a Gaussian N(m, S) to the codes of the training images
    (mean and full covariance) and decode draws z = m + L eps, S = L L^T. The
    fit is refreshed at every checkpoint (and before sampling if it was never
    made) and saved with the weights."""

    variational = False
    loss_names = {"loss": "the reconstruction loss"}

    def __init__(self, cfg, data, device, seed, autocast=None):
        super().__init__(cfg, data, device, seed, autocast)
        self.code_mean: torch.Tensor | None = None
        self.code_chol: torch.Tensor | None = None
        # fixed real images for the film strip: the first held-out images
        self.strip_images = self.held_out[:AE_STRIP_SIZE]
        if self.strip_images.shape[0] < AE_STRIP_SIZE:
            self.strip_images = torch.cat([self.strip_images, self.images[: AE_STRIP_SIZE - self.strip_images.shape[0]]])

    def build_nets(self):
        cfg = self.cfg
        nc, size, _ = self.image_shape
        if cfg.network == "conv":
            return conv_encoder(nc, size, cfg.width, cfg.latent_dim), conv_decoder(nc, size, cfg.width, cfg.latent_dim)
        return mlp_encoder(self.image_shape, cfg.hidden, cfg.latent_dim), mlp_decoder(self.image_shape, cfg.hidden, cfg.latent_dim)

    def fit_codes(self) -> None:
        """Fit N(mean, covariance) to the codes of (up to 10,000) training images."""
        codes = self.encode(self._to01(self.images[:MAX_FIT_CODES]).cpu()).double()
        mean = codes.mean(0)
        centred = codes - mean
        cov = centred.T @ centred / max(1, codes.shape[0] - 1)
        # a little jitter keeps the Cholesky factor defined when codes are collinear
        jitter = 1e-6 * float(cov.diagonal().mean().clamp_min(1e-12))
        eye = torch.eye(cov.shape[0], dtype=cov.dtype)
        chol, info = torch.linalg.cholesky_ex(cov + jitter * eye)
        if int(info) != 0:
            chol = torch.diag(cov.diagonal().clamp_min(jitter).sqrt())
        self.code_mean, self.code_chol = mean.float(), chol.float()

    def noise_to_codes(self, eps: torch.Tensor) -> torch.Tensor:
        if self.code_mean is None:
            self.fit_codes()
        return self.code_mean + eps.float() @ self.code_chol.T

    def film_strip(self) -> Image.Image:
        """A frame: 16 fixed real images (top row) above their reconstructions."""
        real = self._to01(self.strip_images).cpu()
        return grid_image(torch.cat([real, self.reconstruct(real)]), nrow=real.shape[0])

    def extra_state(self) -> dict:
        self.fit_codes()  # checkpoints carry the fit that matches their weights
        return {**super().extra_state(), "code_mean": self.code_mean.clone(), "code_chol": self.code_chol.clone()}

    def load_extra_state(self, extra: dict) -> None:
        super().load_extra_state(extra)
        if "code_mean" in extra and "code_chol" in extra:
            self.code_mean = extra["code_mean"].float().cpu()
            self.code_chol = extra["code_chol"].float().cpu()


# ---------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------

def _fits_conv(summary: dict) -> str | None:
    size = summary.get("size")
    if size not in CONV_SIZES:
        return f"conv_vae needs 28, 32 or 64 pixel images (this set is {size} px); use vae or re-import at a supported size"
    return None


_QUICK_TRAIN = {"steps": 2000, "max_seconds": 30, "log_every": 25, "sample_every": 200}
_STANDARD_TRAIN = {"steps": 10000, "max_seconds": 240, "log_every": 50, "sample_every": 500}

register(ModelSpec(
    name="vae",
    title="VAE (fully connected)",
    family="vae",
    data_kind="image",
    description="Encodes each image as a small cloud in a 20-number code space, then learns to draw images from any point near the centre.",
    config_cls=VAEConfig,
    trainer_cls=VAETrainer,
    presets={"Quick": {"model": {"hidden": 256, "batch_size": 128}, "train": dict(_QUICK_TRAIN)},
             "Standard": {"model": {"hidden": 400, "batch_size": 128}, "train": dict(_STANDARD_TRAIN)}},
))

register(ModelSpec(
    name="conv_vae",
    title="VAE (convolutional)",
    family="vae",
    data_kind="image",
    description="A VAE whose encoder and decoder are convolutional, so it sees strokes and edges rather than single pixels.",
    config_cls=ConvVAEConfig,
    trainer_cls=ConvVAETrainer,
    presets={"Quick": {"model": {"width": 16, "batch_size": 64}, "train": dict(_QUICK_TRAIN, steps=1500)},
             "Standard": {"model": {"width": 32, "batch_size": 128}, "train": dict(_STANDARD_TRAIN)}},
    fits=_fits_conv,
))

register(ModelSpec(
    name="ae",
    title="Autoencoder",
    family="ae",
    data_kind="image",
    description="The simplest generative model: squeeze, rebuild, then decode codes drawn near the training codes.",
    config_cls=AEConfig,
    trainer_cls=AETrainer,
    presets={"Quick": {"model": {"hidden": 256, "batch_size": 128}, "train": dict(_QUICK_TRAIN)},
             "Standard": {"model": {"hidden": 400, "batch_size": 128}, "train": dict(_STANDARD_TRAIN)}},
))
