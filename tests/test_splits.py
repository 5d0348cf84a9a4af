"""Splits: the paper's exact draws, the seeded stratified helpers, and the label-efficiency study's
nested class-stratified subsets."""

from __future__ import annotations

import numpy as np
import pytest

from alexnet_jax.data.splits import (
    carve_validation,
    class_counts,
    default_train_size,
    nested_class_sequence,
    nested_stratified_order,
    nested_subset,
    paper_split,
    stratified_split,
    validation_size,
    verify_paper_counts,
)
from alexnet_jax.errors import SplitError


def original_procedure(run_index: int, n: int = 14034, train: int = 12000):
    """The original scripts, verbatim in spirit: seed the global generator, draw ten times."""
    saved = np.random.get_state()
    try:
        np.random.seed(n * (run_index // 10))
        for _ in range(run_index % 10 + 1):
            drawn = np.random.choice(n, train, replace=False)
        chosen = set(drawn.tolist())
        test = np.array([i for i in range(n) if i not in chosen])
    finally:
        np.random.set_state(saved)
    return drawn, test


@pytest.mark.parametrize("run_index", [0, 1, 9, 10, 49, 99])
def test_paper_split_matches_the_original_draws(run_index):
    train, test = paper_split(run_index)
    expected_train, expected_test = original_procedure(run_index)
    np.testing.assert_array_equal(train, expected_train)  # drawn order kept
    np.testing.assert_array_equal(test, expected_test)
    assert train.dtype == test.dtype == np.int64
    assert len(train) == 12000 and len(test) == 2034
    assert np.all(np.diff(test) > 0)
    assert len(np.union1d(train, test)) == 14034 and not np.intersect1d(train, test).size


def test_paper_split_leaves_global_state_alone():
    np.random.seed(1234)
    before = np.random.get_state()
    paper_split(37)
    after = np.random.get_state()
    assert before[0] == after[0] and np.array_equal(before[1], after[1]) and before[2:] == after[2:]


def test_runs_differ_and_small_sets():
    assert not np.array_equal(paper_split(0)[0], paper_split(1)[0])
    train, test = paper_split(3, num_examples=50)
    assert len(train) == default_train_size(50) == 43 and len(test) == 7
    expected_train, _ = original_procedure(3, 50, 43)
    np.testing.assert_array_equal(train, expected_train)
    train, test = paper_split(0, num_examples=10, train_size=10)
    assert len(test) == 0


def test_default_train_size():
    assert default_train_size(14034) == 12000
    assert default_train_size(1000) == round(1000 * 12000 / 14034)
    with pytest.raises(SplitError):
        default_train_size(0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(run_index=-1), "run_index must be >= 0"),
        (dict(run_index=0, num_examples=100, train_size=101), "train_size 101 exceeds num_examples 100"),
        (dict(run_index=1.5), "run_index must be an integer"),
        (dict(run_index=True), "run_index must be an integer"),
        (dict(run_index=0, num_examples=0), "num_examples must be >= 1"),
        (dict(run_index=0, train_size=-3), "train_size must be >= 0"),
    ],
)
def test_paper_split_bad_arguments(kwargs, message):
    with pytest.raises(SplitError, match=message):
        paper_split(**kwargs)


def labels_like_paper(n=1403, seed=0):
    return np.random.default_rng(seed).choice(4, n, p=[0.195, 0.229, 0.549, 0.027])


def test_stratified_split_is_exact_proportional_and_seeded():
    labels = labels_like_paper()
    train, test = stratified_split(labels, 0.8, seed=3)
    assert len(train) == round(0.8 * len(labels))
    assert len(np.union1d(train, test)) == len(labels) and not np.intersect1d(train, test).size
    assert np.all(np.diff(train) > 0) and np.all(np.diff(test) > 0)
    totals, got = class_counts(labels), class_counts(labels, train)
    assert np.all(np.abs(got - 0.8 * totals) <= 1)  # largest-remainder rounding
    again, _ = stratified_split(labels, 0.8, seed=3)
    other, _ = stratified_split(labels, 0.8, seed=4)
    np.testing.assert_array_equal(train, again)
    assert not np.array_equal(train, other)
    sized, _ = stratified_split(labels, train_size=500, seed=0)
    assert len(sized) == 500


def test_stratified_split_bad_arguments():
    labels = labels_like_paper(100)
    with pytest.raises(SplitError, match="exactly one"):
        stratified_split(labels)
    with pytest.raises(SplitError, match="exactly one"):
        stratified_split(labels, 0.5, train_size=10)
    with pytest.raises(SplitError, match="train_fraction must lie in"):
        stratified_split(labels, 1.5)
    with pytest.raises(SplitError, match="exceeds"):
        stratified_split(labels, train_size=101)
    with pytest.raises(SplitError, match="non-negative integer"):
        stratified_split(np.array([0.5, 1.0]), 0.5)


def test_carve_validation_from_the_training_set():
    labels = labels_like_paper(2000)
    train, test = paper_split(5, num_examples=2000)
    rest, val = carve_validation(train, labels, 0.1, seed=0)
    assert len(val) == round(0.1 * len(train)) and len(rest) + len(val) == len(train)
    assert set(rest) | set(val) == set(train) and not set(val) & set(test)
    # both keep the drawn order of train_idx
    position = {v: i for i, v in enumerate(train)}
    assert all(np.diff([position[v] for v in rest]) > 0) and all(np.diff([position[v] for v in val]) > 0)
    expected = 0.1 * class_counts(labels, train)
    assert np.all(np.abs(class_counts(labels, val) - expected) <= 1)
    plain_rest, plain_val = carve_validation(train, labels, 0.1, seed=0, stratified=False)
    assert len(plain_val) == len(val)
    np.testing.assert_array_equal(carve_validation(train, labels, 0.1, seed=0)[1], val)
    with pytest.raises(SplitError, match="duplicates"):
        carve_validation(np.array([1, 1, 2]), labels, 0.5)
    with pytest.raises(SplitError, match="outside"):
        carve_validation(np.array([1, 5000]), labels, 0.5)
    with pytest.raises(SplitError, match="val_fraction must lie in"):
        carve_validation(train, labels, -0.1)


def test_verify_paper_counts_reports_matches_and_mismatches():
    rng = np.random.default_rng(0)
    # a label vector built so that run 0's test set has exactly the paper's counts
    _, test0 = paper_split(0)
    labels = np.empty(14034, np.int64)
    labels[test0] = rng.permutation(np.repeat(np.arange(4), [386, 485, 1113, 50]))
    train_mask = np.ones(14034, bool)
    train_mask[test0] = False
    rest = np.array([2738, 3215, 7708, 373]) - np.array([386, 485, 1113, 50])
    labels[train_mask] = rng.permutation(np.repeat(np.arange(4), rest))
    report = verify_paper_counts(labels)
    assert report["class_totals"]["match"] and report["class_totals"]["found"] == [2738, 3215, 7708, 373]
    assert report["runs"][0] == {"found": [386, 485, 1113, 50], "paper": [386, 485, 1113, 50], "match": True}
    assert report["runs"][49]["paper"] == [375, 501, 1108, 50]
    assert report["runs"][49]["found"] == class_counts(labels, paper_split(49)[1]).tolist()
    assert report["all_match"] == report["runs"][49]["match"]
    shuffled = verify_paper_counts(rng.permutation(labels))
    assert shuffled["class_totals"]["match"] and not shuffled["all_match"]


def water_filled_share(counts: np.ndarray, floors: np.ndarray, size: int) -> np.ndarray:
    """The closest a subset of `size` can come to the pool's proportions with the floors held:
    max(floor, lam * count) per class, lam such that the shares add up to `size`."""
    low, high = 0.0, 1.0
    for _ in range(80):
        lam = (low + high) / 2
        low, high = (lam, high) if np.maximum(floors, lam * counts).sum() < size else (low, lam)
    return np.maximum(floors, high * counts)


@pytest.mark.parametrize("trial", range(6))
def test_nested_order_holds_the_floor_and_stays_within_one_of_each_share(trial):
    rng = np.random.default_rng(trial)
    k = int(rng.integers(2, 9))
    counts = rng.integers(0, 200, k) * (rng.random(k) < 0.4) + rng.integers(1, 15, k)  # some classes rare
    floor = int(rng.integers(0, 12))
    sequence = np.asarray(nested_class_sequence(counts, floor))
    assert np.array_equal(np.bincount(sequence, minlength=k), counts)  # every example, once
    floors = np.minimum(counts, floor)
    taken = np.cumsum(np.eye(k, dtype=int)[sequence], axis=0)  # taken[m - 1]: the classes of a prefix of m
    for size in range(max(1, floors.sum()), len(sequence) + 1):
        assert np.all(taken[size - 1] >= floors), (size, taken[size - 1], floors)
        share = water_filled_share(counts.astype(float), floors, size)
        assert np.all(np.abs(taken[size - 1] - share) < 1 + 1e-9), (size, taken[size - 1], share)


def test_nested_subsets_are_prefixes_of_one_seeded_order():
    labels = labels_like_paper(3000)
    pool = np.random.default_rng(0).permutation(3000)[:2500]
    subsets = [nested_subset(pool, labels, size, min_per_class=5, seed=9) for size in (20, 100, 300, 2500)]
    for small, large in zip(subsets, subsets[1:], strict=False):
        assert set(small) < set(large)  # nested
    assert set(subsets[-1]) == set(pool)
    position = {v: i for i, v in enumerate(pool)}
    assert all(np.all(np.diff([position[v] for v in s]) > 0) for s in subsets)  # in the pool's order
    assert class_counts(labels, subsets[0]).min() >= 5  # the floor: 4 x 5 of 20, the rare class included
    counts, pooled = class_counts(labels, subsets[2]), class_counts(labels, pool)
    share = water_filled_share(pooled.astype(float), np.minimum(pooled, 5), 300)
    assert np.all(np.abs(counts - share) < 1)  # the pool's proportions, the floor held
    np.testing.assert_array_equal(nested_subset(pool, labels, 100, min_per_class=5, seed=9), subsets[1])
    assert not np.array_equal(nested_subset(pool, labels, 100, min_per_class=5, seed=10), subsets[1])
    order = nested_stratified_order(labels[pool], min_per_class=5, seed=9)
    assert sorted(order.tolist()) == list(range(2500))
    np.testing.assert_array_equal(np.sort(pool[order[:300]]), np.sort(subsets[2]))


def test_a_floor_of_a_class_the_pool_lacks_takes_all_it_has():
    labels = np.array([0] * 40 + [1] * 30 + [2] * 3)
    subset = nested_subset(np.arange(73), labels, 15, min_per_class=5, seed=0)
    assert class_counts(labels, subset, 3).tolist() == [7, 5, 3]  # shares 6.86 and 5.14 once 3 + 2 x 5 are in


def test_nested_subset_refuses_in_one_line():
    labels = labels_like_paper(200)
    pool = np.arange(150)
    cases = {
        "subset size 151 is larger than the training pool of 150 examples; ask for at most 150": dict(size=151),
        "subset size 19 is too small for 5 examples of each of 4 classes .needs at least 20.; raise": dict(size=19),
        "min_per_class must be >= 0": dict(size=50, min_per_class=-1),
        "subset size must be >= 1": dict(size=0),
    }
    for message, kwargs in cases.items():
        with pytest.raises(SplitError, match=message):
            nested_subset(pool, labels, **{"min_per_class": 5, **kwargs})
    with pytest.raises(SplitError, match="outside 0..199"):
        nested_subset(np.array([0, 300]), labels, 1)
    with pytest.raises(SplitError, match="different example indices"):
        nested_subset(np.array([1, 1, 2]), labels, 1)
    with pytest.raises(SplitError, match="class counts must be >= 0"):
        nested_class_sequence([3, -1])
    assert validation_size(45, 0.1) == 4 == len(carve_validation(np.arange(45), labels, 0.1)[1])
