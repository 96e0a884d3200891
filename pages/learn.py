"""Learn: notebook-style lessons read top to bottom, with live labs.

A lesson is a file in ``lessons/`` (text, run, lab and try cells). The page
remembers how far each learner got, opens the lesson the teacher pointed the
room at, and offers every lesson as a Jupyter notebook. ``?lab=gan2d`` (or
``latent``, or ``doctor&run=ID``) opens one lab on its own, for links from
other pages.
"""

import streamlit as st

from aigc_core.learn import lessons
from aigc_core.room.identity import workshop_mode
from pages import labs
from pages.common import acting, current_run, get_store, guard

STANDALONE_LABS = {"gan2d": "The 2-D GAN lab", "latent": "The VAE latent lab", "doctor": "The training doctor"}

actor = acting("Learn")
st.title("Learn")

lab = st.query_params.get("lab")
if lab in STANDALONE_LABS:
    st.subheader(STANDALONE_LABS[lab])
    with guard(STANDALONE_LABS[lab]):
        if lab == "gan2d":
            labs.gan_lab("solo_gan2d", dataset=st.query_params.get("dataset", "ring8"))
        elif lab == "latent":
            labs.latent_lab("solo_latent")
        else:
            run_id = st.query_params.get("run") or current_run()
            run = labs.visible_run(run_id) if run_id else None
            if run is not None:
                st.caption(f"Run: {run.name} ({run.id})")
                labs.doctor_panel(run_id, key="solo_doctor")
            else:
                st.info("Open the doctor from a run (its Train panel), or add ?run=RUN_ID to this page's address.")
    st.page_link("pages/learn.py", label="All lessons", icon=":material/school:", query_params={})
    st.stop()

# ---- who is learning, and which lesson ------------------------------------------------------------
with guard("Reading the lessons"):
    all_lessons = lessons.list_lessons()
if not all_lessons:
    st.info("There are no lessons in the lessons/ folder yet; lessons/README.md says how to write one.")
    st.stop()

if workshop_mode():
    learner = actor.name  # who joined the room: their progress follows them to any browser they join from
else:  # one machine, perhaps shared by a few learners taking turns
    learner = st.sidebar.text_input("Your name", st.query_params.get("learner", ""), key="learner",
                                    help="The page remembers how far you got in each lesson under this name.",
                                    max_chars=40).strip() or "local"
progress = lessons.progress(learner)
by_name = {l.name: l for l in all_lessons}
room = lessons.room_lesson()
default = st.query_params.get("lesson") or room or progress.get("lesson") or all_lessons[0].name
if default not in by_name:
    default = all_lessons[0].name

c = st.columns([3, 1])
name = c[0].selectbox("Lesson", list(by_name), index=list(by_name).index(default), key="lesson",
                      format_func=lambda n: f"{by_name[n].order}. {by_name[n].title} ({by_name[n].minutes} min)")
lesson = by_name[name]
with guard("Exporting the notebook"):
    c[1].download_button("Notebook (.ipynb)", lessons.notebook_bytes(name), file_name=f"{name}.ipynb",
                         mime="application/x-ipynb+json", icon=":material/download:",
                         help="The lesson as a Jupyter notebook whose code cells reproduce it with aigc_core calls.")
if room and room == name:
    st.caption(":material/campaign: Your teacher has pointed the room at this lesson.")
if workshop_mode() and actor.is_teacher:
    with guard("Pointing the room at this lesson"):
        if room != name and st.button("Point the room at this lesson", key="learn_point_room",
                                      icon=":material/campaign:",
                                      help="Everyone's Learn page opens this lesson (it is part of the room preset)."):
            lessons.set_room_lesson(name, actor)
            st.rerun()
        if room == name and st.button("Stop pointing the room here", key="learn_unpoint_room"):
            lessons.set_room_lesson(None, actor)
            st.rerun()
st.caption(lesson.summary)

mine = progress["lessons"].setdefault(name, {"reached": 0, "runs": {}, "predictions": {}})
mine.setdefault("runs", {})
mine.setdefault("predictions", {})
if progress.get("lesson") != name:
    progress["lesson"] = name
    lessons.save_progress(learner, progress)


def remember_run(cell_key: str, run) -> None:
    mine["runs"].setdefault(cell_key, [])
    mine["runs"][cell_key].append(run.id)
    lessons.save_progress(learner, progress)


def runs_of(cell_id: str) -> list[str]:
    """The learner's runs of a run cell and of its tries, newest last."""
    ids = [i for k, v in mine["runs"].items() if k == cell_id or k.startswith(f"{cell_id}:") for i in v]
    return [i for i in ids if labs.visible_run(i) is not None]


def start_run(cell, cell_key: str, extra: dict | None = None) -> None:
    from aigc_core.runs.api import make_config, submit

    settings = {**cell.settings(), **(extra or {})}
    config = make_config(str(cell.args["model"]), str(cell.args["dataset"]), preset=cell.args.get("preset"),
                         model_set=settings, actor=actor)
    what = f" with {', '.join(f'{k}={v}' for k, v in (extra or {}).items())}" if extra else ""
    run = submit(config, name=f"{lesson.title}: {cell.id}{what}"[:120], store=get_store(), actor=actor)
    remember_run(cell_key, run)


def chart_of(cell) -> list[str]:
    return [k.strip() for k in str(cell.args.get("chart", "")).split(",") if k.strip()]


# ---- the cells --------------------------------------------------------------------------------------
shown_upto = mine["reached"] if not st.session_state.get("learn_show_all") else len(lesson.cells) - 1
shown_upto = min(shown_upto, len(lesson.cells) - 1)

for index, cell in enumerate(lesson.cells[: shown_upto + 1]):
    key = f"{name}_{index}"
    with guard("This cell"):
        if cell.kind == "text":
            st.markdown(cell.body)
        elif cell.kind == "code":
            st.code(cell.body, language="python")
        elif cell.kind == "run":
            with st.container(border=True):
                st.markdown(cell.body or f"Train **{cell.args['model']}** on **{cell.args['dataset']}**.")
                mine_runs = mine["runs"].get(cell.id, [])
                label = "Train again" if mine_runs else "Train"
                if st.button(label, key=f"{key}_train", icon=":material/model_training:", type="primary"):
                    start_run(cell, cell.id)
                    mine_runs = mine["runs"][cell.id]
                if mine_runs and labs.visible_run(mine_runs[-1]) is not None:
                    labs.run_status(mine_runs[-1], chart_of(cell), key=key)
        elif cell.kind == "try":
            with st.container(border=True):
                st.markdown(f":material/lightbulb: **Try this.** {cell.prompt}")
                said = mine["predictions"].get(str(index), "")
                guess = st.text_area("Your prediction", said, key=f"{key}_guess", height=80)
                if guess.strip() != said:
                    mine["predictions"][str(index)] = guess.strip()
                    lessons.save_progress(learner, progress)
                base, change = lesson.tried_run(cell) or (None, {})
                if base is not None and change:
                    what = ", ".join(f"{k} = {v}" for k, v in change.items())
                    try_key = f"{base.id}:try{index}"
                    if st.button(f"Train {base.id} with {what}", key=f"{key}_try"):
                        start_run(base, try_key, change)
                    if mine["runs"].get(try_key):
                        labs.run_status(mine["runs"][try_key][-1], chart_of(base), key=f"{key}_tryrun")
                if cell.answer:
                    if mine["predictions"].get(str(index)):
                        with st.expander("What happens, and why", expanded=False):
                            st.markdown(cell.answer)
                    else:
                        st.caption("Write your prediction to see the explanation.")
        elif cell.kind == "lab":
            with st.container(border=True):
                if cell.body:
                    st.markdown(cell.body)
                a = cell.args
                if cell.id == "gan2d":
                    labs.gan_lab(key, dataset=str(a.get("dataset", "ring8")), loss=str(a.get("loss", "nonsaturating")),
                                 seed=int(a.get("seed", 0)))
                elif cell.id == "latent":
                    labs.latent_lab(key, beta=float(a.get("beta", 1.0)))
                else:
                    ids = runs_of(str(a["run"]))
                    if not ids:
                        st.info(f"Train the run **{a['run']}** above first; this lab reads it.")
                    else:
                        store = get_store()
                        run_id = ids[-1]
                        if len(ids) > 1:
                            run_id = st.selectbox("Run", ids[::-1], key=f"{key}_which",
                                                  format_func=lambda i: store.get(i).name)
                        if cell.id == "doctor":
                            labs.doctor_panel(run_id, key=key,
                                              on_fix=lambda child, c=str(a["run"]): remember_run(f"{c}:fix", child))
                        elif cell.id == "metrics":
                            keys = [k.strip() for k in str(a.get("keys", "")).split(",") if k.strip()]
                            labs.metrics_lab(run_id, keys)
                        elif store.get(run_id).status != "completed":
                            st.info("This lab opens when the run has finished.")
                        elif cell.id == "attention":
                            labs.attention_lab(run_id, key, prompt=str(a.get("prompt", "")))
                        elif cell.id == "sample":
                            labs.sample_lab(run_id, key, prompt=str(a.get("prompt", "")))
                        elif cell.id == "real_or_fake":
                            labs.real_or_fake_lab(run_id, key, rounds=int(a.get("rounds", 10)))

# ---- where the learner is -----------------------------------------------------------------------------
if shown_upto < len(lesson.cells) - 1:
    c = st.columns([1, 1, 3])
    if c[0].button("Continue", key="learn_continue", icon=":material/arrow_downward:", type="primary"):
        mine["reached"] = shown_upto + 1
        lessons.save_progress(learner, progress)
        st.rerun()
    if c[1].button("Show the whole lesson", key="learn_all_btn"):
        st.session_state["learn_show_all"] = True
        st.rerun()
    st.progress((shown_upto + 1) / len(lesson.cells), text=f"Cell {shown_upto + 1} of {len(lesson.cells)}")
else:
    st.success("End of the lesson. Download it as a notebook above to take the code home.",
               icon=":material/school:")
