"""Image grids and PNG bytes, through torchvision's ``make_grid``."""

from __future__ import annotations

import io

import torch
from PIL import Image
from torchvision.utils import make_grid


def grid_image(images: torch.Tensor, nrow: int | None = None, padding: int = 2, pad_value: float = 1.0) -> Image.Image:
    """A PIL image of a grid of ``images`` (float (N, C, H, W) in [0, 1])."""
    images = images.detach().float().cpu().clamp(0, 1)
    if nrow is None:
        nrow = max(1, int(round(images.shape[0] ** 0.5)))
    grid = make_grid(images, nrow=nrow, padding=padding, pad_value=pad_value)
    array = grid.mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    if array.shape[2] == 1:
        return Image.fromarray(array[:, :, 0], mode="L")
    return Image.fromarray(array)


def from_unit_range(images: torch.Tensor) -> torch.Tensor:
    """Map model outputs in [-1, 1] to [0, 1]."""
    return images.detach().float().add(1).div(2).clamp(0, 1)


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def upscale(image: Image.Image, min_side: int = 256) -> Image.Image:
    """Nearest-neighbour upscale of small grids so pixels stay crisp on a page."""
    factor = max(1, -(-min_side // max(1, min(image.size))))  # ceil: at least min_side
    if factor == 1:
        return image
    return image.resize((image.width * factor, image.height * factor), Image.NEAREST)
