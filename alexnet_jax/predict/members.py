"""The checkpoints a prediction averages over (an ensemble of one or more members), checked to agree.

A member is one params directory (a run's `best/`, or converted weights) with what its metadata
records: the model, the classes of the head's outputs in order, the config it was trained with,
and the temperature fitted for exactly these weights (`temperature.json`, written by
`alexnet_jax.calibration`). An ensemble averages its members' probabilities output by output, so
members must be one model with one set of options, name the same classes in the same order, and
see the same pixels (image size, crop, input scaling); anything else is refused in one line
naming both members and both values.

The weights' identity is a sha256 over the loaded variables (collection/path, dtype, shape and
bytes, in sorted path order): the same weights have the same hash however they were stored, so
a prediction file records which weights made it, and a temperature fitted for other weights is
ignored (with a warning).

Class names: a labelled data set must have exactly the checkpoint's classes in that order, or
its labels would be scored against the wrong outputs; a folder of images has no labels to check.
A run saved before class names were recorded is read as the paper's four classes when its head
has four outputs (with a warning), and refused otherwise. Converted weights (no training data)
name their outputs class_0, class_1, ... and score no labels.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from alexnet_jax import params_io
from alexnet_jax.data.labels import CLASS_NAMES
from alexnet_jax.errors import PredictError

DEFAULT_CROP = 224  # converted weights have no run config: torchvision's evaluation view
DEFAULT_IMAGE_SIZE = 256  # the prepared images' size (the paper's resize)


@dataclasses.dataclass(frozen=True, eq=False)
class Member:
    """One checkpoint of an ensemble, loaded."""

    params_dir: Path  # the best/ (or params) directory read
    model: str  # registry name
    class_names: tuple[str, ...]
    run_config: dict  # the config it was trained with ({} for converted weights)
    weights_sha256: str  # over the loaded variables: storage-independent identity
    temperature: float | None  # fitted for exactly these weights, else None
    variables: dict  # {'params': ..., maybe 'batch_stats'}: float32 numpy leaves

    @property
    def preprocessing(self) -> dict:
        """The evaluation view the member was trained for: resize, crop and input scaling."""
        return eval_preprocessing(self.run_config)

    @property
    def model_options(self) -> dict:
        """The model's own options the run trained with (e.g. dropout_rate), as get_model takes them."""
        return model_options(self.model, self.run_config)


def eval_preprocessing(run_config: dict) -> dict:
    """{"image_size", "crop_size", "normalize"} of a run config; a run made before config.normalize
    reads its normalize_imagenet; converted weights get torchvision's 256 -> 224 and no scaling."""
    from alexnet_jax.inputs import augment

    scaling = augment.run_normalization(run_config)
    try:
        augment.normalization_stats(scaling)
    except ValueError as error:
        raise PredictError(f"the run's config.normalize: {error}") from None
    return {
        "image_size": int(run_config.get("data", {}).get("image_size", DEFAULT_IMAGE_SIZE)),
        "crop_size": int(run_config.get("augment", {}).get("crop_size", DEFAULT_CROP)),
        "normalize": scaling,
    }


def model_options(model: str, run_config: dict) -> dict:
    """The registry options of `model` (ModelSpec.options) the run config sets; {} for converted weights."""
    from alexnet_jax.models import get_spec

    recorded = run_config.get("model", {}) or {}
    return {name: recorded[name] for name in get_spec(model).options if name in recorded}


def resolve_params_dir(checkpoint: str | os.PathLike) -> Path:
    """`checkpoint` itself when it is a params directory, or its best/ (a run's arm directory)."""
    checkpoint = Path(checkpoint)
    for candidate in (checkpoint / "best", checkpoint):
        if params_io.is_params_dir(candidate):
            return candidate
    raise PredictError(
        f"--checkpoint={checkpoint}: no trained params there. Give a run's arm directory "
        "(e.g. runs/quick/run_000/scratch, which holds best/) or a params directory."
    )


def is_converted_weights(metadata: dict) -> bool:
    """Converted weights: no training data, no recorded classes (a trained run has a config)."""
    return params_io.class_names_in(metadata) is None and "config" not in metadata


def checkpoint_class_names(params_dir: Path, metadata: dict) -> tuple[list[str], str | None]:
    """The classes of the head's outputs, in order, and a warning where they are assumed, not recorded."""
    num_outputs = int(metadata["num_classes"])
    names = params_io.class_names_in(metadata)
    metadata_file = params_dir / params_io.METADATA_FILENAME
    if names is not None:
        if len(names) != num_outputs:
            raise PredictError(
                f"{metadata_file}: names {len(names)} classes {names} for a head of {num_outputs} outputs; "
                "the directory was altered after training. Use the best/ the run wrote."
            )
        return names, None
    if is_converted_weights(metadata):
        return [f"class_{i}" for i in range(num_outputs)], None
    paper = list(CLASS_NAMES)
    if num_outputs == len(paper):
        return paper, (
            f"{params_dir} records no class names (saved before they were recorded); its head has "
            f"{num_outputs} outputs, read as the paper's classes {paper}"
        )
    raise PredictError(
        f"{metadata_file}: records no class names and its head has {num_outputs} outputs, so which class each "
        f'output is cannot be known; add "class_names": [...] (in label order) to it, or train the run again'
    )


def data_class_names(source: str | os.PathLike) -> list[str] | None:
    """A prepared data set's class names in label order; None for a folder of images (no labels)."""
    from alexnet_jax.data import prepared

    source = Path(source)
    if not (source / "manifest.json").exists():
        return None
    return prepared.class_names_of(prepared.read_manifest(source))


def check_same_classes(checkpoint_names, data_names, params_dir, source) -> None:
    """Refuse a labelled data set whose classes (or their order) differ from the checkpoint's."""
    if data_names is None or list(data_names) == list(checkpoint_names):
        return
    reordered = " (the same classes in another order)" if sorted(data_names) == sorted(checkpoint_names) else ""
    raise PredictError(
        f"--images={source}: its classes {list(data_names)} differ from the classes {list(checkpoint_names)} "
        f"that {params_dir} was trained on{reordered}, so its labels would be scored against the wrong outputs. "
        "Predict on a data set prepared with the checkpoint's classes in that order, or on a folder of image files."
    )


def weights_sha256(variables: dict) -> str:
    """sha256 over every leaf's collection/path, dtype, shape and bytes, in sorted path order."""
    import jax

    leaves = []
    for collection in sorted(variables):
        for path, leaf in jax.tree_util.tree_leaves_with_path(variables[collection]):
            name = "/".join([collection, *(str(getattr(k, "key", k)) for k in path)])
            leaves.append((name, np.ascontiguousarray(np.asarray(leaf))))
    digest = hashlib.sha256()
    for name, array in sorted(leaves, key=lambda item: item[0]):
        header = json.dumps([name, array.dtype.str, list(array.shape)])
        digest.update(header.encode() + b"\0")
        digest.update(array.tobytes())
    return digest.hexdigest()


def _read_temperature(params_dir: Path, sha256: str) -> tuple[float | None, str | None]:
    """alexnet_jax.calibration's reader (imported here: the calibration package sits beside this one)."""
    try:
        from alexnet_jax.calibration.temperature import read_temperature
    except ImportError:
        return None, None
    return read_temperature(params_dir, sha256)


def read_member(checkpoint: str | os.PathLike) -> tuple[Member, list[str]]:
    """A member from its metadata alone (no variables, hash or temperature yet: cheap, so an ensemble
    is checked before any weight is read), and the warning its classes gave, if any."""
    params_dir = resolve_params_dir(checkpoint)
    metadata = params_io.load_metadata(params_dir)
    class_names, warning = checkpoint_class_names(params_dir, metadata)
    member = Member(
        params_dir=params_dir,
        model=params_io.model_of(metadata),
        class_names=tuple(class_names),
        run_config=dict(metadata.get("config") or {}),
        weights_sha256="",
        temperature=None,
        variables={},
    )
    return member, [] if warning is None else [warning]


def with_weights(member: Member, *, use_temperature: bool = True) -> tuple[Member, list[str]]:
    """`member` with its variables, their hash and the temperature fitted for them (or a warning)."""
    variables = params_io.load_variables(member.params_dir)
    sha256 = weights_sha256(variables)
    temperature, stale = _read_temperature(member.params_dir, sha256) if use_temperature else (None, None)
    loaded = dataclasses.replace(member, variables=variables, weights_sha256=sha256, temperature=temperature)
    return loaded, [] if stale is None else [stale]


def load_member(checkpoint: str | os.PathLike, *, use_temperature: bool = True) -> tuple[Member, list[str]]:
    """One member, loaded, and the warnings its loading gave (classes assumed, a stale temperature)."""
    header, warnings = read_member(checkpoint)
    member, more = with_weights(header, use_temperature=use_temperature)
    return member, warnings + more


def study_checkpoints(study: str | os.PathLike, arm: str) -> list[Path]:
    """Every run_NNN/<arm> of a study's workdir that holds best/, in run order."""
    from alexnet_jax.results import find_run_dirs

    runs = find_run_dirs(study)
    if not runs:
        raise PredictError(f"--study={study}: no run_NNN directories there; give a study's workdir")
    found = [run / arm for run in runs if params_io.is_params_dir(run / arm / "best")]
    if not found:
        arms = sorted({p.parent.name for run in runs for p in run.glob("*/best") if params_io.is_params_dir(p)})
        raise PredictError(
            f"--arm={arm}: no run of {study} has {arm}/best; its arms with best/ are {', '.join(arms) or 'none'}"
        )
    return found


def load_members(
    checkpoints: Sequence[str | os.PathLike] = (),
    *,
    study: str | os.PathLike | None = None,
    arm: str | None = None,
    use_temperature: bool = True,
) -> tuple[list[Member], list[str]]:
    """The ensemble's members and the warnings to print. `checkpoints`: arm or params directories
    (repeat one to weigh it twice); `study` + `arm`: every run_NNN/<arm> of a study workdir with
    best/. Members of different models, options, classes (or order) or preprocessing are refused."""
    if (study is None) != (arm is None):
        given, missing = ("--study", "--arm") if arm is None else ("--arm", "--study")
        raise PredictError(f"{given} needs {missing}: a study's workdir and the arm whose runs form the ensemble")
    paths = [Path(c) for c in checkpoints] + ([] if study is None else study_checkpoints(study, arm))
    if not paths:
        raise PredictError("no checkpoint: give --checkpoint (repeat it for an ensemble) or --study with --arm")
    headers, warnings = [], []
    for path in paths:
        header, header_warnings = read_member(path)
        headers.append(header)
        warnings += header_warnings
    check_compatible(headers)
    members = []
    for header in headers:
        member, member_warnings = with_weights(header, use_temperature=use_temperature)
        members.append(member)
        warnings += member_warnings
    return members, warnings


def check_compatible(members: Sequence[Member]) -> None:
    """Refuse, in one line naming both members and both values, an ensemble whose outputs or
    inputs would not line up: another model, model option, class list or order, or preprocessing."""
    first = members[0]
    for other in members[1:]:
        same_set = sorted(first.class_names) == sorted(other.class_names)
        order = " (these are the same classes in another order)" if same_set else ""
        fields: list[tuple[str, Any, Any, str]] = [
            ("model", first.model, other.model, "an ensemble's members must be one architecture"),
            ("classes", list(first.class_names), list(other.class_names),
             f"an ensemble averages its members' outputs position by position, so they must name the same "
             f"classes in the same order{order}"),
        ]  # fmt: skip
        options = first.model_options | other.model_options
        fields += [
            (f"model.{name}", first.model_options.get(name), other.model_options.get(name),
             "an ensemble's members must be one model configuration")
            for name in sorted(options)
        ]  # fmt: skip
        fields += [
            (name, first.preprocessing[name], other.preprocessing[name],
             "an ensemble's members must see the same pixels")
            for name in ("image_size", "crop_size", "normalize")
        ]  # fmt: skip
        for name, mine, theirs, why in fields:
            if mine != theirs:
                raise PredictError(
                    f"ensemble members differ in {name}: {first.params_dir} has {mine!r}, "
                    f"{other.params_dir} has {theirs!r}; {why}"
                )


def identity(members: Sequence[Member]) -> dict:
    """What a prediction file records of the weights that made it."""
    return {
        "checkpoints": [str(m.params_dir) for m in members],
        "weights_sha256": [m.weights_sha256 for m in members],
        "model": members[0].model,
        "class_names": list(members[0].class_names),
    }
