"""Data: look at the built-in and uploaded data sets, upload your own, delete
what you no longer need.

Every number and chart comes from :mod:`aigc_core.data`; this page only lays
them out. Uploads are checked by the engine (``uploads``, ``text``, ``table``),
which reports every file, line or cell it left out; nothing is saved until the
check has passed, and an existing data set is never replaced.
"""

from dataclasses import replace
from pathlib import PurePosixPath

import streamlit as st

from aigc_core.errors import UserError
from pages.common import acting, current_dataset, get_store, guard, plain, set_current_dataset

actor = acting("Data")
st.title("Data")
st.caption("Every model learns from a data set: pick one of the built-in sets or upload your own images, text or "
           "table. The set you pick here is the one the Train page starts from.")

KIND_WORDS = {"image": "images", "points": "2-D points", "text": "text", "table": "table"}
COLOURS = {1: "1 (grey)", 3: "3 (colour)"}
PURPLE, ORANGE = "#5b4bdb", "#e07b39"  # the theme's primary colour, and a second one for categories

with st.expander("What makes good training data, and what the numbers on this page mean", icon=":material/school:"):
    left, right = st.columns(2)
    left.markdown("""
**What makes good training data**

- **Enough of it.** A generative model learns what the examples have in common. A few hundred images is a bare
  minimum, a few thousand is comfortable; a text model wants tens of thousands of characters; a table at least ten
  times as many rows as columns.
- **Consistent.** The model learns everything that varies, including what you did not mean: borders, watermarks,
  different backgrounds or framing. Crop and frame your examples the same way.
- **Balanced.** If one class has ten times the examples of another, the model makes mostly the big class.
  The class balance chart shows this at a glance.
- **Clean.** Broken, duplicated or mislabelled examples are learned just as faithfully as good ones.
- **Varied in the ways you want.** A model never invents what it never saw: its samples are only as varied as
  its data.
- **Small enough for the machine.** 28 or 32 pixel images train in minutes on a laptop's CPU; 64 pixels
  wants a GPU or patience.
""")
    right.markdown("""
**What the statistics mean**

- **Count**: how many examples there are (images, characters, rows or points).
- **Size and channels**: pixels per side; 1 channel is greyscale, 3 is colour (red, green, blue).
- **Class balance**: examples per class. For an uploaded archive the classes are its folder names.
- **Mean pixel and spread**: the average brightness on a 0 (black) to 1 (white) scale, and how much pixels vary
  around it (the standard deviation).
- **Vocabulary**: how many different characters the text uses; a text model chooses one of them at every step.
- **Held out**: the last 10% of a text is kept for validation, so a model is scored on text it never trained on.
- **Histograms and bar charts**: how the values of one column are spread.
- **Correlation** (Pearson's r, -1 to 1): how closely two number or yes/no columns rise (+) or fall (-) together
  along a straight line; near 0 means no straight-line relation. **Association** (0 to 1) measures any pair of
  columns, categories included.
- **Modes** (points): separate clusters. A model that draws only some of them has *mode collapse*.
""")


# ---- loading, cached per data set (an upload that is replaced gets a new stamp) -------

def _stamp(name: str) -> int:
    from aigc_core.paths import datasets_dir

    try:
        return (datasets_dir() / name / "meta.json").stat().st_mtime_ns
    except OSError:
        return 0  # a built-in


def _home() -> str:
    from aigc_core.paths import aigc_home

    return str(aigc_home())


@st.cache_resource(max_entries=4, show_spinner=False)
def _dataset_at(name: str, home: str, stamp: int):
    from aigc_core.data.catalog import load_dataset

    return load_dataset(name)


@st.cache_resource(max_entries=8, show_spinner=False)
def _stats_at(name: str, home: str, stamp: int) -> dict:
    data = _dataset_at(name, home, stamp)
    if data.kind == "image":
        from aigc_core.data.images import image_stats

        return image_stats(data)
    if data.kind == "text":
        from aigc_core.data.text import text_stats

        return text_stats(data)
    if data.kind == "table":
        from aigc_core.data.table import table_stats

        return table_stats(data)
    from aigc_core.data.points import point_stats

    return point_stats(data)


def loaded(name: str):
    """``(data, stats)`` of a data set, loaded (or built) once per server."""
    with st.spinner(f"Loading {name} ... (a built-in set is made on first use, which can take a few seconds)"):
        key = (name, _home(), _stamp(name))
        return _dataset_at(*key), _stats_at(*key)


def bar_chart(labels, counts, title: str, x_title: str, y_title: str, key: str, horizontal: bool = False):
    import plotly.graph_objects as go

    labels = [str(v) for v in labels]
    bar = (go.Bar(y=labels[::-1], x=list(counts)[::-1], orientation="h", marker_color=PURPLE) if horizontal
           else go.Bar(x=labels, y=counts, marker_color=PURPLE))
    fig = go.Figure(bar)
    fig.update_layout(title=title, height=max(300, 22 * len(labels) + 120) if horizontal else 340,
                      margin=dict(l=10, r=10, t=50, b=10), xaxis_title=y_title if horizontal else x_title,
                      yaxis_title=x_title if horizontal else y_title)
    if not horizontal:
        fig.update_xaxes(type="category")
    st.plotly_chart(fig, key=key, config={"displayModeBar": False})


def balance_note(per_class: dict) -> None:
    counts = list(per_class.values())
    if len(counts) < 2 or min(counts) == 0:
        if counts and min(counts) == 0:
            empty = [k for k, c in per_class.items() if c == 0]
            st.caption(f"No examples at all for: {', '.join(empty)}.")
        return
    ratio = max(counts) / min(counts)
    if ratio >= 2:
        st.caption(f"The biggest class has {ratio:.1f} times the examples of the smallest: a model will make more of "
                   "the big classes. Add examples of the small ones if you want them as often.")
    else:
        st.caption("The classes are about equally large, so a model sees each of them about as often.")


# ---- one data set, by kind ---------------------------------------------------------------

def show_images(name: str, data, stats: dict) -> None:
    from aigc_core.data.images import preview_grid
    from aigc_core.imaging import upscale

    c = st.columns([1.1, 1.3, 1, 0.8, 1.5])  # the last metric reads "0.18 ± 0.33"
    c[0].metric("Images", f"{stats['count']:,}")
    c[1].metric("Size", f"{stats['width']} x {stats['height']} px")
    c[2].metric("Channels", COLOURS.get(stats["channels"], str(stats["channels"])))
    c[3].metric("Classes", stats["classes"] or "none")
    c[4].metric("Mean pixel", f"{stats['mean']:.2f} ± {stats['std']:.2f}",
                help="Average brightness on a 0 (black) to 1 (white) scale, ± how much pixels vary around it.")
    left, right = st.columns([3, 2])
    with left:
        seed_key = f"grid_seed:{name}"
        seed = st.session_state.get(seed_key, 0)
        if len(data) <= 64:
            st.image(upscale(preview_grid(data, n=64, seed=0), 480), caption=f"All {len(data)} images of {name}")
        else:
            st.image(upscale(preview_grid(data, n=64, seed=seed), 480),
                     caption=f"64 of the {len(data):,} images, picked at random")
            if st.button("Show other images", icon=":material/shuffle:", key=f"grid_more:{name}"):
                st.session_state[seed_key] = seed + 1
                st.rerun()
    with right:
        if stats["per_class"]:
            bar_chart(list(stats["per_class"]), list(stats["per_class"].values()), "Class balance: images per class",
                      "class", "images", key="img_balance")
            balance_note(stats["per_class"])
        else:
            st.info("This set has no class labels, so there is no class balance to show. For an upload, put each "
                    "class in its own folder inside the .zip and the folder names become the classes.",
                    icon=":material/info:")


def show_text(name: str, data, stats: dict) -> None:
    lines_mode = stats["mode"] == "lines"
    c = st.columns(4)
    c[0].metric("Characters", f"{stats['chars']:,}")
    c[1].metric("Vocabulary", f"{stats['vocab_size']:,}", help="Different characters the text uses.")
    c[2].metric("Items (lines)" if lines_mode else "Lines", f"{stats['lines']:,}")
    c[3].metric("Held out for validation", f"{stats['val_chars']:,} chars",
                help="The last 10% of the text (of the lines, in line mode) is never trained on; models are scored on it.")
    if lines_mode:
        st.caption(f"One item per line (names, titles): a model learns each item from its start to its end and writes "
                   f"whole new items. Items are {stats['mean_item_chars']:.1f} characters long on average, "
                   f"{stats['max_item_chars']} at most.")
    else:
        st.caption("One long stream of text: a model learns to continue it, one character after another.")
    if stats.get("vocab_note"):
        st.info(stats["vocab_note"], icon=":material/translate:")
    left, right = st.columns([3, 2])
    with left:
        if lines_mode:
            from aigc_core.data.text import items_of

            items = items_of(data)
            st.code("\n".join(items[:40]), language=None, height=420)
            st.caption(f"The first {min(40, len(items))} of {len(items):,} items")
        else:
            st.code(data.text[:2000], language=None, height=420, wrap_lines=True)
            st.caption(f"The first {min(2000, len(data.text)):,} of {len(data.text):,} characters")
    with right:
        top = stats["char_freq"][:40]
        bar_chart([f["label"] for f in top], [f["count"] for f in top],
                  f"The {len(top)} most frequent characters", "character", "times it appears", key="txt_freq",
                  horizontal=True)


def show_table(name: str, data, stats: dict) -> None:
    import pandas as pd

    types = list(data.column_types.values())
    c = st.columns(5)
    c[0].metric("Rows", f"{stats['rows']:,}")
    c[1].metric("Numeric columns", types.count("numeric"))
    c[2].metric("Categorical columns", types.count("categorical"))
    c[3].metric("Yes/no columns", types.count("boolean"))
    c[4].metric("Label column", data.label_column or "none",
                help="The column a classifier predicts when the studio scores how useful synthetic rows are.")
    st.dataframe(data.frame.head(20), height=300)
    st.caption(f"The first {min(20, len(data.frame))} of {len(data.frame):,} rows")
    rows = []
    for col, info in stats["columns"].items():
        if info["type"] == "numeric" and "mean" in info:
            shape = f"mean {info['mean']:.3g}, median {info['median']:.3g}, from {info['min']:.3g} to {info['max']:.3g}"
        elif info.get("values"):
            shape = "most frequent: " + ", ".join(f"{v} ({n})" for v, n in zip(info["values"][:3], info["counts"][:3]))
        else:
            shape = ""
        rows.append(dict(column=col, type=info["type"], missing=info["missing"], different=info["distinct"], values=shape))
    st.dataframe(pd.DataFrame(rows), hide_index=True)

    st.markdown("**How each column's values are spread**")
    columns = list(stats["columns"])
    shown = st.multiselect("Columns to chart", columns, default=columns[:12], key=f"tbl_cols:{name}")
    if shown:
        column_charts(stats, shown)
    label_info = stats["columns"].get(data.label_column) if data.label_column else None
    if label_info and label_info.get("values"):
        left, right = st.columns([2, 3])
        with left:
            st.markdown("**Class balance**")
            bar_chart(label_info["values"], label_info["counts"], f"Rows per {data.label_column}",
                      data.label_column, "rows", key="tbl_balance")
            balance_note(dict(zip(label_info["values"], label_info["counts"])))
        with right:
            heat_map(stats, name)
    else:
        heat_map(stats, name)


def column_charts(stats: dict, shown: list[str]) -> None:
    """A histogram per numeric column and a bar chart per other column, three to a row."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    per_row = 3
    rows = -(-len(shown) // per_row)
    fig = make_subplots(rows=rows, cols=per_row, subplot_titles=[f"{c} ({stats['columns'][c]['type']})" for c in shown],
                        vertical_spacing=80 / (250 * rows + 40), horizontal_spacing=0.06)  # 80 px between rows
    for i, col in enumerate(shown):
        info = stats["columns"][col]
        r, c = i // per_row + 1, i % per_row + 1
        if info["type"] == "numeric" and info.get("edges"):
            edges = info["edges"]
            centres = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:])]
            widths = [b - a for a, b in zip(edges[:-1], edges[1:])]
            fig.add_trace(go.Bar(x=centres, y=info["counts"], width=widths, marker_color=PURPLE, name=col,
                                 hovertemplate="%{x:.3g}: %{y} rows<extra></extra>"), row=r, col=c)
        else:
            fig.add_trace(go.Bar(x=[str(v) for v in info.get("values", [])], y=info.get("counts", []),
                                 marker_color=ORANGE, name=col, hovertemplate="%{x}: %{y} rows<extra></extra>"),
                          row=r, col=c)
            fig.update_xaxes(type="category", row=r, col=c)
    fig.update_layout(height=250 * rows + 40, showlegend=False, margin=dict(l=10, r=10, t=40, b=10), bargap=0.05)
    st.plotly_chart(fig, key="tbl_columns", config={"displayModeBar": False})
    st.caption("Purple: histograms of number columns (how many rows fall in each range). Orange: bar charts of "
               "categories and yes/no columns (rows per value; the rarest are summed as '(other)').")


def heat_map(stats: dict, name: str) -> None:
    import plotly.graph_objects as go

    st.markdown("**How the columns go together**")
    corr, assoc = stats["correlation"], stats["association"]
    choices = (["Correlation (number and yes/no columns)"] if len(corr["columns"]) > 1 else []) \
        + ["Association (all columns)"]
    what = st.radio("Measure", choices, horizontal=True, key=f"tbl_heat:{name}",
                    help="Correlation is signed (-1 to 1); association is a strength from 0 to 1 and covers "
                         "categories too (Cramér's V between two categories, the correlation ratio between a "
                         "number and a category).")
    pick = corr if what.startswith("Correlation") else assoc
    signed = what.startswith("Correlation")
    fig = go.Figure(go.Heatmap(z=pick["matrix"], x=pick["columns"], y=pick["columns"], zmin=-1 if signed else 0, zmax=1,
                               colorscale="RdBu" if signed else "Purples", reversescale=signed,
                               texttemplate="%{z:.2f}", hovertemplate="%{y} and %{x}: %{z:.2f}<extra></extra>"))
    n = len(pick["columns"])
    fig.update_layout(height=min(700, 120 + 45 * n), margin=dict(l=10, r=10, t=30, b=10))
    fig.update_yaxes(autorange="reversed")
    st.plotly_chart(fig, key="tbl_heat_map", config={"displayModeBar": False})
    if pick.get("of", n) > n:
        label = stats.get("label_column")
        st.caption(f"The heat map shows {n} of the {pick['of']} {'number and yes/no ' if signed else ''}columns: "
                   f"{', '.join(pick['columns'])}" + (f" (the first ones, and the label {label})" if label in
                                                      pick["columns"] else " (the first ones)")
                   + ". Every pair of that many columns would take minutes to compare.")
    if signed:
        st.caption("Red: the two columns rise together; blue: one falls as the other rises; white: no straight-line "
                   "relation. A good synthetic table keeps this picture.")
    else:
        st.caption("Dark: knowing one column tells you a lot about the other; light: little. A good synthetic table "
                   "keeps this picture.")


def show_points(name: str, data, stats: dict) -> None:
    import plotly.graph_objects as go
    import torch

    c = st.columns(4)
    c[0].metric("Points", f"{stats['count']:,}")
    c[1].metric("Modes (clusters)", stats["modes"] or "unlabelled")
    c[2].metric("x from", f"{stats['min'][0]:.2f} to {stats['max'][0]:.2f}")
    c[3].metric("y from", f"{stats['min'][1]:.2f} to {stats['max'][1]:.2f}")
    left, right = st.columns([3, 2])
    pick = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))[:4000]
    xy = data.points[pick].float().numpy()
    with left:
        fig = go.Figure()
        if data.labels is not None:
            labels = data.labels[pick].numpy()
            for mode in sorted(set(labels.tolist())):
                m = labels == mode
                fig.add_scatter(x=xy[m, 0], y=xy[m, 1], mode="markers", name=f"mode {mode}", marker=dict(size=4))
        else:
            fig.add_scatter(x=xy[:, 0], y=xy[:, 1], mode="markers", marker=dict(size=4))
        fig.update_layout(height=480, title=f"{len(pick):,} of the {len(data):,} points", showlegend=False,
                          xaxis_title="x", yaxis_title="y", margin=dict(l=10, r=10, t=50, b=10))
        fig.update_yaxes(scaleanchor="x", scaleratio=1)
        st.plotly_chart(fig, key="pts_scatter")
        st.caption("Each colour is one mode. A generator should cover every one of them, and nothing in between.")
    with right:
        if stats["per_mode"]:
            bar_chart(list(stats["per_mode"]), list(stats["per_mode"].values()), "Points per mode", "mode", "points",
                      key="pts_balance")


SHOW = {"image": show_images, "text": show_text, "table": show_table, "points": show_points}


def publish_toggle(info) -> None:
    """Workshop mode: share an uploaded set with the room (everyone can then train on it) or keep it yours."""
    from aigc_core.data.catalog import publish_dataset

    def changed():
        with guard("Publishing the data set"):
            publish_dataset(info.name, st.session_state[f"publish_data:{info.name}"], actor=actor)

    st.toggle("Publish to the room", value=info.published, key=f"publish_data:{info.name}", on_change=changed,
              help="Everyone in the workshop can then see this data set and train on it.")


def delete_section(info) -> None:
    from aigc_core.data.catalog import delete_dataset
    from aigc_core.room.identity import workshop_mode
    from aigc_core.room.policy import can_change

    if not can_change(actor, info.owner):
        st.caption(f"Uploaded by {info.owner} and published to the room.")
        return
    if workshop_mode():
        publish_toggle(info)
    trained = [r for r in get_store().list(actor=actor) if r.dataset == info.name]
    with st.expander(f"Delete {info.name}", icon=":material/delete:"):
        st.write(f"Deleting removes **{info.name}** and its files from this studio for good."
                 + (f" {len(trained)} run(s) were trained on it: they keep their checkpoints and samples, but cannot "
                    "be trained further without it." if trained else " No run was trained on it."))
        sure = st.checkbox(f"Yes, delete {info.name}", key=f"del_sure:{info.name}")
        if st.button("Delete the data set", type="primary", icon=":material/delete_forever:", disabled=not sure,
                     key=f"del:{info.name}"):
            delete_dataset(info.name, actor=actor)
            if current_dataset() == info.name:
                set_current_dataset(None)
            st.session_state["data_deleted"] = info.name
            st.rerun()


def show_set(name: str, info) -> None:
    """Numbers and charts of one set; one that must be downloaded first waits for a click."""
    if info.needs_download and not st.session_state.get(f"data_load:{name}"):
        st.info(f"{name} is downloaded once, on first use. Press the button to fetch it (or to open it, if it was "
                "fetched before).", icon=":material/cloud_download:")
        if st.button(f"Load {name}", icon=":material/download:", key=f"load:{name}"):
            st.session_state[f"data_load:{name}"] = True
            st.rerun()
        return
    try:
        data, stats = loaded(name)
    except UserError:
        st.session_state.pop(f"data_load:{name}", None)  # the button comes back for another try
        raise
    SHOW[data.kind](name, data, stats)


def browse() -> None:
    from aigc_core.data.catalog import list_datasets

    sets = {d.name: d for d in list_datasets(actor=actor)}
    names = list(sets)
    chosen = current_dataset()
    if chosen not in sets:
        # nothing picked yet (or the picked set is gone): show the first one and make it the current set
        set_current_dataset(names[0])
        st.rerun()  # so the sidebar names it too
    deleted = st.session_state.pop("data_deleted", None)
    if deleted:
        st.success(f"Deleted **{deleted}**. Showing **{chosen}** now.", icon=":material/check_circle:")
    st.session_state["data_pick"] = chosen

    def picked():
        set_current_dataset(st.session_state["data_pick"])

    name = st.selectbox("Data set", names, key="data_pick", on_change=picked,
                        format_func=lambda n: f"{n} · {KIND_WORDS.get(sets[n].kind, sets[n].kind)} · "
                                              f"{'built in' if sets[n].builtin else 'uploaded'}",
                        help="The set you pick is the one the Train page starts from.")
    info = sets[name]
    st.caption(info.description)
    with guard(f"Showing {name}"):  # a set that cannot be read can still be deleted below
        show_set(name, info)
    if info.builtin:
        st.caption("Built-in sets are part of the studio and cannot be deleted; only sets you uploaded can.")
    else:
        delete_section(info)
    with st.expander(f"All {len(sets)} data sets at a glance", icon=":material/list:"):
        import pandas as pd

        st.dataframe(pd.DataFrame([dict(name=d.name, kind=KIND_WORDS.get(d.kind, d.kind),
                                        source="built in" if d.builtin else "uploaded",
                                        count=(d.summary or {}).get("count"), about=d.description)
                                   for d in sets.values()]), hide_index=True)


# ---- upload -------------------------------------------------------------------------------

def name_field(filename: str, key: str) -> str | None:
    """The new set's name, or None (with a message saying why) when it cannot be used."""
    from aigc_core.data.catalog import check_name, free_name, list_datasets

    taken = {d.name for d in list_datasets()}
    name = st.text_input("Name of the new data set", free_name(PurePosixPath(filename).stem, taken), key=key,
                         max_chars=64, help="Letters, digits, '_', '-' and '.'; it must start with a letter or digit.")
    try:
        name = check_name(name)
    except UserError as exc:
        st.warning(f"{exc}.", icon=":material/edit:")
        return None
    if name in taken:
        st.warning(f"There is already a data set called **{name}**: choose another name (or delete the old one on the "
                   "Data sets tab first).", icon=":material/edit:")
        return None
    return name


def imported(result: dict) -> None:
    """Remember what was saved, make it the current set and start afresh with an empty uploader."""
    st.session_state["data_import_result"] = result
    st.session_state["data_upload_n"] = st.session_state.get("data_upload_n", 0) + 1
    set_current_dataset(result["name"])
    st.rerun()


def show_import_result(result: dict) -> None:
    import pandas as pd

    st.success(f"Saved **{result['name']}** ({result['summary']}). It is now the current data set: look at it on the "
               "**Data sets** tab, or train a model on it on the **Train** page.", icon=":material/check_circle:")
    if result["kind"] == "image":
        c1, c2 = st.columns(2)
        c1.metric("Images accepted", f"{result['accepted']:,}")
        c2.metric("Files left out", len(result["rejected"]))
    if result.get("rejected"):
        st.markdown(f"**{len(result['rejected'])} file(s) were left out**, each with the reason:")
        st.dataframe(pd.DataFrame(result["rejected"], columns=["file", "why it was left out"]), hide_index=True,
                     key="import_rejected")
    for note in result.get("notes", []):
        st.caption(note)


def upload_images(file, raw: bytes, key: str) -> None:
    from aigc_core.data.uploads import SIZES, import_and_save

    st.caption("Each image is scaled (shorter side to the size you pick) and cut to a square around its centre. "
               "Sub-folders in the archive become classes; an .npz needs an `images` array (and may have `labels`).")
    c1, c2 = st.columns(2)
    size = c1.radio("Image size (pixels per side)", SIZES, horizontal=True, key=f"{key}:size",
                    help="28 or 32 train quickly on a CPU; 64 shows more detail but needs a GPU or patience.")
    colour = c2.radio("Colour", ["as uploaded", "grey", "colour"], horizontal=True, key=f"{key}:colour",
                      help="As uploaded: colour (red, green and blue, 3 channels) when any image is in colour, grey "
                           "(1 channel) when every image is grey. Grey trains faster; colour keeps what photos show.")
    name = name_field(file.name, f"{key}:name")
    if st.button("Import the images", type="primary", icon=":material/upload:", disabled=name is None, key=f"{key}:go"):
        with st.status(f"Importing {plain(file.name)} ...", expanded=True) as status:
            bar = st.progress(0.0, text="Opening the archive")

            def progress(done: int, total: int) -> None:
                bar.progress(done / max(1, total), text=f"Checked {done:,} of {total:,} files")

            try:
                report = import_and_save(raw, name, size=size,
                                         channels={"grey": 1, "colour": 3}.get(colour),
                                         filename=file.name, progress=progress, actor=actor)
            except Exception:
                status.update(label=f"{plain(file.name)} was not imported; nothing was saved", state="error")
                raise
            status.update(label=f"Imported {report.accepted:,} images", state="complete")
        imported(dict(name=name, kind="image", accepted=report.accepted,
                      summary=f"{report.accepted:,} images, {size} x {size}, "
                              f"{'colour' if report.data.channels == 3 else 'grey'}"
                              + (f", {len(report.class_names)} classes" if report.class_names else ""),
                      rejected=[list(r) for r in report.rejected], notes=report.notes))


@st.cache_resource(max_entries=4, show_spinner=False)
def _text_preview(file_id: str, _raw: bytes, filename: str, mode: str):
    """The checked text and its statistics, once per upload and mode (a rerun does not decode it again)."""
    from aigc_core.data.text import import_text, text_stats

    data = import_text(_raw, "preview", mode=mode, filename=filename)  # a file that is not usable text stops here
    return data, text_stats(data)


@st.cache_data(max_entries=8, show_spinner=False)
def _text_guess(file_id: str, _raw: bytes) -> tuple[str, str]:
    from aigc_core.data.text import guess_text_mode

    return guess_text_mode(_raw)


def upload_text(file, raw: bytes, key: str) -> None:
    from aigc_core.data.catalog import save_uploaded

    guessed, why = _text_guess(file.file_id, raw)
    modes = ["stream", "lines"]
    mode = st.radio("How to read it", modes, index=modes.index(guessed), horizontal=True, key=f"{key}:mode",
                    format_func=lambda m: {"stream": "one long text (stories, code, songs)",
                                           "lines": "one item per line (names, titles)"}[m],
                    help="A stream model learns to continue the text; a line model writes whole new items.")
    st.caption(f"Guessed from the file: **{'one item per line' if guessed == 'lines' else 'one long text'}**, "
               f"because {plain(why)}.")
    data, stats = _text_preview(file.file_id, raw, file.name, mode)
    c = st.columns(3)
    c[0].metric("Characters", f"{stats['chars']:,}")
    c[1].metric("Vocabulary", f"{stats['vocab_size']:,}")
    c[2].metric("Items" if mode == "lines" else "Lines", f"{stats['lines']:,}")
    if stats.get("vocab_note"):
        st.info(stats["vocab_note"], icon=":material/translate:")
    st.code(data.text[:1000], language=None, wrap_lines=True, height=240)
    st.caption("The start of the text, as it will be saved" + (" (one item per line, surrounding spaces and empty lines "
               "removed)" if mode == "lines" else ""))
    name = name_field(file.name, f"{key}:name")
    if st.button("Save the text", type="primary", icon=":material/save:", disabled=name is None, key=f"{key}:go"):
        with st.status(f"Saving {plain(file.name)} ...") as status:
            save_uploaded(replace(data, name=name), extra_meta=dict(source=file.name, mode=mode), actor=actor)
            status.update(label="Saved", state="complete")
        imported(dict(name=name, kind="text", summary=f"{stats['chars']:,} characters, {stats['vocab_size']} different, "
                                                      f"{'one item per line' if mode == 'lines' else 'one stream'}"))


@st.cache_resource(max_entries=8, show_spinner=False)
def _csv_report(file_id: str, _raw: bytes, filename: str, types: tuple, label: str | None, missing: str,
                header: bool | None):
    from aigc_core.data.table import import_csv

    return import_csv(_raw, "preview", column_types=dict(types) or None, label_column=label, missing=missing,
                      filename=filename, header=header)


def upload_table(file, raw: bytes, key: str) -> None:
    import pandas as pd

    from aigc_core.data.catalog import save_uploaded
    from aigc_core.data.table import TYPES

    fid = file.file_id
    found = _csv_report(fid, raw, file.name, (), None, "fill", None)  # what was detected, nothing changed yet
    header = st.checkbox("The first line holds the column names", value=found.has_header, key=f"{key}:header")
    if header != found.has_header:
        found = _csv_report(fid, raw, file.name, (), None, "fill", header)
    st.caption(f"Read as {found.delimiter_name}-separated values, {found.encoding}: {found.rows_read:,} rows and "
               f"{len(found.column_types)} columns.")
    if found.encoding_note:
        st.warning(found.encoding_note, icon=":material/translate:")

    st.markdown("**Column types.** Check the type the studio guessed for each column, and change it where it is "
                "wrong (click a cell in the *type* column).")
    frame = found.data.frame
    detected = pd.DataFrame([dict(column=col, type=kind,
                                  examples=", ".join(str(v) for v in frame[col].dropna().unique()[:4]))
                             for col, kind in found.column_types.items()])
    edited = st.data_editor(
        detected, hide_index=True, disabled=["column", "examples"], key=f"{key}:types:{header}",
        column_config={"type": st.column_config.SelectboxColumn(
            "type", options=list(TYPES) + ["ignore"], required=True,
            help="numeric: numbers; categorical: a fixed set of values (city, colour); boolean: yes/no; ignore: "
                 "leave the column out (identifiers, free text)")})
    types = tuple((row.column, row.type) for row in edited.itertuples())
    kept = [c for c, t in types if t != "ignore"]
    c1, c2 = st.columns(2)
    guess = found.label_guess  # from the detected types, before any change in the table above
    options = ["(none)"] + kept
    label = c1.selectbox("Label column", options, key=f"{key}:label",
                         index=options.index(guess.column) if guess.column in kept else 0,
                         help="A class column (species, purchase). Synthetic rows are then scored by how well they "
                              "teach a classifier to predict it, a model learns each class's rows, and it can be "
                              "asked for rows of one class. Choose (none) if no column is a class.")
    if guess.column:
        c1.caption(f"Guessed **{plain(guess.column)}**: {plain(guess.reason)}. Change it if another column is the "
                   "one to predict.")
    else:
        c1.caption(f"No label guessed: {plain(guess.reason)}.")
    if label == "(none)":
        categories = [c for c, t in types if t in ("categorical", "boolean")]
        c1.caption("Without a label, a table model still learns the rows one value of a category at a time: "
                   + (f"of **{plain(categories[0])}** (the first category or yes/no column), or of the column "
                      "you choose in its *Condition on column* setting on the Train page." if categories else
                      "there is no category or yes/no column here, so it learns the rows without a condition."))
    missing = c2.radio("Rows with a missing or unreadable cell", ["drop", "fill"], horizontal=True, key=f"{key}:missing",
                       format_func=lambda m: {"drop": "drop the row", "fill": "fill the cell"}[m],
                       help="fill: the median for numbers, the most frequent value otherwise.")
    label = None if label == "(none)" else label
    # a label whose type the person left as detected is settled by the import (whole numbers become classes)
    settled = tuple((c, t) for c, t in types if not (c == label and t == found.column_types.get(c)))
    report = _csv_report(fid, raw, file.name, settled, label, missing, header)
    st.markdown("**The table as it will be saved**")
    st.dataframe(report.data.frame.head(10), key=f"{key}:preview")
    st.caption(f"The first rows as they will be saved ({report.rows_kept:,} rows in all).")
    first, *changes = report.messages()  # what was read, then every row or cell that was dropped, changed or filled
    st.info(first, icon=":material/fact_check:")
    for line in changes:
        st.warning(line, icon=":material/warning:")
    if report.dropped_examples:
        with st.expander(f"Dropped rows ({report.dropped_rows})"):
            st.dataframe(pd.DataFrame(report.dropped_examples, columns=["line in the file", "why"]), hide_index=True)
    if report.coerced_examples:
        with st.expander(f"Cells that did not fit their column's type ({report.coerced_cells})"):
            st.dataframe(pd.DataFrame(report.coerced_examples, columns=["line in the file", "column", "value"]),
                         hide_index=True)
    name = name_field(file.name, f"{key}:name")
    if st.button("Save the table", type="primary", icon=":material/save:", disabled=name is None, key=f"{key}:go"):
        with st.status(f"Saving {plain(file.name)} ...") as status:
            save_uploaded(replace(report.data, name=name),
                          extra_meta=dict(source=file.name, rows_read=report.rows_read, dropped_rows=report.dropped_rows,
                                          coerced_cells=report.coerced_cells, filled_cells=report.filled_cells),
                          actor=actor)
            status.update(label="Saved", state="complete")
        imported(dict(name=name, kind="table", notes=report.messages(),
                      summary=f"{report.rows_kept:,} rows, {len(report.column_types)} columns"
                              + (f", label {report.data.label_column}" if report.data.label_column else "")))


UPLOADERS = {"image": upload_images, "text": upload_text, "table": upload_table}


def upload() -> None:
    from aigc_core.data.uploads import upload_kind

    st.markdown("Upload **images** as a `.zip` (sub-folders become classes) or an `.npz` array, **text** as a UTF-8 "
                "`.txt` file, or a **table** as a `.csv` file. You check the result before anything is saved, and "
                "nothing you saved before is ever replaced.")
    n = st.session_state.get("data_upload_n", 0)
    file = st.file_uploader("Upload a data set", key=f"data_upload:{n}",
                            help="Images: .zip or .npz. Text: .txt (UTF-8). Table: .csv (up to 20 MB, 100 "
                                 "columns and a million cells). Up to 200 MB.")
    if file is None:
        result = st.session_state.get("data_import_result")
        if result:
            show_import_result(result)
        return
    st.session_state.pop("data_import_result", None)
    kind = None
    with guard("Reading the upload"):
        kind = upload_kind(file.name)
    if kind is None:
        return
    raw = file.getvalue()
    st.caption(f"**{plain(file.name)}**: {len(raw) / 1024:,.0f} KB, read as {KIND_WORDS[kind]}.")
    with guard(f"Importing {plain(file.name)}"):
        UPLOADERS[kind](file, raw, f"up{n}")


# ---- the page ---------------------------------------------------------------------------------

TABS = ["Data sets", "Upload your own"]
tabs = dict(zip(TABS, st.tabs(TABS, key="data_tab", bind="query-params")))
with tabs["Data sets"]:
    if tabs["Data sets"].open:
        with guard("Showing the data set"):
            browse()
with tabs["Upload your own"]:
    if tabs["Upload your own"].open:
        upload()
