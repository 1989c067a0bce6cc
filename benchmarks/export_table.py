"""Size, agreement and speed of every export format on the demo sets, in one process per set.

Each dataset's default template runs as a user would, with `--export all`; the run's own judge
and latency measurement (tasks/engine/) fill the table, here with a longer
timing budget per measurement than a normal run uses. Speeds are compared with Keras `predict`
on one row in the same process, so machine noise cancels out of the ratios.

Goals (issue 8): int8 file at most 0.3x the float32 TFLite bytes with at most 0.5 point accuracy
drop; single-row LiteRT at least 20x faster than `model.predict`.

    python benchmarks/export_table.py [--datasets smartwatch,wine,store_sales,digits] [--write]
    python benchmarks/export_table.py --smoke   # wine only, 2 epochs, short timings
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from doc_section import write_section  # noqa: E402
from smoke import parse_args  # noqa: E402

from datasets.named_images import NAMED_IMAGES  # noqa: E402
from datasets.registry import TABULAR  # noqa: E402
from tasks import binary_classify, image_classify, multiclass_classify, regression  # noqa: E402
from tasks.cli import config_from_args  # noqa: E402
from tasks.engine import latency, pipeline  # noqa: E402

TASKS = {"binary": binary_classify, "multiclass": multiclass_classify, "regression": regression}
DATASETS = ("smartwatch", "wine", "store_sales", "digits")


def measure(name: str, work: Path, epochs: int | None = None) -> dict:
    task = image_classify if name in NAMED_IMAGES else TASKS[TABULAR[name].problem]
    argv = ["--data", name, "--export", "all", "--run-dir", str(work / name)]
    config = config_from_args(task.default_config,
                              argv + (["--epochs", str(epochs)] if epochs else []),
                              task.__name__, "")
    with contextlib.redirect_stdout(io.StringIO()):
        return pipeline.run(config).metrics


def rows(name: str, metrics: dict) -> list[str]:
    exports, reference = metrics["exports"], metrics["latency"]
    predict_ms = reference["keras_predict"]["single_row_ms"]
    float_bytes = exports["tflite"]["bytes"]
    lines = []
    for runtime, timing in {**reference, **{key: value["latency"]
                                            for key, value in exports.items()}}.items():
        result = exports.get(runtime, {})
        metric = result.get("metric")
        quality = ""
        if metric is not None:
            agree = result.get("label_agreement")
            quality = (f"{metric['drop']:+.2%} RMSE" if metric["relative"]
                       else f"{metric['drop'] * 100:+.1f} pt, agree {agree:.3f}")
        elif result:
            quality = (f"max diff {result['max_scaled_diff']:.0e} std" if metrics["problem"]
                       == "regression" else f"max diff {result['max_abs_diff']:.0e}")
        lines.append(
            f"| {name} | {runtime} | {format(result['bytes'], ',') if result else ''} | "
            + (f"{result['bytes'] / float_bytes:.2f}" if runtime.startswith("tflite") else "")
            + f" | {quality} | {'' if not result else 'yes' if result['passed'] else 'NO'} | "
            f"{timing['single_row_ms']:.3f} | {predict_ms / timing['single_row_ms']:.0f} | "
            f"{timing['batch_rows_per_s']:,.0f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--budget", type=float, default=1.0,
                        help="seconds of repeated calls per timing (a run uses 0.1)")
    parser.add_argument("--epochs", type=int, help="instead of each template's default")
    parser.add_argument("--write", action="store_true", help="update docs/BENCHMARKS.md")
    args = parse_args(parser, datasets="wine", budget=0.01, epochs=2)
    latency.BUDGET_SECONDS = args.budget
    lines = ["| dataset | runtime | bytes | x tflite | vs Keras | passed | 1 row (ms) | "
             "x predict | rows/s (256) |", "|---|---|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as work:
        for name in args.datasets.split(","):
            lines += rows(name, measure(name, Path(work), args.epochs))
            print(f"{name} done", flush=True)
    text = "\n".join(lines)
    print("\n" + text)
    if args.write:
        write_section("export-table", text)


if __name__ == "__main__":
    main()
