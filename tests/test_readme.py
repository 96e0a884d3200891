"""The README's two commands are the contract with a newcomer; CI runs the second."""

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    block = text.split("```bash", 1)[1].split("```", 1)[0]
    return [line.strip() for line in block.strip().splitlines() if line.strip() and not line.strip().startswith("#")]


def test_readme_starts_with_exactly_two_commands_install_and_run_then_install_and_test():
    head = (REPO / "README.md").read_text().split("```bash", 1)[0]
    assert head.count("\n") < 8, "the two commands come first"
    run_cmd, test_cmd = readme_commands()
    assert "requirements.txt" in run_cmd and run_cmd.endswith("streamlit run app.py")
    assert "requirements-dev.txt" in test_cmd and test_cmd.endswith("python -m pytest")


def test_ci_runs_the_readme_test_command_exactly():
    _, test_cmd = readme_commands()
    ci = (REPO / ".ci" / "run").read_text()
    assert test_cmd in ci.splitlines()
