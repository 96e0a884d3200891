"""Denoising diffusion (DDPM): the noise schedule, the noise-predicting UNet,
the training objective and the two sampling updates.

Forward process. Fix T noise levels (t = 1..T; index t-1 in the tensors) and
the cumulative signal share abar_t. Noising an image x_0 to level t is one
Gaussian draw:

    q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I)
    x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps,   eps ~ N(0, I)

abar_t falls from almost 1 (x_1 is the image) to almost 0 (x_T is pure
noise); the cosine schedule (:func:`cosine_alpha_bar`) decides how fast.

Objective. The UNet eps_theta(x_t, t) predicts the noise that was added
(:func:`noise_prediction_loss`):  L = E_{x_0, t, eps} ||eps - eps_theta(x_t, t)||^2.

Sampling runs the process backwards from x_T ~ N(0, I) in S steps over an
evenly spaced subset of the levels (:func:`sampling_levels`), with either the
ancestral update (:func:`ancestral_update`, DDPM) or the deterministic DDIM
update (:func:`ddim_update`). Images are in [-1, 1] inside this module.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import UserError

SAMPLERS = ("ddim", "ancestral")


# ---------------------------------------------------------------------------
# Noise schedule and forward process
# ---------------------------------------------------------------------------

def cosine_alpha_bar(T: int, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """abar_t for t = 1..T (a float64 tensor of length T), the cosine schedule
    of Nichol & Dhariwal (2021):

        f(t) = cos^2( (t/T + s) / (1 + s) * pi/2 ),   abar_t = f(t) / f(0)

    The signal fades slowly at both ends, unlike the linear beta schedule,
    which destroys small images in the first third of the steps. Each step's
    own noise beta_t = 1 - abar_t / abar_{t-1} is capped at ``max_beta`` so
    the last step is not a division by ~0; abar_t is rebuilt from the capped
    betas, so the two always agree.
    """
    t = torch.arange(T + 1, dtype=torch.float64)
    f = torch.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2
    abar = f / f[0]
    betas = (1 - abar[1:] / abar[:-1]).clamp(max=max_beta)
    return torch.cumprod(1 - betas, 0)


def q_sample(x0: torch.Tensor, abar_t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """A draw from the forward process q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I):

        x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps

    ``abar_t`` holds one value per image, (N,); ``eps`` ~ N(0, I) has x_0's shape.
    """
    a = abar_t.view(-1, *([1] * (x0.dim() - 1))).to(x0.dtype)
    return a.sqrt() * x0 + (1 - a).sqrt() * eps


def noise_prediction_loss(eps_pred: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """The DDPM objective per image (Ho et al. 2020, "L_simple"):

        L = || eps - eps_theta(x_t, t) ||^2

    averaged over the pixels of each image; returns (N,). Predicting the noise
    rather than x_0 weights every noise level alike, which trains faster than
    the full variational bound and gives better samples.
    """
    return (eps_pred.float() - eps.float()).pow(2).flatten(1).mean(1)


def sampling_levels(T: int, steps: int) -> list[int]:
    """The S = ``steps`` noise levels a sampler visits, from T down to 1 (evenly
    spaced, both ends included), as 1-based levels; level 0 is the image."""
    steps = int(steps)
    if not 1 <= steps <= T:
        raise UserError(f"sampling takes between 1 and {T} steps (the model's noise levels); got {steps}")
    if steps == 1:
        return [T]
    return sorted({round(T - i * (T - 1) / (steps - 1)) for i in range(steps)}, reverse=True)


def predict_x0(x_t: torch.Tensor, eps: torch.Tensor, abar_t: float) -> torch.Tensor:
    """The image the predicted noise implies, the forward process solved for x_0:

        x0_hat = (x_t - sqrt(1 - abar_t) eps_theta) / sqrt(abar_t)

    clipped to the data range [-1, 1] (a free fix for the large errors of the
    noisiest levels, where abar_t is tiny)."""
    return ((x_t - math.sqrt(1 - abar_t) * eps) / math.sqrt(abar_t)).clamp(-1, 1)


def ddim_update(x_t: torch.Tensor, eps: torch.Tensor, abar_t: float, abar_prev: float,
                eta: float = 0.0, z: torch.Tensor | None = None) -> torch.Tensor:
    """One DDIM step (Song et al. 2021) from level t to the previous visited level s:

        x0_hat  = (x_t - sqrt(1 - abar_t) eps_theta) / sqrt(abar_t)     (clipped to [-1, 1])
        eps_hat = (x_t - sqrt(abar_t) x0_hat) / sqrt(1 - abar_t)
        sigma   = eta * sqrt((1 - abar_s) / (1 - abar_t)) * sqrt(1 - abar_t / abar_s)
        x_s     = sqrt(abar_s) x0_hat + sqrt(1 - abar_s - sigma^2) eps_hat + sigma z

    With eta = 0 the path is deterministic (the same x_T always gives the same
    image, in any number of steps); eta = 1 is the ancestral sampler. After the
    last level abar_s = 1 and x_s = x0_hat.
    """
    x0 = predict_x0(x_t, eps, abar_t)
    eps = (x_t - math.sqrt(abar_t) * x0) / math.sqrt(1 - abar_t)  # the noise consistent with the clipped x0
    sigma = eta * math.sqrt((1 - abar_prev) / (1 - abar_t) * (1 - abar_t / abar_prev))
    out = math.sqrt(abar_prev) * x0 + math.sqrt(max(1 - abar_prev - sigma ** 2, 0.0)) * eps
    if sigma > 0 and z is not None:
        out = out + sigma * z
    return out


def ancestral_update(x_t: torch.Tensor, eps: torch.Tensor, abar_t: float, abar_prev: float,
                     z: torch.Tensor | None = None) -> torch.Tensor:
    """One ancestral (DDPM) step: a draw from the posterior q(x_s | x_t, x0_hat),

        x0_hat  = (x_t - sqrt(1 - abar_t) eps_theta) / sqrt(abar_t)     (clipped to [-1, 1])
        beta    = 1 - abar_t / abar_s
        mean    = sqrt(abar_s) beta / (1 - abar_t) * x0_hat
                  + sqrt(1 - beta) (1 - abar_s) / (1 - abar_t) * x_t
        x_s     = mean + sqrt(beta (1 - abar_s) / (1 - abar_t)) z,   z ~ N(0, I)

    For consecutive levels (s = t - 1) this is Ho et al.'s update
    x_{t-1} = (x_t - beta_t / sqrt(1 - abar_t) eps_theta) / sqrt(alpha_t) + sigma_t z
    (with x0_hat clipped); with fewer steps the visited levels are the chain.
    Fresh noise at every step makes the path random: the same x_T ends in a
    different image for different z.
    """
    x0 = predict_x0(x_t, eps, abar_t)
    beta = 1 - abar_t / abar_prev
    mean = (math.sqrt(abar_prev) * beta / (1 - abar_t)) * x0 \
        + (math.sqrt(1 - beta) * (1 - abar_prev) / (1 - abar_t)) * x_t
    var = beta * (1 - abar_prev) / (1 - abar_t)
    if var > 0 and z is not None:
        mean = mean + math.sqrt(var) * z
    return mean


# ---------------------------------------------------------------------------
# The UNet eps_theta(x_t, t)
# ---------------------------------------------------------------------------

def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal features of the noise level (as for word positions in a
    transformer): (N,) levels -> (N, dim), frequencies from 1 to 1/10000."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = t.float()[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], 1)


def _norm(ch: int) -> nn.GroupNorm:
    # group norm, not batch norm: a denoiser must treat each image on its own
    # (one batch mixes every noise level)
    return nn.GroupNorm(8 if ch % 8 == 0 else 1, ch)


class ResBlock(nn.Module):
    """norm-SiLU-conv, plus the time embedding, norm-SiLU-conv, and a skip."""

    def __init__(self, cin: int, cout: int, temb: int):
        super().__init__()
        self.norm1, self.conv1 = _norm(cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.time = nn.Linear(temb, cout)
        self.norm2, self.conv2 = _norm(cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()
        # A block starts as the identity, so a deep stack trains from the first step.
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time(temb)[:, :, None, None]  # the noise level shifts every channel
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class Attention(nn.Module):
    """Self-attention over the pixels of a (small) feature map: lets far-apart
    parts of a digit agree, which convolutions alone see only through depth."""

    def __init__(self, ch: int, heads: int = 4):
        super().__init__()
        self.heads = heads if ch % heads == 0 else 1
        self.norm = _norm(ch)
        self.qkv = nn.Conv2d(ch, 3 * ch, 1)
        self.proj = nn.Conv2d(ch, ch, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(n, 3, self.heads, c // self.heads, h * w).unbind(1)
        out = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
        return x + self.proj(out.transpose(-1, -2).reshape(n, c, h, w))


class UNet(nn.Module):
    """eps_theta(x_t, t): noisy images (N, nc, S, S) and levels (N,) -> predicted
    noise (N, nc, S, S).

    ``patch = 1``: three levels, ``ch`` channels at S, 2*ch at S/2 and S/4,
    self-attention at S/4 (S divisible by 4). ``patch = 2``: each 2 x 2 block
    of pixels is first folded into channels (pixel unshuffle), so the same
    network runs at S/2 and S/4 only: about four times cheaper, at the cost
    of fine detail (S divisible by 4 too); a small head at full size then
    joins the patches. Shapes below for 28 px, patch 1.
    """

    def __init__(self, nc: int, ch: int = 32, blocks: int = 1, heads: int = 4, patch: int = 1):
        super().__init__()
        if patch not in (1, 2):
            raise UserError(f"the UNet folds 1 x 1 or 2 x 2 pixel patches; got {patch}")
        temb = 4 * ch
        self.ch, self.patch = ch, patch
        widths = [ch, 2 * ch, 2 * ch] if patch == 1 else [ch, 2 * ch]    # channels per level, top first
        self.time = nn.Sequential(nn.Linear(ch, temb), nn.SiLU(), nn.Linear(temb, temb))
        self.fold = nn.PixelUnshuffle(patch)                               # (nc*p*p) x (28/p) x (28/p)
        self.conv_in = nn.Conv2d(nc * patch * patch, ch, 3, padding=1)     # ch x 28 x 28
        self.down = nn.ModuleList()   # per level: residual blocks, then (but the last) a halving
        cin = ch
        for i, w in enumerate(widths[:-1]):
            self.down.append(nn.ModuleList([ResBlock(cin if b == 0 else w, w, temb) for b in range(blocks)]
                                           + [nn.Conv2d(w, w, 3, stride=2, padding=1)]))
            cin = w
        # level 0: ch x 28 x 28 -> ch x 14 x 14; level 1: (ch*2) x 14 x 14 -> (ch*2) x 7 x 7
        mid = widths[-1]
        self.mid1 = ResBlock(cin, mid, temb)                               # (ch*2) x 7 x 7
        self.attn = Attention(mid, heads)                                  # (ch*2) x 7 x 7
        self.mid2 = ResBlock(mid, mid, temb)                               # (ch*2) x 7 x 7
        self.up = nn.ModuleList()     # per level, bottom first: 2x nearest + conv, [up; skip], residual blocks
        cin = mid
        for w in reversed(widths[:-1]):
            self.up.append(nn.ModuleList([nn.Conv2d(cin, w, 3, padding=1)]
                                         + [ResBlock(2 * w if b == 0 else w, w, temb) for b in range(blocks)]))
            cin = w
        # (ch*2) x 14 x 14 from [up; skip] (ch*4); then ch x 28 x 28 from [up; skip] (ch*2)
        self.norm_out = _norm(ch)
        if patch == 1:
            self.conv_out = nn.Conv2d(ch, nc, 3, padding=1)                # nc x 28 x 28
            self.head = None
        else:
            # Unfolding channels back into 2 x 2 pixels alone leaves a visible grid (the four
            # pixels of a patch come from four unrelated channels); a small full-size head
            # that also sees x_t smooths across patch borders for a few percent of the cost.
            head = 8
            self.conv_out = nn.Conv2d(ch, head * patch * patch, 3, padding=1)  # (8*p*p) x (28/p) x (28/p)
            self.head = nn.Sequential(
                nn.Conv2d(head + nc, head, 3, padding=1), nn.SiLU(),          # 8 x 28 x 28 from [unfolded; x_t]
                nn.Conv2d(head, nc, 3, padding=1),                            # nc x 28 x 28
            )
        self.unfold = nn.PixelShuffle(patch)
        last = self.conv_out if self.head is None else self.head[-1]
        # The first prediction is eps_hat = 0, i.e. a loss of exactly 1 per pixel.
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        emb = self.time(timestep_embedding(t, self.ch))                    # (N, 4*ch)
        h = self.conv_in(self.fold(x))
        skips = []
        for level in self.down:
            for block in level[:-1]:
                h = block(h, emb)
            skips.append(h)
            h = level[-1](h)                                               # halve the side
        h = self.mid2(self.attn(self.mid1(h, emb)), emb)
        for level in self.up:
            h = level[0](F.interpolate(h, scale_factor=2.0, mode="nearest"))
            h = torch.cat([h, skips.pop()], 1)
            for block in level[1:]:
                h = block(h, emb)
        h = self.unfold(self.conv_out(F.silu(self.norm_out(h))))
        if self.head is None:
            return h                                                       # nc x 28 x 28
        return self.head(torch.cat([h, x], 1))                             # nc x 28 x 28
