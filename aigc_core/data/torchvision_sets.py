"""MNIST, Fashion-MNIST and CIFAR-10 through torchvision, for users with internet.

The files are downloaded on first use into ``$AIGC_HOME/downloads`` (with a
short network timeout), converted once to a uint8 ``ImageData`` (the training
split) and cached as ``.safetensors``; after that no network is needed. With no
network the user gets a plain message pointing at the offline ``glyphs`` set.
``AIGC_NO_DOWNLOAD=1`` forbids the network altogether (tests set it): the sets
load only when their files are already there.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import UserError
from ..paths import aigc_home
from .base import ImageData
from .catalog import builtin
from .images import cached_tensors

CONVERT_VERSION = 1
DOWNLOAD_TIMEOUT_S = 10.0


def downloads_dir() -> Path:
    path = aigc_home() / "downloads"
    path.mkdir(parents=True, exist_ok=True)
    return path


def downloads_allowed() -> bool:
    return os.environ.get("AIGC_NO_DOWNLOAD", "").strip().lower() not in ("1", "true", "yes")


@dataclass(frozen=True)
class _Source:
    name: str  # our data set name
    title: str  # how people write it
    dataset_class: str  # torchvision.datasets.<this>
    class_names: tuple[str, ...]


MNIST = _Source("mnist", "MNIST", "MNIST", tuple(str(d) for d in range(10)))
FASHION_MNIST = _Source("fashion_mnist", "Fashion-MNIST", "FashionMNIST",
                        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"))
CIFAR10 = _Source("cifar10", "CIFAR-10", "CIFAR10",
                  ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"))


def _no_network_message(source: _Source, reason: str) -> str:
    return (f"could not download {source.title}: {reason}. Connect this computer to the internet and try "
            f"again, or use the built-in `glyphs` set, which works offline.")


def _open_torchvision(source: _Source):
    """The torchvision training split, downloading it first if allowed and needed."""
    import torchvision.datasets as tvd

    cls = getattr(tvd, source.dataset_class)
    root = str(downloads_dir())
    try:
        # download=False only reads files already there (CIFAR: only after
        # their MD5 checksums match the official ones, see _convert)
        return cls(root, train=True, download=False)
    except RuntimeError:
        pass  # not there yet
    if not downloads_allowed():
        raise UserError(_no_network_message(source, "no internet connection (downloads are switched off by "
                                                     "AIGC_NO_DOWNLOAD=1)"))
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)  # urllib inside torchvision takes no timeout of its own
    try:
        return cls(root, train=True, download=True)
    except (OSError, RuntimeError, ValueError) as exc:  # URLError, socket.timeout and HTTP errors are OSErrors
        raise UserError(_no_network_message(source, f"no internet connection, or the server did not answer "
                                                    f"within {DOWNLOAD_TIMEOUT_S:.0f} s ({type(exc).__name__})")) from exc
    finally:
        socket.setdefaulttimeout(previous)


def _convert(source: _Source) -> dict[str, torch.Tensor]:
    ds = _open_torchvision(source)
    data = ds.data
    if isinstance(data, torch.Tensor):  # MNIST, Fashion-MNIST: uint8 (N, 28, 28)
        images = data.to(torch.uint8).unsqueeze(1)
    else:
        # CIFAR-10: numpy uint8 (N, 32, 32, 3). torchvision read it with
        # pickle; that is acceptable only because these batch files come from
        # the official CIFAR server and torchvision refuses them unless their
        # MD5 matches the published one. Nothing a user uploads is ever
        # unpickled (uploads go through aigc_core.data.uploads).
        images = torch.from_numpy(data).permute(0, 3, 1, 2)
    labels = torch.as_tensor(ds.targets, dtype=torch.int64)
    return dict(images=images.contiguous(), labels=labels)


def load_torchvision(source: _Source) -> ImageData:
    t = cached_tensors(f"{source.name}-train-v{CONVERT_VERSION}.safetensors", lambda: _convert(source))
    return ImageData(source.name, t["images"], t["labels"], list(source.class_names),
                     description=f"{source.title} training images (downloaded through torchvision)")


@builtin("mnist", kind="image", needs_download=True,
         description="MNIST: 60,000 handwritten 28x28 digits. Downloaded once (about 12 MB) on first use.",
         summary=dict(count=60000, size=28, channels=1, classes=10))
def mnist() -> ImageData:
    return load_torchvision(MNIST)


@builtin("fashion_mnist", kind="image", needs_download=True,
         description="Fashion-MNIST: 60,000 28x28 pictures of clothes in 10 classes. Downloaded once (about "
                     "30 MB) on first use.",
         summary=dict(count=60000, size=28, channels=1, classes=10))
def fashion_mnist() -> ImageData:
    return load_torchvision(FASHION_MNIST)


@builtin("cifar10", kind="image", needs_download=True,
         description="CIFAR-10: 50,000 32x32 colour photos in 10 classes. Downloaded once (about 170 MB) on "
                     "first use.",
         summary=dict(count=50000, size=32, channels=3, classes=10))
def cifar10() -> ImageData:
    return load_torchvision(CIFAR10)
