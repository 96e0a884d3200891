"""Home: what the studio does, and the first sample in two minutes."""

import time

import streamlit as st

from pages.common import get_store, guard, set_current_dataset, set_current_run

st.title("AIGC Studio")
st.markdown(
    "Train generative models on your own data, right in the browser. Pick a data set (or upload "
    "images, text or a table), press **Quick train**, and watch the model learn, step by step. "
    "Then generate new samples in the **Gallery** and compare models side by side."
)

st.subheader("Your first sample in two minutes")
QUICK = {"glyphs": ("dcgan", "Handwriting-like digits (28 x 28), offline"),
         "shapes": ("dcgan", "Coloured circles, squares and triangles (32 x 32)"),
         "ring8": ("toy_gan", "A ring of 8 Gaussian blobs in 2-D"),
         "names": ("char_gpt", "A list of names, one per line")}
with guard("Listing the data sets"):
    from aigc_core.data.catalog import list_datasets

    available = {d.name for d in list_datasets()}
    choices = [k for k in QUICK if k in available]
    dataset = st.radio("1. Pick a data set", choices, format_func=lambda k: f"{k}: {QUICK[k][1]}", horizontal=False)
    model = QUICK[dataset][0]
    st.write(f"2. Press the button: a **{model}** trains for about 30 seconds on this machine.")
    if st.button("Quick train", type="primary", icon=":material/bolt:"):
        from aigc_core.runs.api import make_config, submit

        run = submit(make_config(model, dataset, preset="Quick"), store=get_store())
        set_current_dataset(dataset)
        set_current_run(run.id)
        st.query_params["run"] = run.id
        st.toast(f"Run {run.id} started")


@st.fragment(run_every=1.0)
def live(run_id: str) -> None:
    """Re-reads the run store every second; never waits on training."""
    run = get_store().get(run_id)
    st.progress(run.progress, text=f"{run.status} · step {run.step} · {run.train_seconds:.0f} s")
    frames = sorted((run.folder / "samples").glob("step_*.png"))
    if frames:
        st.image(str(frames[-1]), caption=f"Samples from fixed noise at {frames[-1].stem.replace('_', ' ')}", width=320)
    texts = sorted((run.folder / "samples").glob("step_*.txt"))
    if texts:
        st.code(texts[-1].read_text(encoding="utf-8")[:600], language=None)
    if run.status == "failed":
        st.error(run.message or "the run failed")


run_id = st.session_state.get("run_id") or st.query_params.get("run")
if run_id:
    st.subheader("3. Watch it learn")
    with guard("Showing the run"):
        live(run_id)
