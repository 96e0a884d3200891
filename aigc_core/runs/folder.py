"""The run folder: the one place that knows the file names inside ``runs/<run_id>/``.

::

    runs/<run_id>/
        config.json                     the run config (all a worker needs)
        run.json                        the run's record (name, owner, status, final metrics),
                                        so ``repair`` can rebuild runs.db from the folders
        metrics.jsonl                   every logged metric row, one JSON object a line
        ratings.jsonl                   every Gallery rating (a copy of the database's)
        checkpoints/step_00000100.safetensors
        samples/step_00000100.png       film-strip frames (.txt for text models)
        liked/<item>.png                images someone liked in the Gallery
        worker.log, error.log           what the worker printed; the traceback of a crash

Everything else (the store, the loop, export/import, repair) asks this object
for a path instead of spelling a name.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterator

from ..paths import write_atomic

STEP_RE = re.compile(r"^step_(\d+)$")
FRAME_SUFFIXES = (".png", ".txt")
#: the metrics file is thinned (see RunFolder.append_metrics) when it grows past this
MAX_METRICS_BYTES = 8 * 2**20


def step_stem(step: int) -> str:
    """``step_00000100``: zero-padded so names sort in step order."""
    return f"step_{int(step):08d}"


def step_of(path: Path) -> int | None:
    """The step a ``step_<n>.<suffix>`` file belongs to, or None for any other name."""
    m = STEP_RE.match(Path(path).stem)
    return int(m.group(1)) if m else None


class RunFolder:
    """A run's folder. ``folder / "name"`` still gives a plain Path, and the
    object is path-like, so code that treats it as a Path keeps working."""

    CONFIG = "config.json"
    RECORD = "run.json"
    METRICS = "metrics.jsonl"
    RATINGS = "ratings.jsonl"
    CHECKPOINTS = "checkpoints"
    SAMPLES = "samples"
    LIKED = "liked"
    WORKER_LOG = "worker.log"
    ERROR_LOG = "error.log"
    CHECKPOINT_SUFFIX = ".safetensors"

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._stride: int | None = None  # of the metrics file, read on first append

    # ---- path-like ---------------------------------------------------------------
    def __truediv__(self, other) -> Path:
        return self.path / other

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, RunFolder) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)

    @property
    def name(self) -> str:
        return self.path.name

    def exists(self) -> bool:
        return self.path.is_dir()

    # ---- creating -----------------------------------------------------------------
    def create(self) -> None:
        """Make the folder and its sub-folders; FileExistsError if the folder is
        already there, so a new run can never write into an existing one."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.mkdir(exist_ok=False)
        self.checkpoints.mkdir()
        self.samples.mkdir()

    # ---- files ---------------------------------------------------------------------
    @property
    def config(self) -> Path:
        return self.path / self.CONFIG

    @property
    def record(self) -> Path:
        return self.path / self.RECORD

    @property
    def metrics_file(self) -> Path:
        return self.path / self.METRICS

    @property
    def ratings_file(self) -> Path:
        return self.path / self.RATINGS

    @property
    def worker_log(self) -> Path:
        return self.path / self.WORKER_LOG

    @property
    def error_log(self) -> Path:
        return self.path / self.ERROR_LOG

    @property
    def checkpoints(self) -> Path:
        return self.path / self.CHECKPOINTS

    @property
    def samples(self) -> Path:
        return self.path / self.SAMPLES

    @property
    def liked(self) -> Path:
        return self.path / self.LIKED

    def liked_file(self, file_name: str) -> Path:
        return self.liked / file_name

    def checkpoint(self, step: int) -> Path:
        return self.checkpoints / f"{step_stem(step)}{self.CHECKPOINT_SUFFIX}"

    def frame(self, step: int, suffix: str) -> Path:
        """A film-strip frame: ``.png`` for pictures, ``.txt`` for text."""
        return self.samples / f"{step_stem(step)}{suffix}"

    def has_frame(self, step: int) -> bool:
        return any(self.frame(step, s).exists() for s in FRAME_SUFFIXES)

    def frames(self, suffixes: tuple[str, ...] = FRAME_SUFFIXES) -> list[tuple[int, Path]]:
        """Every film-strip frame as (step, path), in step order."""
        if not self.samples.is_dir():
            return []
        found = [(s, p) for p in self.samples.iterdir()
                 if p.suffix in suffixes and (s := step_of(p)) is not None]
        return sorted(found)

    def latest_frame(self) -> Path | None:
        frames = self.frames()
        return frames[-1][1] if frames else None

    # ---- the metrics file -------------------------------------------------------------
    def append_metrics(self, step: int, values: dict[str, float], wall: float, *, keep: bool = False) -> None:
        """One line per logging step, so ``repair`` can recover the chart.

        The file stays near ``MAX_METRICS_BYTES``: when it grows past that,
        only rows whose step is a multiple of a doubled stride stay, and from
        then on only such rows are appended (``keep`` forces one in: a run's
        last row). The stride is the file's first line, so a resumed run
        keeps it. A run of millions of steps costs megabytes: the whole curve
        at a coarser resolution."""
        stride = self._metrics_stride()
        if stride > 1 and step % stride and not keep:
            return
        with open(self.metrics_file, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"step": int(step), "wall": wall, "values": values}) + "\n")
            size = fh.tell()
        if size > MAX_METRICS_BYTES:
            rows = list(self.read_metrics())
            kept = rows
            while len(kept) > len(rows) // 2 + 1 and stride < 2**40:
                stride *= 2
                kept = [r for r in rows[:-1] if r[0] % stride == 0] + rows[-1:]
            self._stride = stride
            text = json.dumps({"stride": stride}) + "\n"
            text += "".join(json.dumps({"step": s, "wall": w, "values": v}) + "\n" for s, w, v in kept)
            write_atomic(self.metrics_file, text.encode("utf-8"))

    def _metrics_stride(self) -> int:
        if self._stride is None:
            self._stride = 1
            try:
                with open(self.metrics_file, encoding="utf-8") as fh:
                    self._stride = max(1, int(json.loads(fh.readline(200)).get("stride", 1)))
            except (OSError, ValueError, AttributeError, TypeError):
                pass
        return self._stride

    # ---- the ratings file ---------------------------------------------------------------
    def append_rating(self, item: str, rating: int | None, payload: dict | None, created: float,
                      user: str = "local") -> None:
        """A copy of each rating (None = taken back) for ``repair``; the last line per item and user wins."""
        if self.exists():
            with open(self.ratings_file, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"item": item, "rating": rating, "payload": payload, "created": created,
                                     "user": user}) + "\n")

    def read_ratings(self) -> dict[tuple[str, str], tuple[int, dict, float]]:
        """(item, user) -> (rating, payload, created) as the ratings file last left them
        (a line from before ratings had a user is the single local user's)."""
        out: dict[tuple[str, str], tuple[int, dict, float]] = {}
        if not self.ratings_file.exists():
            return out
        with open(self.ratings_file, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                try:
                    row = json.loads(line)
                    item = (str(row["item"]), str(row.get("user") or "local"))
                    if row["rating"] is None:
                        out.pop(item, None)
                    else:
                        out[item] = (int(row["rating"]), dict(row["payload"] or {}), float(row["created"]))
                except (ValueError, KeyError, TypeError, AttributeError):
                    continue
        return out

    def read_metrics(self) -> Iterator[tuple[int, float, dict[str, float]]]:
        """(step, wall, values) per line; a torn last line (a crash mid-write) is skipped."""
        if not self.metrics_file.exists():
            return
        with open(self.metrics_file, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                try:
                    row = json.loads(line)
                    yield int(row["step"]), float(row["wall"]), {str(k): float(v) for k, v in row["values"].items()}
                except (ValueError, KeyError, TypeError, AttributeError):
                    continue
