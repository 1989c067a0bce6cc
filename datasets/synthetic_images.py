"""A seeded generator of small image folders (one shape per class) for tests and benchmarks.

Each image is one filled shape (circle, square, triangle, cross, ring, diamond: one class each) at
a random position, scale and colour on a noisy background of another brightness. The folder mixes
what users' folders mix: PNG and JPEG files, RGB and grayscale images (every third image is
grayscale), and sizes (three in four images are `size` x `size`, the rest 75-125% of it in each
direction), so the loader's channel, size and decoding rules all get exercised.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle", "cross", "ring", "diamond")


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, center: tuple[float, float],
                radius: float, fill: tuple[int, int, int]) -> None:
    x, y = center
    box = (x - radius, y - radius, x + radius, y + radius)
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "square":
        draw.rectangle(box, fill=fill)
    elif shape == "triangle":
        draw.polygon([(x, y - radius), (x + radius, y + radius), (x - radius, y + radius)],
                     fill=fill)
    elif shape == "cross":
        arm = radius / 3
        draw.rectangle((x - radius, y - arm, x + radius, y + arm), fill=fill)
        draw.rectangle((x - arm, y - radius, x + arm, y + radius), fill=fill)
    elif shape == "ring":
        draw.ellipse(box, outline=fill, width=max(2, round(radius / 3)))
    else:  # diamond
        draw.polygon([(x, y - radius), (x + radius, y), (x, y + radius), (x - radius, y)],
                     fill=fill)


def _image(shape: str, width: int, height: int, rng: np.random.Generator) -> Image.Image:
    background = int(rng.integers(0, 256))
    # The shape is at least 80 brightness levels away from the background, so it stays visible.
    level = int(rng.choice([value for value in range(256) if abs(value - background) >= 80]))
    fill = tuple(int(np.clip(level + rng.integers(-40, 41), 0, 255)) for _ in range(3))
    image = Image.new("RGB", (width, height), (background,) * 3)
    side = min(width, height)
    radius = side * rng.uniform(0.18, 0.32)
    center = (width / 2 + rng.uniform(-0.15, 0.15) * width,
              height / 2 + rng.uniform(-0.15, 0.15) * height)
    _draw_shape(ImageDraw.Draw(image), shape, center, radius, fill)
    noisy = np.asarray(image, dtype="float32") + rng.normal(0, 12, (height, width, 1))
    return Image.fromarray(np.clip(noisy, 0, 255).astype("uint8"))


def generate_image_folder(path: str | Path, classes: int = 4, per_class: int = 50,
                          size: int = 64, seed: int = 0) -> Path:
    """Writes a synthetic image folder: `path/<shape>/<shape>_<index>.<png|jpg>`.

    Args:
        path: Folder to create (it may exist; files of the same names are overwritten).
        classes: Number of classes, 2 to 6: the first `classes` of `SHAPES`.
        per_class: Images per class.
        size: The common image side in pixels.
        seed: Seed of everything drawn; the same arguments write the same files.

    Returns:
        `path`, as a Path.

    Example:
        >>> root = generate_image_folder("/tmp/shapes", classes=3, per_class=20, size=32)
        >>> sorted(folder.name for folder in root.iterdir())
        ['circle', 'square', 'triangle']
    """
    if not 2 <= classes <= len(SHAPES):
        raise ValueError(f"classes must be 2 to {len(SHAPES)}. Received: classes={classes}")
    if per_class < 1 or size < 8:
        raise ValueError("per_class must be >= 1 and size >= 8. "
                         f"Received: per_class={per_class}, size={size}")
    root = Path(path)
    rng = np.random.default_rng(seed)
    for shape in SHAPES[:classes]:
        folder = root / shape
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            width = height = size
            if index % 4 == 3:
                width, height = (round(size * rng.uniform(0.75, 1.25)) for _ in range(2))
            image = _image(shape, width, height, rng)
            if index % 3 == 2:
                image = image.convert("L")
            if index % 2:
                image.save(folder / f"{shape}_{index:03d}.jpg", quality=90)
            else:
                image.save(folder / f"{shape}_{index:03d}.png")
    return root
