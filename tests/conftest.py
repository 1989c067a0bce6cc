"""Shared fixtures: tiny seeded data and one trained run reused by the task tests."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
