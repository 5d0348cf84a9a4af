"""A label-efficiency study as the analysis sees it: runs that carry `label_budget`, arranged by size,
repeat and arm, with each run's metrics from its best-epoch test confusion matrix.

Run r of such a study is one (size, repeat); every arm of the config trains in it, and within a
repeat the subsets are nested and share one test set (alexnet_jax/configs/label_efficiency.py).
The curves are paired only if that holds, so a study whose test sets or designs disagree is
refused with one ResultsError line naming the runs, never analysed half-right. Studies without
`label_budget` are ordinary studies: `read_design` returns None and nothing here runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from alexnet_jax.analysis.formatting import format_ranges
from alexnet_jax.analysis.stats import class_metrics
from alexnet_jax.analysis.study import Study
from alexnet_jax.errors import ResultsError

KEY = "label_budget"
METRICS = ("accuracy", "balanced_accuracy", "macro_f1")  # each from a run's best-epoch test confusion matrix
DESIGN_FIELDS = ("num_sizes", "repeats", "min_per_class")  # must agree across runs, with the sizes asked and policy


@dataclass
class LabelDesign:
    """The study by size (ascending number of labels), repeat and arm; NaN where a cell has no results."""

    sizes: np.ndarray  # (S,) labels per size: the subset before validation is carved, mean over its runs
    sizes_asked: list[str]  # (S,) as the config wrote them ("all" = the whole pool)
    size_values: list[list[int]]  # (S,) the distinct sizes its runs record (more than one only for "all")
    size_index: list[int]  # (S,) label_budget.size_index of each size, in the order above
    repeats: list[int]  # repeat numbers found, ascending
    arms: list[str]
    metrics: dict[str, np.ndarray]  # METRICS -> (A, S, R)
    class_recall: np.ndarray  # (A, S, R, K)
    cell_runs: list[list[list[int]]]  # [S][R]: the runs holding that size and repeat (normally one)
    declared: dict  # num_sizes, repeats, min_per_class, budget policy, the config's train_sizes
    budgets: dict[str, list[list[dict]]]  # arm -> per size, the distinct {"epochs", "steps"} its runs record
    counts: dict[str, list]  # per size: mean train and val examples after the carve, pool sizes
    missing: list[dict] = field(default_factory=list)  # {"size", "repeat", "arm"} cells without results
    incomplete: list[dict] = field(default_factory=list)  # {"run", "arm"} still training (complete: false)


def _runs(runs: list[int]) -> str:
    """'run 3' or 'runs 0-4, 7'."""
    return f"run {runs[0]}" if len(runs) == 1 else f"runs {format_ranges(runs)}"


def _where(study: Study, run: int) -> str:
    return str(study.paths[run])


def _budget_of(study: Study, run: int) -> dict:
    block = study.runs[run].get(KEY)
    if not isinstance(block, dict):
        raise ResultsError(f"{_where(study, run)}: '{KEY}' is not an object; see alexnet_jax/results.py")
    for key in ("size", "size_index", "repeat", *DESIGN_FIELDS):
        value = block.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ResultsError(f"{_where(study, run)}: '{KEY}.{key}' is {value!r}, expected a whole number >= 0")
    if not block["size_index"] < block["num_sizes"] or not block["repeat"] < block["repeats"]:
        raise ResultsError(
            f"{_where(study, run)}: '{KEY}' puts the run at size_index {block['size_index']}, repeat "
            f"{block['repeat']}, outside its own design of {block['num_sizes']} sizes x {block['repeats']} repeats"
        )
    return block


def _signature(study: Study, run: int, block: dict) -> dict:
    """What every run of one design shares: the sizes asked, repeats, the per-class floor, the budget policy."""
    config = study.runs[run].get("config")
    section = config.get("label_efficiency") if isinstance(config, dict) else None
    budget = block.get("budget")
    return {
        **{key: block[key] for key in DESIGN_FIELDS},
        "policy": budget.get("policy") if isinstance(budget, dict) else None,
        "train_sizes": section.get("train_sizes") if isinstance(section, dict) else None,
    }


def _describe(signature: dict) -> str:
    sizes = signature["train_sizes"] if signature["train_sizes"] is not None else "(not recorded)"
    return (
        f"train_sizes {sizes}, {signature['num_sizes']} sizes, {signature['repeats']} repeats, "
        f"min_per_class {signature['min_per_class']}, budget {signature['policy']}"
    )


def _check_one_design(study: Study, blocks: dict[int, dict]) -> dict:
    """Every run carries `label_budget`, of one design; each (size index) asks one size."""
    without = [run for run in sorted(study.runs) if run not in blocks]
    if without:
        raise ResultsError(
            f"{_runs(sorted(blocks))} carry '{KEY}' but {_runs(without)} {'does' if len(without) == 1 else 'do'} not "
            f"(e.g. {_where(study, without[0])}): a label-efficiency study is one design; analyse the other runs "
            "in their own --workdir"
        )
    groups: dict[str, list[int]] = {}
    for run, block in blocks.items():
        groups.setdefault(json.dumps(_signature(study, run, block), sort_keys=True), []).append(run)
    if len(groups) > 1:
        (first, a), (second, b) = list(groups.items())[:2]
        raise ResultsError(
            f"the runs' label_budget designs disagree: {_runs(a)} ({_describe(json.loads(first))}) "
            f"but {_runs(b)} ({_describe(json.loads(second))}); analyse each design in its own --workdir"
        )
    asked: dict[int, dict[str, list[int]]] = {}
    for run, block in blocks.items():
        asked.setdefault(block["size_index"], {}).setdefault(str(block.get("size_asked")), []).append(run)
    for index, names in sorted(asked.items()):
        if len(names) > 1:
            (x, a), (y, b) = list(names.items())[:2]
            raise ResultsError(
                f"label_budget size_index {index} asks size {x!r} in {_runs(a)} but {y!r} in {_runs(b)}: one design "
                "asks one size per index; analyse each design in its own --workdir"
            )
    return json.loads(next(iter(groups)))


def _test_set(study: Study, run: int) -> tuple:
    split = study.runs[run]["split"]
    indices, labels = split.get("test_indices"), split.get("test_labels")
    if indices is None and labels is None:
        raise ResultsError(
            f"{_where(study, run)} records neither split.test_indices nor split.test_labels: the label-efficiency "
            "analysis needs them to check that every size and arm of a repeat shares one test set"
        )
    return tuple(indices or ()), tuple(labels or ())


def _check_arms_share_test_set(study: Study, run: int, block: dict) -> None:
    """Each arm's best-epoch confusion matrix and predictions cover the run's own test set."""
    labels = study.runs[run]["split"].get("test_labels")
    if labels is None:
        return
    expected = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(study.class_names)).tolist()
    for arm in study.arm_names:
        record = study.arms[arm].get(run)
        if record is None:
            continue
        rows = record.confusion.sum(axis=1).tolist()
        predictions = record.predictions
        if rows != expected or (predictions is not None and len(predictions) != len(labels)):
            raise ResultsError(
                f"run {run} (size {block['size']}, repeat {block['repeat']}) arm {arm}: its confusion matrix holds "
                f"{rows} test images per class but the run's test set {expected} ({_where(study, run)}): the arms of "
                "one size and repeat must be evaluated on one test set; retrain that arm of that run"
            )


def _check_test_sets(study: Study, blocks: dict[int, dict]) -> None:
    """Arms of one (size, repeat), and sizes of one repeat, share one test set."""
    cells: dict[tuple[int, int], list[int]] = {}
    for run, block in sorted(blocks.items()):
        cells.setdefault((block["size_index"], block["repeat"]), []).append(run)
        _check_arms_share_test_set(study, run, block)
    for (index, repeat), runs in sorted(cells.items()):
        for other in runs[1:]:
            shared = set(study.runs[runs[0]]["arms"]) & set(study.runs[other]["arms"])
            if shared:
                raise ResultsError(
                    f"runs {runs[0]} and {other} both hold size_index {index}, repeat {repeat} of arm "
                    f"{sorted(shared)[0]}: one (size, repeat) is one run; move one of them out of the study"
                )
            if _test_set(study, other) != _test_set(study, runs[0]):
                raise ResultsError(
                    f"runs {runs[0]} and {other} hold arms of size_index {index}, repeat {repeat} but on different "
                    "test sets (split.test_indices/test_labels differ): arms of one size and repeat must share the "
                    "test set; retrain them with one config"
                )
    by_repeat: dict[int, list[int]] = {}
    for run, block in sorted(blocks.items()):
        by_repeat.setdefault(block["repeat"], []).append(run)
    for repeat, runs in sorted(by_repeat.items()):
        first = _test_set(study, runs[0])
        for other in runs[1:]:
            if _test_set(study, other) != first:
                raise ResultsError(
                    f"repeat {repeat}: runs {runs[0]} (size {blocks[runs[0]]['size']}) and {other} (size "
                    f"{blocks[other]['size']}) have different test sets (split.test_indices/test_labels differ); "
                    "every size of a repeat must share one test set for the curves to be paired: retrain them with "
                    "one label-efficiency config"
                )


def run_metrics(confusion: np.ndarray) -> tuple[dict[str, float], np.ndarray]:
    """Accuracy, balanced accuracy (mean recall over classes with test images) and macro-F1 (mean F1 over
    classes that occur or are predicted) of one confusion matrix, and its per-class recall (NaN: no images)."""
    metrics = class_metrics(confusion)
    total = float(np.sum(confusion))
    with np.errstate(invalid="ignore"):
        values = {
            "accuracy": float(np.trace(confusion)) / total if total else float("nan"),
            "balanced_accuracy": float(np.nanmean(metrics["recall"])) if total else float("nan"),
            "macro_f1": float(np.nanmean(metrics["f1"])) if total else float("nan"),
        }
    return values, metrics["recall"]


def read_design(study: Study) -> LabelDesign | None:
    """The label-efficiency design of a study, checked; None for a study whose runs carry no `label_budget`."""
    blocks = {run: _budget_of(study, run) for run in sorted(study.runs) if KEY in study.runs[run]}
    if not blocks:
        return None
    declared = _check_one_design(study, blocks)
    _check_test_sets(study, blocks)
    arms, k = study.arm_names, len(study.class_names)
    by_index: dict[int, list[int]] = {}
    for run, block in blocks.items():
        by_index.setdefault(block["size_index"], []).append(run)
    order = sorted(by_index, key=lambda i: (np.mean([blocks[r]["size"] for r in by_index[i]]), i))
    repeats = sorted({block["repeat"] for block in blocks.values()})
    shape = (len(arms), len(order), len(repeats))
    metrics = {name: np.full(shape, np.nan) for name in METRICS}
    recall = np.full((*shape, k), np.nan)
    cell_runs: list[list[list[int]]] = [[[] for _ in repeats] for _ in order]
    missing, incomplete = [], []
    for s, index in enumerate(order):
        for run in by_index[index]:
            cell_runs[s][repeats.index(blocks[run]["repeat"])].append(run)
    for a, arm in enumerate(arms):
        for s, index in enumerate(order):
            for r, repeat in enumerate(repeats):
                record = next((study.arms[arm][x] for x in cell_runs[s][r] if x in study.arms[arm]), None)
                if record is None:
                    missing.append({"size": int(blocks[by_index[index][0]]["size"]), "repeat": repeat, "arm": arm})
                    continue
                values, recall[a, s, r] = run_metrics(record.confusion)
                for name in METRICS:
                    metrics[name][a, s, r] = values[name]
                if not record.complete:
                    incomplete.append({"run": record.run, "arm": arm})
    return LabelDesign(
        sizes=np.array([np.mean([blocks[r]["size"] for r in by_index[i]]) for i in order]),
        sizes_asked=[str(blocks[by_index[i][0]].get("size_asked", blocks[by_index[i][0]]["size"])) for i in order],
        size_values=[sorted({blocks[r]["size"] for r in by_index[i]}) for i in order],
        size_index=list(order),
        repeats=repeats,
        arms=arms,
        metrics=metrics,
        class_recall=recall,
        cell_runs=cell_runs,
        declared=declared,
        budgets={arm: [_budgets(blocks, by_index[i], arm) for i in order] for arm in arms},
        counts=_counts(blocks, [by_index[i] for i in order]),
        missing=missing,
        incomplete=incomplete,
    )


def _budgets(blocks: dict[int, dict], runs: list[int], arm: str) -> list[dict]:
    """The distinct (epochs, steps) that the runs of one size record for an arm."""
    seen = []
    for run in runs:
        budget = blocks[run].get("budget") if isinstance(blocks[run].get("budget"), dict) else {}
        entry = {key: (budget.get(key) or {}).get(arm) for key in ("epochs", "steps")}
        if entry not in seen:
            seen.append(entry)
    return seen


def _counts(blocks: dict[int, dict], groups: list[list[int]]) -> dict[str, list]:
    """Per size: mean training and validation examples after the carve, and the repeats' pool sizes."""

    def mean_total(runs: list[int], key: str):
        totals = [sum(blocks[r][key]) for r in runs if isinstance(blocks[r].get(key), list)]
        return float(np.mean(totals)) if totals else None

    return {
        "train": [mean_total(runs, "train_counts") for runs in groups],
        "val": [mean_total(runs, "val_counts") for runs in groups],
        "pool": [sorted({blocks[r].get("pool_size") for r in runs if blocks[r].get("pool_size")}) for runs in groups],
    }
