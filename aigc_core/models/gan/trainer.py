"""Alternating GAN training (``GANTrainer``) and its image and 2-D point variants.

Images are trained in [-1, 1] (the range of G's tanh output) and handed out in
[0, 1]. The film strip decodes one fixed noise batch, drawn once from the run's
seed and kept in the checkpoint, so every frame shows the same 64 "faces" of
the generator as it learns.
"""

from __future__ import annotations

import torch
from PIL import Image, ImageDraw
from torch import nn

from ...data.base import ImageData, PointData
from ...errors import UserError
from ...imaging import from_unit_range, grid_image
from ...train.base import Trainer
from ...train.utils import adam, check_count, check_steps, eval_mode, match_param_layout, seeded_noise, slerp, \
    total_grad_norm
from .networks import LOSSES, _dcgan_init, dcgan_discriminator, dcgan_generator, discriminator_loss, \
    generator_loss, gradient_penalty, mlp_discriminator, mlp_generator, split_batch_norm, toy_discriminator, \
    toy_generator

FILM_STRIP_SIZE = 64  # images in one film-strip frame (an 8 x 8 grid)
TOY_FILM_STRIP_POINTS = 1000


def _check_truncation(truncation: float) -> float:
    truncation = float(truncation)
    if not 0.0 <= truncation <= 2.0:
        raise UserError(f"truncation must be between 0 and 2 (1 = no truncation); got {truncation}")
    return truncation



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
        n, psi = check_count(n), _check_truncation(truncation)
        return self.to_output(self.generate(seeded_noise(n, self.cfg.nz, seed) * psi))

    def interpolate(self, seed_a: int, seed_b: int, steps: int = 8, truncation: float = 1.0) -> torch.Tensor:
        """A walk from ``sample(1, seed_a)`` to ``sample(1, seed_b)`` in ``steps``
        frames, along the spherical path between their noise vectors."""
        psi = _check_truncation(truncation)
        steps = check_steps(steps)
        za, zb = seeded_noise(1, self.cfg.nz, seed_a)[0], seeded_noise(1, self.cfg.nz, seed_b)[0]
        return self.to_output(self.generate(slerp(za, zb, steps) * psi))

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
