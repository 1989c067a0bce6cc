"""A resumed run reads a backup and a tuner folder it did not write itself: damaged or altered
files stop it with one `error:` line (exit 2) that names the file, and nothing else is lost.

The backup is a real one, left by a fit that a real SIGTERM stopped (sent to this process, so
the cases run in-process and fast); the tuner folder is a real one, of a search that a real
SIGTERM stopped after its first trial. Each case copies it, breaks one file, runs the same
command again and compares every byte of the folder before and after. (A weights file cut in
half, as a kill while Keras writes it leaves it, is not damage: the previous copy is used,
tests/tasks/test_preemption.py.)
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tasks.binary_classify import main
from tasks.engine import resume, state_files
from tests.helpers import assert_one_error_line, completed, epochs_done, run_main

BACKUP_ARGS = ["--target", "bought", "--export", "none", "--epochs", "6",
               "--set", "runtime.backup_seconds=0"]
SEARCH_ARGS = ["--target", "bought", "--export", "none", "--tune", "--trials", "2",
               "--max-epochs", "2", "--set", "model.dropout_rate=0.1"]
DAMAGED = "damaged or changed after this program saved it"


def stop_when(ready, signal_number: int = signal.SIGTERM) -> threading.Thread:
    """Sends this process a real signal once `ready()` is true."""
    def watch() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if ready():
                os.kill(os.getpid(), signal_number)
                return
            time.sleep(0.01)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


@pytest.fixture(scope="module")
def stopped_run(user_csv, tmp_path_factory) -> Path:
    """The stage of a run stopped by SIGTERM after a few epochs: `run.partial/backup`."""
    folder = tmp_path_factory.mktemp("stopped")
    stop_when(lambda: epochs_done(folder / "run.partial" / "history.csv") >= 3)
    assert main(["--data", str(user_csv), "--run-dir", str(folder / "run"), *BACKUP_ARGS]) == 143
    backup = folder / "run.partial" / resume.BACKUP_DIR
    names = {path.name for path in backup.iterdir()}
    assert {"latest.weights.h5", "latest.weights.h5.bkp", "training_metadata.json.bkp"} <= names
    assert len(resume.saved_states(backup)) == 2 and list(backup.glob("best-*.npz"))
    return folder


@pytest.fixture(scope="module")
def stopped_search(user_csv, tmp_path_factory) -> Path:
    """The stage of a search stopped by SIGTERM once a trial finished: `run.partial/tuner`."""
    folder = tmp_path_factory.mktemp("search")
    stop_when(lambda: completed(folder / "run.partial" / "tuner" / "search"))
    assert main(["--data", str(user_csv), "--run-dir", str(folder / "run"), *SEARCH_ARGS]) == 143
    return folder


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes()
            for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.fixture
def backup_copy(stopped_run, tmp_path) -> Path:
    """A copy of the stopped run's stage, beside an earlier good run of the same run dir."""
    shutil.copytree(stopped_run / "run.partial", tmp_path / "run.partial")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text('{"earlier": "good run"}')
    return tmp_path / "run.partial" / resume.BACKUP_DIR


def latest_state(backup: Path) -> Path:
    return backup / resume.STATE.format(epoch=max(resume.saved_states(backup)))


def edit_json(path: Path, change) -> None:
    value = json.loads(path.read_text())
    change(value)
    path.write_text(json.dumps(value))


class RunsCode:
    """Unpickling this creates a folder: proof that nothing was unpickled if none appears."""

    marker = ""

    def __reduce__(self):
        return os.makedirs, (self.marker,)


def pickled_best_weights(backup: Path) -> Path:
    name = json.loads(latest_state(backup).read_text())["early_stopping"]["best_weights"]
    payload = RunsCode()
    payload.marker = str(backup.parent.parent / "code-ran")
    np.savez(backup / name, w0=np.array([payload], dtype=object))
    return backup / name


def garbage(path: Path) -> Path:
    path.write_bytes(b"\x00\xffnot what was saved")
    return path


def set_state(change):
    def tamper(backup: Path) -> Path:
        edit_json(latest_state(backup), change)
        return latest_state(backup)
    return tamper


def checkpoint_list(backup: Path) -> Path:
    path = backup / "checkpoint"
    path.write_text('model_checkpoint_path: "../../../etc/ckpt-1"\n'
                    'all_model_checkpoint_paths: "../../../etc/ckpt-1"\n')
    return path


def metadata_of_wrong_type(backup: Path) -> Path:
    path = backup / resume.KERAS_METADATA
    path.write_text('{"epoch": "../../etc", "batch": 0}')
    return path


BACKUP_CASES = {
    "state_not_json": (lambda backup: garbage(latest_state(backup)), "is not valid JSON"),
    "state_wrong_type": (set_state(lambda state: state.update(history=5)),
                         "should hold a string at history"),
    "state_path_escapes": (set_state(lambda state: state["early_stopping"].update(
        best_weights="../../../etc/best-1.npz")), "names the file '../../../etc/best-1.npz'"),
    "state_history_rewritten": (set_state(lambda state: state.update(
        history="epoch,loss\n0,1\n7,1\n")), "not the"),
    "npz_with_pickled_object": (pickled_best_weights, "holds something other than numeric"),
    "npz_not_a_zip": (lambda backup: garbage(next(backup.glob("best-*.npz"))),
                      "is not a readable .npz file"),
    "fingerprint_not_json": (lambda backup: garbage(backup / resume.FINGERPRINT),
                             "is not valid JSON"),
    "metadata_wrong_type": (metadata_of_wrong_type, "should record the epochs done"),
    "checkpoint_list_escapes": (checkpoint_list, "etc/ckpt-1', which is not one of this"),
    "both_weights_copies_garbage": (
        lambda backup: [garbage(backup / "latest.weights.h5.bkp"),
                        garbage(backup / resume.KERAS_WEIGHTS)][1],
        "is not a weights file, nor is its previous copy"),
}


@pytest.mark.parametrize("case", BACKUP_CASES)
@pytest.mark.slow
def test_a_damaged_backup_is_one_error_line_and_nothing_is_lost(case, backup_copy, user_csv,
                                                                 capsys):
    tamper, fragment = BACKUP_CASES[case]
    damaged = tamper(backup_copy)
    folder = backup_copy.parent.parent
    before = snapshot(folder)
    code, lines = run_main(capsys, "--data", str(user_csv), "--run-dir", str(folder / "run"),
                           *BACKUP_ARGS)
    assert code == 2
    assert_one_error_line(lines, str(damaged), fragment, DAMAGED,
                          f"Delete the folder {backup_copy}")
    assert snapshot(folder) == before  # the earlier run, the backup: every byte kept
    assert not (folder / "code-ran").exists()


def test_npz_loading_never_unpickles(tmp_path):
    payload = RunsCode()
    payload.marker = str(tmp_path / "code-ran")
    np.savez(tmp_path / "best-1.npz", w0=np.array([payload], dtype=object))
    with pytest.raises(state_files.InputError, match="other than numeric arrays"):
        state_files.read_best_weights(tmp_path, "best-1.npz")
    assert not (tmp_path / "code-ran").exists()


# The tuner folder ------------------------------------------------------------------------------

def first_trial(tuner: Path) -> Path:
    return sorted(tuner.glob("search/trial_*/trial.json"))[0]


def edit_trial(change):
    def tamper(tuner: Path) -> Path:
        edit_json(first_trial(tuner), change)
        return first_trial(tuner)
    return tamper


def edit_oracle(change):
    def tamper(tuner: Path) -> Path:
        edit_json(tuner / "search" / "oracle.json", change)
        return tuner / "search" / "oracle.json"
    return tamper


def lambda_hyperparameter(trial: dict) -> None:
    trial["hyperparameters"]["space"][0]["class_name"] = "Lambda"


def metric_as_text(trial: dict) -> None:
    observations = next(iter(trial["metrics"]["metrics"].values()))["observations"]
    observations[0]["value"] = ["__import__('os')"]


def int_without_bounds(trial: dict) -> None:
    trial["hyperparameters"]["space"].append({"class_name": "Int",
                                              "config": {"name": "extra"}})


TUNER_CASES = {
    "oracle_not_json": (lambda tuner: garbage(tuner / "search" / "oracle.json"),
                        "is not valid JSON"),
    "fingerprint_a_list": (lambda tuner: [(tuner / "fingerprint.json").write_text("[1, 2]"),
                                          tuner / "fingerprint.json"][1],
                           "should hold a JSON object, not a list"),
    "oracle_trial_id_escapes": (edit_oracle(lambda oracle: oracle["end_order"].append(
        "x/../../../../etc")), "holds the trial id"),
    "trial_id_escapes": (edit_trial(lambda trial: trial.update(trial_id="../../../tmp/evil")),
                         "holds the trial id"),
    "oracle_wrong_type": (edit_oracle(lambda oracle: oracle.update(seed="abc")),
                          "should hold a whole number at seed"),
    "hyperparameter_class": (edit_trial(lambda_hyperparameter), "of class 'Lambda'"),
    "metric_not_a_number": (edit_trial(metric_as_text), "should hold a number"),
    "keras_tuner_cannot_read_it": (edit_trial(int_without_bounds), "does not load"),
}


@pytest.mark.parametrize("case", TUNER_CASES)
@pytest.mark.slow
def test_a_damaged_tuner_folder_is_one_error_line_and_nothing_is_written(case, stopped_search,
                                                                         tmp_path, user_csv,
                                                                         capsys):
    shutil.copytree(stopped_search / "run.partial", tmp_path / "run.partial")
    tuner = tmp_path / "run.partial" / "tuner"
    tamper, fragment = TUNER_CASES[case]
    damaged = tamper(tuner)
    before = snapshot(tmp_path)
    code, lines = run_main(capsys, "--data", str(user_csv), "--run-dir", str(tmp_path / "run"),
                           *SEARCH_ARGS)
    assert code == 2
    named = damaged if case != "keras_tuner_cannot_read_it" else tuner
    assert_one_error_line(lines, str(named), fragment, DAMAGED, "Pass --overwrite")
    assert snapshot(tmp_path) == before  # nothing staged, no trial run, the search kept
    assert not (tmp_path / "etc").exists() and not Path("/tmp/evil").exists()
