"""The installed keras, keras-tuner and tensorflow are inside the ranges pyproject.toml declares.

`common/compat.py` relies on private internals of exactly these libraries, so the project bounds
them to the releases CI tests. A newer release installed by hand fails here first, with the
version and the range, instead of somewhere inside a compatibility shim.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
# The libraries whose internals common/compat.py uses; TensorFlow comes as tensorflow-cpu (the
# default) or tensorflow (the `gpu` extra).
BOUNDED = {"keras", "keras-tuner", "tensorflow", "tensorflow-cpu"}
UPPER = ("<", "<=", "==", "~=", "===")


def bounded_requirements() -> list[Requirement]:
    """Every requirement on a BOUNDED library in pyproject.toml, extras included."""
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    texts = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        texts += extra
    return [requirement for requirement in map(Requirement, texts)
            if canonicalize_name(requirement.name) in BOUNDED]


def has_upper_bound(requirement: Requirement) -> bool:
    return any(spec.operator in UPPER for spec in requirement.specifier)


def outside(requirement: Requirement, version: str) -> bool:
    return not requirement.specifier.contains(Version(version), prereleases=True)


def installed(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def test_each_library_compat_relies_on_has_an_upper_bound():
    requirements = bounded_requirements()
    assert {canonicalize_name(requirement.name) for requirement in requirements} >= {
        "keras", "keras-tuner", "tensorflow-cpu"}
    unbounded = [str(requirement) for requirement in requirements
                 if not has_upper_bound(requirement)]
    assert not unbounded, f"no upper bound in pyproject.toml: {unbounded}"


def test_installed_versions_are_inside_the_declared_ranges():
    checked, wrong = set(), []
    for requirement in bounded_requirements():
        version = installed(requirement.name)
        if version is None:  # e.g. the gpu extra's `tensorflow` beside tensorflow-cpu
            continue
        checked.add(canonicalize_name(requirement.name))
        if outside(requirement, version):
            wrong.append(f"{requirement.name} {version} is installed, pyproject.toml allows "
                         f"{requirement.specifier}")
    assert not wrong, "; ".join(wrong)
    assert {"keras", "keras-tuner"} <= checked
    assert checked & {"tensorflow", "tensorflow-cpu"}, "no TensorFlow distribution checked"


@pytest.mark.parametrize("text, version, expected", [
    ("keras>=3.15.1,<3.16", "3.15.1", False),
    ("keras>=3.15.1,<3.16", "3.16.0", True),
    ("keras>=3.15.1,<3.16", "3.14.0", True),
    ("tensorflow-cpu==2.21.*", "2.21.3", False),
    ("tensorflow-cpu==2.21.*", "2.22.0", True),
    ("keras-tuner>=1.4.8,<1.5", "1.5.0rc1", True),
])
def test_the_range_check_itself(text, version, expected):
    assert outside(Requirement(text), version) is expected


def test_a_missing_upper_bound_is_seen():
    assert not has_upper_bound(Requirement("keras>=3.15.1"))
    assert has_upper_bound(Requirement("tensorflow-cpu==2.21.*"))
