"""torchvision's ConvNeXt-Tiny, layer for layer, as a Flax linen module.

    features.0    stem: Conv 3->96, 4x4, stride 4 (`0`), LayerNorm2d eps 1e-6 (`1`)
    features.1    stage 1: 3 CNBlocks of 96 channels
    features.2    downsample: LayerNorm2d (`0`), Conv 2x2, stride 2 (`1`) -> 192
    features.3-7  stage 2 (3 blocks of 192), downsample, stage 3 (9 of 384), downsample, stage 4 (3 of 768)
    avgpool       AdaptiveAvgPool2d(1)
    classifier    LayerNorm2d (`0`), Flatten, Linear 768 -> num_classes (`2`)

A CNBlock (`features.S.M`) is `block`: depthwise Conv 7x7 pad 3 (`0`), LayerNorm eps 1e-6
(`2`), Linear C->4C (`3`), exact GELU, Linear 4C->C (`5`); then times `layer_scale`
(initialised to 1e-6), stochastic depth ("row" mode), plus the input. The depth rate of block
i of the 18 is drop_path_rate * i / 17, as torchvision sets it. Initialisation is
torchvision's: convs and linears trunc_normal_(std=0.02), biases 0, LayerNorms 1 and 0.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from alexnet_jax.models.layers import (
    DepthwiseConv,
    at_least_float32,
    check_images,
    conv,
    global_avg_pool,
    layer_impls,
    layer_norm,
    stochastic_depth,
    trunc_normal_init,
)
from alexnet_jax.models.spec import CNN_PARITY_SIZES, Block, ModelSpec, TorchSource, dense_head, torchvision_imagenet

# (channels, blocks) per stage; a downsample to the next stage's channels follows each but the last.
STAGES = ((96, 3), (192, 3), (384, 9), (768, 3))
LAYER_SCALE_INIT = 1e-6
NORM_EPS = 1e-6
DEFAULT_DROP_PATH_RATE = 0.1  # torchvision's convnext_tiny default (stochastic_depth_prob)
MIN_INPUT_SIZE = 32  # torchvision's meta: the stem's /4 and three /2 downsamples leave 1 px
WEIGHT_INIT = trunc_normal_init(0.02)


def _dense(features: int, dtype: Any, name: str) -> nn.Dense:
    return nn.Dense(features, kernel_init=WEIGHT_INIT, dtype=dtype, param_dtype=jnp.float32, name=name)


class BlockBody(nn.Module):
    """torchvision's `block` Sequential; indices 1, 4 and 6 are the parameter-free permutes and GELU."""

    dtype: Any
    impl: str = "native"  # layers.DEPTHWISE_IMPLS

    @nn.compact
    def __call__(self, x):
        x = DepthwiseConv(7, 1, 3, self.impl, WEIGHT_INIT, self.dtype, use_bias=True, name="0")(x)
        channels = x.shape[-1]
        x = layer_norm(NORM_EPS, self.dtype, "2")(x)
        x = _dense(4 * channels, self.dtype, "3")(x)
        x = nn.gelu(x, approximate=False)
        return _dense(channels, self.dtype, "5")(x)


class CNBlock(nn.Module):
    drop_path_rate: float
    dtype: Any
    impl: str = "native"

    @nn.compact
    def __call__(self, x, train: bool):
        layer_scale = self.param("layer_scale", nn.initializers.constant(LAYER_SCALE_INIT), (x.shape[-1],))
        branch = BlockBody(self.dtype, self.impl, name="block")(x) * layer_scale.astype(self.dtype)
        return stochastic_depth(self.drop_path_rate)(branch, deterministic=not train) + x


class Stage(nn.Module):
    """One of `features.1/3/5/7`: CNBlocks named `0`, `1`, ..., each with its own depth rate."""

    drop_path_rates: tuple[float, ...]
    dtype: Any
    impl: str = "native"

    @nn.compact
    def __call__(self, x, train: bool):
        for index, rate in enumerate(self.drop_path_rates):
            x = CNBlock(rate, self.dtype, self.impl, name=str(index))(x, train)
        return x


class Stem(nn.Module):
    dtype: Any
    impl: str = "native"

    @nn.compact
    def __call__(self, x):
        x = conv(STAGES[0][0], 4, stride=4, kernel_init=WEIGHT_INIT, dtype=self.dtype, name="0", impl=self.impl)(x)
        return layer_norm(NORM_EPS, self.dtype, "1")(x)


class Downsample(nn.Module):
    features: int
    dtype: Any
    impl: str = "native"

    @nn.compact
    def __call__(self, x):
        x = layer_norm(NORM_EPS, self.dtype, "0")(x)
        return conv(self.features, 2, stride=2, kernel_init=WEIGHT_INIT, dtype=self.dtype, name="1", impl=self.impl)(x)


def drop_path_rates(rate: float) -> tuple[tuple[float, ...], ...]:
    """Per stage, each block's stochastic-depth rate: linear from 0 to `rate` over all blocks."""
    total = sum(blocks for _, blocks in STAGES)
    rates, block_id = [], 0
    for _, blocks in STAGES:
        rates.append(tuple(rate * (block_id + i) / (total - 1.0) for i in range(blocks)))
        block_id += blocks
    return tuple(rates)


class ConvNeXtTiny(nn.Module):
    """torchvision's convnext_tiny. Variables: {'params'}.

    With `train=True`, stochastic depth draws from the 'dropout' rng (off in eval, and off
    throughout with drop_path_rate=0). `dtype` is the compute dtype; parameters stay float32,
    logits are float32. ConvNeXt has no BatchNorm: `frozen` and `mask` change nothing. With
    `capture`, 'intermediates' receives {block name: its output} under 'blocks'. `conv_impl`
    (layers.FORMULATIONS): 'auto' computes the depthwise 7x7s as 49 shifted multiply-adds and the
    stem and downsamples (non-overlapping patches) as one matrix product on CPU, XLA's convolutions elsewhere.
    """

    num_classes: int = 1000
    drop_path_rate: float = DEFAULT_DROP_PATH_RATE
    dtype: Any = jnp.float32
    frozen: tuple[str, ...] = ()
    conv_impl: str = "auto"
    # layers.cpu_compiler_options; eval at 224 px 8.5 -> 11.4 img/s (ELTWISE fused: 2.5, and 1.7 -> 1.1 training)
    CPU_YNN_FUSION: ClassVar[dict[str, str]] = {"forward": "INDIVIDUAL_DOT"}

    @nn.compact
    def __call__(self, images: jax.Array, train: bool = False, *, mask=None, capture: bool = False):
        del mask  # no batch statistics
        check_images(images, "ConvNeXtTiny", MIN_INPUT_SIZE)
        impls = layer_impls(self.conv_impl)
        x = Stem(self.dtype, impls["conv"], name="features_0")(images.astype(self.dtype))
        blocks = {"stem": x}
        rates = drop_path_rates(self.drop_path_rate)
        for stage, ((channels, _), stage_rates) in enumerate(zip(STAGES, rates, strict=True)):
            if stage:
                x = Downsample(channels, self.dtype, impls["conv"], name=f"features_{2 * stage}")(x)
            x = Stage(stage_rates, self.dtype, impls["depthwise"], name=f"features_{2 * stage + 1}")(x, train)
            blocks[f"stage{stage + 1}"] = x
        x = layer_norm(NORM_EPS, self.dtype, "classifier_0")(global_avg_pool(x))
        blocks["final_norm"] = x
        if capture:
            self.sow("intermediates", "blocks", blocks)
        x = _dense(self.num_classes, self.dtype, "classifier_2")(x.reshape(x.shape[0], -1))
        return x.astype(at_least_float32(self.dtype))


BLOCKS = (
    Block("stem", ("features.0",), "features.0"),
    *(
        Block(
            f"stage{s}",
            ((f"features.{2 * s - 2}",) if s > 1 else ()) + (f"features.{2 * s - 1}",),
            f"features.{2 * s - 1}",
        )
        for s in range(1, 5)
    ),
    Block("final_norm", ("classifier.0",), "classifier.0"),
)

# timm's names: `stem.N`, `stages.S.downsample.N`, `stages.S.blocks.M.{conv_dw, norm, mlp.fc1, mlp.fc2, gamma}`
# and `head.{norm, fc}`, renamed to torchvision's keys.
_TIMM_BLOCK_PARTS = {"conv_dw": 0, "norm": 2, "mlp.fc1": 3, "mlp.fc2": 5}  # indices in torchvision's `block`


def _timm_downsample(m: re.Match) -> str | None:
    stage = int(m[1])  # timm's stage 0 has no downsample; torchvision's features.2 follows stage 1
    return f"features.{2 * stage}.{m[2]}.{m[3]}" if stage > 0 else None


TIMM_RENAMES = (
    (r"stem\.(\d+)\.(weight|bias)", lambda m: f"features.0.{m[1]}.{m[2]}", None),
    (r"stages\.(\d+)\.downsample\.(\d+)\.(weight|bias)", _timm_downsample, None),
    (
        r"stages\.(\d+)\.blocks\.(\d+)\.(conv_dw|norm|mlp\.fc1|mlp\.fc2)\.(weight|bias)",
        lambda m: f"features.{2 * int(m[1]) + 1}.{m[2]}.block.{_TIMM_BLOCK_PARTS[m[3]]}.{m[4]}",
        None,
    ),
    (
        r"stages\.(\d+)\.blocks\.(\d+)\.gamma",
        lambda m: f"features.{2 * int(m[1]) + 1}.{m[2]}.layer_scale",
        lambda value: value.reshape(-1, 1, 1),  # timm keeps (C,), torchvision (C, 1, 1)
    ),
    (r"head\.norm\.(weight|bias)", lambda m: f"classifier.0.{m[1]}", None),
    (r"head\.fc\.(weight|bias)", lambda m: f"classifier.2.{m[1]}", None),
)

SPEC = ModelSpec(
    name="convnext_tiny",
    module=ConvNeXtTiny,
    torch_head="classifier.2",
    blocks=BLOCKS,
    batch_norm=False,
    min_input_size=MIN_INPUT_SIZE,
    options=("drop_path_rate", "conv_impl"),
    init_head=dense_head(STAGES[-1][0], WEIGHT_INIT),
    torch=TorchSource(
        builder="convnext_tiny",
        imagenet=torchvision_imagenet("ConvNeXt_Tiny_Weights.IMAGENET1K_V1", "convnext_tiny-983f1562.pth"),
        parity_sizes=CNN_PARITY_SIZES,
        timm_architecture="convnext_tiny",
        timm_renames=TIMM_RENAMES,
    ),
)
