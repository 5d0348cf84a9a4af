"""Two input pipelines behind one contract: on-device augmentation, or tf.data on the host.

`on_device` keeps the whole uint8 data set on the accelerator(s) (replicated over the mesh);
each batch is only a vector of indices, and the paper's augmentation runs inside the jitted
step as one gather (`augment.apply_augment_indexed`). `tf_data` builds the same augmentation
with TensorFlow ops on the host CPU and ships uint8 crops (a quarter of float32's bytes),
which the step turns into [0, 1] floats on the device; batches are put on the device ahead
of the step that needs them, so the transfer overlaps compute. It is the conventional
baseline and a cross-check. Both sample the same parameter kinds from the same distributions, and for
identical parameters they produce the same pixels (bit-exact for crops, flips and quarter
turns; arbitrary angles differ only where float rounding puts a source coordinate on the
other side of a pixel boundary).

Batches always have the same shape: the last partial batch is padded and masked, so one
compiled step serves the whole epoch and the masked mean loss equals PyTorch's smaller last
batch (DataLoader with drop_last=False). The host decides the order of examples.
`packed_batches` stacks the batches of several members (runs trained in one vmapped step)
on a leading axis.
"""

from __future__ import annotations

import abc
import collections
import itertools
import logging
import math
from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from alexnet_jax.inputs import augment as aug
from alexnet_jax.inputs.augment import AugmentConfig

PIPELINES = ("on_device", "tf_data")
DATA_AXIS = "data"


def epoch_batches(order: np.ndarray, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (indices int32 (batch_size,), mask float32 (batch_size,)) following `order`.

    The last partial batch is padded with `order[0]` and masked 0, so every batch has the
    same shape.
    """
    order = np.asarray(order)
    if order.ndim != 1:
        raise ValueError(f"order must be a 1-D array of example indices, got shape {order.shape}")
    batch_size = int(batch_size)
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    pad = int(order[0]) if len(order) else 0
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size].astype(np.int32)
        mask = np.ones(batch_size, np.float32)
        if len(idx) < batch_size:
            mask[len(idx) :] = 0.0
            idx = np.concatenate([idx, np.full(batch_size - len(idx), pad, np.int32)])
        yield idx, mask


def check_batch_size(batch_size: int, num_devices: int, name: str = "--config.batch_size") -> None:
    """Every device gets an equal share of each batch, so the batch must divide evenly."""
    if int(batch_size) < 1 or int(batch_size) % num_devices:
        suggestion = max(1, round(int(batch_size) / num_devices)) * num_devices
        raise ValueError(
            f"{name}={batch_size} must be a positive multiple of the {num_devices} devices in the mesh; "
            f"choose e.g. {suggestion}"
        )


@runtime_checkable
class Pipeline(Protocol):
    name: str  # "on_device" or "tf_data"
    resident: Any  # pytree passed into the jitted step (on_device: the images; tf_data: None)
    signature: tuple  # what `preprocess` computes, for caching compiled steps

    def batches(
        self, order: np.ndarray, batch_size: int, *, train: bool, seed: int, skip: int = 0
    ) -> Iterator[dict]: ...

    def packed_batches(self, orders, batch_size: int, *, train: bool, seeds, skip: int = 0) -> Iterator[dict]: ...

    def preprocess(self, resident, batch: dict, rng, train: bool) -> jax.Array: ...


def _data_devices(mesh: Mesh) -> int:
    if DATA_AXIS not in mesh.axis_names:
        raise ValueError(f"the mesh needs a {DATA_AXIS!r} axis to shard batches over, got axes {mesh.axis_names}")
    return int(mesh.shape[DATA_AXIS])


def _device_prefetch(host_batches: Iterator[dict], sharding: NamedSharding, size: int) -> Iterator[dict]:
    """Put host batches on the mesh `size` batches ahead; device_put is asynchronous."""
    queue: collections.deque = collections.deque()
    for batch in host_batches:
        queue.append(jax.device_put(batch, sharding))
        if len(queue) > size:
            yield queue.popleft()
    while queue:
        yield queue.popleft()


def _constrain(x: jax.Array, sharding: NamedSharding) -> jax.Array:
    """Pin `x` to `sharding` inside jit, under explicit or automatic mesh axes."""
    if jax.sharding.AxisType.Explicit in tuple(sharding.mesh.axis_types):
        return jax.sharding.reshard(x, sharding)
    return jax.lax.with_sharding_constraint(x, sharding)


class _Base(abc.ABC):
    name = ""

    def __init__(self, images, labels, *, train_augment, eval_augment, mesh, prefetch, normalize):
        self.num_examples = len(labels)
        self.image_size = int(images.shape[1])
        self.labels = np.asarray(labels).astype(np.int32)
        self.train_augment = train_augment
        self.eval_augment = eval_augment
        aug.normalization_stats(normalize)  # an unknown name fails here, not inside the step
        self.normalize = normalize
        self.mesh = mesh
        self.prefetch = max(0, int(prefetch))
        self.num_data_devices = _data_devices(mesh)
        self.batch_sharding = NamedSharding(mesh, P(DATA_AXIS))
        self.packed_sharding = NamedSharding(mesh, P(None, DATA_AXIS))

    @property
    def signature(self) -> tuple:
        return (self.name, self.image_size, self.train_augment, self.eval_augment, self.normalize)

    def augment_config(self, train: bool) -> AugmentConfig:
        return self.train_augment if train else self.eval_augment

    @abc.abstractmethod
    def host_batches(self, order, batch_size: int, *, train: bool, seed: int, skip: int = 0) -> Iterator[dict]:
        """The epoch's batches as numpy dicts, from the `skip`-th on."""

    def batches(self, order: np.ndarray, batch_size: int, *, train: bool, seed: int, skip: int = 0) -> Iterator[dict]:
        """The epoch's batches on the mesh, from the `skip`-th on (a run resumed mid-epoch)."""
        host = self.host_batches(self._check(order, batch_size, train), batch_size, train=train, seed=seed, skip=skip)
        return _device_prefetch(host, self.batch_sharding, self.prefetch)

    def packed_batches(self, orders, batch_size: int, *, train: bool, seeds, skip: int = 0) -> Iterator[dict]:
        """One batch of every member per step, stacked on a leading axis; the orders must be equally long."""
        if len({len(order) for order in orders}) != 1:
            raise ValueError(f"packed members need equally long orders, got lengths {[len(o) for o in orders]}")
        streams = [
            self.host_batches(self._check(order, batch_size, train), batch_size, train=train, seed=seed, skip=skip)
            for order, seed in zip(orders, seeds, strict=True)
        ]
        host = ({key: np.stack([b[key] for b in group]) for key in group[0]} for group in zip(*streams, strict=True))
        return _device_prefetch(host, self.packed_sharding, self.prefetch)

    def _check(self, order: np.ndarray, batch_size: int, train: bool) -> np.ndarray:
        check_batch_size(
            batch_size, self.num_data_devices, "--config.batch_size" if train else "--config.eval_batch_size"
        )
        order = np.asarray(order)
        if order.ndim != 1 or not np.issubdtype(order.dtype, np.integer):
            raise ValueError(f"order must be a 1-D integer array of example indices, got {order.dtype} {order.shape}")
        if len(order) and (order.min() < 0 or order.max() >= self.num_examples):
            raise ValueError(
                f"order holds indices outside [0, {self.num_examples}) (min {order.min()}, max {order.max()})"
            )
        return order


class OnDevicePipeline(_Base):
    """The data set lives on the device(s); batches are indices; augmentation runs in the step."""

    name = "on_device"

    def __init__(self, images, labels, **kwargs):
        super().__init__(images, labels, **kwargs)
        self.resident = jax.device_put(np.asarray(images), NamedSharding(self.mesh, P()))

    def host_batches(self, order, batch_size: int, *, train: bool, seed: int, skip: int = 0) -> Iterator[dict]:
        """Index batches. `train` and `seed` are unused: the step's rng drives augmentation."""
        del train, seed
        for idx, mask in itertools.islice(epoch_batches(order, batch_size), skip, None):
            yield {"indices": idx, "labels": self.labels[idx], "mask": mask}

    def preprocess(self, resident, batch: dict, rng, train: bool) -> jax.Array:
        """Gather and augment inside the jitted step; `train` must be a Python bool (static)."""
        cfg = self.augment_config(train)
        indices = batch["indices"]
        n, size = indices.shape[0], resident.shape[1]
        if cfg.deterministic:
            params = aug.center_params(n, size, cfg)
        else:
            params = aug.sample_augment_params(rng, n, size, cfg)
        images = aug.apply_augment_indexed(resident, indices, params, cfg)
        return _constrain(aug.normalize(images, self.normalize), self.batch_sharding)


# --------------------------------------------------------------------------------------------
# TensorFlow side. TF is imported only here, and never sees the accelerator.


def import_tf():
    """Import TensorFlow with every GPU hidden from it (JAX owns the accelerator)."""
    import tensorflow as tf

    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:  # TF was initialised earlier; fine as long as it saw no GPU
        if tf.config.get_visible_devices("GPU"):
            logging.warning("TensorFlow was initialised before the tf_data pipeline and can see a GPU")
    return tf


def tf_element_seed(seed: int, position, train: bool):
    """Stateless seed of one example: the epoch `seed` and its position (train/eval streams differ)."""
    tf = import_tf()
    position = tf.cast(position, tf.int64)
    return tf.stack([tf.constant(int(seed) % (1 << 63), tf.int64), 2 * position + (0 if train else 1)])


def tf_sample_augment_params(seed, image_size: int, cfg: AugmentConfig, shape=()) -> dict:
    """TF twin of `augment.sample_augment_params`: same parameter kinds and distributions.

    `seed` is a stateless seed (int tensor of shape [2]); `shape` is () inside the tf.data map
    and (n,) to draw many at once.
    """
    tf = import_tf()
    aug.check_config(cfg, image_size)
    k_y, k_x, k_h, k_v, k_a = tf.unstack(tf.random.experimental.stateless_split(seed, 5))
    span = image_size - cfg.crop_size + 1
    if cfg.random_crop:
        offset_y = tf.random.stateless_uniform(shape, k_y, minval=0, maxval=span, dtype=tf.int32)
        offset_x = tf.random.stateless_uniform(shape, k_x, minval=0, maxval=span, dtype=tf.int32)
    else:
        offset_y = offset_x = tf.zeros(shape, tf.int32) + aug.center_offset(image_size, cfg.crop_size)
    no = tf.zeros(shape, tf.bool)
    hflip = tf.random.stateless_uniform(shape, k_h) < 0.5 if cfg.hflip else no
    vflip = tf.random.stateless_uniform(shape, k_v) < 0.5 if cfg.vflip else no
    if cfg.rotation_degrees:
        d = float(cfg.rotation_degrees)
        angle = tf.random.stateless_uniform(shape, k_a, minval=-d, maxval=d, dtype=tf.float32)
    else:
        angle = tf.zeros(shape, tf.float32)
    return dict(offset_y=offset_y, offset_x=offset_x, hflip=hflip, vflip=vflip, angle_deg=angle)


def tf_center_params(image_size: int, cfg: AugmentConfig) -> dict:
    tf = import_tf()
    off = tf.constant(aug.center_offset(image_size, cfg.crop_size), tf.int32)
    no = tf.constant(False)
    return dict(offset_y=off, offset_x=off, hflip=no, vflip=no, angle_deg=tf.constant(0.0, tf.float32))


def tf_augment_u8(image_u8, params: dict, cfg: AugmentConfig):
    """TF twin of `augment.apply_augment` for ONE image (H, W, 3) uint8 and scalar parameters.

    Same geometry in the same order: crop by slicing, flips by reversing, then a rotation
    about the crop centre with ImageProjectiveTransformV3 (nearest, constant 0 outside the
    crop). Returns the (crop, crop, 3) uint8 pixels; `augment.to_unit_float` makes them
    ToTensor's floats.
    """
    tf = import_tf()
    crop = cfg.crop_size
    x = tf.slice(image_u8, tf.stack([params["offset_y"], params["offset_x"], 0]), [crop, crop, 3])
    x = tf.where(params["hflip"], tf.reverse(x, [1]), x)
    x = tf.where(params["vflip"], tf.reverse(x, [0]), x)
    if cfg.rotation_degrees:
        theta = tf.cast(params["angle_deg"], tf.float32) * (math.pi / 180.0)
        cos, sin = tf.cos(theta), tf.sin(theta)
        c = (crop - 1) / 2.0
        # Output (col, row) -> source (col, row):
        #   col' = cos(col-c) - sin(row-c) + c,  row' = sin(col-c) + cos(row-c) + c.
        zero = tf.zeros_like(cos)
        transform = tf.stack([cos, -sin, c - cos * c + sin * c, sin, cos, c - sin * c - cos * c, zero, zero])
        x = tf.raw_ops.ImageProjectiveTransformV3(
            images=x[None],
            transforms=transform[None],
            output_shape=tf.constant([crop, crop], tf.int32),
            fill_value=tf.constant(0.0, tf.float32),
            interpolation="NEAREST",
            fill_mode="CONSTANT",
        )[0]
    return x


def tf_apply_augment(image_u8, params: dict, cfg: AugmentConfig):
    """`tf_augment_u8`, then ToTensor's [0, 1] float32: (crop, crop, 3), as `augment.apply_augment` gives."""
    tf = import_tf()
    # x / 255 through float64 is exactly ToTensor's float32 value for all 256 inputs, even after
    # grappler turns the division into a multiplication (which in float32 would not be exact).
    return tf.cast(tf.cast(tf_augment_u8(image_u8, params, cfg), tf.float64) / 255.0, tf.float32)


def tf_sample_params_for_epoch(n: int, seed: int, image_size: int, cfg: AugmentConfig, *, train: bool = True) -> dict:
    """The parameters the tf_data pipeline draws for positions 0..n-1 of an epoch (for checks)."""
    tf = import_tf()
    ds = tf.data.Dataset.range(n).map(
        lambda pos: tf_sample_augment_params(tf_element_seed(seed, pos, train), image_size, cfg),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    return next(iter(ds.batch(max(1, n)).as_numpy_iterator()))


class TFDataPipeline(_Base):
    """tf.data on the host CPU: gather, augment per example in parallel, batch, prefetch."""

    name = "tf_data"

    def __init__(self, images, labels, *, num_parallel_calls=None, **kwargs):
        super().__init__(images, labels, **kwargs)
        self.resident = None
        self._tf = tf = import_tf()
        self.num_parallel_calls = tf.data.AUTOTUNE if num_parallel_calls is None else int(num_parallel_calls)
        # A Variable, not a constant: tf.data would otherwise serialise the whole array into
        # its graph at every new iterator (seconds per epoch, and a 2 GB protobuf limit).
        with tf.device("/CPU:0"):
            self._store = tf.Variable(np.asarray(images), trainable=False, name="images")

    def dataset(
        self, order: np.ndarray, batch_size: int, *, train: bool, seed: int, with_params: bool = False, skip: int = 0
    ):
        """The epoch's tf.data.Dataset of uint8 host batches (with the drawn parameters, if asked)."""
        tf = self._tf
        order = self._check(order, batch_size, train)
        pairs = list(epoch_batches(order, batch_size))
        idx = np.concatenate([p[0] for p in pairs]) if pairs else np.zeros(0, np.int32)
        mask = np.concatenate([p[1] for p in pairs]) if pairs else np.zeros(0, np.float32)
        cfg, size, store = self.augment_config(train), self.image_size, self._store

        def element(index, label, weight, position):
            if cfg.deterministic:
                params = tf_center_params(size, cfg)
            else:
                params = tf_sample_augment_params(tf_element_seed(seed, position, train), size, cfg)
            out = {"images": tf_augment_u8(tf.gather(store, index), params, cfg), "labels": label, "mask": weight}
            if with_params:
                out["params"] = params
            return out

        ds = tf.data.Dataset.from_tensor_slices((idx, self.labels[idx], mask, np.arange(len(idx), dtype=np.int64)))
        ds = ds.skip(int(skip) * int(batch_size))  # positions keep their seeds: a resumed epoch draws the same
        ds = ds.map(element, num_parallel_calls=self.num_parallel_calls, deterministic=True)
        return ds.batch(int(batch_size), drop_remainder=True).prefetch(max(1, self.prefetch))

    def host_batches(self, order, batch_size: int, *, train: bool, seed: int, skip: int = 0) -> Iterator[dict]:
        """Augmented uint8 batches, deterministic given `seed`."""
        return self.dataset(order, batch_size, train=train, seed=seed, skip=skip).as_numpy_iterator()

    def preprocess(self, resident, batch: dict, rng, train: bool) -> jax.Array:
        """The host's uint8 crops as [0, 1] floats, scaled by `normalize`, computed on the device."""
        del resident, rng, train  # augmented on the host already
        images = aug.to_unit_float(batch["images"])
        return _constrain(aug.normalize(images, self.normalize), self.batch_sharding)


def make_pipeline(
    name: str,
    images_u8,
    labels,
    *,
    image_size: int,
    train_augment: AugmentConfig,
    eval_augment: AugmentConfig,
    mesh: Mesh,
    normalize: str = "none",
    prefetch: int = 2,
    num_parallel_calls=None,
) -> Pipeline:
    """Build the named pipeline over the prepared (N, 256, 256, 3) uint8 images.

    The images are resized once to `image_size` when that differs (quick runs), with
    `augment.resize_images`, so that both pipelines see the same pixels. `preprocess` hands
    the model its input: augmented, in [0, 1], then scaled by `normalize` (a name of
    `augment.NORMALIZATION_STATS`: "none", the paper's, leaves the pixels as they are).
    """
    if name not in PIPELINES:
        raise ValueError(f"unknown input pipeline {name!r} (config field `input_pipeline`); choose one of {PIPELINES}")
    shape, dtype = getattr(images_u8, "shape", None), getattr(images_u8, "dtype", None)
    if dtype != np.uint8 or shape is None or len(shape) != 4 or shape[3] != 3 or shape[1] != shape[2]:
        raise ValueError(f"images must be (N, H, H, 3) uint8 (a prepared data set), got {shape} {dtype}")
    labels = np.asarray(labels)
    if labels.shape != (shape[0],):
        raise ValueError(f"labels must have shape ({shape[0]},) to match the images, got {labels.shape}")
    for field, cfg in (("train_augment", train_augment), ("eval_augment", eval_augment)):
        try:
            aug.check_config(cfg, int(image_size))
        except ValueError as err:
            raise ValueError(f"{field}: {err}") from None
    _data_devices(mesh)
    images = aug.resize_images(images_u8, int(image_size))
    common = dict(
        train_augment=train_augment,
        eval_augment=eval_augment,
        mesh=mesh,
        prefetch=prefetch,
        normalize=normalize,
    )
    if name == "on_device":
        return OnDevicePipeline(images, labels, **common)
    return TFDataPipeline(images, labels, num_parallel_calls=num_parallel_calls, **common)
