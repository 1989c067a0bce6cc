"""Image datasets known by name: scikit-learn's bundled `digits` and three `keras.datasets` sets.

`digits` ships inside scikit-learn's wheel, so it works offline and is the image task's default.
`mnist`, `fashion_mnist` and `cifar10` are downloaded by Keras on first use and cached under
`$KERAS_HOME/datasets` (default `~/.keras/datasets`); without a network and without the cached
file, loading one is an `InputError` that says where to put the file.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.errors import InputError

KERAS_ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
DIGITS = [str(digit) for digit in range(10)]


@dataclass
class NamedArrays:
    """A named dataset as arrays.

    Attributes:
        labels: Class names; the index is the class id.
        images: uint8 images, shape (N, H, W, C).
        ids: int64 class ids, shape (N,).
        test_images: The dataset's official test images, or None when it has no split of its own.
        test_ids: Class ids of `test_images`, or None.
    """

    labels: list[str]
    images: np.ndarray
    ids: np.ndarray
    test_images: np.ndarray | None = None
    test_ids: np.ndarray | None = None


@dataclass(frozen=True)
class NamedImages:
    """An image dataset known by name.

    Attributes:
        load: Returns the dataset as `NamedArrays`.
        description: One line for `--help` and reports.
    """

    load: Callable[[], NamedArrays]
    description: str


def _digits() -> NamedArrays:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    # Pixel values are 0..16 counts; scale them to the 0..255 of every other image source.
    images = np.rint(bunch.images * (255.0 / 16.0)).astype("uint8")[..., np.newaxis]
    return NamedArrays(DIGITS, images, bunch.target.astype("int64"))


def keras_cache(file: str) -> Path:
    """Where `keras.utils.get_file` looks for a cached dataset file (`$KERAS_HOME/datasets`)."""
    return Path(os.environ.get("KERAS_HOME", "~/.keras")).expanduser() / "datasets" / file


@dataclass(frozen=True)
class KerasDownload:
    """Where a `keras.datasets` loader downloads from, and its cache files (under `datasets/`)."""

    module: str
    urls: tuple[str, ...]
    files: tuple[str, ...]
    labels: tuple[str, ...]


FASHION_FILES = ("train-labels-idx1-ubyte.gz", "train-images-idx3-ubyte.gz",
                 "t10k-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz")
KERAS_DOWNLOADS = {
    "mnist": KerasDownload("mnist", (f"{KERAS_ORIGIN}mnist.npz",), ("mnist.npz",), tuple(DIGITS)),
    "fashion_mnist": KerasDownload(
        "fashion_mnist", tuple(f"{KERAS_ORIGIN}{name}" for name in FASHION_FILES),
        tuple(f"fashion-mnist/{name}" for name in FASHION_FILES),
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
         "Bag", "Ankle boot")),
    # Keras saves the tarball under this name and extracts it beside it.
    "cifar10": KerasDownload(
        "cifar10", ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
        ("cifar-10-batches-py-target_archive",),
        ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
         "truck")),
}


def _as_images(array: np.ndarray) -> np.ndarray:
    array = np.asarray(array, dtype="uint8")
    return array[..., np.newaxis] if array.ndim == 3 else array


def load_keras_dataset(name: str) -> NamedArrays:
    """Loads `keras.datasets.<name>` with its official train / test split.

    Raises:
        InputError: If the files are neither cached nor downloadable; the message names the
            download URL, the cache path to put the file at, and the image-folder alternative.
    """
    import keras

    download = KERAS_DOWNLOADS[name]
    try:
        (x_train, y_train), (x_test, y_test) = getattr(keras.datasets, download.module).load_data()
    except Exception as error:  # Keras raises a bare Exception for a failed download
        detail = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        places = "; ".join(f"{url} -> {keras_cache(file)}" for url, file in zip(
            download.urls, download.files, strict=True))
        raise InputError(
            f"could not load dataset '{name}' through keras.datasets ({detail}). Without network "
            f"access, download on another machine and copy to the Keras cache: {places}. Or pass "
            "--data with an image folder (one sub-folder per class)."
        ) from None
    return NamedArrays(list(download.labels), _as_images(x_train),
                       np.asarray(y_train, "int64").reshape(-1), _as_images(x_test),
                       np.asarray(y_test, "int64").reshape(-1))


NAMED_IMAGES: dict[str, NamedImages] = {
    "digits": NamedImages(_digits, "scikit-learn's bundled 8x8 handwritten digits (1,797 images, "
                                   "10 classes); works offline"),
    "mnist": NamedImages(lambda: load_keras_dataset("mnist"),
                         "28x28 handwritten digits (70,000 images) via keras.datasets; online"),
    "fashion_mnist": NamedImages(lambda: load_keras_dataset("fashion_mnist"),
                                 "28x28 clothing images (70,000, 10 classes) via keras.datasets; "
                                 "online"),
    "cifar10": NamedImages(lambda: load_keras_dataset("cifar10"),
                           "32x32 colour photos (60,000, 10 classes) via keras.datasets; online"),
}
