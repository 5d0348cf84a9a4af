"""Arms as data: declared arms, finetuning strategies, frozen layers that stay frozen, starts that
cannot be had refused before any training, and the initialisations study end to end."""

import json
import subprocess
import sys

import jax
import numpy as np
import pytest
from test_train import REPO, tiny_config

from alexnet_jax import params_io, train
from alexnet_jax.errors import TrainingError
from alexnet_jax.models import HEAD, get_spec, init_params
from alexnet_jax.training import arms, steps
from alexnet_jax.training.arms import finetune_plan

LAYERS = [f"features_{i}" for i in (0, 3, 6, 8, 10)] + [f"classifier_{i}" for i in (1, 4, 6)]
ALEXNET = get_spec("alexnet")


@pytest.fixture(scope="module")
def weights(module_tmp):
    """A converted-weights directory of random 1000-class params: the code path of ImageNet weights."""
    directory = module_tmp / "weights"
    params = jax.device_get(init_params(jax.random.key(7), 1000, 64))
    params_io.save_params(directory, params, {"source": "test: random torchvision-style init", "num_classes": 1000})
    return directory


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
    specs = arms.arm_specs(config)
    assert list(specs) == ["pretrained", "scratch"] and specs["pretrained"].id == 0 and specs["scratch"].id == 1
    assert arms.select(None, specs) == ["pretrained", "scratch"] and arms.select("scratch", specs) == ["scratch"]
    with pytest.raises(ValueError, match="unknown arm.*declares pretrained, scratch"):
        arms.select("imagenet", specs)
    config.arms.scratch.init = "random"
    with pytest.raises(TrainingError, match=r"--config.arms.scratch.init='random'"):
        arms.arm_specs(config)
    config = tiny_config()
    config.arms.scratch.finetune = "everything"
    with pytest.raises(TrainingError, match=r"--config.arms.scratch.finetune='everything'"):
        arms.arm_specs(config)
    config = tiny_config()
    del config.epochs["scratch"]
    with pytest.raises(TrainingError, match=r"set --config.epochs.scratch"):
        arms.arm_specs(config)
    config = tiny_config(**{"arms.scratch.optim.learning_rate": 0.5})
    assert dict(arms.arm_specs(config)["scratch"].optim)["learning_rate"] == 0.5
    assert dict(arms.arm_specs(config)["pretrained"].optim)["learning_rate"] == config.optim.learning_rate


def _one_step(finetune: str, params):
    """One train step of the tiny model from `params` under a strategy: (state before, state after)."""
    from alexnet_jax.inputs import pipeline as input_pipeline
    from alexnet_jax.inputs.augment import AugmentConfig
    from alexnet_jax.models import AlexNet

    mesh = steps.make_mesh(jax.devices()[:1])
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (8, 72, 72, 3), dtype=np.uint8), np.arange(8) % 4
    cfg = AugmentConfig(crop_size=64)
    pipe = input_pipeline.make_pipeline(
        "on_device", images, labels, image_size=72, train_augment=cfg, eval_augment=cfg, mesh=mesh
    )
    plan = finetune_plan(finetune, list(params), ALEXNET.blocks, HEAD)
    optim = (("learning_rate", 0.01), ("momentum", 0.9), ("weight_decay", 0.0))
    key = steps.StepKey(AlexNet(4), optim, plan.lr_scales, plan.trainable, False, pipe.signature, mesh, 4, 1)
    built = steps.build_steps(key, pipe)
    before = steps.replicate(steps.init_state(params, {}, built.tx, plan.trainable), mesh)
    batch = next(iter(pipe.batches(np.arange(8), 8, train=True, seed=0)))
    snapshot = jax.device_get(before)
    after, _ = built.train(before, pipe.resident, batch, jax.random.key(3), steps.zero_train_totals(), 0)
    return snapshot, jax.device_get(after), built, key, (pipe, batch)


def test_frozen_layers_get_no_update_no_optimizer_state_and_no_gradient_work():
    params = jax.device_get(init_params(jax.random.key(1), 4, 64))
    before, after, built, key, (pipe, batch) = _one_step("linear_probe", params)
    for layer in LAYERS[:-1]:  # bit for bit
        for leaf in ("kernel", "bias"):
            np.testing.assert_array_equal(after.params[layer][leaf], before.params[layer][leaf])
    assert not np.array_equal(after.params[HEAD]["kernel"], before.params[HEAD]["kernel"])
    # SGD's momentum exists for the head alone: the frozen layers' optimizer state is never allocated.
    momentum_leaves = jax.tree.leaves(after.opt_state)
    assert sum(x.size for x in momentum_leaves) == sum(np.size(v) for v in jax.tree.leaves(params[HEAD]))
    # No gradient is computed for them either: the compiled probe step does a fraction of the full step's work.
    _, _, full, full_key, _ = _one_step("full", params)

    def flops(built_steps, plan_trainable):
        state = steps.replicate(steps.init_state(params, {}, built_steps.tx, plan_trainable), pipe.mesh)
        lowered = built_steps.train.lower(state, pipe.resident, batch, jax.random.key(0), steps.zero_train_totals(), 0)
        return lowered.compile().cost_analysis()["flops"]

    assert flops(built, key.trainable) < 0.6 * flops(full, None)


def test_layerwise_decay_scales_each_layers_step():
    params = jax.device_get(init_params(jax.random.key(2), 4, 64))
    grads = jax.tree.map(lambda x: np.random.default_rng(x.size).standard_normal(x.shape).astype(np.float32), params)
    scales = dict(finetune_plan("lr_decay:0.5", LAYERS, ALEXNET.blocks, HEAD).lr_scales)
    optim = {"learning_rate": 0.01, "momentum": 0.9, "weight_decay": 5e-4}
    updates = {}
    for name, lr_scales in (("full", None), ("decayed", scales)):
        tx = steps.make_optimizer(optim, lr_scales)
        state = tx.init(params)
        for _ in range(2):  # the second step carries momentum
            step, state = tx.update(grads, state, params)
        updates[name] = step
    for layer in LAYERS:
        for leaf in ("kernel", "bias"):
            np.testing.assert_allclose(updates["decayed"][layer][leaf], scales[layer] * updates["full"][layer][leaf],
                                       rtol=1e-6)  # fmt: skip


def test_a_start_that_cannot_be_had_is_refused_before_any_training(tmp_path, tiny_data, weights):
    config = tiny_config(**{"arms.scratch.init": f"checkpoint:{tmp_path / 'nowhere'}"})
    config.data.dir = str(tiny_data)
    with pytest.raises(TrainingError, match=r"The scratch arm starts from 'checkpoint:.*nowhere'.*metadata.json"):
        train.train_runs(config, tmp_path / "runs", [0], ["pretrained", "scratch"], pretrained_weights=weights)
    assert not (tmp_path / "runs").exists()  # nothing trained, not even the pretrained arm first
    # Another architecture's params (here AlexNet with a 5x5 first layer) are refused, both shapes named.
    odd = jax.device_get(init_params(jax.random.key(3), 4, 64))
    odd["features_0"]["kernel"] = np.zeros((5, 5, 3, 64), np.float32)
    params_io.save_params(tmp_path / "odd", odd, {"source": "test: wrong shapes"})
    config = tiny_config(**{"arms.scratch.init": f"checkpoint:{tmp_path / 'odd'}", "epochs.scratch": 1})
    config.data.dir = str(tiny_data)
    with pytest.raises(TrainingError, match=r"scratch arm cannot start from .*odd.*features_0/kernel: expected "):
        train.train_runs(config, tmp_path / "runs2", [0], ["scratch"])


def test_an_arm_starts_from_another_studys_best(tmp_path, tiny_data, weights):
    config = tiny_config(**{"epochs.pretrained": 1})
    config.data.dir = str(tiny_data)
    (first,) = train.train_runs(config, tmp_path / "a", [0], ["pretrained"], pretrained_weights=weights)
    assert first["arms"]["pretrained"]["init"]["head_replaced"] is True  # 1000 classes -> a fresh 4-class head
    best = tmp_path / "a" / "run_000" / "pretrained"
    config = tiny_config(**{"arms.scratch.init": f"checkpoint:{best}", "epochs.scratch": 1})
    config.data.dir = str(tiny_data)
    (second,) = train.train_runs(config, tmp_path / "b", [0], ["scratch"])
    init = second["arms"]["scratch"]["init"]
    assert init["kind"] == "checkpoint" and init["weights_dir"] == str(best / "best") and not init["head_replaced"]
    assert second["arms"]["scratch"]["spec"]["init"] == f"checkpoint:{best}"


@pytest.mark.slow
def test_initialisations_study_end_to_end_on_synthetic_galaxies(tmp_path, weights):
    data = tmp_path / "galaxies"
    prepare = [sys.executable, "-m", "alexnet_jax.data", "prepare", "--dataset=synthetic", "--num_examples=48",
               f"--output={data}", "--num_workers=1"]  # fmt: skip
    done = subprocess.run(prepare, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    workdir = tmp_path / "study"
    epochs = [f"--config.epochs.{arm}=2" for arm in ("scratch", "imagenet", "linear_probe", "last_blocks")]
    config = f"--config={REPO}/alexnet_jax/configs/initialisations.py:quick"
    command = [sys.executable, "-m", "alexnet_jax.train", config, f"--data_dir={data}", f"--workdir={workdir}",
               "--runs=0-1", f"--pretrained_weights={weights}", "--config.batch_size=8",
               "--config.eval_batch_size=8", *epochs]  # fmt: skip
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "HOME": str(tmp_path), "JAX_PLATFORMS": "cpu"}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((workdir / "run_001" / "results.json").read_text())
    assert sorted(results["arms"]) == ["imagenet", "last_blocks", "linear_probe", "scratch"]
    probe = results["arms"]["linear_probe"]
    assert probe["spec"]["finetune"] == "linear_probe" and probe["trainable_params"] == 4096 * 4 + 4
    assert results["arms"]["last_blocks"]["trainable_params"] < results["arms"]["imagenet"]["trainable_params"]
    analyse = [sys.executable, "-m", "alexnet_jax.analyze", f"--workdir={workdir}", "--bootstrap_resamples=200"]
    done = subprocess.run(analyse, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((workdir / "analysis" / "summary.json").read_text())
    assert sorted(summary["arm_names"]) == sorted(results["arms"]) and summary["p_adjustment"]["method"] == "holm"
    assert len(summary["pairs"]) == 6 and summary["reference_arm"]["name"] == "scratch"
    report = (workdir / "analysis" / "report.md").read_text()
    assert "The cost of accuracy" in report and "linear_probe" in report
