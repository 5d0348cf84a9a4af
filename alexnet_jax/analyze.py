"""Analyse a study: summary.json, the paper's Tables 1-4 and Figs 3-11, and report.md.

    python -m alexnet_jax.analyze --workdir=DIR [--example_run=49] [--outdir=DIR/analysis]
    python -m alexnet_jax.analyze --workdir=/tmp/demo --demo_runs=100   # synthetic demo study

Reads every DIR/run_*/results.json (schema "alexnet_jax.run/1", see alexnet_jax.results) and
writes DIR/analysis/. Partial studies work: a broken or half-written results.json is named and
skipped, missing arms and short runs shrink the counts, and every such case is listed in the
report. Definitions of every number: docs/analysis.md.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from alexnet_jax.results import (
    ARMS,
    RESULTS_FILENAME,
    SCHEMA,
    ResultsError,
    find_run_dirs,
    is_complete,
    load_results,
    run_dir,
)
from alexnet_jax.toolbox import write_json_atomic, write_text_atomic

ANALYSIS_SCHEMA = "alexnet_jax.analysis/1"
WITHIN_EPOCHS = (20, 50)  # the paper's "pretrained limited to 20 / 50 epochs"
BUDGET_EPOCHS = 200  # scratch limited to the pretrained arm's budget (paper Figs 4 right, 5)
STANDARD_EPOCHS = {"pretrained": 200, "scratch": 400}  # longer runs go to Table 3
ACC_TIE_TOLERANCE = 1e-9  # accuracies are counts / test size (steps of ~5e-4); closer is a tie
BOOTSTRAP_RESAMPLES = 10_000
ALPHA = 0.05

ARM_LABELS = {"pretrained": "Pretrained", "scratch": "Scratch"}
PRETTY_CLASS = {"elliptical": "Elliptical", "lenticular": "Lenticular", "spiral": "Spiral", "irr_misc": "Irr+Misc"}

# What the paper reports (Schneider, Stenning & Elliott 2023), for the side-by-side table.
PAPER = {
    "pretrained_peak_acc": 0.842,
    "scratch_peak_acc": 0.824,
    "pretrained_peak_epoch": (155, 34),
    "scratch_peak_epoch": (367, 33),
    "advantage_first_200_points": 4.6,
    "pretrained_within_20": 0.820,
    "pretrained_within_50": 0.831,
    "sign_test_p": 1.58e-30,
    "long_run_advantage_points": (0.5, 1.0),
}


class StudyError(RuntimeError):
    """No usable study: the message says where we looked and what to do."""


# --------------------------------------------------------------------------- loading


@dataclass
class ArmRun:
    """One arm of one run, reduced to what the analysis needs."""

    run: int
    arm: str
    planned: int
    complete: bool
    selection: str  # "test" or "val": which metric picked best_epoch
    train_acc: np.ndarray
    test_acc: np.ndarray
    train_loss: np.ndarray
    test_loss: np.ndarray
    val_acc: np.ndarray | None
    peak_acc: float  # record's best_test_acc (= max(test_acc) under test selection)
    peak_epoch: int  # record's best_epoch, 0-based
    confusion: np.ndarray  # (K, K) counts, rows true, columns predicted, best epoch
    predictions: np.ndarray | None  # best-epoch test predictions, aligned with test_labels

    @property
    def done(self) -> int:
        return len(self.test_acc)

    def peak_within(self, n: int) -> tuple[int, float] | None:
        """(epoch, test acc) that the run's own selection rule picks among its first n epochs.

        None when fewer than n epochs are finished: such a run cannot say what n epochs give.
        """
        if self.done < n:
            return None
        metric = self.val_acc if self.selection == "val" else self.test_acc
        epoch = int(np.argmax(metric[:n]))  # argmax returns the first maximum
        return epoch, float(self.test_acc[epoch])


@dataclass
class Study:
    workdir: Path
    class_names: list[str]
    runs: dict[int, dict]  # run index -> parsed results.json
    arms: dict[str, dict[int, ArmRun]]  # arm -> run index -> ArmRun
    paths: dict[int, Path]
    run_dirs_found: int
    test_labels: dict[int, np.ndarray] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    warnings: list[str] = field(default_factory=list)


def _array(values, name: str, where: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ResultsError(f"{where}: '{name}' is not a flat list of numbers")
    return array


def _extract_arm(results: dict, arm: str, index: int, where: str, num_classes: int, warnings: list[str]):
    record = results["arms"][arm]
    label = f"run {index} {arm}"
    test_acc = _array(record["test_acc"], f"arms.{arm}.test_acc", where)
    if len(test_acc) == 0:
        warnings.append(f"{label}: no finished epoch yet ({where}); this arm is left out")
        return None
    selection = record.get("selection", "test")
    val_acc = record.get("val_acc")
    if selection not in ("test", "val"):
        raise ResultsError(f"{where}: 'arms.{arm}.selection' is {selection!r}, expected 'test' or 'val'")
    if selection == "val":
        if val_acc is None or len(val_acc) != len(test_acc):
            raise ResultsError(
                f"{where}: 'arms.{arm}.selection' is 'val' but val_acc is missing or of the wrong length"
            )
        val_acc = _array(val_acc, f"arms.{arm}.val_acc", where)
    else:
        val_acc = None
    confusion = np.asarray(record["confusion_matrix"], dtype=np.float64)
    if (
        confusion.shape != (num_classes, num_classes)
        or np.any(confusion < 0)
        or np.any(confusion != np.round(confusion))
    ):
        raise ResultsError(f"{where}: 'arms.{arm}.confusion_matrix' must be {num_classes}x{num_classes} counts >= 0")
    confusion = confusion.astype(np.int64)
    peak_epoch = int(record["best_epoch"])
    peak_acc = float(record["best_test_acc"])
    if abs(peak_acc - test_acc[peak_epoch]) > ACC_TIE_TOLERANCE:
        warnings.append(
            f"{label}: best_test_acc {peak_acc:.6f} differs from test_acc[best_epoch={peak_epoch}] "
            f"{test_acc[peak_epoch]:.6f}; the record's best_test_acc is used"
        )
    if selection == "test":
        first_max = int(np.argmax(test_acc))
        if first_max != peak_epoch or abs(test_acc[first_max] - peak_acc) > ACC_TIE_TOLERANCE:
            warnings.append(
                f"{label}: selection 'test' but best_epoch {peak_epoch} is not the first maximum of test_acc "
                f"(epoch {first_max}, {test_acc[first_max]:.6f}); the record's values are used"
            )
    predictions = record.get("test_predictions")
    if predictions is not None:
        predictions = np.asarray(predictions)
        if predictions.ndim != 1 or not np.issubdtype(predictions.dtype, np.integer):
            warnings.append(f"{label}: test_predictions is not a list of class indices; ignored")
            predictions = None
    return ArmRun(
        run=index,
        arm=arm,
        planned=int(record["epochs"]),
        complete=is_complete(results, arm),
        selection=selection,
        train_acc=_array(record["train_acc"], f"arms.{arm}.train_acc", where),
        test_acc=test_acc,
        train_loss=_array(record["train_loss"], f"arms.{arm}.train_loss", where),
        test_loss=_array(record["test_loss"], f"arms.{arm}.test_loss", where),
        val_acc=val_acc,
        peak_acc=peak_acc,
        peak_epoch=peak_epoch,
        confusion=confusion,
        predictions=predictions,
    )


def load_study(workdir: str | os.PathLike) -> Study:
    """Read every run of a study; skip (and record) each results.json that cannot be used."""
    workdir = Path(workdir)
    if not workdir.is_dir():
        raise StudyError(f"--workdir {workdir} does not exist or is not a directory")
    dirs = find_run_dirs(workdir)
    if not dirs:
        raise StudyError(
            f"no run directories in {workdir}: expected {workdir}/run_000/{RESULTS_FILENAME}, run_001/... "
            "Point --workdir at the study directory that training wrote, or make a demo with --demo_runs=100."
        )
    study = Study(workdir, [], {}, {arm: {} for arm in ARMS}, {}, len(dirs))
    for directory in dirs:
        index = int(directory.name.split("_", 1)[1])
        path = directory / RESULTS_FILENAME
        if not path.exists():
            study.skipped.append((str(path), "missing: the run has not written its results yet"))
            continue
        try:
            results = load_results(path)
            names = [str(n) for n in results["class_names"]]
            if not study.class_names:
                study.class_names = names
            elif names != study.class_names:
                raise ResultsError(f"{path}: class_names {names} differ from the other runs' {study.class_names}")
            warnings: list[str] = []
            arms = {arm: _extract_arm(results, arm, index, str(path), len(names), warnings) for arm in results["arms"]}
            labels = results["split"].get("test_labels") if isinstance(results["split"], dict) else None
            labels = None if labels is None else np.asarray(labels)
        except (ResultsError, TypeError, ValueError, KeyError, IndexError, AttributeError) as error:
            reason = str(error) if isinstance(error, ResultsError) else f"{type(error).__name__}: {error}"
            study.skipped.append((str(path), reason.removeprefix(f"{path}: ")))
            continue
        if results.get("run_index") != index:
            warnings.append(
                f"run {index}: results.json says run_index {results.get('run_index')!r}; the directory name is used"
            )
        study.warnings.extend(warnings)
        study.runs[index] = results
        study.paths[index] = path
        if labels is not None:
            study.test_labels[index] = labels
        for arm, record in arms.items():
            if record is not None:
                study.arms[arm][index] = record
    if not study.runs:
        listing = "\n".join(f"  {path}: {reason}" for path, reason in study.skipped)
        raise StudyError(f"no usable results.json under {workdir}; every run was skipped:\n{listing}")
    _check_confusions(study)
    return study


def _check_confusions(study: Study) -> None:
    """One note, not hundreds, when confusion matrices disagree with the recorded peak accuracy.

    Under the paper's protocol the test images are randomly augmented, so re-evaluating the best
    weights (which is where the confusion matrix comes from) gives a slightly different accuracy.
    """
    differences = []
    for arm, records in study.arms.items():
        for index, record in records.items():
            total = record.confusion.sum()
            if total == 0:
                study.warnings.append(f"run {index} {arm}: the confusion matrix is all zeros")
                continue
            differences.append(abs(np.trace(record.confusion) / total - record.peak_acc))
            counts = study.runs[index]["split"].get("test_counts")
            if counts is not None and list(record.confusion.sum(axis=1)) != [int(c) for c in counts]:
                study.warnings.append(
                    f"run {index} {arm}: confusion-matrix row totals {record.confusion.sum(axis=1).tolist()} "
                    f"differ from split.test_counts {list(counts)}"
                )
    mismatched = [d for d in differences if d > ACC_TIE_TOLERANCE]
    if mismatched:
        study.warnings.append(
            f"{len(mismatched)} of {len(differences)} confusion matrices give an accuracy that differs from the "
            f"record's best_test_acc (largest difference {100 * max(mismatched):.2f} points). Expected when the "
            "test set is evaluated with random augmentation (the paper's protocol) and the confusion matrix comes "
            "from a re-evaluation of the best weights; per-class figures use the matrices, peak accuracy the record."
        )


# --------------------------------------------------------------------------- statistics


def mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and sample SD (ddof=1); None where undefined (no values; SD with one value)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return None, None
    mean = float(np.mean(values))
    std = float(np.std(values, ddof=1)) if values.size > 1 else None
    return mean, std


def binomial_two_sided_p(wins: int, losses: int) -> float | None:
    """Exact two-sided sign-test p = min(1, 2 P(X <= min(w, l))), X ~ Bin(w + l, 1/2); None if w + l = 0."""
    n = wins + losses
    if n == 0:
        return None
    tail = sum(math.comb(n, k) for k in range(min(wins, losses) + 1))
    return float(min(Fraction(1), Fraction(2 * tail, 2**n)))


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
    from scipy import stats

    d = np.round(np.asarray(differences, dtype=np.float64), 12)  # float noise must not break ties
    nonzero = d[np.abs(d) > tolerance]
    out = {"n_pairs": int(d.size), "n_nonzero": int(nonzero.size), "statistic": None, "p_value": None}
    if nonzero.size == 0:
        out["method"] = None
        out["note"] = "no non-zero differences: the test is undefined" if d.size else "no pairs"
        return out
    method = "exact" if nonzero.size <= 50 and np.unique(np.abs(nonzero)).size == nonzero.size else "asymptotic"
    result = stats.wilcoxon(nonzero, zero_method="wilcox", alternative="two-sided", method=method)
    out.update(statistic=float(result.statistic), p_value=float(result.pvalue), method=method)
    return out


def bootstrap_mean_ci(values: Sequence[float], resamples: int, seed: int, stream: int, level: float = 0.95):
    """Percentile bootstrap CI of the mean; deterministic in (seed, stream); None with < 2 values."""
    values = np.asarray(values, dtype=np.float64)
    if values.size < 2 or resamples < 1:
        return None
    rng = np.random.default_rng([seed, stream])
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


def _looks_synthetic(obj: Any, path: str = "config.data") -> str | None:
    """The first sign (as 'path: value') that a data description is synthetic, else None."""
    words = ("synthetic", "fake", "demo", "simulated")
    if isinstance(obj, dict):
        for key, value in obj.items():  # explicit flags first, then words in values
            if str(key).lower() in ("synthetic", "fake", "demo", "simulated") and value:
                return f"{path}.{key} = {value!r}"
            if str(key).lower() == "generator" and value:
                return f"{path}.{key} is set (a generated data set)"
        for key, value in obj.items():
            found = _looks_synthetic(value, f"{path}.{key}")
            if found:
                return found
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            found = _looks_synthetic(value, f"{path}[{i}]")
            if found:
                return found
    elif isinstance(obj, str) and any(w in obj.lower() for w in words):
        return f"{path} = {obj!r}"
    return None


def describe_data(study: Study) -> dict:
    """What data the runs say they used (config.data, and a prepared manifest where one is named)."""
    descriptions, synthetic, missing = {}, None, 0
    for index, results in sorted(study.runs.items()):
        config = results.get("config")
        data = config.get("data") if isinstance(config, dict) else None
        if data is None:
            missing += 1
            continue
        descriptions.setdefault(json.dumps(data, sort_keys=True, default=str), []).append(index)
        # The trainer records the prepared data set's manifest (name, source, generator) under "data".
        sign = _looks_synthetic(results.get("data"), "data") or _looks_synthetic(data)
        if sign is None and isinstance(data, dict):
            for key in ("dir", "path", "prepared_dir", "data_dir", "root", "directory"):
                manifest = Path(str(data.get(key, ""))) / "manifest.json" if data.get(key) else None
                if manifest is not None and manifest.is_file():
                    with contextlib.suppress(OSError, json.JSONDecodeError):
                        sign = _looks_synthetic(json.loads(manifest.read_text()), str(manifest))
        if sign is not None and synthetic is None:
            synthetic = f"run {index}: {sign}"
    status = "synthetic" if synthetic else ("unknown" if not descriptions else "recorded")
    return {
        "status": status,
        "synthetic_evidence": synthetic,
        "runs_without_data_config": missing,
        "descriptions": [{"runs": runs, "data": json.loads(text)} for text, runs in descriptions.items()],
    }


def summarize(study: Study, *, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> dict:
    """Every number of summary.json, from a loaded study."""
    k = len(study.class_names)
    records = {arm: [study.arms[arm][r] for r in sorted(study.arms[arm])] for arm in ARMS}
    first = within_block(records["scratch"], BUDGET_EPOCHS)
    paired = paired_values(study)

    def diff_block(name: str, values: np.ndarray, stream: int) -> dict:
        mean, std = mean_std(values)
        return {
            f"{name}_mean": mean,
            f"{name}_std": std,
            f"{name}_ci95": bootstrap_mean_ci(values, resamples, seed, stream),
            f"{name}_min": float(values.min()) if values.size else None,
            f"{name}_max": float(values.max()) if values.size else None,
        }

    paired_out = {"n": len(paired.runs), "n_first_200": len(paired.runs_200)}
    paired_out.update(diff_block("peak_acc_diff", paired.acc, 0))
    paired_out.update(diff_block("peak_epoch_diff", paired.epoch, 1))
    paired_out.update(diff_block("peak_acc_diff_first_200", paired.acc_200, 2))
    paired_out.update(diff_block("peak_epoch_diff_first_200", paired.epoch_200, 3))
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


# --------------------------------------------------------------------------- tables


def _pct(value, digits: int = 1) -> str:
    return "n/a" if value is None else f"{100 * value:.{digits}f}"


def _num(value, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _with_unit(text: str, unit: str) -> str:
    """'54.4' -> '54.4%', but 'n/a' stays bare."""
    return text if text == "n/a" else text + unit


def _p(value) -> str:
    return "undefined" if value is None else f"{value:.3g}"


def class_label(name: str) -> str:
    return PRETTY_CLASS.get(name, name)


@dataclass
class Table:
    number: str
    stem: str
    title: str
    columns: list[str]
    rows: list[list[Any]]  # raw values for the CSV
    cells: list[list[str]]  # formatted for Markdown
    note: str = ""

    def markdown(self) -> str:
        lines = [f"**Table {self.number}.** {self.title}", ""]
        if not self.rows:
            return "\n".join(lines + [self.note or "None."])
        lines.append("| " + " | ".join(self.columns) + " |")
        lines.append("|" + "|".join("---" if i == 0 else "---:" for i in range(len(self.columns))) + "|")
        lines += ["| " + " | ".join(row) + " |" for row in self.cells]
        if self.note:
            lines += ["", self.note]
        return "\n".join(lines)

    def csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(self.columns)
        for row in self.rows:
            writer.writerow(["" if v is None else (f"{v:.6g}" if isinstance(v, float) else v) for v in row])
        return buffer.getvalue()


def _scaled(value, scale: float = 100.0):
    return None if value is None else value * scale


def make_tables(summary: dict) -> list[Table]:
    names = summary["class_names"]
    pre, scr, first = summary["pretrained"], summary["scratch"], summary["scratch_first_200"]

    def planned(block):
        return ("/".join(str(e) for e in block["epochs_planned"]) or "n/a") + " epochs"

    columns = ["Arm, epochs considered", "Runs", "Mean peak test acc (%)", "SD (%)", "Mean peak epoch", "SD (epochs)"]
    rows = [
        [
            "Pretrained, all " + planned(pre),
            pre["n_runs"],
            pre["peak_acc_mean"],
            pre["peak_acc_std"],
            pre["peak_epoch_mean"],
            pre["peak_epoch_std"],
        ],
    ]
    for n in WITHIN_EPOCHS:
        w = pre["peak_acc_within"][str(n)]
        rows.append([f"Pretrained, first {n}", w["n"], w["mean"], w["std"], w["peak_epoch_mean"], w["peak_epoch_std"]])
    rows.append(
        [
            "Scratch, all " + planned(scr),
            scr["n_runs"],
            scr["peak_acc_mean"],
            scr["peak_acc_std"],
            scr["peak_epoch_mean"],
            scr["peak_epoch_std"],
        ]
    )
    rows.append(
        [
            f"Scratch, first {BUDGET_EPOCHS}",
            first["n"],
            first["peak_acc_mean"],
            first["peak_acc_std"],
            first["peak_epoch_mean"],
            first["peak_epoch_std"],
        ]
    )
    csv_rows = [[r[0], r[1], _scaled(r[2]), _scaled(r[3]), r[4], r[5]] for r in rows]
    cells = [[r[0], str(r[1]), _pct(r[2]), _pct(r[3], 2), _num(r[4]), _num(r[5])] for r in rows]
    table1 = Table(
        "1",
        "table1_summary",
        "Peak test accuracy and the (0-based) epoch of the peak, over runs. "
        '"First N" takes each run\'s peak within its first N epochs, over runs with at least N finished '
        "epochs.",
        columns,
        csv_rows,
        cells,
    )

    columns = [
        "Class",
        "Pretrained mean (%)",
        "Pretrained SD (%)",
        "Scratch mean (%)",
        "Scratch SD (%)",
        "Ratio pretrained / scratch",
        "Runs (pretrained / scratch)",
    ]
    rows, cells = [], []
    for i, name in enumerate(names):
        pm, ps, sm, ss = (
            pre["class_acc_mean"][i],
            pre["class_acc_std"][i],
            scr["class_acc_mean"][i],
            scr["class_acc_std"][i],
        )
        ratio = pm / sm if pm is not None and sm else None
        runs = f"{pre['class_acc_n'][i]} / {scr['class_acc_n'][i]}"
        rows.append([class_label(name), _scaled(pm), _scaled(ps), _scaled(sm), _scaled(ss), ratio, runs])
        cells.append([class_label(name), _pct(pm), _pct(ps), _pct(sm), _pct(ss), _num(ratio, 2), runs])
    table2 = Table(
        "2",
        "table2_class_accuracy",
        "Per-class test accuracy (diagonal / row total of each run's "
        "best-epoch confusion matrix), mean and sample SD over runs.",
        columns,
        rows,
        cells,
    )

    columns = [
        "Run",
        "Pretrained epochs",
        "Pretrained peak acc (%)",
        "Pretrained peak epoch",
        "Scratch epochs",
        "Scratch peak acc (%)",
        "Scratch peak epoch",
        "Difference (points)",
    ]
    rows, cells = [], []
    for row in summary["long_runs"]:
        values = [
            row["run"],
            row["pretrained_epochs"],
            _scaled(row["pretrained_peak_acc"]),
            row["pretrained_peak_epoch"],
            row["scratch_epochs"],
            _scaled(row["scratch_peak_acc"]),
            row["scratch_peak_epoch"],
            _scaled(row["peak_acc_diff"]),
        ]
        rows.append(values)
        cells.append(
            [
                str(values[0]),
                str(values[1]),
                _num(values[2]),
                str(values[3]),
                str(values[4]),
                _num(values[5]),
                str(values[6]),
                _num(values[7]),
            ]
        )
    table3 = Table(
        "3",
        "table3_long_runs",
        f"Runs trained longer than the standard "
        f"{STANDARD_EPOCHS['pretrained']} (pretrained) or {STANDARD_EPOCHS['scratch']} (scratch) epochs "
        "(the paper repeated runs 45-49 with 1,000 epochs per arm).",
        columns,
        rows,
        cells,
        note="" if rows else "None: no run in this study has more than the standard epochs.",
    )

    columns = ["Class"] + [f"{m} {a}" for m in ("Precision", "Recall", "F1") for a in ("pretrained", "scratch")]
    rows, cells = [], []
    for i, name in enumerate(names):
        raw, text = [class_label(name)], [class_label(name)]
        for metric in ("precision", "recall", "f1"):
            for block in (pre, scr):
                mean, std = block[f"{metric}_mean"][i], block[f"{metric}_std"][i]
                raw.append(mean)
                text.append("n/a" if mean is None else f"{mean:.3f}" + ("" if std is None else f" ({std:.3f})"))
        rows.append(raw)
        cells.append(text)
    notes = []
    for label, block in (("pretrained", pre), ("scratch", scr)):
        for i, name in enumerate(names):
            if block["precision_undefined_runs"][i]:
                notes.append(
                    f"{class_label(name)} was never predicted in {block['precision_undefined_runs'][i]} "
                    f"of {block['n_runs']} {label} runs: precision is undefined there and left out of its "
                    f"mean (recall and F1 count those runs as 0)."
                )
    table4 = Table(
        "4",
        "table4_precision_recall_f1",
        "Precision, recall and F1 per class from each run's best-epoch confusion matrix, mean (sample SD) over runs.",
        columns,
        rows,
        cells,
        note=" ".join(notes),
    )
    return [table1, table2, table3, table4]


def paired_table(summary: dict) -> Table:
    p = summary["paired"]
    columns = ["Pretrained minus scratch", "Pairs", "Mean", "SD", "95% CI of mean (bootstrap)", "Min", "Max"]
    specs = [
        ("Peak test accuracy, scratch all epochs (points)", "peak_acc_diff", "n", 100.0),
        (
            f"Peak test accuracy, scratch first {BUDGET_EPOCHS} (points)",
            "peak_acc_diff_first_200",
            "n_first_200",
            100.0,
        ),
        ("Peak epoch, scratch all epochs", "peak_epoch_diff", "n", 1.0),
        (f"Peak epoch, scratch first {BUDGET_EPOCHS}", "peak_epoch_diff_first_200", "n_first_200", 1.0),
    ]
    rows, cells = [], []
    for label, key, n_key, scale in specs:
        ci = p[f"{key}_ci95"]
        values = [_scaled(p[f"{key}_{s}"], scale) for s in ("mean", "std", "min", "max")]
        rows.append(
            [
                label,
                p[n_key],
                values[0],
                values[1],
                None if ci is None else f"{ci[0] * scale:.6g}; {ci[1] * scale:.6g}",
                values[2],
                values[3],
            ]
        )
        fmt = (lambda v: _num(v, 2)) if scale == 100.0 else (lambda v: _num(v, 1))
        ci_text = "n/a" if ci is None else f"[{fmt(ci[0] * scale)}, {fmt(ci[1] * scale)}]"
        cells.append([label, str(p[n_key]), fmt(values[0]), fmt(values[1]), ci_text, fmt(values[2]), fmt(values[3])])
    return Table(
        "P",
        "paired_differences",
        "Paired differences over runs that have both arms (epoch differences: negative = pretrained peaks earlier).",
        columns,
        rows,
        cells,
    )


# --------------------------------------------------------------------------- report


def _sentences_tests(summary: dict) -> list[str]:
    s, w, m, p = summary["sign_test"], summary["wilcoxon"], summary["mcnemar"], summary["paired"]
    boot = summary["bootstrap"]
    out = []
    specs = [
        ("peak_acc", "peak test accuracy (scratch over all its epochs)", "had the higher peak", "n"),
        (
            "peak_acc_first_200",
            f"peak test accuracy (scratch limited to its first {BUDGET_EPOCHS} epochs)",
            "had the higher peak",
            "n_first_200",
        ),
        ("peak_epoch", "epoch of the peak (scratch over all its epochs)", "peaked earlier", "n"),
        (
            "peak_epoch_first_200",
            f"epoch of the peak (scratch limited to its first {BUDGET_EPOCHS} epochs)",
            "peaked earlier",
            "n_first_200",
        ),
    ]
    for key, what, verb, _n_key in specs:
        t, wt = s[key], w[key]
        if t["n_pairs"] == 0:
            out.append(f"- **Sign test, {what}:** no paired runs, so no test.")
            continue
        text = (
            f"- **Sign test, {what}:** the pretrained arm {verb} in {t['wins']} of {t['n_pairs']} paired runs "
            f"({t['losses']} losses, {t['ties']} ties dropped); two-sided exact p = {_p(t['p_value'])}"
        )
        text += "." if t["p_value"] is not None else " (every pair tied)."
        if wt["p_value"] is not None:
            text += (
                f" Wilcoxon signed-rank on the differences: W = {wt['statistic']:g}, p = {_p(wt['p_value'])} "
                f"({wt['method']}, {wt['n_nonzero']} non-zero differences)."
            )
        else:
            text += f" Wilcoxon signed-rank: {wt.get('note', 'undefined')}."
        out.append(text)
    for key, label, scale, unit in (
        ("peak_acc_diff", "peak accuracy, scratch all epochs", 100, "points"),
        ("peak_acc_diff_first_200", f"peak accuracy, scratch first {BUDGET_EPOCHS}", 100, "points"),
        ("peak_epoch_diff", "peak epoch, scratch all epochs", 1, "epochs"),
        ("peak_epoch_diff_first_200", f"peak epoch, scratch first {BUDGET_EPOCHS}", 1, "epochs"),
    ):
        mean, ci = p[f"{key}_mean"], p[f"{key}_ci95"]
        if mean is None:
            continue
        ci_text = "undefined with fewer than 2 pairs" if ci is None else f"[{ci[0] * scale:.2f}, {ci[1] * scale:.2f}]"
        out.append(
            f"- **Mean difference (pretrained minus scratch), {label}:** {mean * scale:.2f} {unit}, "
            f"bootstrap 95% CI {ci_text} ({boot['resamples']:,} resamples, seed {boot['seed']})."
        )
    if m["n_runs_tested"]:
        out.append(
            f"- **McNemar's exact test per run** (the two arms' best-epoch test predictions, same test images): "
            f"{m['n_significant']} of {m['n_runs_tested']} runs differ at the {m['alpha']} level, "
            f"{m['n_significant_favour_pretrained']} in favour of pretraining and "
            f"{m['n_significant_favour_scratch']} of scratch"
            + (f"; {m['n_no_discordant']} runs had no discordant predictions" if m["n_no_discordant"] else "")
            + (f"; {len(m['not_tested'])} paired runs lacked saved predictions" if m["not_tested"] else "")
            + "."
        )
    elif m["not_tested"]:
        out.append(
            f"- **McNemar's exact test per run:** not possible; {len(m['not_tested'])} paired runs lack "
            "saved test predictions (arms.*.test_predictions with split.test_labels)."
        )
    return out


def _paper_rows(summary: dict) -> list[list[str]]:
    pre, scr, paired, sign = summary["pretrained"], summary["scratch"], summary["paired"], summary["sign_test"]
    names = summary["class_names"]
    rows = [
        ["Mean peak test accuracy, pretrained", "84.2%", _with_unit(_pct(pre["peak_acc_mean"]), "%")],
        ["Mean peak test accuracy, scratch", "82.4%", _with_unit(_pct(scr["peak_acc_mean"]), "%")],
        [
            "Peak epoch, pretrained: mean (SD)",
            "155 (34)",
            f"{_num(pre['peak_epoch_mean'], 0)} ({_num(pre['peak_epoch_std'], 0)})",
        ],
        [
            "Peak epoch, scratch: mean (SD)",
            "367 (33)",
            f"{_num(scr['peak_epoch_mean'], 0)} ({_num(scr['peak_epoch_std'], 0)})",
        ],
        [
            f"Pretrained advantage, scratch limited to {BUDGET_EPOCHS} epochs",
            "about 4.6 points",
            _with_unit(_num(_scaled(paired["peak_acc_diff_first_200_mean"]), 2), " points"),
        ],
        ["Pretrained, first 20 epochs", "82.0%", _with_unit(_pct(pre["peak_acc_within"]["20"]["mean"]), "%")],
        ["Pretrained, first 50 epochs", "83.1%", _with_unit(_pct(pre["peak_acc_within"]["50"]["mean"]), "%")],
    ]
    if "irr_misc" in names:
        i = names.index("irr_misc")
        a, b = pre["class_acc_mean"][i], scr["class_acc_mean"][i]
        ratio = f"{a / b:.2f}x" if a is not None and b else "n/a"
        rows.append(
            [
                "Irr+Misc class accuracy, pretrained vs scratch",
                "about 2x, pretrained below 50%",
                f"{ratio} ({_with_unit(_pct(a), '%')} vs {_with_unit(_pct(b), '%')})",
            ]
        )
    for key, label in (("peak_acc", "Sign test p, peak accuracy"), ("peak_epoch", "Sign test p, peak epoch")):
        t = sign[key]
        rows.append(
            [label + " (wins of pairs)", "1.58e-30 (100 of 100)", f"{_p(t['p_value'])} ({t['wins']} of {t['n_pairs']})"]
        )
    diffs = [r["peak_acc_diff"] for r in summary["long_runs"] if r["peak_acc_diff"] is not None]
    rows.append(
        [
            "Long runs (1,000 epochs, runs 45-49): pretrained ahead by",
            "0.5-1.0 points",
            f"{min(diffs) * 100:.2f} to {max(diffs) * 100:.2f} points ({_runs(len(diffs))})"
            if diffs
            else "no such runs",
        ]
    )
    return rows


def _data_paragraph(summary: dict) -> str:
    data = summary["data"]
    if data["status"] == "synthetic":
        return (
            "**The data are synthetic** (" + data["synthetic_evidence"] + "). Every number below describes "
            "simulated or generated data, not the Nair & Abraham (2010) galaxies: it is **not comparable with "
            "the paper's results**, and the side-by-side table only shows that the pipeline runs."
        )
    if data["status"] == "unknown":
        return (
            "The results record no data set (no `config.data`). The comparison with the paper holds only if "
            "the runs used the 14,034 Nair & Abraham (2010) images under the paper's protocol."
        )
    shown = "; ".join(
        f"runs {_ranges(d['runs'])}: `{json.dumps(d['data'], sort_keys=True)}`" for d in data["descriptions"]
    )
    text = f"Data set as recorded in `config.data`: {shown}."
    if len(data["descriptions"]) > 1:
        text += " **The runs do not all use the same data description.**"
    if data["runs_without_data_config"]:
        text += f" {data['runs_without_data_config']} runs record no data set."
    return text + (
        " Compare with the paper only if this is the Nair & Abraham (2010) catalogue under the paper's protocol."
    )


def _runs(n: int) -> str:
    return f"{n} run" if n == 1 else f"{n} runs"


def _ranges(values: Sequence[int]) -> str:
    """[0,1,2,5] -> '0-2, 5'."""
    values = sorted(values)
    parts, start = [], None
    for i, v in enumerate(values):
        if start is None:
            start = v
        if i + 1 == len(values) or values[i + 1] != v + 1:
            parts.append(str(start) if start == v else f"{start}-{v}")
            start = None
    return ", ".join(parts) or "none"


def render_report(
    summary: dict, tables: list[Table], paired: Table, figures: list[tuple[str, str, str]], example_run: int | None
) -> str:
    pre, scr = summary["pretrained"], summary["scratch"]
    lines = ["# Study analysis: pretrained vs from-scratch AlexNet", ""]
    lines += [
        f"Made by `python -m alexnet_jax.analyze` from `{summary['workdir']}`. "
        "Definitions: `docs/analysis.md`. All numbers are also in `summary.json`.",
        "",
    ]
    lines += ["## Data and runs", "", _data_paragraph(summary), ""]
    both = summary["paired"]["n"]
    lines.append(
        f"Found {summary['run_dirs_found']} run director{'y' if summary['run_dirs_found'] == 1 else 'ies'} and "
        f"read the results of {_runs(summary['num_runs'])} (run numbers {_ranges(summary['runs'])}). Arms: pretrained "
        f"in {_runs(pre['n_runs'])} ({', '.join(map(str, pre['epochs_planned'])) or 'no'} epochs planned), scratch "
        f"in {_runs(scr['n_runs'])} ({', '.join(map(str, scr['epochs_planned'])) or 'no'} epochs planned); both "
        f"arms in {_runs(both)}, which the paired comparisons use."
    )
    for arm, block in (("pretrained", pre), ("scratch", scr)):
        if len(block["epochs_planned"]) > 1:
            lines.append(
                f"\n**Mixed budgets:** the {arm} arm's runs plan different numbers of epochs "
                f"({block['epochs_planned']}); its peak statistics mix them."
            )
        if "val" in block["selection"]:
            lines.append(
                f"\nThe {arm} arm picks its best epoch on a validation split in some runs "
                f"(selection {block['selection']}); their peak accuracy is the test accuracy at that epoch."
            )
    lines.append("")
    incomplete = [(arm, r) for arm in ARMS for r in summary[arm]["incomplete_runs"]]
    if incomplete:
        lines += [
            "**Unfinished runs** (`complete: false`): their finished epochs are included, so their peaks may "
            "still change: " + ", ".join(f"run {r} {arm}" for arm, r in incomplete) + ".",
            "",
        ]
    if summary["skipped"]:
        count = len(summary["skipped"])
        lines += [f"**Skipped {count} results file{'s' if count > 1 else ''}** (left out of every number):", ""]
        lines += [f"- `{s['path']}`: {s['reason']}" for s in summary["skipped"]] + [""]
    if summary["warnings"]:
        lines += ["**Warnings:**", ""] + [f"- {w}" for w in summary["warnings"]] + [""]
    short = []
    for arm in ARMS:
        for n, w in summary[arm]["peak_acc_within"].items():
            if w["n_too_short"]:
                short.append(f"{arm} first {n} epochs: {_runs(w['n'])} ({w['n_too_short']} too short)")
    if summary["scratch_first_200"]["n_too_short"]:
        short.append(
            f"scratch first {BUDGET_EPOCHS} epochs: {_runs(summary['scratch_first_200']['n'])} "
            f"({summary['scratch_first_200']['n_too_short']} too short)"
        )
    if short:
        lines += [
            "Peaks within the first N epochs use only runs with at least N finished epochs: " + "; ".join(short) + ".",
            "",
        ]
    lines += [
        "Standard deviations are sample SDs (ddof = 1); with fewer than two runs they are undefined and "
        "shown as n/a (null in summary.json). Epochs are counted from 0, as in the original code.",
        "",
    ]

    lines += ["## Paper and this study side by side", ""]
    if summary["data"]["status"] == "synthetic":
        lines += ["*Synthetic data: the right-hand column is not comparable with the paper.*", ""]
    lines += ["| Quantity | Paper | This study |", "|---|---:|---:|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in _paper_rows(summary)]
    lines += [""]

    lines += ["## Statistical tests", ""]
    lines += [
        "A win is a pretrained peak accuracy higher than scratch's (or a pretrained peak reached at an earlier "
        "epoch); ties are dropped from the sign test and counted. The paper's tests compare the pretrained "
        f"arm's peak with the scratch arm's over all its epochs; the first-{BUDGET_EPOCHS} variants are "
        "added here.",
        "",
    ]
    lines += _sentences_tests(summary) + [""]

    lines += ["## Tables", ""]
    for table in tables[:1] + [paired] + tables[1:]:
        lines += [table.markdown(), "", f"CSV: `{table.stem}.csv`", ""]

    lines += ["## Figures", ""]
    for name, filename, caption in figures:
        lines += [f"![{name}]({filename})", "", f"**{name}.** {caption}", ""]
    if example_run is not None:
        lines += [f"Figures 7 and 10 show run {example_run}.", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------- writing


def _json_ready(obj: Any) -> Any:
    """numpy -> Python; NaN -> None (only where documented as undefined; counts sit beside them)."""
    if isinstance(obj, dict):
        return {str(k): _json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_ready(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _json_ready(obj.tolist())
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return None if not math.isfinite(obj) else float(obj)
    return obj


def analyze(
    workdir: str | os.PathLike,
    outdir: str | os.PathLike | None = None,
    *,
    example_run: int | None = None,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
    figures: bool = True,
    log: Callable[[str], None] = print,
) -> dict:
    """Load the study under workdir, write summary.json, tables, figures and report.md; return the summary."""
    study = load_study(workdir)
    for path, reason in study.skipped:
        log(f"SKIPPED {path}: {reason}")
    for warning in study.warnings:
        log(f"WARNING {warning}")
    if example_run is None:
        example_run = min(study.runs)
    elif example_run not in study.runs:
        raise StudyError(
            f"--example_run={example_run}: no usable results for that run; runs read: {_ranges(sorted(study.runs))}"
        )
    outdir = Path(outdir) if outdir is not None else Path(workdir) / "analysis"
    outdir.mkdir(parents=True, exist_ok=True)
    summary = _json_ready(summarize(study, resamples=resamples, seed=seed))
    summary["example_run"] = example_run
    write_json_atomic(outdir / "summary.json", summary)
    tables = make_tables(summary)
    paired = paired_table(summary)
    for table in tables + [paired]:
        write_text_atomic(outdir / f"{table.stem}.csv", table.csv())
        write_text_atomic(outdir / f"{table.stem}.md", table.markdown() + "\n")
    figure_list: list[tuple[str, str, str]] = []
    if figures:
        from alexnet_jax import figures as figs

        figure_list = figs.make_all(outdir, study, summary, paired_values(study), example_run)
    write_text_atomic(outdir / "report.md", render_report(summary, tables, paired, figure_list, example_run))
    log(
        f"wrote {outdir}: summary.json, report.md, {len(tables) + 1} tables, {len(figure_list)} figures "
        f"({summary['num_runs']} runs; pretrained {summary['arms_found']['pretrained']}, "
        f"scratch {summary['arms_found']['scratch']}; skipped {len(summary['skipped'])})"
    )
    return summary


# --------------------------------------------------------------------------- demo study

# The paper's classes and catalogue totals (alexnet_jax.data.labels; a test checks they agree).
# Repeated here so that the analysis never imports the data package (pandas, TensorFlow builders).
DEMO_CLASS_NAMES = ("elliptical", "lenticular", "spiral", "irr_misc")
DEMO_CLASS_TOTALS = (2738, 3215, 7708, 373)
DEMO_NUM_EXAMPLES = 14034


def make_demo_study(
    workdir: str | os.PathLike,
    num_runs: int = 100,
    epochs: tuple[int, int] = (200, 400),
    seed: int = 0,
    test_counts: Sequence[int] = (386, 485, 1113, 50),
    save_predictions: bool = True,
) -> list[Path]:
    """Write a SYNTHETIC study: made-up curves shaped like the paper's, for demos and tests.

    No images and no training are involved; every number is simulated, and config.data says so
    (`synthetic: true`), so the report marks the study as not comparable with the paper. Refuses
    a workdir that already holds run directories, so real results are never overwritten.
    """
    workdir = Path(workdir)
    if find_run_dirs(workdir):
        raise FileExistsError(f"{workdir} already holds run directories; make a demo study in an empty directory")
    counts = np.asarray(test_counts)
    num_test = int(counts.sum())
    # Mean per-class accuracy at the best epoch (paper-like: Irr+Misc about twice as good pretrained).
    class_acc = {"pretrained": np.array([0.88, 0.62, 0.94, 0.40]), "scratch": np.array([0.86, 0.60, 0.93, 0.21])}
    paths = []
    for run in range(num_runs):
        rng = np.random.default_rng([seed, run])
        labels = rng.permutation(np.repeat(np.arange(len(counts)), counts))
        test_indices = np.sort(rng.choice(DEMO_NUM_EXAMPLES, num_test, replace=False))
        arms = {}
        for arm, planned in zip(ARMS, epochs, strict=True):
            t = np.arange(planned, dtype=np.float64)
            if arm == "pretrained":
                level = rng.normal(0.842, 0.006)
                clean = level - 0.07 * np.exp(-t / 6) - 0.02 * np.exp(-t / 80)
                train = 0.97 - 0.22 * np.exp(-t / 25)
            else:
                level = rng.normal(0.824, 0.009)
                onset = rng.normal(50, 8)
                rise = 1 / (1 + np.exp(-(t - onset - 45) / 18))
                floor = counts[2] / num_test  # predicting "spiral" for everything
                drift = 0.05 * np.minimum(t / 400, 1)  # still improving at 400 epochs, as in the paper
                clean = floor + (level - 0.05 - floor) * rise + drift
                train = floor + (level - 0.045 - floor) * rise + 1.2 * drift
            correct = np.clip(np.round((clean + rng.normal(0, 0.004, planned)) * num_test), 0, num_test).astype(int)
            test_acc = correct / num_test
            best = int(np.argmax(test_acc))
            predictions = _demo_predictions(rng, labels, class_acc[arm], int(correct[best]))
            confusion = np.zeros((len(counts), len(counts)), dtype=int)
            np.add.at(confusion, (labels, predictions), 1)
            train_acc = np.clip(train + rng.normal(0, 0.003, planned), 0, 1)
            arms[arm] = {
                "epochs": planned,
                "complete": True,
                "train_acc": train_acc.tolist(),
                "test_acc": test_acc.tolist(),
                "train_loss": (1.6 * (1 - train_acc) + 0.05).tolist(),
                "test_loss": (1.5 * (1 - test_acc) + 0.2 + (0.001 * t if arm == "pretrained" else 0 * t)).tolist(),
                "selection": "test",
                "best_epoch": best,
                "best_test_acc": float(test_acc[best]),
                "confusion_matrix": confusion.tolist(),
                **({"test_predictions": predictions.tolist()} if save_predictions else {}),
                "wall_time_s": 0.0,
            }
        results = {
            "schema": SCHEMA,
            "run_index": run,
            "class_names": list(DEMO_CLASS_NAMES),
            "split": {
                "protocol": "demo",
                "train_counts": (np.asarray(DEMO_CLASS_TOTALS) - counts).tolist(),
                "test_counts": counts.tolist(),
                "test_indices": test_indices.tolist(),
                "test_labels": labels.tolist(),
            },
            "arms": arms,
            "config": {
                "data": {
                    "name": "demo",
                    "synthetic": True,
                    "source": "alexnet_jax.analyze.make_demo_study: simulated numbers, no images, no training",
                },
                "demo_seed": seed,
            },
        }
        path = run_dir(workdir, run) / RESULTS_FILENAME
        write_json_atomic(path, results)
        paths.append(path)
    return paths


def _demo_predictions(rng: np.random.Generator, labels: np.ndarray, accuracy: np.ndarray, total_correct: int):
    """Predictions with exactly total_correct right answers; mistakes go to a neighbouring class."""
    k = len(accuracy)
    counts = np.bincount(labels, minlength=k)
    target = np.clip(np.round(counts * np.clip(accuracy + rng.normal(0, 0.03, k), 0, 1)), 0, counts).astype(int)
    while target.sum() != total_correct:
        step = 1 if target.sum() < total_correct else -1
        movable = [c for c in range(k) if 0 <= target[c] + step <= counts[c]]
        big = [c for c in movable if counts[c] >= 0.1 * counts.sum()]  # leave the rare class alone
        for c in big or movable:
            if target.sum() != total_correct:
                target[c] += step
    predictions = labels.copy()
    for c in range(k):
        members = rng.permutation(np.flatnonzero(labels == c))[: counts[c] - target[c]]
        neighbours = [n for n in (c - 1, c + 1) if 0 <= n < k]
        predictions[members] = rng.choice(neighbours, size=len(members))
    return predictions


# --------------------------------------------------------------------------- CLI


def main(argv: Sequence[str]) -> None:
    from alexnet_jax.cli import quiet_library_logs

    quiet_library_logs()
    from absl import flags

    del argv
    FLAGS = flags.FLAGS
    workdir = Path(FLAGS.workdir)
    if FLAGS.demo_runs:
        started = time.perf_counter()
        make_demo_study(workdir, FLAGS.demo_runs, seed=FLAGS.seed)
        print(
            f"made a SYNTHETIC demo study of {FLAGS.demo_runs} runs in {workdir} "
            f"({time.perf_counter() - started:.1f} s)"
        )
    started = time.perf_counter()
    try:
        analyze(
            workdir,
            FLAGS.outdir,
            example_run=FLAGS.example_run,
            resamples=FLAGS.bootstrap_resamples,
            seed=FLAGS.seed,
            figures=FLAGS.figures,
        )
    except StudyError as error:
        raise SystemExit(f"error: {error}") from None
    print(f"analysis took {time.perf_counter() - started:.1f} s")


def _define_flags() -> None:
    from absl import flags

    flags.DEFINE_string("workdir", None, "Study directory holding run_NNN/results.json.", required=True)
    flags.DEFINE_string("outdir", None, "Where to write; default WORKDIR/analysis.")
    flags.DEFINE_integer("example_run", None, "Run shown in Figs 7 and 10; default the first run found.")
    flags.DEFINE_integer("bootstrap_resamples", BOOTSTRAP_RESAMPLES, "Bootstrap resamples for the 95% CIs.")
    flags.DEFINE_integer("seed", 0, "Seed of the bootstrap (and of --demo_runs).")
    flags.DEFINE_bool("figures", True, "Draw the figures (off: summary, tables and report only).")
    flags.DEFINE_integer(
        "demo_runs",
        0,
        "First write a SYNTHETIC demo study of this many runs (200/400 epochs) "
        "into the empty --workdir, then analyse it.",
    )


if __name__ == "__main__":
    from absl import app

    _define_flags()
    app.run(main)
