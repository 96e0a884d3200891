"""Home page: the intro, Quick train, and starter models that give samples in seconds."""

from __future__ import annotations

import shutil

from streamlit.testing.v1 import AppTest

from aigc_core import starters
from aigc_core.runs.store import RunStore
from tiny_runs import APP


def home(timeout: float = 120) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=timeout)
    at.run()
    return at


def test_home_explains_the_studio_and_offers_both_paths(fresh_home):
    at = home()
    assert not at.exception
    assert at.title[0].value == "AIGC Studio"
    labels = [b.label for b in at.button]
    assert "Quick train" in labels and "Try a starter model" in labels
    assert any(o.startswith("glyphs:") for o in at.radio[0].options)
    assert not at.image, "nothing is sampled before a visitor asks"


def test_every_quick_choice_is_a_data_set_its_model_can_train_on(fresh_home):
    from aigc_core.runs.api import make_config

    at = home()
    for option in at.radio[0].options:
        name = option.split(":")[0]
        at.radio[0].set_value(name).run()
        model = next(m.value.split("**")[1] for m in at.markdown if m.value.startswith("2. Press"))
        assert make_config(model, name, preset="Quick")["train"]["max_seconds"] <= 60


def test_the_starter_button_installs_the_starters_and_shows_samples(fresh_home):
    at = home()
    at.button(key="starter_install").click().run()
    assert not at.exception and not at.error and not at.warning
    runs = RunStore().list()
    assert {r.name for r in runs} == {s.title for s in starters.STARTERS}
    assert len(at.image) == 1
    assert "16 new samples from Starter: DCGAN on glyphs (seed 0" in at.image[0].captions[0]
    assert any("paints handwriting-like digits" in c.value for c in at.caption)
    picker = at.radio(key="starter_run")
    assert picker.value == next(r.id for r in runs if r.name == "Starter: DCGAN on glyphs")

    at.button(key="starter_new").click().run()
    assert "(seed 1" in at.image[0].captions[0]

    vae = next(r.id for r in runs if r.name == "Starter: VAE on glyphs")
    at.radio(key="starter_run").set_value(vae).run()
    assert not at.error and "from Starter: VAE on glyphs" in at.image[0].captions[0]

    gpt = next(r.id for r in runs if r.name == "Starter: Character GPT on Unicode names")
    at.radio(key="starter_run").set_value(gpt).run()
    assert not at.error and not at.image
    assert len(at.code[0].value.splitlines()) == 8 and any("Character GPT" in c.value for c in at.caption)

    at.button(key="starter_install").click().run()  # a second press adds nothing
    assert len(RunStore().list()) == len(starters.STARTERS)


def test_open_in_gallery_goes_to_the_gallery_with_the_starter_chosen(fresh_home):
    at = home()
    at.button(key="starter_install").click().run()
    at.button(key="starter_gallery").click().run()
    assert not at.exception
    assert at.title[0].value == "Gallery"
    chosen = RunStore().get(at.selectbox[0].value)
    assert chosen.name == "Starter: DCGAN on glyphs"
    at.switch_page("pages/home.py").run()
    assert not at.exception and "3. Watch it learn" not in [h.value for h in at.subheader], \
        "a starter was not trained here, so Home has nothing to watch"


def test_a_damaged_starter_shows_a_warning_and_the_others_still_work(fresh_home, tmp_path, monkeypatch):
    shipped = tmp_path / "starters"
    shutil.copytree(starters.STARTERS_DIR, shipped)
    model = shipped / "dcgan-glyphs" / "model.safetensors"
    model.write_bytes(model.read_bytes()[:1000])
    monkeypatch.setattr(starters, "STARTERS_DIR", shipped)
    at = home()
    at.button(key="starter_install").click().run()
    assert not at.exception
    assert len(at.warning) == 1 and "dcgan-glyphs" in at.warning[0].value and "damaged" in at.warning[0].value
    assert len(at.image) == 1
    assert {r.name for r in RunStore().list()} == {s.title for s in starters.STARTERS if s.key != "dcgan-glyphs"}


def test_quick_train_starts_a_run(fresh_home, monkeypatch):
    """The button queues a Quick run and hands it to a worker (stood in for here:
    the worker itself is tested with the run store and in the real browser)."""
    import os
    import types

    from aigc_core.runs import executors

    spawned = []
    monkeypatch.setattr(executors, "spawn_worker", lambda run_id: spawned.append(run_id) or types.SimpleNamespace(pid=os.getpid()))
    at = home()
    at.radio[0].set_value("ring8").run()
    next(b for b in at.button if b.label == "Quick train").click().run()
    assert not at.exception and not at.error
    (run,) = RunStore().list()
    assert run.model == "toy_gan" and run.dataset == "ring8" and run.config["preset"] == "Quick"
    assert spawned == [run.id] and run.status == "starting"
    assert at.session_state["run_id"] == run.id and at.query_params["run"] == run.id
    assert "3. Watch it learn" in [h.value for h in at.subheader]
