"""Built-in image sets that work offline, the upload codec for images, and previews.

- ``glyphs``: 28x28 grayscale digits drawn from the fonts on this machine
  (Pillow's bundled font plus any TrueType fonts found): each font's digit is
  thinned to its skeleton and redrawn with a round pen of random width, then
  tilted, sheared, scaled, shifted, elastically bent and blurred until it
  looks written rather than typed. Our offline stand-in for MNIST.
- ``digits``: scikit-learn's 1,797 real handwritten 8x8 digits.
- ``shapes``: 32x32 RGB circles, squares and triangles (label = shape).

Every set is deterministic for its seed (``glyphs`` also depends on the fonts
installed, which are part of its cache key). The generated ones are built on first
use and cached under ``$AIGC_HOME/cache`` as ``.safetensors``; the file name
carries a version key, so changing the generator (or the fonts it found)
builds a new file instead of reading a stale one.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

from ..errors import UserError
from ..imaging import grid_image
from ..paths import cache_dir
from .base import ImageData
from .catalog import builtin, upload_codec

DIGIT_NAMES = [str(d) for d in range(10)]
SHAPE_NAMES = ["circle", "square", "triangle"]


# ---- the cache -----------------------------------------------------------------

def cached_tensors(file_name: str, build: Callable[[], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Tensors from ``cache_dir()/file_name``, building and saving them first if absent.

    The file is written to a temporary name and renamed, so two processes
    building at once, or a build killed half way, never leave a torn file.
    """
    from safetensors.torch import load_file, save_file

    path = cache_dir() / file_name
    if path.exists():
        try:
            return load_file(path)
        except Exception:  # a file cut short by a full disk: build it again
            path.unlink(missing_ok=True)
    tensors = {k: v.contiguous() for k, v in build().items()}
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    save_file(tensors, tmp)
    os.replace(tmp, path)
    return tensors


# ---- glyphs: font digits made to look handwritten -----------------------------

GLYPHS_VERSION = 3
GLYPHS_COUNT = 24_000
GLYPHS_SEED = 1234
_CANVAS = 56  # glyphs are drawn and distorted at twice the final 28 px, then averaged down
_BOX = 40  # the digit's longer side at the canvas size (20 px at 28, as in MNIST)
_FONT_PX = 96
_FONT_DIRS = [
    "/usr/share/fonts", "/usr/local/share/fonts", "~/.fonts", "~/.local/share/fonts",
    "/Library/Fonts", "/System/Library/Fonts", "~/Library/Fonts",
    os.path.join(os.environ.get("WINDIR", "C:\\Windows"), "Fonts"),
]
# Fonts whose digit code points draw pictures, not digits.
_NOT_DIGIT_FONTS = ("wingding", "webding", "symbol", "dingbat", "emoji", "marlett", "mtextra", "bookshelf")
_MAX_SYSTEM_FONTS = 60


def _system_fonts() -> list[Path]:
    """TrueType/OpenType files in the usual font folders, sorted (so the set is stable)."""
    found = set()
    for folder in _FONT_DIRS:
        root = Path(folder).expanduser()
        if not root.is_dir():
            continue
        for ext in ("*.ttf", "*.otf", "*.TTF", "*.OTF"):
            for path in root.rglob(ext):
                if not any(bad in path.name.lower() for bad in _NOT_DIGIT_FONTS):
                    found.add(path)
    return sorted(found)[:_MAX_SYSTEM_FONTS]


def _fonts() -> list[tuple[str, Callable[[int], ImageFont.FreeTypeFont]]]:
    """(key, make_font(px)) for Pillow's bundled font and every usable system font."""
    fonts: list[tuple[str, Callable]] = [("pillow-default", lambda px: ImageFont.load_default(size=px))]
    for path in _system_fonts():
        key = f"{path.name}:{path.stat().st_size}"
        fonts.append((key, lambda px, p=str(path): ImageFont.truetype(p, px)))
    return fonts


def _render_digit(font, digit: int) -> torch.Tensor | None:
    """One digit, drawn white on black and fitted (aspect kept) into a ``_BOX``
    square centred on a ``_CANVAS`` canvas; None if the font draws nothing."""
    side = _FONT_PX * 2
    img = Image.new("L", (side, side), 0)
    ImageDraw.Draw(img).text((side // 2, side // 2), str(digit), font=font, fill=255, anchor="mm")
    bbox = img.getbbox()
    if bbox is None:
        return None
    img = img.crop(bbox)
    scale = _BOX / max(img.size)
    w, h = max(1, round(img.width * scale)), max(1, round(img.height * scale))
    img = img.resize((w, h), Image.LANCZOS)
    canvas = Image.new("L", (_CANVAS, _CANVAS), 0)
    canvas.paste(img, ((_CANVAS - w) // 2, (_CANVAS - h) // 2))
    return torch.frombuffer(bytearray(canvas.tobytes()), dtype=torch.uint8).view(_CANVAS, _CANVAS)


def _thinning_tables() -> tuple[torch.Tensor, torch.Tensor]:
    """For each of the 256 neighbourhoods of a pixel, whether Zhang & Suen's
    first and second sub-iterations delete it. Bit k of the code is neighbour
    P(k+2), clockwise from north: P2 = N, P3 = NE, ..., P9 = NW."""
    first, second = torch.zeros(256, dtype=torch.bool), torch.zeros(256, dtype=torch.bool)
    for code in range(256):
        p = [(code >> k) & 1 for k in range(8)]  # p[0] = P2 ... p[7] = P9
        count = sum(p)
        transitions = sum(1 for k in range(8) if p[k] == 0 and p[(k + 1) % 8] == 1)
        if not (2 <= count <= 6 and transitions == 1):
            continue
        p2, p4, p6, p8 = p[0], p[2], p[4], p[6]
        first[code] = p2 * p4 * p6 == 0 and p4 * p6 * p8 == 0
        second[code] = p2 * p4 * p8 == 0 and p2 * p6 * p8 == 0
    return first, second


def skeletonize(mask: torch.Tensor, max_iter: int = 40) -> torch.Tensor:
    """Thin a binary (B, 1, H, W) mask to 1-pixel lines (Zhang & Suen, 1984).

    Fonts vary the thickness along a stroke (that is what makes them look
    typeset); redrawing the skeleton with one round pen gives the even line
    of a ballpoint. Each sub-iteration computes every pixel's neighbourhood
    code from 8 shifted copies and looks the verdict up in a table, for the
    whole batch at once.
    """
    tables = _thinning_tables()
    x = mask.to(torch.uint8)
    H, W = x.shape[-2:]
    # (dy, dx) of P2..P9, clockwise from north
    offsets = [(-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1)]
    for _ in range(max_iter):
        changed = False
        for table in tables:
            p = F.pad(x, (1, 1, 1, 1)).long()
            code = sum(p[..., 1 + dy:1 + dy + H, 1 + dx:1 + dx + W] << k for k, (dy, dx) in enumerate(offsets))
            gone = table[code] & x.bool()
            if gone.any():
                x = x.masked_fill(gone, 0)
                changed = True
        if not changed:
            break
    return x


def _pen(skeleton: torch.Tensor, radius: float) -> torch.Tensor:
    """Redraw 1-pixel lines with a round pen of ``radius`` pixels (soft-edged)."""
    r = int(math.ceil(radius)) + 1
    t = torch.arange(-r, r + 1, dtype=torch.float32)
    dist = (t.view(-1, 1) ** 2 + t.view(1, -1) ** 2).sqrt()
    disk = (radius + 0.5 - dist).clamp(0, 1)  # anti-aliased disk
    return F.conv2d(skeleton.float(), disk.view(1, 1, 2 * r + 1, 2 * r + 1), padding=r).clamp_(0, 1)


_PEN_RADII = (1.8, 2.4, 3.0, 3.6)  # at the 56 px canvas: strokes of about 2-4 px at 28


@functools.lru_cache(maxsize=1)
def _glyph_templates() -> tuple[torch.Tensor, torch.Tensor]:
    """Pen-drawn digits from every font at several pen widths: (T, 56, 56) uint8 and labels (T,)."""
    drawn = []
    for _, make_font in _fonts():
        try:
            font = make_font(_FONT_PX)
            digits = [_render_digit(font, d) for d in range(10)]
        except (OSError, ValueError):  # unreadable or unsupported font file
            continue
        # A font without digits draws the same "missing glyph" box for each.
        if any(t is None for t in digits) or len({bytes(t.numpy()) for t in digits}) < 10:
            continue
        drawn += digits
    if not drawn:
        raise UserError("no font on this computer could draw the digits, not even Pillow's own; "
                        "reinstall Pillow (pip install --force-reinstall pillow) and try again")
    glyphs = torch.stack(drawn).unsqueeze(1)  # (fonts*10, 1, 56, 56)
    skeleton = skeletonize(glyphs > 110)
    images = torch.cat([_pen(skeleton, r) for r in _PEN_RADII])  # (T, 1, 56, 56)
    labels = torch.arange(10).repeat(len(drawn) // 10 * len(_PEN_RADII))
    return images.squeeze(1).mul_(255).round_().to(torch.uint8), labels


def _glyphs_key() -> str:
    import PIL

    fonts = "|".join(key for key, _ in _fonts())
    digest = hashlib.sha1(f"{fonts}|{PIL.__version__}".encode()).hexdigest()[:10]
    return f"glyphs-v{GLYPHS_VERSION}-n{GLYPHS_COUNT}-s{GLYPHS_SEED}-{digest}.safetensors"


@functools.lru_cache(maxsize=1)
def _elastic_basis(knots: int = 5, width: float = 0.6) -> torch.Tensor:
    """(56, knots) Gaussian bumps centred on ``knots`` points across the
    canvas (in grid_sample's -1..1 coordinates), ``width`` apart."""
    pos = (torch.arange(_CANVAS) + 0.5) / (_CANVAS / 2) - 1
    centres = torch.linspace(-1.2, 1.2, knots)
    return torch.exp(-0.5 * ((pos.view(-1, 1) - centres.view(1, -1)) / width) ** 2)


def _distort(templates: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Make clean digits look written: (B, 1, 56, 56) float in [0, 1] -> (B, 1, 28, 28).

    Each digit gets its own affine pose (rotation, anisotropic scale, shear,
    shift), a smooth random displacement field (the elastic distortion of
    Simard et al. 2003), a blur and an ink gain, all at once for the batch
    through one ``grid_sample``.
    """
    B = templates.shape[0]
    u = lambda *shape: torch.rand(*shape, generator=gen)  # noqa: E731
    x = templates

    # pose: a 2x3 matrix maps each output pixel's coordinates (grid_sample's
    # -1..1) to where it reads the template, so a scale below 1 draws the
    # digit larger. Written out per axis instead of affine_grid: the same
    # numbers for a fraction of the time.
    angle = (u(B) * 2 - 1) * math.radians(14)
    shear = (u(B) * 2 - 1) * 0.35
    sx = 1 / (0.78 + u(B) * 0.4)
    sy = 1 / (0.85 + u(B) * 0.25)
    cos, sin = torch.cos(angle), torch.sin(angle)
    shift = (u(B, 2) * 2 - 1) * 0.1  # up to ~1.4 px at 28
    col = lambda v: v.view(B, 1, 1)  # noqa: E731
    pos = (torch.arange(_CANVAS) + 0.5) / (_CANVAS / 2) - 1  # pixel centres, align_corners=False
    X, Y = pos.view(1, 1, -1), pos.view(1, -1, 1)

    # elastic: random weights on a 5x5 lattice of smooth bumps, one field per
    # axis; (56, 5) @ (B, 2, 5, 5) @ (5, 56) is cheaper than upsampling
    alpha = 0.02 + u(B, 1, 1, 1) * 0.08
    bumps = _elastic_basis()
    field = bumps @ (u(B, 2, 5, 5) * 2 - 1) @ bumps.T * alpha  # (B, 2, 56, 56)

    gx = col(cos * sx) * X + col((-sin + shear * cos) * sy) * Y + col(shift[:, 0]) + field[:, 0]
    gy = col(sin * sx) * X + col((cos + shear * sin) * sy) * Y + col(shift[:, 1]) + field[:, 1]
    grid = torch.stack([gx, gy], dim=-1)  # (B, 56, 56, 2)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    # ink: average down to 28 px, soften some digits more than others, and
    # saturate the stroke centre as a pen pressed down would
    x = F.avg_pool2d(x, 2)  # (B, 1, 28, 28)
    x = torch.lerp(x, F.avg_pool2d(x, 3, 1, 1), u(B, 1, 1, 1) * 0.6)
    gain = 1.2 + u(B, 1, 1, 1) * 0.6
    return (x * gain).clamp_(0, 1)


def build_glyphs(count: int = GLYPHS_COUNT, seed: int = GLYPHS_SEED, batch: int = 2000) -> dict[str, torch.Tensor]:
    """Generate ``count`` glyph digits (uint8 (N, 1, 28, 28)) with balanced labels."""
    templates, template_labels = _glyph_templates()
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(count) % 10
    labels = labels[torch.randperm(count, generator=gen)]
    # for each image, a random template among those of its digit
    per_digit = [torch.nonzero(template_labels == d).squeeze(1) for d in range(10)]
    pick = torch.empty(count, dtype=torch.long)
    for d in range(10):
        where = torch.nonzero(labels == d).squeeze(1)
        choice = torch.randint(len(per_digit[d]), (len(where),), generator=gen)
        pick[where] = per_digit[d][choice]
    out = torch.empty(count, 1, 28, 28, dtype=torch.uint8)
    for start in range(0, count, batch):
        idx = pick[start:start + batch]
        x = templates[idx].unsqueeze(1).float().div_(255)
        out[start:start + batch] = _distort(x, gen).mul_(255).round_().to(torch.uint8)
    return dict(images=out, labels=labels)


@builtin("glyphs", kind="image",
         description=f"{GLYPHS_COUNT:,} handwriting-like 28x28 digits 0-9, drawn offline from the fonts on this "
                     "machine with a pen-width skeleton, random pose, elastic distortion and blur. "
                     "An offline stand-in for MNIST.",
         summary=dict(count=GLYPHS_COUNT, size=28, channels=1, classes=10))
def glyphs() -> ImageData:
    """The ``glyphs`` set, built on first use (a few seconds) and cached."""
    t = cached_tensors(_glyphs_key(), build_glyphs)
    return ImageData("glyphs", t["images"], t["labels"].long(), list(DIGIT_NAMES),
                     description="handwriting-like digits drawn from fonts")


# ---- digits: scikit-learn's real handwritten 8x8 digits ------------------------

@builtin("digits", kind="image",
         description="1,797 real handwritten digits at 8x8 pixels (the UCI optical digits that ship with "
                     "scikit-learn). Tiny, so models train in seconds.",
         summary=dict(count=1797, size=8, channels=1, classes=10))
def digits() -> ImageData:
    """scikit-learn's ``load_digits``: 16 grey levels (0..16) stretched to 0..255."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.from_numpy(bunch.images).mul(255 / 16).round().clamp(0, 255).to(torch.uint8)
    return ImageData("digits", images.unsqueeze(1), torch.from_numpy(bunch.target).long(), list(DIGIT_NAMES),
                     description="real handwritten 8x8 digits (scikit-learn)")


# ---- shapes: coloured circles, squares and triangles ---------------------------

SHAPES_VERSION = 2
SHAPES_COUNT = 12_000
SHAPES_SEED = 99


def build_shapes(count: int = SHAPES_COUNT, seed: int = SHAPES_SEED, size: int = 32) -> dict[str, torch.Tensor]:
    """Random coloured shapes on plain backgrounds, (N, 3, size, size) uint8, labels 0/1/2.

    Each shape is a signed distance ``d`` (negative inside); the pixel's
    coverage ``clamp(0.5 - d, 0, 1)`` gives one pixel of anti-aliased edge
    without supersampling. Squares and triangles are convex polygons, so
    ``d = max over edges of (n . p - offset)``.
    """
    gen = torch.Generator().manual_seed(seed)
    u = lambda *shape: torch.rand(*shape, generator=gen)  # noqa: E731
    labels = (torch.arange(count) % 3)[torch.randperm(count, generator=gen)]
    # circumradius R in pixels; the centre keeps the whole shape inside the
    # image: its farthest point is a triangle's vertex at 1.05 R, and the soft
    # edge reaches up to 1 px beyond a sharp vertex
    R = size * (0.16 + u(count) * 0.2)
    margin = R * 1.05 + 1.5
    cx = margin + u(count) * (size - 2 * margin)
    cy = margin + u(count) * (size - 2 * margin)
    spin = u(count) * 2 * math.pi

    ys, xs = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    px = xs.view(1, size, size) - cx.view(-1, 1, 1)  # (N, size, size)
    py = ys.view(1, size, size) - cy.view(-1, 1, 1)

    def polygon(sides: int, shrink: float) -> torch.Tensor:
        # a regular polygon with circumradius R*shrink: its edges lie at
        # distance R*shrink*cos(pi/sides) from the centre
        dist = torch.full_like(px, -1e9)
        for k in range(sides):
            a = (spin + (k + 0.5) * 2 * math.pi / sides).view(-1, 1, 1)
            edge = px * torch.cos(a) + py * torch.sin(a) - (R * shrink * math.cos(math.pi / sides)).view(-1, 1, 1)
            dist = torch.maximum(dist, edge)
        return dist

    # sizes chosen so the three shapes cover similar areas on average
    circle = (px ** 2 + py ** 2).sqrt() - (R * 0.8).view(-1, 1, 1)
    square = polygon(4, 0.95)
    triangle = polygon(3, 1.05)
    dist = torch.where((labels == 0).view(-1, 1, 1), circle, torch.where((labels == 1).view(-1, 1, 1), square, triangle))
    cover = (0.5 - dist).clamp(0, 1).unsqueeze(1)  # (N, 1, size, size)

    # colours: a vivid shape on a light or dark plain background, so the shape
    # always stands out
    hue = u(count)
    shape_rgb = _hsv_to_rgb(hue, 0.55 + u(count) * 0.45, 0.6 + u(count) * 0.4)
    dark = u(count) < 0.5
    level = torch.where(dark, 0.05 + u(count) * 0.2, 0.8 + u(count) * 0.18)
    tint = _hsv_to_rgb(u(count), u(count) * 0.25, torch.ones(count))
    back_rgb = tint * level.view(-1, 1)
    images = torch.lerp(back_rgb.view(-1, 3, 1, 1), shape_rgb.view(-1, 3, 1, 1), cover)
    return dict(images=images.mul(255).round().to(torch.uint8), labels=labels)


def _hsv_to_rgb(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """(N,) hue, saturation, value in [0, 1] -> (N, 3) RGB in [0, 1]."""
    k = (torch.tensor([5.0, 3.0, 1.0]).view(1, 3) + h.view(-1, 1) * 6) % 6
    return v.view(-1, 1) - (v * s).view(-1, 1) * torch.clamp(torch.minimum(k, 4 - k), 0, 1)


@builtin("shapes", kind="image",
         description=f"{SHAPES_COUNT:,} 32x32 colour images of a circle, square or triangle of random colour, "
                     "size, angle and position on a plain background; the label is the shape.",
         summary=dict(count=SHAPES_COUNT, size=32, channels=3, classes=3))
def shapes() -> ImageData:
    t = cached_tensors(f"shapes-v{SHAPES_VERSION}-n{SHAPES_COUNT}-s{SHAPES_SEED}.safetensors", build_shapes)
    return ImageData("shapes", t["images"], t["labels"].long(), list(SHAPE_NAMES),
                     description="coloured circles, squares and triangles")


# ---- uploaded image sets: saved as data.safetensors ----------------------------

IMAGE_FILE = "data.safetensors"


def _save_images(data: ImageData, folder: Path) -> None:
    """Write ``images`` (and ``labels``) to ``folder/data.safetensors``; the
    class names travel in the file's metadata header (strings only, no code)."""
    from safetensors.torch import save_file

    tensors = {"images": data.images.to(torch.uint8).contiguous()}
    if data.labels is not None:
        tensors["labels"] = data.labels.to(torch.int64).contiguous()
    meta = {"class_names": json.dumps(data.class_names or []), "description": data.description or ""}
    save_file(tensors, folder / IMAGE_FILE, metadata=meta)


def _load_images(folder: Path, meta: dict) -> ImageData:
    from safetensors import safe_open

    with safe_open(folder / IMAGE_FILE, framework="pt") as fh:
        header = fh.metadata() or {}
        images = fh.get_tensor("images")
        labels = fh.get_tensor("labels") if "labels" in fh.keys() else None
    class_names = json.loads(header.get("class_names") or "[]") or None
    return ImageData(meta.get("name", folder.name), images, labels, class_names,
                     description=meta.get("description") or header.get("description", ""))


upload_codec("image", _save_images, _load_images)


# ---- looking at a set ------------------------------------------------------------

def image_stats(data: ImageData) -> dict:
    """Count, size, channels, images per class and the mean/std pixel (on a 0..1 scale)."""
    total = 0.0
    total_sq = 0.0
    flat = data.images.reshape(len(data), -1)
    for start in range(0, len(data), 4096):  # in chunks, so CIFAR-sized sets need no 600 MB float copy
        chunk = flat[start:start + 4096].double().div_(255)
        total += float(chunk.sum())
        total_sq += float(chunk.square().sum())
    n = max(1, flat.numel())
    mean = total / n
    std = math.sqrt(max(0.0, total_sq / n - mean * mean))
    per_class = None
    if data.labels is not None:
        counts = torch.bincount(data.labels.long(), minlength=len(data.class_names or []))
        names = data.class_names or [str(i) for i in range(len(counts))]
        per_class = {names[i] if i < len(names) else str(i): int(c) for i, c in enumerate(counts)}
    return dict(count=len(data), size=data.size, height=int(data.images.shape[2]), width=int(data.images.shape[3]),
                channels=data.channels, classes=len(data.class_names or []), per_class=per_class,
                mean=round(mean, 4), std=round(std, 4))


def preview_grid(data: ImageData, n: int = 64, seed: int = 0) -> Image.Image:
    """A grid of ``n`` images picked at random (fixed by ``seed``)."""
    n = max(1, min(n, len(data)))
    pick = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:n]
    return grid_image(data.images[pick].float().div(255))
