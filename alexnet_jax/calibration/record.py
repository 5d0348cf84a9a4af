"""calibration.json: one arm's calibration, before and after temperature scaling, on its evaluation set.

    run_NNN/<arm>/calibration.json
    {
      "schema": "alexnet_jax.calibration/1",
      "run_index": 3, "arm": "scratch",
      "weights_sha256": "...",             # the best/ weights the logits came from
      "temperature": 1.37,                  # also in best/temperature.json
      "binning": "equal-mass", "bins": 15,  # the ECE and reliability bin rule and count
      "fit": {"set": "validation", "num_examples": 1200, "nll_before": 0.61, "nll_after": 0.55},
      "evaluation": {"set": "test", "num_examples": 2000},
      "before": {"ece", "nll", "brier", "accuracy", "reliability": {"confidence", "accuracy", "count", "edges"}},
      "after":  {... the same, with the temperature applied},
      "agreement_with_training": 1.0        # share of evaluation predictions equal to results.json's (or null)
    }

Its own small schema, validated on read (a malformed file is one line naming it), so results.json's
schema stays as training writes it. Stored in the arm directory, not best/, because it describes
an evaluation of the weights, not the weights.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from alexnet_jax.errors import ResultsError
from alexnet_jax.toolbox import write_json_atomic

SCHEMA = "alexnet_jax.calibration/1"
FILENAME = "calibration.json"
BINNING = "equal-mass"
METRICS = ("ece", "nll", "brier", "accuracy")
RELIABILITY_KEYS = ("confidence", "accuracy", "count", "edges")
FIT_SETS = ("validation", "test half (no validation split)")
EVALUATION_SETS = ("test", "other test half (no validation split)")


def write_record(arm_dir: str | Path, record: dict) -> Path:
    """Validate and write arm_dir/calibration.json atomically; returns its path."""
    path = Path(arm_dir) / FILENAME
    validate_record(record, str(path))
    write_json_atomic(path, record)
    return path


def read_record(path: str | Path) -> dict:
    """The validated record of one calibration.json; ResultsError (one line naming the file) otherwise."""
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ResultsError(f"{path}: cannot read ({error}); run python -m alexnet_jax.calibration again") from None
    return validate_record(record, str(path))


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def validate_record(record: Any, where: str) -> dict:
    """Check a parsed calibration.json against the schema; return it or raise ResultsError."""

    def fail(message: str):
        raise ResultsError(f"{where}: {message}; run python -m alexnet_jax.calibration --overwrite to rewrite it")

    if not isinstance(record, dict):
        fail("top level is not a JSON object")
    if record.get("schema") != SCHEMA:
        fail(f"key 'schema' is {record.get('schema')!r}, expected {SCHEMA!r}")
    for key in ("run_index", "arm", "weights_sha256", "temperature", "bins", "fit", "evaluation", "before", "after"):
        if key not in record:
            fail(f"missing key {key!r}")
    if not isinstance(record["run_index"], int) or record["run_index"] < 0:
        fail("key 'run_index' is not a non-negative integer")
    if not (_number(record["temperature"]) and record["temperature"] > 0):
        fail("key 'temperature' is not a positive number")
    if record.get("binning", BINNING) != BINNING or not isinstance(record["bins"], int) or record["bins"] < 1:
        fail(f"keys 'binning'/'bins' must be {BINNING!r} and a positive integer")
    if record["fit"].get("set") not in FIT_SETS or record["evaluation"].get("set") not in EVALUATION_SETS:
        fail(f"'fit.set' must be one of {FIT_SETS} and 'evaluation.set' one of {EVALUATION_SETS}")
    for block in ("fit", "evaluation"):
        n = record[block].get("num_examples")
        if not isinstance(n, int) or n < 1:
            fail(f"'{block}.num_examples' is not a positive integer")
    for side in ("before", "after"):
        _validate_metrics(record[side], side, record["evaluation"]["num_examples"], fail)
    return record


def _validate_metrics(block: Any, side: str, num_examples: int, fail) -> None:
    if not isinstance(block, dict):
        fail(f"key {side!r} is not an object")
    for metric in METRICS:
        if not _number(block.get(metric)):
            fail(f"'{side}.{metric}' is not a finite number")
    table = block.get("reliability")
    if not isinstance(table, dict) or any(not isinstance(table.get(key), list) for key in RELIABILITY_KEYS):
        fail(f"'{side}.reliability' must hold lists {', '.join(RELIABILITY_KEYS)}")
    sizes = {key: len(table[key]) for key in RELIABILITY_KEYS}
    bins = sizes["count"]
    if bins == 0 or sizes["confidence"] != bins or sizes["accuracy"] != bins or sizes["edges"] != bins + 1:
        fail(f"'{side}.reliability' lists have lengths {sizes}; expected B, B, B and B + 1 edges")
    values = table["confidence"] + table["accuracy"] + table["edges"]
    if not all(_number(v) and 0 <= v <= 1 for v in values):
        fail(f"'{side}.reliability' holds values outside [0, 1]")
    if not all(isinstance(c, int) and c > 0 for c in table["count"]) or sum(table["count"]) != num_examples:
        fail(f"'{side}.reliability.count' must be positive integers summing to evaluation.num_examples")
