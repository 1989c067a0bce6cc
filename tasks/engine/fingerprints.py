"""Fingerprints: a SHA-256 of the data a run read and of the files it wrote.

A run fingerprints its data once (`data_hashes`); the resume check, the search's resume check and
the run card all read that one result, so streamed shards are read once for it, not three times.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from datasets.named_images import NAMED_IMAGES
from datasets.registry import TABULAR, load_frame
from datasets.tabular import streams
from tasks.config import TaskConfig


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


def data_hashes(config: TaskConfig) -> dict[str, dict[str, str]]:
    """The fingerprints of a run's `data` and, if given, its `test_data`."""
    hashes = {"data": data_fingerprint(config.data.data, config.problem)}
    if config.data.test_data:
        hashes["test_data"] = data_fingerprint(config.data.test_data, config.problem)
    return hashes
