"""Loading a `.keras` file that may come from anyone: safe mode, and one-line refusals.

Every model file the project loads for a user (`tasks.predict --run-dir/--model`, the
`--weights PATH` of transfer learning) goes through `load_keras_file`. It loads with Keras safe
mode, which refuses what would run code or read outside the archive: a `Lambda` layer or a
serialized Python lambda (their bytecode would run), a `TFSMLayer` (it loads a SavedModel from
a path in the file), a lookup vocabulary read from a file outside the archive. Classes are looked
up only among Keras's own and the registered ones (`zoo.layers`): a class named in the file is
never imported. This module never turns safe mode off.

What can go wrong with the file becomes a `ValueError` naming the file and why, ending with
`Received: ...`: a folder, an empty file, not a zip archive (another format, or cut short), a zip
that is not a Keras archive, a safe-mode refusal (with how to proceed when the model is the
user's own), a class this project does not know, or anything else Keras or h5py raise while
reading it. The zoo names no CLI flag: the tasks turn these into `InputError`s that do.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import keras

# Parts of Keras's safe-mode refusals -> what the file holds, for the message.
SAFE_MODE_REFUSALS = {
    "`Lambda` layer": "a Lambda layer, whose Python code would run on loading",
    "Python lambda": "a serialized Python function, whose code would run on loading",
    "TFSMLayer": "a TFSMLayer, which would load a SavedModel from a path outside the file",
    "vocabulary file outside": "a lookup layer that would read a vocabulary file outside the "
                               "model archive",
}
MAX_REASON = 200


def _root_messages(error: BaseException) -> list[str]:
    """The messages of `error` and of what caused it, outermost first."""
    messages, seen = [], set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        messages.append(str(error).strip())
        error = error.__cause__ or error.__context__
    return messages


def short_reason(error: BaseException) -> str:
    """The innermost cause's message as one short line (Keras wraps the cause in long text)."""
    message = next((text for text in reversed(_root_messages(error)) if text), "")
    if not message:
        return type(error).__name__
    line = message.splitlines()[0].strip()
    # The first sentence, without the config or bytecode Keras appends ("...: {'value': ...").
    sentence = re.split(r"\. |:\s*[{\[]|\s+config=", line)[0].rstrip(".: ")
    return sentence if len(sentence) <= MAX_REASON else sentence[:MAX_REASON - 3] + "..."


def _error(text: str, path: Path, argument: str) -> ValueError:
    """The error `text`, ending with what was received as `argument`."""
    return ValueError(f"{text} Received: {argument}={str(path)!r}")


def _refusal(path: Path, error: BaseException, argument: str) -> ValueError | None:
    """The message for a safe-mode refusal, or None if `error` is not one."""
    messages = [text for text in _root_messages(error) if "safe_mode=False" in text]
    if not messages:
        return None
    held = next((what for part, what in SAFE_MODE_REFUSALS.items() if part in messages[-1]),
                "something safe mode does not load")
    return _error(
        f"Keras safe mode refused to load '{path}': it holds {held}. Load only model files you "
        "trust. If this is your own model and you trust the file, load it in your own Python "
        "code with keras.saving.load_model(path, safe_mode=False); this project never turns "
        "safe mode off.", path, argument)


def _cannot_load(path: Path, argument: str, why: str) -> ValueError:
    return _error(f"could not load the model in '{path}': {why}. Restore the file or re-run the "
                  "task that wrote it.", path, argument)


def _check_archive(path: Path, argument: str) -> None:
    """Refuses what cannot be a `.keras` archive before Keras reads it.

    Keras's own messages mislead here ("File not found" for a file that is there but not a zip).
    """
    if path.is_dir():
        raise _cannot_load(path, argument, "it is a folder, not a .keras file")
    if not path.is_file():
        raise _error(f"no model file at '{path}'. Pass the model.keras file a run wrote.", path,
                     argument)
    size = path.stat().st_size
    if size == 0:
        raise _cannot_load(path, argument, "the file is empty (0 bytes)")
    if not zipfile.is_zipfile(path):
        raise _cannot_load(path, argument, f"a .keras file is a zip archive, and this one "
                           f"({size:,} bytes) is not: another format, or cut short")
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError) as error:
        raise _cannot_load(path, argument, f"it is a damaged zip archive ({short_reason(error)})"
                           ) from None
    if "config.json" not in names:
        shown = ", ".join(sorted(names)[:3]) or "nothing"
        raise _cannot_load(path, argument, f"it is a zip archive but not a Keras model (no "
                           f"config.json; it holds {shown})")


def load_keras_file(path: str | Path, argument: str = "path") -> keras.Model:
    """Loads a `.keras` model file in Keras safe mode; every failure is one `ValueError`.

    The project's own layers (`zoo.layers`) are registered first, so a fresh process loads the
    files its runs wrote.

    Args:
        path: The `.keras` file.
        argument: The name the file was given under (e.g. a builder's `"weights"`), for the
            `Received: argument='...'` that ends the messages.

    Returns:
        The model, uncompiled.

    Raises:
        ValueError: The file is missing, a folder, empty, not a Keras archive, refused by safe
            mode (code inside), names a class that is not Keras's or the zoo's, or cannot be
            read; the message names the file and says what to do.

    Example:
        >>> model = load_keras_file("runs/binary_classify-X/model.keras")
    """
    import zoo.layers  # noqa: F401  (registers FillMissing, MissingIndicator, ...)

    path = Path(path)
    _check_archive(path, argument)
    try:
        return keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as error:  # Keras, h5py and zipfile raise many types for a bad file
        refusal = _refusal(path, error, argument)
        if refusal is not None:
            raise refusal from None
        reason = short_reason(error)
        if reason.startswith("Could not locate class"):
            raise _error(
                f"'{path}' needs a class that is neither Keras's nor this project's ({reason}); "
                "classes named in a model file are never imported from it. If it is your own "
                "layer, load the file in your own Python code after registering the class with "
                "keras.saving.register_keras_serializable.", path, argument) from None
        raise _cannot_load(path, argument, reason) from None
