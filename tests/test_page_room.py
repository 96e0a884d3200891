"""Workshop mode in the app (AppTest): joining with the room code, a token
that survives a refresh, the teacher's Room page, and refusals shown as
messages."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from aigc_core.room import board, identity
from aigc_core.room.identity import Actor
from aigc_core.runs import api
from aigc_core.runs.store import RunStore
from tests.tiny_runs import APP

ALICE, TEACHER = Actor("alice"), Actor("Teacher", "teacher")


@pytest.fixture
def room(monkeypatch, fresh_home):
    monkeypatch.setenv("AIGC_WORKSHOP_CODE", "owl-42")
    monkeypatch.setenv("AIGC_TEACHER_CODE", "hawk-7")
    monkeypatch.setenv("AIGC_MAX_JOBS", "1")
    return fresh_home


def app(token: str | None = None, timeout: float = 120) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=timeout)
    if token:
        at.query_params["t"] = token
    # AppTest runs app.py only the first time; later runs run the page itself (which gates the same
    # way): a second run puts the join form where the clicks that follow will find it
    at.run()
    at.run()
    return at


def join(at: AppTest, code: str, name: str) -> AppTest:
    at.sidebar.text_input[0].input(code)
    at.sidebar.text_input[1].input(name)
    at.sidebar.button[0].click().run()
    return at


def shown(at) -> str:
    return " ".join([t.value for t in at.text] + [m.value for m in at.markdown] + [i.value for i in at.info]
                    + [e.value for e in at.error] + [c.value for c in at.caption])


def queued(actor: Actor) -> str:
    config = api.make_config("tiny_line", "tiny_points", train_set={"steps": 40})
    return api.submit(config, store=RunStore(), start=False, actor=actor).id


def test_without_workshop_mode_nobody_is_asked_to_join(fresh_home, monkeypatch):
    monkeypatch.delenv("AIGC_WORKSHOP_CODE", raising=False)
    at = app()
    assert not at.exception and at.title[0].value == "AIGC Studio"
    assert "Join the workshop" not in [h.value for h in at.sidebar.subheader]


def test_a_participant_joins_with_the_room_code_and_a_name_and_a_refresh_keeps_them(room):
    at = app()
    assert "Type the room code and your name" in shown(at)
    join(at, "owl-43", "alice")
    assert "not this room's code" in shown(at)
    join(at, "owl-42", "alice")
    assert not at.exception and "You are alice" in shown(at)
    token = at.query_params["t"]
    token = token[0] if isinstance(token, list) else token
    assert identity.actor_from_token(token) == ALICE
    again = app(token)  # a refresh or a second tab with the same address
    assert "You are alice" in shown(again)


def test_a_forged_token_is_asked_to_join(room):
    at = app("eyJuIjoiYWxpY2UifQ.AAAA")
    assert "Type the room code and your name" in shown(at)


def test_the_teacher_sees_people_runs_and_stops_a_participants_run(room):
    board.seen(ALICE, "Train")
    run_id = queued(ALICE)
    _, token = identity.join("hawk-7", "")
    at = app(token)
    at.switch_page("pages/room.py").run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Room"
    people = at.dataframe[0].value
    assert "alice" in list(people["name"])
    at.selectbox(key="room_run").set_value(run_id).run()
    at.button(key="room_stop").click().run()
    assert RunStore().get(run_id).status == "stopped"


def test_the_room_page_refuses_a_participant(room):
    _, token = identity.join("owl-42", "alice")
    at = app(token)
    at.switch_page("pages/room.py").run()
    assert "The Room page is the teacher's." in shown(at)


def test_the_teacher_hides_a_post_on_the_wall(room):
    run_id = queued(ALICE)
    post = board.post_to_wall(run_id, text="a sample worth sharing", actor=ALICE)
    _, token = identity.join("hawk-7", "")
    at = app(token)
    at.switch_page("pages/room.py").run()
    assert "a sample worth sharing" in [c.value for c in at.code]
    at.button(key=f"wall_{post.id}").click().run()
    assert board.wall(actor=ALICE) == []


def test_the_teacher_saves_a_room_preset(room):
    _, token = identity.join("hawk-7", "")
    at = app(token)
    at.switch_page("pages/room.py").run()
    form_boxes = [s for s in at.selectbox if s.label in ("Data set", "Model")]
    form_boxes[0].set_value("tiny_points")
    form_boxes[1].set_value("tiny_line")
    next(t for t in at.text_input if t.label == "Preset").input("Quick")
    next(s for s in at.selectbox if s.label == "Lesson").set_value("measuring")
    next(b for b in at.button if b.label == "Save the room preset").click().run()
    assert not at.exception
    assert board.room_preset() == {"dataset": "tiny_points", "model": "tiny_line", "preset": "Quick",
                                   "lesson": "measuring"}


def test_participants_see_the_wall_and_take_down_their_own_post(room):
    run_id = queued(ALICE)
    post = board.post_to_wall(run_id, text="alice's first words", caption="look", actor=ALICE)
    _, token = identity.join("owl-42", "bob")
    at = app(token)
    at.switch_page("pages/wall.py").run()
    assert not at.exception
    assert "alice's first words" in [c.value for c in at.code] and "look" in shown(at)
    assert not [b for b in at.button if b.key == f"down_{post.id}"]  # not bob's to take down
    _, token = identity.join("owl-42", "alice")
    at = app(token)
    at.switch_page("pages/wall.py").run()
    at.button(key=f"down_{post.id}").click().run()
    assert board.wall(actor=Actor("bob")) == []


# ---- the Train page in workshop mode ------------------------------------------------------------

def train_page(token: str, **params) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["t"] = token
    for key, value in params.items():
        at.query_params[key] = value
    at.run()
    at.switch_page("pages/train.py").run()
    return at


def infos(at) -> str:
    return " ".join(i.value for i in at.info)


def test_the_train_page_shows_a_queued_runs_place_and_expected_wait(room):
    store = RunStore()
    busy = api.submit(api.make_config("tiny_line", "tiny_points", train_set={"steps": 0, "max_seconds": 60}),
                      store=store, start=False, actor=TEACHER)
    store.update(busy.id, status="running", claim="held", heartbeat=4e9)  # holds the one slot
    mine = api.submit(api.make_config("tiny_line", "tiny_points", train_set={"steps": 0, "max_seconds": 30}),
                      store=store, start=False, actor=ALICE)
    _, token = identity.join("owl-42", "alice")
    at = train_page(token, run=mine.id)
    assert not at.exception, at.exception
    assert "next in the queue; expected to start in about 60 s" in infos(at)
    assert [o for o in at.selectbox(key="tr_run").options if busy.id in o] == []  # the teacher's run is not hers


def test_over_the_run_limit_the_train_page_says_which_limit(room):
    queued(ALICE)
    queued(ALICE)
    _, token = identity.join("owl-42", "alice")
    at = train_page(token)
    at.selectbox(key="tr_data").set_value("tiny_points").run()
    at.selectbox(key="tr_model_points").set_value("tiny_line").run()
    at.button(key="tr_start").click().run()
    assert any("AIGC_MAX_ACTIVE_RUNS" in e.value for e in at.error)
    assert len(RunStore().list(actor=ALICE)) == 2


def test_the_room_preset_fills_the_train_form_with_one_click(room):
    board.set_room_preset(TEACHER, dataset="tiny_points", model="tiny_line", preset="Quick")
    _, token = identity.join("owl-42", "alice")
    at = train_page(token)
    assert "The teacher's room preset" in infos(at)
    at.button(key="tr_room_preset").click().run()
    assert at.selectbox(key="tr_data").value == "tiny_points"
    assert at.selectbox(key="tr_model_points").value == "tiny_line"
    assert at.radio(key="tr_preset_tiny_line").value == "Quick"


def test_a_settings_link_opens_the_form_filled_in_and_the_page_offers_its_own(room):
    _, token = identity.join("owl-42", "alice")
    at = train_page(token, dataset="tiny_points", model="tiny_line", preset="Custom", set="lr=0.2")
    assert not at.exception, at.exception
    assert at.radio(key="tr_preset_tiny_line").value == "Custom"
    assert at.number_input(key="tr_tiny_line_Custom_m_lr").value == pytest.approx(0.2)
    link = next(c.value for c in at.code if "dataset=" in c.value)
    assert link.endswith("?dataset=tiny_points&model=tiny_line&preset=Custom&set=lr%3D0.2")
    from urllib.parse import parse_qs

    assert "t" not in parse_qs(link.split("?")[1])  # a shared link never carries who you are


def test_a_finished_run_is_published_to_the_room_from_the_gallery(room):
    run = api.run_in_foreground(api.make_config("tiny_line", "tiny_points", train_set={"steps": 10}),
                                store=RunStore(), echo=lambda _m: None, actor=ALICE)
    _, token = identity.join("owl-42", "alice")
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["t"] = token
    at.query_params["run"] = run.id
    at.run()
    at.switch_page("pages/gallery.py").run()
    assert not at.exception, at.exception
    at.toggle(key=f"publish:{run.id}").set_value(True).run()
    assert RunStore().get(run.id).published
    _, bobs = identity.join("owl-42", "bob")
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["t"] = bobs
    at.run()
    at.switch_page("pages/gallery.py").run()
    assert "Published to the room by alice." in shown(at)
