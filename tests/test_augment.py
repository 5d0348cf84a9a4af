"""The JAX augmentation against numpy slicing and torchvision's own transforms."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as TF
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from alexnet_jax.inputs import augment as aug
from alexnet_jax.inputs.augment import AugmentConfig

SIZE, CROP = 40, 32
NO_ROT = AugmentConfig(crop_size=CROP, rotation_degrees=0.0)
ROT = AugmentConfig(crop_size=CROP)
# Jitted once: eager op-by-op dispatch compiles every small op and is slow on 2 cores.
_APPLY = jax.jit(aug.apply_augment, static_argnums=2)
_AUGMENT = jax.jit(aug.augment, static_argnums=2)
_SAMPLE = jax.jit(aug.sample_augment_params, static_argnums=(1, 2, 3))
_EVAL = jax.jit(aug.eval_transform, static_argnums=1)


def _images(n, size=SIZE, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def _params(n, *, oy, ox, hflip, vflip, angle):
    full = lambda v, dtype: jnp.broadcast_to(jnp.asarray(v, dtype), (n,))  # noqa: E731
    return dict(
        offset_y=full(oy, jnp.int32),
        offset_x=full(ox, jnp.int32),
        hflip=full(hflip, bool),
        vflip=full(vflip, bool),
        angle_deg=full(angle, jnp.float32),
    )


def _np_crop_flip(images, params, crop):
    out = []
    for k, image in enumerate(images):
        oy, ox = int(params["offset_y"][k]), int(params["offset_x"][k])
        c = image[oy : oy + crop, ox : ox + crop]
        if bool(params["hflip"][k]):
            c = c[:, ::-1]
        if bool(params["vflip"][k]):
            c = c[::-1]
        out.append(c)
    return np.stack(out)


def _to_tensor(u8):
    """What torchvision's ToTensor gives, as NHWC numpy."""
    return (torch.from_numpy(np.ascontiguousarray(u8)).float() / 255).numpy()


def _torch_rotate(crop_u8, angle):
    """torchvision's tensor rotate (NEAREST, fill 0) of one HWC uint8 crop -> HWC float32."""
    chw = torch.from_numpy(np.ascontiguousarray(crop_u8)).permute(2, 0, 1).float() / 255
    out = TF.rotate(chw, float(angle), interpolation=T.InterpolationMode.NEAREST, fill=[0.0])
    return out.permute(1, 2, 0).numpy()


def test_unit_float_matches_to_tensor():
    x = np.arange(256, dtype=np.uint8)
    np.testing.assert_array_equal(np.asarray(aug.to_unit_float(jnp.asarray(x))), _to_tensor(x))


@pytest.mark.parametrize("cfg", [NO_ROT, ROT], ids=["rotation_off", "angle_zero"])
def test_crop_and_flips_exact(cfg):
    images = _images(8)
    rng = np.random.default_rng(1)
    params = dict(
        offset_y=jnp.asarray(rng.integers(0, SIZE - CROP + 1, 8), jnp.int32),
        offset_x=jnp.asarray(rng.integers(0, SIZE - CROP + 1, 8), jnp.int32),
        hflip=jnp.asarray([0, 1, 0, 1, 0, 1, 0, 1], bool),
        vflip=jnp.asarray([0, 0, 1, 1, 0, 0, 1, 1], bool),
        angle_deg=jnp.zeros(8, jnp.float32),
    )
    got = np.asarray(_APPLY(jnp.asarray(images), params, cfg))
    assert got.dtype == np.float32 and got.shape == (8, CROP, CROP, 3)
    np.testing.assert_array_equal(got, _to_tensor(_np_crop_flip(images, params, CROP)))


@pytest.mark.parametrize("angle,k", [(90.0, 1), (-90.0, -1), (180.0, 2), (-180.0, 2), (270.0, 3)])
def test_quarter_turns_match_rot90_and_torchvision(angle, k):
    images = _images(3)
    params = _params(3, oy=5, ox=2, hflip=False, vflip=False, angle=angle)
    got = np.asarray(_APPLY(jnp.asarray(images), params, ROT))
    crops = images[:, 5 : 5 + CROP, 2 : 2 + CROP]
    # np.rot90 with k > 0 turns counter-clockwise, like torchvision's positive angles.
    np.testing.assert_array_equal(got, _to_tensor(np.rot90(crops, k, axes=(1, 2))))
    for b in range(3):
        np.testing.assert_array_equal(got[b], _torch_rotate(crops[b], angle))


def test_rotation_after_flips_matches_torchvision_pipeline_order():
    """crop -> hflip -> vflip -> rotate, as the original Compose ran them."""
    images = _images(4)
    params = _params(4, oy=1, ox=7, hflip=True, vflip=True, angle=90.0)
    params["vflip"] = jnp.asarray([True, False, True, False])
    got = np.asarray(_APPLY(jnp.asarray(images), params, ROT))
    for b in range(4):
        c = images[b, 1 : 1 + CROP, 7 : 7 + CROP]
        t = torch.from_numpy(np.ascontiguousarray(c)).permute(2, 0, 1).float() / 255
        t = TF.hflip(t)
        if bool(params["vflip"][b]):
            t = TF.vflip(t)
        t = TF.rotate(t, 90.0, interpolation=T.InterpolationMode.NEAREST, fill=[0.0])
        np.testing.assert_array_equal(got[b], t.permute(1, 2, 0).numpy())


@pytest.mark.parametrize("size,crop", [(40, 32), (256, 224)])
def test_arbitrary_angles_match_torchvision(size, crop, record_property):
    n = 24 if size == 40 else 4
    images = _images(n, size=size, seed=2)
    rng = np.random.default_rng(3)
    angles = rng.uniform(-180.0, 180.0, n).astype(np.float32)
    cfg = AugmentConfig(crop_size=crop)
    params = _params(n, oy=size - crop, ox=1, hflip=False, vflip=False, angle=0.0)
    params["angle_deg"] = jnp.asarray(angles)
    got = np.asarray(_APPLY(jnp.asarray(images), params, cfg))
    mismatched = 0
    for b in range(n):
        ref = _torch_rotate(images[b, size - crop :, 1 : 1 + crop], float(angles[b]))
        mismatched += int(np.any(got[b] != ref, axis=-1).sum())
    fraction = mismatched / (n * crop * crop)
    record_property("mismatch_fraction", fraction)
    print(f"rotation vs torchvision ({size}->{crop}, {n} angles): {mismatched} of {n * crop * crop} pixels differ")
    assert fraction < 1e-3


def test_outside_crop_is_zero_not_surrounding_image():
    image = np.full((1, SIZE, SIZE, 3), 128, np.uint8)
    image[:, 4 : 4 + CROP, 4 : 4 + CROP] = 255  # the crop; everything around it is 128
    for angle in (45.0, -30.0, 123.4):
        params = _params(1, oy=4, ox=4, hflip=False, vflip=False, angle=angle)
        got = np.asarray(_APPLY(jnp.asarray(image), params, ROT))[0]
        assert set(np.unique(got)) == {0.0, 1.0}, "a pixel came from outside the crop"
        assert np.all(got[0, 0] == 0) and np.all(got[CROP // 2, CROP // 2] == 1)
        ref = _torch_rotate(image[0, 4 : 4 + CROP, 4 : 4 + CROP], angle)
        assert abs(int((got == 0).sum()) - int((ref == 0).sum())) <= 3 * 3  # a few boundary roundings at most


@pytest.mark.parametrize("size,crop", [(40, 32), (41, 32), (43, 32), (256, 224), (255, 224)])
def test_center_crop_matches_torchvision(size, crop):
    images = _images(2, size=size)
    cfg = AugmentConfig(crop_size=crop)
    got = np.asarray(_EVAL(jnp.asarray(images), cfg))
    ref = T.CenterCrop(crop)(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255).permute(0, 2, 3, 1).numpy()
    np.testing.assert_array_equal(got, ref)
    # The randomness-free config draws the same parameters.
    det = AugmentConfig(crop_size=crop, random_crop=False, hflip=False, vflip=False, rotation_degrees=0.0)
    assert det.deterministic
    np.testing.assert_array_equal(np.asarray(_AUGMENT(jax.random.key(0), jnp.asarray(images), det)), ref)


def test_eval_transform_deterministic_and_ignores_random_fields():
    images = jnp.asarray(_images(4))
    a = np.asarray(aug.eval_transform(images, ROT))  # eager and jitted agree
    b = np.asarray(_EVAL(images, ROT))
    np.testing.assert_array_equal(a, b)
    off = aug.center_offset(SIZE, CROP)
    np.testing.assert_array_equal(a, _to_tensor(np.asarray(images)[:, off : off + CROP, off : off + CROP]))


def test_sample_params_ranges_and_switches():
    p = _SAMPLE(jax.random.key(0), 2000, SIZE, ROT)
    assert p["offset_y"].dtype == jnp.int32 and p["hflip"].dtype == jnp.bool_ and p["angle_deg"].dtype == jnp.float32
    for k in ("offset_y", "offset_x"):
        v = np.asarray(p[k])
        assert v.min() == 0 and v.max() == SIZE - CROP  # both ends of the inclusive range occur
    a = np.asarray(p["angle_deg"])
    assert a.min() >= -180.0 and a.max() <= 180.0 and a.min() < -170 and a.max() > 170
    q = _SAMPLE(jax.random.key(0), 2000, SIZE, ROT)
    for k in p:
        np.testing.assert_array_equal(np.asarray(p[k]), np.asarray(q[k]))
    det = _SAMPLE(
        jax.random.key(0),
        50,
        43,
        AugmentConfig(crop_size=32, random_crop=False, hflip=False, vflip=False, rotation_degrees=0.0),
    )
    assert set(np.asarray(det["offset_y"]).tolist()) == {6} and not np.asarray(det["hflip"]).any()
    assert not np.asarray(det["angle_deg"]).any()
    small = _SAMPLE(jax.random.key(1), 4000, SIZE, dataclasses.replace(ROT, rotation_degrees=10.0))
    assert np.abs(np.asarray(small["angle_deg"])).max() <= 10.0


def test_augment_is_deterministic_given_key_and_valid():
    images = jnp.asarray(_images(6))
    f = _AUGMENT
    a, b = np.asarray(f(jax.random.key(7), images, ROT)), np.asarray(f(jax.random.key(7), images, ROT))
    c = np.asarray(f(jax.random.key(8), images, ROT))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.shape == (6, CROP, CROP, 3) and a.min() >= 0.0 and a.max() <= 1.0


def test_bad_config_errors():
    with pytest.raises(ValueError, match="crop_size"):
        _SAMPLE(jax.random.key(0), 2, 16, AugmentConfig(crop_size=32))
    with pytest.raises(ValueError, match="rotation_degrees"):
        aug.check_config(AugmentConfig(crop_size=8, rotation_degrees=-5.0), 16)


def test_sharded_batch_keeps_its_sharding():
    mesh = jax.make_mesh((4,), ("data",))
    sharding = NamedSharding(mesh, P("data"))
    images = jax.device_put(_images(8), sharding)
    out = _AUGMENT(jax.random.key(0), images, ROT)
    assert out.sharding.spec[0] == "data"
    ref = _AUGMENT(jax.random.key(0), jnp.asarray(_images(8)), ROT)
    np.testing.assert_array_equal(np.asarray(out), np.asarray(ref))


def test_resize_images(tmp_path):
    images = _images(5, size=48)
    same = aug.resize_images(images, 48)
    assert same.dtype == np.uint8 and np.shares_memory(same, images)
    small = aug.resize_images(images, 24, chunk=2)  # chunk boundaries must not matter
    assert small.shape == (5, 24, 24, 3) and small.dtype == np.uint8
    np.testing.assert_array_equal(small, aug.resize_images(images, 24))
    flat = aug.resize_images(np.full((2, 48, 48, 3), 77, np.uint8), 20)
    assert np.all(flat == 77)
    # A memory-mapped prepared array works the same.
    path = tmp_path / "images.npy"
    np.save(path, images)
    np.testing.assert_array_equal(aug.resize_images(np.load(path, mmap_mode="r"), 24), small)
    # Antialiased: a one-pixel checkerboard averages to grey instead of aliasing.
    checker = ((np.indices((48, 48)).sum(0) % 2) * 255).astype(np.uint8)
    grey = aug.resize_images(np.repeat(checker[None, ..., None], 3, -1), 12)
    assert np.abs(grey[:, 2:-2, 2:-2].astype(int) - 128).max() <= 8
    with pytest.raises(ValueError, match="uint8"):
        aug.resize_images(images.astype(np.float32), 24)
