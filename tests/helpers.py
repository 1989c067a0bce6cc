"""Running a CLI in a real process, as a user does, and checking the one-line error contract."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_cli(module: str, *args: str, env: dict[str, str] | None = None,
            cwd: str | Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m <module> <args>` in a fresh process; text stdout and stderr captured.

    The environment is the test's, minus TF_CPP_MIN_LOG_LEVEL (a user does not set it; the CLI
    must be quiet by itself), plus `env`.
    """
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=cwd,
                          env=_user_environment(env), capture_output=True, text=True,
                          timeout=timeout)


def run_script(script: str | Path, *args: str, cwd: str | Path | None = None,
               timeout: float = 600) -> subprocess.CompletedProcess:
    """`python <script> <args>` in a fresh process, in `run_cli`'s environment.

    Example:
        >>> run_script(ROOT / "benchmarks" / "fit_speed.py", "--smoke", cwd=tmp_path)
    """
    return subprocess.run([sys.executable, str(script), *map(str, args)], cwd=cwd,
                          env=_user_environment(), capture_output=True, text=True,
                          timeout=timeout)


def _user_environment(env: dict[str, str] | None = None) -> dict[str, str]:
    """The test's environment without TF_CPP_MIN_LOG_LEVEL, the repository first on the path."""
    environment = {key: value for key, value in os.environ.items()
                   if key != "TF_CPP_MIN_LOG_LEVEL"}
    environment["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), *filter(None, [environment.get("PYTHONPATH")])])
    environment.update(env or {})
    return environment


def assert_cli_error(result: subprocess.CompletedProcess, *fragments: str) -> str:
    """Exit code 2 and exactly one stderr line, `error: ...`, holding every fragment.

    Returns:
        The error line.
    """
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, (result.returncode, result.stderr[-3000:])
    assert len(lines) == 1, result.stderr[-3000:]
    assert lines[0].startswith("error: "), lines
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]
