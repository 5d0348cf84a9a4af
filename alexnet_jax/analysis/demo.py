"""A SYNTHETIC demo study: results.json files with made-up curves shaped like the paper's.

For trying the analysis and for its tests: no images, no training, and `config.data` says
`synthetic: true`, so every report made from a demo says it is not comparable with the paper.
Besides the paper's two arms it knows a few made-up finetuning strategies (`DEMO_ARMS`), so the
N-arm analysis can be tried without training. The classes are the paper's four unless
`class_names` names others (any K >= 2, e.g. Galaxy Zoo's "spiral or not" or Galaxy10's ten),
so the analysis of any data set's classes can be tried too.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from alexnet_jax import paper
from alexnet_jax.results import ARMS, PAPER_SPECS, RESULTS_FILENAME, SCHEMA, find_run_dirs, run_dir
from alexnet_jax.toolbox import write_json_atomic

# The paper's classes and catalogue totals, from analysis.paper rather than alexnet_jax.data.labels,
# so that the analysis never imports the data package (pandas, TensorFlow builders).
DEMO_CLASS_NAMES = paper.CLASS_NAMES
DEMO_CLASS_TOTALS = paper.CLASS_TOTALS
DEMO_NUM_EXAMPLES = paper.NUM_EXAMPLES
DEMO_EPOCHS = tuple(paper.EPOCHS[arm] for arm in ARMS)
TOTAL_PARAMS = 57_020_228  # torchvision AlexNet with a 4-class head
HEAD_PARAMS = 4096 * 4 + 4
PARAMS_PER_CLASS = 4096 + 1  # one more class: one more row of the last layer's weights and one bias
DEMO_TEST_SIZE = 1000  # test images of a demo with classes of its own (the paper's runs have 2,034)
TRAIN_PER_TEST = 5  # ... and five times as many training images
LAST_TWO_BLOCKS_PARAMS = 4096 * 4096 + 4096 + HEAD_PARAMS


@dataclass(frozen=True)
class DemoArm:
    """How a made-up arm behaves. A `fast` arm starts from pretrained features and rises at once
    towards `level` (by `jump` with time constant `tau`, then `slow` more over `tau_slow`); the
    scratch arm (fast=False) predicts spiral first and rises late, as in the paper."""

    spec: dict
    epochs: int
    level: float  # mean peak test accuracy
    level_sd: float
    class_acc: tuple[float, ...]  # mean per-class accuracy at the best epoch
    trainable: int
    seconds: float  # wall seconds per epoch, evaluation included (paper: 41 s on a V100)
    fast: bool = True
    jump: float = 0.07
    tau: float = 6.0
    slow: float = 0.02
    tau_slow: float = 80.0
    train_top: float = 0.97


DEMO_ARMS = {
    "pretrained": DemoArm(
        PAPER_SPECS["pretrained"], 200, paper.PEAK_ACC["pretrained"], 0.006, (0.88, 0.62, 0.94, 0.40), TOTAL_PARAMS, 41
    ),
    "scratch": DemoArm(
        PAPER_SPECS["scratch"], 400, paper.PEAK_ACC["scratch"], 0.009, (0.86, 0.60, 0.93, 0.21), TOTAL_PARAMS, 41, False
    ),
    "imagenet": DemoArm(
        PAPER_SPECS["pretrained"], 200, paper.PEAK_ACC["pretrained"], 0.006, (0.88, 0.62, 0.94, 0.40), TOTAL_PARAMS, 41
    ),
    "linear_probe": DemoArm(
        {"init": "imagenet", "finetune": "linear_probe", "model": "alexnet"},
        200,
        0.745,
        0.007,
        (0.80, 0.45, 0.90, 0.12),
        HEAD_PARAMS,
        15,
        jump=0.10,
        tau=3,
        slow=0.01,
        tau_slow=40,
        train_top=0.78,
    ),
    "last_blocks": DemoArm(
        {"init": "imagenet", "finetune": "last_blocks:2", "model": "alexnet"},
        200,
        0.832,
        0.006,
        (0.87, 0.60, 0.94, 0.33),
        LAST_TWO_BLOCKS_PARAMS,
        24,
        jump=0.08,
        tau=5,
        slow=0.015,
        tau_slow=60,
        train_top=0.93,
    ),
}
N_ARM_DEMO = ("scratch", "imagenet", "linear_probe", "last_blocks")
COMPILE_SECONDS = 20.0  # the first epoch also compiles the steps


def make_demo_study(
    workdir: str | os.PathLike,
    num_runs: int = 100,
    epochs: tuple[int, int] = DEMO_EPOCHS,
    seed: int = 0,
    test_counts: Sequence[int] | None = None,
    save_predictions: bool = True,
    arms: Mapping[str, int] | Sequence[str] | None = None,
    class_names: Sequence[str] | None = None,
) -> list[Path]:
    """Write a SYNTHETIC study: made-up curves shaped like the paper's, for demos and tests.

    No images and no training are involved; every number is simulated, and config.data says so
    (`synthetic: true`), so the report marks the study as not comparable with the paper. Refuses
    a workdir that already holds run directories, so real results are never overwritten.
    `arms` names arms of `DEMO_ARMS` (each with its usual epochs) or maps them to planned epochs;
    without it the paper's two arms get `epochs`. `class_names` (default the paper's four) may name
    any K >= 2 classes; `test_counts` (default the paper's run 0, or `demo_test_counts(K)`) has K entries.
    """
    workdir = Path(workdir)
    if find_run_dirs(workdir):
        raise FileExistsError(f"{workdir} already holds run directories; make a demo study in an empty directory")
    unknown = sorted(set(arms or ()) - set(DEMO_ARMS))
    if unknown:
        raise ValueError(f"demo arms {unknown} are not known; choose from {', '.join(DEMO_ARMS)}")
    if arms is None:
        planned_epochs = dict(zip(ARMS, epochs, strict=True))
    else:
        planned_epochs = dict(arms) if isinstance(arms, Mapping) else {arm: DEMO_ARMS[arm].epochs for arm in arms}
    names, counts, totals = demo_classes(class_names, test_counts)
    num_test = int(counts.sum())
    train_counts = totals - counts
    extra_params = PARAMS_PER_CLASS * (len(names) - len(DEMO_CLASS_NAMES))  # the head of K classes, not 4
    paths = []
    for run in range(num_runs):
        rng = np.random.default_rng([seed, run])
        clock = np.random.default_rng([seed, run, 1])  # timings: a stream of their own, the curves stay put
        labels = rng.permutation(np.repeat(np.arange(len(counts)), counts))
        test_indices = np.sort(rng.choice(int(totals.sum()), num_test, replace=False))
        records = {}
        for arm, planned in planned_epochs.items():
            behaviour = DEMO_ARMS[arm]
            t = np.arange(planned, dtype=np.float64)
            clean, train = _demo_curves(rng, behaviour, t, counts.max() / num_test)  # floor: the commonest class
            correct = np.clip(np.round((clean + rng.normal(0, 0.004, planned)) * num_test), 0, num_test).astype(int)
            test_acc = correct / num_test
            best = int(np.argmax(test_acc))
            accuracy = np.array(behaviour.class_acc) if names == list(DEMO_CLASS_NAMES) else spread(behaviour, counts)
            predictions = _demo_predictions(rng, labels, accuracy, int(correct[best]))
            confusion = np.zeros((len(counts), len(counts)), dtype=int)
            np.add.at(confusion, (labels, predictions), 1)
            train_acc = np.clip(train + rng.normal(0, 0.003, planned), 0, 1)
            seconds = behaviour.seconds * clock.normal(1, 0.03, planned)
            seconds[:1] += COMPILE_SECONDS
            records[arm] = {
                "epochs": planned,
                "complete": True,
                "train_acc": train_acc.tolist(),
                "test_acc": test_acc.tolist(),
                "train_loss": (1.6 * (1 - train_acc) + 0.05).tolist(),
                "test_loss": (1.5 * (1 - test_acc) + 0.2 + (0.001 * t if behaviour.fast else 0 * t)).tolist(),
                "selection": "test",
                "best_epoch": best,
                "best_test_acc": float(test_acc[best]),
                "confusion_matrix": confusion.tolist(),
                **({"test_predictions": predictions.tolist()} if save_predictions else {}),
                "wall_time_s": float(seconds.sum()),
                "spec": dict(behaviour.spec),
                "trainable_params": behaviour.trainable + extra_params,
                "total_params": TOTAL_PARAMS + extra_params,
                "train_images_per_epoch": int(train_counts.sum()),
                "epoch_seconds": seconds.tolist(),
                "time": _demo_time(seconds),
            }
        results = {
            "schema": SCHEMA,
            "run_index": run,
            "class_names": names,
            "split": {
                "protocol": "demo",
                "train_counts": train_counts.tolist(),
                "test_counts": counts.tolist(),
                "test_indices": test_indices.tolist(),
                "test_labels": labels.tolist(),
            },
            "arms": records,
            "config": {
                "data": {
                    "name": "demo",
                    "synthetic": True,
                    "source": "alexnet_jax.analyze.make_demo_study: simulated numbers, no images, no training",
                },
                "demo_seed": seed,
                "epochs": planned_epochs,
                "arms": {arm: {k: DEMO_ARMS[arm].spec[k] for k in ("init", "finetune")} for arm in planned_epochs},
            },
        }
        path = run_dir(workdir, run) / RESULTS_FILENAME
        write_json_atomic(path, results)
        paths.append(path)
    return paths


def demo_test_counts(num_classes: int, test_size: int = DEMO_TEST_SIZE) -> np.ndarray:
    """Made-up test counts of K classes, as uneven as galaxy classes are: class i in proportion to
    1 / (i + 1.5), so the first is the commonest and the last the rarest (at least 10 each)."""
    weights = 1 / (np.arange(num_classes) + 1.5)
    return np.maximum(10, np.round(test_size * weights / weights.sum())).astype(np.int64)


def demo_classes(
    class_names: Sequence[str] | None, test_counts: Sequence[int] | None
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The demo's class names, test counts and catalogue totals: the paper's, or made up for K classes."""
    names = list(DEMO_CLASS_NAMES if class_names is None else class_names)
    if len(names) < 2 or len(set(names)) != len(names) or not all(isinstance(n, str) and n for n in names):
        raise ValueError(f"demo class names {names} must be at least 2 different non-empty names")
    paper_classes = tuple(names) == DEMO_CLASS_NAMES
    if test_counts is None:
        test_counts = paper.RUN_TEST_COUNTS[0] if paper_classes else demo_test_counts(len(names))
    counts = np.asarray(test_counts, dtype=np.int64)
    if counts.shape != (len(names),) or np.any(counts < 1):
        raise ValueError(f"demo test counts {counts.tolist()} must be {len(names)} counts >= 1, one per class")
    totals = np.asarray(DEMO_CLASS_TOTALS) if paper_classes else (1 + TRAIN_PER_TEST) * counts
    if np.any(totals < counts):
        raise ValueError(f"demo test counts {counts.tolist()} exceed the paper's class totals {list(totals)}")
    return names, counts, totals


def spread(arm: DemoArm, counts: np.ndarray) -> np.ndarray:
    """An arm's mean accuracy on K classes of its own: its four paper-class values spread from its best
    (on the commonest class) to its worst (the rarest), as a network fares on uneven classes."""
    paper_levels = sorted(arm.class_acc)
    levels = np.interp(np.linspace(0, 1, len(counts)), np.linspace(0, 1, len(paper_levels)), paper_levels)
    ranks = np.argsort(np.argsort(counts, kind="stable"), kind="stable")  # 0: the rarest class
    return levels[ranks]


def _demo_curves(rng: np.random.Generator, arm: DemoArm, t: np.ndarray, floor: float):
    """Noise-free test and train accuracy per epoch; the paper's two shapes (random draws in a fixed order)."""
    level = rng.normal(arm.level, arm.level_sd)
    if arm.fast:
        clean = level - arm.jump * np.exp(-t / arm.tau) - arm.slow * np.exp(-t / arm.tau_slow)
        return clean, arm.train_top - 0.22 * np.exp(-t / 25)
    onset = rng.normal(50, 8)
    rise = 1 / (1 + np.exp(-(t - onset - 45) / 18))
    drift = 0.05 * np.minimum(t / paper.EPOCHS["scratch"], 1)  # still improving at the end, as in the paper
    clean = floor + (level - 0.05 - floor) * rise + drift
    return clean, floor + (level - 0.045 - floor) * rise + 1.2 * drift


def _demo_time(seconds: np.ndarray) -> dict:
    """The `time` split of a made-up arm: compile in the first epoch, then 80 % training, 15 % evaluation."""
    rest = float(seconds.sum()) - COMPILE_SECONDS
    return {
        "wall_s": float(seconds.sum()),
        "compile_s": COMPILE_SECONDS,
        "train_s": 0.80 * rest,
        "eval_s": 0.15 * rest,
        "checkpoint_s": 0.04 * rest,
        "other_s": 0.01 * rest,
    }


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
