"""Accuracy of each task's default template against scikit-learn baselines, 5-fold CV, one run.

For every dataset, each fold is held out once as the test set; the task's default template runs
on the other rows exactly as a user would run it (`--data train.csv --test-data test.csv`: the
engine splits its own validation rows from the training rows), and the baselines of the same run
are scored on the same test rows. The table gives mean ± standard deviation over the folds.

Goal: the template's mean is at least the best baseline's mean minus one standard deviation (for
RMSE, at most the best mean plus one standard deviation).

    python benchmarks/cv_accuracy.py [--folds 5] [--write]   # --write updates docs/BENCHMARKS.md
    python benchmarks/cv_accuracy.py --datasets iris --set train.batch_size=16   # a variant
    python benchmarks/cv_accuracy.py --smoke   # 2 folds of diabetes, 2 epochs
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from doc_section import write_section  # noqa: E402
from sklearn.model_selection import KFold, StratifiedKFold  # noqa: E402
from smoke import parse_args  # noqa: E402

from datasets.registry import TABULAR, load_frame  # noqa: E402
from tasks import binary_classify, multiclass_classify, regression  # noqa: E402
from tasks.cli import config_from_args  # noqa: E402
from tasks.engine import pipeline, presets  # noqa: E402

TASKS = {"binary": binary_classify, "multiclass": multiclass_classify, "regression": regression}
DATASETS = ("breast_cancer", "smartwatch", "wine", "iris", "diabetes", "store_sales")


def cross_validate(name: str, folds: int, work: Path,
                   overrides: tuple[str, ...] = ()) -> dict[str, list[float]]:
    entry = TABULAR[name]
    frame, _, _ = load_frame(name, entry.problem)
    preset = presets.get_preset(entry.problem)
    splitter = (KFold(folds, shuffle=True, random_state=0) if entry.problem == "regression"
                else StratifiedKFold(folds, shuffle=True, random_state=0))
    scores: dict[str, list[float]] = {}
    for fold, (train_rows, test_rows) in enumerate(splitter.split(frame, frame[entry.target])):
        train_csv, test_csv = work / f"{name}-{fold}-train.csv", work / f"{name}-{fold}-test.csv"
        frame.iloc[train_rows].to_csv(train_csv, index=False)
        frame.iloc[test_rows].to_csv(test_csv, index=False)
        task = TASKS[entry.problem]
        argv = ["--data", str(train_csv), "--test-data", str(test_csv), "--target", entry.target,
                "--export", "none", "--run-dir", str(work / f"{name}-{fold}")]
        argv += ["--positive-label", str(entry.positive_label)] if entry.positive_label else []
        argv += [part for item in overrides for part in ("--set", item)]
        config = config_from_args(task.default_config, argv, task.__name__, "")
        with contextlib.redirect_stdout(io.StringIO()):
            metrics = pipeline.run(config).metrics
        scores.setdefault("template", []).append(metrics["test"][preset.headline])
        for baseline, values in metrics["baselines"].items():
            scores.setdefault(baseline, []).append(values[preset.headline])
        print(f"{name} fold {fold + 1}: template {scores['template'][-1]:.4f}", flush=True)
    return scores


def table(results: dict[str, dict[str, list[float]]], folds: int) -> str:
    lines = ["| dataset | metric | template | best baseline | other baselines | goal met |",
             "|---|---|---|---|---|---|"]
    for name, scores in results.items():
        preset = presets.get_preset(TABULAR[name].problem)
        better = max if preset.higher_is_better else min

        def summary(values: list[float]) -> str:
            return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"

        baselines = {key: values for key, values in scores.items() if key != "template"}
        best = better(baselines, key=lambda key: statistics.mean(baselines[key]))
        best_mean, best_std = statistics.mean(baselines[best]), statistics.stdev(baselines[best])
        mean = statistics.mean(scores["template"])
        met = (mean >= best_mean - best_std if preset.higher_is_better
               else mean <= best_mean + best_std)
        others = "; ".join(f"{key} {summary(values)}" for key, values in baselines.items()
                           if key != best)
        lines.append(f"| {name} | {preset.headline} | {summary(scores['template'])} | {best} "
                     f"{summary(baselines[best])} | {others} | {'yes' if met else 'NO'} |")
    return "\n".join(lines) + f"\n\n{folds}-fold CV, mean ± standard deviation over folds."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--write", action="store_true", help="update docs/BENCHMARKS.md")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="try a variant of every template, e.g. train.batch_size=16")
    # Smoke: a regression set, which no other benchmark's smoke run trains.
    args = parse_args(parser, folds=2, datasets="diabetes", set=["train.epochs=2"])
    with tempfile.TemporaryDirectory() as work:
        results = {name: cross_validate(name, args.folds, Path(work), tuple(args.set))
                   for name in args.datasets.split(",")}
    text = table(results, args.folds)
    print("\n" + text)
    if args.write:
        write_section("cv-accuracy", text)


if __name__ == "__main__":
    main()
