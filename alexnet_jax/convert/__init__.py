"""Port torchvision (and timm) weights to alexnet_jax's Flax variables, and check them.

    python -m alexnet_jax.convert                      # torchvision AlexNet IMAGENET1K_V1 -> weights/imagenet1k_v1
    python -m alexnet_jax.convert --model=resnet50     # its IMAGENET1K_V1 -> weights/resnet50_imagenet1k_v1
    python -m alexnet_jax.convert --torch_checkpoint=run_049.pth --output=weights/run_049
    python -m alexnet_jax.convert --num_classes=4      # ImageNet backbone, fresh 4-class head
    python -m alexnet_jax.convert --model=convnext_tiny --hf_repo=OWNER/NAME --num_classes=4   # a timm encoder
    python -m alexnet_jax.convert --check_only         # exit 0 if the ImageNet file is here offline, else 3

`--model` is one of the registry's models with a torch twin (alexnet, resnet18, resnet50, convnext_tiny,
vit_b_16: `models.TORCH_MODEL_NAMES`); each model file declares its sources in a `TorchSource`.
Any other (the `tiny` test model) is refused in one line, exit 2.
`--torch_checkpoint` takes a state dict (.pth/.pt/.bin), the same with DDP's `module.` prefix,
a training checkpoint dict holding it under `model_state_dict` or `state_dict` (what the
paper's scripts saved), or a `.safetensors` file. Pickles are read with
`torch.load(weights_only=True)`: a file that would build arbitrary objects is refused before
anything in it runs. Keys may be torchvision's or, for ResNet-18/50 and ConvNeXt-Tiny, timm's
(`--naming=auto|torchvision|timm`; auto reads them off the keys). A state dict without a head
(a timm encoder made with num_classes=0) or with another head size gets a fresh head of
`--num_classes`.

Without `--torch_checkpoint` or `--hf_repo`, the model's ImageNet file (e.g.
`alexnet-owt-7be5be79.pth`) is looked up, in order, at $<MODEL>_IMAGENET_PTH
($ALEXNET_IMAGENET_PTH, $RESNET50_IMAGENET_PTH, ...), `weights/<file>` (relative to the current
directory, i.e. the repo root when run from there) and torch's hub cache
(`torch.hub.get_dir()/checkpoints/`); if none has it, torchvision downloads it the usual way.
`--hf_repo` fetches a file through huggingface_hub (`pip install 'alexnet_jax[hf]'`); offline it
says which file to download from where.

The output directory holds the variables as orbax checkpoints plus `metadata.json` (model,
source, its sha256, the key naming, class count, library versions and a parity report against
torchvision on identical inputs); see `alexnet_jax.params_io`.

Modules: `files` (safe reading), `imagenet` (the ImageNet files), `hub` (Hugging Face),
`naming` (the key mapping, torchvision's and timm's names), `parity` (the comparison),
`conversion` (the command's work) and `__main__` (its flags and exit codes).
"""

from alexnet_jax.convert.conversion import DEFAULT_OUTPUT, VERSIONED_PACKAGES, run_conversion
from alexnet_jax.convert.files import (
    DDP_PREFIX,
    STATE_DICT_KEYS,
    extract_state_dict,
    load_torch_checkpoint,
    strip_ddp_prefix,
)
from alexnet_jax.convert.hub import download_hub_file
from alexnet_jax.convert.imagenet import (
    EXIT_NOT_AVAILABLE,
    IMAGENET_ENV,
    IMAGENET_FILENAME,
    IMAGENET_SHA256_PREFIX,
    WEIGHTS_DIR,
    download_imagenet_checkpoint,
    find_imagenet_checkpoint,
    imagenet_candidates,
    imagenet_env,
    require_local_imagenet_file,
    unavailable_message,
    verify_imagenet_file,
)
from alexnet_jax.convert.naming import (
    convert_state_dict,
    convert_torch_state_dict,
    detect_naming,
    expected_torch_shapes,
    to_reference_names,
)
from alexnet_jax.convert.parity import PARITY_SIZES, PARITY_TOLERANCE, format_parity_table, parity_report
from alexnet_jax.errors import (
    CheckpointError,
    ConversionError,
    HubFileNotFound,
    HubFileUnavailable,
    ImageNetWeightsUnavailable,
    NoTorchSource,
    ParityError,
)

__all__ = [
    "DDP_PREFIX",
    "DEFAULT_OUTPUT",
    "EXIT_NOT_AVAILABLE",
    "IMAGENET_ENV",
    "IMAGENET_FILENAME",
    "IMAGENET_SHA256_PREFIX",
    "PARITY_SIZES",
    "PARITY_TOLERANCE",
    "STATE_DICT_KEYS",
    "VERSIONED_PACKAGES",
    "WEIGHTS_DIR",
    "CheckpointError",
    "ConversionError",
    "HubFileNotFound",
    "HubFileUnavailable",
    "ImageNetWeightsUnavailable",
    "NoTorchSource",
    "ParityError",
    "convert_state_dict",
    "convert_torch_state_dict",
    "detect_naming",
    "download_hub_file",
    "download_imagenet_checkpoint",
    "expected_torch_shapes",
    "extract_state_dict",
    "find_imagenet_checkpoint",
    "format_parity_table",
    "imagenet_candidates",
    "imagenet_env",
    "load_torch_checkpoint",
    "parity_report",
    "require_local_imagenet_file",
    "run_conversion",
    "strip_ddp_prefix",
    "to_reference_names",
    "unavailable_message",
    "verify_imagenet_file",
]
