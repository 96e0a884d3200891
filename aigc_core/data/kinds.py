"""The four kinds of data a model can learn, declared once: what one example is
called, how a batch of samples is saved to a file, how many make a quick look,
and whether a single sample can be rated into the data loop.

The command line, the data loop and the pages look a kind up here instead of
each writing its own ``if kind == "image"`` switch.
What a trainer's ``sample`` returns for each kind:

- ``image``: float tensor (N, C, H, W) in [0, 1];
- ``points``: float tensor (N, 2);
- ``text``: list of str;
- ``table``: a pandas DataFrame.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..errors import UserError


def _save_image(samples, path: Path) -> None:
    from ..imaging import grid_image

    grid_image(samples).save(path)


def _save_points(samples, path: Path) -> None:
    import numpy as np

    np.savetxt(path, samples.numpy(), delimiter=",", header="x,y", comments="")


def _save_text(samples, path: Path) -> None:
    path.write_text("\n".join(samples) if isinstance(samples, list) else str(samples), encoding="utf-8")


def _save_table(samples, path: Path) -> None:
    from .table import csv_bytes  # cells that start with = + - @ are escaped

    path.write_bytes(csv_bytes(samples))


@dataclass(frozen=True)
class DataKind:
    """One kind of data and its samples."""

    name: str
    #: what one training example is called, in the plural ("images/s")
    noun: str
    #: the file a batch of samples is saved as by ``sample --out``
    suffix: str
    save: Callable[[Any, Path], None]
    #: whether one sample can be rated and join the training data
    rateable: bool
    #: how many samples make a quick look (the Home page's starter samples)
    preview_count: int


KINDS: dict[str, DataKind] = {
    "image": DataKind("image", "images", ".png", _save_image, True, 16),
    "points": DataKind("points", "points", ".csv", _save_points, False, 512),
    "text": DataKind("text", "characters", ".txt", _save_text, True, 8),
    "table": DataKind("table", "rows", ".csv", _save_table, True, 8),
}


def data_kind(name: str) -> DataKind:
    if name not in KINDS:
        raise UserError(f"no kind of data called {name!r}; kinds: {', '.join(KINDS)}")
    return KINDS[name]
