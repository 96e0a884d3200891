"""The held-out tenth of an image set: one fixed split, so every run on the
same data (and the copy detector) holds out the same images and their
held-out numbers compare."""

from __future__ import annotations

import torch

HELD_OUT_FRACTION = 0.1
SPLIT_SEED = 1234


def held_out_split(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train indices, held-out indices): the last 10% of a permutation seeded
    with a constant, so every run on the same data holds out the same images."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(SPLIT_SEED))
    n_val = max(1, int(round(n * HELD_OUT_FRACTION))) if n >= 2 else 0
    return perm[: n - n_val], perm[n - n_val:]
