"""The label-efficiency study: which subset size and repeat a run is, and its training budget.

A config with a `label_efficiency` section (alexnet_jax/configs/label_efficiency.py) crosses
S training-set sizes with R repeats; every arm trains in every run, as in any study:

    config.label_efficiency.train_sizes = "100,300,1000,3000,all"   # increasing; "all": the whole pool
    config.label_efficiency.repeats = 5                               # R >= 2
    config.label_efficiency.min_per_class = 5                         # the floor per class of every subset
    config.label_efficiency.budget = "equal_epochs"                   # or "equal_steps"
    config.label_efficiency.steps = 0                                 # equal_steps: steps per arm (0: the
                                                                      #   whole pool's at config.epochs)
    config.label_efficiency.min_epochs = 1                            # equal_steps: at least this many

Run r is size r % S of repeat r // S, so runs 0..S-1 are the first repeat's whole curve. The
split rule of the data gives the repeat's pool and test set as it gives run `repeat` of an
ordinary study; alexnet_jax.training.rundata takes the subset (a prefix of the repeat's nested
order) and carves validation from it. results.json records `label_budget` (alexnet_jax.results).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from pathlib import Path

from alexnet_jax.errors import TrainingError
from alexnet_jax.training.arms import ArmSpec

SECTION = "label_efficiency"
POLICIES = ("equal_epochs", "equal_steps")
FIELDS = ("train_sizes", "repeats", "min_per_class", "budget", "steps", "min_epochs")
ALL = "all"
EXAMPLE_SIZES = "100,300,1000,3000,all"


@dataclasses.dataclass(frozen=True)
class LabelStudy:
    """The study's design, checked; `pool_size` and `num_classes` once the data set is known."""

    sizes_asked: tuple[str, ...]  # as the config wrote them: whole numbers, "all" last
    repeats: int
    min_per_class: int
    policy: str  # one of POLICIES
    steps: int  # equal_steps: optimizer steps per arm; 0: the whole pool's
    min_epochs: int
    pool_size: int | None = None  # the training pool of every repeat, None until the data set is there
    num_classes: int | None = None

    @property
    def num_sizes(self) -> int:
        return len(self.sizes_asked)

    @property
    def num_runs(self) -> int:
        return self.num_sizes * self.repeats

    def place(self, run_index: int) -> tuple[int, int]:
        """Run `run_index` as (size_index, repeat)."""
        if not 0 <= run_index < self.num_runs:
            raise TrainingError(
                f"run {run_index}: this label-efficiency study has {self.num_sizes} sizes x {self.repeats} repeats "
                f"= {self.num_runs} runs (0-{self.num_runs - 1}); ask for runs in that range "
                f"(or raise --config.{SECTION}.repeats)"
            )
        return run_index % self.num_sizes, run_index // self.num_sizes

    def check_runs(self, runs: Iterable[int]) -> None:
        for run in runs:
            self.place(run)

    def size(self, size_index: int, pool_size: int) -> int:
        asked = self.sizes_asked[size_index]
        return pool_size if asked == ALL else int(asked)

    def check_floor(self, num_classes: int) -> None:
        """The smallest asked number holds min_per_class examples of each class."""
        numbers = [int(s) for s in self.sizes_asked if s != ALL]
        needed = num_classes * self.min_per_class
        if numbers and min(numbers) < needed:
            raise TrainingError(
                f"--config.{SECTION}.train_sizes={','.join(self.sizes_asked)!r}: size {min(numbers)} is too small "
                f"for the floor of {self.min_per_class} examples of each of the {num_classes} classes (needs >= "
                f"{needed}); raise it to at least {needed} or lower --config.{SECTION}.min_per_class"
            )

    def check_pool(self, pool_size: int, num_classes: int, where: str) -> None:
        """Every size fits the training pool of `where` (the data set and its split rule)."""
        field, asked = f"--config.{SECTION}.train_sizes", ",".join(self.sizes_asked)
        self.check_floor(num_classes)
        for size in (int(s) for s in self.sizes_asked if s != ALL):
            if size > pool_size:
                raise TrainingError(
                    f"{field}={asked!r}: size {size} is larger than the training pool of {pool_size} examples "
                    f"({where}); use sizes up to {pool_size}, or '{ALL}' for the whole pool"
                )
            if size == pool_size and ALL in self.sizes_asked:
                raise TrainingError(
                    f"{field}={asked!r}: size {size} is the whole training pool ({where}), the same as '{ALL}'; "
                    "drop one of them"
                )
        if pool_size < num_classes * self.min_per_class:
            raise TrainingError(
                f"{field}={asked!r}: the training pool of {pool_size} examples ({where}) is too small for the floor "
                f"of {self.min_per_class} examples of each of the {num_classes} classes; lower "
                f"--config.{SECTION}.min_per_class"
            )

    def run_budget(self, size_index: int, arms: Iterable[ArmSpec], pool_size: int, val_fraction: float,
                   batch_size: int) -> dict:  # fmt: skip
        """The budget of size `size_index` of a pool of `pool_size`, each subset (and the whole
        pool) losing its validation carve first."""
        from alexnet_jax.data.splits import validation_size

        size = self.size(size_index, pool_size)
        train, pool_train = (n - validation_size(n, val_fraction) for n in (size, pool_size))
        return self.budget(arms, train, pool_train, batch_size)

    def budget(self, arms: Iterable[ArmSpec], train_examples: int, pool_train_examples: int, batch_size: int) -> dict:
        """{"policy", "epochs": {arm: n}, "steps": {arm: n}} of a run whose subset trains on
        `train_examples` (after its validation carve); the whole pool's run trains on
        `pool_train_examples`. Steps are optimizer steps: ceil(examples / batch) per epoch."""
        per_epoch = steps_per_epoch(train_examples, batch_size)
        epochs = {}
        for arm in arms:
            if self.policy == "equal_epochs":
                epochs[arm.name] = arm.epochs
            else:
                target = self.steps or arm.epochs * steps_per_epoch(pool_train_examples, batch_size)
                epochs[arm.name] = max(self.min_epochs, math.ceil(target / per_epoch))
        return {"policy": self.policy, "epochs": epochs, "steps": {a: n * per_epoch for a, n in epochs.items()}}


def steps_per_epoch(examples: int, batch_size: int) -> int:
    """The pipelines pad the last partial batch (alexnet_jax.inputs.pipeline): every batch is a step."""
    return max(1, math.ceil(int(examples) / int(batch_size)))


def resolve(config, plain: dict) -> LabelStudy | None:
    """The config's label-efficiency section, checked (None: an ordinary study). `plain` is the
    resolved config (its classes and split follow the data set where it is there already); each
    problem names the --config field to fix."""
    section = config.get(SECTION)
    if section is None:
        return None
    field = f"--config.{SECTION}"
    unknown = sorted(set(section) - set(FIELDS))
    missing = [name for name in FIELDS if name not in section]
    if unknown or missing:
        raise TrainingError(
            f"config.{SECTION}: {'unknown field(s) ' + str(unknown) if unknown else 'missing ' + str(missing)}; "
            f"it holds {', '.join(FIELDS)} (see alexnet_jax/configs/label_efficiency.py)"
        )
    study = LabelStudy(
        sizes_asked=_parse_sizes(section.train_sizes),
        repeats=_whole(section.repeats, f"{field}.repeats", 2, "at least 2 repeats: a confidence interval needs two"),
        min_per_class=_whole(section.min_per_class, f"{field}.min_per_class", 0, "0 (no floor) or more"),
        policy=_policy(section.budget),
        steps=_whole(section.steps, f"{field}.steps", 0, "0 (the whole pool's steps) or more"),
        min_epochs=_whole(section.min_epochs, f"{field}.min_epochs", 1, "1 or more"),
    )
    num_classes = int(plain["model"].get("num_classes") or 0) or None
    if num_classes:
        study.check_floor(num_classes)
    pool = _pool_size(config, plain)
    if pool is not None and num_classes:
        study.check_pool(pool, num_classes, pool_source(plain["data"]["split"], config.data.dir))
    return dataclasses.replace(study, pool_size=pool, num_classes=num_classes)


def pool_source(split: str, data_dir) -> str:
    """Where a repeat's training pool comes from, for the error lines."""
    return f"the training split of {data_dir}, split rule '{split}'"


def _parse_sizes(text) -> tuple[str, ...]:
    field = f"--config.{SECTION}.train_sizes"
    hint = f"give increasing whole numbers >= 1, and '{ALL}' last for the whole pool, e.g. '{EXAMPLE_SIZES}'"
    parts = [p.strip() for p in str(text).split(",")] if text is not None else []
    if not parts or any(not p for p in parts):
        raise TrainingError(f"{field}={text!r}: {hint}")
    numbers = []
    for position, part in enumerate(parts):
        if part.lower() == ALL and position == len(parts) - 1:
            continue
        if not part.isdigit() or int(part) < 1:
            raise TrainingError(f"{field}={text!r}: {part!r} is not a size; {hint}")
        numbers.append(int(part))
    if any(b <= a for a, b in zip(numbers, numbers[1:], strict=False)):
        raise TrainingError(f"{field}={text!r}: the sizes do not increase; {hint}")
    return tuple(str(n) for n in numbers) + ((ALL,) if parts[-1].lower() == ALL else ())


def _whole(value, field: str, minimum: int, meaning: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise TrainingError(f"{field}={value!r}: use a whole number, {meaning}")
    return int(value)


def _policy(name) -> str:
    if name not in POLICIES:
        raise TrainingError(f"--config.{SECTION}.budget={name!r}: use one of {', '.join(POLICIES)}")
    return str(name)


def _pool_size(config, plain: dict) -> int | None:
    """The training pool of every repeat, from the data set's manifest (None: not there yet)."""
    from alexnet_jax.data import prepared, splits

    directory = Path(str(config.data.dir))
    if not (directory / "manifest.json").exists() or plain["data"]["split"] == "auto":
        return None
    manifest = prepared.read_manifest(str(directory))
    if plain["data"]["split"] == "declared":
        return int((manifest.get("declared_split") or {}).get("train", 0)) or None
    train_size = config.data.get("train_size")
    return int(train_size) if train_size is not None else splits.default_train_size(int(manifest["num_examples"]))
