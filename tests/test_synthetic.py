"""The synthetic galaxy generator: contract, determinism, and a few physical checks."""

import json

import numpy as np
import pytest
from PIL import Image

from alexnet_jax.data import galaxy_render, synthetic
from alexnet_jax.data.labels import CLASS_NAMES, PAPER_CLASS_TOTALS, ttype_to_class
from alexnet_jax.data.prepared import METADATA_COLUMNS

N, SIZE = 40, 64


@pytest.fixture(scope="module")
def small():
    return synthetic.generate_synthetic(N, seed=7, image_size=SIZE, num_workers=0)


def test_shapes_and_dtypes(small):
    images, labels, metadata = small
    assert images.shape == (N, SIZE, SIZE, 3) and images.dtype == np.uint8
    assert labels.shape == (N,) and labels.dtype == np.int64
    assert len(metadata) == N


def test_full_size_images():
    images, labels, metadata = synthetic.generate_synthetic(3, seed=1, image_size=256, num_workers=0)
    assert images.shape == (3, 256, 256, 3) and images.dtype == np.uint8
    assert labels.shape == (3,) and list(metadata["index"]) == [0, 1, 2]
    assert all(images[k].std() > 2 for k in range(3))


def test_class_counts_follow_the_catalogue():
    assert synthetic.class_counts(14034).tolist() == list(PAPER_CLASS_TOTALS)
    for n in (0, 1, 7, 40, 1000, 12345, 14034, 100000):
        counts = synthetic.class_counts(n)
        assert counts.sum() == n and (counts >= 0).all()
        if n >= 1000:
            np.testing.assert_allclose(counts / n, synthetic.CLASS_FRACTIONS, atol=1e-3)
    assert sum(synthetic.CLASS_FRACTIONS) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="num_examples"):
        synthetic.class_counts(-1)


def test_labels_have_catalogue_counts_and_are_shuffled(small):
    _, labels, _ = small
    assert np.bincount(labels, minlength=4).tolist() == synthetic.class_counts(N).tolist()
    assert not np.array_equal(labels, np.sort(labels))


def test_metadata_columns_and_ttypes_agree_with_labels(small):
    _, labels, metadata = small
    for column in METADATA_COLUMNS:
        assert column in metadata.columns, column
    assert metadata["index"].tolist() == list(range(N))
    assert metadata["id"].is_unique
    assert metadata["ra"].isna().all() and metadata["dec"].isna().all()
    assert (metadata["source_file"] == "").all()
    np.testing.assert_array_equal(ttype_to_class(metadata["ttype"].to_numpy()), labels)
    np.testing.assert_array_equal(metadata["label"].to_numpy(), labels)
    assert metadata["class_name"].tolist() == [CLASS_NAMES[k] for k in labels]
    for column in ("sersic_n", "inclination_deg", "n_arms", "pitch_deg", "bar_strength", "seeing_arcsec", "native_px"):
        assert column in metadata.columns, column
    assert (metadata.loc[labels == 0, "ttype"] == -5).all()
    assert metadata.loc[labels == 2, "ttype"].between(1, 9).all()
    # Spirals have arms, ellipticals none.
    assert (metadata.loc[labels == 2, "n_arms"] >= 2).all()
    assert (metadata.loc[labels == 0, "n_arms"] == 0).all()


def test_same_seed_same_pixels_and_independent_of_workers(small):
    images, labels, metadata = small
    again, labels2, metadata2 = synthetic.generate_synthetic(N, seed=7, image_size=SIZE, num_workers=2)
    np.testing.assert_array_equal(images, again)
    np.testing.assert_array_equal(labels, labels2)
    assert metadata.equals(metadata2)


def test_different_seeds_differ():
    a, la, _ = synthetic.generate_synthetic(6, seed=3, image_size=SIZE, num_workers=0)
    b, lb, _ = synthetic.generate_synthetic(6, seed=4, image_size=SIZE, num_workers=0)
    assert not np.array_equal(a, b)
    a2, la2, _ = synthetic.generate_synthetic(6, seed=3, image_size=SIZE, num_workers=0)
    np.testing.assert_array_equal(a, a2)
    np.testing.assert_array_equal(la, la2)


def test_images_are_neither_blank_nor_saturated(small):
    images, _, _ = small
    flat = images.reshape(N, -1, 3).astype(np.float64)
    brightness = flat.mean(axis=(1, 2))
    assert (brightness > 3).all() and (brightness < 170).all(), brightness
    assert (flat.std(axis=(1, 2)) > 4).all()
    saturated = (images == 255).all(axis=-1).mean(axis=(1, 2))
    assert (saturated < 0.1).all(), saturated
    # The galaxy is centred: the middle is brighter than the border.
    centre = images[:, SIZE // 2 - 4 : SIZE // 2 + 4, SIZE // 2 - 4 : SIZE // 2 + 4].mean(axis=(1, 2, 3))
    border = np.concatenate([images[:, :4], images[:, -4:]], axis=1).mean(axis=(1, 2, 3))
    assert (centre > border + 10).all()


def _central_colour(image: np.ndarray) -> float:
    """log(R/B) of the galaxy's bright central pixels, i.e. an i-g colour index."""
    size = image.shape[0]
    core = image[size // 4 : 3 * size // 4, size // 4 : 3 * size // 4].reshape(-1, 3).astype(np.float64)
    bright = core[core.mean(axis=1) > np.percentile(core.mean(axis=1), 70)]
    return float(np.log((bright[:, 0].mean() + 1) / (bright[:, 2].mean() + 1)))


def test_ellipticals_are_redder_than_spirals():
    colours = {}
    for label in (0, 2):
        values = []
        for k in range(10):
            rng = np.random.default_rng(np.random.SeedSequence(11, spawn_key=(label, k)))
            image, _ = synthetic.render_example(label, rng, SIZE)
            values.append(_central_colour(image))
        colours[label] = np.mean(values)
    assert colours[0] > colours[2] + 0.05, colours


def test_sersic_normalisation():
    # The analytic total equals the numerical integral over elliptical annuli, 2 pi q R I(R) dR.
    re, q = 10.0, 0.6
    radius = np.geomspace(1e-6, 1e4, 400001)
    for n in (0.5, 1.0, 4.0, 6.0):
        profile = np.exp(-galaxy_render.sersic_b(n) * ((radius / re) ** (1 / n) - 1))
        total = np.trapezoid(2 * np.pi * q * radius * profile, radius)
        assert total == pytest.approx(galaxy_render.sersic_total(n, re, q), rel=1e-4)
        # b_n puts half the light inside R_e.
        inside = radius <= re
        half = np.trapezoid(2 * np.pi * q * radius[inside] * profile[inside], radius[inside])
        assert half / total == pytest.approx(0.5, abs=1e-3)


def test_generator_params_are_json_and_versioned():
    params = synthetic.generator_params()
    assert params["version"] == synthetic.GENERATOR_VERSION
    json.dumps(params)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="num_examples"):
        synthetic.generate_synthetic(-1)
    with pytest.raises(ValueError, match="image_size"):
        synthetic.generate_synthetic(2, image_size=4)
    with pytest.raises(ValueError, match="seed"):
        synthetic.generate_synthetic(2, seed=-1)


def test_gallery_writes_a_png(tmp_path):
    path = tmp_path / "gallery.png"
    synthetic.make_gallery(path, seed=0, per_class=2, image_size=64)
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size[0] > 100 and image.size[1] > 100
    assert not list(tmp_path.glob("*.tmp*"))
