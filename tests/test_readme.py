"""The README's Quickstart stays two commands, and CI runs the second one verbatim."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def quickstart_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", section, re.S)]


def test_quickstart_has_exactly_two_commands():
    commands = quickstart_commands()
    assert len(commands) == 2
    assert all("\n" not in command for command in commands)
    assert commands[0].endswith("python -m tasks.binary_classify")
    assert "pip install -e ." in commands[0]
    assert 'pip install -e ".[test]"' in commands[1]
    assert commands[1].endswith("python -m pytest")


def test_ci_runs_the_readme_test_command():
    script = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert script[-1] == quickstart_commands()[1]
    assert "set -euo pipefail" in script


@pytest.mark.slow
def test_the_python_api_example_runs_as_written(tmp_path, monkeypatch, capsys):
    text = (ROOT / "README.md").read_text()
    section = text.split("## Python API", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, re.S)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "README.md (Python API)", "exec"), namespace)
    printed = capsys.readouterr().out
    assert "done in" in printed
    predicted = namespace["result"].predict(namespace["people"])
    assert set(predicted["predicted_buys_smartwatch"]) <= {"yes", "no"}
    assert (tmp_path / "runs" / "watch" / "metrics.json").exists()
    assert namespace["tuned"].metrics["tuning"]["trials"] == 3
    assert namespace["sales"].config.model.params["hidden_units"] == [64, 32]
    assert namespace["sales"].metrics["problem"] == "regression"
