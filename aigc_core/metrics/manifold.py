"""Precision, recall, density and coverage from k-nearest-neighbour balls.

Each real point gets a ball reaching to its k-th nearest real neighbour
(k = 3); the union of the balls is an estimate of where real data lives (the
"real manifold"). The same is done for the generated points.

- precision (Kynkaanniemi et al., 2019): the share of generated points inside
  the real manifold - are the samples realistic?
- recall: the share of real points inside the generated manifold - does the
  model cover the variety of the data?
- density (Naeem et al., 2020): how many real balls contain each generated
  point, divided by k and averaged; about 1 when samples are spread like real
  data, above 1 when they crowd into dense regions.
- coverage: the share of real points whose ball contains at least one
  generated point; unlike recall it is not fooled by a few outlying samples.

Works on any vectors: features of images, or 2-D points directly.
"""

from __future__ import annotations

import torch

K = 3
CHUNK = 1024


def _kth_neighbour_radius(x: torch.Tensor, k: int) -> torch.Tensor:
    """Distance from each row of ``x`` to its k-th nearest other row."""
    radii = []
    for part in x.split(CHUNK):
        d = torch.cdist(part, x)
        # the smallest distance is the point itself (0); the k-th other neighbour is at index k
        radii.append(d.topk(min(k + 1, x.shape[0]), dim=1, largest=False).values[:, -1])
    return torch.cat(radii)


def manifold_scores(real: torch.Tensor, fake: torch.Tensor, k: int = K) -> dict[str, float]:
    """Precision, recall, density and coverage of ``fake`` (M, d) against ``real`` (N, d)."""
    real, fake = real.float(), fake.float()
    if real.shape[0] <= k or fake.shape[0] <= k:
        raise ValueError(f"precision and recall need more than {k} real and generated points")
    r_real = _kth_neighbour_radius(real, k)
    r_fake = _kth_neighbour_radius(fake, k)
    in_real = torch.zeros(fake.shape[0], dtype=torch.bool)
    balls_hit = torch.zeros(fake.shape[0], dtype=torch.float64)
    real_covered = torch.zeros(real.shape[0], dtype=torch.bool)
    real_in_fake = torch.zeros(real.shape[0], dtype=torch.bool)
    start = 0
    for part, radius in zip(fake.split(CHUNK), r_fake.split(CHUNK)):
        d = torch.cdist(part, real)  # (chunk of generated, real)
        inside = d <= r_real[None, :]  # generated point j inside real ball i
        rows = slice(start, start + part.shape[0])
        in_real[rows] = inside.any(1)
        balls_hit[rows] = inside.sum(1).double()
        real_covered |= inside.any(0)
        real_in_fake |= (d <= radius[:, None]).any(0)  # real point i inside generated ball j
        start += part.shape[0]
    return {
        "precision": float(in_real.double().mean()),
        "recall": float(real_in_fake.double().mean()),
        "density": float(balls_hit.mean() / k),
        "coverage": float(real_covered.double().mean()),
    }
