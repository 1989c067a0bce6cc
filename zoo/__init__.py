"""Model zoo: registered builders (flat kwargs in, uncompiled Functional model out)."""

from zoo import applications as _applications  # noqa: F401  (registers "transfer")
from zoo import cnn as _cnn  # noqa: F401  (registers "cnn")
from zoo import mlp as _mlp  # noqa: F401  (registers "mlp")
from zoo import resnet as _resnet  # noqa: F401  (registers "resnet")
from zoo.heads import PROBLEMS, add_head
from zoo.registry import (
    ModelSpec,
    build_model,
    get_builder,
    get_search_space,
    get_spec,
    list_models,
    register_model,
    unregister_model,
)

__all__ = ["PROBLEMS", "ModelSpec", "add_head", "build_model", "get_builder", "get_search_space",
           "get_spec", "list_models", "register_model", "unregister_model"]
