"""A fuzzed bad-input battery: generated CSVs and image folders through the tasks' loading.

The property (issue 13, point 4): whatever the user passes, loading and validation either succeed
or stop with an `InputError` whose message is one line -- which the CLI prints as one `error:`
line with exit code 2 -- never another exception; what loads has numbers training can take, and
nothing is written beside the user's files. A bounded sample goes through the real CLI in a
subprocess, which must exit 0, or exit 2 with one `error:` line, no traceback and no run
directory (nor its `.partial` or `.failed` sibling) left.

Hypothesis runs derandomized (the same examples on every machine and every run) and keeps no
example database, so CI is reproducible. What it found is kept as hand-written cases in
tests/datasets/test_tabular.py, tests/datasets/test_images.py and
tests/datasets/test_input_limits.py.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, event, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from common.errors import InputError
from datasets.frame_checks import MAX_MAGNITUDE
from tests.helpers import assert_cli_error, run_cli

# Examples per CI run. In-process about 50 ms per CSV and 120 ms per image folder (measured on 2
# busy cores: 2,000 CSVs in 95 s, 640 folders in 76 s); through the CLI about 4 s per refused
# input and 20 s per trained one. FUZZ_SCALE=4 python -m pytest tests/test_fuzz_inputs.py runs a
# deeper search by hand (3,000 CSVs and 640 folders found nothing the regular cases miss).
SCALE = float(os.environ.get("FUZZ_SCALE", "1"))
CSV_EXAMPLES = round(600 * SCALE)
IMAGE_EXAMPLES = round(150 * SCALE)
CLI_EXAMPLES = 5  # and the two explicit examples
TABLE_TASKS = ("binary_classify", "multiclass_classify", "regression")
TARGET = "y"

FUZZ = settings(deadline=None, derandomize=True, database=None, phases=(
    Phase.explicit, Phase.generate, Phase.shrink), suppress_health_check=[
        HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])

# CSV documents --------------------------------------------------------------------------------

HEADER_NAMES = st.one_of(
    st.sampled_from(["x", "y", "age", "Y", " y ", "", "  ", "ünïcødé", "🙂", "a,b", 'q"t',
                     "line\nbreak", "1", "nan", "Unnamed: 0", "x.1", "y.1", "\ufeffy"]),
    st.text(max_size=6))
MISSING_AND_INFINITE = st.sampled_from(
    ["", "nan", "NaN", "NA", "N/A", "null", "None", "#N/A", "inf", "-inf", "Infinity", "-Infinity",
     "INF", "+inf", "1.#INF", "infinity", "-1.#IND"])
HUGE = st.sampled_from(["1e308", "-1e308", "1.7976931348623157e308", "1e400", "-1e400", "3.5e38",
                        "3.4e38", "1e39", "99999999999999999999999999999", "-0", "0e0", "5e-324"])
VALUE_KINDS = {
    "ints": st.integers(-1000, 1000).map(str),
    "floats": st.floats(-1e6, 1e6).map(repr),
    "huge": HUGE,
    "missing_and_infinite": MISSING_AND_INFINITE,
    "numbers_with_gaps": st.one_of(st.integers(0, 9).map(str), MISSING_AND_INFINITE),
    "decimal_commas": st.integers(-999, 999).map(lambda n: f"{n / 10:.1f}".replace(".", ",")),
    "categories": st.sampled_from(["red", "green", "blue", "Red ", " blue"]),
    "text": st.text(max_size=8),
    "booleans": st.sampled_from(["True", "False", "true", "FALSE", "yes", "no"]),
    "dates": st.sampled_from(["2020-01-01", "2021-12-31 23:59", "01/02/2020", "2020-13-45"]),
    "binary_labels": st.sampled_from(["yes", "no"]),
    "class_labels": st.sampled_from(["a", "b", "c"]),
}
VALUE_KINDS["mixed"] = st.one_of(*VALUE_KINDS.values())
# Most columns are ones a user could mean (so loading often succeeds and the checks after it
# run too); a quarter hold the values that break things.
CLEAN_KINDS = ["ints", "floats", "categories", "booleans", "dates", "binary_labels",
               "class_labels"]
TRICKY_KINDS = sorted(set(VALUE_KINDS) - set(CLEAN_KINDS))


def sometimes(draw: st.DrawFn, one_in: int) -> bool:
    """True about once in `one_in` draws (most documents stay loadable, so the checks after
    loading get exercised too)."""
    return draw(st.integers(1, one_in)) == 1


# The target values a task can learn from, most of the time.
TARGET_KINDS = {"binary_classify": ["binary_labels", "booleans"],
                "multiclass_classify": ["class_labels", "categories"],
                "regression": ["ints", "floats"]}


@st.composite
def csv_documents(draw: st.DrawFn, task: str = "binary_classify") -> bytes:
    """The bytes of a CSV file: odd headers, values, delimiters, encodings, sometimes broken."""
    columns = draw(st.sampled_from([0, 1, 2, 2, 3, 3, 4, 5]))
    header = draw(st.lists(HEADER_NAMES, min_size=columns, max_size=columns,
                           unique=not sometimes(draw, 5)))
    if columns and not sometimes(draw, 6):
        header[draw(st.integers(0, columns - 1))] = TARGET  # usually a target to find
    rows = draw(st.sampled_from([0, 1, 2, 4, 16] + [30, 45] * 4))
    kinds = [draw(st.sampled_from(TRICKY_KINDS if sometimes(draw, 4) else CLEAN_KINDS))
             for _ in header]
    if TARGET in header and not sometimes(draw, 4):
        kinds[header.index(TARGET)] = draw(st.sampled_from(TARGET_KINDS[task]))
    values = [draw(st.lists(VALUE_KINDS[kind], min_size=rows, max_size=rows)) for kind in kinds]
    table = [header] + [[column[row] for column in values] for row in range(rows)]
    if rows and sometimes(draw, 5):  # a ragged row
        row = table[draw(st.integers(1, rows))]
        row.append("extra") if draw(st.booleans()) or not row else row.pop()
    delimiter = draw(st.sampled_from([",", ",", ",", ";", "\t", "|"]))
    quoting = draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC]))
    text = io.StringIO()
    writer = csv.writer(text, delimiter=delimiter, quoting=quoting,
                        lineterminator=draw(st.sampled_from(["\n", "\r\n"])))
    writer.writerows(table if header or rows else [])
    document = ("\ufeff" if sometimes(draw, 3) else "") + text.getvalue()
    encoding = draw(st.sampled_from(["latin-1", "utf-16"])) if sometimes(draw, 8) else "utf-8"
    data = document.encode(encoding, errors="replace")
    if sometimes(draw, 6):
        mutation = draw(st.sampled_from(["truncate", "bytes", "blank_lines"]))
        if mutation == "truncate":
            data = data[:draw(st.integers(0, len(data)))]
        elif mutation == "bytes":
            at = draw(st.integers(0, len(data)))
            data = data[:at] + draw(st.binary(min_size=1, max_size=6)) + data[at:]
        else:
            data = b"\n\n" + data + b"\n\n,,\n"
    return data


# Image folders --------------------------------------------------------------------------------

# Modes Pillow writes in each format (anything else is converted first).
FORMAT_MODES = {"PNG": ("1", "L", "LA", "P", "RGB", "RGBA", "I;16"),
                "JPEG": ("L", "RGB", "CMYK"),
                "BMP": ("1", "L", "P", "RGB", "RGBA"),
                "GIF": ("L", "P", "RGB")}
SUFFIXES = {"PNG": ".png", "JPEG": ".jpg", "BMP": ".bmp", "GIF": ".gif"}


def image_bytes(image_format: str, mode: str, width: int, height: int, seed: int) -> bytes:
    """A random-pixel image of `mode` saved as `image_format`."""
    rng = np.random.default_rng(seed)
    if mode == "I;16":
        image = Image.fromarray(rng.integers(0, 65536, (height, width), dtype=np.uint16))
    else:
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        image = Image.fromarray(pixels, mode="RGB").convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format=image_format)
    return buffer.getvalue()


@st.composite
def image_files(draw: st.DrawFn, broken: bool = False) -> tuple[str, bytes]:
    """`(suffix, bytes)` of a valid image, or of a broken file: empty, truncated, text or a
    file that is not an image."""
    image_format = draw(st.sampled_from(sorted(FORMAT_MODES)))
    suffix = SUFFIXES[image_format]
    if draw(st.integers(0, 9)) == 0:  # a valid image under another image suffix
        suffix = draw(st.sampled_from([".png", ".JPG", ".jpeg", ".gif", ".bmp"]))
    data = image_bytes(image_format, draw(st.sampled_from(FORMAT_MODES[image_format])),
                       draw(st.integers(1, 12)), draw(st.integers(1, 12)),
                       draw(st.integers(0, 2**16)))
    kind = draw(st.sampled_from(["empty", "truncated", "text", "other"])) if broken else "valid"
    if kind == "empty":
        data = b""
    elif kind == "truncated":
        data = data[:draw(st.integers(1, max(1, len(data) - 1)))]
    elif kind == "text":
        data = b"not an image, just text\n"
    elif kind == "other":
        suffix = draw(st.sampled_from([".txt", ".csv", ".tiff", ""]))
    return suffix, data


@st.composite
def image_folders(draw: st.DrawFn) -> dict[str, bytes]:
    """Relative path -> bytes of a `--data` folder: 0-3 class folders, nesting, stray files."""
    files: dict[str, bytes] = {}
    count = draw(st.sampled_from([0, 1, 2, 2, 2, 2, 3, 3, 3]))
    names = draw(st.lists(st.sampled_from(["cat", "dog", "ünï", "with space", "1", ".hidden"]),
                          min_size=count, max_size=count, unique=True))
    broken = sometimes(draw, 3)  # then one file in eight is broken
    for name in names:
        images = draw(st.sampled_from([0, 2, 4, 5, 5, 7, 7, 8]))
        nested = sometimes(draw, 4)
        for index in range(images):
            suffix, data = draw(image_files(broken=broken and sometimes(draw, 8)))
            folder = f"{name}/sub" if nested and index % 2 else name
            files[f"{folder}/{index}{suffix}"] = data
        if not images:
            files[f"{name}/"] = b""  # an empty class folder
    for index in range(draw(st.integers(0, 2)) if sometimes(draw, 3) else 0):
        suffix, data = draw(image_files(broken=sometimes(draw, 2)))
        files[f"stray{index}{suffix}"] = data
    return files


def write_folder(root: Path, files: dict[str, bytes]) -> None:
    for relative, data in files.items():
        path = root / relative
        if relative.endswith("/"):
            path.mkdir(parents=True, exist_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


# The property ---------------------------------------------------------------------------------


def load_as_the_cli_does(task: str, argv: list[str]) -> None:
    """What a task's CLI does before training: parse, load, validate, build the raw inputs.

    Loaded data is also data training can use: its numbers are finite and small enough for
    float32's squares (or missing), so no infinity reaches the normalization, the loss or the
    baselines.
    """
    import importlib

    from datasets.registry import load_configured
    from tasks.cli import config_from_args
    from tasks.engine.inputs import inputs_for

    module = importlib.import_module(f"tasks.{task}")
    config = config_from_args(module.default_config, argv, f"tasks.{task}", "")
    splits = load_configured(config.data, config.problem, config.runtime.seed, config.inputs)
    inputs = inputs_for(splits, config.inputs, config.data.max_categories)
    numbers = [(split, name, values) for split, features in inputs.features.items()
               for name, values in features.items() if values.dtype.kind == "f"]
    if config.problem == "regression":
        numbers += [(split, "target", ids) for split, ids in inputs.ids.items()]
    for split, name, values in numbers:
        assert not (np.abs(values) > MAX_MAGNITUDE).any(), (split, name, values.ravel()[:20])


def assert_success_or_one_line_error(task: str, argv: list[str]) -> None:
    try:
        load_as_the_cli_does(task, argv)
        event("loaded")
    except InputError as error:
        message = str(error)
        event("InputError: " + " ".join(word for word in message.split()[:5] if "/" not in word))
        assert message.strip(), "an InputError without a message"
        assert "\n" not in message and "\r" not in message, message


@settings(FUZZ, max_examples=CSV_EXAMPLES)
@given(case=st.sampled_from(TABLE_TASKS).flatmap(
    lambda task: st.tuples(st.just(task), csv_documents(task))))
def test_any_csv_loads_or_is_one_error_line(case):
    task, document = case
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "data.csv"
        path.write_bytes(document)
        assert_success_or_one_line_error(task, ["--data", str(path), "--target", TARGET])


@settings(FUZZ, max_examples=IMAGE_EXAMPLES)
@given(files=image_folders(), skip_bad=st.booleans(),
       image_size=st.sampled_from([None, "8", "5x7"]),
       halves=st.sampled_from([False, True, True]))
def test_any_image_folder_loads_or_is_one_error_line(files, skip_bad, image_size, halves):
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "images"
        root.mkdir()
        write_folder(root, files)
        argv = ["--data", str(root)] + (["--skip-bad-images"] if skip_bad else [])
        argv += ["--image-size", image_size] if image_size else []
        # Half the images for validation, half of all for test: a class needs only 4.
        argv += ["--set", "data.validation_fraction=0.5", "--set", "data.test_fraction=0.5"] * (
            halves)
        before = sorted(Path(folder).rglob("*"))
        assert_success_or_one_line_error("image_classify", argv)
        assert sorted(Path(folder).rglob("*")) == before  # nothing written beside the images


# A bounded sample through the real CLI ---------------------------------------------------------


def assert_cli_contract(result, run_dir: Path) -> None:
    """Exit 0; or exit 2, one `error:` line, no traceback, nothing left where the run goes."""
    event(f"exit {result.returncode}")
    if result.returncode == 0:
        assert (run_dir / "metrics.json").is_file(), result.stderr[-2000:]
        return
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert_cli_error(result)
    left = [path.name for path in run_dir.parent.iterdir() if path.name.startswith(run_dir.name)]
    assert not left, left


# Kept findings, end to end: a spreadsheet's ; file (BOM, decimal commas) trains; an infinity in
# a feature, which used to crash training with exit 1, is one error line.
SPREADSHEET_CSV = ("\ufeffsize;colour;y\r\n" + "".join(
    f"{index % 7},{index % 3};{['red', 'blue'][index % 2]};{['no', 'yes'][index % 3 == 0]}\r\n"
    for index in range(40))).encode()
INFINITY_CSV = ("x,y\n" + "".join(f"{'inf' if index == 5 else index},{index % 2}\n"
                                  for index in range(40))).encode()


@pytest.mark.slow
@settings(FUZZ, max_examples=CLI_EXAMPLES)
@given(document=csv_documents())
@example(document=SPREADSHEET_CSV)
@example(document=INFINITY_CSV)
def test_cli_on_generated_csvs_exits_0_or_2_with_one_line(document):
    with tempfile.TemporaryDirectory() as folder:
        path, run_dir = Path(folder) / "data.csv", Path(folder) / "run"
        path.write_bytes(document)
        result = run_cli("tasks.binary_classify", "--data", path, "--target", TARGET,
                         "--epochs", "1", "--export", "none", "--set", "export.latency=false",
                         "--run-dir", run_dir, cwd=folder)
        assert_cli_contract(result, run_dir)


def test_non_ascii_categories_reach_litert_as_utf8():
    # Found by running generated CSVs that load through the whole CLI with --export tflite: a
    # category such as "café" crashed the TFLite parity check (numpy's bytes_ cast is ASCII).
    from tasks.engine.inference import litert_inputs

    values = np.array([["café"], ["x"], ["🙂"]], dtype=object)
    assert litert_inputs({"colour": values})["colour"].tolist() == [
        ["café".encode()], [b"x"], ["🙂".encode()]]
