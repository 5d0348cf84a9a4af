"""The benchmark's PyTorch subprocess (`--torch_worker`): each PyTorch measurement it is asked for,
as one JSON line on stdout. Imports torch (through `torch_side` and `torch_predict`), so only that
subprocess imports it."""

from __future__ import annotations

import json
import sys
import traceback

from alexnet_jax.bench.settings import Settings
from alexnet_jax.bench.torch_predict import torch_predict
from alexnet_jax.bench.torch_process import failed_torch_record
from alexnet_jax.bench.torch_side import torch_matmul_peaks, torch_paper, torch_tuned


def run_worker(names: list[str], settings: Settings) -> None:
    """The subprocess's work: each PyTorch measurement as one JSON line on stdout, errors included."""
    for name in names:
        try:
            if name == "peak":
                rec = torch_matmul_peaks(settings.matmul_size)
            elif name == "paper":
                rec = torch_paper(settings)
            elif name == "tuned":
                rec = torch_tuned(settings)
            elif name.startswith("predict_"):  # bench --predict (bench.predict_side)
                rec = torch_predict(settings, name.removeprefix("predict_"))
            else:
                raise ValueError(f"unknown PyTorch measurement {name!r}")
        except Exception as error:  # noqa: BLE001 - reported in the JSON, never hidden
            traceback.print_exc(file=sys.stderr)
            rec = failed_torch_record(name, settings, f"{type(error).__name__}: {error}")
        print(json.dumps(rec, allow_nan=False), flush=True)
