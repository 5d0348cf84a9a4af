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


def load_run_data(config, run_index: int) -> RunData:
    from alexnet_jax.data import prepared, splits

    data_dir = str(Path(config.data.dir).resolve())
    if data_dir not in _DATASETS:
        images, labels, _ = prepared.load_prepared(data_dir)
        _DATASETS[data_dir] = (np.asarray(images), np.asarray(labels), prepared.read_manifest(data_dir))
    images, labels, manifest = _DATASETS[data_dir]
    n = len(labels)
    train_size = config.data.train_size if config.data.train_size is not None else splits.default_train_size(n)
    if config.data.split == "paper":
        train_idx, test_idx = splits.paper_split(run_index, num_examples=n, train_size=train_size)
    elif config.data.split == "stratified":
        seed = seeds.numpy_seed(config.seed, run_index)
        train_idx, test_idx = splits.stratified_split(labels, train_size=train_size, seed=seed)
    else:
        raise TrainingError(f"--config.data.split={config.data.split!r}: use 'paper' or 'stratified'")
    val_idx = None
    if config.selection == "val" or config.data.val_fraction > 0:
        if config.data.val_fraction <= 0:
            raise TrainingError(
                "--config.selection=val needs a validation split: set --config.data.val_fraction (e.g. 0.1)"
            )
        seed = seeds.numpy_seed(config.seed, run_index, 7)
        train_idx, val_idx = splits.carve_validation(train_idx, labels, config.data.val_fraction, seed=seed)
    val = None if val_idx is None else np.asarray(val_idx)
    return RunData(images, labels, manifest, np.asarray(train_idx), np.asarray(test_idx), val)


def choose_pipeline(config) -> str:
    """'auto' is on_device on every platform. Measured on the 2-core CPU (docs/performance.md):
    the augmentation alone ran at ~550 img/s on-device against ~190 img/s through tf.data, and
    the whole 224 px train step was compute-bound and equal within noise (14.7 vs 16.0 img/s).
    The GPU machines have no TensorFlow, and there the data set resident on the device
    removes the input pipeline from the step."""
    if config.pipeline not in ("auto", "on_device", "tf_data"):
        raise TrainingError(f"--config.pipeline={config.pipeline!r}: use 'auto', 'on_device' or 'tf_data'")
    return "on_device" if config.pipeline == "auto" else config.pipeline


def shared_pipeline(config, data: RunData, mesh):
    """The input pipeline over `data`'s images for this config's transforms and mesh."""
    from alexnet_jax.inputs import augment
    from alexnet_jax.inputs import pipeline as input_pipeline

    try:
        train_augment, eval_augment = augment.configs_from(config)
        for field in ("batch_size", "eval_batch_size"):
            input_pipeline.check_batch_size(config[field], mesh.size, f"--config.{field}")
    except ValueError as error:
        raise TrainingError(str(error)) from None
    name = choose_pipeline(config)
    imagenet = bool(config.normalize_imagenet)
    key = (id(data.images), name, config.data.image_size, train_augment, eval_augment, imagenet, mesh)
    if key not in _PIPELINES:
        _PIPELINES[key] = input_pipeline.make_pipeline(
            name,
            data.images,
            data.labels,
            image_size=config.data.image_size,
            train_augment=train_augment,
            eval_augment=eval_augment,
            normalize_imagenet=imagenet,
            mesh=mesh,
        )
    return _PIPELINES[key]
