"""A test that uses a fixture training a whole run is marked `slow`, so `-m "not slow"` stays fast.

A fixture trains when it calls a task's `main` (`main(...)`, `image_classify.main(...)`,
`regression_main(...)`) or requests a fixture that does; conftest fixtures count for every file.
"""

import ast
import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent
MAIN = re.compile(r"(^|_)main$")


def is_fixture(function: ast.FunctionDef) -> bool:
    return any("fixture" in ast.unparse(decorator) for decorator in function.decorator_list)


def is_slow(node: ast.AST) -> bool:
    return "pytest.mark.slow" in ast.unparse(node)


def calls_main(function: ast.FunctionDef) -> bool:
    for node in ast.walk(function):
        if isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(
                node.func, "id", "")
            if MAIN.search(name):
                return True
    return False


def unmarked_training_tests(tests: Path = TESTS) -> list[str]:
    """`path::test` for each test that requests a training fixture and is not marked slow."""
    conftest_fixtures = {}
    for path in tests.rglob("conftest.py"):
        conftest_fixtures.update({node.name: node for node in ast.parse(path.read_text()).body
                                  if isinstance(node, ast.FunctionDef) and is_fixture(node)})
    found = []
    for path in sorted(tests.rglob("test_*.py")):
        body = ast.parse(path.read_text()).body
        fixtures = {**conftest_fixtures, **{node.name: node for node in body
                                            if isinstance(node, ast.FunctionDef)
                                            and is_fixture(node)}}
        training = {name for name, node in fixtures.items() if calls_main(node)}
        while True:  # a fixture requesting a training fixture trains too
            more = {name for name, node in fixtures.items()
                    if {arg.arg for arg in node.args.args} & training} - training
            if not more:
                break
            training |= more
        module_slow = any(isinstance(node, ast.Assign) and is_slow(node) for node in body)
        for node in body:
            if (isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
                    and {arg.arg for arg in node.args.args} & training and not module_slow
                    and not any(is_slow(decorator) for decorator in node.decorator_list)):
                found.append(f"{path.relative_to(tests.parent).as_posix()}::{node.name}")
    return found


def test_every_test_using_a_training_fixture_is_marked_slow():
    assert unmarked_training_tests() == []


def test_the_check_follows_fixtures_through_conftest_and_other_fixtures(tmp_path):
    tests = tmp_path / "tests"
    (tests / "tasks").mkdir(parents=True)
    (tests / "tasks" / "conftest.py").write_text(
        "import pytest\n\n@pytest.fixture\ndef trained(tmp_path):\n"
        "    assert main(['--run-dir', str(tmp_path)]) == 0\n    return tmp_path\n")
    (tests / "tasks" / "test_a.py").write_text(
        "import pytest\n\n"
        "@pytest.fixture\ndef copied(trained, tmp_path):\n    return tmp_path\n\n"
        "@pytest.fixture\ndef image(tmp_path):\n    assert image_classify.main([]) == 0\n\n"
        "@pytest.fixture\ndef rows(tmp_path):\n    return tmp_path\n\n"
        "def test_unit(rows):\n    pass\n\n"
        "def test_direct(trained):\n    pass\n\n"
        "def test_through_a_fixture(copied):\n    pass\n\n"
        "def test_attribute_main(image):\n    pass\n\n"
        "@pytest.mark.slow\ndef test_marked(trained):\n    pass\n")
    (tests / "tasks" / "test_b.py").write_text(
        "import pytest\n\npytestmark = pytest.mark.slow\n\n"
        "def test_marked_module(trained):\n    pass\n")
    assert unmarked_training_tests(tests) == ["tests/tasks/test_a.py::test_direct",
                                              "tests/tasks/test_a.py::test_through_a_fixture",
                                              "tests/tasks/test_a.py::test_attribute_main"]
