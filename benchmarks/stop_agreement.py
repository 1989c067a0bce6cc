"""What the multi-worker loop's agreement on stopping costs (docs/distributed.md, "Preemption").

`distributed_fit` runs an epoch as calls of `STOP_CHECK_STEPS` steps and, between two, all-
reduces the signals each task received, so that all tasks stop at the same step. This starts two
workers on localhost and times, on each, (a) that agreement alone, and (b) one epoch of a small
network's training steps run as one call into TensorFlow against calls of `STOP_CHECK_STEPS`
steps with the agreement between them: the difference is what the stop checks cost per epoch.

    python benchmarks/stop_agreement.py [--steps 320] [--repeats 200]
    python benchmarks/stop_agreement.py --smoke   # 2 workers still, 64 steps, 5 agreements
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from smoke import parse_args

ROOT = Path(__file__).resolve().parents[1]


def worker(steps: int, repeats: int) -> dict[str, float]:
    """One task of the cluster (TF_CONFIG set): the timings, in milliseconds."""
    import keras
    import numpy as np
    import tensorflow as tf

    from common import compat
    from tasks.engine import distributed_fit

    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    with strategy.scope():
        network = keras.Sequential([keras.Input((16,)), keras.layers.Dense(64, activation="relu"),
                                    keras.layers.Dense(1)])
        network.compile(optimizer="adam", loss="mse")
    rows = np.random.default_rng(0).normal(size=(4096, 16)).astype("float32")
    data = tf.data.Dataset.from_tensor_slices((rows, rows[:, :1])).repeat().batch(64)
    with strategy.scope():
        compat.symbolic_build(network, next(iter(data.take(1))))
    iterator = iter(strategy.experimental_distribute_dataset(data))

    @tf.function
    def train_steps(iterator, count):
        for _ in tf.range(count):
            strategy.run(network.train_step, args=(next(iterator),))

    @tf.function
    def cluster_mean(values):
        return strategy.reduce(distributed_fit.MEAN, strategy.run(tf.identity, args=(values,)),
                               axis=None)

    def agree() -> None:
        cluster_mean(distributed_fit._signals()).numpy()

    def epoch(chunk: int) -> None:
        for done in range(0, steps, chunk):
            if done:
                agree()
            train_steps(iterator, tf.constant(min(chunk, steps - done)))

    agree(), epoch(steps), epoch(distributed_fit.STOP_CHECK_STEPS)  # trace everything once
    started = time.perf_counter()
    for _ in range(repeats):
        agree()
    agreement = (time.perf_counter() - started) / repeats * 1000
    timings = {"whole": [], "chunked": []}
    for _ in range(5):
        for name, chunk in (("whole", steps), ("chunked", distributed_fit.STOP_CHECK_STEPS)):
            started = time.perf_counter()
            epoch(chunk)
            timings[name].append((time.perf_counter() - started) * 1000)
    return {"agreement_ms": agreement, "checks_per_epoch": -(-steps // distributed_fit
                                                             .STOP_CHECK_STEPS) - 1,
            "epoch_ms_one_call": min(timings["whole"]),
            "epoch_ms_with_checks": min(timings["chunked"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=320, help="steps per epoch")
    parser.add_argument("--repeats", type=int, default=200, help="agreements timed")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parse_args(parser, steps=64, repeats=5)
    if args.worker:
        print(json.dumps(worker(args.steps, args.repeats)), flush=True)
        return
    ports = []
    for _ in range(2):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            ports.append(probe.getsockname()[1])
    hosts = [f"localhost:{port}" for port in ports]
    processes = [subprocess.Popen(
        [sys.executable, __file__, "--worker", "--steps", str(args.steps),
         "--repeats", str(args.repeats)], cwd=ROOT, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2",
             "TF_CONFIG": json.dumps({"cluster": {"worker": hosts},
                                      "task": {"type": "worker", "index": index}})})
        for index in range(2)]
    for index, process in enumerate(processes):
        result = json.loads(process.communicate(timeout=600)[0].strip().splitlines()[-1])
        cost = result["epoch_ms_with_checks"] - result["epoch_ms_one_call"]
        print(f"worker {index}: agreement {result['agreement_ms']:.2f} ms; epoch of "
              f"{args.steps} steps {result['epoch_ms_one_call']:.0f} ms in one call, "
              f"{result['epoch_ms_with_checks']:.0f} ms with {result['checks_per_epoch']} "
              f"stop checks ({cost:+.0f} ms, {cost / result['epoch_ms_one_call']:+.1%})")


if __name__ == "__main__":
    main()
