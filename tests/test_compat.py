"""`common.compat`: each shim works on the installed versions, and fails clearly without them.

The fallback tests hide the private module a shim imports (a `None` entry in `sys.modules` makes
importing it fail), as a release that removed it would. The last tests check that no other file
imports a private module of Keras, TensorFlow or keras-tuner, or touches a private name the
shims wrap.
"""

from __future__ import annotations

import ast
import socket
import sys
from pathlib import Path

import keras
import keras_tuner
import numpy as np
import pytest

from common import compat

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("common", "tasks", "datasets", "zoo", "benchmarks", "tests")
ALLOWED = {ROOT / "common" / "compat.py"}
PRIVATE_MODULES = ("keras.src", "tensorflow.python", "keras_tuner.src")
# Spelled without their underscore here, so that this file's own strings are not uses.
PRIVATE_NAMES = {"_" + name for name in (
    "symbolic_build", "maybe_symbolic_build", "retry_queue", "flatten_layers",
    "DefaultDistributionStrategy", "gradient_registry", "KERAS_DIR")}
# Calls that reach a module or attribute by name.
BY_NAME = {"import_module", "__import__", "patch", "getattr", "setattr", "hasattr", "delattr"}


def compiled_network():
    network = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    network.compile(optimizer="adam", loss="mse")
    return network


def rows(count=32):
    x = np.random.default_rng(0).normal(size=(count, 3)).astype("float32")
    return x, x[:, :1]


def oracle():
    hp = keras_tuner.HyperParameters()
    hp.Float("rate", 0.0, 1.0)
    return keras_tuner.oracles.RandomSearchOracle(
        objective=keras_tuner.Objective("loss", "min"), hyperparameters=hp, max_trials=2, seed=1)


# --- Keras -------------------------------------------------------------------------------------

def test_symbolic_build_creates_the_optimizer_and_metric_variables():
    network = compiled_network()
    assert not network.optimizer.built
    compat.symbolic_build(network, rows(4))
    assert network.optimizer.built and network.optimizer.variables


def test_symbolic_build_without_the_internal_is_a_clear_error():
    with pytest.raises(compat.MissingInternal, match=r"the installed keras no longer has "
                                                     r"Model\._symbolic_build .*pyproject\.toml"):
        compat.symbolic_build(object(), rows(4))


def test_set_keras_home_moves_the_cache_keras_itself_uses(tmp_path):
    source = tmp_path / "source.txt"
    source.write_text("cached")
    (tmp_path / "home").mkdir()  # get_file falls back to /tmp/.keras for a folder it cannot write
    previous = compat.set_keras_home(str(tmp_path / "home"))
    try:
        assert compat.keras_home() == str(tmp_path / "home")
        path = keras.utils.get_file("copy.txt", origin=source.as_uri())
    finally:
        compat.set_keras_home(previous)
    assert Path(path) == tmp_path / "home" / "datasets" / "copy.txt"
    assert compat.keras_home() == previous


def test_keras_home_falls_back_to_the_documented_rule(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "keras.src.backend.config", None)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert compat.keras_home() == str(tmp_path)
    monkeypatch.delenv("KERAS_HOME")
    assert compat.keras_home() == str(Path("~/.keras").expanduser())


def test_keras_file_utils_is_where_get_file_looks_up_its_helpers():
    module = compat.keras_file_utils()
    assert keras.utils.get_file.__module__ == module.__name__
    assert callable(module.validate_file) and callable(module.urlretrieve)


@pytest.mark.parametrize("hidden, call", [
    ("keras.src.backend", lambda: compat.set_keras_home("/tmp")),
    ("keras.src.utils", compat.keras_file_utils),
])
def test_test_only_keras_shims_fail_clearly(monkeypatch, hidden, call):
    monkeypatch.setitem(sys.modules, hidden, None)
    with pytest.raises(compat.MissingInternal, match="the installed keras no longer has"):
        call()


# --- TensorFlow --------------------------------------------------------------------------------

def test_cluster_coordination_offers_the_barrier_and_the_error_report():
    coordination = compat.cluster_coordination()
    assert callable(coordination.wait_at_barrier)
    assert callable(coordination.report_error_to_cluster)


def test_cluster_coordination_without_the_internal_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow.python.eager", None)
    with pytest.raises(compat.MissingInternal, match="the installed tensorflow no longer has "
                                                     "tensorflow.python.eager.context"):
        compat.cluster_coordination()


def test_a_trial_leaves_no_traced_graph_in_tensorflows_gradient_registry():
    before = compat.custom_gradient_names()
    with compat.dropping_custom_gradients():
        compiled_network().fit(*rows(), epochs=1, verbose=0)
        assert compat.custom_gradient_names() > before  # the growth this guards against
    assert compat.custom_gradient_names() == before


def test_without_the_gradient_registry_nothing_is_dropped_and_a_warning_says_so(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow.python.framework", None)
    assert compat.custom_gradient_names() == set()
    with pytest.warns(RuntimeWarning, match="traced graphs stay in memory"):
        with compat.dropping_custom_gradients():
            ran = True
    assert ran


# --- keras-tuner -------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_oracle_server_serves_until_the_search_is_over():
    searched = oracle()
    address = f"127.0.0.1:{free_port()}"
    server, done = compat.start_oracle_server(searched, address)
    try:
        assert done() is False  # no worker was told to stop yet
        with socket.create_connection(tuple(address.rsplit(":", 1)), timeout=5):
            pass  # the gRPC server listens
    finally:
        server.stop(grace=0)


def test_the_oracle_server_without_the_internal_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "keras_tuner.src.distribute", None)
    with pytest.raises(compat.MissingInternal, match="the installed keras-tuner no longer has "
                                                     "keras_tuner.src.distribute.oracle_chief"):
        compat.start_oracle_server(oracle(), "127.0.0.1:0")


def test_retry_queue_is_the_live_queue_the_oracle_saves():
    searched = oracle()
    queue = compat.retry_queue(searched)
    queue.append("07")
    assert compat.retry_queue(searched) is queue
    assert searched.get_state()["retry_queue"] == ["07"]


def test_without_the_retry_queue_a_warning_says_a_trial_may_run_again():
    with pytest.warns(RuntimeWarning, match="may run again"):
        assert compat.retry_queue(object()) == []


# --- Nothing else touches the internals --------------------------------------------------------

def private_uses(source: str) -> list[str]:
    """What in `source` imports a private module or touches a private name, one line each."""
    def private_module(name: str) -> bool:
        return any(name == prefix or name.startswith(prefix + ".") for prefix in PRIVATE_MODULES)

    found = []
    for node in ast.walk(ast.parse(source)):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Import):
            found += [f"{line}: import {alias.name}" for alias in node.names
                      if private_module(alias.name)]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            found += [f"{line}: from {node.module} import {alias.name}" for alias in node.names
                      if private_module(node.module or "")
                      or private_module(f"{node.module}.{alias.name}")]
        elif isinstance(node, ast.Attribute) and node.attr in PRIVATE_NAMES:
            found.append(f"{line}: .{node.attr}")
        elif isinstance(node, ast.Name) and node.id in PRIVATE_NAMES:
            found.append(f"{line}: {node.id}")
        elif isinstance(node, ast.Constant) and node.value in PRIVATE_NAMES:
            found.append(f"{line}: {node.value!r}")  # getattr(x, "..."), a class-name match
        elif isinstance(node, ast.Call):
            called = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(
                node.func, "id", "")
            found += [f"{line}: {called}({argument.value!r})" for argument in node.args
                      if called in BY_NAME and isinstance(argument, ast.Constant)
                      and isinstance(argument.value, str) and private_module(argument.value)]
    return found


def test_only_compat_imports_private_modules_or_touches_private_names():
    wrong = []
    for folder in SCANNED:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path not in ALLOWED:
                wrong += [f"{path.relative_to(ROOT)}:{use}"
                          for use in private_uses(path.read_text())]
    assert not wrong, "use common.compat instead:\n" + "\n".join(wrong)


@pytest.mark.parametrize("source", [
    "from keras.src.backend.config import keras_home",
    "from keras.src import backend",
    "from keras import src",
    "import tensorflow.python.framework.ops as ops",
    "def lazy():\n    from keras_tuner.src.distribute import oracle_chief",
    "network._symbolic_build(data_batch=batch)",
    "oracle._retry_queue.remove(trial)",
    "layer._flatten_layers(include_self=True)",
    "names = {'_DefaultDistributionStrategy': 'DefaultStrategy'}",
    "ops._gradient_registry._registry",
    "getattr(ops, '_gradient_registry', None)",
    "monkeypatch.setattr(config, '_KERAS_DIR', path)",
    "importlib.import_module('keras.src.utils.file_utils')",
    "mock.patch('tensorflow.python.eager.context.context')",
])
def test_the_scan_sees_each_way_of_reaching_an_internal(source):
    assert private_uses(source)


def test_the_scan_leaves_public_code_alone():
    assert private_uses("import keras\nfrom tensorflow import python_io\nimport keras_tuner\n"
                        "keras.utils.get_file('a', origin='b')\n"
                        "text = 'keras.src is private'\n") == []
