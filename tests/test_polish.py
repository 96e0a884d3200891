"""Issue 16: places where a page said something untrue, or said it too late."""

from __future__ import annotations

import re
from contextlib import contextmanager
from pathlib import Path

import pytest

from aigc_core.runs.store import RunStore
from tests.tiny_runs import open_page, tiny_lines, tiny_table

TRAIN = "pages/train.py"
REPO = Path(__file__).resolve().parent.parent


def _pick(data: str, kind: str, model: str, preset: str):
    at = open_page(TRAIN)
    at.selectbox(key="tr_data").set_value(data).run()
    at.selectbox(key=f"tr_model_{kind}").set_value(model).run()
    at.radio(key=f"tr_preset_{model}").set_value(preset).run()
    return at


# ---- 3. settings that cannot work together ------------------------------------------------

def test_an_embedding_size_that_the_heads_do_not_divide_is_named_beside_the_form_and_start_is_off(fresh_home):
    at = _pick(tiny_lines(), "text", "char_gpt", "Custom")
    assert not at.button(key="tr_start").disabled
    at.number_input(key="tr_char_gpt_Custom_m_n_embd").set_value(98).run()
    assert not at.exception
    clash = [e.value for e in at.error if "must be a multiple of" in e.value]
    assert clash and "n_embd = 98" in clash[0] and "n_head = 4" in clash[0] and "try 96 or 100" in clash[0]
    assert at.button(key="tr_start").disabled
    at.number_input(key="tr_char_gpt_Custom_m_n_embd").set_value(104).run()
    assert not any("must be a multiple of" in e.value for e in at.error)
    assert not at.button(key="tr_start").disabled


def test_a_batch_that_is_not_a_multiple_of_the_packing_is_refused_before_a_run_exists(fresh_home):
    at = _pick(tiny_table(), "table", "tab_gan", "Custom")
    # Custom starts from Quick fitted to this 120-row table: batches of 90 rows, which 4 does not divide
    at.slider(key="tr_tab_gan_Custom_m_pac").set_value(4).run()
    assert any("batch_size = 90" in e.value and "pac = 4" in e.value for e in at.error)
    assert at.button(key="tr_start").disabled
    assert RunStore().list() == []


@pytest.mark.parametrize("model,data,clash", [("char_gpt", "lines", "n_embd=98"),
                                              ("tab_gan", "table", "pac=3")])
def test_train_refuses_settings_that_cannot_work_together_with_exit_status_2(fresh_home, capsys, model, data, clash):
    from aigc_core.cli import main

    dataset = tiny_lines() if data == "lines" else tiny_table()
    assert main(["train", "--model", model, "--dataset", dataset, "--set", clash, "--set", "steps=5"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "must be a multiple of" in err
    assert RunStore().list() == []


# ---- user text is shown as text (issue 10 item 15) -----------------------------------------

EVIL = "[click](http://evil.example) ![x](http://evil.example/x.png) **bold**"


@pytest.fixture(scope="module")
def evil_runs(tmp_path_factory):
    """Two finished runs in a workspace of their own, the newer one named like a Markdown attack."""
    from tests.tiny_runs import dcgan_run

    with pytest.MonkeyPatch.context() as mp:
        home = tmp_path_factory.mktemp("evil_home")
        mp.setenv("AIGC_HOME", str(home))
        older = dcgan_run(steps=10, name="plain older run")
        evil = dcgan_run(steps=10, name=EVIL)
        yield older, evil


def as_markdown(text: str) -> bool:
    """A link, an image or bold text that Markdown would render (not escaped)."""
    return bool(re.search(r"(?<!\\)\]\(http|(?<!\\)\*\*bold", text))


def markdown_texts(at) -> list[str]:
    """Every piece of Markdown the page and its sidebar hand the browser."""
    parts = [*at.markdown, *at.caption, *at.info, *at.warning, *at.error, *at.success, *at.sidebar.markdown,
             *at.sidebar.caption]
    return [str(p.value) for p in parts] + [f"{m.label} {m.value}" for m in at.metric]


@contextmanager
def with_sidebar(page: str, run_id: str):
    """A page drawn through app.py's navigation and sidebar, opened first. (AppTest's switch_page runs a page
    file on its own, without app.py and so without the sidebar.) The entry script must sit beside pages/, so
    that page links resolve: a copy of app.py whose first page is ``page``, removed afterwards."""
    import os

    from streamlit.testing.v1 import AppTest

    title = {"pages/home.py": "Home", TRAIN: "Train", "pages/gallery.py": "Gallery", "pages/compare.py": "Compare"}
    entry = REPO / f".apptest_{os.getpid()}_{title[page]}.py"
    text = (REPO / "app.py").read_text().replace('default=(title == "Home")', f'default=(title == "{title[page]}")')
    assert f"title == \"{title[page]}\"" in text
    entry.write_text(text)
    try:
        at = AppTest.from_file(str(entry), default_timeout=120)
        at.query_params["run"] = run_id
        yield at.run()
    finally:
        entry.unlink()


def test_plain_escapes_every_character_markdown_would_read_as_syntax():
    from pages.common import plain

    assert plain(EVIL) == r"\[click\](http\://evil.example) !\[x\](http\://evil.example/x.png) \*\*bold\*\*"
    assert plain("- a list?") == r"\- a list?" and plain("1. first") == r"1\. first"
    assert plain(":red[x] $y$ <b>") == r"\:red\[x\] \$y\$ \<b\>"
    assert plain("no-such_run") == "no-such_run" and plain("_a_ b") == r"\_a\_ b"  # only a _ that could emphasise


@pytest.mark.parametrize("page", ["pages/home.py", TRAIN, "pages/gallery.py", "pages/compare.py"])
def test_a_run_named_like_markdown_shows_literally_on_every_page_and_the_sidebar(evil_runs, page, monkeypatch):
    from pages.common import plain

    older, evil = evil_runs
    monkeypatch.setenv("AIGC_HOME", str(evil.folder.path.parent.parent))
    with with_sidebar(page, evil.id) as at:
        shown = markdown_texts(at)
    assert not at.exception, [e.value for e in at.exception]
    assert not [t for t in shown if as_markdown(t)], "a user's text went out as Markdown"
    assert any(plain(EVIL) in t for t in at.sidebar.markdown.values), at.sidebar.markdown.values
    if page in (TRAIN, "pages/compare.py"):
        assert any(plain(EVIL) in t for t in [*at.markdown.values, *at.caption.values, *at.metric.values]
                   + [m.label for m in at.metric])


def test_an_unknown_run_in_the_address_is_never_echoed_as_markdown(evil_runs, monkeypatch):
    older, evil = evil_runs
    monkeypatch.setenv("AIGC_HOME", str(evil.folder.path.parent.parent))
    at = open_page(TRAIN, "[x](http://evil.example)")
    assert any("no run" in w.value for w in at.warning)
    assert not [t for t in markdown_texts(at) if as_markdown(t)]


# ---- 1. labels that name a run's state ------------------------------------------------------

def test_the_run_picker_names_no_state_that_could_be_stale(evil_runs, monkeypatch):
    older, evil = evil_runs
    monkeypatch.setenv("AIGC_HOME", str(evil.folder.path.parent.parent))
    at = open_page(TRAIN, older.id)
    picker = at.selectbox(key="tr_run")
    assert all("completed" not in o and "step" not in o for o in picker.options)


def test_the_sidebar_names_the_run_the_page_has_just_picked(evil_runs, monkeypatch):
    """The address says the older run; the page picks the other one on this very run of the script (as the
    Train page's picker does): the sidebar, drawn after the page, follows the page."""
    from streamlit.testing.v1 import AppTest

    from pages.common import plain

    older, evil = evil_runs
    monkeypatch.setenv("AIGC_HOME", str(evil.folder.path.parent.parent))

    def app(picked: str) -> None:
        import streamlit as st

        from pages.common import set_current_run, show_page

        show_page(st.navigation([st.Page(lambda: set_current_run(picked), title="Picker", default=True)]))

    at = AppTest.from_function(app, args=(evil.id,), default_timeout=60)
    at.query_params["run"] = older.id
    names = " ".join(at.run().sidebar.markdown.values)
    assert plain(EVIL) in names and "plain older run" not in names


# ---- 5. Home opens without torch ------------------------------------------------------------

def test_home_renders_without_importing_torch(tmp_path):
    """In a process of its own, so the imports of other tests do not count."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    script = ("import sys\nfrom streamlit.testing.v1 import AppTest\n"
              f"at = AppTest.from_file({str(repo / 'app.py')!r}, default_timeout=60).run()\n"
              "assert not at.exception, [e.value for e in at.exception]\n"
              "assert any(b.value == 'Quick train' or b.label == 'Quick train' for b in at.button)\n"
              "print('torch' in sys.modules)\n")
    env = dict(os.environ, AIGC_HOME=str(tmp_path), PYTHONPATH=str(repo))
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_the_device_badge_comes_from_a_light_probe():
    from aigc_core.train import probe

    assert probe.device_badge()
    assert probe._nvidia_gpu_names(Path("/nonexistent")) == []


# ---- run-folder names have one owner --------------------------------------------------------

def test_a_rating_taken_back_stays_taken_back_in_the_run_folder(evil_runs, monkeypatch):
    from aigc_core import data_loop

    older, evil = evil_runs
    monkeypatch.setenv("AIGC_HOME", str(evil.folder.path.parent.parent))
    item = data_loop.rate_row(older.id, {"x": 1.0}, 1, step=10, seed=0, index=0)
    assert (item, "local") in older.folder.read_ratings()  # keyed by item and who rated it (workshop mode)
    data_loop.unrate(older.id, item)
    assert (item, "local") not in older.folder.read_ratings()  # what `repair` rebuilds the ratings from


# ---- 2. training time from the first step ---------------------------------------------------

def test_training_time_and_step_count_up_before_the_first_logging_interval(fresh_home):
    import time

    from aigc_core.runs import api

    store = RunStore()
    cfg = api.make_config("tiny_line", "tiny_points", model_set={"step_sleep": 0.02},
                          train_set={"steps": 100000, "log_every": 10000, "sample_every": 10000})
    run = api.submit(cfg, store=store)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            now = store.get(run.id)
            if now.status == "running" and now.train_seconds > 0:
                break
            time.sleep(0.2)
        assert now.train_seconds > 0 and now.step > 0, (now.status, now.train_seconds, now.step)
        assert store.metrics(run.id).empty  # nothing logged yet: the clock did not wait for it
    finally:
        store.request(run.id, "stop")
        deadline = time.time() + 60
        while store.get(run.id).status not in ("stopped", "completed", "failed") and time.time() < deadline:
            time.sleep(0.2)


# ---- 6. eval -n on a table run --------------------------------------------------------------

def test_eval_n_sets_how_many_rows_a_table_run_s_report_samples(fresh_home, monkeypatch, capsys):
    from aigc_core.cli import main
    from aigc_core.models.tabular.trainer import TabularTrainer
    from tests.tiny_runs import finished

    run = finished("tab_vae", tiny_table(), 10, hidden=16, layers=1, latent_dim=4, batch_size=20)
    asked = []
    report = TabularTrainer.report

    def spy(self, n=None, seed=0):
        asked.append(n)
        return report(self, n, seed)

    monkeypatch.setattr(TabularTrainer, "report", spy)
    assert main(["eval", "--run", run.id, "-n", "37", "--json"]) == 0
    assert main(["eval", "--run", run.id, "--json"]) == 0
    assert asked == [37, None]  # None: as many rows as the training rows


# ---- 4. text uploads: stream or lines, guessed and explained ---------------------------------

NAMES = "\n".join(["Ada Lovelace", "Alan Turing", "Grace Hopper", "Edsger Dijkstra", "Barbara Liskov", "Donald Knuth",
                   "Frances Allen", "John McCarthy", "Margaret Hamilton", "Ken Thompson", "Dennis Ritchie",
                   "Radia Perlman", "Tim Berners-Lee", "Shafi Goldwasser", "Leslie Lamport", "Niklaus Wirth",
                   "Adele Goldberg", "Tony Hoare", "Fran Allen", "Jean Sammet", "Kathleen Booth", "Guido van Rossum"])
PROSE = ("It was a bright cold day in April, and the clocks were striking thirteen. Winston Smith, his chin nuzzled "
         "into his breast in an effort to escape the vile wind, slipped quickly through the glass doors.\n") * 30
WRAPPED = "\n".join(["The quick brown fox jumps over the lazy dog,", "and then it runs away into the woods;",
                     "nobody saw where it went."] * 10)


@pytest.mark.parametrize("text,mode,because", [
    (NAMES, "lines", "short lines"),
    (PROSE, "stream", "long"),
    (WRAPPED, "stream", "end with punctuation"),
    ("\n".join(["chorus line"] * 40), "stream", "different"),
    ("just one line of text", "stream", "only 1 non-empty"),
])
def test_a_text_file_s_mode_is_guessed_from_its_lines_with_the_reason(text, mode, because):
    from aigc_core.data.text import guess_text_mode

    guessed, why = guess_text_mode(text.encode())
    assert guessed == mode and because in why


@pytest.mark.parametrize("text,mode", [(NAMES, "lines"), (PROSE, "stream")])
def test_the_upload_form_starts_on_the_guessed_mode_and_says_why(fresh_home, text, mode):
    from tests.test_page_data import open_data_page, upload

    at = upload(open_data_page("digits"), "people.txt", text.encode())
    assert at.radio(key="up0:mode").value == mode
    assert any(c.value.startswith("Guessed from the file") and "because" in c.value for c in at.caption)


def test_import_data_guesses_the_text_mode_and_says_why(fresh_home, tmp_path, capsys):
    import json

    from aigc_core.cli import main
    from aigc_core.data.catalog import load_dataset

    (tmp_path / "people.txt").write_text(NAMES, encoding="utf-8")
    assert main(["import-data", str(tmp_path / "people.txt"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["mode"] == "lines" and "short lines" in out["mode_reason"]
    assert load_dataset("people").mode == "lines"


# ---- the vocabulary note on the Train page ------------------------------------------------------

def test_the_train_page_says_what_a_character_model_keeps_of_a_large_alphabet(fresh_home):
    from aigc_core.data.base import TextData
    from aigc_core.data.catalog import save_uploaded

    alphabet = "".join(chr(0x4E00 + i) for i in range(700))  # 700 distinct characters, more than are kept
    save_uploaded(TextData("hanzi", "\n".join(alphabet[i:i + 7] for i in range(0, 700, 7)) * 2, mode="lines"))
    at = _pick("hanzi", "text", "char_gpt", "Quick")
    notes = [i.value for i in at.info if "distinct characters" in i.value]
    assert notes and "keep the 512 most frequent" in notes[0]
    at = _pick(tiny_lines(), "text", "char_gpt", "Quick")
    assert not [i.value for i in at.info if "distinct characters" in i.value]


# ---- 7. fair budgets under load ---------------------------------------------------------------

def test_a_bake_off_budgets_processor_seconds_by_default_and_its_report_says_so(fresh_home):
    from aigc_core import bakeoff

    b = bakeoff.start_bakeoff("tiny_points", ["tiny_line", "toy_gan"], 2, start=False)
    assert b.budget == "cpu" and "2 processor seconds each" in b.title
    for r in b.runs():
        assert (r.config["train"]["clock"], r.config["train"]["max_seconds"], r.config["train"]["steps"]) == \
            ("cpu", 2.0, 0)
    report = bakeoff.bakeoff_report(b.id, with_samples=False)
    assert report["budget"] == "cpu" and "2 processor seconds each" in bakeoff.export_html(report)
    assert bakeoff.report_summary(report)["budget_text"] == "2 processor seconds each"


def test_a_bake_off_can_give_every_model_the_same_number_of_steps(fresh_home):
    from aigc_core import bakeoff
    from aigc_core.errors import UserError

    b = bakeoff.start_bakeoff("tiny_points", ["tiny_line", "toy_gan"], 0, budget="steps", steps=40, start=False)
    assert "40 optimisation steps each" in b.title
    assert all((r.config["train"]["steps"], r.config["train"]["max_seconds"]) == (40, 0.0) for r in b.runs())
    with pytest.raises(UserError, match="number of steps"):
        bakeoff.start_bakeoff("tiny_points", ["tiny_line", "toy_gan"], 0, budget="steps", start=False)
    with pytest.raises(UserError, match="budget is one of"):
        bakeoff.start_bakeoff("tiny_points", ["tiny_line", "toy_gan"], 5, budget="moon", start=False)


def test_a_processor_time_budget_does_not_count_time_the_run_spent_off_the_cpu(fresh_home):
    """tiny_line sleeps 20 ms a step (off the CPU, as when another process has the cores): a wall-clock budget
    counts the sleep, a processor-time budget does not, so the same budget buys many more steps."""
    import time

    from aigc_core.runs import api
    from tests.tiny_runs import QUIET

    done = {}
    for clock in ("wall", "cpu"):
        cfg = api.make_config("tiny_line", "tiny_points", model_set={"step_sleep": 0.02},
                              train_set={"steps": 0, "max_seconds": 0.4, "clock": clock, "log_every": 5})
        t0 = time.perf_counter()
        done[clock] = (api.run_in_foreground(cfg, **QUIET), time.perf_counter() - t0)
    wall, cpu = done["wall"][0], done["cpu"][0]
    assert wall.status == cpu.status == "completed"
    assert 0.4 <= wall.train_seconds < 0.4 + 0.5 and 0.4 <= cpu.train_seconds < 0.4 + 0.5
    assert cpu.step > 2 * wall.step, (cpu.step, wall.step)


def test_workers_on_a_shared_machine_wait_passively_for_work(fresh_home, monkeypatch):
    import subprocess

    from aigc_core.runs import api, executors, queue

    seen = []

    class FakeWorker:
        pid = 0

        def __init__(self, args, env, **kw):
            seen.append(env.get("OMP_WAIT_POLICY"))

        def poll(self):
            return 0

    monkeypatch.setattr(subprocess, "Popen", FakeWorker)
    run = api.submit(api.make_config("tiny_line", "tiny_points", train_set={"steps": 5}), start=False)
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.setenv("AIGC_MAX_JOBS", "2")
    queue.spawn_worker(run.id)
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")  # what the person running the studio set wins
    queue.spawn_worker(run.id)
    monkeypatch.delenv("OMP_WAIT_POLICY")
    monkeypatch.setenv("AIGC_MAX_JOBS", "1")
    monkeypatch.setattr(executors.os, "cpu_count", lambda: 64)  # one slot on a big machine: left to OpenMP
    queue.spawn_worker(run.id)
    assert seen == ["PASSIVE", "ACTIVE", None]


def test_the_train_page_says_when_a_run_s_time_is_processor_time(fresh_home):
    from aigc_core.runs import api
    from tests.tiny_runs import QUIET

    cfg = api.make_config("tiny_line", "tiny_points", train_set={"steps": 10, "clock": "cpu", "log_every": 5})
    run = api.run_in_foreground(cfg, **QUIET)
    at = open_page(TRAIN, run.id)
    assert "Training time (processor)" in [m.label for m in at.metric]
