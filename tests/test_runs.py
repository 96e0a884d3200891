"""The run machinery: configs, the loop, checkpoints, the queue, workers, control."""

from __future__ import annotations

import functools
import os
import signal
import time

import pytest
import torch

from aigc_core.errors import UserError
from aigc_core.runs import api
from aigc_core.runs.checkpoint import latest_checkpoint, load_state, state_to_bytes
from aigc_core.runs.store import RunStore
from tests.tiny_runs import tiny_line_config, wait_for


def quiet(_msg):
    pass


tiny_config = tiny_line_config
wait_for = functools.partial(wait_for, every=0.2)


def test_config_merges_preset_then_user_values():
    cfg = api.make_config("tiny_line", "tiny_points", preset="Quick", train_set={"seed": 7})
    assert cfg["train"]["steps"] == 50 and cfg["train"]["seed"] == 7
    assert cfg["model_config"]["lr"] == 0.05


def test_unknown_setting_and_missing_budget_are_user_errors():
    with pytest.raises(UserError, match="unknown setting"):
        api.make_config("tiny_line", "tiny_points", model_set={"learning_rate": 1})
    with pytest.raises(UserError, match="budget"):
        api.make_config("tiny_line", "tiny_points", train_set={"steps": 0, "max_seconds": 0})
    with pytest.raises(UserError, match="at least"):
        api.make_config("tiny_line", "tiny_points", train_set={"steps": -5})


def test_model_refuses_data_of_another_kind(fresh_home):
    from aigc_core.data.base import TextData
    from aigc_core.data.catalog import _UPLOAD_CODECS

    if "text" not in _UPLOAD_CODECS:
        pytest.skip("text data not registered")
    from aigc_core.data.catalog import save_uploaded

    save_uploaded(TextData("some_text", "hello world\n" * 50))
    with pytest.raises(UserError, match="points data"):
        api.make_config("tiny_line", "some_text", train_set={"steps": 5})


def test_foreground_run_completes_with_metrics_frames_and_checkpoint(fresh_home):
    store = RunStore()
    run = api.run_in_foreground(tiny_config(), store=store, echo=quiet)
    assert run.status == "completed", run.message
    assert run.step == 40
    df = store.metrics(run.id)
    losses = df[df.key == "loss"]
    assert list(losses.step) == [5, 10, 15, 20, 25, 30, 35, 40]
    assert losses.value.iloc[-1] < losses.value.iloc[0]
    assert {"step_time_ms", "samples_per_s"} <= set(df.key)
    assert "weight_error" in run.final_metrics
    assert latest_checkpoint(run.folder / "checkpoints")[0] == 40
    frames = sorted(p.name for p in (run.folder / "samples").iterdir())
    assert frames[0] == "step_00000000.txt" and frames[-1] == "step_00000040.txt"
    # "metrics after step S" is what the live chart asks for
    assert set(store.metrics(run.id, after_step=30).step) == {35, 40}


def test_nan_loss_stops_the_run_with_a_plain_reason(fresh_home):
    run = api.run_in_foreground(tiny_config(explode_at=12), echo=quiet)
    assert run.status == "failed"
    assert run.message.startswith("the regression loss became NaN at step 15; try a lower learning rate")


def test_time_budget_stops_the_run(fresh_home):
    run = api.run_in_foreground(tiny_config(steps=0, max_seconds=1.0, step_sleep=0.01), echo=quiet)
    assert run.status == "completed"
    assert 1.0 <= run.train_seconds < 3.0
    assert 10 < run.step < 110


def test_checkpoint_round_trip_keeps_optimiser_state_and_rng():
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, betas=(0.5, 0.999))
    net(torch.randn(4, 3)).sum().backward()
    opt.step()
    gen = torch.Generator().manual_seed(3)
    state = {"nets": {"n": net.state_dict()}, "optims": {"n": opt.state_dict()}, "rng": gen.get_state(),
             "extra": {"vocab": ["a", "b"], "fitted": torch.ones(2)}}
    path = "/tmp/aigc_ckpt_test.safetensors"
    with open(path, "wb") as fh:
        fh.write(state_to_bytes(state))
    back, _ = load_state(path)
    opt2 = torch.optim.Adam(torch.nn.Linear(3, 2).parameters(), lr=1.0)
    opt2.load_state_dict(back["optims"]["n"])
    assert opt2.param_groups[0]["lr"] == 1e-3 and tuple(opt2.param_groups[0]["betas"]) == (0.5, 0.999)
    assert torch.equal(opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    g2 = torch.Generator()
    g2.set_state(back["rng"])
    assert torch.equal(torch.rand(3, generator=g2), torch.rand(3, generator=gen))
    assert back["extra"]["vocab"] == ["a", "b"]


def test_pickled_checkpoints_are_refused_with_a_reason(tmp_path):
    bad = tmp_path / "model.pt"
    torch.save({"w": torch.ones(1)}, bad)
    with pytest.raises(UserError, match="never opens pickles"):
        load_state(bad)
    with pytest.raises(UserError, match="never opens pickles"):
        api.import_run(bad.read_bytes(), "model.pt")
    fake = tmp_path / "weights.safetensors"
    fake.write_bytes(b"not really")
    with pytest.raises(UserError, match="not a valid .safetensors"):
        load_state(fake)


def test_export_and_import_round_trip(fresh_home):
    from aigc_core.sample import load_for_sampling

    run = api.run_in_foreground(tiny_config(), echo=quiet)
    blob = api.export_run(run.id)
    imported = api.import_run(blob, "export.zip")
    assert imported.status == "completed" and imported.step == run.step
    a, _, _ = load_for_sampling(run.id)
    b, _, _ = load_for_sampling(imported.id)
    assert torch.equal(a.sample(5, seed=1), b.sample(5, seed=1))


def test_detached_run_trains_in_a_worker_process(fresh_home):
    store = RunStore()
    run = api.submit(tiny_config(), store=store)
    assert run.status == "starting" and run.pid
    assert wait_for(lambda: store.get(run.id).status == "completed"), store.get(run.id)
    assert store.get(run.id).step == 40


def test_second_run_waits_in_the_queue_with_a_limit_of_one(fresh_home, monkeypatch):
    monkeypatch.setenv("AIGC_MAX_JOBS", "1")
    store = RunStore()
    first = api.submit(tiny_config(steps=60, step_sleep=0.03), store=store)
    second = api.submit(tiny_config(steps=10), store=store)
    assert store.get(second.id).status == "queued"
    assert wait_for(lambda: store.get(first.id).status == "running")
    assert store.get(second.id).status == "queued"
    assert wait_for(lambda: store.get(second.id).status == "completed", timeout=90), store.get(second.id)
    assert store.get(first.id).status == "completed"
    assert store.get(second.id).started >= store.get(first.id).finished - 0.5


def test_killed_worker_shows_interrupted_then_resumes_and_completes(fresh_home):
    store = RunStore()
    run = api.submit(tiny_config(steps=150, step_sleep=0.02), store=store)
    assert wait_for(lambda: store.get(run.id).step >= 40), store.get(run.id)
    os.kill(store.get(run.id).pid, signal.SIGKILL)
    assert wait_for(lambda: run.id in store.refresh() or store.get(run.id).status == "interrupted", timeout=10)
    assert store.get(run.id).status == "interrupted"
    saved = latest_checkpoint(run.folder / "checkpoints")[0]
    api.resume(run.id, store)
    assert wait_for(lambda: store.get(run.id).status == "completed", timeout=90), store.get(run.id)
    done = store.get(run.id)
    assert done.step == 150
    steps = store.metrics(run.id, keys=["loss"]).step
    assert steps.max() == 150 and saved >= 10


def test_pause_resume_and_stop_between_steps(fresh_home):
    store = RunStore()
    run = api.submit(tiny_config(steps=2000, step_sleep=0.01), store=store)
    assert wait_for(lambda: store.get(run.id).status == "running")
    store.request(run.id, "pause")
    assert wait_for(lambda: store.get(run.id).status == "paused", timeout=10)
    paused_at = store.get(run.id).step
    time.sleep(1.0)
    assert store.get(run.id).step == paused_at
    api.resume(run.id, store)
    assert wait_for(lambda: store.get(run.id).step > paused_at + 10, timeout=15)
    store.request(run.id, "stop")
    assert wait_for(lambda: store.get(run.id).status == "stopped", timeout=15)
    stopped = store.get(run.id)
    assert stopped.step < 2000
    assert latest_checkpoint(stopped.folder / "checkpoints")[0] == stopped.step


def test_stopping_a_queued_run_means_it_never_starts(fresh_home, monkeypatch):
    monkeypatch.setenv("AIGC_MAX_JOBS", "1")
    store = RunStore()
    first = api.submit(tiny_config(steps=30, step_sleep=0.02), store=store)
    second = api.submit(tiny_config(steps=10), store=store)
    store.request(second.id, "stop")
    assert wait_for(lambda: store.get(first.id).status == "completed")
    time.sleep(1)
    assert store.get(second.id).status == "stopped" and store.get(second.id).step == 0


def test_many_threads_opening_a_brand_new_workspace_at_once_all_get_a_store(tmp_path):
    """Several browser sessions opening a fresh workspace together used to meet
    "database is locked" while the database switched to WAL."""
    import threading

    from aigc_core.runs.store import RunStore

    for trial in range(5):
        path, errors = tmp_path / f"runs{trial}.db", []
        barrier = threading.Barrier(6)

        def open_store():
            barrier.wait()
            try:
                RunStore(path).list()
            except Exception as exc:  # noqa: BLE001 - collected for the assertion
                errors.append(exc)

        threads = [threading.Thread(target=open_store) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        with RunStore(path).connect() as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
