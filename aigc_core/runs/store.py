"""The run store: one SQLite database (WAL mode) plus a folder per run.

``$AIGC_HOME/runs.db`` holds a row per run (status, config, progress, the
control field, heartbeat, the claim token) and every logged metric (step,
key, value, wall time), so the live chart is one indexed query: "metrics of
run R after step S". ``$AIGC_HOME/runs/<run_id>/`` holds the run's files
(:mod:`aigc_core.runs.folder` names them), including a copy of its record and
metrics, so ``python -m aigc_core repair`` can rebuild a lost database.

Every call opens its own short-lived connection, so the store is safe to use
from Streamlit's threads, the command line and worker processes at once.

A worker owns a run through its claim token: the queue writes a fresh random
token when it hands the run out, and every write the worker makes names it
(``UPDATE ... WHERE id = ? AND claim = ?``). When the run is handed to someone
else (it was marked interrupted and resumed), the old worker's writes match no
row, and it stops without touching the new worker's progress.

Who may see and change a run is the room's rule (:mod:`aigc_core.room.policy`):
every call that lists, reads or changes runs or ratings takes an ``actor``
(default :data:`~aigc_core.room.identity.LOCAL`, the single user, who may do
everything). A run's ``user`` is the person who made it (``None`` for the
shipped starters, which belong to nobody); its ``owner`` is something else:
which process trains it (``worker``, ``foreground``, ``starter``).

A paused run holds its training slot only for a while
(``AIGC_PAUSE_RELEASE_SECONDS``): then its worker saves a checkpoint, drops
its claim and exits, and the run stays ``paused`` with no claim. Such a run
holds no slot; Resume puts it back in the queue.

If ``runs.db`` is deleted while the app runs, the next call recreates its
tables (empty; ``repair`` brings the runs back from their folders). A damaged
``runs.db`` is never moved by the store itself (two processes moving files at
once could lose the fresh one); every call says to run ``repair``, which moves
it aside as ``runs.db.corrupt-<time>`` and rebuilds.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ..errors import UserError
from ..paths import aigc_home, runs_dir, write_atomic
from ..room.identity import LOCAL, Actor
from ..room.policy import can_see, check_change, check_see
from .folder import RunFolder

STATUSES = ("queued", "starting", "running", "paused", "completed", "stopped", "failed", "interrupted")
ACTIVE = ("starting", "running", "paused")
FINISHED = ("completed", "stopped", "failed", "interrupted")
#: SQL: the run holds a training slot (a paused run whose worker gave its slot back has no claim)
HOLDS_SLOT = ("(status IN ('starting', 'running') OR (status = 'paused' AND claim IS NOT NULL))")
#: a worker whose heartbeat is older than this (seconds) is considered dead
STALE_AFTER = 30.0
MAX_NAME = 120
#: row fields that are not copied to the folder's run.json (process bookkeeping)
_TRANSIENT = ("pid", "heartbeat", "control", "claim", "config", "executor")


class LostClaim(Exception):
    """The run was handed to another worker (or removed): this worker must stop
    at once and write nothing more."""


class DamagedDatabase(UserError):
    pass

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    model TEXT NOT NULL,
    family TEXT NOT NULL,
    dataset TEXT NOT NULL,
    data_kind TEXT NOT NULL,
    status TEXT NOT NULL,
    config TEXT NOT NULL,
    owner TEXT NOT NULL DEFAULT 'worker',
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    device TEXT,
    device_name TEXT,
    step INTEGER NOT NULL DEFAULT 0,
    total_steps INTEGER NOT NULL DEFAULT 0,
    max_seconds REAL NOT NULL DEFAULT 0,
    train_seconds REAL NOT NULL DEFAULT 0,
    samples_per_s REAL,
    pid INTEGER,
    heartbeat REAL,
    control TEXT,
    message TEXT,
    final_metrics TEXT,
    note TEXT,
    executor TEXT,
    claim TEXT,
    user TEXT,
    published INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL,
    step INTEGER NOT NULL,
    key TEXT NOT NULL,
    value REAL,
    wall REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS metrics_run_step ON metrics(run_id, step);
CREATE TABLE IF NOT EXISTS ratings (
    run_id TEXT NOT NULL,
    item TEXT NOT NULL,
    rating INTEGER NOT NULL,
    payload TEXT,
    created REAL NOT NULL,
    user TEXT NOT NULL DEFAULT 'local',
    PRIMARY KEY (run_id, item, user)
);
"""

#: ratings made before ratings had a user (one per item): rebuilt with the user in the key
_RATINGS_MIGRATION = """
CREATE TABLE ratings_new (
    run_id TEXT NOT NULL, item TEXT NOT NULL, rating INTEGER NOT NULL, payload TEXT, created REAL NOT NULL,
    user TEXT NOT NULL DEFAULT 'local', PRIMARY KEY (run_id, item, user));
INSERT INTO ratings_new (run_id, item, rating, payload, created) SELECT run_id, item, rating, payload, created FROM ratings;
DROP TABLE ratings;
ALTER TABLE ratings_new RENAME TO ratings;
"""


@dataclass
class Run:
    id: str
    name: str
    model: str
    family: str
    dataset: str
    data_kind: str
    status: str
    config: dict
    owner: str
    created: float
    started: float | None
    finished: float | None
    device: str | None
    device_name: str | None
    step: int
    total_steps: int
    max_seconds: float
    train_seconds: float
    samples_per_s: float | None
    pid: int | None
    heartbeat: float | None
    control: str | None
    message: str | None
    final_metrics: dict = field(default_factory=dict)
    note: str | None = None
    claim: str | None = None
    #: who made it (a participant's name, "local" for the single user); None = nobody (a starter)
    user: str | None = None
    #: shown to the whole room (the wall, the room leaderboard)
    published: bool = False
    #: what trains it (:mod:`aigc_core.runs.executors`): "local" worker processes (None: before executors
    #: were recorded, or a foreground ``train``), or "ray" (``pid`` is then a process on some cluster node)
    executor: str | None = None

    @property
    def holds_slot(self) -> bool:
        """Whether the run takes one of the machine's training slots now."""
        return self.status in ("starting", "running") or (self.status == "paused" and self.claim is not None)

    @property
    def folder(self) -> RunFolder:
        return RunFolder(runs_dir() / self.id)

    @property
    def progress(self) -> float:
        """Fraction done, by steps or by time, whichever is further along."""
        parts = []
        if self.total_steps:
            parts.append(self.step / self.total_steps)
        if self.max_seconds:
            parts.append(self.train_seconds / self.max_seconds)
        if self.status == "completed":
            return 1.0
        return max(0.0, min(1.0, max(parts) if parts else 0.0))

    @property
    def eta_seconds(self) -> float | None:
        p = self.progress
        if self.status not in ("running", "paused") or p <= 0.0 or self.train_seconds <= 0:
            return None
        return self.train_seconds * (1 - p) / p


#: fields whose change is copied to the folder's run.json
_RECORDED = {"status", "name", "final_metrics", "message", "note", "finished", "user", "published"}


def clean_name(name: str | None) -> str:
    """A run name as stored: trimmed, one line, at most ``MAX_NAME`` characters."""
    return " ".join((name or "").split())[:MAX_NAME]


def _row_to_run(row: sqlite3.Row) -> Run:
    d = dict(row)
    d["config"] = json.loads(d["config"])
    d["final_metrics"] = json.loads(d["final_metrics"]) if d["final_metrics"] else {}
    d["published"] = bool(d.get("published"))
    return Run(**d)


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed child that nobody has reaped yet is a zombie: dead for us
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _stop_process_group(pid: int) -> None:
    """Kill a stale worker (alive, but silent for too long) before its run is
    handed out again, so two workers never train in one folder.

    Workers are started with ``start_new_session=True``: their process group
    is their pid. Anything else (a foreground ``train``, a test calling the
    loop in-process) is left alone; its claim token stops it instead."""
    if pid == os.getpid():
        return
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            if b"aigc_core" not in fh.read():
                return  # the pid now belongs to some other program
    except OSError:
        pass
    try:
        if os.getpgid(pid) == pid and pid != os.getpgrp():
            os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _damaged(exc: sqlite3.DatabaseError) -> bool:
    text = str(exc).lower()
    return "not a database" in text or "malformed" in text or "disk image" in text


def _retry_locked(call, attempts: int = 60):
    """Switching a brand-new database to WAL (and creating its tables) can meet
    "database is locked" at once, without the busy timeout, when two processes
    or threads open the workspace together; wait a little and try again."""
    for attempt in range(attempts):
        try:
            return call()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.02 * (1 + attempt % 10))


class RunStore:
    def __init__(self, db_path: Path | None = None):
        self.path = Path(db_path) if db_path else aigc_home() / "runs.db"
        self.ensure_schema()

    def ensure_schema(self) -> None:
        """Create missing tables and add columns newer versions need (an
        existing runs.db gains the ``claim``, ``user``, ``published`` and
        ``executor`` columns on first open; its runs become the single local user's, except
        the starters, which belong to nobody; its ratings become the local user's)."""
        conn = self.connect()
        try:
            with self._guard():
                _retry_locked(lambda: conn.execute("PRAGMA journal_mode=WAL"))  # stored in the file: once is enough
                _retry_locked(lambda: conn.executescript(SCHEMA))
                cols = {r["name"] for r in conn.execute("PRAGMA table_info(runs)")}
                for column, sql in (("claim", "claim TEXT"), ("user", "user TEXT"),
                                    ("published", "published INTEGER NOT NULL DEFAULT 0"),
                                    ("executor", "executor TEXT")):
                    if column in cols:
                        continue
                    try:
                        conn.execute(f"ALTER TABLE runs ADD COLUMN {sql}")
                        if column == "user":
                            conn.execute("UPDATE runs SET user = 'local' WHERE owner != 'starter'")
                    except sqlite3.OperationalError as exc:  # another process added it a moment ago
                        if "duplicate column" not in str(exc):
                            raise
                if "user" not in {r["name"] for r in conn.execute("PRAGMA table_info(ratings)")}:
                    def migrate():
                        conn.execute("BEGIN IMMEDIATE")
                        try:
                            if "user" not in {r["name"] for r in conn.execute("PRAGMA table_info(ratings)")}:
                                for statement in _RATINGS_MIGRATION.strip().split(";"):
                                    if statement.strip():
                                        conn.execute(statement)
                            conn.execute("COMMIT")
                        except BaseException:
                            conn.execute("ROLLBACK")
                            raise
                    _retry_locked(migrate)
        finally:
            conn.close()

    # ---- connections -----------------------------------------------------------
    def connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        conn.row_factory = sqlite3.Row
        try:
            with self._guard():
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute("PRAGMA busy_timeout=30000")
        except BaseException:
            conn.close()
            raise
        return conn

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """A damaged database file becomes one plain instruction, not a traceback on every page."""
        try:
            yield
        except sqlite3.OperationalError:
            raise
        except sqlite3.DatabaseError as exc:
            if not _damaged(exc):
                raise
            raise DamagedDatabase(
                f"the run database {self.path} is damaged ({exc}); run `python -m aigc_core repair`: it moves "
                "the damaged file aside and rebuilds the database from the run folders, losing no run") from None

    def _retry_missing(self, call):
        """Run ``call``; if runs.db was deleted under us ("no such table"),
        recreate the tables once and try again."""
        try:
            with self._guard():
                return call()
        except sqlite3.OperationalError as exc:
            if "no such table" not in str(exc):
                raise
            self.ensure_schema()
            with self._guard():
                return call()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """An IMMEDIATE transaction: the write lock is taken at the start, so
        two processes claiming queue slots cannot both win."""
        conn = self.connect()
        try:
            with self._guard():
                conn.execute("BEGIN IMMEDIATE")
                yield conn
                conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.OperationalError) and "no such table" in str(exc):
                self.ensure_schema()  # runs.db was deleted: the next call finds the tables again
            raise
        finally:
            conn.close()

    def _exec(self, sql: str, args: tuple = ()) -> int:
        """Run one statement; returns the number of rows it changed."""
        def call():
            conn = self.connect()
            try:
                return conn.execute(sql, args).rowcount
            finally:
                conn.close()
        return self._retry_missing(call)

    def _query(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        def call():
            conn = self.connect()
            try:
                return conn.execute(sql, args).fetchall()
            finally:
                conn.close()
        return self._retry_missing(call)

    # ---- runs ------------------------------------------------------------------
    def create(self, *, model: str, family: str, dataset: str, data_kind: str, config: dict,
               name: str | None = None, owner: str = "worker", actor: Actor = LOCAL, **extra: Any) -> Run:
        """A new queued run, made by ``actor``."""
        run_id, folder = self.new_folder(model)
        try:
            self.insert(run_id, folder, model=model, family=family, dataset=dataset, data_kind=data_kind,
                        config=config, name=name, owner=owner, status="queued",
                        user=None if owner == "starter" else actor.name, **extra)  # a starter is nobody's
        except BaseException:
            shutil.rmtree(folder.path, ignore_errors=True)  # a failed insert leaves no orphan folder
            raise
        return self.get(run_id)

    def new_folder(self, model: str) -> tuple[str, RunFolder]:
        """A fresh run id and its newly made folder. Two runs created in the
        same second can draw the same id; ``mkdir`` without ``exist_ok`` makes
        the second one draw again instead of writing into the first's folder."""
        stamp = time.strftime("%m%d-%H%M%S")
        for _ in range(50):
            run_id = f"{model}-{stamp}-{secrets.token_hex(2)}"
            folder = RunFolder(runs_dir() / run_id)
            try:
                folder.create()
            except FileExistsError:
                continue
            if self.exists(run_id):  # a row whose folder was deleted by hand: leave it alone too
                shutil.rmtree(folder.path, ignore_errors=True)
                continue
            return run_id, folder
        raise UserError("could not find a free run id; try again")

    def insert(self, run_id: str, folder: RunFolder, *, model: str, family: str, dataset: str, data_kind: str,
               config: dict, name: str | None, owner: str, status: str, **extra: Any) -> None:
        """Write config.json and the run's row in its folder (made by :meth:`new_folder`)."""
        train = config.get("train", {})
        write_atomic(folder.config, json.dumps(config, indent=2).encode())
        row = dict(id=run_id, name=clean_name(name) or f"{model} on {dataset}"[:MAX_NAME], model=model,
                   family=family, dataset=dataset, data_kind=data_kind, status=status, config=json.dumps(config),
                   owner=owner, created=time.time(), total_steps=int(train.get("steps", 0) or 0),
                   max_seconds=float(train.get("max_seconds", 0) or 0))
        row.update({k: json.dumps(v) if k == "final_metrics" else v for k, v in extra.items()})
        self._exec(f"INSERT INTO runs ({', '.join(row)}) VALUES ({','.join('?' * len(row))})", tuple(row.values()))
        self.save_record(run_id)

    def get(self, run_id: str, *, actor: Actor = LOCAL) -> Run:
        """The run, if ``actor`` may see it (UserError "this run belongs to alice" otherwise)."""
        rows = self._query("SELECT * FROM runs WHERE id = ?", (run_id,))
        if not rows:
            raise UserError(f"no run called {run_id!r}; `python -m aigc_core runs` lists them")
        run = _row_to_run(rows[0])
        check_see(actor, run.user, run.published)
        return run

    def get_to_change(self, run_id: str, actor: Actor = LOCAL) -> Run:
        """The run, if ``actor`` may stop, resume, rename, publish or delete it."""
        run = self.get(run_id)
        check_change(actor, run.user)
        return run

    def exists(self, run_id: str) -> bool:
        return bool(self._query("SELECT 1 FROM runs WHERE id = ?", (run_id,)))

    def list(self, statuses: tuple[str, ...] | None = None, data_kind: str | None = None, *,
             actor: Actor = LOCAL) -> list[Run]:
        """Runs ``actor`` may see (their own, published ones and the starters), newest first."""
        sql, args = "SELECT * FROM runs", []
        where = []
        if statuses:
            where.append(f"status IN ({','.join('?' * len(statuses))})")
            args += list(statuses)
        if data_kind:
            where.append("data_kind = ?")
            args.append(data_kind)
        if where:
            sql += " WHERE " + " AND ".join(where)
        runs = [_row_to_run(r) for r in self._query(sql + " ORDER BY created DESC", tuple(args))]
        return [r for r in runs if can_see(actor, r.user, r.published)]

    def update(self, run_id: str, **fields: Any) -> None:
        if not fields:
            return
        for key in ("config", "final_metrics"):
            if key in fields and not isinstance(fields[key], str):
                fields[key] = json.dumps(fields[key])
        cols = ", ".join(f"{k} = ?" for k in fields)
        self._exec(f"UPDATE runs SET {cols} WHERE id = ?", (*fields.values(), run_id))
        if _RECORDED & set(fields):
            self.save_record(run_id)

    def update_claimed(self, run_id: str, claim: str | None, **fields: Any) -> None:
        """A worker's write: only while it still holds the run (see the module
        docstring). Raises :class:`LostClaim` when the row has another claim."""
        for key in ("config", "final_metrics"):
            if key in fields and not isinstance(fields[key], str):
                fields[key] = json.dumps(fields[key])
        cols = ", ".join(f"{k} = ?" for k in fields)
        if not self._exec(f"UPDATE runs SET {cols} WHERE id = ? AND claim IS ?", (*fields.values(), run_id, claim)):
            raise LostClaim(run_id)
        if _RECORDED & set(fields):
            self.save_record(run_id)

    def set_status(self, run_id: str, status: str, message: str | None = None, *, claim: str | bool = False) -> None:
        """Change a run's status; with ``claim`` (a worker's token, or None for
        an unclaimed run) only while that claim still holds."""
        assert status in STATUSES, status
        fields: dict[str, Any] = {"status": status}
        if message is not None:
            fields["message"] = message
        if status in FINISHED:
            fields["finished"] = time.time()
        if claim is False:
            self.update(run_id, **fields)
        else:
            self.update_claimed(run_id, claim, **fields)

    def save_record(self, run_id: str) -> None:
        """Copy the run's row (name, owner, status, final metrics, ...) to its
        folder's run.json: what ``repair`` needs beyond config.json."""
        rows = self._query("SELECT * FROM runs WHERE id = ?", (run_id,))
        if not rows:
            return
        record = {k: v for k, v in dict(rows[0]).items() if k not in _TRANSIENT}
        record["final_metrics"] = json.loads(record["final_metrics"]) if record.get("final_metrics") else {}
        folder = RunFolder(runs_dir() / run_id)
        if folder.exists():
            write_atomic(folder.record, json.dumps(record, indent=1).encode())

    def rename(self, run_id: str, name: str, *, actor: Actor = LOCAL) -> None:
        self.get_to_change(run_id, actor)
        name = clean_name(name)
        if not name:
            raise UserError("a run name cannot be empty")
        self.update(run_id, name=name)

    def publish(self, run_id: str, published: bool = True, *, actor: Actor = LOCAL) -> Run:
        """Show a run to the whole room (its samples on the wall, its scores on the
        room leaderboard), or take it back."""
        self.get_to_change(run_id, actor)
        self.update(run_id, published=int(bool(published)))
        return self.get(run_id)

    def delete(self, run_id: str, *, actor: Actor = LOCAL) -> None:
        run = self.get_to_change(run_id, actor)
        working = (run.heartbeat is not None and time.time() - run.heartbeat <= STALE_AFTER if run.executor == "ray"
                   else _pid_alive(run.pid))
        if run.status in ACTIVE and working:
            raise UserError(f"run {run_id} is still {run.status}; stop it before deleting it")
        with self.transaction() as conn:
            conn.execute("DELETE FROM metrics WHERE run_id = ?", (run_id,))
            conn.execute("DELETE FROM ratings WHERE run_id = ?", (run_id,))
            conn.execute("DELETE FROM runs WHERE id = ?", (run_id,))
        shutil.rmtree(runs_dir() / run_id, ignore_errors=True)

    # ---- control -------------------------------------------------------------
    def request(self, run_id: str, action: str, *, actor: Actor = LOCAL) -> Run:
        """Ask a run to pause, resume or stop (the worker acts between steps).

        A queued run that is stopped never starts; an interrupted or stopped
        run, or a paused one that gave its slot back, goes back to the queue
        when resumed and continues from its last checkpoint."""
        run = self.get_to_change(run_id, actor)
        if action not in ("pause", "resume", "stop"):
            raise UserError(f"unknown action {action!r}; use pause, resume or stop")
        released = run.status == "paused" and run.claim is None
        if action == "stop":
            if run.status == "queued" or released:
                self.set_status(run_id, "stopped", "stopped before it started" if run.status == "queued"
                                else "stopped while paused")
            elif run.status in ACTIVE:
                self.update(run_id, control="stop")
            else:
                raise UserError(f"run {run_id} is already {run.status}")
        elif action == "pause":
            if run.status not in ("running", "starting"):
                raise UserError(f"only a running run can be paused; {run_id} is {run.status}")
            self.update(run_id, control="pause")
        else:
            if released:
                # only if the worker did give the slot back (a worker still holding it takes "resume" itself)
                if not self._exec("UPDATE runs SET status = 'queued', control = NULL, owner = 'worker', message = ?"
                                  " WHERE id = ? AND status = 'paused' AND claim IS NULL",
                                  ("waiting in the queue to continue from its last checkpoint", run_id)):
                    return self.request(run_id, action, actor=actor)
                self.save_record(run_id)
            elif run.status == "paused" or (run.status in ("running", "starting") and run.control == "pause"):
                self.update(run_id, control="resume")
            elif run.status in ("interrupted", "stopped", "failed"):
                self.update(run_id, status="queued", control=None, message="resuming from the last checkpoint",
                            owner="worker", finished=None)
            else:
                raise UserError(f"run {run_id} is {run.status}; there is nothing to resume")
        return self.get(run_id)

    def take_control(self, run_id: str, claim: str | bool = False) -> str | None:
        """The control field (pause / resume / stop). A worker passes its claim
        token: if the run has been handed to someone else (or removed), it is
        told ``"lost"`` and stops."""
        rows = self._query("SELECT control, claim FROM runs WHERE id = ?", (run_id,))
        if claim is not False and (not rows or rows[0]["claim"] != claim):
            return "lost"
        return rows[0]["control"] if rows else None

    def release_paused(self, run_id: str, claim: str | None, message: str) -> bool:
        """A paused run's worker gives its slot back: the run stays ``paused``
        with no claim and no process. False when a Resume or Stop came first
        (the worker carries on with it)."""
        changed = self._exec("UPDATE runs SET claim = NULL, pid = NULL, heartbeat = NULL, message = ?"
                             " WHERE id = ? AND claim IS ? AND status = 'paused' AND control IS NULL",
                             (message, run_id, claim))
        if changed:
            self.save_record(run_id)
        return bool(changed)

    def refresh(self) -> list[str]:
        """Mark runs whose worker died as ``interrupted``; returns their ids.

        A worker that is alive but silent (machine asleep, CPU starved) is
        killed first, so Resume can never start a second worker on the same
        folder; the update names the claim it judged stale, so a run that
        finished meanwhile keeps its ``completed``."""
        dead = []
        now = time.time()
        for run in self.list(statuses=("queued",)):
            # a foreground `train` that ended while its run waited: nobody will ever claim it
            if run.owner == "foreground" and run.pid and not _pid_alive(run.pid):
                if self._exec("UPDATE runs SET status = 'interrupted', finished = ?, owner = 'worker', message = ?"
                              " WHERE id = ? AND status = 'queued' AND owner = 'foreground'",
                              (now, "the command that queued it ended before it started; press Resume to queue it "
                               "for a background worker", run.id)):
                    dead.append(run.id)
                    self.save_record(run.id)
        for run in self.list(statuses=ACTIVE):
            if not run.holds_slot:
                continue  # paused, with its slot given back: no worker to check on
            stale = run.heartbeat is None or now - run.heartbeat > STALE_AFTER
            if run.executor == "ray":
                # its process lives on some cluster node: only its heartbeat (sent through the head's actor) tells,
                # and a pid here may be another program's; a dead Ray worker is retried by Ray or reported by the actor
                alive = False
                if not stale:
                    continue
            else:
                alive = _pid_alive(run.pid)
            # no pid yet: claimed a moment ago and the worker is starting (its heartbeat says how long ago)
            if stale or (run.pid and not alive):
                if alive:
                    _stop_process_group(run.pid)
                if self.interrupt(run.id, run.claim, "the training process stopped unexpectedly; press Resume to "
                                  "continue from the last checkpoint"):
                    dead.append(run.id)
        return dead

    def interrupt(self, run_id: str, claim: str | None, message: str) -> bool:
        """Mark a run whose worker is gone ``interrupted`` and drop its claim,
        unless it was handed on or finished meanwhile (the update names the claim)."""
        changed = self._exec(
            f"UPDATE runs SET status = 'interrupted', finished = ?, claim = NULL, message = ?"
            f" WHERE id = ? AND status IN ({','.join('?' * len(ACTIVE))}) AND claim IS ?",
            (time.time(), message, run_id, *ACTIVE, claim))
        if changed:
            self.save_record(run_id)
        return bool(changed)

    def restart_claimed(self, run_id: str, claim: str, message: str) -> None:
        """A worker starts a run again under the claim it had (Ray's retry after a
        dead worker): shown ``interrupted`` until the new worker reports, and taken
        back under the same claim if the staleness check dropped it meanwhile
        (not once the run was resumed or handed on)."""
        self._exec("UPDATE runs SET status = 'interrupted', message = ? WHERE id = ? AND claim IS ?",
                   (message, run_id, claim))
        self._exec("UPDATE runs SET claim = ?, finished = NULL, message = ? WHERE id = ? AND claim IS NULL"
                   " AND status = 'interrupted'", (claim, message, run_id))
        self.save_record(run_id)

    # ---- metrics ---------------------------------------------------------------
    def log_metrics(self, run_id: str, step: int, values: dict[str, float], wall: float | None = None,
                    *, claim: str | bool = False, row: dict[str, Any] | None = None) -> None:
        """Add a row per value; with ``claim`` (a worker's token) only while the
        worker still holds the run (:class:`LostClaim` otherwise). ``row``:
        fields of the run's row (its step, clock) written in the same
        transaction, so the row never says less than its chart shows even when
        the run is handed on between the two writes."""
        wall = time.time() if wall is None else wall
        rows = [(run_id, step, k, float(v), wall) for k, v in values.items()]
        row = dict(row or {})
        with self.transaction() as conn:
            if row:
                cols = ", ".join(f"{k} = ?" for k in row)
                held = conn.execute(f"UPDATE runs SET {cols} WHERE id = ?" + (" AND claim IS ?" if claim is not False else ""),
                                    (*row.values(), run_id, *(() if claim is False else (claim,)))).rowcount
            else:
                held = claim is False or conn.execute("SELECT 1 FROM runs WHERE id = ? AND claim IS ?",
                                                      (run_id, claim)).fetchone() is not None
            if not held:
                raise LostClaim(run_id)
            conn.executemany("INSERT INTO metrics (run_id, step, key, value, wall) VALUES (?,?,?,?,?)", rows)
        self._thin_metrics(run_id, list(values))

    def _thin_metrics(self, run_id: str, keys: list[str]) -> None:
        """Keep at most ``AIGC_MAX_METRIC_POINTS`` points per run and key: when a
        key goes over, its older points are thinned evenly, never the first or
        the newest ones (a run's final values), so its chart still spans the run.
        Rows are counted here rather than queried on every call."""
        from ..room.limits import Limits, thinned

        keep = Limits.from_env().max_metric_points
        counts = self.__dict__.setdefault("_metric_rows", {})
        if run_id not in counts:
            counts[run_id] = {r["key"]: r["n"] for r in self._query(
                "SELECT key, COUNT(*) AS n FROM metrics WHERE run_id = ? GROUP BY key", (run_id,))}
        else:
            for k in keys:
                counts[run_id][k] = counts[run_id].get(k, 0) + 1
        for k in keys:
            if keep and counts[run_id].get(k, 0) > keep:
                rows = self._query("SELECT rowid, step FROM metrics WHERE run_id = ? AND key = ? ORDER BY step, rowid",
                                   (run_id, k))
                drop = [(rows[i]["rowid"],) for i in thinned([r["step"] for r in rows], keep)]
                with self.transaction() as conn:
                    conn.executemany("DELETE FROM metrics WHERE rowid = ?", drop)
                counts[run_id][k] = len(rows) - len(drop)

    def metrics(self, run_id: str, after_step: int = -1, keys: list[str] | None = None):
        """Metrics of a run after a step, as a pandas DataFrame (step, key, value, wall)."""
        import pandas as pd

        sql = "SELECT step, key, value, wall FROM metrics WHERE run_id = ? AND step > ?"
        args: list[Any] = [run_id, after_step]
        if keys:
            sql += f" AND key IN ({','.join('?' * len(keys))})"
            args += keys
        rows = self._query(sql + " ORDER BY step", tuple(args))
        return pd.DataFrame([dict(r) for r in rows], columns=["step", "key", "value", "wall"])

    def metric_keys(self, run_id: str) -> list[str]:
        return [r["key"] for r in self._query("SELECT DISTINCT key FROM metrics WHERE run_id = ?", (run_id,))]

    def last_metrics(self, run_id: str) -> dict[str, float]:
        rows = self._query(
            "SELECT m.key, m.value FROM metrics m JOIN (SELECT key, MAX(step) AS s FROM metrics WHERE run_id = ?"
            " GROUP BY key) last ON m.key = last.key AND m.step = last.s WHERE m.run_id = ?", (run_id, run_id))
        return {r["key"]: r["value"] for r in rows}

    # ---- ratings (the data loop) ---------------------------------------------
    def rate(self, run_id: str, item: str, rating: int, payload: dict | None = None, *, actor: Actor = LOCAL) -> None:
        """``actor``'s rating of one sample of a run they may see (one rating per person and sample)."""
        self.get(run_id, actor=actor)
        created = time.time()
        self._exec("INSERT OR REPLACE INTO ratings (run_id, item, rating, payload, created, user) VALUES (?,?,?,?,?,?)",
                   (run_id, item, int(rating), json.dumps(payload or {}), created, actor.name))
        RunFolder(runs_dir() / run_id).append_rating(item, int(rating), payload or {}, created, user=actor.name)

    def unrate(self, run_id: str, item: str, *, actor: Actor = LOCAL) -> None:
        """Take ``actor``'s rating back (in the database and in the folder's copy)."""
        self._exec("DELETE FROM ratings WHERE run_id = ? AND item = ? AND user = ?", (run_id, item, actor.name))
        RunFolder(runs_dir() / run_id).append_rating(item, None, None, time.time(), user=actor.name)

    def ratings(self, run_id: str | None = None, *, actor: Actor = LOCAL) -> list[dict]:
        """Ratings ``actor`` made (the teacher and the single user: everyone's), oldest first."""
        sql, where, args = "SELECT * FROM ratings", [], []
        if run_id:
            where.append("run_id = ?")
            args.append(run_id)
        if not actor.sees_everything:
            where.append("user = ?")
            args.append(actor.name)
        if where:
            sql += " WHERE " + " AND ".join(where)
        args = tuple(args)
        out = []
        for r in self._query(sql + " ORDER BY created", args):
            d = dict(r)
            d["payload"] = json.loads(d["payload"] or "{}")
            out.append(d)
        return out
