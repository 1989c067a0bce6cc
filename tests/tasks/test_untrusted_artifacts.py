"""Tampered run directories and model files: one `error:` line naming the file, exit 2.

Every case starts from a real trained run (`trained_run`, all export formats) copied to a temporary
folder, replaces one of its files the way an attacker or an accident would, and runs
`tasks.predict` (or `tasks.transfer_learning --weights`) on it. The contract: exit code 2, one
stderr line starting `error: ` that names the file and why, no traceback, nothing written.
"""

import io
import json
import os
import shutil
import zipfile
from pathlib import Path

import keras
import pytest

from tasks import predict, transfer_learning
from tests.helpers import assert_cli_error, assert_one_error_line, run_cli

KERAS = "model.keras"
TFLITE = "export/model.tflite"
SAVEDMODEL = "export/saved_model"
SCHEMA = "schema.json"
# Every test starts from the trained run, a whole training run.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def new_rows(tmp_path_factory):
    path = tmp_path_factory.mktemp("rows") / "new.csv"
    path.write_text("age,annual income,color\n30,40000,red\n61,,blue\n")
    return path


@pytest.fixture
def run_copy(trained_run, tmp_path):
    """A copy of the trained run to tamper with (the session's run stays intact)."""
    return Path(shutil.copytree(trained_run, tmp_path / "run"))


def predict_error(capsys, run_dir, data, fmt="keras", flag="--run-dir", *fragments):
    capsys.readouterr()
    output = Path(data).with_name("out.csv")
    code = predict.main([flag, str(run_dir), "--data", str(data), "--format", fmt,
                         "--output", str(output)])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2, lines
    assert_one_error_line(lines, *fragments)
    assert not output.exists()
    return lines[0]


# --- Ways to tamper with a file -------------------------------------------------------------

def table_inputs():
    """Inputs named and typed like the trained run's (age, annual income, color)."""
    return {"age": keras.Input((1,), name="age"),
            "annual_income": keras.Input((1,), name="annual_income"),
            "color": keras.Input((1,), name="color", dtype="string")}


def save_model(path, outputs_of):
    inputs = table_inputs()
    keras.Model(inputs, outputs_of(inputs)).save(path)


def lambda_model(path):
    save_model(path, lambda inputs: keras.layers.Lambda(lambda x: x * 0.5)(inputs["age"]))


def rewrite_member(path, member, change):
    """Rewrites one file inside a zip archive (`change(bytes) -> bytes`)."""
    with zipfile.ZipFile(path) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    files[member] = change(files[member])
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    path.write_bytes(buffer.getvalue())


def edit_config(path, edit):
    rewrite_member(path, "config.json",
                   lambda data: json.dumps(edit(json.loads(data))).encode())


def replace_in_config(old, new):
    return lambda config: json.loads(json.dumps(config).replace(old, new))


def set_lookup_vocabulary(config):
    """Points the string lookup at a file outside the archive (a path read from the file)."""
    for layer in config["config"]["layers"]:
        if layer["class_name"] == "StringLookup":
            layer["config"]["vocabulary"] = "/etc/hostname"
    return config


def write_zip(path, files):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    path.write_bytes(buffer.getvalue())


def replace_with_folder(path):
    path.unlink()
    path.mkdir()
    (path / "config.json").write_text("{}")


def truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def link_outside(path, target):
    """Replaces `path` by a symlink to a copy of it outside the run directory."""
    run_dir = next(parent for parent in path.parents if parent.name == "run")
    outside = run_dir.parent / f"outside-{path.name}"
    shutil.copy(target, outside) if target.is_file() else shutil.copytree(target, outside)
    (shutil.rmtree if path.is_dir() else Path.unlink)(path)
    path.symlink_to(outside)


def rewrite_json(path, edit):
    path.write_text(json.dumps(edit(json.loads(path.read_text()))))


def without(key):
    return lambda data: {name: value for name, value in data.items() if name != key}


def with_values(**values):
    return lambda data: {**data, **values}


def first_column(**values):
    return lambda data: {**data, "columns": [{**data["columns"][0], **values},
                                             *data["columns"][1:]]}


def write_file_savedmodel(folder):
    """A SavedModel with the run's serving signature whose graph writes a file when called."""
    import tensorflow as tf

    shutil.rmtree(folder)

    class Writer(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.float32, name="age"),
                                      tf.TensorSpec([None, 1], tf.float32, name="annual_income"),
                                      tf.TensorSpec([None, 1], tf.string, name="color")])
        def serve(self, age, annual_income, color):
            tf.io.write_file(str(folder.parent / "written-by-the-model"), "pwned")
            return {"output_0": tf.zeros_like(age)}

    module = Writer()
    tf.saved_model.save(module, str(folder), signatures={"serve": module.serve})


def other_tflite(path):
    """A valid .tflite file of another model (one input `x`)."""
    import tensorflow as tf

    inputs = keras.Input((3,), name="x")
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    function = tf.function(lambda x: model(x)).get_concrete_function(
        tf.TensorSpec([None, 3], tf.float32, name="x"))
    path.write_bytes(tf.lite.TFLiteConverter.from_concrete_functions(
        [function], model).convert())


# --- Cases: (id, format, file tampered, how, fragments of the one error line) ---------------

CASES = [
    # model.keras
    ("keras-lambda-layer", "keras", KERAS, lambda_model,
     ["Keras safe mode refused to load", "model.keras", "a Lambda layer",
      "Load only model files you trust", "safe_mode=False", "never turns safe mode off"]),
    ("keras-tfsmlayer", "keras", KERAS,
     lambda path: save_model(path, lambda inputs: keras.layers.TFSMLayer(
         str(path.parent / SAVEDMODEL), call_endpoint="serve")(inputs)),
     ["Keras safe mode refused", "model.keras", "TFSMLayer"]),
    ("keras-vocabulary-file-outside", "keras", KERAS,
     lambda path: edit_config(path, set_lookup_vocabulary),
     ["Keras safe mode refused", "model.keras", "vocabulary file outside the model archive"]),
    ("keras-unknown-class", "keras", KERAS,
     lambda path: edit_config(path, replace_in_config("FillMissing", "Backdoor")),
     ["model.keras", "needs a class that is neither Keras's nor this project's",
      "Could not locate class 'Backdoor'", "never imported"]),
    ("keras-class-from-os-module", "keras", KERAS,
     lambda path: edit_config(path, lambda config: replace_in_config(
         '"module": "zoo.layers", "class_name": "FillMissing"',
         '"module": "os", "class_name": "system"')(
             replace_in_config('"zoo>FillMissing"', "null")(config))),
     ["model.keras", "Could not locate class 'system'"]),
    ("keras-zip-not-keras", "keras", KERAS,
     lambda path: write_zip(path, {"notes.txt": "hello"}),
     ["could not load the model in", "model.keras", "zip archive but not a Keras model",
      "notes.txt"]),
    ("keras-random-bytes", "keras", KERAS, lambda path: path.write_bytes(os.urandom(4096)),
     ["could not load the model in", "model.keras", "is not: another format, or cut short"]),
    ("keras-empty-file", "keras", KERAS, lambda path: path.write_bytes(b""),
     ["model.keras", "empty (0 bytes)"]),
    ("keras-truncated", "keras", KERAS, truncate,
     ["model.keras", "is not: another format, or cut short"]),
    ("keras-a-folder", "keras", KERAS, replace_with_folder,
     ["model.keras", "should be a keras model file but is a folder"]),
    ("keras-config-not-json", "keras", KERAS,
     lambda path: rewrite_member(path, "config.json", lambda data: b"{not json"),
     ["could not load the model in", "model.keras", "Expecting property name"]),
    ("keras-weights-garbage", "keras", KERAS,
     lambda path: rewrite_member(path, "model.weights.h5", lambda data: os.urandom(512)),
     ["could not load the model in", "model.keras", "file signature not found"]),
    ("keras-another-model", "keras", KERAS,
     lambda path: keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)]).save(path),
     ["model.keras", "does not fit the run's schema.json", "age float32[1]",
      "do not belong together"]),
    ("keras-wrong-output-width", "keras", KERAS,
     lambda path: save_model(path, lambda inputs: keras.layers.Dense(3)(inputs["age"])),
     ["model.keras", "does not fit the run's schema.json", "(None, 3)",
      "binary problem with 2 labels needs one output of width 1"]),
    ("keras-symlink-outside", "keras", KERAS, lambda path: link_outside(path, path),
     ["model.keras", "points outside its run directory", "outside-model.keras"]),
    # export/saved_model
    ("savedmodel-pb-garbage", "savedmodel", SAVEDMODEL,
     lambda folder: (folder / "saved_model.pb").write_bytes(os.urandom(2048)),
     ["could not load the SavedModel in", "saved_model", "saved_model.pb:"]),
    ("savedmodel-pb-truncated", "savedmodel", SAVEDMODEL,
     lambda folder: truncate(folder / "saved_model.pb"),
     ["could not load the SavedModel in", "saved_model.pb:"]),
    ("savedmodel-pb-missing", "savedmodel", SAVEDMODEL,
     lambda folder: (folder / "saved_model.pb").unlink(),
     ["could not load the SavedModel in", "saved_model.pb"]),
    ("savedmodel-variables-missing", "savedmodel", SAVEDMODEL,
     lambda folder: shutil.rmtree(folder / "variables"),
     ["could not load the SavedModel in", "saved_model", "variables"]),
    ("savedmodel-variables-garbage", "savedmodel", SAVEDMODEL,
     lambda folder: (folder / "variables" / "variables.index").write_bytes(os.urandom(256)),
     ["could not load the SavedModel in", "saved_model"]),
    ("savedmodel-writes-a-file", "savedmodel", SAVEDMODEL, write_file_savedmodel,
     ["refused to load the SavedModel in", "saved_model", "WriteFile",
      "read or write files or call Python"]),
    ("savedmodel-a-file", "savedmodel", SAVEDMODEL,
     lambda folder: (shutil.rmtree(folder), folder.write_bytes(b"x")),
     ["saved_model", "should be a SavedModel folder but is not a folder"]),
    ("savedmodel-variables-symlink-outside", "savedmodel", SAVEDMODEL,
     lambda folder: link_outside(folder / "variables", folder / "variables"),
     ["variables", "points outside its run directory"]),
    # export/*.tflite
    ("tflite-garbage", "tflite", TFLITE, lambda path: path.write_bytes(os.urandom(4096)),
     ["could not load the TFLite model in", "model.tflite", "not a valid Flatbuffer"]),
    ("tflite-truncated", "tflite", TFLITE, truncate,
     ["could not load the TFLite model in", "model.tflite", "not a valid Flatbuffer"]),
    ("tflite-empty", "tflite", TFLITE, lambda path: path.write_bytes(b""),
     ["could not load the TFLite model in", "model.tflite"]),
    ("tflite-a-keras-file", "tflite", TFLITE,
     lambda path: shutil.copy(path.parents[1] / KERAS, path),
     ["could not load the TFLite model in", "model.tflite", "not a valid Flatbuffer"]),
    ("tflite-another-model", "tflite", TFLITE, other_tflite,
     ["model.tflite", "does not fit the run's schema.json", "it takes x float32[3]"]),
    ("tflite-symlink-outside", "tflite", TFLITE, lambda path: link_outside(path, path),
     ["model.tflite", "points outside its run directory", "outside-model.tflite"]),
    ("tflite_float16-garbage", "tflite_float16", "export/model_float16.tflite",
     lambda path: path.write_bytes(os.urandom(999)), ["model_float16.tflite"]),
    ("tflite_dynamic_int8-truncated", "tflite_dynamic_int8", "export/model_dynamic_int8.tflite",
     truncate, ["model_dynamic_int8.tflite", "not a valid Flatbuffer"]),
    ("tflite_int8-folder", "tflite_int8", "export/model_int8.tflite",
     lambda path: (path.unlink(), path.mkdir()),
     ["model_int8.tflite", "should be a tflite_int8 model file but is a folder"]),
    # schema.json (read for every format)
    ("schema-not-json", "keras", SCHEMA, lambda path: path.write_text("{'target': bought"),
     ["schema.json", "is not valid JSON"]),
    ("schema-not-utf8", "tflite", SCHEMA, lambda path: path.write_bytes(b"\xff\xfe\x00garbage"),
     ["schema.json", "is not valid JSON"]),
    ("schema-a-list", "keras", SCHEMA, lambda path: path.write_text("[1, 2]"),
     ["schema.json", "expected a JSON object, found list"]),
    ("schema-missing-target", "keras", SCHEMA, lambda path: rewrite_json(path, without("target")),
     ["schema.json", "is not a schema this project writes", "the key 'target' is missing"]),
    ("schema-columns-wrong-type", "keras", SCHEMA,
     lambda path: rewrite_json(path, with_values(columns="age,color")),
     ["schema.json", "'columns' must be a non-empty list"]),
    ("schema-unknown-problem", "savedmodel", SCHEMA,
     lambda path: rewrite_json(path, with_values(problem="ranking")),
     ["schema.json", "'problem' must be one of binary, multiclass, regression", "'ranking'"]),
    ("schema-labels-wrong-count", "keras", SCHEMA,
     lambda path: rewrite_json(path, with_values(labels=["no", "yes", "maybe"])),
     ["schema.json", "a binary problem cannot have 3 labels"]),
    ("schema-column-kind", "keras", SCHEMA,
     lambda path: rewrite_json(path, first_column(kind="text")),
     ["schema.json", "column 'age' has kind 'text'"]),
    ("schema-input-name-with-a-path", "tflite", SCHEMA,
     lambda path: rewrite_json(path, first_column(input_name="../../age")),
     ["schema.json", "invalid or repeated input_name '../../age'"]),
    ("schema-image-size-huge", "keras", SCHEMA,
     lambda path: path.write_text(json.dumps({
         "kind": "image", "problem": "multiclass", "target": "class", "labels": ["a", "b"],
         "image_size": [100000, 100000], "channels": 3})),
     ["schema.json", "'image_size' must be [height, width]", "100000"]),
    ("schema-symlink-outside", "keras", SCHEMA, lambda path: link_outside(path, path),
     ["schema.json", "points outside its run directory"]),
    ("schema-missing", "keras", SCHEMA, lambda path: path.unlink(),
     ["schema.json not found"]),
]


@pytest.mark.parametrize(("fmt", "relative", "tamper", "fragments"),
                         [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_a_tampered_run_directory_is_one_error_line(run_copy, new_rows, capsys, tmp_path, fmt,
                                                    relative, tamper, fragments):
    tamper(run_copy / relative)
    predict_error(capsys, run_copy, new_rows, fmt, "--run-dir", *fragments)
    assert not (tmp_path / "written-by-the-model").exists()
    assert not (run_copy / "export" / "written-by-the-model").exists()


def test_the_untampered_copy_predicts(run_copy, new_rows, capsys):
    """The control: the same copy, untouched, runs in every format the cases tamper with."""
    for fmt in ("keras", "savedmodel", "tflite", "tflite_int8"):
        assert predict.main(["--run-dir", str(run_copy), "--data", str(new_rows),
                             "--format", fmt]) == 0, capsys.readouterr().err


# --- --model FILE ---------------------------------------------------------------------------

def test_model_flag_with_a_lambda_model_is_refused(run_copy, new_rows, capsys, tmp_path):
    folder = tmp_path / "shared"
    folder.mkdir()
    shutil.copy(run_copy / SCHEMA, folder / SCHEMA)
    lambda_model(folder / "mine.keras")
    predict_error(capsys, folder / "mine.keras", new_rows, "keras", "--model",
                  "Keras safe mode refused", "mine.keras", "a Lambda layer", "safe_mode=False")


def test_model_flag_reads_a_checked_schema_beside_the_file(run_copy, new_rows, capsys):
    rewrite_json(run_copy / SCHEMA, first_column(name=7))
    predict_error(capsys, run_copy / KERAS, new_rows, "keras", "--model",
                  "schema.json", "column 1 has a missing or repeated name 7")


def test_model_flag_without_a_schema_beside_it(run_copy, new_rows, capsys, tmp_path):
    alone = tmp_path / "alone.keras"
    shutil.copy(run_copy / KERAS, alone)
    predict_error(capsys, alone, new_rows, "keras", "--model", "schema.json not found")


def test_model_flag_symlinked_schema_outside_its_folder(run_copy, new_rows, capsys):
    link_outside(run_copy / SCHEMA, run_copy / SCHEMA)
    predict_error(capsys, run_copy / KERAS, new_rows, "keras", "--model",
                  "schema.json", "points outside its run directory")


# --- tasks.transfer_learning --weights PATH -------------------------------------------------

WEIGHTS_CASES = [
    ("lambda-layer", lambda path, run: lambda_model(path),
     ["--weights: Keras safe mode refused to load", "a Lambda layer", "safe_mode=False"]),
    ("random-bytes", lambda path, run: path.write_bytes(os.urandom(2048)),
     ["--weights: could not load the model in", "is not: another format"]),
    ("empty-file", lambda path, run: path.write_bytes(b""),
     ["--weights: could not load the model in", "empty (0 bytes)"]),
    ("zip-not-keras", lambda path, run: write_zip(path, {"a.txt": "x"}),
     ["--weights:", "zip archive but not a Keras model"]),
    ("a-folder", lambda path, run: (path.mkdir(), (path / "config.json").write_text("{}")),
     ["--weights takes imagenet, none, or the path of a model.keras", "weights.keras"]),
    ("unknown-class", lambda path, run: (shutil.copy(run / KERAS, path), edit_config(
        path, replace_in_config("FillMissing", "Backdoor"))),
     ["--weights:", "Could not locate class 'Backdoor'"]),
    ("a-table-model", lambda path, run: shutil.copy(run / KERAS, path),
     ["--weights: the model in", "is not an image model", "(None, 8)",
      "image_classify or transfer_learning run"]),
    ("no-head", lambda path, run: keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.GlobalAveragePooling2D()]).save(path),
     ["--weights: the model in", "has no layer named 'head'"]),
]


@pytest.mark.parametrize(("tamper", "fragments"), [case[1:] for case in WEIGHTS_CASES],
                         ids=[case[0] for case in WEIGHTS_CASES])
def test_transfer_weights_that_cannot_be_trusted_stop_before_training(
        trained_run, capsys, tmp_path, tamper, fragments):
    weights = tmp_path / "weights.keras"
    tamper(weights, trained_run)
    run_dir = tmp_path / "transfer"
    capsys.readouterr()
    code = transfer_learning.main(["--data", "digits", "--weights", str(weights),
                                   "--run-dir", str(run_dir), "--epochs", "1"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2, lines
    assert_one_error_line(lines, *fragments)
    assert not any(tmp_path.glob("transfer*")), list(tmp_path.iterdir())


# --- In a real process: one line, no traceback (the finding in issue 13) ---------------------

def test_a_lambda_model_in_a_run_directory_is_one_line_in_a_real_process(run_copy, new_rows):
    lambda_model(run_copy / KERAS)
    result = run_cli("tasks.predict", "--run-dir", run_copy, "--data", new_rows,
                     "--format", "keras")
    assert_cli_error(result, "Keras safe mode refused to load", "model.keras", "Lambda layer")
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_a_garbage_tflite_file_is_one_line_in_a_real_process(run_copy, new_rows):
    """LiteRT reports a broken file natively too; that report is set aside."""
    (run_copy / TFLITE).write_bytes(os.urandom(4096))
    result = run_cli("tasks.predict", "--run-dir", run_copy, "--data", new_rows,
                     "--format", "tflite")
    assert_cli_error(result, "could not load the TFLite model in", "model.tflite")
