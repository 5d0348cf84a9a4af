"""Stopping and resuming: SIGKILL at any moment, SIGTERM and SIGINT, checkpoints on an interval,
a stop in the middle of an epoch, damaged checkpoints. Every resumed run must end with the
results.json of a run that was never stopped, bit for bit on CPU (timings aside).

The signals go to real `python -m alexnet_jax.train` processes of the tiny test model on 4 forced
CPU devices, as this process has, so that the uninterrupted reference and the resumptions can run
here and compute the same bits; the command itself resumes once. The stops that need no process
are asked for in this process. One test does it all with AlexNet: trained, killed, resumed to the
reference's numbers, analysed.
"""

import json
import re
import signal
import subprocess
import time

import jax
import pytest
from helpers import (
    REPO,
    StopAfter,
    alexnet_config,
    strip_timing,
    subprocess_env,
    tiny_config,
    train,
    train_command,
)

from alexnet_jax import cli, errors
from alexnet_jax.errors import TrainingError
from alexnet_jax.training.rundir import config_fingerprint

# Epochs enough that a process is still training when the signal comes (a tiny epoch takes ~0.1 s).
EPOCHS = 8
EVERY_EPOCH = "--config.checkpoint_every_epochs=1"  # a checkpoint after every epoch: the kill can come at any one
NEVER = ("--config.checkpoint_every_epochs=0", "--config.checkpoint_every_seconds=0")


def _results(workdir, run: int = 2):
    return json.loads((workdir / f"run_{run:03d}" / "results.json").read_text())


def comparable(results: dict) -> dict:
    """results.json without what measures the machine or names the way the run was started (a
    config file, or none in this process), and with only the config keys that change numbers:
    these runs differ in when they save, never in what they compute."""
    results = strip_timing(results)
    results["config"] = config_fingerprint(results["config"])
    results.pop("config_file", None)
    return results


def _config(tiny_data, **overrides):
    """The config of `_command` (the checkpoint policy aside: it changes no number)."""
    return tiny_config(tiny_data, **{"epochs.scratch": EPOCHS, **overrides})


def _command(tiny_data, workdir, *extra, model="tiny", run_index=2):
    epochs = f"--config.epochs.scratch={EPOCHS}"
    return train_command(tiny_data, workdir, epochs, EVERY_EPOCH, *extra, model=model, run_index=run_index)


@pytest.fixture(scope="module")
def reference(module_tmp, tiny_data):
    """The uninterrupted run every resumed one must equal."""
    return comparable(train(_config(tiny_data), module_tmp / "ref", 2, ["scratch"]))


def _start(tiny_data, workdir, *extra, devices: int = 4, **options):
    return subprocess.Popen(
        _command(tiny_data, workdir, *extra, **options),
        env=subprocess_env(devices),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_epochs(process, workdir, count: int, run: int = 2) -> None:
    metrics = workdir / f"run_{run:03d}" / "scratch" / "metrics.jsonl"
    deadline = time.time() + 600
    while time.time() < deadline and process.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= count:
            return
        time.sleep(0.01)
    assert process.poll() is None, "the run finished before it could be stopped"


def _kill(process, signum=signal.SIGKILL):
    process.send_signal(signum)
    return process.communicate(timeout=300)


def _resume_command(tiny_data, workdir, *extra, devices: int = 4, **options):
    done = subprocess.run(
        _command(tiny_data, workdir, *extra, **options), env=subprocess_env(devices), cwd=REPO, capture_output=True,
        text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout + done.stderr


def _resume_here(config, workdir, run: int = 2) -> str:
    """Resume in this process (the same numbers as the command, see subprocess_env); what it said."""
    said = []
    train(config, workdir, run, ["scratch"], log=said.append)
    return "\n".join(said)


@pytest.mark.slow
def test_sigkill_and_resume_gives_identical_results(tmp_path, tiny_data, reference):
    workdir = tmp_path / "killed"
    process = _start(tiny_data, workdir)
    _wait_for_epochs(process, workdir, 2)
    _kill(process)
    partial = _results(workdir)
    assert partial["arms"]["scratch"]["complete"] is False
    assert (workdir / "run_002" / "scratch" / "checkpoints").is_dir()

    assert "resuming after epoch" in _resume_command(tiny_data, workdir)  # the same command again
    assert comparable(_results(workdir)) == reference
    assert not (workdir / "run_002" / "scratch" / "checkpoints").exists()
    assert "already complete" in _resume_here(_config(tiny_data), workdir)


@pytest.mark.slow
def test_interval_checkpoints_replay_the_epochs_after_the_last_one(tmp_path, tiny_data, reference):
    workdir = tmp_path / "interval"
    every_two = ("--config.checkpoint_every_epochs=2", "--config.checkpoint_every_seconds=0")
    process = _start(tiny_data, workdir, *every_two)
    _wait_for_epochs(process, workdir, 3)  # epoch 3 is done, its checkpoint is not: the last is after epoch 2
    _kill(process)
    assert len(_results(workdir)["arms"]["scratch"]["test_acc"]) >= 3
    said = _resume_here(_config(tiny_data, checkpoint_every_epochs=2, checkpoint_every_seconds=0.0), workdir)
    # the last checkpoint is after an even epoch (2, or a later one if the kill came late)
    resumed_after = re.search(rf"resuming after epoch (\d+)/{EPOCHS}", said)
    assert resumed_after and int(resumed_after[1]) % 2 == 0, said[-2000:]
    assert comparable(_results(workdir)) == reference


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_saves_stops_cleanly_and_resumes_identically(tmp_path, tiny_data, reference, signum):
    workdir = tmp_path / signal.Signals(signum).name
    process = _start(tiny_data, workdir, *NEVER)  # no checkpoint but the one the signal makes
    _wait_for_epochs(process, workdir, 1)
    out, err = _kill(process, signum)
    assert process.returncode == cli.EXIT_INTERRUPTED, err[-3000:]
    assert "Traceback" not in err
    line = [x for x in err.splitlines() if x.startswith("error: ")]
    assert line and f"stopped by {signal.Signals(signum).name}" in line[0] and "same command again" in line[0]
    assert (workdir / "run_002" / "scratch" / "checkpoints").is_dir()
    never = _config(tiny_data, checkpoint_every_epochs=0, checkpoint_every_seconds=0.0)
    assert "resuming" in _resume_here(never, workdir)
    assert comparable(_results(workdir)) == reference


def test_a_stop_in_the_middle_of_an_epoch_resumes_at_that_step(tmp_path, tiny_data):
    config = tiny_config(tiny_data, **{"epochs.scratch": 3, "checkpoint_every_seconds": 0.0})
    one = jax.devices()[:1]
    whole = train(config, tmp_path / "whole", 2, ["scratch"], devices=one)
    # 38 training images in batches of 8: 5 steps an epoch; the arm's question and 6 steps later
    # comes epoch 2's second step.
    with pytest.raises(errors.Interrupted, match=r"at epoch 2/3, step 1"):
        train(config, tmp_path / "cut", 2, ["scratch"], devices=one, stop=StopAfter(7))
    said = []
    resumed = train(config, tmp_path / "cut", 2, ["scratch"], devices=one, log=said.append)
    assert any("resuming at epoch 2, step 1" in line for line in said), said
    assert strip_timing(resumed) == strip_timing(whole)


def test_a_damaged_checkpoint_is_named_or_an_older_one_is_used(tmp_path, tiny_data):
    config = tiny_config(tiny_data, **{"epochs.scratch": 3, "keep_every_epoch": True})
    one = jax.devices()[:1]
    whole = train(config, tmp_path / "whole", 2, ["scratch"], devices=one)
    with pytest.raises(errors.Interrupted):  # after 2 epochs: checkpoints after epochs 1 and 2
        train(config, tmp_path / "cut", 2, ["scratch"], devices=one, stop=StopAfter(11))
    checkpoints = tmp_path / "cut" / "run_002" / "scratch" / "checkpoints"
    steps = sorted((p for p in checkpoints.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    assert len(steps) == 2
    for path in (steps[-1] / "state").rglob("*"):  # the newest one's arrays become garbage
        if path.is_file():
            path.write_bytes(b"\0garbage")
    resumed = train(config, tmp_path / "cut", 2, ["scratch"], devices=one)
    assert strip_timing(resumed) == strip_timing(whole)

    cut = tiny_config(tiny_data, **{"epochs.scratch": 3})
    with pytest.raises(errors.Interrupted):
        train(cut, tmp_path / "lost", 2, ["scratch"], devices=one, stop=StopAfter(11))
    (only,) = (p for p in (tmp_path / "lost" / "run_002" / "scratch" / "checkpoints").iterdir() if p.name.isdigit())
    for path in (only / "state").rglob("*"):
        if path.is_file():
            path.write_bytes(b"\0garbage")
    with pytest.raises(TrainingError, match=r"(?s)no checkpoint in .*checkpoints can be read.*Delete .*checkpoints"):
        train(cut, tmp_path / "lost", 2, ["scratch"], devices=one)


@pytest.mark.slow
def test_alexnet_is_trained_killed_resumed_identically_and_analysed(tmp_path, tiny_data):
    """The one end-to-end test of AlexNet itself (72 px, crop 64): a real process SIGKILLed after
    its second epoch, resumed by the same command to the numbers of an uninterrupted run, and the
    study analysed. On one device: on 4 forced host devices sharing 2 cores, all-reducing AlexNet's
    57 M gradients made this test 2.5x slower. Three epochs remain at the kill: on one device an
    epoch takes about two seconds, and a busy machine may be slow to deliver the signal."""
    from alexnet_jax.analysis import pipeline

    epochs = ("--config.epochs.scratch=5",)
    workdir = tmp_path / "killed"
    process = _start(tiny_data, workdir, *epochs, model="alexnet", run_index=0, devices=1)
    _wait_for_epochs(process, workdir, 2, run=0)
    _kill(process)
    assert _results(workdir, 0)["arms"]["scratch"]["complete"] is False
    assert (workdir / "run_000" / "scratch" / "checkpoints").is_dir()
    said = _resume_command(tiny_data, workdir, *epochs, model="alexnet", run_index=0, devices=1)
    assert "resuming after epoch" in said
    resumed = _results(workdir, 0)
    assert resumed["config"]["model"]["name"] == "alexnet"
    assert not (workdir / "run_000" / "scratch" / "checkpoints").exists()
    # no resume state in the reference: 0.7 GB a save
    config = alexnet_config(
        tiny_data, **{"epochs.scratch": 5, "checkpoint_every_epochs": 0, "checkpoint_every_seconds": 0.0}
    )
    reference = train(config, tmp_path / "ref", 0, ["scratch"], devices=jax.devices()[:1])
    assert comparable(resumed) == comparable(reference)

    summary = pipeline.analyze(workdir, resamples=200, figures=False, log=lambda message: None)
    assert summary["arm_names"] == ["scratch"]
    assert (workdir / "analysis" / "summary.json").is_file() and (workdir / "analysis" / "report.md").is_file()
