"""The label-efficiency study's training side: a whole small study (3 sizes x 2 repeats x 2 arms of
the tiny model on a 3-class set), nested subsets and shared test sets, results.json's label_budget,
the equal_steps budget, packing, kill and resume, and every bad input's one line."""

from __future__ import annotations

import copy
import json

import ml_collections
import numpy as np
import pytest
from helpers import StopAfter, strip_timing, tiny_config, train

from alexnet_jax import configs, training
from alexnet_jax import results as results_lib
from alexnet_jax.configs import label_efficiency
from alexnet_jax.errors import Interrupted, ResultsError, TrainingError
from alexnet_jax.training import launcher
from alexnet_jax.training.rundata import load_run_data
from alexnet_jax.training.rundir import config_fingerprint

CLASSES = ["smooth", "disk", "odd"]
COUNTS = [30, 20, 10]  # 60 images: a stratified pool of 51, a test set of 9
SIZES = "12,24,all"
RUNS = list(range(6))  # 3 sizes x 2 repeats
# Batch 8, validation 25 %: sizes 12, 24, 51 train on 9, 18, 38 images = 2, 3, 5 steps an epoch.
# equal_steps gives every size the steps of the whole pool's epochs: scratch 2 x 5 = 10, fast 1 x 5 = 5.
EXPECTED_EPOCHS = {"scratch": [5, 4, 2], "fast": [3, 2, 1]}
STEPS_PER_EPOCH = [2, 3, 5]


@pytest.fixture(scope="module")
def three_classes(tmp_path_factory):
    from alexnet_jax.data.prepared import write_prepared

    directory = tmp_path_factory.mktemp("three")
    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(3), COUNTS)
    images = rng.integers(0, 256, (len(labels), 256, 256, 3), dtype=np.uint8)
    images[..., 0] = np.clip(images[..., 0].astype(int) // 2 + 60 * labels[:, None, None], 0, 255)  # learnable
    order = rng.permutation(len(labels))
    write_prepared(directory, images[order], labels[order], name="three", source="test", class_names=CLASSES)
    return directory


def study_config(data_dir, **overrides):
    """Two scratch arms (the tiny model has no ImageNet weights), equal_steps over 3 sizes x 2 repeats."""
    config = tiny_config(data_dir, **{"selection": "val", "data.val_fraction": 0.25})
    config.arms = ml_collections.ConfigDict({"scratch": configs.arm("scratch"), "fast": configs.arm("scratch")})
    config.arms.fast.optim.learning_rate = 0.05
    config.epochs = ml_collections.ConfigDict({"scratch": 2, "fast": 1})
    config.label_efficiency = label_efficiency.section(SIZES, repeats=2, min_per_class=3)
    config.label_efficiency.budget = "equal_steps"
    return configs.override(config, overrides)


@pytest.fixture(scope="module")
def study(module_tmp, three_classes):
    config = study_config(three_classes)
    workdir = module_tmp / "study"
    return config, workdir, train(config, workdir, RUNS)


def comparable(results: dict) -> dict:
    results = strip_timing(results)
    results["config"] = config_fingerprint(results["config"])
    return results


def test_a_whole_study_nests_subsets_shares_test_sets_and_records_its_budget(study):
    config, workdir, out = study
    plan = training.resolve(config, workdir=workdir)
    splits = {r: load_run_data(plan, r) for r in RUNS}
    for repeat in range(2):
        runs = [repeat * 3 + s for s in range(3)]
        subsets = [set(splits[r].train_idx) | set(splits[r].val_idx) for r in runs]
        assert subsets[0] < subsets[1] < subsets[2] and len(subsets[2]) == 51  # nested, the last the pool
        tests = {tuple(out[r]["split"]["test_indices"]) for r in runs}
        assert len(tests) == 1 and not set(next(iter(tests))) & subsets[2]  # one test set per repeat
    assert out[0]["split"]["test_indices"] != out[3]["split"]["test_indices"]  # repeats: other splits
    for r, results in enumerate(out):
        size_index, repeat = r % 3, r // 3
        budget = results["label_budget"]
        assert results == results_lib.load_results(workdir / f"run_{r:03d}" / "results.json")  # validated
        assert {k: budget[k] for k in ("size_asked", "size_index", "repeat", "num_sizes", "repeats")} == {
            "size_asked": SIZES.split(",")[size_index], "size_index": size_index, "repeat": repeat,
            "num_sizes": 3, "repeats": 2,
        }  # fmt: skip
        assert budget["size"] == [12, 24, 51][size_index] and budget["pool_size"] == 51
        assert budget["min_per_class"] == 3 and min(np.add(budget["train_counts"], budget["val_counts"])) >= 3
        assert budget["train_counts"] == results["split"]["train_counts"]
        assert budget["val_counts"] == results["split"]["val_counts"]
        assert budget["subset_seed"] == out[repeat * 3]["label_budget"]["subset_seed"]
        epochs = {arm: EXPECTED_EPOCHS[arm][size_index] for arm in ("scratch", "fast")}
        steps = {arm: n * STEPS_PER_EPOCH[size_index] for arm, n in epochs.items()}
        assert budget["budget"] == {"policy": "equal_steps", "epochs": epochs, "steps": steps}
        for arm, record in results["arms"].items():  # every arm, on the same split
            assert record["complete"] and record["epochs"] == len(record["test_acc"]) == epochs[arm]
            assert record["train_images_per_epoch"] == sum(budget["train_counts"])
    assert out[0]["label_budget"]["subset_seed"] != out[3]["label_budget"]["subset_seed"]
    progress = launcher.measure_progress(workdir, RUNS, plan.arm_names, plan.epochs_by_run(RUNS, plan.arm_names))
    assert progress.epochs_done == progress.epochs_planned == 2 * sum(map(sum, EXPECTED_EPOCHS.values()))
    ahead = launcher.measure_progress(workdir / "none", RUNS, ["fast"], plan.epochs_by_run(RUNS, ["fast"]))
    assert (ahead.epochs_planned, ahead.epochs_done) == (2 * sum(EXPECTED_EPOCHS["fast"]), 0)  # runs not begun
    said = []
    train(config, workdir, [1], log=said.append)
    assert any("run 001 is already complete" in line for line in said), said


def test_equal_epochs_trains_every_size_the_config_epochs(three_classes):
    plan = training.resolve(study_config(three_classes, **{"label_efficiency.budget": "equal_epochs"}))
    assert [plan.planned_epochs(r, "scratch") for r in RUNS] == [2] * 6
    budget = load_run_data(plan, 0).label_budget["budget"]
    assert budget == {"policy": "equal_epochs", "epochs": {"scratch": 2, "fast": 1}, "steps": {"scratch": 4, "fast": 2}}
    plan = training.resolve(
        study_config(three_classes, **{"label_efficiency.steps": 7, "label_efficiency.min_epochs": 3})
    )
    assert [plan.planned_epochs(r, "fast") for r in range(3)] == [4, 3, 3]  # ceil(7 / 2), ceil(7 / 3), the floor 3


def test_packs_hold_only_runs_of_one_size(module_tmp, three_classes, study):
    out = train(study_config(three_classes, pack_runs=2), module_tmp / "packed", [0, 3, 1])
    assert [r["arms"]["scratch"].get("packed_with") for r in out] == [2, 2, None]
    assert [r["arms"]["fast"]["epochs"] for r in out] == [3, 3, 2]
    assert [r["label_budget"] for r in out] == [study[2][r]["label_budget"] for r in (0, 3, 1)]


def test_a_stopped_run_resumes_to_the_same_bits(module_tmp, three_classes, study):
    config, workdir = study_config(three_classes), module_tmp / "stopped"
    with pytest.raises(Interrupted):
        train(config, workdir, 1, stop=StopAfter(9))  # mid-way through the scratch arm's 12 steps
    partial = json.loads((workdir / "run_001" / "results.json").read_text())
    assert not partial["arms"]["scratch"]["complete"]
    assert comparable(train(config, workdir, 1)) == comparable(study[2][1])


def test_a_run_resumes_only_under_its_own_label_efficiency_section(three_classes, study):
    _, workdir, _ = study
    for changed in (
        study_config(three_classes, **{"label_efficiency.train_sizes": "12,30,all"}),
        study_config(three_classes, **{"label_efficiency.budget": "equal_epochs"}),
    ):
        with pytest.raises(TrainingError, match=r"run_001/results.json was made with another config.*label_efficiency"):
            train(changed, workdir, 1)
    ordinary = study_config(three_classes)
    del ordinary.label_efficiency
    with pytest.raises(TrainingError, match="label_efficiency: .* -> None"):
        train(ordinary, workdir, 1)
    assert training.resolve(ordinary).label_study is None


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"label_efficiency.train_sizes": "12,24,60"}, "--config.label_efficiency.train_sizes='12,24,60': size 60 is "
         "larger than the training pool of 51 examples .the training split of .*, split rule 'stratified'.; use "
         "sizes up to 51, or 'all'"),
        ({"label_efficiency.train_sizes": "51,all"}, "size 51 is the whole training pool .*the same as 'all'"),
        ({"label_efficiency.min_per_class": 5}, "train_sizes='12,24,all': size 12 is too small for the floor of 5 "
         "examples of each of the 3 classes .needs >= 15.; raise it to at least 15 or lower "
         "--config.label_efficiency.min_per_class"),
        ({"label_efficiency.repeats": 1}, "--config.label_efficiency.repeats=1: use a whole number, at least 2 "
         "repeats: a confidence interval needs two"),
        ({"label_efficiency.budget": "equal_time"}, "--config.label_efficiency.budget='equal_time': use one of "
         "equal_epochs, equal_steps"),
        ({"label_efficiency.train_sizes": "12,lots"}, "'lots' is not a size; give increasing whole numbers"),
        ({"label_efficiency.train_sizes": "24,12"}, "train_sizes='24,12': the sizes do not increase"),
        ({"label_efficiency.train_sizes": "all,12"}, "'all' is not a size"),
        ({"label_efficiency.min_epochs": 0}, "--config.label_efficiency.min_epochs=0: use a whole number, 1 or more"),
        ({"label_efficiency.steps": -1}, "--config.label_efficiency.steps=-1"),
    ],
)  # fmt: skip
def test_bad_input_gets_one_line_naming_the_field(three_classes, overrides, message):
    with pytest.raises(TrainingError, match=message) as caught:
        training.resolve(study_config(three_classes, **overrides))
    assert "\n" not in str(caught.value)


def test_runs_outside_the_study_are_refused(tmp_path, three_classes):
    plan = training.resolve(study_config(three_classes), workdir=tmp_path)
    message = r"run 6: this label-efficiency study has 3 sizes x 2 repeats = 6 runs \(0-5\)"
    with pytest.raises(TrainingError, match=message):
        plan.epochs_by_run([0, 6], ["fast"])
    with pytest.raises(TrainingError, match=message):
        training.train(plan, [6])
    assert not (tmp_path / "run_006").exists()


def test_results_json_label_budget_is_validated(study):
    good = study[2][4]
    broken = {
        "'label_budget.size_asked' is 24, expected the size as the config wrote it": ("size_asked", 24),
        "'label_budget.pool_size' is -1": ("pool_size", -1),
        "'label_budget' is inconsistent: .* repeat 1 of 1 .at least 2.": ("repeats", 1),
        "'run_index' 4 is not label_budget's repeat": ("size_index", 2),
        "'label_budget.train_counts' is .*expected 3 counts": ("train_counts", [1, 2]),
        "'label_budget.train_counts' and 'val_counts' do not add up to its size 24": ("val_counts", [0, 0, 0]),
        "'label_budget.budget.policy' is not one of": ("budget", {"policy": "as_you_like"}),
        "'arms.scratch.epochs' is 4, but 'label_budget.budget.epochs' gives it 9": (
            "budget", {**good["label_budget"]["budget"], "epochs": {"scratch": 9, "fast": 2}}),
    }  # fmt: skip
    for message, (key, value) in broken.items():
        results = copy.deepcopy(good)
        results["label_budget"][key] = value
        with pytest.raises(ResultsError, match=f"run_004/results.json: {message}"):
            results_lib.validate_results(results, "run_004/results.json")
