"""Pieces every page shares: the run store, the sidebar, pickers, and the
guard that turns a user's mistake into a message instead of a traceback.

Nothing here trains or samples; it only calls :mod:`aigc_core`.
"""

from __future__ import annotations

import logging
import re
import traceback
from contextlib import contextmanager

import streamlit as st

from aigc_core.errors import UserError
from aigc_core.room.identity import Actor

log = logging.getLogger("aigc_studio")


def _use_app_navigation() -> None:
    """Streamlit treats a ``pages/`` folder beside the entry script as its legacy
    multipage layout until ``st.navigation`` has run once. When the first
    request of a fresh server is a page URL (a refresh on /train, a shared
    link), that legacy mode would run the page without app.py's navigation and
    sidebar; switch it off and rerun through app.py instead."""
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


_use_app_navigation()

#: statuses during which a run's state changes by itself (the Train page's live panel refreshes then)
ACTIVE_STATUSES = ("queued", "starting", "running", "paused")
STATUS_ICONS = {
    "queued": ":material/hourglass_empty:", "starting": ":material/pending:", "running": ":material/play_circle:",
    "paused": ":material/pause_circle:", "completed": ":material/check_circle:", "stopped": ":material/stop_circle:",
    "failed": ":material/error:", "interrupted": ":material/warning:",
}


@st.cache_resource
def _store_at(home: str):
    from aigc_core.runs.store import RunStore

    return RunStore()


def get_store():
    """One RunStore per workspace (it opens a connection per call); keyed by
    ``$AIGC_HOME`` so a changed workspace never reads another's runs."""
    from aigc_core.paths import aigc_home

    return _store_at(str(aigc_home()))


@st.cache_resource
def device_label() -> str:
    """The badge's device, from a light probe (no torch import: the first page opens at once)."""
    from aigc_core.train.probe import device_badge

    return device_badge()


#: characters Markdown (and Streamlit's directives :red[...], :material/x:, $math$) give a meaning to; ( ) and !
#: only make a link or an image after a [ ], which is escaped
_MARKDOWN_SPECIALS = re.compile(r"([\\`*{}\[\]#|~<>$&:]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")  # a_b is not emphasis
_LINE_START = re.compile(r"^(\s*)(\d*)([-+=.)])", re.M)  # a list item ("- x", "+ x", "1. x"), a === rule


def plain(text) -> str:
    """User text (a run name, a data set name, a URL value) made safe to put in
    Markdown: every character Markdown or Streamlit would read as syntax is
    backslash-escaped, so ``[x](http://...)`` shows as those characters, never
    a link or an image, and ``**b**`` is not bold."""
    text = _MARKDOWN_SPECIALS.sub(r"\\\1", str(text))
    return _LINE_START.sub(lambda m: f"{m.group(1)}{m.group(2)}\\{m.group(3)}", text)


@contextmanager
def guard(what: str = "That"):
    """Show a UserError as a plain message; any other crash as a short error
    with its type, logged with the traceback for the developers. The app stays up."""
    try:
        yield
    except UserError as exc:
        st.error(str(exc), icon=":material/error:")
    except Exception as exc:  # noqa: BLE001 - st.rerun/st.stop are BaseExceptions and pass through
        log.error("unexpected error: %s", traceback.format_exc())
        st.error(f"{what} did not work: {type(exc).__name__}: {exc}. Nothing you saved was lost; "
                 "try again, or report this message to the workshop lead.", icon=":material/error:")


def current_dataset() -> str | None:
    return st.session_state.get("dataset")


def set_current_dataset(name: str | None) -> None:
    st.session_state["dataset"] = name


def current_run() -> str | None:
    return st.session_state.get("run_id") or st.query_params.get("run")


def set_current_run(run_id: str | None) -> None:
    st.session_state["run_id"] = run_id


def run_label(run) -> str:
    """How a run is named in pickers: two runs can share a name, so the id (unique) ends the label.
    No status or step: a picker is drawn once, and a state in it would be stale while the run trains."""
    return f"{run.name} · {run.model} on {run.dataset} · {run.id}"


def status_label(run) -> str:
    return f"{STATUS_ICONS.get(run.status, '')} {run.status}"


def _run_state(run_id: str, live: bool) -> None:
    """The sidebar's run status, re-read once a second while the run is active (as the Train page's live panel is)."""
    try:
        run = get_store().get(run_id, actor=current_actor() or NOBODY)
    except UserError:
        return
    if (run.status in ACTIVE_STATUSES) != live:
        st.rerun(scope="app")  # it started or ended: redraw with (or without) the timer
    st.markdown(status_label(run))


def sidebar() -> None:
    """Current data set and run, and the device badge, on every page (drawn by :func:`show_page`)."""
    with st.sidebar:
        st.caption("Device")
        st.badge(device_label(), icon=":material/memory:", color="blue")
        ds = current_dataset()
        st.caption("Data set")
        st.markdown(f"**{plain(ds)}**" if ds else "none chosen yet (Data page)")
        run_id = current_run()
        st.caption("Run")
        run = None
        if run_id:
            try:
                run = get_store().get(run_id, actor=current_actor() or NOBODY)
            except UserError:
                pass  # an unknown ?run= value is never echoed
        if run is None:
            st.markdown("none yet (Train page)")
            return
        st.markdown(f"**{plain(run.name)}**")
        live = run.status in ACTIVE_STATUSES
        st.fragment(_run_state, run_every=1.0 if live else None)(run.id, live)


def show_page(page) -> None:
    """Run the page, then draw the sidebar: it names the run and data set the page has just picked (a picker
    that changed the run on this rerun, a ``?run=`` in the address), never the previous rerun's. A page that
    stops early (``st.stop``, a rerun) still gets its sidebar."""
    try:
        page.run()
    finally:
        sidebar()


@st.cache_resource(max_entries=6, show_spinner="Loading the model from its checkpoint ...")
def _trainer_at(run_id: str, step: int, home: str, checkpoint: str = "best"):
    from aigc_core.sample import load_for_sampling

    return load_for_sampling(run_id, store=get_store(), checkpoint=checkpoint)[0]


def sampling_trainer(run_id: str, checkpoint: str = "best"):
    """``(trainer, step)`` with the run's best checkpoint by held-out loss (the
    last one for a run without one), or with ``checkpoint="last"`` its newest,
    loaded for sampling; cached per (run, checkpoint, step) so a rerun never
    reloads it; a newer checkpoint of a running run gives a new entry. Raises
    UserError when the run has no checkpoint yet."""
    from aigc_core.paths import aigc_home
    from aigc_core.sample import checkpoint_step

    store = get_store()
    step = checkpoint_step(run_id, store=store, checkpoint=checkpoint)
    if step is None:
        run = store.get(run_id)
        raise UserError(f"run {run.name} has no checkpoint yet, so there is nothing to sample from; "
                        "wait for its first save (or let it finish)")
    return _trainer_at(run_id, step, str(aigc_home()), checkpoint), step


# ---- the film strip (fixed-noise samples saved as a run trains) ----------------

def data_kind(name: str):
    """The declaration of a kind of data (:mod:`aigc_core.data.kinds`)."""
    from aigc_core.data.kinds import data_kind as declared

    return declared(name)


def knob_widget(field: dict, key: str):
    """One widget for one sampling knob, from its metadata (label, help, range,
    step); the value keeps while another page is open."""
    label, help_text, default = field["label"], field.get("help") or None, field["default"]
    lo, hi, step = field.get("min"), field.get("max"), field.get("step")
    keep = dict(key=key, help=help_text, persist_state="session")
    if field.get("choices"):
        options = list(field["choices"])
        return st.selectbox(label, options, index=options.index(default) if default in options else 0, **keep)
    if isinstance(default, bool):
        return st.checkbox(label, value=default, **keep)
    if isinstance(default, int):
        if lo is not None and hi is not None and hi - lo <= 1000:
            return int(st.slider(label, int(lo), int(hi), int(default), int(step or 1), **keep))
        return int(st.number_input(label, None if lo is None else int(lo), None if hi is None else int(hi),
                                   int(default), int(step or 1), **keep))
    if isinstance(default, float):
        if lo is not None and hi is not None:
            return float(st.slider(label, float(lo), float(hi), float(default), float(step or (hi - lo) / 100), **keep))
        return float(st.number_input(label, value=float(default), **keep))
    return st.text_input(label, str(default), **keep)


def film_caption(run) -> str:
    """What one frame of this run's film strip shows, in its model's words."""
    from aigc_core.registry import get_model

    try:
        return get_model(run.model).film_caption
    except UserError:  # a run of a model that is no longer installed
        return ""


@st.cache_data(max_entries=256, show_spinner=False)
def frame_png(path: str, mtime: float) -> bytes:
    """A film-strip frame, scaled up with crisp pixels (cached: frames never change)."""
    from PIL import Image

    from aigc_core.imaging import png_bytes, upscale

    with Image.open(path) as img:
        return png_bytes(upscale(img.convert("RGB"), 480))


def film_strip(run, key: str = "film_strip") -> None:
    """The run's film strip: the frame at a step chosen with a slider (which
    follows the newest frame while it sits on the newest one), or the text
    sample at that step. Frames are read from the run folder, images cached."""
    frames = dict(run.folder.frames())
    if not frames:
        st.caption("The first film-strip frame appears when training starts.")
        return
    steps = sorted(frames)
    key, seen = f"{key}_{run.id}", f"{key}_latest_{run.id}"
    # follow the newest frame while the slider sits on the previous newest one
    if st.session_state.get(key) not in frames or st.session_state.get(key) == st.session_state.get(seen):
        st.session_state[key] = steps[-1]
    st.session_state[seen] = steps[-1]
    if len(steps) > 1:
        step = st.select_slider("Film strip: step", steps, key=key,
                                help="The same fixed noise (or prompt) at every frame, so the only thing that "
                                     "changes is what the model has learned.")
    else:
        step = steps[0]
    path = frames[step]
    if path.suffix == ".txt":
        st.caption(f"Step {step}: {film_caption(run) or 'what the model writes from the same fixed start'}")
        st.code(path.read_text(encoding="utf-8", errors="replace"), language=None, wrap_lines=True)
    else:
        st.image(frame_png(str(path), path.stat().st_mtime), caption=f"Step {step}. {film_caption(run)}")


# ---- who is acting (workshop mode) -----------------------------------------------

TOKEN_PARAM = "t"
#: who the sidebar shows things to before this browser joined: only what belongs to the whole room
NOBODY = Actor("", "participant")


def current_actor():
    """Who this browser is: the single local user outside workshop mode; in
    workshop mode the participant or teacher its signed token names (kept in
    the URL as ``?t=...``, so a refresh or a copied link stays them), or None
    before they join."""
    from aigc_core.room.identity import LOCAL, actor_from_token, workshop_mode

    if not workshop_mode():
        return LOCAL
    token = st.query_params.get(TOKEN_PARAM) or st.session_state.get("room_token")
    actor = actor_from_token(token)
    if actor is None:
        st.session_state.pop("room_token", None)
        return None
    st.session_state["room_token"] = token
    if st.query_params.get(TOKEN_PARAM) != token:  # page switches drop query parameters: put it back
        st.query_params[TOKEN_PARAM] = token
    return actor


def acting(page: str | None = None):
    """Who the page acts for; every page calls this first. In workshop mode it
    shows the join form (and stops the page) until this browser has joined,
    then "You are NAME · Leave" in the sidebar."""
    return room_gate(page)


def room_gate(page_title: str | None = None):
    """In workshop mode: the join form in the sidebar until this browser has
    joined, then "You are NAME · Leave". Returns the actor, or stops the page
    (after saying how to join) when nobody has joined yet.

    Pages call it (through :func:`acting`), and app.py calls it before running
    a page for a browser that has not joined, so no page shows anything to it."""
    from aigc_core.room import board, identity

    actor = current_actor()
    if not identity.workshop_mode():
        return actor
    with st.sidebar:
        if actor is None:
            st.subheader("Join the workshop")
            with st.form("join"):
                code = st.text_input("Room code", type="password", help="The code the teacher gave the room.")
                name = st.text_input("Your name", max_chars=identity.MAX_NAME,
                                     help="Shown to the room next to what you publish.")
                joined = st.form_submit_button("Join", type="primary")
            if joined:
                try:
                    actor, token = identity.join(code, name)
                except UserError as exc:
                    st.error(str(exc), icon=":material/error:")
                else:
                    st.session_state["room_token"] = token
                    st.query_params[TOKEN_PARAM] = token
                    st.rerun()
        else:
            role = " (teacher)" if actor.is_teacher else ""
            c1, c2 = st.columns([3, 1], vertical_alignment="center")
            c1.text(f"You are {actor.name}{role}")
            if c2.button("Leave", key="leave_room", help="Forget who you are in this browser"):
                st.session_state.pop("room_token", None)
                st.query_params.pop(TOKEN_PARAM, None)
                st.rerun()
    if actor is None:
        st.title("AIGC Studio")
        st.info("This studio is a workshop room. Type the room code and your name in the sidebar to join.",
                icon=":material/group:")
        st.stop()
    board.seen(actor, page_title)
    return actor


def room_leaderboard(actor, key: str) -> None:
    """The bake-off table over the room's published, finished runs on one data set."""
    from aigc_core.room import board

    store = get_store()
    choices = board.published_datasets(actor=actor, store=store)
    if not choices:
        st.caption("No published, finished runs yet. Publish a finished run from the Gallery to put it here.")
        return
    dataset = st.selectbox("Data set", choices, key=key)
    table = board.room_leaderboard(dataset, actor=actor, store=store)
    by_id = {r.id: r for r in table["runs"]}
    rows = []
    for rank, rid in enumerate(table["order"], 1):
        r = by_id[rid]
        row = {"#": rank, "by": r.user or "starter", "run": r.name, "model": r.model}
        for col in table["columns"]:
            value = r.final_metrics.get(col["key"])
            row[col["label"]] = "" if value is None else f"{value:.4g}" + (" ★" if rid in col["best"] else "")
        rows.append(row)
    st.dataframe(rows, hide_index=True, use_container_width=True)
    if table["ranked_by"]:
        st.caption(f"Ranked by {table['ranked_by']}; ★ marks the best value of each number.")
