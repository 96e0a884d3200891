"""Executors: what trains a run once the queue has given it a slot.

The run store decides what runs next (the fair queue, :mod:`aigc_core.runs.queue`);
an executor starts the claimed run, passes control requests on, and says
whether its worker is alive. Pages and the command line never know which one
is in use:

- ``local`` (the default): a worker process on this machine
  (``python -m aigc_core worker RUN_ID --claim TOKEN``), no extra software;
- ``ray``: a Ray task on a cluster node with room
  (:mod:`aigc_core.runs.ray_executor`); the workers report back through one
  actor on this machine, so no shared disk or network database is needed.

Chosen with ``AIGC_EXECUTOR=local|ray``; for Ray, ``AIGC_RAY_ADDRESS`` is
``auto`` (the cluster this machine belongs to, after ``ray start --head``),
a cluster address (``ray://host:10001``, ``host:6379``), or unset: a local
Ray inside this process, which ends with it.
"""

from __future__ import annotations

import os
from typing import Protocol

from ..errors import UserError
from ..room.identity import LOCAL, Actor
from .store import Run, RunStore, _pid_alive

EXECUTORS = ("local", "ray")
RAY_MISSING = ("AIGC_EXECUTOR=ray needs Ray, which is not installed here: run "
               "`pip install -r requirements-cluster.txt` (ray==2.60.0), or unset AIGC_EXECUTOR to train with "
               "worker processes on this machine")


class Executor(Protocol):
    name: str

    def submit(self, store: RunStore, run_id: str) -> None:
        """Start training a run the queue has just claimed (its row holds the claim token)."""

    def control(self, store: RunStore, run_id: str, action: str, actor: Actor = LOCAL) -> Run:
        """Pass pause, resume or stop on to the run's worker."""

    def alive(self, run: Run) -> bool:
        """Whether the run's worker is still there (starting, training or paused)."""

    def slots(self) -> int:
        """How many runs can train at once."""


class LocalExecutor:
    """Worker processes on this machine, one per training slot."""

    name = "local"

    def submit(self, store: RunStore, run_id: str) -> None:
        from .queue import spawn_worker

        proc = spawn_worker(run_id)
        store.update(run_id, pid=proc.pid, executor=self.name)

    def control(self, store: RunStore, run_id: str, action: str, actor: Actor = LOCAL) -> Run:
        # the worker reads the control field between steps
        return store.request(run_id, action, actor=actor)

    def alive(self, run: Run) -> bool:
        return _pid_alive(run.pid)

    def slots(self) -> int:
        from .queue import local_slots

        return local_slots()


def executor_name() -> str:
    """``AIGC_EXECUTOR`` (default ``local``); a UserError for anything else."""
    name = os.environ.get("AIGC_EXECUTOR", "").strip().lower() or "local"
    if name not in EXECUTORS:
        raise UserError(f"AIGC_EXECUTOR={name!r} is not an executor; use one of: {', '.join(EXECUTORS)}")
    return name


def get_executor(name: str | None = None) -> Executor:
    """The executor ``AIGC_EXECUTOR`` names (or ``name``); for Ray, a clear
    UserError when Ray is not installed."""
    name = name or executor_name()
    if name == "local":
        return LocalExecutor()
    try:
        import ray  # noqa: F401
    except ImportError:
        raise UserError(RAY_MISSING) from None
    from .ray_executor import RayExecutor

    return RayExecutor()


def executor_of(run: Run) -> Executor:
    """The executor that trains ``run`` (a run started before a switch keeps its own)."""
    return get_executor(run.executor if run.executor in EXECUTORS else "local")
