"""Reading PyTorch checkpoint files safely: state dicts, DDP's prefix, training checkpoints, safetensors.

Pickles are read with `torch.load(weights_only=True)`: a file that would build arbitrary
objects is refused before anything in it runs.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from alexnet_jax.errors import CheckpointError

STATE_DICT_KEYS = ("model_state_dict", "state_dict")  # where training checkpoints keep the weights
DDP_PREFIX = "module."


def strip_ddp_prefix(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Drop DistributedDataParallel's `module.` prefix when every key carries it."""
    keys = list(state_dict)
    if keys and all(k.startswith(DDP_PREFIX) for k in keys):
        return {k[len(DDP_PREFIX) :]: v for k, v in state_dict.items()}
    return dict(state_dict)


def _is_tensor_like(value: Any) -> bool:
    return hasattr(value, "shape") and (hasattr(value, "detach") or isinstance(value, np.ndarray))


def extract_state_dict(obj: Any, source: str = "checkpoint") -> tuple[dict[str, Any], str]:
    """The model state dict inside a loaded checkpoint, and a description of the form found."""
    if not isinstance(obj, Mapping):
        raise CheckpointError(
            f"{source}: expected a state dict or a checkpoint dict, found {type(obj).__name__}. "
            "Save `model.state_dict()` (not the model object)."
        )
    for key in STATE_DICT_KEYS:
        if isinstance(obj.get(key), Mapping):
            inner, form = extract_state_dict(obj[key], source)
            return inner, f"training checkpoint[{key!r}], {form}"
    non_tensors = [k for k, v in obj.items() if not _is_tensor_like(v)]
    if non_tensors:
        raise CheckpointError(
            f"{source}: neither a state dict (entries {non_tensors[:5]} are not tensors) nor a training "
            f"checkpoint with the weights under one of {list(STATE_DICT_KEYS)}; top-level keys: {list(obj)[:10]}"
        )
    keys = list(obj)
    form = "DDP state dict ('module.' prefix)" if keys and all(k.startswith(DDP_PREFIX) for k in keys) else "state dict"
    return dict(obj), form


def load_torch_checkpoint(path: str | os.PathLike) -> tuple[dict[str, Any], str]:
    """Read a .pth/.pt/.bin (safely) or .safetensors file -> (state dict, form description)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    if path.suffix == ".safetensors":
        try:
            try:
                from safetensors.torch import load_file  # keeps bfloat16 readable
            except ImportError:
                from safetensors.numpy import load_file
            return extract_state_dict(load_file(str(path)), str(path))[0], "safetensors state dict"
        except CheckpointError:
            raise
        except Exception as error:  # safetensors raises its own SafetensorError
            raise CheckpointError(f"{path}: not a readable .safetensors file ({error})") from error

    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(
            f"{path}: refused to load. The pickle asks to build objects other than tensors and plain "
            "containers (code could run that way), so torch.load(weights_only=True) stopped before "
            "executing any of it. Only plain state dicts and training-checkpoint dicts are accepted: "
            "in a trusted environment, re-save `model.state_dict()` with torch.save or as .safetensors.\n"
            f"torch said: {str(error).splitlines()[0] if str(error) else type(error).__name__}"
        ) from error
    except (RuntimeError, EOFError, OSError) as error:
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({error})") from error
    state_dict, form = extract_state_dict(obj, str(path))
    return state_dict, form
