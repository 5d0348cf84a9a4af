"""The cost of accuracy: what each arm reaches for a given number of epochs, images or seconds.

The paper reports the saving of pretraining only as the epoch of the peak. Here: mean test-accuracy
curves with bootstrap bands against epochs, images seen and wall seconds; accuracy at fixed epoch
budgets; the epochs and seconds needed to reach a target accuracy; and how many times sooner an
arm reaches the reference arm's peak. Runs that never reach a target are counted, never dropped
silently: see `time_block`. Definitions: docs/analysis.md.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from alexnet_jax.analysis.stats import bootstrap_mean_ci, bootstrap_rng, mean_std
from alexnet_jax.analysis.study import ArmRun, Study

BUDGETS = (10, 20, 50, 100, 200)  # epochs
OWN_PEAK_SHARE = 0.99  # "close enough to the run's own peak"
LEVEL = 0.95
COST_STREAM = 2  # bootstrap streams (COST_STREAM, arm, quantity)
NEVER = np.inf  # a complete run that never reached the target: later than any run that did


def _interval(draws: np.ndarray, axis: int | None = None) -> np.ndarray:
    """Percentile interval by the inverted CDF: no interpolation, so infinite draws stay infinite."""
    return np.quantile(draws, [(1 - LEVEL) / 2, (1 + LEVEL) / 2], axis=axis, method="inverted_cdf")


def cumulative_seconds(record: ArmRun) -> np.ndarray | None:
    """Wall seconds from the arm's start to the end of each epoch (None without timings)."""
    return None if record.epoch_seconds is None else np.cumsum(record.epoch_seconds)


def _stack(curves: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Runs of any length as (values, present) matrices, one row a run, zero-padded."""
    length = max(len(c) for c in curves)
    values, present = np.zeros((len(curves), length)), np.zeros((len(curves), length))
    for i, curve in enumerate(curves):
        values[i, : len(curve)], present[i, : len(curve)] = curve, 1.0
    return values, present


def ragged_mean(curves: Sequence[np.ndarray], length: int) -> np.ndarray:
    """Mean at each epoch over the runs that reached it; NaN where none did (or no curves)."""
    out = np.full(length, np.nan)
    if curves:
        values, present = _stack(curves)
        out[: values.shape[1]] = values.sum(axis=0) / present.sum(axis=0)
    return out


def mean_band(curves: Sequence[np.ndarray], resamples: int, seed: int, stream) -> dict[str, np.ndarray]:
    """Mean over runs at each epoch (runs of any length) and its percentile bootstrap band.

    Runs are resampled with replacement; a resample's mean at an epoch uses the resampled runs that
    reached that epoch. The band is NaN where fewer than two runs reached the epoch.
    """
    values, present = _stack(curves)
    n_at, length = present.sum(axis=0), values.shape[1]
    out = {"mean": values.sum(axis=0) / n_at, "n": n_at, "low": np.full(length, np.nan)}
    out["high"] = out["low"].copy()
    n = len(curves)
    if n < 2 or resamples < 1:
        return out
    draws = bootstrap_rng(seed, stream).integers(0, n, size=(resamples, n))
    weights = np.bincount((np.arange(resamples)[:, None] * n + draws).ravel(), minlength=resamples * n)
    weights = weights.reshape(resamples, n).astype(np.float64)  # how often each run was drawn
    with np.errstate(divide="ignore", invalid="ignore"):
        means = (weights @ values) / (weights @ present)
    enough = n_at >= 2
    out["low"][enough], out["high"][enough] = np.nanquantile(means[:, enough], [(1 - LEVEL) / 2, (1 + LEVEL) / 2], 0)
    return out


def cost_curves(study: Study, arms: Sequence[str], resamples: int, seed: int) -> dict[str, dict[str, np.ndarray]]:
    """Per arm and epoch: mean test accuracy with its band, mean images seen and mean wall seconds so far."""
    out = {}
    for index, arm in enumerate(arms):
        records = study.records(arm)
        curve = mean_band([r.test_acc for r in records], resamples, seed, (COST_STREAM, index, 0))
        length = len(curve["mean"])
        epochs_trained = np.arange(1, length + 1, dtype=np.float64)
        images = [epochs_trained[: r.done] * r.images_per_epoch for r in records if r.images_per_epoch]
        seconds = [s for s in map(cumulative_seconds, records) if s is not None]
        curve["images_seen"] = ragged_mean(images, length)
        curve["seconds"] = ragged_mean(seconds, length)
        curve["epochs_trained"] = epochs_trained
        out[arm] = curve
    return out


def budget_block(records: Sequence[ArmRun], resamples: int, seed: int, stream: tuple[int, int]) -> dict:
    """Test accuracy that each run's own selection rule picks within its first N epochs, per budget N.

    "full" is the whole run (the record's peak). Runs with fewer than N finished epochs cannot say
    what N epochs give: they are left out and counted in n_too_short.
    """
    out = {}
    for k, budget in enumerate((*BUDGETS, "full")):
        if budget == "full":
            values = [r.peak_acc for r in records]
        else:
            values = [r.peak_within(budget)[1] for r in records if r.done >= budget]
        mean, std = mean_std(values)
        out[str(budget)] = {
            "n": len(values),
            "n_too_short": len(records) - len(values),
            "mean": mean,
            "std": std,
            "ci95": bootstrap_mean_ci(values, resamples, seed, (*stream, k)),
        }
    return out


def _median_ci(values: np.ndarray, resamples: int, seed: int, stream) -> list[float] | None:
    """Percentile bootstrap CI of the median; a bound is infinite when that many resamples never reach."""
    if values.size < 2 or resamples < 1:
        return None
    draws = values[bootstrap_rng(seed, stream).integers(0, values.size, size=(resamples, values.size))]
    return [float(v) for v in _interval(np.median(draws, axis=1))]


def _summary(values: list[float], resamples: int, seed: int, stream) -> dict:
    """Median (NEVER counts as later than every reach), its CI, and the mean of the runs that reached."""
    values = np.asarray(values, dtype=np.float64)
    reached = values[np.isfinite(values)]
    return {
        "median": float(np.median(values)) if values.size else None,
        "median_ci95": _median_ci(values, resamples, seed, stream),
        "mean_of_reached": mean_std(reached)[0],
    }


def time_block(records: Sequence[ArmRun], targets: Sequence[float], resamples: int, seed: int, stream) -> dict:
    """Epochs and seconds until each run's test accuracy first reaches its target.

    A complete run that never reaches it counts as never (NEVER, later than every run that did), so
    the median is finite only when more than half the counted runs reached it. An unfinished run
    that has not reached it yet may still do so: it is left out and counted as undetermined.
    """
    epochs, seconds, undetermined = [], [], 0
    for record, target in zip(records, targets, strict=True):
        reached = record.first_reaching(target)
        if reached is None and not record.complete:
            undetermined += 1
            continue
        epochs.append(NEVER if reached is None else reached)
        elapsed = cumulative_seconds(record)
        if elapsed is not None:
            seconds.append(NEVER if reached is None else float(elapsed[reached - 1]))
    n_reached = int(np.isfinite(epochs).sum())
    return {
        "n_runs": len(records),
        "n_counted": len(epochs),
        "n_reached": n_reached,
        "n_never": len(epochs) - n_reached,
        "n_undetermined": undetermined,
        "epochs": _summary(epochs, resamples, seed, (*stream, 0)),
        "n_timed": len(seconds),
        "seconds": _summary(seconds, resamples, seed, (*stream, 1)),
    }


def _ratio_ci(reference: np.ndarray, arm: np.ndarray, resamples: int, seed: int, stream) -> list[float] | None:
    """Bootstrap CI of median(reference) / median(arm), the runs resampled as pairs; 0 where arm never reaches."""
    if reference.size < 2 or resamples < 1:
        return None
    draws = bootstrap_rng(seed, stream).integers(0, reference.size, size=(resamples, reference.size))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.median(reference[draws], axis=1) / np.median(arm[draws], axis=1)
    return [float(v) for v in _interval(ratios)]


def speedup_block(study: Study, arm: str, reference: str, resamples: int, seed: int, stream) -> dict:
    """How many times sooner `arm` reaches, in each run, the accuracy at which the reference arm peaks.

    Per run with both arms: the reference needs its peak epoch + 1 epochs to reach its own peak; the
    arm needs the epochs until its test accuracy first reaches that same accuracy (never: NEVER; not
    yet, in an unfinished run: left out). Speed-up = median reference epochs / median arm epochs, and
    the same in measured seconds over the runs where both arms have timings.
    """
    first, ref = study.arms[arm], study.arms[reference]
    epochs, seconds, undetermined = [], [], 0
    for run in sorted(set(first) & set(ref)):
        mine, theirs = first[run], ref[run]
        reached = mine.first_reaching(theirs.peak_acc)
        if reached is None and not mine.complete:
            undetermined += 1
            continue
        epochs.append((theirs.peak_epoch + 1, NEVER if reached is None else reached))
        mine_s, theirs_s = cumulative_seconds(mine), cumulative_seconds(theirs)
        if mine_s is not None and theirs_s is not None:
            seconds.append((theirs_s[theirs.peak_epoch], NEVER if reached is None else mine_s[reached - 1]))
    out = {"n_pairs": len(epochs), "n_undetermined": undetermined}
    for k, (unit, pairs) in enumerate((("epochs", epochs), ("seconds", seconds))):
        both = np.asarray(pairs, dtype=np.float64).reshape(-1, 2)
        ref_median = float(np.median(both[:, 0])) if len(both) else None
        arm_median = float(np.median(both[:, 1])) if len(both) else None
        finite = arm_median is not None and np.isfinite(arm_median)
        out[unit] = {
            "n": len(both),
            "n_never": int(np.sum(~np.isfinite(both[:, 1]))),
            "reference_median": ref_median,
            "arm_median": arm_median,
            "speedup": ref_median / arm_median if finite and arm_median > 0 else None,
            "speedup_ci95": _ratio_ci(both[:, 0], both[:, 1], resamples, seed, (*stream, k)),
            "saved_median": ref_median - arm_median if finite else None,
        }
    return out


def summarize_cost(
    study: Study, arms: Sequence[str], reference: str | None, reference_peak: float | None, resamples: int, seed: int
) -> dict:
    """summary.json's "cost": budgets, time to accuracy, speed-ups against the reference, timing sources.

    reference_peak: the reference arm's mean peak, as the engine summarised it.
    """
    out: dict = {
        "budgets": list(BUDGETS),
        "targets": {"reference_peak": reference_peak, "own_peak_share": OWN_PEAK_SHARE},
        "band": {"level": LEVEL, "resamples": resamples, "method": "percentile, runs resampled"},
        "arms": {},
    }
    for index, arm in enumerate(arms):
        records = study.records(arm)
        sources: dict[str, int] = {}
        for record in records:
            sources[record.seconds_source or "none"] = sources.get(record.seconds_source or "none", 0) + 1
        block = {
            "seconds_source": sources,
            "budget_accuracy": budget_block(records, resamples, seed, (COST_STREAM, index, 1)),
            "time_to_own_peak_99": time_block(
                records, [OWN_PEAK_SHARE * r.peak_acc for r in records], resamples, seed, (COST_STREAM, index, 2)
            ),
        }
        if reference_peak is not None:
            block["time_to_reference_peak"] = time_block(
                records, [reference_peak] * len(records), resamples, seed, (COST_STREAM, index, 3)
            )
        if reference is not None and arm != reference:
            stream = (COST_STREAM, index, 4)
            block["speedup_vs_reference"] = speedup_block(study, arm, reference, resamples, seed, stream)
        out["arms"][arm] = block
    return out
