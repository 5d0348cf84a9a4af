"""How many labels does an arm need? Curves against the number of labels, paired differences, labels saved.

From a label-efficiency design (analysis.label_design): per arm and size the mean accuracy,
balanced accuracy, macro-F1 and per-class recall over repeats, with bootstrap bands;
paired differences between arms at each size, tested over repeats with Holm's adjustment across
sizes and pairs; and labels saved: the number of labels N* at which an arm's mean accuracy curve
first reaches the reference arm's mean accuracy at a size N_ref, interpolated linearly on log N
between the sizes tried, and the ratio N* / N_ref, with bootstrap CIs.

The bootstrap resamples repeats, never single runs: a repeat is one test set with its nested
subsets and every arm trained on them, so one draw of repeats keeps arms and sizes paired. As a
study has few repeats (5 by default), every interval here is the expanded percentile interval
(`expanded_quantiles`), not the plain one, which is too narrow with so few.
Nothing is extrapolated: an arm already above the level at the smallest size tried is "at most
N_min", one that never reaches it "not reached", and resamples are counted the same way, as the
cost analysis counts runs that never reach a target (analysis.cost). Definitions: docs/analysis.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from alexnet_jax.analysis.engine import ADJUSTMENT, arm_pairs
from alexnet_jax.analysis.label_design import METRICS, LabelDesign, read_design
from alexnet_jax.analysis.stats import bootstrap_rng, holm_adjust, mean_std, sign_test, wilcoxon_test
from alexnet_jax.analysis.study import ACC_TIE_TOLERANCE, Study

LABEL_STREAM = 4  # bootstrap streams: (4, 0) repeats for every curve; (4, 1, arm) labels saved; (4, 2, ...) pairs
LEVEL = 0.95
REACHED, BELOW, NOT_REACHED = "reached", "below_smallest", "not_reached"
TESTS = ("sign_test", "wilcoxon")
LABELS = (
    "labels = training examples of a run's subset before its validation split is carved out (label_budget.size): "
    "every galaxy that must be labelled to train and select the model"
)


def expanded_quantiles(n: int, level: float = LEVEL) -> list[float]:
    """The quantiles of the expanded percentile interval (Hesterberg 2015) of a statistic of n repeats.

    The plain percentile interval is too narrow with few repeats: the bootstrap's spread lacks the
    factor sqrt(n / (n - 1)), and it uses z where Student's t with n - 1 degrees of freedom belongs
    (simulated coverage of labels saved: 83 % with 5 repeats). Taking the quantiles at the normal
    tail where z = sqrt(n / (n - 1)) t(n - 1) restores most of it (92 % with 5 repeats; docs/analysis.md).
    """
    from scipy import stats

    if n < 2:
        return [(1 - level) / 2, (1 + level) / 2]
    tail = float(stats.norm.sf(math.sqrt(n / (n - 1)) * stats.t.ppf((1 + level) / 2, n - 1)))
    return [tail, 1 - tail]


def _interval(draws: np.ndarray, n: int) -> np.ndarray:
    """The expanded interval of draws along axis 0 by the inverted CDF, so infinite draws stay infinite."""
    return np.quantile(draws, expanded_quantiles(n), axis=0, method="inverted_cdf")


def mean_interval(values: np.ndarray, resamples: int, seed: int, stream) -> list[float] | None:
    """Expanded percentile 95% CI of the mean of values (one per repeat); None with fewer than two."""
    values = np.asarray(values, dtype=np.float64)
    if values.size < 2 or resamples < 1:
        return None
    draws = bootstrap_rng(seed, stream).integers(0, values.size, size=(resamples, values.size))
    return np.quantile(values[draws].mean(axis=1), expanded_quantiles(values.size)).tolist()


def difference_keys(values: np.ndarray, resamples: int, seed: int, stream) -> dict:
    """Mean, SD, expanded 95% CI, min and max of paired differences, as `diff_mean` etc."""
    mean, std = mean_std(values)
    return {
        "diff_mean": mean,
        "diff_std": std,
        "diff_ci95": mean_interval(values, resamples, seed, stream),
        "diff_min": float(values.min()) if values.size else None,
        "diff_max": float(values.max()) if values.size else None,
    }


def repeat_weights(num_repeats: int, resamples: int, seed: int, stream) -> np.ndarray:
    """(resamples, R): how often each repeat is drawn in each resample (R drawn with replacement)."""
    draws = bootstrap_rng(seed, stream).integers(0, num_repeats, size=(resamples, num_repeats))
    flat = (np.arange(resamples)[:, None] * num_repeats + draws).ravel()
    return np.bincount(flat, minlength=resamples * num_repeats).reshape(resamples, num_repeats).astype(np.float64)


def curve_block(values: np.ndarray, weights: np.ndarray | None) -> dict:
    """Mean, SD, count and 95% band over repeats of each column of values (R, C); NaN = no result.

    A resample's mean uses the drawn repeats that have a result there; no band with fewer than two.
    """
    present = ~np.isnan(values)
    stats = [mean_std(column[keep]) for column, keep in zip(values.T, present.T, strict=True)]
    n = present.sum(axis=0)
    out = {"mean": [m for m, _ in stats], "std": [s for _, s in stats], "n": n.tolist(), "ci95": [None] * len(n)}
    if weights is None or not np.any(n >= 2):
        return out
    with np.errstate(invalid="ignore", divide="ignore"):
        means = (weights @ np.where(present, values, 0.0)) / (weights @ present)
    for c in np.flatnonzero(n >= 2):
        out["ci95"][c] = np.nanquantile(means[:, c], expanded_quantiles(int(n[c]))).tolist()
    return out


def labels_needed(curves: np.ndarray, levels: np.ndarray, log_sizes: np.ndarray) -> np.ndarray:
    """log N* of each row: where the curve (sizes ascending) first reaches its level, linear on log N.

    curves (B, S), levels (B,). -inf where the curve is already above the level at the smallest size
    (the sizes tried cannot say how few would do), +inf where it never reaches it (nothing is
    extrapolated). Within ACC_TIE_TOLERANCE of the level counts as reaching it.
    """
    curves, levels = np.atleast_2d(curves), np.atleast_1d(levels)
    reached = curves >= levels[:, None] - ACC_TIE_TOLERANCE
    first = np.argmax(reached, axis=1)
    out = np.full(len(levels), np.inf)
    rows = np.flatnonzero(reached.any(axis=1))
    at = first[rows]
    out[rows[at == 0]] = log_sizes[0]
    later = rows[at > 0]
    s = first[later]
    low, high = curves[later, s - 1], curves[later, s]
    fraction = np.clip((levels[later] - low) / (high - low), 0.0, 1.0)  # high - low > tolerance > 0
    out[later] = log_sizes[s - 1] + fraction * (log_sizes[s] - log_sizes[s - 1])
    out[curves[:, 0] > levels + ACC_TIE_TOLERANCE] = -np.inf
    return out


def _status(log_n: float) -> str:
    return BELOW if log_n == -np.inf else (NOT_REACHED if log_n == np.inf else REACHED)


def labels_saved_block(
    arm: np.ndarray, reference: np.ndarray, sizes: np.ndarray, ref_index: int, resamples: int, seed: int, stream
) -> dict:
    """Labels the arm needs to reach the reference's mean accuracy at sizes[ref_index], and the ratio.

    arm, reference: (S, R) accuracies by size (ascending) and repeat, NaN where missing. Only repeats
    with every size of both arms count (a curve needs all its points); the others are listed. The CI
    resamples those repeats, the level and the arm's curve from the same draw.
    """
    complete = ~(np.isnan(arm).any(axis=0) | np.isnan(reference).any(axis=0))
    arm, reference = arm[:, complete], reference[:, complete]
    log_sizes, n_ref = np.log(sizes), float(sizes[ref_index])
    out = {
        "reference_size": n_ref,
        "n_repeats": int(complete.sum()),
        "repeats_used": np.flatnonzero(complete).tolist(),  # positions in the design's repeats
        "level": None,
        "status": None,
        "labels": None,
        "bound": None,
        "ratio": None,
        "ci95": None,
        "ratio_ci95": None,
        "resamples": None,
    }
    if not complete.any():
        return out
    level = float(reference[ref_index].mean())
    point = float(labels_needed(arm.mean(axis=1)[None, :], np.array([level]), log_sizes)[0])
    out.update(level=level, status=_status(point))
    if out["status"] == REACHED:
        out["labels"] = float(np.exp(point))
        out["ratio"] = out["labels"] / n_ref
    else:
        out["bound"] = float(sizes[0] if out["status"] == BELOW else sizes[-1])
    n = arm.shape[1]
    if n < 2 or resamples < 1:
        return out
    draws = bootstrap_rng(seed, stream).integers(0, n, size=(resamples, n))
    curves = arm[:, draws].mean(axis=2).T  # (B, S)
    levels = reference[ref_index, draws].mean(axis=1)
    needed = labels_needed(curves, levels, log_sizes)
    bounds = _interval(needed, n)
    out["ci95"] = {
        "low": float(np.exp(bounds[0])) if np.isfinite(bounds[0]) else None,
        "high": float(np.exp(bounds[1])) if np.isfinite(bounds[1]) else None,
        "low_status": _status(float(bounds[0])),
        "high_status": _status(float(bounds[1])),
    }
    out["ratio_ci95"] = [None if v is None else v / n_ref for v in (out["ci95"]["low"], out["ci95"]["high"])]
    out["resamples"] = {
        "n": resamples,
        REACHED: int(np.isfinite(needed).sum()),
        BELOW: int((needed == -np.inf).sum()),
        NOT_REACHED: int((needed == np.inf).sum()),
    }
    return out


def _pair_tests(values: np.ndarray) -> dict:
    return {"sign_test": sign_test(values, ACC_TIE_TOLERANCE), "wilcoxon": wilcoxon_test(values, ACC_TIE_TOLERANCE)}


def paired_differences(design: LabelDesign, pairs: Sequence[tuple[str, str]], resamples: int, seed: int) -> dict:
    """Per metric: a minus b at each size over the repeats with both, with CI and tests, Holm-adjusted.

    Each test and metric is one Holm family over every pair and size; an undefined test is left out.
    """
    out: dict[str, list[dict]] = {}
    for m, metric in enumerate(METRICS):
        blocks = []
        for p, (a, b) in enumerate(pairs):
            first, second = design.metrics[metric][design.arms.index(a)], design.metrics[metric][design.arms.index(b)]
            for s, size in enumerate(design.sizes):
                both = ~(np.isnan(first[s]) | np.isnan(second[s]))
                values = first[s][both] - second[s][both]
                stream = (LABEL_STREAM, 2, p, m, s)
                blocks.append(
                    {
                        "a": a,
                        "b": b,
                        "size": float(size),
                        "size_asked": design.sizes_asked[s],
                        "n": int(both.sum()),
                        "repeats": [design.repeats[r] for r in np.flatnonzero(both)],
                        **difference_keys(values, resamples, seed, stream),
                        **_pair_tests(values),
                    }
                )
        for test in TESTS:
            tests = [block[test] for block in blocks]
            for block, adjusted in zip(tests, holm_adjust([t["p_value"] for t in tests]), strict=True):
                block["p_holm"] = adjusted
        out[metric] = blocks
    return out


def smallest_p(n_pairs: int) -> float | None:
    """The smallest two-sided p that the sign test (and the exact Wilcoxon test) can give with n pairs: 2 / 2^n."""
    return None if n_pairs < 1 else min(1.0, 2.0 ** (1 - n_pairs))


def _design_keys(design: LabelDesign) -> dict:
    return {
        "sizes": design.sizes.tolist(),
        "sizes_asked": design.sizes_asked,
        "size_values": design.size_values,
        "size_index": design.size_index,
        "num_sizes": design.declared["num_sizes"],
        "repeats_declared": design.declared["repeats"],
        "repeats_found": design.repeats,
        "min_per_class": design.declared["min_per_class"],
        "budget_policy": design.declared["policy"],
        "train_sizes": design.declared["train_sizes"],
        "train_examples_mean": design.counts["train"],
        "val_examples_mean": design.counts["val"],
        "pool_sizes": design.counts["pool"],
        "budgets": design.budgets,
        "runs": design.cell_runs,
        "labels": LABELS,
    }


def summarize(study: Study, reference: str | None, resamples: int, seed: int) -> dict | None:
    """summary.json's `label_efficiency` block, or None for a study whose runs carry no `label_budget`.

    Raises ResultsError (naming the runs) where the test sets or the designs of the runs disagree.
    """
    design = read_design(study)
    if design is None:
        return None
    num_repeats = len(design.repeats)
    weights = repeat_weights(num_repeats, resamples, seed, (LABEL_STREAM, 0)) if resamples >= 1 else None
    curves = {
        metric: {arm: curve_block(design.metrics[metric][a].T, weights) for a, arm in enumerate(design.arms)}
        for metric in METRICS
    }
    k = len(study.class_names)
    recall = {}
    for a, arm in enumerate(design.arms):
        values = design.class_recall[a].transpose(1, 0, 2).reshape(num_repeats, -1)  # (R, S * K)
        block = curve_block(values, weights)
        recall[arm] = {key: [block[key][s * k : (s + 1) * k] for s in range(len(design.sizes))] for key in block}
    pairs = arm_pairs(design.arms, reference)
    differences = paired_differences(design, pairs, resamples, seed)
    saved = []
    if reference is not None:
        ref = design.metrics["accuracy"][design.arms.index(reference)]
        for a, arm in enumerate(design.arms):
            if arm == reference:
                continue
            for s in range(len(design.sizes)):
                block = labels_saved_block(
                    design.metrics["accuracy"][a], ref, design.sizes, s, resamples, seed, (LABEL_STREAM, 1, a, s)
                )
                block["repeats_used"] = [design.repeats[r] for r in block["repeats_used"]]
                saved.append(
                    {"arm": arm, "reference": reference, "reference_size_asked": design.sizes_asked[s]} | block
                )
    most_pairs = max((b["n"] for blocks in differences.values() for b in blocks), default=0)
    return {
        "design": _design_keys(design),
        "arms": design.arms,
        "reference_arm": reference,
        "class_names": study.class_names,
        "missing": design.missing,
        "incomplete": design.incomplete,
        "metrics": list(METRICS),
        "curves": curves,
        "class_recall": recall,
        "differences": differences,
        "p_adjustment": {
            "method": ADJUSTMENT,
            "families": [f"{test}.{metric} over all pairs and sizes" for test in TESTS for metric in METRICS],
            "undefined_tests": "left out of their family (p_holm null)",
        },
        "smallest_p": smallest_p(most_pairs),
        "labels_saved": saved,
        "bootstrap": {
            "resamples": resamples,
            "seed": seed,
            "level": LEVEL,
            "interval": "expanded percentile (Hesterberg 2015): the quantiles where the normal tail equals "
            "sqrt(n / (n - 1)) t(n - 1, 0.975) for n repeats, as the plain percentile interval is too narrow with "
            "few repeats; inverted CDF for labels saved",
            "unit": "repeats (each with its test set, nested subsets and every arm), drawn with replacement",
            "streams": "(4, 0) curves and class recall; (4, 1, arm, size) labels saved; (4, 2, pair, metric, size) "
            "paired differences",
        },
    }
