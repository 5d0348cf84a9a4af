"""The prepared data set: one directory, readable without TensorFlow.

Layout (schema "alexnet_jax.prepared/1"):
    images.npy      (N, 256, 256, 3) uint8 RGB, the paper's 256x256 resize; memory-mapped on load
    labels.npy      (N,) int64 indices into the manifest's `class_names`
    metadata.csv    one row per image: index, id, ra, dec, ttype, label, class_name, source_file
                    (ra/dec/ttype empty where unknown), plus `split` (train | val | test) where
                    the source declares its own split, and any source columns (e.g. vote fractions)
    manifest.json   schema, name, source, num_examples, image_size, target ("class": one class
                    per galaxy), class_names (in label order), class_counts, declared_split
                    (counts per split, or null), sha256 of each file above, and `generator`
                    (name, version, seed, params) for synthetic data
The class names come from the data: the paper's four for the paper's catalogue and the
synthetic galaxies, the folder or catalogue mapping's for a user's set.
Every file is written to a temporary name and renamed, and the manifest last, so a
directory with a manifest is complete.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from alexnet_jax.errors import PreparedDataError
from alexnet_jax.toolbox import atomic_path, sha256_file, write_json_atomic

SCHEMA = "alexnet_jax.prepared/1"
IMAGE_SIZE = 256
METADATA_COLUMNS = ("index", "id", "ra", "dec", "ttype", "label", "class_name", "source_file")
TARGET = "class"  # one class per galaxy; the only target so far (vote-fraction regression would be another)
SPLIT_NAMES = ("train", "val", "test")  # values of metadata's `split` column where a source declares one


class PreparedDataset(NamedTuple):
    images: np.ndarray  # (N, 256, 256, 3) uint8, memory-mapped
    labels: np.ndarray  # (N,) int64
    metadata: pd.DataFrame


def write_prepared(
    directory: str | os.PathLike,
    images: np.ndarray,
    labels: np.ndarray,
    metadata: pd.DataFrame | None = None,
    *,
    name: str,
    source: str,
    class_names: Sequence[str],
    allow_empty_classes: bool = False,
    generator: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict:
    """Write a prepared data set and return its manifest.

    `class_names` are the classes in label order. Every one must have an example (a class
    without examples can be neither trained nor scored) unless `allow_empty_classes`: a small
    synthetic set drawn in the catalogue's proportions may miss the rarest class.
    """
    directory = Path(directory)
    class_names = check_class_names(class_names, where=f"data set {name!r}")
    # A streaming importer writes directory/images.npy itself and passes its memory map: kept as it is.
    images_in_place = isinstance(images, np.memmap) and images.filename is not None
    images_in_place = images_in_place and Path(images.filename).resolve() == (directory / "images.npy").resolve()
    images = np.asarray(images)
    labels = np.asarray(labels, np.int64)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE, 3):
        raise PreparedDataError(
            f"images must be (N, {IMAGE_SIZE}, {IMAGE_SIZE}, 3) uint8, got {images.shape} {images.dtype}"
        )
    if labels.shape != (len(images),):
        raise PreparedDataError(f"labels must be ({len(images)},), got {labels.shape}")
    if len(labels) and (labels.min() < 0 or labels.max() >= len(class_names)):
        raise PreparedDataError(
            f"labels must lie in 0..{len(class_names) - 1} (one per class of {', '.join(class_names)})"
        )
    counts = np.bincount(labels, minlength=len(class_names))
    empty = [c for c, n in zip(class_names, counts, strict=True) if n == 0]
    if len(labels) and empty and not allow_empty_classes:
        raise PreparedDataError(
            f"data set {name!r}: no examples of class(es) {', '.join(map(repr, empty))}; "
            "add images of each, or leave these classes out of the class list or mapping"
        )
    metadata = default_metadata(labels, class_names) if metadata is None else metadata.copy()
    for column in METADATA_COLUMNS:
        if column not in metadata.columns:
            metadata[column] = default_metadata(labels, class_names)[column]
    if len(metadata) != len(labels):
        raise PreparedDataError(f"metadata has {len(metadata)} rows for {len(labels)} images")
    declared_split = None
    if "split" in metadata.columns:
        values = metadata["split"].astype(str)
        unknown = sorted(set(values) - set(SPLIT_NAMES))
        if unknown:
            raise PreparedDataError(f"metadata column 'split' holds {unknown}; use {', '.join(SPLIT_NAMES)}")
        declared_split = {s: int((values == s).sum()) for s in SPLIT_NAMES}
    directory.mkdir(parents=True, exist_ok=True)
    manifest_path = directory / "manifest.json"
    if manifest_path.exists():
        manifest_path.unlink()  # the directory is incomplete until the new manifest lands
    for filename, array in (("images.npy", images), ("labels.npy", labels)):
        if filename == "images.npy" and images_in_place:
            continue
        with atomic_path(directory / filename) as tmp, open(tmp, "wb") as handle:
            np.save(handle, array)
    columns = list(METADATA_COLUMNS) + [c for c in metadata.columns if c not in METADATA_COLUMNS]
    with atomic_path(directory / "metadata.csv") as tmp:
        metadata[columns].to_csv(tmp, index=False)
    manifest = {
        "schema": SCHEMA,
        "name": name,
        "source": source,
        "num_examples": int(len(labels)),
        "image_size": IMAGE_SIZE,
        "target": TARGET,
        "class_names": list(class_names),
        "class_counts": counts.tolist(),
        "declared_split": declared_split,
        "sha256": {f: sha256_file(directory / f) for f in ("images.npy", "labels.npy", "metadata.csv")},
        "generator": generator,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **(extra or {}),
    }
    write_json_atomic(manifest_path, manifest, indent=2)
    return manifest


def check_class_names(class_names: Sequence[str], *, where: str) -> list[str]:
    """`class_names` as a list, checked: at least two, unique, non-empty, no commas or newlines."""
    if isinstance(class_names, str):
        raise PreparedDataError(f"{where}: class_names must be a list of names, got the string {class_names!r}")
    names = [str(c) for c in class_names]
    if len(names) < 2:
        raise PreparedDataError(f"{where}: a classification needs at least two classes, got {names}")
    bad = [c for c in names if not c.strip() or c != c.strip() or any(ch in c for ch in ",;=\n\r\t")]
    if bad:
        raise PreparedDataError(
            f"{where}: class name(s) {bad} are empty, start or end with a space, or hold ',', ';', '=', "
            "a tab or a line break; rename them"
        )
    repeated = sorted({c for c in names if names.count(c) > 1})
    if repeated:
        raise PreparedDataError(f"{where}: class name(s) {repeated} appear more than once in {names}")
    return names


def class_names_of(manifest: dict) -> list[str]:
    """A prepared set's class names, in label order (every manifest since the first schema has them)."""
    return list(manifest["class_names"])


def default_metadata(labels: np.ndarray, class_names: Sequence[str]) -> pd.DataFrame:
    labels = np.asarray(labels, np.int64)
    return pd.DataFrame(
        {
            "index": np.arange(len(labels)),
            "id": [f"{i:06d}" for i in range(len(labels))],
            "ra": np.nan,
            "dec": np.nan,
            "ttype": np.nan,
            "label": labels,
            "class_name": [class_names[label] for label in labels],
            "source_file": "",
        }
    )


def read_manifest(directory: str | os.PathLike) -> dict:
    path = Path(directory) / "manifest.json"
    if not path.exists():
        raise PreparedDataError(
            f"{directory} is not a prepared data set (no manifest.json). Build one with "
            "`python -m alexnet_jax.data prepare --dataset=synthetic --output=DIR`."
        )
    manifest = json.loads(path.read_text())
    if manifest.get("schema") != SCHEMA:
        raise PreparedDataError(f"{path}: schema {manifest.get('schema')!r}, expected {SCHEMA!r}")
    return manifest


def load_prepared(directory: str | os.PathLike, *, verify: bool = False) -> PreparedDataset:
    """Images (memory-mapped uint8), labels and the metadata table of a prepared data set.

    `verify=True` also checks every file's sha256 against the manifest.
    """
    directory = Path(directory)
    manifest = read_manifest(directory)
    if verify:
        for filename, expected in manifest["sha256"].items():
            found = sha256_file(directory / filename)
            if found != expected:
                raise PreparedDataError(
                    f"{directory / filename}: sha256 {found} does not match the manifest's "
                    f"{expected}; the file changed after preparation. Prepare the data set again."
                )
    images = np.load(directory / "images.npy", mmap_mode="r")
    labels = np.load(directory / "labels.npy")
    metadata = pd.read_csv(directory / "metadata.csv", keep_default_na=True, dtype={"id": str, "source_file": str})
    n = manifest["num_examples"]
    if images.shape != (n, IMAGE_SIZE, IMAGE_SIZE, 3) or labels.shape != (n,) or len(metadata) != n:
        raise PreparedDataError(
            f"{directory}: images {images.shape}, labels {labels.shape} and metadata "
            f"({len(metadata)} rows) disagree with the manifest's {n} examples"
        )
    return PreparedDataset(images, labels, metadata)
