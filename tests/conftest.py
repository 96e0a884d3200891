"""Shared test set-up.

Every test session gets its own ``$AIGC_HOME`` (so nothing touches a user's
workspace); built-in data sets are cached there once per session. A test that
needs an empty workspace uses the ``fresh_home`` fixture.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

_SESSION_HOME = Path(tempfile.mkdtemp(prefix="aigc_test_home_"))
os.environ["AIGC_HOME"] = str(_SESSION_HOME)
os.environ.setdefault("AIGC_NO_DOWNLOAD", "1")  # tests never touch the network
# a tiny model + data set (tests/plugin_tiny.py) that worker processes load too
os.environ["AIGC_PLUGINS"] = "tests.plugin_tiny"
# The suite runs workers, a Streamlit server and the tests on a few cores at once; OpenMP threads that
# spin while waiting made small models 10-50x slower under that contention (measured on 2 cores). Set
# before torch loads; worker processes inherit it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def fresh_home(tmp_path, monkeypatch):
    """An empty workspace for this test only (cached built-ins are shared via a symlinked cache)."""
    home = tmp_path / "home"
    home.mkdir()
    (_SESSION_HOME / "cache").mkdir(exist_ok=True)
    (home / "cache").symlink_to(_SESSION_HOME / "cache")
    monkeypatch.setenv("AIGC_HOME", str(home))
    return home


def pytest_collection_modifyitems(config, items):
    """Slow checks (minutes of real training) are skipped unless asked for with
    ``-m slow``; ``.ci/run`` runs them after the README's fast suite."""
    if "slow" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="slow check: run with -m slow (.ci/run does)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
