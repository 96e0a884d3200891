"""Room: the teacher's view of the workshop. Who is here and what each is
training, the queue and the machine's load, stop or delete anything, the room
preset, the shared wall and the room leaderboard. Everything it shows and
changes comes from :mod:`aigc_core.room.board` and the run store."""

from __future__ import annotations

import time

import streamlit as st

from aigc_core.room import board
from aigc_core.room.limits import bytes_words
from pages.common import acting, get_store, guard, room_leaderboard, status_label

actor = acting("Room")
st.title("Room")
if not actor.sees_everything:
    st.error("The Room page is the teacher's.", icon=":material/lock:")
    st.stop()

store = get_store()


def ago(when: float | None) -> str:
    if not when:
        return "never"
    seconds = max(0, time.time() - when)
    return f"{seconds:.0f} s ago" if seconds < 120 else f"{seconds / 60:.0f} min ago"


# ---- load --------------------------------------------------------------------------
load = board.room_load(store)
c1, c2, c3, c4, c5 = st.columns(5)
c1.metric("Training", f"{load.training} of {load.slots} slot(s)")
c2.metric("Waiting in the queue", load.queued)
c3.metric("Paused (slot given back)", load.paused)
c4.metric("CPU load", "unknown" if load.cpu_load is None else f"{load.cpu_load:.0%}",
          help="The 1-minute load average per core.")
c5.metric("Memory in use", "unknown" if load.memory_used is None else f"{load.memory_used:.0%}")

# ---- people ------------------------------------------------------------------------
st.subheader("Who is here")
people = board.people(store)
if not people:
    st.caption("Nobody has joined yet. Participants join with the room code and a name in the sidebar.")
else:
    st.dataframe(
        [{"name": p.name + (" (teacher)" if p.role == "teacher" else ""), "here": "yes" if p.here else "no",
          "last seen": ago(p.last_seen), "page": p.page or "", "training now": ", ".join(
              f"{r.name} ({r.status})" for r in p.active) or "-", "runs": p.runs, "data sets": p.datasets,
          "data on disk": bytes_words(p.data_bytes)} for p in people],
        hide_index=True, use_container_width=True)

# ---- runs: stop or delete anything ------------------------------------------------
st.subheader("Runs in the room")
runs = store.list()
if not runs:
    st.caption("No runs yet.")
else:
    from aigc_core.runs.queue import queue_place

    rows = []
    for r in runs:
        place = queue_place(store, r.id) if r.status == "queued" else None
        rows.append({"run": r.name, "by": r.user or "starter", "status": status_label(r), "step": r.step,
                     "queue": "" if place is None else f"{place.ahead} ahead", "published": "yes" if r.published
                     else "", "id": r.id})
    st.dataframe(rows, hide_index=True, use_container_width=True)
    chosen = st.selectbox("Run", [r.id for r in runs], key="room_run",
                          format_func=lambda rid: next(f"{r.name} · {r.user or 'starter'} · {r.status} · {r.id}"
                                                       for r in runs if r.id == rid))
    b1, b2, b3 = st.columns(3)
    if b1.button("Stop", key="room_stop", icon=":material/stop_circle:"):
        with guard("Stopping the run"):
            store.request(chosen, "stop", actor=actor)
            st.rerun()
    if b2.button("Resume", key="room_resume", icon=":material/play_circle:"):
        with guard("Resuming the run"):
            from aigc_core.runs.api import resume

            resume(chosen, store, actor=actor)
            st.rerun()
    if b3.button("Delete", key="room_delete", icon=":material/delete:"):
        st.session_state["room_confirm_delete"] = chosen
    if st.session_state.get("room_confirm_delete") == chosen:
        st.warning(f"Delete run {chosen} with its checkpoints and samples? This cannot be undone.")
        if st.button("Yes, delete it", key="room_delete_yes", type="primary"):
            with guard("Deleting the run"):
                store.delete(chosen, actor=actor)
                st.session_state.pop("room_confirm_delete", None)
                st.rerun()

# ---- the room preset ----------------------------------------------------------------
st.subheader("Room preset")
st.caption("Fix the data set, model and settings (or some of them); participants start from it with one click "
           "on the Train page. The lesson is the one everyone's Learn page opens.")
current = board.room_preset()
with st.form("room_preset"):
    from aigc_core.data.catalog import list_datasets
    from aigc_core.registry import all_models

    sets = [""] + [d.name for d in list_datasets(actor=actor)]
    models = [""] + [m.name for m in all_models()]
    dataset = st.selectbox("Data set", sets, index=sets.index(current.get("dataset", ""))
                           if current.get("dataset", "") in sets else 0, format_func=lambda s: s or "(free choice)")
    model = st.selectbox("Model", models, index=models.index(current.get("model", ""))
                         if current.get("model", "") in models else 0, format_func=lambda s: s or "(free choice)")
    preset = st.text_input("Preset", value=current.get("preset", ""), help="Quick, Standard, ... (empty: free choice)")
    settings = st.text_area("Settings (one key=value a line)",
                            value="\n".join(f"{k}={v}" for k, v in current.get("settings", {}).items()))
    from aigc_core.learn import lessons

    titles = {"": "(none)"} | {l.name: f"{l.order}. {l.title}" for l in lessons.list_lessons()}
    lesson = st.selectbox("Lesson", list(titles), index=list(titles).index(current.get("lesson", ""))
                          if current.get("lesson", "") in titles else 0, format_func=titles.get)
    save, clear = st.columns(2)
    saved = save.form_submit_button("Save the room preset", type="primary")
    cleared = clear.form_submit_button("Clear it")
if saved:
    with guard("Saving the room preset"):
        from aigc_core.config import parse_sets

        pairs = [line.strip() for line in settings.splitlines() if line.strip()]
        # one write: the lesson comes from the list of lessons, so it needs no check of its own
        board.set_room_preset(actor, dataset=dataset or None, model=model or None, preset=preset.strip() or None,
                              settings=parse_sets(pairs), lesson=lesson or None)
        st.success("Saved: participants see it on the Train page.")
if cleared:
    board.clear_room_preset(actor)
    st.rerun()

# ---- the shared wall ----------------------------------------------------------------
st.subheader("Shared wall")
posts = board.wall(actor=actor, include_hidden=True)
if not posts:
    st.caption("Nothing published yet. Participants post samples from the Gallery.")
for i, post in enumerate(posts):
    with st.container(border=True):
        head, button = st.columns([4, 1], vertical_alignment="center")
        head.text(f"{post.user} · {post.run_name} · {ago(post.created)}" + (" · hidden" if post.hidden else ""))
        if button.button("Show" if post.hidden else "Hide", key=f"wall_{post.id}"):
            board.hide_post(post.id, not post.hidden, actor=actor)
            st.rerun()
        if post.caption:
            st.text(post.caption)
        if post.path is not None and post.path.exists():
            st.image(str(post.path), width=240)
        elif post.text is not None:
            st.code(post.text, language=None, wrap_lines=True)

# ---- the room leaderboard -----------------------------------------------------------
st.subheader("Room leaderboard")
room_leaderboard(actor, key="room_board_dataset")
