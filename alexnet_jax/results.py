"""The run-results schema, "alexnet_jax.run/1": what training writes and analysis reads.

    DIR/run_NNN/results.json
    {
      "schema": "alexnet_jax.run/1",
      "run_index": 49,
      "class_names": ["elliptical", "lenticular", "spiral", "irr_misc"],
      "split": {"protocol": "paper", "train_counts": [4], "test_counts": [4],
                "val_counts": [4] (only with a validation split),
                "test_indices": [...], "test_labels": [...]},
      "arms": {
        "pretrained": {
          "epochs": 200,                         # planned epochs
          "complete": true,                      # false while training
          "train_acc": [...], "test_acc": [...], # one entry per finished epoch (0-based)
          "train_loss": [...], "test_loss": [...],
          "val_acc": [...], "val_loss": [...],   # only with a validation split
          "selection": "test" | "val",           # which metric picks best_epoch
          "best_epoch": 154,                     # first epoch at which the selection metric peaks
          "best_test_acc": 0.845,                # test_acc[best_epoch]
          "confusion_matrix": [[4] x 4],         # best epoch, test set, rows true, cols predicted
          "test_predictions": [...],             # best epoch, aligned with split.test_indices
          "wall_time_s": 1234.5,
          "images_per_s": 2500.0
        },
        "scratch": {same keys}
      },
      "config": {...}
    }

Arms that were not run are absent. Extra keys are allowed everywhere.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

SCHEMA = "alexnet_jax.run/1"
ARMS = ("pretrained", "scratch")
RESULTS_FILENAME = "results.json"
RUN_DIR_PATTERN = re.compile(r"^run_(\d{3,})$")
PER_EPOCH_KEYS = ("train_acc", "test_acc", "train_loss", "test_loss")
REQUIRED_ARM_KEYS = PER_EPOCH_KEYS + ("epochs", "best_epoch", "best_test_acc", "confusion_matrix", "wall_time_s")


class ResultsError(ValueError):
    """A results.json that does not follow the schema; the message names file and key."""


def run_dir(workdir: str | os.PathLike, run_index: int) -> Path:
    if run_index < 0:
        raise ValueError(f"run index must be >= 0, got {run_index}")
    return Path(workdir) / f"run_{run_index:03d}"


def find_run_dirs(workdir: str | os.PathLike) -> list[Path]:
    """run_NNN directories under workdir, in run-index order."""
    workdir = Path(workdir)
    if not workdir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in workdir.iterdir() if p.is_dir() and (m := RUN_DIR_PATTERN.match(p.name))]
    return [p for _, p in sorted(found)]


def validate_results(results: Any, where: str = "results.json") -> dict:
    """Check a parsed results.json against the schema; return it or raise ResultsError."""

    def fail(message: str):
        raise ResultsError(f"{where}: {message}")

    if not isinstance(results, dict):
        fail("top level is not a JSON object")
    if results.get("schema") != SCHEMA:
        fail(f"key 'schema' is {results.get('schema')!r}, expected {SCHEMA!r}")
    for key in ("run_index", "class_names", "split", "arms"):
        if key not in results:
            fail(f"missing key {key!r}")
    num_classes = len(results["class_names"])
    if not isinstance(results["arms"], dict):
        fail("key 'arms' is not an object")
    for arm, record in results["arms"].items():
        if arm not in ARMS:
            fail(f"unknown arm {arm!r} under 'arms' (expected one of {ARMS})")
        for key in REQUIRED_ARM_KEYS:
            if key not in record:
                fail(f"missing key 'arms.{arm}.{key}'")
        lengths = {key: len(record[key]) for key in PER_EPOCH_KEYS}
        if len(set(lengths.values())) != 1:
            fail(f"per-epoch lists of arm {arm!r} differ in length: {lengths}")
        done = lengths["test_acc"]
        if done > record["epochs"]:
            fail(f"'arms.{arm}' has {done} epochs of history but plans only {record['epochs']}")
        for key in PER_EPOCH_KEYS:
            if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in record[key]):
                fail(f"'arms.{arm}.{key}' holds a non-number")
        if done and not 0 <= record["best_epoch"] < done:
            fail(f"'arms.{arm}.best_epoch' = {record['best_epoch']} outside 0..{done - 1}")
        matrix = record["confusion_matrix"]
        if done and (len(matrix) != num_classes or any(len(row) != num_classes for row in matrix)):
            fail(f"'arms.{arm}.confusion_matrix' is not {num_classes}x{num_classes}")
    return results


def load_results(path: str | os.PathLike) -> dict:
    """Read and validate one results.json; raise ResultsError naming the path if broken."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise ResultsError(f"{path}: cannot read ({error})") from error
    try:
        results = json.loads(text)
    except json.JSONDecodeError as error:
        raise ResultsError(f"{path}: not valid JSON, perhaps truncated while being written ({error})") from error
    return validate_results(results, str(path))


def is_complete(results: dict, arm: str) -> bool:
    record = results.get("arms", {}).get(arm)
    return bool(record) and record.get("complete", len(record["test_acc"]) == record["epochs"])
