"""Training helpers every family shares: the optimiser set-up, evaluation
mode, seeded noise, spherical interpolation, gradient norms, weight averaging
(EMA) and learning-rate schedules.

They used to live inside ``models/gan.py`` and were borrowed from there by the
VAEs; a family now imports them from here, and none imports another family.
"""

from __future__ import annotations

import contextlib
from typing import Callable

import torch
from torch import nn
from torch.optim.lr_scheduler import LRScheduler
from torch.optim.swa_utils import get_ema_multi_avg_fn

from ..errors import UserError

MAX_SAMPLES = 10_000


def adam(params, lr: float, betas: tuple[float, float], device: torch.device) -> torch.optim.Adam:
    # The fused kernel does the whole update in one pass over the parameters;
    # it exists for CPU and CUDA (not every other backend).
    fused = device.type in ("cpu", "cuda")
    return torch.optim.Adam(params, lr=lr, betas=betas, fused=fused, foreach=None if fused else True)


@contextlib.contextmanager
def eval_mode(*nets: nn.Module):
    """Evaluation mode (batch norm uses running statistics, so one sample does
    not depend on the others in its batch); restores the previous mode."""
    was = [net.training for net in nets]
    for net in nets:
        net.eval()
    try:
        yield
    finally:
        for net, on in zip(nets, was):
            net.train(on)


def seeded_noise(n: int, dim: int, seed: int) -> torch.Tensor:
    """``n`` draws of z ~ N(0, I) of size ``dim`` from ``seed`` on the CPU.

    Row i depends only on the seed, never on the device or on ``n``'s later
    rows, so ``sample(1, seed)`` is the first image of ``sample(64, seed)``.
    """
    gen = torch.Generator().manual_seed(int(seed))
    # One draw per row: a single randn(n, dim) fills values in a pattern that
    # depends on the total size, which would change row 0 with n.
    return torch.stack([torch.randn(dim, generator=gen) for _ in range(n)]) if n else torch.zeros(0, dim)


def slerp(a: torch.Tensor, b: torch.Tensor, steps: int) -> torch.Tensor:
    """``steps`` points on the great circle from ``a`` to ``b`` (both ``(dim,)``).

    Spherical rather than straight-line interpolation: Gaussian noise lives
    near a sphere of radius sqrt(dim), and the midpoint of a straight line is
    much closer to the origin than any z the generator saw in training.
    """
    if steps < 2:
        raise UserError("an interpolation needs at least 2 steps")
    t = torch.linspace(0, 1, steps, dtype=torch.float64).unsqueeze(1)
    a64, b64 = a.double(), b.double()
    cos = torch.dot(a64 / a64.norm(), b64 / b64.norm()).clamp(-1, 1)
    omega = torch.arccos(cos)
    if omega.abs() < 1e-4:  # (almost) the same direction: a straight line is the same path
        path = (1 - t) * a64 + t * b64
    else:
        path = (torch.sin((1 - t) * omega) * a64 + torch.sin(t * omega) * b64) / torch.sin(omega)
    path[0], path[-1] = a64, b64  # exact endpoints, whatever the rounding
    return path.to(a.dtype)


def check_count(n: int, most: int = MAX_SAMPLES, unit: str = "samples") -> int:
    """``n`` as an int, or a UserError when it is outside 1..``most``."""
    n = int(n)
    if not 1 <= n <= most:
        shown = f"{most:,}" if most >= 100_000 else str(most)  # "10000 samples", "1,000,000 rows"
        raise UserError(f"ask for between 1 and {shown} {unit}; got {n}")
    return n


def check_steps(steps: int) -> int:
    """The number of frames of an interpolation (2 to 256)."""
    if not 2 <= int(steps) <= 256:
        raise UserError(f"an interpolation takes between 2 and 256 steps; got {steps}")
    return int(steps)


def total_grad_norm(params) -> torch.Tensor:
    """L2 norm of all gradients together, as a device tensor (no host sync)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.nn.utils.get_total_norm(grads, foreach=True)


def match_param_layout(optims) -> None:
    """Give loaded optimiser state tensors the memory layout of their parameters.

    Checkpoints store tensors contiguous (NCHW), while channels-last weights are
    NHWC; the fused Adam kernel pairs elements by memory position, so after a
    resume it would mix up the moments of different weights unless the layouts
    match again.
    """
    for opt in optims.values():
        for group in opt.param_groups:
            for p in group["params"]:
                state = opt.state.get(p, {})
                for key, value in state.items():
                    if isinstance(value, torch.Tensor) and value.shape == p.shape and value.stride() != p.stride():
                        state[key] = torch.empty_like(p, dtype=value.dtype).copy_(value)


# ---- weight averaging --------------------------------------------------------------

class EMA:
    """An exponential moving average of a network's weights,

        w_avg <- decay * w_avg + (1 - decay) * w,

    with :func:`torch.optim.swa_utils.get_ema_multi_avg_fn` doing the update.
    The average is a plain copy of the network (not an ``AveragedModel``), so
    checkpoints keep the network's own weight names; buffers (batch-norm
    statistics) follow the live network instead of being averaged.
    """

    def __init__(self, live: nn.Module, decay: float):
        import copy

        self.live, self.decay = live, float(decay)
        self.module = copy.deepcopy(live).requires_grad_(False)
        self._update = get_ema_multi_avg_fn(self.decay)

    @torch.no_grad()
    def update(self) -> None:
        self._update(list(self.module.parameters()), list(self.live.parameters()), None)
        for avg, live in zip(self.module.buffers(), self.live.buffers()):
            avg.copy_(live)


# ---- learning-rate schedules ---------------------------------------------------------

class StepFunctionLR(LRScheduler):
    """Sets every group's learning rate to ``lr_at(step)``, the step being the
    scheduler's own counter (``last_epoch``), which its ``state_dict`` saves.

    ``lr_at`` returns the learning rate itself (not a factor of it, as
    ``LambdaLR`` would), so a schedule written as a formula gives exactly the
    numbers of that formula.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, lr_at: Callable[[int], float], last_epoch: int = -1):
        self.lr_at = lr_at
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        lr = self.lr_at(self.last_epoch)
        return [lr for _ in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        return {"last_epoch": self.last_epoch}

    def load_state_dict(self, state: dict) -> None:
        self.go_to(int(state.get("last_epoch", 0)))

    def go_to(self, step: int) -> None:
        """Continue from ``step`` (a resumed run): the rates of that step."""
        self.last_epoch = int(step)
        for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]


def warmup_cosine(step: int, peak: float, warmup: int, decay_steps: int, floor: float = 0.1,
                  progress: float | None = None) -> float:
    """Linear warm-up from 0 to ``peak`` over ``warmup`` steps, then a cosine
    from ``peak`` down to ``floor * peak`` at ``decay_steps``, then flat:

        lr(t) = peak * (t + 1) / warmup                                  t < warmup
        lr(t) = m + (peak - m) * (1 + cos(pi * p)) / 2,  m = floor * peak,
                p = min(1, (t - warmup) / (decay_steps - warmup))          after

    ``progress`` replaces p (a run trained to a time budget follows the share
    of its budget used); ``decay_steps = 0`` and no ``progress`` = no decay.
    """
    import math

    if warmup and step < warmup:
        return peak * (step + 1) / warmup
    if progress is None:
        if not decay_steps:
            return peak
        progress = (step - warmup) / max(1, decay_steps - warmup)
    progress = min(1.0, max(0.0, progress))
    low = peak / 10 if floor == 0.1 else peak * floor
    return low + 0.5 * (1.0 + math.cos(math.pi * progress)) * (peak - low)


def cosine_scale(step: int, decay_steps: int) -> float:
    """1 at the start, a cosine down to 0.1 at ``decay_steps``, 0.1 after
    (0 steps = constant 1)."""
    import math

    if not decay_steps:
        return 1.0
    progress = min(1.0, step / decay_steps)
    return 0.1 + 0.45 * (1.0 + math.cos(math.pi * progress))
