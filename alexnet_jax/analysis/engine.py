"""The statistics engine: every arm summarised once, every pair of arms compared once, the cost of accuracy.

`run(study, ...)` gives one `Results`: the study-level keys and the N-arm keys of summary.json,
each arm's statistics, each pair's per-run differences (for the figures) and the cost curves.
The paper's own outputs are a view over it (analysis.paper_view); nothing is computed twice.

A pair (a, b) is compared by `compare_pair` alone, with one bootstrap stream per quantity:
(PAIR_STREAM, pair index, quantity). Testing many pairs (and classes) inflates false positives,
so every p-value also gets Holm's step-down adjustment within its family (`HOLM_FAMILIES`).
Definitions: docs/analysis.md.
"""

from __future__ import annotations

import json
import shlex
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from alexnet_jax.analysis.cost import cost_curves, summarize_cost
from alexnet_jax.analysis.formatting import format_ranges
from alexnet_jax.analysis.stats import (
    ANALYSIS_SCHEMA,
    bootstrap_mean_ci,
    class_metrics,
    difference_block,
    holm_adjust,
    mean_std,
    sign_test,
    summarize_arm,
    wilcoxon_test,
)
from alexnet_jax.analysis.study import ACC_TIE_TOLERANCE, Study, describe_data, describe_starting_weights
from alexnet_jax.errors import StudyError

REFERENCE_NAME = "scratch"
CONFIG_PLACEHOLDER = "CONFIG"
PAIR_STREAM = 1  # bootstrap streams (PAIR_STREAM, pair, quantity)
SELECTION_STREAM = 3  # bootstrap streams (SELECTION_STREAM, arm, quantity); cost draws (2, arm, quantity)
TESTS = ("sign_test", "wilcoxon")
METRICS = ("peak_acc", "peak_epoch")
ADJUSTMENT = "holm"
HOLM_FAMILIES = (
    "sign_test.peak_acc over all pairs",
    "sign_test.peak_epoch over all pairs",
    "wilcoxon.peak_acc over all pairs",
    "wilcoxon.peak_epoch over all pairs",
    "sign_test.class_acc over all pairs and classes",
    "wilcoxon.class_acc over all pairs and classes",
)
CONVENTIONS = {
    "accuracy": "fractions in [0, 1]; tables and report show percent",
    "epochs": "0-based epoch indices",
    "std": "sample standard deviation (ddof=1); null with fewer than 2 values",
    "undefined": (
        "a per-class value that is undefined in a run is left out of that class's mean; *_n counts the runs used"
    ),
}


# --------------------------------------------------------------------------- arms


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


def arm_block(study: Study, arm: str, statistics: dict) -> dict:
    """What the arm is (spec, parameters, images and seconds per epoch), then its statistics (`summarize_arm`)."""
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
        **statistics,
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


# --------------------------------------------------------------------------- pairs


@dataclass(frozen=True)
class Differences:
    """Per-run paired values, a minus b, over the runs with both (epoch: negative = a peaks earlier)."""

    runs: list[int]
    peak_acc: np.ndarray
    peak_epoch: np.ndarray

    def negated(self) -> Differences:
        """b minus a: the same runs, each difference with its sign turned."""
        return Differences(self.runs, -self.peak_acc, -self.peak_epoch)


def pair_differences(study: Study, a: str, b: str, budget: int | None = None) -> Differences:
    """a's peak minus b's; with a budget, b's peak within its first `budget` epochs, over b's runs that long."""
    first, second = study.arms.get(a, {}), study.arms.get(b, {})
    runs = [r for r in sorted(set(first) & set(second)) if budget is None or second[r].done >= budget]
    whole = budget is None
    b_peaks = [(second[r].peak_epoch, second[r].peak_acc) if whole else second[r].peak_within(budget) for r in runs]
    return Differences(
        runs=runs,
        peak_acc=np.array([first[r].peak_acc - acc for r, (_, acc) in zip(runs, b_peaks, strict=True)]),
        peak_epoch=np.array([first[r].peak_epoch - e for r, (e, _) in zip(runs, b_peaks, strict=True)], dtype=float),
    )


def _tests(differences: np.ndarray, tolerance: float, earlier_wins: bool = False) -> dict:
    """Sign and Wilcoxon tests of a minus b; for epochs a win is a's peak coming earlier."""
    return {
        "sign_test": sign_test(-differences if earlier_wins else differences, tolerance),
        "wilcoxon": wilcoxon_test(differences, tolerance),
    }


def compare_pair(
    study: Study,
    a: str,
    b: str,
    resamples: int,
    seed: int,
    stream: tuple[int, ...],
    *,
    first_quantity: int = 0,
    budget: int | None = None,
) -> tuple[dict, Differences]:
    """The one comparison of two arms: a minus b over the runs that have both, and its per-run differences.

    Quantity k (peak accuracy 0, epoch of the peak 1, class i 2 + i) draws its bootstrap from stream
    (*stream, first_quantity + k). With a budget, b counts only its first `budget` epochs and classes are
    left out (the confusion matrix is the whole run's).
    """
    diffs = pair_differences(study, a, b, budget)
    out = {"a": a, "b": b, "n": len(diffs.runs), "runs": diffs.runs}
    for k, (metric, values) in enumerate((("peak_acc", diffs.peak_acc), ("peak_epoch", diffs.peak_epoch))):
        out.update(difference_block(f"{metric}_diff", values, resamples, seed, (*stream, first_quantity + k)))
    acc_tests, epoch_tests = _tests(diffs.peak_acc, ACC_TIE_TOLERANCE), _tests(diffs.peak_epoch, 0.0, True)
    for test in TESTS:
        out[test] = {"peak_acc": acc_tests[test], "peak_epoch": epoch_tests[test]}
    if budget is not None:
        return out, diffs
    first, second = study.arms.get(a, {}), study.arms.get(b, {})
    per_run = {r: (class_metrics(first[r].confusion), class_metrics(second[r].confusion)) for r in diffs.runs}
    out["class_acc"] = []
    for i, name in enumerate(study.class_names):
        values = np.array([ma["class_acc"][i] - mb["class_acc"][i] for ma, mb in per_run.values()])
        values = values[~np.isnan(values)]  # a class with no test images in a run has no accuracy there
        block = {"class": name, "n": int(values.size)}
        block.update(difference_block("class_acc_diff", values, resamples, seed, (*stream, first_quantity + 2 + i)))
        block.update(_tests(values, ACC_TIE_TOLERANCE))
        out["class_acc"].append(block)
    return out, diffs


def arm_pairs(arms: Sequence[str], reference: str | None) -> list[tuple[str, str]]:
    """Every unordered pair once, as (a, b) for a minus b: arm order, with the reference arm always b."""
    order = [arm for arm in arms if arm != reference] + ([reference] if reference in arms else [])
    return list(combinations(order, 2))


def _adjust_family(tests: list[dict]) -> None:
    for test, adjusted in zip(tests, holm_adjust([t["p_value"] for t in tests]), strict=True):
        test["p_holm"] = adjusted


def compare_all(
    study: Study, arms: Sequence[str], reference: str | None, resamples: int, seed: int
) -> tuple[dict, dict[tuple[str, str], Differences]]:
    """summary.json's "pairs" (every pair of arms) and "p_adjustment", and each pair's per-run differences."""
    compared = [
        compare_pair(study, a, b, resamples, seed, (PAIR_STREAM, i))
        for i, (a, b) in enumerate(arm_pairs(arms, reference))
    ]
    pairs = [block for block, _ in compared]
    for test in TESTS:
        for metric in METRICS:
            _adjust_family([pair[test][metric] for pair in pairs])
        _adjust_family([block[test] for pair in pairs for block in pair["class_acc"]])
    keys = {
        "pairs": pairs,
        "p_adjustment": {
            "method": ADJUSTMENT,
            "name": "Holm-Bonferroni step-down, family-wise error rate",
            "key": "p_holm beside each p_value",
            "families": list(HOLM_FAMILIES),
            "undefined_tests": "left out of their family (p_holm null)",
        },
    }
    return keys, {(block["a"], block["b"]): diffs for block, diffs in compared}


# --------------------------------------------------------------------------- the study


@dataclass
class Results:
    """Everything the engine computed once; summary.json, the tables, figures and report are views of it."""

    study_keys: dict  # schema, workdir, runs, class names, data, bootstrap, skipped, warnings, conventions
    arm_keys: dict  # the N-arm keys: arm_names, reference_arm, missing_arms, arms, pairs, p_adjustment, cost, ...
    arm_statistics: dict[str, dict]  # `summarize_arm` of each arm, once
    differences: dict[tuple[str, str], Differences]  # each pair's per-run values, for the figures
    curves: dict[str, dict[str, np.ndarray]]  # analysis.cost.cost_curves

    def pair(self, a: str, b: str) -> dict | None:
        """The comparison of a and b (in whichever order the engine made it), or None."""
        return next((p for p in self.arm_keys["pairs"] if {p["a"], p["b"]} == {a, b}), None)


def study_keys(study: Study, resamples: int, seed: int) -> dict:
    """What summary.json says about the study itself, whatever its arms."""
    return {
        "schema": ANALYSIS_SCHEMA,
        "workdir": str(study.workdir),
        "num_runs": len(study.runs),
        "run_dirs_found": study.run_dirs_found,
        "runs": sorted(study.runs),
        "class_names": study.class_names,
        "data": describe_data(study),
        "models": sorted(
            {str(r.spec["model"]) for a in study.arm_names for r in study.records(a) if r.spec and r.spec.get("model")}
        ),
        "starting_weights": describe_starting_weights(study),
        "bootstrap": {"resamples": resamples, "seed": seed, "level": 0.95, "method": "percentile"},
        "skipped": [{"path": p, "reason": r} for p, r in study.skipped],
        "warnings": list(study.warnings),
        "conventions": CONVENTIONS,
    }


def run(study: Study, reference: str | None, resamples: int, seed: int) -> Results:
    """Every arm summarised, every pair compared, the cost of accuracy and the selection bias, once each."""
    arms = study.arm_names
    chosen = reference_arm(study, reference)  # first: a bad --reference_arm fails before any work
    statistics = {arm: summarize_arm(study.records(arm), len(study.class_names)) for arm in arms}
    pairs, differences = compare_all(study, arms, chosen["name"], resamples, seed)
    reference_peak = statistics[chosen["name"]]["peak_acc_mean"] if chosen["name"] else None
    bias = {arm: selection_bias(study, arm, i, resamples, seed) for i, arm in enumerate(arms)}
    arm_keys = {
        "arm_names": arms,
        "reference_arm": chosen,
        "missing_arms": missing_arms(study),
        "arms": {arm: arm_block(study, arm, statistics[arm]) for arm in arms},
        **pairs,
        "cost": summarize_cost(study, arms, chosen["name"], reference_peak, resamples, seed),
        "selection_bias": {arm: block for arm, block in bias.items() if block is not None},
    }
    return Results(
        study_keys=study_keys(study, resamples, seed),
        arm_keys=arm_keys,
        arm_statistics=statistics,
        differences=differences,
        curves=cost_curves(study, arms, resamples, seed),
    )
