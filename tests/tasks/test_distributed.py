"""Strategy choice, TF_CONFIG roles, mixed precision and backups, in this process (fast).

Whole multi-process runs are in test_distributed_runs.py.
"""

from __future__ import annotations

import json
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from common.errors import InputError
from tasks.binary_classify import default_config
from tasks.cli import config_from_args
from tasks.engine import devices, distribute, resume, roles
from tasks.engine.cluster import read_cluster
from tests.helpers import assert_one_error_line, run_main


def tf_config(workers: int = 2, index: int = 0, chief: bool = False, **task) -> str:
    cluster = {"worker": [f"localhost:{1000 + i}" for i in range(workers)]}
    if chief:
        cluster["chief"] = ["localhost:999"]
    return json.dumps({"cluster": cluster,
                       "task": task or {"type": "worker", "index": index}})


@pytest.fixture
def no_cluster(monkeypatch):
    for name in ("TF_CONFIG", devices.CPU_DEVICES_ENV, *devices.TPU_ENV):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_tf_config_roles(no_cluster):
    no_cluster.setenv("TF_CONFIG", tf_config(index=0))
    cluster = read_cluster()
    assert (cluster.tasks, cluster.is_chief, cluster.name) == (2, True, "worker-0")
    no_cluster.setenv("TF_CONFIG", tf_config(index=1))
    assert not read_cluster().is_chief
    # With a chief task, worker 0 is an ordinary worker.
    no_cluster.setenv("TF_CONFIG", tf_config(chief=True, index=0))
    assert not read_cluster().is_chief
    no_cluster.setenv("TF_CONFIG", tf_config(chief=True, type="chief", index=0))
    cluster = read_cluster()
    assert (cluster.tasks, cluster.is_chief, cluster.name) == (3, True, "chief")
    no_cluster.delenv("TF_CONFIG")
    assert read_cluster() is None


@pytest.mark.parametrize("text, fragments", [
    ("{not json", ["TF_CONFIG is not valid JSON", '"cluster": {"worker"']),
    (json.dumps({"cluster": {"worker": ["a:1"]}}), ["needs a 'cluster' and a 'task'"]),
    (json.dumps({"cluster": {"worker": ["a:1"], "ps": ["b:1"]},
                 "task": {"type": "worker", "index": 0}}), ["has jobs ps", "no parameter servers"]),
    (tf_config(workers=2, index=2), ["task", "is not in its cluster"]),
    (json.dumps({"cluster": {"worker": []}, "task": {"type": "worker", "index": 0}}),
     ["non-empty list of host:port"]),
])
def test_bad_tf_config_is_one_clear_error(no_cluster, text, fragments):
    no_cluster.setenv("TF_CONFIG", text)
    with pytest.raises(InputError) as info:
        read_cluster()
    for fragment in fragments:
        assert fragment in str(info.value), (fragment, str(info.value))


def cli(csv, run_dir, *extra):
    return ["--data", str(csv), "--target", "bought", "--run-dir", str(run_dir),
            "--export", "none", "--epochs", "2", *extra]


def test_multi_worker_without_tf_config(no_cluster, user_csv, tmp_path, capsys):
    code, lines = run_main(capsys, *cli(user_csv, tmp_path / "run", "--strategy", "multi_worker"))
    assert code == 2
    assert_one_error_line(lines, "--strategy multi_worker needs TF_CONFIG", '"task": {"type"')
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("strategy", ["multi_worker", "auto"])
def test_malformed_tf_config(no_cluster, user_csv, tmp_path, capsys, strategy):
    no_cluster.setenv("TF_CONFIG", '{"cluster": {"worker": ["a:1"]}, "task": ')
    code, lines = run_main(capsys, *cli(user_csv, tmp_path / "run", "--strategy", strategy))
    assert code == 2
    assert_one_error_line(lines, "TF_CONFIG is not valid JSON", "the same cluster on every task")


def test_tune_with_multi_worker_is_refused(no_cluster, user_csv, tmp_path, capsys):
    code, lines = run_main(capsys, *cli(user_csv, tmp_path / "run", "--strategy", "multi_worker",
                                        "--tune"))
    assert code == 2
    assert_one_error_line(lines, "--tune does not run under --strategy multi_worker",
                          "KERASTUNER_")


def test_auto_tune_refused_when_tf_config_names_a_cluster(no_cluster):
    no_cluster.setenv("TF_CONFIG", tf_config())
    with pytest.raises(InputError, match="--tune does not run"):
        distribute.get_strategy("auto", search=True)


def test_bad_cpu_device_count(no_cluster, user_csv, tmp_path, capsys):
    no_cluster.setenv(devices.CPU_DEVICES_ENV, "two")
    code, lines = run_main(capsys, *cli(user_csv, tmp_path / "run", "--strategy", "mirrored"))
    assert code == 2
    assert_one_error_line(lines, "ZOO_CPU_DEVICES takes a positive number", "'two'")


def test_auto_is_one_device_without_accelerators_or_cluster(no_cluster):
    default = tf.distribute.get_strategy()
    assert distribute.get_strategy("auto") is default
    # A TF_CONFIG of one task is no cluster to spread over.
    no_cluster.setenv("TF_CONFIG", tf_config(workers=1))
    assert distribute.get_strategy("auto") is default
    assert distribute.describe(default) == {"strategy": "DefaultStrategy", "replicas": 1,
                                            "workers": 1, "mixed_precision": "float32"}


def test_tpu_probe_gives_up_after_the_timeout(no_cluster):
    """A TPU name whose lookup never answers (no network) must not hang the run."""
    def unanswered(*args, **kwargs):
        time.sleep(30)

    no_cluster.setenv("TPU_NAME", "my-tpu")
    no_cluster.setenv(devices.TPU_TIMEOUT_ENV, "0.5")
    no_cluster.setattr(tf.distribute.cluster_resolver, "TPUClusterResolver", unanswered)
    started = time.monotonic()
    with pytest.raises(InputError) as info:
        distribute.get_strategy("tpu")
    assert time.monotonic() - started < 5
    assert "--strategy tpu found no usable TPU (no TPU answered within 0.5 s)" in str(info.value)
    # auto probes only when a TPU is named, and falls back quietly.
    assert distribute.get_strategy("auto") is tf.distribute.get_strategy()


def test_tpu_resolver_error_is_reported(no_cluster):
    def refused(*args, **kwargs):
        raise ValueError("Please provide a TPU Name to connect to.")

    no_cluster.setattr(tf.distribute.cluster_resolver, "TPUClusterResolver", refused)
    with pytest.raises(InputError, match=r"no usable TPU \(ValueError: Please provide a TPU"):
        distribute.get_strategy("tpu")


def test_precision_policy_follows_the_hardware(no_cluster):
    default = tf.distribute.get_strategy()
    assert distribute.precision_policy(False, default) == "float32"
    assert distribute.precision_policy(True, default) == "float32"  # this machine has no GPU
    gpu = tf.config.PhysicalDevice("/physical_device:GPU:0", "GPU")
    no_cluster.setattr(tf.config, "list_physical_devices",
                       lambda kind=None: [gpu] if kind == "GPU" else [])
    assert distribute.precision_policy(True, default) == "mixed_float16"
    assert distribute.precision_policy(False, default) == "float32"


def test_mixed_policy_applies_while_building_and_is_reset():
    with pytest.raises(RuntimeError), distribute.dtype_policy("mixed_float16"):
        network = zoo.build_model("mlp", problem="binary", input_dim=4)
        raise RuntimeError("a failed build must not leave the policy behind")
    assert keras.config.dtype_policy().name == "float32"
    hidden = [layer for layer in network.layers if isinstance(layer, keras.layers.Dense)]
    assert hidden[0].compute_dtype == "float16" and hidden[0].variable_dtype == "float32"
    assert network.get_layer("head").compute_dtype == "float32"
    assert network.output.dtype == "float32"


def test_mixed_precision_on_cpu_warns_and_keeps_float32(no_cluster, capsys):
    config = config_from_args(default_config, ["--mixed-precision"], "tasks.binary_classify", "")
    assert config.runtime.mixed_precision
    capsys.readouterr()
    described = roles.describe_distribution(config, tf.distribute.get_strategy())
    assert described == {"strategy": "DefaultStrategy", "replicas": 1, "workers": 1,
                         "mixed_precision": "float32"}
    assert capsys.readouterr().out.splitlines() == [
        "warning: --mixed-precision needs a GPU or a TPU; on this CPU-only machine training "
        "stays float32 (float16 on CPUs is emulated and slower)"]
    config.runtime.mixed_precision = False
    roles.describe_distribution(config, tf.distribute.get_strategy())
    assert capsys.readouterr().out == ""


def test_the_replicas_loop_synchronizes_batch_norm_in_nested_models():
    from tasks.engine import distributed_fit

    inner = zoo.build_model("cnn", problem="multiclass", num_classes=3, input_shape=(16, 16, 1),
                            batch_norm=True)
    outer = keras.Sequential([keras.Input((16, 16, 1)), inner])
    norms = [layer for layer in inner.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms and not any(layer.synchronized for layer in norms)
    distributed_fit._synchronize_batch_norm(outer)
    assert all(layer.synchronized for layer in norms)


def test_leave_cluster_is_a_plain_block_outside_a_cluster():
    with pytest.raises(KeyError), distribute.leave_cluster(tf.distribute.get_strategy()):
        raise KeyError("passes through")


# Backups ------------------------------------------------------------------------------------

def test_fingerprint_covers_training_settings_and_data_only():
    config = default_config()
    base = resume.fingerprint(config, {"data": "abc"}, 1)
    config.runtime.run_dir, config.runtime.backup_seconds = "elsewhere", 0.0
    config.export.formats, config.train.tensorboard = ["keras"], True
    assert resume.fingerprint(config, {"data": "abc"}, 1) == base
    assert resume.fingerprint(config, {"data": "abd"}, 1) != base
    assert resume.fingerprint(config, {"data": "abc"}, 2) != base
    config.train.learning_rate = 0.01
    assert resume.fingerprint(config, {"data": "abc"}, 1)["train"] != base["train"]


def test_a_backup_of_other_settings_is_discarded_with_a_line(tmp_path, capsys):
    config = default_config()
    old = resume.fingerprint(config, {"data": "abc"}, 1)
    backup = resume.open_backup(tmp_path / "backup", old, 5.0)
    assert backup == resume.Backup(tmp_path / "backup", 5.0)
    (backup.directory / "state-3.json").write_text("{}")
    # The same settings keep it.
    resume.open_backup(tmp_path / "backup", old)
    assert (backup.directory / "state-3.json").exists()
    assert capsys.readouterr().out == ""
    config.train.learning_rate = 0.01
    resume.open_backup(tmp_path / "backup", resume.fingerprint(config, {"data": "abc"}, 1))
    out = capsys.readouterr().out
    assert out.startswith(f"backup: discarding {tmp_path / 'backup'}: it was made with other "
                          "train; training starts from epoch 0")
    assert sorted(path.name for path in backup.directory.iterdir()) == [resume.FINGERPRINT]


def test_training_state_round_trip_and_pruning(tmp_path):
    history = tmp_path / "history.csv"
    stopping = keras.callbacks.EarlyStopping(patience=5, restore_best_weights=True)
    reduce_lr = keras.callbacks.ReduceLROnPlateau(patience=2)
    logger = keras.callbacks.CSVLogger(str(history))
    state = resume.TrainingState(tmp_path, [stopping, reduce_lr, logger], history)
    best = [np.arange(6.0).reshape(2, 3), np.ones(3)]
    for epoch in (1, 2, 3):
        history.write_text("epoch,loss\n" + "".join(f"{i},0.{i}\n" for i in range(epoch)))
        stopping.wait, stopping.best, stopping.best_epoch = epoch, 0.25, 1
        stopping.best_weights = best
        reduce_lr.wait, reduce_lr.cooldown_counter, reduce_lr.best = 1, epoch, 0.3
        state.save(epoch)
    assert resume.saved_states(tmp_path) == {2, 3}
    assert sorted(path.name for path in tmp_path.glob("best-*.npz")) == ["best-2.npz"]

    stopping2 = keras.callbacks.EarlyStopping(patience=5, restore_best_weights=True)
    reduce_lr2 = keras.callbacks.ReduceLROnPlateau(patience=2)
    logger2 = keras.callbacks.CSVLogger(str(history))
    restored = resume.TrainingState(tmp_path, [stopping2, reduce_lr2, logger2], history)
    history.write_text("garbage")
    restored.restore_history(2)
    restored.restore(2)
    assert history.read_text() == "epoch,loss\n0,0.0\n1,0.1\n"
    assert logger2.append
    assert (stopping2.wait, stopping2.best, stopping2.best_epoch) == (2, 0.25, 1)
    for saved, original in zip(stopping2.best_weights, best, strict=True):
        np.testing.assert_array_equal(saved, original)
    assert (reduce_lr2.wait, reduce_lr2.cooldown_counter, reduce_lr2.best) == (1, 2, 0.3)
