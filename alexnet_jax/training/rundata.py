"""What a run trains on: its split of the prepared data set, and the input pipeline over it.

The images are loaded once per process and data set, and the pipeline (with its copy of the
data set resident on the device) is built once per data set and transform: every run of a
process indexes the same arrays with its own split. A label-efficiency run (training.label_budget)
trains on a nested subset of its repeat's training split, and carves validation from that.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from alexnet_jax import seeds
from alexnet_jax.errors import SplitError, TrainingError
from alexnet_jax.training.arms import ArmSpec
from alexnet_jax.training.label_budget import SECTION, LabelStudy, pool_source
from alexnet_jax.training.plan import Plan

_DATASETS: dict[str, tuple] = {}
_PIPELINES: dict[tuple, object] = {}


def release_data() -> None:
    """Forget the data sets and pipelines this process holds: a long-lived process (a notebook,
    the test suite) that moves on to other data sets frees their images and device copies."""
    _DATASETS.clear()
    _PIPELINES.clear()


@dataclasses.dataclass
class RunData:
    images: np.ndarray
    labels: np.ndarray
    manifest: dict
    train_idx: np.ndarray
    test_idx: np.ndarray
    val_idx: np.ndarray | None
    label_budget: dict | None = None  # a label-efficiency run's results.json record

    def arm(self, spec: ArmSpec) -> ArmSpec:
        """The arm as this run trains it: a label-efficiency run's budget sets its epochs."""
        if self.label_budget is None:
            return spec
        return dataclasses.replace(spec, epochs=int(self.label_budget["budget"]["epochs"][spec.name]))


def load_run_data(plan: Plan, run_index: int) -> RunData:
    """Run `run_index`'s split of the plan's data set (the images loaded once per process)."""
    from alexnet_jax.data import prepared, splits

    data = plan.data
    data_dir = str(Path(data.dir).resolve())
    if data_dir not in _DATASETS:
        images, labels, metadata = prepared.load_prepared(data_dir)
        declared = metadata["split"].astype(str).to_numpy() if "split" in metadata.columns else None
        _DATASETS[data_dir] = (np.asarray(images), np.asarray(labels), prepared.read_manifest(data_dir), declared)
    images, labels, manifest, declared = _DATASETS[data_dir]
    names = list(manifest["class_names"])
    if data.split == "auto" or plan.model.num_classes != len(names):
        raise TrainingError(
            f"the data set {data.dir} has {len(names)} classes ({', '.join(names)}) but the plan was made "
            f"{'before it existed' if data.split == 'auto' else f'for {plan.model.num_classes}'}; "
            "set --config.model.num_classes=0 and --config.data.split=auto to follow the data"
        )
    n = len(labels)
    study = plan.label_study
    split_run = run_index if study is None else study.place(run_index)[1]  # a study's repeat: its split
    train_size = data.train_size if data.train_size is not None else splits.default_train_size(n)
    if data.split == "paper":
        train_idx, test_idx = splits.paper_split(split_run, num_examples=n, train_size=train_size)
    elif data.split == "declared":
        try:
            train_idx, test_idx = splits.declared_split(declared, source=f"{data.dir}/metadata.csv")
        except ValueError as error:
            raise TrainingError(str(error)) from None
    else:  # "stratified"
        seed = seeds.numpy_seed(plan.seed, split_run)
        train_idx, test_idx = splits.stratified_split(labels, train_size=train_size, seed=seed)
    pool = np.asarray(train_idx)
    if study is not None:
        train_idx = _label_subset(plan, study, run_index, labels, pool, len(names))
    val_idx = None
    if data.val_fraction > 0:  # the plan asks for it when selection is "val"
        seed = seeds.numpy_seed(plan.seed, run_index, 7)
        train_idx, val_idx = splits.carve_validation(train_idx, labels, data.val_fraction, seed=seed)
    _check_every_class_trains(labels, np.asarray(train_idx), names, data, run_index, study)
    val = None if val_idx is None else np.asarray(val_idx)
    out = RunData(images, labels, manifest, np.asarray(train_idx), np.asarray(test_idx), val)
    if study is not None:
        out.label_budget = _label_record(plan, study, run_index, out, len(pool), len(names))
    return out


def _label_subset(plan: Plan, study: LabelStudy, run_index: int, labels, pool, num_classes: int) -> np.ndarray:
    """Run `run_index`'s subset of its repeat's training pool: a prefix of the repeat's nested order."""
    from alexnet_jax.data import splits

    size_index, repeat = study.place(run_index)
    study.check_pool(len(pool), num_classes, pool_source(plan.data.split, plan.data.dir))
    try:
        return splits.nested_subset(
            pool,
            labels,
            study.size(size_index, len(pool)),
            min_per_class=study.min_per_class,
            seed=seeds.subset_seed(plan.seed, repeat),
            num_classes=num_classes,
        )
    except SplitError as error:
        raise TrainingError(f"run {run_index}, --config.{SECTION}: {error}") from None


def _label_record(plan: Plan, study: LabelStudy, run_index: int, data: RunData, pool_size: int, k: int) -> dict:
    """results.json's `label_budget` of a label-efficiency run (schema: alexnet_jax.results)."""
    size_index, repeat = study.place(run_index)
    val = data.val_idx if data.val_idx is not None else np.zeros(0, np.int64)
    return {
        "size": int(len(data.train_idx) + len(val)),
        "size_asked": study.sizes_asked[size_index],
        "size_index": size_index,
        "repeat": repeat,
        "num_sizes": study.num_sizes,
        "repeats": study.repeats,
        "pool_size": int(pool_size),
        "subset_seed": seeds.subset_seed(plan.seed, repeat),
        "min_per_class": study.min_per_class,
        "train_counts": np.bincount(data.labels[data.train_idx], minlength=k).tolist(),
        "val_counts": np.bincount(data.labels[val], minlength=k).tolist(),
        "budget": study.run_budget(size_index, plan.arms, pool_size, plan.data.val_fraction, plan.batch_size),
    }


def _check_every_class_trains(labels, train_idx, names, data, run_index: int, study: LabelStudy | None) -> None:
    """Refuse a split that cannot train a class. The paper's split is the original's draw and is
    kept as it is: a small synthetic set in the catalogue's proportions may hold one irr_misc."""
    if data.split == "paper":
        return
    counts = np.bincount(labels[train_idx], minlength=len(names))
    missing = [f"{name} ({int(np.sum(labels == k))} in the data set)" for k, name in enumerate(names) if counts[k] == 0]
    if missing and study is not None:
        raise TrainingError(
            f"run {run_index}: its label-efficiency subset of {data.dir} leaves no training example of "
            f"{', '.join(missing)} once validation is carved out; raise --config.{SECTION}.min_per_class or the "
            f"smallest of --config.{SECTION}.train_sizes"
        )
    if missing:
        raise TrainingError(
            f"run {run_index}: the {data.split} split of {data.dir} leaves no training example of "
            f"{', '.join(missing)}; add examples of these classes, leave them out when preparing the data, "
            "or use --config.data.split=stratified"
        )


def shared_pipeline(plan: Plan, data: RunData, mesh):
    """The input pipeline over `data`'s images for the plan's transforms and mesh."""
    from alexnet_jax.inputs import pipeline as input_pipeline

    try:
        input_pipeline.check_batch_size(plan.batch_size, mesh.size, "--config.batch_size")
        input_pipeline.check_batch_size(plan.eval_batch_size, mesh.size, "--config.eval_batch_size")
    except ValueError as error:
        raise TrainingError(str(error)) from None
    d = plan.data
    key = (id(data.images), d.pipeline, d.image_size, d.train_augment, d.eval_augment, d.normalize, mesh)
    if key not in _PIPELINES:
        _PIPELINES[key] = input_pipeline.make_pipeline(
            d.pipeline,
            data.images,
            data.labels,
            image_size=d.image_size,
            train_augment=d.train_augment,
            eval_augment=d.eval_augment,
            normalize=d.normalize,
            mesh=mesh,
        )
    return _PIPELINES[key]
