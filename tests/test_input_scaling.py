"""The input scaling (config.normalize): resolved per model in the plan, the same for every arm,
recorded in results.json, and read back for runs made before it had a name.

The training here is the tiny test model's, one epoch per arm at 32 px.
"""

import json

import numpy as np
import pytest
from helpers import save_random_weights, tiny_config, train

from alexnet_jax import results as results_lib
from alexnet_jax import training
from alexnet_jax.configs import backbones, paper
from alexnet_jax.errors import ResultsError, TrainingError
from alexnet_jax.inputs import augment
from alexnet_jax.models.spec import NORMALIZATIONS
from alexnet_jax.training.rundir import config_fingerprint


def test_the_scalings_and_their_constants():
    assert tuple(augment.NORMALIZATION_STATS) == NORMALIZATIONS
    pixels = np.linspace(0, 1, 12, dtype=np.float32).reshape(1, 2, 2, 3)
    assert augment.normalize(pixels, "none") is pixels  # the paper's inputs, untouched
    np.testing.assert_allclose(augment.normalize(pixels, "inception"), 2 * pixels - 1, atol=1e-7)
    mean, std = augment.NORMALIZATION_STATS["imagenet"]
    np.testing.assert_allclose(augment.normalize(pixels, "imagenet"), (pixels - np.float32(mean)) / np.float32(std))
    assert augment.normalization_record("inception", "weights") == {
        "name": "inception",
        "mean": [0.5, 0.5, 0.5],
        "std": [0.5, 0.5, 0.5],
        "asked": "weights",
    }
    assert "asked" not in augment.normalization_record("none", "none")
    with pytest.raises(ValueError, match="unknown input normalization 'tf'; use one of none, imagenet, inception"):
        augment.normalize(pixels, "tf")


@pytest.mark.parametrize(
    "model, asked, resolved",
    [
        ("resnet18", "weights", "imagenet"),  # torchvision's weights
        ("efficientnet_lite0", "weights", "inception"),  # TensorFlow's, through timm
        ("tiny", "weights", "none"),  # no ImageNet weights at all
        ("resnet18", "none", "none"),
        ("tiny", "inception", "inception"),
    ],
)
def test_weights_resolves_to_the_models_scaling_for_every_arm(model, asked, resolved):
    config = backbones.get_config("resnet18")  # both arms, pretrained and scratch; no model options
    config.model.name, config.normalize = model, asked
    plan = training.resolve(config)
    assert plan.data.normalize == resolved and plan.config["normalize"] == resolved  # what best/ and results hold
    assert plan.data.input_normalization["name"] == resolved
    assert [plan.arm(a).init for a in plan.arm_names] == ["imagenet", "scratch"]  # one data plan serves both


def test_the_paper_keeps_its_pixels_and_old_keys_are_refused_in_one_line():
    assert training.resolve(paper.get_config()).data.normalize == "none"
    config = paper.get_config()
    config.normalize = "tensorflow"
    with pytest.raises(TrainingError, match="--config.normalize='tensorflow': use one of weights, none, imagenet"):
        training.resolve(config)
    config = paper.get_config()
    del config.normalize
    config.normalize_imagenet = True  # a config file written before config.normalize
    with pytest.raises(TrainingError) as caught:
        training.resolve(config)
    message = str(caught.value)
    assert "\n" not in message and "normalize_imagenet is gone: use --config.normalize=imagenet" in message


@pytest.mark.parametrize("legacy, name", [(False, "none"), (True, "imagenet")])
def test_a_run_made_with_normalize_imagenet_still_resumes(legacy, name):
    config = paper.get_config() if name == "none" else backbones.get_config("resnet18")
    ours = training.resolve(config).config
    theirs = {k: v for k, v in ours.items() if k != "normalize"} | {"normalize_imagenet": legacy}
    assert config_fingerprint(theirs) == config_fingerprint(ours)
    assert augment.run_normalization(theirs) == name
    other = {**ours, "normalize": "inception"}
    assert config_fingerprint(other) != config_fingerprint(ours)


def test_both_arms_record_the_same_scaling_in_results_json(tmp_path, tiny_data):
    config = tiny_config(tiny_data, **{"epochs.pretrained": 1, "epochs.scratch": 1})
    config.normalize = "inception"
    weights = save_random_weights(tmp_path / "weights")
    results = train(config, tmp_path / "runs", 0, pretrained_weights=weights)
    on_disk = results_lib.load_results(tmp_path / "runs" / "run_000" / "results.json")
    assert on_disk == json.loads(json.dumps(results))
    expected = {"name": "inception", "mean": [0.5] * 3, "std": [0.5] * 3}
    assert {arm: record["input_normalization"] for arm, record in on_disk["arms"].items()} == {
        "pretrained": expected,
        "scratch": expected,
    }
    assert on_disk["config"]["normalize"] == "inception"
    best = json.loads((tmp_path / "runs" / "run_000" / "scratch" / "best" / "metadata.json").read_text())
    assert best["config"]["normalize"] == "inception"  # what predict reads


def test_the_schema_checks_the_scaling_and_reads_files_without_it(tmp_path):
    from alexnet_jax.analysis import demo

    demo.make_demo_study(tmp_path, num_runs=1, epochs=(3, 4), seed=0)
    results = results_lib.load_results(tmp_path / "run_000" / "results.json")
    assert all("input_normalization" not in record for record in results["arms"].values())  # older files
    record = results["arms"]["scratch"]
    record["input_normalization"] = augment.normalization_record("imagenet")
    results_lib.validate_results(results)
    for bad, complaint in (
        ("imagenet", "must be an object with a 'name'"),
        ({"name": "imagenet", "mean": [0.5, 0.5], "std": [1, 1, 1]}, r"mean' is \[0.5, 0.5\], expected 3 numbers"),
        ({"name": "imagenet", "mean": [0, 0, 0], "std": [1, 0, 1]}, "std' is .*expected 3 numbers > 0"),
    ):
        record["input_normalization"] = bad
        with pytest.raises(ResultsError, match=rf"'arms\.scratch\.input_normalization.*{complaint}"):
            results_lib.validate_results(results)
