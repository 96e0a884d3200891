"""Keep the best, stop early: held-out checks during training, the best checkpoint
by held-out loss beside the last one, sampling and export from the best, early
stopping, and a resumed worker that remembers the best."""

from __future__ import annotations

import io
import json
import random
import zipfile

import pytest

from aigc_core.config import TrainSettings
from aigc_core.data.base import TextData
from aigc_core.data.catalog import list_datasets, save_uploaded
from aigc_core.registry import get_model
from aigc_core.runs import api
from aigc_core.runs.checkpoint import BEST_NAME, best_checkpoint, latest_checkpoint, load_state, save_best
from aigc_core.runs.queue import claim
from aigc_core.runs.store import RunStore
from aigc_core.sample import load_for_sampling
from aigc_core.train.early_stop import HeldOutWatch
from aigc_core.train.loop import train_run

from tiny_runs import QUIET, open_page

WORDS = ["the ", "cat ", "sat ", "on ", "mat ", "dog ", "ran ", "far "]
#: a model big enough to memorise 600 characters of random words within a hundred steps
MEMORISER = dict(n_layer=2, n_head=2, n_embd=64, block_size=32, batch_size=16, lr=1e-2, warmup_steps=5,
                 dropout=0.0, weight_decay=0.0)


def small_text(name: str = "random_words", words: int = 150) -> str:
    if name not in {d.name for d in list_datasets()}:
        rng = random.Random(0)
        save_uploaded(TextData(name, "".join(rng.choice(WORDS) for _ in range(words)), mode="stream"))
    return name


def text_run(steps: int, **train_set):
    settings = dict(steps=steps, log_every=10, sample_every=1000, checkpoint_every=1000, eval_every=10, patience=3)
    settings.update(train_set)
    cfg = api.make_config("char_gpt", small_text(), model_set=MEMORISER, train_set=settings)
    return api.run_in_foreground(cfg, **QUIET)


def held_out_curve(run) -> dict[int, float]:
    frame = RunStore().metrics(run.id, keys=["val_loss"]).sort_values("wall")
    return dict(zip(frame["step"].astype(int), frame["value"]))


# ---- the rule ------------------------------------------------------------------------

def watch(patience=3, min_delta=0.01) -> HeldOutWatch:
    return HeldOutWatch("val_loss", min_delta, patience)


def test_a_held_out_loss_that_rises_stops_after_patience_checks_and_a_falling_one_never_does():
    rising = watch()
    for step, value in enumerate([2.0, 1.5, 1.6, 1.7, 1.8, 1.9], start=1):
        improved = rising.check(step * 10, {"val_loss": value})
        assert improved == (step <= 2)
        if rising.exhausted:
            break
    assert (step, rising.best, rising.best_step) == (5, 1.5, 20)

    falling = watch()
    for step, value in enumerate([2.0, 1.9, 1.8, 1.7, 1.6, 1.5, 1.4], start=1):
        assert falling.check(step * 10, {"val_loss": value})
        assert not falling.exhausted


def test_gains_smaller_than_min_delta_move_the_best_but_count_as_no_improvement():
    w = watch(patience=3, min_delta=0.01)
    w.check(10, {"val_loss": 1.0})
    for step in (20, 30, 40):
        assert w.check(step, {"val_loss": w.best - 0.001})  # a new best checkpoint each time ...
    assert w.best_step == 40 and w.exhausted             # ... but three checks without a real improvement


def test_a_missing_or_nan_held_out_loss_is_never_the_best():
    w = watch()
    assert not w.check(10, {}) and not w.check(20, {"val_loss": float("nan")})
    assert w.best_step is None and not w.exhausted  # nothing to fall back on: never stops on that


def test_early_stop_is_on_by_default_for_text_and_off_for_image_models_with_a_held_out_loss(tmp_path):
    settings = TrainSettings()
    assert settings.early_stop == "auto"
    text = HeldOutWatch.for_run(get_model("char_gpt"), settings, None, 0)
    vae = HeldOutWatch.for_run(get_model("vae"), settings, None, 0)
    assert text.patience == settings.patience and vae.patience is None and vae.key == "val_loss"
    assert HeldOutWatch.for_run(get_model("dcgan"), settings, None, 0) is None  # no likelihood: keeps the last


# ---- a run ---------------------------------------------------------------------------

def test_a_text_run_that_memorises_stops_early_and_keeps_its_best_weights(fresh_home):
    run = text_run(400)
    curve = held_out_curve(run)
    best = best_checkpoint(run.folder.checkpoints)
    assert run.status == "completed" and run.step < 400, run.message
    assert run.message.startswith("stopped early at step")
    assert best["step"] < run.step and best["value"] == pytest.approx(min(curve.values()))
    assert curve[run.step] > best["value"]                       # the last weights are worse on held-out text
    assert latest_checkpoint(run.folder.checkpoints)[0] == run.step  # and are kept as well
    # the final numbers describe the best weights, and say which step they come from
    assert run.final_metrics["val_loss"] == pytest.approx(best["value"])
    assert run.final_metrics["best_step"] == best["step"]
    assert run.final_metrics["last_val_loss"] == pytest.approx(curve[run.step])


def test_a_run_whose_held_out_loss_still_falls_trains_its_whole_budget(fresh_home):
    run = text_run(40)
    assert run.status == "completed" and run.step == 40 and run.message is None
    assert sorted(held_out_curve(run)) == [10, 20, 30, 40]


def test_sampling_and_export_use_the_best_checkpoint_unless_asked_for_the_last(fresh_home):
    run = text_run(400)
    best, last = best_checkpoint(run.folder.checkpoints), latest_checkpoint(run.folder.checkpoints)
    assert best["step"] != last[0]
    assert load_for_sampling(run.id)[2] == best["step"]
    assert load_for_sampling(run.id, checkpoint="last")[2] == last[0]

    with zipfile.ZipFile(io.BytesIO(api.export_run(run.id))) as zf:
        assert zf.read("model.safetensors") == best["path"].read_bytes()
        assert json.loads(zf.read("config.json"))["step"] == best["step"]
        assert f"the best checkpoint by held-out loss, step {best['step']}" in zf.read("MODEL_CARD.md").decode()
        assert len(zf.namelist()) <= api.MAX_IMPORT_MEMBERS
    with zipfile.ZipFile(io.BytesIO(api.export_run(run.id, checkpoint="last"))) as zf:
        assert zf.read("model.safetensors") == last[1].read_bytes()
    imported = api.import_run(api.export_run(run.id), "run.zip")
    assert imported.step == best["step"] and load_for_sampling(imported.id)[2] == best["step"]


def test_the_command_line_samples_and_exports_the_best_or_the_last(fresh_home, tmp_path, capsys):
    from aigc_core.cli import main

    run = text_run(400)
    best, last = best_checkpoint(run.folder.checkpoints), latest_checkpoint(run.folder.checkpoints)
    assert main(["sample", "--run", run.id, "-n", "2", "--out", str(tmp_path / "best.txt"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["step"] == best["step"]
    assert main(["sample", "--run", run.id, "-n", "2", "--out", str(tmp_path / "last.txt"), "--json",
                 "--checkpoint", "last"]) == 0
    assert json.loads(capsys.readouterr().out)["step"] == last[0]
    assert main(["export", "--run", run.id, "--out", str(tmp_path / "last.zip"), "--checkpoint", "last"]) == 0
    with zipfile.ZipFile(tmp_path / "last.zip") as zf:
        assert json.loads(zf.read("config.json"))["step"] == last[0]


def test_a_vae_run_keeps_its_best_checkpoint_but_trains_its_whole_budget(fresh_home):
    from tiny_runs import tiny_images

    cfg = api.make_config("vae", tiny_images(), model_set=dict(hidden=32, latent_dim=4, batch_size=8),
                          train_set=dict(steps=30, log_every=5, sample_every=10, checkpoint_every=10, eval_every=5,
                                         patience=1, min_delta=10.0))  # every check "fails" to improve by 10 nats
    run = api.run_in_foreground(cfg, **QUIET)
    best = best_checkpoint(run.folder.checkpoints)
    assert run.step == 30 and run.message is None  # early stop is off for image models unless asked for
    assert best is not None and best["key"] == "val_loss" and run.final_metrics["best_step"] == best["step"]
    assert sorted(held_out_curve(run)) == [5, 10, 15, 20, 25, 30]


def test_a_gan_run_has_no_best_checkpoint_and_samples_from_its_last(fresh_home):
    from tiny_runs import dcgan_run

    run = dcgan_run(steps=20)
    assert not (run.folder.checkpoints / BEST_NAME).exists() and "best_step" not in run.final_metrics
    assert load_for_sampling(run.id)[2] == 20


def test_a_resumed_run_remembers_the_best_so_far(fresh_home):
    run = text_run(30, early_stop="off")
    first = best_checkpoint(run.folder.checkpoints)
    # make the saved best unbeatable, then train on: the resumed worker must not replace it
    state, _ = load_state(first["path"])
    save_best(run.folder.checkpoints, first["step"], state, "val_loss", 0.0, {**first["held_out"], "val_loss": 0.0})
    store = RunStore()
    config = {**run.config, "train": {**run.config["train"], "steps": 60}}
    store.update(run.id, status="queued", config=config, total_steps=60)
    assert claim(store, run.id) == [run.id]
    assert train_run(run.id, store) == "completed"
    done = store.get(run.id)
    kept = best_checkpoint(done.folder.checkpoints)
    assert done.step == 60 and (kept["step"], kept["value"]) == (first["step"], 0.0)
    assert done.final_metrics["val_loss"] == 0.0 and done.final_metrics["best_step"] == first["step"]


def test_a_resumed_run_counts_the_checks_since_its_best_towards_the_patience(tmp_path):
    import torch

    save_best(tmp_path, 40, {"w": torch.zeros(1)}, "val_loss", 1.25, {"val_loss": 1.25})
    resumed = HeldOutWatch.for_run(get_model("char_gpt"), TrainSettings(eval_every=10, patience=5),
                                   best_checkpoint(tmp_path), 70)
    assert (resumed.best, resumed.best_step, resumed.since_best) == (1.25, 40, 3)


def test_the_train_page_marks_the_best_checkpoint_on_the_held_out_curve(fresh_home):
    run = text_run(400)
    best = best_checkpoint(run.folder.checkpoints)
    at = open_page("pages/train.py", run.id)
    assert not at.exception
    specs = [c.proto.spec for c in at.get("plotly_chart")]
    bits = next(s for s in specs if "Bits per character" in s)
    assert f"best checkpoint: step {best['step']}" in bits and '"symbol":"star"' in bits.replace(" ", "")
    assert any("stopped early at step" in s.value for s in at.success)


def test_the_gallery_offers_the_best_or_the_last_weights_and_the_compare_page_stars_the_best(fresh_home):
    run = text_run(400)
    best, last = best_checkpoint(run.folder.checkpoints), latest_checkpoint(run.folder.checkpoints)
    at = open_page("pages/gallery.py", run.id)
    assert not at.exception
    choice = at.get("button_group")[0] if at.get("button_group") else None
    assert choice is not None and "g_checkpoint" in str(choice.proto.id)
    text = str(choice.proto)
    assert f"Best: step {best['step']:,}" in text and f"Last: step {last[0]:,}" in text

    short = text_run(40)
    at = open_page("pages/compare.py", run.id)
    at.multiselect[0].set_value([run.id, short.id]).run()
    at.selectbox(key="c_metric").set_value("val_bpc").run()
    assert not at.exception
    starred = [c.proto.spec for c in at.get("plotly_chart") if '"symbol":"star"' in c.proto.spec.replace(" ", "")]
    assert starred, "the held-out curve (val_bpc) should star the best checkpoint"


def test_repair_keeps_the_best_checkpoint_and_the_numbers_that_describe_it(fresh_home):
    from aigc_core.runs.repair import repair

    run = text_run(400)
    best = best_checkpoint(run.folder.checkpoints)
    store = RunStore()
    for suffix in ("", "-wal", "-shm"):
        (store.path.parent / f"{store.path.name}{suffix}").unlink(missing_ok=True)
    assert [r["run_id"] for r in repair().recovered] == [run.id]
    back = RunStore().get(run.id)
    assert back.final_metrics["best_step"] == best["step"] and back.final_metrics == run.final_metrics
    assert load_for_sampling(run.id)[2] == best["step"]
