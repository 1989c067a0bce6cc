"""Task templates: configuration, the one runner, export, reports and the CLIs.

Run a task with `python -m tasks.<name>`; `python -m tasks.<name> --help` lists its flags.
"""

import time

# When the process started (before TensorFlow's import), for the run's `process_seconds`.
PROCESS_START = time.time()

from tasks.engine import native_logs  # noqa: E402  (after the clock starts)

# TensorFlow's native start-up notices (absl, oneDNN) are noise for CLI users, and whether they
# appear depends on the CPU: keep them off the terminal unless asked for (`--verbose`).
native_logs.install()
