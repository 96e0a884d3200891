"""Compare page (AppTest): two or more runs side by side, and its error paths."""

from __future__ import annotations

import pytest

from aigc_core.runs.store import RunStore
from tests.tiny_runs import dcgan_run, finished, open_page, tiny_lines

COMPARE = "pages/compare.py"


def problems(at) -> list[str]:
    return [e.value for e in at.exception] + [e.value for e in at.error]


@pytest.fixture(scope="module")
def two_gans():
    return dcgan_run(name="narrow gan"), dcgan_run(name="wide gan", ngf=16)


def test_compare_needs_two_runs_and_says_so(fresh_home):
    at = open_page(COMPARE)
    assert not problems(at)
    assert any("at least two runs" in i.value for i in at.info)
    finished("tiny_line", "tiny_points", 10)
    at = open_page(COMPARE)
    assert any("at least two runs" in i.value for i in at.info)


def test_comparing_two_runs_shows_what_differs_their_numbers_curves_and_samples(two_gans):
    narrow, wide = two_gans
    at = open_page(COMPARE, narrow.id)
    assert not problems(at), problems(at)
    assert at.multiselect[0].value[0] == narrow.id and len(at.multiselect[0].value) == 2
    at.multiselect[0].set_value([narrow.id, wide.id]).run()
    settings, numbers = at.dataframe[0].value, at.dataframe[1].value
    assert list(settings.index) == ["Generator width (ngf)"]
    assert list(settings.loc["Generator width (ngf)"]) == ["8", "16"]
    assert list(numbers.columns) == ["Metric", "Better", "narrow gan", "wide gan"]
    speed = numbers.set_index("Metric").loc["Training speed (examples/s)"]
    assert speed["Better"] == "higher"
    assert sum(v.endswith("★") for v in speed[["narrow gan", "wide gan"]]) == 1  # exactly one best value is marked
    assert len(at.get("plotly_chart")) == 1
    assert [img.captions[0] for img in at.image] == ["step 20", "step 20"]


def test_curves_switch_to_wall_time_and_another_metric(two_gans):
    narrow, wide = two_gans
    at = open_page(COMPARE, narrow.id)
    at.multiselect[0].set_value([narrow.id, wide.id]).run()
    at.selectbox(key="c_metric").set_value("d_real")
    at.button_group(key="c_axis").set_value("Wall time (s)")
    at.toggle(key="c_log").set_value(True)
    at.run()
    assert not problems(at), problems(at)
    chart = at.get("plotly_chart")[0]
    assert "seconds since the first log" in chart.proto.spec and '"type":"log"' in chart.proto.spec.replace(" ", "")


def test_every_metric_is_explained_one_click_away_with_the_feature_net_note(two_gans):
    narrow, _ = two_gans
    at = open_page(COMPARE, narrow.id)
    texts = " ".join(m.value for m in at.markdown) + " ".join(c.value for c in at.caption)
    assert "Training speed" in texts and "compare runs on the same data only" in texts


def test_text_runs_show_bits_per_character_and_text_samples_side_by_side(fresh_home):
    bigram = finished("bigram", tiny_lines(), 30)
    gpt = finished("char_gpt", tiny_lines(), 10, n_layer=1, n_head=2, n_embd=16, block_size=16, batch_size=4)
    at = open_page(COMPARE, bigram.id)
    assert not problems(at), problems(at)
    bpc = {m.label: m.value for m in at.metric}
    assert bpc["bigram on tiny_names"] == f"{bigram.final_metrics['val_bpc']:.3f} bits"
    assert bpc["char_gpt on tiny_names"] == f"{gpt.final_metrics['val_bpc']:.3f} bits"
    assert len(at.code) == 2


def test_runs_on_different_data_get_a_warning(fresh_home):
    a = dcgan_run(steps=10)
    b = finished("tiny_line", "tiny_points", 10)
    at = open_page(COMPARE, a.id)
    at.multiselect[0].set_value([a.id, b.id]).run()
    assert not at.exception
    assert any("different data sets" in w.value for w in at.warning)


def test_a_failed_run_and_a_run_without_checkpoint_are_shown_with_messages_not_tracebacks(fresh_home):
    failed = finished("tiny_line", "tiny_points", 20, explode_at=3)
    store = RunStore()
    waiting = store.create(model="tiny_line", family="toy", dataset="tiny_points", data_kind="points",
                           config={"model": "tiny_line", "dataset": "tiny_points", "model_config": {},
                                   "train": {"steps": 5}})
    store.update(waiting.id, status="running")
    at = open_page(COMPARE, failed.id)
    at.multiselect[0].set_value([failed.id, waiting.id]).run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert any(e.startswith("failed:") and "NaN" in e for e in errors)
    assert any("no checkpoint yet" in e for e in errors)


def test_table_runs_show_their_fidelity_and_usefulness_numbers_and_rows_side_by_side(fresh_home):
    from tests.tiny_runs import tiny_table

    gan = finished("tab_gan", tiny_table(), 20, batch_size=20, pac=2)
    vae = finished("tab_vae", tiny_table(), 20, batch_size=20)
    at = open_page(COMPARE, gan.id)
    at.multiselect[0].set_value([gan.id, vae.id]).run()
    assert not problems(at), problems(at)
    numbers = next(d.value for d in at.dataframe if "Metric" in d.value.columns)
    shared = set(gan.final_metrics) & set(vae.final_metrics)
    assert shared, "table runs end with report scores"
    labels = " ".join(numbers["Metric"])
    from aigc_core.bakeoff import metric_info

    info = metric_info()
    assert all(info[k]["label"] in labels for k in shared if k in info)
    rows = [d.value for d in at.dataframe if list(d.value.columns) == ["views", "time", "buy"]]
    assert len(rows) == 2 and all(len(r) == 8 for r in rows)
    assert all(set(r["buy"].astype(str)) <= {"True", "False"} for r in rows)


def test_curves_open_on_a_loss_all_runs_log_not_on_an_end_of_run_number(two_gans):
    narrow, wide = two_gans
    at = open_page(COMPARE, narrow.id)
    at.multiselect[0].set_value([narrow.id, wide.id]).run()
    assert at.selectbox(key="c_metric").value == "loss_g"
