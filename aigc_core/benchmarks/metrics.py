"""How long the quality metrics take on this machine.

- ``metrics.feature_net_train_s``: training the feature net of a data set
  from scratch (once per data set; cached afterwards).
- ``metrics.eval5000_s``: every image score for 5,000 generated against 5,000
  real images (features, FID, KID, precision/recall, density/coverage,
  recognised share, copy detection on 1,000 of them). The "generated" images
  are held-out real ones: the arithmetic does not depend on the pictures.
- ``metrics.sample5000_s``: generating those 5,000 images with a DCGAN of the
  Quick preset (the other half of an end-of-run evaluation).

``glyphs`` (24,000 28 x 28 digits) is measured; ``quick`` uses the 1,797
8 x 8 ``digits`` and 1,000 samples instead.
"""

from __future__ import annotations

import time

import torch

from ..config import from_dict
from ..data.catalog import load_dataset
from ..metrics import features
from ..metrics.image import image_scores, unit_images


def _dcgan(data):
    from ..models.gan import DCGANConfig, DCGANTrainer
    from ..registry import get_model

    preset = get_model("dcgan").presets["Quick"]["model"]
    return DCGANTrainer(from_dict(DCGANConfig, preset), data, torch.device("cpu"), seed=0)


def run(quick: bool = False) -> dict:
    name, n = ("digits", 1000) if quick else ("glyphs", 5000)
    data = load_dataset(name)
    out: dict = {"metrics.dataset": name, "metrics.threads": torch.get_num_threads()}

    t0 = time.perf_counter()
    net, facts = features.train_feature_net(data)
    out["metrics.feature_net_train_s"] = round(time.perf_counter() - t0, 2)
    out["metrics.feature_net_steps"] = facts["steps"]
    out["metrics.feature_net_accuracy"] = round(facts.get("held_out_accuracy", float("nan")), 4)

    perm = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))
    fake = unit_images(data.images[perm[-n:]])
    image_scores(fake[:50], data, net, n_real=50)  # imports and the copy threshold, not part of the figure
    t0 = time.perf_counter()
    scores = image_scores(fake, data, net, n_real=n)
    key = "metrics.eval5000_s" if n == 5000 else f"metrics.eval{n}_s"
    out[key] = round(time.perf_counter() - t0, 2)
    out["metrics.real_vs_real_fid"] = round(scores["fid"], 4)
    out["metrics.real_vs_real_precision"] = round(scores["precision"], 4)

    if data.size in (28, 32, 64):
        trainer = _dcgan(data)
        trainer.train_mode(False)
        t0 = time.perf_counter()
        with torch.no_grad():
            for i in range(0, n, 500):
                trainer.sample(min(500, n - i), seed=i)
        out[f"metrics.sample{n}_s"] = round(time.perf_counter() - t0, 2)
    return out
