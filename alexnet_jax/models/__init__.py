"""The model registry: torchvision's AlexNet, ResNet-18/50, ConvNeXt-Tiny, ViT-B/16 and timm's
EfficientNet-Lite0..4 in Flax.

One module per architecture (`alexnet`, `resnet`, `convnext`, `vit`, `efficientnet_lite`, and `tiny` for tests), each
declaring its Flax module, its `ModelSpec` and where its torch weights come from (`spec.torch`, a
`TorchSource`); the layers they share are in `layers`, the records in `spec`. This registry only
collects the specs and looks them up. Adding a backbone: one model file and one line in `_SPECS`.

    model = get_model("resnet50", num_classes=4)               # the Flax module
    variables = init_variables("resnet50", key, num_classes=4)  # torchvision's init
    logits = model.apply(variables, images_nhwc, train=False)   # float32 logits
    logits, updates = model.apply(variables, images, train=True, rngs={"dropout": key},
                                  mutable=["batch_stats"])      # BatchNorm models
    logits = model.apply(variables, images, train=True, rngs={"dropout": key})  # the others

`variables` is {'params': ...} plus 'batch_stats' for BatchNorm models. Dropout and
stochastic depth both draw from the 'dropout' rng. Every model takes `dtype` (compute dtype;
parameters stay float32, logits are float32), `frozen` (names of blocks whose BatchNorm layers
keep using and keeping their running statistics in train mode; ignored by models without
BatchNorm) and, at apply time, `mask` (N,) to leave padded examples out of batch statistics.

Parameter names mirror torchvision's state-dict keys: a top-level Flax name is a torchvision
module path with '_' for '.' (`features.0` -> `features_0`, `encoder.layers.encoder_layer_3` ->
`encoder_layers_encoder_layer_3`), and below it the Flax tree is torchvision's module tree
(`layer1.0.conv1.weight` -> params['layer1']['0']['conv1']['kernel']).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from alexnet_jax.errors import NoTorchSource
from alexnet_jax.models import alexnet, convnext, efficientnet_lite, resnet, tiny, vit
from alexnet_jax.models.alexnet import (
    CONV_LAYERS,
    HEAD,
    LINEAR_LAYERS,
    MIN_INPUT_SIZE,
    POOL_AFTER,
    POOLED_SIZE,
    AlexNet,
    adaptive_avg_pool,
    init_head,
)
from alexnet_jax.models.convnext import ConvNeXtTiny
from alexnet_jax.models.layers import torch_uniform_init
from alexnet_jax.models.resnet import ResNet18, ResNet50
from alexnet_jax.models.spec import Block, ImageNetWeights, ModelSpec, TorchSource, flax_name
from alexnet_jax.models.tiny import TinyNet
from alexnet_jax.models.vit import ViTB16

DEFAULT_MODEL = "alexnet"
COMMON_OPTIONS = ("dtype", "frozen")  # every model takes these besides num_classes

_SPECS = (alexnet.SPEC, *resnet.SPECS, convnext.SPEC, vit.SPEC, *efficientnet_lite.SPECS, tiny.SPEC)
SPECS: Mapping[str, ModelSpec] = {spec.name: spec for spec in _SPECS}
MODEL_NAMES = tuple(SPECS)
TORCH_MODEL_NAMES = tuple(name for name, spec in SPECS.items() if spec.torch is not None)  # convertible ones


def get_spec(name: str) -> ModelSpec:
    if name not in SPECS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
    return SPECS[name]


def torch_source(name: str) -> TorchSource:
    """Where model `name`'s torch weights come from; NoTorchSource (one line, naming those that have
    them) for a model without a torchvision or timm twin."""
    spec = get_spec(name)
    if spec.torch is None:
        raise NoTorchSource(
            f"model {name!r} has no torchvision or timm twin, so no ImageNet weights to convert or start from; "
            f"the models that have them are {', '.join(TORCH_MODEL_NAMES)}"
        )
    return spec.torch


def get_model(name: str = DEFAULT_MODEL, num_classes: int = 1000, **options) -> nn.Module:
    """The Flax module of model `name` with a `num_classes` head. `options` are the model's own
    (ModelSpec.options) plus `dtype` (a jnp dtype or its name) and `frozen` (block names)."""
    spec = get_spec(name)
    unknown = sorted(set(options) - set(spec.options) - set(COMMON_OPTIONS))
    if unknown:
        raise ValueError(
            f"{name} has no option {', '.join(map(repr, unknown))}; it takes {', '.join(spec.options + COMMON_OPTIONS)}"
        )
    if isinstance(options.get("dtype"), str):
        options["dtype"] = jnp.dtype(options["dtype"])
    frozen = tuple(options.get("frozen", ()))
    bad = [block for block in frozen if block not in spec.block_names]
    if bad:
        raise ValueError(f"{name}: frozen={bad} names no block; its blocks are {', '.join(spec.block_names)}")
    if "frozen" in options:
        options["frozen"] = frozen
    return spec.module(num_classes=num_classes, **options)


def init_variables(
    name: str, rng: jax.Array, num_classes: int = 1000, image_size: int | None = None, **options
) -> dict[str, Any]:
    """Fresh variables with torchvision's initialisation (the scratch arm's start), deterministic in `rng`."""
    size = image_size or get_spec(name).default_input_size
    frozen_options = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in options.items()))
    return dict(_jitted_init(name, num_classes, size, frozen_options)(rng))


@functools.cache
def _jitted_init(name: str, num_classes: int, image_size: int, options: tuple) -> Callable:
    """One compiled init per model configuration: XLA takes seconds to compile the random draws."""
    model = get_model(name, num_classes, **dict(options))
    shape = (1, image_size, image_size, 3)  # the images are made inside: a cached array could be a caller's tracer
    return jax.jit(lambda key: model.init(key, jnp.zeros(shape, jnp.float32), train=False))


def init_params(rng: jax.Array, num_classes: int = 1000, image_size: int = 224) -> dict:
    """Fresh AlexNet parameters with torchvision's initialisation."""
    return init_variables("alexnet", rng, num_classes, image_size)["params"]


@functools.cache
def variable_shapes(name: str, num_classes: int) -> dict[tuple[str, ...], tuple[int, ...]]:
    """{(collection, *path): shape} straight from the module, so converters and loaders cannot drift from it."""
    spec = get_spec(name)
    size = spec.default_input_size
    tree = jax.eval_shape(lambda: get_model(name, num_classes).init(jax.random.key(0), jnp.zeros((1, size, size, 3))))
    return {
        tuple(str(k.key) for k in path): tuple(leaf.shape) for path, leaf in jax.tree_util.tree_leaves_with_path(tree)
    }


def param_shapes(num_classes: int, model: str = DEFAULT_MODEL) -> dict[tuple[str, ...], tuple[int, ...]]:
    """{path: shape} of the params (for AlexNet, {(layer, leaf): shape})."""
    return {path[1:]: shape for path, shape in variable_shapes(model, num_classes).items() if path[0] == "params"}


def num_classes_of(params, model: str = DEFAULT_MODEL) -> int:
    """The number of classes a params tree predicts: its head's output size."""
    return int(np.shape(params[get_spec(model).head]["bias"])[0])


def count_params(params) -> int:
    return int(sum(np.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(params)))


@functools.cache
def forward_flops(name: str, image_size: int, num_classes: int = 1000) -> float:
    """FLOPs of one image's eval forward pass, from XLA's cost analysis of the compiled program: XLA's own
    convolutions (conv_impl='native'), whichever form computes them, so the count is the same on every backend."""
    native = {"conv_impl": "native"} if "conv_impl" in get_spec(name).options else {}
    model = get_model(name, num_classes, **native)
    images = jax.ShapeDtypeStruct((1, image_size, image_size, 3), jnp.float32)
    variables = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros(images.shape)))
    compiled = jax.jit(lambda v, x: model.apply(v, x, train=False)).lower(variables, images).compile()
    cost = compiled.cost_analysis()
    return float((cost[0] if isinstance(cost, list) else cost)["flops"])


__all__ = [
    "CONV_LAYERS",
    "COMMON_OPTIONS",
    "DEFAULT_MODEL",
    "HEAD",
    "LINEAR_LAYERS",
    "MIN_INPUT_SIZE",
    "MODEL_NAMES",
    "POOLED_SIZE",
    "POOL_AFTER",
    "SPECS",
    "AlexNet",
    "Block",
    "ConvNeXtTiny",
    "ImageNetWeights",
    "ModelSpec",
    "ResNet18",
    "ResNet50",
    "TORCH_MODEL_NAMES",
    "TinyNet",
    "TorchSource",
    "ViTB16",
    "adaptive_avg_pool",
    "count_params",
    "flax_name",
    "forward_flops",
    "get_model",
    "get_spec",
    "init_head",
    "init_params",
    "init_variables",
    "num_classes_of",
    "param_shapes",
    "torch_source",
    "torch_uniform_init",
    "variable_shapes",
]
