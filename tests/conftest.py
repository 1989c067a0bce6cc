"""Fixtures every test package shares (helpers that are not fixtures: tests/helpers.py)."""

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture
def registered():
    """Registers throwaway model builders for a test and removes them after it."""
    import zoo

    names = []

    def register(name, **declared):
        names.append(name)
        return zoo.register_model(name, **declared)

    yield register
    for name in dict.fromkeys(names):
        if name in zoo.list_models():
            zoo.unregister_model(name)
