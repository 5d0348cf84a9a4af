"""The arms of a study: which are present, declared and missing, the reference arm, and what each arm is.

`summarize_arms` gives every N-arm key of summary.json: per-arm summaries, every pair compared
(analysis.pairs), the cost of accuracy (analysis.cost) and the bias of choosing the peak on the
test set. They are added after the paper's keys, which stay as they were.
"""

from __future__ import annotations

import json
import shlex
from collections import Counter

import numpy as np

from alexnet_jax.analysis.cost import summarize_cost
from alexnet_jax.analysis.formatting import format_ranges
from alexnet_jax.analysis.pairs import compare_all
from alexnet_jax.analysis.stats import bootstrap_mean_ci, difference_block, mean_std, summarize_arm
from alexnet_jax.analysis.study import Study
from alexnet_jax.errors import StudyError

REFERENCE_NAME = "scratch"
SELECTION_STREAM = 3  # bootstrap streams (SELECTION_STREAM, arm, quantity)
CONFIG_PLACEHOLDER = "CONFIG"


def reference_arm(study: Study, requested: str | None = None) -> dict:
    """The arm the others are measured against: --reference_arm, else "scratch", else one whose spec init is scratch."""
    arms = study.arm_names
    if requested is not None:
        if requested not in arms:
            raise StudyError(f"--reference_arm={requested}: no such arm in this study; arms found: {', '.join(arms)}")
        return {"name": requested, "rule": "chosen with --reference_arm"}
    if REFERENCE_NAME in arms:
        return {"name": REFERENCE_NAME, "rule": f"the arm named {REFERENCE_NAME!r}"}
    for arm in arms:
        if any((r.spec or {}).get("init") == "scratch" for r in study.records(arm)):
            return {"name": arm, "rule": "the first arm whose spec.init is 'scratch'"}
    return {"name": None, "rule": "no arm is named 'scratch' or trained from scratch; pass --reference_arm"}


def train_command(workdir: str, config_file: str | None, runs: list[int], arms: list[str]) -> str:
    """The one command that trains the given arms of the given runs (finished ones are left alone)."""
    return shlex.join(
        [
            "python",
            "-m",
            "alexnet_jax.train",
            f"--config={config_file or CONFIG_PLACEHOLDER}",
            f"--workdir={workdir}",
            f"--runs={format_ranges(runs).replace(' ', '')}",
            f"--arms={','.join(arms)}",
        ]
    )


def missing_arms(study: Study) -> dict:
    """Arms a run's config declares (version 1: the paper's two) but that have no usable results there."""
    declared: list[str] = []
    for run in sorted(study.runs):
        declared += [arm for arm in study.declared[run] if arm not in declared]
    missing = {
        arm: [r for r in sorted(study.runs) if arm in study.declared[r] and r not in study.arms.get(arm, {})]
        for arm in declared
    }
    missing = {arm: runs for arm, runs in missing.items() if runs}
    runs = sorted({r for group in missing.values() for r in group})
    config_files = sorted({study.runs[r]["config_file"] for r in runs if "config_file" in study.runs[r]})
    config_file = config_files[0] if len(config_files) == 1 else None
    return {
        "declared": declared,
        "missing": missing,
        "runs": runs,
        "config_files": config_files,
        "command": train_command(str(study.workdir), config_file, runs, list(missing)) if missing else None,
    }


def _distinct(values) -> list:
    return sorted({v for v in values if v is not None})


def arm_block(study: Study, arm: str) -> dict:
    """What the arm is (spec, parameters, images and seconds per epoch) and the paper's per-arm numbers."""
    records = study.records(arm)
    specs = Counter(json.dumps(r.spec, sort_keys=True) for r in records)
    timed = [r for r in records if r.epoch_seconds is not None]
    return {
        "spec": json.loads(specs.most_common(1)[0][0]),  # runs that disagree are warned about at loading
        "trainable_params": _distinct(r.trainable_params for r in records),
        "total_params": _distinct(r.total_params for r in records),
        "images_per_epoch": _distinct(r.images_per_epoch for r in records),
        "n_timed": len(timed),
        "seconds_per_epoch_mean": mean_std([r.epoch_seconds.mean() for r in timed])[0],
        **summarize_arm(records, len(study.class_names)),
    }


def selection_bias(study: Study, arm: str, index: int, resamples: int, seed: int) -> dict | None:
    """Runs that chose their epoch on validation: the test-chosen peak, the val-chosen test accuracy, the gap."""
    records = [r for r in study.records(arm) if r.selection == "val"]
    if not records:
        return None
    test_chosen = [float(r.test_acc.max()) for r in records]  # the paper's choice: optimistic
    val_chosen = [r.peak_acc for r in records]  # test accuracy at the epoch validation chose: unbiased
    gap = [t - v for t, v in zip(test_chosen, val_chosen, strict=True)]
    stream = (SELECTION_STREAM, index)
    return {
        "n": len(records),
        "runs": [r.run for r in records],
        "test_chosen_mean": mean_std(test_chosen)[0],
        "test_chosen_ci95": bootstrap_mean_ci(test_chosen, resamples, seed, (*stream, 0)),
        "val_chosen_mean": mean_std(val_chosen)[0],
        "val_chosen_ci95": bootstrap_mean_ci(val_chosen, resamples, seed, (*stream, 1)),
        **difference_block("gap", np.asarray(gap), resamples, seed, (*stream, 2)),
    }


def summarize_arms(study: Study, reference: str | None, resamples: int, seed: int) -> dict:
    """The N-arm keys of summary.json (appended to the paper's)."""
    arms = study.arm_names
    chosen = reference_arm(study, reference)
    bias = {arm: selection_bias(study, arm, i, resamples, seed) for i, arm in enumerate(arms)}
    return {
        "arm_names": arms,
        "reference_arm": chosen,
        "missing_arms": missing_arms(study),
        "arms": {arm: arm_block(study, arm) for arm in arms},
        **compare_all(study, arms, chosen["name"], resamples, seed),
        "cost": summarize_cost(study, arms, chosen["name"], resamples, seed),
        "selection_bias": {arm: block for arm, block in bias.items() if block is not None},
    }
