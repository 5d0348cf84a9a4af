"""The TFDS builder over tiny prepared sets (8 images): the paper's four classes, and any others."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alexnet_jax import errors
from alexnet_jax.data import CLASS_NAMES, paper_split, write_prepared

tfds = pytest.importorskip("tensorflow_datasets")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    directory = tmp_path_factory.mktemp("prepared")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (8, 256, 256, 3), dtype=np.uint8)
    labels = np.array([0, 1, 2, 3, 2, 2, 1, 0])
    metadata = pd.DataFrame({"id": [f"J{i:03d}" for i in range(8)], "ttype": [-5, 0, 4, np.nan, 1, 9, -3, -5]})
    write_prepared(directory, images, labels, metadata, name="tiny", source="test", class_names=CLASS_NAMES)
    return directory, images, labels


def test_build_and_read_all(prepared, tmp_path):
    from alexnet_jax.data.tfds_builder import NAME, build_tfds, load_tfds_builder

    directory, images, labels = prepared
    builder = build_tfds(directory, tmp_path)
    assert builder.name == NAME and builder.info.splits["train"].num_examples == 8
    features = builder.info.features
    assert features["label"].names == list(CLASS_NAMES)
    assert tuple(features["image"].shape) == (256, 256, 3)
    examples = sorted(tfds.as_numpy(builder.as_dataset(split="train")), key=lambda e: e["index"])
    assert [int(e["index"]) for e in examples] == list(range(8))
    for e in examples:
        i = int(e["index"])
        np.testing.assert_array_equal(e["image"], images[i])  # PNG: lossless
        assert int(e["label"]) == labels[i] and e["id"].decode() == f"J{i:03d}"
    assert np.isnan(examples[3]["ttype"]) and examples[2]["ttype"] == 4.0

    # read back without the prepared directory: by name, and straight from the files
    again = load_tfds_builder(tmp_path)
    assert again.info.splits["train"].num_examples == 8
    ds = tfds.load(NAME, split="train", data_dir=str(tmp_path), download=False)
    assert sum(1 for _ in ds) == 8
    from_dir = tfds.builder_from_directory(str(tmp_path / NAME / "all" / "1.0.0"))
    image, label = next(iter(tfds.as_numpy(from_dir.as_dataset(split="train", as_supervised=True))))
    assert image.shape == (256, 256, 3) and 0 <= int(label) < 4


def test_paper_run_config(prepared, tmp_path):
    from alexnet_jax.data.tfds_builder import build_tfds

    directory, _, labels = prepared
    builder = build_tfds(directory, tmp_path, run_index=12)
    train, test = paper_split(12, num_examples=8)
    assert builder.builder_config.name == "paper_run12"
    got_test = sorted(int(e["index"]) for e in tfds.as_numpy(builder.as_dataset(split="test")))
    got_train = sorted(int(e["index"]) for e in tfds.as_numpy(builder.as_dataset(split="train")))
    assert got_test == test.tolist() and got_train == sorted(train.tolist())


def test_unbuilt_without_prepared_dir_is_a_clear_error(tmp_path):
    from alexnet_jax.data.tfds_builder import load_tfds_builder

    with pytest.raises(ValueError, match="build_tfds"):
        load_tfds_builder(tmp_path).download_and_prepare()


def write_small_set(directory, class_names, seed=1):
    """8 random images whose labels cycle through `class_names`."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (8, 256, 256, 3), dtype=np.uint8)
    labels = np.arange(8) % len(class_names)
    write_prepared(directory, images, labels, name=f"tiny-{len(class_names)}", source="test", class_names=class_names)
    return labels


@pytest.mark.parametrize("class_names", [["smooth", "featured"], ["a", "b", "c"]])
def test_labels_are_the_manifests_classes(class_names, tmp_path):
    """The ClassLabel, the description and the metadata follow the manifest; so does a later read
    without the prepared directory."""
    from alexnet_jax.data.tfds_builder import build_tfds, load_tfds_builder

    labels = write_small_set(tmp_path / "prepared", class_names)
    builder = build_tfds(tmp_path / "prepared", tmp_path / "tfds", run_index=0)
    assert builder.info.features["label"].names == class_names
    assert builder.info.features["label"].num_classes == len(class_names)
    assert f"{len(class_names)} classes in label order: {', '.join(class_names)}" in builder.info.description
    assert builder.info.metadata["class_names"] == class_names
    examples = list(tfds.as_numpy(builder.as_dataset(split="train"))) + list(
        tfds.as_numpy(builder.as_dataset(split="test"))
    )
    assert sorted((int(e["index"]), int(e["label"])) for e in examples) == list(enumerate(labels.tolist()))
    again = load_tfds_builder(tmp_path / "tfds", "paper_run0")
    assert again.info.features["label"].names == class_names
    assert again.info.features["label"].int2str(len(class_names) - 1) == class_names[-1]


def test_a_build_over_another_set_is_refused(tmp_path):
    """TFDS would hand back the set already built under data_dir; another set's classes (a reordering
    too) or files are named instead."""
    from alexnet_jax.data.tfds_builder import build_tfds

    write_small_set(tmp_path / "abc", ["a", "b", "c"])
    build_tfds(tmp_path / "abc", tmp_path / "tfds")
    write_small_set(tmp_path / "ab", ["a", "b"])
    with pytest.raises(errors.PreparedDataError, match=r"has the classes \['a', 'b', 'c'\], but .* has \['a', 'b'\]"):
        build_tfds(tmp_path / "ab", tmp_path / "tfds")
    write_small_set(tmp_path / "cba", ["c", "b", "a"])
    with pytest.raises(errors.PreparedDataError, match=r"\['a', 'b', 'c'\], but .* has \['c', 'b', 'a'\]"):
        build_tfds(tmp_path / "cba", tmp_path / "tfds")
    write_small_set(tmp_path / "abc2", ["a", "b", "c"], seed=2)
    with pytest.raises(errors.PreparedDataError, match="built from other files"):
        build_tfds(tmp_path / "abc2", tmp_path / "tfds")
    assert build_tfds(tmp_path / "abc", tmp_path / "tfds").info.splits["train"].num_examples == 8  # the same set
    assert build_tfds(tmp_path / "ab", tmp_path / "other").info.features["label"].names == ["a", "b"]
