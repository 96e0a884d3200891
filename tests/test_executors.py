"""The executor seam: AIGC_EXECUTOR picks what trains a run; the local one stays the default and needs no Ray."""

from __future__ import annotations

import sys

import pytest

from aigc_core.cli import main
from aigc_core.errors import UserError
from aigc_core.runs import api
from aigc_core.runs.executors import LocalExecutor, executor_name, executor_of, get_executor
from aigc_core.runs.store import RunStore


def tiny_config():
    return api.make_config("tiny_line", "tiny_points", train_set={"steps": 10, "log_every": 5})


def test_the_local_executor_is_the_default_and_records_itself_on_the_run(fresh_home, monkeypatch):
    monkeypatch.delenv("AIGC_EXECUTOR", raising=False)
    assert executor_name() == "local" and isinstance(get_executor(), LocalExecutor)
    store = RunStore()
    run = api.submit(tiny_config(), store=store)
    assert run.executor == "local" and run.pid and isinstance(executor_of(run), LocalExecutor)


def test_an_unknown_executor_is_a_user_error_naming_the_choices(monkeypatch):
    monkeypatch.setenv("AIGC_EXECUTOR", "slurm")
    with pytest.raises(UserError, match="local, ray"):
        get_executor()


def test_without_ray_installed_the_ray_executor_says_how_to_get_it_and_queues_nothing(fresh_home, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    monkeypatch.setenv("AIGC_EXECUTOR", "ray")
    with pytest.raises(UserError, match=r"pip install -r requirements-cluster.txt"):
        get_executor()
    assert main(["train", "--model", "tiny_line", "--dataset", "tiny_points", "--steps", "5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: AIGC_EXECUTOR=ray needs Ray")
    assert RunStore().list() == []  # the foreground run was refused before it was made
    assert main(["train", "--model", "tiny_line", "--dataset", "tiny_points", "--steps", "5", "--detach"]) == 2
    assert "requirements-cluster.txt" in capsys.readouterr().err
    assert RunStore().list() == []


def test_an_existing_runs_db_gains_the_executor_column_and_its_runs_count_as_local(tmp_path):
    import sqlite3

    from aigc_core.runs import store as store_module

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(store_module.SCHEMA.replace("    executor TEXT,\n", ""))
    conn.execute("INSERT INTO runs (id, name, model, family, dataset, data_kind, status, config, created)"
                 " VALUES ('old', 'old run', 'tiny_line', 'toy', 'tiny_points', 'points', 'completed', '{}', 0)")
    conn.commit()
    conn.close()
    run = RunStore(path).get("old")
    assert run.executor is None and run.name == "old run"


def test_the_train_page_without_ray_installed_says_how_to_get_it(fresh_home, monkeypatch):
    from tests.tiny_runs import open_page

    monkeypatch.setitem(sys.modules, "ray", None)
    monkeypatch.setenv("AIGC_EXECUTOR", "ray")
    at = open_page("pages/train.py")
    assert not at.exception
    assert any("pip install -r requirements-cluster.txt" in e.value for e in at.error)
