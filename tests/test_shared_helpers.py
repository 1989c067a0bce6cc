"""Test modules share helpers through tests/helpers.py only, never by importing one another."""

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
# The one module of tests/ that test files and conftest files may import.
SHARED = "tests.helpers"


def imported_modules(path: Path, tests: Path) -> set[str]:
    """The modules that the imports of one file under `tests` name, relative imports resolved.

    `from PACKAGE import name` names `PACKAGE.name` when `name` is a module of that package.
    """
    top = tests.parent
    package = ".".join(path.parent.relative_to(top).parts)
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(filter(None, [*parts[:len(parts) - node.level + 1], base]))
            if (top / base.replace(".", "/")).is_dir():
                modules.update(f"{base}.{alias.name}" for alias in node.names)
            else:
                modules.add(base)
    return modules


def forbidden_imports(tests: Path = TESTS) -> dict[str, set[str]]:
    """For each file under `tests` that imports modules of `tests` other than the helpers: those.

    A bare `import conftest` or `import test_x` (the pytest rootdir style) counts too.
    """
    found = {}
    for path in sorted(tests.rglob("*.py")):
        bad = set()
        for module in imported_modules(path, tests):
            first = module.split(".")[0]
            if first == tests.name:
                if module not in {tests.name, SHARED} and not module.startswith(SHARED + "."):
                    bad.add(module)
            elif first in {"conftest", "helpers"} or first.startswith("test_"):
                bad.add(module)
        if bad:
            found[path.relative_to(tests.parent).as_posix()] = bad
    return found


def test_no_test_file_imports_another_test_module_or_a_conftest():
    assert forbidden_imports() == {}, "move what they share into tests/helpers.py"


def test_the_scan_finds_every_way_of_importing_a_test_module(tmp_path):
    tests = tmp_path / "tests"
    for package in [tests, tests / "tasks", tests / "datasets"]:
        package.mkdir(exist_ok=True)
        (package / "__init__.py").write_text("")
    (tests / "helpers.py").write_text("X = 1\n")
    (tests / "tasks" / "conftest.py").write_text("from tests.helpers import X\n")
    (tests / "tasks" / "test_b.py").write_text("def run():\n    pass\n")
    (tests / "tasks" / "test_a.py").write_text(
        "import numpy\n"
        "from tests.helpers import X\n"
        "from tests import helpers\n"
        "from tests.tasks.conftest import FAST\n"
        "from tests.tasks.test_b import run\n"
        "import tests.datasets.test_streaming\n"
        "from tests.tasks import test_b\n"
        "from .test_c import table\n"
        "from . import conftest\n"
        "from ..datasets.test_streaming import price_table\n"
        "import conftest\n")
    assert forbidden_imports(tests) == {"tests/tasks/test_a.py": {
        "tests.tasks.conftest", "tests.tasks.test_b", "tests.datasets.test_streaming",
        "tests.tasks.test_c", "conftest"}}


def non_fixtures(conftest: Path) -> list[str]:
    """Top-level definitions in a conftest file other than fixtures and pytest hooks."""
    found = []
    for node in ast.parse(conftest.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            fixture = any("fixture" in ast.unparse(decorator) for decorator in node.decorator_list)
            if not fixture and not node.name.startswith("pytest_"):
                found.append(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            found.append(ast.unparse(node).split("=")[0].strip())
    return found


def test_conftest_files_hold_fixtures_only():
    conftests = sorted(TESTS.rglob("conftest.py"))
    assert conftests
    assert {path.relative_to(TESTS).as_posix(): non_fixtures(path) for path in conftests} == {
        path.relative_to(TESTS).as_posix(): [] for path in conftests}
