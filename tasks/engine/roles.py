"""Roles in a distributed run: what it prints about its distribution; a non-chief's share.

In a multi-worker run every task trains in step; only the chief writes the run directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tensorflow as tf

from tasks.config import TaskConfig
from tasks.engine import distribute
from tasks.engine.fitting import fit_default
from tasks.engine.inputs import ImageInputs, TableInputs


def describe_distribution(config: TaskConfig, strategy: tf.distribute.Strategy) -> dict[str, Any]:
    """The strategy, replicas and dtype policy of a run (metrics.json), printed as one line."""
    policy = distribute.precision_policy(config.runtime.mixed_precision, strategy)
    if config.runtime.mixed_precision and policy == "float32":
        print("warning: --mixed-precision needs a GPU or a TPU; on this CPU-only machine "
              "training stays float32 (float16 on CPUs is emulated and slower)", flush=True)
    described = distribute.describe(strategy, policy)
    if described["replicas"] > 1 or described["workers"] > 1 or policy != "float32":
        cluster = distribute.cluster_of(strategy)
        print(f"distribution: {described['strategy']}, {described['replicas']} replicas"
              + (f" on {described['workers']} workers (this is {cluster.name})" if cluster else "")
              + f", dtype policy {policy}", flush=True)
    return described


def train_as_cluster_worker(config: TaskConfig, inputs: TableInputs | ImageInputs,
                             strategy: tf.distribute.Strategy, final_dir: Path,
                            data_hashes: dict[str, Any]) -> None:
    """A multi-worker run's non-chief task: trains in step with the chief, writes no run.

    Its history, backup and final weights' SHA-256 go to its own folder
    (`distribute.scratch_directory`); the chief writes the run directory.
    """
    scratch = distribute.scratch_directory(final_dir, strategy)
    scratch.mkdir(parents=True, exist_ok=True)
    with distribute.leave_cluster(strategy):
        fitted = fit_default(config, inputs, strategy, scratch, data_hashes).fit
        (scratch / "weights.sha256").write_text(distribute.weights_digest(fitted.network) + "\n")
        print(f"{distribute.cluster_of(strategy).name}: trained {len(fitted.history)} epochs; "
              f"the chief writes {final_dir}", flush=True)
