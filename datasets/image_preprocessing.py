"""The image counterpart of `TabularPreprocessor`: raw uint8 pixels in, every artifact alike.

An image model needs nothing adapted: rescaling to [0, 1] and augmentation are layers of the
network itself (`zoo/cnn.py`). What remains is the boundary: the network trains on float32
pixels in 0..255, and the composed model, `model.keras`, the SavedModel and every TFLite file
take the raw **uint8** images at the training size, input name `image`, shape
`(rows, height, width, channels)`:

    uint8 image --cast--> float32 0..255 --network (Rescaling 1/255, ...)--> class probabilities

In the int8 TFLite file the input stays uint8 and everything after the cast is quantized.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from common.problems import IMAGE_PROBLEM

INPUT_NAME = "image"


@dataclass
class ImageSchema:
    """What an image model expects: written to the run's `schema.json`, read by `tasks.predict`.

    Attributes:
        labels: Class names; the index is the class id.
        image_size: `(height, width)`.
        channels: 1 (grayscale) or 3 (RGB).
        problem: Always `multiclass` (softmax over the classes, two or more).
        target: The name predictions are reported under (`predicted_class`).
    """

    labels: list[str]
    image_size: tuple[int, int]
    channels: int
    problem: str = IMAGE_PROBLEM.name
    target: str = "class"
    kind: str = field(default="image", init=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (`schema.json`)."""
        return {"kind": self.kind, "problem": self.problem, "target": self.target,
                "labels": list(self.labels), "image_size": list(self.image_size),
                "channels": self.channels, "input": INPUT_NAME, "dtype": "uint8"}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageSchema:
        """Reads what `to_dict` wrote."""
        return cls(labels=list(data["labels"]), image_size=tuple(data["image_size"]),
                   channels=int(data["channels"]), problem=data["problem"],
                   target=data["target"])


class ImagePreprocessor:
    """Image preprocessing with the interface the engine uses for tables.

    Args:
        schema: The images' size, channels and labels.
    """

    float_layers: tuple[str, ...] = ()  # nothing needs float32 in the int8 file

    def __init__(self, schema: ImageSchema):
        self.schema = schema

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """`(height, width, channels)`."""
        return (*self.schema.image_size, self.schema.channels)

    def builder_inputs(self) -> dict[str, Any]:
        """The zoo builder's input argument."""
        return {"input_shape": self.input_shape}

    def transform(self, features: dict[str, np.ndarray]) -> np.ndarray:
        """Raw uint8 images -> the float32 pixels (still 0..255) the network trains on."""
        return features[INPUT_NAME].astype("float32")

    def compose(self, network: Any, target_mean: float = 0.0, target_std: float = 1.0) -> Any:
        """The trained network behind a uint8 image input (the target arguments are unused)."""
        import keras  # only here: `tasks.predict` reads ImageSchema before TensorFlow loads

        image = keras.Input(shape=self.input_shape, dtype="uint8", name=INPUT_NAME)
        pixels = keras.layers.Rescaling(1.0, name="to_float")(image)  # a cast to float32
        return keras.Model({INPUT_NAME: image}, network(pixels), name="model")

    def client_schema(self) -> dict[str, Any]:
        """Input description for client authors (`export/schema.json`)."""
        return {"schema": self.schema.to_dict(), "inputs": [{
            "input": INPUT_NAME, "dtype": "uint8",
            "shape": [None, *self.input_shape],
            "values": "raw pixels 0..255, resized to image_size (bilinear, antialiased); "
                      + ("grayscale" if self.schema.channels == 1 else "RGB")}]}
