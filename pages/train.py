"""Train: pick data, a model that fits it and a preset; start a run; watch it learn.

The page never trains anything itself: Start queues a run for the background
worker (:mod:`aigc_core.runs.api`), and the live section re-reads the run store
once a second inside a fragment, so the rest of the page stays responsive.
The run id lives in the URL (``?run=...``): a refresh or a second tab re-attaches.
"""

from __future__ import annotations

import math

import streamlit as st

from pages.common import acting, current_dataset, current_run, data_kind, film_strip, get_store, guard, plain, \
    run_label, set_current_dataset, set_current_run

#: statuses during which the live section refreshes itself
LIVE = ("queued", "starting", "running", "paused")
actor = acting("Train")
st.title("Train")
st.caption("Pick a data set, a model that can learn it and a preset, then press Start. Training runs in the "
           "background: you can leave this page, refresh it or open it in a second tab and come back to the run.")


def explain(spec, model_config: dict) -> None:
    """The explanation panel of one model: what it trains, its losses, how to read its curves."""
    st.markdown(spec.explanation(model_config))


# ---------------------------------------------------------------------------
# 1. The form: data set, model, preset, settings from the config metadata
# ---------------------------------------------------------------------------

@st.cache_resource
def devices() -> list[str]:
    """The device choices this machine can honour."""
    import torch

    out = ["auto", "cpu"]
    if torch.cuda.is_available():
        out.append("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        out.append("mps")
    return out


def rate_choices(value: float, lo: float, hi: float) -> list[float]:
    """A 1-2-5 ladder between ``lo`` and ``hi`` (plus ``value``) for log-scale settings such as learning rates."""
    out = {float(value)}
    for exp in range(math.floor(math.log10(max(lo, 1e-12))), math.ceil(math.log10(hi)) + 1):
        for m in (1, 2, 5):
            v = float(f"{m}e{exp}")
            if lo <= v <= hi:
                out.add(v)
    return sorted(out)


def setting_widget(field: dict, value, key: str, disabled: bool):
    """One widget for one config field, from its metadata (label, help, range, step, choices, log)."""
    label, help_text = field["label"], field.get("help") or None
    lo, hi, step = field.get("min"), field.get("max"), field.get("step")
    if field.get("choices"):
        options = list(field["choices"])
        return st.selectbox(label, options, index=options.index(value) if value in options else 0, key=key,
                            help=help_text, disabled=disabled)
    if isinstance(value, bool):
        return st.toggle(label, value=value, key=key, help=help_text, disabled=disabled)
    if isinstance(value, int):
        if lo is not None and hi is not None and hi - lo <= 20 and not step:
            return st.slider(label, int(lo), int(hi), int(value), key=key, help=help_text, disabled=disabled)
        return int(st.number_input(label, None if lo is None else int(lo), None if hi is None else int(hi), int(value),
                                   step=int(step or 1), key=key, help=help_text, disabled=disabled))
    if isinstance(value, float):
        if field.get("log") and lo and hi:
            return st.select_slider(label, rate_choices(value, lo, hi), value=float(value), key=key, help=help_text,
                                    disabled=disabled, format_func=lambda v: f"{v:g}")
        step = float(step) if step else (10 ** math.floor(math.log10(abs(value))) / 10 if value else 0.01)
        decimals = max(0, -math.floor(math.log10(step))) if step < 1 else 0
        return float(st.number_input(label, None if lo is None else float(lo), None if hi is None else float(hi),
                                     float(value), step=step, format=f"%.{decimals}f", key=key, help=help_text,
                                     disabled=disabled))
    if isinstance(value, (list, tuple)):
        text = st.text_input(label, ", ".join(map(str, value)), key=key, help=help_text, disabled=disabled)
        return [v.strip() for v in text.split(",") if v.strip()]
    return st.text_input(label, str(value), key=key, help=help_text, disabled=disabled)


def settings_grid(fields: list[dict], values: dict, prefix: str, disabled: bool, per_row: int = 4) -> dict:
    out = {}
    for start in range(0, len(fields), per_row):
        for col, field in zip(st.columns(per_row), fields[start:start + per_row]):
            with col:
                out[field["name"]] = setting_widget(field, values[field["name"]], f"{prefix}_{field['name']}", disabled)
    return out


def fitted_preset(spec, preset: str, summary: dict | None) -> tuple[dict, str]:
    """The preset as the model's rule fits it to this data set and this server's device."""
    from aigc_core.train.device import device_type

    return spec.preset(preset, summary, device_type())


def preset_caption(spec, preset: str, summary: dict | None = None) -> str:
    if preset == "Custom":
        return "start from Quick, change anything"
    train = fitted_preset(spec, preset, summary)[0].get("train", {})
    parts = []
    if train.get("steps"):
        parts.append(f"{train['steps']:,} steps")
    if train.get("max_seconds"):
        secs = train["max_seconds"]
        parts.append(f"{secs:.0f} s" if secs < 120 else f"{secs / 60:.1f}".rstrip("0").rstrip(".") + " min")
    return "up to " + " or ".join(parts) if parts else ""


def run_time_ceiling() -> float:
    from aigc_core.room.limits import Limits

    return Limits.from_env().max_run_seconds


def typed_sets(spec, sets: dict, model_values: dict, train_values: dict) -> tuple[dict, dict]:
    """The form's values with a link's (or the room preset's) settings typed and range-checked by the
    configs' own rules; a setting neither config knows is refused with its name."""
    from dataclasses import asdict

    from aigc_core.config import TrainSettings, from_dict
    from aigc_core.errors import UserError

    model_keys = set(spec.config_cls.__dataclass_fields__)
    train_keys = set(TrainSettings.__dataclass_fields__)
    unknown = sorted(set(sets) - model_keys - train_keys)
    if unknown:
        raise UserError(f"the link sets {', '.join(unknown)}, which {spec.title} does not have")
    m = {k: v for k, v in sets.items() if k in model_keys}
    t = {k: v for k, v in sets.items() if k in train_keys and k not in model_keys}
    typed_m = {k: v for k, v in asdict(from_dict(spec.config_cls, m)).items() if k in m}
    typed_t = {k: v for k, v in asdict(from_dict(TrainSettings, t)).items() if k in t}
    return model_values | typed_m, train_values | typed_t


def settings_link(dataset: str, model: str, preset: str, chosen: dict, base: dict) -> str:
    """This page's address with the form's choices (``?dataset=...&model=...&preset=...&set=k=v``);
    with Custom, every setting that differs from where Custom starts. Never who you are."""
    from urllib.parse import urlencode

    params = [("dataset", dataset), ("model", model), ("preset", preset)]
    if preset == "Custom":
        for key, value in chosen.items():
            if key in base and value != base[key]:
                text = ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
                params.append(("set", f"{key}={text}"))
    try:
        here = str(st.context.url or "").split("?")[0]
    except Exception:  # noqa: BLE001 - no browser address (tests): a relative link still works when pasted after it
        here = ""
    return f"{here}?{urlencode(params)}"


def apply_choices(dataset: str | None, model: str | None, preset: str | None, sets: dict) -> None:
    """Fill the form: data set, model, preset and settings (from a link or the room preset)."""
    from aigc_core.data.catalog import dataset_info
    from aigc_core.errors import UserError
    from aigc_core.registry import get_model

    kind = None
    if dataset:
        info = dataset_info(dataset, actor=actor)
        st.session_state["tr_data"], kind = info.name, info.kind
    if model:
        spec = get_model(model)
        kind = kind or spec.data_kind
        st.session_state[f"tr_model_{kind}"] = spec.name
        if sets:
            preset = "Custom"  # settings are changed in Custom, which starts from Quick
        if preset:
            if preset not in [*spec.presets, "Custom"]:
                raise UserError(f"{spec.title} has no preset {preset!r}")
            st.session_state[f"tr_preset_{spec.name}"] = preset
        st.session_state["tr_link"] = {"model": spec.name, "sets": dict(sets)}
        for key in [k for k in st.session_state if str(k).startswith(f"tr_{spec.name}_Custom_")]:
            del st.session_state[key]  # the widgets take the new values instead of what they held
        # the link's model stands: the recommendation is not applied over it
        st.session_state["tr_recommended_for"] = (st.session_state.get("tr_data"),
                                                  st.session_state.get("tr_device", "auto"))


def link_and_room_preset() -> None:
    """A settings link opened now fills the form once; the room preset is one click away."""
    from aigc_core.room import board

    params = st.query_params
    wanted = (params.get("dataset"), params.get("model"), params.get("preset"), tuple(params.get_all("set")))
    if any(wanted[:2]) and st.session_state.get("tr_link_seen") != wanted:
        st.session_state["tr_link_seen"] = wanted
        with guard("Opening the settings link"):
            from aigc_core.config import parse_sets

            apply_choices(wanted[0], wanted[1], wanted[2], parse_sets(list(wanted[3])))
    room = board.room_preset()
    if room:
        words = " · ".join(f"{k} {v}" for k, v in room.items() if k != "settings")
        extra = ", ".join(f"{k}={v}" for k, v in room.get("settings", {}).items())
        c1, c2 = st.columns([3, 1], vertical_alignment="center")
        c1.info(f"The teacher's room preset: {words}" + (f" · settings {extra}" if extra else ""),
                icon=":material/school:")
        if c2.button("Start from the room preset", key="tr_room_preset", icon=":material/bolt:"):
            with guard("Using the room preset"):
                apply_choices(room.get("dataset"), room.get("model"), room.get("preset"), room.get("settings", {}))
                st.rerun()


@st.cache_data(max_entries=64, show_spinner=False)
def cost_problem(model: str, dataset: str, model_json: str, train_json: str) -> str | None:
    """Why these Custom settings cannot be queued on this machine (a model too big for its memory or the
    parameter ceiling, a time budget over the room's ceiling), from the same check ``make_config`` makes when
    Start is pressed; estimated on the meta device, so asking costs no memory. Cached per choice of values."""
    import json

    from aigc_core.errors import UserError
    from aigc_core.runs.api import make_config

    try:
        make_config(model, dataset, model_set=json.loads(model_json), train_set=json.loads(train_json))
    except UserError as exc:
        return str(exc)
    return None


def setting_problems(spec, values: dict) -> list[str]:
    """Why the form's current model settings cannot work together (the same
    check ``make_config`` makes), so the form says it before Start, not the run after it."""
    from aigc_core.config import config_problems, from_dict
    from aigc_core.errors import UserError

    try:
        return config_problems(from_dict(spec.config_cls, values, strict=False))
    except UserError as exc:
        return [str(exc)]


def recommendation(dataset: str, device: str):
    """The measured best model and preset for this data set and device (None when there is none to give)."""
    from aigc_core.errors import UserError
    from aigc_core.recommend import recommend

    try:
        return recommend(dataset, device, actor=actor)
    except UserError:
        return None


def preselect_recommended(dataset: str, kind: str, fitting: dict):
    """Set the model and preset to the recommendation when the data set (or device) changes; the
    person's own choice after that stands until they pick another set. Returns the recommendation."""
    device = st.session_state.get("tr_device", "auto")
    rec = recommendation(dataset, device)
    if rec is None or rec.model not in fitting:
        return None
    if st.session_state.get("tr_recommended_for") != (dataset, device):
        st.session_state["tr_recommended_for"] = (dataset, device)
        st.session_state[f"tr_model_{kind}"] = rec.model
        if rec.preset in fitting[rec.model].presets:
            st.session_state[f"tr_preset_{rec.model}"] = rec.preset
    return rec


def new_run_form() -> None:
    from aigc_core.config import TrainSettings, describe
    from aigc_core.data.catalog import list_datasets
    from aigc_core.registry import all_models, models_for

    sets = {d.name: d for d in list_datasets(actor=actor)}
    if not sets:
        st.warning("There is no data set yet. Add one on the Data page (or use a built-in set), then come back.",
                   icon=":material/warning:")
        return
    names = list(sets)
    if st.session_state.get("tr_data") not in sets:
        here = current_dataset()
        st.session_state["tr_data"] = here if here in sets else names[0]
    c1, c2, c3 = st.columns([2, 2, 3])

    def data_label(n: str) -> str:
        d = sets[n]
        return f"{n} ({d.kind}{', downloads on first use' if d.needs_download else ''})"

    dataset = c1.selectbox("1. Data set", names, key="tr_data", format_func=data_label,
                           help="Images, text, a table or 2-D points; add your own on the Data page.")
    info = sets[dataset]
    fitting = {s.name: s for s in models_for(info.kind, info.summary or None)}
    unfit = [(s, s.fits(info.summary)) for s in all_models() if s.data_kind == info.kind and s.name not in fitting]
    if not fitting:
        st.warning(f"No model can train on {plain(dataset)} ({info.kind} data)"
                   + (": " + "; ".join(f"{s.name}: {why}" for s, why in unfit) if unfit else "")
                   + ". Pick another data set or re-import this one on the Data page.", icon=":material/warning:")
        return
    rec = preselect_recommended(dataset, info.kind, fitting)
    model = c2.selectbox("2. Model", list(fitting), key=f"tr_model_{info.kind}",
                         format_func=lambda m: f"{fitting[m].title}{' · recommended' if rec and m == rec.model else ''}"
                                               f" ({m})",
                         help="Only the models that can train on this data set are offered. The recommended one made "
                              "the best samples in measurements kept with the studio.")
    spec = fitting[model]
    presets = [*spec.presets, "Custom"]
    preset = c3.radio("3. Preset", presets, horizontal=True, key=f"tr_preset_{model}",
                      captions=[preset_caption(spec, p, info.summary) for p in presets],
                      help="Quick trains in about half a minute on a laptop CPU; Standard takes a few minutes and "
                           "looks better; Custom lets you change every setting.")
    if rec:
        chosen = "" if (model, preset) == (rec.model, rec.preset) else \
            f" You chose {fitting[model].title} ({preset}) instead."
        st.info(f"**Recommended for {plain(dataset)}: {fitting[rec.model].title} ({rec.model}), {rec.preset} "
                f"preset.** {plain(rec.why)}{chosen}", icon=":material/recommend:")
    st.caption(spec.description + (" Not offered for this data: "
                                   + "; ".join(f"{s.title} ({why})" for s, why in unfit) + "." if unfit else ""))

    base, fitted_why = fitted_preset(spec, preset if preset in spec.presets else "Quick", info.summary) \
        if spec.presets else ({}, "")
    if fitted_why:
        st.caption(f":material/straighten: {'Custom starts from Quick, ' if preset == 'Custom' else ''}"
                   f"{fitted_why}")
    model_fields, train_fields = describe(spec.config_cls), [f for f in describe(TrainSettings) if f["name"] != "device"]
    model_values = {f["name"]: f["default"] for f in model_fields} | base.get("model", {})
    train_values = {f["name"]: f["default"] for f in train_fields} | base.get("train", {})
    ceiling = run_time_ceiling()
    if ceiling:  # the time widget's maximum is the room's ceiling on one run
        train_fields = [f | {"max": ceiling} if f["name"] == "max_seconds" else f for f in train_fields]
        train_values["max_seconds"] = min(float(train_values.get("max_seconds") or ceiling), ceiling)
    base_values = model_values | train_values
    link = st.session_state.get("tr_link") or {}
    if preset == "Custom" and link.get("model") == model and link.get("sets"):
        model_values, train_values = typed_sets(spec, link["sets"], model_values, train_values)
    editable = preset == "Custom"
    prefix = f"tr_{model}_{preset}"
    label = "Settings (Custom: change anything)" if editable else f"Settings of the {preset} preset"
    with st.expander(label, expanded=editable, icon=":material/tune:"):
        if not editable:
            st.caption("These are the preset's settings; choose **Custom** to change them.")
        chosen_model = settings_grid([f for f in model_fields if not f.get("advanced")], model_values, prefix + "_m",
                                     not editable)
        chosen_train = settings_grid([f for f in train_fields if not f.get("advanced")], train_values, prefix + "_t",
                                     not editable)
    with st.expander("Advanced settings", icon=":material/settings:"):
        chosen_model |= settings_grid([f for f in model_fields if f.get("advanced")], model_values, prefix + "_m",
                                      not editable)
        chosen_train |= settings_grid([f for f in train_fields if f.get("advanced")], train_values, prefix + "_t",
                                      not editable)
    clashes = setting_problems(spec, chosen_model)
    if editable and not clashes:  # the size and time ceilings, before Start rather than after it
        import json

        too_much = cost_problem(model, dataset, json.dumps(chosen_model, sort_keys=True, default=str),
                                json.dumps(chosen_train, sort_keys=True, default=str))
        clashes = [too_much] if too_much else []
    for clash in clashes:
        st.error(clash, icon=":material/block:")
    if "max_vocab" in chosen_model and info.summary:  # a character model: what it keeps of this text's alphabet
        from aigc_core.data.vocab import vocabulary_note

        if note := vocabulary_note(info.summary, chosen_model["max_vocab"]):
            st.info(note, icon=":material/translate:")
    with st.expander(f"How {spec.title} learns: the formulas, and how to read its curves", icon=":material/school:"):
        explain(spec, chosen_model)

    with st.popover("Copy a link to these settings", icon=":material/link:"):
        st.caption("Anyone in the room who opens this link gets this form filled in the same way.")
        st.code(settings_link(dataset, model, preset, {**chosen_model, **chosen_train}, base_values), language=None,
                wrap_lines=True)

    c1, c2, c3 = st.columns([1, 2, 1], vertical_alignment="bottom")
    device_field = next(f for f in describe(TrainSettings) if f["name"] == "device")
    device = c1.selectbox("Device", devices(), key="tr_device", help=device_field["help"] + " Only the devices this "
                          "machine has are offered.")
    name = c2.text_input("Run name", key=f"tr_name_{model}_{dataset}", placeholder=f"{model} on {dataset}",
                         help="A name to find the run by later (optional; two runs may share one).")
    if c3.button("Start training", type="primary", icon=":material/play_arrow:", key="tr_start", width="stretch",
                 disabled=bool(clashes), help="Change the settings named above first." if clashes else None):
        with guard("Starting the run"):
            from aigc_core.runs.api import make_config, submit

            config = make_config(model, dataset, preset=None if preset == "Custom" else preset,
                                 model_set=chosen_model, train_set=chosen_train | {"device": device}, actor=actor)
            run = submit(config, name=(name or "").strip() or None, store=get_store(), actor=actor)
            set_current_dataset(dataset)
            set_current_run(run.id)
            st.session_state["tr_run"] = run.id
            st.query_params["run"] = run.id
            st.toast(f"Run {run.id} queued", icon=":material/rocket_launch:")


# ---------------------------------------------------------------------------
# 2. The live section
# ---------------------------------------------------------------------------

def metrics_of(run):
    """The run's metrics, read incrementally: each refresh asks the store only for
    the rows at or after the last step already held (one indexed query)."""
    import pandas as pd

    cache = st.session_state.get("tr_metrics")
    store = get_store()
    if cache and cache[0] == run.id and not cache[1].empty and run.step >= cache[1]["step"].max():
        held = cache[1]
        last = int(held["step"].max())
        frame = pd.concat([held[held["step"] < last], store.metrics(run.id, after_step=last - 1)], ignore_index=True)
    else:
        frame = store.metrics(run.id)
    if not frame.empty:  # a run resumed from an earlier checkpoint logs some steps twice: keep the newest
        frame = frame.sort_values(["step", "wall"], kind="stable").drop_duplicates(["step", "key"], keep="last")
    st.session_state["tr_metrics"] = (run.id, frame)
    return frame


def series_of(frame, key: str, derived: dict):
    """The logged values of ``key``, or of the number it is derived from, scaled."""
    source, factor = derived.get(key, (key, 1.0))
    s = frame[frame["key"] == source]
    return s["step"], s["value"] * factor


def curve_chart(frame, keys: list[str], title: str, smoothing: float, log_y: bool, chart_key: str,
                hline: float | None = None, labels: dict | None = None, derived: dict | None = None,
                best_step: int | None = None) -> bool:
    """A plotly chart of some logged numbers, with EMA smoothing; False when none was logged.

    Held-out numbers (``val_*``, measured on a fixed split, so not noisy) are drawn
    as measured; ``best_step`` marks the best checkpoint with a dotted line and a
    star on the held-out curve."""
    import plotly.graph_objects as go

    fig = go.Figure()
    colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"]
    drawn = False
    nonpositive = False
    for i, key in enumerate(keys):
        steps, values = series_of(frame, key, derived or {})
        if steps.empty:
            continue
        drawn = True
        nonpositive |= bool((values <= 0).any())
        color = colors[i % len(colors)]
        name = (labels or {}).get(key, key)
        every = max(1, len(steps) // 1500)  # keep the browser light on long runs
        held_out = key.startswith("val_")
        if held_out and best_step is not None and (steps == best_step).any():
            fig.add_scatter(x=[best_step], y=[values[steps == best_step].iloc[-1]], mode="markers",
                            name=f"best {name}", marker=dict(symbol="star", size=14, color=color))
        if smoothing > 0 and not held_out:
            fig.add_scatter(x=steps[::every], y=values[::every], mode="lines", name=f"{name} (raw)",
                            line=dict(color=color, width=1), opacity=0.3, showlegend=False)
            values = values.ewm(alpha=1 - smoothing, adjust=False).mean()
        fig.add_scatter(x=steps[::every], y=values[::every], mode="lines+markers" if len(steps) < 30 else "lines",
                        name=name, line=dict(color=color, width=2))
    if not drawn:
        return False
    if hline is not None:
        fig.add_hline(y=hline, line_dash="dash", annotation_text=f"held out: {hline:.3f}")
    if best_step is not None:
        fig.add_vline(x=best_step, line_dash="dot", line_color="#2ca02c",
                      annotation_text=f"best checkpoint: step {best_step}", annotation_position="top left")
    fig.update_layout(title=dict(text=title, x=0, font=dict(size=15)), height=300, margin=dict(t=40, b=10, l=10, r=10),
                      xaxis_title="step", yaxis_type="log" if log_y else "linear",
                      legend=dict(orientation="h", y=-0.25), uirevision=chart_key)
    st.plotly_chart(fig, key=chart_key)
    if log_y and nonpositive:
        st.caption("Values at or below 0 cannot be drawn on a log scale and are left out.")
    return True


def panels_for(spec, keys: set[str]) -> list:
    """The charts this run gets: those its model declares, with the numbers it has logged."""
    panels = []
    for chart in spec.charts:
        present = tuple(k for k in chart.keys if k in keys or spec.derived.get(k, ("",))[0] in keys)
        if present:
            panels.append(chart._replace(keys=present))
    return panels


def labels_of(spec) -> dict:
    from aigc_core.registry import metric_info

    return {k: v["label"] for k, v in metric_info(spec.name).items()}


def best_step_of(run) -> int | None:
    """The step of the run's best checkpoint by held-out loss (None when it has none)."""
    from aigc_core.sample import checkpoints_of

    best = checkpoints_of(run)["best"]
    return best["step"] if best else None


def panel(run, spec, frame, chart, smoothing: float, log_y: bool, best_step: int | None = None) -> None:
    hline = run.final_metrics.get(chart.reference) if chart.reference else None
    held_out = any(k.startswith("val_") for k in chart.keys)
    curve_chart(frame, list(chart.keys), chart.title, smoothing, log_y, f"tr_chart_{chart.title}", hline,
                labels_of(spec), spec.derived, best_step if held_out else None)
    st.caption(chart.why)


def charts_and_film_strip(run, frame) -> None:
    """The main chart beside the film strip, then the model's other charts two to a row."""
    from aigc_core.registry import get_model

    spec = get_model(run.model)
    keys = set(frame["key"]) if not frame.empty else set()
    panels = panels_for(spec, keys)
    best_step = best_step_of(run) if spec.best_by else None
    left, right = st.columns([3, 2])
    with left:
        c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
        smoothing = c1.slider("Smoothing", 0.0, 0.99, 0.6, 0.01, key="tr_smooth",
                              help="Exponential moving average of the logged values: 0 shows them as logged, higher "
                                   "values show the trend (the raw values stay faint behind it).")
        log_y = c2.toggle("Log scale", key="tr_log", help="A logarithmic vertical axis: useful when a loss falls by "
                                                        "orders of magnitude.")
        if panels:
            panel(run, spec, frame, panels[0], smoothing, log_y, best_step)
        else:
            st.caption("No numbers logged yet: the first ones appear after the first logging interval.")
    with right:
        film_strip(run, key="tr_frame")
    for start in range(1, len(panels), 2):
        for col, chart in zip(st.columns(2), panels[start:start + 2]):
            with col:
                panel(run, spec, frame, chart, smoothing, log_y, best_step)
    shown = {k for chart in panels for k in chart.keys}
    shown |= {spec.derived[k][0] for k in shown if k in spec.derived}  # drawn through what is derived from them
    others = sorted(k for k in keys if k not in shown)
    if others:
        labels = labels_of(spec)
        with st.expander("Other logged numbers"):
            key = st.selectbox("Number", others, key="tr_other", format_func=lambda k: labels.get(k, k))
            curve_chart(frame, [key], labels.get(key, key), smoothing, log_y, "tr_chart_other", labels=labels)


def fmt_seconds(s: float) -> str:
    s = max(0.0, s)
    return f"{s:.0f} s" if s < 90 else f"{s / 60:.1f} min" if s < 5400 else f"{s / 3600:.1f} h"


def act(run_id: str, action: str) -> None:
    """Button callback: ask the engine to pause, resume or stop (the worker acts between steps)."""
    from aigc_core.errors import UserError
    from aigc_core.runs.api import resume

    try:
        if action == "resume":
            resume(run_id, store=get_store(), actor=actor)
        else:
            get_store().request(run_id, action, actor=actor)
    except UserError as exc:
        st.session_state["tr_action_error"] = str(exc)


def controls(run) -> None:
    """Pause, Resume and Stop through the engine's control field."""
    c1, c2, c3, _ = st.columns([1, 1, 1, 3])
    pausing = run.control == "pause" and run.status != "paused"
    c1.button("Pause", icon=":material/pause:", key="tr_pause", on_click=act, args=(run.id, "pause"),
              disabled=run.status not in ("starting", "running") or pausing,
              help="Training waits after its current step; the time budget does not run while paused.")
    c2.button("Resume", icon=":material/play_arrow:", key="tr_resume", on_click=act, args=(run.id, "resume"),
              disabled=run.status not in ("paused", "interrupted", "stopped"),
              help="Continue a paused run, or a stopped or interrupted one from its last checkpoint.")
    c3.button("Stop", icon=":material/stop:", key="tr_stop", on_click=act, args=(run.id, "stop"),
              disabled=run.status not in LIVE or run.control == "stop",
              help="End the run now; its last weights are saved and it can be resumed later.")
    if problem := st.session_state.pop("tr_action_error", None):
        st.error(problem, icon=":material/error:")


def status_row(run) -> None:
    from aigc_core.runs.queue import queue_place

    store = get_store()
    c1, c2, c3, c4 = st.columns(4)
    status = run.status
    if run.control == "pause" and run.status != "paused":
        status += " (pausing ...)"
    elif run.control == "stop" and run.status in LIVE:
        status += " (stopping ...)"
    c1.metric("Status", status)
    cpu = run.config.get("train", {}).get("clock") == "cpu"
    c2.metric("Training time (processor)" if cpu else "Training time", fmt_seconds(run.train_seconds),
              help="Processor seconds this run has used, which its time budget counts (time the machine spent on "
                   "other work does not count); pauses do not count." if cpu else
                   "Seconds spent training so far; pauses do not count.")
    total = f" of {run.total_steps:,}" if run.total_steps else ""
    c3.metric("Step", f"{run.step:,}{total}")
    c4.metric(f"Speed ({data_kind(run.data_kind).noun}/s)", f"{run.samples_per_s:,.0f}" if run.samples_per_s else "–",
              help="Training examples (images, characters, rows or points) per second over the last logging interval.")
    if run.status == "queued":
        place = queue_place(store, run.id)
        if place is not None:
            where = "next in the queue" if not place.ahead else f"{place.ahead} run(s) ahead"
            wait = ("" if place.wait_seconds is None else
                    f"; expected to start in about {fmt_seconds(place.wait_seconds)}" if place.wait_seconds else
                    "; starting now")
            st.info(f"Waiting for a free training slot ({where}{wait}). Slots go round-robin between people, so "
                    "everyone's runs take turns and the machine is never overloaded.", icon=":material/hourglass_empty:")
    elif run.status == "paused" and not run.holds_slot:
        st.info(run.message or "Paused; its training slot went back to the queue. Resume puts it back in the queue.",
                icon=":material/pause_circle:")
    text = f"{run.progress:.0%} · {fmt_seconds(run.train_seconds)} of training"
    if run.max_seconds:
        text += f" (budget {fmt_seconds(run.max_seconds)})"
    if run.eta_seconds is not None and run.status == "running":
        text += f" · about {fmt_seconds(run.eta_seconds)} left"
    st.progress(run.progress, text=text)
    if run.status == "running" and run.progress >= 1.0:
        st.info("Training is done; the run is saving its weights and measuring its final numbers (quality scores "
                "can take a minute on a CPU).", icon=":material/hourglass_top:")


def next_steps(run) -> None:
    """What a finished run says: its outcome, what to do next, its final numbers."""
    msg = run.message or ""
    if run.status == "failed":
        if "NaN" in msg or "infinite" in msg:
            from aigc_core.registry import get_model

            hint = get_model(run.model).trainer_cls.nan_hint
            advice = ("The numbers blew up. Choose **Custom** above, lower the learning rate(s) (halve them, or "
                      f"more), and start again (the model's own advice: {hint}).")
        elif "training crashed" in msg:
            advice = ("Something unexpected went wrong. Try again with the Quick preset; if it happens again, "
                      "report this message to the workshop lead.")
        else:
            advice = "Change what the message names (choose **Custom** above for every setting) and start again."
        st.error(f"**The run failed.** {msg or 'No reason was recorded.'}", icon=":material/error:")
        st.markdown(f"**What to do next:** {advice} Your data sets and other runs are not affected.")
    elif run.status == "interrupted":
        st.warning(f"**The run was interrupted.** {msg or 'Its training process stopped.'} Press **Resume** to "
                   "continue from its last checkpoint with the same settings.", icon=":material/warning:")
    elif run.status == "stopped":
        st.info(f"Stopped at step {run.step:,} ({msg or 'by request'}). Press **Resume** to continue training from "
                "its last checkpoint, or open it in the Gallery.", icon=":material/stop_circle:")
    elif run.status == "completed":
        st.success(f"Finished: {run.step:,} steps in {fmt_seconds(run.train_seconds)} on "
                   f"{run.device_name or run.device}." + (f" The run {msg}." if msg and msg.startswith("stopped early")
                                                           else ""), icon=":material/check_circle:")
        best = run.final_metrics.get("best_step")
        if best is not None and int(best) != run.step:
            st.caption(f"Its final numbers are those of its best checkpoint (step {int(best):,}, the lowest held-out "
                       "loss), which the Gallery samples from and the export holds; the last weights are kept too.")
    if run.note:
        st.caption(run.note)
    final_metrics(run)
    if run.status in ("completed", "stopped", "interrupted"):
        st.page_link("pages/gallery.py", label="Make samples with this run in the Gallery",
                     icon=":material/photo_library:", query_params={"run": run.id})
        from pages.loop_sections import finetune_from_run

        with guard("Fine-tune from this run"):
            finetune_from_run(run, key="tr_ft")


def final_metrics(run) -> None:
    from aigc_core.bakeoff import metric_info

    numbers = run.final_metrics
    if not numbers:
        return
    info = metric_info(run.model)

    def order(k: str) -> tuple:
        tier = 0 if k in info and not k.startswith("loss") and k not in ("samples_per_s", "step_time_ms") else \
            1 if k.startswith("val_") else 2 if k.startswith("loss") else 3
        return tier, k

    keys = sorted((k for k, v in numbers.items() if isinstance(v, (int, float))), key=order)
    st.markdown("**Final numbers**")
    per_row = 4
    for start in range(0, len(keys), per_row):
        for col, k in zip(st.columns(per_row), keys[start:start + per_row]):
            entry = info.get(k) or {}
            better = {"lower": " Lower is better.", "higher": " Higher is better."}.get(entry.get("better"), "")
            label = entry.get("label") or k
            how = entry.get("how") or "Logged by the model while it trained (the last logged value)."
            col.metric(label, f"{numbers[k]:.4g}", help=f"`{k}`: {how}{better}")


def live_view(run_id: str, watching_live: bool) -> None:
    """Everything about one run; re-run once a second by the fragment while it is active."""
    from aigc_core.registry import get_model

    store = get_store()
    store.refresh()
    run = store.get(run_id, actor=actor)
    if (run.status in LIVE) != watching_live:
        st.rerun()  # it ended (or was resumed): redraw the whole page, with or without the timer
    st.markdown(f"### {plain(run.name)}")
    device = run.device_name or run.device or ("device chosen when it starts" if run.status in LIVE else "no device used")
    st.caption(f"{run.model} on {plain(run.dataset)} · preset {run.config.get('preset') or 'Custom'} · {device} · "
               f"run id `{run.id}`" + (f" · {run.config['preset_fit']}" if run.config.get("preset_fit") else ""))
    controls(run)
    status_row(run)
    if run.status not in LIVE:
        next_steps(run)
    frame = metrics_of(run)
    if frame.empty and run.status not in LIVE:
        st.caption("This run ended before it logged any numbers, so there are no curves to show.")
    else:
        charts_and_film_strip(run, frame)
    with guard("The explanation"):
        spec = get_model(run.model)
        with st.expander(f"How to read these curves: what {spec.title} is learning", icon=":material/school:"):
            explain(spec, run.config.get("model_config", {}))
            lab_links(run)


def lab_links(run) -> None:
    """The Learn page's labs that match this run (the training doctor for every run, while it trains too)."""
    from aigc_core.learn.lessons import labs_for

    cols = st.columns(3)
    for col, link in zip(cols, labs_for(run)):
        col.page_link("pages/learn.py", label=link["label"], icon=":material/science:",
                      query_params=link["query_params"])


# ---------------------------------------------------------------------------
# 3. All runs
# ---------------------------------------------------------------------------

def pick_from_table(ids: list[str]) -> None:
    rows = st.session_state["tr_table"].selection.rows
    if rows and ids[rows[0]] != st.session_state.get("tr_run"):
        st.session_state["tr_run"] = ids[rows[0]]
        st.session_state["tr_table_picked"] = True


def runs_table(runs=None) -> None:
    """Every run, newest first; re-read every few seconds while one of them is training."""
    import pandas as pd

    runs = runs if runs is not None else get_store().list(actor=actor)

    table = pd.DataFrame([{
        "Name": r.name, "Status": r.status, "Model": r.model, "Data set": r.dataset, "Step": r.step,
        "Progress": round(100 * r.progress), "Created": pd.Timestamp(r.created, unit="s").strftime("%Y-%m-%d %H:%M"),
        "Run id": r.id} for r in runs])
    ids = [r.id for r in runs]
    st.dataframe(table, hide_index=True, key="tr_table", on_select=lambda: pick_from_table(ids),
                 selection_mode="single-row",
                 column_config={"Progress": st.column_config.ProgressColumn("Progress", min_value=0, max_value=100,
                                                                            format="%d%%")})
    st.caption("Newest first. Click a row to watch that run.")
    if st.session_state.pop("tr_table_picked", False):
        st.rerun()  # the table lives in a fragment; the picked run is shown by the whole page


# ---------------------------------------------------------------------------
# The page
# ---------------------------------------------------------------------------

st.subheader("Start a run")
with guard("The training form"):
    link_and_room_preset()
    new_run_form()

st.divider()
st.subheader("Watch a run")
with guard("The run list"):
    from aigc_core.runs.queue import dispatch

    store = get_store()
    dispatch(store)  # start a queued run if a training slot has become free
    runs = store.list(actor=actor)
    ids = [r.id for r in runs]
    url_run = st.query_params.get("run")
    if url_run and url_run not in ids:
        st.warning(f"There is no run {plain(repr(url_run[:60]))} of yours here (it may have been deleted); "
                   "showing another one.",
                   icon=":material/warning:")
    if not runs:
        st.info("No runs yet: start one above.", icon=":material/info:")
    else:
        if st.session_state.get("tr_run") not in ids:
            here = current_run()
            st.session_state["tr_run"] = url_run if url_run in ids else here if here in ids else ids[0]
        by_id = {r.id: r for r in runs}
        run_id = st.selectbox("Run", ids, key="tr_run", format_func=lambda i: run_label(by_id[i]),
                              help="Every run in this workspace, newest first. The run's id is in the page address, "
                                   "so a refresh or a second tab comes back to it.")
        set_current_run(run_id)
        if url_run != run_id:
            st.query_params["run"] = run_id
        active = by_id[run_id].status in LIVE
        st.fragment(live_view, run_every=1.0 if active else None)(run_id, active)
        with st.expander(f"All runs ({len(runs)})", expanded=len(runs) > 1):
            any_live = any(r.status in LIVE for r in runs)
            st.fragment(runs_table, run_every=3.0 if any_live else None)(runs if not any_live else None)
