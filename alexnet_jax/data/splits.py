"""Train/test/validation index splits.

`paper_split` reproduces the original study's draws exactly (see
docs/data.md#splits): the script for runs 10k..10k+9 seeded NumPy's legacy global
generator with `14034 * k` and drew `choice(14034, 12000, replace=False)` once per run,
in order. Here the same stream comes from a private `np.random.RandomState`, so the
global NumPy state is never touched.

`stratified_split` and `carve_validation` are new, seeded, class-stratified helpers
for studies that want a proper validation set (the original selected on the test set).
`nested_stratified_order` and `nested_subset` give the label-efficiency study its nested,
class-stratified training subsets.
"""

from __future__ import annotations

import numbers

import numpy as np

from alexnet_jax import paper
from alexnet_jax.data.labels import PAPER_NUM_EXAMPLES, PAPER_TRAIN_SIZE
from alexnet_jax.errors import SplitError


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise SplitError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise SplitError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def default_train_size(num_examples: int) -> int:
    """The paper's 12,000 / 14,034 training fraction applied to `num_examples`."""
    num_examples = _check_int("num_examples", num_examples, 1)
    return int(round(num_examples * PAPER_TRAIN_SIZE / PAPER_NUM_EXAMPLES))


def paper_seed(run_index: int, num_examples: int = PAPER_NUM_EXAMPLES) -> int:
    """Seed of the block of ten runs holding `run_index`: num_examples * (run_index // 10)."""
    run_index = _check_int("run_index", run_index, 0)
    return _check_int("num_examples", num_examples, 1) * (run_index // 10)


def paper_split(
    run_index: int, num_examples: int = PAPER_NUM_EXAMPLES, train_size: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, test_idx) of run `run_index` exactly as the original drew them.

    train_idx is in drawn order (int64); test_idx is the complement in increasing order.
    `train_size` defaults to `default_train_size(num_examples)` (12,000 for 14,034).
    """
    run_index = _check_int("run_index", run_index, 0)
    num_examples = _check_int("num_examples", num_examples, 1)
    train_size = default_train_size(num_examples) if train_size is None else train_size
    train_size = _check_int("train_size", train_size, 0)
    if train_size > num_examples:
        raise SplitError(f"train_size {train_size} exceeds num_examples {num_examples}")
    rng = np.random.RandomState(paper_seed(run_index, num_examples))
    for _ in range(run_index % 10 + 1):  # the (r % 10 + 1)-th draw after seeding
        train_idx = rng.choice(num_examples, train_size, replace=False)
    train_idx = np.asarray(train_idx, np.int64)
    mask = np.ones(num_examples, bool)
    mask[train_idx] = False
    return train_idx, np.flatnonzero(mask).astype(np.int64)


def _allocate(counts: np.ndarray, total: int) -> np.ndarray:
    """Split `total` over classes in proportion to `counts` (largest remainder, ties to lower class)."""
    counts = np.asarray(counts, np.int64)
    if counts.sum() == 0:
        return np.zeros_like(counts)
    exact = counts * (total / counts.sum())
    alloc = np.minimum(np.floor(exact).astype(np.int64), counts)
    remainder = exact - alloc
    # Stable order: biggest remainder first, then class index.
    for c in sorted(range(len(counts)), key=lambda c: (-remainder[c], c)):
        if alloc.sum() >= total:
            break
        if alloc[c] < counts[c]:
            alloc[c] += 1
    return alloc


def _resolve_size(n: int, fraction: float | None, size: int | None, what: str) -> int:
    if (fraction is None) == (size is None):
        raise SplitError(f"give exactly one of {what}_fraction and {what}_size")
    if size is not None:
        size = _check_int(f"{what}_size", size, 0)
        if size > n:
            raise SplitError(f"{what}_size {size} exceeds the {n} examples available")
        return size
    if not 0.0 <= float(fraction) <= 1.0:
        raise SplitError(f"{what}_fraction must lie in [0, 1], got {fraction}")
    return int(round(n * float(fraction)))


def _labels_array(labels) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise SplitError(f"labels must be 1-D, got shape {labels.shape}")
    if labels.size and (not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0):
        raise SplitError("labels must be non-negative integer class indices")
    return labels.astype(np.int64)


def _stratified_pick(labels: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Positions (sorted) of a class-stratified random subset of `size` elements."""
    counts = np.bincount(labels) if labels.size else np.zeros(0, np.int64)
    alloc = _allocate(counts, size)
    picked = [rng.permutation(np.flatnonzero(labels == c))[: alloc[c]] for c in range(len(counts))]
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, np.int64)


def stratified_split(
    labels,
    train_fraction: float | None = None,
    *,
    train_size: int | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded class-stratified (train_idx, test_idx), both sorted.

    Each class contributes in proportion to its size (largest-remainder rounding), so the
    totals are exact. Give `train_fraction` or `train_size`.
    """
    labels = _labels_array(labels)
    size = _resolve_size(len(labels), train_fraction, train_size, "train")
    train = _stratified_pick(labels, size, np.random.default_rng(seed))
    mask = np.ones(len(labels), bool)
    mask[train] = False
    return train.astype(np.int64), np.flatnonzero(mask).astype(np.int64)


def carve_validation(
    train_idx,
    labels,
    fraction: float = 0.1,
    seed: int = 0,
    *,
    stratified: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Split a training index set into (train_idx, val_idx), keeping each in its given order.

    `labels` is indexed by the values of `train_idx` (labels of the whole data set).
    The validation set holds round(fraction * len(train_idx)) examples, stratified by
    class unless `stratified=False`. The test set is never touched.
    """
    train_idx = np.asarray(train_idx, np.int64)
    if train_idx.ndim != 1:
        raise SplitError(f"train_idx must be 1-D, got shape {train_idx.shape}")
    if len(np.unique(train_idx)) != len(train_idx):
        raise SplitError("train_idx contains duplicates")
    labels = _labels_array(labels)
    if train_idx.size and (train_idx.min() < 0 or train_idx.max() >= len(labels)):
        raise SplitError(f"train_idx holds indices outside 0..{len(labels) - 1}")
    size = _resolve_size(len(train_idx), fraction, None, "val")
    rng = np.random.default_rng(seed)
    if stratified:
        positions = _stratified_pick(labels[train_idx], size, rng)
    else:
        positions = np.sort(rng.permutation(len(train_idx))[:size])
    is_val = np.zeros(len(train_idx), bool)
    is_val[positions] = True
    return train_idx[~is_val], train_idx[is_val]


def validation_size(num_train: int, fraction: float) -> int:
    """How many of `num_train` training examples `carve_validation` moves to validation."""
    return _resolve_size(int(num_train), float(fraction), None, "val")


def nested_class_sequence(counts, min_per_class: int = 0) -> list[int]:
    """The class of each position of a nested class-stratified order of examples with `counts`.

    First a floor: min(min_per_class, count) of every class, taken round-robin. Then each next
    position goes to a class short of its share of the prefix, the share being the water-filled
    target (classes held at their floor keep it; the others split what is left in proportion to
    their counts). Among the classes below their target (rounded up), the one with the largest
    count / (taken + 1) wins (Balinski and Young's quota method, D'Hondt's priority; ties to the
    lower class). A divisor rule makes every allocation contain the previous one; the quota
    restriction keeps each class within one example of its target (tests/test_splits.py).
    Pure integer arithmetic: the same sequence on every machine.
    """
    counts = [int(c) for c in np.asarray(counts, np.int64)]
    if any(c < 0 for c in counts):
        raise SplitError(f"class counts must be >= 0, got {counts}")
    floor = _check_int("min_per_class", min_per_class, 0)
    total = sum(counts)
    floors = [min(c, floor) for c in counts]
    taken = [0] * len(counts)
    sequence = []
    for round_ in range(floor):
        for k, count in enumerate(counts):
            if count > round_:
                sequence.append(k)
                taken[k] += 1
    # Classes wait at their floor until the share of the free ones, lambda * count, passes it.
    waiting = sorted((k for k, c in enumerate(counts) if c), key=lambda k: (floors[k] / counts[k], k))
    free, free_count, held = [], 0, sum(floors)  # held: the floors of the waiting classes
    for size in range(len(sequence) + 1, total + 1):
        while waiting:  # lambda = (size - held) / free_count, were class j free too
            j = waiting[0]
            if (size - held + floors[j]) * counts[j] <= floors[j] * (free_count + counts[j]):
                break
            waiting.pop(0)
            free.append(j)
            free_count, held = free_count + counts[j], held - floors[j]
        chosen = -1
        for k in free:  # below the target (size - held) * count / free_count, rounded up
            if taken[k] * free_count < (size - held) * counts[k] and (
                chosen < 0 or counts[k] * (taken[chosen] + 1) > counts[chosen] * (taken[k] + 1)
            ):
                chosen = k
        sequence.append(chosen)
        taken[chosen] += 1
    return sequence


def nested_stratified_order(labels, *, min_per_class: int = 0, seed: int = 0) -> np.ndarray:
    """Positions 0..n-1 of `labels` in an order whose every prefix is a class-stratified subset.

    A subset of size N is `order[:N]`, so the subsets of one seed are nested (100 inside 300
    inside 1,000). Every prefix of at least K * min_per_class holds min_per_class examples of
    each class (all of a class that has fewer), and otherwise each class's count is within one
    of its share (`nested_class_sequence`). Which examples of a class come first is a seeded
    permutation of that class.
    """
    labels = _labels_array(labels)
    counts = np.bincount(labels) if labels.size else np.zeros(0, np.int64)
    classes = np.asarray(nested_class_sequence(counts, min_per_class), np.int64)
    rng = np.random.default_rng(seed)
    order = np.empty(len(labels), np.int64)
    for k in range(len(counts)):
        order[classes == k] = rng.permutation(np.flatnonzero(labels == k))
    return order


def nested_subset(
    pool, labels, size: int, *, min_per_class: int = 0, seed: int = 0, num_classes: int | None = None
) -> np.ndarray:
    """The `size` examples of the training pool `pool` (indices into `labels`) that come first in
    the nested stratified order of `seed`, kept in the pool's order. The order depends only on the
    pool, `min_per_class` and `seed`, so every size of one seed is a subset of the next larger.
    Refuses a size larger than the pool, and one too small to hold the floor of each of the
    `num_classes` classes (default: those `labels` holds)."""
    pool = np.asarray(pool, np.int64)
    labels = _labels_array(labels)
    size = _check_int("subset size", size, 1)
    floor = _check_int("min_per_class", min_per_class, 0)
    if pool.ndim != 1 or len(np.unique(pool)) != len(pool):
        raise SplitError("the training pool must be a 1-D array of different example indices")
    if pool.size and (pool.min() < 0 or pool.max() >= len(labels)):
        raise SplitError(f"the training pool holds indices outside 0..{len(labels) - 1}")
    if size > len(pool):
        raise SplitError(
            f"subset size {size} is larger than the training pool of {len(pool)} examples; "
            f"ask for at most {len(pool)} (or the whole pool)"
        )
    num_classes = int(labels.max()) + 1 if num_classes is None and labels.size else int(num_classes or 0)
    if size < num_classes * floor:
        raise SplitError(
            f"subset size {size} is too small for {floor} examples of each of {num_classes} classes "
            f"(needs at least {num_classes * floor}); raise the size or lower min_per_class"
        )
    order = nested_stratified_order(labels[pool], min_per_class=floor, seed=seed)
    return pool[np.sort(order[:size])]


def declared_split(split_column, *, source: str = "metadata.csv") -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, test_idx) as the data's source declared them (metadata column `split`).

    The held-out set is the `test` rows, or the `val` rows where the source has no test rows
    (a train/ + validation/ folder tree). The same for every run index; validation for
    model selection is carved from the training rows like any other split's.
    """
    if split_column is None:
        raise SplitError(f"{source} has no 'split' column: the data set declares no split; use another split rule")
    values = np.asarray(split_column).astype(str)
    train = np.flatnonzero(values == "train")
    held_out = np.flatnonzero(values == "test")
    if not len(held_out):
        held_out = np.flatnonzero(values == "val")
    if not len(train) or not len(held_out):
        found = ", ".join(f"{v} {int(np.sum(values == v))}" for v in sorted(set(values))) or "no rows"
        raise SplitError(f"{source}: the declared split needs train rows and test or val rows; found {found}")
    return train.astype(np.int64), held_out.astype(np.int64)


def class_counts(labels, indices=None, num_classes: int = 4) -> np.ndarray:
    """Per-class counts of `labels[indices]` (all labels when `indices` is None)."""
    labels = _labels_array(labels)
    selected = labels if indices is None else labels[np.asarray(indices, np.int64)]
    return np.bincount(selected, minlength=num_classes)


# Test-set class counts read off the original's per-run confusion matrices (CLASS_NAMES order).
PAPER_RUN_TEST_COUNTS = paper.RUN_TEST_COUNTS


def verify_paper_counts(labels) -> dict:
    """Compare a catalogue's labels (rows in file order) with the paper's published counts.

    Checks the class totals (2,738 / 3,215 / 7,708 / 373) and the test-set class counts
    of runs 0 and 49 under `paper_split`. Matching run counts is strong evidence that the
    rows are in the original's order (the splits index rows by position).
    """
    from alexnet_jax.data.labels import PAPER_CLASS_TOTALS

    labels = _labels_array(labels)
    totals = class_counts(labels).tolist()
    report = {
        "num_examples": int(len(labels)),
        "class_totals": {
            "found": totals,
            "paper": list(PAPER_CLASS_TOTALS),
            "match": totals == list(PAPER_CLASS_TOTALS),
        },
        "runs": {},
    }
    for run, published in PAPER_RUN_TEST_COUNTS.items():
        _, test = paper_split(run, num_examples=len(labels))
        found = class_counts(labels, test).tolist()
        report["runs"][run] = {"found": found, "paper": list(published), "match": found == list(published)}
    report["all_match"] = report["class_totals"]["match"] and all(r["match"] for r in report["runs"].values())
    return report
