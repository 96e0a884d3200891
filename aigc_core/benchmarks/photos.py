"""A colour photo set made from what every install already has: the two
sample photos scikit-learn ships (``china.jpg``, a temple among trees, and
``flower.jpg``, a pink dahlia; 640 x 427 each, see
:func:`sklearn.datasets.load_sample_images`), cut into patches.

It stands in for "a zip of a few hundred photos someone took": real camera
colour and texture, several kinds of picture (leaves, sky, roof tiles,
petals), JPEG files in a flat ``.zip`` without class folders. The recommendation
measurements (:mod:`aigc_core.recommend`) are made on it, so it is rebuilt
the same way on every machine (a fixed seed).
"""

from __future__ import annotations

import io
import zipfile

import numpy as np

PATCHES = 600
SEED = 0
#: the side of a cut-out, in pixels of the original photo: big enough to hold
#: a recognisable piece (a petal, a roof corner), small enough for variety
MIN_SIDE, MAX_SIDE = 96, 200


def photo_patches_zip(n: int = PATCHES, seed: int = SEED) -> bytes:
    """``n`` square JPEG patches cut at random places, sizes and mirrorings from
    scikit-learn's two sample photos, as the bytes of a ``.zip``."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    photos = load_sample_images().images  # two (427, 640, 3) uint8 arrays
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:  # JPEGs do not compress further
        for i in range(n):
            photo = photos[i % len(photos)]
            h, w = photo.shape[:2]
            side = int(rng.integers(MIN_SIDE, MAX_SIDE + 1))
            top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
            patch = photo[top:top + side, left:left + side]
            if rng.random() < 0.5:
                patch = patch[:, ::-1]
            out = io.BytesIO()
            Image.fromarray(np.ascontiguousarray(patch)).save(out, format="JPEG", quality=90)
            zf.writestr(f"photo_{i:04d}.jpg", out.getvalue())
    return buf.getvalue()
