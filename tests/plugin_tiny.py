"""A tiny model and data set for testing the run machinery in seconds.

Loaded through ``$AIGC_PLUGINS`` (the same way a user's own models would be),
so worker processes started by the queue see it too.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import torch
from torch import nn

from aigc_core.config import param
from aigc_core.data.base import PointData
from aigc_core.data.catalog import builtin
from aigc_core.registry import ModelSpec, register
from aigc_core.train.base import Trainer


@builtin("tiny_points", kind="points", description="64 points on a line (tests only)")
def tiny_points() -> PointData:
    x = torch.linspace(-1, 1, 64)
    return PointData("tiny_points", torch.stack([x, 2 * x], dim=1))


@dataclass
class TinyConfig:
    lr: float = param(0.05, "Learning rate", min=0.0, max=1e6)
    step_sleep: float = param(0.0, "Sleep per step (s)", "slows steps down so tests can act mid-run", min=0.0, max=5.0)
    explode_at: int = param(0, "Make the loss NaN at this step (0 = never)", min=0, max=10**9)


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

    def sample(self, n, seed, **knobs):
        g = torch.Generator().manual_seed(seed)
        x = torch.rand(n, 1, generator=g) * 2 - 1
        with torch.no_grad():
            return torch.cat([x, self.nets["line"](x.to(self.device)).cpu()], dim=1)

    def extra_state(self):
        return {"n_steps": self.n_steps}

    def load_extra_state(self, extra):
        self.n_steps = int(extra.get("n_steps", 0))

    def evaluate(self):
        w = self.nets["line"].weight.item()
        return {"weight_error": abs(w - 2.0)}


register(ModelSpec(
    name="tiny_line", title="Tiny line (tests)", family="toy", data_kind="points",
    description="fits a line; for tests of the run machinery", config_cls=TinyConfig, trainer_cls=TinyTrainer,
    presets={"Quick": {"train": {"steps": 50, "log_every": 5, "sample_every": 10, "checkpoint_every": 10}}},
    charts=[("Losses", ("loss",), "The squared error of the line on the last batches.")],
    metrics={"loss": ("loss", "Mean squared error of the fitted line."),
             "weight_error": ("weight error", "How far the slope is from 2.", "lower")},
    film_caption="The fitted slope.",
    eval_budget=2000,
))
