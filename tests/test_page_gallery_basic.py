"""Gallery page (AppTest): sampling from a finished run, and the empty state."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from aigc_core.runs import api

APP = str(Path(__file__).resolve().parent.parent / "app.py")


def open_gallery() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("pages/gallery.py").run()
    return at


def test_gallery_without_runs_says_how_to_get_one(fresh_home):
    at = open_gallery()
    assert not at.exception
    assert any("No trained runs yet" in i.value for i in at.info)


def test_gallery_samples_a_finished_run_and_offers_downloads(fresh_home):
    cfg = api.make_config("tiny_line", "tiny_points", train_set={"steps": 20, "log_every": 5})
    run = api.run_in_foreground(cfg, echo=lambda m: None)
    at = open_gallery()
    assert not at.exception, at.exception
    assert at.selectbox[0].value == run.id
    assert len(at.get("plotly_chart")) == 1


def test_gallery_exports_a_run_and_imports_it_back_as_a_new_run(fresh_home):
    from aigc_core.runs.store import RunStore

    cfg = api.make_config("tiny_line", "tiny_points", train_set={"steps": 20, "log_every": 5})
    run = api.run_in_foreground(cfg, echo=lambda m: None)
    at = open_gallery()
    at.button(key="share_export").click().run()
    assert not at.exception, at.exception
    exported = api.export_run(run.id)
    assert at.get("download_button")  # the zip is offered
    at.file_uploader(key="share_import").upload("shared.zip", exported, "application/zip").run()
    at.button(key="share_import_go").click().run()
    assert not at.exception, at.exception
    assert any("Imported as run" in s.value for s in at.success)
    assert len(RunStore().list()) == 2


def test_gallery_without_runs_can_import_one_and_refuses_a_damaged_zip(fresh_home):
    at = open_gallery()
    at.file_uploader(key="share_import").upload("broken.zip", b"PK\x03\x04 not really a zip", "application/zip").run()
    at.button(key="share_import_go").click().run()
    assert not at.exception
    assert at.error and "zip" in at.error[0].value
