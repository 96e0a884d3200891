"""What one run may cost on this machine, checked before anything is queued.

Every limit is a setting read from the environment (the README's Settings
table lists them with their defaults); :meth:`Limits.from_env` reads them all.

A model's cost (parameters, memory for a step and a checkpoint) is estimated
in :mod:`aigc_core.room.model_cost`, without allocating the model.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from dataclasses import dataclass
from typing import Mapping

import torch

from ..errors import UserError

MiB = 2**20
GiB = 2**30


@dataclass(frozen=True)
class Limits:
    """The ceilings for one run; ``0`` turns a ceiling off."""

    #: ``AIGC_MAX_PARAMS``: parameters a model may have (training and sampling)
    max_params: int = 100_000_000
    #: ``AIGC_MAX_STEP_MEMORY_MB``: memory one training step may need; 0 = ``memory_fraction`` of the device
    max_step_memory_mb: float = 0.0
    #: ``AIGC_MEMORY_FRACTION``: share of the device's memory a run may plan for; 0 = 0.8 of a GPU, 0.5 of RAM
    memory_fraction: float = 0.0
    #: ``AIGC_MAX_CHECKPOINT_MB``: size of one checkpoint (the last three are kept per run, and the best by held-out loss)
    max_checkpoint_mb: float = 2048.0
    #: ``AIGC_MAX_RUN_SECONDS``: training time of one run; a run without a time budget gets this one
    max_run_seconds: float = 0.0
    #: ``AIGC_MAX_FRAMES``: film-strip frames kept per run (older ones are thinned)
    max_frames: int = 200
    #: ``AIGC_MAX_METRIC_POINTS``: logged points kept per run and metric (older ones are thinned)
    max_metric_points: int = 5000
    #: ``AIGC_MAX_ACTIVE_RUNS``: runs one participant may have queued or training at once (workshop mode)
    max_active_runs: int = 2
    #: ``AIGC_MAX_USER_BYTES``: bytes of uploaded data sets one participant may keep on disk (workshop mode)
    max_user_bytes: int = 500_000_000
    #: ``AIGC_MAX_USER_DATASETS``: data sets one participant may keep (workshop mode)
    max_user_datasets: int = 10
    #: ``AIGC_PAUSE_RELEASE_SECONDS``: a paused run gives its training slot back after this long
    pause_release_seconds: float = 180.0
    #: ``AIGC_TRAIN_THREADS``: CPU threads of one training process; 0 = the machine's cores less one
    train_threads: int = 0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Limits":
        """The limits set in the environment, defaults for the rest.

        ``AIGC_MAX_RUN_SECONDS`` defaults to 600 (ten minutes) in workshop
        mode on a machine without a GPU, where one long run would hold the
        room's only training slot; a laptop's single user (no workshop code)
        and a GPU server get no ceiling unless it is set."""
        env = os.environ if environ is None else environ
        values = {}
        for f in dataclasses.fields(cls):
            var = f"AIGC_{f.name.upper()}"
            raw = (env.get(var) or "").strip()
            if not raw:
                continue
            try:
                value = float(raw)
                value = int(value) if f.type == "int" else value
            except (ValueError, OverflowError):
                raise UserError(f"the setting {var}={raw!r} is not a number") from None
            if value < 0 or not math.isfinite(value):
                raise UserError(f"the setting {var}={raw!r} must be 0 (off) or a positive number")
            values[f.name] = value
        if "max_run_seconds" not in values:
            values["max_run_seconds"] = _default_run_ceiling(bool((env.get("AIGC_WORKSHOP_CODE") or "").strip()))
        return cls(**values)


@functools.lru_cache(maxsize=2)
def _default_run_ceiling(workshop: bool) -> float:
    # asked once per process: the frame and metric writers read the limits at every save
    if not workshop:
        return 0.0
    from ..train.device import pick_device

    return 600.0 if pick_device("auto").type == "cpu" else 0.0


def train_threads(limits: Limits | None = None) -> int:
    """CPU threads a training process uses: ``AIGC_TRAIN_THREADS``, else every
    core but one, which stays with the server (measured on 2 cores: a worker
    on both cores made page loads take up to 19 s)."""
    limits = limits or Limits.from_env()
    if limits.train_threads:
        return int(limits.train_threads)
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, cores - 1)


# ---- sizes in words --------------------------------------------------------------

def count_words(n: float) -> str:
    """1_208_530_000 -> '1.2 G'; 350_000 -> '350 k'."""
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{int(n)}"


def bytes_words(n: float) -> str:
    """18 * 2**30 -> '18 GiB'."""
    for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", 1024)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{int(max(n, 0))} bytes"


# ---- the machine -----------------------------------------------------------------

def device_memory(device: torch.device) -> tuple[int, str]:
    """(bytes, what they are) of the memory a run on ``device`` trains in:
    the GPU's total memory, or the machine's physical RAM (also for Apple MPS,
    whose memory is shared with the CPU)."""
    if device.type == "cuda":
        _, total = torch.cuda.mem_get_info(device)
        return int(total), f"GPU memory ({torch.cuda.get_device_name(device)})"
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not every platform names these
        ram = 0
    return int(ram), "RAM"


def memory_budget(limits: Limits, device: torch.device) -> tuple[int, str]:
    """(bytes, how they were chosen) one training step may need on ``device``; 0 = unknown."""
    if limits.max_step_memory_mb:
        return int(limits.max_step_memory_mb * MiB), "AIGC_MAX_STEP_MEMORY_MB"
    total, what = device_memory(device)
    fraction = limits.memory_fraction or (0.8 if device.type == "cuda" else 0.5)
    return int(total * fraction), f"{fraction:.0%} of this machine's {bytes_words(total)} of {what}"


def apply_time_ceiling(train: dict, limits: Limits | None = None) -> dict:
    """The training settings with the run-time ceiling applied: a run without a
    time budget gets the ceiling as its budget; asking for more is refused."""
    limits = limits or Limits.from_env()
    ceiling = limits.max_run_seconds
    if not ceiling:
        return train
    asked = float(train.get("max_seconds") or 0.0)
    if asked > ceiling:
        raise UserError(f"a run may train for at most {ceiling:g} seconds here (AIGC_MAX_RUN_SECONDS); "
                        f"this one asks for {asked:g}; lower the time budget")
    return {**train, "max_seconds": asked or float(ceiling)}


def check_active_runs(actor, active: int, limits: Limits | None = None) -> None:
    """Refuse (UserError) a participant's new or resumed run when they already
    have ``active`` runs queued or training and that is the limit. The teacher
    and the single local user have no such limit."""
    limits = limits or Limits.from_env()
    if actor.role != "participant" or not limits.max_active_runs or active < limits.max_active_runs:
        return
    raise UserError(f"you already have {active} run(s) queued or training; the limit here is "
                    f"{limits.max_active_runs} at once per person (AIGC_MAX_ACTIVE_RUNS); wait for one to finish "
                    "or stop one to make room")


def check_user_data(actor, count: int, used_bytes: int, adding_bytes: int = 0, *, new: bool = True,
                    limits: Limits | None = None) -> None:
    """Refuse (UserError) a participant's upload when they would have more data
    sets than ``AIGC_MAX_USER_DATASETS`` or more bytes on disk than
    ``AIGC_MAX_USER_BYTES``. ``count`` and ``used_bytes`` are what they keep
    now; ``new`` is False when the upload replaces one of theirs."""
    limits = limits or Limits.from_env()
    if actor.role != "participant":
        return
    free = "delete one of your data sets on the Data page (`python -m aigc_core datasets --user NAME` lists them)"
    if new and limits.max_user_datasets and count >= limits.max_user_datasets:
        raise UserError(f"you already keep {count} data set(s); the limit here is {limits.max_user_datasets} per "
                        f"person (AIGC_MAX_USER_DATASETS); {free} to make room")
    if limits.max_user_bytes and used_bytes + adding_bytes > limits.max_user_bytes:
        adding = f"this one needs {bytes_words(adding_bytes)} on disk and " if adding_bytes else ""
        raise UserError(f"{adding}your data sets already use {bytes_words(used_bytes)}; the limit here is "
                        f"{bytes_words(limits.max_user_bytes)} per person (AIGC_MAX_USER_BYTES); {free} to free room")


def check_weights(path, limits: Limits | None = None, device: torch.device | str = "cpu") -> int:
    """Refuse (UserError) to load a checkpoint's networks when they are over
    the parameter ceiling or bigger than the memory budget of ``device``;
    reads only the file's header. Returns the number of weight values."""
    from ..runs.checkpoint import weight_shapes

    limits = limits or Limits.from_env()
    shapes = weight_shapes(path)
    count = sum(int(torch.Size(s).numel()) for s in shapes.values())
    nbytes = 4 * count  # stored in fp32
    if limits.max_params and count > limits.max_params:
        raise UserError(f"this model has {count_words(count)} weights ({bytes_words(nbytes)}); this server loads "
                        f"models up to {count_words(limits.max_params)} parameters (AIGC_MAX_PARAMS), so it is not "
                        "opened here")
    budget, how = memory_budget(limits, torch.device(device))
    if budget and nbytes > budget:
        raise UserError(f"this model's weights need {bytes_words(nbytes)}; the limit here is {bytes_words(budget)}, "
                        f"{how}, so it is not opened here")
    return count


# ---- thinning: a bounded film strip and metric history ---------------------------

def thinned(steps: list[int], keep: int) -> list[int]:
    """Positions in ``steps`` (sorted, oldest first) to drop so that at most
    ``keep`` items remain: the first item and the newest quarter of ``keep``
    always stay; of the rest, only steps that are a multiple of a stride stay,
    the stride doubling (2, 4, 8, ...) until at most three quarters of ``keep``
    are left (so thinning is not needed again at the very next item).

    Because the rule depends on the step, not on an item's position, repeated
    thinning keeps the older items evenly spread over the whole run (a film
    strip still runs from step 0 to now), and a run's newest (final) values
    are never dropped."""
    n = len(steps)
    if not keep or n <= keep:
        return []
    recent = max(1, keep // 4)
    middle = range(1, n - recent)
    stride = 2
    while True:
        drop = [i for i in middle if steps[i] % stride]
        if n - len(drop) <= max(recent + 1, keep * 3 // 4) or stride > steps[-1]:
            break
        stride *= 2
    if n - len(drop) > keep:  # a bound too small for any stride: keep only the first and the newest
        drop = list(middle)
    return drop
