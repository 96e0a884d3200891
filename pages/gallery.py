"""Gallery: new samples from any run's best (or last) checkpoint, rated, and fed back.

Images (GANs, VAEs, the autoencoder), 2-D points, text and table rows. Every
sample a person likes can join the training data of the next run (the data
loop, :mod:`aigc_core.data_loop`).
"""

import io
import zipfile

import streamlit as st

from pages.common import (acting, current_run, get_store, guard, plain, sampling_trainer, set_current_dataset, set_current_run,
                          run_label, status_label)

actor = acting("Gallery")
st.title("Gallery")
st.caption("New samples on demand from a run's best checkpoint by held-out loss (or its last weights). The same "
           "seed always gives the same samples, so a sample you like can be made again. Give samples a thumbs up and turn them into training data.")

MAX_RATED = 64  # rating widgets shown at most (one per sample)


def keep(key: str) -> dict:
    """Widget arguments that keep a value while another tab or page is open."""
    return dict(key=key, persist_state="session")


# ---- pieces every kind of run uses ----------------------------------------------------

def publish_toggle(run) -> None:
    """Workshop mode: show a run to the room (its scores on the room leaderboard) or keep it to yourself."""
    from aigc_core.room.identity import workshop_mode
    from aigc_core.room.policy import can_change

    if not workshop_mode():
        return
    if not can_change(actor, run.user):
        st.caption(f"Published to the room by {run.user or 'the studio'}.")
        return

    def changed():
        with guard("Publishing the run"):
            get_store().publish(run.id, st.session_state[f"publish:{run.id}"], actor=actor)

    st.toggle("Publish to the room", value=run.published, key=f"publish:{run.id}", on_change=changed,
              help="Everyone in the workshop can then see this run, sample from it, and find it on the room "
                   "leaderboard. Turn it off to keep it to yourself again.")


def post_to_wall_button(run, *, image_png: bytes | None = None, text: str | None = None, caption: str = "") -> None:
    """Workshop mode: put these samples on the room's wall, with your name."""
    from aigc_core.room.identity import workshop_mode

    if not workshop_mode():
        return
    if st.button("Post to the wall", icon=":material/wall_art:", key=f"post:{run.id}:{caption}",
                 help="Shows these samples, with your name, on the room's Wall page."):
        with guard("Posting to the wall"):
            from aigc_core.room.board import post_to_wall

            post_to_wall(run.id, image_png=image_png, text=text, caption=f"{run.name}: {caption}", actor=actor,
                         store=get_store())
            st.toast("Posted to the wall", icon=":material/wall_art:")


def rating_widget(run_id: str, item: str, saved: dict, on_rate, *args) -> None:
    """A thumbs up/down that writes to the run store as soon as it is clicked."""
    from aigc_core import data_loop

    key = f"rate:{run_id}:{item}"

    def changed():
        value = st.session_state.get(key)
        if value is None:
            data_loop.unrate(run_id, item, store=get_store(), actor=actor)
        else:
            on_rate(int(value), *args)

    st.feedback("thumbs", key=key, default=saved.get(item), on_change=changed)


def nearest_neighbour_pairs(run, samples01, trainer) -> None:
    """Each sample beside its nearest training image (copy detection)."""
    import torch

    from aigc_core.imaging import grid_image, upscale
    from aigc_core.metrics.image import nearest_neighbours

    found = nearest_neighbours(samples01, run.dataset)
    neighbours, distances = found["images"], found["distances"]
    st.caption("Top row: samples; bottom row: the closest training image to each (compared pixel by pixel). "
               "A distance near 0 means the model copied a training image instead of making a new one.")
    pair = torch.cat([samples01, neighbours.float()])
    st.image(upscale(grid_image(pair, nrow=samples01.shape[0]), 480))
    st.caption("Distances: " + ", ".join(f"{d:.3g}" for d in distances.tolist()))


def data_loop_section(run) -> None:
    """How many ratings exist, what a new data set would hold, and the button that makes it."""
    from aigc_core import data_loop
    from aigc_core.data.catalog import list_datasets

    store = get_store()
    counts = data_loop.rating_counts(run.id, store=store, actor=actor)
    st.markdown("**The data loop.** Samples you give a thumbs up can join the original data. Train a new run on "
                "the new set and the model sees more of what you liked.")
    c1, c2, c3 = st.columns(3)
    c1.metric("Liked", counts["up"])
    c2.metric("Not liked", counts["down"])
    c3.metric("Ratings in the whole studio" if actor.sees_everything else "Ratings you gave",
              len(store.ratings(actor=actor)))
    if run.data_kind not in data_loop.RATEABLE_KINDS:
        st.info("Point sets have no data loop: a single point is not something to rate. Try it on images, "
                "text or a table.")
        return
    made_key, name_key = f"loop_made:{run.id}", f"loop_name:{run.id}"
    made = st.session_state.pop(made_key, None)
    if made:
        st.session_state.pop(name_key, None)  # the saved name is taken now: suggest the next one
        st.success(f"Saved **{plain(made[0])}**: {plain(made[1])}. It is now the current data set; pick a model for it on the "
                   "Train page.", icon=":material/check_circle:")
    taken = {d.name for d in list_datasets()}
    c1, c2 = st.columns([3, 1])
    name = c1.text_input("Name of the new data set", data_loop.suggest_name(run.dataset, taken), key=name_key,
                         max_chars=64)
    repeat = int(c2.number_input("Copies of each liked sample", 1, data_loop.MAX_REPEAT, 1, key=f"loop_repeat:{run.id}",
                                 help="A few liked samples among thousands of originals barely change what the next "
                                      "model learns; copying each one a few times gives them more weight."))
    plan = data_loop.loop_plan(run.id, name=name or None, store=store, repeat=repeat, actor=actor)
    st.write(f"The new data set would hold: {plain(plan.describe())}."
             + (f" Liked samples would be {plan.share:.1%} of it." if plan.added else ""))
    for note in plan.notes:
        st.caption(note)
    liked = data_loop.liked(run.id, store=store, actor=actor)
    if liked:
        with st.expander(f"The {len(liked)} samples you liked"):
            if run.data_kind == "image":
                st.image([str(x["path"]) for x in liked if x.get("path") and x["path"].exists()][:64], width=64)
            elif run.data_kind == "text":
                for x in liked[:50]:
                    st.code(x.get("text", ""), language=None)
            else:
                import pandas as pd

                st.dataframe(pd.DataFrame([x["row"] for x in liked if x.get("row")]), hide_index=True)
    if st.button("Make a data set from the original plus the samples you liked", type="primary",
                 icon=":material/add_photo_alternate:", disabled=plan.added == 0, key=f"loop_make:{run.id}"):
        with st.spinner("Saving the new data set ..."):
            info, saved = data_loop.make_dataset_from_liked(run.id, name=name, store=store, repeat=repeat,
                                                                actor=actor)
        set_current_dataset(info.name)
        st.session_state[made_key] = (info.name, saved.describe())
        st.rerun()  # the sidebar and the suggested name follow the new set
    elif plan.added == 0:
        st.caption("Give at least one sample a thumbs up to make a new data set.")


# ---- images ---------------------------------------------------------------------------

def show_image_samples(run, trainer, step: int, seed: int, knobs: dict) -> None:
    from aigc_core.imaging import grid_image, png_bytes, upscale

    c1, c2 = st.columns(2)
    n = c1.slider("Number of samples", 1, 256, 64, **keep("g_n"))
    per_row = c2.slider("Samples per row", 1, 16, 8, **keep("g_per_row"))
    images = trainer.sample(n, seed, **knobs)
    grid = grid_image(images, nrow=per_row)
    st.image(upscale(grid, 480), caption=f"{n} samples, seed {seed}, checkpoint at step {step}")

    def zip_of_samples() -> bytes:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            for i in range(images.shape[0]):
                zf.writestr(f"sample_{i:03d}.png", png_bytes(grid_image(images[i:i + 1], padding=0)))
        return buf.getvalue()

    stem = f"{run.id}_step{step}_seed{seed}"
    d1, d2 = st.columns(2)
    d1.download_button("Download the grid (PNG)", png_bytes(grid), file_name=f"{stem}.png", mime="image/png",
                       icon=":material/download:")
    d2.download_button("Download all samples (ZIP)", zip_of_samples, file_name=f"{stem}.zip",
                       mime="application/zip", icon=":material/folder_zip:")
    post_to_wall_button(run, image_png=png_bytes(grid), caption=f"seed {seed}, step {step}")

    if st.toggle("Show each sample beside its nearest training image (copy detection)", key="g_nn"):
        with guard("Copy detection"):
            nearest_neighbour_pairs(run, images[:16], trainer)

    from aigc_core import data_loop as loop

    saved = loop.ratings_by_item(run.id, store=get_store(), actor=actor)
    rated = sum(1 for i in range(min(n, MAX_RATED)) if loop.image_item(step, seed, i, knobs) in saved)
    with st.expander(f"Rate these samples: thumbs up the ones you like ({rated} of these rated so far)",
                     icon=":material/thumbs_up_down:", expanded=rated > 0):
        st.caption(f"The first {min(n, MAX_RATED)} samples can be rated. Liked samples can become training data "
                   "in the **Data loop** tab.")

        def rate(value, index):
            loop.rate_image(run.id, images[index], value, step=step, seed=seed, index=index, knobs=knobs,
                            store=get_store(), actor=actor)

        shown = min(n, MAX_RATED)
        for start in range(0, shown, per_row):  # a row of columns at a time: reading (and tab) order follows the grid
            for i, col in zip(range(start, min(start + per_row, shown)), st.columns(per_row)):
                with col:
                    st.image(upscale(grid_image(images[i:i + 1], padding=0), 96))
                    rating_widget(run.id, loop.image_item(step, seed, i, knobs), saved, rate, i)


def show_interpolation(run, trainer, knobs: dict) -> None:
    from aigc_core.imaging import grid_image, png_bytes, upscale

    st.caption("A walk through the model's random input from one seed's sample to another's: smooth changes "
               "mean the model learned a continuous space of images, not a list of memorised ones.")
    c1, c2, c3 = st.columns(3)
    seed_a = c1.number_input("From seed", 0, 2**31 - 1, 0, **keep("g_seed_a"))
    seed_b = c2.number_input("To seed", 0, 2**31 - 1, 1, **keep("g_seed_b"))
    steps = c3.slider("Frames", 2, 16, 10, **keep("g_frames"))
    strip = grid_image(trainer.interpolate(int(seed_a), int(seed_b), steps, **knobs), nrow=steps)
    st.image(upscale(strip, 720), caption=f"seed {seed_a} -> seed {seed_b}")
    st.download_button("Download the strip (PNG)", png_bytes(strip), file_name=f"{run.id}_walk_{seed_a}_{seed_b}.png",
                       mime="image/png", icon=":material/download:")


def show_reconstructions(run, trainer) -> None:
    import torch

    from aigc_core.imaging import grid_image, upscale

    held_out = trainer.held_out
    st.caption(f"Top row: images the model never trained on (the held-out 10%, {held_out.shape[0]} images). "
               "Bottom row: what the model rebuilds from each one's code. Blurry rebuilds are typical of a VAE: "
               "it is rewarded for the average of the images that could share a code.")
    k = st.slider("Images", 1, max(1, min(16, held_out.shape[0])), min(8, held_out.shape[0]), **keep("g_recon_k"))
    originals = held_out[:k].float().cpu().div(255)
    rebuilt = trainer.reconstruct(originals)
    st.image(upscale(grid_image(torch.cat([originals, rebuilt]), nrow=k), 480))
    error = (rebuilt - originals).pow(2).mean().item()
    st.caption(f"Mean squared pixel error of these {k}: {error:.4f} (pixels in 0..1)")


# ---- 2-D points ---------------------------------------------------------------------

def show_points(run, trainer, step: int, seed: int, knobs: dict) -> None:
    import pandas as pd
    import plotly.graph_objects as go
    import torch

    from aigc_core.data.catalog import load_dataset

    n = st.slider("Number of points", 100, 5000, 1000, 100, **keep("p_n"))
    fake = trainer.sample(n, seed, **knobs).float().numpy()
    real = load_dataset(run.dataset).points.float()
    real = real[torch.randperm(len(real), generator=torch.Generator().manual_seed(0))[:2000]].numpy()  # a fixed subset
    fig = go.Figure()
    fig.add_scatter(x=real[:, 0], y=real[:, 1], mode="markers", name="real data",
                    marker=dict(size=4, color="rgba(120,120,120,0.45)"))
    fig.add_scatter(x=fake[:, 0], y=fake[:, 1], mode="markers", name="generated",
                    marker=dict(size=4, color="rgba(230,110,20,0.6)"))
    fig.update_layout(height=520, title=f"Real (grey) and generated (orange) points, checkpoint at step {step}",
                      xaxis_title="x", yaxis_title="y", legend=dict(orientation="h"))
    fig.update_yaxes(scaleanchor="x", scaleratio=1)
    st.plotly_chart(fig, key="p_scatter")
    st.caption("A good model covers every cluster of grey points with orange ones, and puts none in between. "
               "Orange piled on only a few clusters is mode collapse.")
    st.download_button("Download the generated points (CSV)", pd.DataFrame(fake, columns=["x", "y"]).to_csv(index=False),
                       file_name=f"{run.id}_seed{seed}.csv", mime="text/csv", icon=":material/download:")


# ---- text -----------------------------------------------------------------------------

NAMED_TOKENS = {" ": "(space)", "\n": "(new line)", "\t": "(tab)", "<end>": "(end of item)", "<start>": "(start)",
                "<pad>": "(padding)"}


def visible(token: str) -> str:
    """A label a chart can show for a character or marker (spaces and line breaks are invisible)."""
    return NAMED_TOKENS.get(token, token)


def probability_bars(trainer, prompt: str, temperature: float) -> None:
    import plotly.graph_objects as go

    probs = trainer.next_char_probs(prompt, temperature=temperature)
    labels = [visible(ch) for ch, _ in probs]
    fig = go.Figure(go.Bar(x=[p for _, p in probs][::-1], y=[f"{lab} " for lab in labels][::-1], orientation="h",
                           text=[f"{p:.1%}" for _, p in probs][::-1], textposition="outside",
                           marker_color="rgb(66,133,244)"))
    fig.update_layout(height=340, margin=dict(l=10, r=10, t=10, b=10), xaxis=dict(range=[0, 1.15], tickformat=".0%"))
    st.markdown(f"**The 10 likeliest next characters after the prompt** (temperature {temperature:g})",
                help="The model's probabilities for the character that comes next, after dividing its scores by the "
                     "temperature. Sampling draws from these bars; greedy always takes the top one.")
    st.plotly_chart(fig, key="t_probs", config={"displayModeBar": False})


def attention_heatmap(trainer, prompt: str) -> None:
    import plotly.graph_objects as go

    maps = trainer.attention_maps(prompt)            # (layers, heads, T, T)
    labels = [visible(t) for t in trainer.context_labels(prompt)]
    layers, heads, T, _ = maps.shape
    c1, c2 = st.columns(2)
    layer = c1.selectbox("Layer", range(layers), format_func=lambda i: f"layer {i + 1}", **keep("t_layer"))
    head_names = ["mean of all heads"] + [f"head {h + 1}" for h in range(heads)]
    head = c2.selectbox("Head", range(heads + 1), format_func=lambda i: head_names[i], **keep("t_head"))
    z = maps[layer].mean(0) if head == 0 else maps[layer, head - 1]
    pos = list(range(T))
    fig = go.Figure(go.Heatmap(z=z.numpy(), x=pos, y=pos, colorscale="Blues", zmin=0, zmax=1,
                               hovertemplate="reading %{y} -> looking at %{x}: %{z:.2f}<extra></extra>"))
    fig.update_xaxes(tickvals=pos, ticktext=labels, title="looks at (earlier characters)", side="top")
    fig.update_yaxes(tickvals=pos, ticktext=labels, title="character being read", autorange="reversed")
    fig.update_layout(height=min(900, 220 + 18 * T), margin=dict(l=10, r=10, t=60, b=10))
    st.plotly_chart(fig, key="t_attention", config={"displayModeBar": False})
    if T < 3:
        st.caption("Type a prompt above to see how each of its characters looks back at the earlier ones.")
    st.caption("Each row is one character of the prompt; its row of squares shows how it spreads its attention "
               "over itself and the characters before it (each row sums to 1; the triangle is empty because a "
               "character may never look ahead). softmax(QK^T / sqrt(d_k)) gives these weights; they mix the "
               "value vectors V of the characters looked at.")


def show_write(run, trainer, step: int, seed: int, knobs: dict) -> None:
    from aigc_core import data_loop

    prompt = knobs.get("prompt", "")
    rest = {k: v for k, v in knobs.items() if k != "prompt"}
    st.caption("Writes one text character by character as the model draws each one.")
    key = ("t_written", run.id, step, seed, tuple(sorted(knobs.items())))
    pressed = st.button("Write", type="primary", icon=":material/edit:", key="t_write")
    box = st.empty()
    if pressed:
        text = prompt
        shown = 0
        for ch in trainer.stream(prompt, seed=seed, **rest):
            text += ch
            if len(text) - shown >= 8:  # redraw every few characters: smooth, and cheap for long texts
                box.code(text + "▌", language=None, wrap_lines=True)
                shown = len(text)
        st.session_state["t_written"] = (key, text)
    written = st.session_state.get("t_written")
    if written and written[0] == key:
        text = written[1]
        box.code(text, language=None, wrap_lines=True)
        if getattr(trainer, "mode", "") == "lines":
            if trainer.mark_copies([text])[0]:
                st.warning("This item is in the training data word for word: the model copied it.",
                           icon=":material/content_copy:")
            else:
                st.caption("A new item: it is not in the training data.")
        saved = data_loop.ratings_by_item(run.id, store=get_store(), actor=actor)
        rating_widget(run.id, data_loop.text_item(step, seed, 0, rest), saved,
                      lambda value: data_loop.rate_text(run.id, text, value, step=step, seed=seed, index=0,
                                                        knobs=rest, store=get_store(), actor=actor))
    else:
        box.caption("Press Write to let the model continue the prompt.")
    with guard("The next-character chart"):
        probability_bars(trainer, prompt, rest.get("temperature", 1.0))


def show_attention(run, trainer, step: int, seed: int, knobs: dict) -> None:
    st.markdown("**Where the model looks: attention over the prompt**")
    attention_heatmap(trainer, knobs.get("prompt", ""))


def show_text_samples(run, trainer, step: int, seed: int, knobs: dict) -> None:
    from aigc_core import data_loop

    lines = getattr(trainer, "mode", "") == "lines"
    n = st.slider("Number of samples", 1, 50, 12 if lines else 4, **keep("t_n"))
    texts = trainer.sample(n, seed, **knobs)
    knobs = {k: v for k, v in knobs.items() if k != "prompt"}  # a rated text carries its prompt itself
    copies = trainer.mark_copies(texts) if lines else [False] * len(texts)
    if lines:
        st.caption(f"{sum(copies)} of {n} items are in the training data word for word (marked 'copy'); "
                   "the others are new.")
    saved = data_loop.ratings_by_item(run.id, store=get_store(), actor=actor)

    def rate(value, index):
        data_loop.rate_text(run.id, texts[index], value, step=step, seed=seed, index=index, knobs=knobs,
                            store=get_store(), actor=actor)

    for i, text in enumerate(texts):
        c1, c2 = st.columns([6, 1])
        with c1:
            st.code(text, language=None, wrap_lines=True)
        with c2:
            if copies[i]:
                st.badge("copy", icon=":material/content_copy:", color="orange")
            rating_widget(run.id, data_loop.text_item(step, seed, i, knobs), saved, rate, i)
    post_to_wall_button(run, text="\n\n".join(texts[:8]), caption=f"seed {seed}, step {step}")
    st.download_button("Download the samples (.txt)", ("\n" if lines else "\n\n").join(texts),
                       file_name=f"{run.id}_seed{seed}.txt", mime="text/plain", icon=":material/download:")


# ---- tables ---------------------------------------------------------------------------

REPORT_KEYS = [("fidelity", "Fidelity", "{:.1%}"), ("column_shapes", "Column shapes", "{:.1%}"),
               ("pair_trends", "Pair trends", "{:.1%}"), ("tstr_accuracy_ratio", "TSTR accuracy ratio", "{:.2f}"),
               ("dcr_median", "Distance to real rows", "{:.3g}"),
               ("exact_copy_rate", "Exact copies of real rows", "{:.1%}")]
REPORT_HELP = ("Fidelity: how alike real and synthetic columns (shapes) and pairs of columns (trends) are, 100% = "
               "identical. TSTR: a classifier trained on synthetic rows, tested on real held-out rows, divided by "
               "one trained on real rows (1.0 = as useful as real data). Privacy: the median distance from each "
               "synthetic row to its closest real row (near 0: rows too close to real people's); exact copies leak "
               "the training data.")


def condition_knobs(spec, trainer) -> dict[str, list]:
    """The sampling knobs the ``condition`` capability fills from the run's own
    values (an image model's class: {"label": [class names]}); an empty list
    means this run was trained without them. Other names are columns (tables)."""
    if not spec.can("condition"):
        return {}
    names = {f["name"] for f in spec.knob_fields()}
    return {k: list(v) for k, v in trainer.condition_choices().items() if k in names and k != "condition"}


def condition_picker(trainer) -> dict:
    """Fix one column's value (the ``condition`` capability): {column: value} or {}."""
    choices = trainer.condition_choices()
    c1, c2 = st.columns(2)
    column = c1.selectbox("Fix a column's value (optional)", ["(none)"] + list(choices), **keep("tb_col"),
                          help="For example 'purchase = 1': every generated row then has that value.")
    if column == "(none)":
        return {}
    value = c2.selectbox(f"{column} =", choices[column], key=f"tb_val:{column}")
    return {column: value}


def show_table_report(run, trainer, frame) -> None:
    from aigc_core.metrics.tabular import report_html, tabular_report

    scores = run.final_metrics
    shown = [(label, fmt.format(scores[k])) for k, label, fmt in REPORT_KEYS if k in scores]
    if shown:
        st.markdown("**Scores at the end of training**", help=REPORT_HELP)
        cols = st.columns(len(shown))
        for col, (label, value) in zip(cols, shown):
            col.metric(label, value)
    from pages.loop_sections import augmentation_headline

    augmentation_headline(run)
    if st.button("Report on these rows (fidelity, usefulness, privacy)", icon=":material/fact_check:", key="tb_report"):
        with st.spinner("Comparing the rows with the real table ..."):
            report = tabular_report(trainer.real_train, trainer.real_test if len(trainer.real_test) else None, frame,
                                    trainer.types, trainer.label)
        st.session_state["tb_report_for"] = (run.id, len(frame), report)
    saved = st.session_state.get("tb_report_for")
    if saved and saved[0] == run.id:
        report = saved[2]
        cols = st.columns(3)
        for col, (k, label, fmt) in zip(cols * 2, REPORT_KEYS):
            if k in report:
                col.metric(label, fmt.format(report[k]))
        from aigc_core.metrics.tabular import histogram_strip

        numeric = [c for c, t in trainer.types.items() if t == "numeric"][:3]
        if numeric:
            st.image(histogram_strip(trainer.real_train, frame, trainer.types, numeric),
                     caption="Real (blue) and synthetic (orange) histograms")
        st.download_button("Download the report (HTML)", report_html(report, title=f"Synthetic rows from {run.name}"),
                           file_name=f"{run.id}_report.html", mime="text/html", icon=":material/download:")


def show_table(run, trainer, step: int, seed: int, knobs: dict) -> None:
    from aigc_core import data_loop

    n = int(st.number_input("Rows", 1, 100_000, 200, **keep("tb_n")))
    condition = knobs.get("condition") or {}
    frame = trainer.sample(n, seed, **knobs)
    saved = data_loop.ratings_by_item(run.id, store=get_store(), actor=actor)
    shown = frame.head(500).copy()
    marks = {1: "👍", 0: "👎"}
    shown.insert(0, "your rating", [marks.get(saved.get(data_loop.row_item(step, seed, i, condition)), "")
                                    for i in range(len(shown))])
    st.caption("Select rows (tick the boxes on the left), then keep or reject them. Kept rows can join the "
               "real table in the **Data loop** tab." + (" The first 500 rows are shown; the download has all."
                                                        if len(frame) > 500 else ""))
    picked = st.dataframe(shown, key="tb_rows", on_select="rerun", selection_mode="multi-row")
    rows = list(picked.selection.rows) if picked else []
    b1, b2, b3 = st.columns(3)
    for col, label, value, icon in ((b1, "Keep the selected rows", 1, ":material/thumb_up:"),
                                    (b2, "Reject the selected rows", 0, ":material/thumb_down:")):
        if col.button(label, icon=icon, disabled=not rows, key=f"tb_rate{value}"):
            for i in rows:
                data_loop.rate_row(run.id, data_loop.row_dict(frame, i), value, step=step, seed=seed,
                                   index=i, condition=condition, store=get_store(), actor=actor)
            st.toast(f"{len(rows)} row(s) {'kept' if value else 'rejected'}")
            st.rerun()
    from aigc_core.data.table import csv_bytes

    b3.download_button("Download the rows (CSV)", csv_bytes(frame), file_name=f"{run.id}_seed{seed}.csv",
                       mime="text/csv", icon=":material/download:")
    with guard("The report"):
        show_table_report(run, trainer, frame)


# ---- what a model declares it can do: one section each --------------------------------------

def show_denoising(run, trainer, step: int, seed: int, knobs: dict) -> None:
    """The denoising scrubber: the same sample from pure noise to image, one
    frame per stretch of the sampling steps."""
    from aigc_core.imaging import grid_image, upscale

    steps = int(knobs.get("steps", 50))
    others = {k: v for k, v in knobs.items() if k != "steps"}  # e.g. the sampler: the path ends at the sample shown
    frames_wanted = st.slider("Frames along the way", 2, min(64, max(2, steps + 1)), min(16, steps + 1),
                              **keep("g_denoise_frames"))
    key = (run.id, step, seed, steps, frames_wanted, tuple(sorted(others.items())))
    held = st.session_state.get("g_denoise")
    if not held or held[0] != key:
        with st.spinner("Running the sampler and keeping its frames ..."):
            held = (key, trainer.denoise_path(seed, steps, frames_wanted, **others))
        st.session_state["g_denoise"] = held
    frames = held[1]                                                 # (n_frames, C, H, W) in [0, 1]
    at = st.slider("Sampling step", 0, frames.shape[0] - 1, frames.shape[0] - 1, key="g_denoise_at",
                   help="0 is the pure noise the sampler starts from; the last frame is the finished sample.")
    st.image(upscale(grid_image(frames[at:at + 1], padding=0), 320),
             caption=f"frame {at + 1} of {frames.shape[0]} ({steps} sampling steps, seed {seed})")
    st.caption("Each frame is the same sample further along the reverse (denoising) process: noise is removed a "
               "little at each step, and shapes appear long before the details.")


SAMPLE_VIEWS = {"image": show_image_samples, "points": show_points, "text": show_text_samples, "table": show_table}
#: capability -> (tab title, section)
SECTIONS = {
    "interpolate": ("Walk between two seeds", lambda run, trainer, step, seed, knobs: show_interpolation(run, trainer, knobs)),
    "reconstruct": ("Reconstructions", lambda run, trainer, step, seed, knobs: show_reconstructions(run, trainer)),
    "write": ("Write", show_write),
    "attention": ("Attention", show_attention),
    "denoise": ("Denoising", show_denoising),
}


def sampling_controls(spec, trainer) -> tuple[int, dict]:
    """The seed and a widget per sampling knob the model declares; knobs the
    ``condition`` capability fills (an image model's class) pick from the
    run's own values, a table's condition is a column and a value."""
    from pages.common import knob_widget

    picked_by_value = condition_knobs(spec, trainer)
    fields = [f for f in spec.knob_fields()
              if not (f["name"] == "condition" and spec.can("condition")) and f["name"] not in picked_by_value]
    per_row = 4
    cells = [None] + fields
    seed, knobs = 0, {}
    for start in range(0, len(cells), per_row):
        for col, f in zip(st.columns(per_row), cells[start:start + per_row]):
            with col:
                if f is None:
                    seed = int(st.number_input("Seed", 0, 2**31 - 1, 0, **keep("g_seed")))
                else:
                    knobs[f["name"]] = knob_widget(f, f"g_{f['name']}")
    by_name = {f["name"]: f for f in spec.knob_fields()}
    for name, values in picked_by_value.items():
        if values:  # a run trained without classes has nothing to pick
            f = by_name[name]
            knobs[name] = knob_widget({**f, "choices": (f["default"], *values)}, f"g_{name}")
    if spec.can("condition") and not picked_by_value:
        condition = condition_picker(trainer)
        if condition:
            knobs["condition"] = condition
    return seed, knobs


def show_rows_per_value(run, trainer, step: int, seed: int, knobs: dict, name: str, label: str, values: list) -> None:
    """One row of samples per value of a conditioning knob (an image model's
    classes): the same seed, so the same noise, in every row."""
    import torch

    from aigc_core.imaging import grid_image, png_bytes, upscale

    per_row = st.slider("Samples per row", 1, 16, 8, **keep("g_per_value_n"))
    shown = values[:64]
    rows = [trainer.sample(per_row, seed, **{**knobs, name: value}) for value in shown]
    grid = grid_image(torch.cat(rows), nrow=per_row)
    st.image(upscale(grid, 480), caption=f"one row per {label.lower()}, top to bottom: "
                                         f"{', '.join(map(str, shown))} (seed {seed}, checkpoint at step {step})")
    if len(shown) < len(values):
        st.caption(f"The first {len(shown)} of {len(values)} are shown.")
    st.caption("Every row starts from the same noise: what changes from row to row is only what was asked for.")
    st.download_button("Download the grid (PNG)", png_bytes(grid), file_name=f"{run.id}_step{step}_seed{seed}_rows.png",
                       mime="image/png", icon=":material/download:", key="g_per_value_png")


def show_run(run, trainer, step: int) -> None:
    """Samples of the run's kind of data, then a tab per capability its model declares."""
    from aigc_core.registry import get_model
    from pages.common import data_kind

    spec = get_model(run.model)
    seed, knobs = sampling_controls(spec, trainer)
    kind = data_kind(run.data_kind)
    names = ["Samples"] + [SECTIONS[c][0] for c in SECTIONS if spec.can(c)]
    if kind.rateable:
        names += ["Data loop", "Real or generated?"]
    tabs = dict(zip(names, st.tabs(names, key="g_tab", bind="query-params")))
    with tabs["Samples"]:
        if tabs["Samples"].open:
            per_value = {k: v for k, v in condition_knobs(spec, trainer).items() if v}
            labels = {f["name"]: f["label"] for f in spec.knob_fields()}
            name = next(iter(per_value), None)
            if name and run.data_kind == "image" and st.toggle(f"One row per {labels[name].lower()}", key="g_per_value"):
                rest = {k: v for k, v in knobs.items() if k != name}
                with guard(f"One row per {labels[name].lower()}"):
                    show_rows_per_value(run, trainer, step, seed, rest, name, labels[name], per_value[name])
            else:
                SAMPLE_VIEWS[run.data_kind](run, trainer, step, seed, knobs)
            if not kind.rateable:
                st.caption(f"There is no data loop for {kind.noun}: a single one is not something to rate.")
    for capability, (title, section) in SECTIONS.items():
        if title in tabs:
            with tabs[title]:
                if tabs[title].open:
                    with guard(title):
                        section(run, trainer, step, seed, knobs)
    if "Data loop" in tabs:
        from pages.loop_sections import improve_with_ratings, real_or_generated

        with tabs["Data loop"]:
            if tabs["Data loop"].open:
                data_loop_section(run)
                st.divider()
                with guard("Improve with my ratings"):
                    improve_with_ratings(run)
        with tabs["Real or generated?"]:
            if tabs["Real or generated?"].open:
                with guard("Real or generated?"):
                    real_or_generated(run, player=st.session_state.get("player_name") or "local")


def checkpoint_choice(run) -> str:
    """Which weights the page samples from and exports: the best by held-out loss
    (the default) or the last; a choice only when the two differ."""
    from aigc_core.registry import get_model
    from aigc_core.sample import checkpoints_of

    found = checkpoints_of(run)
    best, last = found["best"], found["last"]
    if best is None or last is None or best["step"] == last:
        if not get_model(run.model).best_by:
            st.caption("Samples come from the run's last weights: this model has no held-out loss to pick its best "
                       "checkpoint by (a GAN's losses say how its two networks stand against each other, not how good "
                       "its samples are).")
        elif best is not None:
            st.caption(f"Samples come from step {best['step']:,}: its last weights are also its best by held-out loss.")
        return "best"
    options = {"best": f"Best: step {best['step']:,} (held-out loss {best['value']:.3f})", "last": f"Last: step {last:,}"}
    chosen = st.segmented_control(
        "Checkpoint", list(options), format_func=options.get, default="best", key="g_checkpoint",
        help="Best: the weights with the lowest loss on held-out data, measured during training (what the run's final "
             "numbers describe). Last: the weights at the end of training, which may have memorised the training data.")
    return chosen or "best"


def share_runs(run=None, checkpoint: str = "best") -> None:
    """Export a run as one .zip (the chosen weights, settings, model card, a
    sample) or import one someone exported; an import appears only when it is
    complete and valid (aigc_core.runs.api.import_run checks everything first)."""
    from aigc_core.runs.api import export_run, import_run

    with st.expander("Share: export this run, or import one" if run is not None else "Import a run someone exported",
                     icon=":material/ios_share:"):
        if run is not None:
            if st.button("Prepare the export (.zip)", key="share_export"):
                with guard("Exporting the run"):
                    st.session_state["share_zip"] = (run.id, checkpoint, export_run(run.id, checkpoint=checkpoint))
            ready = st.session_state.get("share_zip")
            if ready and ready[:2] == (run.id, checkpoint):
                st.download_button("Download the run (.zip)", ready[2], file_name=f"{run.id}.zip",
                                   mime="application/zip", key="share_download")
        upload = st.file_uploader("Import a run (.zip exported by AIGC Studio)", type=["zip"], key="share_import")
        if upload is not None and st.button("Import it", key="share_import_go"):
            with guard(f"Importing {upload.name}"):
                imported = import_run(upload.getvalue(), upload.name)
                set_current_run(imported.id)
                st.success(f"Imported as run {imported.id}; pick it in the Run list above.",
                           icon=":material/check_circle:")


# ---- the page ---------------------------------------------------------------------------

with guard("The gallery"):
    store = get_store()
    runs = [r for r in store.list(actor=actor) if r.status != "queued"]
    if not runs:
        st.info("No trained runs yet. Press **Quick train** on the Home page (or start a run on the Train page); "
                "it appears here after its first checkpoint.", icon=":material/info:")
        share_runs()
        st.stop()
    by_id = {r.id: r for r in runs}
    ids = list(by_id)
    chosen = current_run()
    from aigc_core.sample import checkpoint_step

    if chosen not in by_id:  # no run picked yet: the newest one that can make samples
        chosen = next((i for i in ids if checkpoint_step(i, store=store) is not None), ids[0])
    run_id = st.selectbox("Run", ids, index=ids.index(chosen),
                          format_func=lambda i: run_label(by_id[i]))
    if run_id != current_run():
        set_current_run(run_id)
        st.query_params["run"] = run_id
    run = store.get(run_id, actor=actor)
    publish_toggle(run)
    st.caption(f"{status_label(run)} · {run.model} ({run.family}) on {plain(run.dataset)} · trained {run.step} steps in "
               f"{run.train_seconds:.0f} s")
    if run.status == "failed":
        st.error(f"This run failed: {run.message or 'no reason was recorded'}. Start a new run on the Train page "
                 "(a lower learning rate often helps).", icon=":material/error:")
    if checkpoint_step(run_id, store=store) is None:
        st.warning("This run has no checkpoint yet, so there is nothing to sample from. "
                   + ("Wait for its first save; this page picks it up on the next click."
                      if run.status in ("starting", "running", "paused") else
                      "It stopped before it saved any weights; start a new run on the Train page."),
                   icon=":material/hourglass_empty:")
        st.stop()
    if run.status == "failed":
        st.caption("Its last good checkpoint can still make samples:")
    from pages.loop_sections import finetune_from_run

    finetune_from_run(run)
    checkpoint = checkpoint_choice(run)
    trainer, step = sampling_trainer(run_id, checkpoint)
    show_run(run, trainer, step)
    share_runs(run, checkpoint)
