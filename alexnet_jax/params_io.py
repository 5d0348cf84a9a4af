"""Converted-weights directories: AlexNet params as an orbax checkpoint plus metadata.json.

    DIR/params/          orbax StandardCheckpointer checkpoint of the params pytree
                         ({'features_0': {'kernel', 'bias'}, ..., 'classifier_6': {...}}, float32)
    DIR/metadata.json    {"format": "alexnet_jax.params/1", "num_classes": ..., "param_count": ...,
                          "source": ..., "source_sha256": ..., "versions": ..., "parity": ...}

A save builds the whole directory next to DIR and swaps it in, so readers see either the
old weights or the new ones, and a crash mid-save leaves the old ones in place.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np

from alexnet_jax.models import count_params, num_classes_of, param_shapes
from alexnet_jax.toolbox import atomic_directory, write_json_atomic

FORMAT = "alexnet_jax.params/1"
PARAMS_SUBDIR = "params"
METADATA_FILENAME = "metadata.json"
# Where `python -m alexnet_jax.convert` puts torchvision's ImageNet weights and the trainer's
# pretrained arm looks for them (relative to the current directory, the repo root in a checkout).
DEFAULT_IMAGENET_DIR = Path("weights") / "imagenet1k_v1"


class ParamsDirError(ValueError):
    """A directory that is not a converted-weights directory; the message names it."""


def is_params_dir(directory: str | os.PathLike) -> bool:
    directory = Path(directory)
    if not (directory / PARAMS_SUBDIR).is_dir() or not (directory / METADATA_FILENAME).is_file():
        return False
    try:
        return json.loads((directory / METADATA_FILENAME).read_text()).get("format") == FORMAT
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


def save_params(
    directory: str | os.PathLike, params: Mapping[str, Any], metadata: Mapping[str, Any] | None = None
) -> Path:
    """Write params (as float32) and metadata to `directory`, replacing an earlier save atomically.

    Refuses to replace a non-empty directory that is not a converted-weights directory.
    """
    import orbax.checkpoint as ocp

    directory = Path(directory).absolute()
    ensure_replaceable(directory)
    params = jax.tree_util.tree_map(lambda x: np.asarray(x, dtype=np.float32), dict(params))
    meta = dict(metadata or {})
    meta.update(format=FORMAT, num_classes=num_classes_of(params), param_count=count_params(params))

    with atomic_directory(directory) as staging:
        # The params are host numpy arrays and one process writes them (in a multi-host run the
        # trainer calls this on process 0 only), so the checkpointer must not wait for the others.
        local = ocp.options.MultiprocessingOptions(
            primary_host=jax.process_index(),
            active_processes={jax.process_index()},
            barrier_sync_key_prefix=f"save_params_{jax.process_index()}",
        )
        with ocp.StandardCheckpointer(multiprocessing_options=local) as checkpointer:
            checkpointer.save(staging / PARAMS_SUBDIR, params)  # leaving the block waits for the write
        write_json_atomic(staging / METADATA_FILENAME, meta)
    return directory


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
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        found = metadata.get("format") if isinstance(metadata, dict) else type(metadata).__name__
        raise ParamsDirError(f"{path}: format is {found!r}, expected {FORMAT!r}")
    return metadata


def load_params(directory: str | os.PathLike) -> dict:
    """The params pytree (float32 numpy leaves) saved in `directory`, checked against AlexNet's shapes."""
    import orbax.checkpoint as ocp

    directory = Path(directory).absolute()
    metadata = load_metadata(directory)
    if not (directory / PARAMS_SUBDIR).is_dir():
        raise ParamsDirError(f"{directory}: has {METADATA_FILENAME} but no {PARAMS_SUBDIR}/ checkpoint")
    try:
        with ocp.StandardCheckpointer() as checkpointer:
            restored = checkpointer.restore(directory / PARAMS_SUBDIR)
    except Exception as error:  # orbax raises several types for damaged checkpoints
        raise ParamsDirError(f"{directory / PARAMS_SUBDIR}: cannot restore the orbax checkpoint ({error})") from error
    params = jax.tree_util.tree_map(lambda x: np.asarray(x, dtype=np.float32), restored)

    expected = param_shapes(int(metadata["num_classes"]))
    found = {(layer, leaf): tuple(np.shape(v)) for layer, leaves in params.items() for leaf, v in leaves.items()}
    if found != expected:
        bad = sorted(set(found) ^ set(expected)) + [k for k in expected if k in found and found[k] != expected[k]]
        details = ", ".join(f"{'/'.join(k)}: expected {expected.get(k)}, found {found.get(k)}" for k in bad)
        raise ParamsDirError(f"{directory}: params do not fit AlexNet({metadata['num_classes']} classes): {details}")
    return params
