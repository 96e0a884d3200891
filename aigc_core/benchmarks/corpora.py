"""Text corpora and tables for tuning and checking the presets' fitting rules,
made from material already on the machine (nothing is shipped or downloaded).

Two groups, kept apart so the figures say which is which:

- ``TUNED``: the sets the rules were tuned on;
- ``UNSEEN``: sets the rules were *not* tuned on, measured only to check them.

Each corpus is built deterministically (files in sorted order, duplicates by
content left out, cut at a paragraph boundary near its target size); one whose
material is missing on this machine (a system without Debian's documentation)
is skipped by :func:`text_corpora` and reported as missing by the bench.
"""

from __future__ import annotations

import gzip
import hashlib
import sysconfig
from pathlib import Path
from dataclasses import dataclass
from typing import Callable

from ..data.base import TableData, TextData

KB = 1000


def _cut(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, at the last blank line before it."""
    if len(text) <= limit:
        return text
    head = text[:limit]
    at = head.rfind("\n\n")
    return head[:at] if at > limit // 2 else head


def _join(paths: list[Path], read: Callable[[Path], str], limit: int) -> str:
    seen, parts, size = set(), [], 0
    for path in paths:
        try:
            text = read(path).strip()
        except (OSError, UnicodeDecodeError, EOFError):
            continue
        digest = hashlib.sha1(text.encode()).hexdigest()
        if not text or digest in seen:
            continue  # symlinked or copied files count once
        seen.add(digest)
        parts.append(text)
        size += len(text) + 2
        if size >= limit:
            break
    return _cut("\n\n".join(parts), limit)


def _read_text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _read_gz(path: Path) -> str:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return fh.read()


def pydoc_part(limit: int) -> str:
    from ..data.text import _pydoc_text

    return _cut(_pydoc_text(), limit)


def licences() -> str:
    """Debian's common licence texts (``/usr/share/common-licenses``: GPL, LGPL, Apache, MPL, ...), about 260 kB."""
    folder = Path("/usr/share/common-licenses")
    return _join(sorted(p for p in folder.glob("*") if p.is_file()), _read_text, 10**9) if folder.is_dir() else ""


def copyrights(limit: int) -> str:
    """Debian packages' copyright files (``/usr/share/doc/*/copyright``), in package order."""
    return _join(sorted(Path("/usr/share/doc").glob("*/copyright")), _read_text, limit)


def changelogs(limit: int) -> str:
    """Debian packages' changelogs (``/usr/share/doc/*/changelog.Debian.gz``), in package order."""
    return _join(sorted(Path("/usr/share/doc").glob("*/changelog.Debian.gz")), _read_gz, limit)


def readmes(limit: int) -> str:
    """Debian packages' README files (``/usr/share/doc/*/README*``, plain or gzipped), in package order."""
    read = lambda path: _read_gz(path) if path.suffix == ".gz" else _read_text(path)  # noqa: E731
    return _join(sorted(p for p in Path("/usr/share/doc").glob("*/README*") if p.is_file()), read, limit)


def stdlib_source(limit: int) -> str:
    """Python's standard library source, the top-level modules in name order."""
    folder = Path(sysconfig.get_paths()["stdlib"])
    return _join(sorted(folder.glob("*.py")), _read_text, limit)


#: name -> (what it is, how it is made); the sizes span small to large
TUNED: dict[str, tuple[str, Callable[[], str]]] = {
    "pydoc": ("Python's documentation topics (built-in set)", lambda: pydoc_part(10**9)),
    "licences": ("Debian's common licence texts", licences),
    "pydoc_60k": ("the first 60 kB of pydoc", lambda: pydoc_part(60 * KB)),
    # The next three were unseen until the text rule's second round (2026-11-30), whose dropout bands,
    # learning rate and weight decay were chosen looking at them too.
    "copyrights_1m": ("1 MB of Debian packages' copyright files", lambda: copyrights(1000 * KB)),
    "stdlib_150k": ("150 kB of Python standard-library source", lambda: stdlib_source(150 * KB)),
    "changelogs_40k": ("40 kB of Debian package changelogs", lambda: changelogs(40 * KB)),
}
UNSEEN: dict[str, tuple[str, Callable[[], str]]] = {
    "readmes_200k": ("200 kB of Debian packages' README files", lambda: readmes(200 * KB)),
}
#: a corpus shorter than this is reported missing rather than trained on
MIN_CHARS = 10 * KB


def text_corpora(names: list[str] | None = None) -> tuple[dict[str, tuple[str, TextData]], list[str]]:
    """``({name: (group, TextData)}, missing names)`` for the tuned and unseen corpora."""
    out, missing = {}, []
    for group, table in (("tuned", TUNED), ("unseen", UNSEEN)):
        for name, (description, make) in table.items():
            if names and name not in names:
                continue
            text = make()
            if len(text) < MIN_CHARS:
                missing.append(name)
                continue
            out[name] = (group, TextData(name, text, mode="stream", description=description))
    return out, missing


# ---- tables ----------------------------------------------------------------------------

@dataclass
class BenchTable:
    """A table as an upload of it would arrive: written as CSV and read back by
    the importer, which infers the column types and guesses the label
    (``guessed``, ``reason``); ``classes`` is the column that really holds the
    classes, so a wrong guess shows in the figures instead of being scored."""

    group: str
    data: TableData
    classes: str
    guessed: str | None
    reason: str

    @property
    def guessed_right(self) -> bool:
        return self.guessed == self.classes


def _as_upload(frame, name: str, description: str):
    """``(TableData with the guessed label, LabelGuess)`` for ``frame`` imported as a CSV file with no label named."""
    from ..data.table import csv_bytes, import_csv

    report = import_csv(csv_bytes(frame), name, guess_label=True)
    report.data.description = description
    return report.data, report.label_guess


def _sklearn_frame(loader: str, label: str):
    """One of scikit-learn's bundled data sets as a frame, the class in the last column ``label``."""
    import pandas as pd
    from sklearn import datasets

    bunch = getattr(datasets, loader)()
    names = [str(n).replace(" ", "_") for n in getattr(bunch, "feature_names", [])] or \
        [f"x{i}" for i in range(bunch.data.shape[1])]
    frame = pd.DataFrame(bunch.data, columns=names)
    target_names = getattr(bunch, "target_names", None)
    frame[label] = [str(target_names[t]) if target_names is not None else str(t) for t in bunch.target]
    return frame


def _builtin_frame(name: str):
    from ..data.catalog import load_dataset

    return load_dataset(name).frame


GLYPH_ROWS = 2000
GLYPH_SIDE = 7


def glyph_pixels(rows: int = GLYPH_ROWS, side: int = GLYPH_SIDE):
    """The first ``rows`` of the built-in ``glyphs`` images (28x28 digits drawn
    from this machine's fonts), averaged down to ``side`` x ``side`` pixels
    and put on digits' 0-16 grey scale, one column per pixel and the digit
    last: a wide table from another source than scikit-learn's digits."""
    import pandas as pd
    import torch.nn.functional as F

    from ..data.images import glyphs

    data = glyphs()
    x = data.images[:rows].float().div(255)                               # (rows, 1, 28, 28)
    small = F.adaptive_avg_pool2d(x, side).mul(16).round().reshape(rows, -1).numpy()  # (rows, side*side)
    frame = pd.DataFrame(small.astype(int), columns=[f"p{i // side}_{i % side}" for i in range(side * side)])
    frame["digit"] = [data.class_names[int(t)] for t in data.labels[:rows]]
    return frame


def classification_frame(rows: int, features: int, informative: int, classes: int, clusters: int,
                         separation: float, seed: int, prefix: str, label: str, label_prefix: str):
    """scikit-learn's ``make_classification`` as a frame: ``rows`` rows of
    ``features`` numeric columns (``informative`` of them informative, as many
    their mixtures, the rest noise), ``classes`` classes of ``clusters``
    clusters each, the class last in column ``label``."""
    import pandas as pd
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=rows, n_features=features, n_informative=informative,
                               n_redundant=informative, n_classes=classes, n_clusters_per_class=clusters,
                               class_sep=separation, random_state=seed)
    frame = pd.DataFrame(x.round(4), columns=[f"{prefix}{i}" for i in range(x.shape[1])])
    frame[label] = [f"{label_prefix}{v}" for v in y]
    return frame


def blobs_table(rows: int = 1500, seed: int = 7):
    """24 numeric columns (8 informative, 8 their mixtures, 8 noise), 5 classes of two clusters each."""
    return classification_frame(rows, 24, 8, 5, 2, 1.5, seed, "f", "group", "g")


def mix_table(rows: int = 2000, seed: int = 11):
    """Another seed and shape than :func:`blobs_table`: 40 numeric columns (12
    informative, 12 their mixtures, 16 noise), 4 classes of one cluster each."""
    return classification_frame(rows, 40, 12, 4, 1, 1.0, seed, "v", "kind", "k")


#: name -> (what it is, how its frame is made, the column that holds the classes)
TUNED_TABLES: dict[str, tuple[str, Callable, str]] = {
    "iris": ("150 flowers, 4 measurements, 3 species (built-in set)", lambda: _builtin_frame("iris"), "species"),
    "ecommerce": ("5,000 simulated shop sessions, 8 columns, purchase yes/no (built-in set)",
                  lambda: _builtin_frame("ecommerce"), "purchase"),
    "digits": ("scikit-learn's 8x8 digits as a table: 1,797 rows, 64 pixel columns, 10 digits",
               lambda: _sklearn_frame("load_digits", "digit"), "digit"),
    "glyphs_7x7": (f"the first {GLYPH_ROWS:,} built-in glyphs (font-drawn digits) at {GLYPH_SIDE}x{GLYPH_SIDE} "
                   f"pixels on a 0-16 scale: {GLYPH_SIDE ** 2} pixel columns, 10 digits", glyph_pixels, "digit"),
    "blobs": ("scikit-learn's make_classification (seed 7): 1,500 rows, 24 numbers, 5 classes", blobs_table, "group"),
}
UNSEEN_TABLES: dict[str, tuple[str, Callable, str]] = {
    "wine": ("scikit-learn's wines: 178 rows, 13 measurements, 3 cultivars",
             lambda: _sklearn_frame("load_wine", "cultivar"), "cultivar"),
    "breast_cancer": ("scikit-learn's breast tumours: 569 rows, 30 measurements, benign/malignant",
                      lambda: _sklearn_frame("load_breast_cancer", "diagnosis"), "diagnosis"),
    "mix40": ("scikit-learn's make_classification (seed 11): 2,000 rows, 40 numbers, 4 classes", mix_table, "kind"),
}


def tables(names: list[str] | None = None) -> dict[str, BenchTable]:
    """``{name: BenchTable}`` for the tuned and unseen tables, each imported as
    an uploaded CSV with its label guessed."""
    out = {}
    for group, table in (("tuned", TUNED_TABLES), ("unseen", UNSEEN_TABLES)):
        for name, (description, make, classes) in table.items():
            if not names or name in names:
                data, guess = _as_upload(make(), name, description)
                out[name] = BenchTable(group, data, classes, guess.column, guess.reason)
    return out
