"""Gallery: generate samples from any run that has a checkpoint."""

import io
import zipfile

import streamlit as st

from pages.common import current_run, get_store, guard, set_current_run

st.title("Gallery")
st.caption("Generate new samples on demand from a run's latest checkpoint. The same seed always gives the same samples.")


@st.cache_resource(max_entries=4, show_spinner="Loading the model ...")
def trainer_for(run_id: str, step: int):
    from aigc_core.sample import load_for_sampling

    return load_for_sampling(run_id)[0]


with guard("The gallery"):
    store = get_store()
    runs = [r for r in store.list() if r.step > 0 and r.status != "queued"]
    if not runs:
        st.info("No trained runs yet. Start one on the Home or Train page; it appears here after its first checkpoint.")
        st.stop()
    ids = [r.id for r in runs]
    chosen = current_run()
    run_id = st.selectbox("Run", ids, index=ids.index(chosen) if chosen in ids else 0,
                          format_func=lambda i: f"{store.get(i).name} · {store.get(i).status} · step {store.get(i).step}")
    set_current_run(run_id)
    run = store.get(run_id)
    from aigc_core.sample import checkpoint_step

    step = checkpoint_step(run_id)
    if step is None:
        st.warning("This run has no checkpoint yet; wait for its first save.")
        st.stop()
    trainer = trainer_for(run_id, step)
    st.caption(f"{run.model} on {run.dataset}, checkpoint at step {step}")

    c1, c2, c3 = st.columns(3)
    n = c1.slider("Number of samples", 1, 256, 64)
    seed = c2.number_input("Seed", 0, 2**31 - 1, 0)
    knobs = {}
    if run.data_kind == "text":
        prompt = st.text_input("Prompt", "")
        length = c3.slider("Length", 10, 1000, 200)
        temperature = st.slider("Temperature", 0.05, 2.0, 1.0)
        texts = trainer.sample(min(n, 16), int(seed), prompt=prompt, length=length, temperature=temperature)
        for t in texts:
            st.code(t, language=None)
        st.download_button("Download the samples (.txt)", "\n\n".join(texts), file_name=f"{run_id}_seed{seed}.txt")
    elif run.data_kind == "table":
        frame = trainer.sample(n, int(seed))
        st.dataframe(frame, use_container_width=True)
        st.download_button("Download the rows (.csv)", frame.to_csv(index=False), file_name=f"{run_id}_seed{seed}.csv")
    elif run.data_kind == "points":
        import plotly.express as px

        pts = trainer.sample(max(n, 500), int(seed)).numpy()
        st.plotly_chart(px.scatter(x=pts[:, 0], y=pts[:, 1], opacity=0.5, title="Generated points"))
    else:
        from aigc_core.imaging import grid_image, png_bytes, upscale

        if run.family == "gan":
            knobs["truncation"] = c3.slider("Truncation", 0.1, 2.0, 1.0, help="Below 1: more typical, less varied samples.")
        images = trainer.sample(n, int(seed), **knobs)
        grid = grid_image(images)
        st.image(upscale(grid, 480), caption=f"{n} samples, seed {seed}")
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            for i in range(images.shape[0]):
                zf.writestr(f"sample_{i:03d}.png", png_bytes(grid_image(images[i:i + 1], padding=0)))
        d1, d2 = st.columns(2)
        d1.download_button("Download the grid (PNG)", png_bytes(grid), file_name=f"{run_id}_seed{seed}.png", mime="image/png")
        d2.download_button("Download all samples (ZIP)", buf.getvalue(), file_name=f"{run_id}_seed{seed}.zip", mime="application/zip")
