"""Workshop mode end to end in the engine and on the command line: ownership,
per-person limits, the fair queue, ratings per person, a paused run giving its
slot back, and the single user who notices none of it."""

from __future__ import annotations

import json
import sqlite3
import threading
import time

import pytest

from aigc_core import cli
from aigc_core.data.base import TextData
from aigc_core.data.catalog import delete_dataset, list_datasets, publish_dataset, save_uploaded
from aigc_core.errors import UserError
from aigc_core.room.identity import LOCAL, Actor
from aigc_core.runs import api, executors, queue
from aigc_core.runs import store as store_module
from aigc_core.runs.store import RunStore
from aigc_core.train.loop import train_run

ALICE, BOB, TEACHER = Actor("alice"), Actor("bob"), Actor("Teacher", "teacher")


@pytest.fixture
def room(monkeypatch, fresh_home):
    monkeypatch.setenv("AIGC_WORKSHOP_CODE", "owl-42")
    monkeypatch.setenv("AIGC_TEACHER_CODE", "hawk-7")
    monkeypatch.setenv("AIGC_MAX_JOBS", "1")
    monkeypatch.delenv("AIGC_USER", raising=False)
    return fresh_home


def tiny_config(steps: int = 40, max_seconds: float = 0.0, **model):
    return api.make_config("tiny_line", "tiny_points", model_set=model,
                           train_set={"steps": steps, "max_seconds": max_seconds, "log_every": 5,
                                      "sample_every": 10, "checkpoint_every": 10})


def queued_run(actor: Actor, store: RunStore, steps: int = 40, max_seconds: float = 0.0):
    """A queued run of ``actor`` that no worker picks up (the test claims slots itself)."""
    return api.submit(tiny_config(steps, max_seconds), store=store, start=False, actor=actor)


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# ---- ownership -----------------------------------------------------------------------------------

def test_a_participant_lists_and_opens_only_their_own_runs_and_published_ones(room):
    store = RunStore()
    mine, theirs = queued_run(ALICE, store), queued_run(BOB, store)
    assert [r.id for r in store.list(actor=ALICE)] == [mine.id]
    with pytest.raises(UserError, match="this run belongs to bob"):
        store.get(theirs.id, actor=ALICE)
    store.publish(theirs.id, actor=BOB)
    assert {r.id for r in store.list(actor=ALICE)} == {mine.id, theirs.id}
    assert store.get(theirs.id, actor=ALICE).published
    with pytest.raises(UserError, match="this run belongs to bob"):  # seeing is not changing
        store.request(theirs.id, "stop", actor=ALICE)


def test_the_teacher_sees_and_stops_everyones_runs(room):
    store = RunStore()
    runs = [queued_run(ALICE, store), queued_run(BOB, store)]
    assert {r.id for r in store.list(actor=TEACHER)} == {r.id for r in runs}
    for r in runs:
        assert store.request(r.id, "stop", actor=TEACHER).status == "stopped"
    api.control(runs[0].id, "delete", store, actor=TEACHER)
    assert not store.exists(runs[0].id)


def test_starter_models_are_everyones_to_sample_and_only_the_teachers_to_change(room):
    store = RunStore()
    starter = store.create(model="tiny_line", family="toy", dataset="tiny_points", data_kind="points",
                           config=tiny_config(), owner="starter")
    store.update(starter.id, status="completed")
    assert store.get(starter.id, actor=BOB).user is None
    with pytest.raises(UserError, match="shared with the whole room; only the teacher"):
        store.delete(starter.id, actor=BOB)


def test_a_run_someone_else_made_cannot_be_sampled_exported_or_published(room):
    store = RunStore()
    run = api.run_in_foreground(tiny_config(10), store=store, echo=lambda _m: None, actor=ALICE)
    from aigc_core.sample import load_for_sampling

    for call in (lambda: load_for_sampling(run.id, store=store, actor=BOB),
                 lambda: api.export_run(run.id, store, actor=BOB),
                 lambda: store.publish(run.id, actor=BOB),
                 lambda: store.rename(run.id, "mine now", actor=BOB)):
        with pytest.raises(UserError, match="this run belongs to alice"):
            call()
    assert load_for_sampling(run.id, store=store, actor=ALICE)[2] == 10


def test_without_workshop_mode_the_single_user_sees_and_changes_everything(fresh_home, monkeypatch):
    monkeypatch.delenv("AIGC_WORKSHOP_CODE", raising=False)
    store = RunStore()
    run = api.submit(tiny_config(), store=store, start=False)
    assert run.user == "local" and store.list()[0].id == run.id
    assert store.request(run.id, "stop").status == "stopped"


# ---- data sets -----------------------------------------------------------------------------------

def _text(name: str) -> TextData:
    return TextData(name, "the quick brown fox jumps over the lazy dog\n" * 20, mode="stream")


def test_uploaded_data_sets_belong_to_who_saved_them(room):
    save_uploaded(_text("alices_text"), actor=ALICE)
    assert "alices_text" not in {d.name for d in list_datasets(actor=BOB)}
    assert "tiny_points" in {d.name for d in list_datasets(actor=BOB)}  # built-ins are everyone's
    with pytest.raises(UserError, match="this data set belongs to alice"):
        api.make_config("char_gpt", "alices_text", preset="Quick", actor=BOB)
    with pytest.raises(UserError, match="this data set belongs to alice"):
        delete_dataset("alices_text", actor=BOB)
    with pytest.raises(UserError, match="this data set belongs to alice"):
        save_uploaded(_text("alices_text"), overwrite=True, actor=BOB)
    publish_dataset("alices_text", actor=ALICE)
    assert "alices_text" in {d.name for d in list_datasets(actor=BOB)}
    delete_dataset("alices_text", actor=TEACHER)


def test_the_data_set_count_limit_names_itself_and_how_to_make_room(room, monkeypatch):
    monkeypatch.setenv("AIGC_MAX_USER_DATASETS", "1")
    save_uploaded(_text("first"), actor=ALICE)
    with pytest.raises(UserError, match=r"limit here is 1 per person \(AIGC_MAX_USER_DATASETS\); delete one"):
        save_uploaded(_text("second"), actor=ALICE)
    save_uploaded(_text("bobs"), actor=BOB)  # the limit is per person
    save_uploaded(_text("teachers"), actor=TEACHER)
    assert "second" not in {d.name for d in list_datasets()}


def test_the_bytes_limit_refuses_an_upload_that_would_go_over_it(room, monkeypatch):
    monkeypatch.setenv("AIGC_MAX_USER_BYTES", "300")
    with pytest.raises(UserError, match=r"AIGC_MAX_USER_BYTES\); delete one of your data sets"):
        save_uploaded(_text("big"), actor=ALICE)
    assert "big" not in {d.name for d in list_datasets()}
    assert not [p for p in (room / "datasets").iterdir()]  # nothing half-saved is left behind


# ---- per-person run limit ------------------------------------------------------------------------

def test_a_third_run_at_once_is_refused_with_the_limit_named(room):
    store = RunStore()
    queued_run(ALICE, store)
    queued_run(ALICE, store)
    with pytest.raises(UserError, match=r"limit here is 2 at once per person \(AIGC_MAX_ACTIVE_RUNS\)"):
        queued_run(ALICE, store)
    queued_run(BOB, store)
    queued_run(TEACHER, store)
    queued_run(TEACHER, store)
    queued_run(TEACHER, store)  # the teacher has no such limit


def test_a_stopped_run_frees_its_place_and_resuming_counts_again(room):
    store = RunStore()
    first = queued_run(ALICE, store)
    queued_run(ALICE, store)
    store.request(first.id, "stop", actor=ALICE)
    third = queued_run(ALICE, store)
    with pytest.raises(UserError, match="AIGC_MAX_ACTIVE_RUNS"):
        api.resume(first.id, store, actor=ALICE)
    store.request(third.id, "stop", actor=ALICE)
    assert api.resume(first.id, store, actor=ALICE).status in ("queued", "starting", "running", "completed")


# ---- the fair queue ------------------------------------------------------------------------------

def test_with_one_slot_bobs_run_starts_before_alices_second(room):
    store = RunStore()
    a1, a2 = queued_run(ALICE, store), queued_run(ALICE, store)
    b1 = queued_run(BOB, store)
    assert [queue.queue_position(store, r.id) for r in (a1, b1, a2)] == [0, 1, 2]
    started = []
    for _ in range(3):
        ids = queue.claim(store)
        assert len(ids) == 1  # one slot
        started += ids
        store.set_status(ids[0], "completed")
    assert started == [a1.id, b1.id, a2.id]


def test_the_queue_place_gives_the_expected_wait_from_time_budgets(room):
    store = RunStore()
    busy = queued_run(TEACHER, store, steps=0, max_seconds=60)
    assert queue.claim(store) == [busy.id]
    a1, a2 = queued_run(ALICE, store, 0, 30), queued_run(ALICE, store, 0, 30)
    b1 = queued_run(BOB, store, 0, 30)
    places = {r.id: queue.queue_place(store, r.id) for r in (a1, b1, a2)}
    assert [(places[r.id].ahead, places[r.id].wait_seconds) for r in (a1, b1, a2)] == [(0, 60), (1, 90), (2, 120)]
    assert queue.queue_place(store, busy.id) is None


def test_a_foreground_train_whose_command_ended_does_not_block_the_queue(room):
    store = RunStore()
    ghost = store.create(model="tiny_line", family="toy", dataset="tiny_points", data_kind="points",
                         config=tiny_config(), owner="foreground", actor=ALICE, pid=2**22 + 17)
    waiting = queued_run(BOB, store)
    assert queue.claim(store) == [waiting.id]
    assert store.get(ghost.id).status == "interrupted"


# ---- ratings -------------------------------------------------------------------------------------

def test_ratings_belong_to_who_gave_them(room):
    from aigc_core import data_loop

    store = RunStore()
    run = queued_run(ALICE, store)
    store.publish(run.id, actor=ALICE)
    item = data_loop.row_item(0, 0, 0)
    store.rate(run.id, item, 1, {"kind": "row"}, actor=ALICE)
    store.rate(run.id, item, 0, {"kind": "row"}, actor=BOB)
    assert data_loop.ratings_by_item(run.id, store, actor=ALICE) == {item: 1}
    assert data_loop.ratings_by_item(run.id, store, actor=BOB) == {item: 0}
    assert len(store.ratings(run.id, actor=TEACHER)) == 2
    data_loop.unrate(run.id, item, store, actor=BOB)
    assert [r["user"] for r in store.ratings(run.id, actor=TEACHER)] == ["alice"]
    store.publish(run.id, False, actor=ALICE)
    with pytest.raises(UserError, match="this run belongs to alice"):
        store.rate(run.id, item, 1, actor=BOB)


def test_an_old_runs_db_gains_users_and_its_ratings_are_kept(tmp_path):
    path = tmp_path / "old.db"
    schema = (store_module.SCHEMA.replace(",\n    claim TEXT,\n    user TEXT,\n    published INTEGER NOT NULL DEFAULT 0\n", "\n")
              .replace(",\n    user TEXT NOT NULL DEFAULT 'local',\n    PRIMARY KEY (run_id, item, user)",
                       ",\n    PRIMARY KEY (run_id, item)"))
    assert "user" not in schema
    conn = sqlite3.connect(path)
    conn.executescript(schema)
    for rid, owner in (("mine", "worker"), ("starter", "starter")):
        conn.execute("INSERT INTO runs (id, name, model, family, dataset, data_kind, status, config, owner, created)"
                     " VALUES (?, 'old', 'tiny_line', 'toy', 'tiny_points', 'points', 'completed', '{}', ?, 0)",
                     (rid, owner))
    conn.execute("INSERT INTO ratings VALUES ('mine', 'row|0|0|0|-', 1, '{}', 0)")
    conn.commit()
    conn.close()
    store = RunStore(path)
    assert store.get("mine").user == "local" and store.get("starter").user is None
    assert [(r["item"], r["user"]) for r in store.ratings("mine")] == [("row|0|0|0|-", "local")]


# ---- a paused run gives its slot back ------------------------------------------------------------

def test_a_long_pause_gives_the_slot_back_and_resume_queues_the_run_again(room, monkeypatch):
    monkeypatch.setenv("AIGC_PAUSE_RELEASE_SECONDS", "1")
    store = RunStore()
    run = api.submit(tiny_config(400, step_sleep=0.01), store=store, start=False, actor=ALICE)
    assert queue.claim(store) == [run.id]
    result = {}
    worker = threading.Thread(target=lambda: result.setdefault("status", train_run(run.id, store)))
    worker.start()
    deadline = time.time() + 60
    while store.get(run.id).status != "running" or store.get(run.id).step < 10:
        assert time.time() < deadline
        time.sleep(0.05)
    store.request(run.id, "pause", actor=ALICE)
    worker.join(60)
    assert result["status"] == "paused"
    paused = store.get(run.id)
    assert paused.status == "paused" and not paused.holds_slot and "slot went back" in paused.message
    other = queued_run(BOB, store)
    assert queue.claim(store) == [other.id]  # the slot is free for someone else
    store.set_status(other.id, "completed")
    assert store.request(run.id, "resume", actor=ALICE).status == "queued"
    assert queue.claim(store) == [run.id]
    assert train_run(run.id, store) == "completed"
    done = store.get(run.id)
    assert done.step == 400 and done.train_seconds > 0


# ---- the command line ----------------------------------------------------------------------------

def test_control_on_someone_elses_run_exits_2_with_one_error_line(room, capsys):
    store = RunStore()
    run = queued_run(ALICE, store)
    code, out, err = run_cli(capsys, "control", "--run", run.id, "stop", "--user", "bob")
    assert code == 2 and err.strip() == "error: this run belongs to alice" and not out
    code, out, _ = run_cli(capsys, "control", "--run", run.id, "stop", "--user", "alice")
    assert code == 0 and "stopped" in out


def test_runs_lists_what_the_user_may_see_with_queue_places(room, capsys, monkeypatch):
    store = RunStore()
    mine = queued_run(ALICE, store)
    theirs = queued_run(BOB, store)
    monkeypatch.setattr(executors, "spawn_worker", lambda run_id: pytest.fail("no worker in this test"))
    monkeypatch.setenv("AIGC_MAX_JOBS", "1")
    busy = queued_run(TEACHER, store, 0, 60)
    store.update(busy.id, status="running", claim="held", heartbeat=time.time() + 3600, pid=None)
    code, out, _ = run_cli(capsys, "runs", "--json", "--user", "alice")
    runs = json.loads(out.strip().splitlines()[-1])["runs"]
    assert code == 0 and [r["run_id"] for r in runs] == [mine.id]
    assert runs[0]["user"] == "alice" and runs[0]["queue_ahead"] == 0
    code, out, _ = run_cli(capsys, "runs", "--json", "--teacher")
    assert {r["run_id"] for r in json.loads(out.strip().splitlines()[-1])["runs"]} == {mine.id, theirs.id, busy.id}


def test_workshop_commands_need_to_know_who_is_acting(room, capsys):
    code, _, err = run_cli(capsys, "runs")
    assert code == 2 and err.startswith("error: workshop mode is on: say who you are with --user NAME")
    code, _, err = run_cli(capsys, "datasets", "--user", "teacher")
    assert code == 2 and "a name the studio uses itself" in err


def test_import_data_records_the_owner_and_datasets_shows_only_theirs(room, capsys, tmp_path):
    path = tmp_path / "poem.txt"
    path.write_text("roses are red, violets are blue\n" * 30)
    code, _, err = run_cli(capsys, "import-data", str(path), "--name", "poem", "--user", "alice")
    assert code == 0, err
    _, out, _ = run_cli(capsys, "datasets", "--json", "--user", "bob")
    assert "poem" not in {d["name"] for d in json.loads(out.strip().splitlines()[-1])["datasets"]}
    _, out, _ = run_cli(capsys, "datasets", "--json", "--user", "alice")
    mine = [d for d in json.loads(out.strip().splitlines()[-1])["datasets"] if d["name"] == "poem"]
    assert mine[0]["owner"] == "alice"
    code, _, err = run_cli(capsys, "train", "--model", "char_gpt", "--dataset", "poem", "--preset", "Quick",
                           "--detach", "--user", "bob")
    assert code == 2 and err.strip() == "error: this data set belongs to alice"


# ---- the teacher's room: people, preset, wall, leaderboard ---------------------------------------

def test_the_room_lists_who_is_here_and_what_each_is_training(room):
    from aigc_core.room import board

    store = RunStore()
    board.seen(ALICE, "Train")
    run = queued_run(ALICE, store)
    queued_run(BOB, store)  # bob never opened a page but has a run: he is listed, not "here"
    people = {p.name: p for p in board.people(store)}
    assert people["alice"].here and [r.id for r in people["alice"].active] == [run.id]
    assert not people["bob"].here and people["bob"].runs == 1
    load = board.room_load(store)
    assert (load.slots, load.queued, load.training) == (1, 2, 0)


def test_only_the_teacher_sets_the_room_preset_and_a_preset_that_cannot_train_is_refused(room):
    from aigc_core.room import board

    with pytest.raises(UserError, match="only the teacher"):
        board.set_room_preset(ALICE, dataset="tiny_points")
    with pytest.raises(UserError, match="no preset 'Huge'"):
        board.set_room_preset(TEACHER, model="tiny_line", preset="Huge")
    board.set_room_preset(TEACHER, dataset="tiny_points", model="tiny_line", preset="Quick", settings={"lr": 0.1})
    assert board.room_preset() == {"dataset": "tiny_points", "model": "tiny_line", "preset": "Quick",
                                   "settings": {"lr": 0.1}}
    board.clear_room_preset(TEACHER)
    assert board.room_preset() == {}


def test_the_wall_shows_published_samples_newest_first_and_the_teacher_hides_any(room):
    from PIL import Image

    from aigc_core.imaging import png_bytes
    from aigc_core.room import board

    store = RunStore()
    run = queued_run(ALICE, store)
    first = board.post_to_wall(run.id, text="a first sample", actor=ALICE, store=store)
    second = board.post_to_wall(run.id, image_png=png_bytes(Image.new("L", (8, 8))), caption="my grid",
                                actor=ALICE, store=store)
    assert [p.id for p in board.wall(actor=BOB)] == [second.id, first.id]
    assert second.user == "alice" and second.path.read_bytes().startswith(b"\x89PNG")
    with pytest.raises(UserError, match="this run belongs to alice"):  # bob cannot post alice's private run
        board.post_to_wall(run.id, text="mine", actor=BOB, store=store)
    with pytest.raises(UserError, match="belongs to alice"):
        board.hide_post(first.id, actor=BOB)
    board.hide_post(first.id, actor=TEACHER)
    assert [p.id for p in board.wall(actor=BOB)] == [second.id]
    assert len(board.wall(actor=TEACHER, include_hidden=True)) == 2


def test_the_room_leaderboard_ranks_published_finished_runs_on_one_data_set(room):
    from aigc_core.room import board

    store = RunStore()
    runs = [queued_run(who, store) for who in (ALICE, BOB, TEACHER)]
    for run, error, published in zip(runs, (0.3, 0.1, 0.2), (True, True, False)):
        store.update(run.id, status="completed", final_metrics={"weight_error": error, "loss": error})
        store.publish(run.id, published, actor=TEACHER)
    table = board.room_leaderboard("tiny_points", actor=ALICE, store=store)
    assert {r.id for r in table["runs"]} == {runs[0].id, runs[1].id}  # the teacher's run is not published
    loss = next(c for c in table["columns"] if c["key"] == "loss")
    assert loss["best"] == [runs[1].id]
    assert board.published_datasets(actor=BOB, store=store) == ["tiny_points"]


def test_sample_refuses_someone_elses_private_run_and_posts_to_the_wall_for_its_owner(room, capsys, tmp_path):
    from aigc_core.room import board

    run = api.run_in_foreground(tiny_config(10), store=RunStore(), echo=lambda _m: None, actor=ALICE)
    out = tmp_path / "points.csv"
    code, _, err = run_cli(capsys, "sample", "--run", run.id, "-n", "4", "--out", str(out), "--user", "bob")
    assert code == 2 and err.strip() == "error: this run belongs to alice" and not out.exists()
    code, _, err = run_cli(capsys, "sample", "--run", run.id, "-n", "4", "--out", str(out), "--user", "alice",
                           "--post", "--caption", "my line")
    assert code == 0, err
    [post] = board.wall(actor=BOB)
    assert (post.user, post.caption, post.kind) == ("alice", "my line", "text") and post.text.startswith("x,y")


def test_repair_brings_back_who_made_a_run_and_whether_it_was_published(room):
    from aigc_core.runs.repair import repair

    store = RunStore()
    run = api.run_in_foreground(tiny_config(10), store=store, echo=lambda _m: None, actor=ALICE)
    store.publish(run.id, actor=ALICE)
    store.rate(run.id, "row|0|0|0|-", 1, {"kind": "row"}, actor=BOB)
    (room / "runs.db").unlink()
    for suffix in ("-wal", "-shm"):
        (room / f"runs.db{suffix}").unlink(missing_ok=True)
    repair()
    back = RunStore().get(run.id)
    assert (back.user, back.published) == ("alice", True)
    assert [(r["item"], r["user"]) for r in RunStore().ratings(run.id)] == [("row|0|0|0|-", "bob")]
