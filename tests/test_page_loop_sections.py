"""The data loop's page sections (AppTest): improve with my ratings, real or
generated?, the augmentation headline, the human scores on Compare and the
fine-tune button. The pages place these sections; here each is drawn alone."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from aigc_core.improve import improve
from aigc_core.human_eval import make_round, submit_round
from aigc_core.rating_rules import rate_by_rule
from aigc_core.runs.store import RunStore
from tests.tiny_runs import dcgan_run, finished, tiny_table


def _section(name: str):
    """A script that draws one section for the run in the URL."""
    def script():
        import streamlit as st

        import pages.loop_sections as sections
        from aigc_core.runs.store import RunStore

        store = RunStore()
        ids = st.query_params["run"].split(",")
        runs = [store.get(i) for i in ids]
        what = st.query_params["section"]
        if what == "human_scores_table":
            sections.human_scores_table(runs)
        else:
            getattr(sections, what)(runs[0])
    return script


def open_section(name: str, *run_ids: str) -> AppTest:
    at = AppTest.from_function(_section(name), default_timeout=120)
    at.query_params["run"] = ",".join(run_ids)
    at.query_params["section"] = name
    return at.run()


def problems(at) -> list[str]:
    return [e.value for e in at.exception] + [e.value for e in at.error]


def test_improve_shows_the_mix_and_after_a_fine_tune_the_before_and_after_pictures():
    run = dcgan_run(steps=10)
    at = open_section("improve_with_ratings", run.id)
    assert any("no liked samples yet" in e.value for e in at.error)  # the plan says what to do first
    rate_by_rule(run.id, "brightest=0.25", n=16)
    at = open_section("improve_with_ratings", run.id)
    assert not problems(at), problems(at)
    assert any("liked samples are 50%" in c.value for c in at.caption)
    at.slider(key="imp_share").set_value(0.3).run()
    assert any("asked for 30%" in c.value for c in at.caption)
    improve(run.id, max_seconds=2, compare_n=16)
    at = open_section("improve_with_ratings", run.id)
    assert not problems(at), problems(at)
    assert [img.captions[0] for img in at.image] == ["before", "after"]
    assert any(m.label == "Expected to be liked, after" for m in at.metric)


def test_a_round_of_real_or_generated_scores_the_player_and_pools_everybody():
    run = dcgan_run(steps=10)
    other = make_round(run.id, player="someone else", seed=1)
    submit_round(other.id, ["real"] * 20)
    at = open_section("real_or_generated", run.id)
    assert not problems(at)
    assert any(m.label == "Fooling rate (everybody)" for m in at.metric)
    at.button(key="rog_new").click().run()
    assert len(at.radio) == 20
    for i, radio in enumerate(at.radio):
        radio.set_value("real" if i % 2 else "generated")
    submit = [b for b in at.button if b.label == "Submit my answers"][0]
    submit.click().run()
    assert not problems(at), problems(at)
    assert any("right" in s.value and "fooled you" in s.value for s in at.success)


def test_unanswered_items_keep_the_round_open_with_a_message():
    run = dcgan_run(steps=10)
    at = open_section("real_or_generated", run.id)
    at.button(key="rog_new").click().run()
    [b for b in at.button if b.label == "Submit my answers"][0].click().run()
    assert any("20 of 20 still open" in e.value for e in at.error)


def test_a_table_run_headline_shows_the_augmentation_study_as_a_purchase_model_on_the_shop_table():
    run = finished("tab_vae", tiny_table(), steps=30)
    run = RunStore().get(run.id)
    assert "aug_real_f1" in run.final_metrics
    at = open_section("augmentation_headline", run.id)
    assert not problems(at)
    assert at.subheader[0].value == "Do the synthetic rows help a model?"
    assert len(at.dataframe[0].value) == 6


def test_compare_lists_thumbs_up_and_fooling_rate_with_their_counts():
    from aigc_core import data_loop
    import torch

    a, b = dcgan_run(steps=10, name="a"), dcgan_run(steps=10, name="b")
    for i in range(4):
        data_loop.rate_image(a.id, torch.rand(1, 28, 28), int(i < 3), step=a.step, seed=0, index=i)
    at = open_section("human_scores_table", a.id, b.id)
    assert not problems(at)
    table = at.dataframe[0].value
    assert list(table["ratings"]) == [4, 0] and table["thumbs up"][0] == pytest.approx(0.75)


def test_the_fine_tune_button_starts_a_linked_run():
    run = dcgan_run(steps=10)
    at = open_section("finetune_from_run", run.id)
    assert not problems(at)
    at.number_input(key="ft_seconds").set_value(5)
    at.button(key="ft_start").click().run()
    assert not problems(at), problems(at)
    child = [r for r in RunStore().list() if r.config.get("parent_run") == run.id][0]
    assert any(child.id in s.value for s in at.success)


# ---- the sections in their pages --------------------------------------------------------------

def test_the_gallery_offers_improve_in_its_data_loop_tab_and_a_real_or_generated_round_in_its_own():
    from tests.tiny_runs import open_page

    run = dcgan_run(steps=10, name="loop gallery")
    rate_by_rule(run.id, "brightest=0.25", n=16)
    at = open_page("pages/gallery.py", run.id)
    assert not problems(at), problems(at)
    assert any(e.label == "Fine-tune from this run" for e in at.expander)
    at.session_state["g_tab"] = "Data loop"
    at.run()
    assert not problems(at), problems(at)
    assert at.button(key="imp_go").label == "Improve with my ratings"
    at.session_state["g_tab"] = "Real or generated?"
    at.run()
    at.button(key="rog_new").click().run()
    assert not problems(at), problems(at)
    assert len(at.radio) == 20


def test_compare_shows_what_people_thought_of_each_run():
    from tests.tiny_runs import open_page

    a, b = dcgan_run(steps=10, name="cmp a"), dcgan_run(steps=10, name="cmp b")
    at = open_page("pages/compare.py", a.id)
    at.multiselect(key="c_runs").set_value([a.id, b.id]).run()
    assert not problems(at), problems(at)
    assert any(h.value == "What people thought" for h in at.subheader)


def test_a_table_run_s_gallery_headline_shows_the_augmentation_study():
    from tests.tiny_runs import open_page

    run = finished("tab_vae", tiny_table(), steps=30)
    at = open_page("pages/gallery.py", run.id)
    assert not problems(at), problems(at)
    assert any(h.value == "Do the synthetic rows help a model?" for h in at.subheader)


def test_a_finished_run_on_the_train_page_can_be_fine_tuned_into_a_linked_run():
    from tests.tiny_runs import open_page

    run = dcgan_run(steps=10, name="train page parent")
    at = open_page("pages/train.py", run.id)
    assert not problems(at), problems(at)
    at.number_input(key="tr_ft_seconds").set_value(5)
    at.button(key="tr_ft_start").click().run()
    assert not problems(at), problems(at)
    assert [r for r in RunStore().list() if r.config.get("parent_run") == run.id]


def test_in_a_workshop_room_a_round_is_played_as_who_joined_with_no_name_to_type(fresh_home, monkeypatch):
    from aigc_core.room.identity import Actor, issue_token

    monkeypatch.setenv("AIGC_WORKSHOP_CODE", "owl-42")
    run = dcgan_run(steps=10)
    at = AppTest.from_function(_section("real_or_generated"), default_timeout=120)
    at.query_params.update(run=run.id, section="real_or_generated", t=issue_token(Actor("ada")))
    at.run()
    assert not problems(at) and not [t for t in at.text_input if t.label == "Your name"]
    at.button(key="rog_new").click().run()
    assert at.session_state["rog_round"][run.id].player == "ada"
