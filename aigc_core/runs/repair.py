"""``python -m aigc_core repair``: rebuild the run database from the run folders.

Every run folder holds what its row needs (:mod:`aigc_core.runs.folder`):
``config.json`` (model, data set, settings), ``run.json`` (name, owner,
status, final metrics; copied from the row at every status change),
``metrics.jsonl`` (every logged metric) and its checkpoints. So a deleted or
damaged ``runs.db`` loses no run:

- a damaged file (not a database, or failing SQLite's quick check) is moved
  aside as ``runs.db.corrupt-<time>`` (with its -wal/-shm files), never
  deleted, and a fresh database is made;
- every folder whose run has no row gets one back: same id, name, model, data
  set, step, metrics and final metrics. A finished run keeps its status
  (completed / stopped / failed); one that was queued or training becomes
  ``interrupted``, so Resume continues it from its last checkpoint;
- rows already in the database are left as they are.

Ratings come back from the folder's ``ratings.jsonl`` (the store writes a
copy of each; a rating taken back with ``RunStore.unrate`` is recorded as such).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from ..paths import aigc_home, runs_dir
from .checkpoint import latest_checkpoint
from .folder import RunFolder
from .store import FINISHED, RunStore

_KEPT_STATUSES = ("completed", "stopped", "failed")
STALE_IMPORT_S = 3600.0
_RECOVERED_MESSAGE = "recovered by `repair` after the run database was lost; press Resume to continue from the last checkpoint"


@dataclass
class RepairReport:
    moved_aside: str | None = None
    recovered: list[dict] = field(default_factory=list)  # run_id, name, status, step, metric_rows, ratings
    kept: list[str] = field(default_factory=list)         # ids that already had a row
    skipped: list[dict] = field(default_factory=list)     # folder, reason

    def as_dict(self) -> dict:
        return {"moved_aside": self.moved_aside, "recovered": self.recovered, "kept": self.kept,
                "skipped": self.skipped}


def database_problem(path: Path) -> str | None:
    """Why ``path`` cannot be used as the run database, or None when it can."""
    try:
        conn = sqlite3.connect(path, timeout=30)
        try:
            result = conn.execute("PRAGMA quick_check").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc):
            raise UserError(f"{path} is busy (a run is being written); try again in a moment") from None
        return str(exc)
    except sqlite3.DatabaseError as exc:
        return str(exc)
    return None if result == "ok" else result


def _move_aside(path: Path) -> Path:
    aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
    path.replace(aside)
    for suffix in ("-wal", "-shm"):
        extra = path.with_name(path.name + suffix)
        if extra.exists():
            extra.replace(aside.with_name(aside.name + suffix))
    return aside


def _read_json(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def recover_row(folder: RunFolder) -> tuple[dict, list[tuple]]:
    """The row and metric rows a run folder describes; UserError with the reason
    when the folder is not a usable run."""
    from ..registry import get_model

    config = _read_json(folder.config)
    if not config or not isinstance(config.get("model"), str) or not isinstance(config.get("dataset"), str):
        raise UserError("no readable config.json with a model and a data set")
    record = _read_json(folder.record) or {}
    model = config["model"]
    family, data_kind = record.get("family"), record.get("data_kind")
    if not (family and data_kind):
        spec = get_model(model)  # UserError names the model when it is not installed
        family, data_kind = spec.family, spec.data_kind
    train = config.get("train") if isinstance(config.get("train"), dict) else {}
    metrics = list(folder.read_metrics())
    found = latest_checkpoint(folder.checkpoints)
    ckpt_step = found[0] if found else 0
    last_logged = max((s for s, _, _ in metrics), default=0)

    status = record.get("status")
    if status in _KEPT_STATUSES:
        step, message = int(record.get("step") or max(ckpt_step, last_logged)), record.get("message")
    else:
        # the row said queued/starting/running/paused (or there is no run.json): the worker is gone
        status, message = "interrupted", _RECOVERED_MESSAGE
        step = max(ckpt_step, last_logged)
    row = dict(
        id=folder.name, name=str(record.get("name") or f"{model} on {config['dataset']}")[:120], model=model,
        family=family, dataset=config["dataset"], data_kind=data_kind, status=status, config=json.dumps(config),
        owner="worker" if status not in FINISHED else str(record.get("owner") or "worker"),
        created=float(record.get("created") or folder.config.stat().st_mtime),
        started=record.get("started"), finished=record.get("finished") or (time.time() if status in FINISHED else None),
        device=record.get("device"), device_name=record.get("device_name"), step=step,
        total_steps=int(train.get("steps", 0) or 0), max_seconds=float(train.get("max_seconds", 0) or 0),
        train_seconds=float(record.get("train_seconds") or 0.0), samples_per_s=record.get("samples_per_s"),
        message=message, final_metrics=json.dumps(record.get("final_metrics") or {}), note=record.get("note"),
        # a record from before runs had a user: the single local user's, a starter nobody's
        user=record["user"] if "user" in record else (None if record.get("owner") == "starter" else "local"),
        published=int(bool(record.get("published"))),
    )
    metric_rows = [(folder.name, s, k, v, wall) for s, wall, values in metrics for k, v in values.items()]
    return row, metric_rows


def repair(db_path: Path | None = None) -> RepairReport:
    """Make the run database whole again from the run folders (see the module docstring)."""
    path = Path(db_path) if db_path else aigc_home() / "runs.db"
    report = RepairReport()
    if path.exists() and database_problem(path):
        report.moved_aside = str(_move_aside(path))
    store = RunStore(path)
    known = {r["id"] for r in store._query("SELECT id FROM runs")}
    for child in sorted(runs_dir().iterdir()):
        if not child.is_dir():
            continue
        if child.name.startswith("."):
            # ".import-*": an import being written now, or one whose process was killed (an hour is far
            # longer than any import takes); it never had a row, so removing it loses nothing
            if child.name.startswith(".import-") and time.time() - child.stat().st_mtime > STALE_IMPORT_S:
                shutil.rmtree(child, ignore_errors=True)
                report.skipped.append({"folder": child.name, "reason": "an unfinished import; removed"})
            continue
        if child.name in known:
            report.kept.append(child.name)
            continue
        folder = RunFolder(child)
        try:
            row, metric_rows = recover_row(folder)
            ratings = folder.read_ratings()
        except UserError as exc:
            report.skipped.append({"folder": child.name, "reason": str(exc)})
            continue
        with store.transaction() as conn:
            added = conn.execute(f"INSERT OR IGNORE INTO runs ({', '.join(row)}) VALUES ({','.join('?' * len(row))})",
                                 tuple(row.values())).rowcount
            if added:  # another repair running at the same time already brought this one back otherwise
                conn.executemany("INSERT INTO metrics (run_id, step, key, value, wall) VALUES (?,?,?,?,?)", metric_rows)
                conn.executemany("INSERT OR REPLACE INTO ratings (run_id, item, rating, payload, created, user)"
                                 " VALUES (?,?,?,?,?,?)", [(row["id"], item, r, json.dumps(p), c, user)
                                                           for (item, user), (r, p, c) in ratings.items()])
        if added:
            store.save_record(row["id"])
            report.recovered.append({"run_id": row["id"], "name": row["name"], "status": row["status"],
                                     "step": row["step"], "metric_rows": len(metric_rows),
                                     "ratings": len(ratings)})
    return report
