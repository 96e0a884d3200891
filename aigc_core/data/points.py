"""2-D point sets for the toy GANs: where a GAN's modes are easy to see.

Each set is 8,192 points ``(N, 2)`` float32 at roughly unit scale (most
points within [-1.5, 1.5]), deterministic for its seed, with a label saying
which mode (Gaussian, moon, arm) a point came from. A generator that covers
only some of the labels has "mode collapse", visible at a glance.
"""

from __future__ import annotations

import math

import torch

from .base import PointData
from .catalog import builtin

POINTS_COUNT = 8192
POINTS_SEED = 7


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def ring8(count: int = POINTS_COUNT, seed: int = POINTS_SEED, radius: float = 1.0, std: float = 0.05) -> PointData:
    gen = _gen(seed)
    labels = torch.randint(8, (count,), generator=gen)
    angle = labels.float() * (2 * math.pi / 8)
    centres = torch.stack([torch.cos(angle), torch.sin(angle)], 1) * radius
    points = centres + torch.randn(count, 2, generator=gen) * std
    return PointData("ring8", points.float(), labels, description="a ring of 8 Gaussians (radius 1, std 0.05)")


def grid25(count: int = POINTS_COUNT, seed: int = POINTS_SEED, std: float = 0.05) -> PointData:
    gen = _gen(seed)
    labels = torch.randint(25, (count,), generator=gen)
    # centres at -1, -0.5, 0, 0.5, 1 on each axis
    centres = torch.stack([labels % 5, labels // 5], 1).float() * 0.5 - 1.0
    points = centres + torch.randn(count, 2, generator=gen) * std
    return PointData("grid25", points, labels, description="a 5x5 grid of Gaussians (spacing 0.5, std 0.05)")


def moons(count: int = POINTS_COUNT, seed: int = POINTS_SEED, noise: float = 0.06) -> PointData:
    """Two interleaved half circles (as scikit-learn's ``make_moons``), centred
    and scaled so both axes fit about [-1.5, 1.5]."""
    gen = _gen(seed)
    labels = torch.randint(2, (count,), generator=gen)
    t = torch.rand(count, generator=gen) * math.pi
    upper = torch.stack([torch.cos(t), torch.sin(t)], 1)
    lower = torch.stack([1 - torch.cos(t), 0.5 - torch.sin(t)], 1)
    points = torch.where(labels.view(-1, 1) == 0, upper, lower)
    points = points + torch.randn(count, 2, generator=gen) * noise
    points = (points - torch.tensor([0.5, 0.25])) / 1.4
    return PointData("moons", points, labels, description="two interleaved moons")


def spiral(count: int = POINTS_COUNT, seed: int = POINTS_SEED, arms: int = 2, turns: float = 1.5,
           noise: float = 0.03) -> PointData:
    """``arms`` arms winding ``turns`` times out from the centre to radius 1;
    points are spread evenly along each arm's length, not its angle."""
    gen = _gen(seed)
    labels = torch.randint(arms, (count,), generator=gen)
    # radius grows linearly with angle, so arc length grows like r^2; sqrt of a
    # uniform number gives an even density along the arm
    r = torch.rand(count, generator=gen).sqrt() * 0.95 + 0.05
    angle = r * turns * 2 * math.pi + labels.float() * (2 * math.pi / arms)
    points = torch.stack([r * torch.cos(angle), r * torch.sin(angle)], 1)
    points = points + torch.randn(count, 2, generator=gen) * noise
    return PointData("spiral", points, labels, description=f"a {arms}-armed spiral")


_SUMMARY = dict(count=POINTS_COUNT, dims=2)
builtin("ring8", kind="points", description="8,192 points from a ring of 8 Gaussians: the classic mode-collapse test.",
        summary=_SUMMARY)(ring8)
builtin("grid25", kind="points", description="8,192 points from a 5x5 grid of Gaussians: 25 modes to cover.",
        summary=_SUMMARY)(grid25)
builtin("moons", kind="points", description="8,192 points on two interleaved half circles.", summary=_SUMMARY)(moons)
builtin("spiral", kind="points", description="8,192 points on a two-armed spiral.", summary=_SUMMARY)(spiral)


def point_stats(data: PointData) -> dict:
    """Count, the spread of each axis and the points per mode, for the Data page."""
    points = data.points.float()
    stats = dict(count=len(data), dims=int(points.shape[1]),
                 mean=[round(float(v), 4) for v in points.mean(0)],
                 std=[round(float(v), 4) for v in points.std(0)] if len(data) > 1 else [0.0] * int(points.shape[1]),
                 min=[round(float(v), 4) for v in points.min(0).values],
                 max=[round(float(v), 4) for v in points.max(0).values],
                 modes=0, per_mode=None)
    if data.labels is not None:
        counts = torch.bincount(data.labels.long())
        stats.update(modes=int((counts > 0).sum()), per_mode={str(i): int(c) for i, c in enumerate(counts) if c > 0})
    return stats
