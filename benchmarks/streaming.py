"""Data larger than memory: peak memory and throughput of a streamed run on CSV shards.

Generates `--rows` rows of the smartwatch schema (`datasets.smartwatch`, a fresh seed per
chunk, so memory stays at one chunk) as `--shards` CSV files in a temporary folder, then runs

    python -m tasks.binary_classify --data 'DIR/*.csv' --epochs 1 --batch-size B ...

in a subprocess: one epoch over every training row, with the run's usual validation, scores,
baselines, exports and report. Measured: the child's peak resident memory (`ru_maxrss` from
`os.wait4`, the kernel's high-water mark, so nothing between polls is missed), the floor of any
run (a process that only imports TensorFlow and Keras), the time to list, sample and count the
shards (one pass over every row, which also draws the samples held in memory), the fit, and
training rows per second (streamed training rows / fit seconds, tracing and the epoch's
validation included). Goal (issue 7, item 6): peak RSS under 1.5 GB.

    python benchmarks/streaming.py [--rows 2000000] [--shards 20] [--write]
    python benchmarks/streaming.py --smoke   # 2,000 rows in 2 shards, no exports
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from doc_section import write_section
from smoke import parse_args

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from datasets.smartwatch import TARGET, generate_smartwatch  # noqa: E402

GOAL_BYTES = 1.5e9


def write_shards(folder: Path, rows: int, shards: int, seed: int = 100) -> int:
    """Writes `rows` generated rows as `shards` CSV files, one chunk in memory at a time.

    Returns:
        Bytes written.
    """
    folder.mkdir(parents=True)
    per_shard = -(-rows // shards)
    for index in range(shards):
        count = min(per_shard, rows - index * per_shard)
        if count <= 0:
            break
        generate_smartwatch(count, seed=seed + index).to_csv(
            folder / f"part-{index:03d}.csv", index=False, lineterminator="\n")
    return sum(path.stat().st_size for path in folder.iterdir())


def peak_rss(command: list[str], cwd: Path) -> tuple[int, float, int]:
    """Runs `command`; returns its exit code, wall seconds and peak RSS in bytes."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2",
                                                      "PYTHONPATH": str(ROOT)})
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, time.perf_counter() - started, usage.ru_maxrss * 1024  # KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--shards", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--export", default="keras,savedmodel,tflite,tflite_int8")
    parser.add_argument("--write", action="store_true", help="update docs/BENCHMARKS.md")
    args = parse_args(parser, rows=2000, shards=2, export="none")
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        started = time.perf_counter()
        size = write_shards(work / "shards", args.rows, args.shards)
        generated = time.perf_counter() - started
        print(f"generated {args.rows:,} rows in {args.shards} shards ({size / 1e6:,.0f} MB) in "
              f"{generated:.0f} s", flush=True)
        code, _, floor = peak_rss([sys.executable, "-c", "import tensorflow, keras"], work)
        command = [sys.executable, "-m", "tasks.binary_classify", "--data",
                   str(work / "shards" / "*.csv"), "--target", TARGET, "--epochs", "1",
                   "--batch-size", str(args.batch_size), "--export", args.export,
                   "--run-dir", str(work / "run")]
        code, seconds, peak = peak_rss(command, work)
        if code != 0:
            raise SystemExit(f"the streamed run failed with exit code {code}")
        metrics = json.loads((work / "run" / "metrics.json").read_text())
    streaming, timing = metrics["streaming"], metrics["timing"]
    train = metrics["rows"]["train"]
    baselines = metrics["baselines"]
    shown = " ".join("'DIR/*.csv'" if part.endswith("*.csv") else part
                     for part in command[1:-2] if part)
    text = "\n".join([
        "| measure | value |",
        "|---|---|",
        f"| data | {args.rows:,} rows of the smartwatch schema in {args.shards} CSV shards, "
        f"{size / 1e6:,.0f} MB |",
        f"| streamed training rows (one epoch) | {train:,} |",
        f"| held in memory | seeded uniform samples of {streaming['sample_rows']:,} training rows, "
        f"{streaming['held_out_rows']['validation']:,} validation, "
        f"{streaming['held_out_rows']['test']:,} test |",
        f"| **peak RSS of the run** | **{peak / 1e9:.2f} GB** (goal < {GOAL_BYTES / 1e9:.1f} GB: "
        f"{'met' if peak < GOAL_BYTES else 'NOT met'}) |",
        f"| peak RSS of `import tensorflow, keras` alone | {floor / 1e9:.2f} GB |",
        f"| list, sample and count the shards | {streaming['load_seconds']:.1f} s "
        f"({args.rows / streaming['load_seconds']:,.0f} rows/s) |",
        f"| fit, one epoch (batch {args.batch_size}) | {timing['fit_seconds']:.1f} s |",
        f"| **training throughput** | **{train / timing['fit_seconds']:,.0f} rows/s** |",
        f"| whole process (import, load, fit, score, baselines, exports, report) | "
        f"{seconds:.0f} s |",
        f"| test accuracy ({metrics['rows']['test']:,} rows) | "
        f"{metrics['test']['accuracy']:.4f} (baselines fitted on the sample: "
        + ", ".join(f"{name} {scores['accuracy']:.4f}" for name, scores in baselines.items())
        + ") |",
        "",
        f"Command: `python benchmarks/streaming.py --rows {args.rows} --shards {args.shards}"
        f"{' --write' if args.write else ''}{' --smoke' if args.smoke else ''}`, "
        f"which runs `python {shown}`; "
        f"{platform.machine()}, {os.cpu_count()} CPUs, shared: 1-minute load average "
        f"{load_before:.1f} before the run, {os.getloadavg()[0]:.1f} after it. One run, not a "
        "median; memory is what the goal is about, and it hardly varies with the load.",
    ])
    print("\n" + text)
    if args.write:
        write_section("streaming", text)


if __name__ == "__main__":
    main()
