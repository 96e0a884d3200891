"""Compare: runs side by side (settings, final numbers, curves, samples), and
the bake-off that trains several models on the same data with the same budget."""

import html

import streamlit as st

from aigc_core.bakeoff import metric_info, metric_order
from aigc_core.metrics.features import FEATURE_NOTE
from pages.common import acting, current_dataset, current_run, get_store, guard, plain, run_label, sampling_trainer

actor = acting("Compare")
st.title("Compare")
st.caption("Which model is better on my data? Put runs side by side: what was different, the numbers they "
           "ended with, how they learned, and what they make.")

def run_labels(runs) -> dict:
    """Run id -> a column title, unique even when two runs share a name."""
    names = [r.name for r in runs]
    return {r.id: r.name if names.count(r.name) == 1 else f"{r.name} · {r.id[-4:]}" for r in runs}


def flat(prefix: str, value, out: dict) -> dict:
    if isinstance(value, dict):
        for k, v in value.items():
            flat(f"{prefix}.{k}" if prefix else k, v, out)
    else:
        out[prefix] = value
    return out


def setting_labels(runs) -> dict:
    """Config key -> the label the Train page shows for it (``model_config.ngf`` -> ``Generator width (ngf)``)."""
    from aigc_core.config import TrainSettings, describe
    from aigc_core.registry import get_model

    out = {"model": "Model", "dataset": "Data set", "preset": "Preset"}
    out.update({f"train.{d['name']}": d["label"] for d in describe(TrainSettings)})
    for r in runs:
        for d in describe(get_model(r.model).config_cls):
            out.setdefault(f"model_config.{d['name']}", d["label"])
    return out


def settings_table(runs, labels):
    """The settings (model, data, preset, every model and training field) that differ."""
    import pandas as pd

    settings = {r.id: flat("", {k: r.config.get(k) for k in ("model", "dataset", "preset", "model_config", "train")}, {})
                for r in runs}
    keys = list(dict.fromkeys(k for s in settings.values() for k in s))
    table = {key: {labels[rid]: str(s[key]) if key in s else "(not a setting)" for rid, s in settings.items()}
             for key in keys}
    names = setting_labels(runs)
    differ = {names.get(key, key): row for key, row in table.items() if len(set(row.values())) > 1}
    return pd.DataFrame(differ).T if differ else pd.DataFrame()


def final_numbers(run) -> dict:
    """A finished run's final metrics; a running one's latest logged values."""
    return dict(run.final_metrics) if run.final_metrics else get_store().last_metrics(run.id)


def metrics_table(runs, labels, info):
    """A row per metric (its label, which way is better, a column per run), the
    best value of each row marked with a star."""
    import math

    import pandas as pd

    numbers = {r.id: final_numbers(r) for r in runs}
    keys = sorted({k for nums in numbers.values() for k in nums}, key=lambda k: metric_order(k, info))
    rows = []
    for key in keys:
        values = {rid: nums.get(key) for rid, nums in numbers.items()}
        finite = {rid: v for rid, v in values.items() if v is not None and math.isfinite(v)}
        better = (info.get(key) or {}).get("better")
        best = None
        if better in ("lower", "higher") and len(finite) >= 2 and len(set(finite.values())) > 1:
            best = (min if better == "lower" else max)(finite, key=finite.get)
        row = {"Metric": (info.get(key) or {}).get("label", key), "Better": better or ""}
        row.update({labels[rid]: "" if v is None else f"{v:.4g}" + (" ★" if rid == best else "")
                    for rid, v in values.items()})
        rows.append(row)
    return pd.DataFrame(rows), keys


def explain(keys, info) -> None:
    with st.popover("What do these numbers mean?", icon=":material/help:"):
        for key in keys:
            entry = info.get(key)
            if entry:
                better = {"lower": "lower is better", "higher": "higher is better"}.get(entry.get("better"), "")
                st.markdown(f"**{entry.get('label', key)}** (`{key}`{', ' + better if better else ''}): {entry.get('how', '')}")
            else:
                st.markdown(f"**`{key}`**: logged by the model while it trained.")
        st.caption(FEATURE_NOTE)


def curves(runs, labels) -> None:
    import plotly.colors
    import plotly.graph_objects as go

    from aigc_core.sample import checkpoints_of

    store = get_store()
    keys_by_run = {r.id: store.metric_keys(r.id) for r in runs}
    every = sorted({k for keys in keys_by_run.values() for k in keys})
    if not every:
        st.caption("No metrics logged yet.")
        return
    logged_by = {k: sum(k in keys for keys in keys_by_run.values()) for k in every}
    shared = sorted(every, key=lambda k: (-logged_by[k], k))
    # start on a training curve every run has (a number logged once at the end is a dot, not a curve)
    widest = [k for k in shared if logged_by[k] == logged_by[shared[0]]]
    preferred = next((k for k in ("val_bpc", "loss", "loss_g", "val_loss") if k in widest), widest[0])
    c1, c2, c3 = st.columns([2, 2, 1])
    key = c1.selectbox("Metric", shared, index=shared.index(preferred), key="c_metric", persist_state="session",
                       help="Metrics logged by at least one of the runs, the ones all of them log first.")
    axis = c2.segmented_control("Horizontal axis", ["Step", "Wall time (s)"], default="Step", key="c_axis",
                                persist_state="session")
    log_y = c3.toggle("Log scale", key="c_log", persist_state="session")
    fig = go.Figure()
    palette = plotly.colors.qualitative.Plotly
    for i, r in enumerate(runs):
        frame = store.metrics(r.id, keys=[key])
        if frame.empty:
            continue
        x = frame["step"] if axis != "Wall time (s)" else frame["wall"] - frame["wall"].min()
        color = palette[i % len(palette)]
        fig.add_scatter(x=x, y=frame["value"], mode="lines+markers" if len(frame) < 30 else "lines",
                        name=html.escape(labels[r.id]), line=dict(color=color))  # plotly reads <a>, <b> in trace names
        best = checkpoints_of(r)["best"] if key.startswith("val_") else None
        at_best = frame["step"] == best["step"] if best else None
        if best and at_best.any():  # the run's best checkpoint by held-out loss: a star on its held-out curve
            fig.add_scatter(x=x[at_best].tail(1), y=frame["value"][at_best].tail(1), mode="markers",
                            marker=dict(symbol="star", size=14, color=color),
                            name=html.escape(f"{labels[r.id]}: best checkpoint"), showlegend=False)
    fig.update_layout(height=420, xaxis_title="training step" if axis != "Wall time (s)" else "seconds since the first log",
                      yaxis_title=key, yaxis_type="log" if log_y else "linear", legend=dict(orientation="h", y=-0.2),
                      margin=dict(t=30))
    st.plotly_chart(fig, key="c_curves")
    if key.startswith("val_"):
        st.caption("A star marks each run's best checkpoint by held-out loss: the weights its samples, its final "
                   "numbers and its export come from.")
    missing = [labels[r.id] for r in runs if key not in keys_by_run[r.id]]
    if missing:
        st.caption(f"{plain(', '.join(missing))} did not log {key}.")


def samples_of(run, seed: int) -> None:
    """A few samples from the run's best checkpoint, the same seed for every run,
    as the engine previews its kind of data (the bake-off shows the same)."""
    from aigc_core.bakeoff import sample_preview

    trainer, step = sampling_trainer(run.id)
    show_preview(sample_preview(run, trainer, step, seed))


def side_by_side(runs, labels) -> None:
    seed = int(st.number_input("Seed (the same for every run)", 0, 2**31 - 1, 0, key="c_seed", persist_state="session"))
    per_row = 3
    for start in range(0, len(runs), per_row):
        cols = st.columns(per_row)
        for col, r in zip(cols, runs[start:start + per_row]):
            with col:
                st.markdown(f"**{plain(labels[r.id])}**")
                if r.status == "failed":
                    st.error(f"failed: {r.message or 'no reason recorded'}")
                with guard(f"Sampling {plain(r.name)}"):
                    samples_of(r, seed)


def bits_per_character(runs, labels) -> None:
    from aigc_core.registry import get_model

    # runs that have it, or whose model measures it at the end (a chart of theirs is drawn against it)
    text_runs = [r for r in runs if "val_bpc" in final_numbers(r)
                 or any(c.reference == "val_bpc" for c in get_model(r.model).charts)]
    if not text_runs:
        return
    st.subheader("Bits per character")
    st.caption("How many yes/no questions the model needs, on average, to guess the next character of text it "
               "never trained on (the held-out last 10%). Lower is better; 0 would be perfect prediction, and "
               "log2 of the number of distinct characters is blind guessing. Compare runs on the same text only.")
    cols = st.columns(len(text_runs))
    for col, r in zip(cols, text_runs):
        bpc = final_numbers(r).get("val_bpc")
        col.metric(plain(labels[r.id]), "not measured yet" if bpc is None else f"{bpc:.3f} bits")


def compare_runs() -> None:
    store = get_store()
    runs = [r for r in store.list(actor=actor) if r.status != "queued"]
    if len(runs) < 2:
        st.info("Comparing needs at least two runs. Train another model on the Train page, or start a bake-off "
                "in the next tab.", icon=":material/info:")
        return
    by_id = {r.id: r for r in runs}
    chosen = current_run()
    default = [chosen] if chosen in by_id else []
    if default:
        same_data = [r.id for r in runs if r.id != chosen and r.dataset == by_id[chosen].dataset]
        default += same_data[:1] or [r.id for r in runs if r.id != chosen][:1]
    else:
        default = [r.id for r in runs[:2]]
    picked = st.multiselect("Runs to compare (2 to 6)", list(by_id), default=default, max_selections=6,
                            format_func=lambda i: run_label(by_id[i]),
                            key="c_runs", persist_state="session")
    if len(picked) < 2:
        st.info("Pick at least two runs.", icon=":material/info:")
        return
    picked_runs = [store.get(i, actor=actor) for i in picked]
    labels = run_labels(picked_runs)
    datasets = sorted({r.dataset for r in picked_runs})
    if len(datasets) > 1:
        st.warning(f"These runs trained on different data sets ({plain(', '.join(datasets))}). Their losses and quality "
                   "scores measure different things; compare runs on the same data.", icon=":material/warning:")

    st.subheader("Settings that differ")
    diff = settings_table(picked_runs, labels)
    if diff.empty:
        st.caption("The runs have exactly the same settings (only their randomness or training time differs).")
    else:
        st.dataframe(diff, key="c_settings")

    st.subheader("Final numbers")
    info = metric_info()
    table, keys = metrics_table(picked_runs, labels, info)
    if table.empty:
        st.caption("None of these runs has numbers yet.")
    else:
        st.dataframe(table, key="c_metrics", hide_index=True)
        st.caption("★ marks the best value in each row where lower or higher is clearly better. " + FEATURE_NOTE)
        explain(keys, info)

    bits_per_character(picked_runs, labels)
    with guard("What people thought"):
        from pages.loop_sections import human_scores_table

        human_scores_table(picked_runs)
    st.subheader("Curves")
    curves(picked_runs, labels)
    st.subheader("Samples side by side")
    side_by_side(picked_runs, labels)


# ---- bake-off ----------------------------------------------------------------------------
# Several models, the same data, the same wall-clock budget and seed; the engine
# (aigc_core.bakeoff) queues the runs and builds the report, this tab only shows it.

def bakeoff_form() -> None:
    """Pick a data set, 2 to 6 models that can train on it, and a budget; Start queues them."""
    from aigc_core import bakeoff
    from aigc_core.data.catalog import list_datasets
    from aigc_core.registry import models_for

    sets = {d.name: d for d in list_datasets(actor=actor)}
    names = list(sets)
    here = current_dataset()
    c1, c2 = st.columns([1, 2])
    dataset = c1.selectbox("Data set", names, index=names.index(here) if here in names else 0, key="bo_data",
                           help="Every model trains on exactly this data.")
    info = sets[dataset]
    fitting = {s.name: s for s in models_for(info.kind, info.summary or None)}
    if len(fitting) < 2:
        st.info(f"Only {len(fitting)} model can train on {info.kind} data like {plain(dataset)}; a bake-off needs two. "
                "Pick another data set.", icon=":material/info:")
        return
    models = c2.multiselect("Models (2 to 6)", list(fitting), default=list(fitting)[:2], max_selections=6,
                            format_func=lambda m: f"{fitting[m].title} ({m})", key=f"bo_models_{dataset}",
                            help="Only the models that can train on this data set are offered.")
    c3, c4, c5 = st.columns([2, 1, 1])
    budget = c3.radio("Budget per model", list(bakeoff.BUDGETS), horizontal=True, key="bo_budget",
                      format_func=lambda b: {"cpu": "processor time", "wall": "clock time", "steps": "steps"}[b],
                      help="Processor time is fair when other work shares the machine: a model is not cut short "
                           "because another process had the CPU. Clock time is what you wait. Steps give every "
                           "model the same number of updates, however slow each one is.")
    if budget == "steps":
        steps = c4.number_input("Steps per model", 1, 10_000_000, 500, step=100, key="bo_steps")
        seconds = 0
    else:
        steps = 0
        seconds = c4.number_input("Seconds per model", 1, 24 * 3600, 60, step=10, key="bo_seconds",
                                  help="The same budget for every model: a fast model gets more steps, a slow one "
                                       "fewer. That is the point of a bake-off.")
    seed = c5.number_input("Seed", 0, 2**31 - 1, 0, key="bo_seed", help="The same seed for every run.")
    from aigc_core.runs.queue import max_jobs

    slots = max_jobs()
    together = "one at a time" if slots == 1 else f"{slots} at a time (one per training slot)"
    if budget == "steps":
        took = "as long as the slowest models need for their steps"
    else:
        total = -(-len(models) // slots) * seconds
        took = f"about {total:.0f} s" if total < 120 else f"about {total / 60:.0f} min"
        took += " of training" + (" (processor seconds: longer on the clock when the machine is busy)"
                                  if budget == "cpu" else "")
    st.caption(f"The runs wait in the training queue and train {together}, so the whole bake-off takes {took}, "
               "plus start-up and evaluation after each run. Each model uses its Quick settings where it has them.")
    if st.button("Start the bake-off", type="primary", icon=":material/sports_score:", key="bo_start",
                 disabled=len(models) < 2):
        with guard("Starting the bake-off"):
            started = bakeoff.start_bakeoff(dataset, models, float(seconds), seed=int(seed), store=get_store(),
                                            actor=actor, budget=budget, steps=int(steps))
            st.session_state["bo_pick"] = started.id
            st.toast(f"Bake-off queued: {', '.join(started.models)}")


@st.fragment(run_every=2.0)
def bakeoff_progress(bakeoff_id: str) -> None:
    """Re-reads the run store every two seconds; when every run has ended the
    whole page reruns to show the report."""
    from aigc_core import bakeoff
    from aigc_core.runs.queue import queue_position

    store = get_store()
    store.refresh()
    b = bakeoff.load_bakeoff(bakeoff_id)
    for r in b.runs(store):
        spent = f"{r.step:,} of {b.steps:,} steps" if b.budget == "steps" else \
            f"{r.train_seconds:.0f} of {b.max_seconds:g} {'CPU ' if b.budget == 'cpu' else ''}s"
        text = f"{r.model}: {r.status} · {spent}"
        if r.status == "queued":
            ahead = queue_position(store, r.id)
            text += f" · {ahead} run{'s' if ahead > 1 else ''} ahead in the queue" if ahead else " · next in the queue"
        st.progress(r.progress, text=text)
        if r.status in ("failed", "interrupted"):
            st.error(f"{r.model}: {r.message or r.status}")
    if b.finished(store):
        st.rerun()


def _fingerprint(b, store) -> tuple:
    return tuple((r.id, r.status, r.step) for r in b.runs(store))


@st.cache_data(max_entries=8, show_spinner="Sampling every model for the report ...")
def _report(bakeoff_id: str, fingerprint: tuple, home: str) -> dict:
    from aigc_core.bakeoff import bakeoff_report

    return bakeoff_report(bakeoff_id, store=get_store())


def bakeoff_leaderboard(report: dict):
    """A row per metric, a column per model in rank order, the best value starred."""
    import pandas as pd

    rows = []
    for c in report["columns"]:
        row = {"Metric": c["label"], "Better": c["better"] or ""}
        for rank, e in enumerate(report["runs"], 1):
            v = e["values"].get(c["key"])
            title = (f"#{rank} " if report["ranked_by"] else "") + e["label"]
            row[title] = "" if v is None else f"{v:.4g}" + (" ★" if e["run_id"] in c["best"] else "")
        rows.append(row)
    return pd.DataFrame(rows)


def bakeoff_curves(report: dict) -> None:
    import plotly.graph_objects as go

    from aigc_core.bakeoff import curve_keys

    shared = curve_keys(report, limit=50)
    keys = shared + sorted(k for k in report["curves"] if k not in shared)
    if not keys:
        st.caption("No curves logged yet.")
        return
    c1, c2 = st.columns([2, 2])
    key = c1.selectbox("Metric", keys, key="bo_metric",
                       help="Metrics every model logged first (losses and held-out numbers before speed), then "
                            "the ones only some models log.")
    axis = c2.segmented_control("Horizontal axis", ["Seconds of training", "Step"], default="Seconds of training",
                                key="bo_axis")
    names = {e["run_id"]: e["label"] for e in report["runs"]}
    fig = go.Figure()
    for run_id, curve in report["curves"].get(key, {}).items():
        x = curve["step"] if axis == "Step" else curve["seconds"]
        fig.add_scatter(x=x, y=curve["value"], mode="lines+markers" if len(x) < 30 else "lines", name=names[run_id])
    fig.update_layout(height=380, xaxis_title="training step" if axis == "Step" else "seconds since the first log",
                      yaxis_title=key, legend=dict(orientation="h", y=-0.2), margin=dict(t=30))
    st.plotly_chart(fig, key="bo_curves")
    missing = [names[rid] for rid in names if rid not in report["curves"].get(key, {})]
    if missing:
        st.caption(f"{plain(', '.join(missing))} did not log {key}.")


def show_preview(s: dict) -> None:
    """One model's sample preview (:func:`aigc_core.bakeoff.sample_preview`)."""
    import base64

    caption = f"step {s['step']}" if "step" in s else None
    if s["kind"] == "image":
        st.image(base64.b64decode(s["png"]), caption=caption)
    elif s["kind"] == "points":
        st.image(s["svg"], caption="grey: real, orange: generated" + (f" ({caption})" if caption else ""))
    elif s["kind"] == "text":
        st.code(("\n" if s["lines"] else "\n\n").join(s["texts"]), language=None, wrap_lines=True)
    elif s["kind"] == "table":
        import pandas as pd

        st.dataframe(pd.DataFrame(s["rows"], columns=s["columns"]), hide_index=True)
    else:
        st.error(s.get("error", "no samples"))


def bakeoff_samples(report: dict) -> None:
    per_row = 3
    runs = report["runs"]
    for start in range(0, len(runs), per_row):
        for col, e in zip(st.columns(per_row), runs[start:start + per_row]):
            with col:
                st.markdown(f"**{e['label']}**")
                show_preview(report["samples"].get(e["run_id"], {"kind": "none", "error": "not sampled"}))


def bakeoff_copies(report: dict) -> None:
    import base64

    if not report["copies"]:
        return
    st.subheader("Copy detection")
    st.caption("Each sample beside its nearest training image and their distance; a tiny distance means the model "
               "may be repeating its training data.")
    for e in report["runs"]:
        pairs = report["copies"].get(e["run_id"])
        if not pairs:
            continue
        with st.expander(f"{e['label']}: nearest training images"):
            for start in range(0, len(pairs), 4):
                for col, p in zip(st.columns(4), pairs[start:start + 4]):
                    col.image([base64.b64decode(p["sample"]), base64.b64decode(p["neighbour"])],
                              caption=["sample", f"nearest, distance {p['distance']:.3g}"])


def bakeoff_result(bakeoff_id: str) -> None:
    from aigc_core.bakeoff import export_html, load_bakeoff
    from aigc_core.paths import aigc_home

    store = get_store()
    b = load_bakeoff(bakeoff_id)
    if not b.finished(store):
        st.markdown(f"**Training**: {', '.join(b.models)} on {plain(b.dataset)}, {b.budget_text}, seed {b.seed}.")
        bakeoff_progress(bakeoff_id)
        if st.button("Stop this bake-off", icon=":material/stop_circle:", key="bo_stop"):
            for r in b.runs(store):
                if r.status in ("queued", "starting", "running", "paused"):
                    store.request(r.id, "stop", actor=actor)
            st.rerun()
        return
    report = _report(bakeoff_id, _fingerprint(b, store), str(aigc_home()))
    st.subheader("Leaderboard")
    if report["ranked_by"]:
        col = next(c for c in report["columns"] if c["key"] == report["ranked_by"])
        st.caption(f"Ranked by {col['label']} ({col['better']} is better). ★ marks the best value of each row.")
    else:
        st.caption("★ marks the best value of each row where lower or higher is clearly better.")
    board = bakeoff_leaderboard(report)
    st.dataframe(board, key="bo_board", hide_index=True, height=35 * (len(board) + 1) + 3)  # every row, no scrolling
    explain([c["key"] for c in report["columns"]], {**metric_info(), **{c["key"]: c for c in report["columns"]}})
    st.subheader("Curves")
    bakeoff_curves(report)
    st.subheader(f"Samples side by side (seed {report['sample_seed']})")
    bakeoff_samples(report)
    bakeoff_copies(report)
    st.download_button("Download the report (HTML)", export_html(report), file_name=f"{b.id}.html",
                       mime="text/html", icon=":material/download:", key="bo_download",
                       help="One file with every number, chart and image; opens in any browser, offline.")


def bakeoff_tab() -> None:
    from aigc_core.bakeoff import list_bakeoffs

    st.caption("Which model is better on my data? Train several on the same data, for the same time, from the same "
               "seed, and lay the results side by side.")
    bakeoff_form()
    earlier = {b.id: b for b in list_bakeoffs(actor)}
    if not earlier:
        st.info("No bake-offs yet: pick a data set and models above and press Start.", icon=":material/info:")
        return
    st.divider()
    if st.session_state.get("bo_pick") not in earlier:
        st.session_state["bo_pick"] = next(iter(earlier))
    picked = st.selectbox("Bake-off", list(earlier), format_func=lambda i: earlier[i].title, key="bo_pick",
                          help="Earlier bake-offs, newest first.")
    bakeoff_result(picked)


TABS = ["Runs side by side", "Bake-off"]
tabs = dict(zip(TABS, st.tabs(TABS, key="c_tab", bind="query-params")))
with tabs["Runs side by side"]:
    if tabs["Runs side by side"].open:
        with guard("The comparison"):
            compare_runs()
with tabs["Bake-off"]:
    if tabs["Bake-off"].open:
        with guard("The bake-off"):
            bakeoff_tab()
