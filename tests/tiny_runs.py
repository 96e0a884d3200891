"""Small finished runs for page tests (each trains in well under a second)."""

from __future__ import annotations

from pathlib import Path

import torch
from streamlit.testing.v1 import AppTest

from aigc_core.data.base import ImageData, TableData, TextData
from aigc_core.data.catalog import list_datasets, save_uploaded
from aigc_core.runs import api

APP = str(Path(__file__).resolve().parent.parent / "app.py")
QUIET = dict(echo=lambda _msg: None)


def open_page(path: str, run_id: str | None = None, timeout: float = 120) -> AppTest:
    """The app, switched to a page (``pages/gallery.py``), with a run in the URL."""
    at = AppTest.from_file(APP, default_timeout=timeout)
    if run_id:
        at.query_params["run"] = run_id
    at.run()
    at.switch_page(path).run()
    return at


def tiny_images(name: str = "tiny_img", count: int = 48, classes: int = 0) -> str:
    """A set of random 28 x 28 grey images (enough for a DCGAN or VAE to run);
    with ``classes``, labelled round-robin with class names a, b, c, ..."""
    if name not in {d.name for d in list_datasets()}:
        g = torch.Generator().manual_seed(0)
        images = (torch.rand(count, 1, 28, 28, generator=g) * 255).to(torch.uint8)
        labels = torch.arange(count) % classes if classes else None
        names = [chr(ord("a") + i) for i in range(classes)] if classes else None
        save_uploaded(ImageData(name, images, labels, names))
    return name


def tiny_lines(name: str = "tiny_names") -> str:
    if name not in {d.name for d in list_datasets()}:
        names = ["anna", "bert", "carl", "dora", "emil", "fina", "gust", "hans", "ida", "jan", "karl", "lena"] * 3
        save_uploaded(TextData(name, "\n".join(names), mode="lines"))
    return name


def tiny_table(name: str = "tiny_table") -> str:
    import pandas as pd

    if name not in {d.name for d in list_datasets()}:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(120, generator=g)
        frame = pd.DataFrame({"views": (x * 3 + 10).round().int().numpy(), "time": (x.abs() * 2).numpy(),
                              "buy": (x > 0).numpy()})
        save_uploaded(TableData(name, frame, {"views": "numeric", "time": "numeric", "buy": "boolean"}, "buy"))
    return name


def finished(model: str, dataset: str, steps: int = 20, name: str | None = None, **model_set):
    cfg = api.make_config(model, dataset, model_set=model_set,
                          train_set={"steps": steps, "log_every": 5, "sample_every": 10, "checkpoint_every": 10})
    return api.run_in_foreground(cfg, name=name, **QUIET)


def dcgan_run(steps: int = 20, name: str | None = None, **model_set):
    settings = dict(ngf=8, ndf=8, nz=16, batch_size=8)
    settings.update(model_set)
    return finished("dcgan", tiny_images(), steps, name, **settings)


def vae_run(steps: int = 20):
    return finished("vae", tiny_images(), steps, hidden=32, latent_dim=4, batch_size=8)


def blobs(n: int = 32, size: int = 28, channels: int = 1, seed: int = 0) -> ImageData:
    """Bright squares at random places on black: something learnable."""
    gen = torch.Generator().manual_seed(seed)
    images = torch.zeros(n, channels, size, size, dtype=torch.uint8)
    for i in range(n):
        side = size // 3
        x, y = torch.randint(0, size - side, (2,), generator=gen).tolist()
        images[i, :, y:y + side, x:x + side] = 255
    return ImageData("blobs", images)


# ---- the test model's runs through the queue and the workers --------------------------------------

#: settings of the test model (tiny_line) rather than of training, routed to its model config
TINY_LINE_SETTINGS = ("step_sleep", "explode_at", "lr")


def tiny_line_config(**train):
    """A run of the test model on its points: 40 steps, logging, filming and checkpointing every few steps;
    ``step_sleep``, ``explode_at`` and ``lr`` go to the model, anything else to training."""
    settings = {"steps": 40, "log_every": 5, "sample_every": 10, "checkpoint_every": 10, **train}
    model = {k: settings.pop(k) for k in TINY_LINE_SETTINGS if k in settings}
    return api.make_config("tiny_line", "tiny_points", model_set=model, train_set=settings)


def wait_for(predicate, timeout=60.0, every=0.1) -> bool:
    """True as soon as ``predicate()`` is, False after ``timeout`` seconds of asking every ``every`` seconds."""
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(every)
    return False
