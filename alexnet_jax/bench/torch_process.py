"""The PyTorch subprocess seen from the parent: starting it, and the record for a measurement it never reported.

torchvision must never be imported after TensorFlow in one process, so the PyTorch
measurements run in a fresh interpreter (`python -m alexnet_jax.bench --torch_worker=...`,
see `torch_side`) that prints one JSON line per measurement. This module imports no torch.
"""

from __future__ import annotations

import json
import subprocess
import sys

from alexnet_jax.bench.records import SCHEMA, record
from alexnet_jax.bench.settings import TORCH_MEASUREMENTS, Settings

TORCH_DTYPES = {"paper": "float32", "tuned": "bfloat16", "predict_decoded": "float32", "predict_prepared": "float32"}


def spawn_torch(names: list[str], settings: Settings) -> list[dict]:
    """Run the PyTorch measurements `names` in one fresh interpreter; one record per name."""
    measurements = ",".join(name for name in names if name in TORCH_MEASUREMENTS)  # not peak, predict_*
    command = [
        sys.executable,
        "-m",
        "alexnet_jax.bench",
        f"--torch_worker={','.join(names)}",
        f"--torch={measurements}",  # a run option, not forwarded by as_flags: the worker checks only these
        *settings.as_flags(),
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=settings.torch_timeout)
        stdout, stderr, code = done.stdout, done.stderr, done.returncode
    except subprocess.TimeoutExpired as timeout:
        stdout = timeout.stdout.decode() if isinstance(timeout.stdout, bytes) else (timeout.stdout or "")
        stderr, code = f"timed out after {settings.torch_timeout}s (--torch_timeout)", None
    lines = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    if len(lines) < len(names):
        tail = "\n".join(stderr.strip().splitlines()[-5:])
        reason = stderr if code is None else f"the PyTorch subprocess exited {code}: {tail}"
        lines += [failed_torch_record(name, settings, reason) for name in names[len(lines) :]]
    return lines


def failed_torch_record(name: str, settings: Settings, error: str) -> dict:
    """What stands in for PyTorch measurement `name` (peak, paper, tuned) when it failed."""
    if name == "peak":
        return {"schema": SCHEMA, "kind": "torch_peak", "peaks": None, "error": error}
    return record(
        framework="torch",
        variant=name,
        name=f"torch {name}",
        dtype=TORCH_DTYPES.get(name, "bfloat16"),
        batch_size=settings.batch_size,
        image_size=settings.image_size,
        crop_size=settings.crop_size,
        error=error,
    )
