"""The devices a strategy runs on: logical CPU devices for tests, and connecting to a TPU.

`tasks.engine.distribute.get_strategy` calls these before anything runs on TensorFlow.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import tensorflow as tf

from common.errors import InputError

CPU_DEVICES_ENV = "ZOO_CPU_DEVICES"
TPU_TIMEOUT_ENV = "ZOO_TPU_TIMEOUT"
DEFAULT_TPU_TIMEOUT = 120.0
# Variables that name a Cloud TPU; without one of them (or a TPU device file) `auto` never probes.
TPU_ENV = ("TPU_NAME", "KUBE_GOOGLE_CLOUD_TPU_ENDPOINTS", "TPU_CONFIG", "COLAB_TPU_ADDR")
TPU_DEVICE_FILES = ("/dev/accel0", "/dev/vfio/0")


def configure_cpu_devices() -> int | None:
    """Splits the CPU into `ZOO_CPU_DEVICES` logical devices, before TensorFlow starts.

    `mirrored` then puts one replica on each, so two-replica training can be tested on any
    machine. Without the variable nothing changes.

    Returns:
        The number of logical CPU devices asked for, or None.

    Raises:
        InputError: Not a positive integer, or TensorFlow already started with another split.
    """
    text = os.environ.get(CPU_DEVICES_ENV, "").strip()
    if not text:
        return None
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise InputError(f"{CPU_DEVICES_ENV} takes a positive number of logical CPU devices, "
                         f"e.g. {CPU_DEVICES_ENV}=2. Received: {CPU_DEVICES_ENV}={text!r}")
    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if current is not None and len(current) == count:
        return count
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)])
    except RuntimeError:
        existing = len(tf.config.list_logical_devices("CPU"))
        raise InputError(f"{CPU_DEVICES_ENV}={count} must be set before TensorFlow starts, but "
                         f"this process already runs it on {existing} logical CPU device(s). "
                         f"Set it in the environment of a new process.") from None
    return count


def tpu_hinted() -> bool:
    """Whether a TPU is named in the environment or attached to this machine."""
    return any(os.environ.get(name) for name in TPU_ENV) or any(
        Path(path).exists() for path in TPU_DEVICE_FILES)


def connect_tpu(required: bool) -> tf.distribute.Strategy | None:
    """Resolves, connects to and initializes a TPU, giving up after `ZOO_TPU_TIMEOUT` seconds.

    The resolver asks the GCE metadata server about a named TPU, with no timeout of its own; a
    machine without network would hang there, so the attempt runs in a daemon thread.
    """
    try:
        timeout = float(os.environ.get(TPU_TIMEOUT_ENV, DEFAULT_TPU_TIMEOUT))
    except ValueError:
        raise InputError(f"{TPU_TIMEOUT_ENV} takes seconds, e.g. {TPU_TIMEOUT_ENV}=60. "
                         f"Received: {os.environ[TPU_TIMEOUT_ENV]!r}") from None
    outcome: dict[str, Any] = {}

    def connect() -> None:
        try:
            named = any(os.environ.get(name) for name in TPU_ENV)
            resolver = (tf.distribute.cluster_resolver.TPUClusterResolver() if named
                        else tf.distribute.cluster_resolver.TPUClusterResolver(tpu="local"))
            if named:
                tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
            outcome["strategy"] = tf.distribute.TPUStrategy(resolver)
        except Exception as error:  # noqa: BLE001 - every failure means "no usable TPU"
            outcome["error"] = error

    thread = threading.Thread(target=connect, name="tpu-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    if "strategy" in outcome:
        return outcome["strategy"]
    if not required:
        return None
    if thread.is_alive():
        reason = f"no TPU answered within {timeout:g} s"
    else:
        error = outcome.get("error")
        text = str(error).splitlines()[0] if str(error) else ""
        reason = f"{type(error).__name__}: {text.split('. ')[0][:160]}"
    raise InputError(f"--strategy tpu found no usable TPU ({reason}). Run on a Cloud TPU VM, or "
                     f"set TPU_NAME to your TPU; {TPU_TIMEOUT_ENV} sets the wait. Without a TPU "
                     "use --strategy auto.")
