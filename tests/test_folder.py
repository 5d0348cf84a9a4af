"""Bring-your-own folder: pairing, image checks and conversions, and safe output."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from alexnet_jax.data.class_map import parse_class_map
from alexnet_jax.data.folder import ingest_folder, load_image, prepare_folder, staged_output, to_rgb
from alexnet_jax.data.prepared import load_prepared
from alexnet_jax.errors import BadImageError, FolderError, LabelError, PreparedDataError

TTYPES = [-5, 0, 3, 10, 5, -2]
LABELS = [0, 1, 2, 3, 2, 1]


def solid(value: int, size=(40, 30)) -> Image.Image:
    return Image.new("RGB", size, (value, 255 - value, value // 2))


def make_folder(tmp_path, n=6, ext=".jpg"):
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(n):
        # names sort in row order; the colour encodes the row
        solid(40 * i).save(folder / f"gal_{i:03d}{ext}", quality=95)
    catalog = pd.DataFrame(
        {
            "name": [f"gal_{i:03d}" for i in range(n)],
            "TType": TTYPES[:n],
            "RAJ2000": np.arange(n) + 0.5,
            "DEJ2000": -np.arange(n) - 0.25,
        }
    )
    path = tmp_path / "catalog.csv"
    catalog.to_csv(path, index=False)
    return folder, catalog, path


def row_colour(images: np.ndarray) -> np.ndarray:
    return images[:, 128, 128, 0].astype(int)


def test_positional_pairing_follows_sorted_names(tmp_path):
    folder, catalog, _ = make_folder(tmp_path)
    result = ingest_folder(folder, catalog)
    assert result.images.shape == (6, 256, 256, 3) and result.images.dtype == np.uint8
    np.testing.assert_array_equal(result.labels, LABELS)
    assert np.all(np.abs(row_colour(result.images) - 40 * np.arange(6)) <= 3)  # JPEG rounding
    assert list(result.metadata["source_file"]) == [f"gal_{i:03d}.jpg" for i in range(6)]
    np.testing.assert_allclose(result.metadata["ra"], np.arange(6) + 0.5)
    np.testing.assert_allclose(result.metadata["ttype"], TTYPES)
    assert result.dropped == [] and list(result.metadata["catalog_row"]) == list(range(6))


def test_count_mismatch_is_an_error(tmp_path):
    folder, catalog, _ = make_folder(tmp_path)
    solid(1).save(folder / "stray.png")
    with pytest.raises(FolderError, match="holds 7 image files but catalogue has 6 rows"):
        ingest_folder(folder, catalog)
    # a glob restricts the files, as the original's *.jpg did
    assert len(ingest_folder(folder, catalog, pattern="*.jpg").labels) == 6


def test_id_pairing(tmp_path):
    folder, catalog, _ = make_folder(tmp_path)
    solid(1).save(folder / "unrelated.jpg")
    shuffled = catalog.iloc[[3, 0, 5, 1, 4, 2]].reset_index(drop=True)
    result = ingest_folder(folder, shuffled, id_column="name")
    np.testing.assert_array_equal(result.labels, np.array(LABELS)[[3, 0, 5, 1, 4, 2]])
    assert np.all(np.abs(row_colour(result.images) - 40 * np.array([3, 0, 5, 1, 4, 2])) <= 3)
    assert result.unused_files == ["unrelated.jpg"]
    assert list(result.metadata["id"]) == list(shuffled["name"])
    with_ext = shuffled.assign(name=shuffled["name"] + ".jpg")
    np.testing.assert_array_equal(ingest_folder(folder, with_ext, id_column="name").labels, result.labels)

    missing = shuffled.copy()
    missing.loc[2, "name"] = "gal_999"
    with pytest.raises(FolderError, match=r"row 2 \(gal_999\).*no file named 'gal_999'"):
        ingest_folder(folder, missing, id_column="name")
    dup = shuffled.copy()
    dup.loc[1, "name"] = dup.loc[0, "name"]
    with pytest.raises(FolderError, match="repeats gal_003"):
        ingest_folder(folder, dup, id_column="name")
    with pytest.raises(FolderError, match="id column 'nope' not found"):
        ingest_folder(folder, shuffled, id_column="nope")


def test_bad_images_fail_by_name_or_are_skipped_without_shifting_labels(tmp_path):
    folder, catalog, _ = make_folder(tmp_path)
    good = (folder / "gal_002.jpg").read_bytes()
    (folder / "gal_002.jpg").write_bytes(good[: len(good) // 2])  # truncated
    (folder / "gal_004.jpg").write_bytes(b"this is not an image")
    with pytest.raises(FolderError) as info:
        ingest_folder(folder, catalog)
    message = str(info.value)
    assert "2 of 6 images" in message and "gal_002.jpg" in message and "gal_004.jpg" in message
    assert "--on_bad_image=skip" in message

    result = ingest_folder(folder, catalog, on_bad_image="skip")
    keep = [0, 1, 3, 5]
    np.testing.assert_array_equal(result.labels, np.array(LABELS)[keep])
    assert np.all(np.abs(row_colour(result.images) - 40 * np.array(keep)) <= 3)
    assert [d["row"] for d in result.dropped] == [2, 4]
    assert [d["file"] for d in result.dropped] == ["gal_002.jpg", "gal_004.jpg"]
    assert list(result.metadata["catalog_row"]) == keep and list(result.metadata["index"]) == [0, 1, 2, 3]


def test_label_columns(tmp_path):
    folder, catalog, _ = make_folder(tmp_path)
    by_label = catalog.drop(columns=["TType"]).assign(label=LABELS)
    np.testing.assert_array_equal(ingest_folder(folder, by_label).labels, LABELS)
    by_class = catalog.drop(columns=["TType"]).assign(
        **{"class": ["Elliptical", "lenticular", "spiral", "irr_misc", "spiral", "lenticular"]}
    )
    np.testing.assert_array_equal(ingest_folder(folder, by_class).labels, LABELS)
    with pytest.raises(LabelError, match="no class column.*Columns found: name, RAJ2000, DEJ2000"):
        ingest_folder(folder, catalog.drop(columns=["TType"]))
    with pytest.raises(LabelError, match="bad values at rows 1"):
        ingest_folder(folder, by_label.assign(label=[0, 7, 1, 1, 1, 1]))
    with pytest.raises(LabelError, match="holds one class only"):
        ingest_folder(folder, by_class.assign(**{"class": ["disc"] * 6}))
    own = by_class.assign(**{"class": ["smooth", "disk", "disk", "odd", "disk", "smooth"]})
    result = ingest_folder(folder, own)  # any names: the classes are the column's values, sorted
    assert result.class_names == ["disk", "odd", "smooth"]
    np.testing.assert_array_equal(result.labels, [2, 0, 0, 1, 0, 2])
    assert list(result.metadata["class_name"]) == ["smooth", "disk", "disk", "odd", "disk", "smooth"]


def test_class_map_on_a_catalogue_column_drops_or_refuses_unmapped_rows(tmp_path):
    folder, catalog, _ = make_folder(tmp_path)  # TTypes -5, 0, 3, 10, 5, -2
    early_late = parse_class_map("early=..0; late=1..9")
    result = ingest_folder(folder, catalog, class_map=early_late, unmapped="drop")
    assert result.class_names == ["early", "late"]
    np.testing.assert_array_equal(result.labels, [0, 0, 1, 1, 0])
    assert list(result.metadata["catalog_row"]) == [0, 1, 2, 4, 5]  # row 3 (TType 10) is in no class
    assert np.all(np.abs(row_colour(result.images) - 40 * np.array([0, 1, 2, 4, 5])) <= 3)
    assert result.labelling["rows_in_no_class"] == 1 and result.labelling["unmapped_values"] == {"10": 1}
    with pytest.raises(LabelError, match=r"column 'TType' holds values in no class .*: 10 \(1 rows, first row 3\)"):
        ingest_folder(folder, catalog, class_map=early_late, unmapped="fail")
    with pytest.raises(LabelError, match="no column 'morph' for --class_column"):
        ingest_folder(folder, catalog, class_column="morph", class_map=early_late)


def test_mode_conversions(tmp_path):
    rgb = to_rgb(Image.new("L", (4, 4), 100))
    assert rgb.mode == "RGB" and np.asarray(rgb)[0, 0].tolist() == [100, 100, 100]
    rgba = Image.new("RGBA", (4, 4), (200, 100, 50, 128))  # half transparent: composite on black
    assert np.asarray(to_rgb(rgba))[0, 0].tolist() == [100, 50, 25]
    la = Image.new("LA", (4, 4), (200, 0))
    assert np.asarray(to_rgb(la))[0, 0].tolist() == [0, 0, 0]
    palette = Image.new("RGB", (4, 4), (10, 20, 30)).quantize(colors=4)
    assert palette.mode == "P"
    assert np.asarray(to_rgb(palette))[0, 0].tolist() == [10, 20, 30]
    cmyk = Image.new("CMYK", (4, 4), (0, 0, 0, 0))
    assert np.asarray(to_rgb(cmyk))[0, 0].tolist() == [255, 255, 255]
    sixteen = Image.fromarray(np.full((4, 4), 65535, np.uint16))
    assert np.asarray(to_rgb(sixteen))[0, 0].tolist() == [255, 255, 255]
    half = Image.fromarray(np.full((4, 4), 257 * 40, np.uint16))
    assert np.asarray(to_rgb(half))[0, 0].tolist() == [40, 40, 40]
    bilevel = Image.new("1", (4, 4), 1)
    assert np.asarray(to_rgb(bilevel))[0, 0].tolist() == [255, 255, 255]
    with pytest.raises(BadImageError, match="mode 'F'"):
        to_rgb(Image.new("F", (4, 4), 0.5))

    # through files: 16-bit PNG, palette GIF, RGBA PNG, greyscale TIFF, float TIFF refused
    paths = {
        "a16.png": Image.fromarray(np.full((8, 8), 257 * 90, np.uint16)),
        "p.gif": Image.new("RGB", (8, 8), (255, 0, 0)).convert("P"),
        "rgba.png": Image.new("RGBA", (8, 8), (255, 255, 255, 0)),
        "grey.tif": Image.new("L", (8, 8), 77),
    }
    expected = {"a16.png": [90] * 3, "p.gif": [255, 0, 0], "rgba.png": [0, 0, 0], "grey.tif": [77] * 3}
    for name, image in paths.items():
        image.save(tmp_path / name)
        array = load_image(tmp_path / name)
        assert array.shape == (256, 256, 3) and array.dtype == np.uint8
        assert array[100, 100].tolist() == expected[name], name
    Image.new("F", (8, 8), 0.5).save(tmp_path / "float.tif")
    with pytest.raises(BadImageError, match="no sound conversion"):
        load_image(tmp_path / "float.tif")


def test_resize_is_pil_bilinear(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 255, (100, 100, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "x.png")
    expected = np.asarray(Image.fromarray(pixels).resize((256, 256), Image.BILINEAR))
    np.testing.assert_array_equal(load_image(tmp_path / "x.png"), expected)


def test_prepare_folder_writes_a_prepared_set_and_protects_existing(tmp_path):
    folder, _, catalog_path = make_folder(tmp_path)
    out = tmp_path / "prepared"
    manifest, _ = prepare_folder(folder, catalog_path, out, progress=False)
    data = load_prepared(out, verify=True)
    np.testing.assert_array_equal(data.labels, LABELS)
    assert manifest["name"] == "folder" and manifest["class_counts"] == [1, 2, 2, 1]
    assert manifest["catalog"]["rows"] == 6 and len(manifest["catalog"]["sha256"]) == 64
    assert manifest["pairing"] == "sorted file names by row position"

    before = (out / "manifest.json").read_text()
    with pytest.raises(FolderError, match="already holds files; pass --overwrite"):
        prepare_folder(folder, catalog_path, out, progress=False)
    (folder / "gal_002.jpg").write_bytes(b"broken")  # a failing rebuild leaves the old set intact
    with pytest.raises(FolderError, match="gal_002.jpg"):
        prepare_folder(folder, catalog_path, out, overwrite=True, progress=False)
    assert (out / "manifest.json").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["catalog.csv", "images", "prepared"]
    manifest, _ = prepare_folder(folder, catalog_path, out, overwrite=True, on_bad_image="skip", progress=False)
    assert manifest["num_examples"] == 5 and manifest["dropped"][0]["file"] == "gal_002.jpg"
    (folder / "gal_000.jpg").write_bytes(b"broken")  # the only elliptical: skipping it would empty a class
    with pytest.raises(PreparedDataError, match="no examples of class\\(es\\) 'elliptical'"):
        prepare_folder(folder, catalog_path, out, overwrite=True, on_bad_image="skip", progress=False)
    assert len(load_prepared(out).labels) == 5  # the refused rebuild left the previous set
    assert sorted(p.name for p in tmp_path.iterdir()) == ["catalog.csv", "images", "prepared"]


def test_staged_output(tmp_path):
    target = tmp_path / "t"
    target.mkdir()  # an empty directory may be filled without --overwrite
    with staged_output(target) as staging:
        (staging / "a").write_text("1")
    assert (target / "a").read_text() == "1"
    with pytest.raises(RuntimeError), staged_output(target, overwrite=True) as staging:
        (staging / "b").write_text("2")
        raise RuntimeError("boom")
    assert sorted(p.name for p in target.iterdir()) == ["a"]
    assert [p.name for p in tmp_path.iterdir()] == ["t"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(FolderError, match="not a directory"), staged_output(tmp_path / "file"):
        pass


def test_a_catalogue_split_column_is_the_declared_split(tmp_path):
    folder, catalog, _ = make_folder(tmp_path)
    with_split = catalog.assign(split=["train", "Train", "validation", "test", "train", "val"])
    result = ingest_folder(folder, with_split)
    assert list(result.metadata["split"]) == ["train", "train", "val", "test", "train", "val"]
    with pytest.raises(FolderError, match=r"column 'split' must say train, val .*'holdout' at row 3"):
        ingest_folder(folder, with_split.assign(split=["train", "train", "val", "holdout", "train", "val"]))
