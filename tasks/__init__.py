"""Task templates: configuration, the one runner, export, reports and the CLIs.

Run a task with `python -m tasks.<name>`; `python -m tasks.<name> --help` lists its flags.
"""

import os
import time

# When the process started (before TensorFlow's import), for the run's `process_seconds`.
PROCESS_START = time.time()

# TensorFlow's C++ start-up notices (CPU features, oneDNN) are noise for CLI users.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
