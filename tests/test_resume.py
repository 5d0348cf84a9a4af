"""Stopping and resuming: SIGKILL at any moment, SIGTERM and SIGINT, checkpoints on an interval,
a stop in the middle of an epoch, damaged checkpoints. Every resumed run must end with the
results.json of a run that was never stopped, bit for bit on CPU (timings aside).

The processes here are real `python -m alexnet_jax.train` commands on 2 forced CPU devices,
compared with one uninterrupted reference run of the same command.
"""

import json
import signal
import subprocess
import time

import jax
import pytest
from test_train import REPO, _env, _train_command, strip_timing, tiny_config

from alexnet_jax import cli, errors, train
from alexnet_jax.errors import TrainingError
from alexnet_jax.training.rundir import config_fingerprint

EPOCHS = 5


def _results(workdir):
    return json.loads((workdir / "run_002" / "results.json").read_text())


def comparable(results: dict) -> dict:
    """results.json without what measures the machine, and with only the config keys that change
    numbers: these runs differ in when they save, never in what they compute."""
    results = strip_timing(results)
    results["config"] = config_fingerprint(results["config"])
    return results


@pytest.fixture(scope="module")
def reference(module_tmp, tiny_data):
    """The uninterrupted run every resumed one must equal."""
    done = subprocess.run(
        _train_command(tiny_data, module_tmp / "ref", EPOCHS), env=_env(), cwd=REPO, capture_output=True, text=True,
        timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return comparable(_results(module_tmp / "ref"))


def _start(tiny_data, workdir, *extra):
    return subprocess.Popen(
        [*_train_command(tiny_data, workdir, EPOCHS), *extra],
        env=_env(),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_epochs(process, workdir, count: int) -> None:
    metrics = workdir / "run_002" / "scratch" / "metrics.jsonl"
    deadline = time.time() + 600
    while time.time() < deadline and process.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= count:
            return
        time.sleep(0.02)
    assert process.poll() is None, "the run finished before it could be stopped"


def _resume(tiny_data, workdir, *extra):
    done = subprocess.run(
        [*_train_command(tiny_data, workdir, EPOCHS), *extra], env=_env(), cwd=REPO, capture_output=True, text=True,
        timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout + done.stderr


@pytest.mark.slow
def test_sigkill_and_resume_gives_identical_results(tmp_path, tiny_data, reference):
    workdir = tmp_path / "killed"
    process = _start(tiny_data, workdir)
    _wait_for_epochs(process, workdir, 2)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    partial = _results(workdir)
    assert partial["arms"]["scratch"]["complete"] is False
    assert (workdir / "run_002" / "scratch" / "checkpoints").is_dir()

    assert "resuming after epoch" in _resume(tiny_data, workdir)
    assert comparable(_results(workdir)) == reference
    assert not (workdir / "run_002" / "scratch" / "checkpoints").exists()
    assert "already complete" in _resume(tiny_data, workdir)


@pytest.mark.slow
def test_interval_checkpoints_replay_the_epochs_after_the_last_one(tmp_path, tiny_data, reference):
    workdir = tmp_path / "interval"
    every_two = ("--config.checkpoint_every_epochs=2", "--config.checkpoint_every_seconds=0")
    process = _start(tiny_data, workdir, *every_two)
    _wait_for_epochs(process, workdir, 3)  # epoch 3 is done, its checkpoint is not: the last is after epoch 2
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert len(_results(workdir)["arms"]["scratch"]["test_acc"]) >= 3
    said = _resume(tiny_data, workdir, *every_two)
    assert "resuming after epoch 2/5" in said or "resuming after epoch 4/5" in said, said[-2000:]
    assert comparable(_results(workdir)) == reference


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_saves_stops_cleanly_and_resumes_identically(tmp_path, tiny_data, reference, signum):
    workdir = tmp_path / signal.Signals(signum).name
    never = ("--config.checkpoint_every_epochs=0", "--config.checkpoint_every_seconds=0")
    process = _start(tiny_data, workdir, *never)  # no checkpoint but the one the signal makes
    _wait_for_epochs(process, workdir, 1)
    process.send_signal(signum)
    out, err = process.communicate(timeout=300)
    assert process.returncode == cli.EXIT_INTERRUPTED, err[-3000:]
    assert "Traceback" not in err
    line = [x for x in err.splitlines() if x.startswith("error: ")]
    assert line and f"stopped by {signal.Signals(signum).name}" in line[0] and "same command again" in line[0]
    assert (workdir / "run_002" / "scratch" / "checkpoints").is_dir()
    assert "resuming" in _resume(tiny_data, workdir, *never)
    assert comparable(_results(workdir)) == reference


class StopAfter:
    """Answers the trainer's "stop now?" with yes after `steps` noes (it asks before an arm and before
    every train step)."""

    def __init__(self, steps: int):
        self.left, self.signum = steps, signal.SIGTERM

    def is_set(self) -> bool:
        self.left -= 1
        return self.left < 0


def test_a_stop_in_the_middle_of_an_epoch_resumes_at_that_step(tmp_path, tiny_data):
    config = tiny_config(**{"epochs.scratch": 3, "checkpoint_every_seconds": 0.0})
    config.data.dir = str(tiny_data)
    one = jax.devices()[:1]
    whole = train.Trainer(config, tmp_path / "whole", 2, devices=one, log=lambda s: None).run(["scratch"])
    # 38 training images in batches of 8: 5 steps an epoch; the arm's question and 6 steps later
    # comes epoch 2's second step.
    with pytest.raises(errors.Interrupted, match=r"at epoch 2/3, step 1"):
        train.Trainer(config, tmp_path / "cut", 2, devices=one, log=lambda s: None, stop=StopAfter(7)).run(["scratch"])
    said = []
    resumed = train.Trainer(config, tmp_path / "cut", 2, devices=one, log=said.append).run(["scratch"])
    assert any("resuming at epoch 2, step 1" in line for line in said), said
    assert strip_timing(resumed) == strip_timing(whole)


def test_a_damaged_checkpoint_is_named_or_an_older_one_is_used(tmp_path, tiny_data):
    config = tiny_config(**{"epochs.scratch": 3, "keep_every_epoch": True})
    config.data.dir = str(tiny_data)
    one = jax.devices()[:1]
    whole = train.Trainer(config, tmp_path / "whole", 2, devices=one, log=lambda s: None).run(["scratch"])
    with pytest.raises(errors.Interrupted):  # after 2 epochs: checkpoints after epochs 1 and 2
        train.Trainer(config, tmp_path / "cut", 2, devices=one, log=lambda s: None, stop=StopAfter(11)).run(["scratch"])
    checkpoints = tmp_path / "cut" / "run_002" / "scratch" / "checkpoints"
    steps = sorted((p for p in checkpoints.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    assert len(steps) == 2
    for path in (steps[-1] / "state").rglob("*"):  # the newest one's arrays become garbage
        if path.is_file():
            path.write_bytes(b"\0garbage")
    resumed = train.Trainer(config, tmp_path / "cut", 2, devices=one, log=lambda s: None).run(["scratch"])
    assert strip_timing(resumed) == strip_timing(whole)

    cut = tiny_config(**{"epochs.scratch": 3})
    cut.data.dir = str(tiny_data)
    with pytest.raises(errors.Interrupted):
        train.Trainer(cut, tmp_path / "lost", 2, devices=one, log=lambda s: None, stop=StopAfter(11)).run(["scratch"])
    (only,) = (p for p in (tmp_path / "lost" / "run_002" / "scratch" / "checkpoints").iterdir() if p.name.isdigit())
    for path in (only / "state").rglob("*"):
        if path.is_file():
            path.write_bytes(b"\0garbage")
    with pytest.raises(TrainingError, match=r"(?s)no checkpoint in .*checkpoints can be read.*Delete .*checkpoints"):
        train.Trainer(cut, tmp_path / "lost", 2, devices=one, log=lambda s: None).run(["scratch"])
