"""The run-results schema: what training writes and analysis reads.

Version 2, "alexnet_jax.run/2", is written; version 1, "alexnet_jax.run/1", is still read.

    DIR/run_NNN/results.json
    {
      "schema": "alexnet_jax.run/2",
      "run_index": 49,
      "class_names": ["elliptical", "lenticular", "spiral", "irr_misc"],   # any K >= 2 different names,
                                                                         # in label order
      "split": {"protocol": "paper", "train_counts": [K], "test_counts": [K],
                "val_counts": [K] (only with a validation split),
                "test_indices": [...], "test_labels": [...]},            # labels 0..K-1
      "arms": {
        NAME: {                                  # any [A-Za-z0-9_-]+ (version 1: pretrained, scratch)
          "epochs": 200,                         # planned epochs
          "complete": true,                      # false while training
          "train_acc": [...], "test_acc": [...], # one entry per finished epoch (0-based)
          "train_loss": [...], "test_loss": [...],
          "val_acc": [...], "val_loss": [...],   # only with a validation split
          "selection": "test" | "val",           # which metric picks best_epoch
          "best_epoch": 154,                     # first epoch at which the selection metric peaks
          "best_test_acc": 0.845,                # test_acc[best_epoch]
          "confusion_matrix": [[K] x K],         # best epoch, test set, rows true, cols predicted
          "test_predictions": [...],             # best epoch, aligned with split.test_indices
          "wall_time_s": 1234.5,
          "images_per_s": 2500.0,
          "init": {...}, "pipeline": "on_device", "devices": 1,   # provenance
          "conv_impl": "fast" | "native",        # the convolution formulations config.model.conv_impl
                                                 # resolved to on the backend that trained (models.layers)
          "compiler_options": {"train": {...}, "forward": {...}},  # XLA options the steps compiled with,
                                                 # where any (layers.cpu_compiler_options; CPU only)
          # version 2 only, each optional for the reader:
          "spec": {"init": "scratch" | "imagenet" | "checkpoint:PATH",
                   "finetune": "full" | "linear_probe" | "last_blocks:K" | "lr_decay:F",
                   "model": "alexnet", ...},
          "input_normalization": {"name": "none" | "imagenet" | "inception",   # the scaling the model's
                                  "mean": [3], "std": [3],   # input got: (x - mean) / std on [0, 1] pixels
                                  "asked": "weights"},       # config.normalize, where it was resolved
          "trainable_params": 57020228, "total_params": 57020228,
          "train_images_per_epoch": 12000,
          "epoch_seconds": [...],                # wall seconds of each finished epoch, all included
          "time": {"wall_s", "compile_s", "train_s", "eval_s", "checkpoint_s", "other_s"}
        }
      },
      "config_file": "alexnet_jax/configs/paper.py",   # version 2, optional: the --config path
      "config": {...,                            # the run's full config
                 "normalize": "imagenet",        # the input scaling, resolved (older runs: normalize_imagenet)
                 "epochs": {NAME: planned epochs},
                 "arms": {NAME: {"init": ..., "finetune": ..., "optim": {...}}}}   # version 2
    }

Arms that were not run are absent. Extra keys are allowed everywhere. A version-1 file reads
as version 2 with spec init=imagenet (pretrained) or init=scratch, finetune=full, and declares
the paper's two arms.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

from alexnet_jax.errors import ResultsError

SCHEMA = "alexnet_jax.run/2"  # what training writes
SCHEMA_V1 = "alexnet_jax.run/1"
SCHEMAS = (SCHEMA_V1, SCHEMA)  # what is read
ARMS = ("pretrained", "scratch")  # the paper's arms: the default, and all that version 1 knows
ARM_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
PAPER_SPECS = {
    "pretrained": {"init": "imagenet", "finetune": "full", "model": "alexnet"},
    "scratch": {"init": "scratch", "finetune": "full", "model": "alexnet"},
}
SPEC_INIT = re.compile(r"^(scratch|imagenet|checkpoint:.+)$")
SPEC_FINETUNE = re.compile(r"^(full|linear_probe|last_blocks:[1-9][0-9]*|lr_decay:(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?)$")
TIME_KEYS = ("wall_s", "compile_s", "train_s", "eval_s", "checkpoint_s", "other_s")
RESULTS_FILENAME = "results.json"
RUN_DIR_PATTERN = re.compile(r"^run_(\d{3,})$")
PER_EPOCH_KEYS = ("train_acc", "test_acc", "train_loss", "test_loss")
SPLIT_COUNT_KEYS = ("train_counts", "test_counts", "val_counts")  # one count per class, where present
REQUIRED_ARM_KEYS = PER_EPOCH_KEYS + ("epochs", "best_epoch", "best_test_acc", "confusion_matrix", "wall_time_s")


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
    version = results.get("schema")
    if version not in SCHEMAS:
        fail(f"key 'schema' is {version!r}, expected one of {SCHEMAS}")
    for key in ("run_index", "class_names", "split", "arms"):
        if key not in results:
            fail(f"missing key {key!r}")
    num_classes = _validate_classes(results, fail)
    if not isinstance(results["arms"], dict):
        fail("key 'arms' is not an object")
    for arm, record in results["arms"].items():
        if version == SCHEMA_V1 and arm not in ARMS:
            fail(f"unknown arm {arm!r} under 'arms' (version 1 knows only {ARMS})")
        if not ARM_NAME.match(arm):
            fail(f"arm name {arm!r} under 'arms' is not made of letters, digits, '_' and '-'")
        if not isinstance(record, dict):
            fail(f"'arms.{arm}' is not an object")
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
        if done and not _is_square(matrix, num_classes):
            fail(f"'arms.{arm}.confusion_matrix' is not {num_classes}x{num_classes} counts, one row per class")
        if version == SCHEMA:
            _validate_v2_arm(record, f"arms.{arm}", done, fail)
    if version == SCHEMA:
        _validate_v2_top(results, fail)
    if "label_budget" in results:
        _validate_label_budget(results, num_classes, fail)
    return results


def _validate_classes(results: dict, fail) -> int:
    """class_names: K >= 2 different names; each per-class list of the split: K counts; labels 0..K-1. Returns K."""
    names = results["class_names"]
    if not (isinstance(names, list) and all(isinstance(n, str) and n for n in names)) or len(names) < 2:
        fail(f"'class_names' is {names!r}, expected a list of at least 2 class names")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        fail(f"'class_names' names {', '.join(map(repr, repeated))} more than once; each class needs its own name")
    split = results["split"]
    if not isinstance(split, dict):
        return len(names)
    for key in SPLIT_COUNT_KEYS:
        counts = split.get(key)
        if counts is not None and not (
            isinstance(counts, list) and len(counts) == len(names) and all(_is_count(c) for c in counts)
        ):
            fail(f"'split.{key}' is {counts!r}, expected {len(names)} counts >= 0, one per class of 'class_names'")
    labels = split.get("test_labels")
    if isinstance(labels, list):
        wrong = next((v for v in labels if not (_is_count(v) and v < len(names))), None)
        if wrong is not None:
            fail(f"'split.test_labels' holds {wrong!r}, expected class indices 0..{len(names) - 1}")
    return len(names)


def _is_square(matrix, size: int) -> bool:
    """A size x size list of lists of whole numbers >= 0 (floats such as 3.0 count)."""
    return (
        isinstance(matrix, list)
        and len(matrix) == size
        and all(isinstance(row, list) and len(row) == size for row in matrix)
        and all(_is_number(v) and v >= 0 and v == int(v) for row in matrix for v in row)
    )


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_seconds(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


def _validate_v2_arm(record: dict, where: str, done: int, fail) -> None:
    """The optional version-2 arm fields, checked only where present."""
    spec = record.get("spec")
    if spec is not None:
        if not isinstance(spec, dict):
            fail(f"'{where}.spec' is not an object")
        for key, pattern, allowed in (
            ("init", SPEC_INIT, "scratch, imagenet or checkpoint:PATH"),
            ("finetune", SPEC_FINETUNE, "full, linear_probe, last_blocks:K or lr_decay:F"),
        ):
            if not isinstance(spec.get(key), str) or not pattern.match(spec[key]):
                fail(f"'{where}.spec.{key}' is {spec.get(key)!r}, expected {allowed}")
    for key in ("trainable_params", "total_params", "train_images_per_epoch"):
        if key in record and not _is_count(record[key]):
            fail(f"'{where}.{key}' is {record[key]!r}, expected a whole number >= 0")
    if record.get("trainable_params", 0) > record.get("total_params", math.inf):
        fail(f"'{where}.trainable_params' exceeds '{where}.total_params'")
    seconds = record.get("epoch_seconds")
    if seconds is not None:
        if not isinstance(seconds, list) or not all(_is_seconds(v) for v in seconds):
            fail(f"'{where}.epoch_seconds' is not a list of seconds >= 0")
        if len(seconds) != done:
            fail(f"'{where}.epoch_seconds' has {len(seconds)} entries for {done} finished epochs")
    _validate_normalization(record.get("input_normalization"), f"{where}.input_normalization", fail)
    timing = record.get("time")
    if timing is not None and not (isinstance(timing, dict) and all(_is_seconds(timing.get(k)) for k in TIME_KEYS)):
        fail(f"'{where}.time' must hold seconds >= 0 under each of {TIME_KEYS}")


def _validate_normalization(record, where: str, fail) -> None:
    """The optional input scaling of an arm: a name, and 3 means and 3 positive standard deviations."""
    if record is None:
        return
    if not isinstance(record, dict) or not isinstance(record.get("name"), str):
        fail(f"'{where}' must be an object with a 'name' (e.g. none, imagenet, inception)")
    for key, lowest in (("mean", -math.inf), ("std", 0.0)):
        values = record.get(key)
        if not (isinstance(values, list) and len(values) == 3 and all(_is_number(v) and v > lowest for v in values)):
            fail(f"'{where}.{key}' is {values!r}, expected 3 numbers" + (" > 0" if lowest == 0 else ""))


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _validate_v2_top(results: dict, fail) -> None:
    if "config_file" in results and not isinstance(results["config_file"], str):
        fail("key 'config_file' is not a string")
    config = results.get("config")
    declared = config.get("arms") if isinstance(config, dict) else None
    if declared is None:
        return
    if not isinstance(declared, dict):
        fail("key 'config.arms' is not an object")
    for arm, entry in declared.items():
        if not ARM_NAME.match(arm) or not isinstance(entry, dict):
            fail(f"'config.arms.{arm}' must be a name of letters, digits, '_' and '-' holding an object")


LABEL_BUDGET_POLICIES = ("equal_epochs", "equal_steps")
LABEL_BUDGET_COUNTS = ("size", "size_index", "repeat", "num_sizes", "repeats", "pool_size", "subset_seed")


def _validate_label_budget(results: dict, num_classes: int, fail) -> None:
    """A label-efficiency run's top-level `label_budget` (alexnet_jax.training.label_budget):
    {"size": examples of the subset before its validation carve, "size_asked": "300" | "all",
     "size_index", "repeat", "num_sizes", "repeats" (>= 2), "pool_size", "subset_seed", "min_per_class",
     "train_counts": [K], "val_counts": [K] (after the carve),
     "budget": {"policy": "equal_epochs" | "equal_steps", "epochs": {ARM: n}, "steps": {ARM: n}}};
    run_index = repeat * num_sizes + size_index, and each arm's planned epochs are the budget's."""
    record = results["label_budget"]
    if not isinstance(record, dict):
        fail("'label_budget' is not an object")
    for key in (*LABEL_BUDGET_COUNTS, "min_per_class"):
        if not _is_count(record.get(key)):
            fail(f"'label_budget.{key}' is {record.get(key)!r}, expected a whole number >= 0")
    if not isinstance(record.get("size_asked"), str):
        fail(f"'label_budget.size_asked' is {record.get('size_asked')!r}, expected the size as the config wrote it")
    size, pool, index, repeat = record["size"], record["pool_size"], record["size_index"], record["repeat"]
    repeats = record["repeats"]
    if not (index < record["num_sizes"] and repeat < repeats and repeats >= 2 and 1 <= size <= pool):
        fail(f"'label_budget' is inconsistent: size {size} of a pool of {pool}, size_index {index} of "
             f"{record['num_sizes']}, repeat {repeat} of {repeats} (at least 2)")  # fmt: skip
    if results["run_index"] != repeat * record["num_sizes"] + index:
        fail(f"'run_index' {results['run_index']} is not label_budget's repeat * num_sizes + size_index")
    for key in ("train_counts", "val_counts"):
        counts = record.get(key)
        if not (isinstance(counts, list) and len(counts) == num_classes and all(_is_count(c) for c in counts)):
            fail(f"'label_budget.{key}' is {counts!r}, expected {num_classes} counts >= 0, one per class")
    if sum(record["train_counts"]) + sum(record["val_counts"]) != size:
        fail(f"'label_budget.train_counts' and 'val_counts' do not add up to its size {size}")
    budget = record.get("budget")
    if not isinstance(budget, dict) or budget.get("policy") not in LABEL_BUDGET_POLICIES:
        fail(f"'label_budget.budget.policy' is not one of {LABEL_BUDGET_POLICIES}")
    for key in ("epochs", "steps"):
        values = budget.get(key)
        if not (isinstance(values, dict) and all(_is_count(v) and v > 0 for v in values.values())):
            fail(f"'label_budget.budget.{key}' is {values!r}, expected an object of arm: whole number > 0")
    for arm, entry in results["arms"].items():
        if budget["epochs"].get(arm) != entry["epochs"]:
            fail(f"'arms.{arm}.epochs' is {entry['epochs']}, but 'label_budget.budget.epochs' gives it "
                 f"{budget['epochs'].get(arm)!r}")  # fmt: skip


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


def arm_spec(results: dict, arm: str) -> dict | None:
    """What an arm is (init, finetune, model): version 1 by its name, version 2 as recorded (None if not)."""
    if results.get("schema") == SCHEMA_V1:
        return dict(PAPER_SPECS[arm])
    spec = results["arms"][arm].get("spec")
    return None if spec is None else dict(spec)


def declared_arms(results: dict) -> list[str]:
    """The arms the run's config declares: config.arms (else config.epochs); version 1, the paper's two."""
    if results.get("schema") == SCHEMA_V1:
        return list(ARMS)
    config = results.get("config")
    for key in ("arms", "epochs"):
        declared = config.get(key) if isinstance(config, dict) else None
        if isinstance(declared, dict):
            return [str(arm) for arm in declared]
    return list(results["arms"])


def is_complete(results: dict, arm: str) -> bool:
    record = results.get("arms", {}).get(arm)
    return bool(record) and record.get("complete", len(record["test_acc"]) == record["epochs"])
