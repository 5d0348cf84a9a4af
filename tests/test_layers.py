"""The CPU formulations of models.layers against XLA's own convolutions: the same outputs and gradients.

DepthwiseConv 'shifted' (k*k shifted multiply-adds, differentiated by JAX), PointwiseConv 'matmul'
(a 1x1 convolution as one matrix product) and Conv 'patches' (patches plus one matrix product)
replace XLA's grouped, 1x1 and small dense convolutions on CPU
(docs/performance.md). Both must compute the same function: outputs, input gradients and kernel
gradients within float32 rounding of 'native', at odd sizes, both strides, kernels 3 and 5,
TensorFlow's "SAME" padding and a symmetric one.
"""

from __future__ import annotations

from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from alexnet_jax.models import layers

TOLERANCE = 1e-5  # relative to the largest magnitude of each compared array


def _outputs_and_grads(module, x: jax.Array, seed: int = 1):
    """The module's output and the gradients of <output, a fixed random cotangent> by input and by kernel."""
    variables = module.init(jax.random.key(0), x)
    y = module.apply(variables, x)
    cotangent = jax.random.normal(jax.random.key(seed), y.shape, y.dtype)

    def loss(params, x):
        return jnp.sum(module.apply({"params": params}, x) * cotangent)

    grad_params, grad_x = jax.grad(loss, argnums=(0, 1))(variables["params"], x)
    return y, grad_x, grad_params


def _assert_close(ours, reference, name: str):
    ours, reference = np.asarray(ours, np.float64), np.asarray(reference, np.float64)
    assert ours.shape == reference.shape, name
    scale = max(np.max(np.abs(reference)), 1e-30)
    assert np.max(np.abs(ours - reference)) / scale <= TOLERANCE, name


def _assert_same_function(make, impl: str, x):
    """make(impl) and make('native'): outputs, input gradients and parameter gradients within TOLERANCE."""
    ours, native = _outputs_and_grads(make(impl), x), _outputs_and_grads(make("native"), x)
    for name, a, b in zip(("output", "input gradient", "parameter gradients"), ours, native, strict=True):
        jax.tree.map(lambda a, b, name=name: _assert_close(a, b, f"{impl}: {name}"), a, b)


@pytest.mark.parametrize("kernel", (3, 5))
@pytest.mark.parametrize("stride", (1, 2))
@pytest.mark.parametrize(("height", "width"), ((7, 10), (8, 5), (2, 3), (1, 1)))
def test_depthwise_shifted_matches_xla_convolution(kernel, stride, height, width):
    """'shifted' against XLA's grouped convolution with TF's "SAME" padding: odd and even sides, images
    smaller than the kernel, the odd padding pixel at the end."""
    x = jax.random.normal(jax.random.key(2), (2, height, width, 6))

    def make(impl):
        return layers.DepthwiseConv(kernel, stride, "SAME", impl, nn_normal())

    _assert_same_function(make, "shifted", x)


@pytest.mark.parametrize(("kernel", "stride", "padding"), ((3, 1, 1), (3, 2, 1), (5, 2, 2), (5, 1, 0), (3, 2, 3)))
def test_depthwise_shifted_with_symmetric_padding(kernel, stride, padding):
    x = jax.random.normal(jax.random.key(3), (3, 9, 6, 4))
    _assert_same_function(lambda impl: layers.DepthwiseConv(kernel, stride, padding, impl, nn_normal()), "shifted", x)


def test_channel_groups_of_the_kernel_gradient_fit_the_cache():
    """ConvNeXt-Tiny's four stages at 224 px, batch 16 (bytes of one channel's padded input and output
    gradient): the groups measured fastest there; never a non-divisor, never none."""
    kib = 1024
    assert [layers.channel_group(c, b) for c, b in ((96, 446 * kib), (192, 124 * kib), (384, 38 * kib))] == [1, 2, 6]
    assert layers.channel_group(768, 14 * kib) == 16 and layers.channel_group(7, 100 * kib) == 1
    assert layers.channel_group(7, kib) == 7 and layers.channel_group(7, 10**9) == 1
    assert layers.channel_group(9, 64 * kib) == 3


@pytest.mark.parametrize("group", (1, 2))
@pytest.mark.parametrize("stride", (1, 2))
def test_depthwise_kernel_gradient_by_channel_groups(monkeypatch, group, stride):
    """The kernel gradient summed a group of channels at a time (as the big layers are) is the same."""
    monkeypatch.setattr(layers, "channel_group", lambda channels, per_channel_bytes: group)
    x = jax.random.normal(jax.random.key(5), (2, 9, 7, 6))
    _assert_same_function(lambda impl: layers.DepthwiseConv(5, stride, "SAME", impl, nn_normal()), "shifted", x)


@pytest.mark.parametrize(("stride", "bias"), ((1, False), (2, False), (1, True), (2, True)))
def test_pointwise_matmul_matches_xla_convolution(stride, bias):
    x = jax.random.normal(jax.random.key(4), (3, 7, 5, 6))
    make = lambda impl: layers.PointwiseConv(10, stride, bias, impl, nn_normal(), nn_normal())  # noqa: E731
    _assert_same_function(make, "matmul", x)


@pytest.mark.parametrize(
    ("kernel", "stride", "padding", "height", "width"),
    (
        (3, 1, 1, 7, 10),  # ResNet's 3x3
        (3, 2, 1, 9, 6),  # its strided 3x3, odd sides
        (7, 2, 3, 11, 8),  # its stem
        (3, 1, 1, 2, 2),  # layer4 at 64 px crops
        (5, 1, 2, 3, 5),  # AlexNet's 5x5, image smaller than the kernel
        (11, 4, 2, 13, 17),  # AlexNet's stem
        (4, 4, 0, 9, 13),  # ConvNeXt's stem: non-overlapping windows, sides not multiples of 4
        (2, 2, 0, 5, 4),  # its downsample
        (1, 2, 0, 5, 7),  # a strided 1x1 (ResNet's downsample)
    ),
)
@pytest.mark.parametrize("bias", (False, True))
def test_conv_patches_matches_xla_convolution(kernel, stride, padding, height, width, bias):
    """Conv 'patches' (patches plus one matrix product) against nn.Conv itself, parameters shared."""
    x = jax.random.normal(jax.random.key(6), (2, height, width, 5))

    def make(impl):
        pads = ((padding, padding), (padding, padding))
        return layers.Conv(7, (kernel, kernel), strides=(stride, stride), padding=pads, use_bias=bias,
                           kernel_init=nn_normal(), bias_init=nn_normal(), impl=impl)  # fmt: skip

    _assert_same_function(make, "patches", x)


def test_conv_native_is_flax_conv_and_grouped_stays_native():
    """'native' is nn.Conv's own program; a grouped convolution (no patches form) stays native under 'patches'."""
    x = jax.random.normal(jax.random.key(7), (2, 6, 6, 4))
    flax_conv = nn.Conv(3, (3, 3), padding=((1, 1), (1, 1)))
    ours = layers.Conv(3, (3, 3), padding=((1, 1), (1, 1)), impl="native")
    variables = flax_conv.init(jax.random.key(0), x)
    assert jax.jit(ours.apply).lower(variables, x).as_text() == jax.jit(flax_conv.apply).lower(variables, x).as_text()
    grouped = layers.Conv(4, (3, 3), padding=((1, 1), (1, 1)), feature_group_count=2, impl="patches")
    _assert_close(grouped.apply(variables := grouped.init(jax.random.key(0), x), x),
                  grouped.clone(impl="native").apply(variables, x), "grouped")  # fmt: skip


def test_depthwise_with_bias_matches_xla_convolution():
    """ConvNeXt's depthwise 7x7 with a bias, as torch's Conv2d(groups=C): 'shifted' == 'native', and the
    parameters are nn.Conv's (kernel (7, 7, 1, C), bias (C,))."""
    x = jax.random.normal(jax.random.key(8), (2, 5, 6, 4))

    def make(impl):
        return layers.DepthwiseConv(7, 1, 3, impl, nn_normal(), use_bias=True, bias_init=nn_normal())

    _assert_same_function(make, "shifted", x)
    shapes = jax.tree.map(jnp.shape, make("shifted").init(jax.random.key(0), x)["params"])
    reference = nn.Conv(4, (7, 7), padding=((3, 3), (3, 3)), feature_group_count=4).init(jax.random.key(0), x)
    assert shapes == jax.tree.map(jnp.shape, reference["params"]) == {"kernel": (7, 7, 1, 4), "bias": (4,)}


def test_patches_pays_rule_and_formulation_names():
    """The measured size rule (layers.patches_pays) and the models' one switch."""
    assert layers.patches_pays((1, 1), (1, 1), 2048, 3136) and layers.patches_pays((16, 16), (16, 16), 3, 196)
    assert layers.patches_pays((3, 3), (1, 1), 512, 4) and layers.patches_pays((7, 7), (2, 2), 3, 112 * 112)
    assert not layers.patches_pays((3, 3), (1, 1), 256, 14 * 14) and not layers.patches_pays((11, 11), (4, 4), 3, 225)
    assert layers.patches_pays((5, 5), (1, 1), 64, 7 * 7) and not layers.patches_pays((5, 5), (1, 1), 64, 27 * 27)
    on_cpu = jax.default_backend() == "cpu"
    assert layers.resolve_conv("auto", (3, 3), (1, 1), 256, 196) == "native"
    assert layers.resolve_conv("auto", (3, 3), (1, 1), 512, 4) == ("patches" if on_cpu else "native")
    assert layers.resolve_conv("patches", (3, 3), (1, 1), 256, 196) == "patches"
    fast = {"conv": "patches", "depthwise": "shifted", "pointwise": "matmul", "attention": "heads_first"}
    assert layers.layer_impls("fast") == fast
    assert layers.layer_impls("native") == dict.fromkeys(("conv", "depthwise", "pointwise", "attention"), "native")
    assert layers.resolve_attention("auto") == ("heads_first" if on_cpu else "native")
    assert layers.resolved_formulation("auto") == ("fast" if on_cpu else "native")
    with pytest.raises(ValueError, match="conv_impl='im2col': use one of auto, native, fast"):
        layers.layer_impls("im2col")
    with pytest.raises(ValueError, match="conv='fast': use one of auto, native, patches"):
        layers.resolve_conv("fast", (3, 3), (1, 1), 3, 3)


def test_bfloat16_formulations_stay_bfloat16_and_close():
    """In bfloat16 the CPU forms return bfloat16, with float32 parameters and their float32 gradients."""
    x = jax.random.normal(jax.random.key(5), (2, 9, 9, 8), jnp.bfloat16)
    for module in (
        layers.DepthwiseConv(3, 2, "SAME", "shifted", nn_normal(), jnp.bfloat16),
        layers.PointwiseConv(4, 1, False, "matmul", nn_normal(), dtype=jnp.bfloat16),
        layers.Conv(4, (3, 3), padding=((1, 1), (1, 1)), kernel_init=nn_normal(), dtype=jnp.bfloat16, impl="patches"),
    ):
        y, grad_x, grad_params = _outputs_and_grads(module, x)
        assert y.dtype == grad_x.dtype == jnp.bfloat16 and grad_params["kernel"].dtype == jnp.float32
        native = _outputs_and_grads(module.clone(impl="native"), x)[0]
        y, native = np.asarray(y, np.float32), np.asarray(native, np.float32)
        assert np.max(np.abs(y - native)) <= 2**-6 * np.max(np.abs(native))  # a few bfloat16 roundings (8 bits)


def test_auto_is_the_cpu_form_on_cpu_and_bad_names_are_refused():
    on_cpu = jax.default_backend() == "cpu"
    assert layers.resolve_depthwise("auto") == ("shifted" if on_cpu else "native")
    assert layers.resolve_pointwise("auto") == ("matmul" if on_cpu else "native")
    assert layers.resolve_depthwise("native") == "native" and layers.resolve_pointwise("matmul") == "matmul"
    with pytest.raises(ValueError, match="depthwise='im2col': use one of auto, native, shifted"):
        layers.resolve_depthwise("im2col")
    with pytest.raises(ValueError, match="pointwise='dot': use one of auto, native, matmul"):
        layers.resolve_pointwise("dot")


class _DeclaresFusions(nn.Module):
    """A two-layer MLP that names YNN fusions for its forward pass, as a backbone does."""

    conv_impl: str = "auto"
    CPU_YNN_FUSION: ClassVar[dict[str, str]] = {"forward": "INDIVIDUAL_DOT"}

    @nn.compact
    def __call__(self, x):
        return nn.Dense(3)(jax.nn.gelu(nn.Dense(64)(x), approximate=False))


def test_cpu_compiler_options_follow_each_models_declared_fusions():
    """On CPU under the fast formulation, a model's programs compile with the YNN fusion types it declares,
    to the same numbers; native, undeclared programs, models that declare none and other backends keep
    XLA's defaults; bad names are refused."""
    from alexnet_jax import models

    model = _DeclaresFusions()
    options = layers.cpu_compiler_options(model, "forward")
    with pytest.raises(ValueError, match="program='eval': use one of train, forward"):
        layers.cpu_compiler_options(model, "eval")
    if jax.default_backend() != "cpu":
        assert options is None
        return
    assert options == {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"}
    assert layers.cpu_compiler_options(model, "train") is None
    assert layers.cpu_compiler_options(model.clone(conv_impl="native"), "forward") is None
    assert layers.cpu_compiler_options(models.get_model("resnet18", num_classes=3), "forward") is None
    convnext = layers.cpu_compiler_options(models.get_model("convnext_tiny", num_classes=3), "forward")
    assert convnext == options
    vit = layers.cpu_compiler_options(models.get_model("vit_b_16", num_classes=3), "train")
    assert vit["xla_cpu_experimental_ynn_fusion_type"].split(",") == [
        "LIBRARY_FUSION_TYPE_DOT",
        "LIBRARY_FUSION_TYPE_ELTWISE",
        "LIBRARY_FUSION_TYPE_REDUCE",
    ]
    with pytest.raises(ValueError, match="BLAS unknown"):
        layers._ynn_fusion_option("DOT,BLAS")
    x = jax.random.normal(jax.random.key(1), (64, 32))
    variables = model.init(jax.random.key(0), x)
    default = jax.jit(model.apply)(variables, x)
    individual = jax.jit(model.apply, compiler_options=options)(variables, x)
    np.testing.assert_allclose(individual, default, rtol=1e-5, atol=1e-6)


def nn_normal():
    """Kernels of unit scale, so that a relative tolerance means the same at every shape."""
    return jax.nn.initializers.normal(1.0)


class _TwoStages(nn.Module):
    """Two EfficientNet-Lite stages as the network stacks them: a strided 3x3 stage of two inverted residuals
    (the second with its shortcut), then a 5x5 one; BatchNorm in train mode between every convolution."""

    depthwise: str

    @nn.compact
    def __call__(self, x):
        from alexnet_jax.models.efficientnet_lite import Stage

        for kernel, stride in ((3, 2), (5, 1)):
            x = Stage(kernel, stride, 6, 16, (0.0, 0.0), self.depthwise, 0.1, jnp.float64)(x, False, None, True)
        return x


def test_efficientnet_stages_train_with_the_same_gradients_either_way():
    """Depthwise 'shifted' against 'native' inside EfficientNet-Lite's blocks in train mode (batch statistics,
    1x1 convolutions, shortcuts): the loss and every parameter's gradient. In float64, because BatchNorm
    over a tiny batch magnifies float32 rounding chaotically (measured on the whole Lite0 at 2 x 37 x 45:
    each float32 form lies up to 1e-3 or 4e-3 of the largest gradient from the float64 result, which one
    is closer changing with the input), which would hide a real difference; here they agree to 1e-10."""
    results = {}
    with jax.enable_x64(True):
        x = jax.random.normal(jax.random.key(6), (2, 11, 13, 8), jnp.float64)
        cotangent = jax.random.normal(jax.random.key(7), (2, 6, 7, 16), jnp.float64)
        for impl in ("native", "shifted"):
            module = _TwoStages(impl)
            variables = module.init(jax.random.key(0), x)

            def loss(params, module=module, variables=variables):
                y, _ = module.apply({**variables, "params": params}, x, mutable=["batch_stats"])
                return jnp.sum(y * cotangent)

            results[impl] = jax.device_get(jax.jit(jax.value_and_grad(loss))(variables["params"]))
    (loss_shifted, grads_shifted), (loss_native, grads_native) = results["shifted"], results["native"]
    assert abs(loss_shifted - loss_native) <= 1e-10 * abs(loss_native)
    largest = max(np.max(np.abs(g)) for g in jax.tree.leaves(grads_native))
    worst = max(jax.tree.leaves(jax.tree.map(lambda a, b: np.max(np.abs(a - b)), grads_shifted, grads_native)))
    assert worst <= 1e-10 * largest, (worst, largest)
