"""The run directory: its default name, what it may hold, and writing it all or nothing.

Everything a run writes goes to `<run-dir>.partial` and replaces the run directory only when the
run succeeds, so a failed run never overwrites an earlier good one (its files are kept as
`<run-dir>.failed` for inspection) and a killed one leaves `.partial` for the next run to resume.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from common.errors import InputError
from tasks.engine import interrupt


def default_run_dir(task: str) -> Path:
    """`runs/<task>-<timestamp>` under the current directory."""
    return Path("runs") / f"{task}-{datetime.now():%Y%m%d-%H%M%S}"


def check_run_dir(path: Path) -> None:
    """Refuses a `--run-dir` that holds something other than an earlier run.

    A successful run replaces the folder, so it must be new, empty, or an earlier run's (one with
    a `config.json`).
    """
    if not path.exists():
        return
    if not path.is_dir():
        raise InputError(f"--run-dir '{path}' is a file. Pass a new folder path.")
    if any(path.iterdir()) and not (path / "config.json").exists():
        raise InputError(f"--run-dir '{path}' holds files that are not a run's, and a run "
                         "replaces its folder. Pass a new or empty folder.")


def newest_state(final: Path, name: str) -> Path | None:
    """The newest `name` folder left by a run of `final`: killed, failed or finished.

    Candidates are `<final>.partial/name` (a killed run), `<final>.failed/name` and `final/name`;
    the newest is the one whose files changed last.
    """
    final = final.resolve()
    candidates = [folder / name for folder in (final.with_name(f"{final.name}.partial"),
                                               final.with_name(f"{final.name}.failed"), final)]
    found = [path for path in candidates if path.is_dir()]

    def changed(path: Path) -> float:
        return max((item.stat().st_mtime for item in path.rglob("*")),
                   default=path.stat().st_mtime)

    return max(found, key=changed, default=None)


@contextmanager
def staged_directory(final: Path, carry: tuple[str, ...] = ()) -> Iterator[Path]:
    """Yields a staging folder that replaces `final` only if the block succeeds.

    On failure the staging folder is renamed `<final>.failed` (replacing an older one) and
    `final`, if it holds an earlier run, is left untouched.

    Args:
        final: The run directory.
        carry: Folders the new stage starts with: the `newest_state` of each (a search's tuner
            state survives a kill, a failure or a finished run). Everything else starts empty.
    """
    final = final.resolve()
    final.parent.mkdir(parents=True, exist_ok=True)
    stage = final.with_name(f"{final.name}.partial")
    sources = {name: newest_state(final, name) for name in carry}
    stage.mkdir(exist_ok=True)
    for item in stage.iterdir():
        if sources.get(item.name) != item:
            shutil.rmtree(item) if item.is_dir() else item.unlink()
    for name, source in sources.items():
        if source is not None and source != stage / name:
            shutil.copytree(source, stage / name)
    try:
        yield stage
    except (interrupt.Interrupted, KeyboardInterrupt):
        raise  # a stopped run stays `<final>.partial`, as a killed one: the next run resumes it
    except BaseException:
        failed = final.with_name(f"{final.name}.failed")
        shutil.rmtree(failed, ignore_errors=True)
        stage.rename(failed)
        raise
    if final.exists():
        previous = final.with_name(f"{final.name}.previous-{os.getpid()}")
        final.rename(previous)
        stage.rename(final)
        shutil.rmtree(previous, ignore_errors=True)
    else:
        stage.rename(final)
