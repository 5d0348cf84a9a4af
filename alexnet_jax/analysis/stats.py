"""The statistics the engine is built from: means and SDs, the tests, bootstrap CIs, one arm's summary.

Peaks, peaks within an epoch budget, per-class metrics, paired-difference blocks, the sign,
Wilcoxon and exact binomial tests, Holm's adjustment. Nothing here knows arms or pairs:
analysis.engine applies these to a study. Definitions: docs/analysis.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from alexnet_jax import paper
from alexnet_jax.analysis.study import ArmRun

ANALYSIS_SCHEMA = "alexnet_jax.analysis/1"
WITHIN_EPOCHS = tuple(paper.PRETRAINED_WITHIN)  # the paper limits the pretrained arm to its first N epochs
BOOTSTRAP_RESAMPLES = 10_000
ALPHA = 0.05  # the level of every 'differs' in the report (McNemar per run, Holm-adjusted pairs)


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
