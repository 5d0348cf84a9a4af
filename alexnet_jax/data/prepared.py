"""The prepared data set: one directory, readable without TensorFlow.

Layout (schema "alexnet_jax.prepared/1"):
    images.npy      (N, 256, 256, 3) uint8 RGB, the paper's 256x256 resize; memory-mapped on load
    labels.npy      (N,) int64 class indices, see `labels.CLASS_NAMES`
    metadata.csv    one row per image: index, id, ra, dec, ttype, label, class_name, source_file
                    (ra/dec/ttype empty where unknown)
    manifest.json   schema, name, source, num_examples, image_size, class_names, class_counts,
                    sha256 of each file above, and `generator` (name, version, seed, params)
                    for synthetic data
Every file is written to a temporary name and renamed, and the manifest last, so a
directory with a manifest is complete.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from alexnet_jax.data.labels import CLASS_NAMES
from alexnet_jax.errors import PreparedDataError
from alexnet_jax.toolbox import atomic_path, sha256_file, write_json_atomic

SCHEMA = "alexnet_jax.prepared/1"
IMAGE_SIZE = 256
METADATA_COLUMNS = ("index", "id", "ra", "dec", "ttype", "label", "class_name", "source_file")


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
    generator: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict:
    """Write a prepared data set and return its manifest."""
    directory = Path(directory)
    images = np.asarray(images)
    labels = np.asarray(labels, np.int64)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE, 3):
        raise PreparedDataError(
            f"images must be (N, {IMAGE_SIZE}, {IMAGE_SIZE}, 3) uint8, got {images.shape} {images.dtype}"
        )
    if labels.shape != (len(images),):
        raise PreparedDataError(f"labels must be ({len(images)},), got {labels.shape}")
    if len(labels) and (labels.min() < 0 or labels.max() >= len(CLASS_NAMES)):
        raise PreparedDataError(f"labels must lie in 0..{len(CLASS_NAMES) - 1}")
    metadata = default_metadata(labels) if metadata is None else metadata.copy()
    for column in METADATA_COLUMNS:
        if column not in metadata.columns:
            metadata[column] = default_metadata(labels)[column]
    if len(metadata) != len(labels):
        raise PreparedDataError(f"metadata has {len(metadata)} rows for {len(labels)} images")
    directory.mkdir(parents=True, exist_ok=True)
    manifest_path = directory / "manifest.json"
    if manifest_path.exists():
        manifest_path.unlink()  # the directory is incomplete until the new manifest lands
    for filename, array in (("images.npy", images), ("labels.npy", labels)):
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
        "class_names": list(CLASS_NAMES),
        "class_counts": np.bincount(labels, minlength=len(CLASS_NAMES)).tolist(),
        "sha256": {f: sha256_file(directory / f) for f in ("images.npy", "labels.npy", "metadata.csv")},
        "generator": generator,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **(extra or {}),
    }
    write_json_atomic(manifest_path, manifest, indent=2)
    return manifest


def default_metadata(labels: np.ndarray) -> pd.DataFrame:
    labels = np.asarray(labels, np.int64)
    return pd.DataFrame(
        {
            "index": np.arange(len(labels)),
            "id": [f"{i:06d}" for i in range(len(labels))],
            "ra": np.nan,
            "dec": np.nan,
            "ttype": np.nan,
            "label": labels,
            "class_name": [CLASS_NAMES[label] for label in labels],
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
