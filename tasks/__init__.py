"""Task templates: configuration, the engine (`tasks/engine/`), the CLIs and `tasks.run`.

Run a task with `python -m tasks.<name>`; `python -m tasks.<name> --help` lists its flags.
From Python: `tasks.run("binary_classify", data="my.csv", target="bought")` (see `tasks.api`).
"""

import time

# When the process started (before TensorFlow's import), for the run's `process_seconds`.
PROCESS_START = time.time()

from tasks.engine import native_logs  # noqa: E402  (after the clock starts)

# TensorFlow's native start-up notices (absl, oneDNN) are noise for CLI users, and whether they
# appear depends on the CPU: keep them off the terminal unless asked for (`--verbose`).
native_logs.install()

API = ("run", "configure", "default_config", "RunResult")


def __getattr__(name: str):
    """`tasks.run` and the rest of `tasks.api`, imported on first use (import stays light)."""
    if name in API:
        from tasks import api

        return getattr(api, name)
    if name == "InputError":
        from common.errors import InputError

        return InputError
    raise AttributeError(f"module 'tasks' has no attribute {name!r}")
