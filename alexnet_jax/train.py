"""Training: one run is one split and two arms (ImageNet-pretrained and scratch).

    python -m alexnet_jax.train --config=alexnet_jax/configs/quick.py \
        --data_dir=data/synthetic_quick --workdir=runs/quick --runs=0-1

Each run writes only into WORKDIR/run_NNN/: results.json (schema in `alexnet_jax.results`),
and per arm an orbax CheckpointManager (the latest state; deleted once the arm is complete,
unless config.keep_final_state), the best-epoch params (`best/`), TensorBoard logs and
metrics.jsonl. A run killed at any moment resumes from its last complete epoch and ends with
the same numbers as an uninterrupted one. All randomness (initialisation, dropout, data
order, augmentation) derives from (seed, run index, arm, epoch, step), so the same command
gives the same numbers, bit for bit on CPU.

The step is one `jax.jit` over a 1-D device mesh: the batch is sharded on 'data' and the
train state replicated, so XLA all-reduces the gradients. Arms train one after the other.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import app, flags

from alexnet_jax import cli, configs
from alexnet_jax import results as results_lib
from alexnet_jax.data.labels import CLASS_NAMES
from alexnet_jax.models import HEAD, AlexNet, count_params, init_head, init_params
from alexnet_jax.params_io import DEFAULT_IMAGENET_DIR
from alexnet_jax.rundir import (
    Checkpoints,
    RunLockedError,
    TrainingError,
    check_free_space,
    config_fingerprint,
    drop_resume_state,
    fingerprint_differences,
    run_lock,
)
from alexnet_jax.toolbox import format_duration, write_json_atomic

ARM_IDS = {"pretrained": 0, "scratch": 1}
# Keys that measure the machine rather than the training; they differ between any two runs.
TIMING_KEYS = ("wall_time_s", "images_per_s")


# --------------------------------------------------------------------------------------
# The step.


@flax.struct.dataclass
class TrainState:
    step: jax.Array
    params: Any
    opt_state: Any


def make_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
    """PyTorch's SGD: weight decay is added to the gradient before momentum."""
    sgd = optax.sgd(config.optim.learning_rate, momentum=config.optim.momentum or None)
    if config.optim.weight_decay:
        return optax.chain(optax.add_decayed_weights(config.optim.weight_decay), sgd)
    return sgd


def make_mesh(devices: Iterable[jax.Device] | None = None) -> jax.sharding.Mesh:
    devices = np.asarray(list(devices) if devices is not None else jax.devices())
    return jax.sharding.Mesh(devices, ("data",))


def replicate(tree, mesh: jax.sharding.Mesh):
    return jax.device_put(tree, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()))


def make_steps(
    model: AlexNet,
    tx: optax.GradientTransformation,
    pipeline,
    mesh,
    *,
    num_classes: int,
    jit: bool = True,
) -> tuple[Callable, Callable]:
    """Jitted `train_step(state, resident, batch, rng)` and `eval_step(params, resident, batch, rng)`.

    Both return sums (loss, correct, count) so that an epoch accumulates on the device and the
    host reads the totals once. The last, padded batch is masked: the loss is the mean over the
    real examples, the same gradient as PyTorch's smaller last batch. `jit=False` returns the plain
    functions, for callers that compose them further (the benchmark's scanned or vmapped steps).
    Eval outputs come back replicated, so every process of a multi-host run can read them.
    """
    replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())

    def masked_cross_entropy(logits, labels, mask):
        per_example = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
        return per_example * mask

    def train_step(state: TrainState, resident, batch, rng):
        augment_rng, dropout_rng = jax.random.split(rng)
        images = pipeline.preprocess(resident, batch, augment_rng, True)
        labels, mask = batch["labels"], batch["mask"]
        count = jnp.maximum(mask.sum(), 1.0)

        def loss_fn(params):
            logits = model.apply({"params": params}, images, train=True, rngs={"dropout": dropout_rng})
            losses = masked_cross_entropy(logits, labels, mask)
            return losses.sum() / count, (logits, losses)

        (loss, (logits, losses)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        correct = ((jnp.argmax(logits, -1) == labels) * mask).sum()
        metrics = {
            "loss_sum": losses.sum(),
            "correct": correct,
            "count": mask.sum(),
            "finite": jnp.isfinite(loss).astype(jnp.int32),
        }
        return TrainState(state.step + 1, params, opt_state), metrics

    def eval_step(params, resident, batch, rng):
        images = pipeline.preprocess(resident, batch, rng, False)
        labels, mask = batch["labels"], batch["mask"]
        logits = model.apply({"params": params}, images, train=False)
        predictions = jnp.argmax(logits, -1)
        weights = mask[:, None, None]
        confusion = (
            jax.nn.one_hot(labels, num_classes)[:, :, None]
            * jax.nn.one_hot(predictions, num_classes)[:, None, :]
            * weights
        ).sum(0)
        return {
            "loss_sum": masked_cross_entropy(logits, labels, mask).sum(),
            "correct": ((predictions == labels) * mask).sum(),
            "count": mask.sum(),
            "confusion": confusion,
            "predictions": predictions,
            "mask": mask,
        }

    if not jit:
        return train_step, eval_step
    train_step = jax.jit(train_step, donate_argnums=(0,), out_shardings=(replicated, replicated))
    eval_step = jax.jit(eval_step, out_shardings=replicated)
    return train_step, eval_step


# --------------------------------------------------------------------------------------
# Randomness: everything derives from (seed, run, arm, epoch, step).


def arm_key(seed: int, run_index: int, arm: str) -> jax.Array:
    return jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), run_index), ARM_IDS[arm])


def step_key(key: jax.Array, purpose: int, epoch: int, step: int) -> jax.Array:
    """purpose: 0 init, 1 train, 2 test eval, 3 validation eval."""
    return jax.random.fold_in(jax.random.fold_in(jax.random.fold_in(key, purpose), epoch), step)


def numpy_seed(*words: int) -> int:
    return int(np.random.SeedSequence([int(w) for w in words]).generate_state(1)[0])


def epoch_order(train_idx: np.ndarray, config, run_index: int, arm: str, epoch: int) -> np.ndarray:
    """The order of training examples in an epoch. The paper's sampler never had its epoch set,
    so its order was the same in every epoch; `data.shuffle_each_epoch` draws a new one."""
    shuffle_epoch = epoch if config.data.shuffle_each_epoch else 0
    rng = np.random.default_rng(numpy_seed(config.seed, run_index, ARM_IDS[arm], shuffle_epoch, 1))
    return train_idx[rng.permutation(len(train_idx))]


# --------------------------------------------------------------------------------------
# Data, splits and initial parameters.


@dataclasses.dataclass
class RunData:
    images: np.ndarray
    labels: np.ndarray
    manifest: dict
    train_idx: np.ndarray
    test_idx: np.ndarray
    val_idx: np.ndarray | None


def load_run_data(config, run_index: int) -> RunData:
    from alexnet_jax.data import prepared, splits

    data_dir = Path(config.data.dir)
    manifest = prepared.read_manifest(data_dir)
    images, labels, _ = prepared.load_prepared(data_dir)
    n = len(labels)
    train_size = config.data.train_size if config.data.train_size is not None else splits.default_train_size(n)
    if config.data.split == "paper":
        train_idx, test_idx = splits.paper_split(run_index, num_examples=n, train_size=train_size)
    elif config.data.split == "stratified":
        train_idx, test_idx = splits.stratified_split(
            labels, train_size=train_size, seed=numpy_seed(config.seed, run_index)
        )
    else:
        raise TrainingError(f"--config.data.split={config.data.split!r}: use 'paper' or 'stratified'")
    val_idx = None
    if config.selection == "val" or config.data.val_fraction > 0:
        if config.data.val_fraction <= 0:
            raise TrainingError(
                "--config.selection=val needs a validation split: set --config.data.val_fraction (e.g. 0.1)"
            )
        train_idx, val_idx = splits.carve_validation(
            train_idx, labels, config.data.val_fraction, seed=numpy_seed(config.seed, run_index, 7)
        )
    return RunData(
        np.asarray(images),
        np.asarray(labels),
        manifest,
        np.asarray(train_idx),
        np.asarray(test_idx),
        None if val_idx is None else np.asarray(val_idx),
    )


def initial_params(arm: str, config, key: jax.Array, pretrained_weights: Path) -> tuple[dict, dict]:
    """Initial params and a provenance record. The pretrained arm refuses to start without
    real converted weights: it never trains a random network under that name."""
    num_classes = config.model.num_classes
    init_key = step_key(key, 0, 0, 0)
    if arm == "scratch":
        params = init_params(init_key, num_classes, image_size=config.augment.crop_size)
        return params, {"kind": "torchvision_default_init"}
    from alexnet_jax import params_io

    weights_dir = Path(pretrained_weights)
    if not (weights_dir / "metadata.json").exists():
        raise TrainingError(
            f"The pretrained arm needs converted ImageNet weights, and {weights_dir} has none.\n"
            "  Fix: run `python -m alexnet_jax.convert` once with internet access (torchvision downloads "
            "alexnet-owt-7be5be79.pth),\n"
            "       or `python -m alexnet_jax.convert --torch_checkpoint=/path/to/alexnet-owt-7be5be79.pth`,\n"
            "       or pass --pretrained_weights=DIR, or train only the scratch arm with --arms=scratch."
        )
    params = jax.tree_util.tree_map(jnp.asarray, params_io.load_params(weights_dir))
    metadata = params_io.load_metadata(weights_dir)
    head = params[HEAD]["kernel"]
    if head.shape[-1] != num_classes:
        params = dict(params)
        params[HEAD] = init_head(init_key, num_classes, fan_in=head.shape[0])
    provenance = {
        "kind": "converted_torch_weights",
        "weights_dir": str(weights_dir),
        "source": metadata.get("source"),
        "source_sha256": metadata.get("source_sha256") or metadata.get("sha256"),
        "head_replaced": head.shape[-1] != num_classes,
    }
    return params, provenance


def choose_pipeline(config) -> str:
    """'auto' is on_device on every platform. Measured on the 2-core CPU (docs/performance.md):
    the augmentation alone ran at ~550 img/s on-device against ~190 img/s through tf.data, and
    the whole 224 px train step was compute-bound and equal within noise (14.7 vs 16.0 img/s).
    The GPU machines have no TensorFlow, and there the data set resident on the device
    removes the input pipeline from the step."""
    if config.pipeline not in ("auto", "on_device", "tf_data"):
        raise TrainingError(f"--config.pipeline={config.pipeline!r}: use 'auto', 'on_device' or 'tf_data'")
    return "on_device" if config.pipeline == "auto" else config.pipeline


def build_pipeline(config, data: RunData, mesh):
    from alexnet_jax import augment, input_pipeline

    try:
        train_augment, eval_augment = augment.configs_from(config)
        for field in ("batch_size", "eval_batch_size"):
            input_pipeline.check_batch_size(config[field], mesh.size, f"--config.{field}")
    except ValueError as error:
        raise TrainingError(str(error)) from None
    return input_pipeline.make_pipeline(
        choose_pipeline(config),
        data.images,
        data.labels,
        image_size=config.data.image_size,
        train_augment=train_augment,
        eval_augment=eval_augment,
        normalize_imagenet=config.normalize_imagenet,
        mesh=mesh,
    )


def _best(values: list[float]) -> int:
    return int(np.argmax(values))  # first maximum, as the paper


class Trainer:
    """Trains the arms of one run. Owns the data, the mesh, the steps and the results file."""

    def __init__(
        self,
        config,
        workdir: Path,
        run_index: int,
        *,
        pretrained_weights: Path = DEFAULT_IMAGENET_DIR,
        devices=None,
        log: Callable[[str], None] = print,
    ):
        self.config = config
        self.run_index = run_index
        self.dir = results_lib.run_dir(workdir, run_index)
        self.pretrained_weights = Path(pretrained_weights)
        self.log = log
        self.mesh = make_mesh(devices)
        self.data = load_run_data(config, run_index)
        self.pipeline = build_pipeline(config, self.data, self.mesh)
        dtype = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}.get(config.model.dtype)
        if dtype is None:
            raise TrainingError(f"--config.model.dtype={config.model.dtype!r}: use 'float32' or 'bfloat16'")
        self.model = AlexNet(num_classes=config.model.num_classes, dropout_rate=config.model.dropout_rate, dtype=dtype)
        self.tx = make_optimizer(config)
        self.train_step, self.eval_step = make_steps(
            self.model,
            self.tx,
            self.pipeline,
            self.mesh,
            num_classes=config.model.num_classes,
        )
        self.resident = self.pipeline.resident

    # ---- results.json
    def _results_path(self) -> Path:
        return self.dir / results_lib.RESULTS_FILENAME

    def _read_results(self) -> dict:
        path = self._results_path()
        fingerprint = config_fingerprint(self.config)
        if path.exists():
            existing = results_lib.load_results(path)
            differences = fingerprint_differences(fingerprint, config_fingerprint(existing["config"]))
            if differences:
                raise TrainingError(
                    f"{path} was made with another config; resuming would mix two protocols. "
                    f"Differences: {'; '.join(differences)}. Use another --workdir, or delete {self.dir} to start over."
                )
            return existing
        names = list(self._class_names())
        counts = lambda idx: np.bincount(self.data.labels[idx], minlength=len(names)).tolist()  # noqa: E731
        split = {
            "protocol": self.config.data.split,
            "train_size": int(len(self.data.train_idx)),
            "test_size": int(len(self.data.test_idx)),
            "train_counts": counts(self.data.train_idx),
            "test_counts": counts(self.data.test_idx),
            "test_indices": self.data.test_idx.tolist(),
            "test_labels": self.data.labels[self.data.test_idx].tolist(),
        }
        if self.data.val_idx is not None:
            split["val_counts"] = counts(self.data.val_idx)
        manifest = self.data.manifest
        return {
            "schema": results_lib.SCHEMA,
            "run_index": self.run_index,
            "class_names": names,
            "split": split,
            "data": {
                k: manifest.get(k) for k in ("name", "source", "num_examples", "class_counts", "generator", "sha256")
            },
            "arms": {},
            "config": json.loads(self.config.to_json()),
        }

    def _write_results(self, results: dict) -> None:
        if jax.process_index() == 0:
            write_json_atomic(self._results_path(), results)

    def _class_names(self):
        return self.data.manifest.get("class_names") or list(CLASS_NAMES)

    # ---- epochs
    def _evaluate(self, params, indices: np.ndarray, key: jax.Array, purpose: int, epoch: int, seed: int) -> dict:
        totals, predictions = None, []
        for step, batch in enumerate(
            self.pipeline.batches(indices, self.config.eval_batch_size, train=False, seed=seed)
        ):
            out = self.eval_step(params, self.resident, batch, step_key(key, purpose, epoch, step))
            predictions.append((out.pop("predictions"), out.pop("mask")))
            totals = out if totals is None else jax.tree_util.tree_map(jnp.add, totals, out)
        totals = jax.device_get(totals)
        preds = np.concatenate([np.asarray(p)[np.asarray(m) > 0] for p, m in predictions])
        count = float(totals["count"])
        return {
            "acc": float(totals["correct"]) / count,
            "loss": float(totals["loss_sum"]) / count,
            "confusion": np.rint(totals["confusion"]).astype(int).tolist(),
            "predictions": preds.astype(int).tolist(),
        }

    def train_arm(self, arm: str, results: dict) -> dict:
        config = self.config
        epochs = int(config.epochs[arm])
        arm_dir = self.dir / arm
        key = arm_key(config.seed, self.run_index, arm)
        record = results["arms"].get(arm)
        if record and record.get("complete"):
            self.log(f"run {self.run_index:03d} [{arm}] already complete ({epochs} epochs); skipping")
            drop_resume_state(config, arm_dir)  # a kill may have come before the deletion
            return record

        params, provenance = initial_params(arm, config, key, self.pretrained_weights)
        state = TrainState(jnp.zeros((), jnp.int32), params, self.tx.init(params))
        if jax.process_index() == 0:
            check_free_space(arm_dir, state, f"run {self.run_index:03d} [{arm}]")
        checkpoints = Checkpoints(arm_dir, config.keep_every_epoch)
        history = {k: [] for k in ("train_acc", "train_loss", "test_acc", "test_loss", "val_acc", "val_loss")}
        best = {"epoch": -1, "confusion": None, "predictions": None}
        wall_time, images_seen = 0.0, 0
        latest = checkpoints.latest_epoch()
        if latest is not None:
            abstract = jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(np.shape(x), jnp.asarray(x).dtype), state)
            state, saved = checkpoints.restore(latest, abstract)
            history, best = saved["history"], saved["best"]
            wall_time, images_seen = saved["wall_time_s"], saved["images_seen"]
            self.log(f"run {self.run_index:03d} [{arm}] resuming after epoch {latest + 1}/{epochs}")
        state = replicate(state, self.mesh)
        start_epoch = len(history["test_acc"])
        test_seed_base = numpy_seed(config.seed, self.run_index, ARM_IDS[arm], 2)
        selection = "val" if config.selection == "val" else "test"
        writer = _summary_writer(arm_dir / "tb")

        def snapshot(complete: bool) -> dict:
            done = len(history["test_acc"])
            entry = {
                "epochs": epochs,
                "complete": complete,
                "selection": selection,
                "init": provenance,
                "pipeline": self.pipeline.name,
                "devices": [str(d) for d in self.mesh.devices.flat],
                **{k: history[k] for k in ("train_acc", "test_acc", "train_loss", "test_loss")},
                "best_epoch": best["epoch"],
                "best_test_acc": history["test_acc"][best["epoch"]] if done else None,
                "confusion_matrix": best["confusion"] or [],
                "test_predictions": best["predictions"] or [],
                "wall_time_s": round(wall_time, 3),
                "images_per_s": round(images_seen / wall_time, 2) if wall_time else None,
            }
            if selection == "val":
                entry["val_acc"], entry["val_loss"] = history["val_acc"], history["val_loss"]
            return entry

        try:
            for epoch in range(start_epoch, epochs):
                t0 = time.perf_counter()
                order = epoch_order(self.data.train_idx, config, self.run_index, arm, epoch)
                train_seed = numpy_seed(config.seed, self.run_index, ARM_IDS[arm], epoch, 3)
                totals, finite = None, []
                for step, batch in enumerate(
                    self.pipeline.batches(order, config.batch_size, train=True, seed=train_seed)
                ):
                    state, metrics = self.train_step(state, self.resident, batch, step_key(key, 1, epoch, step))
                    finite.append(metrics.pop("finite"))
                    totals = metrics if totals is None else jax.tree_util.tree_map(jnp.add, totals, metrics)
                totals, finite = jax.device_get((totals, finite))
                if not all(int(f) for f in finite):
                    bad_step = next(i for i, f in enumerate(finite) if not int(f))
                    raise TrainingError(
                        f"run {self.run_index:03d} [{arm}]: the training loss became non-finite at epoch {epoch} "
                        f"(0-based), step {bad_step}. Checkpoints up to epoch {epoch - 1} are kept in {arm_dir}. "
                        "Lower --config.optim.learning_rate or check the data."
                    )
                test = self._evaluate(state.params, self.data.test_idx, key, 2, epoch, test_seed_base + epoch)
                history["train_loss"].append(float(totals["loss_sum"]) / float(totals["count"]))
                history["train_acc"].append(float(totals["correct"]) / float(totals["count"]))
                history["test_loss"].append(test["loss"])
                history["test_acc"].append(test["acc"])
                if selection == "val":
                    val = self._evaluate(
                        state.params, self.data.val_idx, key, 3, epoch, test_seed_base + 10_000 + epoch
                    )
                    history["val_acc"].append(val["acc"])
                    history["val_loss"].append(val["loss"])
                selected = history["val_acc"] if selection == "val" else history["test_acc"]
                if _best(selected) == epoch:
                    best = {"epoch": epoch, "confusion": test["confusion"], "predictions": test["predictions"]}
                    if jax.process_index() == 0:
                        checkpoints.save_best(
                            state.params,
                            {
                                "run_index": self.run_index,
                                "arm": arm,
                                "epoch": epoch,
                                "selection": selection,
                                "test_acc": test["acc"],
                                "num_classes": config.model.num_classes,
                                "class_names": list(self._class_names()),
                                "config": json.loads(config.to_json()),
                            },
                        )
                elapsed = time.perf_counter() - t0
                wall_time += elapsed
                images_seen += len(order)
                checkpoints.save(
                    epoch,
                    state,
                    {"history": history, "best": best, "wall_time_s": wall_time, "images_seen": images_seen},
                )
                results["arms"][arm] = snapshot(complete=epoch + 1 == epochs)
                self._write_results(results)
                self._log_epoch(
                    arm,
                    epoch,
                    epochs,
                    history,
                    len(order) / elapsed,
                    wall_time / (epoch + 1 - start_epoch) * (epochs - epoch - 1),
                    writer,
                    arm_dir,
                )
            if start_epoch >= epochs and not (record and record.get("complete")):
                results["arms"][arm] = snapshot(complete=True)
                self._write_results(results)
        finally:
            checkpoints.close()
            if writer is not None:
                writer.close()
        drop_resume_state(config, arm_dir)
        return results["arms"][arm]

    def _log_epoch(self, arm, epoch, epochs, history, images_per_s, eta_s, writer, arm_dir):
        h = {k: v[-1] for k, v in history.items() if v}
        line = (
            f"run {self.run_index:03d} [{arm:10s}] epoch {epoch + 1:3d}/{epochs}  "
            f"train loss {h['train_loss']:.4f} acc {h['train_acc']:.4f} | test loss {h['test_loss']:.4f} "
            f"acc {h['test_acc']:.4f}"
            + (f" | val acc {h['val_acc']:.4f}" if "val_acc" in h else "")
            + f" | {images_per_s:,.0f} img/s | ETA {format_duration(eta_s)}"
        )
        self.log(line)
        with open(arm_dir / "metrics.jsonl", "a") as handle:
            handle.write(json.dumps({"epoch": epoch, **h, "images_per_s": images_per_s}) + "\n")
        if writer is not None:
            for name, value in h.items():
                writer.add_scalar(name, value, epoch)
            writer.add_scalar("images_per_s", images_per_s, epoch)
            writer.flush()

    def _param_count(self) -> int:
        shapes = jax.eval_shape(
            lambda key: init_params(key, self.config.model.num_classes, self.config.augment.crop_size),
            jax.random.key(0),
        )
        return count_params(shapes)

    def run(self, arms: Iterable[str]) -> dict:
        # In a multi-host run every process trains; process 0 alone holds the lock and writes
        # results.json and best/, while orbax's CheckpointManager coordinates all processes.
        lock = run_lock(self.dir) if jax.process_index() == 0 else contextlib.nullcontext()
        with lock:
            results = self._read_results()
            arms = list(arms)
            if all(results_lib.is_complete(results, a) for a in arms) and all(a in results["arms"] for a in arms):
                self.log(f"run {self.run_index:03d} is already complete ({', '.join(arms)}); nothing to do")
                for arm in arms:  # in case a kill came between finishing an arm and deleting its state
                    drop_resume_state(self.config, self.dir / arm)
                return results
            self.log(
                f"run {self.run_index:03d}: {len(self.data.train_idx)} train / {len(self.data.test_idx)} test images"
                f"{'' if self.data.val_idx is None else f' / {len(self.data.val_idx)} validation'}, "
                f"pipeline {self.pipeline.name}, {self.mesh.size} device(s) ({jax.default_backend()}), "
                f"{self._param_count():,} parameters"
            )
            for arm in arms:
                self.train_arm(arm, results)
            return results


def _summary_writer(directory: Path):
    try:
        from tensorboardX import SummaryWriter
    except ImportError:  # TensorBoard logs are a convenience, never a reason to fail
        return None
    return SummaryWriter(str(directory))


# --------------------------------------------------------------------------------------
# Command line.


def parse_arms(text: str) -> list[str]:
    arms = [a.strip() for a in text.split(",") if a.strip()]
    unknown = [a for a in arms if a not in ARM_IDS]
    if unknown or not arms:
        raise ValueError(f"--arms: unknown arm(s) {unknown or text!r}; use pretrained, scratch or both")
    return arms


def train_runs(config, workdir, runs: list[int], arms: list[str], **kwargs) -> list[dict]:
    return [Trainer(config, Path(workdir), r, **kwargs).run(arms) for r in runs]


def define_flags():
    """The trainer's absl flags; public so that launchers (alexnet_jax.study) can reuse them."""
    from ml_collections import config_flags

    config_flags.DEFINE_config_file(
        "config",
        configs.path("quick"),
        "Config file (alexnet_jax/configs/*.py); --config.field=value overrides any field.",
        lock_config=True,
    )
    flags.DEFINE_string("workdir", None, "Output directory; run r writes only into WORKDIR/run_NNN/.", required=True)
    flags.DEFINE_integer("run_index", None, "The run (split) to train.")
    flags.DEFINE_string("runs", None, "Several runs, e.g. 0-9,49 (instead of --run_index).")
    flags.DEFINE_string("arms", "pretrained,scratch", "Arms to train: pretrained, scratch, or both.")
    flags.DEFINE_string("data_dir", None, "A prepared data set (overrides config.data.dir).")
    flags.DEFINE_string(
        "pretrained_weights", str(DEFAULT_IMAGENET_DIR), "Converted ImageNet weights (python -m alexnet_jax.convert)."
    )
    flags.DEFINE_bool("keep_every_epoch", False, "Keep a checkpoint of every epoch, not only the latest.")


def main(argv) -> int:
    cli.quiet_library_logs()
    del argv
    FLAGS = flags.FLAGS
    config = FLAGS.config
    with config.unlocked():
        if FLAGS.data_dir:
            config.data.dir = FLAGS.data_dir
        if FLAGS.keep_every_epoch:
            config.keep_every_epoch = True
    try:
        if (FLAGS.run_index is None) == (FLAGS.runs is None):
            raise ValueError("give exactly one of --run_index=N or --runs=0-9,49")
        runs = [FLAGS.run_index] if FLAGS.run_index is not None else cli.parse_runs(FLAGS.runs)
        if any(r < 0 for r in runs):
            raise ValueError("--run_index must be >= 0")
        arms = parse_arms(FLAGS.arms)
        train_runs(config, FLAGS.workdir, runs, arms, pretrained_weights=Path(FLAGS.pretrained_weights))
    except RunLockedError as error:
        return cli.report_error(error, cli.EXIT_LOCKED)
    except (TrainingError, ValueError, results_lib.ResultsError) as error:
        return cli.report_error(error, cli.EXIT_BAD_INPUT)
    return cli.EXIT_OK


def run() -> None:
    """`python -m alexnet_jax.train` and the `alexnet-jax-train` script."""
    define_flags()
    app.run(lambda argv: sys.exit(main(argv)))


if __name__ == "__main__":
    run()
