"""The problem types are declared once (`common.problems`) and nothing else switches on their names.

The scan below reads every module of `tasks/`, `datasets/` and `zoo/` and fails on a comparison
with a problem name (`problem == "binary"`, `problem in ("binary", "multiclass")`), a per-problem
dict literal (`{"binary": ..., "regression": ...}[problem]`) or a `case "regression":` outside the
modules whose job is the per-problem table: `zoo/heads.py` (the output layer) and
`tasks/engine/presets.py` (loss, scores, baselines). Read a property of `common.problems.get(name)`
instead, or add one to `Problem`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import keras
import pytest

from common import problems
from common.errors import InputError
from tasks.binary_classify import default_config
from tasks.config import validate
from tasks.engine import presets
from zoo.heads import add_head

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("tasks", "datasets", "zoo")
ALLOWED = {"zoo/heads.py", "tasks/engine/presets.py"}
# Switches the lead replaces in a file this change does not edit; at most this many remain.
PENDING: dict[str, int] = {}


def _names_in(node: ast.AST) -> set[str]:
    """Problem names a constant, or a tuple / list / set of constants, spells out."""
    items = node.elts if isinstance(node, ast.Tuple | ast.List | ast.Set) else [node]
    return {item.value for item in items
            if isinstance(item, ast.Constant) and item.value in problems.NAMES}


def switches_in(source: str) -> list[str]:
    """`line: code` of each place in `source` that branches on a problem's name."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            named = set().union(*map(_names_in, [node.left, *node.comparators]))
        elif isinstance(node, ast.Dict):
            named = set().union(*(_names_in(key) for key in node.keys if key is not None))
        elif isinstance(node, ast.MatchValue):
            named = _names_in(node.value)
        else:
            continue
        if named:
            found.append(f"{node.lineno}: {ast.get_source_segment(source, node)}")
    return found


def switches(root: Path) -> dict[str, list[str]]:
    """`{path relative to root: switches}` over the scanned packages under `root`."""
    result = {}
    for package in SCANNED:
        for path in sorted((root / package).rglob("*.py")):
            relative = path.relative_to(root).as_posix()
            found = switches_in(path.read_text(encoding="utf-8"))
            if found and relative not in ALLOWED:
                result[relative] = found
    return result


def test_no_module_outside_the_declarations_switches_on_problem_names():
    found = switches(ROOT)
    pending = {path: lines for path, lines in found.items()
               if len(lines) <= PENDING.get(path, 0)}
    unexpected = {path: lines for path, lines in found.items() if path not in pending}
    assert not unexpected, (
        "Read a property of common.problems.get(problem) instead of comparing problem names "
        f"(or add the property to common.problems.Problem): {unexpected}")


@pytest.mark.parametrize(("source", "count"), [
    ('if schema.problem == "regression":\n    pass\n', 1),
    ('ok = problem in ("binary", "multiclass")\n', 1),
    ('units = {"binary": 1, "multiclass": n}[problem]\n', 1),
    ('match problem:\n    case "binary":\n        pass\n', 1),
    ('config = TaskConfig(task="regression", problem="regression")\n', 0),
    ('if kind == "numeric":\n    pass\n', 0),
])
def test_the_scan_sees_each_form_of_switch(source, count):
    assert len(switches_in(source)) == count


def test_presets_cover_exactly_the_declared_problems():
    assert tuple(presets.PRESETS) == problems.NAMES
    for name, preset in presets.PRESETS.items():
        assert preset.problem is problems.get(name)


@pytest.mark.parametrize("name", ["ranking", "", None, ["binary"]])
def test_an_unknown_problem_is_one_error_listing_the_choices(name):
    with pytest.raises(ValueError, match="choose one of binary, multiclass, regression") as info:
        problems.get(name)
    assert f"Received: problem={name!r}" in str(info.value)
    with pytest.raises(ValueError, match="Unknown problem"):
        presets.get_preset(name)


def test_a_config_with_an_unknown_problem_is_an_input_error():
    config = default_config()
    config.problem = "ranking"
    with pytest.raises(InputError, match="problem must be one of binary, multiclass, regression. "
                                         "Received: 'ranking'"):
        validate(config)


@pytest.mark.parametrize(("name", "counts", "refused"), [
    ("binary", [2], [0, 1, 3]),
    ("multiclass", [2, 3, 50], [0, 1]),
    ("regression", [0], [1, 2]),
])
def test_each_problem_declares_its_class_counts(name, counts, refused):
    problem = problems.get(name)
    assert all(problem.accepts_classes(count) for count in counts)
    assert not any(problem.accepts_classes(count) for count in refused)


@pytest.mark.parametrize(("name", "units", "activation"), [
    ("binary", 1, "sigmoid"), ("multiclass", 5, "softmax"), ("regression", 1, "linear"),
])
def test_the_head_reads_the_declaration(name, units, activation):
    problem = problems.get(name)
    assert problem.output_units(5) == units
    assert problem.num_classes(5) == (5 if units == 5 else None)
    inputs = keras.Input((3,))
    layer = keras.Model(inputs, add_head(inputs, name, problem.num_classes(5))).get_layer("head")
    assert layer.units == units
    assert layer.activation.__name__ == activation


def test_positive_class_is_binary_only():
    assert [name for name in problems.NAMES if problems.get(name).positive_class] == ["binary"]
    assert problems.IMAGE_PROBLEM.per_class_outputs
