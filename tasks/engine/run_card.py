"""The run card: what produced a run, so it can be trusted and reproduced.

`run_card.json` records the library versions, the seed, the process arguments, a SHA-256 of the
input data and of every exported artifact, and each artifact's parity result.
"""

from __future__ import annotations

import platform
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from tasks.config import ExportConfig
from tasks.engine import parity
from tasks.engine.fingerprints import sha256_of

DISTRIBUTIONS = {
    "tensorflow": ("tensorflow", "tensorflow-cpu"),
    "keras": ("keras",),
    "keras_tuner": ("keras-tuner",),
    "ai_edge_litert": ("ai-edge-litert",),
    "scikit_learn": ("scikit-learn",),
    "numpy": ("numpy",),
    "pandas": ("pandas",),
}


def versions() -> dict[str, str | None]:
    """Python and the installed versions of the libraries a run depends on."""
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name, candidates in DISTRIBUTIONS.items():
        found[name] = None
        for distribution in candidates:
            try:
                found[name] = metadata.version(distribution)
                break
            except metadata.PackageNotFoundError:
                continue
    return found


def build_run_card(config: dict[str, Any], data_hashes: dict[str, Any], run_dir: Path,
                   exports: dict[str, dict[str, Any]], settings: ExportConfig) -> dict[str, Any]:
    """The run card's content; artifact paths in `exports` are relative to `run_dir`.

    Args:
        config: The resolved configuration (`TaskConfig.to_dict()`).
        data_hashes: The run's fingerprints of its data (`fingerprints.data_hashes`).
        run_dir: The run directory.
        exports: The judged artifacts (`export.export_all`).
        settings: The parity thresholds they were judged by.
    """
    card: dict[str, Any] = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "argv": list(sys.argv),
        "versions": versions(),
        "seed": config["runtime"]["seed"],
        "data": data_hashes,
        "artifacts": {},
    }
    for name, result in exports.items():
        card["artifacts"][name] = {
            "path": result["path"], "bytes": result["bytes"],
            "sha256": sha256_of(run_dir / result["path"]),
            "parity": _parity(result, settings),
        }
    return card



def _parity(result: dict[str, Any], settings: ExportConfig) -> dict[str, Any]:
    """An artifact's parity result and the thresholds it was judged by (`parity.py`)."""
    return {**{key: result[key] for key in ("max_abs_diff", "max_scaled_diff", "label_agreement",
                                            "metric", "passed") if key in result},
            **parity.thresholds(result, settings)}
