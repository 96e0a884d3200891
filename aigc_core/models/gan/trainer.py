"""Alternating GAN training (``GANTrainer``) and its image and 2-D point variants.

Images are trained in [-1, 1] (the range of G's tanh output) and handed out in
[0, 1]. The film strip decodes one fixed noise batch, drawn once from the run's
seed and kept in the checkpoint, so every frame shows the same 64 "faces" of
the generator as it learns.
"""

from __future__ import annotations

import copy

import torch
from PIL import Image, ImageDraw
from torch import nn

from ...data.base import ImageData, PointData
from ...errors import UserError
from ...imaging import from_unit_range, grid_image
from ...train.augment import diff_augment
from ...train.base import FixedNoiseTrainer
from ...train.utils import adam, check_count, check_steps, class_labels, eval_mode, \
    seeded_noise, slerp, total_grad_norm
from .networks import CRITIC_LOSSES, LOSSES, FeatureMap, LabelledGenerator, ProjectionDiscriminator, _dcgan_init, \
    clip_weights, dcgan_discriminator, dcgan_feature_dim, dcgan_generator, discriminator_loss, generator_loss, \
    gradient_penalty, mlp_discriminator, mlp_generator, split_batch_norm, toy_discriminator, toy_generator

FILM_STRIP_SIZE = 64  # images in one film-strip frame (an 8 x 8 grid)
TOY_FILM_STRIP_POINTS = 1000
FILM_STRIP_CLASSES = 16  # a conditional model's film strip: one row per class, at most this many rows


def _check_truncation(truncation: float) -> float:
    truncation = float(truncation)
    if not 0.0 <= truncation <= 2.0:
        raise UserError(f"truncation must be between 0 and 2 (1 = no truncation); got {truncation}")
    return truncation



class GANTrainer(FixedNoiseTrainer):
    """Alternating GAN training shared by the three GANs.

    Subclasses build ``self.nets["G"]`` and ``self.nets["D"]`` in
    :meth:`build_nets`, and say how to take a real batch and draw a frame.

    A class-conditional GAN (``self.classes > 0``) has G(z, y) and D(x, y);
    the generated batch is asked for the classes of the real batch, so both
    halves of D's batch have the same class mix.
    """

    classes = 0  # > 0: trained on the data set's classes (set in prepare_data)
    class_names: list[str] = []

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
            for m in G.modules():
                if isinstance(m, FeatureMap):
                    m.channels_last = True
        self.nets = {"G": G.to(device), "D": D.to(device)}
        self.ema_steps = 0
        if getattr(cfg, "ema_decay", 0.0) > 0:
            # the generator's moving average, which samples (see update_ema)
            self.nets["G_ema"] = copy.deepcopy(self.nets["G"]).requires_grad_(False)
        if cfg.loss == "wgan":
            # the original WGAN: RMSProp, because momentum (Adam) made the clipped critic unstable
            self.optims = {"G": torch.optim.RMSprop(self.nets["G"].parameters(), lr=cfg.lr_g),
                           "D": torch.optim.RMSprop(self.nets["D"].parameters(), lr=cfg.lr_d)}
        else:
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
        return self.labelled_batch()[0]

    def labelled_batch(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """A real batch and its class indices (``None`` for an unconditional GAN)."""
        raise NotImplementedError

    # ---- training --------------------------------------------------------------
    def noise(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.cfg.nz, device=self.device, generator=self.gen)

    def _G(self, z: torch.Tensor, y: torch.Tensor | None, G: nn.Module | None = None) -> torch.Tensor:
        G = self.nets["G"] if G is None else G
        return G(z) if y is None else G(z, y)

    @torch.no_grad()
    def update_ema(self) -> None:
        """G_ema <- d * G_ema + (1 - d) * G after each generator step, with
        d = min(ema_decay, (1 + n) / (10 + n)) after n steps: a short run
        averages over its last ~n/10 steps instead of carrying its noisy
        start, a long one over the last 1 / (1 - ema_decay). The average
        smooths the step-to-step wobble of the adversarial game, which is
        what makes a short run's samples blotchy; batch-norm statistics
        follow the live generator."""
        ema, live = self.nets["G_ema"], self.nets["G"]
        self.ema_steps += 1
        decay = min(self.cfg.ema_decay, (1 + self.ema_steps) / (10 + self.ema_steps))
        torch._foreach_lerp_(list(ema.parameters()), list(live.parameters()), 1.0 - decay)
        for b_ema, b in zip(ema.buffers(), live.buffers()):
            b_ema.copy_(b)

    def _D(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        return self.nets["D"](x) if y is None else self.nets["D"](x, y)

    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        """DiffAugment (the same random family for real and generated images)."""
        policy = getattr(self.cfg, "augment", "none")
        if policy == "none":
            return x
        x = diff_augment(x, policy, self.gen)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

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
            real, y = self.labelled_batch()
            z = self.noise(B)
            with self.autocast_ctx():
                if last:
                    fake = self._G(z, y)
                else:
                    with torch.no_grad():
                        fake = self._G(z, y)
                # DiffAugment: D only ever sees T(real) and T(fake), never one without the other
                real_seen, fake_seen = self._augment(real), self._augment(fake.detach())
                if self.joint_d_pass:
                    # one pass over [real; fake]; batch norm still sees them apart
                    with split_batch_norm(D, 2):
                        scores = self._D(torch.cat([real_seen, fake_seen]), None if y is None else torch.cat([y, y]))
                    real_scores, fake_scores = scores[:B], scores[B:]
                else:
                    real_scores = self._D(real_seen, y)
                    fake_scores = self._D(fake_seen, y)
                loss_d = discriminator_loss(cfg.loss, real_scores, fake_scores)
                if cfg.loss == "wgan_gp":
                    gp = gradient_penalty(lambda x: self._D(x, y), real_seen, fake_seen, self.gen)
                    loss_d = loss_d + cfg.gp_weight * gp
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            grad_norm_d = total_grad_norm(D.parameters())
            opt_d.step()
            if cfg.loss == "wgan":
                weight_max = clip_weights(D, cfg.clip_value)

        # 2. Generator: one update through D's verdict on the same fake batch.
        #    D's weights need no gradients here, which saves a third of D's
        #    backward pass.
        D.requires_grad_(False)
        try:
            with self.autocast_ctx():
                loss_g = generator_loss(cfg.loss, self._D(self._augment(fake), y))
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
        finally:
            D.requires_grad_(True)
        grad_norm_g = total_grad_norm(G.parameters())
        opt_g.step()
        if "G_ema" in self.nets:
            self.update_ema()

        real_scores, fake_scores = real_scores.detach().float(), fake_scores.detach().float()
        if cfg.loss == "nonsaturating":  # probabilities, as the charts explain D(x)
            real_scores, fake_scores = torch.sigmoid(real_scores), torch.sigmoid(fake_scores)
        out.update(loss_d=loss_d.detach(), loss_g=loss_g.detach(),
                   d_real=real_scores.mean(), d_fake=fake_scores.mean(),
                   grad_norm_d=grad_norm_d, grad_norm_g=grad_norm_g)
        if cfg.loss == "wgan_gp":
            out["gp"] = gp.detach()
        if cfg.loss in CRITIC_LOSSES:
            out["wasserstein"] = real_scores.mean() - fake_scores.mean()
        if cfg.loss == "wgan":
            out["critic_weight_max"] = weight_max
        return out

    def extra_state(self) -> dict:
        return {**super().extra_state(), "ema_steps": self.ema_steps}

    def load_extra_state(self, extra: dict) -> None:
        super().load_extra_state(extra)
        self.ema_steps = int(extra.get("ema_steps", 0))

    # ---- generation --------------------------------------------------------------
    def generate(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Raw generator output for noise ``z`` (and classes ``y`` for a
        conditional GAN; any device), on the CPU as float; the moving
        average of G when the run keeps one."""
        G = self.nets["G_ema"] if "G_ema" in self.nets else self.nets["G"]
        chunks = []
        ys = [None] * len(z.split(256)) if y is None else y.split(256)
        with eval_mode(G), torch.inference_mode(), self.autocast_ctx():
            for part, labels in zip(z.split(256), ys):
                labels = None if labels is None else labels.to(self.device)
                chunks.append(self._G(part.to(self.device), labels, G).float().cpu())
        return torch.cat(chunks)

    # ---- classes -----------------------------------------------------------------
    def condition_choices(self) -> dict[str, list]:
        """The ``label`` knob's values (class names) for a conditional GAN, else {}."""
        return {"label": list(self.class_names)} if self.classes else {}

    def labels_for(self, label, n: int, seed: int) -> torch.Tensor | None:
        """Class indices (n,) for the ``label`` knob: a class name, an index, or
        ``all`` (each sample's class drawn at random from the seed)."""
        return class_labels(label, n, seed, self.class_names if self.classes else [])

    def to_output(self, raw: torch.Tensor) -> torch.Tensor:
        """Generator output -> what :meth:`sample` hands out (images in [0, 1])."""
        return from_unit_range(raw)

    def sample(self, n: int, seed: int, truncation: float = 1.0, label="all") -> torch.Tensor:
        """``n`` samples from noise seeded by ``seed``: images (N, C, H, W) in
        [0, 1] (points: (N, 2)), float on the CPU.

        ``truncation`` psi scales the noise, z -> psi * z: below 1 the samples
        move towards the generator's "average" output (cleaner, less varied);
        0 gives that single average sample; above 1 more varied and stranger.
        ``label`` (a conditional GAN) asks for one class by name or index.
        """
        n, psi = check_count(n), _check_truncation(truncation)
        y = self.labels_for(label, n, seed)
        return self.to_output(self.generate(seeded_noise(n, self.cfg.nz, seed) * psi, y))

    def interpolate(self, seed_a: int, seed_b: int, steps: int = 8, truncation: float = 1.0,
                    label="all") -> torch.Tensor:
        """A walk from ``sample(1, seed_a)`` to ``sample(1, seed_b)`` in ``steps``
        frames, along the spherical path between their noise vectors (a
        conditional GAN keeps one class: the one asked for, or seed_a's)."""
        psi = _check_truncation(truncation)
        steps = check_steps(steps)
        za, zb = seeded_noise(1, self.cfg.nz, seed_a)[0], seeded_noise(1, self.cfg.nz, seed_b)[0]
        y = self.labels_for(label, 1, seed_a)
        return self.to_output(self.generate(slerp(za, zb, steps) * psi, None if y is None else y.expand(steps)))


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
        if getattr(self.cfg, "conditional", False):
            if data.labels is None or not data.class_names or len(data.class_names) < 2:
                raise UserError("conditional=true needs a labelled image set (at least 2 classes); "
                                f"{data.name!r} has none: set conditional=false")
            self.classes, self.class_names = len(data.class_names), list(data.class_names)
            self.labels = data.labels.long().to(self.device)
        images = data.images.to(self.device)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        self.images = images

    def labelled_batch(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        idx = torch.randint(self.images.shape[0], (self.cfg.batch_size,), device=self.device, generator=self.gen)
        batch = self.images[idx].float().div_(127.5).sub_(1.0)  # [0, 255] -> [-1, 1]
        if self.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        return batch, (self.labels[idx] if self.classes else None)

    def film_strip(self) -> Image.Image:
        """8 x 8 samples of the fixed noise; a conditional GAN: one row per
        class, the same 8 noise vectors in every row (style stays, class changes)."""
        if not self.classes:
            return grid_image(self.to_output(self.generate(self.fixed_noise)), nrow=8)
        rows = min(self.classes, FILM_STRIP_CLASSES)
        z = self.fixed_noise[:8].repeat(rows, 1)
        y = torch.arange(rows).repeat_interleave(8)
        return grid_image(self.to_output(self.generate(z, y)), nrow=8)


class MLPGANTrainer(ImageGANTrainer):
    def build_nets(self):
        cfg = self.cfg
        return (mlp_generator(cfg.nz, cfg.width, self.image_shape, cfg.g_norm),
                mlp_discriminator(cfg.width, self.image_shape))


class DCGANTrainer(ImageGANTrainer):
    def __init__(self, cfg, data, device, seed, autocast=None):
        self.channels_last = bool(cfg.channels_last)
        super().__init__(cfg, data, device, seed, autocast)

    def build_nets(self):
        cfg = self.cfg
        nc, size, _ = self.image_shape
        norm = "layer" if cfg.loss == "wgan_gp" else "batch"
        G = dcgan_generator(cfg.nz + self.classes, cfg.ngf, nc, size)
        D = dcgan_discriminator(cfg.ndf, nc, size, norm)
        G.apply(_dcgan_init)
        D.apply(_dcgan_init)
        if self.classes:
            G = LabelledGenerator(G, self.classes)
            D = ProjectionDiscriminator(D, self.classes, dcgan_feature_dim(cfg.ndf, size))
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

    def labelled_batch(self) -> tuple[torch.Tensor, None]:
        idx = torch.randint(self.points.shape[0], (self.cfg.batch_size,), device=self.device, generator=self.gen)
        return self.points[idx], None

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
