"""Train page (AppTest): the form built from config metadata, starting a run,
the live section with its controls, finished and failed runs, and the
explanation panels."""

from __future__ import annotations

import time

import pytest

from aigc_core.runs import api
from aigc_core.runs.store import RunStore
from tests.tiny_runs import dcgan_run, finished, open_page, tiny_images, tiny_lines, tiny_table

TRAIN = "pages/train.py"


def problems(at) -> list[str]:
    return [e.value for e in at.exception] + [e.value for e in at.error]


def texts(at) -> str:
    return " ".join([m.value for m in at.markdown] + [c.value for c in at.caption] + [i.value for i in at.info]
                    + [w.value for w in at.warning] + [s.value for s in at.success])


def pick(at, data: str, model: str | None = None, preset: str | None = None):
    at.selectbox(key="tr_data").set_value(data).run()
    if model:
        key = next(k for k in (f"tr_model_{kind}" for kind in ("image", "text", "table", "points")) if _has(at, k))
        at.selectbox(key=key).set_value(model).run()
    if preset:
        at.radio(key=f"tr_preset_{model}").set_value(preset).run()
    return at


def _has(at, key: str) -> bool:
    try:
        at.selectbox(key=key)
    except KeyError:
        return False
    return True


def offered(at, kind: str) -> list[str]:
    return list(at.selectbox(key=f"tr_model_{kind}").proto.options)


def wait_for(run_id: str, statuses: tuple[str, ...], timeout: float = 120.0):
    store = RunStore()
    deadline = time.time() + timeout
    while time.time() < deadline:
        run = store.get(run_id)
        if run.status in statuses:
            return run
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} is {store.get(run_id).status}, never reached {statuses}")


# ---- the form ----------------------------------------------------------------------------

def test_each_kind_of_data_is_offered_only_the_models_that_fit_it():
    from aigc_core.registry import get_model

    def studio(kind: str) -> list[str]:
        """The offered models, less the test plug-in's (tests/plugin_tiny.py)."""
        names = [o.split("(")[-1].rstrip(")") for o in offered(at, kind)]
        return [n for n in names if get_model(n).family != "toy"]

    images, lines, table = tiny_images(), tiny_lines(), tiny_table()
    at = open_page(TRAIN)
    assert not problems(at), problems(at)
    at = pick(at, images)
    assert studio("image") == ["mlp_gan", "dcgan", "vae", "conv_vae", "ae", "ddpm"]
    at = pick(at, "digits")  # 8 x 8 pixels: the convolutional GAN and VAE do not fit, and the page says why
    assert studio("image") == ["mlp_gan", "vae", "ae", "ddpm"]
    assert "28, 32 or 64 pixel" in texts(at)
    at = pick(at, lines)
    assert studio("text") == ["bigram", "char_lstm", "char_gpt"]
    at = pick(at, table)
    assert studio("table") == ["tab_gan", "tab_vae"]
    assert not problems(at), problems(at)


def test_the_form_preselects_the_recommended_model_and_preset_and_says_why(fresh_home):
    import torch

    from aigc_core.data.base import ImageData
    from aigc_core.data.catalog import save_uploaded
    from aigc_core.recommend import recommend

    gen = torch.Generator().manual_seed(0)
    save_uploaded(ImageData("photos", torch.randint(0, 256, (32, 3, 28, 28), dtype=torch.uint8, generator=gen)))
    at = pick(open_page(TRAIN), "photos")
    assert not problems(at), problems(at)
    rec = recommend("photos", "auto")
    model = at.selectbox(key="tr_model_image")
    assert model.value == rec.model and "recommended" in model.format_func(rec.model)
    assert at.radio(key=f"tr_preset_{rec.model}").value == rec.preset == "Quick"
    said = " ".join(i.value for i in at.info)
    from pages.common import plain

    assert "Recommended for photos: " in said and plain(rec.why) in said
    other = next(m for m in ("mlp_gan", "dcgan", "conv_vae") if m != rec.model)
    at.selectbox(key="tr_model_image").set_value(other).run()  # the person's choice stands
    assert at.selectbox(key="tr_model_image").value == other
    assert "You chose" in " ".join(i.value for i in at.info)


def test_settings_are_widgets_built_from_the_config_metadata():
    from aigc_core.config import describe
    from aigc_core.models.gan import DCGANConfig

    images = tiny_images()
    at = pick(open_page(TRAIN), images, "dcgan", "Quick")
    ngf = at.number_input(key="tr_dcgan_Quick_m_ngf")
    meta = {d["name"]: d for d in describe(DCGANConfig)}
    assert (ngf.label, ngf.value, ngf.min, ngf.max, ngf.step) == ("Generator width (ngf)", 32, 8, 256, 8)
    assert ngf.help == meta["ngf"]["help"] and ngf.disabled  # a preset's values are shown, not edited
    assert at.selectbox(key="tr_dcgan_Quick_m_loss").options == ["nonsaturating", "wgan_gp", "hinge", "wgan"]
    lr = at.select_slider(key="tr_dcgan_Quick_m_lr_g")  # learning rates on a log ladder
    assert lr.value == 2e-4 and {"1e-05", "0.0001", "0.001"} <= set(lr.options)
    advanced = next(e for e in at.expander if e.label == "Advanced settings")
    assert {w.label for w in advanced.number_input} >= {"Adam beta1", "Log every (steps)"}
    at.radio(key="tr_preset_dcgan").set_value("Custom").run()
    ngf = at.number_input(key="tr_dcgan_Custom_m_ngf")
    assert not ngf.disabled and ngf.value == 32  # Custom starts from Quick
    assert at.number_input(key="tr_dcgan_Custom_t_steps").value == 1500
    assert "auto" in at.selectbox(key="tr_device").options and "cpu" in at.selectbox(key="tr_device").options


def test_a_run_with_no_budget_is_refused_with_a_plain_message(fresh_home):
    at = pick(open_page(TRAIN), "tiny_points", "tiny_line", "Custom")
    at.number_input(key="tr_tiny_line_Custom_t_steps").set_value(0)
    at.number_input(key="tr_tiny_line_Custom_t_max_seconds").set_value(0.0)
    at.button(key="tr_start").click().run()
    assert not at.exception
    assert any("give the run a budget" in e.value for e in at.error)
    assert RunStore().list() == []


def test_quick_start_queues_a_run_and_puts_its_id_in_the_url(fresh_home):
    at = pick(open_page(TRAIN), "tiny_points", "tiny_line", "Quick")
    at.text_input(key="tr_name_tiny_line_tiny_points").set_value("my first line")
    at.button(key="tr_start").click().run()
    assert not problems(at), problems(at)
    runs = RunStore().list()
    assert len(runs) == 1 and runs[0].name == "my first line" and runs[0].config["preset"] == "Quick"
    assert at.query_params["run"] == [runs[0].id] or at.query_params["run"] == runs[0].id
    assert at.selectbox(key="tr_run").value == runs[0].id
    wait_for(runs[0].id, ("completed", "failed"), timeout=120)


# ---- controls -------------------------------------------------------------------------------

def test_pause_resume_and_stop_reach_the_training_worker(fresh_home):
    cfg = api.make_config("tiny_line", "tiny_points", model_set={"step_sleep": 0.05},
                          train_set={"steps": 100000, "log_every": 5, "sample_every": 50})
    run = api.submit(cfg, store=RunStore())
    try:
        wait_for(run.id, ("running",))
        at = open_page(TRAIN, run.id)
        assert not problems(at), problems(at)
        assert at.button(key="tr_resume").disabled and not at.button(key="tr_pause").disabled
        at.button(key="tr_pause").click().run()
        assert RunStore().get(run.id).control in ("pause", None)
        wait_for(run.id, ("paused",))
        at.run()
        assert {m.label: m.value for m in at.metric}["Status"] == "paused"
        at.button(key="tr_resume").click().run()
        wait_for(run.id, ("running",))
        at.button(key="tr_stop").click().run()
        stopped = wait_for(run.id, ("stopped",))
        at.run()
        assert not problems(at), problems(at)
        assert "Stopped at step" in texts(at) and not at.button(key="tr_resume").disabled
        assert stopped.step > 0
    finally:
        store = RunStore()
        if store.get(run.id).status in ("queued", "starting", "running", "paused"):
            store.request(run.id, "stop")
            wait_for(run.id, ("stopped", "completed", "failed"))


def test_a_waiting_run_says_it_is_queued_and_can_be_stopped_before_it_starts(fresh_home):
    cfg = api.make_config("tiny_line", "tiny_points", train_set={"steps": 10})
    store = RunStore()
    waiting = store.create(model="tiny_line", family="toy", dataset="tiny_points", data_kind="points", config=cfg,
                           owner="foreground")  # a command-line run waiting for its slot: no worker will take it
    at = open_page(TRAIN, waiting.id)
    assert not problems(at), problems(at)
    assert any("Waiting for a free training slot" in i.value for i in at.info)
    assert at.button(key="tr_pause").disabled and not at.button(key="tr_stop").disabled
    at.button(key="tr_stop").click().run()
    assert store.get(waiting.id).status == "stopped"
    assert not problems(at), problems(at)


def test_a_run_past_its_budget_says_it_is_measuring_its_final_numbers(fresh_home):
    import os

    cfg = api.make_config("tiny_line", "tiny_points", train_set={"steps": 10})
    store = RunStore()
    run = store.create(model="tiny_line", family="toy", dataset="tiny_points", data_kind="points", config=cfg,
                       owner="foreground")
    store.update(run.id, status="running", step=10, pid=os.getpid(), heartbeat=time.time(), train_seconds=3.0)
    at = open_page(TRAIN, run.id)
    assert not problems(at), problems(at)
    assert any("measuring its final numbers" in i.value for i in at.info)
    store.set_status(run.id, "completed")


def test_the_live_chart_reads_only_the_new_rows_on_each_refresh(fresh_home, monkeypatch):
    run = finished("tiny_line", "tiny_points", 20)
    asked = []
    real = RunStore.metrics

    def spy(self, run_id, after_step=-1, keys=None):
        asked.append(after_step)
        return real(self, run_id, after_step, keys)

    monkeypatch.setattr(RunStore, "metrics", spy)
    at = open_page(TRAIN, run.id)
    store = RunStore()
    store.log_metrics(run.id, 25, {"loss": 0.5})  # the worker logs a later step
    store.update(run.id, step=25)
    asked.clear()
    at.run()
    assert asked == [19]  # one query: the last held step again (late rows at that step) and everything after it
    frame = at.session_state["tr_metrics"][1]
    loss = frame[frame["key"] == "loss"]
    assert list(loss["step"]) == [5, 10, 15, 20, 25] and not frame.duplicated(["step", "key"]).any()


# ---- finished, failed and re-attached runs ---------------------------------------------------

@pytest.fixture(scope="module")
def gan():
    return dcgan_run()


def test_a_finished_gan_shows_its_curves_film_strip_and_labelled_final_numbers(gan):
    at = open_page(TRAIN, gan.id)
    assert not problems(at), problems(at)
    specs = [c.proto.spec for c in at.get("plotly_chart")]
    assert any("Losses" in s for s in specs) and any("D(x) and D(G(z))" in s for s in specs)
    strip = at.select_slider(key=f"tr_frame_{gan.id}")
    assert strip.options == ["0", "10", "20"] and strip.value == 20
    assert at.image[0].captions[0].startswith("Step 20")
    strip.set_value(10).run()
    assert at.image[0].captions[0].startswith("Step 10")
    numbers = {m.label: m.value for m in at.metric}
    assert numbers["Status"] == "completed"
    assert numbers["Discriminator loss"] == f"{gan.final_metrics['loss_d']:.4g}"
    assert "Finished: 20 steps" in texts(at)
    at.slider(key="tr_smooth").set_value(0.0)
    at.toggle(key="tr_log").set_value(True).run()
    assert not problems(at), problems(at)
    assert any('"type":"log"' in c.proto.spec.replace(" ", "") for c in at.get("plotly_chart"))


def test_a_text_run_shows_bits_per_character_and_its_text_film_strip(fresh_home):
    run = finished("bigram", tiny_lines(), 30)
    at = open_page(TRAIN, run.id)
    assert not problems(at), problems(at)
    assert any("Bits per character" in c.proto.spec for c in at.get("plotly_chart"))
    assert at.code and at.select_slider(key=f"tr_frame_{run.id}").value == 30
    assert "Bits per character (held out)" in {m.label for m in at.metric}


def test_a_failed_run_says_why_and_what_to_do_next(fresh_home):
    run = finished("tiny_line", "tiny_points", 20, explode_at=5)
    assert run.status == "failed"
    at = open_page(TRAIN, run.id)
    assert not at.exception
    assert any("The run failed" in e.value and "NaN" in e.value for e in at.error)
    assert "lower the learning rate" in texts(at)


def test_a_run_that_failed_before_its_first_step_shows_no_empty_charts(fresh_home):
    cfg = api.make_config("tiny_line", "tiny_points", train_set={"steps": 10})
    store = RunStore()
    run = store.create(model="tiny_line", family="toy", dataset="tiny_points", data_kind="points", config=cfg)
    store.set_status(run.id, "failed", "the data set 'tiny_points' could not be read")
    at = open_page(TRAIN, run.id)
    assert any("could not be read" in e.value for e in at.error) and not at.exception
    assert "ended before it logged any numbers" in texts(at) and not at.get("plotly_chart")


def test_an_interrupted_run_explains_itself_and_resumes_from_its_checkpoint(fresh_home):
    run = finished("tiny_line", "tiny_points", 20)
    store = RunStore()
    store.update(run.id, final_metrics={})
    store.set_status(run.id, "interrupted", "the training process stopped unexpectedly")
    at = open_page(TRAIN, run.id)
    assert not problems(at), problems(at)
    assert any("interrupted" in w.value and "Resume" in w.value for w in at.warning)
    assert not at.button(key="tr_resume").disabled and at.button(key="tr_pause").disabled
    at.button(key="tr_resume").click().run()
    assert not problems(at), problems(at)
    assert store.get(run.id).status in ("queued", "starting", "running", "completed")
    resumed = wait_for(run.id, ("completed", "failed"))
    assert resumed.status == "completed" and resumed.step == 20  # it went on from step 20, not from 0


def test_the_run_in_the_url_reattaches_and_an_unknown_one_is_explained(gan):
    newer = finished("tiny_line", "tiny_points", 10)
    at = open_page(TRAIN, gan.id)  # a refresh, or a second tab, with the older run's id in the address
    assert at.selectbox(key="tr_run").value == gan.id
    assert f"run id `{gan.id}`" in texts(at)
    at.selectbox(key="tr_run").set_value(newer.id).run()
    assert at.query_params["run"] in (newer.id, [newer.id])
    at = open_page(TRAIN, "no-such-run")
    assert any("no run 'no-such-run'" in w.value for w in at.warning)
    assert not problems(at), problems(at)


def test_the_run_list_shows_every_run_newest_first(gan):
    newer = finished("tiny_line", "tiny_points", 10, name="latest line")
    at = open_page(TRAIN, gan.id)
    table = at.dataframe[0].value
    assert table["Run id"].iloc[0] == newer.id and gan.id in set(table["Run id"])
    assert set(table.columns) >= {"Name", "Status", "Model", "Data set", "Step", "Progress"}


# ---- explanations ------------------------------------------------------------------------------

@pytest.mark.parametrize("data,model,loss,phrases", [
    ("tiny_img", "dcgan", None, ["D loss near 0 while G loss climbs", "2 ln 2"]),
    ("tiny_img", "dcgan", "wgan_gp", ["WGAN-GP", "gradient penalty"]),
    ("tiny_img", "dcgan", "hinge", ["Loss in use: hinge", "+1"]),
    ("tiny_img", "vae", None, ["posterior collapse", "ELBO"]),
    ("tiny_img", "ae", None, ["fits a Gaussian to the codes"]),
    ("tiny_names", "bigram", None, ["bits per character", "one character of context"]),
    ("tiny_names", "char_gpt", None, ["causal self-attention"]),
    ("tiny_table", "tab_gan", None, ["Wasserstein estimate", "condition cross-entropy"]),
    ("tiny_table", "tab_vae", None, ["codes carry nothing", "reconstruction weight"]),
    ("ring8", "toy_gan", None, ["mode collapse", "grey"]),
])
def test_every_family_has_an_explanation_with_formulas(data, model, loss, phrases):
    {"tiny_img": tiny_images, "tiny_names": tiny_lines, "tiny_table": tiny_table}.get(data, lambda: data)()
    at = pick(open_page(TRAIN), data, model, "Custom" if loss else None)
    if loss:
        at.selectbox(key=f"tr_{model}_Custom_m_loss").set_value(loss).run()
    assert not problems(at), problems(at)
    panel = next(e for e in at.expander if e.label.startswith("How "))
    said = " ".join(m.value for m in panel.markdown)
    assert said.count("$$") >= 4  # at least two display formulas, drawn by st.markdown as LaTeX
    for phrase in phrases:
        assert phrase in said, phrase


def test_a_run_links_to_its_labs_on_the_learn_page(fresh_home):
    from tests.tiny_runs import vae_run

    vae = vae_run()
    at = open_page("pages/train.py", vae.id)
    assert not at.exception, at.exception
    links = {l.proto.label: dict(l.proto.query_string and [kv.split("=") for kv in l.proto.query_string.split("&")])
             for l in at.get("page_link") if l.proto.page.endswith("learn.py") or "learn" in l.proto.page}
    assert "Ask the training doctor" in links and links["Ask the training doctor"]["run"] == vae.id
    assert "Open the VAE latent lab" in links


def test_a_custom_model_too_big_for_the_machine_is_refused_beside_the_form(fresh_home):
    """Issue 9/10: a 24-layer, 2048-wide char GPT (1.2 G parameters) is refused before Start, not after."""
    at = open_page("pages/train.py")
    at = pick(at, "unicode_names", "char_gpt", "Custom")
    assert not any("parameters" in e.value for e in at.error)
    at.number_input(key="tr_char_gpt_Custom_m_n_layer").set_value(24)
    at.number_input(key="tr_char_gpt_Custom_m_n_head").set_value(16)
    at.number_input(key="tr_char_gpt_Custom_m_n_embd").set_value(1024).run()
    assert not at.exception, at.exception
    assert any("parameters" in e.value and "AIGC_MAX_PARAMS" in e.value for e in at.error), [e.value for e in at.error]
    assert at.button(key="tr_start").disabled


def test_a_preset_s_time_reads_in_plain_minutes_or_seconds():
    from types import SimpleNamespace

    from pages.train import preset_caption

    spec = SimpleNamespace(preset=lambda name, summary, device: ({"train": {"steps": 7667, "max_seconds": 460.0}}, ""))
    assert preset_caption(spec, "Standard") == "up to 7,667 steps or 7.7 min"
    spec = SimpleNamespace(preset=lambda name, summary, device: ({"train": {"max_seconds": 30.0}}, ""))
    assert preset_caption(spec, "Quick") == "up to 30 s"
