"""One run at a time in a run directory, and a failed write said in one line.

A run writes `<run-dir>.partial/` and renames it into place when it succeeds
(`staging.staged_directory`). `guard` wraps that:

- It creates the staging folder and holds an exclusive `flock` on it for the whole run, so a
  second run started on the same `--run-dir` is refused (`InputError`, exit 2) before it touches
  anything, and the first goes on unharmed. The kernel drops the lock when the process ends,
  however it ends, so a killed run never leaves a stale lock behind.
- A run directory that cannot be created (a read-only or full file system, a file in the way) is
  an `InputError` before training starts.
- A write that fails later, on a full disk, over a quota, or past a file-size limit, becomes
  `RunWriteError`: by then the staging folder has been kept as `<run-dir>.failed` and an
  earlier run in `<run-dir>` is untouched, and the error's one line says so.

`flock` is POSIX (Linux, macOS), as TensorFlow's CPU builds are.
"""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from common.errors import InputError

# Write failures that are about the disk, not about the program.
WRITE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM}


class RunWriteError(Exception):
    """A run could not write its files; the message is one line for the user."""


def staging_folder(final: Path) -> Path:
    """`<run-dir>.partial`, where a run is written before it is moved into place."""
    final = final.resolve()
    return final.with_name(f"{final.name}.partial")


@contextmanager
def guard(final: Path) -> Iterator[None]:
    """Holds the run directory `final` for this process for the length of the block.

    Raises:
        InputError: The run directory cannot be created, or another run holds it.
        RunWriteError: A write failed inside the block for lack of space or permission.
    """
    stage = staging_folder(final)
    try:
        stage.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(stage, os.O_RDONLY)
    except OSError as error:
        raise InputError(f"cannot write the run directory: creating '{stage}' failed "
                         f"({error.strerror}). Pass a --run-dir in a folder you can write "
                         "to.") from None
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(f"--run-dir '{final}' is in use: another run is writing it (its "
                             f"staging folder '{stage}' is locked). Wait until that run ends, "
                             "or pass another --run-dir.") from None
        try:
            yield
        except Exception as error:
            reason = None if isinstance(error, InputError) else disk_failure(error)
            if reason is None:
                raise
            raise RunWriteError(_write_failure(final, reason)) from error
    finally:
        os.close(descriptor)


def disk_failure(error: BaseException) -> str | None:
    """Why a write failed, if `error` is about the disk (space, quota, size, permission).

    Python raises `OSError` with an errno; TensorFlow's file system (SavedModel, checkpoints)
    raises its own errors (`ResourceExhaustedError` for ENOSPC, `OutOfRangeError` for EFBIG,
    ...) whose message holds the system's text for the errno, as do h5py's.

    Returns:
        The system's description with the file, e.g. "No space left on device: 'x.h5'", or None.
    """
    if isinstance(error, OSError) and error.errno in WRITE_ERRORS:
        return error.strerror + (f": '{error.filename}'" if error.filename else "")
    text = str(error)
    for code in sorted(WRITE_ERRORS):
        if os.strerror(code) in text:
            return os.strerror(code)
    return None


def _write_failure(final: Path, reason: str) -> str:
    final = final.resolve()
    failed = final.with_name(f"{final.name}.failed")
    earlier = (f"the earlier run in '{final}' is untouched" if (final / "config.json").exists()
               else f"nothing was written to '{final}'")
    return (f"writing the run failed ({reason}); {earlier}, and this run's files are kept in "
            f"'{failed}'. Free some space (or fix the permissions) and run the same command "
            "again.")
