"""Choosing a `tf.distribute` strategy, mixed precision, and the roles of a multi-worker cluster.

Model building and compiling happen inside `strategy.scope()` (see `fitting`). The global
batch is the per-replica batch (`--batch-size`) times the replicas. The learning rate is used as
given: when N replicas make the global batch N times larger, the usual starting point is the
linear scaling rule (N times the single-device rate, with a few epochs of warm-up when N is
large), or keep the global batch by dividing `--batch-size` by N. The engine does neither
silently.

Strategies (`--strategy`):

- `default`: one device.
- `mirrored`: one replica per local GPU; on a machine without GPUs, one per logical CPU device
  (`ZOO_CPU_DEVICES=N` splits the CPU into N, which is how the tests run two replicas).
- `multi_worker`: `MultiWorkerMirroredStrategy` over the cluster in `TF_CONFIG`. Every task runs
  the same command; Keras 3's `model.fit` fails under this strategy (keras#20585), so
  `tasks.engine.distributed_fit` trains with its own step. Only the chief writes the run directory.
- `tpu`: `TPUStrategy` through `TPUClusterResolver` (`TPU_NAME`, or a TPU attached to this VM).
- `auto`: a TPU when one is named or attached and answers; else the `TF_CONFIG` cluster when it
  has more than one task; else `mirrored` over more than one GPU; else `default`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from common import compat
from common.errors import InputError
from tasks.config import TUNE_MULTI_WORKER
from tasks.engine import interrupt
from tasks.engine.cluster import EXAMPLE_TF_CONFIG, Cluster, read_cluster
from tasks.engine.devices import configure_cpu_devices, connect_tpu, tpu_hinted

# How long a finished task waits for the others (the chief exports after training).
EXIT_BARRIER_SECONDS = 3600
STOP_BARRIER_SECONDS = 60  # tasks stopped by a signal leave together (they have a grace period)
WORKERS_SUFFIX = ".workers"

_MULTI_WORKER: list[tf.distribute.Strategy] = []


def get_strategy(name: str, search: bool = False) -> tf.distribute.Strategy:
    """Returns the strategy for `--strategy NAME`.

    Args:
        name: One of `tasks.config.STRATEGIES` (see the module docstring).
        search: A hyperparameter search will run (it cannot be multi-worker: keras-tuner has its
            own chief/worker mode).

    Call it before anything runs on TensorFlow (`tasks.cli` does, before loading the data):
    a multi-worker strategy can only be set up then, and is then reused; so is the split of the
    CPU into logical devices.

    Raises:
        InputError: An unknown name, `multi_worker` without a usable `TF_CONFIG`, a search with
            `multi_worker`, `tpu` without a TPU, or a bad `ZOO_CPU_DEVICES`.
    """
    configure_cpu_devices()
    cluster = read_cluster() if name in ("auto", "multi_worker") else None
    # Physical, not logical: listing logical devices starts TensorFlow's runtime, after which
    # MultiWorkerMirroredStrategy can no longer set up its collective ops.
    gpus = tf.config.list_physical_devices("GPU")
    if name == "auto":
        tpu = connect_tpu(required=False) if tpu_hinted() else None
        if tpu is not None:
            return tpu
        name = ("multi_worker" if cluster is not None and cluster.tasks > 1
                else "mirrored" if len(gpus) > 1 else "default")
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = [device.name for device in tf.config.list_logical_devices("GPU")] or [
            device.name for device in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    if name == "tpu":
        return connect_tpu(required=True)
    if name == "multi_worker":
        if cluster is None:
            raise InputError("--strategy multi_worker needs TF_CONFIG: the cluster's tasks and "
                             "this task's place in it, e.g. TF_CONFIG='" + EXAMPLE_TF_CONFIG
                             + "' on the first host. See docs/distributed.md.")
        if search:
            raise InputError(TUNE_MULTI_WORKER)
        # RING all-reduce works everywhere; on GPUs the runtime picks NCCL.
        implementation = (tf.distribute.experimental.CommunicationImplementation.AUTO if gpus
                          else tf.distribute.experimental.CommunicationImplementation.RING)
        if _MULTI_WORKER:  # one per process: its collective ops are set up at startup
            return _MULTI_WORKER[0]
        _MULTI_WORKER.append(tf.distribute.MultiWorkerMirroredStrategy(
            communication_options=tf.distribute.experimental.CommunicationOptions(
                implementation=implementation)))
        return _MULTI_WORKER[0]
    raise InputError(f"unknown strategy {name!r}; choose one of auto, default, mirrored, "
                     "multi_worker, tpu.")


def is_multi_worker(strategy: tf.distribute.Strategy) -> bool:
    """Whether `strategy` trains across processes (and so cannot use `model.fit`)."""
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def needs_own_loop(strategy: tf.distribute.Strategy) -> bool:
    """Whether `strategy` trains in `tasks.engine.distributed_fit` instead of Keras's `model.fit`.

    Keras 3's `fit` fails under MultiWorkerMirroredStrategy (keras#20585), and under a
    MirroredStrategy of more than one replica it fails too on this stack: with more than one
    step per execution ("You must feed a value for placeholder tensor", keras#19246), and on a
    validation batch that does not split evenly across the replicas (it averages the replicas'
    first batches to build the model: "Inputs to operation AddN ... must have the same size").
    One replica, and TPUs, keep `fit`.
    """
    return is_multi_worker(strategy) or (
        isinstance(strategy, tf.distribute.MirroredStrategy)
        and strategy.num_replicas_in_sync > 1)


def cluster_of(strategy: tf.distribute.Strategy) -> Cluster | None:
    """This process's task under a multi-worker strategy; None for single-process strategies."""
    if not is_multi_worker(strategy):
        return None
    return read_cluster() or Cluster(1, "worker", 0)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run directory (always, outside a cluster)."""
    cluster = cluster_of(strategy)
    return cluster is None or cluster.is_chief


def scratch_directory(run_dir: Path, strategy: tf.distribute.Strategy) -> Path:
    """A non-chief task's own folder: `<run-dir>.workers/<task>/` (its history and backup).

    It sits beside the run directory, like `<run-dir>.partial`, because the chief replaces the
    run directory as a whole when the run succeeds.
    """
    run_dir = run_dir.resolve()
    cluster = cluster_of(strategy)
    name = cluster.name if cluster else "chief"
    return run_dir.with_name(run_dir.name + WORKERS_SUFFIX) / name


def precision_policy(enabled: bool, strategy: tf.distribute.Strategy) -> str:
    """The Keras dtype policy for `--mixed-precision` on this machine.

    `mixed_bfloat16` under a TPU strategy, `mixed_float16` when a GPU is visible, else `float32`:
    float16 matrix products on CPUs are emulated and slower than float32, so a CPU-only run keeps
    float32 (the engine prints a warning).
    """
    if not enabled:
        return "float32"
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return "mixed_bfloat16"
    return "mixed_float16" if tf.config.list_physical_devices("GPU") else "float32"


@contextmanager
def dtype_policy(name: str) -> Iterator[None]:
    """Sets Keras's global dtype policy for the block, restoring the previous one after.

    Layers keep the policy they were built with, so exports and later runs in the same process
    are unaffected by the block.
    """
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def describe(strategy: tf.distribute.Strategy, policy: str = "float32") -> dict[str, Any]:
    """The `distribution` section of metrics.json: strategy, replicas, workers, dtype policy."""
    cluster = cluster_of(strategy)
    return {"strategy": strategy_name(strategy),
            "replicas": strategy.num_replicas_in_sync,
            "workers": cluster.tasks if cluster else 1,
            "mixed_precision": policy}


def strategy_name(strategy: tf.distribute.Strategy) -> str:
    """The strategy's public name: `DefaultStrategy`, `MirroredStrategy`, ...

    Told by the public API, not TensorFlow's class names (MultiWorkerMirroredStrategy's class is
    CollectiveAllReduceStrategy, the default strategy's a private one): the default strategy is
    the one `tf.distribute.get_strategy()` returns outside any strategy's scope, as in
    `get_strategy("default")` (`describe` runs outside every scope).
    """
    if is_multi_worker(strategy):
        return "MultiWorkerMirroredStrategy"
    if not tf.distribute.has_strategy() and strategy is tf.distribute.get_strategy():
        return "DefaultStrategy"
    return type(strategy).__name__


def weights_digest(network: keras.Model) -> str:
    """SHA-256 of a network's weights (every task of a cluster ends with the same one)."""
    digest = hashlib.sha256()
    for value in network.get_weights():
        digest.update(np.ascontiguousarray(value).tobytes())
    return digest.hexdigest()


def local_copy(network: keras.Model) -> keras.Model:
    """The network with its weights, built outside any strategy; itself when not multi-worker.

    A multi-worker network's metric variables are reduced across the cluster whenever they are
    read, so after training the chief evaluates and exports this plain copy instead.
    """
    return plain_copy(network) if is_multi_worker(network.distribute_strategy) else network


def plain_copy(network: keras.Model) -> keras.Model:
    """A copy of a compiled network and its weights, made outside any strategy's scope."""
    copy = keras.models.clone_model(network)
    copy.compile_from_config(network.get_compile_config())
    copy.set_weights(network.get_weights())
    return copy


class ClusterError(RuntimeError):
    """Another task of the cluster failed, so this one stopped too."""


@contextmanager
def leave_cluster(strategy: tf.distribute.Strategy) -> Iterator[None]:
    """Ends this task's part of a multi-worker run in step with the other tasks.

    On success the task waits at a barrier for every task, so none exits while another still
    needs the cluster (a chief whose workers exited hangs at exit), as it does when a signal
    stopped every task at once. On failure it reports the error to the cluster, which aborts the
    other tasks' pending collectives and barriers instead of leaving them waiting. Outside a
    cluster the block just runs.

    Raises:
        ClusterError: Another task failed.
    """
    if not is_multi_worker(strategy) or (read_cluster() or Cluster(1, "worker", 0)).tasks == 1:
        yield
        return
    coordination = compat.cluster_coordination()
    try:
        yield
    except BaseException as error:
        if isinstance(error, interrupt.Interrupted) and error.agreed:
            # Every task stopped at the same step (`tasks.engine.distributed_fit`): none failed, so
            # they leave together, as on success, instead of aborting the cluster.
            try:
                coordination.wait_at_barrier("zoo_run_stopped", STOP_BARRIER_SECONDS * 1000)
            except tf.errors.OpError:
                pass  # another task died meanwhile: this one stops all the same
            raise
        try:
            coordination.report_error_to_cluster(
                tf.errors.UNKNOWN, f"{cluster_of(strategy).name} failed: "
                f"{type(error).__name__}: {error}"[:2000])
        except Exception:  # noqa: BLE001 - the cluster may be failing already
            pass
        raise
    try:
        coordination.wait_at_barrier("zoo_run_end", EXIT_BARRIER_SECONDS * 1000)
    except tf.errors.OpError as error:
        raise ClusterError(f"another task of the cluster failed before the run ended: "
                           f"{str(error).splitlines()[0]}") from None
