"""Whole runs in subprocesses: two replicas on logical CPUs, two workers on localhost, and runs
killed with SIGKILL that the same command resumes.

Accuracy is compared with a one-device run of the same global batch (2 replicas x 32 = 64) on
400 test rows. The replicas differ from one device only in their dropout draws and the order of
the gradient sums; measured here the gap was 0.75 points (3 rows), so the tests allow 2 points
(8 rows): enough for that noise, small enough to catch replicas that train on the wrong rows
or average the wrong gradients.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tasks.binary_classify import main
from tasks.engine import devices, resume
from tests.helpers import (
    ROOT,
    assert_one_error_line,
    free_port,
    make_user_frame,
    read_metrics,
    subprocess_env,
)

pytestmark = pytest.mark.slow

EPOCHS = 20
# Per-replica batch 32; the one-device reference uses the same global batch.
COMPARED = ["--target", "bought", "--export", "none", "--epochs", str(EPOCHS),
            "--set", "train.early_stopping_patience=0"]
TOLERANCE = 0.02
RESUMED = re.compile(r"^resumed from epoch (\d+) of (\d+)", re.MULTILINE)


@pytest.fixture(scope="session")
def larger_csv(tmp_path_factory) -> Path:
    """2,000 seeded rows: 400 test rows, so one row is a quarter of a point."""
    path = tmp_path_factory.mktemp("larger") / "shoppers.csv"
    make_user_frame(rows=2000, seed=1).to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def one_device(larger_csv, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("one_device") / "run"
    assert main(["--data", str(larger_csv), "--run-dir", str(run_dir), *COMPARED,
                 "--batch-size", "64"]) == 0
    return run_dir


def task_command(data: Path, run_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "tasks.binary_classify", "--data", str(data),
            "--run-dir", str(run_dir), *extra]


def start_cluster(command: list[str], logs: Path, tasks: int = 2) -> list[subprocess.Popen]:
    """Starts `tasks` workers on localhost, each with its TF_CONFIG; output to `logs`/<i>.log."""
    logs.mkdir(parents=True, exist_ok=True)
    hosts = [f"localhost:{free_port()}" for _ in range(tasks)]
    processes = []
    for index in range(tasks):
        config = json.dumps({"cluster": {"worker": hosts},
                             "task": {"type": "worker", "index": index}})
        with open(logs / f"{index}.log", "w") as log:
            processes.append(subprocess.Popen(
                [*command, "--strategy", "multi_worker"], cwd=ROOT, stdout=log,
                stderr=subprocess.STDOUT, env=subprocess_env(TF_CONFIG=config)))
    return processes


def finish(processes: list[subprocess.Popen], logs: Path, timeout: float = 300) -> list[str]:
    deadline = time.monotonic() + timeout
    for process in processes:
        process.wait(timeout=max(1.0, deadline - time.monotonic()))
    outputs = [(logs / f"{index}.log").read_text() for index in range(len(processes))]
    for process, output in zip(processes, outputs, strict=True):
        assert process.returncode == 0, output[-3000:]
    return outputs


def wait_for(path: Path, processes: list[subprocess.Popen], timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert all(process.poll() is None for process in processes), "a task ended early"
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def history(run_dir: Path) -> pd.DataFrame:
    return pd.read_csv(run_dir / "history.csv")


@pytest.fixture(scope="session")
def mirrored(larger_csv, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("mirrored") / "run"
    done = subprocess.run(task_command(larger_csv, run_dir, *COMPARED, "--strategy", "mirrored"),
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=subprocess_env(**{devices.CPU_DEVICES_ENV: "2"}))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "distribution: MirroredStrategy, 2 replicas" in done.stdout
    assert f"up to {EPOCHS} epochs of 20 steps, batch 64" in done.stdout
    return run_dir


def test_mirrored_on_two_logical_cpus_matches_one_device(mirrored, one_device):
    metrics = read_metrics(mirrored)
    assert metrics["distribution"] == {"strategy": "MirroredStrategy", "replicas": 2,
                                       "workers": 1, "mixed_precision": "float32"}
    assert read_metrics(one_device)["distribution"]["replicas"] == 1
    gap = metrics["test"]["accuracy"] - read_metrics(one_device)["test"]["accuracy"]
    assert abs(gap) <= TOLERANCE, gap
    assert list(history(mirrored)["epoch"]) == list(range(EPOCHS))
    assert list(history(mirrored).columns) == list(history(one_device).columns)


@pytest.fixture(scope="session")
def two_workers(larger_csv, tmp_path_factory) -> tuple[Path, list[str]]:
    base = tmp_path_factory.mktemp("two_workers")
    run_dir = base / "run"
    processes = start_cluster(task_command(larger_csv, run_dir, *COMPARED), base / "logs")
    return run_dir, finish(processes, base / "logs")


def test_two_workers_train_in_step_and_only_the_chief_writes(two_workers, mirrored, one_device):
    run_dir, (chief, worker) = two_workers
    assert ("distribution: MultiWorkerMirroredStrategy, 2 replicas on 2 workers (this is "
            "worker-0)") in chief
    assert f"worker-1: trained {EPOCHS} epochs; the chief writes {run_dir}" in worker
    assert "test: accuracy" in chief and "test: accuracy" not in worker

    metrics = read_metrics(run_dir)
    distribution = metrics["distribution"]
    assert {name: distribution[name] for name in ("strategy", "replicas", "workers")} == {
        "strategy": "MultiWorkerMirroredStrategy", "replicas": 2, "workers": 2}
    # Both workers end with the same weights.
    scratch = run_dir.with_name("run.workers") / "worker-1"
    assert (scratch / "weights.sha256").read_text().strip() == distribution["weights_sha256"]
    # The worker wrote only its own folder: history and weights digest, no run, no backup.
    assert sorted(path.name for path in scratch.iterdir()) == ["history.csv", "weights.sha256"]
    assert sorted(path.name for path in run_dir.parent.iterdir()) == [
        "logs", "run", "run.workers"]
    pd.testing.assert_frame_equal(pd.read_csv(scratch / "history.csv"), history(run_dir))

    gap = metrics["test"]["accuracy"] - read_metrics(one_device)["test"]["accuracy"]
    assert abs(gap) <= TOLERANCE, gap
    # Two workers compute what two replicas in one process do: the same global batches, split
    # the same way, and gradients summed the same way.
    np.testing.assert_allclose(history(run_dir)[["loss", "val_loss"]],
                               history(mirrored)[["loss", "val_loss"]], rtol=1e-4)


def test_a_killed_run_resumes_from_its_last_backup(user_csv, tmp_path, capsys):
    run_dir = tmp_path / "run"
    arguments = ["--target", "bought", "--export", "none", "--epochs", "200",
                 "--set", "runtime.backup_seconds=0"]
    process = subprocess.Popen(task_command(user_csv, run_dir, *arguments), cwd=ROOT,
                               env=subprocess_env(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    backup = tmp_path / "run.partial" / resume.BACKUP_DIR
    wait_for(backup / resume.STATE.format(epoch=4), [process])
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not run_dir.exists()

    capsys.readouterr()
    assert main(["--data", str(user_csv), "--run-dir", str(run_dir), *arguments]) == 0
    out = capsys.readouterr().out
    resumed = RESUMED.findall(out)
    # `resumed from epoch N`: N - 1 epochs done. State 4 is written just before the weights of
    # epoch 4: the kill may fall between them.
    assert len(resumed) == 1 and int(resumed[0][0]) - 1 >= 3 and resumed[0][1] == "200", out
    epochs = list(history(run_dir)["epoch"])
    # Every epoch once, from the first; early stopping (patience 20) ended it.
    assert epochs == list(range(len(epochs))) and int(resumed[0][0]) < len(epochs) < 200
    assert read_metrics(run_dir)["test"]["accuracy"] > 0.8
    assert sorted(path.name for path in tmp_path.iterdir()) == ["run"]
    assert not (run_dir / resume.BACKUP_DIR).exists()


def test_a_cluster_with_a_killed_worker_resumes(user_csv, tmp_path):
    run_dir = tmp_path / "run"
    command = task_command(user_csv, run_dir, "--target", "bought", "--export", "none",
                           "--epochs", "16", "--set", "train.early_stopping_patience=0",
                           "--set", "runtime.backup_seconds=0")
    first = start_cluster(command, tmp_path / "first")
    wait_for(tmp_path / "run.partial" / resume.BACKUP_DIR / resume.STATE.format(epoch=3), first)
    first[1].send_signal(signal.SIGKILL)
    # Left alone, the chief's next collective fails once the dead worker misses its heartbeats
    # (measured: exit 1 after ~10 s, its stage kept as run.failed); stop it now.
    first[0].send_signal(signal.SIGKILL)
    for process in first:
        process.wait()
    assert not run_dir.exists()

    outputs = finish(start_cluster(command, tmp_path / "second"), tmp_path / "second")
    resumed = [RESUMED.findall(output) for output in outputs]
    # Both tasks resume from the same epoch, the latest both had saved.
    assert resumed[0] == resumed[1] and len(resumed[0]) == 1, outputs
    assert int(resumed[0][0][0]) - 1 >= 2  # epochs done
    assert list(history(run_dir)["epoch"]) == list(range(16))
    assert len(list(tmp_path.rglob("metrics.json"))) == 1
    assert read_metrics(run_dir)["distribution"]["weights_sha256"] == (
        tmp_path / "run.workers" / "worker-1" / "weights.sha256").read_text().strip()


def test_tpu_strategy_without_a_tpu_is_a_quick_clear_error(user_csv, tmp_path):
    """No TPU here, and no network: the named TPU's metadata lookup fails instead of hanging.

    (Without TPU_NAME the probe initializes a local TPU, which fails at once with
    NotFoundError; tests/tasks/test_distributed.py covers the message and the time bound.)
    """
    started = time.monotonic()
    done = subprocess.run(task_command(user_csv, tmp_path / "run", "--target", "bought",
                                       "--strategy", "tpu"),
                          cwd=ROOT, capture_output=True, text=True, timeout=180,
                          env=subprocess_env(TPU_NAME="my-tpu"))
    assert done.returncode == 2, done.stderr[-3000:]
    assert_one_error_line(done.stderr.strip().splitlines(), "--strategy tpu found no usable TPU",
                          "TPU_NAME", "--strategy auto")
    assert time.monotonic() - started < devices.DEFAULT_TPU_TIMEOUT
    assert not any(tmp_path.iterdir())


def test_two_workers_stream_disjoint_shares_of_the_shards(tmp_path):
    """`--data 'shards/*.csv'` on a cluster: each worker reads its own shards (0 and 2, or 1),
    not the whole stream, and both end with the same weights (so both drew the same sample of
    200 training rows to adapt the preprocessing on, and the same held-out rows)."""
    shards = tmp_path / "shards"
    shards.mkdir()
    frame = make_user_frame(rows=1200, seed=2)
    for index in range(3):
        frame.iloc[index * 400:(index + 1) * 400].to_csv(shards / f"part-{index}.csv",
                                                          index=False)
    run_dir = tmp_path / "run"
    command = task_command(Path(f"{shards}/*.csv"), run_dir, "--target", "bought", "--export",
                           "none", "--epochs", "5", "--set", "train.early_stopping_patience=0",
                           "--set", "data.sample_rows=200", "--set", "data.held_out_rows=60")
    chief, worker = finish(start_cluster(command, tmp_path / "logs"), tmp_path / "logs")
    assert "stream: input pipeline 0 of 2 reads 2 of 3 shards" in chief
    assert "stream: input pipeline 1 of 2 reads 1 of 3 shards" in worker
    metrics = read_metrics(run_dir)
    assert metrics["distribution"]["workers"] == 2 and "streaming" in metrics
    scratch = run_dir.with_name("run.workers") / "worker-1"
    assert (scratch / "weights.sha256").read_text().strip() == (
        metrics["distribution"]["weights_sha256"])
    assert metrics["test"]["accuracy"] > 0.7
