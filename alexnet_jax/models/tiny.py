"""A tiny convolutional network for tests: every code path of a real backbone, in milliseconds.

    conv1  Conv 3->8, 3x3, stride 2, pad 1, no bias;  bn1;  ReLU
    conv2  Conv 8->16, 3x3, stride 2, pad 1, no bias;  bn2;  ReLU
    global average pool;  Dropout(dropout_rate);  fc  Linear -> num_classes

It has what the trainer must handle in the big models (BatchNorm statistics, frozen blocks,
dropout, a replaceable head, masked batch statistics) at a few thousand parameters, so trainer,
resume, signal, study, packing, SLURM, multihost and predict tests run in seconds and write
kilobyte checkpoints. It has no torchvision twin and no ImageNet weights.
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
    torch_uniform_init,
)
from alexnet_jax.models.spec import Block, ModelSpec, dense_head

WIDTHS = (8, 16)
MIN_INPUT_SIZE = 4


class TinyNet(nn.Module):
    """Two conv-BatchNorm-ReLU blocks and a linear head; blocks `block1`, `block2`."""

    num_classes: int = 1000
    dtype: Any = jnp.float32
    frozen: tuple[str, ...] = ()
    dropout_rate: float = 0.5

    @nn.compact
    def __call__(self, images: jax.Array, train: bool = False, *, mask=None, capture: bool = False):
        check_images(images, type(self).__name__, MIN_INPUT_SIZE)
        x = images.astype(self.dtype)
        blocks = {}
        for index, width in enumerate(WIDTHS, start=1):
            block = f"block{index}"
            x = conv(width, 3, stride=2, padding=1, bias=False, kernel_init=kaiming_normal_fan_out,
                     dtype=self.dtype, name=f"conv{index}")(x)  # fmt: skip
            frozen = not train or block in self.frozen
            x = nn.relu(BatchNorm(dtype=self.dtype, name=f"bn{index}")(x, frozen, mask))
            blocks[block] = x
        if capture:
            self.sow("intermediates", "blocks", blocks)
        x = jnp.mean(x, axis=(1, 2))
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        fan_in = x.shape[-1]
        x = nn.Dense(self.num_classes, kernel_init=torch_uniform_init(fan_in), bias_init=torch_uniform_init(fan_in),
                     dtype=self.dtype, param_dtype=jnp.float32, name="fc")(x)  # fmt: skip
        return x.astype(at_least_float32(self.dtype))


SPEC = ModelSpec(  # for tests only: the trainer's code paths at a few thousand parameters
    name="tiny",
    module=TinyNet,
    torch_head="fc",
    blocks=(Block("block1", ("conv1", "bn1"), "bn1"), Block("block2", ("conv2", "bn2"), "bn2")),
    batch_norm=True,
    min_input_size=MIN_INPUT_SIZE,
    options=("dropout_rate",),
    init_head=dense_head(WIDTHS[-1], torch_uniform_init(WIDTHS[-1]), torch_uniform_init(WIDTHS[-1])),
    torch=None,  # no torchvision twin, no ImageNet weights
    default_input_size=32,
)
