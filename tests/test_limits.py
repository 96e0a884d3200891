"""Limits: a model too big for the machine is refused before anything is queued,
sampling reads only weights, a run keeps a bounded film strip and metric
history, and settings that cannot work together are refused when the config is
made."""

from __future__ import annotations

import resource
import time

import pytest
import torch

from aigc_core.config import config_problems, from_dict
from aigc_core.errors import UserError
from aigc_core.registry import all_models, get_model
from aigc_core.room.limits import Limits, thinned
from aigc_core.room.model_cost import estimate
from aigc_core.runs import api, checkpoint
from aigc_core.runs.store import RunStore
from tests.test_cli import cli
from tests.tiny_runs import QUIET, finished, tiny_images, tiny_lines, tiny_table

BIG_GPT = {"n_layer": 24, "n_embd": 2048, "n_head": 16}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


# ---- model size --------------------------------------------------------------------------

def test_a_24_layer_2048_wide_char_gpt_is_refused_in_well_under_a_second_without_allocating_it():
    data = tiny_lines()
    api.make_config("char_gpt", data, preset="Quick")  # imports and the data set's first load are not the point
    before, start, cpu = peak_rss_mb(), time.perf_counter(), time.process_time()
    with pytest.raises(UserError) as refused:
        api.make_config("char_gpt", data, model_set=BIG_GPT)
    seconds, cpu, grown = time.perf_counter() - start, time.process_time() - cpu, peak_rss_mb() - before
    message = str(refused.value)
    assert "1.21 G parameters" in message and "18 GiB to train" in message, message
    assert "100 M parameters (AIGC_MAX_PARAMS)" in message and "n_embd" in message and "n_layer" in message
    # CPU time is the measure (about 0.07 s on a 2-core machine); the wall clock of a shared CI machine also
    # counts its neighbours, so it only gets a loose bound
    assert cpu < 0.5 and seconds < 5.0, f"took {seconds:.2f} s ({cpu:.2f} s of CPU time)"
    assert grown < 200, f"peak memory grew by {grown:.0f} MB (the weights alone are 4.5 GiB)"


def test_a_quick_config_passes_and_gets_the_time_ceiling_as_its_budget(monkeypatch):
    monkeypatch.setenv("AIGC_MAX_RUN_SECONDS", "600")
    config = api.make_config("char_gpt", tiny_lines(), preset="Quick")
    assert config["model_config"]["block_size"] == 64 and config["train"]["max_seconds"] == 600.0  # Quick's context
    assert api.make_config("tiny_line", "tiny_points", train_set={"max_seconds": 30})["train"]["max_seconds"] == 30


@pytest.mark.parametrize("spec", all_models(), ids=lambda s: s.name)
def test_the_meta_estimate_counts_exactly_the_parameters_the_real_trainer_builds(spec):
    from aigc_core.train.loop import build_trainer

    dataset = {"image": tiny_images, "text": tiny_lines, "table": tiny_table}.get(spec.data_kind, lambda: "tiny_points")()
    config = api.make_config(spec.name, dataset, preset="Quick" if "Quick" in spec.presets else None,
                             train_set={"steps": 10})
    cost, _, _ = estimate(config)
    _, _, real = build_trainer(config, device=torch.device("cpu"))
    assert cost.params == sum(p.numel() for net in real.nets.values() for p in net.parameters())
    assert cost.activation_bytes is not None and cost.step_bytes > cost.train_bytes >= 2 * 4 * cost.params


def test_the_environment_sets_the_limits(monkeypatch):
    data = tiny_lines()
    monkeypatch.setenv("AIGC_MAX_PARAMS", "1000")
    with pytest.raises(UserError, match=r"the limit here is 1 k parameters \(AIGC_MAX_PARAMS\)"):
        api.make_config("char_gpt", data, preset="Quick")
    monkeypatch.delenv("AIGC_MAX_PARAMS")
    monkeypatch.setenv("AIGC_MAX_STEP_MEMORY_MB", "8")
    with pytest.raises(UserError, match=r"for one training step .* activations for a batch of 512.*"
                                        r"AIGC_MAX_STEP_MEMORY_MB.*or lower batch_size"):
        api.make_config("char_gpt", data, preset="Quick", model_set={"batch_size": 512})
    api.make_config("char_gpt", data, preset="Quick")  # a batch of 16 fits in 8 MB
    monkeypatch.delenv("AIGC_MAX_STEP_MEMORY_MB")
    monkeypatch.setenv("AIGC_MAX_CHECKPOINT_MB", "1")
    with pytest.raises(UserError, match=r"per checkpoint.*AIGC_MAX_CHECKPOINT_MB"):
        api.make_config("char_gpt", data, preset="Quick")
    monkeypatch.delenv("AIGC_MAX_CHECKPOINT_MB")
    monkeypatch.setenv("AIGC_MAX_RUN_SECONDS", "20")
    assert api.make_config("tiny_line", "tiny_points")["train"]["max_seconds"] == 20
    with pytest.raises(UserError, match="at most 20 seconds here"):
        api.make_config("tiny_line", "tiny_points", train_set={"max_seconds": 60})
    monkeypatch.setenv("AIGC_MAX_RUN_SECONDS", "0")
    assert api.make_config("tiny_line", "tiny_points")["train"]["max_seconds"] == 0
    monkeypatch.setenv("AIGC_MAX_FRAMES", "lots")
    with pytest.raises(UserError, match="AIGC_MAX_FRAMES='lots' is not a number"):
        Limits.from_env()
    assert Limits.from_env({"AIGC_MAX_METRIC_POINTS": "50"}).max_metric_points == 50


def test_every_limit_is_documented_in_the_readme_settings_table():
    from dataclasses import fields
    from pathlib import Path

    table = (Path(__file__).resolve().parent.parent / "README.md").read_text().split("## Settings", 1)[1]
    for f in fields(Limits):
        assert f"| `AIGC_{f.name.upper()}` |" in table, f.name


# ---- sampling -------------------------------------------------------------------------------

def test_sampling_reads_the_networks_and_never_the_optimiser_state(monkeypatch):
    from aigc_core.sample import load_for_sampling

    run = finished("char_gpt", tiny_lines(), steps=6, n_layer=1, n_head=2, n_embd=16, batch_size=4, block_size=16)
    assert run.status == "completed", run.message
    read: list[str] = []
    real_open = checkpoint.safe_open

    class Counting:
        def __init__(self, *args, **kwargs):
            self.fh = real_open(*args, **kwargs)

        def __enter__(self):
            self.inner = self.fh.__enter__()
            return self

        def __exit__(self, *exc):
            return self.fh.__exit__(*exc)

        def get_tensor(self, key):
            read.append(key)
            return self.inner.get_tensor(key)

        def __getattr__(self, name):
            return getattr(self.inner, name)

    stored = checkpoint.load_state(checkpoint.latest_checkpoint(run.folder / "checkpoints")[1])[0]
    monkeypatch.setattr(checkpoint, "safe_open", Counting)
    trainer, _, _ = load_for_sampling(run.id)
    assert stored["optims"]["model"]["state"], "the checkpoint should hold Adam's moments for this test to mean anything"
    assert read and not [k for k in read if k.startswith(("s.optims.", "s.rng"))], read
    n_weights = sum(1 for k in read if k.startswith("s.nets."))
    assert n_weights == len(trainer.model.state_dict())
    assert len(trainer.sample(2, seed=0, length=5)) == 2


def test_sampling_refuses_a_model_over_the_ceiling_before_building_it(monkeypatch):
    import aigc_core.sample as sample

    run = finished("tiny_line", "tiny_points", steps=5)
    monkeypatch.setenv("AIGC_MAX_PARAMS", "1")
    monkeypatch.setattr(sample, "build_trainer", lambda *a, **k: pytest.fail("the model was built"))
    with pytest.raises(UserError, match=r"2 weights .* up to 1 parameters \(AIGC_MAX_PARAMS\)"):
        sample.load_for_sampling(run.id)


# ---- bounded film strip and metric history ---------------------------------------------------

@pytest.mark.parametrize("every", [1, 25, 200])
def test_thinning_keeps_the_first_and_newest_items_evenly_spread_and_under_the_bound(every):
    kept = [0]
    for step in range(every, 5000 * every, every):
        kept.append(step)
        for i in reversed(thinned(kept, 100)):
            del kept[i]
        assert len(kept) <= 100
    last = 4999 * every
    assert kept[0] == 0 and kept[-25:] == list(range(last - 24 * every, last + 1, every))
    gaps = [b - a for a, b in zip(kept, kept[1:])]
    assert max(gaps) <= last / 30 and len(kept) > 50  # spread over the whole run, not bunched at its end


def film_and_log_every_step(monkeypatch, steps: int, frames: int, points: int):
    monkeypatch.setenv("AIGC_MAX_FRAMES", str(frames))
    monkeypatch.setenv("AIGC_MAX_METRIC_POINTS", str(points))
    config = api.make_config("tiny_line", "tiny_points", train_set={
        "steps": steps, "log_every": 1, "sample_every": 1, "checkpoint_every": 1000})
    store = RunStore()
    run = api.run_in_foreground(config, store=store, **QUIET)
    assert run.status == "completed" and run.step == steps
    kept = sorted(p.name for p in (run.folder / "samples").iterdir())
    assert len(kept) <= frames and kept[0] == "step_00000000.txt" and kept[-1] == f"step_{steps:08d}.txt"
    assert int(kept[1][5:13]) <= steps // 4  # older frames are thinned, not dropped: the strip spans the run
    history = store.metrics(run.id)
    per_key = history.groupby("key")["step"]
    assert per_key.count().max() <= points and per_key.count()["loss"] > points // 2
    assert per_key.min()["loss"] == 1 and per_key.max()["loss"] == steps
    assert "weight_error" in run.final_metrics and run.final_metrics["loss"] == history[
        (history.key == "loss") & (history.step == steps)]["value"].item()


def test_a_run_logging_and_filming_every_step_keeps_a_bounded_strip_and_history(monkeypatch):
    # every step costs a few database commits and a file write: a few hundred steps stay fast
    film_and_log_every_step(monkeypatch, steps=200, frames=16, points=50)


@pytest.mark.slow
def test_thousands_of_steps_logged_and_filmed_every_step_keep_the_default_frame_bound(monkeypatch):
    film_and_log_every_step(monkeypatch, steps=3000, frames=Limits().max_frames, points=1000)


# ---- settings that cannot work together ------------------------------------------------------

def test_config_problems_come_from_field_metadata_and_the_configs_own_rules():
    cfg_cls = get_model("tiny_packs").config_cls
    assert config_problems(from_dict(cfg_cls, {})) == []
    problems = config_problems(from_dict(cfg_cls, {"batch_size": 18, "pac": 4, "lr": 0.01, "lr_end": 0.1}))
    assert problems == ["Batch size (batch_size = 18) must be a multiple of Packing (pac = 4); try 16 or 20",
                        "the final learning rate (0.1) must not be above the starting one (0.01)"]
    with pytest.raises(UserError, match=r"must be a multiple of Packing \(pac = 4\); try 16 or 20"):
        api.make_config("tiny_packs", "tiny_points", model_set={"batch_size": 18})


def test_train_with_settings_that_cannot_work_together_exits_2_with_one_error_line(tmp_path):
    proc = cli("train", "--model", "tiny_packs", "--dataset", "tiny_points", "--steps", "5",
               "--set", "batch_size=10", "--set", "pac=4", home=tmp_path, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines == ["error: Batch size (batch_size = 10) must be a multiple of Packing (pac = 4); try 8 or 12"]
    assert RunStore(tmp_path / "runs.db").list() == []


@pytest.mark.parametrize("model, dataset, settings, message", [
    ("char_gpt", tiny_lines, {"n_embd": 100, "n_head": 3}, r"multiple of .*(heads|n_head)"),
    ("tab_gan", tiny_table, {"batch_size": 205, "pac": 10}, r"multiple of .*(packing|pac)"),
])
def test_a_clash_a_trainer_refuses_is_refused_when_the_config_is_made_not_by_a_failed_run(
        fresh_home, model, dataset, settings, message):
    with pytest.raises(UserError, match=message):
        api.make_config(model, dataset(), preset="Quick", model_set=settings)
    assert RunStore().list() == []
