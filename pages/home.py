"""Home: what the studio does, the first sample in two minutes, and starter
models that give samples in seconds.

Nothing heavy runs when the page opens: torch and the models load only once a
visitor presses a button.
"""

import streamlit as st

from pages.common import acting, get_store, guard, plain, sampling_trainer, set_current_dataset, set_current_run

actor = acting("Home")

st.title("AIGC Studio")
st.markdown(
    "Train generative models on your own data, right in the browser. Pick a data set (or upload "
    "images, text or a table), press **Quick train**, and watch the model learn, step by step. "
    "Then generate new samples in the **Gallery** and compare models side by side."
)

from aigc_core.starters import QUICK_STARTS, STARTERS  # plain data; no torch, no data modules

QUICK = {q.dataset: q for q in QUICK_STARTS}


@st.fragment(run_every=1.0)
def live(run_id: str) -> None:
    """Re-reads the run store every second; never waits on training."""
    run = get_store().get(run_id, actor=actor)
    st.progress(run.progress, text=f"{run.status} · step {run.step} · {run.train_seconds:.0f} s")
    frames = run.folder.frames((".png",))
    if frames:
        step, path = frames[-1]
        st.image(str(path), caption=f"Samples from fixed noise at step {step}", width=320)
    texts = run.folder.frames((".txt",))
    if texts:
        st.code(texts[-1][1].read_text(encoding="utf-8")[:600], language=None)
    if run.status == "failed":
        st.error(run.message or "the run failed")


def open_in_gallery(run) -> None:
    set_current_dataset(run.dataset)
    set_current_run(run.id)
    st.query_params["run"] = run.id


def starter_samples(run_ids: list[str]) -> None:
    """A grid of new samples from one installed starter, and the way on to the Gallery."""
    from aigc_core.imaging import grid_image, upscale

    store = get_store()
    runs = {i: store.get(i, actor=actor) for i in run_ids if store.exists(i)}
    if not runs:
        st.info("The starter runs were deleted; press the button again to add them back.")
        return
    run_id = st.radio("Starter model", list(runs), format_func=lambda i: runs[i].name.removeprefix("Starter: "),
                      horizontal=True, key="starter_run")
    blurb = next((s.blurb for s in STARTERS if s.title == runs[run_id].name), "")
    if blurb:
        st.caption(blurb)
    seed = st.session_state.setdefault("starter_seed", 0)
    from pages.common import data_kind

    count = data_kind(runs[run_id].data_kind).preview_count
    with st.spinner("Loading the model (the first time also prepares the data set it was trained on) ..."):
        trainer, step = sampling_trainer(run_id)
        samples = trainer.sample(count, seed)
    about = f"new samples from {runs[run_id].name} (seed {seed}, trained {step} steps)"
    if isinstance(samples, list):  # texts
        st.code("\n".join(samples), language=None)
        st.caption(plain(f"{count} {about}"))
    else:
        st.image(upscale(grid_image(samples, nrow=4), 320), caption=f"{count} {about}")  # an image caption is plain text
    c1, c2 = st.columns(2)
    if c1.button("New samples", icon=":material/casino:", key="starter_new"):
        st.session_state["starter_seed"] = seed + 1
        st.rerun()
    if c2.button("Open in the Gallery", icon=":material/photo_library:", key="starter_gallery"):
        open_in_gallery(runs[run_id])
        st.switch_page("pages/gallery.py")


train_col, starter_col = st.columns(2, gap="large")

with train_col:
    st.subheader("Your first sample in two minutes")
    dataset = st.radio("1. Pick a data set", list(QUICK), format_func=lambda k: f"{k}: {QUICK[k].description}")
    model = QUICK[dataset].model
    st.write(f"2. Press the button: a **{model}** trains for about 30 seconds on this machine.")
    if st.button("Quick train", type="primary", icon=":material/bolt:"):
        with guard("Starting the run"):
            from aigc_core.runs.api import make_config, submit

            run = submit(make_config(model, dataset, preset="Quick", actor=actor), store=get_store(), actor=actor)
            set_current_dataset(dataset)
            set_current_run(run.id)
            st.query_params["run"] = run.id
            st.toast(f"Run {run.id} started")

    run_id = st.session_state.get("run_id") or st.query_params.get("run")
    if run_id:
        with guard("Showing the run"):
            if get_store().get(run_id, actor=actor).owner != "starter":  # a starter was never trained here
                st.subheader("3. Watch it learn")
                live(run_id)

with starter_col:
    st.subheader("Samples in seconds: a starter model")
    st.write("Small models the studio trained ahead of time ("
             + ", ".join(s.title.removeprefix("Starter: ") for s in STARTERS) + "). "
             "The button adds them to your runs, so the Gallery and Compare can use them too, and draws new "
             "samples right here.")
    if st.button("Try a starter model", icon=":material/rocket_launch:", key="starter_install"):
        with guard("Adding the starter models"), st.spinner("Adding the starter models to your runs ..."):
            from aigc_core.starters import install_starters

            report = install_starters(store=get_store())
            st.session_state["starter_runs"] = [r.id for r in report.runs]
            st.session_state["starter_problems"] = report.problems
            if report.installed:
                st.toast(f"Added {len(report.installed)} starter models to your runs")
    for problem in st.session_state.get("starter_problems", []):
        st.warning(problem, icon=":material/warning:")
    if st.session_state.get("starter_runs"):
        with guard("Drawing samples from the starter"):
            starter_samples(st.session_state["starter_runs"])
