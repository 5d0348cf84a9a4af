"""What `python -m alexnet_jax.convert` does: read a checkpoint, convert it, check it, save it."""

from __future__ import annotations

import os
from pathlib import Path

import jax

from alexnet_jax.convert.files import load_torch_checkpoint, strip_ddp_prefix
from alexnet_jax.convert.hub import DEFAULT_FILENAME, download_hub_file
from alexnet_jax.convert.imagenet import (
    download_imagenet_checkpoint,
    find_imagenet_checkpoint,
    imagenet_weights,
    package_version,
    verify_imagenet_file,
)
from alexnet_jax.convert.naming import checkpoint_num_classes, convert_state_dict, to_reference_names
from alexnet_jax.convert.parity import PARITY_TOLERANCE, format_parity_table, parity_report
from alexnet_jax.errors import ConversionError, ParityError
from alexnet_jax.models import DEFAULT_MODEL, num_classes_of, torch_source
from alexnet_jax.params_io import default_weights_dir
from alexnet_jax.toolbox import package_versions, sha256_file

DEFAULT_OUTPUT = default_weights_dir(DEFAULT_MODEL)  # AlexNet's; relative to the current directory
VERSIONED_PACKAGES = (
    "torch",
    "torchvision",
    "timm",
    "huggingface_hub",
    "jax",
    "jaxlib",
    "flax",
    "orbax-checkpoint",
    "numpy",
    "safetensors",
)


def run_conversion(
    torch_checkpoint: str | os.PathLike | None = None,
    output: str | os.PathLike | None = None,
    num_classes: int | None = None,
    parity: bool = True,
    seed: int = 0,
    download_url: str | None = None,
    parity_tolerance: float = PARITY_TOLERANCE,
    log=print,
    *,
    model: str = DEFAULT_MODEL,
    naming: str = "auto",
    hf_repo: str | None = None,
    hf_filename: str = DEFAULT_FILENAME,
    hf_revision: str | None = None,
) -> dict:
    """Convert one checkpoint of `model` into a params directory; returns the metadata written beside it.

    The source is `torch_checkpoint`, else `hf_repo`'s `hf_filename`, else the model's ImageNet
    file: torchvision's IMAGENET1K_V1 (local, or downloaded) or the installed registry package's.
    `output` defaults to `default_weights_dir(model)`.
    """
    from alexnet_jax.params_io import ensure_replaceable, save_variables

    torch_source(model)  # NoTorchSource: a model without a torch twin, before any work
    output = default_weights_dir(model) if output is None else output
    if torch_checkpoint is not None and hf_repo is not None:
        raise ConversionError("give either a checkpoint file (--torch_checkpoint) or a Hub repository (--hf_repo)")
    ensure_replaceable(output)  # fail before the slow part, not after it
    if torch_checkpoint is not None:
        path = Path(torch_checkpoint)
        state_dict, form = load_torch_checkpoint(path)
        digest = sha256_file(path)
        source = {"kind": "file", "path": str(path.resolve()), "form": form}
    elif hf_repo is not None:
        path = download_hub_file(hf_repo, hf_filename, hf_revision)
        log(f"Using {hf_repo}/{hf_filename} from the Hugging Face Hub: {path}")
        state_dict, form = load_torch_checkpoint(path)
        digest = sha256_file(path)
        source = {
            "kind": "huggingface",
            "repo": hf_repo,
            "filename": hf_filename,
            "revision": hf_revision,
            "path": str(path.resolve()),
            "form": form,
        }
    else:
        imagenet = imagenet_weights(model)  # NoTorchSource for a model without ImageNet weights (Lite3, Lite4)
        path = find_imagenet_checkpoint(model=model)
        if path is not None:
            log(f"Using local ImageNet weights: {path}")
            digest = verify_imagenet_file(path, model)
            state_dict, form = load_torch_checkpoint(path)
        else:
            log(f"ImageNet weights not found locally{'' if imagenet.kind == 'package' else '; asking torchvision'}.")
            state_dict, path = download_imagenet_checkpoint(download_url, model)
            digest = verify_imagenet_file(path, model)
            form = "state dict"
        if imagenet.kind == "package":
            source = {
                "kind": f"package {imagenet.distribution}",
                "package": imagenet.distribution,
                "package_version": package_version(model),
                "file": imagenet.filename,
                "path": str(path.resolve()),
                "form": form,
            }
        else:
            source = {"kind": f"torchvision {imagenet.enum}", "path": str(path.resolve()), "form": form}
        source["input_normalization"] = torch_source(model).input_normalization

    try:
        variables = convert_state_dict(state_dict, model, num_classes, rng=jax.random.key(seed), naming=naming)
        reference_named, naming_read, _ = to_reference_names(strip_ddp_prefix(state_dict), model, naming)
    except ConversionError as error:
        raise ConversionError(f"{path}: {error}") from error
    params = variables["params"]
    ckpt_classes = checkpoint_num_classes(reference_named, model)
    fresh_head = num_classes_of(params, model) != ckpt_classes
    metadata = {
        "source": source,
        "source_sha256": digest,
        "naming": naming_read,
        "num_classes": num_classes_of(params, model),
        "checkpoint_num_classes": ckpt_classes,
        "head": f"fresh, torchvision init, jax.random.key({seed})" if fresh_head else "checkpoint",
        "versions": package_versions(VERSIONED_PACKAGES),
    }
    if parity:
        report = parity_report(reference_named, params, model=model, batch_stats=variables.get("batch_stats"))
        log(format_parity_table(report))
        metadata["parity"] = report
        if report["max_rel"] > parity_tolerance:
            raise ParityError(
                f"{path}: converted weights differ from {torch_source(model).framework} by {report['max_rel']:.3e} "
                f"(relative) > {parity_tolerance:g}; nothing written to {output}"
            )
    else:
        metadata["parity"] = None
    save_variables(output, variables, metadata, model=model)
    log(f"Wrote {metadata['num_classes']}-class {model} variables ({source['form']}, {naming_read} names) to {output}")
    return metadata
