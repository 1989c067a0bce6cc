"""The search's settings: flags, the space from the registry, narrowing and fixing, resume checks.

Whole searches run in test_tuning_runs.py.
"""

from __future__ import annotations

import json
import os

import keras_tuner
import numpy as np
import pandas as pd
import pytest

import zoo
from common.errors import InputError
from tasks.binary_classify import default_config
from tasks.cli import config_from_args
from tasks.engine import staging, tuner_oracle, tuning
from tests.helpers import assert_one_error_line, run_main
from zoo.search_space import Choice, Float, Int


def parse(*argv: str):
    return config_from_args(default_config, list(argv), "tasks.binary_classify", "")


def test_search_flags_map_to_the_tune_section():
    config = parse("--tune", "--trials", "7", "--tuner", "bayesian", "--max-epochs", "12",
                   "--overwrite", "--set", "tune.space.learning_rate=[1e-3, 1e-2]")
    tune = config.tune
    assert (tune.enabled, tune.trials, tune.tuner, tune.max_epochs, tune.overwrite) == (
        True, 7, "bayesian", 12, True)
    assert tune.space == {"learning_rate": [1e-3, 1e-2]}
    assert parse().tune.enabled is False
    assert parse().tune.trials == 20 and parse().tune.max_epochs == 50
    assert parse().tune.tuner == "random"


def test_explicit_model_and_train_settings_are_recorded_as_fixed():
    config = parse("--tune", "--learning-rate", "0.003", "--set", "model.hidden_units=[32]",
                   "--set", "model.params.l2=1e-4", "--set", "data.max_categories=9")
    assert config.tune.fixed == ["train.learning_rate", "model.hidden_units", "model.l2"]
    assert parse("--learning-rate", "0.003").tune.fixed == []  # not a search: nothing recorded


@pytest.mark.parametrize(("argv", "fragments"), [
    (["--trials", "5"], ["--trials only apply to a hyperparameter search", "Add --tune"]),
    (["--overwrite", "--max-epochs", "3"], ["--max-epochs, --overwrite only apply", "--tune"]),
    (["--tune", "--trials", "0"], ["tune.trials (--trials) must be at least 1", "Received: 0"]),
    (["--tune", "--max-epochs", "0"], ["tune.max_epochs (--max-epochs) must be at least 1"]),
    (["--tune", "--tuner", "grid"], ["argument --tuner: invalid choice: 'grid'", "random"]),
    (["--tune", "--set", "tune.tuner=grid"], ["tune.tuner (--tuner) must be one of random, "
                                              "hyperband, bayesian", "'grid'"]),
    (["--tune", "--set", "tune.space=3"], ["tune.space takes a JSON object"]),
])
def test_bad_search_flags_exit_2_with_one_line(capsys, argv, fragments):
    code, lines = run_main(capsys, "--data", "breast_cancer", *argv)
    assert code == 2
    assert_one_error_line(lines, *fragments)


@pytest.mark.parametrize(("setting", "fragments"), [
    ("tune.space.learning_rte=[1e-3,1e-2]",
     ["tune.space.learning_rte: model 'mlp' has no hyperparameter", "learning_rate, l2"]),
    ("tune.space.learning_rate=[1e-5,1e-2]",
     ["narrows the range 0.0001..0.01 (log scale)", "two numbers inside it",
      "Received: tune.space.learning_rate=[1e-05, 0.01]"]),
    ("tune.space.depth=[1.5,3]", ["two integers inside it"]),
    ("tune.space.depth=2.5", ["tune.space.depth takes [low, high], a list of choices or one"]),
    ("tune.space.optimizer=[\"adam\",\"lbfgs\"]", ["'lbfgs' is not one of them"]),
    ("tune.space.optimizer=lbfgs", ["train.optimizer (--optimizer) must be one of"]),
    ("tune.space.l2=small", ["tune.space.l2 takes [low, high], a list of choices or one value"]),
])
def test_bad_narrowing_exits_2_before_anything_is_written(capsys, tmp_path, setting, fragments):
    run_dir = tmp_path / "run"
    code, lines = run_main(capsys, "--data", "breast_cancer", "--tune", "--set", setting,
                           "--run-dir", str(run_dir))
    assert code == 2
    assert_one_error_line(lines, *fragments)
    assert not list(tmp_path.iterdir())


def test_a_model_without_a_search_space_cannot_be_tuned(capsys):
    zoo.register_model("test_untunable")(zoo.get_builder("mlp"))
    try:
        code, lines = run_main(capsys, "--data", "breast_cancer", "--tune", "--model",
                               "test_untunable")
    finally:
        zoo.unregister_model("test_untunable")
    assert code == 2
    assert_one_error_line(lines, "model 'test_untunable' declares no search space")


def test_the_space_comes_from_the_registry_when_nothing_narrows_it():
    space = tuning.resolve_space(parse("--tune"))
    assert space.search == zoo.get_search_space("mlp").hyperparameters


def test_narrowing_fixing_and_explicit_settings():
    space = tuning.resolve_space(parse(
        "--tune", "--set", "tune.space.learning_rate=[1e-3,1e-2]",
        "--set", "tune.space.optimizer=[\"adam\",\"rmsprop\"]", "--set", "tune.space.l2=1e-4",
        "--set", "tune.space.depth=[2,3]", "--set", "model.dropout_rate=0.25"))
    search = space.search
    assert search["learning_rate"] == Float(1e-3, 1e-2, log=True)
    assert search["optimizer"] == Choice(("adam", "rmsprop"))
    assert search["l2"] == 1e-4
    assert search["depth"] == Int(2, 3)
    assert search["dropout_rate"] == 0.25
    assert search["width"] == zoo.get_search_space("mlp").hyperparameters["width"]
    # Fixing a derived argument takes its inputs out of the search.
    space = tuning.resolve_space(parse("--tune", "--set", "model.hidden_units=[16,8]",
                                       "--optimizer", "sgd"))
    assert "width" not in space.search and "depth" not in space.search
    assert space.search["optimizer"] == "sgd"
    params, train = tuning.configure(parse("--tune", "--set", "model.hidden_units=[16,8]"),
                                     space, {"learning_rate": 0.005, "l2": 1e-3}, epochs=9)
    assert params["hidden_units"] == [16, 8] and params["l2"] == 1e-3
    assert (train.learning_rate, train.epochs) == (0.005, 9)


def test_narrowing_a_setting_fixed_elsewhere_is_refused():
    with pytest.raises(InputError, match="another setting fixes"):
        tuning.resolve_space(parse("--tune", "--set", "model.l2=1e-3",
                                   "--set", "tune.space.l2=[1e-5,1e-3]"))


def test_trial_values_become_builder_arguments_and_training_settings():
    config = parse("--tune")
    space = tuning.resolve_space(config)
    values = {"learning_rate": 2e-3, "l2": 1e-5, "dropout_rate": 0.3, "width": 32, "depth": 3,
              "optimizer": "rmsprop"}
    params, train = tuning.configure(config, space, values, epochs=50)
    assert params == {"hidden_units": [32, 16, 8], "dropout_rate": 0.3, "l2": 1e-5}
    assert (train.learning_rate, train.optimizer, train.epochs) == (2e-3, "rmsprop", 50)
    assert train.batch_size == config.train.batch_size
    assert config.train.learning_rate == 1e-3  # the run's own settings are left alone


def test_keras_tuner_samples_step_size_and_penalty_on_a_log_scale():
    space = tuning.resolve_space(parse("--tune", "--set", "tune.space.width=64"))
    hp = tuner_oracle.hyperparameters(space.search)
    kinds = {entry.name: entry for entry in hp.space}
    assert kinds["learning_rate"].sampling == "log" and kinds["l2"].sampling == "log"
    assert kinds["dropout_rate"].sampling == "linear"
    assert isinstance(kinds["width"], keras_tuner.engine.hyperparameters.Fixed)
    samples = np.array([kinds["learning_rate"].random_sample(seed) for seed in range(400)])
    assert samples.min() >= 1e-4 and samples.max() <= 1e-2
    # Evenly spread in log10: half below 1e-3 (a linear scale would put 9% there).
    assert 0.4 < np.mean(samples < 1e-3) < 0.6
    assert 0.2 < np.mean(samples < 10 ** -2.5) - np.mean(samples < 10 ** -3.5) < 0.8


def test_trial_seeds_depend_on_the_seed_and_trial_only():
    assert tuner_oracle.trial_seed(0, "03") == tuner_oracle.trial_seed(0, "03")
    assert len({tuner_oracle.trial_seed(seed, trial) for seed in (0, 1)
                for trial in ("00", "01", "02")}) == 6


def test_a_search_with_other_settings_is_not_resumed(tmp_path):
    config = parse("--tune", "--trials", "4")
    expected = tuning.fingerprint(config, tuning.resolve_space(config), {"data": "abc"})
    tuning.check_resume(None, expected)
    state = tmp_path / "tuner"
    state.mkdir()
    (state / tuning.FINGERPRINT).write_text(__import__("json").dumps(expected))
    tuning.check_resume(state, expected)
    changed = parse("--tune", "--trials", "5", "--set", "tune.space.l2=[1e-5,1e-3]")
    with pytest.raises(InputError) as info:
        tuning.check_resume(state, tuning.fingerprint(changed, tuning.resolve_space(changed),
                                                      {"data": "abc"}))
    message = str(info.value)
    assert "holds a search started with other settings (search_space, trials 4 -> 5)" in message
    assert "--overwrite" in message and "--run-dir" in message


def test_distributed_role_comes_from_keras_tuner_variables(monkeypatch):
    for name in ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT"):
        monkeypatch.delenv(name, raising=False)
    assert tuning.role() == "local"
    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
    with pytest.raises(InputError, match="KERASTUNER_ORACLE_PORT is not"):
        tuning.role()
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", "8000")
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "chief")
    assert tuning.role() == "chief"
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "tuner1")
    assert tuning.role() == "worker"


def touch(path, text, when):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.utime(path, (when, when))


def test_the_newest_tuner_state_is_carried_into_the_new_stage(tmp_path):
    final = tmp_path / "run"
    touch(final / "tuner" / "state", "finished run", 1000)
    touch(final / "config.json", "{}", 1000)
    touch(tmp_path / "run.failed" / "tuner" / "state", "failed run", 2000)
    touch(tmp_path / "run.partial" / "tuner" / "state", "killed run", 3000)
    touch(tmp_path / "run.partial" / "metrics.json", "stale", 3000)
    assert staging.newest_state(final, "tuner") == (tmp_path / "run.partial" / "tuner").resolve()
    with staging.staged_directory(final, carry=("tuner",)) as stage:
        assert sorted(path.name for path in stage.iterdir()) == ["tuner"]
        assert (stage / "tuner" / "state").read_text() == "killed run"
    assert (final / "tuner" / "state").read_text() == "killed run"
    # A finished run newer than an old failure: its state is copied, the failure kept.
    touch(final / "tuner" / "state", "finished again", 4000)
    with pytest.raises(RuntimeError), staging.staged_directory(final, carry=("tuner",)) as stage:
        assert (stage / "tuner" / "state").read_text() == "finished again"
        raise RuntimeError("a failing run")
    assert (final / "tuner" / "state").read_text() == "finished again"
    with staging.staged_directory(final) as stage:
        assert not list(stage.iterdir())


@pytest.mark.parametrize(("tuner", "kind"), [
    ("random", keras_tuner.oracles.RandomSearchOracle),
    ("hyperband", keras_tuner.oracles.HyperbandOracle),
    ("bayesian", keras_tuner.oracles.BayesianOptimizationOracle),
])
def test_each_tuner_gets_its_oracle_with_the_trial_budget_and_a_fixed_seed(tuner, kind):
    config = parse("--tune", "--tuner", tuner, "--trials", "6", "--max-epochs", "9", "--seed",
                   "0")
    oracle = tuner_oracle.make_oracle(config.tune, config.runtime.seed, tuning.OBJECTIVE,
                                     tuning.resolve_space(config).search)
    assert type(oracle) is kind
    assert oracle.max_trials == 6
    assert oracle.seed == 1  # keras-tuner would draw a random seed for 0
    assert oracle.objective.name == "validation_loss" and oracle.objective.direction == "min"
    if tuner == "hyperband":
        assert oracle.max_epochs == 9


def test_a_trial_finished_just_before_a_kill_is_not_run_again(tmp_path):
    """keras-tuner writes trial.json, then oracle.json: a kill between the two must not rerun."""
    config = parse("--tune", "--trials", "3", "--seed", "0")
    space = tuning.resolve_space(config)
    calls = []

    def evaluate(values, epochs, folder, seed):
        calls.append(folder.name)
        return {tuning.OBJECTIVE: float(values["learning_rate"]), "epochs": 1.0, "seconds": 0.0}

    directory = tmp_path / "tuner"
    first = tuning.search(config, space, evaluate, directory)
    assert len(calls) == 3 and first.trials_run == 3
    # The state a kill leaves after the last trial's trial.json was written as COMPLETED but
    # before oracle.json was saved: the trial is still ongoing there.
    state_file = directory / tuning.PROJECT / "oracle.json"
    state = json.loads(state_file.read_text())
    last = state["end_order"].pop()
    state["ongoing_trials"] = {"tuner0": last}
    state_file.write_text(json.dumps(state))

    calls.clear()
    resumed = tuning.search(config, space, evaluate, directory)
    assert calls == []
    assert resumed.trials_run == 0
    pd.testing.assert_frame_equal(resumed.trials, first.trials)
