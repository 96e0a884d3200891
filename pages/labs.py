"""The live labs and the training doctor as page pieces (not a page itself).

The Learn page places them in lessons; any page can show one on its own
(``doctor_panel(run_id)`` beside a run on Train, or a link to
``pages/learn.py`` with ``?lab=gan2d``). All the work happens in
:mod:`aigc_core.learn`; this module only lays out widgets.
"""

from __future__ import annotations

import streamlit as st
import streamlit.components.v1 as components

from pages.common import current_actor, film_strip, get_store, guard, sampling_trainer, status_label

LR_CHOICES = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
STEPS_PER_FRAME = 5
FRAMES_PER_BATCH = 12  # frames computed per server round trip while playing
SHOWN_FPS = 8  # frames the browser shows per second
PLAYER_SIDE = 480


# ---- runs started from a lesson ----------------------------------------------------------------

def visible_run(run_id: str):
    """The run if it exists and this browser's person may see it (their own, or published), else None."""
    from aigc_core.errors import UserError

    try:  # an unknown run and someone else's are both refused by the store's one read
        return get_store().get(run_id, actor=current_actor())
    except UserError:
        return None


def run_status(run_id: str, chart: list[str] | None = None, key: str = "run") -> None:
    """Progress, a chart of the chosen logged numbers and the film strip of one run;
    refreshes itself every two seconds while the run is queued or training."""
    store = get_store()
    first = visible_run(run_id)
    if first is None:
        st.info("That run was deleted; train it again.")
        return
    active = first.status in ("queued", "starting", "running", "paused")

    def body() -> None:
        run = visible_run(run_id)
        if run is None:
            st.info("That run was deleted; train it again.")
            return
        st.progress(run.progress, text=f"{status_label(run)} · step {run.step} · {run.train_seconds:.0f} s · "
                                       f"{run.name}")
        if run.status == "failed":
            st.error(run.message or "the run failed")
        frame = store.metrics(run_id)
        if not frame.empty:
            import plotly.express as px

            keys = [k for k in (chart or []) if k in set(frame["key"])] or \
                [k for k in frame["key"].unique() if str(k).startswith("loss")][:3]
            shown = frame[frame["key"].isin(keys)]
            if not shown.empty:
                fig = px.line(shown, x="step", y="value", color="key", height=260)
                fig.update_layout(margin=dict(l=10, r=10, t=10, b=10), legend_title_text="")
                st.plotly_chart(fig, key=f"{key}_chart_{run_id}")
        film_strip(run, key=f"{key}_film")
        if run.status in ("completed", "stopped", "failed", "interrupted") and active:
            st.rerun()  # leave the refreshing fragment once the run has ended

    st.fragment(body, run_every=2.0 if active else None)()


# ---- the training doctor ------------------------------------------------------------------------

def doctor_panel(run_id: str, key: str = "doctor", on_fix=None) -> None:
    """The doctor's findings on a run, each with a button that trains the fix
    (the new run's config names its parent in ``parent_run``)."""
    store = get_store()
    run = visible_run(run_id)
    if run is None:
        st.info("That run was deleted, or it is not yours to see.")
        return
    active = run.status in ("queued", "starting", "running", "paused")
    # while the run trains, the doctor reads its numbers again every few seconds
    st.fragment(lambda: _doctor_body(run_id, key, on_fix, store), run_every=5.0 if active else None)()


def _doctor_body(run_id: str, key: str, on_fix, store) -> None:
    from aigc_core.learn.doctor import apply_fix, diagnose_run

    with guard("The training doctor"):
        report = diagnose_run(run_id, store=store, actor=current_actor())
        if not report["findings"]:
            st.info(f"Too early to judge: the run has logged only a few steps (step {report['step']}).")
            return
        for i, f in enumerate(report["findings"]):
            since = f" since step {f['since_step']}" if f["since_step"] is not None else ""
            box = st.success if f["code"] == "healthy" else st.warning
            box(f"**{f['code']}**{since}: {f['what']}\n\n*Why:* {f['why']}",
                icon=":material/check_circle:" if f["code"] == "healthy" else ":material/stethoscope:")
            if f["fix"]:
                if st.button(f"Try the fix: {f['fix']['label']}", key=f"{key}_fix_{run_id}_{f['code']}"):
                    child = apply_fix(run_id, f["code"], store=store, actor=current_actor())
                    if on_fix:
                        on_fix(child)
                    st.success(f"Started {child.name} ({child.id}); it links back to this run.")


# ---- the 2-D GAN lab -----------------------------------------------------------------------------

def gan_lab(key: str = "gan2d", dataset: str = "ring8", loss: str = "nonsaturating", seed: int = 0) -> None:
    from aigc_core.learn.gan_lab import DATASETS, LOSSES, GanLab, frame_data, lab_figure

    c = st.columns(4)
    # an uploaded point set opens the lab on the ring: the lab has the four built-in sets only
    dataset = c[0].selectbox("Points", DATASETS, index=DATASETS.index(dataset) if dataset in DATASETS else 0,
                             key=f"{key}_data")
    loss = c[1].selectbox("Loss", LOSSES, index=LOSSES.index(loss), key=f"{key}_loss",
                          help="non-saturating: the original GAN; wgan_gp: a Wasserstein critic with a gradient "
                               "penalty; hinge: a margin loss.")
    seed = int(c[2].number_input("Noise seed", 0, 9999, seed, key=f"{key}_seed"))
    d_steps = int(c[3].number_input("D steps per G step", 1, 10, 1, key=f"{key}_dsteps"))
    c = st.columns(3)
    lr_d = c[0].select_slider("D's learning rate", LR_CHOICES, value=1e-3, key=f"{key}_lrd")
    lr_g = c[1].select_slider("G's learning rate", LR_CHOICES, value=1e-3, key=f"{key}_lrg")
    train = c[2].radio("Train", ("both", "d", "g"), horizontal=True, key=f"{key}_train",
                       format_func={"both": "both", "d": "D only", "g": "G only"}.get)

    state_key = f"{key}_lab"
    wanted = (dataset, loss, seed)
    if st.session_state.get(f"{state_key}_for") != wanted:
        st.session_state[state_key] = GanLab(dataset=dataset, loss=loss, seed=seed)
        st.session_state[f"{state_key}_for"] = wanted
    lab = st.session_state[state_key]
    lab.set_learning_rates(lr_g, lr_d)
    lab.d_steps = d_steps

    b = st.columns(4)
    playing = st.session_state.get(f"{key}_playing", False)

    def toggle() -> None:
        st.session_state[f"{key}_playing"] = not st.session_state.get(f"{key}_playing", False)

    b[0].button("Pause" if playing else "Play", key=f"{key}_play", on_click=toggle,
                icon=":material/pause:" if playing else ":material/play_arrow:")
    if b[1].button("One step", key=f"{key}_one"):
        lab.step(train)
    if b[2].button("Reset", key=f"{key}_reset"):
        st.session_state[state_key] = lab = GanLab(dataset=dataset, loss=loss, seed=seed)
    show = b[3].popover("Show")
    layers = dict(show_heat=show.checkbox("D's heat map", True, key=f"{key}_heat"),
                  show_manifold=show.checkbox("G's manifold", True, key=f"{key}_manifold"),
                  show_arrows=show.checkbox("Gradient arrows", True, key=f"{key}_arrows"))

    def picture() -> None:
        if st.session_state.get(f"{key}_playing"):
            # The server computes a batch of frames as numbers and the browser draws and plays them:
            # a server round trip per frame, or a picture drawn on the server, was several times slower.
            frames = []
            for _ in range(FRAMES_PER_BATCH):
                lab.step(train, STEPS_PER_FRAME)
                frames.append(frame_data(lab.frame(), PLAYER_SIDE))
            real = frame_data_real(lab, PLAYER_SIDE)
            components.html(_player_html(real, frames, layers), height=PLAYER_SIDE + 40)
        else:
            st.plotly_chart(lab_figure(lab.frame(), **layers), key=f"{key}_figure", config={"displayModeBar": False})

    # ask for the next batch a little before this one has played, so the round trip does not show as a pause
    st.fragment(picture, run_every=0.75 * FRAMES_PER_BATCH / SHOWN_FPS if playing else None)()


def frame_data_real(lab, side: int) -> list[int]:
    from aigc_core.learn.gan_lab import _pixels

    return _pixels(lab.shown_real.numpy(), side)


def _player_html(real: list[int], frames: list[dict], layers: dict) -> str:
    """A canvas that draws the frames one after another at SHOWN_FPS and stays on the last."""
    import json

    return f"""<div style="font:13px sans-serif;color:#444">
<canvas id="lab" width="{PLAYER_SIDE}" height="{PLAYER_SIDE}"></canvas><div id="caption"></div></div>
<script>
const real = {json.dumps(real)}, frames = {json.dumps(frames)}, show = {json.dumps(layers)};
const side = {PLAYER_SIDE}, ctx = document.getElementById("lab").getContext("2d");
function colour(v) {{  // blue (D says fake) - white - red (D says real), faded towards white
  const t = v / 255, b = [33, 102, 172], w = [247, 247, 247], r = [178, 24, 43];
  const [lo, hi, u] = t < 0.5 ? [b, w, t / 0.5] : [w, r, (t - 0.5) / 0.5];
  const c = lo.map((x, k) => Math.round(0.65 * (x + (hi[k] - x) * u) + 0.35 * 255));
  return `rgb(${{c[0]}},${{c[1]}},${{c[2]}})`;
}}
function dots(xy, r, fill) {{
  ctx.fillStyle = fill;
  for (let k = 0; k < xy.length; k += 2) ctx.fillRect(xy[k] - r, xy[k + 1] - r, 2 * r + 1, 2 * r + 1);
}}
let i = 0;
function draw() {{
  const f = frames[i];
  ctx.fillStyle = "white"; ctx.fillRect(0, 0, side, side);
  if (show.show_heat) {{
    const k = Math.round(Math.sqrt(f.heat.length)), cell = side / k;
    for (let row = 0; row < k; row++) for (let col = 0; col < k; col++) {{
      ctx.fillStyle = colour(f.heat[row * k + col]);
      ctx.fillRect(col * cell, row * cell, cell + 1, cell + 1);
    }}
  }}
  if (show.show_manifold) {{
    ctx.strokeStyle = "rgba(120,60,160,0.5)"; ctx.lineWidth = 1;
    for (const line of f.lines) {{
      ctx.beginPath(); ctx.moveTo(line[0], line[1]);
      for (let k = 2; k < line.length; k += 2) ctx.lineTo(line[k], line[k + 1]);
      ctx.stroke();
    }}
  }}
  dots(real, 1, "rgb(60,60,60)");
  if (show.show_arrows) {{
    ctx.strokeStyle = "rgba(230,110,20,0.85)"; ctx.beginPath();
    for (let k = 0; k < f.fake.length; k += 2) {{ ctx.moveTo(f.fake[k], f.fake[k + 1]); ctx.lineTo(f.tips[k], f.tips[k + 1]); }}
    ctx.stroke();
  }}
  dots(f.fake, 2, "rgb(230,110,20)");
  document.getElementById("caption").textContent =
    `step ${{f.step}} · D loss ${{f.loss_d.toFixed(3)}} · G loss ${{f.loss_g.toFixed(3)}} · red: D says real, blue: D says fake`;
  if (++i < frames.length) setTimeout(draw, {1000 / SHOWN_FPS:.0f});
}}
draw();
</script>"""


# ---- the VAE latent lab --------------------------------------------------------------------------

def latent_lab(key: str = "latent", beta: float = 1.0) -> None:
    import numpy as np
    import plotly.graph_objects as go

    from aigc_core.learn.latent_lab import PLANE, SHIPPED_BETAS, latent_vae

    choices = list(SHIPPED_BETAS) + ["another (trains for 30 s)"]
    c = st.columns([2, 1])
    picked = c[0].select_slider("beta", choices, value=float(beta) if float(beta) in SHIPPED_BETAS else 1.0,
                                key=f"{key}_beta",
                                help="The weight of the KL term: small = sharper images, a lumpier plane; "
                                     "large = blurrier images, a smoother plane packed around the origin.")
    if picked == choices[-1]:
        picked = float(c[1].number_input("Your beta", 0.0, 20.0, 2.0, 0.5, key=f"{key}_own"))
    with st.spinner(f"Loading the beta = {picked:g} model (training one takes about 30 s) ..."):
        vae = latent_vae(float(picked))
    points, digits = vae.encode_held_out(1000)

    clicks = st.session_state.setdefault(f"{key}_clicks", [])
    fig = go.Figure()
    # an invisible grid of pickable points, so a click anywhere on the plane selects a code
    axis = np.linspace(-PLANE, PLANE, 41)
    gx, gy = np.meshgrid(axis, axis)
    fig.add_trace(go.Scatter(x=gx.ravel(), y=gy.ravel(), mode="markers", marker=dict(size=9, opacity=0.0),
                             hoverinfo="none", showlegend=False, name="plane"))
    for d in range(10):
        sel = digits == d
        fig.add_trace(go.Scatter(x=points[sel, 0], y=points[sel, 1], mode="markers", name=str(d),
                                 marker=dict(size=4), hovertemplate=f"digit {d}<extra></extra>"))
    if clicks:
        path = np.array(clicks[-2:])
        fig.add_trace(go.Scatter(x=path[:, 0], y=path[:, 1], mode="lines+markers", name="your path",
                                 marker=dict(size=10, color="black", symbol="x"), line=dict(color="black")))
    fig.update_layout(height=460, margin=dict(l=10, r=10, t=10, b=10), clickmode="event+select",
                      legend=dict(title="digit"))
    fig.update_xaxes(range=[-PLANE, PLANE], title="z1")
    fig.update_yaxes(range=[-PLANE, PLANE], scaleanchor="x", title="z2")
    left, right = st.columns(2)
    with left:
        event = st.plotly_chart(fig, key=f"{key}_plane", on_select="rerun", selection_mode="points",
                                config={"displayModeBar": False})
        picked_points = [p for p in (event.selection.points if event else []) if p.get("curve_number") == 0]
        if picked_points:
            z = (float(picked_points[0]["x"]), float(picked_points[0]["y"]))
            if not clicks or clicks[-1] != z:
                clicks.append(z)
        st.caption("Click the plane to decode that point; two clicks make a path to walk along.")
        n = st.columns(2)
        z1 = n[0].number_input("z1", -PLANE, PLANE, clicks[-1][0] if clicks else 0.0, 0.25, key=f"{key}_z1")
        z2 = n[1].number_input("z2", -PLANE, PLANE, clicks[-1][1] if clicks else 0.0, 0.25, key=f"{key}_z2")
    with right:
        st.image(vae.decode_grid(15), caption="The decoder over the plane, z1 left to right, z2 bottom to top",
                 clamp=True, width="stretch")
    st.image(vae.decode_point(z1, z2), caption=f"decoded at z = ({z1:.2f}, {z2:.2f})", width=112, clamp=True)
    if len(clicks) >= 2:
        walk = vae.walk(clicks[-2], clicks[-1], 10)
        st.image(np.concatenate(list(walk), axis=1), clamp=True, width="stretch",
                 caption=f"The walk from ({clicks[-2][0]:.2f}, {clicks[-2][1]:.2f}) to "
                         f"({clicks[-1][0]:.2f}, {clicks[-1][1]:.2f})")


# ---- labs on a run -------------------------------------------------------------------------------

def attention_lab(run_id: str, key: str, prompt: str = "") -> None:
    import plotly.graph_objects as go

    with guard("The attention map"):
        if visible_run(run_id) is None:
            st.info("That run was deleted, or it is not yours to see.")
            return
        trainer, _ = sampling_trainer(run_id)
        prompt = st.text_input("Prompt", prompt, key=f"{key}_prompt", max_chars=64)
        maps = trainer.attention_maps(prompt)  # (layers, heads, T, T)
        labels = [t if t.strip() else "␣" for t in trainer.context_labels(prompt)]
        layers, heads, T, _ = maps.shape
        c = st.columns(2)
        layer = c[0].selectbox("Layer", range(layers), format_func=lambda i: f"layer {i + 1}", key=f"{key}_layer")
        head = c[1].selectbox("Head", range(heads + 1), key=f"{key}_head",
                              format_func=lambda i: "mean of all heads" if i == 0 else f"head {i}")
        z = maps[layer].mean(0) if head == 0 else maps[layer, head - 1]
        pos = list(range(T))
        fig = go.Figure(go.Heatmap(z=z.numpy(), x=pos, y=pos, colorscale="Blues", zmin=0, zmax=1,
                                   hovertemplate="reading %{y} -> looking at %{x}: %{z:.2f}<extra></extra>"))
        fig.update_xaxes(tickvals=pos, ticktext=labels, side="top")
        fig.update_yaxes(tickvals=pos, ticktext=labels, autorange="reversed")
        fig.update_layout(height=min(800, 200 + 18 * T), margin=dict(l=10, r=10, t=40, b=10))
        st.plotly_chart(fig, key=f"{key}_map", config={"displayModeBar": False})


def sample_lab(run_id: str, key: str, prompt: str = "") -> None:
    with guard("Sampling"):
        if visible_run(run_id) is None:
            st.info("That run was deleted, or it is not yours to see.")
            return
        trainer, _ = sampling_trainer(run_id)
        c = st.columns(3)
        temperature = c[0].slider("Temperature", 0.1, 2.0, 1.0, 0.1, key=f"{key}_t")
        top_k = c[1].slider("Top-k (0 = off)", 0, 40, 0, key=f"{key}_k")
        seed = int(c[2].number_input("Seed", 0, 9999, 0, key=f"{key}_seed"))
        prompt = st.text_input("Start with", prompt, key=f"{key}_prompt", max_chars=64)
        for text in trainer.sample(3, seed, prompt=prompt, length=150, temperature=temperature, top_k=top_k):
            st.code(text, language=None, wrap_lines=True)


def metrics_lab(run_id: str, keys: list[str]) -> None:
    import pandas as pd

    from aigc_core.registry import metric_info

    run = get_store().get(run_id, actor=current_actor())
    METRIC_INFO = metric_info(run.model)  # noqa: N806 - the model's own words first, then the shared table
    final = run.final_metrics
    if run.status != "completed" or not final:
        st.info("The numbers appear when the run has finished.")
        return
    rows = [{"number": METRIC_INFO.get(k, {}).get("label", k), "value": final[k],
             "better": METRIC_INFO.get(k, {}).get("better") or "", "how it is computed": METRIC_INFO.get(k, {}).get("how", "")}
            for k in (keys or sorted(final)) if k in final]
    missing = [k for k in keys if k not in final]
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    if missing:
        st.caption(f"Not computed for this run: {', '.join(missing)} (a short run skips the feature-net scores).")


def real_or_fake_lab(run_id: str, key: str, rounds: int = 10) -> None:
    from aigc_core.imaging import grid_image, png_bytes, upscale

    state = st.session_state.setdefault(f"{key}_round", {"run": None})
    with guard("The real-or-generated round"):
        if state["run"] != run_id or st.button("New round", key=f"{key}_new"):
            from aigc_core.learn.human_round import real_or_fake_round

            images, is_real = real_or_fake_round(run_id, n=rounds, seed=int(st.session_state.get(f"{key}_n", 0)),
                                                 actor=current_actor())
            st.session_state[f"{key}_n"] = int(st.session_state.get(f"{key}_n", 0)) + 1
            state.update(run=run_id, images=images, is_real=is_real, guesses=[])
        i = len(state["guesses"])
        if i < len(state["is_real"]):
            st.image(png_bytes(upscale(grid_image(state["images"][i:i + 1], nrow=1), 168)),
                     caption=f"Image {i + 1} of {len(state['is_real'])}")
            c = st.columns(2)
            if c[0].button("Real", key=f"{key}_real_{i}"):
                state["guesses"].append(True)
                st.rerun()
            if c[1].button("Generated", key=f"{key}_fake_{i}"):
                state["guesses"].append(False)
                st.rerun()
        else:
            right = sum(g == r for g, r in zip(state["guesses"], state["is_real"]))
            st.metric("You were right", f"{right} of {len(state['is_real'])}",
                      help="50% is what guessing gives: the closer you are to it, the better the samples.")
