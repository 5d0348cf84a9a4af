"""The paper's image augmentation in pure JAX, as one gather per batch.

The original applied, to training and test images alike: ToTensor ([0, 1], no mean/std
normalisation), a 256x256 resize (done once when the data set is prepared), RandomCrop(224),
RandomHorizontalFlip, RandomVerticalFlip and RandomRotation(180) with nearest-neighbour
sampling and zero fill. Here every output pixel is traced back through those steps:
inverse-rotate about the centre of the crop (torchvision's convention: positive angles turn
the picture counter-clockwise, the centre is ((size - 1) / 2, (size - 1) / 2) in pixel
indices, and source coordinates round half to even as `grid_sample` does), undo the flips,
add the crop offset, then read the source pixel. Pixels whose source lies outside the crop
are 0, as torchvision fills them: nothing comes from the surrounding 256x256 image. Shapes
are static, so one compiled step serves every batch.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    crop_size: int = 224
    random_crop: bool = True  # False -> deterministic centre crop (torchvision CenterCrop)
    hflip: bool = True
    vflip: bool = True
    rotation_degrees: float = 180.0  # angle ~ U[-d, d]; 0 disables rotation

    @property
    def deterministic(self) -> bool:
        """True when the transform needs no randomness (a plain centre crop)."""
        return not (self.random_crop or self.hflip or self.vflip or self.rotation_degrees)


def center_crop(crop_size: int) -> AugmentConfig:
    """torchvision's CenterCrop alone: the deterministic evaluation view."""
    return AugmentConfig(crop_size=crop_size, random_crop=False, hflip=False, vflip=False, rotation_degrees=0.0)


def configs_from(config) -> tuple[AugmentConfig, AugmentConfig]:
    """The (train, eval) transforms a run config asks for.

    `config` is a run's resolved config as a plain dict (the training plan's `config`, and what
    results.json and `best/` store), so the trainer and `predict` cannot disagree.
    `eval_augment` is "random" (the paper: the test set sees the training transform) or "center".
    """
    aug = config["augment"]
    train = AugmentConfig(
        crop_size=int(aug["crop_size"]),
        random_crop=True,
        hflip=bool(aug["hflip"]),
        vflip=bool(aug["vflip"]),
        rotation_degrees=float(aug["rotation_degrees"]),
    )
    mode = config.get("eval_augment", "random")
    if mode == "random":
        return train, train
    if mode == "center":
        return train, center_crop(train.crop_size)
    raise ValueError(f"--config.eval_augment={mode!r}: use 'random' (paper) or 'center'")


# The input scalings a run can give its model (config.normalize, resolved; the names are
# alexnet_jax.models.spec.NORMALIZATIONS): per-channel RGB (mean, std) on [0, 1] pixels.
# "none" leaves the pixels as they are (the paper); "imagenet" is torchvision's statistics, which
# its ImageNet weights expect; "inception" is TF's and timm's mean = std = 0.5, (x - 0.5) / 0.5 in
# [-1, 1], which the EfficientNet-Lite weights expect.
NORMALIZATION_STATS = {
    "none": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "inception": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
}
# What configs said before config.normalize: True meant "imagenet", False "none".
LEGACY_NORMALIZE_KEY = "normalize_imagenet"


def normalization_stats(how: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) of scaling `how`; ValueError naming the choices for an unknown name."""
    if how not in NORMALIZATION_STATS:
        raise ValueError(f"unknown input normalization {how!r}; use one of {', '.join(NORMALIZATION_STATS)}")
    return NORMALIZATION_STATS[how]


def normalize(images: jax.Array, how: str) -> jax.Array:
    """The model's input from [0, 1] pixels: (x - mean) / std of scaling `how`; "none" returns
    the pixels unchanged (the paper's protocol, bit for bit)."""
    mean, std = normalization_stats(how)
    if how == "none":
        return images
    return (images - jnp.asarray(mean, images.dtype)) / jnp.asarray(std, images.dtype)


def normalization_record(how: str, asked: str | None = None) -> dict:
    """What results.json records of a run's scaling: its name, mean and std, and the config value
    it was resolved from (`asked`, e.g. "weights") when that differs."""
    mean, std = normalization_stats(how)
    record = {"name": how, "mean": list(mean), "std": list(std)}
    return record | ({"asked": asked} if asked not in (None, how) else {})


def run_normalization(run_config: dict) -> str:
    """The scaling a run's resolved config (results.json's, or best/'s metadata) names:
    `normalize`, or for a run made before that key its `normalize_imagenet` (True: "imagenet",
    False: "none"); "none", the paper's, when it has neither."""
    if "normalize" in run_config:
        return str(run_config["normalize"])
    return "imagenet" if run_config.get(LEGACY_NORMALIZE_KEY) else "none"


def check_config(cfg: AugmentConfig, image_size: int) -> None:
    """Raise a clear error when `cfg` cannot be applied to `image_size` square images."""
    if not isinstance(cfg.crop_size, int) or cfg.crop_size < 1:
        raise ValueError(f"AugmentConfig.crop_size must be a positive integer, got {cfg.crop_size!r}")
    if cfg.crop_size > image_size:
        raise ValueError(
            f"AugmentConfig.crop_size={cfg.crop_size} is larger than the images ({image_size}x{image_size}); "
            "lower the crop size or raise the image size"
        )
    if not (0.0 <= float(cfg.rotation_degrees) <= 180.0):
        raise ValueError(f"AugmentConfig.rotation_degrees must lie in [0, 180], got {cfg.rotation_degrees!r}")


def center_offset(image_size: int, crop_size: int) -> int:
    """torchvision CenterCrop's offset: int(round((H - crop) / 2)), Python's round (half to even)."""
    return int(round((image_size - crop_size) / 2.0))


def sample_augment_params(rng: jax.Array, batch_size: int, image_size: int, cfg: AugmentConfig) -> dict:
    """Draw per-image augmentation parameters, with torchvision's distributions.

    Crop offsets are integers uniform on [0, image_size - crop] inclusive (RandomCrop), each
    flip has probability 0.5, the angle is uniform on [-d, d) degrees (RandomRotation).
    """
    check_config(cfg, image_size)
    k_y, k_x, k_h, k_v, k_a = jax.random.split(rng, 5)
    shape = (batch_size,)
    span = image_size - cfg.crop_size + 1
    if cfg.random_crop:
        offset_y = jax.random.randint(k_y, shape, 0, span, dtype=jnp.int32)
        offset_x = jax.random.randint(k_x, shape, 0, span, dtype=jnp.int32)
    else:
        offset_y = offset_x = jnp.full(shape, center_offset(image_size, cfg.crop_size), jnp.int32)
    hflip = jax.random.bernoulli(k_h, 0.5, shape) if cfg.hflip else jnp.zeros(shape, bool)
    vflip = jax.random.bernoulli(k_v, 0.5, shape) if cfg.vflip else jnp.zeros(shape, bool)
    if cfg.rotation_degrees:
        d = float(cfg.rotation_degrees)
        angle = jax.random.uniform(k_a, shape, jnp.float32, -d, d)
    else:
        angle = jnp.zeros(shape, jnp.float32)
    return dict(offset_y=offset_y, offset_x=offset_x, hflip=hflip, vflip=vflip, angle_deg=angle)


def center_params(batch_size: int, image_size: int, cfg: AugmentConfig) -> dict:
    """Parameters of the deterministic centre crop (no flips, no rotation)."""
    check_config(cfg, image_size)
    off = jnp.full((batch_size,), center_offset(image_size, cfg.crop_size), jnp.int32)
    zeros = jnp.zeros((batch_size,), bool)
    return dict(offset_y=off, offset_x=off, hflip=zeros, vflip=zeros, angle_deg=jnp.zeros((batch_size,), jnp.float32))


def _crop_coordinates(params: dict, crop: int, rotate: bool):
    """Source (row, col) in the crop for every output pixel, and whether it lies inside the crop.

    Follows torchvision's tensor `rotate`: for output pixel (i, j) and c = (crop - 1) / 2,
    col = cos(a) (j - c) - sin(a) (i - c) + c and row = sin(a) (j - c) + cos(a) (i - c) + c,
    rounded half to even, then the flips are undone (they came before the rotation).
    """
    b = params["angle_deg"].shape[0]
    ii = jnp.arange(crop, dtype=jnp.int32)[None, :, None]
    jj = jnp.arange(crop, dtype=jnp.int32)[None, None, :]
    if rotate:
        c = (crop - 1) / 2.0
        theta = jnp.deg2rad(params["angle_deg"].astype(jnp.float32))
        cos = jnp.cos(theta)[:, None, None]
        sin = jnp.sin(theta)[:, None, None]
        y = ii.astype(jnp.float32) - c
        x = jj.astype(jnp.float32) - c
        col = jnp.round(cos * x - sin * y + c)
        row = jnp.round(sin * x + cos * y + c)
        inside = (row >= 0) & (row <= crop - 1) & (col >= 0) & (col <= crop - 1)
        row = jnp.clip(row, 0, crop - 1).astype(jnp.int32)
        col = jnp.clip(col, 0, crop - 1).astype(jnp.int32)
    else:
        row = jnp.broadcast_to(ii, (b, crop, crop))
        col = jnp.broadcast_to(jj, (b, crop, crop))
        inside = None
    row = jnp.where(params["vflip"][:, None, None], crop - 1 - row, row)
    col = jnp.where(params["hflip"][:, None, None], crop - 1 - col, col)
    return row, col, inside


def _finish(pixels: jax.Array, inside) -> jax.Array:
    if inside is not None:
        pixels = jnp.where(inside[..., None], pixels, jnp.zeros((), pixels.dtype))
    return to_unit_float(pixels)


def _batch_sharding_of(x: jax.Array, ndim: int):
    """Under an explicit-axes mesh, the sharding that keeps `x`'s batch axis for a result of `ndim` dims.

    None otherwise (automatic axes or no mesh), where XLA propagates shardings itself.
    """
    sharding = jax.typeof(x).sharding
    spec = getattr(sharding, "spec", None)
    if not spec or spec[0] is None:
        return None
    return jax.sharding.NamedSharding(sharding.mesh, jax.sharding.PartitionSpec(spec[0], *([None] * (ndim - 1))))


def _sharding_like(x: jax.Array):
    """`x`'s own sharding when an explicit mesh axis shards it, else None (for gathers' out_sharding)."""
    sharding = jax.typeof(x).sharding
    spec = getattr(sharding, "spec", None)
    return sharding if spec and any(p is not None for p in spec) else None


def apply_augment_indexed(source_u8: jax.Array, indices: jax.Array, params: dict, cfg: AugmentConfig) -> jax.Array:
    """Augment images `source_u8[indices]` without materialising that batch first.

    `source_u8` is (N, H, W, 3) uint8 (e.g. the whole data set resident on the device),
    `indices` (B,) int. Returns (B, crop, crop, 3) float32 in [0, 1], via a single gather
    whose result keeps the batch sharding of `indices`.
    """
    check_config(cfg, source_u8.shape[1])
    row, col, inside = _crop_coordinates(params, cfg.crop_size, rotate=bool(cfg.rotation_degrees))
    row = row + params["offset_y"].astype(jnp.int32)[:, None, None]
    col = col + params["offset_x"].astype(jnp.int32)[:, None, None]
    indices = jnp.asarray(indices, jnp.int32)
    out_sharding = _batch_sharding_of(indices, 4)
    # Coordinates are clipped into the image, so the gather needs no bounds handling.
    pixels = source_u8.at[indices[:, None, None], row, col].get(mode="promise_in_bounds", out_sharding=out_sharding)
    return _finish(pixels, inside)


def apply_augment(images_u8: jax.Array, params: dict, cfg: AugmentConfig) -> jax.Array:
    """Apply given parameters to a batch (B, H, W, 3) uint8 -> (B, crop, crop, 3) float32 in [0, 1]."""
    check_config(cfg, images_u8.shape[1])
    row, col, inside = _crop_coordinates(params, cfg.crop_size, rotate=bool(cfg.rotation_degrees))
    row = row + params["offset_y"].astype(jnp.int32)[:, None, None]
    col = col + params["offset_x"].astype(jnp.int32)[:, None, None]
    # vmap makes a batched gather, which partitions along a sharded batch axis; under an
    # explicit mesh the coordinates must carry the images' batch sharding first.
    sharding = _batch_sharding_of(images_u8, 3)
    if sharding is not None:
        row, col = jax.sharding.reshard(row, sharding), jax.sharding.reshard(col, sharding)
    pixels = jax.vmap(lambda image, r, c: image.at[r, c].get(mode="promise_in_bounds"))(images_u8, row, col)
    return _finish(pixels, inside)


# ToTensor's x / 255, correctly rounded once on the host. XLA's float division is not always
# correctly rounded on CPU, so a 256-entry table keeps the values bit-identical to torch.
_UNIT_TABLE = np.arange(256, dtype=np.float32) / np.float32(255.0)


def to_unit_float(images_u8: jax.Array) -> jax.Array:
    """uint8 -> float32 in [0, 1], exactly torchvision's ToTensor values."""
    out_sharding = _sharding_like(images_u8)
    table = jnp.asarray(_UNIT_TABLE)
    return table.at[images_u8.astype(jnp.int32)].get(mode="promise_in_bounds", out_sharding=out_sharding)


def augment(rng: jax.Array, images_u8: jax.Array, cfg: AugmentConfig) -> jax.Array:
    """Sample parameters and apply them: the paper's random transform for one batch."""
    params = sample_augment_params(rng, images_u8.shape[0], images_u8.shape[1], cfg)
    return apply_augment(images_u8, params, cfg)


def eval_transform(images_u8: jax.Array, cfg: AugmentConfig) -> jax.Array:
    """Deterministic centre crop to `cfg.crop_size`, no flips or rotation."""
    params = center_params(images_u8.shape[0], images_u8.shape[1], cfg)
    return apply_augment(images_u8, params, dataclasses.replace(cfg, rotation_degrees=0.0))


def resize_images(images_u8, size: int, chunk: int = 512) -> np.ndarray:
    """Resize square uint8 images to `size` x `size` with Pillow's antialiased bilinear filter.

    Used once when a configuration asks for a smaller resolution than the prepared 256 px
    (quick runs), so that both input pipelines see the same pixels. Pillow runs on the host,
    is deterministic across machines, and reads a memory-mapped array chunk by chunk.
    Returns the input itself (as an ndarray, not copied) when the size already matches.
    """
    from PIL import Image

    images = np.asarray(images_u8)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3 or images.shape[1] != images.shape[2]:
        raise ValueError(f"resize_images expects (N, H, H, 3) uint8 images, got {images.shape} {images.dtype}")
    size = int(size)
    if size < 1:
        raise ValueError(f"resize_images: size must be positive, got {size}")
    if images.shape[1] == size:
        return images
    out = np.empty((len(images), size, size, 3), np.uint8)
    for start in range(0, len(images), chunk):
        block = np.ascontiguousarray(images[start : start + chunk])
        for k, image in enumerate(block):
            out[start + k] = np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR))
    return out
