"""The job queue: runs wait as ``queued`` until a slot is free.

The number of slots is ``$AIGC_MAX_JOBS`` when set, else one per CUDA GPU (one
on a machine without a GPU), so a workshop of thirty people cannot
oversubscribe one machine. :func:`dispatch` is called whenever a run is
submitted, whenever a run ends, and whenever a page or the command line lists
runs; it claims slots inside one IMMEDIATE transaction and starts a worker
process (``python -m aigc_core worker RUN_ID --claim TOKEN``) for each claimed
run. Each claim writes a fresh random token into the run's row; the worker's
writes name it, so a worker whose run was handed on can no longer write.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

from .store import ACTIVE, RunStore

_children: list[subprocess.Popen] = []


def max_jobs() -> int:
    env = os.environ.get("AIGC_MAX_JOBS", "").strip()
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            pass
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


def queue_position(store: RunStore, run_id: str) -> int:
    """How many queued runs are ahead of this one (0 = next)."""
    queued = [r.id for r in sorted(store.list(statuses=("queued",)), key=lambda r: r.created)]
    return queued.index(run_id) if run_id in queued else 0


def claim(store: RunStore, run_id: str | None = None) -> list[str]:
    """Claim free slots for queued runs (or for one given run); returns the ids claimed."""
    store.refresh()
    with store.transaction() as conn:
        active = conn.execute(
            f"SELECT COUNT(*) FROM runs WHERE status IN ({','.join('?' * len(ACTIVE))})", ACTIVE).fetchone()[0]
        free = max_jobs() - active
        if free <= 0:
            return []
        if run_id is not None:
            rows = conn.execute("SELECT id FROM runs WHERE id = ? AND status = 'queued'", (run_id,)).fetchall()
        else:
            rows = conn.execute(
                "SELECT id FROM runs WHERE status = 'queued' AND owner = 'worker' ORDER BY created LIMIT ?",
                (free,)).fetchall()
        ids = [r[0] for r in rows][:free]
        now = time.time()
        for rid in ids:
            conn.execute("UPDATE runs SET status = 'starting', heartbeat = ?, started = COALESCE(started, ?),"
                         " control = NULL, pid = NULL, claim = ? WHERE id = ?", (now, now, secrets.token_hex(16), rid))
    return ids


def dispatch(store: RunStore | None = None) -> list[str]:
    """Start a worker process for every queued run that fits in a free slot."""
    store = store or RunStore()
    _reap()
    started = claim(store)
    for run_id in started:
        proc = spawn_worker(run_id)
        store.update(run_id, pid=proc.pid)
    return started


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
