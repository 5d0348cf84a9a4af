"""Loading a study: every run_NNN/results.json of a directory, checked and reduced to what the analysis needs.

A file that cannot be used is skipped and recorded, never fatal: a study in progress holds
half-written and missing results, and the report lists each case. Runs that classify different
classes (or the same in another order) are another matter: their numbers cannot be pooled, so such
a study is refused.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from alexnet_jax.errors import ResultsError, StudyError
from alexnet_jax.results import (
    ARMS,
    RESULTS_FILENAME,
    arm_spec,
    declared_arms,
    find_run_dirs,
    is_complete,
    load_results,
)

ACC_TIE_TOLERANCE = 1e-9  # accuracies are counts / test size (steps of ~5e-4); closer is a tie


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
    spec: dict | None = None  # init, finetune, model; None where a version-2 file records none
    images_per_epoch: int | None = None  # train_images_per_epoch, else the split's train_counts
    epoch_seconds: np.ndarray | None = None  # wall seconds of each finished epoch
    seconds_source: str | None = None  # "epoch_seconds", "wall_time_s spread evenly", or None: no timing
    trainable_params: int | None = None
    total_params: int | None = None

    @property
    def done(self) -> int:
        return len(self.test_acc)

    def first_reaching(self, target: float) -> int | None:
        """Epochs trained (0-based epoch + 1) when test accuracy first reaches target; None if it never does."""
        reached = np.flatnonzero(self.test_acc >= target - ACC_TIE_TOLERANCE)
        return int(reached[0]) + 1 if reached.size else None

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
    """The runs that could be read, and what was skipped or looked wrong on the way."""

    workdir: Path
    class_names: list[str]
    runs: dict[int, dict]  # run index -> parsed results.json
    arms: dict[str, dict[int, ArmRun]]  # arm -> run index -> ArmRun
    paths: dict[int, Path]
    run_dirs_found: int
    test_labels: dict[int, np.ndarray] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    warnings: list[str] = field(default_factory=list)
    declared: dict[int, list[str]] = field(default_factory=dict)  # run -> the arms its config declares

    @property
    def arm_names(self) -> list[str]:
        """Arms with at least one usable run: the paper's two first, then the others as first declared or found."""
        order = dict.fromkeys(ARMS)
        for index in sorted(self.runs):
            order.update(dict.fromkeys(self.declared.get(index, []) + list(self.runs[index]["arms"])))
        return [arm for arm in order if self.arms.get(arm)]

    def records(self, arm: str) -> list[ArmRun]:
        """The arm's runs, in run order (none for an arm not in the study)."""
        return [self.arms[arm][r] for r in sorted(self.arms.get(arm, {}))]


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
    seconds, seconds_source = record.get("epoch_seconds"), "epoch_seconds"
    if seconds is None and record["wall_time_s"] > 0:
        seconds = [record["wall_time_s"] / len(test_acc)] * len(test_acc)
        seconds_source = "wall_time_s spread evenly"
    train_counts = results["split"].get("train_counts") if isinstance(results["split"], dict) else None
    images = record.get("train_images_per_epoch", None if train_counts is None else int(sum(train_counts)))
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
        spec=arm_spec(results, arm),
        images_per_epoch=images,
        epoch_seconds=None if seconds is None else _array(seconds, f"arms.{arm}.epoch_seconds", where),
        seconds_source=None if seconds is None else seconds_source,
        trainable_params=record.get("trainable_params"),
        total_params=record.get("total_params"),
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
            names = list(results["class_names"])
            warnings: list[str] = []
            arms = {arm: _extract_arm(results, arm, index, str(path), len(names), warnings) for arm in results["arms"]}
            labels = results["split"].get("test_labels") if isinstance(results["split"], dict) else None
            labels = None if labels is None else np.asarray(labels)
        except (ResultsError, TypeError, ValueError, KeyError, IndexError, AttributeError) as error:
            reason = str(error) if isinstance(error, ResultsError) else f"{type(error).__name__}: {error}"
            study.skipped.append((str(path), reason.removeprefix(f"{path}: ")))
            continue
        _check_classes(study, path, names)
        if results.get("run_index") != index:
            warnings.append(
                f"run {index}: results.json says run_index {results.get('run_index')!r}; the directory name is used"
            )
        study.warnings.extend(warnings)
        study.runs[index] = results
        study.paths[index] = path
        study.declared[index] = declared_arms(results)
        if labels is not None:
            study.test_labels[index] = labels
        for arm, record in arms.items():
            if record is not None:
                study.arms.setdefault(arm, {})[index] = record
    if not study.runs:
        listing = "\n".join(f"  {path}: {reason}" for path, reason in study.skipped)
        raise StudyError(f"no usable results.json under {workdir}; every run was skipped:\n{listing}")
    _check_confusions(study)
    _check_specs(study)
    return study


def _check_classes(study: Study, path: Path, names: list[str]) -> None:
    """Every run of a study classifies the same classes in the same order; the first usable run sets them."""
    if not study.class_names:
        study.class_names = names
    elif names != study.class_names:
        first = next(iter(study.paths.values()))
        raise ResultsError(
            f"{path} classifies {names} but {first} classifies {study.class_names}: one study compares runs on "
            "one set of classes in one order; analyse each set of classes in its own --workdir"
        )


def _check_specs(study: Study) -> None:
    """An arm is one treatment: warn when its runs record different specs."""
    for arm in study.arm_names:
        specs = {json.dumps(r.spec, sort_keys=True) for r in study.records(arm)}
        if len(specs) > 1:
            study.warnings.append(f"arm {arm}: its runs record different specs ({'; '.join(sorted(specs))})")


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


def _looks_synthetic(obj: Any, path: str = "config.data") -> str | None:
    """The first sign (as 'path: value') that a data description is synthetic, else None."""
    words = ("synthetic", "fake", "demo", "simulated")
    if isinstance(obj, dict):
        for key, value in obj.items():  # explicit flags first, then words in values
            if str(key).lower() in words and value:
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


def describe_starting_weights(study: Study) -> dict[str, list[dict]]:
    """{arm: the distinct starting points its runs record (results.json arms.ARM.init and
    input_normalization), each with the runs that used it}: which arm was really pretrained, from what."""
    described: dict[str, dict[str, list[int]]] = {}
    for index, results in sorted(study.runs.items()):
        for arm, record in (results.get("arms") or {}).items():
            if not isinstance(record, dict):
                continue
            init = record.get("init") if isinstance(record.get("init"), dict) else {}
            source = init.get("source") if isinstance(init.get("source"), dict) else {}
            key = {
                "kind": init.get("kind"),
                "source": {k: source[k] for k in ("kind", "package", "package_version", "file") if k in source},
                "source_sha256": init.get("source_sha256"),
                "input_normalization": (record.get("input_normalization") or {}).get("name"),
            }
            described.setdefault(arm, {}).setdefault(json.dumps(key, sort_keys=True), []).append(index)
    return {
        arm: [{"runs": runs, **json.loads(text)} for text, runs in by_key.items()] for arm, by_key in described.items()
    }


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
