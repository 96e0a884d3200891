"""What the room shares, and what the teacher sees of it.

- **who is here**: every page view of a participant marks them as seen
  (:func:`seen`); :func:`people` lists each person with their runs and data;
- **the room's load**: slots, the queue, the machine (:func:`room_load`);
- **the room preset**: data set, model, preset and settings the teacher fixed
  (some or all of them); participants start from it with one click;
- **the shared wall**: samples participants published, with their names,
  newest first; the teacher can hide any;
- **the room leaderboard**: the bake-off table over the published, finished
  runs on one data set.

People and the wall live in ``$AIGC_HOME/room/room.db`` (SQLite, WAL), the
preset in ``$AIGC_HOME/room/preset.json``, wall images in
``$AIGC_HOME/room/wall/``.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from ..paths import aigc_home, write_atomic
from .identity import LOCAL, Actor
from .policy import can_see

#: a person seen within this many seconds is "here"
HERE_FOR_S = 120.0
#: the wall keeps this many posts (older ones are removed with their files)
WALL_KEEP = 500
MAX_CAPTION = 200

_SCHEMA = """
CREATE TABLE IF NOT EXISTS people (name TEXT PRIMARY KEY, role TEXT NOT NULL, joined REAL NOT NULL,
                                   last_seen REAL NOT NULL, page TEXT);
CREATE TABLE IF NOT EXISTS wall (id TEXT PRIMARY KEY, run_id TEXT NOT NULL, user TEXT, run_name TEXT,
                                 kind TEXT NOT NULL, text TEXT, file TEXT, caption TEXT, created REAL NOT NULL,
                                 hidden INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS wall_created ON wall(created);
"""


def _folder() -> Path:
    path = aigc_home() / "room"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _connect() -> sqlite3.Connection:
    conn = sqlite3.connect(_folder() / "room.db", timeout=30, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout=30000")
    for attempt in range(50):  # two processes switching a new file to WAL at once can meet "locked" at once
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == 49:
                raise
            time.sleep(0.02 * (1 + attempt % 5))
    return conn


# ---- who is here ------------------------------------------------------------------

def seen(actor: Actor, page: str | None = None) -> None:
    """Mark a participant or the teacher as here now (the single local user is not tracked)."""
    if actor.role == "local":
        return
    now = time.time()
    with closing(_connect()) as conn:
        conn.execute("INSERT INTO people (name, role, joined, last_seen, page) VALUES (?, ?, ?, ?, ?)"
                     " ON CONFLICT(name) DO UPDATE SET last_seen = excluded.last_seen, page = excluded.page,"
                     " role = excluded.role", (actor.name, actor.role, now, now, page))


@dataclass
class Person:
    name: str
    role: str
    joined: float | None
    last_seen: float | None
    page: str | None
    here: bool
    active: list = field(default_factory=list)  # runs queued, training or paused
    runs: int = 0
    datasets: int = 0
    data_bytes: int = 0


def people(store=None) -> list[Person]:
    """Everyone who joined or owns something, those here now first, with what each is training."""
    from ..data.catalog import user_data_usage
    from ..runs.store import ACTIVE, RunStore

    store = store or RunStore()
    now = time.time()
    with closing(_connect()) as conn:
        rows = conn.execute("SELECT * FROM people").fetchall()
    found = {r["name"]: Person(r["name"], r["role"], r["joined"], r["last_seen"], r["page"],
                               now - r["last_seen"] < HERE_FOR_S) for r in rows}
    for run in store.list():
        if not run.user:
            continue
        person = found.setdefault(run.user, Person(run.user, "participant", None, None, None, False))
        person.runs += 1
        if run.status in ACTIVE or run.status == "queued":
            person.active.append(run)
    for person in found.values():
        person.datasets, person.data_bytes = user_data_usage(Actor(person.name, person.role))
    return sorted(found.values(), key=lambda p: (not p.here, p.name.lower()))


@dataclass
class RoomLoad:
    slots: int
    training: int
    queued: int
    paused: int
    cpu_load: float | None  # 1-minute load average per core
    memory_used: float | None  # share of RAM in use


def room_load(store=None) -> RoomLoad:
    from ..runs.queue import max_jobs
    from ..runs.store import RunStore

    store = store or RunStore()
    runs = store.list(statuses=("queued", "starting", "running", "paused"))
    try:
        cores = len(os.sched_getaffinity(0))
        cpu = os.getloadavg()[0] / max(1, cores)
    except (AttributeError, OSError):
        cpu = None
    memory = None
    try:
        with open("/proc/meminfo") as fh:
            info = {line.split(":")[0]: int(line.split()[1]) for line in fh if ":" in line}
        memory = 1 - info["MemAvailable"] / info["MemTotal"]
    except (OSError, KeyError, ValueError, ZeroDivisionError):
        pass
    return RoomLoad(max_jobs(), sum(r.holds_slot for r in runs), sum(r.status == "queued" for r in runs),
                    sum(r.status == "paused" and not r.holds_slot for r in runs), cpu, memory)


# ---- the room preset ---------------------------------------------------------------

PRESET_KEYS = ("dataset", "model", "preset", "settings", "lesson")


def room_preset() -> dict:
    """The teacher's preset: any of dataset, model, preset, settings, lesson (key -> value); {} when none."""
    path = _folder() / "preset.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {k: data[k] for k in PRESET_KEYS if data.get(k)} if isinstance(data, dict) else {}


def set_room_preset(actor: Actor, *, dataset: str | None = None, model: str | None = None,
                    preset: str | None = None, settings: dict | None = None, lesson: str | None = None) -> dict:
    """Fix some or all of the room's starting point (the teacher only): the Train
    page's choices, and the lesson the Learn page opens for everyone (checked by
    :func:`aigc_core.learn.lessons.set_room_lesson`, above this layer). Checked
    by making the run config it describes, so a preset that cannot train is refused now."""
    if not actor.sees_everything:
        raise UserError("only the teacher sets the room preset")
    chosen = {"dataset": dataset, "model": model, "preset": preset, "settings": dict(settings or {}),
              "lesson": lesson}
    if model and dataset:
        from ..runs.api import make_config

        make_config(model, dataset, preset=preset, model_set=chosen["settings"], actor=actor)
    elif dataset:
        from ..data.catalog import dataset_info

        dataset_info(dataset, actor=actor)
    elif model:
        from ..registry import get_model

        spec = get_model(model)
        if preset and preset not in spec.presets:
            raise UserError(f"{spec.title} has no preset {preset!r}; presets: {', '.join(spec.presets)}")
    data = {k: v for k, v in chosen.items() if v}
    write_atomic(_folder() / "preset.json", json.dumps(data, indent=2).encode())
    return data


def set_room_lesson(actor: Actor, lesson: str | None) -> dict:
    """Point the room at one lesson (None: at none), keeping the rest of the room preset."""
    current = room_preset()
    return set_room_preset(actor, dataset=current.get("dataset"), model=current.get("model"),
                           preset=current.get("preset"), settings=current.get("settings"), lesson=lesson)


def clear_room_preset(actor: Actor) -> None:
    if not actor.sees_everything:
        raise UserError("only the teacher sets the room preset")
    (_folder() / "preset.json").unlink(missing_ok=True)


# ---- the shared wall ---------------------------------------------------------------

@dataclass
class Post:
    id: str
    run_id: str
    user: str | None
    run_name: str
    kind: str  # "image" or "text"
    text: str | None
    path: Path | None
    caption: str
    created: float
    hidden: bool


def post_to_wall(run_id: str, *, image_png: bytes | None = None, text: str | None = None, caption: str = "",
                 actor: Actor = LOCAL, store=None) -> Post:
    """Publish a sample of a run ``actor`` may see to the room's wall (a PNG, or text)."""
    from ..runs.store import RunStore

    store = store or RunStore()
    run = store.get(run_id, actor=actor)
    if (image_png is None) == (text is None):
        raise UserError("post either an image or a text to the wall")
    if image_png is not None and not image_png.startswith(b"\x89PNG\r\n\x1a\n"):
        raise UserError("only PNG images go on the wall")
    if image_png is not None and len(image_png) > 8 * 2**20:
        raise UserError("that image is larger than 8 MB; post a smaller grid")
    post_id = f"{int(time.time() * 1000):x}-{secrets.token_hex(3)}"
    file = None
    if image_png is not None:
        folder = _folder() / "wall"
        folder.mkdir(exist_ok=True)
        file = f"{post_id}.png"
        write_atomic(folder / file, image_png)
    text = None if text is None else str(text)[:4000]
    with closing(_connect()) as conn:
        conn.execute("INSERT INTO wall (id, run_id, user, run_name, kind, text, file, caption, created)"
                     " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     (post_id, run_id, actor.name, run.name, "image" if file else "text", text, file,
                      " ".join(str(caption or "").split())[:MAX_CAPTION], time.time()))
        old = conn.execute("SELECT id, file FROM wall ORDER BY created DESC LIMIT -1 OFFSET ?", (WALL_KEEP,)).fetchall()
        for row in old:
            conn.execute("DELETE FROM wall WHERE id = ?", (row["id"],))
            if row["file"]:
                (_folder() / "wall" / row["file"]).unlink(missing_ok=True)
    return wall(actor=actor, include_hidden=True, limit=1)[0]


def wall(*, actor: Actor = LOCAL, include_hidden: bool = False, limit: int = 60) -> list[Post]:
    """Wall posts, newest first; hidden ones only for the teacher who asks for them."""
    sql = "SELECT * FROM wall"
    if not (include_hidden and actor.sees_everything):
        sql += " WHERE hidden = 0"
    with closing(_connect()) as conn:
        rows = conn.execute(sql + " ORDER BY created DESC LIMIT ?", (int(limit),)).fetchall()
    folder = _folder() / "wall"
    return [Post(r["id"], r["run_id"], r["user"], r["run_name"] or r["run_id"], r["kind"], r["text"],
                 folder / r["file"] if r["file"] else None, r["caption"] or "", r["created"], bool(r["hidden"]))
            for r in rows]


def hide_post(post_id: str, hidden: bool = True, *, actor: Actor = LOCAL) -> None:
    """Hide a wall post (or show it again): the teacher, or whoever posted it."""
    with closing(_connect()) as conn:
        row = conn.execute("SELECT user FROM wall WHERE id = ?", (post_id,)).fetchone()
        if row is None:
            raise UserError("no such post on the wall (it may have been removed)")
        if not (actor.sees_everything or row["user"] == actor.name):
            raise UserError(f"this post belongs to {row['user']}; only they or the teacher can hide it")
        conn.execute("UPDATE wall SET hidden = ? WHERE id = ?", (int(bool(hidden)), post_id))


# ---- the room leaderboard ----------------------------------------------------------

def room_leaderboard(dataset: str, *, actor: Actor = LOCAL, store=None) -> dict:
    """The bake-off table over the room's published, finished runs on ``dataset``:
    ``{"runs": [Run ...], "columns": [...], "order": [run ids], "ranked_by": key}``."""
    from ..bakeoff import leaderboard, metric_info
    from ..runs.store import RunStore

    store = store or RunStore()
    runs = [r for r in store.list(statuses=("completed",), actor=actor)
            if r.dataset == dataset and r.published and r.final_metrics and can_see(actor, r.user, r.published)]
    table = leaderboard({r.id: dict(r.final_metrics) for r in runs}, metric_info())
    return {"runs": runs, **table}


def published_datasets(*, actor: Actor = LOCAL, store=None) -> list[str]:
    """Data sets that have published, finished runs (the leaderboard's choices), most runs first."""
    from ..runs.store import RunStore

    store = store or RunStore()
    counts: dict[str, int] = {}
    for r in store.list(statuses=("completed",), actor=actor):
        if r.published:
            counts[r.dataset] = counts.get(r.dataset, 0) + 1
    return sorted(counts, key=lambda d: (-counts[d], d))
