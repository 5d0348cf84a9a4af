"""The model registry: torchvision's AlexNet, ResNet-18/50, ConvNeXt-Tiny and ViT-B/16 in Flax.

One module per architecture (`alexnet`, `resnet`, `convnext`, `vit`), the layers they share in
`layers`, and here the one place that knows each model: its `ModelSpec`.

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

import dataclasses
import functools
import re
from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from alexnet_jax.models import alexnet, convnext, resnet, tiny, vit
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
from alexnet_jax.models.tiny import TinyNet
from alexnet_jax.models.vit import ViTB16

DEFAULT_MODEL = "alexnet"
COMMON_OPTIONS = ("dtype", "frozen")  # every model takes these besides num_classes


def flax_name(torch_path: str) -> str:
    """The top-level Flax name of a torchvision module path: `features.0` -> `features_0`."""
    return torch_path.replace(".", "_")


@dataclasses.dataclass(frozen=True)
class Block:
    """A group of top-level parameters, from input to head: the unit of partial finetuning,
    layer-wise learning-rate decay and `frozen`. `torch_modules` are the torchvision module
    paths holding its parameters; `torch_output` is the module whose output ends the block."""

    name: str
    torch_modules: tuple[str, ...]
    torch_output: str

    @property
    def params(self) -> tuple[str, ...]:
        """The block's top-level Flax parameter names."""
        return tuple(flax_name(m) for m in self.torch_modules)


@dataclasses.dataclass(frozen=True)
class ImageNetWeights:
    """torchvision's IMAGENET1K weights: the enum member (`torchvision.models.get_weight(enum)`) and its url."""

    enum: str
    url: str

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    @property
    def sha256_prefix(self) -> str:
        """torch.hub's convention: the hash prefix is the file name's last '-' field."""
        return re.search(r"-([a-f0-9]+)\.", self.filename).group(1)


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """What the converter, the trainer and the benchmark need to know of one model (get_spec(name))."""

    name: str
    module: type[nn.Module]
    torch_head: str  # torchvision path of the layer a new task replaces
    blocks: tuple[Block, ...]
    batch_norm: bool
    min_input_size: int
    torchvision_builder: str | None  # torchvision.models.<builder>; None: no torch twin (the test model)
    imagenet: ImageNetWeights | None  # None: no ImageNet weights exist
    options: tuple[str, ...]  # module fields beyond num_classes and COMMON_OPTIONS
    init_head: Callable[[jax.Array, int], dict]  # a fresh head, torchvision's init: (rng, num_classes)
    parity_sizes: tuple[tuple[int, int], ...]  # (height, width) the converter checks against torchvision
    timm_architecture: str | None = None  # the timm model of the same network, whose state dicts convert too
    extra_taps: tuple[tuple[str, str], ...] = ()  # (intermediate, torchvision module) compared besides blocks
    default_input_size: int = 224
    torchvision_size_argument: str | None = None  # the builder's argument for the one size its model takes
    input_multiple: int = 1  # input sides must be a multiple of this (ViT's patch)

    def torchvision_kwargs(self, num_classes: int, image_size: int) -> dict:
        """Keyword arguments of `torchvision.models.<builder>`: random weights, this head, this input size."""
        sized = {self.torchvision_size_argument: image_size} if self.torchvision_size_argument else {}
        return {"weights": None, "num_classes": num_classes, **sized}

    @property
    def head(self) -> str:
        """The head's top-level Flax name."""
        return flax_name(self.torch_head)

    @property
    def block_names(self) -> tuple[str, ...]:
        return tuple(block.name for block in self.blocks)

    @property
    def taps(self) -> tuple[tuple[str, str], ...]:
        """(intermediate name, torchvision module) pairs a parity check compares: every block's output."""
        return tuple((block.name, block.torch_output) for block in self.blocks) + self.extra_taps


def _dense_head(fan_in: int, kernel_init, bias_init=nn.initializers.zeros):
    """init_head for a model whose head is one Dense layer with these initialisers (as its module uses)."""

    def init(rng: jax.Array, num_classes: int) -> dict:
        kernel_key, bias_key = jax.random.split(rng)
        return {
            "kernel": kernel_init(kernel_key, (fan_in, num_classes), jnp.float32),
            "bias": bias_init(bias_key, (num_classes,), jnp.float32),
        }

    return init


def _resnet_blocks() -> tuple[Block, ...]:
    stem = Block("stem", ("conv1", "bn1"), "maxpool")
    return (stem,) + tuple(Block(f"layer{i}", (f"layer{i}",), f"layer{i}") for i in range(1, 5))


def _convnext_blocks() -> tuple[Block, ...]:
    stages = tuple(
        Block(
            f"stage{s}",
            ((f"features.{2 * s - 2}",) if s > 1 else ()) + (f"features.{2 * s - 1}",),
            f"features.{2 * s - 1}",
        )
        for s in range(1, 5)
    )
    return (
        Block("stem", ("features.0",), "features.0"),
        *stages,
        Block("final_norm", ("classifier.0",), "classifier.0"),
    )


def _vit_blocks() -> tuple[Block, ...]:
    embedding = Block("embedding", ("conv_proj", "class_token", "encoder.pos_embedding"), "encoder.dropout")
    layers = tuple(
        Block(f"encoder_layer_{i}", (f"encoder.layers.encoder_layer_{i}",), f"encoder.layers.encoder_layer_{i}")
        for i in range(vit.NUM_LAYERS)
    )
    return (embedding, *layers, Block("final_norm", ("encoder.ln",), "encoder.ln"))


_CNN_PARITY_SIZES = ((224, 224), (100, 130))  # odd, non-square: exercises padding, pooling and flooring
_TORCHVISION = "https://download.pytorch.org/models/"


def _resnet_spec(name: str, module: type[nn.Module], features: int, weights_file: str) -> ModelSpec:
    """ResNet-18 and -50 differ only in their blocks, their width before fc and their weights file."""
    return ModelSpec(
        name=name,
        module=module,
        torch_head="fc",
        blocks=_resnet_blocks(),
        batch_norm=True,
        min_input_size=resnet.MIN_INPUT_SIZE,
        torchvision_builder=name,
        imagenet=ImageNetWeights(f"{module.__name__}_Weights.IMAGENET1K_V1", _TORCHVISION + weights_file),
        options=(),
        init_head=_dense_head(features, torch_uniform_init(features), torch_uniform_init(features)),
        parity_sizes=_CNN_PARITY_SIZES,
        timm_architecture=name,
    )


SPECS: Mapping[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="alexnet",
            module=AlexNet,
            torch_head="classifier.6",
            blocks=tuple(
                Block(f"features_{i}", (f"features.{i}",), f"features.{end}")
                for i, end in ((0, 2), (3, 5), (6, 7), (8, 9), (10, 12))
            )
            + (
                Block("classifier_1", ("classifier.1",), "classifier.2"),
                Block("classifier_4", ("classifier.4",), "classifier.5"),
            ),
            batch_norm=False,
            min_input_size=alexnet.MIN_INPUT_SIZE,
            torchvision_builder="alexnet",
            imagenet=ImageNetWeights("AlexNet_Weights.IMAGENET1K_V1", _TORCHVISION + "alexnet-owt-7be5be79.pth"),
            options=("dropout_rate",),
            init_head=init_head,
            parity_sizes=((224, 224), (100, 100), (257, 300)),
            extra_taps=(("features", "features"), ("avgpool", "avgpool")),
        ),
        _resnet_spec("resnet18", ResNet18, 512, "resnet18-f37072fd.pth"),
        _resnet_spec("resnet50", ResNet50, 2048, "resnet50-0676ba61.pth"),
        ModelSpec(
            name="convnext_tiny",
            module=ConvNeXtTiny,
            torch_head="classifier.2",
            blocks=_convnext_blocks(),
            batch_norm=False,
            min_input_size=convnext.MIN_INPUT_SIZE,
            torchvision_builder="convnext_tiny",
            imagenet=ImageNetWeights(
                "ConvNeXt_Tiny_Weights.IMAGENET1K_V1", _TORCHVISION + "convnext_tiny-983f1562.pth"
            ),
            options=("drop_path_rate",),
            init_head=_dense_head(convnext.STAGES[-1][0], convnext.WEIGHT_INIT),
            parity_sizes=_CNN_PARITY_SIZES,
            timm_architecture="convnext_tiny",
        ),
        ModelSpec(
            name="vit_b_16",
            module=ViTB16,
            torch_head="heads.head",
            blocks=_vit_blocks(),
            batch_norm=False,
            min_input_size=vit.MIN_INPUT_SIZE,
            torchvision_builder="vit_b_16",
            imagenet=ImageNetWeights("ViT_B_16_Weights.IMAGENET1K_V1", _TORCHVISION + "vit_b_16-c867db91.pth"),
            options=("dropout_rate", "attention_dropout_rate"),
            init_head=_dense_head(vit.HIDDEN_DIM, nn.initializers.zeros),
            parity_sizes=((224, 224), (160, 160)),  # 160 px: the 14x14 grid interpolated to 10x10
            torchvision_size_argument="image_size",
            input_multiple=vit.PATCH_SIZE,
        ),
        ModelSpec(  # for tests only: the trainer's code paths at a few thousand parameters
            name="tiny",
            module=TinyNet,
            torch_head="fc",
            blocks=(Block("block1", ("conv1", "bn1"), "bn1"), Block("block2", ("conv2", "bn2"), "bn2")),
            batch_norm=True,
            min_input_size=tiny.MIN_INPUT_SIZE,
            torchvision_builder=None,
            imagenet=None,
            options=("dropout_rate",),
            init_head=_dense_head(
                tiny.WIDTHS[-1], torch_uniform_init(tiny.WIDTHS[-1]), torch_uniform_init(tiny.WIDTHS[-1])
            ),
            parity_sizes=(),
            default_input_size=32,
        ),
    )
}
MODEL_NAMES = tuple(SPECS)


def get_spec(name: str) -> ModelSpec:
    if name not in SPECS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
    return SPECS[name]


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
    """FLOPs of one image's eval forward pass, from XLA's cost analysis of the compiled program."""
    model = get_model(name, num_classes)
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
    "TinyNet",
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
    "torch_uniform_init",
    "variable_shapes",
]
