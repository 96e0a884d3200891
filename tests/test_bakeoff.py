"""Bake-off: several models on the same data, budget and seed, then a report
(leaderboard, curves, samples) that exports as one self-contained HTML file."""

from __future__ import annotations

import base64
import functools
import html
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from aigc_core import bakeoff
from aigc_core.data.base import ImageData
from aigc_core.data.catalog import save_uploaded
from aigc_core.errors import UserError
from aigc_core.runs.queue import claim
from aigc_core.runs.store import RunStore
from aigc_core.train.loop import train_run
from tests import tiny_runs
from tests.tiny_runs import open_page, tiny_images, tiny_lines

REPO = Path(__file__).resolve().parent.parent


def train_here(b: bakeoff.Bakeoff) -> None:
    """Train a bake-off's queued runs in this process, one after another (as the
    one-slot queue would), instead of waiting for worker processes."""
    store = RunStore()
    for run_id in b.run_ids:
        assert claim(store, run_id) == [run_id]
        train_run(run_id, store)


wait_for = functools.partial(tiny_runs.wait_for, timeout=120.0, every=0.3)


def linked_urls(page: str) -> list[str]:
    """Everything the page would fetch: src/href attributes and CSS url()s that are not data: URIs."""
    found = re.findall(r"""(?:src|href)\s*=\s*["']?([^"'\s>]+)""", page) + re.findall(r"url\(([^)]*)\)", page)
    return [u for u in found if not u.strip("'\"").startswith("data:")]


# ---- starting -----------------------------------------------------------------------

def test_every_run_gets_the_same_data_time_budget_and_seed(fresh_home):
    b = bakeoff.start_bakeoff("tiny_points", ["tiny_line", "toy_gan"], 2, seed=7, start=False)
    runs = b.runs()
    assert [r.model for r in runs] == ["tiny_line", "toy_gan"]
    for r in runs:
        assert r.status == "queued" and r.dataset == "tiny_points"
        assert r.config["train"]["max_seconds"] == 2.0
        assert r.config["train"]["steps"] == 0  # no step limit: the clock alone ends each run
        assert r.config["train"]["seed"] == 7
    # the model's own Quick settings are used (toy_gan's hinge loss), the budget is not the preset's
    assert runs[1].config["model_config"]["loss"] == "hinge"
    assert [x.id for x in bakeoff.list_bakeoffs()] == [b.id]
    assert bakeoff.load_bakeoff(b.id) == b


@pytest.mark.parametrize("models, words", [
    (["tiny_line", "no_such_model"], "no_such_model"),
    (["tiny_line", "dcgan"], "image data"),
    (["tiny_line"], "at least 2 models"),
    (["tiny_line", "tiny_line"], "listed twice"),
])
def test_unknown_unfit_or_too_few_models_are_refused_before_anything_is_queued(fresh_home, models, words):
    with pytest.raises(UserError, match=words):
        bakeoff.start_bakeoff("tiny_points", models, 2)
    assert RunStore().list() == [] and bakeoff.list_bakeoffs() == []


def test_a_model_that_cannot_take_the_image_size_is_refused_with_its_reason(fresh_home):
    save_uploaded(ImageData("odd_size", torch.zeros(8, 1, 20, 20, dtype=torch.uint8)))
    with pytest.raises(UserError, match="nothing was queued.*28, 32 or 64 pixel"):
        bakeoff.start_bakeoff("odd_size", ["mlp_gan", "dcgan"], 2)
    assert RunStore().list() == []


def test_a_bakeoff_needs_a_time_budget(fresh_home):
    with pytest.raises(UserError, match="time budget"):
        bakeoff.start_bakeoff("tiny_points", ["tiny_line", "toy_gan"], 0)


# ---- the leaderboard ------------------------------------------------------------------

INFO = {"fid": {"label": "FID", "better": "lower", "how": "distance between feature statistics"},
        "precision": {"label": "Precision", "better": "higher", "how": "share of samples on the real manifold"},
        "d_real": {"label": "D(real)", "better": None, "how": "the critic's score"}}


def test_best_value_is_the_lowest_or_highest_as_the_metric_says_and_ranks_the_board():
    numbers = {"gan": {"fid": 40.0, "precision": 0.8, "d_real": 1.0},
               "vae": {"fid": 25.0, "precision": 0.6, "d_real": 3.0},
               "ae": {"fid": 90.0, "precision": 0.7}}
    board = bakeoff.leaderboard(numbers, INFO)
    best = {c["key"]: c["best"] for c in board["columns"]}
    assert best == {"fid": ["vae"], "precision": ["gan"], "d_real": []}
    assert board["ranked_by"] == "fid" and board["order"] == ["vae", "gan", "ae"]


def test_no_best_is_marked_when_values_tie_or_only_one_run_has_a_number():
    assert bakeoff.best_runs({"a": 1.0, "b": 1.0}, "lower") == []
    assert bakeoff.best_runs({"a": 1.0, "b": None}, "higher") == []
    assert bakeoff.best_runs({"a": 2.0, "b": float("nan"), "c": 3.0}, "higher") == ["c"]
    assert bakeoff.best_runs({"a": 2.0, "b": 2.0, "c": 3.0}, "lower") == ["a", "b"]


@pytest.fixture(scope="module")
def points_report(tmp_path_factory):
    """A finished two-model bake-off on 2-D points (trained here in about 6 s; 3 s each so even a busy machine logs a curve of several points)."""
    old = os.environ["AIGC_HOME"]
    os.environ["AIGC_HOME"] = str(tmp_path_factory.mktemp("bakeoff_home"))
    try:
        b = bakeoff.start_bakeoff("tiny_points", ["tiny_line", "toy_gan"], 3.0, start=False)
        train_here(b)
        yield bakeoff.bakeoff_report(b.id)
    finally:
        os.environ["AIGC_HOME"] = old


def test_report_marks_the_real_best_of_every_metric_with_a_direction(points_report):
    by_run = {e["run_id"]: e["values"] for e in points_report["runs"]}
    checked = 0
    for col in points_report["columns"]:
        values = {rid: v[col["key"]] for rid, v in by_run.items() if col["key"] in v}
        if col["better"] not in ("lower", "higher") or len(values) < 2 or len(set(values.values())) < 2:
            assert col["best"] == []  # no direction, one number, or a tie: nothing is starred
            continue
        top = (min if col["better"] == "lower" else max)(values.values())
        assert col["best"] == [rid for rid, v in values.items() if v == top], col
        checked += 1
    assert checked >= 2  # at least samples_per_s (higher) and step_time_ms (lower)
    assert {c["key"] for c in points_report["columns"]} >= {"samples_per_s", "step_time_ms", "steps_trained"}
    assert all(e["status"] == "completed" and abs(e["train_seconds"] - 3.0) < 0.5 for e in points_report["runs"])


def test_report_has_curves_and_a_sample_plot_per_model(points_report):
    run_ids = {e["run_id"] for e in points_report["runs"]}
    assert set(points_report["curves"]["samples_per_s"]) == run_ids
    assert set(points_report["samples"]) == run_ids
    assert all(s["kind"] == "points" and s["svg"].startswith("<svg") for s in points_report["samples"].values())
    json.dumps(points_report)  # plain data all the way down


def test_html_of_points_report_draws_curves_and_plots_inline(points_report):
    page = bakeoff.export_html(points_report)
    assert linked_urls(page) == [] and "<script" not in page
    assert page.count("<polyline") >= 2 and page.count("grey: real points") == 2
    assert "Training speed (examples/s)" in page and "★" in page


def test_image_bakeoff_html_is_self_contained_and_holds_every_grid(fresh_home):
    data = tiny_images()
    b = bakeoff.start_bakeoff(data, ["dcgan", "vae"], 1.0, start=False)
    train_here(b)
    report = bakeoff.bakeoff_report(b.id)
    page = bakeoff.export_html(report)
    assert linked_urls(page) == [], linked_urls(page)
    assert "<script" not in page and "<link" not in page
    for e in report["runs"]:
        png = report["samples"][e["run_id"]]["png"]
        assert base64.b64decode(png).startswith(b"\x89PNG") and f"data:image/png;base64,{png}" in page
        assert e["label"] in page


def test_text_bakeoff_is_ranked_by_held_out_bits_per_character_and_shows_text_samples(fresh_home):
    b = bakeoff.start_bakeoff(tiny_lines(), ["bigram", "char_gpt"], 1.0, start=False)
    train_here(b)
    report = bakeoff.bakeoff_report(b.id)
    assert report["ranked_by"] == "val_bpc"
    bpc = [e["values"]["val_bpc"] for e in report["runs"]]
    assert bpc == sorted(bpc)  # best (fewest bits) first
    page = bakeoff.export_html(report)
    for e in report["runs"]:
        sample = report["samples"][e["run_id"]]
        assert sample["kind"] == "text" and len(sample["texts"]) == 8
        assert html.escape(sample["texts"][0]) in page
    assert "#1 " in page and "Bits per character" in page


def test_a_run_that_failed_shows_its_reason_instead_of_samples(fresh_home):
    b = bakeoff.start_bakeoff("tiny_points", ["tiny_line", "toy_gan"], 1.0, start=False)
    store = RunStore()
    store.set_status(b.run_ids[1], "failed", "the discriminator loss became NaN at step 3")
    assert claim(store, b.run_ids[0]) == [b.run_ids[0]]
    train_run(b.run_ids[0], store)
    assert b.finished(store)
    report = bakeoff.bakeoff_report(b.id)
    assert report["samples"][b.run_ids[1]]["kind"] == "none"
    assert "no checkpoint yet" in report["samples"][b.run_ids[1]]["error"]
    assert "failed" in bakeoff.export_html(report)


# ---- command line ----------------------------------------------------------------------

def cli(*args, home: Path, timeout: float = 240):
    env = dict(os.environ, AIGC_HOME=str(home), AIGC_PLUGINS="tests.plugin_tiny", PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "aigc_core", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.slow  # two worker processes start and train for real: about 15 s
def test_command_line_bakeoff_waits_for_the_runs_and_writes_the_html(fresh_home, tmp_path):
    out = tmp_path / "report.html"
    done = cli("bakeoff", "--dataset", "tiny_points", "--models", "tiny_line,toy_gan", "--max-seconds", "1",
               "--out", str(out), "--json", home=fresh_home)
    assert done.returncode == 0, done.stderr + done.stdout
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert [r["model"] for r in result["runs"]] == ["tiny_line", "toy_gan"]
    assert all(r["status"] == "completed" for r in result["runs"])
    assert "samples_per_s" in result["best"] and result["out"] == str(out)
    page = out.read_text()
    assert linked_urls(page) == [] and page.count("grey: real points") == 2
    assert "completed" in done.stdout and "wrote the report" in done.stdout


def test_command_line_refuses_an_unknown_model_without_queuing(fresh_home):
    done = cli("bakeoff", "--dataset", "tiny_points", "--models", "tiny_line,nope", "--max-seconds", "1",
               home=fresh_home, timeout=120)
    assert done.returncode == 2 and done.stderr.startswith("error:") and "nope" in done.stderr
    assert "Traceback" not in done.stderr
    assert RunStore().list() == []


# ---- Compare page, Bake-off tab ------------------------------------------------------

COMPARE = "pages/compare.py"


def bakeoff_tab():
    at = open_page(COMPARE)
    at.session_state["c_tab"] = "Bake-off"
    return at.run()


def problems(at) -> list[str]:
    return [e.value for e in at.exception] + [e.value for e in at.error]


def test_bakeoff_tab_offers_only_the_models_that_fit_the_chosen_data(fresh_home):
    at = bakeoff_tab()
    assert not problems(at), problems(at)
    assert any("No bake-offs yet" in i.value for i in at.info)
    at.selectbox(key="bo_data").set_value("tiny_points").run()
    offered = at.multiselect(key="bo_models_tiny_points").options
    assert "tiny_line" in " ".join(offered) and "toy_gan" in " ".join(offered)
    assert not any("dcgan" in o or "char_gpt" in o for o in offered)


def test_start_queues_the_models_shows_their_progress_then_the_leaderboard(fresh_home, monkeypatch):
    import aigc_core.runs.queue as queue

    monkeypatch.setattr(queue, "dispatch", lambda store=None: [])  # this test trains the runs itself
    at = bakeoff_tab()
    at.selectbox(key="bo_data").set_value("tiny_points").run()
    at.multiselect(key="bo_models_tiny_points").set_value(["tiny_line", "toy_gan"])
    at.number_input(key="bo_seconds").set_value(1)
    at.button(key="bo_start").click().run()
    assert not problems(at), problems(at)
    (b,) = bakeoff.list_bakeoffs()
    assert b.models == ["tiny_line", "toy_gan"] and b.max_seconds == 1.0 and b.dataset == "tiny_points"
    bars = at.get("progress")
    assert len(bars) == 2 and all("queued" in bar.proto.text for bar in bars)

    train_here(b)
    at.run()
    assert not problems(at), problems(at)
    board = at.dataframe[0].value.set_index("Metric")
    assert list(board.columns) == ["Better", "Tiny line (tests)", "Toy GAN (2-D points)"]
    speed = board.loc["Training speed (examples/s)"]
    assert speed["Better"] == "higher" and sum(v.endswith("★") for v in speed.iloc[1:]) == 1
    assert len(at.get("plotly_chart")) == 1 and len(at.image) == 2  # curves, and a point plot per model
    assert len(at.get("download_button")) == 1
    texts = " ".join(m.value for m in at.markdown)
    assert "Training speed" in texts  # each number explained one click away


def test_earlier_bakeoffs_are_listed_newest_first(fresh_home):
    first = bakeoff.start_bakeoff("tiny_points", ["tiny_line", "toy_gan"], 1, start=False)
    time.sleep(0.01)
    second = bakeoff.start_bakeoff("tiny_points", ["toy_gan", "tiny_line"], 2, start=False)
    at = bakeoff_tab()
    assert not problems(at), problems(at)
    picker = at.selectbox(key="bo_pick")
    assert picker.options[:2] == [second.title, first.title] and picker.value == second.id


def test_a_bakeoff_whose_runs_were_deleted_says_so(fresh_home):
    b = bakeoff.start_bakeoff("tiny_points", ["tiny_line", "toy_gan"], 1, start=False)
    for run_id in b.run_ids:
        RunStore().delete(run_id)
    with pytest.raises(UserError, match="deleted"):
        bakeoff.bakeoff_report(b.id)
    at = bakeoff_tab()
    assert not at.exception and any("deleted" in e.value for e in at.error)
