"""Setting aside what native code writes straight to a file descriptor (stderr by default).

TensorFlow, libjpeg and LiteRT write notices and complaints to file descriptor 2 directly,
which Python's `sys.stderr` cannot filter. `set_aside()` points the descriptor at a temporary
file for a block and drops what was written there, or writes it out after all if the block
fails. Any package may use it (`datasets` around image decoding, `tasks` around TensorFlow's
import and LiteRT). Whether it is active is one process-wide switch: the CLI turns it off for
`--verbose` (`tasks.engine.native_logs.show`), and so does a `TF_CPP_MIN_LOG_LEVEL` of 0 or 1
that the user set.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

_state: dict[str, str | bool | None] = {"user_level": None, "show": False}


def remember_user_level(level: str | None) -> None:
    """Records the `TF_CPP_MIN_LOG_LEVEL` the user set (None: unset), before it is changed."""
    _state["user_level"] = level


def show_all() -> None:
    """Shows native output from now on: `set_aside` passes everything through (`--verbose`)."""
    _state["show"] = True


def user_level() -> str | None:
    """The `TF_CPP_MIN_LOG_LEVEL` the user set before the project changed it, if any."""
    return _state["user_level"]  # type: ignore[return-value]


def quiet() -> bool:
    """Whether native output is being set aside: not after `show`, nor at a user's level 0/1."""
    level = _state["user_level"]
    return not _state["show"] and (level is None or str(level).strip() not in ("0", "1"))


@contextmanager
def set_aside(descriptors: tuple[int, ...] = (2,), always: bool = False) -> Iterator[None]:
    """Points `descriptors` (default: stderr) at a temporary file for the block.

    What native code (or Python) writes to them meanwhile is dropped if the block succeeds and
    written out where it was going if the block raises, so a failure keeps its explanation.

    Args:
        descriptors: File descriptors to redirect (1 stdout, 2 stderr).
        always: Set aside even when `quiet()` is false (for output that is never useful).
    """
    if not (always or quiet()):
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {descriptor: os.dup(descriptor) for descriptor in descriptors}
    with tempfile.TemporaryFile() as held:
        for descriptor in descriptors:
            os.dup2(held.fileno(), descriptor)
        failed = False
        try:
            yield
        except BaseException:
            failed = True
            raise
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for descriptor, original in saved.items():
                os.dup2(original, descriptor)
                os.close(original)
            if failed:
                held.seek(0)
                os.write(2, held.read())
