"""Both input pipelines: batching, sharding, determinism, and the same augmentation as each other."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from scipy import stats

from alexnet_jax.inputs import augment as aug
from alexnet_jax.inputs import pipeline as ip
from alexnet_jax.inputs.augment import AugmentConfig

SIZE, CROP, N = 40, 32, 22
TRAIN = AugmentConfig(crop_size=CROP)
CENTER = AugmentConfig(crop_size=CROP, random_crop=False, hflip=False, vflip=False, rotation_degrees=0.0)
N_PARAMS = 6000  # parameter draws for the distribution checks (params only, no images)
_APPLY = jax.jit(aug.apply_augment, static_argnums=2)
_EVAL = jax.jit(aug.eval_transform, static_argnums=1)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (N, SIZE, SIZE, 3), dtype=np.uint8), rng.integers(0, 4, N)


@pytest.fixture(scope="module")
def mesh():
    return jax.make_mesh((4,), ("data",))


def _make(name, data, mesh, eval_augment=CENTER, **kw):
    images, labels = data
    return ip.make_pipeline(
        name, images, labels, image_size=SIZE, train_augment=TRAIN, eval_augment=eval_augment, mesh=mesh, **kw
    )


@pytest.fixture(scope="module")
def tf_params():
    return ip.tf_sample_params_for_epoch(N_PARAMS, 11, SIZE, TRAIN)


@pytest.fixture(scope="module")
def jax_params():
    return {k: np.asarray(v) for k, v in aug.sample_augment_params(jax.random.key(11), N_PARAMS, SIZE, TRAIN).items()}


def test_epoch_batches_pads_and_masks():
    order = np.array([5, 3, 9, 0, 7, 2, 8, 1, 4, 6])
    batches = list(ip.epoch_batches(order, 4))
    assert len(batches) == 3
    for idx, mask in batches:
        assert idx.dtype == np.int32 and idx.shape == (4,) and mask.dtype == np.float32 and mask.shape == (4,)
    idx, mask = batches[-1]
    np.testing.assert_array_equal(idx, [4, 6, 5, 5])  # padded with order[0]
    np.testing.assert_array_equal(mask, [1, 1, 0, 0])
    kept = np.concatenate([i[m > 0] for i, m in batches])
    np.testing.assert_array_equal(kept, order)
    assert all(m.all() for _, m in ip.epoch_batches(np.arange(8), 4))
    assert list(ip.epoch_batches(np.zeros(0, np.int64), 4)) == []


def test_masked_mean_equals_smaller_last_batch():
    """The masked mean over the padded batch is the mean over the real examples (drop_last=False)."""
    losses = np.random.default_rng(1).random(10).astype(np.float32)
    for idx, mask in ip.epoch_batches(np.arange(10), 4):
        want = losses[idx[mask > 0]].mean()
        assert np.isclose((losses[idx] * mask).sum() / mask.sum(), want)


def test_param_distributions_uniform(tf_params, jax_params, record_property):
    span = SIZE - CROP + 1
    for source, p in (("tf", tf_params), ("jax", jax_params)):
        for key in ("offset_y", "offset_x"):
            counts = np.bincount(p[key], minlength=span)
            assert len(counts) == span, f"{source} {key} left the range"
            pvalue = stats.chisquare(counts).pvalue
            record_property(f"{source}_{key}_chi2_p", float(pvalue))  # numpy floats cannot cross to xdist's controller
            assert pvalue > 1e-3, f"{source} {key} offsets not uniform: {counts}"
        for key in ("hflip", "vflip"):
            hits = int(p[key].sum())
            assert stats.binomtest(hits, len(p[key]), 0.5).pvalue > 1e-3, f"{source} {key} rate {hits / len(p[key])}"
        angles = p["angle_deg"]
        assert angles.min() >= -180.0 and angles.max() <= 180.0
        ks = stats.kstest(angles, stats.uniform(loc=-180.0, scale=360.0).cdf).pvalue
        record_property(f"{source}_angle_ks_p", float(ks))
        assert ks > 1e-3, f"{source} angles not uniform on [-180, 180]"
    # And the two samplers against each other.
    assert stats.ks_2samp(tf_params["angle_deg"], jax_params["angle_deg"]).pvalue > 1e-3
    for key in ("offset_y", "offset_x"):
        table = np.stack([np.bincount(tf_params[key], minlength=span), np.bincount(jax_params[key], minlength=span)])
        assert stats.chi2_contingency(table).pvalue > 1e-3


def test_tf_params_independent_across_fields_and_streams(tf_params):
    assert abs(np.corrcoef(tf_params["offset_y"], tf_params["offset_x"])[0, 1]) < 0.05
    assert abs(np.corrcoef(tf_params["hflip"], tf_params["vflip"])[0, 1]) < 0.05
    evals = ip.tf_sample_params_for_epoch(500, 11, SIZE, TRAIN, train=False)
    assert not np.array_equal(evals["angle_deg"], tf_params["angle_deg"][:500])
    again = ip.tf_sample_params_for_epoch(500, 11, SIZE, TRAIN)
    for k in again:
        np.testing.assert_array_equal(again[k], tf_params[k][:500])


def _tf_apply_all(images, params, cfg):
    """`ip.tf_apply_augment` on each image with its own parameters (mapped, as the pipeline does)."""
    tf = ip.import_tf()
    ds = tf.data.Dataset.from_tensor_slices((images, params)).map(lambda im, p: ip.tf_apply_augment(im, p, cfg))
    return next(iter(ds.batch(len(images)).as_numpy_iterator()))


def _jax_apply(images, params, cfg):
    return np.asarray(_APPLY(jnp.asarray(images), {k: jnp.asarray(v) for k, v in params.items()}, cfg))


def _unit(images_u8):
    """The tf_data pipeline's uint8 crops as the floats its step computes from them on the device."""
    return np.asarray(aug.to_unit_float(jnp.asarray(images_u8)))


def test_tf_values_are_to_tensor_values():
    """Inside a tf.data map (graph mode, grappler on), u8 -> float equals torch's x / 255 for all 256 values."""
    import torch

    cfg = AugmentConfig(crop_size=16, random_crop=False, hflip=False, vflip=False, rotation_degrees=0.0)
    image = np.repeat(np.arange(256, dtype=np.uint8).reshape(16, 16, 1), 3, axis=-1)
    got = _tf_apply_all(image[None], ip.tf_sample_params_for_epoch(1, 0, 16, cfg), cfg)[0]
    np.testing.assert_array_equal(got, (torch.from_numpy(image).float() / 255).numpy())


def test_same_params_same_pixels_crop_flip_and_quarter_turns(data, tf_params):
    images = data[0][:12]
    params = {k: v[:12].copy() for k, v in tf_params.items()}
    params["angle_deg"] = np.zeros(12, np.float32)
    no_rot = dataclasses.replace(TRAIN, rotation_degrees=0.0)
    np.testing.assert_array_equal(_tf_apply_all(images, params, no_rot), _jax_apply(images, params, no_rot))
    params["angle_deg"] = np.array([0, 90, -90, 180, -180, 270] * 2, np.float32)
    np.testing.assert_array_equal(_tf_apply_all(images, params, TRAIN), _jax_apply(images, params, TRAIN))


def test_same_params_same_pixels_arbitrary_angles(data, tf_params, record_property):
    images = data[0]
    params = {k: v[:N] for k, v in tf_params.items()}
    tf_out, jax_out = _tf_apply_all(images, params, TRAIN), _jax_apply(images, params, TRAIN)
    differ = int(np.any(tf_out != jax_out, axis=-1).sum())
    record_property("tf_vs_jax_mismatch_pixels", differ)
    print(f"tf vs jax, {N} arbitrary angles: {differ} of {N * CROP * CROP} pixels differ")
    assert differ / (N * CROP * CROP) < 1e-3


@pytest.mark.parametrize("name", ip.PIPELINES)
def test_batches_sharded_labels_masked(name, data, mesh):
    pipe = _make(name, data, mesh)
    assert isinstance(pipe, ip.Pipeline) and pipe.name == name
    sharding = NamedSharding(mesh, P("data"))
    order = np.random.default_rng(2).permutation(N)
    batches = list(pipe.batches(order, 8, train=True, seed=0))
    assert len(batches) == 3
    expected_keys = {"labels", "mask"} | ({"indices"} if name == "on_device" else {"images"})
    for b in batches:
        assert set(b) == expected_keys
        for v in b.values():
            assert v.sharding.is_equivalent_to(sharding, v.ndim), (name, v.sharding)
        assert b["labels"].dtype == jnp.int32 and b["mask"].dtype == jnp.float32
    mask = np.concatenate([np.asarray(b["mask"]) for b in batches])
    labels = np.concatenate([np.asarray(b["labels"]) for b in batches])
    np.testing.assert_array_equal(mask, [1] * N + [0] * 2)
    np.testing.assert_array_equal(labels[:N], data[1][order])
    if name == "on_device":
        assert pipe.resident.shape == (N, SIZE, SIZE, 3) and pipe.resident.sharding.is_fully_replicated
        np.testing.assert_array_equal(np.concatenate([np.asarray(b["indices"]) for b in batches])[:N], order)
    else:
        assert pipe.resident is None
        # uint8 crops: a quarter of float32's bytes per batch; the step makes them floats on the device
        assert batches[0]["images"].shape == (8, CROP, CROP, 3) and batches[0]["images"].dtype == jnp.uint8


@pytest.mark.parametrize("name", ip.PIPELINES)
def test_skipped_and_packed_batches(name, data, mesh):
    pipe = _make(name, data, mesh)
    first, second = np.random.default_rng(4).permutation(N), np.random.default_rng(5).permutation(N)
    full = list(pipe.batches(first, 8, train=True, seed=3))
    later = list(pipe.batches(first, 8, train=True, seed=3, skip=1))  # a run resumed at step 1
    assert len(later) == len(full) - 1
    for a, b in zip(full[1:], later, strict=True):
        for key in a:
            np.testing.assert_array_equal(np.asarray(a[key]), np.asarray(b[key]))
    other = list(pipe.batches(second, 8, train=True, seed=5))
    packed = list(pipe.packed_batches([first, second], 8, train=True, seeds=[3, 5]))
    assert len(packed) == len(full)
    for p, a, b in zip(packed, full, other, strict=True):
        for key in a:
            assert p[key].sharding.is_equivalent_to(NamedSharding(mesh, P(None, "data")), p[key].ndim)
            np.testing.assert_array_equal(np.asarray(p[key][0]), np.asarray(a[key]))
            np.testing.assert_array_equal(np.asarray(p[key][1]), np.asarray(b[key]))
    with pytest.raises(ValueError, match="equally long"):
        pipe.packed_batches([first, second[:-1]], 8, train=True, seeds=[3, 5])


@pytest.mark.parametrize("axis_type", ["Explicit", "Auto"])
def test_on_device_preprocess_in_jit(axis_type, data):
    mesh = jax.make_mesh((4,), ("data",), axis_types=(getattr(jax.sharding.AxisType, axis_type),))
    pipe = _make("on_device", data, mesh)
    step = jax.jit(pipe.preprocess, static_argnums=3)
    batch = next(iter(pipe.batches(np.arange(N), 8, train=True, seed=0)))
    out = step(pipe.resident, batch, jax.random.key(5), True)
    assert out.shape == (8, CROP, CROP, 3) and out.sharding.spec[0] == "data"
    np.testing.assert_array_equal(np.asarray(out), np.asarray(step(pipe.resident, batch, jax.random.key(5), True)))
    ref = jax.jit(aug.augment, static_argnums=2)(jax.random.key(5), jnp.asarray(data[0][:8]), TRAIN)
    np.testing.assert_array_equal(np.asarray(out), np.asarray(ref))
    centre = step(pipe.resident, batch, jax.random.key(5), False)
    ref = _EVAL(jnp.asarray(data[0][:8]), TRAIN)
    np.testing.assert_array_equal(np.asarray(centre), np.asarray(ref))


def test_tf_data_images_equal_jax_apply_of_its_params(data, mesh):
    pipe = _make("tf_data", data, mesh)
    order = np.random.default_rng(3).permutation(N)
    batches = list(pipe.dataset(order, 8, train=True, seed=4, with_params=True).as_numpy_iterator())
    differ = 0
    for k, (idx, _) in enumerate(ip.epoch_batches(order, 8)):
        b = batches[k]
        jax_out = _jax_apply(data[0][idx], b["params"], TRAIN)
        differ += int(np.any(jax_out != _unit(b["images"]), axis=-1).sum())
    assert differ / (len(batches) * 8 * CROP * CROP) < 1e-3
    # batches() yields the same images as the dataset it wraps.
    via_mesh = [np.asarray(b["images"]) for b in pipe.batches(order, 8, train=True, seed=4)]
    for a, b in zip(via_mesh, batches, strict=True):
        np.testing.assert_array_equal(a, b["images"])


def test_tf_data_deterministic_given_seed(data, mesh):
    pipe = _make("tf_data", data, mesh, num_parallel_calls=4)
    order = np.arange(N)
    run = lambda seed: np.concatenate([np.asarray(b["images"]) for b in pipe.batches(order, 8, train=True, seed=seed)])  # noqa: E731
    a, b, c = run(1), run(1), run(2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_tf_data_eval_config_selects_centre_or_random(data, mesh):
    order = np.arange(N)
    centre = _make("tf_data", data, mesh, eval_augment=CENTER)
    got = np.concatenate([np.asarray(b["images"]) for b in centre.batches(order, 8, train=False, seed=0)])[:N]
    np.testing.assert_array_equal(_unit(got), np.asarray(_EVAL(jnp.asarray(data[0]), CENTER)))
    random = _make("tf_data", data, mesh, eval_augment=TRAIN)  # the paper's randomly augmented test set
    batches = list(random.dataset(order, 8, train=False, seed=0, with_params=True).as_numpy_iterator())
    got = np.concatenate([b["images"] for b in batches])[:N]
    assert not np.array_equal(_unit(got), np.asarray(_EVAL(jnp.asarray(data[0]), CENTER)))
    angles = np.concatenate([b["params"]["angle_deg"] for b in batches])
    assert np.abs(angles).max() > 0
    train = list(random.dataset(order, 8, train=True, seed=0, with_params=True).as_numpy_iterator())
    assert not np.array_equal(angles, np.concatenate([b["params"]["angle_deg"] for b in train]))


def test_resize_once_to_image_size(data, mesh):
    images, labels = data
    cfg = AugmentConfig(crop_size=24)
    for name in ip.PIPELINES:
        pipe = ip.make_pipeline(name, images, labels, image_size=32, train_augment=cfg, eval_augment=cfg, mesh=mesh)
        batch = next(iter(pipe.batches(np.arange(N), 4, train=False, seed=0)))
        out = jax.jit(pipe.preprocess, static_argnums=3)(pipe.resident, batch, jax.random.key(0), False)
        assert out.shape == (4, 24, 24, 3)
        if name == "on_device":
            np.testing.assert_array_equal(np.asarray(pipe.resident), aug.resize_images(images, 32))


@pytest.mark.parametrize("name", ip.PIPELINES)
def test_both_pipelines_scale_the_inputs_as_asked(name, data, mesh):
    """'none' hands the model the [0, 1] pixels, bit for bit; the others (x - mean) / std of
    augment.NORMALIZATION_STATS, computed on the same augmented batch."""
    out = {}
    for how in aug.NORMALIZATION_STATS:
        pipe = _make(name, data, mesh, normalize=how)
        batch = next(iter(pipe.batches(np.arange(N), 8, train=True, seed=2)))
        out[how] = np.asarray(jax.jit(pipe.preprocess, static_argnums=3)(pipe.resident, batch, jax.random.key(1), True))
    pixels = out["none"]
    assert pixels.min() >= 0 and pixels.max() <= 1
    np.testing.assert_array_equal(pixels, np.asarray(_unit(np.rint(pixels * 255).astype(np.uint8))))
    mean, std = (np.asarray(v, np.float32) for v in aug.NORMALIZATION_STATS["imagenet"])
    np.testing.assert_allclose(out["imagenet"], (pixels - mean) / std, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(out["inception"], 2 * pixels - 1, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="unknown input normalization 'imagenet1k'.*none, imagenet, inception"):
        _make(name, data, mesh, normalize="imagenet1k")


def test_clear_errors(data, mesh):
    for name in ip.PIPELINES:
        pipe = _make(name, data, mesh)
        with pytest.raises(ValueError, match=r"batch_size=6 .*4 devices"):
            pipe.batches(np.arange(N), 6, train=True, seed=0)
        with pytest.raises(ValueError, match="outside"):
            pipe.batches(np.array([0, N]), 4, train=True, seed=0)
    with pytest.raises(ValueError, match="unknown input pipeline"):
        _make("torch", data, mesh)
    with pytest.raises(ValueError, match="train_augment.*crop_size"):
        ip.make_pipeline(
            "on_device", data[0], data[1], image_size=24, train_augment=TRAIN, eval_augment=CENTER, mesh=mesh
        )
    with pytest.raises(ValueError, match="labels"):
        ip.make_pipeline(
            "on_device", data[0], data[1][:-1], image_size=SIZE, train_augment=TRAIN, eval_augment=CENTER, mesh=mesh
        )
