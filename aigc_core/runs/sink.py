"""Where a training worker's writes go: the run's row, metrics, film strip and checkpoints.

The training loop (:mod:`aigc_core.train.loop`) writes only through a sink,
so the same loop runs next to the run store or on a machine that has neither
the database nor the run folder:

- :class:`RunSink` (the local executor, a foreground ``train``) writes to the
  :class:`~aigc_core.runs.store.RunStore` and the run's folder on this machine;
- :class:`aigc_core.runs.ray_executor.RemoteSink` (a Ray worker on any node)
  forwards the same calls, with the bytes of frames and checkpoints, to the
  one actor on the head node that writes them there.

Every worker write names the worker's claim token; a sink raises
:class:`~aigc_core.runs.store.LostClaim` when the run was handed on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..paths import runs_dir, write_atomic
from .checkpoint import best_checkpoint, latest_checkpoint, load_latest_good, load_weights, save_best, save_checkpoint
from .folder import RunFolder
from .store import Run, RunStore


def frame_bytes(frame) -> tuple[str, bytes] | None:
    """A film-strip frame as (suffix, file bytes): text as UTF-8, a picture as PNG."""
    from ..imaging import png_bytes

    if frame is None:
        return None
    if isinstance(frame, str):
        return ".txt", frame.encode("utf-8")
    return ".png", png_bytes(frame)


def write_frame(folder: RunFolder, step: int, suffix: str, data: bytes) -> None:
    write_atomic(folder.frame(step, suffix), data)
    thin_film_strip(folder)


def save_frame(folder: RunFolder, step: int, frame) -> None:
    found = frame_bytes(frame)
    if found:
        write_frame(folder, step, *found)


def thin_film_strip(folder: RunFolder) -> None:
    """Keep the film strip within ``AIGC_MAX_FRAMES``: when over, older frames
    are thinned evenly, never the first (step 0) or the newest ones, so the
    strip still spans the whole run (see :func:`aigc_core.room.limits.thinned`)."""
    from ..room.limits import Limits, thinned

    named = folder.frames()
    for i in thinned([step for step, _ in named], Limits.from_env().max_frames):
        named[i][1].unlink(missing_ok=True)


class RunSink:
    """The run store and the run's folder on this machine."""

    def __init__(self, store: RunStore, run_id: str):
        self.store, self.run_id = store, run_id
        self.folder = RunFolder(runs_dir() / run_id)

    def run(self) -> Run:
        return self.store.get(self.run_id)

    def write(self, claim: str | None, **fields: Any) -> None:
        self.store.update_claimed(self.run_id, claim, **fields)

    def set_status(self, claim: str | None, status: str, message: str | None = None) -> None:
        self.store.set_status(self.run_id, status, message, claim=claim)

    def take_control(self, claim: str | None) -> str | None:
        return self.store.take_control(self.run_id, claim)

    def release_paused(self, claim: str | None, message: str) -> bool:
        return self.store.release_paused(self.run_id, claim, message)

    def log_metrics(self, step: int, values: dict[str, float], wall: float, *, claim: str | None,
                    row: dict | None = None, keep: bool = False) -> None:
        """Into the database (the live chart) and the folder's metrics file (what ``repair`` rebuilds it from)."""
        self.store.log_metrics(self.run_id, step, values, wall, claim=claim, row=row)
        self.folder.append_metrics(step, values, wall, keep=keep)

    def last_metrics(self) -> dict[str, float]:
        return self.store.last_metrics(self.run_id)

    def save_frame(self, step: int, frame) -> None:
        save_frame(self.folder, step, frame)

    def has_frame(self, step: int) -> bool:
        return self.folder.has_frame(step)

    def save_checkpoint(self, step: int, state: dict, meta: dict[str, str]) -> None:
        save_checkpoint(self.folder.checkpoints, step, state, meta)

    def best(self) -> dict | None:
        """The run's best checkpoint so far (see :func:`best_checkpoint`), or None."""
        return best_checkpoint(self.folder.checkpoints)

    def save_best(self, step: int, state: dict, key: str, value: float, held_out: dict[str, float],
                  meta: dict[str, str]) -> None:
        save_best(self.folder.checkpoints, step, state, key, value, held_out, meta)

    def best_weights(self, device) -> dict:
        """The best checkpoint's networks (for the final numbers, which describe the weights sampled)."""
        return load_weights(self.best()["path"], device=device)[0]

    def latest_good(self, device, say=None) -> tuple[int, Path, dict] | None:
        """(step, path, state) of the newest readable checkpoint (see :func:`load_latest_good`)."""
        return load_latest_good(self.folder.checkpoints, device=device, say=say)

    def has_checkpoint(self) -> bool:
        return latest_checkpoint(self.folder.checkpoints) is not None

    @property
    def crash_log(self) -> str:
        """Where a crash's traceback is kept (named in the run's message)."""
        return str(self.folder.error_log)

    def save_crash(self, details: str) -> None:
        self.folder.error_log.write_text(details)
