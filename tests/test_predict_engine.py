"""The prediction engine: ensemble members, MC dropout, TTA, temperature, features, uncertainty maths.

Checkpoints are the tiny test model's (3 classes, 32 px images, 28 px crops) saved as a run saves
best/ (class names and config in the metadata), with random weights made to look trained: a head
with large weights (confident, so dropout moves the probabilities visibly) and BatchNorm statistics
away from their initial values. Images are a few random 256 px ones.
"""

import math

import jax
import numpy as np
import pytest

from alexnet_jax import models, params_io
from alexnet_jax.calibration import temperature as calibration_temperature
from alexnet_jax.errors import PredictError
from alexnet_jax.inputs import augment
from alexnet_jax.predict import uncertainty
from alexnet_jax.predict.engine import Forward, Sampling
from alexnet_jax.predict.members import load_members, weights_sha256

CLASSES = ["a", "b", "c"]
RUN_CONFIG = {
    "model": {"name": "tiny", "dropout_rate": 0.5},
    "data": {"image_size": 32},
    "augment": {"crop_size": 28, "hflip": True, "vflip": True, "rotation_degrees": 180.0},
    "eval_augment": "random",
    "normalize": "none",
}


def trained_looking_variables(model: str = "tiny", seed: int = 0, num_classes: int = 3) -> dict:
    """Random variables with a confident head and moved BatchNorm statistics, as after training."""
    variables = jax.device_get(models.init_variables(model, jax.random.key(seed), num_classes))
    rng = np.random.default_rng(seed)
    head = models.get_spec(model).head
    variables["params"][head]["kernel"] = np.asarray(variables["params"][head]["kernel"]) * 20.0
    variables["batch_stats"] = jax.tree_util.tree_map(
        lambda x: np.asarray(x) * rng.uniform(0.5, 1.5, np.shape(x)).astype(np.float32), variables["batch_stats"]
    )
    return variables


def save_checkpoint(directory, *, model="tiny", seed=0, class_names=CLASSES, config=None, variables=None):
    """A best/ as a run writes it: the variables, the classes in label order and the run's config."""
    variables = variables if variables is not None else trained_looking_variables(model, seed, len(class_names))
    metadata = {"class_names": list(class_names), "config": config or RUN_CONFIG}
    params_io.save_variables(directory, variables, metadata, model=model)
    return directory


@pytest.fixture(scope="module")
def ckpt(module_tmp):
    """name -> checkpoint directory; every checkpoint of the module, made once."""
    root = module_tmp
    dirs = {
        "one": save_checkpoint(root / "one", seed=0),
        "two": save_checkpoint(root / "two", seed=1),
        "reordered": save_checkpoint(root / "reordered", seed=2, class_names=CLASSES[::-1]),
        "other_classes": save_checkpoint(root / "other_classes", seed=3, class_names=["a", "b", "d"]),
        "other_crop": save_checkpoint(
            root / "other_crop", seed=4, config={**RUN_CONFIG, "augment": {**RUN_CONFIG["augment"], "crop_size": 24}}
        ),  # fmt: skip
        "other_rate": save_checkpoint(
            root / "other_rate", seed=5, config={**RUN_CONFIG, "model": {"name": "tiny", "dropout_rate": 0.3}}
        ),  # fmt: skip
        "resnet": save_checkpoint(
            root / "resnet", model="resnet18", seed=6, config={**RUN_CONFIG, "model": {"name": "resnet18"}}
        ),  # fmt: skip
    }
    return dirs


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(7).integers(0, 256, (6, 256, 256, 3), dtype=np.uint8)


def forward(paths, sampling=None, **options):
    members, _ = load_members(paths)
    return Forward(members, sampling or Sampling(), batch_size=8, **options)


# ---------------------------------------------------------------- uncertainty maths, hand-worked


def test_entropy_and_mutual_information_known_answers():
    assert uncertainty.predictive_entropy([0.5, 0.5]) == pytest.approx(math.log(2), abs=1e-12)
    assert uncertainty.predictive_entropy([0.25] * 4) == pytest.approx(math.log(4), abs=1e-12)
    assert uncertainty.predictive_entropy([1.0, 0.0, 0.0]) == 0.0  # 0 ln 0 is 0, not NaN

    same = np.array([[0.2, 0.8], [0.2, 0.8], [0.2, 0.8]])
    assert uncertainty.mutual_information(same) == 0.0
    opposite = np.array([[1.0, 0.0], [0.0, 1.0]])  # two confident members that disagree
    out = uncertainty.combine_samples(opposite)
    np.testing.assert_array_equal(out["probabilities"], [0.5, 0.5])
    assert out["entropy"] == pytest.approx(math.log(2), abs=1e-12)
    assert out["mutual_information"] == pytest.approx(math.log(2), abs=1e-12)

    mixed = np.array([[0.9, 0.1], [0.5, 0.5]])  # mean (0.7, 0.3)
    h_mean = -(0.7 * math.log(0.7) + 0.3 * math.log(0.3))
    h_samples = (-(0.9 * math.log(0.9) + 0.1 * math.log(0.1)) + math.log(2)) / 2
    out = uncertainty.combine_samples(mixed)
    assert out["entropy"] == pytest.approx(h_mean, abs=1e-12)
    assert out["mutual_information"] == pytest.approx(h_mean - h_samples, abs=1e-12)
    # batched: samples (S, N, K) -> (N,)
    batched = uncertainty.combine_samples(np.stack([opposite, same[:2]], axis=1))
    np.testing.assert_allclose(batched["mutual_information"], [math.log(2), 0.0], atol=1e-12)


# ---------------------------------------------------------------- members


def test_weights_hash_is_the_variables_not_the_files(ckpt, module_tmp):
    (one,), _ = load_members([ckpt["one"]])
    copy = save_checkpoint(module_tmp / "copy_of_one", variables=one.variables)
    (again,), _ = load_members([copy])
    assert again.weights_sha256 == one.weights_sha256 == weights_sha256(one.variables)
    (two,), _ = load_members([ckpt["two"]])
    assert two.weights_sha256 != one.weights_sha256


@pytest.mark.parametrize(
    ("other", "field", "mine", "theirs"),
    [
        ("reordered", "classes", "['a', 'b', 'c']", "['c', 'b', 'a']"),
        ("other_classes", "classes", "['a', 'b', 'c']", "['a', 'b', 'd']"),
        ("resnet", "model", "'tiny'", "'resnet18'"),
        ("other_crop", "crop_size", "28", "24"),
        ("other_rate", "model.dropout_rate", "0.5", "0.3"),
    ],
)
def test_members_that_do_not_line_up_are_refused(ckpt, other, field, mine, theirs):
    with pytest.raises(PredictError) as caught:
        load_members([ckpt["one"], ckpt[other]])
    message = str(caught.value)
    assert "\n" not in message
    assert f"differ in {field}: {ckpt['one']} has {mine}, {ckpt[other]} has {theirs};" in message
    assert ("another order" in message) == (other == "reordered")


def test_study_workdir_and_arm(ckpt, module_tmp):
    import shutil

    study = module_tmp / "study"
    for run, arm in (("run_000", "scratch"), ("run_001", "scratch"), ("run_002", "pretrained")):
        shutil.copytree(ckpt["one"], study / run / arm / "best")
    members, _ = load_members(study=study, arm="scratch")
    assert [m.params_dir for m in members] == [study / f"run_00{i}" / "scratch" / "best" for i in (0, 1)]
    with pytest.raises(PredictError, match=r"--arm=frozen: no run of .* its arms with best/ are pretrained, scratch"):
        load_members(study=study, arm="frozen")
    with pytest.raises(PredictError, match="--study needs --arm"):
        load_members(study=study)
    with pytest.raises(PredictError, match="no checkpoint: give --checkpoint"):
        load_members([])


# ---------------------------------------------------------------- forward


def test_centre_crop_is_the_models_evaluation(ckpt, images):
    """No sampling: softmax of the eval-mode model on the run's resize + centre crop, as computed by hand."""
    out = forward([ckpt["one"]])(images, 0)
    (member,), _ = load_members([ckpt["one"]])
    view = augment.eval_transform(augment.resize_images(images, 32), augment.center_crop(28))
    logits = np.asarray(models.get_model("tiny", 3).apply(member.variables, view, train=False))
    np.testing.assert_allclose(out["logits"], logits, rtol=1e-6, atol=1e-6)
    expected = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(out["probabilities"], expected / expected.sum(1, keepdims=True), rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(out["mutual_information"], 0.0)  # one deterministic sample
    np.testing.assert_allclose(out["entropy"], uncertainty.predictive_entropy(out["probabilities"]), rtol=1e-6)


def test_an_ensemble_of_identical_members_equals_one_member(ckpt, images):
    for sampling in (Sampling(), Sampling(tta=3, seed=4)):
        alone = forward([ckpt["one"]], sampling)(images, 2)
        thrice = forward([ckpt["one"]] * 3, sampling)(images, 2)
        np.testing.assert_array_equal(thrice["probabilities"], alone["probabilities"])
        np.testing.assert_array_equal(thrice["entropy"], alone["entropy"])
    np.testing.assert_array_equal(forward([ckpt["one"]] * 3)(images, 2)["mutual_information"], 0.0)
    pair = forward([ckpt["one"], ckpt["two"]])(images, 2)  # two different members disagree somewhere
    assert pair["mutual_information"].max() > 1e-3 and "logits" not in pair


def test_mc_dropout_samples_differ_while_their_mean_is_stable(ckpt, images):
    def probabilities(samples, seed):
        return forward([ckpt["one"]], Sampling(mc_samples=samples, seed=seed))(images, 0)

    single = [probabilities(1, seed)["probabilities"] for seed in (0, 1)]
    means = [probabilities(1000, seed) for seed in (0, 1)]
    sample_gap = np.abs(single[0] - single[1]).max()
    mean_gap = np.abs(means[0]["probabilities"] - means[1]["probabilities"]).max()
    assert sample_gap > 0.2, sample_gap  # one pass with dropout: masks move the probabilities a lot
    assert mean_gap < 0.05, mean_gap  # 1000 passes: two seeds agree (standard error ~ 0.5 / 30)
    assert mean_gap < sample_gap / 5
    assert means[0]["mutual_information"].min() > 0  # the samples disagree
    centre = forward([ckpt["one"]])(images, 0)["probabilities"]
    # dropout was on; BatchNorm stayed in eval mode: a row's numbers do not depend on its batch (below)
    assert np.abs(means[0]["probabilities"] - centre).max() > 1e-4


def test_mc_dropout_is_refused_on_a_model_without_dropout(ckpt):
    (member,), _ = load_members([ckpt["resnet"]])
    with pytest.raises(PredictError) as caught:
        Forward([member], Sampling(mc_samples=4))
    message = str(caught.value)
    assert "\n" not in message and "resnet18" in message and "no dropout layer" in message
    assert "ensemble" in message and "repeat --checkpoint" in message


def test_same_batch_index_same_numbers_bit_for_bit(ckpt, images):
    sampling = Sampling(tta=2, mc_samples=3, seed=11)
    first = forward([ckpt["one"], ckpt["two"]], sampling)(images, 5)
    again = forward([ckpt["one"], ckpt["two"]], sampling)(images, 5)  # another Forward, another run
    for name in first:
        np.testing.assert_array_equal(first[name], again[name])
    partial = forward([ckpt["one"], ckpt["two"]], sampling)(images[:2], 5)  # fewer rows: the same rows' numbers
    np.testing.assert_array_equal(partial["probabilities"], first["probabilities"][:2])
    other = forward([ckpt["one"], ckpt["two"]], sampling)(images, 6)
    assert not np.array_equal(other["probabilities"], first["probabilities"])


def test_tta_averages_random_views(ckpt, images):
    centre = forward([ckpt["one"]])(images, 0)
    tta = forward([ckpt["one"]], Sampling(tta=4))(images, 0)
    np.testing.assert_allclose(tta["probabilities"].sum(1), 1.0, rtol=1e-6)
    assert np.abs(tta["probabilities"] - centre["probabilities"]).max() > 1e-3
    assert tta["mutual_information"].min() > 0 and "logits" not in tta
    again = forward([ckpt["one"]], Sampling(tta=4))(images, 0)
    np.testing.assert_array_equal(tta["probabilities"], again["probabilities"])
    reseeded = forward([ckpt["one"]], Sampling(tta=4, seed=1))(images, 0)
    assert not np.array_equal(reseeded["probabilities"], tta["probabilities"])
    assert forward([ckpt["one"]], Sampling(tta=4)).preprocessing["tta"] == 4


def test_temperature_divides_the_logits(ckpt, module_tmp, images):
    import shutil

    calibrated = module_tmp / "calibrated"
    shutil.copytree(ckpt["one"], calibrated)
    (member,), _ = load_members([calibrated])
    calibration_temperature.write_temperature(calibrated, temperature=2.0, weights_sha256=member.weights_sha256,
                                              fitted_on="validation", num_examples=10, nll_before=1.0,
                                              nll_after=0.9)  # fmt: skip
    members, warnings = load_members([calibrated])
    assert members[0].temperature == 2.0 and warnings == []
    out = Forward(members, batch_size=8)(images, 0)
    raw = Forward(members, batch_size=8, calibrated=False)(images, 0)
    np.testing.assert_array_equal(out["logits"], raw["logits"])  # logits stay raw
    halved = out["logits"].astype(np.float64) / 2.0
    expected = np.exp(halved - halved.max(1, keepdims=True))
    np.testing.assert_allclose(out["probabilities"], expected / expected.sum(1, keepdims=True), rtol=1e-5, atol=1e-7)
    assert out["entropy"].mean() > raw["entropy"].mean()  # T > 1 softens
    assert Forward(members).describe() == "ensemble=1, mc_dropout=0, tta=0, temperature=2"

    (two,), _ = load_members([ckpt["two"]])  # a temperature fitted for other weights is ignored, with a warning
    shutil.copy(calibrated / "temperature.json", two.params_dir / "temperature.json")
    try:
        (stale,), warnings = load_members([ckpt["two"]])
        assert stale.temperature is None and "fitted for other weights" in warnings[0]
        (unused,), _ = load_members([calibrated], use_temperature=False)
        assert unused.temperature is None
    finally:
        (two.params_dir / "temperature.json").unlink()


def test_features_are_the_heads_input(ckpt, images):
    run = forward([ckpt["one"]], features=True)
    out = run(images, 0)
    head = run.members[0].variables["params"]["fc"]
    assert out["features"].shape == (len(images), head["kernel"].shape[0])  # the head's fan-in
    np.testing.assert_array_equal(out["features"], run(images, 3)["features"])  # no randomness
    np.testing.assert_allclose(out["features"] @ head["kernel"] + head["bias"], out["logits"], rtol=1e-5, atol=1e-5)
    with pytest.raises(PredictError, match="features come from one checkpoint"):
        forward([ckpt["one"]], Sampling(mc_samples=2), features=True)


def test_bad_sampling_batches_and_crops(ckpt, images, tmp_path):
    with pytest.raises(PredictError, match="--tta=-1"):
        Sampling(tta=-1)
    run = forward([ckpt["one"]])
    with pytest.raises(PredictError, match="at most 8"):
        run(np.concatenate([images, images]), 0)
    assert run.run(np.concatenate([images, images]))["probabilities"].shape == (12, 3)
    too_big = {**RUN_CONFIG, "augment": {**RUN_CONFIG["augment"], "crop_size": 40}}
    with pytest.raises(PredictError, match=r"big: the config it was trained with: .*crop_size=40 is larger"):
        forward([save_checkpoint(tmp_path / "big", config=too_big)])


@pytest.mark.parametrize(
    ("model", "options", "size", "layers"),
    [
        ("efficientnet_lite0", {"dropout_rate": 0.2, "drop_path_rate": 0.2}, 32, 1),  # drop-connect not counted
        ("convnext_tiny", {"drop_path_rate": 0.1}, 32, 0),  # stochastic depth only
        ("vit_b_16", {"dropout_rate": 0.0}, 32, 0),  # torchvision's default: no dropout
        ("vit_b_16", {"dropout_rate": 0.1}, 32, 1 + 12 * 3),  # embeddings; per layer after attention, MLP x 2
        ("alexnet", {"dropout_rate": 0.5}, 64, 2),
    ],
)
def test_which_layers_mc_dropout_turns_on(model, options, size, layers):
    """Plain dropout of rate > 0 samples; stochastic depth (a mask broadcast over a sample) stays off."""
    from alexnet_jax.predict.engine import count_mc_dropout_layers

    network = models.get_model(model, 3, **options)
    shapes = jax.eval_shape(lambda: network.init(jax.random.key(0), np.zeros((1, size, size, 3), np.float32)))
    assert count_mc_dropout_layers(network, shapes, size) == layers


@pytest.mark.parametrize("model", ["alexnet", "resnet18", "efficientnet_lite0", "convnext_tiny", "vit_b_16"])
def test_features_are_the_head_input_of_every_backbone(model):
    """The recorded features have the head's fan-in for each registered backbone (traced, no weights)."""
    from alexnet_jax.predict.engine import _apply_recording_head_input

    network, size = models.get_model(model, 3), max(models.get_spec(model).min_input_size, 32)
    images = np.zeros((2, size, size, 3), np.float32)
    shapes = jax.eval_shape(lambda: network.init(jax.random.key(0), images))
    logits, features = jax.eval_shape(
        lambda v: _apply_recording_head_input(network, models.get_spec(model).head, v, images), shapes
    )
    head = shapes["params"][models.get_spec(model).head]["kernel"]
    assert logits.shape == (2, 3) and features.shape == (2, head.shape[0])
