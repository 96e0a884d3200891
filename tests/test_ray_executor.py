"""Runs on a Ray cluster (AIGC_EXECUTOR=ray): a local Ray with two CPUs, shared by this module."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install -r requirements-cluster.txt)")

from aigc_core.cli import main  # noqa: E402
from aigc_core.runs import api  # noqa: E402
from aigc_core.runs.executors import get_executor  # noqa: E402
from aigc_core.runs.checkpoint import latest_checkpoint  # noqa: E402
from aigc_core.runs.store import RunStore  # noqa: E402
from tests.tiny_runs import tiny_line_config, wait_for  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


tiny_config = functools.partial(tiny_line_config, seed=3)


@pytest.fixture(scope="module")
def on_ray(tmp_path_factory):
    """One local Ray (two CPUs) and one workspace whose runs go to it, shared by this module (starting
    Ray and the workspace's head actor takes seconds); both are gone afterwards."""
    from aigc_core.runs.ray_executor import head_store

    env = pytest.MonkeyPatch()
    env.setenv("AIGC_HOME", str(tmp_path_factory.mktemp("ray_home")))
    env.setenv("AIGC_EXECUTOR", "ray")
    env.setenv("AIGC_TRAIN_THREADS", "1")  # what each executor's worker uses: the same in both
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
        head = head_store(create=False)
        if head is not None:
            ray.kill(head)
    finally:
        ray.shutdown()
        env.undo()


def loss_curve(store: RunStore, run_id: str) -> list[tuple[int, float]]:
    frame = store.metrics(run_id, keys=["loss"])
    return list(zip(frame.step.tolist(), frame.value.tolist()))


def test_the_same_run_gives_the_same_losses_through_the_local_and_the_ray_executor(on_ray, monkeypatch):
    store = RunStore()
    monkeypatch.setenv("AIGC_EXECUTOR", "local")
    local = api.submit(tiny_config(), store=store)
    assert wait_for(lambda: store.get(local.id).status == "completed"), store.get(local.id)
    # a finished worker hands its slot on as it exits, with its own executor: let it go before switching
    assert wait_for(lambda: not get_executor("local").alive(store.get(local.id)))
    monkeypatch.setenv("AIGC_EXECUTOR", "ray")
    remote = api.submit(tiny_config(), store=store)
    assert remote.executor == "ray"
    assert wait_for(lambda: store.get(remote.id).status == "completed"), store.get(remote.id)

    here, there = loss_curve(store, local.id), loss_curve(store, remote.id)
    assert [s for s, _ in there] == [s for s, _ in here] == list(range(5, 41, 5))
    assert [v for _, v in there] == pytest.approx([v for _, v in here], rel=1e-5)
    done = store.get(remote.id)
    # written by the head's actor into this workspace, although the worker trained in a scratch folder of its own
    assert done.step == 40 and done.final_metrics
    assert latest_checkpoint(done.folder.checkpoints)[0] == 40
    assert [s for s, _ in done.folder.frames()] == [0, 10, 20, 30, 40]
    assert [row[0] for row in done.folder.read_metrics()][-1] == 40


def test_pause_resume_and_stop_reach_a_run_on_ray(on_ray):
    store = RunStore()
    run = api.submit(tiny_config(steps=3000, step_sleep=0.01), store=store)
    assert wait_for(lambda: store.get(run.id).status == "running"), store.get(run.id)
    assert get_executor().alive(store.get(run.id))
    api.control(run.id, "pause", store)
    assert wait_for(lambda: store.get(run.id).status == "paused", timeout=15)
    paused_at = store.get(run.id).step
    time.sleep(1.0)
    assert store.get(run.id).step == paused_at
    api.control(run.id, "resume", store)
    assert wait_for(lambda: store.get(run.id).step > paused_at + 10, timeout=15)
    api.control(run.id, "stop", store)
    assert wait_for(lambda: store.get(run.id).status == "stopped", timeout=15)
    stopped = store.get(run.id)
    assert stopped.step < 3000
    assert latest_checkpoint(stopped.folder.checkpoints)[0] == stopped.step
    assert wait_for(lambda: not get_executor().alive(stopped), timeout=10)


def test_train_in_the_foreground_follows_its_run_on_ray_to_the_end(on_ray, capsys):
    assert main(["train", "--model", "tiny_line", "--dataset", "tiny_points", "--steps", "30", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["status"] == "completed" and shown["step"] == 30
    assert RunStore().get(shown["run_id"]).executor == "ray"


def test_a_run_waiting_for_a_node_with_room_is_stopped_before_it_starts(on_ray, monkeypatch):
    monkeypatch.setenv("AIGC_RAY_CPUS_PER_RUN", "3")  # more than the cluster's two cores: Ray can place it nowhere
    store = RunStore()
    run = api.submit(tiny_config(), store=store)
    assert run.status == "starting" and run.executor == "ray"
    time.sleep(1.0)
    api.control(run.id, "stop", store)
    stopped = store.get(run.id)
    assert (stopped.status, stopped.step, stopped.claim) == ("stopped", 0, None)
    assert wait_for(lambda: not get_executor().alive(stopped), timeout=5)


def test_a_killed_ray_worker_is_started_again_and_resumes_from_its_last_checkpoint(on_ray):
    store = RunStore()
    run = api.submit(tiny_config(steps=200, step_sleep=0.02), store=store)
    assert wait_for(lambda: store.get(run.id).step >= 60 and store.get(run.id).pid), store.get(run.id)
    os.kill(store.get(run.id).pid, signal.SIGKILL)
    killed_at = store.get(run.id).step
    assert wait_for(lambda: store.get(run.id).status == "completed", timeout=90), store.get(run.id)
    done = store.get(run.id)
    assert done.step == 200
    assert "Ray's retry continued it from the last checkpoint" in done.message
    steps = [s for s, _ in loss_curve(store, run.id)]
    # the second worker began at a checkpoint (every 10 steps) at or before the kill, not at step 0
    assert steps[-1] == 200 and steps.count(5) == 1 and killed_at >= 60


@pytest.mark.slow  # two runs and a fine-tune's transfer of weights: beyond this module's default time
def test_a_fine_tune_on_ray_starts_from_its_parents_weights_on_the_head(on_ray):
    from aigc_core.improve import finetune_config

    store = RunStore()
    parent = api.submit(tiny_config(steps=60), store=store)
    assert wait_for(lambda: store.get(parent.id).status == "completed"), store.get(parent.id)
    child = api.submit(finetune_config(parent.id, train_set={"steps": 10, "log_every": 5}), store=store)
    assert wait_for(lambda: store.get(child.id).status == "completed"), store.get(child.id)
    # the parent's weights came from the head's run folder: the child starts where the parent ended, not afresh
    assert loss_curve(store, child.id)[0][1] < loss_curve(store, parent.id)[0][1] / 3


@pytest.mark.slow  # a tabular model and its end-of-run evaluation
def test_a_run_on_ray_trains_on_a_data_set_uploaded_to_the_head(on_ray):
    from tests.tiny_runs import tiny_table

    store = RunStore()
    config = api.make_config("tab_vae", tiny_table(), train_set={"steps": 10, "log_every": 5, "max_seconds": 0})
    run = api.submit(config, store=store)
    assert wait_for(lambda: store.get(run.id).status in ("completed", "failed"), timeout=90), store.get(run.id)
    done = store.get(run.id)
    assert (done.status, done.step) == ("completed", 10), done.message


@pytest.mark.slow  # a second Python process joins the cluster: about 35 s on the shared 2-core machine
def test_a_run_started_by_a_studio_that_then_stopped_trains_on_and_is_found_again(on_ray):
    """The studio process that submitted the run exits at once; the run is the head actor's, not its."""
    script = ("import json; from aigc_core.runs import api;"
              "cfg = api.make_config('tiny_line', 'tiny_points', model_set={'step_sleep': 0.02},"
              " train_set={'steps': 150, 'log_every': 5, 'checkpoint_every': 10});"
              "print(json.dumps({'run': api.submit(cfg).id}))")
    # it joins the cluster by address, as a studio on a cluster's head does (and ships the package to it)
    env = {**os.environ, "PYTHONPATH": str(REPO), "AIGC_PLUGINS": "tests.plugin_tiny", "AIGC_RAY_ADDRESS": on_ray}
    out = subprocess.run([sys.executable, "-c", script], env=env, cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    run_id = json.loads(out.stdout.strip().splitlines()[-1])["run"]
    store = RunStore()  # the restarted studio
    assert wait_for(lambda: store.get(run_id).status == "completed", timeout=90), store.get(run_id)
    assert store.get(run_id).step == 150 and store.refresh() == []
