"""predict: a trained run's best params classify a folder of cut-outs or a prepared set.

The run is the tiny test model's (32 px, crop 28), trained in this process; the command runs once
as a real process for its CSV and its output line."""

import csv
import subprocess
import sys

import numpy as np
import pytest
from helpers import REPO, tiny_config, train
from PIL import Image

from alexnet_jax import errors, inference, paper
from alexnet_jax.data.prepared import write_prepared


@pytest.fixture(scope="module")
def trained_run(module_tmp):
    root = module_tmp
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (20, 256, 256, 3), dtype=np.uint8)
    write_prepared(
        root / "data", images, np.arange(20) % 4, name="tiny-random", source="test", class_names=paper.CLASS_NAMES
    )
    train(tiny_config(root / "data", **{"epochs.scratch": 1}), root / "runs", 0, ["scratch"])
    folder = root / "cutouts"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(images[i]).save(folder / f"galaxy_{i}.jpg", quality=95)
    Image.fromarray(images[3][..., 0]).save(folder / "galaxy_grey.png")  # greyscale is converted
    (folder / "notes.txt").write_text("not an image, ignored")
    return root


def read_csv(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


def test_predict_cli_on_a_folder(trained_run, tmp_path):
    out = tmp_path / "preds.csv"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "alexnet_jax.predict",
            f"--checkpoint={trained_run / 'runs/run_000/scratch'}",
            f"--images={trained_run / 'cutouts'}",
            f"--output={out}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = read_csv(out)
    assert [r["file"] for r in rows] == ["galaxy_0.jpg", "galaxy_1.jpg", "galaxy_2.jpg", "galaxy_grey.png"]
    for row in rows:
        probs = np.array([float(row[f"p_{c}"]) for c in ("elliptical", "lenticular", "spiral", "irr_misc")])
        assert probs.sum() == pytest.approx(1.0, abs=1e-5)
        assert row["predicted_class"] == ("elliptical", "lenticular", "spiral", "irr_misc")[int(np.argmax(probs))]
    assert "wrote 4 predictions" in result.stdout


def test_predictions_match_the_models_centre_crop_evaluation(trained_run):
    from alexnet_jax import models, params_io
    from alexnet_jax.inputs import augment

    params_dir = inference.resolve_params_dir(trained_run / "runs/run_000/scratch")
    variables = params_io.load_variables(params_dir)
    params, batch_stats = variables["params"], variables["batch_stats"]
    metadata = params_io.load_metadata(params_dir)
    config, model = metadata["config"], params_io.model_of(metadata)
    assert model == "tiny"
    names, images, labels = inference.load_images(trained_run / "data")
    assert len(names) == 20 and labels is not None
    probs = inference.predict_probabilities(params, images, config, model=model, batch_stats=batch_stats, batch_size=8)
    assert probs.shape == (20, 4)
    small = augment.resize_images(images, config["data"]["image_size"])
    view = augment.eval_transform(
        small, augment.AugmentConfig(crop_size=28, random_crop=False, hflip=False, vflip=False, rotation_degrees=0.0)
    )
    logits = models.get_model(model, 4).apply(variables, view)  # eval mode: BatchNorm's running statistics
    expected = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(probs, expected / expected.sum(1, keepdims=True), rtol=1e-5, atol=1e-6)
    tta = inference.predict_probabilities(
        params, images[:4], config, model=model, batch_stats=batch_stats, batch_size=4, tta=3
    )
    assert tta.shape == (4, 4) and np.allclose(tta.sum(1), 1, atol=1e-5)


def test_predict_scales_inputs_as_the_run_did_old_runs_included(trained_run):
    """A run's config names its scaling (`normalize`, resolved); one made before that key says
    `normalize_imagenet`, which still predicts as it trained (True: imagenet, False: none)."""
    from alexnet_jax import params_io

    params_dir = inference.resolve_params_dir(trained_run / "runs/run_000/scratch")
    variables = params_io.load_variables(params_dir)
    config = params_io.load_metadata(params_dir)["config"]
    assert config["normalize"] == "none"  # the quick config's (the paper's) scaling, as trained
    _, images, _ = inference.load_images(trained_run / "data")
    images = images[:4]

    def probabilities(run_config):
        return inference.predict_probabilities(
            variables["params"], images, run_config, model="tiny", batch_stats=variables["batch_stats"], batch_size=4
        )

    legacy = {k: v for k, v in config.items() if k != "normalize"}
    by_name = {how: probabilities({**config, "normalize": how}) for how in ("none", "imagenet")}
    assert not np.allclose(by_name["none"], by_name["imagenet"])
    np.testing.assert_array_equal(probabilities({**legacy, "normalize_imagenet": False}), by_name["none"])
    np.testing.assert_array_equal(probabilities({**legacy, "normalize_imagenet": True}), by_name["imagenet"])
    np.testing.assert_array_equal(probabilities(legacy), by_name["none"])  # neither key: the paper's pixels
    with pytest.raises(errors.PredictError, match="config.normalize: unknown input normalization 'tf'"):
        probabilities({**config, "normalize": "tf"})


def test_clear_errors(trained_run, tmp_path):
    with pytest.raises(errors.PredictError, match="no trained params there"):
        inference.resolve_params_dir(tmp_path)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    with pytest.raises(errors.PredictError, match="broken.jpg"):
        inference.load_images(bad)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(errors.PredictError, match="no image files"):
        inference.load_images(empty)
