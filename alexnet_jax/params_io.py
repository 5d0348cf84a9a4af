"""Converted-weights directories: a model's variables as orbax checkpoints plus metadata.json.

    DIR/params/          orbax StandardCheckpointer checkpoint of the params pytree (float32)
    DIR/batch_stats/     the BatchNorm running statistics, for models that have them
    DIR/metadata.json    {"format": "alexnet_jax.params/2", "model": "resnet50", "num_classes": ...,
                          "param_count": ..., "source": ..., "source_sha256": ..., "versions": ...,
                          "parity": ...}; a trained run's best/ also has "config" and
                          "class_names" (the head's outputs in order: the training data's classes)

Format 1 (before other backbones) had no "model" and no batch_stats/; such directories are
read as AlexNet. A save builds the whole directory next to DIR and swaps it in, so readers
see either the old weights or the new ones, and a crash mid-save leaves the old ones in place.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np

from alexnet_jax.errors import ParamsDirError
from alexnet_jax.models import DEFAULT_MODEL, count_params, get_spec, num_classes_of, variable_shapes
from alexnet_jax.toolbox import atomic_directory, write_json_atomic

FORMAT = "alexnet_jax.params/2"
READABLE_FORMATS = ("alexnet_jax.params/1", FORMAT)  # /1: AlexNet params only
COLLECTIONS = ("params", "batch_stats")  # each in its own subdirectory
PARAMS_SUBDIR = "params"
METADATA_FILENAME = "metadata.json"
CLASS_NAMES_KEY = "class_names"  # absent in converted weights and in runs saved before it was recorded
WEIGHTS_ROOT = Path("weights")  # relative to the current directory, the repo root in a checkout


def default_weights_dir(model: str = DEFAULT_MODEL) -> Path:
    """Where `python -m alexnet_jax.convert --model=MODEL` puts torchvision's ImageNet weights and the
    pretrained arm looks for them: weights/imagenet1k_v1 for AlexNet, weights/<model>_imagenet1k_v1 otherwise."""
    get_spec(model)
    return WEIGHTS_ROOT / ("imagenet1k_v1" if model == DEFAULT_MODEL else f"{model}_imagenet1k_v1")


DEFAULT_IMAGENET_DIR = default_weights_dir()


def is_params_dir(directory: str | os.PathLike) -> bool:
    directory = Path(directory)
    if not (directory / PARAMS_SUBDIR).is_dir() or not (directory / METADATA_FILENAME).is_file():
        return False
    try:
        return json.loads((directory / METADATA_FILENAME).read_text()).get("format") in READABLE_FORMATS
    except (OSError, ValueError, AttributeError):
        return False


def ensure_replaceable(directory: str | os.PathLike) -> None:
    """Raise unless `directory` is absent, empty, or an earlier converted-weights directory."""
    directory = Path(directory)
    if directory.exists() and not is_params_dir(directory) and (not directory.is_dir() or any(directory.iterdir())):
        raise ParamsDirError(
            f"{directory}: exists and is not a converted-weights directory; refusing to overwrite it. "
            "Choose another --output or remove it."
        )


def save_variables(
    directory: str | os.PathLike,
    variables: Mapping[str, Any],
    metadata: Mapping[str, Any] | None = None,
    *,
    model: str = DEFAULT_MODEL,
) -> Path:
    """Write a model's variables (as float32) and metadata to `directory`, replacing an earlier save atomically.

    `variables` is {'params': ...} plus 'batch_stats' for BatchNorm models. Refuses to replace a
    non-empty directory that is not a converted-weights directory.
    """
    import orbax.checkpoint as ocp

    spec = get_spec(model)
    expected = {"params", "batch_stats"} if spec.batch_norm else {"params"}
    if set(variables) != expected:
        raise ValueError(f"{model} variables need the collections {sorted(expected)}, got {sorted(variables)}")
    directory = Path(directory).absolute()
    ensure_replaceable(directory)
    variables = {
        name: jax.tree_util.tree_map(lambda x: np.asarray(x, dtype=np.float32), dict(tree))
        for name, tree in variables.items()
    }
    meta = dict(metadata or {})
    params = variables["params"]
    meta.update(format=FORMAT, model=model, num_classes=num_classes_of(params, model), param_count=count_params(params))
    _check_class_names(meta)

    with atomic_directory(directory) as staging:
        # The params are host numpy arrays and one process writes them (in a multi-host run the
        # trainer calls this on process 0 only), so the checkpointer must not wait for the others.
        local = ocp.options.MultiprocessingOptions(
            primary_host=jax.process_index(),
            active_processes={jax.process_index()},
            barrier_sync_key_prefix=f"save_params_{jax.process_index()}",
        )
        with ocp.StandardCheckpointer(multiprocessing_options=local) as checkpointer:
            for name, tree in variables.items():
                checkpointer.save(staging / name, tree)  # leaving the block waits for the writes
        write_json_atomic(staging / METADATA_FILENAME, meta)
    return directory


def _check_class_names(meta: Mapping[str, Any]) -> None:
    """Recorded class names must name the head's outputs, one each, or predict would mislabel them."""
    if CLASS_NAMES_KEY not in meta:
        return
    names = meta[CLASS_NAMES_KEY]
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise ValueError(f"metadata {CLASS_NAMES_KEY!r} must be a list of names, got {names!r}")
    if len(names) != meta["num_classes"] or len(set(names)) != len(names):
        outputs = meta["num_classes"]
        raise ValueError(f"metadata {CLASS_NAMES_KEY!r} {list(names)} must name each of the {outputs} outputs once")


def class_names_in(metadata: Mapping[str, Any]) -> list[str] | None:
    """The classes of the head's outputs, in order, as the directory records them; None where it
    records none (converted weights, and runs saved before class names were recorded)."""
    names = metadata.get(CLASS_NAMES_KEY)
    return None if names is None else [str(n) for n in names]


def save_params(
    directory: str | os.PathLike,
    params: Mapping[str, Any],
    metadata: Mapping[str, Any] | None = None,
    *,
    model: str = DEFAULT_MODEL,
) -> Path:
    """`save_variables` for a model without batch statistics (AlexNet by default)."""
    return save_variables(directory, {"params": params}, metadata, model=model)


def load_metadata(directory: str | os.PathLike) -> dict:
    directory = Path(directory)
    path = directory / METADATA_FILENAME
    if not path.is_file():
        raise ParamsDirError(
            f"{directory}: not a converted-weights directory (no {METADATA_FILENAME}). "
            "Make one with `python -m alexnet_jax.convert --output=DIR`."
        )
    try:
        metadata = json.loads(path.read_text())
    except ValueError as error:
        raise ParamsDirError(f"{path}: not valid JSON ({error})") from error
    if not isinstance(metadata, dict) or metadata.get("format") not in READABLE_FORMATS:
        found = metadata.get("format") if isinstance(metadata, dict) else type(metadata).__name__
        raise ParamsDirError(f"{path}: format is {found!r}, expected {FORMAT!r}")
    return metadata


def model_of(metadata: Mapping[str, Any]) -> str:
    """The model a directory's metadata names; format 1 directories are AlexNet's."""
    return metadata.get("model", DEFAULT_MODEL)


def load_variables(directory: str | os.PathLike) -> dict:
    """The variables ({'params'}, plus 'batch_stats' for BatchNorm models; float32 numpy leaves)
    saved in `directory`, checked against the shapes of the model its metadata names."""
    import orbax.checkpoint as ocp

    directory = Path(directory).absolute()
    metadata = load_metadata(directory)
    model = model_of(metadata)
    try:
        spec = get_spec(model)
    except ValueError as error:
        raise ParamsDirError(f"{directory / METADATA_FILENAME}: {error}") from error
    collections = COLLECTIONS if spec.batch_norm else COLLECTIONS[:1]
    variables = {}
    for name in collections:
        if not (directory / name).is_dir():
            raise ParamsDirError(f"{directory}: has {METADATA_FILENAME} for {model} but no {name}/ checkpoint")
        try:
            with ocp.StandardCheckpointer() as checkpointer:
                restored = checkpointer.restore(directory / name)
        except Exception as error:  # orbax raises several types for damaged checkpoints
            raise ParamsDirError(f"{directory / name}: cannot restore the orbax checkpoint ({error})") from error
        variables[name] = jax.tree_util.tree_map(lambda x: np.asarray(x, dtype=np.float32), restored)

    expected = variable_shapes(model, int(metadata["num_classes"]))
    found = {
        (name, *(str(k.key) for k in path)): tuple(np.shape(leaf))
        for name, tree in variables.items()
        for path, leaf in jax.tree_util.tree_leaves_with_path(tree)
    }
    if found != expected:
        bad = sorted(set(found) ^ set(expected)) + [k for k in expected if k in found and found[k] != expected[k]]
        details = ", ".join(f"{'/'.join(k[1:])}: expected {expected.get(k)}, found {found.get(k)}" for k in bad[:20])
        more = f" (and {len(bad) - 20} more)" if len(bad) > 20 else ""
        raise ParamsDirError(
            f"{directory}: variables do not fit {model}({metadata['num_classes']} classes): {details}{more}"
        )
    return variables


def load_params(directory: str | os.PathLike) -> dict:
    """The params saved in `directory`, for a model without batch statistics (such as AlexNet).

    A BatchNorm model's params are useless without its running statistics: use `load_variables`.
    """
    variables = load_variables(directory)
    if set(variables) != {"params"}:
        raise ParamsDirError(
            f"{directory}: holds {model_of(load_metadata(directory))}, which has BatchNorm statistics; "
            "read it with params_io.load_variables"
        )
    return variables["params"]
