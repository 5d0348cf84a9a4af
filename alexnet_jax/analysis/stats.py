"""The statistics of a study: every number of summary.json, from a loaded `Study`.

Peaks, peaks within an epoch budget, per-class metrics, paired differences, and the tests on
them (sign test, Wilcoxon signed-rank, bootstrap CIs, McNemar). Definitions: docs/analysis.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from alexnet_jax import paper
from alexnet_jax.analysis.study import ACC_TIE_TOLERANCE, ArmRun, Study, describe_data
from alexnet_jax.results import ARMS

ANALYSIS_SCHEMA = "alexnet_jax.analysis/1"
WITHIN_EPOCHS = tuple(paper.PRETRAINED_WITHIN)  # the paper limits the pretrained arm to its first N epochs
BUDGET_EPOCHS = paper.EPOCHS["pretrained"]  # scratch limited to the pretrained arm's budget (paper Figs 4 right, 5)
STANDARD_EPOCHS = paper.EPOCHS  # longer runs go to Table 3
BOOTSTRAP_RESAMPLES = 10_000
ALPHA = 0.05


def mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and sample SD (ddof=1); None where undefined (no values; SD with one value)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return None, None
    mean = float(np.mean(values))
    std = float(np.std(values, ddof=1)) if values.size > 1 else None
    return mean, std


def binomial_two_sided_p(wins: int, losses: int) -> float | None:
    """Exact two-sided sign-test p (scipy's binomtest, p = 1/2); None when every pair tied.

    scipy sums the binomial tail in floating point: from n = 15 on its p can differ from the
    rational value by a few ulps (2e-14 relative at most up to n = 250), far below any
    decision the test supports.
    """
    from scipy import stats

    n = wins + losses
    if n == 0:
        return None
    return float(stats.binomtest(wins, n, 0.5, alternative="two-sided").pvalue)


def sign_test(differences: Sequence[float], tolerance: float = 0.0) -> dict:
    """Wins are differences > tolerance, losses < -tolerance; ties are dropped and counted."""
    d = np.asarray(differences, dtype=np.float64)
    wins, losses = int(np.sum(d > tolerance)), int(np.sum(d < -tolerance))
    ties = int(d.size - wins - losses)
    return {
        "n_pairs": int(d.size),
        "wins": wins,
        "losses": losses,
        "ties": ties,
        "p_value": binomial_two_sided_p(wins, losses),
    }


def wilcoxon_test(differences: Sequence[float], tolerance: float = 0.0) -> dict:
    """Wilcoxon signed-rank test, two-sided; zero differences are dropped (Wilcox's convention).

    Exact p when at most 50 non-zero differences with distinct |d|, else the normal approximation
    with tie correction (scipy's exact null distribution assumes no ties).
    """
    from scipy import stats as scipy_stats

    d = np.round(np.asarray(differences, dtype=np.float64), 12)  # float noise must not break ties
    nonzero = d[np.abs(d) > tolerance]
    out = {"n_pairs": int(d.size), "n_nonzero": int(nonzero.size), "statistic": None, "p_value": None}
    if nonzero.size == 0:
        out["method"] = None
        out["note"] = "no non-zero differences: the test is undefined" if d.size else "no pairs"
        return out
    method = "exact" if nonzero.size <= 50 and np.unique(np.abs(nonzero)).size == nonzero.size else "asymptotic"
    result = scipy_stats.wilcoxon(nonzero, zero_method="wilcox", alternative="two-sided", method=method)
    out.update(statistic=float(result.statistic), p_value=float(result.pvalue), method=method)
    return out


def bootstrap_rng(seed: int, stream: int | tuple[int, ...]) -> np.random.Generator:
    """One independent random stream per quantity: default_rng([seed, *stream])."""
    return np.random.default_rng([seed, *((stream,) if isinstance(stream, int) else stream)])


def bootstrap_mean_ci(
    values: Sequence[float], resamples: int, seed: int, stream: int | tuple[int, ...], level: float = 0.95
):
    """Percentile bootstrap CI of the mean; deterministic in (seed, stream); None with < 2 values."""
    values = np.asarray(values, dtype=np.float64)
    if values.size < 2 or resamples < 1:
        return None
    rng = bootstrap_rng(seed, stream)
    means = np.empty(resamples)
    chunk = max(1, 2_000_000 // values.size)
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        means[start:stop] = values[rng.integers(0, values.size, size=(stop - start, values.size))].mean(axis=1)
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return [float(low), float(high)]


def class_metrics(confusion: np.ndarray) -> dict[str, np.ndarray]:
    """Per-class accuracy (= recall), precision and F1 of one confusion matrix; NaN where undefined.

    recall = diag / row sum (undefined with no examples of the class); precision = diag / column
    sum (undefined when the class is never predicted); F1 = 2 TP / (2 TP + FP + FN), which is the
    harmonic mean where both exist and 0 for a class that has examples but is never predicted
    (undefined only when the class neither occurs nor is predicted).
    """
    confusion = np.asarray(confusion, dtype=np.float64)
    tp = np.diag(confusion)
    rows, cols = confusion.sum(axis=1), confusion.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = np.where(rows > 0, tp / rows, np.nan)
        precision = np.where(cols > 0, tp / cols, np.nan)
        f1 = np.where(rows + cols > 0, 2 * tp / (rows + cols), np.nan)
    return {"class_acc": recall, "recall": recall, "precision": precision, "f1": f1}


def _column_stats(matrix: np.ndarray, width: int) -> tuple[list, list, list]:
    """Per-column mean, sample SD and count over rows, skipping NaN (undefined) entries."""
    means, stds, counts = [], [], []
    for column in np.asarray(matrix, dtype=np.float64).reshape(len(matrix), width).T:
        mean, std = mean_std(column[~np.isnan(column)])
        means.append(mean)
        stds.append(std)
        counts.append(int(np.sum(~np.isnan(column))))
    return means, stds, counts


def difference_block(name: str, values: np.ndarray, resamples: int, seed: int, stream) -> dict:
    """Mean, SD, bootstrap 95% CI, min and max of paired differences, as `{name}_mean` etc."""
    mean, std = mean_std(values)
    return {
        f"{name}_mean": mean,
        f"{name}_std": std,
        f"{name}_ci95": bootstrap_mean_ci(values, resamples, seed, stream),
        f"{name}_min": float(values.min()) if values.size else None,
        f"{name}_max": float(values.max()) if values.size else None,
    }


def summarize_arm(records: list[ArmRun], num_classes: int) -> dict:
    acc = [r.peak_acc for r in records]
    epochs = [r.peak_epoch for r in records]
    acc_mean, acc_std = mean_std(acc)
    epoch_mean, epoch_std = mean_std(epochs)
    out: dict[str, Any] = {
        "n_runs": len(records),
        "runs": [r.run for r in records],
        "n_complete": sum(r.complete for r in records),
        "incomplete_runs": [r.run for r in records if not r.complete],
        "epochs_planned": sorted({r.planned for r in records}),
        "epochs_finished_min": min((r.done for r in records), default=None),
        "epochs_finished_max": max((r.done for r in records), default=None),
        "selection": sorted({r.selection for r in records}),
        "peak_acc_mean": acc_mean,
        "peak_acc_std": acc_std,
        "peak_acc_min": min(acc, default=None),
        "peak_acc_max": max(acc, default=None),
        "peak_epoch_mean": epoch_mean,
        "peak_epoch_std": epoch_std,
        "peak_acc_within": {str(n): within_block(records, n) for n in WITHIN_EPOCHS},
    }
    nan_rows = np.full((0, num_classes), np.nan)
    metrics = [class_metrics(r.confusion) for r in records]
    for key in ("class_acc", "precision", "recall", "f1"):
        stacked = np.array([m[key] for m in metrics]) if metrics else nan_rows
        mean, std, count = _column_stats(stacked, num_classes)
        out[f"{key}_mean"], out[f"{key}_std"], out[f"{key}_n"] = mean, std, count
    out["precision_undefined_runs"] = [len(records) - n for n in out["precision_n"]]
    # Fig 11: each run's matrix as proportions of its row totals, then cell-wise mean and SD.
    with np.errstate(divide="ignore", invalid="ignore"):
        proportions = (
            np.array(
                [
                    r.confusion
                    / np.where(r.confusion.sum(1, keepdims=True) > 0, r.confusion.sum(1, keepdims=True), np.nan)
                    for r in records
                ]
            )
            if records
            else np.full((0, num_classes, num_classes), np.nan)
        )
    mean, std, count = _column_stats(proportions, num_classes * num_classes)
    out["confusion_mean"] = [mean[i * num_classes : (i + 1) * num_classes] for i in range(num_classes)]
    out["confusion_std"] = [std[i * num_classes : (i + 1) * num_classes] for i in range(num_classes)]
    out["confusion_row_n"] = [count[i * num_classes] for i in range(num_classes)]
    counts = np.array([r.confusion for r in records], dtype=np.float64)
    out["confusion_counts_mean"] = counts.mean(axis=0).tolist() if records else None
    return out


def within_block(records: list[ArmRun], n: int) -> dict:
    """Peak over the first n epochs, over runs with at least n finished epochs, and the gain of the full run."""
    picked = [(r, r.peak_within(n)) for r in records if r.done >= n]
    acc = [p[1] for _, p in picked]
    epochs = [p[0] for _, p in picked]
    gains = [r.peak_acc - p[1] for r, p in picked]
    acc_mean, acc_std = mean_std(acc)
    epoch_mean, epoch_std = mean_std(epochs)
    gain_mean, gain_std = mean_std(gains)
    return {
        "n": len(picked),
        "n_too_short": len(records) - len(picked),
        "mean": acc_mean,
        "std": acc_std,
        "peak_epoch_mean": epoch_mean,
        "peak_epoch_std": epoch_std,
        "gain_mean": gain_mean,
        "gain_std": gain_std,
        "gain_min": min(gains, default=None),
        "gain_max": max(gains, default=None),
    }


@dataclass
class Paired:
    """Per-run paired quantities, pretrained minus scratch (epoch: negative = pretrained earlier)."""

    runs: list[int]
    acc: np.ndarray
    epoch: np.ndarray
    runs_200: list[int]
    acc_200: np.ndarray
    epoch_200: np.ndarray


def paired_values(study: Study) -> Paired:
    pre, scr = study.arms["pretrained"], study.arms["scratch"]
    both = sorted(set(pre) & set(scr))
    both_200 = [r for r in both if scr[r].done >= BUDGET_EPOCHS]
    return Paired(
        runs=both,
        acc=np.array([pre[r].peak_acc - scr[r].peak_acc for r in both]),
        epoch=np.array([pre[r].peak_epoch - scr[r].peak_epoch for r in both], dtype=np.float64),
        runs_200=both_200,
        acc_200=np.array([pre[r].peak_acc - scr[r].peak_within(BUDGET_EPOCHS)[1] for r in both_200]),
        epoch_200=np.array(
            [pre[r].peak_epoch - scr[r].peak_within(BUDGET_EPOCHS)[0] for r in both_200], dtype=np.float64
        ),
    )


def mcnemar_runs(study: Study) -> dict:
    """Exact McNemar test per run on the two arms' best-epoch test predictions."""
    pre, scr = study.arms["pretrained"], study.arms["scratch"]
    rows, not_tested = [], []
    for run in sorted(set(pre) & set(scr)):
        labels = study.test_labels.get(run)
        a, b = pre[run].predictions, scr[run].predictions
        if labels is None or a is None or b is None:
            not_tested.append({"run": run, "reason": "test_predictions or split.test_labels not saved"})
            continue
        if not len(a) == len(b) == len(labels):
            not_tested.append(
                {"run": run, "reason": f"lengths differ: labels {len(labels)}, pretrained {len(a)}, scratch {len(b)}"}
            )
            continue
        only_pre = int(np.sum((a == labels) & (b != labels)))
        only_scr = int(np.sum((a != labels) & (b == labels)))
        rows.append(
            {
                "run": run,
                "pretrained_only_correct": only_pre,
                "scratch_only_correct": only_scr,
                "p_value": binomial_two_sided_p(only_pre, only_scr),
            }
        )
    significant = [r for r in rows if r["p_value"] is not None and r["p_value"] < ALPHA]
    return {
        "alpha": ALPHA,
        "n_runs_tested": len(rows),
        "n_significant": len(significant),
        "n_significant_favour_pretrained": sum(
            r["pretrained_only_correct"] > r["scratch_only_correct"] for r in significant
        ),
        "n_significant_favour_scratch": sum(
            r["pretrained_only_correct"] < r["scratch_only_correct"] for r in significant
        ),
        "n_no_discordant": sum(r["p_value"] is None for r in rows),
        "not_tested": not_tested,
        "runs": rows,
    }


def long_runs(study: Study) -> list[dict]:
    """Table 3: runs with more than the standard epochs in either arm (the paper's 1,000-epoch repeats)."""
    out = []
    for run in sorted(study.runs):
        arms = {arm: study.arms[arm].get(run) for arm in ARMS}
        if not any(r is not None and r.planned > STANDARD_EPOCHS[arm] for arm, r in arms.items()):
            continue
        row: dict[str, Any] = {"run": run}
        for arm, r in arms.items():
            row[f"{arm}_epochs"] = None if r is None else r.planned
            row[f"{arm}_epochs_finished"] = None if r is None else r.done
            row[f"{arm}_peak_acc"] = None if r is None else r.peak_acc
            row[f"{arm}_peak_epoch"] = None if r is None else r.peak_epoch
        both = all(r is not None for r in arms.values())
        row["peak_acc_diff"] = arms["pretrained"].peak_acc - arms["scratch"].peak_acc if both else None
        out.append(row)
    return out


def summarize(study: Study, *, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> dict:
    """Every number of summary.json, from a loaded study."""
    k = len(study.class_names)
    records = {arm: study.records(arm) for arm in ARMS}
    first = within_block(records["scratch"], BUDGET_EPOCHS)
    paired = paired_values(study)
    paired_out = {"n": len(paired.runs), "n_first_200": len(paired.runs_200)}
    for stream, (name, values) in enumerate(
        (
            ("peak_acc_diff", paired.acc),
            ("peak_epoch_diff", paired.epoch),
            ("peak_acc_diff_first_200", paired.acc_200),
            ("peak_epoch_diff_first_200", paired.epoch_200),
        )
    ):
        paired_out.update(difference_block(name, values, resamples, seed, stream))
    # Sign tests: a win is a higher pretrained peak, or an earlier pretrained peak.
    sign = {
        "peak_acc": sign_test(paired.acc, ACC_TIE_TOLERANCE),
        "peak_epoch": sign_test(-paired.epoch),
        "peak_acc_first_200": sign_test(paired.acc_200, ACC_TIE_TOLERANCE),
        "peak_epoch_first_200": sign_test(-paired.epoch_200),
    }
    wilcoxon = {
        "peak_acc": wilcoxon_test(paired.acc, ACC_TIE_TOLERANCE),
        "peak_epoch": wilcoxon_test(paired.epoch),
        "peak_acc_first_200": wilcoxon_test(paired.acc_200, ACC_TIE_TOLERANCE),
        "peak_epoch_first_200": wilcoxon_test(paired.epoch_200),
    }
    return {
        "schema": ANALYSIS_SCHEMA,
        "workdir": str(study.workdir),
        "num_runs": len(study.runs),
        "run_dirs_found": study.run_dirs_found,
        "runs": sorted(study.runs),
        "class_names": study.class_names,
        "arms_found": {arm: len(study.arms[arm]) for arm in ARMS},
        "data": describe_data(study),
        "pretrained": summarize_arm(records["pretrained"], k),
        "scratch": summarize_arm(records["scratch"], k),
        "scratch_first_200": {
            "n": first["n"],
            "n_too_short": first["n_too_short"],
            "peak_acc_mean": first["mean"],
            "peak_acc_std": first["std"],
            "peak_epoch_mean": first["peak_epoch_mean"],
            "peak_epoch_std": first["peak_epoch_std"],
        },
        "paired": paired_out,
        "sign_test": sign,
        "wilcoxon": wilcoxon,
        "bootstrap": {"resamples": resamples, "seed": seed, "level": 0.95, "method": "percentile"},
        "mcnemar": mcnemar_runs(study),
        "long_runs": long_runs(study),
        "skipped": [{"path": p, "reason": r} for p, r in study.skipped],
        "warnings": list(study.warnings),
        "conventions": {
            "accuracy": "fractions in [0, 1]; tables and report show percent",
            "epochs": "0-based epoch indices",
            "std": "sample standard deviation (ddof=1); null with fewer than 2 values",
            "undefined": (
                "a per-class value that is undefined in a run is left out of that class's mean; "
                "*_n counts the runs used"
            ),
        },
    }
