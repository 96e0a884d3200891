"""The list of data sets a user can pick: built-ins and registered uploads.

Built-in sets register themselves with :func:`builtin`; they are built on first
use (deterministic for their seed) and cached under ``$AIGC_HOME/cache``.
Uploads are imported by the data modules and saved with :func:`save_uploaded`
under ``$AIGC_HOME/datasets/<name>/`` (``meta.json`` plus a data file); they
persist until :func:`delete_dataset`.

An uploaded set belongs to whoever saved it (``owner`` in its ``meta.json``;
a set from before workshop mode is the single local user's); built-ins belong
to nobody. A participant lists, trains on and deletes only their own sets,
the ones others published to the room, and the built-ins
(:mod:`aigc_core.room.policy`), and keeps at most ``AIGC_MAX_USER_DATASETS``
sets and ``AIGC_MAX_USER_BYTES`` bytes.
"""

from __future__ import annotations

import errno
import importlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from time import time_ns
from typing import Callable

from ..errors import UserError
from ..paths import datasets_dir, write_atomic
from ..room.identity import LOCAL, Actor
from ..room.policy import can_see, check_change, check_see

# Modules that define built-in sets and the loaders for uploaded kinds. Each
# registers itself on import.
DATA_MODULES = [
    "aigc_core.data.images",
    "aigc_core.data.points",
    "aigc_core.data.torchvision_sets",
    "aigc_core.data.text",
    "aigc_core.data.table",
]


@dataclass
class DatasetInfo:
    name: str
    kind: str  # image | points | text | table
    description: str
    builtin: bool
    needs_download: bool = False
    summary: dict = field(default_factory=dict)
    #: who uploaded it (None for a built-in)
    owner: str | None = None
    #: shown to the whole room
    published: bool = False


@dataclass
class _Builtin:
    info: DatasetInfo
    build: Callable[[], object]


_BUILTINS: dict[str, _Builtin] = {}
# kind -> (save(data, folder), load(folder, meta) -> data)
_UPLOAD_CODECS: dict[str, tuple[Callable, Callable]] = {}
_loaded = False


def builtin(name: str, kind: str, description: str, *, needs_download: bool = False, summary: dict | None = None):
    """Decorator: register ``fn() -> data`` as the built-in data set ``name``."""

    def wrap(fn):
        _BUILTINS[name] = _Builtin(DatasetInfo(name, kind, description, True, needs_download, dict(summary or {})), fn)
        return fn

    return wrap


def upload_codec(kind: str, save: Callable, load: Callable) -> None:
    """Register how uploaded data of ``kind`` is written to and read from its folder."""
    _UPLOAD_CODECS[kind] = (save, load)


def _ensure_loaded() -> None:
    global _loaded
    if _loaded:
        return
    from ..plugins import plugin_modules

    for mod in DATA_MODULES + plugin_modules():
        importlib.import_module(mod)
    _loaded = True


NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_name(name: str) -> str:
    """``name`` (stripped) if it may name a data set, else :class:`UserError`.

    A name becomes a folder under ``$AIGC_HOME/datasets``, so it may hold no
    path separator and cannot start with ``.`` (which also rules out ``..``).
    Every function here that takes a name calls this; so does anything that
    reads a data set name from a file a user gave us (an imported run).
    """
    name = (name or "").strip() if isinstance(name, str) else repr(name)
    if not NAME_RE.match(name):
        raise UserError(
            f"data set name {name[:80]!r} is not allowed: use 1-64 letters, digits, '_', '-' or '.', starting with "
            "a letter or digit"
        )
    return name


def free_name(wanted: str, taken: set[str] | None = None) -> str:
    """A name for a new data set, made from ``wanted`` (an upload's file name
    stem): characters a name may not hold become ``_``, and ``-2``, ``-3`` ...
    is added until no data set (built-in or uploaded) has it."""
    base = re.sub(r"[^A-Za-z0-9_.-]+", "_", (wanted or "").strip()).strip("_.-")[:56] or "my_data"
    taken = taken if taken is not None else {d.name for d in list_datasets()}
    name, i = base, 2
    while name in taken:
        name, i = f"{base}-{i}", i + 1
    return name


def _upload_info(meta: dict) -> DatasetInfo:
    return DatasetInfo(meta["name"], meta["kind"], meta.get("description", ""), False, False, meta.get("summary", {}),
                       owner=str(meta.get("owner") or "local"), published=bool(meta.get("published")))


def list_datasets(kind: str | None = None, *, actor: Actor = LOCAL) -> list[DatasetInfo]:
    """Built-ins first (in registration order), then the uploads ``actor`` may see (newest first)."""
    _ensure_loaded()
    out = [b.info for b in _BUILTINS.values()]
    uploads = []
    for meta_path in datasets_dir().glob("*/meta.json"):
        if meta_path.parent.name.startswith("."):  # a save or delete in progress
            continue
        try:
            meta = json.loads(meta_path.read_text())
            info = _upload_info(meta)
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue
        if can_see(actor, info.owner, info.published):
            uploads.append((meta.get("created", 0), info))
    out += [info for _, info in sorted(uploads, key=lambda t: -t[0])]
    if kind:
        out = [d for d in out if d.kind == kind]
    return out


def dataset_info(name: str, *, actor: Actor = LOCAL) -> DatasetInfo:
    """The data set called ``name``, if ``actor`` may see it."""
    _ensure_loaded()
    if name not in _BUILTINS:
        name = check_name(name)
    for info in list_datasets():
        if info.name == name:
            check_see(actor, info.owner, info.published, what="data set")
            return info
    raise UserError(f"no data set called {name!r}; `python -m aigc_core datasets` lists them")


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def user_data_usage(actor: Actor) -> tuple[int, int]:
    """(data sets, bytes on disk) that ``actor`` uploaded."""
    count = used = 0
    for info in list_datasets(actor=actor):
        if not info.builtin and info.owner == actor.name:
            count += 1
            used += _folder_bytes(datasets_dir() / info.name)
    return count, used


def check_room_for_upload(actor: Actor, adding_bytes: int = 0) -> None:
    """Refuse early (before an upload is read) when ``actor`` is already at a
    data-set limit; :func:`save_uploaded` checks the exact size again."""
    from ..room.limits import check_user_data

    count, used = user_data_usage(actor)
    check_user_data(actor, count, used, adding_bytes)


def publish_dataset(name: str, published: bool = True, *, actor: Actor = LOCAL) -> DatasetInfo:
    """Show an uploaded data set to the whole room (or take it back)."""
    info = dataset_info(name, actor=actor)
    if info.builtin:
        raise UserError(f"{name!r} is built in: everyone sees it already")
    check_change(actor, info.owner, what="data set")
    meta_path = datasets_dir() / info.name / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["published"] = bool(published)
    write_atomic(meta_path, json.dumps(meta, indent=2).encode())
    return _upload_info(meta)


def load_dataset(name: str):
    """Load a data set by name (building and caching a built-in on first use)."""
    _ensure_loaded()
    if name in _BUILTINS:
        return _BUILTINS[name].build()
    name = check_name(name)
    folder = datasets_dir() / name
    meta_path = folder / "meta.json"
    if not meta_path.exists():
        raise UserError(f"no data set called {name!r}; `python -m aigc_core datasets` lists them")
    meta = json.loads(meta_path.read_text())
    _, load = _UPLOAD_CODECS[meta["kind"]]
    try:
        return load(folder, meta)
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged file fails in many ways; all mean the same to a user
        raise UserError(f"the files of data set {name!r} are damaged or incomplete ({type(exc).__name__}: "
                        f"{str(exc)[:120]}); delete it on the Data page and upload it again") from exc


def save_uploaded(data, *, overwrite: bool = False, extra_meta: dict | None = None,
                  actor: Actor = LOCAL) -> DatasetInfo:
    """Persist an imported data set under its name, owned by ``actor``; refuses
    to replace a built-in, someone else's set, or (unless ``overwrite``) an
    existing upload, and a participant's set that would go over their limits.

    The files are written to a folder of their own and renamed into place
    whole, so a reader never sees half a data set. Two sessions saving the
    same name at once each write their own folder; the rename of a non-empty
    folder onto an existing non-empty one fails, so exactly one of them wins
    and the other is told the name is taken.
    """
    import time

    _ensure_loaded()
    name = check_name(data.name)
    if name in _BUILTINS:
        raise UserError(f"{name!r} is the name of a built-in data set; choose another name")
    from ..room.limits import check_user_data

    folder = datasets_dir() / name
    if folder.exists() and not overwrite:
        raise _name_taken(name)
    replaced = None
    if folder.exists():
        replaced = dataset_info(name)
        check_change(actor, replaced.owner, what="data set")
    count, used = user_data_usage(actor) if actor.role == "participant" else (0, 0)
    if replaced is not None and replaced.owner == actor.name:
        count, used = count - 1, used - _folder_bytes(folder)
    check_user_data(actor, count, used, new=True)
    save, _ = _UPLOAD_CODECS[data.kind]
    datasets_dir().mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".incoming", dir=datasets_dir()))
    try:
        save(data, tmp)
        check_user_data(actor, count, used, _folder_bytes(tmp), new=True)
        meta = dict(name=name, kind=data.kind, description=getattr(data, "description", ""),
                    summary=data.summary(), created=time.time(), **(extra_meta or {}), owner=actor.name)
        write_atomic(tmp / "meta.json", json.dumps(meta, indent=2).encode())
        old = None
        if overwrite and folder.exists():
            old = _move_aside(folder, "replaced")
        _publish(tmp, folder, name)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone already unless something failed
    return _upload_info(meta)


def _name_taken(name: str) -> UserError:
    return UserError(f"a data set called {name!r} already exists; choose another name or delete it first")


def _publish(tmp: Path, folder: Path, name: str) -> None:
    """Rename the finished ``tmp`` folder to ``folder``; fail if that name is taken.

    ``os.rename`` of a folder onto an existing non-empty folder fails (onto an
    empty one it succeeds, which loses nothing), so of two saves racing for one
    name exactly one lands.
    """
    try:
        os.rmdir(folder)  # only ever removes an empty leftover folder
    except OSError:
        pass
    try:
        os.rename(tmp, folder)
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST) or folder.exists():
            raise _name_taken(name) from None
        raise


def _move_aside(folder: Path, why: str) -> Path | None:
    """Rename ``folder`` to a hidden unique name (one atomic step) and return
    that, or None when the folder is gone already (another session deleted it)."""
    aside = folder.with_name(f".{folder.name}.{why}-{os.getpid()}-{time_ns()}")
    try:
        os.rename(folder, aside)
    except FileNotFoundError:
        return None
    return aside


def delete_dataset(name: str, *, actor: Actor = LOCAL) -> None:
    _ensure_loaded()
    if name in _BUILTINS:
        raise UserError(f"{name!r} is built in and cannot be deleted")
    name = check_name(name)
    folder = datasets_dir() / name
    if not (folder / "meta.json").exists():
        raise UserError(f"no uploaded data set called {name!r}")
    info = dataset_info(name, actor=actor)
    check_change(actor, info.owner, what="data set")
    # out of sight in one step, so nobody loads a half-deleted set
    aside = _move_aside(folder, "deleting")
    if aside is None:
        raise UserError(f"no uploaded data set called {name!r} (another session deleted it just now)")
    shutil.rmtree(aside, ignore_errors=True)
