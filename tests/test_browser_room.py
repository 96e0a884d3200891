"""Workshop mode in a real browser: two participants join the same room from
two browser contexts (two people, two sets of cookies), and each sees only
their own runs, plus what the room shares on the Wall. Headless Chromium
(Debian's ``/usr/bin/chromium``) driven by Playwright against ``streamlit
run`` on a free port of 127.0.0.1."""

from __future__ import annotations

import os
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
ROOM = {"AIGC_WORKSHOP_CODE": "owl-42", "AIGC_TEACHER_CODE": "hawk-7"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def room_studio(tmp_path_factory):
    """A workshop server with a finished run of alice's, one of bob's, and a post of alice's on the wall."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium); .ci/run installs it")
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed (requirements-dev.txt)")
    home = tmp_path_factory.mktemp("room_home")
    saved = {k: os.environ.get(k) for k in ("AIGC_HOME", *ROOM)}
    os.environ.update(AIGC_HOME=str(home), **ROOM)
    try:
        from aigc_core.room import board
        from aigc_core.room.identity import Actor
        from aigc_core.runs import api

        runs = {}
        for who in ("alice", "bob"):
            config = api.make_config("tiny_line", "tiny_points", train_set={"steps": 10})
            runs[who] = api.run_in_foreground(config, name=f"{who}s line", echo=lambda _m: None, actor=Actor(who))
        board.post_to_wall(runs["alice"].id, text="alices line, as a table", caption="from alice",
                           actor=Actor("alice"))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    port = _free_port()
    env = dict(os.environ, AIGC_HOME=str(home), PYTHONPATH=str(REPO), **ROOM)
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port), "--server.headless", "true",
         "--server.address", "127.0.0.1"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.3)
    else:
        os.killpg(proc.pid, 9)
        pytest.fail("streamlit did not start within 60 s")
    yield f"http://127.0.0.1:{port}"
    os.killpg(proc.pid, 9)


def _join(browser, url: str, name: str):
    context = browser.new_context(viewport={"width": 1300, "height": 1000})
    page = context.new_page()
    page.goto(url)
    page.get_by_role("textbox", name="Room code").fill("owl-42")
    page.get_by_role("textbox", name="Your name").fill(name)
    page.get_by_role("button", name="Join").click()
    page.get_by_text(f"You are {name}").wait_for(timeout=60_000)
    return page


def _run_choices(page) -> str:
    """The Gallery's run picker, opened: the text of every run offered."""
    page.get_by_role("link", name="Gallery", exact=True).first.click()
    picker = page.get_by_role("combobox", name="Run")
    picker.wait_for(timeout=60_000)
    picker.click()
    page.get_by_role("option").first.wait_for(timeout=10_000)
    text = " | ".join(page.get_by_role("option").all_inner_texts())
    page.keyboard.press("Escape")
    return text


def test_two_participants_each_see_only_their_own_runs_and_both_see_the_wall(room_studio):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            alice, bob = _join(browser, room_studio, "alice"), _join(browser, room_studio, "bob")
            alices, bobs = _run_choices(alice), _run_choices(bob)
            assert "alices line" in alices and "bobs line" not in alices, alices
            assert "bobs line" in bobs and "alices line" not in bobs, bobs
            for page in (alice, bob):
                page.get_by_role("link", name="Wall", exact=True).first.click()
                page.get_by_text("alices line, as a table").first.wait_for(timeout=60_000)
                assert page.get_by_text("alice · alices line").count() >= 1
            alice.reload()  # a refresh keeps who you are (the signed token is in the address)
            alice.get_by_text("You are alice").wait_for(timeout=60_000)
        finally:
            browser.close()
