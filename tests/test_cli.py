"""The command line as a user meets it: JSON on the last line, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def cli(*args, home: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, AIGC_HOME=str(home), AIGC_PLUGINS="tests.plugin_tiny", PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "aigc_core", *args], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def last_json(proc) -> dict:
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_train_sample_export_import_from_the_command_line(tmp_path):
    proc = cli("train", "--model", "tiny_line", "--dataset", "tiny_points", "--steps", "30", "--set", "lr=0.1",
               "--set", "log_every=5", "--json", home=tmp_path)
    result = last_json(proc)
    assert result["status"] == "completed" and result["step"] == 30
    run_id = result["run_id"]
    listed = last_json(cli("runs", "--json", home=tmp_path))
    assert [r["run_id"] for r in listed["runs"]] == [run_id]
    out = tmp_path / "points.csv"
    sampled = last_json(cli("sample", "--run", run_id, "-n", "7", "--out", str(out), "--json", home=tmp_path))
    assert sampled["n"] == 7 and len(out.read_text().splitlines()) == 8
    cli("export", "--run", run_id, "--out", str(tmp_path / "run.zip"), home=tmp_path)
    imported = last_json(cli("import-run", str(tmp_path / "run.zip"), "--json", home=tmp_path))
    assert imported["status"] == "completed" and imported["step"] == 30


@pytest.mark.parametrize("args, message", [
    (("train", "--model", "no_such_model", "--dataset", "tiny_points", "--steps", "5"), "no model called 'no_such_model'"),
    (("train", "--model", "tiny_line", "--dataset", "nope", "--steps", "5"), "no data set called 'nope'"),
    (("train", "--model", "tiny_line", "--dataset", "tiny_points", "--steps", "5", "--set", "speed=3"), "unknown setting(s) speed"),
    (("train", "--model", "tiny_line", "--dataset", "tiny_points", "--steps", "5", "--set", "lr=fast"), "expects a float"),
    (("sample", "--run", "missing-run", "--out", "x.png"), "no run called 'missing-run'"),
    (("control", "--run", "missing-run", "stop"), "no run called 'missing-run'"),
])
def test_user_errors_exit_non_zero_with_one_line_and_no_traceback(tmp_path, args, message):
    proc = cli(*args, home=tmp_path, check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert "Traceback" not in proc.stderr


def test_importing_a_pickled_checkpoint_is_refused(tmp_path):
    bad = tmp_path / "weights.pt"
    bad.write_bytes(b"\x80\x04\x95 pretend pickle")
    proc = cli("import-run", str(bad), home=tmp_path, check=False)
    assert proc.returncode == 2 and "never opens pickles" in proc.stderr


def test_datasets_lists_built_ins_as_json(tmp_path):
    names = {d["name"] for d in last_json(cli("datasets", "--json", home=tmp_path))["datasets"]}
    assert "tiny_points" in names


def test_sample_knobs_are_checked_against_the_models_declared_knobs(tmp_path, capsys):
    from aigc_core.cli import main
    from tests.tiny_runs import finished

    run = finished("tiny_line", "tiny_points", 10)
    out = tmp_path / "points.csv"
    assert main(["sample", "--run", run.id, "-n", "5", "--out", str(out), "--set", "spread=0.5"]) == 0
    xs = [float(line.split(",")[0]) for line in out.read_text().splitlines()[1:]]
    assert len(xs) == 5 and all(abs(x) <= 0.5 for x in xs)  # the knob arrived as a number
    capsys.readouterr()
    assert main(["sample", "--run", run.id, "--out", str(out), "--set", "spread=9"]) == 2
    assert "'spread' must be at most 2.0" in capsys.readouterr().err
    assert main(["sample", "--run", run.id, "--out", str(out), "--set", "temperature=1"]) == 2
    err = capsys.readouterr().err
    assert "unknown setting(s) temperature" in err and "spread" in err and len(err.strip().splitlines()) == 1
