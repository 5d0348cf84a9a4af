"""Classify images with trained params: the library behind `python -m alexnet_jax.predict`.

A params directory (a run's `best/`, or converted weights) names its model in its metadata
and carries the config it was trained with; images go through the transform the model was
evaluated with (resize to 256 px, the paper's, then to the run's image size, then a centre
crop), or `tta=K` averages K random paper augmentations, and then the input scaling the run
trained with (its config's `normalize`).

The output columns are the classes the params directory records (`class_names`, the training
data's, in the head's order). A labelled data set must have exactly those classes in that order,
or its labels would be scored against the wrong outputs; a folder of images has no labels to
check. A run saved before class names were recorded is read as the paper's four classes when
its head has four outputs (with a warning), and refused otherwise. Converted weights (no
training data) name their outputs class_0, class_1, ... and score no labels.
"""

from __future__ import annotations

import csv
import dataclasses
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from alexnet_jax import errors, params_io
from alexnet_jax.data.labels import CLASS_NAMES
from alexnet_jax.errors import PredictError
from alexnet_jax.inputs import augment
from alexnet_jax.models import get_model, num_classes_of
from alexnet_jax.toolbox import atomic_path

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp", ".gif")


def resolve_params_dir(checkpoint: str | os.PathLike) -> Path:
    checkpoint = Path(checkpoint)
    for candidate in (checkpoint / "best", checkpoint):
        if params_io.is_params_dir(candidate):
            return candidate
    raise PredictError(
        f"--checkpoint={checkpoint}: no trained params there. Give a run's arm directory "
        "(e.g. runs/quick/run_000/scratch, which holds best/) or a params directory."
    )


def is_converted_weights(metadata: dict) -> bool:
    """Converted weights: no training data, no recorded classes (a trained run has a config)."""
    return params_io.class_names_in(metadata) is None and "config" not in metadata


def checkpoint_class_names(params_dir: Path, metadata: dict) -> tuple[list[str], str | None]:
    """The classes of the head's outputs, in order, and a warning where they are assumed, not recorded."""
    num_outputs = int(metadata["num_classes"])
    names = params_io.class_names_in(metadata)
    metadata_file = params_dir / params_io.METADATA_FILENAME
    if names is not None:
        if len(names) != num_outputs:
            raise PredictError(
                f"{metadata_file}: names {len(names)} classes {names} for a head of {num_outputs} outputs; "
                "the directory was altered after training. Use the best/ the run wrote."
            )
        return names, None
    if is_converted_weights(metadata):
        return [f"class_{i}" for i in range(num_outputs)], None
    paper = list(CLASS_NAMES)
    if num_outputs == len(paper):
        return paper, (
            f"{params_dir} records no class names (saved before they were recorded); its head has "
            f"{num_outputs} outputs, read as the paper's classes {paper}"
        )
    raise PredictError(
        f"{metadata_file}: records no class names and its head has {num_outputs} outputs, so which class each "
        f'output is cannot be known; add "class_names": [...] (in label order) to it, or train the run again'
    )


def data_class_names(source: str | os.PathLike) -> list[str] | None:
    """A prepared data set's class names in label order; None for a folder of images (no labels)."""
    from alexnet_jax.data import prepared

    source = Path(source)
    if not (source / "manifest.json").exists():
        return None
    return prepared.class_names_of(prepared.read_manifest(source))


def check_same_classes(checkpoint_names: list[str], data_names: list[str] | None, params_dir, source) -> None:
    """Refuse a labelled data set whose classes (or their order) differ from the checkpoint's."""
    if data_names is None or list(data_names) == list(checkpoint_names):
        return
    reordered = " (the same classes in another order)" if sorted(data_names) == sorted(checkpoint_names) else ""
    raise PredictError(
        f"--images={source}: its classes {list(data_names)} differ from the classes {list(checkpoint_names)} "
        f"that {params_dir} was trained on{reordered}, so its labels would be scored against the wrong outputs. "
        "Predict on a data set prepared with the checkpoint's classes in that order, or on a folder of image files."
    )


def load_images(source: str | os.PathLike) -> tuple[list[str], np.ndarray, np.ndarray | None]:
    """(names, (N, 256, 256, 3) uint8 images, true labels or None) from a folder or a prepared set."""
    from alexnet_jax.data import folder, prepared

    source = Path(source)
    if (source / "manifest.json").exists():
        images, labels, metadata = prepared.load_prepared(source)
        names = [str(x) for x in metadata["id"]]
        return names, np.asarray(images), np.asarray(labels)
    if not source.is_dir():
        raise PredictError(f"--images={source}: not a folder of images or a prepared data set")
    files = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise PredictError(f"--images={source}: no image files ({', '.join(IMAGE_SUFFIXES)}) in this folder")
    images, problems = [], []
    for path in files:
        try:
            images.append(folder.load_image(path, size=prepared.IMAGE_SIZE))
        except errors.BadImageError as error:
            problems.append(f"{path.name}: {error}")
    if problems:
        raise PredictError(
            f"--images={source}: {len(problems)} image(s) cannot be read; fix or remove them:\n  "
            + "\n  ".join(problems)
        )
    return [p.name for p in files], np.stack(images), None


def predict_probabilities(
    params,
    images_u8: np.ndarray,
    run_config: dict,
    *,
    model: str,
    batch_stats=None,
    batch_size: int = 64,
    tta: int = 0,
    seed: int = 0,
) -> np.ndarray:
    """Class probabilities (N, C) of `model` under the run's evaluation transform. BatchNorm models
    need their `batch_stats` (eval mode normalises with them)."""
    num_classes = num_classes_of(params, model)
    crop = int(run_config.get("augment", {}).get("crop_size", 224))
    image_size = int(run_config.get("data", {}).get("image_size", 256))
    scaling = augment.run_normalization(run_config)  # a run made before config.normalize: its normalize_imagenet
    try:
        augment.normalization_stats(scaling)
    except ValueError as error:
        raise PredictError(f"the run's config.normalize: {error}") from None
    images_u8 = augment.resize_images(images_u8, image_size)
    network = get_model(model, num_classes)
    random_cfg = augment.configs_from(run_config)[0] if "augment" in run_config else augment.AugmentConfig(crop)
    center_cfg = augment.center_crop(crop)

    @jax.jit
    def probabilities(variables, batch, key):
        if tta:
            keys = jax.random.split(key, tta)
            views = jax.vmap(lambda k: augment.augment(k, batch, random_cfg))(keys)
            logits = jax.vmap(lambda v: network.apply(variables, augment.normalize(v, scaling)))(views)
            return jax.nn.softmax(logits, -1).mean(0)
        view = augment.eval_transform(batch, center_cfg)
        return jax.nn.softmax(network.apply(variables, augment.normalize(view, scaling)), -1)

    variables = {"params": params} | ({} if batch_stats is None else {"batch_stats": batch_stats})
    variables = jax.tree_util.tree_map(jnp.asarray, variables)
    out = []
    for start in range(0, len(images_u8), batch_size):
        batch = np.asarray(images_u8[start : start + batch_size])
        pad = batch_size - len(batch)
        if pad:  # one compiled shape for every batch
            batch = np.concatenate([batch, np.zeros((pad, *batch.shape[1:]), batch.dtype)])
        probs = probabilities(variables, jnp.asarray(batch), jax.random.fold_in(jax.random.key(seed), start))
        out.append(np.asarray(probs)[: batch_size - pad])
    return np.concatenate(out) if out else np.zeros((0, num_classes), np.float32)


def write_predictions(path: str | os.PathLike, names, probabilities: np.ndarray, class_names, labels=None) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        header = ["file"] + [f"p_{name}" for name in class_names] + ["predicted_class", "predicted_label"]
        writer.writerow(header + (["true_label"] if labels is not None else []))
        for i, (name, probs) in enumerate(zip(names, probabilities, strict=True)):
            best = int(np.argmax(probs))
            row = [name] + [f"{p:.6f}" for p in probs] + [class_names[best], best]
            writer.writerow(row + ([int(labels[i])] if labels is not None else []))


@dataclasses.dataclass(frozen=True)
class Predictions:
    names: list[str]
    probabilities: np.ndarray  # (N, C)
    class_names: list[str]  # the checkpoint's, in the order of the columns
    labels: np.ndarray | None  # the data set's labels, for a prepared data set
    warnings: tuple[str, ...] = ()  # what the command prints before its result

    def summary(self) -> list[str]:
        """The lines the command prints: the counts per predicted class, and the accuracy when labels are known."""
        counts = np.bincount(self.probabilities.argmax(1), minlength=self.probabilities.shape[1])
        lines = [", ".join(f"{n}: {c}" for n, c in zip(self.class_names, counts, strict=True))]
        if self.labels is not None:
            accuracy = (self.probabilities.argmax(1) == self.labels).mean()
            lines.append(f"accuracy against the data set's labels: {accuracy:.4f}")
        return lines


def predict(checkpoint, images, *, batch_size: int = 64, tta: int = 0, seed: int = 0) -> Predictions:
    """The class probabilities of the trained params at `checkpoint` (an arm directory or a params
    directory) for `images` (a folder of image files or a prepared data set with the same classes)."""
    params_dir = resolve_params_dir(checkpoint)
    metadata = params_io.load_metadata(params_dir)
    class_names, warning = checkpoint_class_names(params_dir, metadata)
    warnings = [] if warning is None else [warning]
    data_names = data_class_names(images)
    if data_names is not None and is_converted_weights(metadata):
        warnings.append(f"{params_dir} holds converted weights (no classes): the labels of {images} are not scored")
        data_names = None
    check_same_classes(class_names, data_names, params_dir, images)  # before any image or weight is read
    variables = params_io.load_variables(params_dir)
    names, pixels, labels = load_images(images)
    probabilities = predict_probabilities(
        variables["params"],
        pixels,
        metadata.get("config") or {},
        model=params_io.model_of(metadata),
        batch_stats=variables.get("batch_stats"),
        batch_size=batch_size,
        tta=tta,
        seed=seed,
    )
    return Predictions(names, probabilities, class_names, labels if data_names is not None else None, tuple(warnings))
