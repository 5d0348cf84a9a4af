"""Training: device equivalence, the results schema, resumption, the run lock, the NaN stop.

Everything trains the tiny test model on random 32 px images (crop 28) in this process, so the
mechanics are real while the file takes seconds; AlexNet only where its own numbers are asserted.
"""

import json
import subprocess
import time

import jax
import numpy as np
import pytest
from helpers import (
    REPO,
    alexnet_config,
    save_random_weights,
    strip_timing,
    subprocess_env,
    tiny_config,
    train,
    train_command,
)

from alexnet_jax import cli, errors
from alexnet_jax import results as results_lib

# Packed runs go through a vmapped step, whose batched convolutions XLA may sum in another order.
PACKED_RTOL = 1e-5


@pytest.fixture(scope="module")
def fake_pretrained(module_tmp):
    """Converted-weights directory for the mechanics of the pretrained arm (random 1000-class
    tiny weights, labelled as such: the point here is the code path, not ImageNet)."""
    return save_random_weights(module_tmp / "weights")


def test_parse_runs_and_arms():
    from alexnet_jax import training
    from alexnet_jax.configs import paper

    assert cli.parse_runs("0-3,7,2") == [0, 1, 2, 3, 7]
    assert cli.parse_runs("49") == [49]
    with pytest.raises(ValueError, match="backwards"):
        cli.parse_runs("5-2")
    with pytest.raises(ValueError, match="cannot read"):
        cli.parse_runs("a-b")
    plan = training.resolve(paper.get_config())
    assert plan.select_arms("scratch") == ["scratch"]
    with pytest.raises(ValueError, match="unknown arm"):
        plan.select_arms("pretrained,imagenet")


def test_results_schema_and_both_arms(tmp_path, tiny_data, fake_pretrained):
    config = tiny_config(tiny_data)
    results = train(config, tmp_path, 3, ["pretrained", "scratch"], pretrained_weights=fake_pretrained)
    on_disk = results_lib.load_results(tmp_path / "run_003" / "results.json")
    assert on_disk == json.loads(json.dumps(results))
    assert on_disk["schema"] == results_lib.SCHEMA and on_disk["run_index"] == 3
    assert on_disk["class_names"] == ["elliptical", "lenticular", "spiral", "irr_misc"]
    split = on_disk["split"]
    assert split["protocol"] == "paper"
    # the paper's rule scaled to 44 images: round(44 * 12000 / 14034) = 38 train, 6 test
    assert sum(split["train_counts"]) == 38 and sum(split["test_counts"]) == 6
    for arm, epochs in (("pretrained", 2), ("scratch", 3)):
        record = on_disk["arms"][arm]
        assert record["epochs"] == epochs and record["complete"] is True
        for key in ("train_acc", "test_acc", "train_loss", "test_loss"):
            assert len(record[key]) == epochs
        assert record["best_epoch"] == int(np.argmax(record["test_acc"]))
        assert record["best_test_acc"] == max(record["test_acc"])
        confusion = np.asarray(record["confusion_matrix"])
        assert confusion.shape == (4, 4)
        assert confusion.sum(1).tolist() == split["test_counts"]
        # the confusion matrix is the best epoch's own evaluation, so it reproduces its accuracy
        assert np.trace(confusion) / confusion.sum() == pytest.approx(record["best_test_acc"])
        assert len(record["test_predictions"]) == 6
        assert record["wall_time_s"] > 0
        assert (tmp_path / "run_003" / arm / "best" / "metadata.json").exists()
        # a finished arm keeps best/ but not its resume state (2x the parameters)
        assert not (tmp_path / "run_003" / arm / "checkpoints").exists()
    assert on_disk["arms"]["pretrained"]["init"]["kind"] == "converted_torch_weights"
    assert on_disk["arms"]["scratch"]["init"]["kind"] == "torchvision_default_init"
    assert on_disk["config"]["optim"]["momentum"] == 0.9
    # A completed run started again does nothing and says so; a resume state left behind by a
    # kill between finishing an arm and deleting it goes then.
    (tmp_path / "run_003" / "scratch" / "checkpoints" / "0").mkdir(parents=True)
    said = []
    train(config, tmp_path, 3, ["pretrained", "scratch"], pretrained_weights=fake_pretrained, log=said.append)
    assert any("already complete" in line for line in said)
    assert not (tmp_path / "run_003" / "scratch" / "checkpoints").exists()


def test_pretrained_arm_refuses_without_weights(tmp_path, tiny_data):
    # AlexNet: the message names the torchvision file to convert (the tiny model has none).
    config = alexnet_config(tiny_data)
    with pytest.raises(errors.TrainingError, match="needs converted ImageNet weights"):
        train(config, tmp_path, 0, ["pretrained"], pretrained_weights=tmp_path / "missing")
    assert (
        not (tmp_path / "run_000" / "results.json").exists()
        or "pretrained" not in json.loads((tmp_path / "run_000" / "results.json").read_text())["arms"]
    )


def test_single_and_four_devices_agree(tmp_path, tiny_data):
    assert len(jax.devices()) == 4, "conftest forces 4 host devices"
    config = tiny_config(tiny_data, **{"epochs.scratch": 2})
    one = train(config, tmp_path / "one", 0, ["scratch"], devices=jax.devices()[:1])
    four = train(config, tmp_path / "four", 0, ["scratch"], devices=jax.devices())
    a, b = one["arms"]["scratch"], four["arms"]["scratch"]
    assert a["devices"] != b["devices"]
    for key in ("train_loss", "test_loss"):
        np.testing.assert_allclose(a[key], b[key], rtol=1e-4, atol=1e-5)
    for key in ("train_acc", "test_acc"):
        np.testing.assert_allclose(a[key], b[key], atol=1 / 38 + 1e-9)  # at most one flipped prediction


def test_same_command_same_numbers(tmp_path, tiny_data):
    config = tiny_config(tiny_data, **{"epochs.scratch": 2})
    first = train(config, tmp_path / "a", 1, ["scratch"])
    second = train(config, tmp_path / "b", 1, ["scratch"])
    assert strip_timing(first) == strip_timing(second)


def test_non_finite_loss_stops_with_epoch_and_step(tmp_path, tiny_data):
    config = tiny_config(tiny_data, **{"optim.learning_rate": 1e30, "epochs.scratch": 3})
    with pytest.raises(errors.TrainingError, match=r"non-finite at epoch \d+ \(0-based\), step \d+"):
        train(config, tmp_path, 0, ["scratch"])


def test_resume_refuses_a_different_config(tmp_path, tiny_data):
    config = tiny_config(tiny_data, **{"epochs.scratch": 1, "keep_final_state": True})
    train(config, tmp_path, 0, ["scratch"])
    assert (tmp_path / "run_000" / "scratch" / "checkpoints").is_dir()
    # what to keep on disk is not part of the config that the numbers depend on
    said = []
    train(tiny_config(tiny_data, **{"epochs.scratch": 1}), tmp_path, 0, ["scratch"], log=said.append)
    assert any("already complete" in line for line in said)
    other = tiny_config(tiny_data, **{"epochs.scratch": 1, "optim.learning_rate": 0.5})
    with pytest.raises(errors.TrainingError, match="another config.*learning_rate"):
        train(other, tmp_path, 0, ["scratch"])


def test_full_disk_is_refused_before_the_arm_starts(tmp_path, tiny_data, monkeypatch):
    import collections
    import shutil

    # AlexNet: the estimate asserted is its own, from its 57 M parameters.
    config = alexnet_config(tiny_data)
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**12, 10**12 - 10**6, 10**6))
    # 57M parameters: 2 x (params + momentum) + 2 x params = 6 x 228 MB
    with pytest.raises(
        errors.TrainingError,
        match=r"run 000 \[scratch\]: its checkpoints need about 1\.37 GB "
        r"free in .*run_000/scratch, but only 0\.00 GB",
    ):
        train(config, tmp_path, 0, ["scratch"])
    assert not (tmp_path / "run_000" / "scratch" / "checkpoints").exists()


@pytest.mark.slow
def test_second_process_on_the_same_run_is_refused(tmp_path, tiny_data):
    workdir = tmp_path / "w"
    # Epochs enough that the first process is still training when the second one asks (it is killed).
    forever = ("--config.epochs.scratch=100000", "--config.checkpoint_every_epochs=1")
    first = subprocess.Popen(
        train_command(tiny_data, workdir, *forever),
        env=subprocess_env(),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        lock = workdir / "run_002" / ".lock"
        deadline = time.time() + 300
        while time.time() < deadline and not (lock.exists() and lock.read_text().startswith("pid")):
            time.sleep(0.05)
        second = subprocess.run(
            train_command(tiny_data, workdir, *forever),
            env=subprocess_env(),
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert second.returncode == cli.EXIT_LOCKED
        assert "in use by pid" in second.stderr and "must not train the same run" in second.stderr
        assert first.poll() is None, "the first process must be unaffected"
    finally:
        first.kill()
        first.wait()


@pytest.fixture
def no_compilation_cache():
    """XLA compiles for real: a hit in the persistent cache takes less than the compilation asserted."""
    from jax.experimental.compilation_cache import compilation_cache

    jax.config.update("jax_enable_compilation_cache", False)
    compilation_cache.reset_cache()
    yield
    jax.config.update("jax_enable_compilation_cache", True)
    compilation_cache.reset_cache()


def test_compiled_once_for_every_run_of_a_process(tmp_path, tiny_data, no_compilation_cache):
    # A learning rate no other test uses: its steps are not compiled yet in this process.
    config = tiny_config(tiny_data, **{"epochs.scratch": 1, "optim.learning_rate": 0.0123})
    first, second = train(config, tmp_path, [0, 1], ["scratch"], devices=jax.devices()[:1], log=print)
    compiled = [r["arms"]["scratch"]["time"]["compile_s"] for r in (first, second)]
    assert compiled[0] > 1.0 and compiled[1] < 0.5, compiled


def test_packed_runs_equal_runs_trained_alone(tmp_path, tiny_data):
    alone = train(tiny_config(tiny_data, **{"epochs.scratch": 1}), tmp_path / "alone", [0, 1], ["scratch"])
    config = tiny_config(tiny_data, **{"epochs.scratch": 1, "pack_runs": 2})
    packed = train(config, tmp_path / "packed", [0, 1], ["scratch"])
    for run, a, p in zip((0, 1), alone, packed, strict=True):
        on_disk = results_lib.load_results(tmp_path / "packed" / f"run_{run:03d}" / "results.json")
        assert on_disk["run_index"] == run and on_disk["split"] == a["split"]
        a, p = a["arms"]["scratch"], p["arms"]["scratch"]
        assert p["packed_with"] == 2 and "packed_with" not in a
        for key in ("train_loss", "test_loss"):
            np.testing.assert_allclose(p[key], a[key], rtol=PACKED_RTOL)
        for key in ("train_acc", "test_acc", "best_epoch", "confusion_matrix", "test_predictions"):
            assert p[key] == a[key], key
        assert (tmp_path / "packed" / f"run_{run:03d}" / "scratch" / "best" / "metadata.json").is_file()
