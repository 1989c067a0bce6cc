"""One run at a time per run directory; a full disk or an unwritable folder loses nothing."""

import errno
import hashlib
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tasks.binary_classify import main
from tasks.engine import run_guard
from tests.helpers import FAST, ROOT, assert_cli_error, assert_one_error_line, run_cli


def tree_digest(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under `folder`, by relative path."""
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


def test_a_run_dir_under_a_file_is_refused_before_training(user_csv, tmp_path, capsys):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("mine")
    code = main(["--data", str(user_csv), "--target", "bought", "--run-dir",
                 str(blocker / "run"), *FAST])
    assert code == 2
    assert_one_error_line(capsys.readouterr().err.strip().splitlines(),
                          "cannot write the run directory", "notes.txt", "--run-dir")
    assert blocker.read_text() == "mine"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["notes.txt"]


def test_a_held_run_dir_is_refused_and_left_alone(user_csv, tmp_path, capsys):
    """The lock itself, in one process: a second guard on the same folder is refused."""
    run_dir = tmp_path / "run"
    with run_guard.guard(run_dir):
        (run_guard.staging_folder(run_dir) / "history.csv").write_text("epoch\n0\n")
        with pytest.raises(run_guard.InputError, match="is in use: another run"), \
                run_guard.guard(run_dir):
            pass
        assert (run_guard.staging_folder(run_dir) / "history.csv").exists()
    with run_guard.guard(run_dir):  # released: the next run may go
        pass


@pytest.mark.parametrize("error, expected", [
    (OSError(errno.ENOSPC, "No space left on device", "/runs/x.partial/model.keras"),
     "No space left on device: '/runs/x.partial/model.keras'"),
    (OSError(errno.EDQUOT, "Disk quota exceeded"), "Disk quota exceeded"),
    # What TensorFlow's file system raises (tf.errors.ResourceExhaustedError's text).
    (RuntimeError("/tmp/x/variables_temp/part-00000; No space left on device [Op:SaveV2]"),
     "No space left on device"),
    (RuntimeError("Unable to synchronously create file (errno = 30, error message = "
                  "'Read-only file system')"), "Read-only file system"),
    (OSError(errno.ENOENT, "No such file or directory"), None),
    (ValueError("shapes do not match"), None),
])
def test_disk_failures_are_told_from_other_errors(error, expected):
    assert run_guard.disk_failure(error) == expected


@pytest.mark.slow
def test_a_second_run_on_the_same_run_dir_is_refused_and_the_first_finishes(user_csv,
                                                                            tmp_path):
    """The first run is frozen (SIGSTOP) while it holds its stage, so the second surely starts
    while it runs; after the refusal the first resumes and finishes as if alone."""
    run_dir = tmp_path / "run"
    command = ["--data", user_csv, "--target", "bought", "--run-dir", run_dir, "--export",
               "keras", "--set", "export.latency=false", *FAST]
    first = subprocess.Popen([sys.executable, "-m", "tasks.binary_classify", *map(str, command)],
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stage = run_guard.staging_folder(run_dir)
    try:
        deadline = time.monotonic() + 240
        while not (stage / "config.json").exists():
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        first.send_signal(signal.SIGSTOP)
        before = tree_digest(stage)
        second = run_cli("tasks.binary_classify", *command, cwd=tmp_path)
        assert_cli_error(second, "is in use: another run", str(run_dir), "another --run-dir")
        assert tree_digest(stage) == before
    finally:
        first.send_signal(signal.SIGCONT)
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err[-3000:]
    assert (run_dir / "metrics.json").exists() and (run_dir / "model.keras").exists()
    assert not stage.exists()


@pytest.mark.slow
def test_a_full_disk_during_export_leaves_the_earlier_run_untouched(trained_run, user_csv,
                                                                     tmp_path):
    """A real write failure: the process may not write files over 24 KB (RLIMIT_FSIZE; Python
    ignores SIGXFSZ, so writes fail with EFBIG), which the exports reach and nothing before them
    does. The earlier run's files are byte for byte what they were."""
    run_dir = tmp_path / "run"
    shutil.copytree(trained_run, run_dir)
    before = tree_digest(run_dir)
    limit = 24_000

    def small_files_only():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = subprocess.run(
        [sys.executable, "-m", "tasks.binary_classify", "--data", str(user_csv), "--target",
         "bought", "--run-dir", str(run_dir), "--export", "keras,savedmodel", "--set",
         "export.latency=false", "--set", "runtime.backup_seconds=100000", *FAST],
        cwd=ROOT, capture_output=True, text=True, timeout=300, preexec_fn=small_files_only)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1, result.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("error: writing the run failed (File too "
                                                   "large"), lines
    assert f"the earlier run in '{run_dir}' is untouched" in lines[0]
    assert tree_digest(run_dir) == before
    failed = run_dir.with_name("run.failed")
    assert (failed / "config.json").exists() and not (failed / "metrics.json").exists()
