"""Starter models: made reproducibly, shipped small, installed once, damaged ones refused."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from PIL import Image

from aigc_core import starters
from aigc_core.errors import UserError
from aigc_core.runs.store import RunStore
from aigc_core.sample import load_for_sampling

QUIET = dict(echo=lambda _msg: None)
MB = 1024 * 1024


@pytest.fixture(scope="module")
def tiny_starters(tmp_path_factory):
    """Every starter trained for a few steps (seconds), as make-starters writes them."""
    out = tmp_path_factory.mktemp("starters")
    starters.make_starters(out, steps=4, **QUIET)
    return out


def folder_bytes(folder) -> int:
    return sum(p.stat().st_size for p in folder.iterdir())


def test_make_starters_writes_one_small_folder_per_starter(tiny_starters):
    folders = starters.shipped_starters(tiny_starters)
    assert [f.name for f in folders] == [s.key for s in starters.STARTERS]
    for folder in folders:
        card = json.loads((folder / "config.json").read_text())
        preview = "preview.txt" if card["model"] == "char_gpt" else "preview.png"
        assert {p.name for p in folder.iterdir()} == {"model.safetensors", "config.json", preview}
        assert folder_bytes(folder) < 5 * MB
        assert card["step"] == 4 and card["train"]["steps"] == 4 and card["train"]["device"] == "cpu"
        assert card["curves"]["step"], "the logged curves travel with the starter"
        if preview == "preview.png":
            assert Image.open(folder / preview).size[0] > 100
        else:
            assert len((folder / preview).read_text().splitlines()) == 16
    assert not list(tiny_starters.glob(".*")), "no half-written folders are left behind"


def test_the_same_recipe_gives_the_same_weights(tiny_starters, tmp_path):
    starters.make_starters(tmp_path, steps=4, only=("dcgan-glyphs",), **QUIET)
    again = (tmp_path / "dcgan-glyphs" / "model.safetensors").read_bytes()
    assert again == (tiny_starters / "dcgan-glyphs" / "model.safetensors").read_bytes()


def test_an_unknown_starter_name_is_refused(tmp_path):
    with pytest.raises(UserError, match="no starter called nope"):
        starters.make_starters(tmp_path, steps=1, only=("nope",), **QUIET)


def test_install_is_idempotent_and_the_runs_sample_like_any_other(tiny_starters, fresh_home):
    store = RunStore()
    first = starters.install_starters(tiny_starters, store)
    assert first.problems == [] and len(first.installed) == len(starters.STARTERS) and first.existing == []
    again = starters.install_starters(tiny_starters, store)
    assert again.installed == [] and [r.id for r in again.runs] == [r.id for r in first.runs]
    runs = store.list()
    assert len(runs) == len(starters.STARTERS)
    assert {r.name for r in runs} == {s.title for s in starters.STARTERS}
    for run in runs:
        assert run.status == "completed" and run.step == 4 and run.owner == "starter"
        assert store.metric_keys(run.id), "curves are in the run store for the charts and Compare"
        assert list((run.folder / "samples").glob("step_*.png")) or list((run.folder / "samples").glob("step_*.txt"))
        trainer, _, step = load_for_sampling(run.id, store=store)
        samples = trainer.sample(4, seed=1)
        assert step == 4 and len(samples) == 4
        if run.data_kind == "image":
            assert torch.isfinite(samples).all()


def test_a_deleted_starter_run_comes_back_on_the_next_install(tiny_starters, fresh_home):
    store = RunStore()
    runs = starters.install_starters(tiny_starters, store).runs
    store.delete(runs[0].id)
    report = starters.install_starters(tiny_starters, store)
    assert [r.name for r in report.installed] == [runs[0].name] and len(report.existing) == len(runs) - 1


def test_the_command_line_installs_the_starters_and_samples_one(tiny_starters, fresh_home, tmp_path, monkeypatch,
                                                                capsys):
    from aigc_core.cli import main

    monkeypatch.setattr(starters, "STARTERS_DIR", tiny_starters)
    assert main(["install-starters"]) == 0
    assert "Starter: DCGAN on glyphs  (added now)" in capsys.readouterr().out
    assert main(["install-starters"]) == 0
    assert "added now" not in capsys.readouterr().out
    run = RunStore().list()[-1]
    out = tmp_path / "grid.png"
    assert main(["sample", "--run", run.id, "-n", "9", "--out", str(out)]) == 0
    assert Image.open(out).size[0] > 28


def test_two_installs_at_once_add_each_starter_once(tiny_starters, fresh_home):
    from concurrent.futures import ThreadPoolExecutor

    store = RunStore()  # one store, as the app shares one between its sessions
    with ThreadPoolExecutor(2) as pool:
        reports = list(pool.map(lambda _: starters.install_starters(tiny_starters, store), range(2)))
    assert sorted(len(r.installed) for r in reports) == [0, len(starters.STARTERS)]
    assert len(RunStore().list()) == len(starters.STARTERS)


def damaged_copy(tiny_starters, tmp_path, key, damage):
    source = tmp_path / "shipped"
    shutil.copytree(tiny_starters, source)
    damage(source / key)
    return source


def truncate(folder):
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 3])


@pytest.mark.parametrize("damage, message", [
    (truncate, "is damaged"),
    (lambda f: (f / "config.json").write_text("{not json"), "not valid JSON"),
    (lambda f: (f / "model.safetensors").unlink(), "is incomplete"),
    (lambda f: (f / "config.json").write_text(json.dumps(
        {**json.loads((f / "config.json").read_text()), "model_config": {"ngf": 9999}})), "does not fit"),
    (lambda f: (f / "config.json").write_text(json.dumps(
        {**json.loads((f / "config.json").read_text()), "model": "os.system"})), "no model called"),
])
def test_a_damaged_starter_is_refused_plainly_and_the_others_still_install(tiny_starters, fresh_home, tmp_path,
                                                                           damage, message):
    source = damaged_copy(tiny_starters, tmp_path, "vae-glyphs", damage)
    with pytest.raises(UserError, match=message):
        starters.install_starter(source / "vae-glyphs")
    report = starters.install_starters(source)
    assert len(report.problems) == 1 and "vae-glyphs" in report.problems[0] and message in report.problems[0]
    assert [r.name for r in report.runs] == [s.title for s in starters.STARTERS if s.key != "vae-glyphs"]
    assert len(RunStore().list()) == len(starters.STARTERS) - 1, "a refused starter leaves no half-made run behind"


def test_a_pickle_beside_a_starter_is_never_read(tiny_starters, fresh_home, tmp_path):
    def swap_for_pickle(folder):
        (folder / "model.safetensors").rename(folder / "model.pt")
    source = damaged_copy(tiny_starters, tmp_path, "dcgan-glyphs", swap_for_pickle)
    report = starters.install_starters(source)
    assert "dcgan-glyphs" in report.problems[0] and "is incomplete" in report.problems[0]
    assert len(report.runs) == len(starters.STARTERS) - 1


def test_no_starters_folder_says_how_to_make_them(fresh_home, tmp_path):
    report = starters.install_starters(tmp_path / "missing")
    assert report.runs == [] and "make-starters" in report.problems[0]


def test_a_new_version_of_a_starter_installs_beside_the_old_one(tiny_starters, fresh_home, tmp_path):
    source = tmp_path / "shipped"
    shutil.copytree(tiny_starters, source)
    old = starters.install_starters(source).runs
    starters.make_starters(tmp_path / "v2", steps=5, only=("dcgan-glyphs",), **QUIET)
    shutil.rmtree(source / "dcgan-glyphs")
    shutil.copytree(tmp_path / "v2" / "dcgan-glyphs", source / "dcgan-glyphs")
    report = starters.install_starters(source)
    assert len(report.installed) == 1 and report.installed[0].step == 5
    assert len(report.existing) == len(old) - 1 and len(RunStore().list()) == len(old) + 1


# ---- the starters shipped in the repository ---------------------------------------------

def test_the_shipped_starters_exist_are_small_and_load(fresh_home):
    folders = starters.shipped_starters()
    assert [f.name for f in folders] == [s.key for s in starters.STARTERS], \
        "run `python -m aigc_core make-starters` and commit starters/"
    sizes = [folder_bytes(f) for f in folders]
    assert max(sizes) < 5 * MB and sum(sizes) < 20 * MB
    report = starters.install_starters()
    assert report.problems == []
    for run in report.runs:
        trainer, _, _ = load_for_sampling(run.id)
        samples = trainer.sample(8, seed=0)
        if run.data_kind == "image":
            assert samples.shape[0] == 8 and 0.02 < float(samples.std()) < 0.6, "samples are neither blank nor noise"
        else:
            assert len(samples) == 8 and sum(map(len, samples)) > 40, "whole names, not empty lines"
