"""The run card: what produced a run, so it can be trusted and reproduced.

`run_card.json` records the library versions, the seed, the process arguments, a SHA-256 of the
input data and of every exported artifact, and each artifact's parity result.
"""

from __future__ import annotations

import hashlib
import platform
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from datasets.named_images import NAMED_IMAGES
from datasets.registry import TABULAR, load_frame
from datasets.tabular import streams
from tasks.config import ExportConfig

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


def sha256_of(path: Path) -> str:
    """SHA-256 of a file, or of a folder's files (relative paths and contents, in sorted order)."""
    digest = hashlib.sha256()
    files = sorted(item for item in path.rglob("*") if item.is_file()) if path.is_dir() else [path]
    for item in files:
        if path.is_dir():
            digest.update(item.relative_to(path).as_posix().encode() + b"\0")
        with item.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def data_fingerprint(data: str, problem: str) -> dict[str, str]:
    """Where the data came from and its SHA-256.

    A named table is hashed as CSV text, a named image set as its uint8 pixels then its class
    ids, a file as its bytes, a folder as its files (relative paths and contents), a pattern of
    shards as their names and bytes (one read of every shard, in chunks).
    """
    if data in NAMED_IMAGES:
        arrays = NAMED_IMAGES[data].load()
        digest = hashlib.sha256()
        for array in (arrays.images, arrays.ids, arrays.test_images, arrays.test_ids):
            if array is not None:
                digest.update(np.ascontiguousarray(array).tobytes())
        return {"source": f"named dataset '{data}'", "sha256": digest.hexdigest()}
    if data in TABULAR:
        frame, _, _ = load_frame(data, problem)
        text = frame.to_csv(index=False, lineterminator="\n").encode()
        return {"source": f"named dataset '{data}'", "sha256": hashlib.sha256(text).hexdigest()}
    if streams(data):
        from datasets.streaming import fingerprint  # imports TensorFlow

        return fingerprint(data)
    return {"source": str(Path(data).resolve()), "sha256": sha256_of(Path(data))}


def build_run_card(config: dict[str, Any], problem: str, run_dir: Path,
                   exports: dict[str, dict[str, Any]], settings: ExportConfig) -> dict[str, Any]:
    """The run card's content; artifact paths in `exports` are relative to `run_dir`."""
    data = config["data"]
    card: dict[str, Any] = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "argv": list(sys.argv),
        "versions": versions(),
        "seed": config["runtime"]["seed"],
        "data": {"data": data_fingerprint(data["data"], problem)},
        "artifacts": {},
    }
    if data.get("test_data"):
        card["data"]["test_data"] = data_fingerprint(data["test_data"], problem)
    for name, result in exports.items():
        card["artifacts"][name] = {
            "path": result["path"], "bytes": result["bytes"],
            "sha256": sha256_of(run_dir / result["path"]),
            "parity": _parity(result, settings),
        }
    return card



def _parity(result: dict[str, Any], settings: ExportConfig) -> dict[str, Any]:
    """An artifact's parity result and the thresholds it was judged by (see `export.py`)."""
    parity = {key: result[key] for key in ("max_abs_diff", "max_scaled_diff", "label_agreement",
                                           "metric", "passed") if key in result}
    if result["precision"] == "float32":
        parity["tolerance"] = settings.parity_tolerance
    else:
        parity["thresholds"] = {"min_label_agreement": settings.min_label_agreement,
                                "max_metric_drop": settings.max_metric_drop}
    return parity
