"""Preemption: real SIGTERM and SIGINT sent to real training processes, and the same command
resuming the run (one process, a search, and one of two localhost workers).

Each stopped process must print exactly one line on stderr and exit 128 + the signal's number;
its backup must be the one the signal made (the default `backup_seconds`, 30, never comes due in
these short fits); the resumed run must say `resumed from epoch N of M` with N the epoch the
signal stopped (or the next one, when the signal came as an epoch ended), and end with every
epoch once in history.csv. An earlier good run in the run directory stays untouched meanwhile.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from tasks.binary_classify import main
from tasks.config import TrainConfig
from tasks.engine import distribute, distributed_fit, interrupt, resume
from tasks.engine.callbacks import standard_callbacks
from tests.helpers import (
    ROOT,
    completed,
    epochs_done,
    free_port,
    printed_trials,
    subprocess_env,
)

EPOCHS = 8
# Ten steps an epoch, each its own call into TensorFlow: most signals land mid-epoch.
FIT = ["--target", "bought", "--export", "none", "--epochs", str(EPOCHS), "--batch-size", "16",
       "--set", "train.steps_per_execution=1", "--set", "train.early_stopping_patience=0"]
SEARCH = ["--target", "bought", "--export", "none", "--tune", "--trials", "2", "--max-epochs",
          "2", "--set", "model.dropout_rate=0.1"]
STOPPED = re.compile(r"stopped by (SIGTERM|SIGINT)( \(sent to another task of the cluster\))? "
                     r"(during|at the end of) epoch (\d+) of (\d+): backup saved in (\S+); "
                     r"run the same command to resume")
RESUMED = re.compile(r"^resumed from epoch (\d+) of (\d+)", re.MULTILINE)


def start(command: list[str], logs: Path, **env: str) -> subprocess.Popen:
    """The command in a new process, its stdout and stderr in `logs`.out / .err."""
    return subprocess.Popen(command, cwd=ROOT, env=subprocess_env(**env),
                            stdout=logs.with_suffix(".out").open("w"),
                            stderr=logs.with_suffix(".err").open("w"))


def wait_until(ready, processes: list[subprocess.Popen], timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert all(process.poll() is None for process in processes), "a process ended early"
        assert time.monotonic() < deadline, "training never got that far"
        time.sleep(0.02)
    # Seen too late (a loaded machine), the signal would find nothing left to stop.
    assert all(process.poll() is None for process in processes), "training ended before the signal"


def stop_line(process: subprocess.Popen, logs: Path, signal_number: int) -> str:
    """Waits for the process; checks exit code 128 + signal and exactly one stderr line."""
    process.wait(timeout=120)
    lines = logs.with_suffix(".err").read_text().splitlines()
    assert process.returncode == 128 + signal_number, (process.returncode, lines[-20:])
    assert len(lines) == 1, lines  # no traceback, no KeyboardInterrupt
    return lines[0]


def resumed_epoch(stopped: re.Match) -> int:
    """The epoch a resumed run starts with: the one the signal interrupted, or the next."""
    epoch = int(stopped.group(4))
    return epoch if stopped.group(3) == "during" else epoch + 1


def history(run_dir: Path) -> list[int]:
    return list(pd.read_csv(run_dir / "history.csv")["epoch"])


def stop_fit(arguments: list[str], folder: Path, name: str, signal_number: int,
             after: int) -> tuple[re.Match, str]:
    """Runs the fit in a process, sends it the signal after `after` epochs; its stop line."""
    logs = folder / name
    process = start([sys.executable, "-m", "tasks.binary_classify", *arguments], logs)
    wait_until(lambda: epochs_done(folder / "run.partial" / "history.csv") >= after, [process])
    process.send_signal(signal_number)
    stopped = STOPPED.fullmatch(stop_line(process, logs, signal_number))
    assert stopped and stopped.group(1) == signal.Signals(signal_number).name, stopped
    assert stopped.group(5) == str(EPOCHS) and int(stopped.group(4)) > after
    return stopped, logs.with_suffix(".out").read_text()


@pytest.mark.slow
def test_sigterm_then_sigint_mid_fit_save_a_backup_at_once_and_the_same_command_resumes(
        user_csv, tmp_path, capsys):
    """SIGTERM stops a fit; the same command resumes it and Ctrl-C stops that; it resumes.

    Before the last resume its weights file is cut in half, as a kill while Keras writes it
    (in place) would leave it: the fit resumes from the previous copy instead.
    """
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text('{"earlier": "good run"}')
    arguments = ["--data", str(user_csv), "--run-dir", str(run_dir), *FIT]
    backup = tmp_path / "run.partial" / resume.BACKUP_DIR
    resumed = []
    for name, signal_number in (("sigterm", signal.SIGTERM), ("sigint", signal.SIGINT)):
        done = int(resumed[0][0]) - 1 if resumed else 0
        stopped, out = stop_fit(arguments, tmp_path, name, signal_number, after=done + 2)
        assert RESUMED.findall(out) == resumed  # the second run resumed the first's backup
        assert stopped.group(6) == str(backup)
        start_epoch = resumed_epoch(stopped)
        # The signal's backup, made at once: the default backup_seconds (30) never came due
        # (the resumed fit keeps the backup it resumed from as its previous one).
        assert resume.saved_states(backup) == {start_epoch - 1, *([done] if resumed else [])}
        assert (run_dir / "config.json").read_text() == '{"earlier": "good run"}'
        assert not (tmp_path / "run.failed").exists()
        resumed = [(str(start_epoch), str(EPOCHS))]

    weights = backup / resume.KERAS_WEIGHTS
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    previous = json.loads((backup / f"{resume.KERAS_METADATA}.bkp").read_text())["epoch"]
    assert previous == done  # the backup the second run resumed from

    capsys.readouterr()
    assert main(arguments) == 0
    assert RESUMED.findall(capsys.readouterr().out) == [(str(previous + 1), str(EPOCHS))]
    assert history(run_dir) == list(range(EPOCHS))
    assert not (tmp_path / "run.partial").exists()


@pytest.mark.slow
def test_sigterm_during_a_search_keeps_finished_trials_and_the_same_command_resumes(
        user_csv, tmp_path, capsys):
    run_dir = tmp_path / "search"
    arguments = ["--data", str(user_csv), "--run-dir", str(run_dir), *SEARCH]
    logs = tmp_path / "stopped"
    process = start([sys.executable, "-m", "tasks.binary_classify", *arguments], logs)
    state = tmp_path / "search.partial" / "tuner" / "search"
    wait_until(lambda: completed(state), [process])
    process.send_signal(signal.SIGTERM)
    line = stop_line(process, logs, signal.SIGTERM)
    done = completed(state)
    tuner = tmp_path / "search.partial" / "tuner"
    assert re.fullmatch(rf"stopped by SIGTERM (during|before) trial \d+( \(epoch \d of 2\))?: "
                        rf"finished trials kept in {tuner} \({len(done)}\), trial \d+ runs "
                        r"again; run the same command to resume", line), line
    assert len(done) == 1 and not run_dir.exists()

    capsys.readouterr()
    assert main(arguments) == 0
    rerun = printed_trials(capsys.readouterr().out)
    assert not set(rerun) & done  # finished trials are not run again
    trials = pd.read_csv(run_dir / "trials.csv", dtype={"trial": str})
    assert sorted(trials["trial"]) == sorted(done | set(rerun))
    assert len(trials) == 2 and (trials["status"] == "COMPLETED").all()


CLUSTER_EPOCHS = 20


def start_cluster(command: list[str], logs: Path) -> list[subprocess.Popen]:
    logs.mkdir()
    hosts = [f"localhost:{free_port()}" for _ in range(2)]
    return [start([*command, "--strategy", "multi_worker"], logs / str(index), TF_CONFIG=json.dumps(
        {"cluster": {"worker": hosts}, "task": {"type": "worker", "index": index}}))
        for index in range(2)]


@pytest.mark.slow
def test_sigterm_to_one_of_two_workers_stops_both_with_one_backup_and_both_resume(
        user_csv, tmp_path):
    """What a cloud preemption of one machine does to a cluster."""
    run_dir = tmp_path / "run"
    # 39 steps an epoch: the workers agree on stopping after 32 of them and at its end. An
    # epoch takes about 0.2 s: with 20 the signal surely comes while they train.
    command = [sys.executable, "-m", "tasks.binary_classify", "--data", str(user_csv),
               "--run-dir", str(run_dir), "--target", "bought", "--export", "none",
               "--epochs", str(CLUSTER_EPOCHS), "--batch-size", "2",
               "--set", "train.early_stopping_patience=0"]
    first = start_cluster(command, tmp_path / "first")
    wait_until(lambda: epochs_done(tmp_path / "run.partial" / "history.csv") >= 1, first)
    first[1].send_signal(signal.SIGTERM)
    lines = [stop_line(process, tmp_path / "first" / str(index), signal.SIGTERM)
             for index, process in enumerate(first)]
    stopped = [STOPPED.fullmatch(line) for line in lines]
    assert all(stopped), lines
    # The chief learns of the signal from the worker, and both stop at the same step.
    assert stopped[0].group(2) and not stopped[1].group(2)
    assert stopped[0].group(3, 4) == stopped[1].group(3, 4)
    backups = [tmp_path / "run.partial" / resume.BACKUP_DIR,
               tmp_path / f"run{distribute.WORKERS_SUFFIX}" / "worker-1" / resume.BACKUP_DIR]
    assert [match.group(6) for match in stopped] == [str(path) for path in backups]
    start_epoch = resumed_epoch(stopped[0])
    assert all(resume.saved_states(path) == {start_epoch - 1} for path in backups)
    assert not run_dir.exists()

    second = start_cluster(command, tmp_path / "second")
    outputs = []
    for index, process in enumerate(second):
        process.wait(timeout=300)
        outputs.append((tmp_path / "second" / f"{index}.out").read_text())
        assert process.returncode == 0, (tmp_path / "second" / f"{index}.err").read_text()[-3000:]
    assert [RESUMED.findall(output) for output in outputs] == [
        [(str(start_epoch), str(CLUSTER_EPOCHS))]] * 2
    assert history(run_dir) == list(range(CLUSTER_EPOCHS))
    assert json.loads((run_dir / "metrics.json").read_text())["distribution"][
        "weights_sha256"] == (tmp_path / "run.workers" / "worker-1" / "weights.sha256"
                              ).read_text().strip()


# In this process, with real signals sent to it -------------------------------------------------

def test_a_signal_in_training_is_only_recorded_and_outside_it_stops_at_once():
    with interrupt.handling():
        with interrupt.training():
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGINT)  # the first one counts
            assert interrupt.received() == signal.SIGTERM
            with pytest.raises(interrupt.Interrupted) as stopped:
                interrupt.stop_if_received("during epoch 3 of 9", "backup saved in b")
            assert interrupt.received() == signal.SIGTERM  # until a training block ends
            interrupt.clear()
        with pytest.raises(interrupt.Interrupted) as outside:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)  # the handler raises as soon as the signal is delivered
    assert str(stopped.value) == ("stopped by SIGTERM during epoch 3 of 9: backup saved in b; "
                                  "run the same command to resume")
    assert (stopped.value.exit_code, outside.value.exit_code) == (143, 130)
    assert "outside training" in str(outside.value)
    # The process's own handlers are back.
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert interrupt.received() is None


def small_network() -> keras.Model:
    keras.utils.set_random_seed(0)
    network = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="relu"),
                                keras.layers.Dense(1)])
    network.compile(optimizer="adam", loss="mse")
    return network


def test_the_own_loop_stops_mid_epoch_and_resumes_from_that_backup(tmp_path):
    """`distributed_fit` (here on one replica) agrees on stopping every STOP_CHECK_STEPS steps."""
    rows = np.random.default_rng(0).normal(size=(80, 3)).astype("float32")
    data = tf.data.Dataset.from_tensor_slices((rows, rows.sum(1, keepdims=True)))
    train, validation = data.repeat().batch(2), data.take(10).batch(10)
    steps = distributed_fit.STOP_CHECK_STEPS + 8  # one agreement within each epoch

    def fit() -> keras.Model:
        network = small_network()
        callbacks = standard_callbacks(tmp_path, TrainConfig(epochs=3), progress=False)
        distributed_fit.fit(network, train, validation, steps, 3, callbacks,
                            tmp_path / "history.csv",
                            resume.open_backup(tmp_path / "backup", {"settings": 1}, 1000.0))
        return network

    with interrupt.handling(), interrupt.training(), pytest.raises(interrupt.Interrupted) as stop:
        os.kill(os.getpid(), signal.SIGTERM)  # before the first step: noticed after 32 steps
        fit()
    assert stop.value.during == "during epoch 1 of 3" and stop.value.agreed
    # Checkpoint 2 * 0 epochs done + 1 (mid-epoch), with the state of 0 epochs done.
    assert sorted(path.name for path in (tmp_path / "backup").iterdir()) == [
        "checkpoint", "ckpt-1.data-00000-of-00001", "ckpt-1.index", "fingerprint.json",
        "state-0.json"]
    stopped_weights = tf.train.load_checkpoint(str(tmp_path / "backup" / "ckpt-1"))
    assert stopped_weights.get_tensor("optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE") == (
        distributed_fit.STOP_CHECK_STEPS)  # the steps it ran are kept

    fit()
    assert list(pd.read_csv(tmp_path / "history.csv")["epoch"]) == [0, 1, 2]
    assert not (tmp_path / "backup").exists()


@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_while_the_data_loads_is_one_line_and_writes_nothing(
        signal_number, user_csv, tmp_path, capsys, monkeypatch):
    """Before training there is nothing to back up: the CLI stops at once, 128 + signal."""
    from datasets import registry

    def interrupted_load(*args, **kwargs):
        os.kill(os.getpid(), signal_number)
        time.sleep(5)  # the handler raises before this ends
        raise AssertionError("the signal did not stop the run")

    monkeypatch.setattr(registry, "load_configured", interrupted_load)
    run_dir = tmp_path / "run"
    code = main(["--data", str(user_csv), *FIT, "--run-dir", str(run_dir)])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 128 + signal_number
    assert lines == [f"stopped by {signal.Signals(signal_number).name} outside training "
                     "(nothing to back up): no fit was running; run the same command to resume"]
    assert not any(tmp_path.iterdir())
