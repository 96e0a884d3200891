"""Hostile inputs and races around runs: each gets a clear message, quickly, and loses nothing saved.

Issue 10 (items 7, 8, 9, 11, 12, 13, 15) and the run-folder object of issue 13.
"""

from __future__ import annotations

import functools
import io
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest
import torch

from aigc_core.config import TrainSettings, coerce, from_dict
from aigc_core.errors import UserError
from aigc_core.paths import runs_dir, write_atomic
from aigc_core.runs import api
from aigc_core.runs import store as store_module
from aigc_core.runs.checkpoint import latest_checkpoint, state_to_bytes
from aigc_core.runs.folder import RunFolder
from aigc_core.runs.queue import claim
from aigc_core.runs.repair import repair
from aigc_core.runs.store import RunStore
from aigc_core.train.loop import train_run
from tests.tiny_runs import tiny_line_config, wait_for

REPO = Path(__file__).resolve().parent.parent


def quiet(_msg):
    pass


tiny_config = tiny_line_config
wait_for = functools.partial(wait_for, timeout=30.0, every=0.05)


def run_folders() -> list[str]:
    return sorted(p.name for p in runs_dir().iterdir())


# ---- 7. non-finite settings ---------------------------------------------------------------

@pytest.mark.parametrize("value", ["nan", "inf", "-inf", float("nan"), float("inf")])
def test_non_finite_numbers_are_refused_naming_the_setting(value):
    with pytest.raises(UserError, match="'max_seconds' must be a finite number"):
        from_dict(TrainSettings, {"max_seconds": value})
    with pytest.raises(UserError, match="'lr_g'"):
        coerce("lr_g", value, 2e-4, {"min": 0.0, "max": 1.0})
    with pytest.raises(UserError, match="'steps'"):
        coerce("steps", value, 100, {})


def test_make_config_refuses_a_nan_time_budget_and_a_nan_learning_rate(fresh_home):
    with pytest.raises(UserError, match="max_seconds"):
        api.make_config("tiny_line", "tiny_points", train_set={"steps": 5, "max_seconds": "nan"})
    with pytest.raises(UserError, match="'lr'"):
        api.make_config("tiny_line", "tiny_points", model_set={"lr": "nan"}, train_set={"steps": 5})


def test_a_failed_insert_leaves_no_orphan_run_folder(fresh_home):
    store = RunStore()
    # NaN becomes NULL in SQLite, which the NOT NULL max_seconds column refuses
    with pytest.raises(sqlite3.IntegrityError):
        store.create(model="tiny_line", family="toy", dataset="tiny_points", data_kind="points",
                     config={"train": {"steps": 5, "max_seconds": float("nan")}})
    assert run_folders() == [] and store.list() == []


# ---- 13 and 15. run ids and names ------------------------------------------------------------

def test_a_run_id_collision_draws_a_new_id_instead_of_writing_into_the_existing_run(fresh_home, monkeypatch):
    tokens = iter(["abcd", "abcd", "beef"])
    monkeypatch.setattr(store_module.secrets, "token_hex", lambda n: next(tokens))
    monkeypatch.setattr(store_module.time, "strftime", lambda fmt: "1130-120000")
    store = RunStore()
    first = store.create(model="tiny_line", family="toy", dataset="tiny_points", data_kind="points",
                         config={"who": "first", "train": {"steps": 5}})
    second = store.create(model="tiny_line", family="toy", dataset="tiny_points", data_kind="points",
                          config={"who": "second", "train": {"steps": 5}})
    assert first.id == "tiny_line-1130-120000-abcd" and second.id == "tiny_line-1130-120000-beef"
    assert json.loads(first.folder.config.read_text())["who"] == "first"
    assert json.loads(second.folder.config.read_text())["who"] == "second"


def test_run_names_are_capped_at_120_characters_when_created_and_imported(fresh_home):
    run = api.submit(tiny_config(), name="n" * 100_000, start=False)
    assert run.name == "n" * 120
    blob = _export_zip({**_exported_config(), "name": "m" * 100_000})
    imported = api.import_run(blob, "long.zip")
    assert len(imported.name) <= 120 and imported.name.endswith("(imported)")


# ---- 12. broken latest checkpoint, failed atomic writes ----------------------------------------

def test_resume_falls_back_to_the_previous_checkpoint_and_says_so(fresh_home):
    store = RunStore()
    run = api.run_in_foreground(tiny_config(), store=store, echo=quiet)
    folder = run.folder
    assert [p.name for p in sorted(folder.checkpoints.iterdir())][-1] == "step_00000040.safetensors"
    latest = folder.checkpoint(40)
    latest.write_bytes(latest.read_bytes()[:100])  # cut short, as by a full disk
    store.update(run.id, status="interrupted")
    store.request(run.id, "resume")
    assert claim(store, run.id) == [run.id]
    lines = []
    assert train_run(run.id, store, echo=lines.append) == "completed"
    done = store.get(run.id)
    assert done.step == 40
    assert "step_00000040.safetensors could not be read" in done.message
    assert "resumed from step 30" in done.message
    assert any("could not be read" in line for line in lines)
    assert (folder.checkpoints / "step_00000040.safetensors.broken").exists()
    assert latest_checkpoint(folder.checkpoints)[0] == 40  # a fresh, readable one


def test_a_failed_atomic_write_removes_its_temporary_file(tmp_path, monkeypatch):
    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    target = tmp_path / "step_00000010.safetensors"
    with pytest.raises(OSError, match="No space"):
        write_atomic(target, b"x" * 1000)
    assert list(tmp_path.iterdir()) == []


# ---- 8. double workers -------------------------------------------------------------------------

def _claimed_run(store, **train):
    run = api.submit(tiny_config(**train), store=store, start=False)
    assert claim(store, run.id) == [run.id]
    return store.get(run.id)


def test_a_stale_but_alive_worker_is_killed_before_its_run_is_marked_interrupted(fresh_home):
    store = RunStore()
    run = _claimed_run(store)
    # a worker that is alive but silent (machine asleep): its own session, like the queue's workers
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "aigc_core worker"],
                               start_new_session=True)
    try:
        store.update(run.id, status="running", pid=sleeper.pid, heartbeat=time.time() - 40)
        assert store.refresh() == [run.id]
        assert sleeper.wait(timeout=10) != 0
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
    after = store.get(run.id)
    assert after.status == "interrupted" and after.claim is None


def test_refresh_never_overwrites_a_run_that_finished_meanwhile(fresh_home, monkeypatch):
    store = RunStore()
    run = _claimed_run(store)
    store.update(run.id, status="running", heartbeat=time.time() - 40)
    looked_at = store.list(statuses=store_module.ACTIVE)  # what refresh saw ...
    store.set_status(run.id, "completed")                 # ... before the worker finished
    monkeypatch.setattr(store, "list", lambda statuses=None, data_kind=None: looked_at)
    assert store.refresh() == []
    assert store.get(run.id).status == "completed"


def test_a_worker_whose_run_was_handed_on_stops_at_once_without_writing(fresh_home):
    store = RunStore()
    run = _claimed_run(store, steps=100_000, step_sleep=0.005)
    result = []
    worker = threading.Thread(target=lambda: result.append(train_run(run.id, store)))
    worker.start()
    try:
        assert wait_for(lambda: store.get(run.id).step >= 10)
        # another process judged the worker dead, and the user pressed Resume: a new claim
        store._exec("UPDATE runs SET status = 'interrupted', claim = NULL WHERE id = ?", (run.id,))
        store.request(run.id, "resume")
        assert claim(store, run.id) == [run.id]
        handed_on = store.get(run.id)
        worker.join(timeout=10)
        assert not worker.is_alive() and result == ["lost"]
    finally:
        store._exec("UPDATE runs SET control = 'stop' WHERE id = ?", (run.id,))
        worker.join(timeout=10)
    time.sleep(2.5)  # longer than a heartbeat: the old worker's thread must not write either
    now = store.get(run.id)
    assert (now.status, now.claim, now.step, now.heartbeat) == \
        ("starting", handed_on.claim, handed_on.step, handed_on.heartbeat)
    assert store.metrics(run.id).step.max() <= handed_on.step


def test_an_existing_runs_db_without_the_claim_column_is_migrated(tmp_path):
    path = tmp_path / "old.db"
    old_schema = store_module.SCHEMA.replace(",\n    claim TEXT,\n    user TEXT,\n    published INTEGER NOT NULL DEFAULT 0\n", "\n")
    assert "claim" not in old_schema
    conn = sqlite3.connect(path)
    conn.executescript(old_schema)
    conn.execute("INSERT INTO runs (id, name, model, family, dataset, data_kind, status, config, created)"
                 " VALUES ('old', 'old run', 'tiny_line', 'toy', 'tiny_points', 'points', 'completed', '{}', 0)")
    conn.commit()
    conn.close()
    store = RunStore(path)
    assert store.get("old").claim is None and store.get("old").name == "old run"


# ---- 9. import-run: all or nothing ---------------------------------------------------------------

def _exported_config(**changes) -> dict:
    config = tiny_config()
    return {**config, "name": "a line", "step": 40, "train_seconds": 1.5, "final_metrics": {"weight_error": 0.1},
            **changes}


def _weights(meta: dict | None = None) -> bytes:
    state = {"nets": {"line": torch.nn.Linear(1, 1).state_dict()}, "optims": {}, "extra": {"n_steps": 40}}
    return state_to_bytes(state, {"model": "tiny_line", **(meta or {})})


def _export_zip(config: dict, weights: bytes | None = None, extra: dict | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("config.json", json.dumps(config))
        zf.writestr("model.safetensors", weights if weights is not None else _weights())
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return buf.getvalue()


def _nothing_imported(store) -> bool:
    return store.list() == [] and run_folders() == []


def test_import_with_damaged_checkpoint_metadata_is_a_user_error_and_leaves_no_run(fresh_home):
    from safetensors.torch import save

    store = RunStore()
    broken = save({"s.w": torch.ones(1)}, metadata={"aigc_state": "{not json", "model": "tiny_line"})
    with pytest.raises(UserError, match="damaged metadata"):
        api.import_run(_export_zip(_exported_config(), broken), "run.zip", store=store)
    assert _nothing_imported(store)
    assert claim(store) == []


@pytest.mark.parametrize("changes, message", [
    ({"dataset": "../../../../etc"}, "data set name"),
    ({"dataset": "x" * 65}, "data set name"),
    ({"model": "no_such_model"}, "no model called"),
    ({"model": {"a": 1}}, "'model' must be a model name"),
    ({"train": {"steps": 10, "max_seconds": float("nan")}}, "finite"),
    ({"train": {"steps": -3}}, "at least"),
    ({"model_config": {"lr": "fast"}}, "expects a float"),
    ({"model_config": {"warp": 9}}, "unknown setting"),
    ({"step": float("inf")}, "the step"),
    ({"final_metrics": {"fid": "lots"}}, "final metric"),
])
def test_import_validates_every_value_before_writing_anything(fresh_home, changes, message):
    store = RunStore()
    with pytest.raises(UserError, match=message):
        api.import_run(_export_zip(_exported_config(**changes)), "run.zip", store=store)
    assert _nothing_imported(store)


def test_import_refuses_too_many_members_before_reading_them(fresh_home):
    store = RunStore()
    extra = {f"notes/{i}.md": b"x" for i in range(api.MAX_IMPORT_MEMBERS)}
    with pytest.raises(UserError, match="holds 18 files"):
        api.import_run(_export_zip(_exported_config(), extra=extra), "run.zip", store=store)
    assert _nothing_imported(store)


def test_an_imported_run_appears_only_when_complete_and_is_never_claimable(fresh_home, monkeypatch):
    from aigc_core.runs import api as api_module

    store = RunStore()
    seen_mid_import = []
    real_load_state = api_module.load_state

    def watching_load_state(path, **kw):
        seen_mid_import.append((store.list(), claim(store)))
        return real_load_state(path, **kw)

    monkeypatch.setattr(api_module, "load_state", watching_load_state)
    run = api.import_run(_export_zip(_exported_config(), extra={"latest_sample.txt": "w=2"}), "run.zip", store=store)
    assert seen_mid_import == [([], [])]
    assert run.status == "completed" and run.step == 40 and run.final_metrics == {"weight_error": 0.1}
    assert run.dataset == "tiny_points" and run.config["train"]["steps"] == 40
    assert [p.name for p in run.folder.checkpoints.iterdir()] == ["step_00000040.safetensors"]
    assert run.folder.frame(40, ".txt").read_text() == "w=2"
    assert run_folders() == [run.id]


def test_import_refuses_weights_of_another_model(fresh_home):
    store = RunStore()
    with pytest.raises(UserError, match="holds a dcgan model"):
        api.import_run(_export_zip(_exported_config(), _weights({"model": "dcgan"})), "run.zip", store=store)
    assert _nothing_imported(store)


# ---- 11. lost or broken runs.db ----------------------------------------------------------------------

def _delete_db(store):
    for suffix in ("", "-wal", "-shm"):
        Path(str(store.path) + suffix).unlink(missing_ok=True)


def test_a_deleted_runs_db_is_recreated_on_the_next_call(fresh_home):
    store = RunStore()
    api.submit(tiny_config(), store=store, start=False)
    _delete_db(store)
    assert store.list() == []
    run = api.submit(tiny_config(), store=store, start=False)
    assert store.get(run.id).status == "queued"


def test_repair_rebuilds_every_run_from_its_folder(fresh_home):
    store = RunStore()
    done = api.run_in_foreground(tiny_config(), store=store, echo=quiet)
    store.rename(done.id, "my best line")
    store.rate(done.id, "row|40|0|1|", 1, {"kind": "row", "row": {"x": 1.0}})
    store.rate(done.id, "row|40|0|2|", -1, {"kind": "row"})
    store.rate(done.id, "row|40|0|3|", 1, {"kind": "row"})
    store.unrate(done.id, "row|40|0|3|")
    active = _claimed_run(store)
    store.update(active.id, status="running", step=7)
    before = store.metrics(done.id)
    done = store.get(done.id)
    _delete_db(store)

    report = repair()
    assert sorted(r["run_id"] for r in report.recovered) == sorted([done.id, active.id])
    back = store.get(done.id)
    assert (back.name, back.model, back.dataset, back.status, back.step) == \
        ("my best line", "tiny_line", "tiny_points", "completed", 40)
    assert back.final_metrics == done.final_metrics and "weight_error" in back.final_metrics
    assert back.config == done.config
    after = store.metrics(done.id)
    assert len(after) == len(before)
    assert after.sort_values(["step", "key"]).value.round(9).tolist() == \
        before.sort_values(["step", "key"]).value.round(9).tolist()
    assert {(r["item"], r["rating"]) for r in store.ratings(done.id)} == {("row|40|0|1|", 1), ("row|40|0|2|", -1)}
    assert store.ratings(done.id)[0]["payload"] == {"kind": "row", "row": {"x": 1.0}}
    was_active = store.get(active.id)
    assert was_active.status == "interrupted" and "Resume" in was_active.message
    # a second repair finds everything in place
    again = repair()
    assert again.recovered == [] and sorted(again.kept) == sorted([done.id, active.id])


def test_a_damaged_runs_db_says_to_run_repair_which_moves_it_aside(fresh_home):
    store = RunStore()
    run = api.run_in_foreground(tiny_config(steps=10), store=store, echo=quiet)
    _delete_db(store)
    store.path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(UserError, match="python -m aigc_core repair"):
        RunStore()
    with pytest.raises(UserError, match="damaged"):
        store.list()
    report = repair()
    assert Path(report.moved_aside).read_bytes().startswith(b"this is not a database")
    assert ".corrupt-" in report.moved_aside
    assert [r["run_id"] for r in report.recovered] == [run.id]
    assert RunStore().get(run.id).status == "completed"


def test_repair_from_the_command_line_prints_what_it_recovered_as_json(fresh_home):
    store = RunStore()
    run = api.run_in_foreground(tiny_config(steps=10), store=store, echo=quiet)
    store.path.write_bytes(b"garbage" * 1000)
    env = dict(os.environ, AIGC_HOME=str(fresh_home), PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "aigc_core", "repair", "--json"], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert [r["run_id"] for r in report["recovered"]] == [run.id]
    assert report["recovered"][0]["status"] == "completed" and report["recovered"][0]["step"] == 10
    assert report["moved_aside"] and report["skipped"] == []


def test_the_metrics_file_in_the_run_folder_stays_bounded(tmp_path, monkeypatch):
    from aigc_core.runs import folder as folder_module

    monkeypatch.setattr(folder_module, "MAX_METRICS_BYTES", 4000)
    folder = RunFolder(tmp_path / "run")
    folder.create()
    for step in range(1, 1001):
        folder.append_metrics(step, {"loss": 1.0 / step, "samples_per_s": 1000.0}, wall=float(step),
                              keep=step == 1000)  # the loop keeps a run's last row
    rows = list(folder.read_metrics())
    assert folder.metrics_file.stat().st_size <= 4000 + 200
    assert rows[-1][0] == 1000 and rows[0][0] <= 64  # the last row kept, the start of the curve too
    assert 20 <= len(rows) <= 60
    assert [s for s, _, _ in rows] == sorted(s for s, _, _ in rows)


# ---- the run folder owns the file names -----------------------------------------------------------------

def test_the_run_folder_names_checkpoints_frames_and_logs(tmp_path):
    folder = RunFolder(tmp_path / "r")
    folder.create()
    with pytest.raises(FileExistsError):
        folder.create()
    assert folder.checkpoint(100) == tmp_path / "r" / "checkpoints" / "step_00000100.safetensors"
    folder.frame(20, ".png").write_bytes(b"")
    folder.frame(3, ".txt").write_text("x")
    (folder.samples / "notes.md").write_text("not a frame")
    assert [s for s, _ in folder.frames()] == [3, 20] and folder.latest_frame().name == "step_00000020.png"
    assert folder.has_frame(3) and not folder.has_frame(4)
    assert folder / "config.json" == folder.config and os.fspath(folder) == str(tmp_path / "r")
    assert {folder.worker_log.name, folder.error_log.name, folder.liked.name} == {"worker.log", "error.log", "liked"}
