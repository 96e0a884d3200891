"""Lessons: the file format, the shipped lessons, notebook export and the command line."""

from __future__ import annotations

import json

import nbformat
import pytest

from aigc_core import cli
from aigc_core.errors import UserError
from aigc_core.learn import lessons
from aigc_core.learn.lessons import get_lesson, list_lessons, parse_lesson, to_notebook

GOOD = """---
title: A tiny lesson
minutes: 10
---

Some **Markdown** with $x^2$.

::: run gan model=toy_gan dataset=ring8 steps=50 chart=d_real,d_fake
A caption.
:::

::: lab doctor run=gan
:::

::: try run=gan lr_d=0.01
What happens?
???
D wins.
:::
"""


def test_a_lesson_reads_as_a_column_of_text_run_lab_and_try_cells():
    lesson = parse_lesson(GOOD, "tiny")
    assert (lesson.title, lesson.minutes) == ("A tiny lesson", 10)
    assert [c.kind for c in lesson.cells] == ["text", "run", "lab", "try"]
    run, lab, try_cell = lesson.cells[1:]
    assert run.id == "gan" and run.settings() == {"steps": 50} and run.args["chart"] == "d_real,d_fake"
    assert run.body == "A caption."
    assert (lab.id, lab.args) == ("doctor", {"run": "gan"})
    assert (try_cell.prompt, try_cell.answer) == ("What happens?", "D wins.")
    assert try_cell.args == {"run": "gan", "lr_d": 0.01}


@pytest.mark.parametrize("broken, message", [
    (GOOD.replace("---\ntitle", "title", 1), "front matter"),
    (GOOD.replace("minutes: 10\n", ""), "needs 'minutes:'"),
    (GOOD.replace("::: lab doctor", "::: lab nonsense"), "unknown lab 'nonsense'"),
    (GOOD.replace("::: lab doctor run=gan", "::: lab doctor run=other"), "needs run=ID of a run cell above"),
    (GOOD.replace("steps=50", "steps=50 wings=2"), "no setting wings"),
    (GOOD.replace("run=gan lr_d=0.01", "run=gan lr_dd=0.01"), "line 15: toy_gan has no setting lr_dd"),
    (GOOD.replace("model=toy_gan", "model=nope"), "no model called 'nope'"),
    (GOOD.rstrip().rsplit(":::", 1)[0], "never closed"),
    (GOOD.replace("::: try", "::: quiz"), "unknown cell ':::quiz'"),
    (GOOD + "\n:::\n", "no cell is open"),
])
def test_a_mistake_in_a_lesson_file_is_a_clear_message_naming_it(broken, message):
    with pytest.raises(UserError, match=message):
        parse_lesson(broken, "tiny")


def test_six_lessons_ship_and_each_takes_ten_to_fifteen_minutes():
    shipped = list_lessons()
    assert [l.name for l in shipped] == ["gan-2d", "dcgan-digits", "vae-latent", "next-character",
                                         "synthetic-tables", "measuring"]
    for lesson in shipped:
        assert 10 <= lesson.minutes <= 15, lesson.name
        kinds = {c.kind for c in lesson.cells}
        assert {"text", "try"} <= kinds and kinds & {"run", "lab"}, lesson.name


def test_lessons_command_lists_name_title_and_minutes(capsys):
    assert cli.main(["lessons", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["lessons"]
    assert listed[0] == {"name": "gan-2d", "title": "A GAN in two dimensions", "minutes": 12}
    assert len(listed) == 6


def test_lessons_export_writes_a_valid_notebook(tmp_path, capsys):
    out = tmp_path / "gan.ipynb"
    assert cli.main(["lessons", "export", "gan-2d", "--out", str(out)]) == 0
    nb = nbformat.read(out, as_version=4)
    nbformat.validate(nb)
    sources = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "api.make_config('toy_gan', 'ring8'" in sources and "GanLab(" in sources
    assert any("Try this" in c.source for c in nb.cells if c.cell_type == "markdown")


def test_exporting_an_unknown_lesson_is_one_error_line(tmp_path, capsys):
    assert cli.main(["lessons", "export", "nope", "--out", str(tmp_path / "x.ipynb")]) == 2
    assert capsys.readouterr().err.startswith("error: no lesson called 'nope'")
    assert cli.main(["lessons", "export", "gan-2d", "--out", str(tmp_path / "x.txt")]) == 2


def test_lessons_assign_points_the_room_at_a_lesson_and_without_a_name_clears_it(fresh_home, capsys):
    assert cli.main(["lessons", "assign", "vae-latent"]) == 0
    assert lessons.room_lesson() == "vae-latent"
    assert cli.main(["lessons", "assign"]) == 0
    assert lessons.room_lesson() is None
    assert cli.main(["lessons", "assign", "nope"]) == 2


def test_each_run_links_to_its_matching_labs_and_the_doctor():
    from types import SimpleNamespace

    points = SimpleNamespace(id="r1", model="toy_gan", dataset="moons")
    vae = SimpleNamespace(id="r2", model="conv_vae", dataset="glyphs")
    text = SimpleNamespace(id="r3", model="char_gpt", dataset="pydoc")
    assert [l["query_params"]["lab"] for l in lessons.labs_for(points)] == ["gan2d", "doctor"]
    assert lessons.labs_for(points)[0]["query_params"]["dataset"] == "moons"
    assert [l["query_params"]["lab"] for l in lessons.labs_for(vae)] == ["latent", "doctor"]
    assert lessons.labs_for(text) == [{"label": "Ask the training doctor",
                                       "query_params": {"lab": "doctor", "run": "r3"}}]


def test_progress_is_remembered_per_learner_and_the_room_can_point_at_a_lesson(fresh_home):
    data = lessons.progress("ada")
    data["lesson"] = "vae-latent"
    data["lessons"]["vae-latent"] = {"reached": 3}
    lessons.save_progress("ada", data)
    assert lessons.progress("ada")["lessons"]["vae-latent"]["reached"] == 3
    assert lessons.progress("bob")["lessons"] == {}
    assert lessons.room_lesson() is None
    lessons.set_room_lesson("measuring")
    assert lessons.room_lesson() == "measuring"
    with pytest.raises(UserError, match="no lesson called"):
        lessons.set_room_lesson("nope")


@pytest.mark.parametrize("name", [l.name for l in list_lessons()])
def test_each_exported_notebook_runs_top_to_bottom_on_a_tiny_budget(name, monkeypatch, tmp_path):
    """Plain Python runs every code cell in order (no Jupyter), with each
    training run cut to a few steps."""
    monkeypatch.setenv("AIGC_LESSON_BUDGET", "0.001")
    monkeypatch.chdir(tmp_path)
    nb = to_notebook(get_lesson(name))
    namespace: dict = {}
    for index, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        try:
            exec(compile(cell.source, f"<{name} code cell {index}>", "exec"), namespace)
        except Exception as exc:  # noqa: BLE001 - name the cell that failed
            raise AssertionError(f"{name}: code cell {index} failed: {exc}\n{cell.source}") from exc
    for run in namespace["runs"].values():
        assert run.status == "completed", (run.name, run.message)


def test_a_lessons_time_counts_its_words_its_labs_and_tries_and_every_run_it_asks_for():
    from aigc_core.learn import timing

    gan = get_lesson("gan-2d")
    runs = timing.lesson_runs(gan)
    assert [label.split(" ")[0] for label, _, _ in runs] == ["gan", "gan"]  # the run, and its try with lr_g changed
    assert runs[1][2] == {"loss": "nonsaturating", "lr_g": 0.005}
    t = timing.time_lesson("gan-2d", train=False)
    tries = sum(c.kind == "try" for c in gan.cells)
    assert t.interaction_min == tries * timing.TRY_MINUTES + timing.LAB_MINUTES["gan2d"] + timing.OTHER_LAB_MINUTES
    assert 300 < t.words < 2000 and t.reading_min == round(t.words / timing.WORDS_PER_MINUTE, 1)
    assert t.compute_s == {} and t.total_min == round(t.reading_min + t.interaction_min, 1)


def test_lessons_time_without_training_prints_each_lesson_as_json(capsys):
    assert cli.main(["lessons", "time", "measuring", "--no-train", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["name"] == "measuring" and row["minutes_claimed"] == 11 and row["compute_s"] == {}
