"""The feature network each image data set is measured with.

FID, KID, precision/recall, density and coverage compare *features* of real
and generated images. The usual features come from Inception v3 trained on
ImageNet; those weights cannot be downloaded here, and 8 x 8 digits or
32 x 32 shapes are far from ImageNet anyway. So every image data set gets its
own small network, trained by the engine on that set the first time a score
is asked for, and cached under ``$AIGC_HOME/cache/feature_nets`` as
``.safetensors`` (keyed by the data set's name and a hash of its pixels and
labels, so an edited upload gets a new one):

- with labels: a small CNN classifier. Its features are the layer before the
  class scores; the same net says which class a generated image looks like
  (the "recognised" share). It also learns an extra "none of these" class
  from noise, blurred noise and blends of two images of different classes,
  so a blob is not confidently called a digit.
- without labels: the encoder of a small autoencoder.

The scores therefore compare runs on the same data set only (:data:`FEATURE_NOTE`).
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from ..data.base import ImageData
from ..errors import UserError
from ..paths import cache_dir

FEATURE_NOTE = ("FID, KID, precision, recall, density, coverage and the recognised share are measured with a "
                "feature network trained on this data set (Inception weights cannot be downloaded here), so they "
                "compare runs on the same data only, and are not comparable with published FIDs.")

#: change when the network or its training changes: old cached nets are then ignored
FEATURE_VERSION = 1
FEATURE_DIM = 64
#: below this many images a data set gets no feature net (its scores would be noise)
MIN_IMAGES = 200
#: how long the first training of a feature net may take, and how many epochs it needs at most
MAX_TRAIN_SECONDS = 30.0
MAX_EPOCHS = 5
MAX_STEPS = 1200
BATCH = 64
LR = 3e-3
TRAIN_SEED = 0

_memory: dict[str, "FeatureNet"] = {}
_lock = threading.Lock()


class FeatureNet(nn.Module):
    """Images (N, C, H, W) in [0, 1] (or uint8 0..255) -> features (N, 64).

    ``classes`` > 0: a classifier with ``classes + 1`` outputs (the last one
    is "none of these"); ``classes`` = 0: an autoencoder whose decoder is
    only used to train it. ``num_features`` is what torchmetrics' FID and KID
    read to size their statistics.
    """

    def __init__(self, channels: int, size: int, classes: int = 0, width: int = 16, dim: int = FEATURE_DIM):
        super().__init__()
        self.channels, self.size, self.classes, self.width = channels, size, classes, width
        self.num_features = dim
        w = width
        first = 1 if size <= 16 else 2  # small images (8 x 8 digits) keep their resolution in the first layer
        self.convs = nn.Sequential(
            nn.Conv2d(channels, w, 3, first, 1), nn.ReLU(inplace=True),  # w x s/2 x s/2 (s x s when small)
            nn.Conv2d(w, 2 * w, 3, 2, 1), nn.ReLU(inplace=True),  # 2w x s/4 x s/4
            nn.Conv2d(2 * w, 4 * w, 3, 2, 1), nn.ReLU(inplace=True),  # 4w x s/8 x s/8
        )
        # pooled: 4w (strongest response anywhere: what is drawn) + 16w (a 2 x 2 average: where)
        self.project = nn.Linear(20 * w, dim)  # dim: the features
        # after training: each feature's mean and spread on the real images, so
        # the features come out standardised (0 mean, unit spread on real data)
        self.register_buffer("feature_mean", torch.zeros(dim))
        self.register_buffer("feature_std", torch.ones(dim))
        if classes:
            self.head = nn.Sequential(nn.ReLU(), nn.Linear(dim, classes + 1))  # class scores + "none of these"
        else:
            self.head = nn.Linear(dim, channels * size * size)  # decoder: features -> pixel logits

    @property
    def labelled(self) -> bool:
        return self.classes > 0

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype == torch.uint8:
            return images.float().div(255.0)
        return images.float()

    def raw_features(self, images: torch.Tensor) -> torch.Tensor:
        h = self.convs(self.prepare(images) * 2.0 - 1.0)
        pooled = torch.cat([F.adaptive_max_pool2d(h, 1).flatten(1), F.adaptive_avg_pool2d(h, 2).flatten(1)], 1)
        return self.project(pooled)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Standardised features (N, dim)."""
        return (self.raw_features(images) - self.feature_mean) / self.feature_std

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """Standardised features -> (N, classes + 1) probabilities; the last
        column is "none of these"."""
        return F.softmax(self.head(features * self.feature_std + self.feature_mean), dim=1)

    def class_probs(self, images: torch.Tensor) -> torch.Tensor:
        return F.softmax(self.head(self.raw_features(images)), dim=1)

    def config(self) -> dict:
        return dict(channels=self.channels, size=self.size, classes=self.classes, width=self.width,
                    dim=self.num_features)


@torch.no_grad()
def features_of(net: FeatureNet, images: torch.Tensor, batch: int = 1000) -> torch.Tensor:
    """Features (N, 64) of images (N, C, H, W) in [0, 1] or uint8, float32 on the CPU."""
    net.eval()
    return torch.cat([net(part) for part in images.split(batch)]) if len(images) else torch.zeros(0, net.num_features)


def data_key(data: ImageData) -> str:
    """The data set's name and a hash of its pixels and labels."""
    h = hashlib.sha1()
    h.update(f"v{FEATURE_VERSION}|{tuple(data.images.shape)}".encode())
    h.update(data.images.contiguous().numpy().tobytes())
    if data.labels is not None:
        h.update(data.labels.to(torch.int64).contiguous().numpy().tobytes())
    safe = "".join(c if c.isalnum() or c in "_.-" else "_" for c in data.name)[:64]
    return f"{safe}-{h.hexdigest()[:16]}"


def _path(key: str):
    folder = cache_dir() / "feature_nets"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{key}.safetensors"


def _classes(data: ImageData) -> int:
    if data.labels is None or len(data.labels) == 0:
        return 0
    n = int(data.labels.max()) + 1
    return n if int(torch.unique(data.labels).numel()) >= 2 else 0


def _not_these(x: torch.Tensor, y: torch.Tensor, count: int, gen: torch.Generator) -> torch.Tensor:
    """``count`` images that belong to no class: uniform noise, blurred noise
    and blends of two images with different labels."""
    third = count // 3
    shape = x.shape[1:]
    noise = torch.rand(third, *shape, generator=gen)
    blurred = F.avg_pool2d(torch.rand(third, *shape, generator=gen), 3, 1, 1)
    a = torch.randint(len(x), (count - 2 * third,), generator=gen)
    b = torch.randint(len(x), (count - 2 * third,), generator=gen)
    keep = y[a] != y[b]
    blend = 0.5 * (x[a][keep] + x[b][keep])
    return torch.cat([noise, blurred, blend])


@contextmanager
def one_thread():
    """Run torch on one thread for a while: the feature net's small batches
    gain little from a second thread on an idle machine, and lose a lot on a
    busy one (each thread waits for the other at every layer)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@one_thread()
@torch.enable_grad()  # also when asked for from inside an evaluation's no_grad block
def train_feature_net(data: ImageData, *, max_seconds: float = MAX_TRAIN_SECONDS, max_steps: int = MAX_STEPS,
                      width: int = 16, echo=None) -> tuple[FeatureNet, dict]:
    """Train a feature net on ``data`` (classifier with labels, autoencoder
    without); returns it and a few facts (steps, seconds, accuracy on a
    held-out tenth or reconstruction error).

    Adam with a cosine learning-rate decay that follows whichever runs out
    first, the steps (``MAX_EPOCHS`` passes, at most ``max_steps``) or the
    seconds, so a slow machine still ends on a small learning rate."""
    say = echo or (lambda _m: None)
    classes = _classes(data)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TRAIN_SEED)
        net = FeatureNet(data.channels, data.size, classes, width)
    gen = torch.Generator().manual_seed(TRAIN_SEED)
    perm = torch.randperm(len(data), generator=gen)
    n_val = max(1, len(data) // 10)
    train_idx, val_idx = perm[n_val:], perm[:n_val]
    images = data.images.float().div(255.0)
    labels = data.labels.long() if classes else None
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    steps = min(max_steps, max(300, math.ceil(MAX_EPOCHS * len(train_idx) / BATCH)))
    say(f"training a feature net for {data.name} ({'classifier' if classes else 'autoencoder'}, up to {steps} steps)")
    net.train()
    t0 = time.perf_counter()
    done = 0
    while done < steps:
        progress = max(done / steps, (time.perf_counter() - t0) / max_seconds)
        if progress >= 1.0:
            break
        for group in opt.param_groups:
            group["lr"] = LR * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress)))
        idx = train_idx[torch.randint(len(train_idx), (BATCH,), generator=gen)]
        x = images[idx]
        if classes:
            junk = _not_these(x, labels[idx], BATCH // 4, gen)
            inputs = torch.cat([x, junk])
            targets = torch.cat([labels[idx], torch.full((len(junk),), classes, dtype=torch.long)])
            loss = F.cross_entropy(net.head(net.raw_features(inputs)), targets)
        else:
            loss = F.binary_cross_entropy_with_logits(net.head(net.raw_features(x)), x.flatten(1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        done += 1
    net.eval()
    facts = {"steps": done, "seconds": round(time.perf_counter() - t0, 2), "images": len(data)}
    with torch.no_grad():
        raw = torch.cat([net.raw_features(p) for p in images[train_idx].split(1000)])
        net.feature_mean.copy_(raw.mean(0))
        net.feature_std.copy_(raw.std(0).clamp_min(1e-6))
        val = images[val_idx]
        if classes:
            probs = torch.cat([net.class_probs(p) for p in val.split(1000)])
            facts["held_out_accuracy"] = float((probs.argmax(1) == labels[val_idx]).float().mean())
        else:
            recon = torch.cat([torch.sigmoid(net.head(net.raw_features(p))) for p in val.split(1000)])
            facts["held_out_rmse"] = float((recon - val.flatten(1)).pow(2).mean().sqrt())
    return net, facts


def _save(net: FeatureNet, facts: dict, path) -> None:
    from safetensors.torch import save_file

    tmp = path.with_name(f".{path.name}.tmp{__import__('os').getpid()}")
    state = {k: v.detach().contiguous() for k, v in net.state_dict().items()}
    save_file(state, str(tmp), metadata={"config": json.dumps(net.config()), "facts": json.dumps(facts)})
    tmp.replace(path)


def _load(path) -> FeatureNet:
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata() or {}
    cfg = json.loads(meta["config"])
    net = FeatureNet(cfg["channels"], cfg["size"], cfg["classes"], cfg["width"], cfg["dim"])
    net.load_state_dict(load_file(str(path)))
    net.facts = json.loads(meta.get("facts", "{}"))
    return net.eval()


def cached_feature_net(data: ImageData) -> FeatureNet | None:
    """The data set's feature net if one is already trained (None otherwise)."""
    if len(data) < MIN_IMAGES:
        return None
    key = data_key(data)
    if key in _memory:
        return _memory[key]
    path = _path(key)
    if not path.exists():
        return None
    try:
        net = _load(path)
    except Exception:  # noqa: BLE001 - a damaged cache file is retrained, never trusted
        path.unlink(missing_ok=True)
        return None
    _memory[key] = net
    return net


def feature_net(data: ImageData, echo=None) -> FeatureNet:
    """The data set's feature net, trained and cached on first use."""
    if not isinstance(data, ImageData):
        raise UserError(f"{getattr(data, 'name', 'this data set')!r} holds no images; image scores need images")
    if len(data) < MIN_IMAGES:
        raise UserError(f"{data.name!r} has {len(data)} images; image quality scores need at least {MIN_IMAGES} "
                        "(the feature net they are measured with would learn nothing from fewer)")
    with _lock:
        net = cached_feature_net(data)
        if net is not None:
            return net
        net, facts = train_feature_net(data, echo=echo)
        net.facts = facts
        _save(net, facts, _path(data_key(data)))
        _memory[data_key(data)] = net
        return net
