"""Quality scores for generated images.

- :func:`distribution_scores`: FID and KID (torchmetrics, with the data set's
  own feature net as ``feature``; FID's statistics in float64), then precision,
  recall, density and coverage (:mod:`.manifold`) on the same features.
- :func:`recognition_scores`: for labelled sets, the share of samples the
  feature net's classifier recognises with confidence, and how many classes
  they cover.
- :func:`nearest_neighbours` and :func:`copy_scores`: copy detection, pixel by
  pixel (on thumbnails of at most 16 x 16): each sample's closest training
  image, and the share of samples closer to a training image than new real
  images usually are.
- :func:`reconstruction_scores`: ELBO, reconstruction error, PSNR and SSIM of
  a VAE or autoencoder on its held-out images.

The scores run torch on one thread (:func:`.features.one_thread`): on this
project's 2-core machine, 600 against 600 digits took 0.9 s on one thread
and 3.3 s on two while other processes were busy.
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from ..data.base import ImageData
from ..errors import UserError
from .features import FeatureNet, data_key, one_thread
from .manifold import manifold_scores

#: a recognised sample: the classifier gives one class at least this probability
CONFIDENT = 0.8
#: a sample is a copy when it is closer to a training image than this fraction
#: of the median distance from a new real image to its closest training image
COPY_FRACTION = 0.5
#: how many samples are checked for copies (each against every training image)
COPY_SAMPLES = 1000
#: how many held-out real images set the copy threshold
COPY_REFERENCE = 500
THUMB = 16
KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000

_copy_thresholds: dict[str, float] = {}


def unit_images(images: torch.Tensor) -> torch.Tensor:
    """uint8 0..255 or float images -> float32 in [0, 1] on the CPU."""
    images = torch.as_tensor(images).detach().cpu()
    if images.dtype == torch.uint8:
        return images.float().div(255.0)
    return images.float().clamp(0, 1)


class _Float64Features(nn.Module):
    """The feature net as torchmetrics wants it: ``num_features`` and float64 output."""

    def __init__(self, net: FeatureNet):
        super().__init__()
        self.net = net
        self.num_features = net.num_features

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images).double()


def _batches(images: torch.Tensor, size: int = 1000):
    return images.split(size)


@one_thread()
@torch.no_grad()
def distribution_scores(real01: torch.Tensor, fake01: torch.Tensor, net: FeatureNet, seed: int = 0
                        ) -> tuple[dict[str, float], torch.Tensor, torch.Tensor]:
    """FID, KID (and its spread over subsets), precision, recall, density and
    coverage of ``fake01`` against ``real01`` (both (N, C, H, W) in [0, 1]);
    also returns the real and generated features."""
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    if real01.shape[0] < 2 or fake01.shape[0] < 2:
        raise UserError("image scores need at least 2 real and 2 generated images")
    net.eval()
    # subsets of 1,000 (at most half of the smaller set, so the 100 subsets differ and the spread means something)
    subset = max(2, min(KID_SUBSET_SIZE, min(real01.shape[0], fake01.shape[0]) // 2))
    fid = FrechetInceptionDistance(feature=_Float64Features(net), normalize=True)
    # KID's kernel sums stay in float32: 4x faster, and they agree with float64 to 5 digits
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*will save all extracted features")  # 5,000 x 64 floats: small
        kid = KernelInceptionDistance(feature=net, normalize=True, subsets=KID_SUBSETS, subset_size=subset)
    for part in _batches(real01):
        fid.update(part, real=True)
        kid.update(part, real=True)
    for part in _batches(fake01):
        fid.update(part, real=False)
        kid.update(part, real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # KID draws its subsets with the global generator
        kid_mean, kid_std = kid.compute()
    real_f = torch.cat(kid.real_features).float()
    fake_f = torch.cat(kid.fake_features).float()
    out = {"fid": max(0.0, float(fid.compute())), "kid": float(kid_mean), "kid_std": float(kid_std)}
    out.update(manifold_scores(real_f, fake_f))
    return out, real_f, fake_f


@torch.no_grad()
def recognition_scores(fake_features: torch.Tensor, net: FeatureNet) -> dict[str, float]:
    """Share of samples the classifier puts in one class with probability
    >= :data:`CONFIDENT` (never the "none of these" class), and how many
    different classes those samples cover. Empty for an unlabelled set."""
    if not net.labelled or fake_features.shape[0] == 0:
        return {}
    probs = net.classify(fake_features.float())
    best, cls = probs.max(1)
    sure = (best >= CONFIDENT) & (cls < net.classes)
    return {"recognised": float(sure.double().mean()), "classes_covered": float(cls[sure].unique().numel())}


# ---- copy detection ---------------------------------------------------------------

def _thumbs(images01: torch.Tensor) -> torch.Tensor:
    """(N, C*t*t) thumbnails of at most 16 x 16 (average of each block)."""
    size = images01.shape[-1]
    factor = math.ceil(size / THUMB)
    if factor > 1:
        images01 = F.avg_pool2d(images01, factor, ceil_mode=True) if size % factor == 0 else \
            F.adaptive_avg_pool2d(images01, math.ceil(size / factor))
    return images01.flatten(1)


def _closest(queries: torch.Tensor, pool: torch.Tensor, chunk: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """For each query row, the index of its nearest row in ``pool`` and the
    root-mean-square difference per value (0..1 for images in [0, 1])."""
    pool_sq = pool.pow(2).sum(1)
    dims = pool.shape[1]
    dist, index = [], []
    for q in queries.split(chunk):
        d2 = (q.pow(2).sum(1, keepdim=True) + pool_sq[None, :] - 2.0 * q @ pool.T).clamp_min_(0)
        best, idx = d2.min(1)
        dist.append((best / dims).sqrt())
        index.append(idx)
    return torch.cat(index), torch.cat(dist)


def _as_image_data(dataset, run_id: str | None = None) -> ImageData:
    if dataset is None and run_id is not None:
        from ..runs.store import RunStore

        dataset = RunStore().get(run_id).dataset
    if isinstance(dataset, str):
        from ..data.catalog import load_dataset

        dataset = load_dataset(dataset)
    if not isinstance(dataset, ImageData):
        raise UserError(f"{getattr(dataset, 'name', 'this data set')!r} holds no images; copy detection needs images")
    return dataset


def _check_shape(samples01: torch.Tensor, data: ImageData) -> None:
    if tuple(samples01.shape[1:]) != (data.channels, data.size, data.size):
        raise UserError(f"the samples are {tuple(samples01.shape[1:])} but {data.name!r} holds "
                        f"{data.channels}-channel {data.size}x{data.size} images")


@one_thread()
def nearest_neighbours(samples01: torch.Tensor, dataset=None, run_id: str | None = None) -> dict:
    """Each sample's closest training image, pixel by pixel.

    ``dataset`` is a data set name or a loaded :class:`ImageData` (or None with
    ``run_id``: that run's data set). Returns ``{"images": (n, C, H, W) in
    [0, 1], "distances": (n,), "indices": (n,)}``; a distance is the
    root-mean-square pixel difference of the two thumbnails (0 = the same
    image, about 0.3 = unrelated images)."""
    data = _as_image_data(dataset, run_id)
    samples01 = unit_images(samples01)
    if samples01.dim() == 3:
        samples01 = samples01.unsqueeze(0)
    _check_shape(samples01, data)
    train01 = unit_images(data.images)
    index, dist = _closest(_thumbs(samples01), _thumbs(train01))
    return {"images": train01[index], "distances": dist, "indices": index}


@one_thread()
def copy_threshold(data: ImageData) -> float:
    """:data:`COPY_FRACTION` times the median distance from a held-out real
    image to its closest other image of the set (the split every VAE uses)."""
    key = data_key(data)
    if key not in _copy_thresholds:
        from ..data.held_out import held_out_split

        rest, held = held_out_split(len(data))
        held = held[:COPY_REFERENCE]
        thumbs = _thumbs(unit_images(data.images))
        _, dist = _closest(thumbs[held], thumbs[rest])
        _copy_thresholds[key] = COPY_FRACTION * float(dist.median())
    return _copy_thresholds[key]


@one_thread()
def copy_scores(samples01: torch.Tensor, data: ImageData) -> dict[str, float]:
    """``copy_rate``: the share of (up to :data:`COPY_SAMPLES`) samples closer
    to a training image than :func:`copy_threshold`; ``copy_distance``: the
    median distance of a sample to its closest training image."""
    if len(data) < 2:
        return {}
    samples01 = unit_images(samples01)[:COPY_SAMPLES]
    _check_shape(samples01, data)
    _, dist = _closest(_thumbs(samples01), _thumbs(unit_images(data.images)))
    threshold = copy_threshold(data)
    return {"copy_rate": float((dist <= threshold).double().mean()), "copy_distance": float(dist.median())}


# ---- the whole set --------------------------------------------------------------

def real_reference(data: ImageData, n: int, seed: int = 0) -> torch.Tensor:
    """``n`` real images (the whole set when smaller), drawn with a fixed seed
    so every run on this data set is measured against the same ones."""
    if n >= len(data):
        return unit_images(data.images)
    idx = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:n]
    return unit_images(data.images[idx])


def image_scores(samples01: torch.Tensor, data: ImageData, net: FeatureNet | None, n_real: int | None = None,
                 seed: int = 0) -> dict[str, float]:
    """Every image score that applies: the feature-net scores when ``net`` is
    given, copy detection always."""
    samples01 = unit_images(samples01)
    _check_shape(samples01, data)
    out: dict[str, float] = {}
    if net is not None:
        real = real_reference(data, n_real or samples01.shape[0], seed)
        scores, _, fake_f = distribution_scores(real, samples01, net, seed)
        out.update(scores)
        out.update(recognition_scores(fake_f, net))
    out.update(copy_scores(samples01, data))
    return out


# ---- VAEs and autoencoders ------------------------------------------------------------

@torch.no_grad()
def reconstruction_scores(originals01: torch.Tensor, rebuilt01: torch.Tensor) -> dict[str, float]:
    """Held-out images (N, C, H, W) in [0, 1] against their reconstructions:
    ``recon_error`` (mean squared pixel error), ``psnr`` (dB) and ``ssim``
    (torchmetrics)."""
    from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

    held01, recon = unit_images(originals01), unit_images(rebuilt01)
    out = {"recon_error": float((recon - held01).pow(2).mean()),
           "psnr": float(peak_signal_noise_ratio(recon, held01, data_range=1.0))}
    if min(held01.shape[-2:]) >= 7:
        kernel = 11 if min(held01.shape[-2:]) >= 11 else 7  # the usual 11 x 11 window, 7 x 7 on 8 x 8 digits
        out["ssim"] = float(structural_similarity_index_measure(recon, held01, data_range=1.0, kernel_size=kernel))
    return out
