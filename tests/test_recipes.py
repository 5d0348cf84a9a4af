"""The EfficientNet-Lite recipe: TensorFlow's RMSProp, the backbones.py entries and quick.py:MODEL.

RMSProp is checked against TensorFlow 1's update written out in numpy (tf.compat.v1.train.
RMSPropOptimizer, which trained the weights; once also against TF itself: 6e-8 apart after four
steps). No model is trained here.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from alexnet_jax import cli, configs, models
from alexnet_jax.configs import backbones, paper, quick
from alexnet_jax.training import steps

LITES = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")


def tf_rmsprop(params, grads_per_step, *, lr, momentum, weight_decay, decayed):
    """TensorFlow 1's RMSProp (training_ops.ApplyRMSProp) in float64, the loss's L2 term as
    `weight_decay * w` added to the gradients of the `decayed` parameters."""
    w = {k: v.astype(np.float64) for k, v in params.items()}
    ms = {k: np.ones_like(v) for k, v in w.items()}  # TF's slot starts at one
    mom = {k: np.zeros_like(v) for k, v in w.items()}
    for grads in grads_per_step:
        for k in w:
            g = grads[k] + (weight_decay * w[k] if k in decayed else 0.0)
            ms[k] = 0.9 * ms[k] + 0.1 * g * g
            mom[k] = momentum * mom[k] + lr * g / np.sqrt(ms[k] + 1e-3)
            w[k] = w[k] - mom[k]
    return w


def apply_optimizer(tx, params, grads_per_step):
    params = jax.tree.map(jnp.asarray, params)
    state = tx.init(params)
    for grads in grads_per_step:
        updates, state = tx.update(jax.tree.map(jnp.asarray, grads), state, params)
        params = jax.tree.map(lambda p, u: p + u, params, updates)
    return params


@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
def test_rmsprop_is_tensorflows(weight_decay):
    rng = np.random.default_rng(0)
    params = {"kernel": rng.normal(size=(3, 4)).astype(np.float32), "bias": rng.normal(size=(4,)).astype(np.float32)}
    grads = [{k: rng.normal(size=v.shape).astype(np.float32) for k, v in params.items()} for _ in range(3)]
    optim = {"name": "rmsprop", "learning_rate": 0.05, "momentum": 0.9, "weight_decay": weight_decay}
    ours = apply_optimizer(steps.make_optimizer(optim), params, grads)
    expected = tf_rmsprop(params, grads, lr=0.05, momentum=0.9, weight_decay=weight_decay, decayed={"kernel"})
    for k in params:  # float32 against float64: 1.3e-7 at most, measured; a decayed bias would be 0.03 off
        np.testing.assert_allclose(np.asarray(ours[k]), expected[k], rtol=0, atol=1e-6)
    assert not np.allclose(np.asarray(ours["kernel"]), params["kernel"])
    # TF's slot starting at one matters: optax's default start (zero) lands 0.3 away
    default = {k: np.asarray(v) for k, v in apply_optimizer(optax_default(), params, grads).items()}
    assert np.abs(default["bias"] - expected["bias"]).max() > 1e-3


def optax_default():
    import optax

    return optax.rmsprop(0.05, decay=0.9, eps=1e-3, momentum=0.9)


def test_rmsprop_layer_scales_are_per_layer_learning_rates():
    """Layer-wise decay scales the final update; for RMSProp that equals a smaller learning rate."""
    rng = np.random.default_rng(1)
    params = {"a": {"kernel": rng.normal(size=(2, 2)).astype(np.float32)}}
    grads = [{"a": {"kernel": rng.normal(size=(2, 2)).astype(np.float32)}} for _ in range(3)]
    optim = {"name": "rmsprop", "learning_rate": 0.1, "momentum": 0.9, "weight_decay": 1e-2}
    scaled = apply_optimizer(steps.make_optimizer(optim, {"a": 0.25}), params, grads)
    smaller = apply_optimizer(steps.make_optimizer({**optim, "learning_rate": 0.025}), params, grads)
    np.testing.assert_allclose(np.asarray(scaled["a"]["kernel"]), np.asarray(smaller["a"]["kernel"]), rtol=1e-6)


@pytest.mark.parametrize("name", LITES)
def test_efficientnet_lite_configs_are_the_paper_with_tensorflows_recipe(name):
    config, base = backbones.get_config(name), paper.get_config()
    assert config.model.name == name and name in backbones.VARIANTS
    assert config.optim.name == "rmsprop" and config.optim.momentum == 0.9
    assert config.optim.learning_rate == pytest.approx(0.016 * 384 / 256)
    assert config.optim.weight_decay == 1e-5 and config.optim.label_smoothing == 0.1
    assert config.optim.clip_grad_norm is None
    assert config.model.dropout_rate == (0.3 if name == "efficientnet_lite2" else 0.2)
    assert config.model.drop_path_rate == 0.2 and config.normalize == "weights"
    options = {k: v for k, v in config.model.items() if k not in ("name", "num_classes")}
    assert set(options) == {"dtype", *models.get_spec(name).options}
    assert config.model.num_classes == 0  # the data set's classes, resolved by the plan
    assert models.get_model(name, 4, **options).num_classes == 4
    assert config.batch_size == 384 and config.epochs.to_dict() == base.epochs.to_dict()
    for section in ("data", "augment"):
        assert config[section].to_dict() == base[section].to_dict()


def test_quick_config_and_its_backbone_variants():
    plain = quick.get_config()
    assert plain.to_dict() == quick.get_config("alexnet").to_dict()
    sizes = (plain.data.image_size, plain.augment.crop_size, plain.batch_size, plain.eval_batch_size)
    assert sizes == (72, 64, 64, 128)
    assert plain.optim.learning_rate == 0.01 and plain.normalize == "none" and plain.model.name == "alexnet"
    assert (plain.epochs.pretrained, plain.epochs.scratch) == (4, 8)
    # A variant without overrides: the backbone's model options and its recipe, the rate scaled to batch 64.
    lite1 = quick.get_config("efficientnet_lite1")
    assert lite1.model.to_dict() == backbones.get_config("efficientnet_lite1").model.to_dict()
    assert lite1.optim.name == "rmsprop" and lite1.optim.learning_rate == pytest.approx(0.016 * 64 / 256)
    # The main job's Lite0: the same, then its overrides (the paper's SGD, BatchNorm momentum 0.1, 2 + 2 epochs).
    lite = quick.get_config("efficientnet_lite0")
    full = backbones.get_config("efficientnet_lite0").model.to_dict()
    assert lite.model.to_dict() == full | {"bn_momentum": 0.1} and lite.normalize == "weights"
    assert (lite.data.image_size, lite.augment.crop_size, lite.batch_size) == (72, 64, 64)
    assert lite.data.dir == plain.data.dir
    assert lite.optim.name == "sgd" and lite.optim.learning_rate == quick.PAPER_LEARNING_RATE
    for key, value in quick.BACKBONE_OVERRIDES["efficientnet_lite0"].items():
        section, field = key.split(".") if "." in key else (None, key)
        assert (lite[section][field] if section else lite[field]) == value
    with pytest.raises(ValueError, match="quick.py:resnet99: name a backbone"):
        quick.get_config("resnet99")
    assert cli.config_problem(configs.path("quick") + ":efficientnet_lite0") is None
    assert cli.config_problem(configs.path("quick")) is None
    assert "efficientnet_lite1" in cli.config_problem(configs.path("quick") + ":resnet99")
