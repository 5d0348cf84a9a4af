"""The forward pass of a prediction: one batch of uint8 images -> probabilities, uncertainty, features.

Images go through the transform the members were evaluated with (resize to the run's image size,
a centre crop, the run's input scaling), or `tta=K` random paper augmentations of the run's
config. `mc_samples=S` runs S passes with dropout on (MC dropout): every plain `nn.Dropout` of
rate > 0 draws a mask while BatchNorm stays in eval mode and stochastic depth (a Dropout with
`broadcast_dims`) stays off; a model with no such dropout (ResNet, ViT at its default rate 0)
is refused, since its samples would all be equal: an ensemble is its uncertainty. Each member's
logits are divided by its fitted temperature (when calibrated and it has one) before the softmax.
The probabilities are the mean over members x views x samples; `uncertainty.combine_samples`
gives the entropy and the mutual information.

Randomness (views, dropout masks) is keyed by (seed, batch_index, member, view, sample) only, and
every batch is padded to `batch_size` (one compiled shape), so a row's numbers do not depend on the
run, shard or resume that computed them. The views are shared by the members (an ensemble of
identical members equals one member, with or without TTA).

Members share one compiled function, called once per member, and a Forward of the same model
configuration reuses it. A loop rather than a vmap over stacked members: on the shared 2-core CPU
(64-image batches, 3 members) they tie within the noise (tiny at 28 px: loop 3.1-3.9 ms, vmap
3.2-3.6 ms; EfficientNet-Lite0 at 64 px: loop 580-800 ms, vmap 550-840 ms), and the loop keeps each
member's numbers bit for bit those of the member alone (vmap moved tiny's in the last bit), so an
ensemble of identical members equals one member exactly. MC samples are a vmap over dropout keys,
which leaves every layer before the first dropout unbatched, so they share it: EfficientNet-Lite0
at 64 px, 64 images, 20 samples took 171 ms a batch against 140 ms for one deterministic pass.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from alexnet_jax.errors import PredictError
from alexnet_jax.inputs import augment
from alexnet_jax.models import get_model, get_spec, layers
from alexnet_jax.predict import uncertainty
from alexnet_jax.predict.members import Member, check_compatible

INPUT_SIZE = 256  # the prepared images' size; the members' run resizes from it
_VIEW_STREAM, _DROPOUT_STREAM = 0, 1  # separate key streams under one batch key


@dataclasses.dataclass(frozen=True)
class Sampling:
    """What a prediction averages over besides the members."""

    tta: int = 0  # 0: the centre crop; K: K random paper augmentations
    mc_samples: int = 0  # 0: dropout off; S: S passes with dropout on (BatchNorm stays in eval mode)
    seed: int = 0

    def __post_init__(self):
        for name in ("tta", "mc_samples", "seed"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or not 0 <= value < 2**32:
                raise PredictError(f"--{name}={value!r}: must be a whole number from 0 to 2**32 - 1")

    @property
    def views(self) -> int:
        return max(self.tta, 1)

    @property
    def passes(self) -> int:
        return max(self.mc_samples, 1)

    @property
    def sampled(self) -> bool:
        return bool(self.tta or self.mc_samples)

    def describe(self, members: int = 1) -> str:
        return f"ensemble={members}, mc_dropout={self.mc_samples}, tta={self.tta}"


def _is_mc_dropout(module: nn.Module, method_name: str) -> bool:
    """A plain dropout layer that can sample: rate > 0, not stochastic depth (a broadcast mask)."""
    plain = isinstance(module, nn.Dropout) and not module.broadcast_dims
    return plain and method_name == "__call__" and module.rate > 0


def _mc_dropout(next_fun, args, kwargs, context):
    """Interceptor: plain dropout layers draw a mask (Flax's own formula) whatever `deterministic` says."""
    module = context.module
    if not _is_mc_dropout(module, context.method_name):
        return next_fun(*args, **kwargs)
    inputs = args[0]
    keep = 1.0 - module.rate
    mask = jax.random.bernoulli(module.make_rng(module.rng_collection), keep, inputs.shape)
    return jax.lax.select(mask, inputs / keep, jnp.zeros_like(inputs))


def count_mc_dropout_layers(network: nn.Module, variables, crop: int) -> int:
    """How many plain dropout calls of rate > 0 one forward pass makes (traced, not run)."""
    calls = []

    def count(next_fun, args, kwargs, context):
        calls.append(_is_mc_dropout(context.module, context.method_name))
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(count):
        jax.eval_shape(lambda v: network.apply(v, jnp.zeros((1, crop, crop, 3)), train=False), variables)
    return sum(calls)


def _apply_recording_head_input(network: nn.Module, head: str, variables, images):
    """(logits, the head's input flattened to (N, D)): the penultimate layer's features."""
    captured = []

    def record(next_fun, args, kwargs, context):
        if context.method_name == "__call__" and context.module.scope and context.module.scope.path == (head,):
            captured.append(args[0])
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(record):
        logits = network.apply(variables, images, train=False)
    (features,) = captured
    return logits, features.reshape(features.shape[0], -1)


@functools.cache
def _member_function(model, num_classes, options, scaling, crop, random_cfg, tta, mc_samples, features):
    """The jitted pass of one member over one padded batch: (variables, uint8 images, seed,
    batch_index, member index, temperature) -> (sample probabilities (V*S, N, K), logits, features)."""
    network = get_model(model, num_classes, **dict(options))
    head = get_spec(model).head
    center_cfg = augment.center_crop(crop)

    def views_of(images_u8, batch_key):
        if not tta:
            return augment.eval_transform(images_u8, center_cfg)[None]
        keys = jax.vmap(lambda v: jax.random.fold_in(jax.random.fold_in(batch_key, _VIEW_STREAM), v))(jnp.arange(tta))
        return jax.vmap(lambda k: augment.augment(k, images_u8, random_cfg))(keys)

    def one_member(variables, images_u8, seed, batch_index, member, temperature):
        batch_key = jax.random.fold_in(jax.random.key(seed), batch_index)
        views = augment.normalize(views_of(images_u8, batch_key), scaling)  # (V, N, crop, crop, 3)
        extra = {}
        if mc_samples:
            member_key = jax.random.fold_in(jax.random.fold_in(batch_key, _DROPOUT_STREAM), member)

            def sample(view, v, s):
                key = jax.random.fold_in(jax.random.fold_in(member_key, v), s)
                with nn.intercept_methods(_mc_dropout):
                    return network.apply(variables, view, train=False, rngs={"dropout": key})

            samples = jnp.arange(mc_samples)
            per_view = jax.vmap(lambda view, v: jax.vmap(lambda s: sample(view, v, s))(samples))
            logits = per_view(views, jnp.arange(views.shape[0]))  # (V, S, N, K)
        elif features:
            logits, extra["features"] = _apply_recording_head_input(network, head, variables, views[0])
            logits = logits[None, None]
        elif tta:
            logits = jax.vmap(lambda view: network.apply(variables, view, train=False))(views)[:, None]
        else:  # the model's own evaluation, as the trainer computes it
            logits = network.apply(variables, views[0], train=False)[None, None]
        if not (tta or mc_samples):
            extra["logits"] = logits[0, 0]
        probabilities = jax.nn.softmax(logits / temperature, axis=-1)
        return probabilities.reshape(-1, *probabilities.shape[2:]), extra

    return jax.jit(one_member, compiler_options=layers.cpu_compiler_options(network, "forward"))


class Forward:
    """Members + sampling -> a callable on batches of uint8 images (see the module docstring)."""

    def __init__(
        self,
        members: Sequence[Member],
        sampling: Sampling = Sampling(),
        *,
        batch_size: int = 64,
        features: bool = False,
        calibrated: bool = True,
    ):
        if not members:
            raise PredictError("no checkpoint: an ensemble needs at least one member")
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise PredictError(f"--batch_size={batch_size!r}: must be a whole number >= 1")
        check_compatible(members)
        first = members[0]
        self.members = tuple(members)
        self.sampling = sampling
        self.batch_size = int(batch_size)
        self.num_classes = len(first.class_names)
        self.class_names = list(first.class_names)
        self.features = features
        prep = first.preprocessing
        self.image_size, crop, scaling = prep["image_size"], prep["crop_size"], prep["normalize"]
        random_cfg = augment.configs_from(first.run_config)[0] if "augment" in first.run_config else None
        random_cfg = random_cfg or augment.AugmentConfig(crop)
        if sampling.tta:
            self._check_same_tta(random_cfg)
        try:
            augment.check_config(random_cfg if sampling.tta else augment.center_crop(crop), self.image_size)
        except ValueError as error:
            raise PredictError(f"{first.params_dir}: the config it was trained with: {error}") from None
        self.preprocessing = {
            "input_size": INPUT_SIZE,
            "resize": self.image_size,
            "crop": crop,
            "normalize": scaling,
            "tta": sampling.tta,
            "view": "centre crop" if not sampling.tta else _describe_augment(random_cfg),
        }
        if features and (len(members) > 1 or sampling.sampled):
            raise PredictError(
                f"features come from one checkpoint and one centre-crop pass; got {sampling.describe(len(members))}. "
                "Give one --checkpoint and no --tta or --mc_samples"
            )
        options = tuple(sorted(first.model_options.items()))
        if sampling.mc_samples:
            network = get_model(first.model, self.num_classes, **dict(options))
            if not count_mc_dropout_layers(network, first.variables, crop):
                raise PredictError(
                    f"--mc_samples={sampling.mc_samples}: {first.model} ({first.params_dir}) has no dropout layer "
                    "with a rate above 0 (stochastic depth does not count), so every sample would be the same; "
                    "use an ensemble instead: repeat --checkpoint, or give --study with --arm"
                )
        self.temperatures = [m.temperature if calibrated and m.temperature is not None else None for m in members]
        self._fn = _member_function(first.model, self.num_classes, options, scaling, crop,
                                    random_cfg if sampling.tta else None, sampling.tta, sampling.mc_samples,
                                    features)  # fmt: skip
        self._variables = [jax.device_put(m.variables) for m in members]

    def _check_same_tta(self, random_cfg) -> None:
        for member in self.members[1:]:
            other = augment.configs_from(member.run_config)[0] if "augment" in member.run_config else None
            other = other or augment.AugmentConfig(random_cfg.crop_size)
            if other != random_cfg:
                raise PredictError(
                    f"--tta: ensemble members differ in their augmentation: {self.members[0].params_dir} has "
                    f"{random_cfg}, {member.params_dir} has {other}; predict without --tta or with one arm's runs"
                )

    def describe(self) -> str:
        """The row's `uncertainty` column: what was averaged, and the temperatures applied."""
        temps = ";".join("none" if t is None else f"{t:.4g}" for t in self.temperatures)
        return f"{self.sampling.describe(len(self.members))}, temperature={temps}"

    def __call__(self, images_u8: np.ndarray, batch_index: int) -> dict[str, np.ndarray]:
        """Outputs for the first B rows of one batch (B <= batch_size; see the module docstring)."""
        images_u8 = np.asarray(images_u8)
        shape = images_u8.shape
        if images_u8.dtype != np.uint8 or images_u8.ndim != 4 or shape[-1] != 3 or shape[1] != shape[2]:
            raise PredictError(f"Forward expects (B, H, H, 3) uint8 images, got {shape} {images_u8.dtype}")
        count = len(images_u8)
        if not 0 < count <= self.batch_size:
            raise PredictError(f"Forward got {count} images for a batch of at most {self.batch_size}")
        batch = augment.resize_images(images_u8, self.image_size)
        if count < self.batch_size:  # one compiled shape for every batch
            batch = np.concatenate([batch, np.zeros((self.batch_size - count, *batch.shape[1:]), np.uint8)])
        batch = jnp.asarray(batch)
        seed, index = np.uint32(self.sampling.seed), np.uint32(batch_index)
        results = [
            self._fn(variables, batch, seed, index, np.uint32(m), np.float32(t or 1.0))
            for m, (variables, t) in enumerate(zip(self._variables, self.temperatures, strict=True))
        ]
        samples = np.concatenate([np.asarray(probs) for probs, _ in results])[:, :count]
        combined = uncertainty.combine_samples(samples)
        out = {name: np.asarray(value, np.float32) for name, value in combined.items()}
        if len(results) == 1:
            out |= {name: np.asarray(value)[:count] for name, value in results[0][1].items()}
        return out

    def run(self, images_u8: np.ndarray) -> dict[str, np.ndarray]:
        """Every image of an in-memory array, batch b being rows [b * batch_size, (b + 1) * batch_size)."""
        parts = [self(images_u8[start : start + self.batch_size], start // self.batch_size)
                 for start in range(0, len(images_u8), self.batch_size)]  # fmt: skip
        if not parts:
            return {"probabilities": np.zeros((0, self.num_classes), np.float32)}
        return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}


def _describe_augment(cfg: augment.AugmentConfig) -> str:
    flips = "+".join(name for name, on in (("hflip", cfg.hflip), ("vflip", cfg.vflip)) if on) or "no flips"
    return f"random crop {cfg.crop_size}, {flips}, rotation +-{cfg.rotation_degrees:g} deg"
