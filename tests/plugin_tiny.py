"""A tiny model and data set for testing the run machinery in seconds.

Loaded through ``$AIGC_PLUGINS`` (the same way a user's own models would be),
so worker processes started by the queue see it too.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn

from aigc_core.config import param
from aigc_core.data.base import ImageData, PointData
from aigc_core.data.catalog import builtin
from aigc_core.imaging import grid_image
from aigc_core.registry import ModelSpec, register
from aigc_core.train.base import Trainer
from aigc_core.train.utils import seeded_noise


@builtin("tiny_points", kind="points", description="64 points on a line (tests only)")
def tiny_points() -> PointData:
    x = torch.linspace(-1, 1, 64)
    return PointData("tiny_points", torch.stack([x, 2 * x], dim=1))


@dataclass
class TinyConfig:
    lr: float = param(0.05, "Learning rate", min=0.0, max=1e6)
    step_sleep: float = param(0.0, "Sleep per step (s)", "slows steps down so tests can act mid-run", min=0.0, max=5.0)
    explode_at: int = param(0, "Make the loss NaN at this step (0 = never)", min=0, max=10**9)


@dataclass
class TinyLineKnobs:
    spread: float = param(1.0, "Spread", "How far apart the sampled x values lie.", min=0.0, max=2.0, step=0.1)


class TinyTrainer(Trainer):
    """Fits y = a x + b by gradient descent."""

    loss_names = {"loss": "the regression loss"}

    def __init__(self, cfg, data, device, seed, autocast=None):
        super().__init__(cfg, data, device, seed, autocast)
        self.points = data.points.to(device)
        self.nets["line"] = nn.Linear(1, 1).to(device)
        self.optims["line"] = torch.optim.SGD(self.nets["line"].parameters(), lr=cfg.lr)
        self.batch_size = 16
        self.n_steps = 0

    def step(self):
        if self.cfg.step_sleep:
            time.sleep(self.cfg.step_sleep)
        self.n_steps += 1
        idx = torch.randint(0, len(self.points), (16,), generator=self.gen, device=self.device)
        x, y = self.points[idx, :1], self.points[idx, 1:]
        loss = ((self.nets["line"](x) - y) ** 2).mean()
        if self.cfg.explode_at and self.n_steps >= self.cfg.explode_at:
            loss = loss * float("nan")
        self.optims["line"].zero_grad(set_to_none=True)
        loss.backward()
        self.optims["line"].step()
        return {"loss": loss.detach()}

    def film_strip(self):
        return f"step {self.n_steps}: w={self.nets['line'].weight.item():.3f}"

    def sample(self, n, seed, spread: float = 1.0):
        g = torch.Generator().manual_seed(seed)
        x = (torch.rand(n, 1, generator=g) * 2 - 1) * spread
        with torch.no_grad():
            return torch.cat([x, self.nets["line"](x.to(self.device)).cpu()], dim=1)

    def extra_state(self):
        return {"n_steps": self.n_steps}

    def load_extra_state(self, extra):
        self.n_steps = int(extra.get("n_steps", 0))

    def evaluate(self):
        w = self.nets["line"].weight.item()
        return {"weight_error": abs(w - 2.0)}


LINE_CHARTS = [("Losses", ("loss",), "The squared error of the line on the last batches.")]
LINE_METRICS = {"loss": ("loss", "Mean squared error of the fitted line."),
                "weight_error": ("weight error", "How far the slope is from 2.", "lower")}

register(ModelSpec(
    name="tiny_line",
    knobs=TinyLineKnobs, title="Tiny line (tests)", family="toy", data_kind="points",
    description="fits a line; for tests of the run machinery", config_cls=TinyConfig, trainer_cls=TinyTrainer,
    presets={"Quick": {"train": {"steps": 50, "log_every": 5, "sample_every": 10, "checkpoint_every": 10}}},
    charts=LINE_CHARTS,
    metrics=LINE_METRICS,
    film_caption="The fitted slope.",
    eval_budget=2000,
))


# ---- a fake "diffusion" model: it proves the denoise capability end to end ------------------

@dataclass
class TinyDenoiserConfig:
    lr: float = param(0.1, "Learning rate", min=0.0, max=10.0)


@dataclass
class TinyDenoiserKnobs:
    steps: int = param(10, "Sampling steps", "Steps from pure noise to the image.", min=1, max=50)


class TinyDenoiserTrainer(Trainer):
    """Learns the mean image; sampling walks from seeded noise towards it in
    ``steps`` equal steps (a stand-in for a reverse diffusion process)."""

    loss_names = {"loss": "the distance to the mean image"}

    def __init__(self, cfg, data, device, seed, autocast=None):
        super().__init__(cfg, data, device, seed, autocast)
        if not isinstance(data, ImageData):
            raise TypeError("tiny_denoiser trains on images")
        self.images = data.images.to(device)
        self.nets["mean"] = nn.Linear(1, int(self.images[0].numel()), bias=False).to(device)  # (1,) -> C*H*W
        self.optims["mean"] = torch.optim.SGD(self.nets["mean"].parameters(), lr=cfg.lr)
        self.batch_size = 8

    def _mean01(self) -> torch.Tensor:
        shape = self.images.shape[1:]
        return torch.sigmoid(self.nets["mean"].weight[:, 0]).reshape(shape).detach().float().cpu()

    def step(self):
        idx = torch.randint(0, len(self.images), (8,), generator=self.gen, device=self.device)
        x = self.images[idx].float().div(255).flatten(1)
        loss = ((torch.sigmoid(self.nets["mean"].weight[:, 0]) - x) ** 2).mean()
        self.optims["mean"].zero_grad(set_to_none=True)
        loss.backward()
        self.optims["mean"].step()
        return {"loss": loss.detach()}

    def denoise_path(self, seed: int, steps: int, n_frames: int) -> torch.Tensor:
        """(n_frames, C, H, W) in [0, 1]: frame 0 is the noise, the last the sample."""
        mean = self._mean01()
        noise = seeded_noise(1, mean.numel(), seed)[0].reshape(mean.shape).mul(0.5).add(0.5)
        t = torch.linspace(0, 1, int(n_frames)).round(decimals=6)
        t = (t * int(steps)).round() / int(steps)  # frames land on sampling steps
        return torch.stack([(1 - a) * noise + a * mean for a in t.tolist()]).clamp(0, 1)

    def sample(self, n, seed, steps: int = 10):
        return torch.cat([self.denoise_path(seed + i, steps, 2)[-1:] for i in range(int(n))])

    def film_strip(self):
        return grid_image(self.sample(4, self.seed), nrow=4)


register(ModelSpec(
    name="tiny_denoiser", title="Tiny denoiser (tests)", family="toy", data_kind="image",
    description="walks from noise to the mean image; for tests of the denoise capability",
    config_cls=TinyDenoiserConfig, trainer_cls=TinyDenoiserTrainer,
    knobs=TinyDenoiserKnobs, capabilities={"denoise"},
    charts=[("Losses", ("loss",), "Distance to the mean image.")],
    metrics={"loss": ("loss", "Mean squared distance of the batch to the learned mean image.")},
    explain="**What is trained.** The mean image, $$\\bar x = \\frac{1}{N}\\sum_i x_i$$",
    film_caption="Four samples.",
    eval_budget=64,
))


@dataclass
class TinyPacksConfig(TinyConfig):
    """Settings with rules between them, the way real models have them (heads
    that divide the width, batches made of whole packs)."""

    pac: int = param(4, "Packing", "Rows per pack (only checked, for tests of cross-field rules).", min=1, max=16)
    batch_size: int = param(16, "Batch size", "Rows per step; a whole number of packs.", min=1, max=256,
                            multiple_of="pac")
    lr_end: float = param(0.01, "Final learning rate", "Must not be above the starting one.", min=0.0, max=1e6)

    def problems(self) -> list[str]:
        if self.lr_end > self.lr:
            return [f"the final learning rate ({self.lr_end}) must not be above the starting one ({self.lr})"]
        return []


class TinyPacksTrainer(TinyTrainer):
    def __init__(self, cfg, data, device, seed, autocast=None):
        super().__init__(cfg, data, device, seed, autocast)
        self.batch_size = cfg.batch_size


register(ModelSpec(
    name="tiny_packs", title="Tiny packs (tests)", family="toy", data_kind="points",
    description="the tiny line with settings that must agree; for tests of cross-field checks",
    config_cls=TinyPacksConfig, trainer_cls=TinyPacksTrainer,
    presets={"Quick": {"train": {"steps": 20, "log_every": 5, "sample_every": 10, "checkpoint_every": 10}}},
    knobs=TinyLineKnobs, charts=LINE_CHARTS, metrics=LINE_METRICS, film_caption="The fitted slope.",
))
