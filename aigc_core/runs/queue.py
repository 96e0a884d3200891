"""The job queue: runs wait as ``queued`` until a slot is free.

The number of slots is ``$AIGC_MAX_JOBS`` when set, else one per CUDA GPU (one
on a machine without a GPU), so a workshop of thirty people cannot
oversubscribe one machine. :func:`dispatch` is called whenever a run is
submitted, whenever a run ends, and whenever a page or the command line lists
runs; it claims slots inside one IMMEDIATE transaction and hands each claimed run to
the executor (:mod:`aigc_core.runs.executors`): a worker process
(``python -m aigc_core worker RUN_ID --claim TOKEN``) by default, a Ray task
with ``AIGC_EXECUTOR=ray``. The studio decides the order; Ray only the place. Each claim writes a fresh random token into the run's row; the worker's
writes name it, so a worker whose run was handed on can no longer write.

Slots go round-robin between people (:func:`aigc_core.room.policy.fair_order`):
with one slot, alice's two runs and then bob's one, bob's run starts before
alice's second. A run waiting for its ``train`` command in the foreground
takes its place in the same order; the command claims it itself.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from ..room.policy import Waiting, expected_wait, fair_order
# the local worker processes and the slot count live with the executors; named here too, where callers look
from .executors import _reap, local_slots, max_jobs, shared_machine, spawn_worker  # noqa: F401
from .store import HOLDS_SLOT, RunStore

def _seconds_per_step(conn) -> dict[str, float]:
    """model -> training seconds per step, from this workspace's finished runs (the median)."""
    speeds: dict[str, list[float]] = {}
    for model, seconds, step in conn.execute(
            "SELECT model, train_seconds, step FROM runs WHERE status = 'completed' AND step > 0 AND train_seconds > 0"):
        speeds.setdefault(model, []).append(seconds / step)
    return {m: sorted(v)[len(v) // 2] for m, v in speeds.items()}


def _expected_seconds(max_seconds: float, steps: int, done_seconds: float, done_steps: int,
                      per_step: float | None) -> float | None:
    """Training seconds a run still needs: its time budget, or its steps at the
    speed its model had here before, whichever ends first (None = unknown)."""
    left = []
    if max_seconds:
        left.append(max(0.0, max_seconds - done_seconds))
    if steps and per_step is not None:
        left.append(max(0, steps - done_steps) * per_step)
    return min(left) if left else None


def _queue_state(conn) -> tuple[list[Waiting], dict[str, int], list[float | None], dict[str, str]]:
    """(queued runs as the fair order sees them, slot-holding runs per person,
    seconds left of each slot-holding run, run id -> who trains it)."""
    speeds = _seconds_per_step(conn)
    queued, owners = [], {}
    for rid, user, created, model, max_s, steps, done_s, done_steps, owner in conn.execute(
            "SELECT id, user, created, model, max_seconds, total_steps, train_seconds, step, owner FROM runs"
            " WHERE status = 'queued'"):
        seconds = _expected_seconds(max_s, steps, done_s, done_steps, speeds.get(model))
        queued.append(Waiting(rid, user or "", created, -1.0 if seconds is None else seconds))
        owners[rid] = owner
    active: dict[str, int] = {}
    busy: list[float | None] = []
    for user, status, model, max_s, steps, done_s, done_steps in conn.execute(
            f"SELECT user, status, model, max_seconds, total_steps, train_seconds, step FROM runs WHERE {HOLDS_SLOT}"):
        active[user or ""] = active.get(user or "", 0) + 1
        busy.append(_expected_seconds(max_s, steps, done_s, done_steps, speeds.get(model)))
    served = {user or "": when for user, when in conn.execute(
        "SELECT user, MAX(started) FROM runs WHERE started IS NOT NULL GROUP BY user")}
    return fair_order(queued, active, served), active, busy, owners


@dataclass(frozen=True)
class QueuePlace:
    """Where a queued run stands: ``ahead`` runs start before it; it should
    start in about ``wait_seconds`` (None when a run ahead has no known length)."""

    ahead: int
    wait_seconds: float | None
    slots: int


def queue_place(store: RunStore, run_id: str) -> QueuePlace | None:
    """The run's place in the fair queue, or None when it is not waiting."""
    conn = store.connect()
    try:
        order, _, busy, _ = _queue_state(conn)
    finally:
        conn.close()
    ids = [w.run_id for w in order]
    if run_id not in ids:
        return None
    slots = max_jobs()
    index = ids.index(run_id)
    known = all(b is not None for b in busy) and all(w.seconds >= 0 for w in order[:index])
    wait = expected_wait(order, run_id, slots, [b or 0.0 for b in busy]) if known else None
    return QueuePlace(index, wait, slots)


def queue_position(store: RunStore, run_id: str) -> int:
    """How many queued runs start before this one (0 = next), in the fair order."""
    place = queue_place(store, run_id)
    return place.ahead if place else 0


def claim(store: RunStore, run_id: str | None = None) -> list[str]:
    """Claim free slots for queued runs in the fair order (or for one given
    run, when its turn has come); returns the ids claimed."""
    store.refresh()
    slots = max_jobs()  # outside the write lock: on Ray the first count joins the cluster (seconds)
    with store.transaction() as conn:
        active = conn.execute(f"SELECT COUNT(*) FROM runs WHERE {HOLDS_SLOT}").fetchone()[0]
        free = slots - active
        if free <= 0:
            return []
        order, _, _, owners = _queue_state(conn)
        # the next `free` runs in the fair order get the slots; a foreground run among them is its command's to take
        turn = [w.run_id for w in order[:free]]
        if run_id is not None:
            ids = [run_id] if run_id in turn else []
        else:
            ids = [rid for rid in turn if owners[rid] == "worker"]
        now = time.time()
        for rid in ids:
            conn.execute("UPDATE runs SET status = 'starting', heartbeat = ?, started = COALESCE(started, ?),"
                         " control = NULL, pid = NULL, claim = ? WHERE id = ?", (now, now, secrets.token_hex(16), rid))
    return ids


def dispatch(store: RunStore | None = None) -> list[str]:
    """Hand every queued run that fits in a free slot to the executor
    (``AIGC_EXECUTOR``; a worker process here by default)."""
    from .executors import get_executor

    store = store or RunStore()
    _reap()
    # before claiming: without Ray installed, nothing is claimed and the error says why
    executor = get_executor(on_slot_free=dispatch)
    started = claim(store)
    for run_id in started:
        executor.submit(store, run_id)
    return started
