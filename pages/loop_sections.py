"""Page sections of the closed data loop and human evaluation (issue 12).

Each function draws one section and calls :mod:`aigc_core` for everything it
shows; the Gallery, Train and Compare pages place them:

- :func:`finetune_from_run` (Gallery, Train): start a run from this run's weights;
- :func:`improve_with_ratings` (Gallery): fine-tune on the liked samples, then
  before and after side by side with the preference model's figures;
- :func:`real_or_generated` (Gallery): a round of 20, scored and pooled;
- :func:`augmentation_headline` (Gallery, table runs): the augmentation study;
- :func:`human_scores_table` (Compare): thumbs up and fooling rate per run.
"""

from __future__ import annotations

import streamlit as st

from pages.common import current_actor, get_store, guard, set_current_run


def _pct(x) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


# ---- fine-tune from a run ------------------------------------------------------------------

def finetune_from_run(run, key: str = "ft") -> None:
    """Start a new run from this run's latest weights, on a data set of the same kind."""
    from aigc_core.data.catalog import list_datasets

    names = [d.name for d in list_datasets() if d.kind == run.data_kind]
    with st.expander("Fine-tune from this run", icon=":material/call_split:"):
        st.caption("Starts a new run from this run's latest weights with the same model settings: pre-train, "
                   "then fine-tune. On a new data set the network keeps its shape (same image size, the same "
                   "characters, the same columns).")
        dataset = st.selectbox("Data set", names, index=names.index(run.dataset) if run.dataset in names else 0,
                               key=f"{key}_dataset")
        seconds = st.number_input("Time budget (seconds)", 5, 3600, 60, 5, key=f"{key}_seconds")
        if st.button("Start the fine-tune", key=f"{key}_start", icon=":material/play_arrow:"):
            with guard("Starting the fine-tune"):
                from aigc_core.improve import finetune_config
                from aigc_core.runs.api import submit

                config = finetune_config(run.id, dataset, train_set={"max_seconds": float(seconds), "steps": 0},
                                         store=get_store())
                child = submit(config, name=f"{run.name} (fine-tuned on {dataset})", store=get_store())
                set_current_run(child.id)
                st.success(f"Started {child.name} ({child.id}); it is {child.status}.")


# ---- improve with my ratings ---------------------------------------------------------------

def _improve_children(run) -> list:
    return [r for r in get_store().list() if r.config.get("parent_run") == run.id and r.config.get("improve")]


def improve_with_ratings(run, key: str = "imp") -> None:
    """Fine-tune on the liked samples; then before and after from the same seeds."""
    from aigc_core.data_loop import rating_counts

    st.subheader("Improve with my ratings")
    counts = rating_counts(run.id, store=get_store())
    st.caption(f"{counts['up']} liked and {counts['down']} not liked so far. The run is fine-tuned on the liked "
               "samples mixed with its data; then fresh samples from the same seeds are compared before and after.")
    share = st.slider("Liked samples' share of the fine-tune data", 0.1, 0.9, 0.5, 0.05, key=f"{key}_share")
    seconds = st.number_input("Fine-tune for (seconds)", 5, 3600, 60, 5, key=f"{key}_seconds")
    with guard("Planning the fine-tune data"):
        from aigc_core.improve import plan_mix

        st.caption(plan_mix(run.id, share, get_store()).describe())
    if st.button("Improve with my ratings", key=f"{key}_go", type="primary", icon=":material/auto_fix_high:"):
        with guard("Starting the fine-tune"):
            from aigc_core.improve import start_improve

            child = start_improve(run.id, max_seconds=float(seconds), liked_share=share, store=get_store())
            st.success(f"Fine-tuning as {child.name} ({child.id}); come back here when it has finished.")
    children = _improve_children(run)
    if children:
        _before_and_after(children[0], key)


def _before_and_after(child, key: str) -> None:
    from aigc_core.improve import improve_report, measure_improvement

    st.markdown(f"**Latest improvement:** {child.name} · {child.status} · step {child.step}")
    if child.status in ("queued", "starting", "running", "paused"):
        st.progress(child.progress, text="fine-tuning ...")
        st.button("Refresh", key=f"{key}_refresh")
        return
    report = improve_report(child.id, store=get_store())
    if report is None:
        if st.button("Compare before and after", key=f"{key}_measure"):
            with guard("Comparing before and after"):
                report = measure_improvement(child.id, store=get_store()).to_dict()
    if report is None:
        return
    before, after = st.columns(2)
    before.metric("Expected to be liked, before", _pct(report["preference_before"]))
    delta = None if report["preference_after"] is None or report["preference_before"] is None else \
        f"{100 * (report['preference_after'] - report['preference_before']):+.1f} points"
    after.metric("Expected to be liked, after", _pct(report["preference_after"]), delta=delta)
    st.caption(report["preference_note"] + f". {report['compared']} fresh samples from the same seeds each side.")
    if report.get("before_file"):
        left, right = st.columns(2)
        left.image(str(child.folder / report["before_file"]), caption="before", width="stretch")
        right.image(str(child.folder / report["after_file"]), caption="after", width="stretch")
    if report.get("before_text"):
        left, right = st.columns(2)
        left.text("\n\n".join(report["before_text"]))
        right.text("\n\n".join(report["after_text"]))
    if report.get("class_shares_before"):
        import pandas as pd

        shares = pd.DataFrame({"before": report["class_shares_before"], "after": report["class_shares_after"]})
        st.caption("Share of fresh samples the data set's classifier reads as each class")
        st.bar_chart(shares, stack=False)
    st.caption(report["mix"])


# ---- real or generated? ------------------------------------------------------------------

def real_or_generated(run, player: str = "local", key: str = "rog") -> None:
    """A round of 20: half real, half generated; mark each, then see the score."""
    from aigc_core.human_eval import GENERATED, REAL, fooling_rate, make_round, submit_round

    st.subheader("Real or generated?")
    st.caption("Ten of these come from the data, ten from the model, in random order. Mark each one; the share of "
               "generated samples taken for real, over everybody who played, is this run's fooling rate.")
    from aigc_core.room.identity import workshop_mode

    if workshop_mode():  # in a room, you play as who joined: one name cannot be typed to look like many players
        player = current_actor().name
    else:
        player = st.text_input("Your name", player, key=f"{key}_player", max_chars=80,
                               help="Everybody's answers count towards the run's score; the name keeps yours apart.")
    state = st.session_state.setdefault(f"{key}_round", {})
    if st.button("New round", key=f"{key}_new", icon=":material/casino:"):
        with guard("Starting a round"):
            state[run.id] = make_round(run.id, player=player, store=get_store())
            st.session_state.pop(f"{key}_result", None)
    round_ = state.get(run.id)
    if round_ is not None:
        with st.form(f"{key}_form"):
            columns = st.columns(5)
            for item in round_.items:
                with columns[item.position % 5]:
                    if item.kind == "image":
                        st.image(item.content.permute(1, 2, 0).squeeze(-1).numpy(), clamp=True,
                                 width="stretch")
                    elif item.kind == "text":
                        st.text(item.content)
                    else:
                        st.dataframe([item.content], hide_index=True)
                    st.radio(f"#{item.position + 1}", (REAL, GENERATED), index=None, horizontal=True,
                             key=f"{key}_a{item.position}")
            if st.form_submit_button("Submit my answers"):
                with guard("Scoring the round"):
                    answers = [st.session_state.get(f"{key}_a{i}") for i in range(len(round_.items))]
                    st.session_state[f"{key}_result"] = submit_round(round_.id, answers, store=get_store())
                    state.pop(run.id, None)
    result = st.session_state.get(f"{key}_result")
    if result:
        st.success(f"You got {result['right']} of {result['items']} right; {result['fooled']} of "
                   f"{result['generated']} generated samples fooled you.")
    score = fooling_rate(run.id, store=get_store())
    if score:
        st.metric("Fooling rate (everybody)", _pct(score["fooling_rate"]))
        st.caption(f"95% interval {_pct(score['fooling_rate_low'])} to {_pct(score['fooling_rate_high'])}, from "
                   f"{int(score['fooling_judged'])} generated samples judged by {int(score['fooling_players'])} "
                   "player(s); about 50% means people could not tell.")


# ---- the augmentation study ---------------------------------------------------------------

def augmentation_headline(run) -> None:
    """The study's table from the run's stored numbers (table runs with a label)."""
    from aigc_core.metrics.augmentation import headline

    table = headline(run.final_metrics, run.dataset)
    if table is None:
        return
    st.subheader("Do the synthetic rows help a model?")
    st.write(table["task"])
    st.dataframe(table["rows"], hide_index=True, column_config={
        m: st.column_config.NumberColumn(m.capitalize() if m != "f1" else "F1", format="%.3f")
        for m in ("accuracy", "precision", "recall", "f1")})
    st.caption(table["note"])


# ---- Compare: human scores ----------------------------------------------------------------

def human_scores_table(runs) -> None:
    """Thumbs up and fooling rate per run, each with its count and interval."""
    from aigc_core.human_eval import human_scores

    rows = []
    for run in runs:
        s = human_scores(run.id, store=get_store())
        rows.append({
            "run": run.name,
            "thumbs up": s.get("human_like_share"), "ratings": int(s.get("human_ratings", 0)),
            "fooling rate": s.get("fooling_rate"),
            "95% interval": (f"{_pct(s['fooling_rate_low'])} – {_pct(s['fooling_rate_high'])}"
                             if "fooling_rate" in s else "–"),
            "generated judged": int(s.get("fooling_judged", 0)),
        })
    st.subheader("What people thought")
    st.dataframe(rows, hide_index=True, column_config={
        "thumbs up": st.column_config.NumberColumn(format="percent"),
        "fooling rate": st.column_config.NumberColumn(format="percent")})
    st.caption("Thumbs up: share of the samples people rated that they liked (rule ratings left out). Fooling rate: "
               "share of generated samples taken for real in 'Real or generated?' rounds, over everybody who played.")
