"""The Learn page, driven by Streamlit's AppTest: lessons, labs and the doctor."""

from __future__ import annotations

import numpy as np
import pytest

from aigc_core.learn import lessons
from aigc_core.runs import api
from aigc_core.runs.store import RunStore
from tests.tiny_runs import tiny_images


@pytest.fixture
def no_workers(monkeypatch):
    """Runs started from the page stay queued: no worker process is spawned."""
    monkeypatch.setattr("aigc_core.runs.api.dispatch", lambda store: None)


def open_learn(**params):
    from streamlit.testing.v1 import AppTest

    from tests.tiny_runs import APP

    at = AppTest.from_file(APP, default_timeout=120)
    for k, v in params.items():
        at.query_params[k] = v
    at.run()
    at.switch_page("pages/learn.py").run()
    assert not at.exception, at.exception
    return at


def test_learn_lists_the_lessons_and_opens_the_first_one_at_its_first_cell(fresh_home):
    at = open_learn()
    picker = at.selectbox(key="lesson")
    assert picker.options[0].startswith("1. A GAN in two dimensions (12 min)") and len(picker.options) == 6
    assert any("Two players" in m.value for m in at.markdown)
    assert at.button(key="learn_continue")


def test_continue_reveals_the_next_cell_and_the_page_remembers_where_the_learner_is(fresh_home):
    at = open_learn(learner="ada")
    at.button(key="learn_continue").click().run()
    assert not at.exception
    assert lessons.progress("ada")["lessons"]["gan-2d"]["reached"] == 1
    assert at.session_state["gan-2d_1_lab"].step_count == 0  # the GAN lab cell is now on the page
    again = open_learn(learner="ada")
    assert again.session_state["gan-2d_1_lab"] is not None


def test_the_room_lesson_opens_for_everyone(fresh_home):
    lessons.set_room_lesson("measuring")
    at = open_learn()
    assert at.selectbox(key="lesson").value == "measuring"
    assert any("pointed the room at this lesson" in c.value for c in at.caption)


def test_a_try_cell_shows_its_explanation_only_after_a_prediction(fresh_home):
    at = open_learn(learner="bo")
    at.button(key="learn_all_btn").click().run()
    guess = at.text_area(key="gan-2d_2_guess")
    assert not any("What happens" in e.label for e in at.expander)
    guess.input("the background turns red near the real points").run()
    assert any("What happens" in e.label for e in at.expander)
    assert lessons.progress("bo")["lessons"]["gan-2d"]["predictions"]["2"].startswith("the background")


def test_the_gan_lab_steps_d_only_g_only_or_both(fresh_home):
    at = open_learn(lab="gan2d")
    lab = at.session_state["solo_gan2d_lab"]
    g_before = [p.detach().clone() for p in lab.G.parameters()]
    at.radio(key="solo_gan2d_train").set_value("d").run()
    at.button(key="solo_gan2d_one").click().run()
    lab = at.session_state["solo_gan2d_lab"]
    assert lab.step_count == 1
    assert all(np.array_equal(a.numpy(), b.detach().numpy()) for a, b in zip(g_before, lab.G.parameters()))
    at.radio(key="solo_gan2d_train").set_value("both").run()
    at.button(key="solo_gan2d_one").click().run()
    assert at.session_state["solo_gan2d_lab"].step_count == 2
    assert not at.exception


def test_playing_the_gan_lab_trains_a_batch_of_frames_for_the_browser_to_draw(fresh_home):
    from pages.labs import FRAMES_PER_BATCH, STEPS_PER_FRAME

    at = open_learn(lab="gan2d")
    at.button(key="solo_gan2d_play").click().run()
    assert not at.exception
    assert at.session_state["solo_gan2d_playing"] is True
    assert at.session_state["solo_gan2d_lab"].step_count == FRAMES_PER_BATCH * STEPS_PER_FRAME
    assert at.button(key="solo_gan2d_play").label == "Pause"
    at.button(key="solo_gan2d_play").click().run()
    assert at.session_state["solo_gan2d_playing"] is False


def test_the_latent_lab_decodes_the_point_the_learner_picks(fresh_home):
    at = open_learn(lab="latent")
    at.number_input(key="solo_latent_z1").set_value(1.5).run()
    assert not at.exception
    captions = [c for img in at.image for c in img.captions]
    assert "decoded at z = (1.50, 0.00)" in captions
    assert any(c.startswith("The decoder over the plane") for c in captions)
    assert len(at.get("plotly_chart")) == 1  # the held-out digits in the latent plane


def _d_wins_run(store: RunStore) -> str:
    cfg = api.make_config("mlp_gan", tiny_images(), model_set={"lr_d": 2e-3, "d_steps": 5}, train_set={"steps": 200})
    run = store.create(model="mlp_gan", family="gan", dataset=cfg["dataset"], data_kind="image", config=cfg)
    for i in range(40):
        store.log_metrics(run.id, 10 * (i + 1), {"loss_d": 0.05, "loss_g": 3 + i / 5, "d_real": 0.99, "d_fake": 0.01})
    store.set_status(run.id, "completed")
    return run.id


def test_the_doctor_names_the_problem_and_its_button_starts_a_linked_fixed_run(fresh_home, no_workers):
    store = RunStore()
    run_id = _d_wins_run(store)
    at = open_learn(lab="doctor", run=run_id)
    assert any("d_wins" in w.value for w in at.warning)
    at.button(key=f"solo_doctor_fix_{run_id}_d_wins").click().run()
    assert not at.exception
    (child,) = [r for r in store.list() if r.id != run_id]
    assert child.config["parent_run"] == run_id and child.config["model_config"]["d_steps"] == 1


def test_every_lesson_opens_whole_without_an_error(fresh_home):
    at = open_learn()
    at.button(key="learn_all_btn").click().run()
    for name in [l.name for l in lessons.list_lessons()]:
        at.selectbox(key="lesson").set_value(name).run()
        assert not at.exception, (name, at.exception)
        assert not at.error, (name, [e.value for e in at.error])


# ---- in a workshop room: who is learning is who joined -------------------------------------------

@pytest.fixture
def room(monkeypatch, fresh_home):
    monkeypatch.setenv("AIGC_WORKSHOP_CODE", "owl-42")
    monkeypatch.setenv("AIGC_TEACHER_CODE", "hawk-7")
    monkeypatch.setenv("AIGC_MAX_JOBS", "1")
    return fresh_home


def learn_as(name: str, role: str = "participant", **params):
    from aigc_core.room.identity import Actor, issue_token

    return open_learn(t=issue_token(Actor(name, role)), **params)


def test_in_a_workshop_each_participants_progress_follows_who_joined_not_a_typed_name(room):
    at = learn_as("ada")
    assert not [t for t in at.sidebar.text_input if t.label == "Your name"]  # no second name to type
    at.button(key="learn_continue").click().run()
    assert not at.exception
    assert lessons.progress("ada")["lessons"]["gan-2d"]["reached"] == 1
    assert lessons.progress("bo")["lessons"] == {}
    other = learn_as("bo")
    assert other.button(key="learn_continue")  # bo starts at the top: ada's progress is hers alone
    assert lessons.progress("bo")["lessons"]["gan-2d"]["reached"] == 0


def test_a_run_started_from_a_lesson_belongs_to_the_participant_who_started_it(room, no_workers):
    from aigc_core.room.identity import Actor
    from aigc_core.runs.store import RunStore

    at = learn_as("ada", lesson="dcgan-digits")
    at.button(key="learn_all_btn").click().run()
    train = [b for b in at.button if b.key and b.key.endswith("_train")][0]
    train.click().run()
    assert not at.exception
    runs = RunStore().list(actor=Actor("ada"))
    assert len(runs) == 1 and runs[0].user == "ada"
    assert RunStore().list(actor=Actor("bo")) == []  # nobody else sees it, nor can the lesson page show it to them


def test_the_teacher_points_the_room_at_a_lesson_from_the_learn_page(room):
    from aigc_core.room import board

    at = learn_as("Teacher", "teacher", lesson="vae-latent")
    at.button(key="learn_point_room").click().run()
    assert not at.exception
    assert board.room_preset().get("lesson") == "vae-latent" == lessons.room_lesson()
    pupil = learn_as("ada")
    assert pupil.selectbox(key="lesson").value == "vae-latent"
    assert not [b for b in pupil.button if b.key == "learn_point_room"]  # only the teacher points the room


def test_two_learner_names_that_clean_to_the_same_file_name_stay_two_learners(fresh_home):
    lessons.save_progress("ana b", {"lessons": {"gan-2d": {"reached": 3}}})
    assert lessons.progress("ana_b")["lessons"] == {}
