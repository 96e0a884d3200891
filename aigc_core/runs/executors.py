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
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Protocol

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
        proc = spawn_worker(run_id)
        store.update(run_id, pid=proc.pid, executor=self.name)

    def control(self, store: RunStore, run_id: str, action: str, actor: Actor = LOCAL) -> Run:
        # the worker reads the control field between steps
        return store.request(run_id, action, actor=actor)

    def alive(self, run: Run) -> bool:
        return _pid_alive(run.pid)

    def slots(self) -> int:
        return local_slots()


def executor_name() -> str:
    """``AIGC_EXECUTOR`` (default ``local``); a UserError for anything else."""
    name = os.environ.get("AIGC_EXECUTOR", "").strip().lower() or "local"
    if name not in EXECUTORS:
        raise UserError(f"AIGC_EXECUTOR={name!r} is not an executor; use one of: {', '.join(EXECUTORS)}")
    return name


def get_executor(name: str | None = None, *, on_slot_free: Callable[[RunStore], Any] | None = None) -> Executor:
    """The executor ``AIGC_EXECUTOR`` names (or ``name``); for Ray, a clear
    UserError when Ray is not installed. ``on_slot_free(store)``: what a
    remote executor calls when a run ends (the queue passes its dispatch)."""
    name = name or executor_name()
    if name == "local":
        return LocalExecutor()
    try:
        import ray  # noqa: F401
    except ImportError:
        raise UserError(RAY_MISSING) from None
    from .ray_executor import RayExecutor

    return RayExecutor(on_slot_free)


def executor_of(run: Run) -> Executor:
    """The executor that trains ``run`` (a run started before a switch keeps its own)."""
    return get_executor(run.executor if run.executor in EXECUTORS else "local")


# ---- the local worker processes, and how many slots there are ----------------------------------

_children: list[subprocess.Popen] = []


def max_jobs() -> int:
    """Training slots: ``AIGC_MAX_JOBS``, else what the executor has room for
    (this machine's GPUs, or one; on Ray, the cluster's)."""
    env = os.environ.get("AIGC_MAX_JOBS", "").strip()
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            pass
    try:
        return get_executor().slots() if executor_name() != "local" else local_slots()
    except UserError:
        return local_slots()  # Ray missing: submitting a run says how to get it; counting slots goes on


def local_slots() -> int:
    """One training slot per CUDA GPU here, one on a machine without a GPU."""
    try:
        import torch

        return max(1, torch.cuda.device_count())
    except Exception:  # noqa: BLE001 - no torch/CUDA means one CPU slot
        return 1


#: at or below this many cores, the machine counts as shared even with one training slot (the app, the
#: browsers' requests and the evaluation all want a core too)
SMALL_MACHINE_CORES = 4


def shared_machine() -> bool:
    """Whether training workers share the CPU: more than one slot, or a small machine."""
    return max_jobs() > 1 or (os.cpu_count() or 1) <= SMALL_MACHINE_CORES


def _reap() -> None:
    """Collect finished worker processes we started so none lingers as a zombie."""
    for child in list(_children):
        if child.poll() is not None:
            _children.remove(child)


def spawn_worker(run_id: str) -> subprocess.Popen:
    """Start ``python -m aigc_core worker RUN_ID`` in its own session, so closing
    the browser tab, a Streamlit rerun or the app's restart does not touch it."""
    store = RunStore()
    run = store.get(run_id)
    log_path = run.folder.worker_log
    package_root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = package_root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("PYTHONUNBUFFERED", "1")
    if shared_machine():
        # OpenMP threads that spin while they wait for work hold cores another worker (or the app) needs: a DCGAN
        # with a competing process made 2.4 s steps spinning (ACTIVE); waiting passively gives the cores back.
        # Set before torch loads in the worker; a value the user set wins.
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "aigc_core", "worker", run_id, "--claim", run.claim or ""],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=package_root, env=env, start_new_session=True,
        )
    _children.append(proc)
    return proc
