"""torchvision's ViT-B/16, layer for layer, as a Flax linen module.

    conv_proj               Conv 3->768, 16x16, stride 16: one token per patch
    class_token             (1, 1, 768), prepended to the tokens
    encoder.pos_embedding   (1, 197, 768), added; then dropout
    encoder.layers.encoder_layer_0-11
                            ln_1 (LayerNorm eps 1e-6), self_attention (12 heads), dropout, + input;
                            ln_2, mlp (Linear 768->3072 `0`, exact GELU, dropout, Linear -> 768 `3`,
                            dropout), + input
    encoder.ln              LayerNorm eps 1e-6
    heads.head              Linear 768 -> num_classes, on the class token

Top-level Flax names are the torchvision paths with '_' for '.': `encoder_layers_encoder_layer_0`,
`encoder_pos_embedding`, `heads_head`. torchvision's packed `self_attention.in_proj_weight`
(3*768, 768) is stored as three Dense layers `query`, `key`, `value`; `out_proj` keeps its name.

The position embeddings are stored for 224 px (a 14x14 grid). Another input size (square, a
multiple of 16) resizes the grid at apply time exactly as torchvision's `interpolate_embeddings`
does (bicubic, align_corners=True, the class token's embedding untouched), so the reference is
torchvision's own model built for that size and loaded with its interpolated weights.
Initialisation is torchvision's: see `init_*` below.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from alexnet_jax.models.layers import (
    at_least_float32,
    check_images,
    conv,
    layer_impls,
    layer_norm,
    normal_init,
    resolve_attention,
    torch_uniform_init,
    trunc_normal_init,
    xavier_uniform_init,
)
from alexnet_jax.models.spec import Block, ModelSpec, TorchSource, dense_head, torchvision_imagenet

PATCH_SIZE = 16
HIDDEN_DIM = 768
MLP_DIM = 3072
NUM_LAYERS = 12
NUM_HEADS = 12
NORM_EPS = 1e-6
STORED_IMAGE_SIZE = 224  # the size the position embeddings are stored for
MIN_INPUT_SIZE = PATCH_SIZE  # one patch: the grid is interpolated down to 1x1
BICUBIC_A = -0.75  # PyTorch's bicubic kernel coefficient


def bicubic_matrix(in_size: int, out_size: int) -> np.ndarray:
    """(out, in) weights of PyTorch's 1-D bicubic interpolation with align_corners=True.

    Sources sit at i * (in - 1) / (out - 1) (0 when out is 1); the four taps around each
    are clamped to the edge, as `upsample_bicubic2d` clamps them. 2-D bicubic is this matrix
    applied to rows and to columns.
    """

    def near(t):  # |t| <= 1
        return ((BICUBIC_A + 2) * t - (BICUBIC_A + 3)) * t * t + 1

    def far(t):  # 1 < |t| < 2
        return ((BICUBIC_A * t - 5 * BICUBIC_A) * t + 8 * BICUBIC_A) * t - 4 * BICUBIC_A

    scale = (in_size - 1) / (out_size - 1) if out_size > 1 else 0.0
    matrix = np.zeros((out_size, in_size), np.float64)
    for i in range(out_size):
        source = scale * i
        base = math.floor(source)
        t = source - base
        for offset, weight in zip((-1, 0, 1, 2), (far(t + 1), near(t), near(1 - t), far(2 - t)), strict=True):
            matrix[i, min(max(base + offset, 0), in_size - 1)] += weight
    return matrix.astype(np.float32)


def interpolate_pos_embedding(pos_embedding: jax.Array, grid: int) -> jax.Array:
    """torchvision's `interpolate_embeddings` at apply time: (1, 1 + g*g, D) -> (1, 1 + grid*grid, D)."""
    stored = math.isqrt(pos_embedding.shape[1] - 1)
    if grid == stored:
        return pos_embedding
    matrix = jnp.asarray(bicubic_matrix(stored, grid))
    image = pos_embedding[0, 1:].reshape(stored, stored, -1)
    resized = jnp.einsum("ih,hwd,jw->ijd", matrix, image, matrix, precision=jax.lax.Precision.HIGHEST)
    return jnp.concatenate([pos_embedding[:, :1], resized.reshape(1, grid * grid, -1)], axis=1)


class SelfAttention(nn.Module):
    """`nn.MultiheadAttention(768, 12, batch_first=True)` on (x, x, x), without attention weights out.

    Init as torch's: the packed in_proj is xavier_uniform_ over the whole (3*768, 768) matrix
    (so each of q/k/v has that matrix's bound) with zero biases; out_proj keeps Linear's default
    weight init and gets a zero bias.
    """

    num_heads: int
    attention_dropout_rate: float
    dtype: Any
    impl: str = "native"  # layers.ATTENTION_IMPLS, resolved: 'heads_first' is the same sums, faster on CPU

    @nn.compact
    def __call__(self, x, train: bool):
        batch, length, dim = x.shape
        head_dim = dim // self.num_heads
        packed_init = xavier_uniform_init(dim, 3 * dim)

        def project(name):
            dense = nn.Dense(dim, kernel_init=packed_init, dtype=self.dtype, param_dtype=jnp.float32, name=name)
            return dense(x).reshape(batch, length, self.num_heads, head_dim)

        query, key, value = project("query"), project("key"), project("value")
        heads_first = self.impl == "heads_first"
        if heads_first:  # (n, h, l, d): XLA:CPU's batched matmul wants the batch axes leading
            query, key, value = (t.transpose(0, 2, 1, 3) for t in (query, key, value))
            logits = query @ key.swapaxes(-1, -2) / math.sqrt(head_dim)
        else:
            logits = jnp.einsum("nqhd,nkhd->nhqk", query, key) / math.sqrt(head_dim)
        weights = jax.nn.softmax(logits.astype(at_least_float32(self.dtype)), axis=-1)
        weights = weights.astype(self.dtype)
        weights = nn.Dropout(self.attention_dropout_rate)(weights, deterministic=not train)
        if heads_first:
            out = (weights @ value).transpose(0, 2, 1, 3)
        else:
            out = jnp.einsum("nhqk,nkhd->nqhd", weights, value)
        out = out.reshape(batch, length, dim)
        return nn.Dense(
            dim, kernel_init=torch_uniform_init(dim), dtype=self.dtype, param_dtype=jnp.float32, name="out_proj"
        )(out)


class MLPBlock(nn.Module):
    """torchvision's MLPBlock: Linear (`0`), GELU, Dropout, Linear (`3`), Dropout; xavier_uniform_
    weights and N(0, 1e-6) biases."""

    mlp_dim: int
    dropout_rate: float
    dtype: Any

    @nn.compact
    def __call__(self, x, train: bool):
        dim = x.shape[-1]

        def linear(features, fan_in, name):
            return nn.Dense(
                features,
                kernel_init=xavier_uniform_init(fan_in, features),
                bias_init=normal_init(1e-6),
                dtype=self.dtype,
                param_dtype=jnp.float32,
                name=name,
            )

        x = nn.gelu(linear(self.mlp_dim, dim, "0")(x), approximate=False)
        x = nn.Dropout(self.dropout_rate)(x, deterministic=not train)
        x = linear(dim, self.mlp_dim, "3")(x)
        return nn.Dropout(self.dropout_rate)(x, deterministic=not train)


class EncoderBlock(nn.Module):
    dropout_rate: float
    attention_dropout_rate: float
    dtype: Any
    attention_impl: str = "native"

    @nn.compact
    def __call__(self, x, train: bool):
        y = layer_norm(NORM_EPS, self.dtype, "ln_1")(x)
        y = SelfAttention(
            NUM_HEADS, self.attention_dropout_rate, self.dtype, self.attention_impl, name="self_attention"
        )(y, train)
        x = x + nn.Dropout(self.dropout_rate)(y, deterministic=not train)
        y = layer_norm(NORM_EPS, self.dtype, "ln_2")(x)
        return x + MLPBlock(MLP_DIM, self.dropout_rate, self.dtype, name="mlp")(y, train)


class ViTB16(nn.Module):
    """torchvision's vit_b_16. Variables: {'params'}.

    `dropout_rate` and `attention_dropout_rate` are torchvision's `dropout` and
    `attention_dropout` (0 by default, as in its builder); with `train=True` they draw from
    the 'dropout' rng. `dtype` is the compute dtype; parameters stay float32, logits are
    float32. ViT has no BatchNorm: `frozen` and `mask` change nothing. With `capture`,
    'intermediates' receives {block name: its output} under 'blocks'. `conv_impl`
    (layers.FORMULATIONS): 'auto' computes the patch embedding as one reshape and matrix product
    on CPU (layers.Conv), and attention with the heads as a leading batch axis; XLA's convolution
    and one einsum per product elsewhere.
    """

    num_classes: int = 1000
    dropout_rate: float = 0.0
    attention_dropout_rate: float = 0.0
    dtype: Any = jnp.float32
    frozen: tuple[str, ...] = ()
    conv_impl: str = "auto"
    # layers.cpu_compiler_options; training at 224 px 0.71 -> 0.89 img/s, 64 px 12.2 -> 13.5 (eval keeps XLA's)
    CPU_YNN_FUSION: ClassVar[dict[str, str]] = {"train": "DOT,ELTWISE,REDUCE"}

    @nn.compact
    def __call__(self, images: jax.Array, train: bool = False, *, mask=None, capture: bool = False):
        del mask  # no batch statistics
        check_images(images, "ViTB16", MIN_INPUT_SIZE)
        height, width = images.shape[1:3]
        if height != width or height % PATCH_SIZE:
            raise ValueError(
                f"ViTB16 needs square images whose side is a multiple of {PATCH_SIZE} px "
                f"(torchvision's image_size), got {height}x{width}"
            )
        fan_in = 3 * PATCH_SIZE * PATCH_SIZE
        x = conv(
            HIDDEN_DIM,
            PATCH_SIZE,
            stride=PATCH_SIZE,
            kernel_init=trunc_normal_init(math.sqrt(1 / fan_in)),
            dtype=self.dtype,
            name="conv_proj",
            impl=layer_impls(self.conv_impl)["conv"],
        )(images.astype(self.dtype))
        batch, grid = x.shape[0], x.shape[1]
        x = x.reshape(batch, grid * grid, HIDDEN_DIM)  # row-major patches, as torch's reshape of NCHW
        class_token = self.param("class_token", nn.initializers.zeros, (1, 1, HIDDEN_DIM))
        x = jnp.concatenate([jnp.broadcast_to(class_token.astype(self.dtype), (batch, 1, HIDDEN_DIM)), x], axis=1)
        stored_length = (STORED_IMAGE_SIZE // PATCH_SIZE) ** 2 + 1
        pos_embedding = self.param("encoder_pos_embedding", normal_init(0.02), (1, stored_length, HIDDEN_DIM))
        x = x + interpolate_pos_embedding(pos_embedding, grid).astype(self.dtype)
        x = nn.Dropout(self.dropout_rate)(x, deterministic=not train)
        blocks = {"embedding": x}
        attention = resolve_attention(layer_impls(self.conv_impl)["attention"])
        for index in range(NUM_LAYERS):
            block = EncoderBlock(
                self.dropout_rate,
                self.attention_dropout_rate,
                self.dtype,
                attention,
                name=f"encoder_layers_encoder_layer_{index}",
            )
            x = block(x, train)
            blocks[f"encoder_layer_{index}"] = x
        x = layer_norm(NORM_EPS, self.dtype, "encoder_ln")(x)
        blocks["final_norm"] = x
        if capture:
            self.sow("intermediates", "blocks", blocks)
        head = nn.Dense(
            self.num_classes,
            kernel_init=nn.initializers.zeros,
            dtype=self.dtype,
            param_dtype=jnp.float32,
            name="heads_head",
        )
        return head(x[:, 0]).astype(at_least_float32(self.dtype))


BLOCKS = (
    Block("embedding", ("conv_proj", "class_token", "encoder.pos_embedding"), "encoder.dropout"),
    *(
        Block(f"encoder_layer_{i}", (f"encoder.layers.encoder_layer_{i}",), f"encoder.layers.encoder_layer_{i}")
        for i in range(NUM_LAYERS)
    ),
    Block("final_norm", ("encoder.ln",), "encoder.ln"),
)

SPEC = ModelSpec(
    name="vit_b_16",
    module=ViTB16,
    torch_head="heads.head",
    blocks=BLOCKS,
    batch_norm=False,
    min_input_size=MIN_INPUT_SIZE,
    options=("dropout_rate", "attention_dropout_rate", "conv_impl"),
    init_head=dense_head(HIDDEN_DIM, nn.initializers.zeros),
    torch=TorchSource(
        builder="vit_b_16",
        imagenet=torchvision_imagenet("ViT_B_16_Weights.IMAGENET1K_V1", "vit_b_16-c867db91.pth"),
        parity_sizes=((224, 224), (160, 160)),  # 160 px: the 14x14 grid interpolated to 10x10
        size_argument="image_size",
    ),
    input_multiple=PATCH_SIZE,
)
