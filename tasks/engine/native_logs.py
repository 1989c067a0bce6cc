"""TensorFlow's and LiteRT's native start-up logging, kept off the user's terminal.

Native code writes straight to the process's file descriptor 2, which Python's `sys.stderr`
cannot filter. While TensorFlow loads, absl prints "WARNING: All log messages before
absl::InitializeLog() is called are written to STDERR" and, on CPUs where oneDNN is on by default
(or with `TF_ENABLE_ONEDNN_OPTS=1`), TensorFlow's oneDNN notice, twice, whatever
`TF_CPP_MIN_LOG_LEVEL` says; the first LiteRT interpreter of a process announces its XNNPACK
delegate. Whether a user sees these depends on their CPU, so the CLI's output (and its one-line
`error:` contract) would too.

`install()` (run by `import tasks`, before TensorFlow can load) sets `TF_CPP_MIN_LOG_LEVEL=2`
unless the user set it, and arranges for `import tensorflow` to run inside `set_aside()`: file
descriptor 2 points at a temporary file for the length of the call, and what was written there is
dropped, or written out after all if the call fails. `show()` (the CLIs' `--verbose`) turns this
off, as does a `TF_CPP_MIN_LOG_LEVEL` of 0 or 1 set by the user: then everything is shown.
`set_aside()` and `quiet()` live in `common.native_output`, where `datasets` uses them too.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from types import ModuleType

from common import native_output
from common.native_output import quiet, set_aside  # noqa: F401  (this module's API too)

LEVEL_VARIABLE = "TF_CPP_MIN_LOG_LEVEL"
QUIET_LEVEL = "2"  # TensorFlow's own filter: warnings and errors only


def install() -> None:
    """Quiets TensorFlow's start-up logging for this process, unless the user asked for it.

    Call before anything imports TensorFlow (`tasks/__init__.py` does); later calls do nothing.
    """
    if any(isinstance(finder, _QuietImport) for finder in sys.meta_path):
        return
    native_output.remember_user_level(os.environ.get(LEVEL_VARIABLE))
    os.environ.setdefault(LEVEL_VARIABLE, QUIET_LEVEL)
    if "tensorflow" not in sys.modules:
        sys.meta_path.insert(0, _QuietImport())


def show() -> None:
    """Shows the native logging from now on (`--verbose`): all of TensorFlow's, if not yet loaded.

    A level the user set in `TF_CPP_MIN_LOG_LEVEL` is kept; otherwise it becomes 0 (everything),
    which takes effect only if TensorFlow has not been imported yet.
    """
    native_output.show_all()
    if native_output.user_level() is None:
        os.environ[LEVEL_VARIABLE] = "0"


class _QuietLoader(importlib.abc.Loader):
    """Runs another loader's `exec_module` with stderr set aside; delegates everything else."""

    def __init__(self, loader: importlib.abc.Loader):
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        with set_aside():
            self.loader.exec_module(module)

    def __getattr__(self, name: str):
        return getattr(self.loader, name)


class _QuietImport(importlib.abc.MetaPathFinder):
    """Finds `tensorflow` the usual way, once, and has it loaded by a `_QuietLoader`."""

    def find_spec(self, fullname: str, path=None, target=None):
        if fullname != "tensorflow":
            return None
        sys.meta_path.remove(self)  # once: the rest of TensorFlow's modules load as usual
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec
