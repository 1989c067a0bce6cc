"""Whole searches on a tiny CSV: outputs, validation-only search, refit, resume, distribution."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from datasets.preprocessing import TabularPreprocessor
from datasets.registry import load_tabular
from datasets.tabular import features_from_frame
from tasks.binary_classify import main
from tasks.engine import evaluation, fitting
from tests.helpers import (
    ROOT,
    assert_one_error_line,
    completed,
    free_port,
    printed_trials,
    read_metrics,
    run_main,
    subprocess_env,
)

# Every test runs a search or reads the one the session ran.
pytestmark = pytest.mark.slow
TRIALS = 4
# Narrowed and fixed so the search is small; the settings also exercise --set in a real search.
SEARCH = ["--tune", "--trials", str(TRIALS), "--max-epochs", "4", "--export", "none",
          "--set", "tune.space.learning_rate=[1e-3,1e-2]",
          "--set", 'tune.space.optimizer=["adam","rmsprop"]', "--set", "model.dropout_rate=0.1"]


def search_args(user_csv: Path, run_dir: Path, *extra: str) -> list[str]:
    return ["--data", str(user_csv), "--target", "bought", "--run-dir", str(run_dir), *SEARCH,
            *extra]


@pytest.fixture(scope="session")
def tuned_run(user_csv, tmp_path_factory):
    """One finished search, with every `fit_network` call recorded (the rows each fit saw)."""
    run_dir = tmp_path_factory.mktemp("tuned") / "search"
    fits = []
    original = fitting.fit_network

    def recording_fit(network, x, y, plan, train, *args, **kwargs):
        fits.append({"x": {name: values.copy() for name, values in x.items()},
                     "epochs": train.epochs})
        return original(network, x, y, plan, train, *args, **kwargs)

    score_baselines = evaluation.score_baselines

    def recording_baselines(train, *args, **kwargs):
        fits.append({"baselines": len(train)})
        return score_baselines(train, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fitting, "fit_network", recording_fit)
        patch.setattr(evaluation, "score_baselines", recording_baselines)
        assert main(search_args(user_csv, run_dir)) == 0
    return run_dir, fits


def table(run_dir: Path) -> pd.DataFrame:
    return pd.read_csv(run_dir / "trials.csv", dtype={"trial": str})


def test_a_search_writes_its_table_best_configuration_plot_and_report(tuned_run):
    run_dir, _ = tuned_run
    trials = table(run_dir)
    assert len(trials) == TRIALS and trials["trial"].is_unique
    assert (trials["status"] == "COMPLETED").all()
    assert list(trials.columns[:9]) == ["trial", "status", "learning_rate", "l2", "dropout_rate",
                                        "width", "depth", "optimizer", "validation_loss"]
    for column in ["validation_accuracy", "validation_roc_auc", "epochs", "best_epoch",
                   "seconds"]:
        assert column in trials
    # --set narrowed the learning rate and the optimizers, and fixed the dropout rate.
    assert trials["learning_rate"].between(1e-3, 1e-2).all()
    assert set(trials["optimizer"]) <= {"adam", "rmsprop"}
    assert (trials["dropout_rate"] == 0.1).all()
    assert (trials["epochs"] <= 4).all() and (trials["best_epoch"] <= trials["epochs"]).all()

    best = json.loads((run_dir / "best_hyperparameters.json").read_text())
    winner = trials.loc[trials["validation_loss"].idxmin()]
    assert best["trial"] == winner["trial"]
    assert best["hyperparameters"]["learning_rate"] == pytest.approx(winner["learning_rate"])
    assert best["settings"]["hidden_units"][0] == winner["width"]
    assert "--set train.learning_rate=" in best["replay"]

    metrics = read_metrics(run_dir)
    tuning = metrics["tuning"]
    assert tuning["trials"] == TRIALS and tuning["trials_run"] == TRIALS
    assert tuning["best_trial"] == winner["trial"]
    assert tuning["best_validation_loss"] == pytest.approx(winner["validation_loss"])
    assert tuning["trials_per_minute"] > 0 and tuning["search_seconds"] > 0
    assert set(tuning["default"]["test"]) == set(metrics["test"])
    assert tuning["default"]["settings"]["hidden_units"] == [64, 32]
    # The reported validation scores are the best trial's, from the search.
    assert metrics["validation"]["accuracy"] == pytest.approx(winner["validation_accuracy"])
    assert (run_dir / "plots" / "tuning_learning_rate.png").stat().st_size > 0

    report = (run_dir / "report.md").read_text()
    for text in ["## Hyperparameter search", "| setting | default | best |",
                 f"**best** (trial {winner['trial']})", "| default |", "The test rows were not "
                 "used", "plots/tuning_learning_rate.png", "refit on train + validation"]:
        assert text in report, text
    config = json.loads((run_dir / "config.json").read_text())
    assert config["tune"]["enabled"] and config["tune"]["fixed"] == ["model.dropout_rate"]


def test_the_search_sees_only_train_and_validation_rows_and_the_refit_both(tuned_run,
                                                                           user_csv):
    _, fits = tuned_run
    splits = load_tabular(str(user_csv), "binary", target="bought", seed=0)
    features = {name: features_from_frame(getattr(splits, name), splits.schema)
                for name in ("train", "validation")}
    search = TabularPreprocessor(splits.schema).adapt(features["train"])
    merged = {column: np.concatenate([features["train"][column],
                                      features["validation"][column]])
              for column in features["train"]}
    refit = TabularPreprocessor(splits.schema).adapt(merged)
    searched = [fit for fit in fits if "x" in fit and "validation" in fit["x"]]
    refits = [fit for fit in fits if "x" in fit and "validation" not in fit["x"]]
    # The baselines, like the refit, learn from train + validation.
    assert [fit["baselines"] for fit in fits if "baselines" in fit] == [
        len(splits.train) + len(splits.validation)]
    # Every trial plus the default configuration; then the default's and the best's refits.
    assert len(searched) == TRIALS + 1 and len(refits) == 2
    for fit in searched:
        np.testing.assert_array_equal(fit["x"]["train"], search.transform(features["train"]))
        np.testing.assert_array_equal(fit["x"]["validation"],
                                      search.transform(features["validation"]))
    for fit in refits:
        np.testing.assert_array_equal(fit["x"]["train"], refit.transform(merged))
    best = read_metrics(tuned_run[0])["tuning"]
    assert refits[-1]["epochs"] == best["refit"]["epochs"] == best["best"]["best_epoch"]
    assert best["refit"]["rows"] == len(splits.train) + len(splits.validation)


def test_a_changed_search_against_the_same_run_dir_is_refused(tuned_run, user_csv, capsys):
    run_dir, _ = tuned_run
    before = {path: path.stat().st_mtime_ns for path in run_dir.rglob("*")}
    code, lines = run_main(capsys, *search_args(user_csv, run_dir, "--trials", "5"))
    assert code == 2
    assert_one_error_line(lines, "holds a search started with other settings (trials 4 -> 5)",
                          "--overwrite", "another --run-dir")
    assert {path: path.stat().st_mtime_ns for path in run_dir.rglob("*")} == before


def test_overwrite_starts_the_search_over(tuned_run, user_csv, tmp_path):
    run_dir = tmp_path / "copy"
    shutil.copytree(tuned_run[0], run_dir)
    assert main(search_args(user_csv, run_dir, "--trials", "1", "--max-epochs", "2",
                            "--overwrite")) == 0
    assert len(table(run_dir)) == 1
    assert read_metrics(run_dir)["tuning"]["trials_run"] == 1


def test_a_killed_search_resumes_without_rerunning_finished_trials(tuned_run, user_csv,
                                                                   tmp_path, capsys):
    run_dir = tmp_path / "resumed"
    process = subprocess.Popen([sys.executable, "-m", "tasks.binary_classify",
                                *search_args(user_csv, run_dir)], cwd=ROOT, env=subprocess_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = tmp_path / "resumed.partial" / "tuner" / "search"
    deadline = time.monotonic() + 300
    while not completed(state) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done = completed(state)
    assert 1 <= len(done) < TRIALS, done
    assert not run_dir.exists()

    capsys.readouterr()
    assert main(search_args(user_csv, run_dir)) == 0
    rerun = printed_trials(capsys.readouterr().out)
    assert not set(rerun) & done
    assert sorted(done | set(rerun)) == sorted(table(run_dir)["trial"])
    # The same command gives the same table, interrupted or not (seconds aside).
    resumed, uninterrupted = table(run_dir), table(tuned_run[0])
    pd.testing.assert_frame_equal(resumed.drop(columns="seconds"),
                                  uninterrupted.drop(columns="seconds"), rtol=1e-5)


def test_a_chief_and_two_workers_share_one_search(user_csv, tmp_path):
    run_dir = tmp_path / "distributed"
    command = [sys.executable, "-m", "tasks.binary_classify",
               *search_args(user_csv, run_dir, "--max-epochs", "2")]
    network = {"KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT": str(free_port())}
    processes = {
        name: subprocess.Popen(command, cwd=ROOT, text=True, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT,
                               env=subprocess_env(KERASTUNER_TUNER_ID=name, **network))
        for name in ("chief", "worker0", "worker1")}
    outputs = {name: process.communicate(timeout=480)[0] for name, process in processes.items()}
    for name, process in processes.items():
        assert process.returncode == 0, outputs[name][-3000:]
    ran = {name: printed_trials(outputs[name]) for name in ("worker0", "worker1")}
    assert not printed_trials(outputs["chief"])  # the chief only serves the oracle
    all_ran = ran["worker0"] + ran["worker1"]
    assert len(all_ran) == len(set(all_ran)) == TRIALS  # no trial ran twice
    trials = table(run_dir)
    assert sorted(trials["trial"]) == sorted(all_ran)
    assert (trials["status"] == "COMPLETED").all()
    assert read_metrics(run_dir)["tuning"]["trials"] == TRIALS
    assert [path.name for path in tmp_path.iterdir()] == ["distributed"]


def test_the_same_search_in_a_new_process_gives_the_same_table_and_metrics(tuned_run, user_csv,
                                                                            tmp_path):
    """Same command, same seed, a fresh process: the trial table and the tuned run's metrics
    equal the session's search to 1e-6 (seconds aside)."""
    run_dir = tmp_path / "again"
    result = subprocess.run([sys.executable, "-m", "tasks.binary_classify",
                             *search_args(user_csv, run_dir)], cwd=ROOT, env=subprocess_env(),
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    again, first = table(run_dir), table(tuned_run[0])
    pd.testing.assert_frame_equal(again.drop(columns="seconds"), first.drop(columns="seconds"),
                                  rtol=0, atol=1e-6)
    for split in ("test", "validation"):
        a, b = read_metrics(run_dir)[split], read_metrics(tuned_run[0])[split]
        assert a.keys() == b.keys()
        assert all(abs(a[name] - b[name]) <= 1e-6 for name in a), (a, b)
