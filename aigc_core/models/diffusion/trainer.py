"""Training and sampling a DDPM on an image set.

Each step noises a batch of real images to random levels with the forward
process and teaches the UNet to name the noise (:mod:`.networks`). An
exponential moving average (EMA) of the weights is what samples: the raw
weights jitter from step to step, and a denoiser applied a hundred times in a
row magnifies that jitter; the average is smoother.
"""

from __future__ import annotations

import copy

import torch
from PIL import Image
from torch import nn

from ...data.base import ImageData
from ...errors import UserError
from ...imaging import from_unit_range, grid_image
from ...train.base import Trainer
from ...train.utils import StepFunctionLR, adam, check_count, warmup_cosine
from .config import DDPMConfig
from .networks import SAMPLERS, UNet, ancestral_update, cosine_alpha_bar, ddim_update, noise_prediction_loss, \
    q_sample, sampling_levels

FILM_STRIP_SIZE = 64     # images in one film-strip frame (an 8 x 8 grid)
FILM_STRIP_STEPS = 10    # DDIM steps per frame: a frame every few hundred steps must stay cheap
LOSS_BUCKETS = 4         # the loss is also logged per quarter of the noise levels
SAMPLE_CHUNK = 256       # images denoised together (bounds memory at 64 px)


def _check_eta(eta: float) -> float:
    eta = float(eta)
    if not 0.0 <= eta <= 1.0:
        raise UserError(f"eta must be between 0 (deterministic DDIM) and 1 (as random as ancestral); got {eta}")
    return eta


def _row_noise(n: int, shape: tuple[int, ...], seed: int) -> tuple[torch.Tensor, list[torch.Generator]]:
    """Starting noise x_T for ``n`` samples and one generator per sample for
    the noise of later steps, all from ``seed`` on the CPU.

    Row i depends only on the seed and i, so ``sample(1, seed)`` is the first
    image of ``sample(64, seed)`` whatever the sampler draws for the others.
    """
    gen = torch.Generator().manual_seed(int(seed))
    starts, gens = [], []
    for _ in range(n):
        starts.append(torch.randn(shape, generator=gen))
        gens.append(torch.Generator().manual_seed(int(torch.randint(0, 2 ** 62, (), generator=gen))))
    return (torch.stack(starts) if n else torch.zeros(0, *shape)), gens


class DDPMTrainer(Trainer):
    """DDPM training on an :class:`ImageData` set held on the device as one
    uint8 tensor; batches are taken by indexing it. ``self.nets`` holds the
    trained UNet (``"unet"``) and its moving average (``"ema"``), so both are
    in every checkpoint."""

    loss_names = {"loss": "the noise-prediction loss"}
    nan_hint = "try a lower learning rate or a gradient clip"

    def __init__(self, cfg: DDPMConfig, data, device: torch.device, seed: int, autocast: torch.dtype | None = None):
        super().__init__(cfg, data, device, seed, autocast)
        if not isinstance(data, ImageData):
            raise UserError(f"ddpm trains on images; {getattr(data, 'name', 'this data set')!r} holds "
                            f"{getattr(data, 'kind', 'other data')}")
        if len(data) < 2:
            raise UserError("ddpm needs at least 2 training images")
        if data.size % 4:
            raise UserError(f"ddpm halves the image twice, so its side must be a multiple of 4 (this set is "
                            f"{data.size} px); re-import the data at 28, 32 or 64 px")
        if cfg.sampler not in SAMPLERS:
            raise UserError(f"unknown sampler {cfg.sampler!r}; choose one of {', '.join(SAMPLERS)}")
        self.batch_size = cfg.batch_size
        self.image_shape = (data.channels, data.size, data.size)
        self.images = data.images.to(device)
        T = cfg.timesteps
        self.T = T
        self.alpha_bar = cosine_alpha_bar(T)                        # float64 on the CPU, for the samplers
        self.alpha_bar_dev = self.alpha_bar.float().to(device)      # for training batches
        with torch.random.fork_rng(devices=[]):  # weights from the run's seed whatever the global RNG holds
            torch.manual_seed(seed)
            unet = UNet(data.channels, cfg.width, cfg.blocks, patch=cfg.patch)
        ema = copy.deepcopy(unet).requires_grad_(False)
        self.nets = {"unet": unet.to(device), "ema": ema.to(device)}
        self.optims = {"unet": adam(unet.parameters(), cfg.lr, (0.9, 0.999), device)}
        # a linear warm-up, then constant: no decay, since a run to a time budget does not know its length
        self.schedule = StepFunctionLR(self.optims["unet"], lambda n: warmup_cosine(n, cfg.lr, cfg.warmup, 0))
        self.steps_done = 0
        self.fixed_noise = torch.randn(FILM_STRIP_SIZE, *self.image_shape, generator=self.gen, device=device)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest kernels

    # ---- training --------------------------------------------------------------
    def real_batch(self) -> torch.Tensor:
        idx = torch.randint(self.images.shape[0], (self.cfg.batch_size,), device=self.device, generator=self.gen)
        return self.images[idx].float().div_(127.5).sub_(1.0)  # [0, 255] -> [-1, 1]

    def noise_levels(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` levels t in 1..T, spread evenly over the batch (one random
        offset, then steps of 1/n: "low-discrepancy" sampling, which lowers the
        variance of the loss estimate), and the quarter of the levels each is in."""
        u = torch.rand((), device=self.device, generator=self.gen)
        frac = (u + torch.arange(n, device=self.device) / n) % 1.0
        t = (frac * self.T).long().clamp(max=self.T - 1) + 1
        bucket = (frac * LOSS_BUCKETS).long().clamp(max=LOSS_BUCKETS - 1)
        return t, bucket

    def ema_decay(self) -> float:
        """The EMA's decay after ``steps_done`` steps: min(decay, (1 + n) / (10 + n)),
        so a short run's average is not dominated by its random start."""
        n = self.steps_done
        return min(self.cfg.ema_decay, (1 + n) / (10 + n))

    @torch.no_grad()
    def update_ema(self) -> None:
        """ema <- decay * ema + (1 - decay) * weights (buffers copied).

        Written out rather than :class:`aigc_core.train.utils.EMA`: that one
        binds a fixed decay once, and with 0.999 from the first step a run of a
        few thousand steps would sample from weights still mostly made of its
        random start; the decay here warms up with the step count."""
        unet, ema = self.nets["unet"], self.nets["ema"]
        torch._foreach_lerp_(list(ema.parameters()), list(unet.parameters()), 1.0 - self.ema_decay())
        for b_ema, b in zip(ema.buffers(), unet.buffers()):
            b_ema.copy_(b)

    def step(self) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        unet, opt = self.nets["unet"], self.optims["unet"]
        x0 = self.real_batch()
        t, bucket = self.noise_levels(cfg.batch_size)
        eps = torch.randn(x0.shape, device=self.device, generator=self.gen)
        x_t = q_sample(x0, self.alpha_bar_dev[t - 1], eps)
        with self.autocast_ctx():
            eps_pred = unet(x_t, t)
        per_image = noise_prediction_loss(eps_pred, eps)
        loss = per_image.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        params = [p for p in unet.parameters() if p.grad is not None]
        if cfg.grad_clip > 0:
            grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip, foreach=True)
        else:
            grad_norm = torch.nn.utils.get_total_norm([p.grad for p in params], foreach=True)
        lr = self.schedule.get_last_lr()[0]
        opt.step()
        self.schedule.step()
        self.update_ema()
        self.steps_done += 1

        per_image = per_image.detach()
        sums = torch.zeros(LOSS_BUCKETS, device=self.device).index_add_(0, bucket, per_image)
        # (not torch.bincount: on a GPU it reads the largest index back to size its output, a host sync)
        counts = torch.zeros(LOSS_BUCKETS, device=self.device).index_add_(0, bucket, torch.ones_like(per_image))
        counts = counts.clamp(min=1)
        by_level = sums / counts
        out = {"loss": loss.detach(), "grad_norm": grad_norm.detach(),
               "lr": torch.tensor(lr, device=self.device)}
        for i in range(LOSS_BUCKETS):
            out[f"loss_t{i + 1}"] = by_level[i]
        return out

    # ---- sampling ----------------------------------------------------------------
    def _resolve(self, steps, sampler, eta) -> tuple[int, str, float]:
        steps = self.cfg.sample_steps if steps is None else int(steps)
        sampler = self.cfg.sampler if sampler is None else str(sampler)
        if sampler not in SAMPLERS:
            raise UserError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
        if not 1 <= steps <= self.T:
            raise UserError(f"sampling takes between 1 and {self.T} steps (the model's noise levels); got {steps}")
        return steps, sampler, _check_eta(eta)

    @torch.inference_mode()
    def denoise(self, x_T: torch.Tensor, gens: list[torch.Generator] | None, steps: int, sampler: str,
                eta: float = 0.0, keep: set[int] | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Run the reverse process from ``x_T`` (any device) with the EMA weights.

        Returns the final images in [-1, 1] on the CPU and, for each step
        index in ``keep`` (0 = x_T, ``steps`` = the result), that state.
        ``gens`` (one per row) draw the fresh noise of the ancestral sampler
        and of DDIM with eta > 0.
        """
        ema = self.nets["ema"]
        levels = sampling_levels(self.T, steps)
        abar = self.alpha_bar.tolist()
        x = x_T.to(self.device, torch.float32)
        kept = [x.float().cpu()] if keep and 0 in keep else []
        was = ema.training
        ema.eval()
        try:
            for i, level in enumerate(levels):
                a_t = abar[level - 1]
                a_prev = abar[levels[i + 1] - 1] if i + 1 < len(levels) else 1.0
                t = torch.full((x.shape[0],), level, device=self.device, dtype=torch.long)
                with self.autocast_ctx():
                    eps = ema(x, t).float()
                random_step = sampler == "ancestral" or eta > 0
                z = None
                if random_step and gens is not None and i + 1 < len(levels):
                    z = torch.stack([torch.randn(x.shape[1:], generator=g) for g in gens]).to(self.device)
                if sampler == "ancestral":
                    x = ancestral_update(x, eps, a_t, a_prev, z)
                else:
                    x = ddim_update(x, eps, a_t, a_prev, eta, z)
                if keep and i + 1 in keep:
                    kept.append(x.float().cpu())
        finally:
            ema.train(was)
        return x.float().cpu(), kept

    def sample(self, n: int, seed: int, steps: int | None = None, sampler: str | None = None,
               eta: float = 0.0) -> torch.Tensor:
        """``n`` images (N, C, H, W) in [0, 1], float on the CPU, from noise
        seeded by ``seed`` (the same seed gives the same images).

        ``steps``: denoising steps S (1..T; default the config's
        ``sample_steps``); ``sampler``: ``ddim`` or ``ancestral`` (default the
        config's); ``eta``: DDIM's share of fresh noise per step (0 =
        deterministic, 1 = as random as ancestral).
        """
        n = check_count(n)
        steps, sampler, eta = self._resolve(steps, sampler, eta)
        x_T, gens = _row_noise(n, self.image_shape, seed)
        chunks = []
        for start in range(0, n, SAMPLE_CHUNK):
            part = slice(start, start + SAMPLE_CHUNK)
            chunks.append(self.denoise(x_T[part], gens[part], steps, sampler, eta)[0])
        return from_unit_range(torch.cat(chunks))

    def denoise_path(self, seed: int, steps: int | None = None, n_frames: int = 11, sampler: str | None = None,
                     eta: float = 0.0) -> torch.Tensor:
        """The denoising scrubber: ``sample(1, seed, steps, sampler, eta)`` on
        its way from pure noise to the image, as ``n_frames`` states (n_frames,
        C, H, W) in [0, 1], evenly spaced over the steps. The first frame is
        the starting noise x_T, the last is the sample itself."""
        steps, sampler, eta = self._resolve(steps, sampler, eta)
        n_frames = int(n_frames)
        if not 2 <= n_frames <= steps + 1:
            raise UserError(f"a path of {steps} steps has between 2 and {steps + 1} frames; got {n_frames}")
        picks = [round(i * steps / (n_frames - 1)) for i in range(n_frames)]
        x_T, gens = _row_noise(1, self.image_shape, seed)
        _, kept = self.denoise(x_T, gens, steps, sampler, eta, keep=set(picks))
        return from_unit_range(torch.cat(kept))

    def film_strip(self) -> Image.Image:
        images, _ = self.denoise(self.fixed_noise, None, min(FILM_STRIP_STEPS, self.T), "ddim")
        return grid_image(from_unit_range(images), nrow=8)

    # ---- checkpoints -------------------------------------------------------------
    def extra_state(self) -> dict:
        return {"fixed_noise": self.fixed_noise.detach().cpu(), "steps_done": self.steps_done,
                "schedule": self.schedule.state_dict()}

    def load_extra_state(self, extra: dict) -> None:
        if "fixed_noise" in extra:
            self.fixed_noise = extra["fixed_noise"].to(self.device, torch.float32)
        if "steps_done" in extra:
            self.steps_done = int(extra["steps_done"])
        if "schedule" in extra:
            self.schedule.load_state_dict(extra["schedule"])
