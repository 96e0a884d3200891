"""Where the studio keeps its files: everything lives under ``$AIGC_HOME``."""

from __future__ import annotations

import os
from pathlib import Path


def aigc_home() -> Path:
    """The workspace root: ``$AIGC_HOME`` or ``~/.aigc_studio`` when unset."""
    root = os.environ.get("AIGC_HOME") or str(Path.home() / ".aigc_studio")
    path = Path(root).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def datasets_dir() -> Path:
    path = aigc_home() / "datasets"
    path.mkdir(parents=True, exist_ok=True)
    return path


def runs_dir() -> Path:
    path = aigc_home() / "runs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir() -> Path:
    path = aigc_home() / "cache"
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        # a full disk or a kill mid-write must not leave a half-written temporary file behind
        tmp.unlink(missing_ok=True)
        raise
