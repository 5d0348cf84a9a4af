"""One run data-parallel across processes (jax.distributed), as on several SLURM hosts.

Two local CPU processes with one device each, joined through `python -m alexnet_jax.study
train` (jax.distributed.initialize + gloo), must give the same numbers as one process with two
devices (this one, while they train), and write results.json and best/ once. The model is the
tiny test model (BatchNorm statistics over the global batch, so across the processes), at 32 px
with crop 28.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from helpers import QUICK, TINY_FLAGS, configure, quick_config, train

from alexnet_jax import paper
from alexnet_jax.data.prepared import write_prepared

REPO = Path(__file__).resolve().parent.parent
ARGS = [
    f"--config={QUICK}",
    "--run_index=0",
    "--arms=scratch",
    *(f"--config.{key}={value}" for key, value in TINY_FLAGS.items()),
    "--config.epochs.scratch=2",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_match_one_process_with_two_devices(tmp_path):
    rng = np.random.default_rng(0)
    write_prepared(
        tmp_path / "data",
        rng.integers(0, 256, (44, 256, 256, 3), dtype=np.uint8),
        np.arange(44) % 4,
        name="tiny-random",
        source="test",
        class_names=paper.CLASS_NAMES,
    )
    base = dict(os.environ, PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu")
    port = _free_port()
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "alexnet_jax.study",
                "train",
                f"--data_dir={tmp_path / 'data'}",
                f"--workdir={tmp_path / 'multi'}",
                *ARGS,
            ],
            env=dict(
                base,
                XLA_FLAGS="--xla_force_host_platform_device_count=1",
                JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
                JAX_NUM_PROCESSES="2",
                JAX_PROCESS_ID=str(i),
            ),
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    try:
        # the one process with two devices: this one, while the workers train
        config = configure(quick_config(), tmp_path / "data", **{"epochs.scratch": 2})
        one = train(config, tmp_path / "single", 0, ["scratch"], devices=jax.devices()[:2])["arms"]["scratch"]
        outputs = [w.communicate(timeout=600)[0] for w in workers]
    finally:
        for w in workers:
            w.kill()
    for w, out in zip(workers, outputs, strict=True):
        assert w.returncode == 0, out[-3000:]
    assert "process 0/2" in outputs[0] and "process 1/2" in outputs[1]
    multi = json.loads((tmp_path / "multi/run_000/results.json").read_text())["arms"]["scratch"]
    assert len(multi["devices"]) == 2 and multi["complete"] is True
    for key in ("train_loss", "test_loss", "train_acc", "test_acc", "confusion_matrix", "test_predictions"):
        np.testing.assert_allclose(multi[key], one[key], rtol=1e-6, err_msg=key)
    assert (tmp_path / "multi/run_000/scratch/best/metadata.json").exists()
