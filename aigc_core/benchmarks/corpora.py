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
from typing import Callable

from ..data.base import TextData

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


def stdlib_source(limit: int) -> str:
    """Python's standard library source, the top-level modules in name order."""
    folder = Path(sysconfig.get_paths()["stdlib"])
    return _join(sorted(folder.glob("*.py")), _read_text, limit)


#: name -> (what it is, how it is made); the sizes span small to large
TUNED: dict[str, tuple[str, Callable[[], str]]] = {
    "pydoc": ("Python's documentation topics (built-in set)", lambda: pydoc_part(10**9)),
    "licences": ("Debian's common licence texts", licences),
    "pydoc_60k": ("the first 60 kB of pydoc", lambda: pydoc_part(60 * KB)),
}
UNSEEN: dict[str, tuple[str, Callable[[], str]]] = {
    "copyrights_1m": ("1 MB of Debian packages' copyright files", lambda: copyrights(1000 * KB)),
    "stdlib_150k": ("150 kB of Python standard-library source", lambda: stdlib_source(150 * KB)),
    "changelogs_40k": ("40 kB of Debian package changelogs", lambda: changelogs(40 * KB)),
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

def _sklearn_table(loader: str, label: str):
    """One of scikit-learn's bundled data sets as an uploaded CSV would arrive
    (column types inferred by the importer), the class in column ``label``."""
    import pandas as pd
    from sklearn import datasets

    from ..data.table import csv_bytes, import_csv

    bunch = getattr(datasets, loader)()
    names = [str(n).replace(" ", "_") for n in getattr(bunch, "feature_names", [])] or \
        [f"x{i}" for i in range(bunch.data.shape[1])]
    frame = pd.DataFrame(bunch.data, columns=names)
    target_names = getattr(bunch, "target_names", None)
    frame[label] = [str(target_names[t]) if target_names is not None else str(t) for t in bunch.target]
    name = loader.removeprefix("load_")
    return import_csv(csv_bytes(frame), name, label_column=label).data


def builtin_table(name: str):
    from ..data.catalog import load_dataset

    return load_dataset(name)


#: name -> (what it is, how it is made)
TUNED_TABLES: dict[str, tuple[str, Callable]] = {
    "iris": ("150 flowers, 4 measurements, 3 species (built-in set)", lambda: builtin_table("iris")),
    "ecommerce": ("5,000 simulated shop sessions, 8 columns, purchase yes/no (built-in set)",
                  lambda: builtin_table("ecommerce")),
}
UNSEEN_TABLES: dict[str, tuple[str, Callable]] = {
    "wine": ("scikit-learn's wines: 178 rows, 13 measurements, 3 cultivars", lambda: _sklearn_table("load_wine", "cultivar")),
    "breast_cancer": ("scikit-learn's breast tumours: 569 rows, 30 measurements, benign/malignant",
                      lambda: _sklearn_table("load_breast_cancer", "diagnosis")),
    "digits": ("scikit-learn's 8x8 digits as a table: 1,797 rows, 64 pixel columns, 10 digits",
               lambda: _sklearn_table("load_digits", "digit")),
}


def tables(names: list[str] | None = None) -> dict[str, tuple[str, object]]:
    """``{name: (group, TableData)}`` for the tuned and unseen tables."""
    out = {}
    for group, table in (("tuned", TUNED_TABLES), ("unseen", UNSEEN_TABLES)):
        for name, (_description, make) in table.items():
            if not names or name in names:
                out[name] = (group, make())
    return out
