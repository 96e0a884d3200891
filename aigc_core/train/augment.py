"""Augmentation for small data sets: DiffAugment for GANs, classic flips,
crops and rotations for the autoencoders.

**DiffAugment** (Zhao et al. 2020, "Differentiable Augmentation for
Data-Efficient GAN Training"). With a few hundred images the discriminator
memorises the training set: D(x) on real images goes to 1, its verdicts stop
carrying information about new images and G's gradients turn to noise. Showing
D randomly shifted, cut-out and recoloured images keeps it from memorising,
but only if D never learns "augmented = real": the *same* random family of
transforms T is applied to real and generated batches alike, in the D step and
in the G step,

    L_D = E_x[f(-D(T(x)))] + E_z[f(D(T(G(z))))],   L_G = E_z[g(D(T(G(z))))],

and since G is trained through D(T(G(z))), every T must be differentiable in
its input. The transforms here are indexing, masking and affine colour maps,
all differentiable in the pixels; the random choices (shifts, boxes, factors)
are drawn per image from the trainer's generator, so a resumed run continues
the same stream.

**Classic augmentation** (autoencoders): a random flip, crop or small rotation
of each training image, so a model trained on a few hundred images sees a new
variant of each at every step. It is a data option, not part of the loss: the
VAE rebuilds the augmented image it was given. Flips are opt-in: a mirrored
digit is not a digit.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..errors import UserError

#: DiffAugment policies a GAN can train with (transforms applied in this order)
GAN_AUGMENTS = ("none", "translation", "translation,cutout", "translation,cutout,color")
#: classic augmentations an autoencoder can train with
CLASSIC_AUGMENTS = ("none", "crop", "crop,rotate", "flip,crop,rotate")

TRANSLATION_RATIO = 0.125  # shift by up to 1/8 of the side (DiffAugment's default)
CUTOUT_RATIO = 0.5         # a square hole half the side wide
CROP_RATIO = 0.125         # crop away up to 1/8 of the side, then scale back
MAX_DEGREES = 15.0         # rotate by up to this much either way


def _parts(policy: str, known: tuple[str, ...]) -> list[str]:
    parts = [p.strip() for p in str(policy).split(",") if p.strip() and p.strip() != "none"]
    allowed = {p for choice in known for p in choice.split(",")} - {"none"}
    unknown = [p for p in parts if p not in allowed]
    if unknown:
        raise UserError(f"unknown augmentation {', '.join(unknown)}; choose one of {', '.join(known)}")
    return parts


def _uniform(n: int, x: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
    """(n, 1, 1, 1) draws from U[0, 1) on x's device and dtype."""
    return torch.rand(n, 1, 1, 1, device=x.device, generator=gen).to(x.dtype)


# ---- DiffAugment: differentiable, for real and generated batches alike -----------------

def color(x: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
    """Random brightness (+U[-0.5, 0.5]), saturation (x U[0, 2] around the
    pixel's channel mean) and contrast (x U[0.5, 1.5] around the image mean),
    per image, for images in [-1, 1]."""
    n = x.shape[0]
    x = x + (_uniform(n, x, gen) - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (_uniform(n, x, gen) * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_uniform(n, x, gen) + 0.5) + mean


def translation(x: torch.Tensor, gen: torch.Generator | None = None, ratio: float = TRANSLATION_RATIO) -> torch.Tensor:
    """Shift each image by up to ``ratio`` of its side in x and y, filling the
    uncovered border with zeros (mid-grey in [-1, 1]). A gather, so gradients
    flow to the pixels that were kept."""
    n, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sh, sh + 1, (n, 1, 1), device=x.device, generator=gen)
    dx = torch.randint(-sw, sw + 1, (n, 1, 1), device=x.device, generator=gen)
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    # indices into the image padded with a one-pixel zero border: out-of-range
    # positions land on the border
    rows = (rows + dy + 1).clamp(0, h + 1).expand(n, h, w)
    cols = (cols + dx + 1).clamp(0, w + 1).expand(n, h, w)
    padded = F.pad(x, [1, 1, 1, 1]).permute(0, 2, 3, 1)                  # N x (H+2) x (W+2) x C
    batch = torch.arange(n, device=x.device).view(n, 1, 1).expand(n, h, w)
    return padded[batch, rows, cols].permute(0, 3, 1, 2)                  # N x C x H x W


def cutout(x: torch.Tensor, gen: torch.Generator | None = None, ratio: float = CUTOUT_RATIO) -> torch.Tensor:
    """Zero a square of ``ratio`` of the side at a random place in each image
    (it may hang over the edge)."""
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), device=x.device, generator=gen)
    cx = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), device=x.device, generator=gen)
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    dy, dx = rows - cy + ch // 2, cols - cx + cw // 2              # position inside the hole
    inside = (dy >= 0) & (dy < ch) & (dx >= 0) & (dx < cw)          # N x H x W
    return x * (~inside).unsqueeze(1).to(x.dtype)


DIFF_AUGMENT = {"color": color, "translation": translation, "cutout": cutout}


def diff_augment(x: torch.Tensor, policy: str, gen: torch.Generator | None = None) -> torch.Tensor:
    """``x`` (N, C, H, W) in [-1, 1] through the DiffAugment transforms the
    policy names (``"translation,cutout"``), colour first, then translation,
    then cutout, as in the paper; ``"none"`` returns ``x`` itself."""
    parts = _parts(policy, GAN_AUGMENTS)
    for name in ("color", "translation", "cutout"):
        if name in parts:
            x = DIFF_AUGMENT[name](x, gen)
    return x


# ---- classic augmentation: a data option for the autoencoders ------------------------------

def flip(x: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
    """Mirror each image left to right with probability 1/2."""
    mirrored = _uniform(x.shape[0], x, gen) < 0.5
    return torch.where(mirrored, x.flip(-1), x)


def _affine(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def crop(x: torch.Tensor, gen: torch.Generator | None = None, ratio: float = CROP_RATIO) -> torch.Tensor:
    """A random crop of each image, (1 - U[0, ratio]) of its side at a random
    place, scaled back to full size (edges repeat, no black border)."""
    n = x.shape[0]
    scale = 1 - ratio * torch.rand(n, device=x.device, generator=gen)
    room = 1 - scale                                             # how far the crop can move, in [-1, 1] units
    tx = (torch.rand(n, device=x.device, generator=gen) * 2 - 1) * room
    ty = (torch.rand(n, device=x.device, generator=gen) * 2 - 1) * room
    theta = torch.zeros(n, 2, 3, device=x.device)
    theta[:, 0, 0], theta[:, 1, 1], theta[:, 0, 2], theta[:, 1, 2] = scale, scale, tx, ty
    return _affine(x, theta)


def rotate(x: torch.Tensor, gen: torch.Generator | None = None, degrees: float = MAX_DEGREES) -> torch.Tensor:
    """Rotate each image by U[-degrees, degrees] about its centre."""
    n = x.shape[0]
    angle = (torch.rand(n, device=x.device, generator=gen) * 2 - 1) * math.radians(degrees)
    cos, sin = angle.cos(), angle.sin()
    theta = torch.zeros(n, 2, 3, device=x.device)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = cos, -sin, sin, cos
    return _affine(x, theta)


CLASSIC = {"flip": flip, "crop": crop, "rotate": rotate}


def classic_augment(x: torch.Tensor, policy: str, gen: torch.Generator | None = None) -> torch.Tensor:
    """A training batch (N, C, H, W) through the flips, crops and rotations the
    policy names (``"crop,rotate"``); ``"none"`` returns ``x`` itself."""
    parts = _parts(policy, CLASSIC_AUGMENTS)
    for name in ("flip", "crop", "rotate"):
        if name in parts:
            x = CLASSIC[name](x, gen)
    return x
