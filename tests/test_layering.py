"""Dependencies point one way: tasks -> datasets -> zoo -> common.

`common` (errors, compatibility shims, native output) imports none of the project's packages;
`zoo` (model builders) imports neither `datasets` nor `tasks`; `datasets` does not import
`tasks`. Every import counts, including one inside a function, so a lazy import cannot hide a
cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Package -> the project's packages it must not import.
FORBIDDEN = {
    "common": {"zoo", "datasets", "tasks"},
    "zoo": {"datasets", "tasks"},
    "datasets": {"tasks"},
}  # tasks, the top layer, may import all of them


def imported_packages(source: str, module: str) -> list[tuple[int, str]]:
    """`(line, top-level package)` of every import in `source`, nested ones included.

    Args:
        source: Python source.
        module: Its dotted module name (resolves relative imports).
    """
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the package that holds `module`
                base = module.split(".")[:-node.level]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.append((node.lineno, name.split(".")[0]))
    return sorted(found)


def violations(package: str) -> list[str]:
    wrong = []
    for path in sorted((ROOT / package).rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for line, imported in imported_packages(path.read_text(), module):
            if imported in FORBIDDEN[package]:
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {imported}")
    return wrong


@pytest.mark.parametrize("package", list(FORBIDDEN))
def test_package_imports_only_lower_layers(package):
    wrong = violations(package)
    assert not wrong, (f"{package} may not import {sorted(FORBIDDEN[package])}:\n"
                       + "\n".join(wrong))


def test_every_import_is_seen_nested_and_relative_ones_too():
    source = ("import os\n"
              "from datasets.errors import InputError\n"
              "def lazy():\n"
              "    from tasks.engine import native_logs\n"
              "    import tasks.cli\n"
              "from . import heads\n"
              "from ..datasets import images\n")
    assert [package for _, package in imported_packages(source, "zoo.sub.module")] == [
        "os", "datasets", "tasks", "tasks", "zoo", "zoo"]
