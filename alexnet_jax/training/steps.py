"""The train and eval steps: one `jax.jit` over a device mesh, built once per shape.

The batch is sharded on the mesh's 'data' axis and the train state replicated, so XLA
all-reduces the gradients (this is what "pmap" means here; jax.pmap is in maintenance mode).
Both steps accumulate their metrics into totals they are handed, so an epoch costs one
device-to-host read. `pack` > 1 trains that many independent members (runs, or arms of a
run) in one step with `jax.vmap` over stacked states, each with its own batch and rng.
Frozen parameters get no gradient and no optimizer state.

Steps are cached by what they compute (`StepKey`), so every run and arm of a process with
the same shapes reuses the same compiled executables; with the persistent compilation cache
(`alexnet_jax.cli.enable_compilation_cache`) other processes reuse them too.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from alexnet_jax.models import layers

DATA_AXIS = "data"


@flax.struct.dataclass
class TrainState:
    step: jax.Array
    params: Any  # the whole tree, frozen layers included
    opt_state: Any  # of the trainable layers only
    batch_stats: Any  # BatchNorm running statistics; {} for models without BatchNorm


def make_mesh(devices: Iterable[jax.Device] | None = None) -> jax.sharding.Mesh:
    devices = np.asarray(list(devices) if devices is not None else jax.devices())
    return jax.sharding.Mesh(devices, (DATA_AXIS,))


def replicate(tree, mesh: jax.sharding.Mesh):
    return jax.device_put(tree, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()))


def scale_by_layer(scales: Mapping[str, float]) -> optax.GradientTransformation:
    """Multiplies each top-level layer's update by its factor (layer-wise learning-rate decay).

    For SGD and RMSProp, momentum and weight decay are linear in the learning rate (momentum
    accumulates steps already scaled by it), so scaling the final update is exactly a per-layer
    learning rate."""

    def update(updates, state, params=None):
        del params
        return {name: jax.tree.map(lambda u, s=scales[name]: u * s, tree) for name, tree in updates.items()}, state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


OPTIMIZERS = ("sgd", "adamw", "rmsprop")
# TensorFlow's RMSProp as it trained EfficientNet(-Lite) (tensorflow/tpu models/official/efficientnet:
# tf.compat.v1.train.RMSPropOptimizer(lr, decay=0.9, momentum=0.9, epsilon=1e-3)).
RMSPROP_DECAY = 0.9
RMSPROP_EPSILON = 1e-3


def make_optimizer(optim: Mapping[str, Any], lr_scales: Mapping[str, float] | None = None):
    """The optimizers, each as its recipe's framework defines it.

    `sgd` (the paper's, PyTorch's): weight decay is added to the gradient before momentum.
    `adamw` (PyTorch's): decoupled weight decay and torchvision's betas (0.9, 0.999), eps 1e-8.
    `rmsprop` (TensorFlow 1's, which trained the EfficientNet-Lite weights; timm's RMSpropTF):
        ms = 0.9 ms + 0.1 g^2, starting from ms = 1 (TF's slot initialiser, optax's initial_scale);
        mom = momentum mom + lr g / sqrt(ms + 1e-3) (eps inside the root, lr inside the momentum);
        w -= mom. Weight decay is an L2 term of the loss (g += wd w) on the kernels only: the
        recipe leaves BatchNorm's variables out, as timm leaves out every 1-D parameter.
    `clip_grad_norm` clips the global gradient norm first (torch.nn.utils.clip_grad_norm_)."""
    name = optim.get("name") or "sgd"
    lr, decay = float(optim["learning_rate"]), float(optim.get("weight_decay") or 0.0)
    momentum = float(optim.get("momentum") or 0.0) or None
    parts = []
    if optim.get("clip_grad_norm"):
        parts.append(optax.clip_by_global_norm(float(optim["clip_grad_norm"])))
    if name == "sgd":
        if decay:
            parts.append(optax.add_decayed_weights(decay))
        parts.append(optax.sgd(lr, momentum=momentum))
    elif name == "adamw":
        parts.append(optax.adamw(lr, b1=0.9, b2=0.999, eps=1e-8, weight_decay=decay))
    elif name == "rmsprop":
        if decay:
            parts.append(optax.add_decayed_weights(decay, mask=_kernels))
        parts.append(
            optax.rmsprop(
                lr, decay=RMSPROP_DECAY, eps=RMSPROP_EPSILON, initial_scale=1.0, eps_in_sqrt=True, momentum=momentum
            )
        )
    else:
        raise ValueError(f"--config.optim.name={name!r}: use one of {', '.join(OPTIMIZERS)}")
    if lr_scales:
        parts.append(scale_by_layer(lr_scales))
    return parts[0] if len(parts) == 1 else optax.chain(*parts)


def _kernels(params):
    """True for the parameters weight decay applies to under `rmsprop`: those of 2 or more dimensions."""
    return jax.tree.map(lambda p: jnp.ndim(p) > 1, params)


def split_trainable(params: Mapping, trainable: frozenset[str] | None) -> tuple[dict, dict]:
    """(trainable layers, frozen layers) of a params tree, split by top-level layer name."""
    if trainable is None:
        return dict(params), {}
    return {k: v for k, v in params.items() if k in trainable}, {k: v for k, v in params.items() if k not in trainable}


def init_state(params, batch_stats, tx, trainable: frozenset[str] | None) -> TrainState:
    train_part, _ = split_trainable(params, trainable)
    return TrainState(jnp.zeros((), jnp.int32), params, tx.init(train_part), batch_stats)


def zero_train_totals() -> dict:
    """The train metrics of an epoch before its first step; `first_bad_step` -1 means none."""
    zero = functools.partial(jnp.zeros, (), jnp.float32)  # one buffer each: the step donates them
    return {"loss_sum": zero(), "correct": zero(), "count": zero(), "first_bad_step": jnp.full((), -1, jnp.int32)}


def zero_eval_totals(num_classes: int) -> dict:
    zero = functools.partial(jnp.zeros, (), jnp.float32)
    return {"loss_sum": zero(), "correct": zero(), "count": zero(), "confusion": jnp.zeros((num_classes, num_classes))}


def _masked_cross_entropy(logits, labels, mask, label_smoothing: float = 0.0):
    if not label_smoothing:  # the paper's loss, exactly
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels) * mask
    targets = optax.smooth_labels(jax.nn.one_hot(labels, logits.shape[-1]), label_smoothing)
    return optax.softmax_cross_entropy(logits, targets) * mask


def _add(totals: dict, metrics: dict) -> dict:
    return {k: totals[k] + metrics[k] for k in metrics}


def make_steps(
    model,
    tx: optax.GradientTransformation,
    pipeline,
    *,
    num_classes: int,
    trainable: frozenset[str] | None = None,
    has_batch_stats: bool = False,
    label_smoothing: float = 0.0,
) -> tuple[Callable, Callable]:
    """Plain (unjitted) `train_step(state, resident, batch, rng, totals, step) -> (state, totals)`
    and `eval_step(state, resident, batch, rng, totals) -> (totals, predictions)`.

    The last, padded batch is masked: the loss is the mean over the real examples, the same
    gradient as PyTorch's smaller last batch, and for BatchNorm models the padded examples stay
    out of the batch statistics. `step` (the step's index in its epoch) is what
    `first_bad_step` records when the loss stops being finite. `label_smoothing` applies to the
    training loss (torch.nn.CrossEntropyLoss's); evaluation reports the plain cross-entropy.
    """

    def apply(variables, images, train: bool, rng=None, mask=None):
        kwargs = {"rngs": {"dropout": rng}} if train else {}
        if has_batch_stats and train:
            logits, updated = model.apply(variables, images, train=True, mask=mask, mutable=["batch_stats"], **kwargs)
            return logits, updated["batch_stats"]
        return model.apply(variables, images, train=train, **kwargs), variables.get("batch_stats", {})

    def variables_of(params, batch_stats):
        return {"params": params, "batch_stats": batch_stats} if has_batch_stats else {"params": params}

    def train_step(state: TrainState, resident, batch, rng, totals, step):
        augment_rng, dropout_rng = jax.random.split(rng)
        images = pipeline.preprocess(resident, batch, augment_rng, True)
        labels, mask = batch["labels"], batch["mask"]
        count = jnp.maximum(mask.sum(), 1.0)
        train_part, frozen_part = split_trainable(state.params, trainable)

        def loss_fn(train_part):
            variables = variables_of({**train_part, **frozen_part}, state.batch_stats)
            logits, batch_stats = apply(variables, images, True, dropout_rng, mask)
            losses = _masked_cross_entropy(logits, labels, mask, label_smoothing)
            return losses.sum() / count, (logits, losses, batch_stats)

        (loss, (logits, losses, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(train_part)
        updates, opt_state = tx.update(grads, state.opt_state, train_part)
        params = {**optax.apply_updates(train_part, updates), **frozen_part}
        bad = jnp.logical_and(totals["first_bad_step"] < 0, jnp.logical_not(jnp.isfinite(loss)))
        totals = {
            **_add(
                totals,
                {
                    "loss_sum": losses.sum(),
                    "correct": ((jnp.argmax(logits, -1) == labels) * mask).sum(),
                    "count": mask.sum(),
                },
            ),
            "first_bad_step": jnp.where(bad, step, totals["first_bad_step"]),
        }
        return TrainState(state.step + 1, params, opt_state, batch_stats), totals

    def eval_step(state: TrainState, resident, batch, rng, totals):
        images = pipeline.preprocess(resident, batch, rng, False)
        labels, mask = batch["labels"], batch["mask"]
        logits, _ = apply(variables_of(state.params, state.batch_stats), images, False)
        predictions = jnp.argmax(logits, -1)
        confusion = (
            jax.nn.one_hot(labels, num_classes)[:, :, None]
            * jax.nn.one_hot(predictions, num_classes)[:, None, :]
            * mask[:, None, None]
        ).sum(0)
        metrics = {
            "loss_sum": _masked_cross_entropy(logits, labels, mask).sum(),
            "correct": ((predictions == labels) * mask).sum(),
            "count": mask.sum(),
            "confusion": confusion,
        }
        return _add(totals, metrics), predictions

    return train_step, eval_step


@dataclasses.dataclass(frozen=True)
class StepKey:
    """Everything a compiled step depends on besides its input shapes."""

    model: Any  # the flax module (a frozen dataclass: hashable by value)
    optim: tuple  # sorted (name, value) items of the effective optimizer settings
    lr_scales: tuple | None
    trainable: frozenset[str] | None
    has_batch_stats: bool
    pipeline: tuple  # the pipeline's `signature`
    mesh: jax.sharding.Mesh
    num_classes: int
    pack: int


@dataclasses.dataclass
class Steps:
    train: Callable
    eval: Callable
    tx: optax.GradientTransformation


_CACHE: dict[StepKey, Steps] = {}
_CACHE_LOCK = threading.Lock()


def build_steps(key: StepKey, pipeline) -> Steps:
    """The jitted steps for `key`, built on first use and then shared by every caller."""
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key]
        tx = make_optimizer(dict(key.optim), dict(key.lr_scales) if key.lr_scales else None)
        train_step, eval_step = make_steps(
            key.model,
            tx,
            pipeline,
            num_classes=key.num_classes,
            trainable=key.trainable,
            has_batch_stats=key.has_batch_stats,
            label_smoothing=float(dict(key.optim).get("label_smoothing") or 0.0),
        )
        if key.pack > 1:  # members stacked on a leading axis; the resident data set is shared
            train_step = jax.vmap(train_step, in_axes=(0, None, 0, 0, 0, None))
            eval_step = jax.vmap(eval_step, in_axes=(0, None, 0, 0, 0))
        replicated = jax.sharding.NamedSharding(key.mesh, jax.sharding.PartitionSpec())
        steps = Steps(
            train=jax.jit(
                train_step,
                donate_argnums=(0, 4),
                out_shardings=(replicated, replicated),
                compiler_options=layers.cpu_compiler_options(key.model, "train"),
            ),
            eval=jax.jit(
                eval_step,
                donate_argnums=(4,),
                out_shardings=replicated,
                compiler_options=layers.cpu_compiler_options(key.model, "forward"),
            ),
            tx=tx,
        )
        _CACHE[key] = steps
        return steps


class CompileClock:
    """Seconds this process has spent tracing, lowering and compiling, from JAX's own events."""

    EVENTS = (
        "/jax/core/compile/jaxpr_trace_duration",
        "/jax/core/compile/jaxpr_to_mlir_module_duration",
        "/jax/core/compile/backend_compile_duration",
    )
    _installed = False
    seconds = 0.0
    _lock = threading.Lock()

    @classmethod
    def install(cls) -> type[CompileClock]:
        with cls._lock:
            if not cls._installed:
                jax.monitoring.register_event_duration_secs_listener(cls._record)
                cls._installed = True
        return cls

    @classmethod
    def _record(cls, event: str, duration: float, **_) -> None:
        if event in cls.EVENTS:
            cls.seconds += duration
