"""The 2-D GAN lab's engine: a tiny generator and discriminator on points in the
plane, stepped by the learner (D only, G only, or both), and everything a
frame shows as numpy arrays:

- the real points and the generated points (from a fixed noise batch);
- D's output over the plane (a heat map on a grid);
- the generator's manifold: a grid over the 2-D noise plane pushed through G;
- an arrow on each generated point: the direction G's loss gradient moves it.

The networks are written here (a few lines) rather than borrowed from the
studio's model modules, so the lab stays small and runs for each learner in
the page process itself (no queue): one step takes about a millisecond.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError

DATASETS = ("ring8", "grid25", "moons", "spiral")
LOSSES = ("nonsaturating", "wgan_gp", "hinge")
TRAIN_WHAT = ("both", "d", "g")
NZ = 2  # two noise numbers, so the manifold is a sheet we can draw
SHOWN_REAL = 512
SHOWN_FAKE = 256
LIMIT = 2.0  # the plane shown: [-LIMIT, LIMIT]^2


def _points(name: str) -> torch.Tensor:
    from ..data import points

    if name not in DATASETS:
        raise UserError(f"the GAN lab has the point sets {', '.join(DATASETS)}; got {name!r}")
    return getattr(points, name)(count=4096).points.float()


def mlp(n_in: int, width: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(n_in, width), nn.LeakyReLU(0.2),   # (B, width)
        nn.Linear(width, width), nn.LeakyReLU(0.2),  # (B, width)
        nn.Linear(width, n_out),                     # (B, n_out)
    )


def d_loss(kind: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """D's loss on raw scores: non-saturating -E[log D(x)] - E[log(1 - D(G(z)))]
    (D = sigmoid of the score); Wasserstein E[D(G(z))] - E[D(x)] (the penalty is
    added by the caller); hinge E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))]."""
    if kind == "nonsaturating":
        return F.softplus(-real).mean() + F.softplus(fake).mean()
    if kind == "wgan_gp":
        return fake.mean() - real.mean()
    return F.relu(1 - real).mean() + F.relu(1 + fake).mean()


def g_loss(kind: str, fake: torch.Tensor) -> torch.Tensor:
    """G's loss: non-saturating -E[log D(G(z))]; Wasserstein and hinge -E[D(G(z))]."""
    if kind == "nonsaturating":
        return F.softplus(-fake).mean()
    return -fake.mean()


@dataclass
class Frame:
    step: int
    real: np.ndarray        # (R, 2)
    fake: np.ndarray        # (F, 2) from the fixed noise
    arrows: np.ndarray      # (F, 2): -dL_G/dx per generated point, scaled for drawing
    axis: np.ndarray        # (K,) coordinates of the heat-map grid on both axes
    heat: np.ndarray        # (K, K): D's output at (axis[j], axis[i]) in row i, column j
    heat_label: str
    manifold: np.ndarray    # (M, M, 2): G over an M x M grid of the noise plane
    loss_d: float
    loss_g: float


class GanLab:
    """One learner's lab. Not shared between threads: each learner has their own."""

    def __init__(self, dataset: str = "ring8", loss: str = "nonsaturating", lr_g: float = 1e-3, lr_d: float = 1e-3,
                 d_steps: int = 1, seed: int = 0, width: int = 64, batch_size: int = 256):
        if loss not in LOSSES:
            raise UserError(f"the GAN lab's losses are {', '.join(LOSSES)}; got {loss!r}")
        self.data = _points(dataset)
        self.dataset, self.loss, self.batch_size = dataset, loss, batch_size
        self.d_steps = int(d_steps)
        self.gen = torch.Generator().manual_seed(seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.G, self.D = mlp(NZ, width, 2), mlp(2, width, 1)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr_g, betas=(0.5, 0.999))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr_d, betas=(0.5, 0.999))
        self.fixed_noise = torch.randn(SHOWN_FAKE, NZ, generator=self.gen)
        pick = torch.randperm(len(self.data), generator=torch.Generator().manual_seed(1))[:SHOWN_REAL]
        self.shown_real = self.data[pick]
        self.step_count = 0
        self.last = {"loss_d": float("nan"), "loss_g": float("nan")}

    def set_learning_rates(self, lr_g: float, lr_d: float) -> None:
        for opt, lr in ((self.opt_g, lr_g), (self.opt_d, lr_d)):
            for group in opt.param_groups:
                group["lr"] = float(lr)

    def _real(self) -> torch.Tensor:
        return self.data[torch.randint(len(self.data), (self.batch_size,), generator=self.gen)]

    def _noise(self, n: int) -> torch.Tensor:
        return torch.randn(n, NZ, generator=self.gen)

    def _d_step(self) -> None:
        real = self._real()
        with torch.no_grad():
            fake = self.G(self._noise(self.batch_size))
        loss = d_loss(self.loss, self.D(real), self.D(fake))
        if self.loss == "wgan_gp":
            eps = torch.rand(len(real), 1, generator=self.gen)
            xhat = (eps * real + (1 - eps) * fake).requires_grad_(True)
            (grad,) = torch.autograd.grad(self.D(xhat).sum(), xhat, create_graph=True)
            loss = loss + 0.1 * (grad.norm(dim=1) - 1).pow(2).mean()  # 2-D data: a small lambda
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_d.step()
        self.last["loss_d"] = float(loss.detach())

    def _g_step(self) -> None:
        self.D.requires_grad_(False)
        try:
            loss = g_loss(self.loss, self.D(self.G(self._noise(self.batch_size))))
            self.opt_g.zero_grad(set_to_none=True)
            loss.backward()
        finally:
            self.D.requires_grad_(True)
        self.opt_g.step()
        self.last["loss_g"] = float(loss.detach())

    def step(self, train: str = "both", n: int = 1) -> None:
        """``n`` training steps: ``d`` (D only), ``g`` (G only) or ``both``
        (``d_steps`` D updates, then one G update)."""
        if train not in TRAIN_WHAT:
            raise UserError(f"train one of {', '.join(TRAIN_WHAT)}; got {train!r}")
        for _ in range(int(n)):
            if train in ("both", "d"):
                for _ in range(self.d_steps if train == "both" else 1):
                    self._d_step()
            if train in ("both", "g"):
                self._g_step()
            self.step_count += 1

    @torch.no_grad()
    def _heat(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        axis = torch.linspace(-LIMIT, LIMIT, k)
        yy, xx = torch.meshgrid(axis, axis, indexing="ij")
        scores = self.D(torch.stack([xx.reshape(-1), yy.reshape(-1)], 1)).reshape(k, k)
        if self.loss == "nonsaturating":
            scores = torch.sigmoid(scores)  # D's probability that a point is real
        return axis.numpy(), scores.numpy()

    def frame(self, grid: int = 40, manifold: int = 15) -> Frame:
        """Everything one picture of the lab shows (about 2 ms)."""
        axis, heat = self._heat(grid)
        z = self.fixed_noise.clone()
        fake = self.G(z).detach().requires_grad_(True)
        self.D.requires_grad_(False)
        try:
            (grad,) = torch.autograd.grad(g_loss(self.loss, self.D(fake)) * len(fake), fake)
        finally:
            self.D.requires_grad_(True)
        move = -grad
        # arrows scaled so the longest is a tenth of the plane: direction and relative size are what matter
        longest = float(move.norm(dim=1).max())
        arrows = move * (0.1 * 2 * LIMIT / longest) if longest > 0 else move
        with torch.no_grad():
            u = torch.linspace(-2.5, 2.5, manifold)
            uu, vv = torch.meshgrid(u, u, indexing="ij")
            sheet = self.G(torch.stack([uu.reshape(-1), vv.reshape(-1)], 1)).reshape(manifold, manifold, 2)
        return Frame(step=self.step_count, real=self.shown_real.numpy(), fake=fake.detach().numpy(),
                     arrows=arrows.numpy(), axis=axis, heat=heat,
                     heat_label="D(x): probability of real" if self.loss == "nonsaturating" else "D(x): critic score",
                     manifold=sheet.numpy(), loss_d=self.last["loss_d"], loss_g=self.last["loss_g"])


def lab_figure(frame: Frame, show_heat: bool = True, show_manifold: bool = True, show_arrows: bool = True):
    """A plotly figure of one frame."""
    import plotly.graph_objects as go

    fig = go.Figure()
    if show_heat:
        prob = frame.heat_label.startswith("D(x): probability")
        fig.add_trace(go.Heatmap(x=frame.axis, y=frame.axis, z=frame.heat, colorscale="RdBu_r", opacity=0.55,
                                 zmin=0 if prob else None, zmax=1 if prob else None,
                                 colorbar=dict(title=dict(text=frame.heat_label, side="right"), thickness=12),
                                 hoverinfo="skip"))
    if show_manifold:
        xs, ys = [], []
        sheet = frame.manifold
        for lines in (sheet, sheet.transpose(1, 0, 2)):
            for line in lines:
                xs += list(line[:, 0]) + [None]
                ys += list(line[:, 1]) + [None]
        fig.add_trace(go.Scattergl(x=xs, y=ys, mode="lines", line=dict(color="rgba(120,60,160,0.45)", width=1),
                                   name="G's manifold", hoverinfo="skip"))
    fig.add_trace(go.Scattergl(x=frame.real[:, 0], y=frame.real[:, 1], mode="markers", name="real",
                               marker=dict(size=4, color="rgba(40,40,40,0.55)")))
    fig.add_trace(go.Scattergl(x=frame.fake[:, 0], y=frame.fake[:, 1], mode="markers", name="generated",
                               marker=dict(size=5, color="rgb(230,110,20)")))
    if show_arrows:
        tips = frame.fake + frame.arrows
        xs = np.column_stack([frame.fake[:, 0], tips[:, 0], np.full(len(tips), np.nan)]).ravel()
        ys = np.column_stack([frame.fake[:, 1], tips[:, 1], np.full(len(tips), np.nan)]).ravel()
        fig.add_trace(go.Scattergl(x=xs, y=ys, mode="lines", name="G's gradient",
                                   line=dict(color="rgba(230,110,20,0.8)", width=1), hoverinfo="skip"))
    fig.update_layout(height=520, margin=dict(l=10, r=10, t=30, b=10), uirevision="gan-lab",
                      title=f"step {frame.step} · D loss {frame.loss_d:.3f} · G loss {frame.loss_g:.3f}",
                      legend=dict(orientation="h", y=-0.05))
    fig.update_xaxes(range=[-LIMIT, LIMIT], constrain="domain")
    fig.update_yaxes(range=[-LIMIT, LIMIT], scaleanchor="x")
    return fig


def _pixels(points: np.ndarray, side: int) -> list[int]:
    """Plane coordinates -> flat [x0, y0, x1, y1, ...] integer pixels (y grows downwards)."""
    x = (points[..., 0] + LIMIT) / (2 * LIMIT) * side
    y = (1 - (points[..., 1] + LIMIT) / (2 * LIMIT)) * side
    xy = np.stack([x, y], -1).reshape(-1, 2)
    xy = np.clip(np.nan_to_num(xy, nan=-1e4), -1e4, 1e4)
    return np.round(xy).astype(int).ravel().tolist()


def frame_data(frame: Frame, side: int = 480) -> dict:
    """A frame as small JSON for the browser to draw on a canvas (about 10 kB):
    pixel coordinates as integers, D's heat map as 0..255 levels, row 0 at the top."""
    prob = frame.heat_label.startswith("D(x): probability")
    if prob:
        level = frame.heat
    else:  # a critic's score has no fixed scale: stretch this frame's range, 0 in the middle
        level = 0.5 + 0.5 * frame.heat / (float(np.abs(frame.heat).max()) or 1.0)
    return {"step": frame.step, "loss_d": round(frame.loss_d, 4), "loss_g": round(frame.loss_g, 4),
            "heat": np.round(np.clip(level[::-1], 0, 1) * 255).astype(int).ravel().tolist(),
            "fake": _pixels(frame.fake, side), "tips": _pixels(frame.fake + frame.arrows, side),
            "lines": [_pixels(line, side) for line in frame.manifold] +
                     [_pixels(line, side) for line in frame.manifold.transpose(1, 0, 2)]}


def measure_frames_per_second(learners: int = 1, seconds: float = 5.0, steps_per_frame: int = 5,
                              with_figure: bool = True) -> dict:
    """Frames per second the server can make for each learner while playing
    (``learners`` threads, each stepping its own lab and packing each frame as
    the JSON the page's canvas draws), and the slowest learner's rate."""
    rates: list[float] = []
    lock = threading.Lock()

    def play(seed: int) -> None:
        lab = GanLab(seed=seed)
        frames, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            lab.step("both", steps_per_frame)
            f = lab.frame()
            if with_figure:
                json.dumps(frame_data(f))
            frames += 1
        with lock:
            rates.append(frames / (time.perf_counter() - start))

    threads = [threading.Thread(target=play, args=(i,)) for i in range(learners)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"learners": learners, "steps_per_frame": steps_per_frame, "mean_fps": float(np.mean(rates)),
            "min_fps": float(np.min(rates)), "torch_threads": torch.get_num_threads()}
