"""The in-memory containers every data set is loaded into.

One container per kind of data. Trainers receive one of these and move it to
the training device as a single tensor (batches are taken by indexing).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class ImageData:
    """Images as one uint8 tensor ``(N, C, H, W)`` with values 0..255.

    ``to_unit_range`` gives the float tensor models train on, in [-1, 1]
    (the range a tanh output covers).
    """

    name: str
    images: torch.Tensor  # uint8 (N, C, H, W)
    labels: torch.Tensor | None = None  # int64 (N,)
    class_names: list[str] | None = None
    description: str = ""
    kind: str = field(default="image", init=False)

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    @property
    def size(self) -> int:
        return int(self.images.shape[-1])

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def to_unit_range(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """Float images in [-1, 1] on ``device``."""
        return self.images.to(device).float().div_(127.5).sub_(1.0)

    def summary(self) -> dict[str, Any]:
        return dict(kind=self.kind, count=len(self), size=self.size, channels=self.channels,
                    classes=len(self.class_names) if self.class_names else 0)


@dataclass
class PointData:
    """2-D points ``(N, 2)`` float32 for the toy GANs."""

    name: str
    points: torch.Tensor
    labels: torch.Tensor | None = None
    description: str = ""
    kind: str = field(default="points", init=False)

    def __len__(self) -> int:
        return int(self.points.shape[0])

    def summary(self) -> dict[str, Any]:
        return dict(kind=self.kind, count=len(self), dims=int(self.points.shape[1]))


@dataclass
class TextData:
    """A character corpus.

    ``mode`` is ``"stream"`` (one long text) or ``"lines"`` (one item per line,
    trained with start/end markers). The validation split is the last 10%.
    """

    name: str
    text: str
    mode: str = "stream"
    description: str = ""
    kind: str = field(default="text", init=False)

    def __len__(self) -> int:
        return len(self.text)

    def summary(self) -> dict[str, Any]:
        return dict(kind=self.kind, count=len(self.text), vocab=len(set(self.text)), mode=self.mode,
                    lines=self.text.count("\n") + 1 if self.mode == "lines" else None)


def default_condition_column(column_types: dict[str, str], label: str | None) -> str | None:
    """The column a tabular model conditions on when none is chosen: the
    label if it is not numeric, else the first categorical or yes/no column
    (``None`` for a table of numbers only)."""
    if column_types.get(label or "") not in (None, "numeric"):
        return label
    return next((c for c, kind in column_types.items() if kind != "numeric"), None)


@dataclass
class TableData:
    """A table (pandas DataFrame) with a type per column.

    ``column_types`` maps each column to ``"numeric"``, ``"categorical"`` or
    ``"boolean"``; ``label_column`` is optional.
    """

    name: str
    frame: Any  # pandas.DataFrame
    column_types: dict[str, str]
    label_column: str | None = None
    description: str = ""
    kind: str = field(default="table", init=False)

    def __len__(self) -> int:
        return int(len(self.frame))

    def summary(self) -> dict[str, Any]:
        return dict(kind=self.kind, count=len(self), columns=len(self.column_types),
                    label_column=self.label_column, **self._widths())

    def _widths(self) -> dict[str, int]:
        """``encoded_width``: the length of a row as the tabular models encode
        it with quantile numbers (1 per number, 2 per yes/no column, one per
        category); ``condition_values``: the values of the column they
        condition on by default (the label if it is not numeric, else the
        first categorical or yes/no column; 1 for none). Counted over the
        whole table once (the models fit on their training rows, which can
        only have fewer categories), and kept while the table keeps its size."""
        key = (id(self.frame), len(self.frame))
        if getattr(self, "_widths_of", (None,))[0] != key:
            widths = {col: 1 if kind == "numeric" else 2 if kind == "boolean"
                      else int(self.frame[col].dropna().astype(str).nunique())
                      for col, kind in self.column_types.items()}
            label = default_condition_column(self.column_types, self.label_column)
            width, values = sum(widths.values()), 1 if label is None else max(1, widths[label])
            self._widths_of = (key, {"encoded_width": width, "condition_values": values})
        return dict(self._widths_of[1])
