"""torchvision's AlexNet, layer for layer, as a Flax linen module.

Every layer mirrors `torchvision.models.alexnet` so that ImageNet weights port exactly
(see `alexnet_jax.convert`) and the scratch arm starts from PyTorch's own initialisation:

    features.0   Conv 3->64, 11x11, stride 4, pad 2      + ReLU
    features.2   MaxPool 3x3, stride 2
    features.3   Conv 64->192, 5x5, pad 2                 + ReLU
    features.5   MaxPool 3x3, stride 2
    features.6   Conv 192->384, 3x3, pad 1                + ReLU
    features.8   Conv 384->256, 3x3, pad 1                + ReLU
    features.10  Conv 256->256, 3x3, pad 1                + ReLU
    features.12  MaxPool 3x3, stride 2
    avgpool      AdaptiveAvgPool2d((6, 6))
    classifier   Dropout, Linear 9216->4096 (.1), ReLU, Dropout, Linear 4096->4096 (.4),
                 ReLU, Linear 4096->num_classes (.6)

Parameters are named `features_N` / `classifier_N` after torchvision's indices. Images are
NHWC; before the classifier the feature map is flattened channel-first, as torch does, so
that `classifier.1.weight` only needs a transpose.
"""

from __future__ import annotations

from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from alexnet_jax.models.layers import Conv, at_least_float32, check_images, layer_impls, torch_uniform_init
from alexnet_jax.models.spec import Block, ModelSpec, TorchSource, torchvision_imagenet

CONV_LAYERS = (
    # (torchvision index, out channels, kernel, stride, padding)
    (0, 64, 11, 4, 2),
    (3, 192, 5, 1, 2),
    (6, 384, 3, 1, 1),
    (8, 256, 3, 1, 1),
    (10, 256, 3, 1, 1),
)
POOL_AFTER = (0, 3, 10)  # torchvision puts MaxPool2d(3, 2) after these convolutions.
LINEAR_LAYERS = ((1, 4096), (4, 4096))  # the head, classifier.6, has num_classes outputs.
HEAD = "classifier_6"  # the layer a new task replaces
POOLED_SIZE = 6
MIN_INPUT_SIZE = 63  # the smallest side torchvision's AlexNet accepts.


def adaptive_avg_pool(x: jax.Array, output_size: int = POOLED_SIZE) -> jax.Array:
    """`torch.nn.AdaptiveAvgPool2d` on NHWC: bin i spans [floor(i*H/o), ceil((i+1)*H/o)).

    Bins overlap when H is not a multiple of o. Shapes are static under jit, so the bins
    become constant averaging matrices; a 6x6 map (224 px input) passes through untouched.
    """
    height, width = x.shape[1], x.shape[2]
    if height == output_size and width == output_size:
        return x

    def pooling_matrix(size: int) -> np.ndarray:
        matrix = np.zeros((output_size, size), np.float32)
        for i in range(output_size):
            start = (i * size) // output_size
            end = -((-(i + 1) * size) // output_size)  # ceil
            matrix[i, start:end] = 1.0 / (end - start)
        return matrix

    rows = jnp.asarray(pooling_matrix(height), x.dtype)
    cols = jnp.asarray(pooling_matrix(width), x.dtype)
    return jnp.einsum("nhwc,ih,jw->nijc", x, rows, cols, precision=jax.lax.Precision.HIGHEST)


class AlexNet(nn.Module):
    """torchvision's AlexNet. Call `apply({'params': p}, images_nhwc, train=...)`.

    `dtype` is the compute dtype (e.g. bfloat16); parameters stay float32 and logits are
    returned as float32. With `train=True`, dropout draws from the 'dropout' rng. With
    `capture`, 'intermediates' receives {block name: its output} under 'blocks' (a block is
    a layer), and the maps after `features` and `avgpool` under those names. AlexNet has no BatchNorm:
    `frozen` and `mask` are accepted for the models' common signature and change nothing.
    `conv_impl` (layers.FORMULATIONS): 'auto' computes a convolution as patches plus one matrix
    product on CPU where layers.patches_pays says so, XLA's convolution elsewhere.
    """

    num_classes: int = 1000
    dropout_rate: float = 0.5
    dtype: Any = jnp.float32
    frozen: tuple[str, ...] = ()
    conv_impl: str = "auto"
    # layers.cpu_compiler_options; 224 px: training 18.4 -> 23.1 img/s, eval 51.7 -> 95.9 (64 px: 78 -> 80, 242 -> 291)
    CPU_YNN_FUSION: ClassVar[dict[str, str]] = {"train": "DOT,ELTWISE,REDUCE", "forward": "INDIVIDUAL_DOT"}

    @nn.compact
    def __call__(self, images: jax.Array, train: bool = False, *, mask=None, capture: bool = False):
        del mask  # no batch statistics
        check_images(images, "AlexNet", MIN_INPUT_SIZE)
        x = images.astype(self.dtype)
        blocks = {}
        for index, features, kernel, stride, padding in CONV_LAYERS:
            fan_in = x.shape[-1] * kernel * kernel
            x = Conv(
                features,
                (kernel, kernel),
                strides=(stride, stride),
                padding=((padding, padding), (padding, padding)),
                kernel_init=torch_uniform_init(fan_in),
                bias_init=torch_uniform_init(fan_in),
                dtype=self.dtype,
                param_dtype=jnp.float32,
                name=f"features_{index}",
                impl=layer_impls(self.conv_impl)["conv"],
            )(x)
            x = nn.relu(x)
            if index in POOL_AFTER:
                x = nn.max_pool(x, (3, 3), strides=(2, 2), padding="VALID")
            blocks[f"features_{index}"] = x
        if capture:
            self.sow("intermediates", "features", x)
        x = adaptive_avg_pool(x)
        if capture:
            self.sow("intermediates", "avgpool", x)
        # Flatten channel-first, exactly as torch.flatten on NCHW.
        x = jnp.transpose(x, (0, 3, 1, 2)).reshape(x.shape[0], -1)
        for index, features in LINEAR_LAYERS:
            x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
            x = self._linear(x, features, index)
            x = nn.relu(x)
            blocks[f"classifier_{index}"] = x
        if capture:
            self.sow("intermediates", "blocks", blocks)
        x = self._linear(x, self.num_classes, 6)
        return x.astype(at_least_float32(self.dtype))

    def _linear(self, x: jax.Array, features: int, index: int) -> jax.Array:
        fan_in = x.shape[-1]
        return nn.Dense(
            features,
            kernel_init=torch_uniform_init(fan_in),
            bias_init=torch_uniform_init(fan_in),
            dtype=self.dtype,
            param_dtype=jnp.float32,
            name=f"classifier_{index}",
        )(x)


def init_head(rng: jax.Array, num_classes: int, fan_in: int = 4096) -> dict:
    """A fresh `classifier.6` with torchvision's init: what the paper did to the head."""
    kernel_key, bias_key = jax.random.split(rng)
    init = torch_uniform_init(fan_in)
    return {
        "kernel": init(kernel_key, (fan_in, num_classes)),
        "bias": init(bias_key, (num_classes,)),
    }


SPEC = ModelSpec(
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
    min_input_size=MIN_INPUT_SIZE,
    options=("dropout_rate", "conv_impl"),
    init_head=init_head,
    torch=TorchSource(
        builder="alexnet",
        imagenet=torchvision_imagenet("AlexNet_Weights.IMAGENET1K_V1", "alexnet-owt-7be5be79.pth"),
        parity_sizes=((224, 224), (100, 100), (257, 300)),
        extra_taps=(("features", "features"), ("avgpool", "avgpool")),
    ),
)
