"""The Ray executor: runs spread over a cluster, reporting back to one actor on the head.

::

    studio (head node)                          any node
    queue --claim--> RayExecutor.submit
                       |
               HeadStore actor  ----launch---->  train_on_ray task (num_gpus=1 or num_cpus=N)
               (the only writer of                 train_run(..., sink=RemoteSink)
                runs.db and runs/<id>/)  <-------   metrics, frames, checkpoint bytes, status,
                                         ------->   control (pause / resume / stop)

- The queue still decides the order (fair between people); Ray only decides
  the place: each run is a task asking for the resources its device needs.
- A worker needs no shared filesystem and no network database: it trains in a
  scratch folder of its own and sends every write (with the bytes of frames
  and checkpoints) to :class:`HeadStore`, a detached actor pinned to the
  studio's machine, which writes the run store there. It fetches what it
  reads the same way: the run, its last checkpoint, an uploaded data set, a
  fine-tune's parent weights.
- The actor, not the studio process, launches the tasks, so a stopped
  Streamlit server does not stop them (Ray ends a task with the process that
  owns it); a restarted studio finds the actor by name.
- A worker or node that dies mid-run: Ray runs the task once more
  (``max_retries=1``) on a node with room; the actor sees the second start,
  marks the run ``interrupted``, and the new worker resumes from the last
  checkpoint. When that one dies too, the actor marks the run ``interrupted``
  for good and Resume puts it back in the queue.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

import ray

from ..errors import UserError
from ..paths import aigc_home, datasets_dir, runs_dir, write_atomic
from ..room.identity import LOCAL, Actor
from .checkpoint import (BEST_NAME, best_bytes, best_checkpoint, list_checkpoints, load_latest_good, load_weights,
                         write_best, write_checkpoint)
from .folder import RunFolder
from .sink import frame_bytes, write_frame
from .store import LostClaim, Run, RunStore

NAMESPACE = "aigc_studio"
#: Ray starts a dead worker's task once more, on a node with room
RETRIES = 1
RETRIED_MESSAGE = ("interrupted: its worker or node stopped; Ray started it again on a node with room, "
                   "continuing from the last checkpoint")
CONTINUED_MESSAGE = "its first worker or node stopped mid-run; Ray's retry continued it from the last checkpoint"
GONE_MESSAGE = ("the training process on the cluster stopped unexpectedly (also after Ray's retry); press Resume "
                "to continue from the last checkpoint")
#: the studio's settings go to the actor and the workers (limits, the executor, the thread count), not its
#: workspace: the actor is told it, a worker has a scratch one
_NOT_SENT = ("AIGC_HOME",)
_SLOTS_CACHE: dict[str, tuple[float, int]] = {}
_connect_lock = threading.Lock()


def connect() -> None:
    """Join the cluster ``AIGC_RAY_ADDRESS`` names (``auto``, an address), or
    start a local Ray when it is unset; nothing when this process is already
    connected (a test's ``ray.init``)."""
    with _connect_lock:
        if ray.is_initialized():
            return
        address = os.environ.get("AIGC_RAY_ADDRESS", "").strip() or None
        # other nodes have no copy of this checkout: Ray uploads the package once (cached by its hash); the
        # head actor and the tasks it launches inherit it
        job_env = {"py_modules": [str(Path(__file__).resolve().parents[1])]} if address else None
        try:
            ray.init(address=address, namespace=NAMESPACE, include_dashboard=False, log_to_driver=False,
                     ignore_reinit_error=True, runtime_env=job_env)
        except ConnectionError as exc:
            raise UserError(f"could not reach the Ray cluster at AIGC_RAY_ADDRESS={address!r} ({exc}); start it "
                            "with `ray start --head` or fix the address (see docs/scaling.md)") from None


def _package_root() -> str:
    return str(Path(__file__).resolve().parents[2])


def _runtime_env(extra_env: dict[str, str] | None = None) -> dict:
    """The settings a worker needs: the studio's ``AIGC_*`` settings (limits,
    the thread count) and this checkout on its import path (on this machine;
    other nodes get the package from :func:`connect`)."""
    env = {k: v for k, v in os.environ.items()
           if (k.startswith("AIGC_") and k not in _NOT_SENT) or k in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    env.update(extra_env or {})
    pythonpath = _package_root() + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else "")
    return {"env_vars": {**env, "PYTHONPATH": pythonpath}}


def _head_name() -> str:
    """One head actor per workspace (two studios on one cluster keep their runs apart)."""
    return "aigc-head-store-" + hashlib.sha1(str(aigc_home()).encode()).hexdigest()[:12]


def head_store(create: bool = True):
    """The workspace's :class:`HeadStore` actor (made on this machine the first time); None when
    ``create`` is False and there is none."""
    connect()
    name = _head_name()
    try:
        return ray.get_actor(name, namespace=NAMESPACE)
    except ValueError:
        if not create:
            return None
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = ray.get_runtime_context().get_node_id()
    return HeadStore.options(
        name=name, namespace=NAMESPACE, lifetime="detached", get_if_exists=True, num_cpus=0, max_concurrency=64,
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=here, soft=False),
        runtime_env=_runtime_env(),
    ).remote(str(aigc_home()))


def resources_for(config: dict) -> dict[str, float]:
    """What one run asks Ray for: a GPU for a CUDA run (``device`` cuda, or auto
    on a cluster with GPUs), else ``AIGC_RAY_CPUS_PER_RUN`` cores (default 1)."""
    device = str(config.get("train", {}).get("device", "auto"))
    if device == "cuda" or (device == "auto" and ray.cluster_resources().get("GPU", 0) >= 1):
        return {"num_gpus": 1, "num_cpus": 1}
    try:
        cpus = max(1, int(os.environ.get("AIGC_RAY_CPUS_PER_RUN", "1")))
    except ValueError:
        raise UserError("AIGC_RAY_CPUS_PER_RUN must be a whole number of cores per run") from None
    return {"num_cpus": cpus}


class RayExecutor:
    """Runs as Ray tasks on a cluster (see the module docstring)."""

    name = "ray"

    def __init__(self, on_slot_free: Callable[[RunStore], Any] | None = None):
        # what the head calls when a run's task ends, so the freed place goes to the next run even with no
        # studio looking (the queue's dispatch, handed in: the queue decides the order, this module the place)
        self.on_slot_free = on_slot_free

    def submit(self, store: RunStore, run_id: str) -> None:
        run = store.get(run_id)
        store.update(run_id, executor=self.name)
        resources = resources_for(run.config)
        threads = os.environ.get("AIGC_TRAIN_THREADS") or str(int(resources.get("num_cpus", 1)))
        ray.get(head_store().launch.remote(run_id, run.claim, resources, _runtime_env({"AIGC_TRAIN_THREADS": threads}),
                                           self.on_slot_free))

    def control(self, store: RunStore, run_id: str, action: str, actor: Actor = LOCAL) -> Run:
        run = store.get_to_change(run_id, actor)
        if action == "stop" and run.status == "starting" and run.executor == self.name:
            # still waiting for a node with room: take the task back instead of waiting for it to start
            if ray.get(head_store().cancel_waiting.remote(run_id)):
                return store.get(run_id)
        # the worker polls the control field through the head actor between steps
        return store.request(run_id, action, actor=actor)

    def alive(self, run: Run) -> bool:
        head = head_store(create=False)
        return bool(head and ray.get(head.alive.remote(run.id)))

    def slots(self) -> int:
        """Runs the cluster can train at once: its GPUs, else its cores over the cores a run asks for
        (asked again at most every 30 s: nodes come and go)."""
        cached = _SLOTS_CACHE.get("slots")
        if cached and time.monotonic() - cached[0] < 30:
            return cached[1]
        connect()
        total = ray.cluster_resources()
        gpus = int(total.get("GPU", 0))
        slots = gpus or int(total.get("CPU", 1)) // resources_for({"train": {"device": "cpu"}})["num_cpus"]
        _SLOTS_CACHE["slots"] = (time.monotonic(), max(1, slots))
        return max(1, slots)


# ---- the head: the one writer ----------------------------------------------------------------

def _held(call) -> tuple[str, Any]:
    """("ok", result), or ("lost", None) when the worker's claim no longer holds
    (exceptions are not sent back: the worker raises LostClaim itself)."""
    try:
        return "ok", call()
    except LostClaim:
        return "lost", None


@ray.remote
class HeadStore:
    """The run store on the studio's machine, for workers anywhere on the cluster.

    Every worker write comes here and goes through the same
    :class:`RunStore` calls a local worker makes, claim token included."""

    def __init__(self, home: str):
        os.environ["AIGC_HOME"] = home  # this process serves one workspace
        self.store = RunStore()
        self.tasks: dict[str, tuple[str, Any]] = {}  # run id -> (claim, the task's ObjectRef)
        self.starts: dict[tuple[str, str], int] = {}  # (run id, claim) -> times a worker began it
        self.lock = threading.Lock()
        self.on_slot_free: Callable[[RunStore], Any] | None = None  # the queue's dispatch, from the launches
        threading.Thread(target=self._watch, daemon=True).start()

    def launch(self, run_id: str, claim: str, resources: dict, runtime_env: dict,
               on_slot_free: Callable[[RunStore], Any] | None = None) -> None:
        me = ray.get_runtime_context().current_actor
        ref = train_on_ray.options(max_retries=RETRIES, retry_exceptions=False, runtime_env=runtime_env,
                                   **resources).remote(run_id, claim, me)
        with self.lock:
            self.tasks[run_id] = (claim, ref)
            if on_slot_free is not None:
                self.on_slot_free = on_slot_free

    def alive(self, run_id: str) -> bool:
        with self.lock:
            return run_id in self.tasks

    def cancel_waiting(self, run_id: str) -> bool:
        """Stop a run whose task is still waiting for a node (no worker began it)."""
        with self.lock:
            claim, ref = self.tasks.get(run_id, (None, None))
            if ref is None or self.starts.get((run_id, claim)):
                return False
            ray.cancel(ref, force=True)
            self.tasks.pop(run_id, None)
        try:
            self.store.set_status(run_id, "stopped", "stopped before it started", claim=claim)
        except LostClaim:
            return False
        self.store.update(run_id, claim=None)
        return True

    def _watch(self) -> None:
        """A task that ended in an error (its worker died again after Ray's retry,
        or the cluster could not run it) leaves its run ``interrupted``."""
        while True:
            time.sleep(1.0)
            with self.lock:
                running = dict(self.tasks)
            if not running:
                continue
            done, _ = ray.wait([ref for _, ref in running.values()], num_returns=len(running), timeout=0)
            for run_id, (claim, ref) in running.items():
                if ref not in done:
                    continue
                with self.lock:
                    self.tasks.pop(run_id, None)
                try:
                    ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - the task is gone either way: say so on the run
                    self.store.interrupt(run_id, claim, f"{GONE_MESSAGE} ({type(exc).__name__})")
                try:
                    if self.on_slot_free is not None:
                        self.on_slot_free(self.store)  # the freed place goes to the next run in the fair order
                except Exception:  # noqa: BLE001 - the studio dispatches again on its next look at the runs
                    pass

    # ---- what a worker calls ----
    def begin(self, run_id: str, claim: str) -> tuple[str, Any]:
        """A worker starts the run: (status, (the run, where its crash log goes, whether it is Ray's retry)).
        A second start of the same claim is Ray's retry after a dead worker."""
        with self.lock:
            key = (run_id, claim)
            self.starts[key] = self.starts.get(key, 0) + 1
            again = self.starts[key] > 1
        if again:
            self.store.restart_claimed(run_id, claim, RETRIED_MESSAGE)
        run = self.store.get(run_id)
        if run.claim != claim:
            return "lost", None
        return "ok", (run, str(run.folder.error_log), again)

    def get(self, run_id: str) -> Run:
        return self.store.get(run_id)

    def write(self, run_id: str, claim: str, fields: dict) -> tuple[str, Any]:
        return _held(lambda: self.store.update_claimed(run_id, claim, **fields))

    def set_status(self, run_id: str, claim: str, status: str, message: str | None) -> tuple[str, Any]:
        return _held(lambda: self.store.set_status(run_id, status, message, claim=claim))

    def take_control(self, run_id: str, claim: str) -> str | None:
        return self.store.take_control(run_id, claim)

    def release_paused(self, run_id: str, claim: str, message: str) -> bool:
        return self.store.release_paused(run_id, claim, message)

    def log_metrics(self, run_id: str, claim: str, step: int, values: dict, wall: float, row: dict | None,
                    keep: bool) -> tuple[str, Any]:
        def log():
            self.store.log_metrics(run_id, step, values, wall, claim=claim, row=row)
            RunFolder(runs_dir() / run_id).append_metrics(step, values, wall, keep=keep)
        return _held(log)

    def last_metrics(self, run_id: str) -> dict[str, float]:
        return self.store.last_metrics(run_id)

    def save_frame(self, run_id: str, claim: str, step: int, suffix: str, data: bytes) -> tuple[str, Any]:
        if self.store.take_control(run_id, claim) == "lost":
            return "lost", None
        write_frame(RunFolder(runs_dir() / run_id), step, suffix, data)
        return "ok", None

    def has_frame(self, run_id: str, step: int) -> bool:
        return RunFolder(runs_dir() / run_id).has_frame(step)

    def save_checkpoint(self, run_id: str, claim: str, step: int, data: bytes) -> tuple[str, Any]:
        if self.store.take_control(run_id, claim) == "lost":
            return "lost", None  # the folder belongs to the run's new worker now
        write_checkpoint(RunFolder(runs_dir() / run_id).checkpoints, step, data)
        return "ok", None

    def checkpoints(self, run_id: str, newest_good: bool = True) -> tuple[list[tuple[int, bytes]], list[str]]:
        """The run's checkpoints as (step, bytes): only the newest readable one
        (a damaged one is set aside as the local loop does, and said), or all kept ones."""
        folder = RunFolder(runs_dir() / run_id).checkpoints
        if not newest_good:
            return [(int(p.stem.split("_")[1]), p.read_bytes()) for p in list_checkpoints(folder)], []
        skipped: list[str] = []
        found = load_latest_good(folder, say=skipped.append)
        return ([(found[0], found[1].read_bytes())] if found else []), skipped

    def has_checkpoint(self, run_id: str) -> bool:
        return bool(list_checkpoints(RunFolder(runs_dir() / run_id).checkpoints))

    def save_best(self, run_id: str, claim: str, data: bytes) -> tuple[str, Any]:
        if self.store.take_control(run_id, claim) == "lost":
            return "lost", None
        write_best(RunFolder(runs_dir() / run_id).checkpoints, data)
        return "ok", None

    def best_file(self, run_id: str) -> bytes | None:
        """The run's best checkpoint file, for a worker that resumes it elsewhere."""
        path = RunFolder(runs_dir() / run_id).checkpoints / BEST_NAME
        return path.read_bytes() if path.is_file() else None

    def dataset_files(self, name: str) -> dict[str, bytes]:
        """An uploaded data set's files (relative path -> bytes); empty for a built-in one."""
        folder = datasets_dir() / name
        if not (folder / "meta.json").is_file():
            return {}
        return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}

    def save_crash(self, run_id: str, details: str) -> None:
        RunFolder(runs_dir() / run_id).error_log.write_text(details)


# ---- the worker: a Ray task on any node --------------------------------------------------------

class RemoteSink:
    """The loop's sink on a Ray worker: every call goes to the head's actor.

    The worker's own workspace is a scratch folder (``AIGC_HOME`` points
    there while the task runs): it holds the checkpoint the run resumes from,
    an uploaded data set, a fine-tune's parent, all fetched from the head."""

    def __init__(self, head, run_id: str, claim: str):
        self.head, self.run_id, self.claim = head, run_id, claim
        status, found = ray.get(head.begin.remote(run_id, claim))
        if status == "lost":
            raise LostClaim(run_id)
        self._run, self.crash_log, self.retried = found
        self.folder = RunFolder(runs_dir() / run_id)  # scratch
        self.store = RunStore()  # scratch: what load_parent_weights reads a parent from
        self._mirror_inputs()

    def _mirror_inputs(self) -> None:
        config = self._run.config
        files = ray.get(self.head.dataset_files.remote(config["dataset"]))
        for rel, data in files.items():
            write_atomic(datasets_dir() / config["dataset"] / rel, data)
        parent_id = config.get("parent_run")
        if parent_id and config.get("init_from") is not None:
            try:
                parent = ray.get(self.head.get.remote(parent_id))
            except Exception:  # noqa: BLE001 - gone: load_parent_weights says so in plain words
                return
            folder = RunFolder(runs_dir() / parent.id)
            folder.create()
            self.store.insert(parent.id, folder, model=parent.model, family=parent.family, dataset=parent.dataset,
                              data_kind=parent.data_kind, config=parent.config, name=parent.name,
                              owner=parent.owner, status=parent.status, user=parent.user, step=parent.step)
            for step, data in ray.get(self.head.checkpoints.remote(parent.id, False))[0]:
                write_checkpoint(folder.checkpoints, step, data)

    def _call(self, method, *args):
        status, value = ray.get(method.remote(self.run_id, self.claim, *args))
        if status == "lost":
            raise LostClaim(self.run_id)
        return value

    def run(self) -> Run:
        return ray.get(self.head.get.remote(self.run_id))

    def write(self, claim: str | None, **fields: Any) -> None:
        if self.retried and fields.get("status") == "running" and "message" in fields and fields["message"] is None:
            fields["message"] = CONTINUED_MESSAGE  # the page keeps saying what happened
        self._call(self.head.write, fields)

    def set_status(self, claim: str | None, status: str, message: str | None = None) -> None:
        self._call(self.head.set_status, status, message)

    def take_control(self, claim: str | None) -> str | None:
        return ray.get(self.head.take_control.remote(self.run_id, self.claim))

    def release_paused(self, claim: str | None, message: str) -> bool:
        return ray.get(self.head.release_paused.remote(self.run_id, self.claim, message))

    def log_metrics(self, step: int, values: dict[str, float], wall: float, *, claim: str | None,
                    row: dict | None = None, keep: bool = False) -> None:
        self._call(self.head.log_metrics, step, values, wall, row, keep)

    def last_metrics(self) -> dict[str, float]:
        return ray.get(self.head.last_metrics.remote(self.run_id))

    def save_frame(self, step: int, frame) -> None:
        found = frame_bytes(frame)
        if found:
            self._call(self.head.save_frame, step, *found)

    def has_frame(self, step: int) -> bool:
        return ray.get(self.head.has_frame.remote(self.run_id, step))

    def save_checkpoint(self, step: int, state: dict, meta: dict[str, str]) -> None:
        from .checkpoint import state_to_bytes

        self._call(self.head.save_checkpoint, step, state_to_bytes(state, {"step": str(step), **meta}))

    def latest_good(self, device, say=None):
        """The newest readable checkpoint on the head, copied here: (step, path, state)."""
        from .checkpoint import load_state

        found, skipped = ray.get(self.head.checkpoints.remote(self.run_id, True))
        for line in skipped:
            if say:
                say(line)
        if not found:
            return None
        step, data = found[0]
        path = write_checkpoint(self.folder.checkpoints, step, data)
        return step, path, load_state(path, device=device)[0]

    def has_checkpoint(self) -> bool:
        return ray.get(self.head.has_checkpoint.remote(self.run_id))

    def best(self) -> dict | None:
        # the head's best, fetched once; after that this worker is its only writer and keeps a copy here
        if not getattr(self, "_best_fetched", False):
            data = ray.get(self.head.best_file.remote(self.run_id))
            if data:
                write_best(self.folder.checkpoints, data)
            self._best_fetched = True
        return best_checkpoint(self.folder.checkpoints)

    def save_best(self, step: int, state: dict, key: str, value: float, held_out: dict[str, float],
                  meta: dict[str, str]) -> None:
        data = best_bytes(step, state, key, value, held_out, meta)
        self._call(self.head.save_best, data)
        write_best(self.folder.checkpoints, data)
        self._best_fetched = True

    def best_weights(self, device) -> dict:
        return load_weights(self.best()["path"], device=device)[0]

    def save_crash(self, details: str) -> None:
        ray.get(self.head.save_crash.remote(self.run_id, details))


@ray.remote
def train_on_ray(run_id: str, claim: str, head) -> str:
    """One run on whichever node Ray chose, in a scratch workspace removed afterwards."""
    import torch

    from ..train.loop import train_run

    node_cache = Path(tempfile.gettempdir()) / "aigc-ray-cache"  # built-in data sets, kept between runs on a node
    node_cache.mkdir(exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="aigc-ray-run-"))
    (scratch / "cache").symlink_to(node_cache)
    os.environ["AIGC_HOME"] = str(scratch)
    try:
        torch.set_num_threads(max(1, int(os.environ.get("AIGC_TRAIN_THREADS", "1"))))
        try:
            sink = RemoteSink(head, run_id, claim)
        except LostClaim:
            return "lost"
        return train_run(run_id, echo=print, claim=claim, sink=sink)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
