"""A SYNTHETIC demo study: results.json files with made-up curves shaped like the paper's.

For trying the analysis and for its tests: no images, no training, and `config.data` says
`synthetic: true`, so every report made from a demo says it is not comparable with the paper.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from alexnet_jax.analysis import paper
from alexnet_jax.results import ARMS, RESULTS_FILENAME, SCHEMA, find_run_dirs, run_dir
from alexnet_jax.toolbox import write_json_atomic

# The paper's classes and catalogue totals, from analysis.paper rather than alexnet_jax.data.labels,
# so that the analysis never imports the data package (pandas, TensorFlow builders).
DEMO_CLASS_NAMES = paper.CLASS_NAMES
DEMO_CLASS_TOTALS = paper.CLASS_TOTALS
DEMO_NUM_EXAMPLES = paper.NUM_EXAMPLES
DEMO_EPOCHS = tuple(paper.EPOCHS[arm] for arm in ARMS)


def make_demo_study(
    workdir: str | os.PathLike,
    num_runs: int = 100,
    epochs: tuple[int, int] = DEMO_EPOCHS,
    seed: int = 0,
    test_counts: Sequence[int] = paper.RUN_TEST_COUNTS[0],
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
                level = rng.normal(paper.PEAK_ACC["pretrained"], 0.006)
                clean = level - 0.07 * np.exp(-t / 6) - 0.02 * np.exp(-t / 80)
                train = 0.97 - 0.22 * np.exp(-t / 25)
            else:
                level = rng.normal(paper.PEAK_ACC["scratch"], 0.009)
                onset = rng.normal(50, 8)
                rise = 1 / (1 + np.exp(-(t - onset - 45) / 18))
                floor = counts[2] / num_test  # predicting "spiral" for everything
                drift = 0.05 * np.minimum(
                    t / paper.EPOCHS["scratch"], 1
                )  # still improving at the end of its budget, as in the paper
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
