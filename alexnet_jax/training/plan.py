"""The training plan: a config read once, checked once, frozen.

`resolve(config, workdir=...)` turns an ml_collections ConfigDict into a `Plan`, the only
thing the training layers below receive; no module under alexnet_jax/training/, nor
alexnet_jax.seeds or alexnet_jax.inputs, reads the ConfigDict. Every problem a config can
have is found here, before any data is read, and names the `--config.field` to fix.

`Plan.config` is the resolved config as a plain dict: what results.json records, and the
run's fingerprint (a run resumes only under the config that started it).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from alexnet_jax import models
from alexnet_jax.errors import TrainingError
from alexnet_jax.inputs.augment import LEGACY_NORMALIZE_KEY, AugmentConfig, configs_from, normalization_record
from alexnet_jax.models.spec import NORMALIZATIONS
from alexnet_jax.training import label_budget
from alexnet_jax.training.arms import ARM_NAME, INITS, ArmSpec, parse_finetune
from alexnet_jax.training.rundir import CheckpointPolicy
from alexnet_jax.training.steps import OPTIMIZERS

DTYPES = ("float32", "bfloat16")
SPLITS = ("auto", "paper", "stratified", "declared")
SELECTIONS = ("test", "val")
PIPELINES = ("auto", "on_device", "tf_data")
NORMALIZE_CHOICES = ("weights", *NORMALIZATIONS)  # config.normalize; "weights" resolves per model


@dataclasses.dataclass(frozen=True)
class ModelPlan:
    name: str
    num_classes: int
    dtype: str  # one of DTYPES
    options: tuple[tuple[str, Any], ...]  # the model's own options (models.ModelSpec.options), sorted

    @property
    def spec(self) -> models.ModelSpec:
        return models.get_spec(self.name)

    def build(self, frozen_blocks: tuple[str, ...] = ()):
        """The Flax module; a partial finetune's frozen blocks keep their BatchNorm statistics."""
        import jax.numpy as jnp

        options = dict(self.options)
        if self.spec.batch_norm:
            options["frozen"] = frozen_blocks
        return models.get_model(self.name, self.num_classes, dtype=getattr(jnp, self.dtype), **options)


@dataclasses.dataclass(frozen=True)
class DataPlan:
    dir: str
    image_size: int
    split: str  # one of SPLITS; "auto" only while the data set is not there yet
    train_size: int | None  # None: the paper's 12,000 of 14,034, scaled to the data set
    val_fraction: float  # > 0: a validation split carved from the training split
    shuffle_each_epoch: bool
    pipeline: str  # "on_device" or "tf_data" ("auto" resolved)
    train_augment: AugmentConfig
    eval_augment: AugmentConfig
    normalize: str  # the input scaling every arm gets, resolved (NORMALIZATIONS)
    normalize_asked: str  # config.normalize as written ("weights", or the name itself)

    @property
    def input_normalization(self) -> dict:
        """What results.json records of the scaling (name, mean, std, and what was asked)."""
        return normalization_record(self.normalize, self.normalize_asked)


@dataclasses.dataclass(frozen=True)
class Plan:
    """Everything a training run needs to know, and where it writes."""

    model: ModelPlan
    arms: tuple[ArmSpec, ...]  # in the config's order
    data: DataPlan
    batch_size: int
    eval_batch_size: int
    selection: str  # "test" (the paper's peak epoch) or "val"
    seed: int
    pack_runs: int  # K > 1: K runs of an arm in one vmapped step
    checkpoints: CheckpointPolicy
    keep_every_epoch: bool  # keep every epoch's resume state
    keep_final_state: bool  # a finished arm keeps its resume state (also when every epoch is kept)
    config: dict = dataclasses.field(hash=False, compare=False)  # the resolved config, as results.json holds it
    workdir: Path = Path(".")
    pretrained_weights: Path | None = None  # None: the model's default converted weights
    config_file: str | None = None  # recorded in results.json
    label_study: label_budget.LabelStudy | None = None  # config.label_efficiency; None: an ordinary study

    @property
    def arm_names(self) -> list[str]:
        return [arm.name for arm in self.arms]

    def arm(self, name: str) -> ArmSpec:
        for arm in self.arms:
            if arm.name == name:
                return arm
        raise KeyError(name)

    def planned_epochs(self, run_index: int, arm: str) -> int:
        """The epochs `arm` trains in run `run_index`: the config's, or a label-efficiency run's budget
        (the config's where the data set was not there when the plan was made)."""
        study = self.label_study
        if study is None or study.pool_size is None:
            return self.arm(arm).epochs
        size_index, _ = study.place(run_index)
        budget = study.run_budget(size_index, [self.arm(arm)], study.pool_size, self.data.val_fraction, self.batch_size)
        return budget["epochs"][arm]

    def epochs_by_run(self, runs: list[int], arms: list[str]) -> dict[str, dict[int, int]]:
        """{arm: {run: epochs}} (the launcher's progress); refuses runs outside a label-efficiency study."""
        if self.label_study is not None:
            self.label_study.check_runs(runs)
        return {arm: {run: self.planned_epochs(run, arm) for run in runs} for arm in arms}

    def check_arms(self, names: list[str], asked_as: str | None = None) -> None:
        """Refuse arm names the config does not declare, naming the ones it does; `asked_as`, the
        --arms text the names came from, must name at least one."""
        unknown = [a for a in names if a not in self.arm_names]
        if unknown or (asked_as is not None and not names):
            raise ValueError(
                f"--arms: unknown arm(s) {unknown or asked_as!r}; this config declares {', '.join(self.arm_names)}"
            )

    def select_arms(self, text: str | None) -> list[str]:
        """`--arms=a,b` -> those arms, in the config's order; None -> every declared arm."""
        if text is None:
            return self.arm_names
        asked = [a.strip() for a in text.split(",") if a.strip()]
        self.check_arms(asked, text)
        return [name for name in self.arm_names if name in asked]


def resolve(
    config,
    *,
    workdir: str | Path = ".",
    pretrained_weights: str | Path | None = None,
    config_file: str | None = None,
    data_dir: str | None = None,
    keep_every_epoch: bool = False,
) -> Plan:
    """The plan of `config` (a ConfigDict), with the command line's overrides of the data set
    and of what is kept; raises TrainingError naming the field to fix."""
    if data_dir or keep_every_epoch:
        config = config.copy_and_resolve_references()
        with config.unlocked():
            if data_dir:
                config.data.dir = data_dir
            if keep_every_epoch:
                config.keep_every_epoch = True
    plain = json.loads(config.to_json())
    keep_every = bool(config.get("keep_every_epoch", False))
    _resolve_from_data(config, plain)  # results.json and the fingerprint hold the resolved values
    model = resolve_model(config, plain)
    plain["normalize"] = resolve_normalization(config, model.spec)  # results.json and best/ hold the resolved name
    return Plan(
        model=model,
        arms=tuple(arm_specs(config).values()),
        data=_resolve_data(config, plain),
        batch_size=int(config.batch_size),  # checked against the mesh when the pipeline is built
        eval_batch_size=int(config.eval_batch_size),
        selection=_selection(config),
        seed=int(config.seed),
        pack_runs=_pack_runs(config),
        checkpoints=_checkpoint_policy(config),
        keep_every_epoch=keep_every,
        keep_final_state=bool(config.get("keep_final_state", False) or keep_every),
        config=plain,
        workdir=Path(workdir),
        pretrained_weights=Path(pretrained_weights) if pretrained_weights else None,
        config_file=config_file,
        label_study=label_budget.resolve(config, plain),
    )


def _resolve_from_data(config, plain: dict) -> None:
    """What the data set decides: the number of classes (config.model.num_classes = 0) and the
    split (config.data.split = "auto"), written into `plain` once the data set is there. The
    paper's data resolve to 4 classes and the paper's split, so its runs record what they did."""
    from alexnet_jax import paper
    from alexnet_jax.data.prepared import read_manifest

    asked_classes, asked_split = int(config.model.get("num_classes", 0) or 0), str(config.data.split)
    if asked_split not in SPLITS:
        raise TrainingError(f"--config.data.split={asked_split!r}: use one of {', '.join(SPLITS)}")
    if not (Path(str(config.data.dir)) / "manifest.json").exists():
        return  # resolved when the data set is read (training.rundata), which refuses a missing one
    try:
        manifest = read_manifest(str(config.data.dir))
    except ValueError as error:
        raise TrainingError(f"--config.data.dir: {error}") from None
    names = list(manifest["class_names"])
    if asked_classes not in (0, len(names)):
        raise TrainingError(
            f"--config.model.num_classes={asked_classes}, but the data set {config.data.dir} has {len(names)} "
            f"classes ({', '.join(names)}); set --config.model.num_classes=0 to follow the data"
        )
    declared = bool(manifest.get("declared_split"))
    if asked_split == "declared" and not declared:
        raise TrainingError(
            f"--config.data.split=declared, but the data set {config.data.dir} declares no split (its source had "
            "no train/validation/test folders or split column); use 'auto', 'stratified' or 'paper'"
        )
    if asked_split == "auto":
        asked_split = "declared" if declared else "paper" if names == list(paper.CLASS_NAMES) else "stratified"
    plain["model"]["num_classes"] = len(names)
    plain["data"]["split"] = asked_split


def resolve_model(config, plain: dict | None = None) -> ModelPlan:
    if "name" not in config.model:
        raise TrainingError(f"--config.model.name is not set: name one of {', '.join(models.MODEL_NAMES)}")
    try:
        spec = models.get_spec(config.model.name)
    except ValueError as error:
        raise TrainingError(f"--config.model.name: {error}") from None
    dtype = config.model.get("dtype", "float32")
    if dtype not in DTYPES:
        raise TrainingError(f"--config.model.dtype={dtype!r}: use 'float32' or 'bfloat16'")
    options = tuple(sorted((name, config.model[name]) for name in spec.options if name in config.model))
    num_classes = int((plain or {}).get("model", {}).get("num_classes", config.model.get("num_classes", 0)) or 0)
    return ModelPlan(spec.name, num_classes, dtype, options)


def arm_specs(config) -> dict[str, ArmSpec]:
    """The arms the config declares, checked: every problem names the config field to fix."""
    if "arms" not in config or not config.arms:
        raise TrainingError("the config declares no arms (config.arms); see alexnet_jax/configs/paper.py")
    optimizer = config.optim.get("name") or "sgd"
    if optimizer not in OPTIMIZERS:
        raise TrainingError(f"--config.optim.name={optimizer!r}: use one of {', '.join(OPTIMIZERS)}")
    specs = {}
    for name, arm in config.arms.items():
        where = f"--config.arms.{name}"
        if not ARM_NAME.match(name):
            raise TrainingError(f"{where}: arm names may hold letters, digits, '_' and '-' only")
        if name not in config.epochs or int(config.epochs[name]) < 1:
            raise TrainingError(f"arm {name!r} needs its epochs: set --config.epochs.{name} (a positive integer)")
        init, finetune = str(arm.get("init", "")), str(arm.get("finetune", "full"))
        if not (init in ("scratch", "imagenet") or (init.startswith("checkpoint:") and len(init) > 11)):
            raise TrainingError(f"{where}.init={init!r}: use one of {', '.join(INITS)}")
        parse_finetune(finetune, where + ".finetune")
        overrides = arm.get("optim") or {}
        unknown = sorted(set(overrides) - set(config.optim))
        if unknown:
            known = ", ".join(config.optim)
            raise TrainingError(f"{where}.optim: unknown field(s) {unknown}; config.optim has {known}")
        optim = {f: (overrides.get(f) if overrides.get(f) is not None else config.optim[f]) for f in config.optim}
        specs[name] = ArmSpec(name, init, finetune, int(config.epochs[name]), tuple(sorted(optim.items())))
    return specs


def _resolve_data(config, plain: dict) -> DataPlan:
    data = config.data
    pipeline = config.get("pipeline", "auto")
    if pipeline not in PIPELINES:
        raise TrainingError(f"--config.pipeline={pipeline!r}: use 'auto', 'on_device' or 'tf_data'")
    try:
        train_augment, eval_augment = configs_from(plain)
    except ValueError as error:
        raise TrainingError(str(error)) from None
    if train_augment.crop_size > int(data.image_size):
        raise TrainingError(
            f"--config.augment.crop_size={train_augment.crop_size} is larger than the images "
            f"(--config.data.image_size={data.image_size}); lower the crop or raise the image size"
        )
    train_size = data.get("train_size")
    return DataPlan(
        dir=str(data.dir),
        image_size=int(data.image_size),
        split=str(plain["data"]["split"]),
        train_size=None if train_size is None else int(train_size),
        val_fraction=float(data.get("val_fraction", 0.0) or 0.0),
        shuffle_each_epoch=bool(data.get("shuffle_each_epoch", False)),
        pipeline=choose_pipeline(pipeline),
        train_augment=train_augment,
        eval_augment=eval_augment,
        normalize=plain["normalize"],
        normalize_asked=str(config.get("normalize", "none")),
    )


def resolve_normalization(config, spec: models.ModelSpec) -> str:
    """The input scaling of every arm of the study: `config.normalize` as a name of NORMALIZATIONS.

    "weights" is what the model's ImageNet weights were trained with (its TorchSource's
    `input_normalization`: torchvision's "imagenet", TF's "inception" for EfficientNet-Lite), and
    "none" for a model without ImageNet weights (the test model `tiny`). The model is the study's,
    so a scratch arm gets the same scaling as the pretrained arm it is compared with.
    """
    if LEGACY_NORMALIZE_KEY in config:
        raise TrainingError(
            f"config.{LEGACY_NORMALIZE_KEY} is gone: use --config.normalize=imagenet (for True) or "
            "--config.normalize=none (for False), or 'weights' for what the model's ImageNet weights expect"
        )
    asked = config.get("normalize", "none")
    if asked not in NORMALIZE_CHOICES:
        raise TrainingError(f"--config.normalize={asked!r}: use one of {', '.join(NORMALIZE_CHOICES)}")
    if asked != "weights":
        return asked
    return spec.torch.input_normalization if spec.torch is not None else "none"


def choose_pipeline(name: str) -> str:
    """'auto' is on_device on every platform. Measured on the 2-core CPU (docs/performance.md):
    the augmentation alone ran at ~550 img/s on-device against ~190 img/s through tf.data, and
    the whole 224 px train step was compute-bound and equal within noise (14.7 vs 16.0 img/s).
    The GPU machines have no TensorFlow, and there the data set resident on the device
    removes the input pipeline from the step."""
    return "on_device" if name == "auto" else name


def _selection(config) -> str:
    selection = config.get("selection", "test")
    if selection not in SELECTIONS:
        raise TrainingError(f"--config.selection={selection!r}: use 'test' (the paper) or 'val'")
    if selection == "val" and float(config.data.get("val_fraction", 0.0) or 0.0) <= 0:
        raise TrainingError(
            "--config.selection=val needs a validation split: set --config.data.val_fraction (e.g. 0.1)"
        )
    return selection


def _pack_runs(config) -> int:
    pack = int(config.get("pack_runs", 1) or 1)
    if pack < 1:
        raise TrainingError(f"--config.pack_runs={pack}: use 1 (each run alone) or more")
    return pack


def _checkpoint_policy(config) -> CheckpointPolicy:
    every_epochs = 1 if config.get("keep_every_epoch") else int(config.get("checkpoint_every_epochs", 1) or 0)
    policy = CheckpointPolicy(every_epochs, float(config.get("checkpoint_every_seconds", 0.0) or 0.0))
    if policy.every_epochs < 0 or policy.every_seconds < 0:
        raise TrainingError(
            "--config.checkpoint_every_epochs and --config.checkpoint_every_seconds must be >= 0 (0: off)"
        )
    return policy
