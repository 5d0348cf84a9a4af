"""A folder per class (torchvision's ImageFolder layout), its declared split, and training on it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from alexnet_jax.data.class_map import parse_class_map
from alexnet_jax.data.commands import DataOptions, run
from alexnet_jax.data.image_folder import prepare_image_folder
from alexnet_jax.data.prepared import load_prepared
from alexnet_jax.errors import FolderError
from tests.helpers import tiny_config, train

CLASSES = ("spiral", "elliptical", "edge_on")


def _save(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (24, 24), (value, 255 - value, 40)).save(path)


def make_tree(root, *, splits=("train", "validation"), per_class=(6, 3)):
    """ROOT/<split>/<class>/<class>_<split>_<i>.png; the red channel encodes the class."""
    for split, count in zip(splits, per_class, strict=True):
        for k, name in enumerate(CLASSES):
            for i in range(count):
                _save(root / split / name / f"{name}_{split}_{i}.png", 60 * k + 10)
    (root / "README.md").write_text("a catalogue's notes: beside the folders, ignored and listed")
    return root


def test_split_folders_classes_and_metadata(tmp_path):
    root = make_tree(tmp_path / "tree")
    manifest, _ = prepare_image_folder(root, tmp_path / "out", progress=False)
    assert manifest["class_names"] == ["edge_on", "elliptical", "spiral"]  # sorted, as ImageFolder sorts them
    assert manifest["class_counts"] == [9, 9, 9] and manifest["num_examples"] == 27
    assert manifest["declared_split"] == {"train": 18, "val": 9, "test": 0}
    assert manifest["split_folders"] == {"train": "train", "validation": "val"}
    assert manifest["ignored_files"] == ["README.md"] and manifest["layout"] == "split/class folders"
    data = load_prepared(tmp_path / "out", verify=True)
    names = np.array(manifest["class_names"])[data.labels]
    assert list(names) == list(data.metadata["class_name"]) == list(data.metadata["folder"])
    red = data.images[:, 128, 128, 0].astype(int)
    assert np.all(np.abs(red - np.array([60 * CLASSES.index(n) + 10 for n in names])) <= 2)
    assert set(data.metadata["split"]) == {"train", "val"}
    assert data.metadata["source_file"].iloc[0].startswith("train/edge_on/")


def test_class_map_merges_folders(tmp_path):
    root = make_tree(tmp_path / "tree", splits=("train",), per_class=(4,))
    mapping = parse_class_map("disk=spiral,edge_on; smooth=elliptical")
    manifest, _ = prepare_image_folder(root, tmp_path / "out", class_map=mapping, progress=False)
    assert manifest["class_names"] == ["disk", "smooth"] and manifest["class_counts"] == [8, 4]
    assert manifest["declared_split"] == {"train": 12, "val": 0, "test": 0}
    only = parse_class_map("disk=spiral; smooth=elliptical")
    with pytest.raises(Exception, match=r"class folder' holds values in no class .*'edge_on'"):
        prepare_image_folder(root, tmp_path / "out2", class_map=only, progress=False)
    manifest, _ = prepare_image_folder(root, tmp_path / "out2", class_map=only, unmapped="drop", progress=False)
    assert manifest["num_examples"] == 8 and manifest["labelling"]["rows_in_no_class"] == 4


@pytest.mark.parametrize(
    ("arrange", "message"),
    [
        (lambda r: (r / "train" / "spiral" / "notes.txt").write_text("x"), r"train/spiral/notes.txt; remove or move"),
        (lambda r: _save(r / "train" / "loose.png", 5), r"outside a class folder .*train/loose.png"),
        (lambda r: (r / "extra" / "spiral").mkdir(parents=True), r"split folders \(train, validation\) beside other"),
        (lambda r: (r / "validation" / "merger").mkdir(), r"class folder\(s\) without images: validation/merger"),
        (lambda r: _save(r / "validation" / "merger" / "m.png", 9), r"'merger' have images in the held-out split"),
    ],
)
def test_bad_trees_are_refused_by_name_and_nothing_is_written(tmp_path, arrange, message):
    root = make_tree(tmp_path / "tree", per_class=(2, 1))
    arrange(root)
    with pytest.raises(FolderError, match=message):
        prepare_image_folder(root, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tree"]


def test_command_line_errors_are_one_line(tmp_path, capsys):
    root = make_tree(tmp_path / "tree", per_class=(2, 1))
    (root / "train" / "spiral" / "Thumbs.db").write_bytes(b"\0")
    options = DataOptions(dataset="image_folder", image_dir=str(root), output=str(tmp_path / "out"), progress=False)
    assert run("prepare", options) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "train/spiral/Thumbs.db" in err and err.startswith("error:")
    (root / "train" / "spiral" / "Thumbs.db").unlink()
    assert run("prepare", options) == 0
    assert "wrote 9 examples" in capsys.readouterr().out


def test_training_follows_the_data_classes_and_its_declared_split(tmp_path):
    root = make_tree(tmp_path / "tree", per_class=(6, 3))
    prepare_image_folder(root, tmp_path / "data", progress=False)
    results = train(tiny_config(tmp_path / "data", **{"epochs.scratch": 1}), tmp_path / "runs", 0, ["scratch"])
    assert results["class_names"] == ["edge_on", "elliptical", "spiral"]
    assert results["config"]["model"]["num_classes"] == 3 and results["config"]["data"]["split"] == "declared"
    split = results["split"]
    assert split["protocol"] == "declared" and split["train_size"] == 18 and split["test_size"] == 9
    assert split["test_counts"] == [3, 3, 3]
    matrix = np.asarray(results["arms"]["scratch"]["confusion_matrix"])
    assert matrix.shape == (3, 3) and matrix.sum() == 9
    (path,) = (tmp_path / "runs").rglob("results.json")
    on_disk = json.loads(path.read_text())
    assert on_disk["class_names"] == results["class_names"]
