"""Arms as data: declared arms, finetuning strategies, frozen layers that stay frozen, starts that
cannot be had refused before any training, and the initialisations study end to end.

The mechanics run on the tiny test model (blocks `block1`, `block2`, head `fc`); AlexNet only where
its own blocks are the subject."""

import json

import jax
import numpy as np
import pytest
from helpers import configure, save_random_weights, tiny_config, train

from alexnet_jax import models, params_io, training
from alexnet_jax.errors import TrainingError
from alexnet_jax.models import HEAD, get_spec
from alexnet_jax.training import arms, steps
from alexnet_jax.training.arms import finetune_plan
from alexnet_jax.training.plan import arm_specs

LAYERS = [f"features_{i}" for i in (0, 3, 6, 8, 10)] + [f"classifier_{i}" for i in (1, 4, 6)]
ALEXNET = get_spec("alexnet")
TINY = get_spec("tiny")
TINY_LAYERS = ["conv1", "bn1", "conv2", "bn2", "fc"]


@pytest.fixture(scope="module")
def weights(module_tmp):
    """A converted-weights directory of random 1000-class tiny variables: the code path of ImageNet weights."""
    return save_random_weights(module_tmp / "weights", seed=7)


def test_finetuning_plans_for_alexnet():
    blocks = ALEXNET.blocks
    assert [b.params for b in blocks] == [(layer,) for layer in LAYERS[:-1]]
    assert finetune_plan("full", LAYERS, blocks, HEAD) == arms.FinetunePlan(None, None, ())
    probe = finetune_plan("linear_probe", LAYERS, blocks, HEAD)
    assert probe.trainable == {HEAD} and probe.frozen_blocks == tuple(LAYERS[:-1])
    last = finetune_plan("last_blocks:3", LAYERS, blocks, HEAD)
    assert last.trainable == {"features_10", "classifier_1", "classifier_4", HEAD}
    decay = dict(finetune_plan("lr_decay:0.5", LAYERS, blocks, HEAD).lr_scales)
    assert decay[HEAD] == 1.0 and decay["classifier_4"] == 0.5 and decay["classifier_1"] == 0.25
    assert decay["features_0"] == 0.5**7
    for bad in ("half", "last_blocks:0", "last_blocks:x", "lr_decay:0", "lr_decay:1.5", "linear_probe:2"):
        with pytest.raises(TrainingError, match="use one of full, linear_probe"):
            finetune_plan(bad, LAYERS, blocks, HEAD)
    with pytest.raises(TrainingError, match="only 7 blocks"):
        finetune_plan("last_blocks:8", LAYERS, blocks, HEAD)


def test_declared_arms_are_checked_naming_the_field():
    config = tiny_config()
    specs = arm_specs(config)
    assert list(specs) == ["pretrained", "scratch"] and specs["pretrained"].id == 0 and specs["scratch"].id == 1
    plan = training.resolve(config)
    assert plan.select_arms(None) == ["pretrained", "scratch"] and plan.select_arms("scratch") == ["scratch"]
    with pytest.raises(ValueError, match="unknown arm.*declares pretrained, scratch"):
        plan.select_arms("imagenet")
    config.arms.scratch.init = "random"
    with pytest.raises(TrainingError, match=r"--config.arms.scratch.init='random'"):
        arm_specs(config)
    config = tiny_config()
    config.arms.scratch.finetune = "everything"
    with pytest.raises(TrainingError, match=r"--config.arms.scratch.finetune='everything'"):
        arm_specs(config)
    config = tiny_config()
    del config.epochs["scratch"]
    with pytest.raises(TrainingError, match=r"set --config.epochs.scratch"):
        arm_specs(config)
    config = tiny_config(**{"arms.scratch.optim.learning_rate": 0.5})
    assert dict(arm_specs(config)["scratch"].optim)["learning_rate"] == 0.5
    assert dict(arm_specs(config)["pretrained"].optim)["learning_rate"] == config.optim.learning_rate


def _one_step(finetune: str, variables):
    """One train step of the tiny model from `variables` under a strategy: (state before, state after)."""
    from alexnet_jax.inputs import pipeline as input_pipeline
    from alexnet_jax.inputs.augment import AugmentConfig

    mesh = steps.make_mesh(jax.devices()[:1])
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8), np.arange(8) % 4
    cfg = AugmentConfig(crop_size=28)
    pipe = input_pipeline.make_pipeline(
        "on_device", images, labels, image_size=32, train_augment=cfg, eval_augment=cfg, mesh=mesh
    )
    plan = finetune_plan(finetune, list(variables["params"]), TINY.blocks, TINY.head)
    optim = (("learning_rate", 0.01), ("momentum", 0.9), ("weight_decay", 0.0))
    model = models.get_model("tiny", 4, frozen=plan.frozen_blocks)
    key = steps.StepKey(model, optim, plan.lr_scales, plan.trainable, True, pipe.signature, mesh, 4, 1)
    built = steps.build_steps(key, pipe)
    params, batch_stats = variables["params"], variables["batch_stats"]
    before = steps.replicate(steps.init_state(params, batch_stats, built.tx, plan.trainable), mesh)
    batch = next(iter(pipe.batches(np.arange(8), 8, train=True, seed=0)))
    snapshot = jax.device_get(before)
    after, _ = built.train(before, pipe.resident, batch, jax.random.key(3), steps.zero_train_totals(), 0)
    return snapshot, jax.device_get(after), built, key, (pipe, batch)


def test_frozen_layers_get_no_update_no_optimizer_state_and_no_gradient_work():
    variables = jax.device_get(models.init_variables("tiny", jax.random.key(1), 4, 28))
    before, after, built, key, (pipe, batch) = _one_step("linear_probe", variables)
    for layer in TINY_LAYERS[:-1]:  # bit for bit, and BatchNorm's running statistics too
        for path, leaf in jax.tree_util.tree_leaves_with_path(before.params[layer]):
            np.testing.assert_array_equal(after.params[layer][path[0].key], leaf)
    for layer in ("bn1", "bn2"):
        for name, leaf in before.batch_stats[layer].items():
            np.testing.assert_array_equal(after.batch_stats[layer][name], leaf)
    assert not np.array_equal(after.params[TINY.head]["kernel"], before.params[TINY.head]["kernel"])
    # SGD's momentum exists for the head alone: the frozen layers' optimizer state is never allocated.
    momentum_leaves = jax.tree.leaves(after.opt_state)
    head_size = sum(np.size(v) for v in jax.tree.leaves(variables["params"][TINY.head]))
    assert sum(x.size for x in momentum_leaves) == head_size
    # No gradient is computed for them either: the compiled probe step does a fraction of the full step's work.
    _, _, full, full_key, _ = _one_step("full", variables)

    def flops(built_steps, plan_trainable):
        params, batch_stats = variables["params"], variables["batch_stats"]
        state = steps.replicate(steps.init_state(params, batch_stats, built_steps.tx, plan_trainable), pipe.mesh)
        lowered = built_steps.train.lower(state, pipe.resident, batch, jax.random.key(0), steps.zero_train_totals(), 0)
        return lowered.compile().cost_analysis()["flops"]

    assert flops(built, key.trainable) < 0.6 * flops(full, None)


def test_layerwise_decay_scales_each_layers_step():
    params = jax.device_get(models.init_variables("tiny", jax.random.key(2), 4, 28))["params"]
    grads = jax.tree.map(lambda x: np.random.default_rng(x.size).standard_normal(x.shape).astype(np.float32), params)
    scales = dict(finetune_plan("lr_decay:0.5", TINY_LAYERS, TINY.blocks, TINY.head).lr_scales)
    assert scales == {"fc": 1.0, "conv2": 0.5, "bn2": 0.5, "conv1": 0.25, "bn1": 0.25}
    optim = {"learning_rate": 0.01, "momentum": 0.9, "weight_decay": 5e-4}
    updates = {}
    for name, lr_scales in (("full", None), ("decayed", scales)):
        tx = steps.make_optimizer(optim, lr_scales)
        state = tx.init(params)
        for _ in range(2):  # the second step carries momentum
            step, state = tx.update(grads, state, params)
        updates[name] = step
    for layer in TINY_LAYERS:
        for leaf in updates["full"][layer]:
            np.testing.assert_allclose(updates["decayed"][layer][leaf], scales[layer] * updates["full"][layer][leaf],
                                       rtol=1e-6)  # fmt: skip


def test_a_start_that_cannot_be_had_is_refused_before_any_training(tmp_path, tiny_data, weights):
    config = tiny_config(tiny_data, **{"arms.scratch.init": f"checkpoint:{tmp_path / 'nowhere'}"})
    with pytest.raises(TrainingError, match=r"The scratch arm starts from 'checkpoint:.*nowhere'.*metadata.json"):
        train(config, tmp_path / "runs", 0, ["pretrained", "scratch"], pretrained_weights=weights)
    assert not (tmp_path / "runs").exists()  # nothing trained, not even the pretrained arm first
    # Params of another shape (here the tiny model with a 5x5 first layer) are refused, both shapes named.
    odd = jax.device_get(models.init_variables("tiny", jax.random.key(3), 4, 28))
    odd["params"]["conv1"]["kernel"] = np.zeros((5, 5, 3, 8), np.float32)
    params_io.save_variables(tmp_path / "odd", odd, {"source": "test: wrong shapes"}, model="tiny")
    config = tiny_config(tiny_data, **{"arms.scratch.init": f"checkpoint:{tmp_path / 'odd'}", "epochs.scratch": 1})
    with pytest.raises(TrainingError, match=r"scratch arm cannot start from .*odd.*conv1/kernel: expected "):
        train(config, tmp_path / "runs2", 0, ["scratch"])


def test_an_arm_starts_from_another_studys_best(tmp_path, tiny_data, weights):
    config = tiny_config(tiny_data, **{"epochs.pretrained": 1})
    first = train(config, tmp_path / "a", 0, ["pretrained"], pretrained_weights=weights)
    assert first["arms"]["pretrained"]["init"]["head_replaced"] is True  # 1000 classes -> a fresh 4-class head
    best = tmp_path / "a" / "run_000" / "pretrained"
    config = tiny_config(tiny_data, **{"arms.scratch.init": f"checkpoint:{best}", "epochs.scratch": 1})
    second = train(config, tmp_path / "b", 0, ["scratch"])
    init = second["arms"]["scratch"]["init"]
    assert init["kind"] == "checkpoint" and init["weights_dir"] == str(best / "best") and not init["head_replaced"]
    assert second["arms"]["scratch"]["spec"]["init"] == f"checkpoint:{best}"


@pytest.mark.slow
def test_initialisations_study_end_to_end_on_synthetic_galaxies(tmp_path, weights):
    """configs/initialisations.py:quick's four arms of the tiny model on synthetic galaxies, trained
    and analysed as an N-arm study."""
    from alexnet_jax.analysis import pipeline
    from alexnet_jax.configs import initialisations
    from alexnet_jax.data import commands

    data = tmp_path / "galaxies"
    prepare = commands.DataOptions(output=str(data), num_examples=48, num_workers=1, progress=False)
    assert commands.run("prepare", prepare) == 0
    # the tiny model has 2 blocks below its head: its last_blocks arm trains the last one
    epochs = {f"epochs.{arm}": 2 for arm in ("scratch", "imagenet", "linear_probe", "last_blocks")}
    config = configure(initialisations.get_config("quick"), data, **{"arms.last_blocks.finetune": "last_blocks:1"},
                       **epochs)  # fmt: skip
    workdir = tmp_path / "study"
    train(config, workdir, [0, 1], pretrained_weights=weights)
    results = json.loads((workdir / "run_001" / "results.json").read_text())
    assert sorted(results["arms"]) == ["imagenet", "last_blocks", "linear_probe", "scratch"]
    probe = results["arms"]["linear_probe"]
    assert probe["spec"]["finetune"] == "linear_probe" and probe["trainable_params"] == 16 * 4 + 4  # the head
    assert results["arms"]["last_blocks"]["trainable_params"] < results["arms"]["imagenet"]["trainable_params"]
    summary = pipeline.analyze(workdir, resamples=200, figures=False, log=lambda message: None)
    assert sorted(summary["arm_names"]) == sorted(results["arms"]) and summary["p_adjustment"]["method"] == "holm"
    assert len(summary["pairs"]) == 6 and summary["reference_arm"]["name"] == "scratch"
    report = (workdir / "analysis" / "report.md").read_text()
    assert "The cost of accuracy" in report and "linear_probe" in report
