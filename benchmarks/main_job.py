"""Wall time of the main job, `python -m tasks.binary_classify` with no flags, end to end.

Measured as a user sees it (a fresh process: import, train, evaluate, baselines, SavedModel and
TFLite export with parity checks, report), beside the floor every run pays, a process that only
imports TensorFlow and Keras. Each alternates `--repeats` times; medians are printed.

    python benchmarks/main_job.py [--repeats 3]
    python benchmarks/main_job.py --smoke   # one repeat of a 2-epoch run without exports
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from smoke import parse_args

# A smoke run's main job: the same command, shrunk (the numbers then mean nothing).
SMOKE_FLAGS = ["--epochs", "2", "--export", "none"]


def timed(command: list[str], cwd: str) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parse_args(parser, repeats=1)
    job = [sys.executable, "-m", "tasks.binary_classify", *(SMOKE_FLAGS if args.smoke else [])]
    imports, jobs, fits = [], [], []
    with tempfile.TemporaryDirectory() as work:
        for repeat in range(args.repeats):
            imports.append(timed([sys.executable, "-c", "import tensorflow, keras"], work))
            jobs.append(timed(job, work))
            runs = sorted(Path(work, "runs").iterdir())
            metrics = json.loads((runs[-1] / "metrics.json").read_text())
            fits.append(metrics["timing"]["fit_seconds"])
            print(f"repeat {repeat + 1}: import {imports[-1]:.2f} s, main job {jobs[-1]:.2f} s "
                  f"(fit {fits[-1]:.2f} s, test accuracy {metrics['test']['accuracy']:.4f})",
                  flush=True)
    print(f"\n{os.cpu_count()} CPUs, {args.repeats} repeats, medians\n")
    print("| process | seconds |")
    print("|---|---|")
    print(f"| `import tensorflow, keras` only | {statistics.median(imports):.2f} |")
    print(f"| `python -m tasks.binary_classify` | {statistics.median(jobs):.2f} |")
    print(f"| of which `fit` | {statistics.median(fits):.2f} |")
    print(f"\nmain job / import floor: {statistics.median(jobs) / statistics.median(imports):.2f}x")


if __name__ == "__main__":
    main()
