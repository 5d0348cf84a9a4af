"""alexnet_jax.models against torchvision: sizes, initialisation, pooling, modes.

Output parity with real weights lives in test_convert.py (it needs the converter).
"""

import math
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torchvision

from alexnet_jax.models import (
    MIN_INPUT_SIZE,
    AlexNet,
    adaptive_avg_pool,
    count_params,
    init_head,
    init_params,
    torch_uniform_init,
)

sys.path.insert(0, str(Path(__file__).parent))
from float_spread import tolerance, torch_spread  # noqa: E402

SIGMAS = 5.0  # sampling-error allowance; ~40 statistics per test, so false alarms are ~1e-5


@pytest.fixture(scope="module")
def jax_init():
    return init_params(jax.random.key(0), num_classes=1000)


@pytest.fixture(scope="module")
def torch_init():
    torch.manual_seed(0)
    return {k: v.numpy() for k, v in torchvision.models.alexnet(weights=None).state_dict().items()}


def _torch_name(layer, leaf):
    return layer.replace("_", ".") + (".weight" if leaf == "kernel" else ".bias")


def _fan_in(torch_shape):
    return int(np.prod(torch_shape[1:])) if len(torch_shape) > 1 else None


@pytest.mark.parametrize("num_classes, expected", [(1000, 61_100_840), (4, 57_020_228)])
def test_parameter_counts(num_classes, expected):
    shapes = jax.eval_shape(lambda: init_params(jax.random.key(0), num_classes=num_classes))
    assert count_params(shapes) == expected
    torch_model = torchvision.models.alexnet(weights=None, num_classes=num_classes)
    assert sum(p.numel() for p in torch_model.parameters()) == expected
    # Same layers, same shapes up to layout.
    torch_shapes = {k: tuple(v.shape) for k, v in torch_model.state_dict().items()}
    ours = {_torch_name(layer, leaf): s.shape for layer, leaves in shapes.items() for leaf, s in leaves.items()}
    assert set(ours) == set(torch_shapes)
    for key, shape in ours.items():
        if len(shape) == 4:
            shape = (shape[3], shape[2], shape[0], shape[1])
        elif len(shape) == 2:
            shape = shape[::-1]
        assert shape == torch_shapes[key], key


def test_init_statistics_match_torchvision(jax_init, torch_init):
    """Each layer is U(-b, b), b = 1/sqrt(fan_in), in both frameworks: mean 0, std b/sqrt(3)."""
    checked = 0
    for layer, leaves in jax_init.items():
        weight_shape = torch_init[_torch_name(layer, "kernel")].shape
        bound = 1 / math.sqrt(_fan_in(weight_shape))
        sigma = bound / math.sqrt(3)
        for leaf, value in leaves.items():
            ours = np.asarray(value, np.float64).ravel()
            theirs = torch_init[_torch_name(layer, leaf)].astype(np.float64).ravel()
            n = ours.size
            assert theirs.size == n
            se_mean = sigma / math.sqrt(n)
            se_std = bound / math.sqrt(15 * n)  # uniform: Var(s^2) = 4 b^4 / (45 n)
            for name, sample in (("jax", ours), ("torch", theirs)):
                assert np.abs(sample).max() <= np.float32(bound), (layer, leaf, name)  # bound as float32 rounds it
                assert abs(sample.mean()) <= SIGMAS * se_mean, (layer, leaf, name, sample.mean())
                assert abs(sample.std() - sigma) <= SIGMAS * se_std, (layer, leaf, name, sample.std(), sigma)
                if n >= 10_000:  # uniform fills its range; a normal of the same std would overshoot
                    assert np.abs(sample).max() > 0.99 * bound
            assert abs(ours.mean() - theirs.mean()) <= SIGMAS * math.sqrt(2) * se_mean
            assert abs(ours.std() - theirs.std()) <= SIGMAS * math.sqrt(2) * se_std
            checked += 1
    assert checked == 16


def test_init_is_deterministic_and_head_independent(jax_init):
    again = init_params(jax.random.key(0), num_classes=4)
    # Flax derives each layer's key from its name, so the backbone does not depend on the head size.
    for layer in jax_init:
        if layer != "classifier_6":
            for leaf in ("kernel", "bias"):
                np.testing.assert_array_equal(np.asarray(jax_init[layer][leaf]), np.asarray(again[layer][leaf]))
    assert again["classifier_6"]["kernel"].shape == (4096, 4)
    # ...while each layer gets its own stream.
    assert not np.array_equal(np.asarray(again["features_8"]["bias"]), np.asarray(again["features_10"]["bias"]))


def test_init_head():
    head = init_head(jax.random.key(7), 4)
    np.testing.assert_array_equal(np.asarray(head["kernel"]), np.asarray(init_head(jax.random.key(7), 4)["kernel"]))
    kernel = np.asarray(head["kernel"], np.float64)
    bound = 1 / 64
    assert kernel.shape == (4096, 4) and head["bias"].shape == (4,)
    assert np.abs(kernel).max() <= np.float32(bound) and np.abs(np.asarray(head["bias"])).max() <= np.float32(bound)
    n = kernel.size
    assert abs(kernel.mean()) <= SIGMAS * bound / math.sqrt(3 * n)
    assert abs(kernel.std() - bound / math.sqrt(3)) <= SIGMAS * bound / math.sqrt(15 * n)
    sample = np.asarray(torch_uniform_init(100)(jax.random.key(0), (100_000,)))
    assert np.abs(sample).max() <= 0.1 and abs(sample.std() - 0.1 / math.sqrt(3)) < 1e-3


@pytest.mark.parametrize("height, width", [(6, 6), (7, 7), (13, 13), (2, 11), (15, 17), (1, 1)])
def test_adaptive_avg_pool_matches_torch(height, width):
    """Within 1e-6, or SPREAD_FACTOR x torch's own float32-vs-float64 spread if that is larger (float_spread)."""
    x = np.random.default_rng(height * 100 + width).standard_normal((2, height, width, 5)).astype(np.float32)
    ours = np.asarray(adaptive_avg_pool(jnp.asarray(x)))
    pool = torch.nn.AdaptiveAvgPool2d((6, 6))
    theirs = pool(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy().transpose(0, 2, 3, 1)
    assert ours.shape == (2, 6, 6, 5)
    spread = torch_spread(pool, x.transpose(0, 3, 1, 2)) * np.max(np.abs(theirs))
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=tolerance(1e-6, spread))


def test_input_checks_match_torchvision(jax_init):
    model = AlexNet()
    logits = model.apply({"params": jax_init}, jnp.zeros((1, MIN_INPUT_SIZE, MIN_INPUT_SIZE, 3)))
    assert logits.shape == (1, 1000)
    with pytest.raises(ValueError, match="at least 63x63"):
        model.apply({"params": jax_init}, jnp.zeros((1, 62, 80, 3)))
    with pytest.raises(ValueError, match="NHWC"):
        model.apply({"params": jax_init}, jnp.zeros((1, 3, 224, 224)))
    torch_model = torchvision.models.alexnet(weights=None).eval()
    with torch.no_grad():
        assert torch_model(torch.zeros(1, 3, MIN_INPUT_SIZE, MIN_INPUT_SIZE)).shape == (1, 1000)
        with pytest.raises(RuntimeError):  # torchvision refuses 62 px too
            torch_model(torch.zeros(1, 3, 62, 80))


def test_capture_train_mode_and_bfloat16(jax_init):
    images = jnp.asarray(np.random.default_rng(0).standard_normal((2, 100, 100, 3)), jnp.float32)
    model = AlexNet()
    logits, state = model.apply({"params": jax_init}, images, capture=True, mutable=["intermediates"])
    assert state["intermediates"]["features"][0].shape == (2, 2, 2, 256)  # 100 px -> 2x2 map
    assert state["intermediates"]["avgpool"][0].shape == (2, 6, 6, 256)

    train_a = model.apply({"params": jax_init}, images, train=True, rngs={"dropout": jax.random.key(1)})
    train_b = model.apply({"params": jax_init}, images, train=True, rngs={"dropout": jax.random.key(1)})
    np.testing.assert_array_equal(np.asarray(train_a), np.asarray(train_b))  # same rng, same bits
    assert not np.allclose(np.asarray(train_a), np.asarray(logits))  # dropout is active
    with pytest.raises(Exception, match="dropout"):  # flax's missing-rng error names the stream
        model.apply({"params": jax_init}, images, train=True)

    low = AlexNet(dtype=jnp.bfloat16).apply({"params": jax_init}, images)
    assert low.dtype == jnp.float32
    scale = float(jnp.max(jnp.abs(logits)))
    assert float(jnp.max(jnp.abs(low - logits))) <= 0.05 * scale
