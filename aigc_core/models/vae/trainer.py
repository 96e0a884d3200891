"""Training the autoencoders: ``AutoencoderTrainer`` (shared), the VAEs and the
plain autoencoder, whose samples come from a Gaussian fitted to its codes."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from ...data.base import ImageData
from ...data.held_out import held_out_split
from ...errors import UserError
from ...imaging import grid_image
from ...train.augment import classic_augment
from ...train.base import FixedNoiseTrainer
from ...train.utils import adam, check_count, check_steps, class_labels, eval_mode, \
    seeded_noise, slerp, total_grad_norm
from .networks import LabelledDecoder, LabelledEncoder, conv_decoder, conv_encoder, kl_divergence, mlp_decoder, \
    mlp_encoder, reconstruction_loss, reparameterise, vae_loss

CONV_SIZES = (28, 32, 64)
FILM_STRIP_SIZE = 64
AE_STRIP_SIZE = 16  # real images shown above their reconstructions
FILM_STRIP_CLASSES = 16  # a conditional VAE's film strip: one row per class, at most this many rows
MAX_FIT_CODES = 10_000


class AutoencoderTrainer(FixedNoiseTrainer):
    """Shared by the VAEs and the plain autoencoder.

    The training images live on the device as one uint8 tensor and each batch
    is taken by indexing it; a fixed 10% is held out for :meth:`evaluate`.

    A conditional VAE (``self.classes > 0``) has q(z | x, y) and p(x | z, y);
    images given without their class (the Gallery's reconstructions, the
    held-out ELBO of the quality report) are read with the class the model
    itself finds likeliest (:meth:`infer_labels`).
    """

    variational = True
    classes = 0
    class_names: list[str] = []
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
        if getattr(cfg, "conditional", False):
            if data.labels is None or not data.class_names or len(data.class_names) < 2:
                raise UserError("conditional=true needs a labelled image set (at least 2 classes); "
                                f"{data.name!r} has none: set conditional=false")
            self.classes, self.class_names = len(data.class_names), list(data.class_names)
            labels = data.labels.long()
            self.labels, self.held_out_labels = labels[train_idx].to(device), labels[val_idx].to(device)
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

    def _encode(self, x01: torch.Tensor, y: torch.Tensor | None = None):
        """(mu, logvar) for a VAE, (codes, None) for a plain autoencoder."""
        h = self.nets["encoder"](x01) if y is None else self.nets["encoder"](x01, y)
        if self.variational:
            mu, logvar = h.float().chunk(2, dim=1)
            return mu, logvar
        return h.float(), None

    def _decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.nets["decoder"](z) if y is None else self.nets["decoder"](z, y)

    def _losses(self, x01: torch.Tensor, generator: torch.Generator | None,
                y: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        mu, logvar = self._encode(x01, y)
        if self.variational:
            z = reparameterise(mu, logvar, generator)
            logits = self._decode(z, y)
            loss, recon, kl = vae_loss(self.cfg.recon_loss, logits, x01, mu, logvar, self.cfg.beta)
            return {"loss": loss, "recon": recon, "kl": kl}
        logits = self.nets["decoder"](mu)
        recon = reconstruction_loss(self.cfg.recon_loss, logits, x01)
        return {"loss": recon, "recon": recon}

    # ---- training --------------------------------------------------------------
    def step(self) -> dict[str, torch.Tensor]:
        idx = torch.randint(self.images.shape[0], (self.cfg.batch_size,), device=self.device, generator=self.gen)
        x = self._to01(self.images[idx])
        policy = getattr(self.cfg, "augment", "none")
        if policy != "none":  # a new variant of each image: the model rebuilds what it was shown
            x = classic_augment(x, policy, self.gen)
        y = self.labels[idx] if self.classes else None
        with self.autocast_ctx():
            losses = self._losses(x, self.gen, y)
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
            labels = self.held_out_labels.split(512) if self.classes else [None] * len(self.held_out.split(512))
            for part, y in zip(self.held_out.split(512), labels):
                losses = self._losses(self._to01(part), gen, y)
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
        if self.classes:
            return self._class_marginal_elbo(images01)
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

    # ---- classes (a conditional VAE) ---------------------------------------------------
    @torch.no_grad()
    def _per_class_elbo(self, x01: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
        """ELBO(x, y) for every class y, (N, classes), in nats per image (beta = 1, Bernoulli pixels)."""
        out = []
        for k in range(self.classes):
            y = torch.full((x01.shape[0],), k, dtype=torch.long, device=self.device)
            with self.autocast_ctx():
                mu, logvar = self._encode(x01, y)
                z = mu if gen is None else reparameterise(mu, logvar, gen)
                logits = self._decode(z, y).float()
            recon = F.binary_cross_entropy_with_logits(logits, x01.float(), reduction="none").flatten(1).sum(1)
            kl = -0.5 * (1 + logvar.float() - mu.float().pow(2) - logvar.float().exp()).sum(1)
            out.append(-(recon + kl))
        return torch.stack(out, 1)

    def _class_marginal_elbo(self, images01: torch.Tensor) -> float:
        """A lower bound on log p(x) without the class: with p(y) uniform over
        K classes, log p(x) = log sum_y p(y) p(x | y) >= logsumexp_y ELBO(x, y) - log K."""
        gen = torch.Generator(device=self.device).manual_seed(0)
        total = 0.0
        self.train_mode(False)
        for part in images01.split(500):
            elbo = self._per_class_elbo(part.to(self.device), gen)
            total += float((torch.logsumexp(elbo, 1) - math.log(self.classes)).sum())
        return total / images01.shape[0]

    @torch.no_grad()
    def infer_labels(self, images01: torch.Tensor) -> torch.Tensor:
        """The class under which the model explains each image best (highest
        ELBO, codes at their mean), (N,) on the device."""
        self.train_mode(False)
        return torch.cat([self._per_class_elbo(part.to(self.device), None).argmax(1)
                          for part in images01.split(500)])

    def condition_choices(self) -> dict[str, list]:
        """The ``label`` knob's values (class names) for a conditional VAE, else {}."""
        return {"label": list(self.class_names)} if self.classes else {}

    def labels_for(self, label, n: int, seed: int) -> torch.Tensor | None:
        return class_labels(label, n, seed, self.class_names if self.classes else [])

    # ---- generation --------------------------------------------------------------
    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Codes (and classes, for a conditional VAE; any device) -> images
        (N, C, H, W) in [0, 1] on the CPU."""
        chunks = []
        ys = [None] * len(z.split(256)) if y is None else y.split(256)
        with eval_mode(*self.nets.values()), torch.inference_mode(), self.autocast_ctx():
            for part, labels in zip(z.split(256), ys):
                labels = None if labels is None else labels.to(self.device)
                chunks.append(torch.sigmoid(self._decode(part.to(self.device, torch.float32), labels).float()).cpu())
        return torch.cat(chunks)

    def _images_in(self, images01: torch.Tensor) -> torch.Tensor:
        images01 = torch.as_tensor(images01).float()
        if images01.dim() == 3:
            images01 = images01.unsqueeze(0)
        if tuple(images01.shape[1:]) != self.image_shape:
            c, s, _ = self.image_shape
            raise UserError(f"this model works on {c}-channel {s}x{s} images; got shape {tuple(images01.shape[1:])}")
        return images01.clamp(0, 1)

    def encode(self, images01: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Images (N, C, H, W) in [0, 1] -> codes (N, latent_dim) on the CPU
        (the mean mu of q(z|x) for a VAE; of q(z|x, y) for a conditional one,
        with ``y`` the classes, or the ones the model infers)."""
        images01 = self._images_in(images01)
        if self.classes and y is None:
            y = self.infer_labels(images01)
        chunks = []
        ys = [None] * len(images01.split(256)) if y is None else y.split(256)
        with eval_mode(*self.nets.values()), torch.inference_mode(), self.autocast_ctx():
            for part, labels in zip(images01.split(256), ys):
                x = part.to(self.device)
                if self.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                chunks.append(self._encode(x, None if labels is None else labels.to(self.device))[0].float().cpu())
        return torch.cat(chunks)

    def reconstruct(self, images01: torch.Tensor) -> torch.Tensor:
        """Images (N, C, H, W) in [0, 1] -> their reconstructions, same shape
        and range, on the CPU (decoded from the code's mean, no noise; a
        conditional VAE uses the class it infers for each image)."""
        images01 = self._images_in(images01)
        y = self.infer_labels(images01) if self.classes else None
        return self.decode(self.encode(images01, y), y)

    def noise_to_codes(self, eps: torch.Tensor) -> torch.Tensor:
        """Standard normal noise -> codes to decode (the prior for a VAE)."""
        return eps

    def sample(self, n: int, seed: int, temperature: float = 1.0, label="all") -> torch.Tensor:
        """``n`` new images (N, C, H, W) in [0, 1] on the CPU, from noise seeded
        by ``seed``; ``temperature`` scales the noise (below 1: more typical,
        less varied images); ``label`` (a conditional VAE) asks for a class."""
        n = check_count(n)
        temperature = float(temperature)
        if not 0.0 <= temperature <= 2.0:
            raise UserError(f"temperature must be between 0 and 2; got {temperature}")
        y = self.labels_for(label, n, seed)
        eps = seeded_noise(n, self.cfg.latent_dim, seed) * temperature
        return self.decode(self.noise_to_codes(eps), y)

    def interpolate(self, seed_a: int, seed_b: int, steps: int = 8, temperature: float = 1.0,
                    label="all") -> torch.Tensor:
        """A walk from ``sample(1, seed_a)`` to ``sample(1, seed_b)`` in ``steps``
        frames, along the spherical path between their noise vectors (a
        conditional VAE keeps one class: the one asked for, or seed_a's)."""
        steps = check_steps(steps)
        dim = self.cfg.latent_dim
        path = slerp(seeded_noise(1, dim, seed_a)[0], seeded_noise(1, dim, seed_b)[0], steps)
        y = self.labels_for(label, 1, seed_a)
        return self.decode(self.noise_to_codes(path * float(temperature)), None if y is None else y.expand(steps))

    def film_strip(self) -> Image.Image:
        """A frame: the fixed noise batch decoded (8 x 8); a conditional VAE:
        one row per class, the same 8 codes in every row."""
        if not self.classes:
            return grid_image(self.decode(self.noise_to_codes(self.fixed_noise.cpu())), nrow=8)
        rows = min(self.classes, FILM_STRIP_CLASSES)
        z = self.fixed_noise[:8].cpu().repeat(rows, 1)
        return grid_image(self.decode(z, torch.arange(rows).repeat_interleave(8)), nrow=8)


class VAETrainer(AutoencoderTrainer):
    def build_nets(self):
        cfg = self.cfg
        return (mlp_encoder(self.image_shape, cfg.hidden, 2 * cfg.latent_dim),   # -> (mu, log sigma^2)
                mlp_decoder(self.image_shape, cfg.hidden, cfg.latent_dim))


class ConvVAETrainer(AutoencoderTrainer):
    def build_nets(self):
        cfg = self.cfg
        nc, size, _ = self.image_shape
        k = self.classes
        encoder = conv_encoder(nc + k, size, cfg.width, 2 * cfg.latent_dim)       # -> (mu, log sigma^2)
        decoder = conv_decoder(nc, size, cfg.width, cfg.latent_dim + k)
        if k:
            encoder, decoder = LabelledEncoder(encoder, k), LabelledDecoder(decoder, k)
        return encoder, decoder


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
