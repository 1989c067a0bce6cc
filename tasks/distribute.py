"""Choosing a `tf.distribute` strategy.

Model building and compiling happen inside `strategy.scope()` (see `tasks.runner`). `mirrored`
replicates the model on every local GPU (or on logical CPU devices, for testing); the global
batch is the per-replica batch times the number of replicas.
"""

from __future__ import annotations

import tensorflow as tf

from datasets.errors import InputError


def get_strategy(name: str) -> tf.distribute.Strategy:
    """Returns the strategy for `--strategy NAME`.

    Args:
        name: `default` (one device), `mirrored` (all local GPUs, else all logical CPUs), or
            `auto` (mirrored when more than one GPU is visible, else default).
    """
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 else "default"
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = [device.name for device in gpus] or [
            device.name for device in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    raise InputError(f"unknown strategy {name!r}; choose auto, default or mirrored.")
