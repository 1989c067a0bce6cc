"""Image data: a folder of class sub-folders, or a named dataset -> uint8 train / validation / test.

A folder holds one sub-folder per class; the sub-folder names, sorted, are the class names:

    pets/cat/1.png  pets/cat/2.jpg  pets/dog/a.bmp ...

Rules (the same for training, `--test-data` and prediction):

* Files read: `.png .jpg .jpeg .bmp .gif`, any letter case, found recursively inside each class
  folder. Other files are ignored with one warning line; hidden files and folders (`.name`) are
  ignored silently. A GIF contributes its first frame.
* Channels: 1 if every training image is grayscale (Pillow's mode is `1`, `L`, `LA`, `I` or
  `F`), else 3: grayscale images are repeated to RGB, and alpha channels are dropped.
* Size: `image_size` when given; otherwise the most common size among the training images,
  scaled down (keeping its aspect ratio) so its long side is at most `MAX_DEFAULT_SIDE` pixels.
  Every image is resized to it with `tf.image.resize` (bilinear, antialiased), then rounded to
  uint8. Named datasets keep their native size unless `image_size` is given.
* Corrupt or unreadable files: every file is checked with Pillow (`Image.verify`) before
  TensorFlow decodes anything, so the error names the file. The default is to stop with an
  `InputError` (a silently smaller training set is worse than a clear message); with
  `skip_bad_images=True` each such file is skipped with one warning line and listed in
  `ImageSplits.skipped`.
* Size limit: an image whose header claims more than `max_image_pixels` pixels (default
  Pillow's own limit, 89,478,485) stops the run before anything is decoded, or is skipped with
  `skip_bad_images`: a guard against decompression bombs (`datasets/limits.py`).

Decoding is one `tf.data` pipeline (`datasets/image_decoding.py`: read, `tf.io.decode_image`,
channels, resize; parallel map, batched, prefetched) run once; files TensorFlow's decoders refuse
but Pillow reads (1-bit BMPs) are converted to PNG first. Training then feeds the in-memory uint8
arrays through the engine's cached `tf.data` pipeline, so files are not decoded again every
epoch.
"""

from __future__ import annotations

import glob
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import ImageMode
from sklearn.model_selection import train_test_split

from common.errors import InputError
from datasets.image_decoding import SKIP_HINT, open_header, undecodable
from datasets.image_decoding import decode_files as _decode
from datasets.image_decoding import resize_array as _resize
from datasets.limits import DEFAULT_MAX_IMAGE_PIXELS, check_image_pixels
from datasets.named_images import NAMED_IMAGES
from datasets.tabular import warn

IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
TABLE_EXTENSIONS = (".csv", ".tsv")
MAX_DEFAULT_SIDE = 128
FOLDER_LAYOUT = "a folder with one sub-folder of images per class (e.g. pets/cat/1.png)"


@dataclass
class ImageSet:
    """Images of one split.

    Attributes:
        images: uint8 pixels, shape (N, height, width, channels).
        labels: int64 class ids, shape (N,); the index into `ImageSplits.labels`.
        files: The source of each image: its path, or `<dataset>#<index>` for a named dataset.
    """

    images: np.ndarray
    labels: np.ndarray
    files: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: np.ndarray) -> ImageSet:
        """The images at `indices`, in that order."""
        return ImageSet(self.images[indices], self.labels[indices],
                        [self.files[index] for index in indices])


@dataclass
class ImageSplits:
    """Train / validation / test images of one dataset, all at one size and channel count.

    Attributes:
        name: The dataset name, or the data folder's name.
        labels: Class names (sorted folder names); the index is the class id.
        image_size: `(height, width)` of every image.
        channels: 1 (grayscale) or 3 (RGB).
        train: Training images.
        validation: Images for early stopping and model selection.
        test: Held-out images for the final scores.
        skipped: Unreadable files skipped with `skip_bad_images=True`.
    """

    name: str
    labels: list[str]
    image_size: tuple[int, int]
    channels: int
    train: ImageSet
    validation: ImageSet
    test: ImageSet
    skipped: list[str] = field(default_factory=list)


def is_image_file(path: Path) -> bool:
    """Whether `path` has one of the `IMAGE_EXTENSIONS` (any letter case)."""
    return path.suffix.lower() in IMAGE_EXTENSIONS


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def _visible_files(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*")
                  if path.is_file() and not _hidden(path, folder))


def _check_folder(path: Path, flag: str) -> None:
    if path.is_dir():
        return
    if not path.exists():
        raise InputError(f"{flag} folder not found: '{path}'. Pass {FOLDER_LAYOUT}.")
    if path.suffix.lower() in TABLE_EXTENSIONS:
        raise InputError(f"{flag} '{path}' is a table (CSV), but the image task takes "
                         f"{FOLDER_LAYOUT}. For CSV data use python -m tasks.binary_classify, "
                         "tasks.multiclass_classify or tasks.regression.")
    raise InputError(f"{flag} '{path}' is a file, but the image task takes {FOLDER_LAYOUT}.")


def class_folders(root: Path, flag: str = "--data") -> dict[str, list[Path]]:
    """Lists the image files of each class folder of `root`, validating the layout.

    Args:
        root: A folder with one sub-folder of images per class.
        flag: How the user passed it (`--data`, `--test-data`), for messages.

    Returns:
        `{class name: image paths}`, classes and paths sorted.

    Raises:
        InputError: If `root` is missing, a file, empty, has no class sub-folders, or a class
            folder holds no images.
    """
    _check_folder(root, flag)
    entries = [path for path in root.iterdir() if not path.name.startswith(".")]
    if not entries:
        raise InputError(f"{flag} folder '{root}' is empty. Put one sub-folder of images per "
                         f"class in it (e.g. {root}/cat/1.png, {root}/dog/2.png).")
    folders = sorted(path for path in entries if path.is_dir())
    if not folders:
        raise InputError(f"{flag} folder '{root}' has no class sub-folders (it holds "
                         f"{len(entries)} file(s) directly). Move the images into one sub-folder "
                         "per class; the sub-folder names become the class names.")
    classes: dict[str, list[Path]] = {}
    ignored: list[Path] = []
    for folder in folders:
        files = _visible_files(folder)
        images = [path for path in files if is_image_file(path)]
        ignored += [path for path in files if not is_image_file(path)]
        if not images:
            raise InputError(
                f"class folder '{folder}' has no images ({len(files)} other file(s)); the image "
                f"task reads {' '.join(IMAGE_EXTENSIONS)} files. Add images to it or remove it.")
        classes[folder.name] = images
    if ignored:
        warn(f"ignored {len(ignored)} file(s) in '{root}' that are not "
             f"{'/'.join(IMAGE_EXTENSIONS)} images, e.g. '{ignored[0]}'.")
    return classes


@dataclass
class _Inspected:
    """What Pillow read from image headers: the readable files, their sizes and modes."""

    files: list[Path]
    sizes: list[tuple[int, int]]
    grayscale: list[bool]
    skipped: list[str]


def _inspect(paths: list[Path], skip_bad: bool,
             max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> _Inspected:
    """Checks every file with Pillow, decoding nothing; reads its size and mode.

    A file passes if it opens, has at most `max_pixels` pixels and its data verifies.
    """
    result = _Inspected([], [], [], [])
    for path in paths:
        try:
            with open_header(path) as image:
                width, height = image.size
                mode = image.mode
                check_image_pixels(path, width, height, max_pixels)
                image.verify()
        except InputError:
            if not skip_bad:
                raise
            warn(f"skipped image '{path}': {width}x{height} pixels, more than the limit of "
                 f"{max_pixels:,} (data.max_image_pixels).")
            result.skipped.append(str(path))
            continue
        except Exception as error:  # Pillow raises many types for broken files
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            if not skip_bad:
                raise InputError(f"cannot read image '{path}' ({reason}). Replace or delete the "
                                 f"file, {SKIP_HINT}.") from None
            warn(f"skipped unreadable image '{path}' ({reason}).")
            result.skipped.append(str(path))
            continue
        result.files.append(path)
        result.sizes.append((height, width))
        result.grayscale.append(ImageMode.getmode(mode).basemode == "L")
    return result


def default_image_size(sizes: list[tuple[int, int]]) -> tuple[int, int]:
    """The most common `(height, width)`, scaled down so the long side is <= MAX_DEFAULT_SIDE.

    Ties go to the size seen first.
    """
    height, width = Counter(sizes).most_common(1)[0][0]
    scale = min(1.0, MAX_DEFAULT_SIDE / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def _decode_inspected(inspected: _Inspected, image_size: tuple[int, int], channels: int,
                      skip_bad: bool) -> np.ndarray:
    """Decodes the files Pillow passed.

    With `skip_bad`, a file that passed Pillow's check but cannot be decoded (by TensorFlow, nor
    after Pillow's conversion) is skipped with a warning and removed from `inspected`, instead
    of stopping the run.
    """
    try:
        return _decode(inspected.files, image_size, channels)
    except InputError:
        if not skip_bad:
            raise
    failed = undecodable(inspected.files)
    for path, detail in failed.items():
        warn(f"skipped undecodable image '{path}' ({detail}).")
        inspected.skipped.append(str(path))
    kept = [index for index, path in enumerate(inspected.files) if path not in failed]
    inspected.files = [inspected.files[index] for index in kept]
    inspected.sizes = [inspected.sizes[index] for index in kept]
    inspected.grayscale = [inspected.grayscale[index] for index in kept]
    return _decode(inspected.files, image_size, channels)


def read_images(paths: list[Path] | list[str], image_size: tuple[int, int],
                channels: int) -> np.ndarray:
    """Reads image files exactly as training did, for prediction.

    Any mode Pillow and TensorFlow read is taken and converted as in training: grayscale
    (also 1-bit, 16-bit, with alpha) repeated to RGB for a color model, color averaged to gray
    for a grayscale one, alpha dropped, palettes and CMYK converted to RGB; any size is resized.

    Args:
        paths: Image files (e.g. from `image_files`).
        image_size: The model's `(height, width)` (`ImageSplits.image_size`).
        channels: The model's channels (`ImageSplits.channels`).

    Returns:
        uint8 pixels, shape (N, height, width, channels).

    Raises:
        InputError: If a file cannot be read or decoded; the message names it.

    Example:
        >>> pixels = read_images(image_files("new_photos/"), (64, 64), 3)
    """
    paths = [Path(path) for path in paths]
    try:
        _inspect(paths, skip_bad=False)
        return _decode(paths, tuple(image_size), channels)
    except InputError as error:  # prediction has no skipping: drop training's hint to it
        raise InputError(str(error).replace(f", {SKIP_HINT}", "")) from None


def image_files(spec: str) -> list[Path]:
    """The image files named by `spec`: one file, a folder (searched recursively) or a glob.

    Args:
        spec: A path to an image, a folder, or a glob pattern such as `photos/*.jpg` (`**`
            matches sub-folders).

    Returns:
        The matching image files, sorted.

    Raises:
        InputError: If nothing matches, or `spec` is a file that is not a supported image.

    Example:
        >>> image_files("new_photos/**/*.png")
    """
    path = Path(spec)
    supported = " ".join(IMAGE_EXTENSIONS)
    if path.is_file():
        if not is_image_file(path):
            raise InputError(f"'{path}' is not an image this model reads (supported: "
                             f"{supported}). Pass an image file, a folder of images or a glob.")
        return [path]
    if path.is_dir():
        files = [file for file in _visible_files(path) if is_image_file(file)]
        if not files:
            raise InputError(f"folder '{path}' has no images ({supported}). Pass a folder that "
                             "holds images, an image file or a glob.")
        return files
    if glob.has_magic(spec):
        files = sorted(Path(match) for match in glob.glob(spec, recursive=True)
                       if Path(match).is_file() and is_image_file(Path(match)))
        if not files:
            raise InputError(f"no image files ({supported}) match '{spec}'. Check the pattern.")
        return files
    raise InputError(f"image path not found: '{spec}'. Pass an image file, a folder of images or "
                     "a glob such as 'photos/*.jpg'.")


def images_needed_per_class(validation_fraction: float, test_fraction: float) -> int:
    """Images each class needs so a stratified split gives it one in every split (on average)."""
    smallest = validation_fraction * (1 - test_fraction)
    if test_fraction > 0:
        smallest = min(smallest, test_fraction)
    return max(2, math.ceil(round(1 / smallest, 6)))


def split_indices(
    ids: np.ndarray,
    labels: list[str],
    validation_fraction: float,
    test_fraction: float,
    seed: int,
    source: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded, stratified train / validation / test indices (test first, like tabular data).

    A `test_fraction` of 0 gives an empty test split (a test folder or official test set is used).

    Raises:
        InputError: If a class has too few images for every split to get some of it.
    """
    needed = images_needed_per_class(validation_fraction, test_fraction)
    counts = np.bincount(ids, minlength=len(labels))
    smallest = int(np.argmin(counts))
    if counts[smallest] < needed:
        parts = "train, validation and test" if test_fraction > 0 else "train and validation"
        raise InputError(
            f"class '{labels[smallest]}' of {source} has {counts[smallest]} image(s): too few for "
            f"a stratified split into {parts} (validation fraction {validation_fraction}, test "
            f"fraction {test_fraction}); each class needs at least {needed}. Add images"
            + (", or pass --test-data with a separate test folder." if test_fraction > 0 else "."))
    indices = np.arange(len(ids))
    rest, test = indices, indices[:0]
    if test_fraction > 0:
        rest, test = train_test_split(indices, test_size=test_fraction, random_state=seed,
                                      stratify=ids)
    train, validation = train_test_split(rest, test_size=validation_fraction, random_state=seed,
                                         stratify=ids[rest])
    return np.sort(train), np.sort(validation), np.sort(test)


def _check_image_size(image_size: tuple[int, int] | None) -> tuple[int, int] | None:
    if image_size is None:
        return None
    if len(image_size) != 2 or any(int(side) != side or side < 1 for side in image_size):
        raise InputError("image size takes two whole numbers >= 1, height and width (e.g. "
                         f"--image-size 64 64). Received: {image_size!r}")
    return int(image_size[0]), int(image_size[1])


@dataclass
class _Source:
    """A dataset before splitting: all its images, and its own test split if it has one."""

    name: str
    labels: list[str]
    image_size: tuple[int, int]
    channels: int
    images: ImageSet
    test: ImageSet | None = None
    skipped: list[str] = field(default_factory=list)


def _from_name(name: str, image_size: tuple[int, int] | None) -> _Source:
    arrays = NAMED_IMAGES[name].load()
    size = image_size or tuple(arrays.images.shape[1:3])
    prefix = "train-" if arrays.test_images is not None else ""
    source = _Source(name, arrays.labels, size, int(arrays.images.shape[-1]), ImageSet(
        _resize(arrays.images, size), arrays.ids,
        [f"{name}#{prefix}{index}" for index in range(len(arrays.ids))]))
    if arrays.test_images is not None:
        source.test = ImageSet(_resize(arrays.test_images, size), arrays.test_ids,
                               [f"{name}#test-{index}" for index in range(len(arrays.test_ids))])
    return source


def _from_folder(data: str, image_size: tuple[int, int] | None, skip_bad: bool,
                 max_pixels: int) -> _Source:
    root = Path(data)
    if not root.exists() and len(root.parts) == 1 and not root.suffix:
        raise InputError(f"'{data}' is neither an image dataset name ({', '.join(NAMED_IMAGES)}) "
                         f"nor an existing folder. Pass a dataset name or {FOLDER_LAYOUT}.")
    classes = class_folders(root)
    if len(classes) < 2:
        raise InputError(f"--data folder '{root}' has one class folder ('{next(iter(classes))}'); "
                         "a classifier needs at least two. Add one sub-folder of images per "
                         "class.")
    labels = list(classes)
    inspected = _inspect([path for images in classes.values() for path in images], skip_bad,
                         max_pixels)
    _check_every_class_kept(classes, inspected, root)
    channels = 1 if all(inspected.grayscale) else 3
    size = image_size or default_image_size(inspected.sizes)
    pixels = _decode_inspected(inspected, size, channels, skip_bad)
    ids = _check_every_class_kept(classes, inspected, root)
    images = ImageSet(pixels, ids, [str(path) for path in inspected.files])
    return _Source(root.resolve().name, labels, size, channels, images,
                   skipped=inspected.skipped)


def _check_every_class_kept(classes: dict[str, list[Path]], inspected: _Inspected,
                            root: Path) -> np.ndarray:
    """The class id of each kept file; an error if skipping emptied a class."""
    kept = set(inspected.files)
    ids = np.asarray([label for label, images in enumerate(classes.values())
                      for path in images if path in kept], dtype="int64")
    empty = [name for label, name in enumerate(classes) if label not in set(ids.tolist())]
    if empty:
        raise InputError(f"class folder '{root / empty[0]}' has no readable images after "
                         "skipping the unreadable ones. Add images to it or remove it.")
    return ids


def _test_folder(test_data: str, labels: list[str], image_size: tuple[int, int], channels: int,
                 skip_bad: bool, max_pixels: int) -> tuple[ImageSet, list[str]]:
    classes = class_folders(Path(test_data), "--test-data")
    unknown = [name for name in classes if name not in labels]
    if unknown:
        raise InputError(f"--test-data '{test_data}' has class folder(s) not in the training "
                         f"data: {', '.join(unknown)} (training classes: {', '.join(labels)}). "
                         "Rename or remove them, or add them to the training data.")
    paths = [path for images in classes.values() for path in images]
    ids = [labels.index(name) for name, images in classes.items() for _ in images]
    inspected = _inspect(paths, skip_bad, max_pixels)
    images = _decode_inspected(inspected, image_size, channels, skip_bad)
    kept = set(inspected.files)
    ids = np.asarray([label for path, label in zip(paths, ids, strict=True) if path in kept],
                     dtype="int64")
    return ImageSet(images, ids, [str(path) for path in inspected.files]), inspected.skipped


def load_images(
    data: str,
    test_data: str | None = None,
    image_size: tuple[int, int] | None = None,
    validation_fraction: float = 0.2,
    test_fraction: float = 0.2,
    seed: int = 0,
    skip_bad_images: bool = False,
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
) -> ImageSplits:
    """Loads, validates and splits an image folder or a named image dataset.

    Args:
        data: A named dataset (`digits`, `mnist`, `fashion_mnist`, `cifar10`) or a folder with
            one sub-folder of images per class.
        test_data: Optional folder of held-out images in the same layout; its classes must be
            training classes (a subset is fine). Then `data` is split into train and validation.
        image_size: `(height, width)` to resize to; see the module docstring for the default.
        validation_fraction: Fraction of the non-test images used for validation.
        test_fraction: Fraction of all images held out for test (ignored with `test_data` and
            for datasets with an official test split).
        seed: Seed of the split.
        skip_bad_images: Skip unreadable files with a warning instead of stopping.
        max_image_pixels: Refuse (or with `skip_bad_images` skip) an image with more pixels,
            before decoding it (`datasets.limits`: decompression bombs).

    Returns:
        The splits, as uint8 arrays in memory.

    Raises:
        InputError: For a bad folder layout, an unreadable or too large image, a single class,
            or too few images per class to split; the message names the folder or file and the
            fix.

    Example:
        >>> splits = load_images("digits", seed=0)
        >>> splits.train.images.shape, splits.labels[:3]
        ((1149, 8, 8, 1), ['0', '1', '2'])
    """
    image_size = _check_image_size(image_size)
    source = (_from_name(data, image_size) if data in NAMED_IMAGES
              else _from_folder(data, image_size, skip_bad_images, max_image_pixels))
    test = source.test
    if test_data is not None:
        test, test_skipped = _test_folder(test_data, source.labels, source.image_size,
                                          source.channels, skip_bad_images, max_image_pixels)
        source.skipped += test_skipped
    everything = source.images
    train, validation, held_out = split_indices(
        everything.labels, source.labels, validation_fraction,
        0.0 if test is not None else test_fraction, seed, f"'{data}'")
    return ImageSplits(
        name=source.name, labels=source.labels, image_size=source.image_size,
        channels=source.channels, train=everything.subset(train),
        validation=everything.subset(validation),
        test=test if test is not None else everything.subset(held_out), skipped=source.skipped)
