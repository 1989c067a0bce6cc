"""Image files -> uint8 arrays of one size and channel count, decoded by TensorFlow.

Decoding is one `tf.data` pipeline (read, `tf.io.decode_image`, channels, resize; parallel map,
batched, prefetched). TensorFlow's decoders take fewer variants than Pillow, which checked every
file first: a 1-bit or 4-bit BMP is refused ("Number of channels inherent in the image must be
1, 3 or 4, was 0"), and an 8-bit color BMP comes out as its palette indices, a gray picture of
noise. Palette BMPs, and any file TensorFlow refuses, are converted to PNG by Pillow in a
temporary folder (never next to the user's files) and decoded from there, so every image Pillow
reads trains, in its own colors.
"""

from __future__ import annotations

import io
import re
import tempfile
from contextlib import AbstractContextManager
from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image, ImageMode

from common import native_output
from common.errors import InputError

DECODE_BATCH = 256
# How a user turns on skipping of unreadable images; named in the stop message.
SKIP_HINT = "or skip unreadable images with a warning: --set data.skip_bad_images=true"


def open_header(path: Path) -> Image.Image:
    """Opens an image with Pillow, reading only its header.

    Pillow's own decompression-bomb check is off here: the loaders apply the configured limit
    (`datasets.limits.check_image_pixels`) with a message that names the file. Pillow's default
    would refuse an image above 2 x 89 megapixels before its size is known, whatever the setting.
    """
    previous, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        return Image.open(path)
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def to_uint8(images: tf.Tensor) -> tf.Tensor:
    """Rounds and clips float pixels to uint8."""
    return tf.cast(tf.round(tf.clip_by_value(images, 0.0, 255.0)), tf.uint8)


def decode_contents(contents: tf.Tensor, image_size: tuple[int, int],
                    channels: int) -> tf.Tensor:
    """One file's bytes -> uint8 (height, width, channels): decode, fix channels, resize, round."""
    image = tf.io.decode_image(contents, expand_animations=False)
    image = tf.cast(image, tf.float32)
    # Decoded channels: 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA); alpha is dropped.
    gray = tf.shape(image)[-1] < 3
    if channels == 1:
        image = tf.cond(gray, lambda: image[..., :1],
                        lambda: tf.image.rgb_to_grayscale(image[..., :3]))
    else:
        image = tf.cond(gray, lambda: tf.tile(image[..., :1], [1, 1, 3]),
                        lambda: image[..., :3])
    image.set_shape([None, None, channels])
    return to_uint8(tf.image.resize(image, image_size, antialias=True))


def _native_logs_set_aside() -> AbstractContextManager:
    """Keeps native messages about refused files off stderr while TensorFlow decodes.

    TensorFlow and libjpeg write them ("Premature end of JPEG data") straight to file descriptor
    2, where the loader's one-line error already says which file and why. The CLI's handling of
    native logging applies: `--verbose` shows them.
    """
    return native_output.set_aside()


def _pipeline(paths: list[Path], image_size: tuple[int, int],
              channels: int) -> np.ndarray | None:
    """The decoded files, or None if TensorFlow refused one of them."""
    dataset = (tf.data.Dataset.from_tensor_slices([str(path) for path in paths])
               .map(lambda path: decode_contents(tf.io.read_file(path), image_size, channels),
                    num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
               .batch(DECODE_BATCH).prefetch(tf.data.AUTOTUNE))
    with _native_logs_set_aside():
        try:
            return np.concatenate([batch.numpy() for batch in dataset])
        except tf.errors.OpError:
            return None


def tensorflow_rejects(paths: list[Path]) -> dict[Path, str]:
    """The files TensorFlow cannot decode, each with why, trying them one by one."""
    rejected = {}
    with _native_logs_set_aside():
        for path in paths:
            try:
                tf.io.decode_image(tf.io.read_file(str(path)), expand_animations=False)
            except tf.errors.OpError as error:
                lines = error.message.strip().splitlines() or [""]
                detail = re.sub(r"\{\{.*?\}\}|\[Op:.*$", "", lines[-1]).strip()  # node names
                rejected[path] = detail[:200] or type(error).__name__
    return rejected


def _as_png(path: Path, target: Path | io.BytesIO) -> None:
    """Pillow converts the first frame of `path` to an 8-bit PNG (gray, RGB or RGBA)."""
    with open_header(path) as image:
        image.seek(0)
        alpha = "A" in image.mode or "transparency" in image.info
        gray = ImageMode.getmode(image.mode).basemode == "L"
        image.convert("RGBA" if alpha else "L" if gray else "RGB").save(target, format="PNG")


def undecodable(paths: list[Path]) -> dict[Path, str]:
    """The files `decode_files` cannot decode, each with why.

    Those TensorFlow cannot take (refused, or palette BMPs) that Pillow cannot convert either.
    """
    candidates = {path: "a palette BMP" for path in paths if palette_bmp(path)}
    candidates.update({path: f"TensorFlow: {why}" for path, why in
                       tensorflow_rejects([path for path in paths
                                           if path not in candidates]).items()})
    failed = {}
    for path, why in candidates.items():
        try:
            _as_png(path, io.BytesIO())
        except Exception as error:  # Pillow raises many types for broken files
            failed[path] = f"{why}; Pillow: {str(error).splitlines()[0] if str(error) else ''}"
    return failed


def palette_bmp(path: Path) -> bool:
    """Whether `path` is a BMP of 8 or fewer bits per pixel, which TensorFlow misreads.

    TensorFlow decodes an 8-bit BMP as its palette indices (a color image comes out as a gray
    one) and refuses 1- and 4-bit ones; Pillow applies the palette. Read from the file's header.
    """
    try:
        with path.open("rb") as file:
            head = file.read(30)
    except OSError:
        return False
    if head[:2] != b"BM" or len(head) < 30:
        return False
    core_header = int.from_bytes(head[14:18], "little") == 12  # OS/2 BMP: bit count at 24
    bits = head[24:26] if core_header else head[28:30]
    return int.from_bytes(bits, "little") <= 8


def _png_copies(paths: list[Path], which: dict[Path, str], folder: Path) -> list[Path]:
    """Replaces each file of `paths` that is in `which` by a PNG copy in `folder`.

    `which` maps a file to why TensorFlow cannot take it; an InputError names a file Pillow
    cannot convert either.
    """
    copies = []
    for index, path in enumerate(paths):
        if path not in which:
            copies.append(path)
            continue
        folder.mkdir(exist_ok=True)
        copy = folder / f"{index}.png"
        try:
            _as_png(path, copy)
        except Exception as error:  # Pillow raises many types for broken files
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise InputError(f"cannot decode image '{path}' ({which[path]}; Pillow: {reason}). "
                             f"Replace or delete the file, {SKIP_HINT}.") from None
        copies.append(copy)
    return copies


def decode_files(paths: list[Path], image_size: tuple[int, int], channels: int) -> np.ndarray:
    """Decodes image files into a uint8 array (N, height, width, channels), in order.

    Palette BMPs (`palette_bmp`) and files TensorFlow refuses are decoded from PNG copies that
    Pillow makes in a temporary folder.

    Raises:
        InputError: Naming the first file that neither TensorFlow nor Pillow can decode.
    """
    if not paths:
        return np.zeros((0, *image_size, channels), dtype="uint8")
    with tempfile.TemporaryDirectory(prefix="decode-") as folder:
        palettes = {path: "a palette BMP" for path in paths if palette_bmp(path)}
        sources = _png_copies(paths, palettes, Path(folder) / "palette")
        decoded = _pipeline(sources, image_size, channels)
        if decoded is None:
            refused = {path: f"TensorFlow: {why}" for path, why in
                       tensorflow_rejects(sources).items()}
            sources = _png_copies(sources, refused, Path(folder) / "refused")
            decoded = _pipeline(sources, image_size, channels)
    if decoded is None:
        raise InputError("TensorFlow failed to decode the images, but each decodes on its own. "
                         "Run again; if it persists, convert the images to PNG.")
    return decoded


def resize_array(images: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """Resizes a uint8 array like the file decoder does (bilinear, antialiased, rounded)."""
    if images.shape[1:3] == tuple(image_size):
        return images
    dataset = (tf.data.Dataset.from_tensor_slices(images).batch(DECODE_BATCH)
               .map(lambda batch: to_uint8(tf.image.resize(tf.cast(batch, tf.float32),
                                                           image_size, antialias=True))))
    return np.concatenate([batch.numpy() for batch in dataset])
