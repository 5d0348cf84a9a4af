"""torchvision's ResNet-18 and ResNet-50 (V1.5), layer for layer, as Flax linen modules.

    conv1     Conv 3->64, 7x7, stride 2, pad 3, no bias;  bn1;  ReLU
    maxpool   MaxPool 3x3, stride 2, pad 1
    layer1-4  BasicBlocks (ResNet-18: 2, 2, 2, 2) or Bottlenecks (ResNet-50: 3, 4, 6, 3) of
              64, 128, 256, 512 planes; the first block of layer2-4 has stride 2 and a
              `downsample` (1x1 conv with that stride, then BatchNorm). A Bottleneck's stride
              sits on its 3x3 conv2 (torchvision's V1.5), not on the 1x1 conv1.
    avgpool   AdaptiveAvgPool2d(1);  fc  Linear -> num_classes

The Flax tree is torchvision's module tree: `layer1.0.downsample.1.running_var` lives at
batch_stats['layer1']['0']['downsample']['1']['var']. Initialisation is torchvision's: convs
kaiming_normal_(fan_out, relu), BatchNorm weight 1 and bias 0, fc PyTorch's Linear default.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from alexnet_jax.models.layers import (
    BatchNorm,
    at_least_float32,
    check_images,
    conv,
    kaiming_normal_fan_out,
    layer_impls,
    torch_uniform_init,
)
from alexnet_jax.models.spec import CNN_PARITY_SIZES, Block, ModelSpec, TorchSource, dense_head, torchvision_imagenet

STAGE_PLANES = (64, 128, 256, 512)
MIN_INPUT_SIZE = 1  # torchvision's meta: every stride-2 layer pads, so even 1 px passes


def _conv(features: int, kernel: int, stride: int, dtype: Any, name: str, impl: str) -> nn.Conv:
    """A torchvision conv without bias; `impl` (layers.CONV_IMPLS) may compute it as patches and a matmul on CPU."""
    return conv(
        features,
        kernel,
        stride=stride,
        padding=(kernel - 1) // 2,
        bias=False,
        kernel_init=kaiming_normal_fan_out,
        dtype=dtype,
        name=name,
        impl=impl,
    )


class Downsample(nn.Module):
    """torchvision's `downsample` Sequential: 1x1 conv (`0`) with the block's stride, then BatchNorm (`1`)."""

    features: int
    stride: int
    dtype: Any
    impl: str = "native"

    @nn.compact
    def __call__(self, x, use_running_average: bool, mask):
        x = _conv(self.features, 1, self.stride, self.dtype, "0", self.impl)(x)
        return BatchNorm(dtype=self.dtype, name="1")(x, use_running_average, mask)


class BasicBlock(nn.Module):
    planes: int
    stride: int
    dtype: Any
    impl: str = "native"
    expansion = 1

    @nn.compact
    def __call__(self, x, use_running_average: bool, mask):
        identity = x
        out = _conv(self.planes, 3, self.stride, self.dtype, "conv1", self.impl)(x)
        out = nn.relu(BatchNorm(dtype=self.dtype, name="bn1")(out, use_running_average, mask))
        out = _conv(self.planes, 3, 1, self.dtype, "conv2", self.impl)(out)
        out = BatchNorm(dtype=self.dtype, name="bn2")(out, use_running_average, mask)
        if self.stride != 1 or x.shape[-1] != self.planes:
            downsample = Downsample(self.planes, self.stride, self.dtype, self.impl, name="downsample")
            identity = downsample(x, use_running_average, mask)
        return nn.relu(out + identity)


class Bottleneck(nn.Module):
    planes: int
    stride: int
    dtype: Any
    impl: str = "native"
    expansion = 4

    @nn.compact
    def __call__(self, x, use_running_average: bool, mask):
        identity = x
        out_features = self.planes * self.expansion
        out = _conv(self.planes, 1, 1, self.dtype, "conv1", self.impl)(x)
        out = nn.relu(BatchNorm(dtype=self.dtype, name="bn1")(out, use_running_average, mask))
        out = _conv(self.planes, 3, self.stride, self.dtype, "conv2", self.impl)(out)  # V1.5: the stride is here
        out = nn.relu(BatchNorm(dtype=self.dtype, name="bn2")(out, use_running_average, mask))
        out = _conv(out_features, 1, 1, self.dtype, "conv3", self.impl)(out)
        out = BatchNorm(dtype=self.dtype, name="bn3")(out, use_running_average, mask)
        if self.stride != 1 or x.shape[-1] != out_features:
            identity = Downsample(out_features, self.stride, self.dtype, self.impl, name="downsample")(
                x, use_running_average, mask
            )
        return nn.relu(out + identity)


class ResLayer(nn.Module):
    """One of torchvision's `layerN` Sequentials: blocks named `0`, `1`, ..."""

    block: type[nn.Module]
    planes: int
    blocks: int
    stride: int
    dtype: Any
    impl: str = "native"

    @nn.compact
    def __call__(self, x, use_running_average: bool, mask):
        for index in range(self.blocks):
            stride = self.stride if index == 0 else 1
            x = self.block(self.planes, stride, self.dtype, self.impl, name=str(index))(x, use_running_average, mask)
        return x


class ResNet(nn.Module):
    """torchvision's ResNet (the subclasses below fix the depth). Variables: {'params', 'batch_stats'}.

    `train=True` normalises with batch statistics and updates the running ones (pass
    `mutable=['batch_stats']`), except in the blocks named in `frozen` ('stem', 'layer1', ...),
    whose BatchNorm layers keep using and keeping their running statistics. `mask` (N,) leaves
    padded examples out of the batch statistics. `dtype` is the compute dtype; parameters and
    statistics stay float32, logits are float32. With `capture`, 'intermediates' receives
    {block name: its output} under 'blocks'. `conv_impl` (layers.FORMULATIONS) picks how the
    convolutions are computed: 'auto' is XLA's convolution off CPU and, on CPU, patches plus one
    matrix product where layers.patches_pays says it is faster.
    """

    block = BasicBlock
    layers = (2, 2, 2, 2)
    num_classes: int = 1000
    dtype: Any = jnp.float32
    frozen: tuple[str, ...] = ()
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, images: jax.Array, train: bool = False, *, mask=None, capture: bool = False):
        check_images(images, type(self).__name__, MIN_INPUT_SIZE)

        def use_running_average(block: str) -> bool:
            return not train or block in self.frozen

        impl = layer_impls(self.conv_impl)["conv"]
        x = images.astype(self.dtype)
        x = _conv(64, 7, 2, self.dtype, "conv1", impl)(x)
        x = nn.relu(BatchNorm(dtype=self.dtype, name="bn1")(x, use_running_average("stem"), mask))
        x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
        blocks = {"stem": x}
        for index, (planes, depth) in enumerate(zip(STAGE_PLANES, self.layers, strict=True)):
            name = f"layer{index + 1}"
            stride = 1 if index == 0 else 2
            layer = ResLayer(self.block, planes, depth, stride, self.dtype, impl, name=name)
            x = layer(x, use_running_average(name), mask)
            blocks[name] = x
        if capture:
            self.sow("intermediates", "blocks", blocks)
        x = jnp.mean(x, axis=(1, 2))  # AdaptiveAvgPool2d(1) + flatten
        fan_in = x.shape[-1]
        x = nn.Dense(
            self.num_classes,
            kernel_init=torch_uniform_init(fan_in),
            bias_init=torch_uniform_init(fan_in),
            dtype=self.dtype,
            param_dtype=jnp.float32,
            name="fc",
        )(x)
        return x.astype(at_least_float32(self.dtype))


class ResNet18(ResNet):
    block = BasicBlock
    layers = (2, 2, 2, 2)


class ResNet50(ResNet):
    block = Bottleneck
    layers = (3, 4, 6, 3)


BLOCKS = (Block("stem", ("conv1", "bn1"), "maxpool"),) + tuple(
    Block(f"layer{i}", (f"layer{i}",), f"layer{i}") for i in range(1, 5)
)


def _spec(name: str, module: type[ResNet], features: int, weights_file: str) -> ModelSpec:
    """ResNet-18 and -50 differ only in their residual blocks, their width before fc and their weights file."""
    return ModelSpec(
        name=name,
        module=module,
        torch_head="fc",
        blocks=BLOCKS,
        batch_norm=True,
        min_input_size=MIN_INPUT_SIZE,
        options=("conv_impl",),
        init_head=dense_head(features, torch_uniform_init(features), torch_uniform_init(features)),
        torch=TorchSource(
            builder=name,
            imagenet=torchvision_imagenet(f"{module.__name__}_Weights.IMAGENET1K_V1", weights_file),
            parity_sizes=CNN_PARITY_SIZES,
            timm_architecture=name,  # timm's ResNets use torchvision's names: no renames
        ),
    )


SPECS = (
    _spec("resnet18", ResNet18, STAGE_PLANES[-1] * BasicBlock.expansion, "resnet18-f37072fd.pth"),
    _spec("resnet50", ResNet50, STAGE_PLANES[-1] * Bottleneck.expansion, "resnet50-0676ba61.pth"),
)
