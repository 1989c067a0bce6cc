"""`tasks.predict` on the tables and images users really have: each works or is one error line.

Tables run through the trained binary run of `trained_run` (age, annual income, color -> bought),
in the Keras and the TFLite format (the exported file must behave as the Keras model does).
Images run through two small image models saved as runs save them (RGB and grayscale, 12 x 12).
"""

import io
import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import zoo
from datasets.image_preprocessing import ImagePreprocessor, ImageSchema
from datasets.images import read_images
from tasks import predict
from tests.helpers import assert_cli_error, assert_one_error_line, make_user_frame, run_cli

FEATURES = ["age", "annual income", "color"]
PREDICTED = ["predicted_bought", "probability_no", "probability_yes"]


def run_predict(capsys, run_dir, data, fmt="keras", *extra):
    """Runs predict in-process; returns (exit code, output frame or None, stderr lines)."""
    capsys.readouterr()
    code = predict.main(["--run-dir", str(run_dir), "--data", str(data), "--format", fmt,
                         *map(str, extra)])
    captured = capsys.readouterr()
    frame = pd.read_csv(io.StringIO(captured.out)) if code == 0 and captured.out else None
    return code, frame, captured.err.strip().splitlines()


def assert_predictions(frame, columns, rows):
    assert list(frame.columns) == [*columns, *PREDICTED]
    assert len(frame) == rows
    probabilities = frame[["probability_no", "probability_yes"]].to_numpy()
    assert np.isfinite(probabilities).all()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-6)


@pytest.fixture(scope="module")
def base():
    """New rows like the training data: numbers, a category, some missing values."""
    return make_user_frame(rows=30, seed=5).drop(columns="bought").reset_index(drop=True)


@pytest.fixture(scope="module")
def reference(trained_run, base, tmp_path_factory):
    """Keras's probability of 'yes' for each row of `base`."""
    path = tmp_path_factory.mktemp("reference") / "base.csv"
    base.to_csv(path, index=False)
    output = path.with_name("out.csv")
    assert predict.main(["--run-dir", str(trained_run), "--data", str(path), "--output",
                         str(output)]) == 0
    return pd.read_csv(output)["probability_yes"].to_numpy()


# --- Tables that work ------------------------------------------------------------------------

def reordered(base):
    return base[["color", "annual income", "age"]], "same"


def extra_columns(base):
    return base.assign(customer_id=np.arange(len(base)), notes="called twice"), "same"


def target_present(base):
    return base.assign(bought=["yes", "no", "maybe"] * 10), "same"


def header_with_spaces(base):
    return base.rename(columns={"age": "  age ", "color": "color  "}), "same"


def integer_and_quoted_numbers(base):
    frame = base.copy()
    frame["age"] = frame["age"].astype(int).astype(str)  # written quoted, read back as numbers
    return frame, "same"


def unseen_categories(base):
    return base.assign(color=["purple", "orange"] * 15), "unseen"


def numbers_as_categories(base):
    return base.assign(color=[1, 2, 3] * 10), "unseen"


def missing_everywhere(base):
    frame = base.copy().astype(object)
    frame.loc[0:5, "age"] = np.nan
    frame.loc[3:9, "annual income"] = np.nan
    frame.loc[6:12, "color"] = np.nan
    frame.loc[20:22, :] = np.nan  # whole rows of nothing
    return frame, "blank rows"


def a_numeric_column_all_missing(base):
    return base.assign(**{"annual income": np.nan}), "finite"


def one_row(base):
    return base.head(1), "same"


TABLES = [reordered, extra_columns, target_present, header_with_spaces,
          integer_and_quoted_numbers, unseen_categories, numbers_as_categories,
          missing_everywhere, a_numeric_column_all_missing, one_row]


@pytest.mark.parametrize("make", TABLES, ids=[make.__name__ for make in TABLES])
@pytest.mark.slow
def test_tables_that_work_in_keras_and_tflite_alike(trained_run, base, reference, tmp_path,
                                                    capsys, make):
    frame, expect = make(base)
    path = tmp_path / "rows.csv"
    frame.to_csv(path, index=False, quoting=1 if make is integer_and_quoted_numbers else 0)
    results = {}
    for fmt in ("keras", "tflite"):
        code, result, lines = run_predict(capsys, trained_run, path, fmt)
        assert code == 0, lines
        assert_predictions(result, [str(name).strip() for name in frame.columns], len(frame))
        results[fmt] = result
    keras_yes = results["keras"]["probability_yes"].to_numpy()
    np.testing.assert_allclose(results["tflite"]["probability_yes"], keras_yes, atol=1e-4)
    assert (results["tflite"]["predicted_bought"] == results["keras"]["predicted_bought"]).all()
    if expect == "same":  # the same rows, read by name: the same answers
        np.testing.assert_allclose(keras_yes, reference[:len(frame)], atol=1e-6)
    if expect == "unseen":  # every unseen category is the one out-of-vocabulary bucket
        other = base.assign(color="never-seen")
        other.to_csv(tmp_path / "other.csv", index=False)
        _, expected, _ = run_predict(capsys, trained_run, tmp_path / "other.csv")
        np.testing.assert_allclose(keras_yes, expected["probability_yes"], atol=1e-6)
    if expect == "blank rows":  # rows of nothing are imputed alike: one answer for all
        assert len(set(np.round(keras_yes[20:23], 6))) == 1
    for column in set(frame.columns) - set(FEATURES):  # extra columns come back unchanged
        if str(column).strip() not in FEATURES:
            pd.testing.assert_series_equal(results["keras"][column], pd.read_csv(path)[column])


# --- Tables that stop with one error line ------------------------------------------------------

def write(tmp_path, text, name="rows.csv"):
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


BAD_TABLES = [
    ("missing-column", "annual income,color\n40000,red\n",
     ["rows.csv lacks the feature column age", "its columns are: annual income, color",
      "The model takes: age, annual income, color"]),
    ("two-missing-columns", "age\n30\n", ["lacks the feature columns annual income, color"]),
    ("renamed-column-case", "Age,annual income,color\n30,40000,red\n",
     ["lacks the feature column age", "Rename 'Age' for 'age' if that is the same column"]),
    ("renamed-column-underscore", "age,annual_income,color\n30,40000,red\n",
     ["Rename 'annual_income' for 'annual income'"]),
    ("misspelled-column", "age,annual income,colour\n30,40000,red\n",
     ["lacks the feature column color", "Rename 'colour' for 'color'"]),
    ("only-the-target", "bought\nyes\nno\n",
     ["rows.csv has only the target column 'bought'", "age, annual income, color"]),
    ("text-in-a-number-column", "age,annual income,color\n30,40000,red\nforty,1,blue\n",
     ["column 'age' of rows.csv must hold numbers", "'forty' at line 3 of rows.csv"]),
    ("truth-values-in-a-number-column", "age,annual income,color\nTrue,1,red\nFalse,2,blue\n",
     ["column 'age' of rows.csv must hold numbers", "True at line 2", "truth value"]),
    ("infinity-in-a-number-column", "age,annual income,color\n30,inf,red\n",
     ["column 'annual income' of rows.csv", "line 2", "finite"]),
    ("number-beyond-float32", "age,annual income,color\n30,1e39,red\n",
     ["column 'annual income' of rows.csv", "line 2", "float32"]),
    ("header-only", "age,annual income,color\n", ["has a header", "but no data rows"]),
    ("zero-bytes", b"", ["rows.csv' is empty"]),
    ("duplicate-column-names", "age,age,annual income,color\n1,2,3,red\n",
     ["duplicate column names", "'age' (2 times)"]),
    ("not-utf8", b"age,annual income,color\n30,40000,r\xe9d\n", ["is not UTF-8"]),
    ("ragged-row", "age,annual income,color\n30,40000,red\n31,2,blue,extra\n",
     ["line 3", "has 4 fields", "the header has 3"]),
    ("an-image-instead", (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4), ["rows.csv"]),
]


@pytest.mark.parametrize(("text", "fragments"), [case[1:] for case in BAD_TABLES],
                         ids=[case[0] for case in BAD_TABLES])
@pytest.mark.slow
def test_tables_that_stop_with_one_error_line(trained_run, tmp_path, capsys, text, fragments):
    path = write(tmp_path, text)
    output = tmp_path / "out.csv"
    code, _, lines = run_predict(capsys, trained_run, path, "tflite", "--output", output)
    assert code == 2, lines
    assert_one_error_line(lines, *fragments)
    assert not output.exists()


@pytest.mark.parametrize("case", ["data-is-a-folder", "data-missing", "output-is-a-folder",
                                  "output-is-the-data", "output-under-a-file"])
@pytest.mark.slow
def test_paths_that_stop_with_one_error_line(trained_run, base, tmp_path, capsys, case):
    data = tmp_path / "rows.csv"
    base.to_csv(data, index=False)
    before = data.read_bytes()
    output, fragments = tmp_path / "out.csv", []
    if case == "data-is-a-folder":
        data, fragments = tmp_path, ["is a folder"]
    elif case == "data-missing":
        data, fragments = tmp_path / "gone.csv", ["data file not found", "gone.csv"]
    elif case == "output-is-a-folder":
        output, fragments = tmp_path, ["--output", "is a folder", "predictions.csv"]
    elif case == "output-is-the-data":
        output, fragments = data, ["is the --data file itself", "another file name"]
    else:
        output, fragments = data / "out.csv", ["could not write --output", "rows.csv/out.csv"]
    code, _, lines = run_predict(capsys, trained_run, data, "keras", "--output", output)
    assert code == 2, lines
    assert_one_error_line(lines, *fragments)
    assert (tmp_path / "rows.csv").read_bytes() == before


@pytest.mark.slow
def test_a_renamed_column_is_one_line_in_a_real_process(trained_run, tmp_path):
    path = write(tmp_path, "Age,annual income,color\n30,40000,red\n")
    result = run_cli("tasks.predict", "--run-dir", trained_run, "--data", path)
    assert_cli_error(result, "lacks the feature column age", "Rename 'Age' for 'age'")
    assert result.stdout == ""


# --- Images ----------------------------------------------------------------------------------

SIZE = (12, 12)


@pytest.fixture(scope="module")
def image_runs(tmp_path_factory):
    """An RGB and a grayscale image model, saved as an image run saves them."""
    runs = {}
    for channels, name in ((3, "rgb"), (1, "gray")):
        run_dir = tmp_path_factory.mktemp("image_runs") / name
        run_dir.mkdir()
        schema = ImageSchema(labels=["circle", "square"], image_size=SIZE, channels=channels)
        network = zoo.build_model("cnn", input_shape=(*SIZE, channels), num_classes=2,
                                  filters=(4,), dropout_rate=0.0)
        ImagePreprocessor(schema).compose(network).save(run_dir / "model.keras")
        (run_dir / "schema.json").write_text(json.dumps(schema.to_dict()))
        runs[name] = run_dir
    return runs


def pixels(seed=0, shape=(12, 12, 3)):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def save(image, path, **options):
    image.save(path, **options)
    return path


IMAGES = {  # name -> how to write it from an RGB array
    "rgb.png": lambda rgb, path: save(Image.fromarray(rgb), path),
    "gray.png": lambda rgb, path: save(Image.fromarray(rgb).convert("L"), path),
    "rgba.png": lambda rgb, path: save(Image.fromarray(rgb).convert("RGBA"), path),
    "gray_alpha.png": lambda rgb, path: save(Image.fromarray(rgb).convert("LA"), path),
    "palette.png": lambda rgb, path: save(Image.fromarray(rgb).convert("P"), path),
    "one_bit.png": lambda rgb, path: save(Image.fromarray(rgb).convert("1"), path),
    "gray_16bit.png": lambda rgb, path: save(
        Image.fromarray(rgb[..., 0].astype(np.uint16) * 257), path),
    "cmyk.jpg": lambda rgb, path: save(Image.fromarray(rgb).convert("CMYK"), path, quality=95),
    "photo.jpeg": lambda rgb, path: save(Image.fromarray(rgb), path, quality=95),
    "bitmap.bmp": lambda rgb, path: save(Image.fromarray(rgb), path),
    "animation.gif": lambda rgb, path: save(Image.fromarray(rgb).convert("P"), path),
    "larger_size.png": lambda rgb, path: save(Image.fromarray(rgb).resize((40, 30)), path),
    "smaller_size.png": lambda rgb, path: save(Image.fromarray(rgb).resize((5, 7)), path),
    "webp_named_png.png": lambda rgb, path: save(Image.fromarray(rgb), path, format="WEBP",
                                                 lossless=True),
    "tiff_named_png.png": lambda rgb, path: save(Image.fromarray(rgb), path, format="TIFF"),
}


@pytest.mark.parametrize("model", ["rgb", "gray"])
@pytest.mark.parametrize("name", list(IMAGES))
def test_images_of_any_mode_size_and_format_work(image_runs, tmp_path, capsys, model, name):
    path = IMAGES[name](pixels(), tmp_path / name)
    code, result, lines = run_predict(capsys, image_runs[model], path)
    assert code == 0, lines
    assert list(result.columns) == ["file", "predicted_class", "probability_circle",
                                    "probability_square"]
    assert result["file"].tolist() == [str(path)]
    probabilities = result[["probability_circle", "probability_square"]].to_numpy()
    assert np.isfinite(probabilities).all() and abs(probabilities.sum() - 1) < 1e-5


def test_modes_are_converted_as_in_training(tmp_path):
    """What the model receives: the pixels of the RGB (or gray) image, whatever the mode."""
    rgb = pixels()
    paths = {name: IMAGES[name](rgb, tmp_path / name) for name in IMAGES}
    files = list(paths.values())
    as_rgb = dict(zip(paths, read_images(files, SIZE, 3).astype(int), strict=True))
    as_gray = dict(zip(paths, read_images(files, SIZE, 1).astype(int), strict=True))
    np.testing.assert_array_equal(as_rgb["rgba.png"], rgb)  # alpha dropped
    np.testing.assert_array_equal(as_rgb["webp_named_png.png"], rgb)  # content, not extension
    np.testing.assert_array_equal(as_rgb["tiff_named_png.png"], rgb)  # TensorFlow cannot: Pillow
    np.testing.assert_array_equal(as_rgb["palette.png"],  # palette colors looked up
                                  np.asarray(Image.open(paths["palette.png"]).convert("RGB")))
    assert np.abs(as_rgb["cmyk.jpg"] - np.asarray(
        Image.open(paths["cmyk.jpg"]).convert("RGB"), dtype=int)).max() <= 12
    gray = np.asarray(Image.open(paths["gray.png"]))[..., None]
    np.testing.assert_array_equal(as_gray["gray.png"], gray)
    np.testing.assert_array_equal(as_gray["gray_alpha.png"], gray)
    np.testing.assert_array_equal(as_gray["gray_16bit.png"], rgb[..., :1])  # 16 -> 8 bits
    for channel in range(3):  # a gray image fed to an RGB model: the gray level, three times
        np.testing.assert_array_equal(as_rgb["gray.png"][..., channel:channel + 1], gray)
    assert as_rgb["larger_size.png"].shape == as_rgb["smaller_size.png"].shape == (*SIZE, 3)


def broken_images(folder):
    good = IMAGES["rgb.png"](pixels(), folder / "good.png")
    (folder / "text.png").write_text("this is not a picture")
    return good


BAD_IMAGES = [
    ("text-named-png", lambda folder: (folder / "notes.png").write_text("not an image"),
     "notes.png", ["cannot read image", "notes.png", "Replace or delete the file"]),
    ("zero-byte-png", lambda folder: (folder / "empty.png").write_bytes(b""), "empty.png",
     ["cannot read image", "empty.png"]),
    ("truncated-png", lambda folder: (folder / "cut.png").write_bytes(
        IMAGES["rgb.png"](pixels(shape=(64, 64, 3)), folder / "whole.png").read_bytes()[:300]),
     "cut.png", ["cannot read image", "cut.png"]),
    ("one-bad-file-in-a-folder", broken_images, ".", ["cannot read image", "text.png"]),
    ("empty-folder", lambda folder: (folder / "empty").mkdir(), "empty",
     ["folder", "empty' has no images"]),
    ("folder-without-images", lambda folder: (folder / "notes.txt").write_text("x"), ".",
     ["has no images"]),
    ("glob-matching-nothing", lambda folder: None, "*.jpg", ["no image files", "match"]),
    ("unsupported-extension", lambda folder: save(Image.fromarray(pixels()),
                                                  folder / "scan.tiff"),
     "scan.tiff", ["scan.tiff' is not an image this model reads", ".png"]),
    ("a-table-to-an-image-model", lambda folder: (folder / "rows.csv").write_text("a\n1\n"),
     "rows.csv", ["rows.csv' is not an image this model reads"]),
    ("missing-path", lambda folder: None, "gone.png", ["image path not found", "gone.png"]),
]


@pytest.mark.parametrize(("make", "spec", "fragments"), [case[1:] for case in BAD_IMAGES],
                         ids=[case[0] for case in BAD_IMAGES])
def test_images_that_stop_with_one_error_line(image_runs, tmp_path, capsys, make, spec,
                                              fragments):
    folder = tmp_path / "photos"
    folder.mkdir()
    make(folder)
    output = tmp_path / "out.csv"
    code, _, lines = run_predict(capsys, image_runs["rgb"], folder / spec, "keras", "--output",
                                 output)
    assert code == 2, lines
    assert_one_error_line(lines, *fragments)
    assert "skip_bad_images" not in lines[0]  # training's option; predict has none
    assert not output.exists()
