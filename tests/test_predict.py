"""predict: a trained run's best params classify a folder of cut-outs or a prepared set.

The run is the tiny test model's (32 px, crop 28) on a 3-class set (a, b, c), trained in this
process; the command runs once as a real process for its CSV and its output line. The columns are
the classes the checkpoint records; a data set with other classes, or theirs in another order, is
refused, and so is resuming a run on one."""

import csv
import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from helpers import REPO, StopAfter, save_random_weights, tiny_config, train
from PIL import Image

from alexnet_jax import errors, inference, paper, params_io
from alexnet_jax.data.prepared import write_prepared

CLASSES = ["a", "b", "c"]


@pytest.fixture(scope="module")
def trained_run(module_tmp):
    root = module_tmp
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (21, 256, 256, 3), dtype=np.uint8)
    labels = np.arange(21) % 3
    write_prepared(root / "data", images, labels, name="tiny-random", source="test", class_names=CLASSES)
    # The same images under the same classes in another order, and under the paper's four.
    write_prepared(root / "reordered", images, labels, name="reordered", source="test", class_names=CLASSES[::-1])
    write_prepared(
        root / "paper", images[:8], np.arange(8) % 4, name="paper", source="test", class_names=paper.CLASS_NAMES
    )
    train(run_config(root / "data"), root / "runs", 0, ["scratch"])
    folder = root / "cutouts"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(images[i]).save(folder / f"galaxy_{i}.jpg", quality=95)
    Image.fromarray(images[3][..., 0]).save(folder / "galaxy_grey.png")  # greyscale is converted
    (folder / "notes.txt").write_text("not an image, ignored")
    return root


def run_config(data_dir):
    return tiny_config(data_dir, **{"epochs.scratch": 1, "model.num_classes": len(CLASSES)})


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
    assert list(rows[0]) == ["file", "p_a", "p_b", "p_c", "predicted_class", "predicted_label"]
    assert [r["file"] for r in rows] == ["galaxy_0.jpg", "galaxy_1.jpg", "galaxy_2.jpg", "galaxy_grey.png"]
    for row in rows:
        probs = np.array([float(row[f"p_{c}"]) for c in CLASSES])
        assert probs.sum() == pytest.approx(1.0, abs=1e-5)
        assert row["predicted_class"] == CLASSES[int(np.argmax(probs))]
    assert "wrote 4 predictions" in result.stdout and "warning" not in result.stderr


def test_predictions_match_the_models_centre_crop_evaluation(trained_run):
    from alexnet_jax import models
    from alexnet_jax.inputs import augment

    params_dir = inference.resolve_params_dir(trained_run / "runs/run_000/scratch")
    variables = params_io.load_variables(params_dir)
    params, batch_stats = variables["params"], variables["batch_stats"]
    metadata = params_io.load_metadata(params_dir)
    config, model = metadata["config"], params_io.model_of(metadata)
    assert model == "tiny"
    names, images, labels = inference.load_images(trained_run / "data")
    assert len(names) == 21 and labels is not None
    probs = inference.predict_probabilities(params, images, config, model=model, batch_stats=batch_stats, batch_size=8)
    assert probs.shape == (21, 3)
    small = augment.resize_images(images, config["data"]["image_size"])
    view = augment.eval_transform(
        small, augment.AugmentConfig(crop_size=28, random_crop=False, hflip=False, vflip=False, rotation_degrees=0.0)
    )
    logits = models.get_model(model, 3).apply(variables, view)  # eval mode: BatchNorm's running statistics
    expected = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(probs, expected / expected.sum(1, keepdims=True), rtol=1e-5, atol=1e-6)
    tta = inference.predict_probabilities(
        params, images[:4], config, model=model, batch_stats=batch_stats, batch_size=4, tta=3
    )
    assert tta.shape == (4, 3) and np.allclose(tta.sum(1), 1, atol=1e-5)


def test_predict_scales_inputs_as_the_run_did_old_runs_included(trained_run):
    """A run's config names its scaling (`normalize`, resolved); one made before that key says
    `normalize_imagenet`, which still predicts as it trained (True: imagenet, False: none)."""
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


def test_best_records_the_classes_and_predict_follows_them(trained_run, tmp_path):
    metadata = params_io.load_metadata(trained_run / "runs/run_000/scratch/best")
    assert metadata["class_names"] == CLASSES and metadata["num_classes"] == 3
    out = inference.predict(trained_run / "runs/run_000/scratch", trained_run / "data", batch_size=8)
    assert out.class_names == CLASSES and out.probabilities.shape == (21, 3) and out.warnings == ()
    np.testing.assert_array_equal(out.labels, np.arange(21) % 3)
    assert out.summary()[0].startswith("a: ") and out.summary()[1].startswith("accuracy against the data set's labels")
    inference.write_predictions(tmp_path / "p.csv", out.names, out.probabilities, out.class_names, out.labels)
    rows = read_csv(tmp_path / "p.csv")
    assert list(rows[0]) == ["file", "p_a", "p_b", "p_c", "predicted_class", "predicted_label", "true_label"]
    assert {r["predicted_class"] for r in rows} <= set(CLASSES)


@pytest.mark.parametrize(
    ("data", "listed"),
    [("paper", r"\['elliptical', 'lenticular', 'spiral', 'irr_misc'\]"), ("reordered", r"\['c', 'b', 'a'\]")],
)
def test_a_data_set_with_other_classes_is_refused(trained_run, data, listed):
    """Its labels would be scored against the wrong outputs: one line naming both lists, in order."""
    with pytest.raises(errors.PredictError) as caught:
        inference.predict(trained_run / "runs/run_000/scratch", trained_run / data)
    message = str(caught.value)
    assert "\n" not in message
    assert f"--images={trained_run / data}: its classes" in message
    assert re.search(listed + r" differ from the classes \['a', 'b', 'c'\] that .*best was trained on", message)
    assert ("another order" in message) == (data == "reordered")
    assert "Predict on a data set prepared with the checkpoint's classes in that order" in message


def old_run_params(trained_run, directory, num_classes):
    """A best/ as runs saved it before class names were recorded: the variables and the run's config."""
    config = params_io.load_metadata(trained_run / "runs/run_000/scratch/best")["config"]
    save_random_weights(directory, "tiny", num_classes=num_classes)
    metadata = json.loads((directory / "metadata.json").read_text())
    (directory / "metadata.json").write_text(json.dumps({**metadata, "config": config}))
    assert params_io.class_names_in(params_io.load_metadata(directory)) is None
    return directory


def test_params_without_class_names(trained_run, tmp_path):
    """A 4-output head is the paper's classes (with a warning); any other is refused. Converted weights
    (no training data) name their outputs by number and score no labels."""
    four = old_run_params(trained_run, tmp_path / "four", 4)
    out = inference.predict(four, trained_run / "cutouts", batch_size=4)
    assert out.class_names == list(paper.CLASS_NAMES) and out.probabilities.shape == (4, 4)
    (warning,) = out.warnings
    assert "records no class names" in warning and "the paper's classes" in warning
    assert inference.predict(four, trained_run / "paper", batch_size=4).labels is not None  # the paper's: scored
    with pytest.raises(errors.PredictError, match=r"\['a', 'b', 'c'\] differ from the classes \['elliptical'"):
        inference.predict(four, trained_run / "data")

    three = old_run_params(trained_run, tmp_path / "three", 3)
    with pytest.raises(errors.PredictError, match="records no class names and its head has 3 outputs"):
        inference.predict(three, trained_run / "cutouts")

    converted = save_random_weights(tmp_path / "converted", "tiny", num_classes=5)
    out = inference.predict(converted, trained_run / "paper", batch_size=4)
    assert out.class_names == [f"class_{i}" for i in range(5)] and out.labels is None
    assert "converted weights" in out.warnings[0]


def test_recorded_class_names_must_fit_the_head(trained_run, tmp_path):
    variables = params_io.load_variables(trained_run / "runs/run_000/scratch/best")
    with pytest.raises(ValueError, match="must name each of the 3 outputs once"):
        params_io.save_variables(tmp_path / "bad", variables, {"class_names": ["a", "b"]}, model="tiny")
    edited = tmp_path / "edited"
    shutil.copytree(trained_run / "runs/run_000/scratch/best", edited)
    metadata = json.loads((edited / "metadata.json").read_text())
    (edited / "metadata.json").write_text(json.dumps({**metadata, "class_names": ["a", "b"]}))
    with pytest.raises(errors.PredictError, match="names 2 classes .* for a head of 3 outputs"):
        inference.predict(edited, trained_run / "cutouts")


def test_a_run_is_not_resumed_on_other_classes(trained_run, tmp_path):
    """The data directory is no part of the config's fingerprint: results.json and the checkpoints
    record the classes, and another data set's (a reordering too) is refused in one line naming both."""
    from alexnet_jax.errors import Interrupted, TrainingError

    reordered = run_config(trained_run / "reordered")
    with pytest.raises(TrainingError, match=r"results.json records a run on the classes \['a', 'b', 'c'\], but .*"
                       r"reordered has \['c', 'b', 'a'\]; resuming would mix two data sets"):  # fmt: skip
        train(reordered, trained_run / "runs", 0, ["scratch"])

    workdir = tmp_path / "runs"
    with pytest.raises(Interrupted):  # stops before the epoch's second step, with a checkpoint
        train(run_config(trained_run / "data"), workdir, 0, ["scratch"], stop=StopAfter(2))
    assert (workdir / "run_000/scratch/checkpoints").is_dir()
    (workdir / "run_000/results.json").unlink()  # as a crash between the two writes would leave it
    with pytest.raises(TrainingError, match=r"checkpoints records a run on the classes \['a', 'b', 'c'\], but"):
        train(reordered, workdir, 0, ["scratch"])
