"""What a run trains on: its split of the prepared data set, and the input pipeline over it.

The images are loaded once per process and data set, and the pipeline (with its copy of the
data set resident on the device) is built once per data set and transform: every run of a
process indexes the same arrays with its own split.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from alexnet_jax import seeds
from alexnet_jax.errors import TrainingError
from alexnet_jax.training.plan import Plan

_DATASETS: dict[str, tuple] = {}
_PIPELINES: dict[tuple, object] = {}


@dataclasses.dataclass
class RunData:
    images: np.ndarray
    labels: np.ndarray
    manifest: dict
    train_idx: np.ndarray
    test_idx: np.ndarray
    val_idx: np.ndarray | None


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
    train_size = data.train_size if data.train_size is not None else splits.default_train_size(n)
    if data.split == "paper":
        train_idx, test_idx = splits.paper_split(run_index, num_examples=n, train_size=train_size)
    elif data.split == "declared":
        try:
            train_idx, test_idx = splits.declared_split(declared, source=f"{data.dir}/metadata.csv")
        except ValueError as error:
            raise TrainingError(str(error)) from None
    else:  # "stratified"
        seed = seeds.numpy_seed(plan.seed, run_index)
        train_idx, test_idx = splits.stratified_split(labels, train_size=train_size, seed=seed)
    val_idx = None
    if data.val_fraction > 0:  # the plan asks for it when selection is "val"
        seed = seeds.numpy_seed(plan.seed, run_index, 7)
        train_idx, val_idx = splits.carve_validation(train_idx, labels, data.val_fraction, seed=seed)
    _check_every_class_trains(labels, np.asarray(train_idx), names, data, run_index)
    val = None if val_idx is None else np.asarray(val_idx)
    return RunData(images, labels, manifest, np.asarray(train_idx), np.asarray(test_idx), val)


def _check_every_class_trains(labels, train_idx, names, data, run_index: int) -> None:
    """Refuse a split that cannot train a class. The paper's split is the original's draw and is
    kept as it is: a small synthetic set in the catalogue's proportions may hold one irr_misc."""
    if data.split == "paper":
        return
    counts = np.bincount(labels[train_idx], minlength=len(names))
    missing = [f"{name} ({int(np.sum(labels == k))} in the data set)" for k, name in enumerate(names) if counts[k] == 0]
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
