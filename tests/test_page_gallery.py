"""Gallery page (AppTest): sampling from finished runs of every kind, rating
samples and turning the liked ones into a new data set, and the error paths."""

from __future__ import annotations

import pytest

from aigc_core.data.catalog import dataset_info, load_dataset
from aigc_core.runs.store import RunStore
from aigc_core.sample import load_for_sampling
from tests.tiny_runs import dcgan_run, finished, open_page, tiny_lines, tiny_table, vae_run

GALLERY = "pages/gallery.py"


def problems(at) -> list[str]:
    return [e.value for e in at.exception] + [e.value for e in at.error]


@pytest.fixture(scope="module")
def gan():
    return dcgan_run(name="gallery gan")


def test_gallery_with_no_runs_points_to_quick_train(fresh_home):
    at = open_page(GALLERY)
    assert not problems(at)
    assert any("Quick train" in i.value for i in at.info)


def test_gallery_samples_a_finished_gan_as_a_grid_with_png_and_zip_downloads(gan):
    at = open_page(GALLERY, gan.id)
    assert not problems(at), problems(at)
    assert at.selectbox[0].value == gan.id
    assert {b.label for b in at.get("download_button")} >= {"Download the grid (PNG)", "Download all samples (ZIP)"}
    assert "64 samples, seed 0" in at.image[0].captions[0]
    at.slider(key="g_n").set_value(9)
    at.number_input(key="g_seed").set_value(5)
    at.slider(key="g_truncation").set_value(0.5)
    at.run()
    assert not problems(at)
    assert "9 samples, seed 5" in at.image[0].captions[0]
    assert len(at.feedback) == 9  # one thumbs up/down per sample


def test_gan_walk_between_two_seeds_draws_a_strip(gan):
    at = open_page(GALLERY, gan.id)
    at.session_state["g_tab"] = "Walk between two seeds"
    at.run()
    assert not problems(at)
    at.slider(key="g_frames").set_value(5).run()
    assert not problems(at)
    assert any("seed 0 -> seed 1" in c for img in at.image for c in img.captions)
    assert any(b.label == "Download the strip (PNG)" for b in at.get("download_button"))


def test_vae_shows_held_out_images_above_their_reconstructions():
    run = vae_run()
    at = open_page(GALLERY, run.id)
    assert [t.label for t in at.tabs] == ["Samples", "Walk between two seeds", "Reconstructions", "Data loop"]
    assert at.slider(key="g_temperature") is not None  # a VAE's knob is the temperature of its code
    at.session_state["g_tab"] = "Reconstructions"
    at.run()
    assert not problems(at), problems(at)
    assert any("never trained on" in c.value for c in at.caption)
    assert any("Mean squared pixel error" in c.value for c in at.caption)


def test_rating_samples_then_making_a_data_set_from_the_liked_ones(fresh_home):
    run = dcgan_run(name="loop gan")
    at = open_page(GALLERY, run.id)
    at.slider(key="g_n").set_value(4).run()
    thumbs = {f.key.rsplit("|", 3)[-2]: f for f in at.feedback}  # sample index -> its widget
    thumbs["0"].set_value(1)
    thumbs["2"].set_value(1)
    thumbs["3"].set_value(0)
    at.run()
    assert not problems(at)
    counts = RunStore().ratings(run.id)
    assert sorted((r["payload"]["index"], r["rating"]) for r in counts) == [(0, 1), (2, 1), (3, 0)]

    at.session_state["g_tab"] = "Data loop"
    at.run()
    assert {m.label: m.value for m in at.metric}["Liked"] == "2"
    assert any("48 images from 'tiny_img' + 2 liked samples = 50 images" in m.value for m in at.markdown)
    at.text_input(key=f"loop_name:{run.id}").set_value("my_liked_glyphs")
    at.number_input(key=f"loop_repeat:{run.id}").set_value(3)
    at.run()
    assert any("+ 2 liked samples × 3 copies (6 images) = 54 images" in m.value for m in at.markdown)
    make = next(b for b in at.button if b.label.startswith("Make a data set"))
    make.click().run()
    assert not problems(at), problems(at)
    assert any("my_liked_glyphs" in s.value for s in at.success)
    assert at.session_state["dataset"] == "my_liked_glyphs"  # the Train page starts from it
    assert dataset_info("my_liked_glyphs").summary["count"] == 54
    assert at.text_input(key=f"loop_name:{run.id}").value == "tiny_img-liked"  # a free name for the next one


def test_taking_a_thumbs_up_back_removes_the_rating(gan):
    at = open_page(GALLERY, gan.id)
    at.number_input(key="g_seed").set_value(77).run()
    widget = at.feedback[0]
    widget.set_value(1).run()
    assert any(r["payload"]["seed"] == 77 for r in RunStore().ratings(gan.id))
    at.feedback[0].set_value(None).run()
    assert not any(r["payload"]["seed"] == 77 for r in RunStore().ratings(gan.id))


def test_a_failed_run_says_why_and_what_to_do(fresh_home):
    run = finished("tiny_line", "tiny_points", 20, explode_at=3)
    assert run.status == "failed"
    at = open_page(GALLERY, run.id)
    assert not at.exception
    assert any("This run failed" in e.value and "NaN" in e.value for e in at.error)
    assert any("no checkpoint" in w.value for w in at.warning)


def test_a_run_without_a_checkpoint_says_to_wait_for_its_first_save(fresh_home):
    store = RunStore()
    run = store.create(model="tiny_line", family="toy", dataset="tiny_points", data_kind="points",
                       config={"model": "tiny_line", "dataset": "tiny_points", "model_config": {}, "train": {"steps": 5}})
    store.update(run.id, status="running")
    at = open_page(GALLERY, run.id)
    assert not problems(at)
    assert any("no checkpoint yet" in w.value and "Wait for its first save" in w.value for w in at.warning)


def test_a_run_whose_data_set_was_deleted_gets_a_message_not_a_traceback(fresh_home):
    from aigc_core.data.catalog import delete_dataset

    run = dcgan_run(steps=10)
    delete_dataset(run.dataset)
    at = open_page(GALLERY, run.id)
    assert not at.exception
    assert any("no data set called 'tiny_img'" in e.value for e in at.error)


@pytest.fixture(scope="module")
def gpt_run():
    return finished("char_gpt", tiny_lines(), 20, n_layer=2, n_head=2, n_embd=16, block_size=16, batch_size=4)


def text_knobs(at, prompt: str = "", length: int = 40, temperature: float = 0.8):
    """Set the text knobs the model declares (built from its knobs dataclass)."""
    at.text_input(key="g_prompt").set_value(prompt)
    at.number_input(key="g_length").set_value(length)
    at.slider(key="g_temperature").set_value(temperature)
    return at.run()


def test_text_write_tab_streams_a_text_with_next_character_bars(gpt_run):
    at = open_page(GALLERY, gpt_run.id)
    at.session_state["g_tab"] = "Write"
    text_knobs(at.run(), prompt="an")
    assert not problems(at), problems(at)
    assert len(at.get("plotly_chart")) == 1  # the next-character probabilities
    at.button(key="t_write").click().run()
    assert not problems(at), problems(at)
    trainer, _, _ = load_for_sampling(gpt_run.id)
    expected = trainer.sample(1, 0, prompt="an", length=40, temperature=0.8)[0]
    assert at.code[0].value == expected  # streamed text equals the seeded sample
    assert len(at.feedback) == 1


def test_a_model_that_declares_attention_shows_its_maps_by_layer_and_head(gpt_run):
    at = open_page(GALLERY, gpt_run.id)
    at.session_state["g_tab"] = "Attention"
    text_knobs(at.run(), prompt="an")
    assert not problems(at), problems(at)
    assert len(at.get("plotly_chart")) == 1
    at.selectbox(key="t_layer").set_value(1)
    at.selectbox(key="t_head").set_value(2)
    at.run()
    assert not problems(at)


def test_text_samples_mark_items_copied_from_the_training_data():
    run = finished("bigram", tiny_lines(), 30)
    at = text_knobs(open_page(GALLERY, run.id))
    assert not problems(at), problems(at)
    trainer, _, _ = load_for_sampling(run.id)
    texts = trainer.sample(12, 0, prompt="", length=40, temperature=0.8)
    copies = sum(trainer.mark_copies(texts))
    assert [c.value for c in at.code] == texts
    assert any(f"{copies} of 12 items are in the training data" in c.value for c in at.caption)
    assert len(at.get("badge")) == copies
    assert "Attention" not in [t.label for t in at.tabs]  # a bigram declares no attention


def test_table_rows_follow_the_condition_and_kept_rows_feed_a_new_table():
    run = finished("tab_gan", tiny_table(), 10, hidden=16, batch_size=20)
    at = open_page(GALLERY, run.id)
    assert not problems(at), problems(at)
    at.selectbox(key="tb_col").set_value("buy").run()
    at.selectbox(key="tb_val:buy").set_value(True).run()
    assert not problems(at)
    rows = at.dataframe[0].value
    assert len(rows) == 200 and rows["buy"].all()
    assert any(b.label == "Download the rows (CSV)" for b in at.get("download_button"))
    at.session_state["tb_rows"] = {"selection": {"rows": [0, 5], "columns": []}}
    at.run()
    at.button(key="tb_rate1").click().run()
    assert not problems(at)
    assert list(at.dataframe[0].value["your rating"][:6]) == ["👍", "", "", "", "", "👍"]
    at.session_state["g_tab"] = "Data loop"
    at.run()
    at.text_input(key=f"loop_name:{run.id}").set_value("kept_rows").run()
    next(b for b in at.button if b.label.startswith("Make a data set")).click().run()
    assert not problems(at), problems(at)
    assert len(load_dataset("kept_rows")) == len(load_dataset(run.dataset)) + 2


def test_table_report_on_the_generated_rows_offers_an_html_download():
    run = finished("tab_gan", tiny_table(), 10, hidden=16, batch_size=20)
    at = open_page(GALLERY, run.id)
    at.button(key="tb_report").click().run()
    assert not problems(at), problems(at)
    assert any(m.label == "Fidelity" for m in at.metric)
    assert any(b.label == "Download the report (HTML)" for b in at.get("download_button"))


def test_points_are_drawn_over_the_real_data():
    run = finished("tiny_line", "tiny_points", 20)
    at = open_page(GALLERY, run.id)
    assert not problems(at)
    assert len(at.get("plotly_chart")) == 1
    assert any(b.label == "Download the generated points (CSV)" for b in at.get("download_button"))


def test_without_a_chosen_run_the_gallery_opens_the_newest_run_that_can_make_samples(fresh_home):
    done = finished("tiny_line", "tiny_points", 20)
    store = RunStore()
    newer = store.create(model="tiny_line", family="toy", dataset="tiny_points", data_kind="points",
                         config={"model": "tiny_line", "dataset": "tiny_points", "model_config": {}, "train": {"steps": 5}})
    store.update(newer.id, status="running")
    at = open_page(GALLERY)
    assert not problems(at)
    assert at.selectbox[0].value == done.id
    assert at.query_params["run"] == [done.id] or at.query_params["run"] == done.id
