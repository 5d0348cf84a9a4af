"""The prepared data-set format: round trip, integrity checks, and clear refusals."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from alexnet_jax import paper
from alexnet_jax.data import CLASS_NAMES, load_prepared, read_manifest, write_prepared
from alexnet_jax.data.prepared import METADATA_COLUMNS, SCHEMA
from alexnet_jax.errors import PreparedDataError


def tiny(n=8, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 256, 256, 3), dtype=np.uint8)
    labels = np.arange(n) % 4
    return images, labels


def test_round_trip_with_generator_info(tmp_path):
    images, labels = tiny()
    generator = {"name": "alexnet_jax.synthetic", "version": "1.0.0", "seed": 3, "params": {"k": 1}}
    manifest = write_prepared(
        tmp_path,
        images,
        labels,
        name="t",
        source="unit test",
        generator=generator,
        extra={"note": "x"},
        class_names=paper.CLASS_NAMES,
    )
    data = load_prepared(tmp_path, verify=True)
    np.testing.assert_array_equal(data.images, images)
    np.testing.assert_array_equal(data.labels, labels)
    assert isinstance(data.images, np.memmap)
    assert list(data.metadata.columns[: len(METADATA_COLUMNS)]) == list(METADATA_COLUMNS)
    assert list(data.metadata["class_name"]) == [CLASS_NAMES[label] for label in labels]
    on_disk = read_manifest(tmp_path)
    assert on_disk == json.loads(json.dumps(manifest))
    assert on_disk["schema"] == SCHEMA and on_disk["generator"] == generator and on_disk["note"] == "x"
    assert on_disk["class_counts"] == [2, 2, 2, 2] and on_disk["num_examples"] == 8
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_metadata_is_kept_with_ids_as_text(tmp_path):
    images, labels = tiny(4)
    metadata = pd.DataFrame(
        {
            "id": ["0001", "0002", "J1+2", "x"],
            "ttype": [-5, 0, 3, 99],
            "ra": [1.0, 2.0, np.nan, 4.0],
            "scale": [0.1, 0.2, 0.3, 0.4],
        }
    )
    write_prepared(tmp_path, images, labels, metadata, name="m", source="s", class_names=paper.CLASS_NAMES)
    data = load_prepared(tmp_path)
    assert list(data.metadata["id"]) == ["0001", "0002", "J1+2", "x"]
    assert data.metadata["ttype"].tolist() == [-5, 0, 3, 99]
    assert np.isnan(data.metadata["ra"][2]) and data.metadata["scale"].tolist() == [0.1, 0.2, 0.3, 0.4]


def test_tampering_is_detected(tmp_path):
    images, labels = tiny()
    write_prepared(tmp_path, images, labels, name="t", source="s", class_names=paper.CLASS_NAMES)
    flipped = labels.copy()
    flipped[0] = 3
    np.save(tmp_path / "labels.npy", flipped)
    load_prepared(tmp_path)  # without verify, only shapes are checked
    with pytest.raises(PreparedDataError, match="labels.npy: sha256 .* does not match"):
        load_prepared(tmp_path, verify=True)


def test_refusals(tmp_path):
    images, labels = tiny()
    with pytest.raises(PreparedDataError, match=r"\(N, 256, 256, 3\) uint8"):
        write_prepared(tmp_path, images[:, :128], labels, name="t", source="s", class_names=paper.CLASS_NAMES)
    with pytest.raises(PreparedDataError, match="uint8"):
        write_prepared(tmp_path, images.astype(np.float32), labels, name="t", source="s", class_names=paper.CLASS_NAMES)
    with pytest.raises(PreparedDataError, match="labels must be"):
        write_prepared(tmp_path, images, labels[:3], name="t", source="s", class_names=paper.CLASS_NAMES)
    with pytest.raises(PreparedDataError, match="labels must lie in 0..3"):
        write_prepared(tmp_path, images, labels + 1, name="t", source="s", class_names=paper.CLASS_NAMES)
    with pytest.raises(PreparedDataError, match="metadata has 2 rows"):
        write_prepared(
            tmp_path,
            images,
            labels,
            pd.DataFrame({"id": ["a", "b"]}),
            name="t",
            source="s",
            class_names=paper.CLASS_NAMES,
        )
    with pytest.raises(PreparedDataError, match="no manifest.json.*prepare --dataset=synthetic"):
        read_manifest(tmp_path / "nothing")
    write_prepared(tmp_path, images, labels, name="t", source="s", class_names=paper.CLASS_NAMES)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    (tmp_path / "manifest.json").write_text(json.dumps({**manifest, "schema": "other/9"}))
    with pytest.raises(PreparedDataError, match="schema 'other/9'"):
        load_prepared(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({**manifest, "num_examples": 9}))
    with pytest.raises(PreparedDataError, match="disagree with the manifest's 9 examples"):
        load_prepared(tmp_path)
