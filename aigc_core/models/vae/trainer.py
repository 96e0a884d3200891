"""Training the autoencoders: ``AutoencoderTrainer`` (shared), the VAEs and the
plain autoencoder, whose samples come from a Gaussian fitted to its codes."""

from __future__ import annotations

import torch
from PIL import Image
from torch import nn

from ...data.base import ImageData
from ...data.held_out import held_out_split
from ...errors import UserError
from ...imaging import grid_image
from ...train.base import Trainer
from ...train.utils import adam, check_count, check_steps, eval_mode, match_param_layout, seeded_noise, slerp, \
    total_grad_norm
from .networks import conv_decoder, conv_encoder, kl_divergence, mlp_decoder, mlp_encoder, reconstruction_loss, \
    reparameterise, vae_loss

CONV_SIZES = (28, 32, 64)
FILM_STRIP_SIZE = 64
AE_STRIP_SIZE = 16  # real images shown above their reconstructions
MAX_FIT_CODES = 10_000


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

    @torch.no_grad()
    def held_out_elbo(self, images01: torch.Tensor) -> float | None:
        """The ELBO in nats per image of ``images01`` (N, C, H, W) in [0, 1]
        with beta = 1 and Bernoulli pixels (one draw of z with a fixed seed),
        whatever loss the model trained with; ``None`` for a plain autoencoder."""
        if not self.variational:
            return None
        gen = torch.Generator(device=self.device).manual_seed(0)
        total = 0.0
        self.train_mode(False)
        for part in images01.split(500):
            x = part.to(self.device)
            with self.autocast_ctx():
                mu, logvar = self._encode(x)
                logits = self.nets["decoder"](reparameterise(mu, logvar, gen)).float()
            nll = reconstruction_loss("bce", logits, x) + kl_divergence(mu, logvar)
            total += float(nll) * part.shape[0]
        return -total / images01.shape[0]

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
        n = check_count(n)
        temperature = float(temperature)
        if not 0.0 <= temperature <= 2.0:
            raise UserError(f"temperature must be between 0 and 2; got {temperature}")
        eps = seeded_noise(n, self.cfg.latent_dim, seed) * temperature
        return self.decode(self.noise_to_codes(eps))

    def interpolate(self, seed_a: int, seed_b: int, steps: int = 8, temperature: float = 1.0) -> torch.Tensor:
        """A walk from ``sample(1, seed_a)`` to ``sample(1, seed_b)`` in ``steps``
        frames, along the spherical path between their noise vectors."""
        steps = check_steps(steps)
        dim = self.cfg.latent_dim
        path = slerp(seeded_noise(1, dim, seed_a)[0], seeded_noise(1, dim, seed_b)[0], steps)
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
