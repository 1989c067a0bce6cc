"""Every use of a private Keras, TensorFlow or keras-tuner internal, each behind one function.

No other module imports `keras.src`, `tensorflow.python` or `keras_tuner.src`, or touches a
private attribute of those libraries (`tests/test_compat.py` checks it). Each function says what
it works around, the upstream issue, and what happens when a release removes the internal: a
clear error naming the versions `pyproject.toml` supports, or a degraded but correct behaviour
with a warning; never a silently wrong result. Checked on the versions `pyproject.toml` pins
(TensorFlow 2.21, Keras 3.15, keras-tuner 1.4); `tests/test_compat.py` exercises each one.

Heavy libraries are imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

SUPPORTED = "the keras, keras-tuner and tensorflow versions pyproject.toml allows"


class MissingInternal(RuntimeError):
    """A private library internal this project relies on is gone from the installed version."""


def _missing(what: str, library: str, error: BaseException | None = None) -> MissingInternal:
    found = f" ({type(error).__name__}: {error})" if error is not None else ""
    return MissingInternal(f"the installed {library} no longer has {what}{found}, which this "
                           f"project needs; install {SUPPORTED} (pip install -e .).")


# --- Keras -------------------------------------------------------------------------------------

def symbolic_build(network: Any, data_batch: Any) -> None:
    """Creates a compiled model's optimizer and metric variables from one local batch.

    Works around: Keras 3's `model.fit` fails under `tf.distribute.MultiWorkerMirroredStrategy`
    (keras-team/keras#20585, open; tensorflow/tensorflow#72388): its first step builds the model
    from a per-replica batch. The project's replica loop (`tasks.engine.distributed_fit`) runs
    `train_step` itself and needs what `fit` does before its first step, which only the private
    `Model._symbolic_build` does.

    Fallback: none that trains correctly, so `MissingInternal` before training starts.

    Args:
        network: A Keras model compiled inside the strategy's scope.
        data_batch: One batch `(x, y)` as the dataset yields it (not distributed).

    Raises:
        MissingInternal: This Keras has no `Model._symbolic_build`.
    """
    build = getattr(network, "_symbolic_build", None)
    if build is None:
        raise _missing("Model._symbolic_build (the multi-replica training loop builds with it)",
                       "keras")
    build(data_batch=data_batch)


def keras_home() -> str:
    """The folder Keras keeps its cache in (`KERAS_HOME`, read once when Keras is imported).

    Works around: Keras has no public accessor for it (asked in keras-team/keras#12063); the
    value lives in the private `keras.src.backend.config.keras_home()`. `keras.utils.get_file`
    downloads pretrained weights under it.

    Fallback: Keras's documented rule, `$KERAS_HOME` or else `~/.keras` (correct unless the
    variable changed after Keras was imported).
    """
    import os

    try:
        from keras.src.backend.config import keras_home as private_keras_home

        return private_keras_home()
    except (ImportError, AttributeError):
        return os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))


def set_keras_home(path: str) -> str:
    """Points Keras's cache folder at `path` in this process; returns the previous folder.

    For tests: Keras reads `KERAS_HOME` once, at import, into the private
    `keras.src.backend.config._KERAS_DIR`, so setting the variable later changes nothing
    (no upstream issue found asking for a setter).

    Fallback: `MissingInternal` (a test then fails, naming the internal).
    """
    try:
        from keras.src.backend import config
    except ImportError as error:
        raise _missing("keras.src.backend.config", "keras", error) from None
    if not hasattr(config, "_KERAS_DIR"):
        raise _missing("keras.src.backend.config._KERAS_DIR", "keras")
    previous, config._KERAS_DIR = config._KERAS_DIR, path
    return previous


def keras_file_utils() -> ModuleType:
    """The module whose `urlretrieve` and `validate_file` `keras.utils.get_file` calls.

    For tests: the only way to accept a stand-in for a pretrained weights file (its hash cannot
    be the real file's) is to replace `validate_file` where `get_file` looks it up, in the
    private `keras.src.utils.file_utils` (no upstream issue found).

    Fallback: `MissingInternal`.
    """
    try:
        from keras.src.utils import file_utils
    except ImportError as error:
        raise _missing("keras.src.utils.file_utils", "keras", error) from None
    return file_utils


# --- TensorFlow --------------------------------------------------------------------------------

def cluster_coordination() -> Any:
    """TensorFlow's coordination service client: `wait_at_barrier`, `report_error_to_cluster`.

    Works around: a multi-worker task that leaves before the others makes them hang or fail
    at exit (tensorflow/tensorflow#58434, workers exiting early under
    MultiWorkerMirroredStrategy). TensorFlow has no public barrier or error report across the
    cluster; both are methods of the private `tensorflow.python.eager.context.context()`.

    Fallback: `MissingInternal`, raised when a multi-worker run starts (before training), not
    after it.

    Returns:
        An object with `wait_at_barrier(barrier_id, timeout_in_ms)` and
        `report_error_to_cluster(error_code, error_message)`.

    Raises:
        MissingInternal: This TensorFlow has no such context or methods.
    """
    try:
        from tensorflow.python.eager import context
    except ImportError as error:
        raise _missing("tensorflow.python.eager.context", "tensorflow", error) from None
    coordination = context.context()
    for method in ("wait_at_barrier", "report_error_to_cluster"):
        if not callable(getattr(coordination, method, None)):
            raise _missing(f"context.context().{method}", "tensorflow")
    return coordination


def _custom_gradient_registry() -> dict[str, Any] | None:
    """TensorFlow's process-wide gradient registry (name -> gradient function), if found."""
    try:
        from tensorflow.python.framework import ops
    except ImportError:
        return None
    registry = getattr(getattr(ops, "_gradient_registry", None), "_registry", None)
    return registry if isinstance(registry, dict) else None


def custom_gradient_names() -> set[str]:
    """The names of the `tf.custom_gradient` functions registered so far in this process.

    Empty when the registry cannot be found (see `dropping_custom_gradients`).
    """
    registry = _custom_gradient_registry()
    return {name for name in registry or {} if name.startswith("CustomGradient-")}


@contextmanager
def dropping_custom_gradients() -> Iterator[None]:
    """Forgets the gradient functions TensorFlow registers while the block traces graphs.

    Works around: tracing a `tf.custom_gradient` (TensorFlow's all-reduce of the gradients is
    one, under every strategy) registers a gradient function in the private
    `tensorflow.python.framework.ops._gradient_registry`, never cleared, and the function holds
    the whole traced training graph: memory grew about 4 MB per keras-tuner trial even with
    `clear_session` (tensorflow/tensorflow#97697, open; #27492; keras-team/tf-keras#898 proposes
    the same purge in `clear_session`). A trial's graphs are not used after it, so its
    registrations go.

    Fallback: when the registry is not found, nothing is dropped (memory grows per trial as
    before, results are unchanged) and a warning says so.
    """
    registry = _custom_gradient_registry()
    if registry is None:
        warnings.warn("TensorFlow's gradient registry was not found: each trial's traced graphs "
                      f"stay in memory. Install {SUPPORTED}.", RuntimeWarning, stacklevel=3)
        yield
        return
    before = set(registry)
    try:
        yield
    finally:
        for name in [name for name in registry
                     if name not in before and name.startswith("CustomGradient-")]:
            del registry[name]


# --- keras-tuner -------------------------------------------------------------------------------

def start_oracle_server(oracle: Any, address: str) -> tuple[Any, Callable[[], bool]]:
    """Serves `oracle` to keras-tuner workers over gRPC at `address`; returns `(server, done)`.

    Works around: keras-tuner's own chief (`keras_tuner.src.distribute.oracle_chief
    .start_server`, started inside `Tuner.__init__`) checks for the end every 20 s in a loop
    that only its process can leave (keras-team/keras-tuner#254, #325, #967, #983 on when the
    chief exits). The project runs the same servicer in its own loop, checking for signals and
    the end often; the servicer and the end test are private (`keras_tuner.src`).

    Fallback: `MissingInternal` before the search starts (no worker is left waiting).

    Returns:
        The started `grpc.Server` (stop it with `server.stop(grace)`), and a function telling
        whether the search is over: every trial handed out and no worker still running one.

    Raises:
        MissingInternal: This keras-tuner has no such servicer.
    """
    from concurrent import futures

    import grpc

    try:
        from keras_tuner.src import protos
        from keras_tuner.src.distribute import oracle_chief

        servicer = oracle_chief.OracleServicer(oracle)
        add_servicer = protos.get_service_grpc().add_OracleServicer_to_server
        exit_chief = oracle_chief.exit_chief
    except (ImportError, AttributeError) as error:
        raise _missing("keras_tuner.src.distribute.oracle_chief (the oracle's gRPC servicer)",
                       "keras-tuner", error) from None
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    add_servicer(servicer, server)
    server.add_insecure_port(address)
    server.start()
    return server, lambda: bool(servicer.stop_triggered and exit_chief(oracle))


def retry_queue(oracle: Any) -> list[str]:
    """The reloaded oracle's queue of trial ids to run again (the live list: edit it in place).

    Works around: keras-tuner writes a finished trial's `trial.json`, then `oracle.json`; a
    search killed between the two reloads the trial as ongoing, and `Oracle.reload` queues
    every ongoing trial to run again (keras-team/keras-tuner#439 on reruns after a resume; no
    issue found on this exact window). The queue is the private `Oracle._retry_queue`.

    Fallback: an empty list and a warning: a trial finished just before a kill runs again
    (a trial's time lost, its result still correct).
    """
    queue = getattr(oracle, "_retry_queue", None)
    if not isinstance(queue, list):
        warnings.warn("keras-tuner's retry queue was not found: a trial finished just before "
                      f"a kill may run again. Install {SUPPORTED}.", RuntimeWarning, stacklevel=2)
        return []
    return queue

