"""What the training-side tests share: the configs, the one way to train in-process, and the
train command for the tests whose subject is a process boundary (signals, SIGKILL, exit codes,
launchers, several processes).

Every test trains the registered `tiny` model (two conv-BatchNorm blocks, dropout, a head:
~1.5 k parameters, kilobyte checkpoints) at 32 px with 28 px crops, unless AlexNet itself is what
it is about; `alexnet_config` is that exception, at the 72 px / 64 px crop of AlexNet's minimum.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

from alexnet_jax import configs

REPO = Path(__file__).resolve().parent.parent
QUICK = REPO / "experiments" / "configs" / "quick.py"

# Config fields as the command line sets them; the in-process config gets the same values.
TINY_FLAGS = {
    "model.name": "tiny",
    "data.image_size": 32,
    "augment.crop_size": 28,
    "batch_size": 8,
    "eval_batch_size": 8,
    "pipeline": "on_device",
}
ALEXNET_FLAGS = {**TINY_FLAGS, "model.name": "alexnet", "data.image_size": 72, "augment.crop_size": 64}
EPOCHS = {"epochs.pretrained": 2, "epochs.scratch": 3}


def quick_config():
    """experiments/configs/quick.py's config, as `--config=` loads it."""
    sys.path.insert(0, str(QUICK.parent))
    import quick

    return quick.get_config()


def configure(config, data_dir=None, *, model: str = "tiny", **overrides):
    """`config` with `model`'s test sizes (TINY_FLAGS or ALEXNET_FLAGS), then `overrides` (dotted
    config keys: configure(config, **{"epochs.scratch": 1})), reading its data from `data_dir`."""
    flags = TINY_FLAGS if model == "tiny" else ALEXNET_FLAGS
    configs.override(config, {**flags, **overrides})
    if data_dir is not None:
        config.data.dir = str(data_dir)
    return config


def tiny_config(data_dir=None, **overrides):
    """The quick config for the tiny model at 32 px (crop 28), 2 pretrained and 3 scratch epochs."""
    return configure(quick_config(), data_dir, **{**EPOCHS, **overrides})


def alexnet_config(data_dir=None, **overrides):
    """tiny_config's settings for AlexNet at 72 px (crop 64: its minimum input is 63 px)."""
    return configure(quick_config(), data_dir, model="alexnet", **{**EPOCHS, **overrides})


def quiet(_message: str) -> None:
    """A `log` that says nothing."""


def train(config, workdir, runs, arms=None, *, pretrained_weights=None, stop=None, log=quiet, devices=None):
    """Train `arms` (default: every arm the config declares) of `runs` (a list, or one run index)
    into `workdir`, in this process: the one way the tests call the library's training. Returns
    each run's results (a list), or that run's results when `runs` is one index."""
    from alexnet_jax import training

    one = isinstance(runs, int)
    plan = training.resolve(config, workdir=workdir, pretrained_weights=pretrained_weights)
    out = training.train(plan, [runs] if one else list(runs), arms, stop=stop, log=log, devices=devices)
    return out[0] if one else out


def train_command(data_dir, workdir, *extra, model: str = "tiny", run_index: int = 2, arms: str = "scratch"):
    """`python -m alexnet_jax.train` with the config of tiny_config/alexnet_config: run in
    subprocess_env(), it computes the numbers those configs compute in this process."""
    flags = {**(TINY_FLAGS if model == "tiny" else ALEXNET_FLAGS), **EPOCHS}
    return [
        sys.executable,
        "-m",
        "alexnet_jax.train",
        f"--config={QUICK}",
        f"--data_dir={data_dir}",
        f"--workdir={workdir}",
        f"--run_index={run_index}",
        f"--arms={arms}",
        *(f"--config.{key}={value}" for key, value in flags.items()),
        *extra,
    ]


def subprocess_env(devices: int = 4, **extra) -> dict:
    """The environment of a training subprocess: this one's, with `devices` forced CPU devices. With
    the 4 of this process (conftest), a run's numbers are bit-identical in either process (XLA's CPU
    code depends on the device count); so are one device there and a one-device mesh here."""
    return {
        **os.environ,
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
        "PYTHONPATH": str(REPO),
        **extra,
    }


def strip_timing(results):
    """results without what measures the machine (it differs between any two runs)."""
    from alexnet_jax import train as train_lib

    results = json.loads(json.dumps(results))
    for arm in results["arms"].values():
        for key in train_lib.TIMING_KEYS:
            arm.pop(key, None)
    return results


class StopAfter:
    """Answers the trainer's "stop now?" with yes after `steps` noes (it asks before an arm and before
    every train step)."""

    def __init__(self, steps: int):
        self.left, self.signum = steps, signal.SIGTERM

    def is_set(self) -> bool:
        self.left -= 1
        return self.left < 0


def save_random_weights(directory, model: str = "tiny", num_classes: int = 1000, seed: int = 1) -> Path:
    """A converted-weights directory of random `num_classes`-class variables of `model`, labelled as
    such: the code path of ImageNet weights (a pretrained arm, a replaced head), not ImageNet."""
    import jax

    from alexnet_jax import models, params_io

    variables = jax.device_get(models.init_variables(model, jax.random.key(seed), num_classes))
    params_io.save_variables(
        directory, variables, {"source": "test: random init", "num_classes": num_classes}, model=model
    )
    return Path(directory)


def run_bench(capsys, *argv: str) -> list[dict]:
    """`python -m alexnet_jax.bench ARGV` in this process: its records, checked against its stdout."""
    from absl import flags as absl_flags

    from alexnet_jax.bench import __main__ as command
    from alexnet_jax.bench import run as bench_run
    from alexnet_jax.bench import settings

    flag_values = absl_flags.FlagValues()
    command.define_flags(flag_values)
    flag_values(["alexnet_jax.bench", *argv])
    chosen = settings.Settings.from_flag_values(flag_values.flag_values_dict())
    capsys.readouterr()
    out = bench_run.run(chosen, "python -m alexnet_jax.bench " + " ".join(argv))
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines == json.loads(json.dumps(out))  # what it printed is what it returned
    return lines
