"""What the torchvision ports share: PyTorch's initialisers, its BatchNorm and LayerNorm, stochastic depth.

Each piece follows PyTorch's semantics rather than Flax's defaults where the two differ, so
that converted weights give torchvision's numbers and the scratch arm starts where
torchvision's would. Images are NHWC throughout, so "LayerNorm2d" is a LayerNorm over the
last axis.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

# --------------------------------------------------------------------------- initialisers
# Flax kernels are HWIO (conv) or (in, out) (dense); torch's fans are computed on OIHW / (out, in).


def torch_uniform_init(fan_in: int):
    """PyTorch's default Conv2d/Linear init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

    kaiming_uniform_(a=sqrt(5)) for weights reduces to this bound, and biases use it too.
    """
    bound = 1.0 / math.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def kaiming_normal_fan_out(key, shape, dtype=jnp.float32):
    """`kaiming_normal_(mode="fan_out", nonlinearity="relu")` for an HWIO kernel: N(0, 2 / (kh * kw * out))."""
    fan_out = int(np.prod(shape[:-2])) * shape[-1]
    return jax.random.normal(key, shape, dtype) * math.sqrt(2.0 / fan_out)


def trunc_normal_init(std: float, lower: float = -2.0, upper: float = 2.0):
    """`torch.nn.init.trunc_normal_(std=std)`: its bounds a=-2, b=2 are absolute values, not multiples of std."""

    def init(key, shape, dtype=jnp.float32):
        return jax.random.truncated_normal(key, lower / std, upper / std, shape, dtype) * std

    return init


def xavier_uniform_init(fan_in: int, fan_out: int):
    """`xavier_uniform_`: U(-b, b), b = sqrt(6 / (fan_in + fan_out)). The fans are explicit because a
    torch matrix that Flax stores in pieces (the packed q/k/v projection) keeps the whole matrix's fans."""
    bound = math.sqrt(6.0 / (fan_in + fan_out))

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def normal_init(std: float):
    def init(key, shape, dtype=jnp.float32):
        return jax.random.normal(key, shape, dtype) * std

    return init


# --------------------------------------------------------------------------- layers


def at_least_float32(dtype) -> jnp.dtype:
    """The dtype of logits and of normalisation statistics: float32 for float32 and bfloat16 compute,
    float64 for float64 (with jax_enable_x64, for precision checks)."""
    return jnp.promote_types(dtype, jnp.float32)


def check_images(images: jax.Array, model: str, min_size: int) -> None:
    """Refuse what torchvision would refuse (or silently misread): not NHWC RGB, or too small."""
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"{model} expects NHWC images with 3 channels, got shape {images.shape}")
    if min(images.shape[1:3]) < min_size:
        raise ValueError(
            f"{model} needs images of at least {min_size}x{min_size} px, got {images.shape[1]}x{images.shape[2]}"
        )


def conv(
    features: int,
    kernel: int,
    *,
    stride: int = 1,
    padding: int = 0,
    groups: int = 1,
    bias: bool = True,
    kernel_init,
    bias_init=nn.initializers.zeros,
    dtype: Any,
    name: str,
    impl: str = "native",
) -> nn.Conv:
    """`torch.nn.Conv2d(..., kernel, stride, padding, groups, bias)` on NHWC, float32 parameters; `impl`
    (CONV_IMPLS) may compute it as patches plus one matrix product on CPU (`Conv`)."""
    return Conv(
        features,
        (kernel, kernel),
        strides=(stride, stride),
        padding=((padding, padding), (padding, padding)),
        feature_group_count=groups,
        use_bias=bias,
        kernel_init=kernel_init,
        bias_init=bias_init,
        dtype=dtype,
        param_dtype=jnp.float32,
        name=name,
        impl=impl,
    )


def layer_norm(epsilon: float, dtype: Any, name: str) -> nn.LayerNorm:
    """`torch.nn.LayerNorm` (and torchvision's LayerNorm2d on NHWC): statistics in float32 by the
    two-pass variance, as torch computes them, not Flax's default E[x^2] - E[x]^2."""
    return nn.LayerNorm(epsilon=epsilon, use_fast_variance=False, dtype=dtype, param_dtype=jnp.float32, name=name)


def stochastic_depth(rate: float) -> nn.Dropout:
    """torchvision's `StochasticDepth(rate, "row")` for NHWC or (N, L, C) inputs: each example's whole
    residual branch is zeroed with probability `rate`, the survivors scaled by 1 / (1 - rate).
    That is Flax's Dropout with a mask broadcast over every axis but the batch; it draws from the
    'dropout' rng and is the identity when deterministic."""
    return nn.Dropout(rate, broadcast_dims=(1, 2, 3))


def global_avg_pool(x: jax.Array) -> jax.Array:
    """`AdaptiveAvgPool2d(1)` on NHWC, keeping the 1x1 spatial axes as torch does."""
    return jnp.mean(x, axis=(1, 2), keepdims=True)


class BatchNorm(nn.Module):
    """`torch.nn.BatchNorm2d` (eps 1e-5, momentum 0.1) on NHWC, written out because Flax's differs.

    With `use_running_average`, it normalises with the running statistics and leaves them alone.
    Otherwise it normalises with the batch's mean and biased variance and, like PyTorch, moves
    the running variance towards the *unbiased* one (n / (n - 1) times the biased), where Flax
    stores the biased one. Under one `jax.jit` over a device mesh with the batch sharded, the
    statistics are those of the global batch (SyncBatchNorm's, not plain DDP's per-device ones).
    `mask` (N,) excludes padded examples from the statistics. Statistics are two-pass, in float32
    or wider.
    """

    momentum: float = 0.1  # PyTorch's convention: running = (1 - momentum) * running + momentum * batch
    epsilon: float = 1e-5
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, use_running_average: bool, mask: jax.Array | None = None) -> jax.Array:
        features = x.shape[-1]
        scale = self.param("scale", nn.initializers.ones, (features,), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (features,), jnp.float32)
        running_mean = self.variable("batch_stats", "mean", lambda: jnp.zeros((features,), jnp.float32))
        running_var = self.variable("batch_stats", "var", lambda: jnp.ones((features,), jnp.float32))
        compute = at_least_float32(self.dtype)
        xc = x.astype(compute)
        if use_running_average:
            mean, var = running_mean.value, running_var.value
        else:
            axes = tuple(range(x.ndim - 1))
            per_example = int(np.prod(x.shape[1:-1]))
            if mask is None:
                count = x.shape[0] * per_example
                if count < 2:
                    raise ValueError(
                        f"BatchNorm in train mode needs more than 1 value per channel, got input shape {x.shape} "
                        "(as torch, which refuses it too)"
                    )
                mean = jnp.mean(xc, axes)
                var = jnp.mean(jnp.square(xc - mean), axes)
            else:
                weights = mask.astype(compute).reshape((-1,) + (1,) * (x.ndim - 1))
                count = jnp.sum(mask.astype(compute)) * per_example
                mean = jnp.sum(xc * weights, axes) / count
                var = jnp.sum(jnp.square(xc - mean) * weights, axes) / count
            if not self.is_initializing():
                unbiased = var * (count / jnp.maximum(count - 1, 1))
                running_mean.value = (1 - self.momentum) * running_mean.value + self.momentum * mean
                running_var.value = (1 - self.momentum) * running_var.value + self.momentum * unbiased
        multiplier = scale * jax.lax.rsqrt(var + self.epsilon)
        y = (xc - mean) * multiplier + bias
        return y.astype(self.dtype)


# --------------------------------------------------------------------------- depthwise and 1x1 convolutions
# XLA:CPU runs both through slow paths (docs/performance.md, EfficientNet-Lite): a grouped convolution
# with one channel per group (10-50x slower to train than k*k shifted multiply-adds), and the weight
# gradient of a 1x1 convolution, which it rewrites into a whole-image convolution between transposed
# copies. On CPU these layers compute the same sums another way; elsewhere cuDNN's (or the TPU's)
# own convolution stays.

DEPTHWISE_IMPLS = ("auto", "native", "shifted")
POINTWISE_IMPLS = ("auto", "native", "matmul")
CONV_IMPLS = ("auto", "native", "patches")
ATTENTION_IMPLS = ("auto", "native", "heads_first")  # vit.SelfAttention
FORMULATIONS = ("auto", "native", "fast")  # the models' one switch, `conv_impl`


def layer_impls(conv_impl: str) -> dict[str, str]:
    """The per-layer impls of a model's `conv_impl`: 'auto' lets each layer pick by backend (and size),
    'native' is XLA's convolution everywhere, 'fast' the CPU formulation everywhere, on any backend."""
    if conv_impl not in FORMULATIONS:
        raise ValueError(f"conv_impl={conv_impl!r}: use one of {', '.join(FORMULATIONS)}")
    if conv_impl == "fast":
        return {"conv": "patches", "depthwise": "shifted", "pointwise": "matmul", "attention": "heads_first"}
    return dict.fromkeys(("conv", "depthwise", "pointwise", "attention"), conv_impl)


def resolved_formulation(conv_impl: str) -> str:
    """What `conv_impl` amounts to on this process's backend: 'native', or 'fast' (CPU formulations,
    dense convolutions by `patches_pays` size rule), as results and the bench record it."""
    layer_impls(conv_impl)  # validates
    if conv_impl == "auto":
        return "fast" if jax.default_backend() == "cpu" else "native"
    return conv_impl


# XLA:CPU hands matrix products to its YNN library, fused with the elementwise work (ELTWISE) and the
# reductions (REDUCE) around them or alone (INDIVIDUAL_DOT); a fusion's inputs are written out in full
# first. Which types pay depends on the model and the program, so each model names its own, measured
# (docs/performance.md, "XLA:CPU's library fusions"): `CPU_YNN_FUSION = {"train": ..., "forward": ...}`.
YNN_FUSION_TYPES = ("DOT", "INDIVIDUAL_DOT", "ELTWISE", "REDUCE")
PROGRAMS = ("train", "forward")  # a train step; a forward-only program (evaluation, prediction)


def cpu_compiler_options(model: nn.Module, program: str) -> dict[str, str] | None:
    """XLA options for `model`'s jitted `program` (PROGRAMS): the YNN fusion types its `CPU_YNN_FUSION`
    names for it, on CPU where its `conv_impl` resolves to 'fast'; None (XLA's defaults) for models that
    name none, on other backends, under 'native', or where this jaxlib does not know the option."""
    if program not in PROGRAMS:
        raise ValueError(f"program={program!r}: use one of {', '.join(PROGRAMS)}")
    types = getattr(type(model), "CPU_YNN_FUSION", {}).get(program)
    if not types or jax.default_backend() != "cpu" or resolved_formulation(model.conv_impl) != "fast":
        return None
    options = _ynn_fusion_option(types)
    return dict(options) if options else None


def cpu_compiler_options_by_program(model: nn.Module) -> dict[str, dict[str, str]]:
    """{program: its options} for each program that has any: what results.json and the bench record."""
    return {p: options for p in PROGRAMS if (options := cpu_compiler_options(model, p))}


@functools.cache
def _ynn_fusion_option(types: str) -> dict[str, str] | None:
    unknown = set(types.split(",")) - set(YNN_FUSION_TYPES)
    if unknown:
        raise ValueError(f"CPU_YNN_FUSION {types!r}: {', '.join(sorted(unknown))} unknown; use {YNN_FUSION_TYPES}")
    options = {"xla_cpu_experimental_ynn_fusion_type": ",".join(f"LIBRARY_FUSION_TYPE_{t}" for t in types.split(","))}
    try:
        jax.jit(lambda x: x @ x, compiler_options=options).lower(np.ones((2, 2), np.float32)).compile()
    except Exception:  # another jaxlib: the option or its values are unknown there; keep XLA's defaults
        return None
    return options


def resolve_depthwise(impl: str) -> str:
    """'auto' -> 'shifted' on CPU, 'native' elsewhere."""
    return _resolve(impl, DEPTHWISE_IMPLS, "depthwise", cpu="shifted")


def resolve_pointwise(impl: str) -> str:
    """'auto' -> 'matmul' on CPU, 'native' elsewhere."""
    return _resolve(impl, POINTWISE_IMPLS, "pointwise", cpu="matmul")


def resolve_attention(impl: str) -> str:
    """'auto' -> 'heads_first' on CPU, 'native' elsewhere."""
    return _resolve(impl, ATTENTION_IMPLS, "attention", cpu="heads_first")


def _resolve(impl: str, impls: tuple[str, ...], what: str, cpu: str) -> str:
    if impl not in impls:
        raise ValueError(f"{what}={impl!r}: use one of {', '.join(impls)}")
    if impl == "auto":
        return cpu if jax.default_backend() == "cpu" else "native"
    return impl


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's "SAME" padding of one axis (timm's `pad_type='same'`): the odd pixel goes last."""
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class DepthwiseConv(nn.Module):
    """A k x k convolution with one filter per channel (torch `groups=C`), on NHWC, with a bias if `use_bias`.

    The kernel is HWIO (k, k, 1, C), as nn.Conv stores it, whichever `impl` computes it:
    'native' is XLA's grouped convolution, 'shifted' the sum of k*k strided slices of the padded
    input times one kernel tap each (the same numbers up to float rounding, faster on XLA:CPU).
    `padding` is "SAME" (TensorFlow's) or a symmetric pixel count.
    """

    kernel_size: int
    stride: int = 1
    padding: str | int = "SAME"
    impl: str = "auto"
    kernel_init: Any = nn.initializers.lecun_normal()
    dtype: Any = jnp.float32
    use_bias: bool = False
    bias_init: Any = nn.initializers.zeros

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        y = self._convolve(x)
        if self.use_bias:  # added as nn.Conv adds it (a reshape, not a broadcast): the native program is nn.Conv's
            bias = self.param("bias", self.bias_init, (x.shape[-1],), jnp.float32).astype(self.dtype)
            y = y + jnp.reshape(bias, (1,) * (y.ndim - 1) + bias.shape)
        return y

    def _convolve(self, x: jax.Array) -> jax.Array:
        k, s, channels = self.kernel_size, self.stride, x.shape[-1]
        kernel = self.param("kernel", self.kernel_init, (k, k, 1, channels), jnp.float32).astype(self.dtype)
        x = x.astype(self.dtype)
        if self.padding == "SAME":
            pads = [same_padding(x.shape[1], k, s), same_padding(x.shape[2], k, s)]
        else:
            pads = [(int(self.padding),) * 2] * 2
        if resolve_depthwise(self.impl) == "native":
            return jax.lax.conv_general_dilated(
                x, kernel, (s, s), pads, dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=channels
            )
        return shifted_depthwise(jnp.pad(x, [(0, 0), *pads, (0, 0)]), kernel[:, :, 0, :], s)


def shifted_slice(x: jax.Array, dy: int, dx: int, out_h: int, out_w: int, stride: tuple[int, int]) -> jax.Array:
    """The (out_h, out_w) window of NHWC `x` that a kernel's tap (dy, dx) sees at `stride` (rows, columns)."""
    sh, sw = stride
    return x[:, dy : dy + (out_h - 1) * sh + 1 : sh, dx : dx + (out_w - 1) * sw + 1 : sw, :]


def _taps(xp: jax.Array, w: jax.Array, stride: int) -> jax.Array:
    """sum over (dy, dx) of the stride-`stride` slice of the padded NHWC `xp` at (dy, dx) times w[dy, dx]."""
    k, s = w.shape[0], stride
    out_h, out_w = (xp.shape[1] - k) // s + 1, (xp.shape[2] - k) // s + 1
    out = None
    for dy in range(k):
        for dx in range(k):
            tap = shifted_slice(xp, dy, dx, out_h, out_w, (s, s)) * w[dy, dx]
            out = tap if out is None else out + tap
    return out


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def shifted_depthwise(xp: jax.Array, w: jax.Array, stride: int) -> jax.Array:
    """A depthwise convolution of the padded NHWC `xp` with the (k, k, C) kernel `w`, as k*k shifted
    multiply-adds. Its gradient is written out (input: the same taps over the dilated, padded output
    gradient with the flipped kernel; kernel: one reduction per tap), because with JAX's own XLA:CPU
    wrote every broadcast kernel tap out as a full-size array and padded the output gradient once
    per tap (2.5 s of ConvNeXt-Tiny's 13.8 s train step at 224 px, batch 16)."""
    return _taps(xp, w, stride)


def _shifted_depthwise_fwd(xp, w, stride):
    return _taps(xp, w, stride), (xp, w)


def _shifted_depthwise_bwd(stride, residuals, grad):
    xp, w = residuals
    k, s = w.shape[0], stride
    (out_h, out_w), (in_h, in_w) = grad.shape[1:3], xp.shape[1:3]
    dilated = [
        (0, 0, 0),
        (k - 1, in_h - (out_h - 1) * s - 1, s - 1),
        (k - 1, in_w - (out_w - 1) * s - 1, s - 1),
        (0, 0, 0),
    ]
    grad_xp = _taps(jax.lax.pad(grad, jnp.zeros((), grad.dtype), dilated), w[::-1, ::-1], 1)
    return grad_xp, _kernel_gradient(xp, grad, k, s).astype(w.dtype)


_CHANNEL_SLAB_BYTES = 256 * 1024  # a group of channels' input and output gradient: about one core's L2


def channel_group(channels: int, per_channel_bytes: int) -> int:
    """The most channels, a divisor of `channels`, whose data fit in _CHANNEL_SLAB_BYTES (at least one)."""
    fits = max(1, _CHANNEL_SLAB_BYTES // per_channel_bytes)
    return max(d for d in range(1, min(fits, channels) + 1) if channels % d == 0)


def _kernel_gradient(xp: jax.Array, grad: jax.Array, k: int, s: int) -> jax.Array:
    """(k, k, C): tap (dy, dx)'s sum over (n, y, x) of the padded input's shifted slice times `grad`.

    Channel-first, a few channels at a time (lax.map), so the k*k passes over each group's data hit
    the cache: summed over NHWC at once, each tap's pass read both arrays from memory (ConvNeXt-Tiny's
    stage-1 kernel gradient: 396 ms -> 98 ms at batch 16, 224 px; docs/performance.md)."""
    channels, (out_h, out_w) = xp.shape[-1], grad.shape[1:3]
    per_channel = math.prod(xp.shape[:3]) * xp.dtype.itemsize + math.prod(grad.shape[:3]) * grad.dtype.itemsize
    group = channel_group(channels, per_channel)

    def channel_first(a):  # (C // group, group, N, H, W)
        return a.transpose(3, 0, 1, 2).reshape(channels // group, group, *a.shape[:3])

    def sums(slabs):
        x, g = slabs
        taps = [
            x[:, :, dy : dy + (out_h - 1) * s + 1 : s, dx : dx + (out_w - 1) * s + 1 : s]
            for dy in range(k)
            for dx in range(k)
        ]
        return jnp.stack([jnp.sum(tap * g, axis=(1, 2, 3)) for tap in taps])  # (k * k, group)

    per_group = jax.lax.map(sums, (channel_first(xp), channel_first(grad)))  # (C // group, k * k, group)
    return per_group.transpose(1, 0, 2).reshape(k, k, channels)


shifted_depthwise.defvjp(_shifted_depthwise_fwd, _shifted_depthwise_bwd)


class PointwiseConv(nn.Module):
    """A 1x1 convolution (optionally strided, no padding) on NHWC with an HWIO (1, 1, in, out) kernel, as
    nn.Conv stores it. 'native' is XLA's convolution; 'matmul' the same sums as one (pixels, in) x (in, out)
    matrix product, whose gradients are plain matrix products too (XLA:CPU turns a 1x1 convolution's
    weight gradient into a whole-image convolution between transposed copies, twice as slow here)."""

    features: int
    stride: int = 1
    use_bias: bool = False
    impl: str = "auto"
    kernel_init: Any = nn.initializers.lecun_normal()
    bias_init: Any = nn.initializers.zeros
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        s, inputs = self.stride, x.shape[-1]
        kernel = self.param("kernel", self.kernel_init, (1, 1, inputs, self.features), jnp.float32)
        x, kernel = x.astype(self.dtype), kernel.astype(self.dtype)
        if resolve_pointwise(self.impl) == "native":
            y = jax.lax.conv_general_dilated(x, kernel, (s, s), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        else:
            x = x[:, ::s, ::s, :] if s > 1 else x
            y = (x.reshape(-1, inputs) @ kernel.reshape(inputs, self.features)).reshape(*x.shape[:3], self.features)
        if self.use_bias:
            y = y + self.param("bias", self.bias_init, (self.features,), jnp.float32).astype(self.dtype)
        return y


def patches_pays(kernel: tuple[int, int], stride: tuple[int, int], in_channels: int, out_pixels: int) -> bool:
    """Whether 'auto' computes a dense convolution as patches plus one matrix product on CPU.

    Measured forward + backward, batch 32, float32, on the shared 2-core EPYC VM (loaded; +-30 %),
    native ms -> patches ms: 1x1 (a matmul) 1.3-4x faster at every ResNet-50 shape; non-overlapping
    windows (kernel == stride: ViT's 16x16 patch embedding 1681 -> 364, ConvNeXt's 4x4 stem 258 -> 202,
    its 2x2 downsample 192->384 at 28 px 917 -> 396) always; 3x3 at small outputs (64 px crops:
    512 ch at 2x2 2887 -> 52, 256->512 s2 to 2x2 514 -> 32, 128 ch at 8x8 about equal); 3x3 and the
    7x7 stem with few input channels at 224 px (64 ch at 56x56 3436 -> 2028, 64->128 s2 2158 -> 950,
    128 ch at 28x28 3455 -> 2028, stem 4930 -> 3436). It lost only with many channels at middling
    size (3x3 256 ch at 14x14: 624-820 -> 716-1523) and for AlexNet's 11x11 stride-4 stem (64 px
    crops: 52 -> 74), which keep the native convolution; AlexNet's 5x5 at 7x7 gains (62 -> 39).
    At 224 px, batch 16, AlexNet's 5x5 64 -> 192 at 27x27 loses (fwd 87 -> 192, fwd + bwd 273 -> 337),
    so beyond 3x3 only a stem on few channels (RGB) takes patches at large outputs.
    """
    if kernel == (1, 1) or kernel == stride:
        return True
    if max(kernel) > 7:
        return False
    if out_pixels <= 64:
        return True
    return in_channels <= (128 if max(kernel) <= 3 else 4)


def resolve_conv(impl: str, kernel, stride, in_channels: int, out_pixels: int) -> str:
    """'auto' -> 'patches' on CPU where `patches_pays`, 'native' elsewhere."""
    if _resolve(impl, CONV_IMPLS, "conv", cpu="patches") == "native":
        return "native"
    if impl == "auto" and not patches_pays(tuple(kernel), tuple(stride), in_channels, out_pixels):
        return "native"
    return "patches"


def extract_patches(x: jax.Array, kernel: tuple[int, int], stride: tuple[int, int]) -> jax.Array:
    """(N, Ho, Wo, kh * kw * C) patches of an already padded NHWC `x`, ordered (dy, dx, c) as an HWIO
    kernel reshapes to (kh * kw * C, out). Non-overlapping windows are one reshape and transpose;
    others kh * kw strided slices concatenated, whose gradients are pads and adds."""
    (kh, kw), (sh, sw) = kernel, stride
    n, h, w, c = x.shape
    out_h, out_w = (h - kh) // sh + 1, (w - kw) // sw + 1
    if (kh, kw) == (sh, sw):
        x = x[:, : out_h * kh, : out_w * kw, :].reshape(n, out_h, kh, out_w, kw, c)
        return x.transpose(0, 1, 3, 2, 4, 5).reshape(n, out_h, out_w, kh * kw * c)
    taps = [shifted_slice(x, dy, dx, out_h, out_w, (sh, sw)) for dy in range(kh) for dx in range(kw)]
    return taps[0] if len(taps) == 1 else jnp.concatenate(taps, axis=-1)


class Conv(nn.Conv):
    """nn.Conv (same parameters, same numbers up to float rounding) that on CPU may compute a dense
    convolution as patches plus one (pixels, kh * kw * in) x (kh * kw * in, out) matrix product, whose
    gradients are matrix products and slices too. `impl`: CONV_IMPLS; 'native' is nn.Conv itself, so
    the program off CPU is unchanged. Grouped convolutions and other paddings stay native."""

    impl: str = "native"

    def __call__(self, inputs: jax.Array) -> jax.Array:
        kernel, stride = tuple(self.kernel_size), self.strides or 1
        stride = (stride, stride) if isinstance(stride, int) else tuple(stride)
        padding = self.padding
        plain = (
            self.feature_group_count == 1
            and inputs.ndim == 4
            and not isinstance(padding, str)
            and all(len(pair) == 2 for pair in padding)
            and self.kernel_dilation in (None, 1, (1, 1))
            and self.input_dilation in (None, 1, (1, 1))
        )
        if plain:
            h = (inputs.shape[1] + sum(padding[0]) - kernel[0]) // stride[0] + 1
            w = (inputs.shape[2] + sum(padding[1]) - kernel[1]) // stride[1] + 1
            plain = resolve_conv(self.impl, kernel, stride, inputs.shape[-1], h * w) == "patches"
        if not plain:
            return super().__call__(inputs)
        return self._patches(inputs, kernel, stride, padding)

    @nn.compact
    def _patches(self, inputs, kernel, stride, padding):
        in_features = inputs.shape[-1]
        weights = self.param("kernel", self.kernel_init, (*kernel, in_features, self.features), self.param_dtype)
        x, weights = inputs.astype(self.dtype), weights.astype(self.dtype)
        x = jnp.pad(x, [(0, 0), tuple(padding[0]), tuple(padding[1]), (0, 0)])
        patches = extract_patches(x, kernel, stride)
        y = patches @ weights.reshape(-1, self.features)
        if self.use_bias:
            y = y + self.param("bias", self.bias_init, (self.features,), self.param_dtype).astype(self.dtype)
        return y


def goog_conv_init(depthwise: bool = False):
    """timm's `_init_weight_goog` for convolutions (TensorFlow's EfficientNet): N(0, 2 / fan_out),
    fan_out = kh * kw * out / groups for an HWIO kernel (kh * kw for a depthwise one)."""

    def init(key, shape, dtype=jnp.float32):
        fan_out = shape[0] * shape[1] * (1 if depthwise else shape[-1])
        return jax.random.normal(key, shape, dtype) * math.sqrt(2.0 / fan_out)

    return init
