"""A run's saved state, read as untrusted input: a fit's backup and a search's tuner folder.

Both are resumed by re-running a command, so whoever can write the run directory decides what
they hold. Nothing in them is executed or unpickled: a backup holds arrays (Keras weights in
`.weights.h5`, a TensorFlow checkpoint, NumPy `.npz` loaded with `allow_pickle=False`) and JSON;
a tuner folder holds JSON only (the search never saves or loads models). What is read is checked
here before it is used, and anything that does not hold what this program writes stops the run
with one `error:` line (an `InputError`) that names the file, says what is wrong and what to do.
File names read from JSON (the early-stopping weights of a backup, the checkpoints a TensorFlow
`checkpoint` file lists, the trial ids of a search, which keras-tuner turns into folders) must
name a file of their own folder.
"""

from __future__ import annotations

import io
import json
import math
import re
import zipfile
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd

from common.errors import InputError

# Keras BackupAndRestore's files (keras/src/callbacks/backup_and_restore.py).
KERAS_WEIGHTS = "latest.weights.h5"
KERAS_METADATA = "training_metadata.json"
STATE_NAME = re.compile(r"state-(\d+)\.json")
BEST_WEIGHTS_NAME = re.compile(r"best-(\d+)\.npz")
CHECKPOINT_NAME = re.compile(r"ckpt-(\d+)")
# keras-tuner numbers its trials ("0", "01", ...); an id also names a folder `trial_<id>`.
TRIAL_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")
# keras-tuner's hyperparameter classes: nothing else may be deserialized from a tuner folder.
HYPERPARAMETER_CLASSES = {"Boolean", "Choice", "Fixed", "Float", "Int"}
TRIAL_STATUSES = {"RUNNING", "IDLE", "INVALID", "STOPPED", "COMPLETED", "FAILED"}


def backup_fix(directory: Path) -> str:
    """What to do about a damaged backup."""
    return (f"Delete the folder {directory} to train from epoch 1 (or move it away to keep it)")


def tuner_fix(directory: Path) -> str:
    """What to do about a damaged tuner folder."""
    return (f"Pass --overwrite to start the search over, or delete the folder {directory}")


def refuse(path: Path, problem: str, fix: str) -> InputError:
    """The error for a saved-state file: which file, what is wrong, what to do."""
    return InputError(f"{path} {problem}: it was damaged or changed after this program saved it. "
                      f"{fix}.")


def read_json(path: Path, fix: str, kind: type = dict) -> Any:
    """A JSON file's value, which must be a `kind` (a JSON object by default)."""
    try:
        value = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise refuse(path, f"is not valid JSON ({error})", fix) from None
    if not isinstance(value, kind):
        raise refuse(path, f"should hold a JSON {_kind_name(kind)}, not {_json_type(value)}",
                     fix) from None
    return value


def read_state(directory: Path, epoch: int) -> dict[str, Any]:
    """A backup's callback state after `epoch` epochs (`resume.TrainingState`), checked.

    Returns:
        `epoch`, `history` (history.csv's text, one row per epoch done), and, when the fit had
        them, `early_stopping` and `reduce_lr` (only the fields those callbacks restore).
    """
    path = directory / f"state-{epoch}.json"
    fix = backup_fix(directory)
    state = read_json(path, fix)
    field = _Fields(path, state, fix)
    if field.get("epoch", int) != epoch:
        raise refuse(path, f"says epoch {state['epoch']}, not {epoch}", fix)
    history = field.get("history", str)
    _check_history(path, history, epoch, fix)
    checked: dict[str, Any] = {"epoch": epoch, "history": history}
    stopping = field.get("early_stopping", dict, optional=True)
    if stopping is not None:
        inner = _Fields(path, stopping, fix, "early_stopping.")
        checked["early_stopping"] = {
            "wait": inner.get("wait", int), "stopped_epoch": inner.get("stopped_epoch", int),
            "best": inner.get("best", float, optional=True),
            "best_epoch": inner.get("best_epoch", int),
            "best_weights": inner.get("best_weights", str, optional=True)}
        name = checked["early_stopping"]["best_weights"]
        if name is not None:
            inside(directory, name, BEST_WEIGHTS_NAME, path, fix)
    reduce_lr = field.get("reduce_lr", dict, optional=True)
    if reduce_lr is not None:
        inner = _Fields(path, reduce_lr, fix, "reduce_lr.")
        checked["reduce_lr"] = {"wait": inner.get("wait", int),
                                "cooldown_counter": inner.get("cooldown_counter", int),
                                "best": inner.get("best", float, optional=True)}
    return checked


def read_best_weights(directory: Path, name: str,
                      like: list[np.ndarray] | None = None) -> list[np.ndarray]:
    """Early stopping's best weights from a backup's `.npz`, never unpickling anything.

    Args:
        directory: The backup folder.
        name: The file's name, as `read_state` checked it.
        like: The network's weights, whose shapes these must have.
    """
    path, fix = directory / name, backup_fix(directory)
    if not zipfile.is_zipfile(path):  # np.load would take other bytes for a pickle
        raise refuse(path, "is not a readable .npz file (not a zip archive)", fix)
    try:
        with np.load(path, allow_pickle=False) as arrays:
            names = sorted(arrays.files)
            if names != sorted(f"w{index}" for index in range(len(names))):
                raise refuse(path, f"should hold arrays w0, w1, ...; it holds {names[:5]}", fix)
            weights = [arrays[f"w{index}"] for index in range(len(names))]
    except InputError:
        raise
    except ValueError as error:  # an object array: loading it would unpickle
        raise refuse(path, f"holds something other than numeric arrays ({error})", fix) from None
    except Exception as error:  # noqa: BLE001 - not a zip, truncated, a missing member...
        raise refuse(path, f"is not a readable .npz file ({type(error).__name__}: {error})",
                     fix) from None
    for index, array in enumerate(weights):
        if array.dtype.kind not in "biuf":
            raise refuse(path, f"holds w{index} of type {array.dtype}, not numbers", fix)
    if like is not None and [array.shape for array in weights] != [
            np.shape(array) for array in like]:
        raise refuse(path, f"holds {len(weights)} arrays whose shapes are not those of this "
                     "network's weights", fix)
    return weights


def read_keras_metadata(path: Path, epochs: int | None = None) -> int | None:
    """The epochs done that Keras's `training_metadata.json` records; None if it is unreadable.

    Keras writes the file in place, so a kill while it is written leaves half of it: the caller
    falls back to the previous copy, as it does for a half-written weights file. A whole file
    that records anything but a number of epochs (0 to `epochs`) is refused.
    """
    try:
        value = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    epoch = value.get("epoch") if isinstance(value, dict) else None
    if (isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0
            or epoch > (epochs if epochs is not None else epoch)):
        raise refuse(path, "should record the epochs done, a whole number from 0"
                     f"{f' to {epochs}' if epochs is not None else ''}; it holds "
                     f"{json.dumps(value)[:80]}", backup_fix(path.parent))
    return epoch


def checkpoint_paths(directory: Path) -> dict[int, str]:
    """The TensorFlow checkpoints a backup's `checkpoint` file lists, by number, all inside it."""
    import tensorflow as tf
    from google.protobuf import text_format

    path, fix = directory / "checkpoint", backup_fix(directory)
    if not path.exists():
        return {}
    try:
        state = tf.train.get_checkpoint_state(str(directory))
    except (text_format.ParseError, UnicodeDecodeError) as error:
        raise refuse(path, f"is not a TensorFlow checkpoint list ({error})", fix) from None
    listed = {*state.all_model_checkpoint_paths, state.model_checkpoint_path} - {""}
    found = {}
    for name in listed:
        match = inside(directory, name, CHECKPOINT_NAME, path, fix)
        found[int(match.group(1))] = str(directory / Path(name).name)
    return found


def check_backup(directory: Path | None) -> None:
    """Checks the JSON, `.npz` and checkpoint list of a backup a run is about to resume.

    Called before the run stages anything, so a damaged backup stops it with nothing written.
    The weights files are checked when they load (a half-written one falls back to the
    previous copy: `resume.keras_backup`).
    """
    if directory is None or not directory.is_dir():
        return
    fix = backup_fix(directory)
    if (directory / "fingerprint.json").exists():
        read_json(directory / "fingerprint.json", fix)
    weights = [directory / KERAS_WEIGHTS, directory / f"{KERAS_WEIGHTS}.bkp"]
    for path in (directory / KERAS_METADATA, directory / f"{KERAS_METADATA}.bkp"):
        read_keras_metadata(path)
    if all(path.exists() and not h5py.is_hdf5(path) for path in weights):
        # One kill leaves at most one of the two half-written.
        raise refuse(weights[0], "is not a weights file, nor is its previous copy (.bkp)", fix)
    for epoch in saved_states(directory):
        stopping = read_state(directory, epoch).get("early_stopping") or {}
        if stopping.get("best_weights"):
            read_best_weights(directory, stopping["best_weights"])
    checkpoint_paths(directory)


def saved_states(directory: Path) -> set[int]:
    """Epochs whose callback state is saved in a backup folder (other names are ignored)."""
    return {int(match.group(1)) for path in directory.glob("state-*.json")
            if (match := STATE_NAME.fullmatch(path.name))}


def inside(directory: Path, name: str, pattern: re.Pattern, source: Path,
           fix: str) -> re.Match:
    """Checks that `name`, read from `source`, names a file of `directory` matching `pattern`."""
    candidate = (directory / name).resolve()
    match = pattern.fullmatch(Path(name).name)
    if candidate.parent != directory.resolve() or match is None:
        raise refuse(source, f"names the file {name!r}, which is not one of this folder's "
                     f"({pattern.pattern} in {directory})", fix)
    return match


def check_tuner_state(directory: Path, project: str) -> None:
    """Checks a search's tuner folder before keras-tuner reads it.

    Every file is JSON of the expected shape; trial ids (which keras-tuner turns into folder
    names) are plain names; hyperparameters are keras-tuner's own classes; reported metrics are
    numbers.

    Args:
        directory: The tuner folder (`<run-dir>/tuner`).
        project: keras-tuner's project folder inside it.
    """
    fix = tuner_fix(directory)
    search = directory / project
    oracle_path = search / "oracle.json"
    if oracle_path.exists():
        oracle = read_json(oracle_path, fix)
        fields = _Fields(oracle_path, oracle, fix)
        ids = [*fields.get("ongoing_trials", dict).values()]
        for name in ("start_order", "end_order", "retry_queue"):
            ids += fields.get(name, list)
        for name in ("run_times", "id_to_hash"):
            ids += list(fields.get(name, dict))
        for value in ids:
            _trial_id(value, oracle_path, fix)
        fields.get("tried_so_far", list)
        fields.get("seed", int)
        fields.get("seed_state", int)
        _hyperparameters(fields.get("hyperparameters", dict), oracle_path, fix)
    for path in sorted(search.glob("*.json")):
        if path != oracle_path:
            read_json(path, fix)  # the tuner's own state: {}
    for path in sorted(search.glob("trial_*/trial.json")):
        trial = read_json(path, fix)
        fields = _Fields(path, trial, fix)
        trial_id = _trial_id(fields.get("trial_id", str), path, fix)
        if path.parent.name != f"trial_{trial_id}":
            raise refuse(path, f"is trial {trial_id!r} but sits in {path.parent.name}", fix)
        _hyperparameters(fields.get("hyperparameters", dict), path, fix)
        if fields.get("status", str) not in TRIAL_STATUSES:
            raise refuse(path, f"has the status {trial['status']!r}, not one of "
                         f"{', '.join(sorted(TRIAL_STATUSES))}", fix)
        fields.get("score", float, optional=True)
        fields.get("best_step", int, optional=True)
        metrics = _Fields(path, fields.get("metrics", dict), fix, "metrics.")
        for name, metric in metrics.get("metrics", dict).items():
            observations = _Fields(path, metric, fix, f"metrics.{name}.").get(
                "observations", list)
            for observation in observations:
                values = _Fields(path, observation, fix, f"metrics.{name}.observations.")
                for value in values.get("value", list):
                    _number(value, path, fix, f"metrics.{name}")


class _Fields:
    """Typed access to a JSON object's fields; a missing or mistyped one is refused."""

    def __init__(self, path: Path, value: Any, fix: str, prefix: str = ""):
        if not isinstance(value, dict):
            raise refuse(path, f"should hold an object at {prefix.rstrip('.') or 'the top'}, "
                         f"not {_json_type(value)}", fix)
        self.path, self.value, self.fix, self.prefix = path, value, fix, prefix

    def get(self, name: str, kind: type, optional: bool = False) -> Any:
        value = self.value.get(name)
        if value is None and optional:
            return None
        if kind is float:
            return _number(value, self.path, self.fix, self.prefix + name)
        if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
            raise refuse(self.path, f"should hold a {_kind_name(kind)} at {self.prefix}{name}, "
                         f"not {_json_type(value)}", self.fix)
        return value


def _number(value: Any, path: Path, fix: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise refuse(path, f"should hold a number at {where}, not {_json_type(value)}", fix)
    return float(value)


def _trial_id(value: Any, path: Path, fix: str) -> str:
    if not isinstance(value, str) or not TRIAL_ID.fullmatch(value):
        raise refuse(path, f"holds the trial id {json.dumps(value)[:80]}; a trial id is a "
                     "plain name (letters, digits, _ and -), as it names a folder", fix)
    return value


def _hyperparameters(config: dict, path: Path, fix: str) -> None:
    space = _Fields(path, config, fix, "hyperparameters.").get("space", list)
    for entry in space:
        fields = _Fields(path, entry, fix, "hyperparameters.space.")
        if fields.get("class_name", str) not in HYPERPARAMETER_CLASSES:
            raise refuse(path, f"declares a hyperparameter of class {entry['class_name']!r}; "
                         f"a search holds only {', '.join(sorted(HYPERPARAMETER_CLASSES))}", fix)
        fields.get("config", dict)
    _Fields(path, config, fix, "hyperparameters.").get("values", dict)


def _check_history(path: Path, history: str, epoch: int, fix: str) -> None:
    """history.csv so far: one row per epoch done, numbered from 0."""
    if not history.strip():
        rows: list[int] = []
    else:
        try:
            frame = pd.read_csv(io.StringIO(history))
            rows = [int(value) for value in frame["epoch"]] if len(frame) else []
        except (ValueError, KeyError, pd.errors.ParserError) as error:
            raise refuse(path, f"holds a history that is not history.csv's ({error})",
                         fix) from None
    if rows != list(range(epoch)):
        raise refuse(path, f"holds a history of epochs {rows[:5]}..., not the {epoch} epochs "
                     "done", fix)


def _kind_name(kind: type) -> str:
    return {dict: "object", list: "list", str: "string", int: "whole number"}.get(kind,
                                                                                  kind.__name__)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    return {dict: "an object", list: "a list", str: "a string", int: "a number",
            float: "a number"}.get(type(value), type(value).__name__)
