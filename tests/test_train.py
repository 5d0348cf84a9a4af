"""Training: device equivalence, the results schema, resumption, the run lock, the NaN stop.

Everything runs on tiny random images at 72 px (crop 64, AlexNet's minimum is 63), so the
mechanics are real while the whole file stays CI-sized.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from alexnet_jax import cli, errors, train
from alexnet_jax import results as results_lib
from alexnet_jax.models import init_params

REPO = Path(__file__).resolve().parent.parent
# Packed runs go through a vmapped step, whose batched convolutions XLA may sum in another order.
PACKED_RTOL = 1e-5
QUICK = REPO / "experiments" / "configs" / "quick.py"


def tiny_config(**overrides):
    sys.path.insert(0, str(QUICK.parent))
    import quick

    config = quick.get_config()
    config.data.image_size = 72
    config.augment.crop_size = 64
    config.batch_size = 8
    config.eval_batch_size = 8
    config.epochs.pretrained = 2
    config.epochs.scratch = 3
    config.pipeline = "on_device"
    for key, value in overrides.items():
        target = config
        *parents, leaf = key.split(".")
        for parent in parents:
            target = target[parent]
        target[leaf] = value
    return config


CLI_OVERRIDES = [
    "--config.checkpoint_every_epochs=1",  # a checkpoint after every epoch: the kill can come at any one
    "--config.data.image_size=72",
    "--config.augment.crop_size=64",
    "--config.batch_size=8",
    "--config.eval_batch_size=8",
    "--config.pipeline=on_device",
]


@pytest.fixture(scope="module")
def fake_pretrained(module_tmp):
    """Converted-weights directory for the mechanics of the pretrained arm (random 1000-class
    weights, labelled as such: the point here is the code path, not ImageNet)."""
    from alexnet_jax import params_io

    directory = module_tmp / "weights"
    params_io.save_params(
        directory,
        jax.device_get(init_params(jax.random.key(1), 1000, 64)),
        {"source": "test: random torchvision-style init", "num_classes": 1000},
    )
    return directory


def strip_timing(results):
    results = json.loads(json.dumps(results))
    for arm in results["arms"].values():
        for key in train.TIMING_KEYS:
            arm.pop(key, None)
    return results


def test_parse_runs_and_arms():
    assert cli.parse_runs("0-3,7,2") == [0, 1, 2, 3, 7]
    assert cli.parse_runs("49") == [49]
    with pytest.raises(ValueError, match="backwards"):
        cli.parse_runs("5-2")
    with pytest.raises(ValueError, match="cannot read"):
        cli.parse_runs("a-b")
    assert train.parse_arms("scratch") == ["scratch"]
    with pytest.raises(ValueError, match="unknown arm"):
        train.parse_arms("pretrained,imagenet")


def test_results_schema_and_both_arms(tmp_path, tiny_data, fake_pretrained):
    config = tiny_config()
    config.data.dir = str(tiny_data)
    results = train.Trainer(config, tmp_path, 3, pretrained_weights=fake_pretrained, log=lambda s: None).run(
        ["pretrained", "scratch"]
    )
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
    train.Trainer(config, tmp_path, 3, pretrained_weights=fake_pretrained, log=said.append).run(
        ["pretrained", "scratch"]
    )
    assert any("already complete" in line for line in said)
    assert not (tmp_path / "run_003" / "scratch" / "checkpoints").exists()


def test_pretrained_arm_refuses_without_weights(tmp_path, tiny_data):
    config = tiny_config()
    config.data.dir = str(tiny_data)
    trainer = train.Trainer(config, tmp_path, 0, pretrained_weights=tmp_path / "missing", log=lambda s: None)
    with pytest.raises(errors.TrainingError, match="needs converted ImageNet weights"):
        trainer.run(["pretrained"])
    assert (
        not (tmp_path / "run_000" / "results.json").exists()
        or "pretrained" not in json.loads((tmp_path / "run_000" / "results.json").read_text())["arms"]
    )


def test_single_and_four_devices_agree(tmp_path, tiny_data):
    assert len(jax.devices()) == 4, "conftest forces 4 host devices"
    config = tiny_config(**{"epochs.scratch": 2})
    config.data.dir = str(tiny_data)
    one = train.Trainer(config, tmp_path / "one", 0, devices=jax.devices()[:1], log=lambda s: None).run(["scratch"])
    four = train.Trainer(config, tmp_path / "four", 0, devices=jax.devices(), log=lambda s: None).run(["scratch"])
    a, b = one["arms"]["scratch"], four["arms"]["scratch"]
    assert a["devices"] != b["devices"]
    for key in ("train_loss", "test_loss"):
        np.testing.assert_allclose(a[key], b[key], rtol=1e-4, atol=1e-5)
    for key in ("train_acc", "test_acc"):
        np.testing.assert_allclose(a[key], b[key], atol=1 / 38 + 1e-9)  # at most one flipped prediction


def test_same_command_same_numbers(tmp_path, tiny_data):
    config = tiny_config(**{"epochs.scratch": 2})
    config.data.dir = str(tiny_data)
    first = train.Trainer(config, tmp_path / "a", 1, log=lambda s: None).run(["scratch"])
    second = train.Trainer(config, tmp_path / "b", 1, log=lambda s: None).run(["scratch"])
    assert strip_timing(first) == strip_timing(second)


def test_non_finite_loss_stops_with_epoch_and_step(tmp_path, tiny_data):
    config = tiny_config(**{"optim.learning_rate": 1e30, "epochs.scratch": 3})
    config.data.dir = str(tiny_data)
    trainer = train.Trainer(config, tmp_path, 0, log=lambda s: None)
    with pytest.raises(errors.TrainingError, match=r"non-finite at epoch \d+ \(0-based\), step \d+"):
        trainer.run(["scratch"])


def test_resume_refuses_a_different_config(tmp_path, tiny_data):
    config = tiny_config(**{"epochs.scratch": 1, "keep_final_state": True})
    config.data.dir = str(tiny_data)
    train.Trainer(config, tmp_path, 0, log=lambda s: None).run(["scratch"])
    assert (tmp_path / "run_000" / "scratch" / "checkpoints").is_dir()
    # what to keep on disk is not part of the config that the numbers depend on
    same = tiny_config(**{"epochs.scratch": 1})
    same.data.dir = str(tiny_data)
    said = []
    train.Trainer(same, tmp_path, 0, log=said.append).run(["scratch"])
    assert any("already complete" in line for line in said)
    other = tiny_config(**{"epochs.scratch": 1, "optim.learning_rate": 0.5})
    other.data.dir = str(tiny_data)
    with pytest.raises(errors.TrainingError, match="another config.*learning_rate"):
        train.Trainer(other, tmp_path, 0, log=lambda s: None).run(["scratch"])


def test_full_disk_is_refused_before_the_arm_starts(tmp_path, tiny_data, monkeypatch):
    import collections
    import shutil

    config = tiny_config()
    config.data.dir = str(tiny_data)
    trainer = train.Trainer(config, tmp_path, 0, log=lambda s: None)
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**12, 10**12 - 10**6, 10**6))
    # 57M parameters: 2 x (params + momentum) + 2 x params = 6 x 228 MB
    with pytest.raises(
        errors.TrainingError,
        match=r"run 000 \[scratch\]: its checkpoints need about 1\.37 GB "
        r"free in .*run_000/scratch, but only 0\.00 GB",
    ):
        trainer.run(["scratch"])
    assert not (tmp_path / "run_000" / "scratch" / "checkpoints").exists()


def _train_command(data, workdir, epochs):
    return [
        sys.executable,
        "-m",
        "alexnet_jax.train",
        f"--config={QUICK}",
        f"--data_dir={data}",
        f"--workdir={workdir}",
        "--run_index=2",
        "--arms=scratch",
        f"--config.epochs.scratch={epochs}",
        *CLI_OVERRIDES,
    ]


def _env():
    env = dict(os.environ)
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    env["PYTHONPATH"] = str(REPO)
    return env


@pytest.mark.slow
def test_second_process_on_the_same_run_is_refused(tmp_path, tiny_data):
    workdir = tmp_path / "w"
    first = subprocess.Popen(
        _train_command(tiny_data, workdir, 50),
        env=_env(),
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
            _train_command(tiny_data, workdir, 50), env=_env(), cwd=REPO, capture_output=True, text=True, timeout=300
        )
        assert second.returncode == cli.EXIT_LOCKED
        assert "in use by pid" in second.stderr and "must not train the same run" in second.stderr
        assert first.poll() is None, "the first process must be unaffected"
    finally:
        first.kill()
        first.wait()


def test_compiled_once_for_every_run_of_a_process(tmp_path, tiny_data):
    # A learning rate no other test uses: its steps are not compiled yet in this process.
    config = tiny_config(**{"epochs.scratch": 1, "optim.learning_rate": 0.0123})
    config.data.dir = str(tiny_data)
    first, second = train.train_runs(config, tmp_path, [0, 1], ["scratch"], devices=jax.devices()[:1], log=print)
    compiled = [r["arms"]["scratch"]["time"]["compile_s"] for r in (first, second)]
    assert compiled[0] > 1.0 and compiled[1] < 0.5, compiled


def test_packed_runs_equal_runs_trained_alone(tmp_path, tiny_data):
    config = tiny_config(**{"epochs.scratch": 1})
    config.data.dir = str(tiny_data)
    alone = train.train_runs(config, tmp_path / "alone", [0, 1], ["scratch"], log=lambda s: None)
    config.pack_runs = 2
    packed = train.train_runs(config, tmp_path / "packed", [0, 1], ["scratch"], log=lambda s: None)
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
