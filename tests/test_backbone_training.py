"""Every backbone trains through the one training entry point, from scratch and from its converted
weights, and a run stopped in the middle of an epoch resumes to the numbers of one never stopped:
one small-size training test per backbone.

The configs are configs/backbones.py's (each model's torchvision recipe: SGD or AdamW, label
smoothing, stochastic depth) on 32 px crops of a 44-image data set, so what is checked is the
machinery with each architecture: BatchNorm statistics in the train state, checkpoints and best/,
AdamW's state, the pretrained arm. What does not depend on the architecture uses the tiny model.
"""

import jax
import numpy as np
import pytest
from helpers import StopAfter, quiet, save_random_weights, strip_timing, train

from alexnet_jax import errors, models, params_io
from alexnet_jax.configs import backbones
from alexnet_jax.errors import TrainingError

BACKBONES = [
    "resnet18",
    pytest.param("resnet50", marks=pytest.mark.slow),
    "convnext_tiny",
    pytest.param("vit_b_16", marks=pytest.mark.slow),
]


def tiny_backbone_config(name: str, data_dir):
    config = backbones.get_config(name)
    config.data.dir = str(data_dir)
    config.data.image_size = 40
    config.augment.crop_size = 32  # every backbone's minimum input; ViT-B/16 sees a 2x2 grid of patches
    config.batch_size = config.eval_batch_size = 8
    config.epochs.scratch = config.epochs.pretrained = 2
    config.pipeline = "on_device"
    config.checkpoint_every_seconds = 0.0
    return config


@pytest.mark.parametrize("name", BACKBONES)
def test_backbone_trains_resumes_and_starts_from_its_weights(tmp_path, tiny_data, name):
    config = tiny_backbone_config(name, tiny_data)
    one = jax.devices()[:1]
    whole = train(config, tmp_path / "whole", 0, ["scratch"], devices=one)
    record = whole["arms"]["scratch"]
    assert record["complete"] and record["spec"]["model"] == name and len(record["test_acc"]) == 2
    assert all(np.isfinite(record["train_loss"]))
    assert record["conv_impl"] == "fast", "config conv_impl=auto resolves to the CPU formulations here"
    declared = getattr(models.get_spec(name).module, "CPU_YNN_FUSION", {})
    recorded = record.get("compiler_options", {})
    assert {p: o["xla_cpu_experimental_ynn_fusion_type"] for p, o in recorded.items()} == {
        p: ",".join(f"LIBRARY_FUSION_TYPE_{t}" for t in types.split(",")) for p, types in declared.items()
    }
    best = params_io.load_variables(tmp_path / "whole" / "run_000" / "scratch" / "best")
    assert ("batch_stats" in best) == models.get_spec(name).batch_norm

    # 38 training images: 5 steps an epoch; the arm's question and 7 steps later is epoch 2's third.
    with pytest.raises(errors.Interrupted, match=r"at epoch 2/2, step 2"):
        train(config, tmp_path / "cut", 0, ["scratch"], devices=one, stop=StopAfter(8))
    resumed = train(config, tmp_path / "cut", 0, ["scratch"], devices=one)
    assert strip_timing(resumed) == strip_timing(whole)

    # The pretrained arm starts from converted weights of this model, with a fresh 4-class head.
    weights = save_random_weights(tmp_path / "weights", name, 1000, seed=5)
    (pretrained,) = train(config, tmp_path / "pre", [0], ["pretrained"], pretrained_weights=weights, devices=one)
    init = pretrained["arms"]["pretrained"]["init"]
    assert init["kind"] == "converted_torch_weights" and init["head_replaced"] is True


def test_another_models_weights_are_refused_naming_both(tmp_path, tiny_data):
    weights = save_random_weights(tmp_path / "tiny_weights", "tiny", 4)
    config = tiny_backbone_config("resnet18", tiny_data)
    with pytest.raises(TrainingError, match=r"holds tiny weights, and this config trains resnet18"):
        train(config, tmp_path / "runs", [0], ["pretrained"], pretrained_weights=weights, log=quiet)


def test_an_imagenet_arm_of_a_model_without_torch_weights_is_refused_in_one_line(tmp_path, tiny_data, monkeypatch):
    """The tiny test model has no torchvision twin: its pretrained (ImageNet) arm stops before training,
    in one line naming the model and those that have ImageNet weights."""
    from helpers import tiny_config

    monkeypatch.chdir(tmp_path)  # no weights/ directory here
    with pytest.raises(TrainingError) as info:
        train(tiny_config(tiny_data), tmp_path / "runs", [0], ["pretrained"])
    message = str(info.value)
    assert "\n" not in message and "pretrained arm starts from ImageNet weights" in message
    assert "'tiny'" in message and ", ".join(models.TORCH_MODEL_NAMES) in message
