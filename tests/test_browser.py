"""One real-browser walk through the studio: headless Chromium (Debian's
``/usr/bin/chromium``) driven by Playwright against ``streamlit run`` on a
free local port. Screenshots go to ``$AIGC_SCREENSHOTS`` (the README's are
made with ``AIGC_SCREENSHOTS=docs/screenshots``) or a temporary folder.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]


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
    yield f"http://127.0.0.1:{port}", home
    os.killpg(proc.pid, 9)


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    out = Path(os.environ.get("AIGC_SCREENSHOTS") or tmp_path_factory.mktemp("screens"))
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.fixture(scope="module")
def page(studio):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        context = browser.new_context(viewport={"width": 1300, "height": 1000}, accept_downloads=True)
        yield context.new_page()
        browser.close()


def test_quick_train_from_home_and_watch_the_run_advance(studio, page, shots):
    url, _ = studio
    t0 = time.time()
    page.goto(url)
    page.get_by_role("button", name="Quick train").wait_for(timeout=60_000)
    ready = time.time() - t0
    page.screenshot(path=str(shots / "home.png"), full_page=True)
    page.get_by_role("button", name="Quick train").click()
    status = page.get_by_text("running ·").first
    status.wait_for(timeout=60_000)
    first = status.inner_text()
    # the first run in a fresh workspace also builds the data set; then steps advance
    deadline, second = time.time() + 90, first
    while second == first and time.time() < deadline:
        time.sleep(1)
        second = page.get_by_text("running ·").first.inner_text()
    assert first != second, "the live view should advance while the run trains"
    assert ready < 30, f"the Home page took {ready:.1f} s to become usable"


def test_gallery_generates_from_the_finished_run_and_downloads_a_png(studio, page, shots):
    url, home = studio
    from aigc_core.runs.store import RunStore

    os.environ["AIGC_HOME"], saved = str(home), os.environ["AIGC_HOME"]
    try:
        store = RunStore()
        deadline = time.time() + 180
        while time.time() < deadline and not any(r.status == "completed" for r in store.list()):
            time.sleep(2)
        assert any(r.status == "completed" for r in store.list()), [(r.status, r.message) for r in store.list()]
    finally:
        os.environ["AIGC_HOME"] = saved
    page.goto(f"{url}/gallery")
    button = page.get_by_role("button", name="Download the grid (PNG)")
    button.wait_for(timeout=90_000)
    page.screenshot(path=str(shots / "gallery.png"), full_page=True)
    with page.expect_download() as info:
        button.click()
    data = Path(info.value.path()).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
