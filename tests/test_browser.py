"""One real-browser walk through the studio: headless Chromium (Debian's
``/usr/bin/chromium``) driven by Playwright against ``streamlit run`` on a
free local port. It walks the way a workshop attendee would: Home, upload a
zip of images on Data, Quick train on it from Train and watch the chart move,
generate and download in Gallery, then Compare two runs.

Screenshots of every page go to ``$AIGC_SCREENSHOTS`` (the README's are made
with ``AIGC_SCREENSHOTS=docs/screenshots``) or a temporary folder, with
``timings.json``: how long Home took to become usable and how long a page
switch takes with and without a run training (the UI must not wait on it).
"""

from __future__ import annotations

import io
import json
import os
import re
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
TIMINGS: dict[str, float] = {}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium); .ci/run installs it")
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed (requirements-dev.txt)")
    home = tmp_path_factory.mktemp("browser_home")
    port = _free_port()
    env = dict(os.environ, AIGC_HOME=str(home), PYTHONPATH=str(REPO))
    t0 = time.time()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port), "--server.headless", "true",
         "--server.address", "127.0.0.1"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail("streamlit did not start within 60 s")
    TIMINGS["server_listening_s"] = round(time.time() - t0, 2)
    yield f"http://127.0.0.1:{port}", home
    os.killpg(proc.pid, 9)


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    out = Path(os.environ.get("AIGC_SCREENSHOTS") or tmp_path_factory.mktemp("screens"))
    out.mkdir(parents=True, exist_ok=True)
    yield out
    (out / "timings.json").write_text(json.dumps(TIMINGS, indent=1))
    print("browser timings:", TIMINGS)


@pytest.fixture(scope="module")
def page(studio):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        context = browser.new_context(viewport={"width": 1300, "height": 1000}, accept_downloads=True)
        yield context.new_page()
        browser.close()


def _shot(page, path: Path, height: int = 2400) -> None:
    """A screenshot of the whole page: Streamlit scrolls inside its own
    container, so the window is made tall for the picture."""
    size = page.viewport_size
    page.set_viewport_size({"width": size["width"], "height": height})
    time.sleep(1.5)
    page.screenshot(path=str(path))
    page.set_viewport_size(size)


def _image_zip(path: Path, count: int = 64) -> Path:
    """A zip of small PNG drawings (rings of different sizes), the kind of thing
    an attendee uploads, plus one file that is not an image."""
    from PIL import Image, ImageDraw

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(count):
            im = Image.new("L", (40, 40), 0)
            r = 6 + i % 12
            ImageDraw.Draw(im).ellipse((20 - r, 20 - r, 20 + r, 20 + r), outline=255, width=3)
            png = io.BytesIO()
            im.save(png, format="PNG")
            zf.writestr(f"rings/ring_{i:02d}.png", png.getvalue())
        zf.writestr("rings/notes.txt", "not an image")
    path.write_bytes(buf.getvalue())
    return path


def _switch_to(page, title: str, ready) -> float:
    """Open a page from the sidebar navigation (same session) and return the
    seconds until ``ready`` (a locator) shows."""
    t0 = time.time()
    page.get_by_role("link", name=title, exact=True).first.click()
    ready.wait_for(timeout=60_000)
    return time.time() - t0


def _advances(page, pattern: str, timeout: float = 120, first_within: float = 180) -> list[str]:
    """The distinct texts matching ``pattern`` seen until one differs from the
    first (the live view moved on), or ``timeout`` seconds pass."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    live = page.get_by_text(re.compile(pattern)).first
    live.wait_for(timeout=first_within * 1000)
    seen = [live.inner_text()]
    deadline = time.time() + timeout
    while len(seen) < 2 and time.time() < deadline:
        time.sleep(1)
        try:
            text = live.inner_text(timeout=5_000)
        except PlaywrightTimeout:  # the element is being redrawn this instant
            continue
        if text != seen[-1]:
            seen.append(text)
    return seen


def _wait_for_runs(home: Path, done: int, timeout: float = 240) -> list:
    from aigc_core.runs.store import RunStore

    os.environ["AIGC_HOME"], saved = str(home), os.environ["AIGC_HOME"]
    try:
        store = RunStore()
        deadline = time.time() + timeout
        while time.time() < deadline and sum(r.status == "completed" for r in store.list()) < done:
            time.sleep(2)
        runs = store.list()
    finally:
        os.environ["AIGC_HOME"] = saved
    assert sum(r.status == "completed" for r in runs) >= done, [(r.model, r.status, r.message) for r in runs]
    return runs


def test_home_opens_quickly_and_quick_train_starts_a_run(studio, page, shots):
    url, _ = studio
    t0 = time.time()
    page.goto(url)
    page.get_by_role("button", name="Quick train").wait_for(timeout=60_000)
    TIMINGS["home_usable_s"] = round(time.time() - t0, 2)
    _shot(page, shots / "home.png")
    page.get_by_role("button", name="Quick train").click()
    seen = _advances(page, r"(running|completed) · step \d+")
    assert len(seen) == 2, f"the live view should advance while the run trains: {seen}"
    assert TIMINGS["home_usable_s"] < 30, f"the Home page took {TIMINGS['home_usable_s']} s to become usable"


def test_upload_a_zip_of_images_on_the_data_page(studio, page, shots, tmp_path):
    archive = _image_zip(tmp_path / "rings.zip")
    # with the Home run still training: switching pages must not wait on it
    TIMINGS["page_switch_during_run_s"] = round(
        _switch_to(page, "Data", page.get_by_role("tab", name="Upload your own")), 2)
    page.locator("[data-testid=stImage] img").first.wait_for(timeout=60_000)  # the current set's preview grid
    _shot(page, shots / "data_builtin.png")
    page.get_by_role("tab", name="Upload your own").click()
    page.locator("input[type=file]").first.set_input_files(str(archive))
    button = page.get_by_role("button", name="Import the images")
    button.wait_for(timeout=60_000)
    button.click()
    page.get_by_text("Images accepted").first.wait_for(timeout=90_000)
    page.get_by_text("1 file(s) were left out").first.wait_for(timeout=10_000)  # notes.txt, listed with its reason
    _shot(page, shots / "data.png")


def test_quick_train_on_the_upload_and_watch_the_chart_advance(studio, page, shots):
    _, home = studio
    _wait_for_runs(home, 1)  # the Home run has finished: nothing trains now
    TIMINGS["page_switch_idle_s"] = round(
        _switch_to(page, "Train", page.get_by_role("button", name="Start training")), 2)
    page.get_by_text("rings").first.wait_for(timeout=10_000)  # the upload is the current data set
    page.get_by_role("button", name="Start training").click()
    seen = _advances(page, r"[1-9]\d*% · ")  # past the start: training has begun
    assert len(seen) == 2, f"the live chart and progress should advance while the run trains: {seen}"
    page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)  # the loss curves are drawn
    time.sleep(3)
    _shot(page, shots / "train.png")


def test_gallery_generates_from_the_finished_run_and_downloads_a_png(studio, page, shots):
    _, home = studio
    _wait_for_runs(home, 2)
    button = page.get_by_role("button", name="Download the grid (PNG)")
    _switch_to(page, "Gallery", button)
    _shot(page, shots / "gallery.png")
    with page.expect_download() as info:
        button.click()
    data = Path(info.value.path()).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_shows_two_runs_side_by_side(studio, page, shots):
    _switch_to(page, "Compare", page.get_by_text("Runs to compare").first)
    page.get_by_text("rings").first.wait_for(timeout=60_000)
    time.sleep(3)  # let the charts draw
    _shot(page, shots / "compare.png")
    assert TIMINGS["page_switch_during_run_s"] < 15, TIMINGS
