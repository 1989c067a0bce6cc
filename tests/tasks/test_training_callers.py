"""The engine is the only caller of training: every call site of compile, fit, evaluate,
`strategy.run` and compile_from_config in tasks/, datasets/ and zoo/ is in ALLOWED.

The scan reads the syntax tree, so it sees a call however it is spelled or wrapped:
`network.fit(...)`, `self.model.fit(...)`, `super().fit(...)`, `model.compile(...)` over
several lines, `fit(...)` imported bare, `strategy.run(...)`. Calls through `getattr(x, "fit")`
are out of scope. tests/ and benchmarks/ may call training directly.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import NamedTuple

from tests.helpers import ROOT

# Where each kind of call may appear (paths from the repository root). A new call elsewhere
# fails the test; a path that no longer holds one must leave its set.
ALLOWED = {
    # fitting: build and compile in the strategy's scope (fine_tune recompiles through it).
    "compile": {"tasks/engine/fitting.py"},
    # training: network.fit or the replica loop; evaluation: the scikit-learn baselines.
    "fit": {"tasks/engine/training.py", "tasks/engine/evaluation.py"},
    # distributed_fit: validation after each epoch of the replica loop; tuner_oracle: a trial.
    "evaluate": {"tasks/engine/distributed_fit.py", "tasks/engine/tuner_oracle.py"},
    "strategy.run": {"tasks/engine/distributed_fit.py"},
    # distribute: the plain copy of a multi-worker network that the chief evaluates.
    "compile_from_config": {"tasks/engine/distribute.py"},
    # Artifacts are written by Keras's ExportArchive and TensorFlow's converter, in one module.
    "export": set(),
    "write_out": {"tasks/engine/export.py"},
    "from_saved_model": {"tasks/engine/export.py"},
}
PACKAGES = ("tasks", "datasets", "zoo")
# Receivers whose `compile` is not a model's: the standard library's regular expressions.
NOT_MODELS = {"re"}


class CallSite(NamedTuple):
    path: str
    line: int
    kind: str
    code: str


def call_kind(call: ast.Call) -> str | None:
    """Which kind of ALLOWED call this is, or None."""
    function = call.func
    if isinstance(function, ast.Name):
        return function.id if function.id in ALLOWED and function.id != "strategy.run" else None
    if not isinstance(function, ast.Attribute):
        return None
    receiver = ast.unparse(function.value)
    if function.attr == "run":
        # On a strategy: `strategy.run`, `self.strategy.run`, `tf.distribute.get_strategy().run`.
        return "strategy.run" if "strategy" in receiver.rsplit(".", 1)[-1].lower() else None
    if function.attr == "compile" and receiver in NOT_MODELS:
        return None
    return function.attr if function.attr in ALLOWED else None


def call_sites(root: Path = ROOT) -> list[CallSite]:
    """Every call of an ALLOWED kind in the packages under `root`."""
    sites = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            name = path.relative_to(root).as_posix()
            for node in ast.walk(ast.parse(path.read_text(), name)):
                if isinstance(node, ast.Call) and (kind := call_kind(node)):
                    sites.append(CallSite(name, node.lineno, kind, ast.unparse(node.func)))
    return sorted(sites)


def outside_allowlist(sites: list[CallSite]) -> list[str]:
    return [f"{site.path}:{site.line}: {site.code}(...)" for site in sites
            if site.path not in ALLOWED[site.kind]]


def test_training_is_called_only_where_the_allowlist_says():
    sites = call_sites()
    assert outside_allowlist(sites) == [], "training runs through the engine; see ALLOWED"
    found = {(site.kind, site.path) for site in sites}
    stale = {(kind, path) for kind, paths in ALLOWED.items() for path in paths} - found
    assert not stale, f"no such call there any more, drop from ALLOWED: {sorted(stale)}"


def test_the_scan_sees_every_spelling_and_fails_on_a_new_caller(tmp_path):
    engine = tmp_path / "tasks" / "engine"
    engine.mkdir(parents=True)
    (engine / "fitting.py").write_text("network.compile(optimizer='adam')\n")
    (engine / "training.py").write_text("network.fit(x)\n")
    (tmp_path / "tasks" / "cli.py").write_text(
        "network.fit(x, y)\n"
        "model.compile(\n    optimizer='adam',\n    loss='mse',\n)\n"
        "strategy.run(step, args=(batch,))\n"
        "self.model.fit(x)\n"
        "self.strategy.run(step)\n"
        "tf.distribute.get_strategy().run(step)\n"
        "super().evaluate(x)\n"
        "fit(network, x)\n"
        "copy.compile_from_config(config)\n"
        "network.export('out')\n"
        # Not training, or out of scope:
        "re.compile('a+')\n"
        "subprocess.run(['ls'])\n"
        "runner.run(config)\n"
        "getattr(network, 'fit')(x)\n"
        "network.predict(x)\n")
    (tmp_path / "datasets").mkdir()
    (tmp_path / "datasets" / "load.py").write_text(
        "def read(network):\n    return network.evaluate(x, return_dict=True)\n")
    (tmp_path / "zoo").mkdir()
    (tmp_path / "zoo" / "mlp.py").write_text(
        "class Model:\n    def train(self):\n        self.compile_from_config({})\n")
    for folder in ["tests", "benchmarks"]:  # not scanned
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "run.py").write_text("network.fit(x)\nmodel.compile()\n")

    assert [(site.path, site.line, site.kind) for site in call_sites(tmp_path)] == [
        ("datasets/load.py", 2, "evaluate"),
        ("tasks/cli.py", 1, "fit"),
        ("tasks/cli.py", 2, "compile"),
        ("tasks/cli.py", 6, "strategy.run"),
        ("tasks/cli.py", 7, "fit"),
        ("tasks/cli.py", 8, "strategy.run"),
        ("tasks/cli.py", 9, "strategy.run"),
        ("tasks/cli.py", 10, "evaluate"),
        ("tasks/cli.py", 11, "fit"),
        ("tasks/cli.py", 12, "compile_from_config"),
        ("tasks/cli.py", 13, "export"),
        ("tasks/engine/fitting.py", 1, "compile"),
        ("tasks/engine/training.py", 1, "fit"),
        ("zoo/mlp.py", 3, "compile_from_config"),
    ]
    # The engine's calls are allowed; every other one is reported, with its place.
    assert outside_allowlist(call_sites(tmp_path)) == [
        "datasets/load.py:2: network.evaluate(...)",
        "tasks/cli.py:1: network.fit(...)",
        "tasks/cli.py:2: model.compile(...)",
        "tasks/cli.py:6: strategy.run(...)",
        "tasks/cli.py:7: self.model.fit(...)",
        "tasks/cli.py:8: self.strategy.run(...)",
        "tasks/cli.py:9: tf.distribute.get_strategy().run(...)",
        "tasks/cli.py:10: super().evaluate(...)",
        "tasks/cli.py:11: fit(...)",
        "tasks/cli.py:12: copy.compile_from_config(...)",
        "tasks/cli.py:13: network.export(...)",
        "zoo/mlp.py:3: self.compile_from_config(...)",
    ]
