"""Every pair of arms, compared on the splits both were trained on.

Per pair: paired differences of peak accuracy, of the epoch of the peak and of each class's
accuracy; sign and Wilcoxon tests on them; bootstrap CIs of the mean differences. Testing many
pairs (and classes) inflates false positives, so every p-value also gets Holm's step-down
adjustment within its family (`HOLM_FAMILIES`). Definitions: docs/analysis.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np

from alexnet_jax.analysis.stats import class_metrics, difference_block, sign_test, wilcoxon_test
from alexnet_jax.analysis.study import ACC_TIE_TOLERANCE, Study

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
PAIR_STREAM = 1  # bootstrap streams (PAIR_STREAM, pair, quantity); summary's paper pair uses 0-3


def holm_adjust(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p-values, in the input's order.

    The i-th smallest of m p-values becomes max over j <= i of min(1, (m - j + 1) p_(j)). An undefined
    test (None) is not part of the family: it stays None and does not count in m.
    """
    order = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p))
        adjusted[i] = running
    return adjusted


def arm_pairs(arms: Sequence[str], reference: str | None) -> list[tuple[str, str]]:
    """Every unordered pair once, as (a, b) for a minus b: arm order, with the reference arm always b."""
    order = [arm for arm in arms if arm != reference] + ([reference] if reference in arms else [])
    return list(combinations(order, 2))


def _tests(differences: np.ndarray, tolerance: float, earlier_wins: bool = False) -> dict:
    """Sign and Wilcoxon tests of a minus b; for epochs a win is a's peak coming earlier."""
    return {
        "sign_test": sign_test(-differences if earlier_wins else differences, tolerance),
        "wilcoxon": wilcoxon_test(differences, tolerance),
    }


def compare_pair(study: Study, a: str, b: str, resamples: int, seed: int, index: int) -> dict:
    """a minus b over the runs that have both arms."""
    first, second = study.arms[a], study.arms[b]
    runs = sorted(set(first) & set(second))
    acc = np.array([first[r].peak_acc - second[r].peak_acc for r in runs])
    epoch = np.array([first[r].peak_epoch - second[r].peak_epoch for r in runs], dtype=np.float64)
    out = {"a": a, "b": b, "n": len(runs), "runs": runs}
    out.update(difference_block("peak_acc_diff", acc, resamples, seed, (PAIR_STREAM, index, 0)))
    out.update(difference_block("peak_epoch_diff", epoch, resamples, seed, (PAIR_STREAM, index, 1)))
    acc_tests, epoch_tests = _tests(acc, ACC_TIE_TOLERANCE), _tests(epoch, 0.0, earlier_wins=True)
    for test in TESTS:
        out[test] = {"peak_acc": acc_tests[test], "peak_epoch": epoch_tests[test]}
    per_run = {r: (class_metrics(first[r].confusion), class_metrics(second[r].confusion)) for r in runs}
    out["class_acc"] = []
    for i, name in enumerate(study.class_names):
        values = np.array([ma["class_acc"][i] - mb["class_acc"][i] for ma, mb in per_run.values()])
        values = values[~np.isnan(values)]  # a class with no test images in a run has no accuracy there
        block = {"class": name, "n": int(values.size)}
        block.update(difference_block("class_acc_diff", values, resamples, seed, (PAIR_STREAM, index, 2 + i)))
        block.update(_tests(values, ACC_TIE_TOLERANCE))
        out["class_acc"].append(block)
    return out


def _adjust_family(tests: list[dict]) -> None:
    for test, adjusted in zip(tests, holm_adjust([t["p_value"] for t in tests]), strict=True):
        test["p_holm"] = adjusted


def compare_all(study: Study, arms: Sequence[str], reference: str | None, resamples: int, seed: int) -> dict:
    """summary.json's "pairs" (every pair of arms) and "p_adjustment" (what was adjusted, over what)."""
    pairs = [compare_pair(study, a, b, resamples, seed, i) for i, (a, b) in enumerate(arm_pairs(arms, reference))]
    for test in TESTS:
        for metric in METRICS:
            _adjust_family([pair[test][metric] for pair in pairs])
        _adjust_family([block[test] for pair in pairs for block in pair["class_acc"]])
    return {
        "pairs": pairs,
        "p_adjustment": {
            "method": ADJUSTMENT,
            "name": "Holm-Bonferroni step-down, family-wise error rate",
            "key": "p_holm beside each p_value",
            "families": list(HOLM_FAMILIES),
            "undefined_tests": "left out of their family (p_holm null)",
        },
    }
