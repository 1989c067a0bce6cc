"""Tests of `datasets.images`: image folders and named image sets -> validated uint8 splits."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from common.errors import InputError
from datasets import image_decoding
from datasets.images import (
    ImageSplits,
    default_image_size,
    image_files,
    images_needed_per_class,
    load_images,
    read_images,
)
from datasets.synthetic_images import generate_image_folder

CLASSES = ("ant", "bee", "cat", "dog")
PER_CLASS = 8  # the fewest a class needs for the default 0.2 / 0.2 split: 1 / (0.2 * 0.8) -> 7


def _pixels(seed: int, size=(12, 12), mode="RGB") -> Image.Image:
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "RGBA": 4}.get(mode)
    shape = size if channels is None else (*size, channels)
    return Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode=mode)


def make_folder(root, classes=CLASSES, per_class=PER_CLASS, mode=lambda c, i: "RGB",
                size=lambda c, i: (12, 12), suffix=lambda c, i: ".png"):
    """Writes `root/<class>/<i><suffix>`; mode, size and suffix may vary per image."""
    for c, name in enumerate(classes):
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            image = _pixels(100 * c + i, size(c, i), "L" if mode(c, i) == "L" else "RGB")
            if mode(c, i) == "RGBA":
                image = image.convert("RGBA")
            image.save(folder / f"{i}{suffix(c, i)}")
    return root


@pytest.fixture
def rgb_folder(tmp_path):
    return make_folder(tmp_path / "pets")


def _all_files(splits: ImageSplits) -> list[str]:
    return splits.train.files + splits.validation.files + splits.test.files


def test_folder_loads_uint8_splits_with_sorted_class_names(rgb_folder):
    splits = load_images(str(rgb_folder), seed=0)
    assert splits.name == "pets"
    assert splits.labels == list(CLASSES)
    assert splits.image_size == (12, 12)
    assert splits.channels == 3
    for part in (splits.train, splits.validation, splits.test):
        assert part.images.dtype == np.uint8
        assert part.images.shape[1:] == (12, 12, 3)
        assert part.labels.dtype == np.int64
        assert len(part.images) == len(part.labels) == len(part.files) > 0
        assert set(part.labels.tolist()) == {0, 1, 2, 3}  # stratified: every class in every split
    assert sorted(_all_files(splits)) == sorted(str(path) for path in rgb_folder.rglob("*.png"))


def test_pixels_of_a_png_at_its_own_size_are_unchanged(rgb_folder):
    splits = load_images(str(rgb_folder), seed=0)
    index = 0
    expected = np.asarray(Image.open(splits.train.files[index]))
    np.testing.assert_array_equal(splits.train.images[index], expected)
    assert splits.train.labels[index] == CLASSES.index(
        splits.train.files[index].split("/")[-2])


def test_mixed_grayscale_and_rgb_give_three_channels(tmp_path):
    root = make_folder(tmp_path / "mixed", mode=lambda c, i: "L" if i % 2 else "RGB")
    splits = load_images(str(root), seed=0)
    assert splits.channels == 3
    gray = [index for index, file in enumerate(splits.train.files)
            if Image.open(file).mode == "L"]
    image = splits.train.images[gray[0]]
    # A grayscale image is repeated into R, G and B.
    np.testing.assert_array_equal(image[..., 0], image[..., 1])
    source = np.asarray(Image.open(splits.train.files[gray[0]]))
    np.testing.assert_array_equal(image[..., 0], source)


def test_all_grayscale_gives_one_channel(tmp_path):
    root = make_folder(tmp_path / "gray", mode=lambda c, i: "L",
                       suffix=lambda c, i: [".png", ".bmp", ".jpg"][i % 3])
    splits = load_images(str(root), seed=0)
    assert splits.channels == 1
    assert splits.train.images.shape[1:] == (12, 12, 1)


def test_alpha_is_dropped(tmp_path):
    root = make_folder(tmp_path / "alpha", mode=lambda c, i: "RGBA")
    splits = load_images(str(root), seed=0)
    assert splits.channels == 3
    expected = np.asarray(Image.open(splits.train.files[0]))[..., :3]
    np.testing.assert_array_equal(splits.train.images[0], expected)


def test_mixed_sizes_are_resized_to_the_most_common(tmp_path):
    root = make_folder(tmp_path / "sizes", size=lambda c, i: (12, 12) if i % 4 else (20, 9),
                       suffix=lambda c, i: [".png", ".JPG", ".gif", ".jpeg"][i % 4])
    splits = load_images(str(root), seed=0)
    assert splits.image_size == (12, 12)
    assert splits.train.images.shape[1:] == (12, 12, 3)


def test_image_size_argument_resizes_everything(rgb_folder):
    splits = load_images(str(rgb_folder), image_size=(6, 10), seed=0)
    assert splits.image_size == (6, 10)
    assert splits.test.images.shape[1:] == (6, 10, 3)


def test_default_size_rule_caps_the_long_side():
    assert default_image_size([(30, 40), (30, 40), (50, 50)]) == (30, 40)
    assert default_image_size([(600, 800)]) == (96, 128)
    assert default_image_size([(1000, 10)]) == (128, 1)


def test_unsupported_and_hidden_files_are_ignored_with_one_warning(rgb_folder, capsys):
    (rgb_folder / "ant" / "notes.txt").write_text("not an image")
    (rgb_folder / "bee" / "scan.tiff").write_bytes(b"II*\x00")
    (rgb_folder / "cat" / ".DS_Store").write_bytes(b"\x00\x01")
    (rgb_folder / ".cache").mkdir()
    splits = load_images(str(rgb_folder), seed=0)
    assert len(_all_files(splits)) == len(CLASSES) * PER_CLASS
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warnings) == 1
    assert "ignored 2 file(s)" in warnings[0]


def test_class_folders_may_nest_images(tmp_path):
    root = make_folder(tmp_path / "nested")
    (root / "ant" / "more").mkdir()
    _pixels(999).save(root / "ant" / "more" / "extra.png")
    splits = load_images(str(root), seed=0)
    assert any(file.endswith("more/extra.png") for file in _all_files(splits))


def test_split_is_seeded_disjoint_and_stratified(rgb_folder):
    first = load_images(str(rgb_folder), seed=3)
    again = load_images(str(rgb_folder), seed=3)
    other = load_images(str(rgb_folder), seed=4)
    assert first.test.files == again.test.files
    assert first.validation.files == again.validation.files
    assert first.test.files != other.test.files
    parts = [set(first.train.files), set(first.validation.files), set(first.test.files)]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert len(first.test) == 7  # ceil(0.2 * 32) images held out first
    np.testing.assert_array_equal(np.bincount(first.train.labels), [5, 5, 5, 5])


def test_digits_by_name():
    splits = load_images("digits", seed=0)
    assert splits.name == "digits"
    assert splits.labels == [str(digit) for digit in range(10)]
    assert splits.image_size == (8, 8)
    assert splits.channels == 1
    assert splits.train.images.shape[1:] == (8, 8, 1)
    assert splits.train.images.dtype == np.uint8
    assert splits.train.images.max() == 255  # 16 (sklearn's maximum) * 255 / 16
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (1149, 288, 360)
    assert splits.train.files[0].startswith("digits#")


def test_digits_pixels_are_scaled_from_0_16():
    from sklearn.datasets import load_digits

    splits = load_images("digits", seed=0)
    index = int(splits.test.files[0].split("#")[1])
    raw = load_digits().images[index]
    np.testing.assert_array_equal(splits.test.images[0, ..., 0], np.rint(raw * 255 / 16))


def test_named_dataset_takes_an_image_size():
    splits = load_images("digits", image_size=(16, 16), seed=0)
    assert splits.train.images.shape[1:] == (16, 16, 1)


def test_keras_dataset_offline_names_the_cache_path(monkeypatch, tmp_path):
    import keras

    def offline():
        raise Exception("URL fetch failure on https://example/mnist.npz: None -- no network")

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    monkeypatch.setattr(keras.datasets.mnist, "load_data", offline)
    with pytest.raises(InputError) as error:
        load_images("mnist")
    message = str(error.value)
    assert str(tmp_path / "keras-home" / "datasets" / "mnist.npz") in message
    assert "mnist.npz" in message and "image folder" in message


def test_keras_dataset_uses_its_official_test_split(monkeypatch):
    import keras

    rng = np.random.default_rng(0)
    train = (rng.integers(0, 256, (50, 28, 28), dtype=np.uint8), np.arange(50) % 10)
    test = (rng.integers(0, 256, (20, 28, 28), dtype=np.uint8), np.arange(20) % 10)
    monkeypatch.setattr(keras.datasets.mnist, "load_data", lambda: (train, test))
    splits = load_images("mnist", seed=0)
    assert len(splits.test) == 20
    assert len(splits.train) + len(splits.validation) == 50
    assert splits.channels == 1
    np.testing.assert_array_equal(splits.test.images[..., 0], test[0])


def test_test_data_folder_is_the_test_set(rgb_folder, tmp_path):
    test_root = make_folder(tmp_path / "held_out", classes=("bee", "dog"), per_class=2,
                            mode=lambda c, i: "L", size=lambda c, i: (24, 24))
    splits = load_images(str(rgb_folder), test_data=str(test_root), seed=0)
    assert len(splits.test) == 4
    assert splits.test.images.shape[1:] == (12, 12, 3)  # the training size and channels
    assert splits.test.labels.tolist() == [1, 1, 3, 3]  # ids of the training classes
    assert len(splits.train) + len(splits.validation) == len(CLASSES) * PER_CLASS


def test_test_data_with_an_unknown_class_is_an_error(rgb_folder, tmp_path):
    test_root = make_folder(tmp_path / "held_out", classes=("bee", "emu"), per_class=1)
    with pytest.raises(InputError, match=r"'.*held_out' has class folder\(s\) not in the "
                                         r"training data: emu \(training classes: ant, bee"):
        load_images(str(rgb_folder), test_data=str(test_root))


def test_read_images_reproduces_the_training_decode(tmp_path):
    root = make_folder(tmp_path / "mixed", mode=lambda c, i: "L" if i % 3 == 0 else "RGB",
                       size=lambda c, i: (12, 12) if i % 2 else (17, 15),
                       suffix=lambda c, i: ".jpg" if i % 2 else ".png")
    splits = load_images(str(root), seed=0)
    again = read_images(splits.train.files, splits.image_size, splits.channels)
    np.testing.assert_array_equal(again, splits.train.images)


def test_read_images_names_a_corrupt_file(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(InputError, match=r"cannot read image '.*bad.png'"):
        read_images([bad], (8, 8), 1)


def test_image_files_takes_a_file_a_folder_or_a_glob(rgb_folder):
    one = rgb_folder / "ant" / "0.png"
    assert image_files(str(one)) == [one]
    (rgb_folder / "ant" / "notes.txt").write_text("skip me")
    assert len(image_files(str(rgb_folder))) == len(CLASSES) * PER_CLASS
    assert image_files(str(rgb_folder / "bee" / "*.png")) == sorted(
        (rgb_folder / "bee").glob("*.png"))
    assert len(image_files(str(rgb_folder / "**" / "1.png"))) == len(CLASSES)


@pytest.mark.parametrize(("spec", "message"), [
    ("missing/*.png", r"no image files .* match 'missing/\*.png'"),
    ("no_such_photo.png", r"image path not found: 'no_such_photo.png'"),
])
def test_image_files_errors(spec, message):
    with pytest.raises(InputError, match=message):
        image_files(spec)


def test_image_files_rejects_a_csv_and_an_empty_folder(tmp_path):
    table = tmp_path / "rows.csv"
    table.write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match=r"'.*rows.csv' is not an image this model reads"):
        image_files(str(table))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"folder '.*empty' has no images"):
        image_files(str(tmp_path / "empty"))


# --- every way a folder can be wrong: one InputError (exit 2) naming the folder or file ---

def test_missing_folder(tmp_path):
    with pytest.raises(InputError, match=r"--data folder not found: '.*nowhere'"):
        load_images(str(tmp_path / "nowhere"))


def test_unknown_name_lists_the_named_datasets():
    with pytest.raises(InputError, match=r"'digitz' is neither an image dataset name "
                                         r"\(digits, mnist, fashion_mnist, cifar10\)"):
        load_images("digitz")


def test_csv_given_to_the_image_task(tmp_path):
    table = tmp_path / "houses.csv"
    table.write_text("rooms,price\n3,100\n")
    with pytest.raises(InputError) as error:
        load_images(str(table))
    message = str(error.value)
    assert "houses.csv" in message and "one sub-folder of images per class" in message
    assert "tasks.binary_classify" in message and "tasks.regression" in message


def test_a_file_that_is_not_a_folder(tmp_path):
    photo = tmp_path / "photo.png"
    _pixels(0).save(photo)
    with pytest.raises(InputError, match=r"'.*photo.png' is a file, but the image task takes"):
        load_images(str(photo))


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"--data folder '.*empty' is empty"):
        load_images(str(tmp_path / "empty"))


def test_images_without_class_folders(tmp_path):
    root = tmp_path / "flat"
    root.mkdir()
    _pixels(0).save(root / "a.png")
    with pytest.raises(InputError, match=r"'.*flat' has no class sub-folders \(it holds 1 "
                                         r"file\(s\) directly\)"):
        load_images(str(root))


def test_a_single_class(tmp_path):
    root = make_folder(tmp_path / "one", classes=("ant",))
    with pytest.raises(InputError, match=r"'.*one' has one class folder \('ant'\); a classifier "
                                         "needs at least two"):
        load_images(str(root))


def test_a_class_folder_without_images(rgb_folder):
    (rgb_folder / "eel").mkdir()
    (rgb_folder / "eel" / "readme.txt").write_text("no images here")
    with pytest.raises(InputError, match=r"class folder '.*eel' has no images \(1 other file"):
        load_images(str(rgb_folder))


@pytest.mark.parametrize("corruption", ["garbage", "truncated_png", "truncated_jpeg"])
def test_a_corrupt_image_stops_the_run_and_names_the_file(rgb_folder, corruption):
    if corruption == "garbage":
        bad = rgb_folder / "cat" / "broken.png"
        bad.write_bytes(b"this is not an image")
    else:
        suffix = ".png" if corruption == "truncated_png" else ".jpg"
        bad = rgb_folder / "cat" / f"broken{suffix}"
        _pixels(7, (40, 40)).save(bad)
        bad.write_bytes(bad.read_bytes()[:200])
    with pytest.raises(InputError) as error:
        load_images(str(rgb_folder))
    message = str(error.value)
    assert f"cannot read image '{bad}'" in message
    assert "skip_bad_images" in message


def test_skip_bad_images_skips_with_one_warning_per_file(rgb_folder, capsys):
    for name in ("bad1.png", "bad2.jpg"):
        (rgb_folder / "dog" / name).write_bytes(b"junk")
    splits = load_images(str(rgb_folder), seed=0, skip_bad_images=True)
    assert sorted(splits.skipped) == sorted(str(rgb_folder / "dog" / name)
                                            for name in ("bad1.png", "bad2.jpg"))
    assert len(_all_files(splits)) == len(CLASSES) * PER_CLASS
    warnings = capsys.readouterr().err.splitlines()
    assert sum("skipped unreadable image" in line for line in warnings) == 2


def test_skipping_every_image_of_a_class_is_an_error(rgb_folder):
    for path in (rgb_folder / "dog").iterdir():
        path.write_bytes(b"junk")
    with pytest.raises(InputError, match=r"class folder '.*dog' has no readable images"):
        load_images(str(rgb_folder), skip_bad_images=True)


def test_too_few_images_per_class_says_how_many_are_needed(tmp_path):
    root = make_folder(tmp_path / "few", per_class=PER_CLASS)
    for path in sorted((root / "bee").iterdir())[3:]:
        path.unlink()
    with pytest.raises(InputError, match=r"class 'bee' of '.*few' has 3 image\(s\): too few .* "
                                         r"each class needs at least 7. Add images, or pass "
                                         "--test-data"):
        load_images(str(root))


def test_images_needed_per_class():
    assert images_needed_per_class(0.2, 0.2) == 7
    assert images_needed_per_class(0.2, 0.0) == 5
    assert images_needed_per_class(0.5, 0.0) == 2


def test_bad_image_size_is_an_input_error(rgb_folder):
    with pytest.raises(InputError, match="image size takes two whole numbers"):
        load_images(str(rgb_folder), image_size=(0, 12))


def test_a_file_tensorflow_refuses_is_decoded_through_a_png_copy(rgb_folder, monkeypatch):
    # Pillow accepts the file; make TensorFlow's decoder refuse it (as it refuses a 1-bit BMP):
    # Pillow converts it to PNG in a temporary folder, with the same pixels.
    import tensorflow as tf

    before = load_images(str(rgb_folder), seed=0)
    target = str(rgb_folder / "ant" / "3.png")
    real = tf.io.read_file

    def read_file(path):
        return tf.where(tf.equal(path, target), tf.constant(b"junk"), real(path))

    monkeypatch.setattr(image_decoding.tf.io, "read_file", read_file)
    after = load_images(str(rgb_folder), seed=0)
    assert after.train.files == before.train.files
    np.testing.assert_array_equal(after.train.images, before.train.images)
    assert sorted(path.suffix for path in rgb_folder.rglob("*.*")) == [".png"] * 32  # no copy


def test_generated_folder_mixes_formats_modes_and_sizes(tmp_path):
    root = generate_image_folder(tmp_path / "shapes", classes=3, per_class=12, size=16, seed=0)
    files = sorted(root.rglob("*.*"))
    assert {path.suffix for path in files} == {".png", ".jpg"}
    modes = {Image.open(path).mode for path in files}
    assert modes == {"RGB", "L"}
    assert len({Image.open(path).size for path in files}) > 1
    again = generate_image_folder(tmp_path / "again", classes=3, per_class=12, size=16, seed=0)
    assert [path.read_bytes() for path in files] == [
        path.read_bytes() for path in sorted(again.rglob("*.*"))]
    splits = load_images(str(root), seed=0)
    assert splits.channels == 3 and splits.image_size == (16, 16)
    assert splits.labels == ["circle", "square", "triangle"]


# Image files the fuzzed battery (tests/test_fuzz_inputs.py) covers, kept as regular cases ----


def _jpeg_cut_mid_scan(path):
    _pixels(5, (40, 40)).save(path, format="JPEG")
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * 0.9)])  # Pillow's header check passes, decoding fails


@pytest.mark.parametrize(("write", "fragments"), [
    pytest.param(lambda path: path.with_suffix(".png").write_bytes(b""),
                 ["cannot read image", ".png'"], id="zero_bytes"),
    pytest.param(lambda path: path.with_suffix(".png").write_text("<html>not an image</html>"),
                 ["cannot read image", "cannot identify image file"], id="text_named_png"),
    pytest.param(lambda path: _jpeg_cut_mid_scan(path.with_suffix(".jpg")),
                 ["cannot decode image", "TensorFlow: jpeg::Uncompress failed",
                  "Pillow: image file is truncated"], id="jpeg_cut_mid_scan"),
    pytest.param(lambda path: path.with_suffix(".gif").write_bytes(b"GIF89a\x10\x00\x10\x00"),
                 ["cannot read image", ".gif'"], id="gif_header_only"),
])
def test_a_broken_image_is_one_line_naming_the_file_and_skippable(rgb_folder, capsys, write,
                                                                  fragments):
    write(rgb_folder / "bee" / "broken")
    bad = next((rgb_folder / "bee").glob("broken.*"))
    with pytest.raises(InputError) as info:
        load_images(str(rgb_folder))
    message = str(info.value)
    assert len(message.splitlines()) == 1
    for fragment in fragments + [str(bad), "skip_bad_images=true"]:
        assert fragment in message, (fragment, message)
    capsys.readouterr()
    splits = load_images(str(rgb_folder), skip_bad_images=True)
    assert splits.skipped == [str(bad)]
    assert len(_all_files(splits)) == len(CLASSES) * PER_CLASS
    assert len(capsys.readouterr().err.strip().splitlines()) == 1  # one warning


def _save(mode: str, image_format: str):
    def save(path):
        pixels = _pixels(3, (10, 10))
        image = (Image.fromarray(np.asarray(pixels.convert("L"), dtype=np.uint16) * 257)
                 if mode == "I;16" else pixels.convert(mode))
        image.save(path, format=image_format)
    return save


@pytest.mark.parametrize(("mode", "image_format", "suffix", "channels"), [
    pytest.param("1", "BMP", ".bmp", 1, id="one_bit_bmp"),  # TensorFlow refuses it: Pillow
    pytest.param("L", "BMP", ".bmp", 1, id="gray_bmp"),
    pytest.param("P", "BMP", ".bmp", 3, id="palette_bmp"),
    pytest.param("CMYK", "JPEG", ".jpg", 3, id="cmyk_jpeg"),
    pytest.param("I;16", "PNG", ".png", 1, id="sixteen_bit_png"),
    pytest.param("LA", "PNG", ".png", 1, id="gray_alpha_png"),
    pytest.param("P", "GIF", ".gif", 3, id="gif"),
    pytest.param("RGB", "JPEG", ".png", 3, id="jpeg_named_png"),
])
def test_image_variants_that_just_work(tmp_path, mode, image_format, suffix, channels):
    for name in ("ant", "bee"):
        (tmp_path / "data" / name).mkdir(parents=True)
        for index in range(PER_CLASS):
            _save(mode, image_format)(tmp_path / "data" / name / f"{index}{suffix}")
    splits = load_images(str(tmp_path / "data"), seed=0)
    assert splits.channels == channels and splits.image_size == (10, 10)
    assert splits.train.images.dtype == np.uint8 and splits.train.images.shape[-1] == channels
    # Each image has the pixels Pillow reads from the file (its palette applied, 16 bits scaled
    # to 8), within the rounding of two JPEG decoders.
    tolerance = 8 if image_format == "JPEG" else 1
    for index, file in enumerate(splits.train.files):
        with Image.open(file) as image:
            if mode == "I;16":
                expected = np.asarray(image, dtype=float) / 257
            else:
                expected = np.asarray(image.convert("L" if channels == 1 else "RGB"), dtype=float)
        difference = np.abs(splits.train.images[index].astype(float)
                            - expected.reshape(10, 10, channels))
        assert difference.max() <= tolerance, (file, difference.max())
