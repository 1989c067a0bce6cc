"""A run fingerprints its data once: the resume checks and the run card share one hash."""

from __future__ import annotations

import json

import numpy as np
import pytest

import tasks
from datasets import streaming
from tasks.engine import fingerprints
from tests.helpers import make_user_frame

QUICK = {"train.early_stopping_patience": 0, "export.formats": [], "export.latency": False}


@pytest.fixture
def counted(monkeypatch):
    """Counts every data fingerprint computed, and every read of streamed shards for one."""
    calls = {"data_fingerprint": [], "shard_reads": 0}
    original, original_shards = fingerprints.data_fingerprint, streaming.fingerprint

    def data_fingerprint(data, problem):
        calls["data_fingerprint"].append(data)
        return original(data, problem)

    def shards(pattern):
        calls["shard_reads"] += 1
        return original_shards(pattern)

    monkeypatch.setattr(fingerprints, "data_fingerprint", data_fingerprint)
    monkeypatch.setattr(streaming, "fingerprint", shards)
    return calls


def card_hash(run_dir) -> str:
    return json.loads((run_dir / "run_card.json").read_text())["data"]["data"]["sha256"]


@pytest.mark.slow
@pytest.mark.parametrize("tune", [False, True])
def test_a_run_hashes_its_data_and_test_data_once(counted, tmp_path, tune):
    frame = make_user_frame()
    frame.iloc[:180].to_csv(tmp_path / "train.csv", index=False)
    frame.iloc[180:].to_csv(tmp_path / "test.csv", index=False)
    settings = {**QUICK, **({"tune.trials": 1, "tune.max_epochs": 1} if tune else {})}
    result = tasks.run("binary_classify", data=tmp_path / "train.csv", target="bought",
                       test_data=tmp_path / "test.csv", epochs=1, tune=tune,
                       run_dir=tmp_path / "run", settings=settings)
    assert counted["data_fingerprint"] == [str(tmp_path / "train.csv"),
                                           str(tmp_path / "test.csv")]
    assert card_hash(result.run_dir) == fingerprints.sha256_of(tmp_path / "train.csv")


@pytest.mark.slow
def test_streamed_shards_are_read_once_for_their_fingerprint(counted, tmp_path):
    frame = make_user_frame(600, seed=2)
    (tmp_path / "shards").mkdir()
    for index, part in enumerate(np.array_split(np.arange(len(frame)), 3)):
        frame.iloc[part].to_csv(tmp_path / "shards" / f"part-{index}.csv", index=False)
    pattern = str(tmp_path / "shards" / "*.csv")
    result = tasks.run("binary_classify", data=pattern, target="bought", epochs=1,
                       run_dir=tmp_path / "run",
                       settings={**QUICK, "data.sample_rows": 200, "data.held_out_rows": 80})
    assert counted["shard_reads"] == 1
    assert card_hash(result.run_dir) == streaming.fingerprint(pattern)["sha256"]
