"""`python -m alexnet_jax.convert` and the `alexnet-jax-convert` script; see alexnet_jax.convert."""

from __future__ import annotations

import sys

from alexnet_jax import cli
from alexnet_jax.convert.conversion import run_conversion
from alexnet_jax.convert.hub import DEFAULT_FILENAME
from alexnet_jax.convert.imagenet import EXIT_NOT_AVAILABLE, find_imagenet_checkpoint, unavailable_message
from alexnet_jax.convert.naming import NAMINGS
from alexnet_jax.convert.parity import PARITY_TOLERANCE
from alexnet_jax.errors import (
    CheckpointError,
    ConversionError,
    HubFileNotFound,
    HubFileUnavailable,
    ImageNetWeightsUnavailable,
    ParityError,
)
from alexnet_jax.models import DEFAULT_MODEL, MODEL_NAMES


def define_flags():
    """Flags exist only when run as a command, so importing this module never clashes with others'."""
    from absl import flags

    flags.DEFINE_enum("model", DEFAULT_MODEL, MODEL_NAMES, "The network the checkpoint holds.")
    flags.DEFINE_string(
        "torch_checkpoint",
        None,
        "PyTorch checkpoint to convert (.pth/.pt/.bin state dict, DDP or "
        "training-checkpoint dict, or .safetensors). Default: torchvision's IMAGENET1K_V1 for --model.",
    )
    flags.DEFINE_enum(
        "naming",
        "auto",
        NAMINGS,
        "The state dict's key names: torchvision's, timm's (ResNet-18/50, ConvNeXt-Tiny), or auto-detected.",
    )
    flags.DEFINE_string(
        "hf_repo", None, "Convert a file of this Hugging Face Hub repository (e.g. a Zoobot encoder), OWNER/NAME."
    )
    flags.DEFINE_string("hf_filename", DEFAULT_FILENAME, "The file in --hf_repo.")
    flags.DEFINE_string("hf_revision", None, "Branch, tag or commit of --hf_repo (default: main).")
    flags.DEFINE_integer(
        "num_classes",
        None,
        "Head size. Default: the checkpoint's. Another value, or a checkpoint without a head (an encoder), "
        "gives a fresh head with torchvision's init.",
        lower_bound=1,
    )
    flags.DEFINE_string(
        "output",
        None,
        "Output directory (relative to the current directory). Default: weights/imagenet1k_v1 for alexnet, "
        "weights/<model>_imagenet1k_v1 otherwise.",
    )
    flags.DEFINE_boolean("parity", True, "Compare against torchvision on random inputs and store the report.")
    flags.DEFINE_float("parity_tolerance", PARITY_TOLERANCE, "Fail if any relative difference exceeds this.")
    flags.DEFINE_integer("seed", 0, "Seed of the fresh head, when the checkpoint's head is replaced or absent.")
    flags.DEFINE_string(
        "download_url",
        None,
        "Fetch IMAGENET1K_V1 from this URL (a mirror) instead of "
        "torchvision's; file name and hash check stay the same.",
    )
    flags.DEFINE_boolean(
        "check_only",
        False,
        "Only say whether --model's ImageNet file is available offline: "
        f"exit 0 and print its path if so, else exit {EXIT_NOT_AVAILABLE}. Never downloads.",
    )


def main(argv) -> int:
    from absl import flags

    from alexnet_jax.errors import ParamsDirError

    cli.quiet_library_logs()
    if len(argv) > 1:
        return cli.report_error(f"unexpected arguments: {argv[1:]}", cli.EXIT_BAD_INPUT)
    FLAGS = flags.FLAGS
    if FLAGS.check_only:
        try:
            path = find_imagenet_checkpoint(verify=True, model=FLAGS.model)
        except (CheckpointError, ImageNetWeightsUnavailable) as error:
            print(error, file=sys.stderr)
            return EXIT_NOT_AVAILABLE
        if path is None:
            print(unavailable_message("no local copy (nothing was downloaded)", FLAGS.model), file=sys.stderr)
            return EXIT_NOT_AVAILABLE
        print(path)
        return cli.EXIT_OK
    try:
        run_conversion(
            torch_checkpoint=FLAGS.torch_checkpoint,
            output=FLAGS.output,
            num_classes=FLAGS.num_classes,
            parity=FLAGS.parity,
            seed=FLAGS.seed,
            download_url=FLAGS.download_url,
            parity_tolerance=FLAGS.parity_tolerance,
            model=FLAGS.model,
            naming=FLAGS.naming,
            hf_repo=FLAGS.hf_repo,
            hf_filename=FLAGS.hf_filename,
            hf_revision=FLAGS.hf_revision,
        )
    except (ConversionError, CheckpointError, ParamsDirError, HubFileNotFound) as error:
        return cli.report_error(error, cli.EXIT_BAD_INPUT)
    except (ImageNetWeightsUnavailable, HubFileUnavailable, ParityError) as error:
        return cli.report_error(error, cli.EXIT_FAILED)
    return cli.EXIT_OK


def run() -> None:
    """`python -m alexnet_jax.convert` and the `alexnet-jax-convert` script."""
    from absl import app

    define_flags()
    app.run(lambda argv: sys.exit(main(argv)))


if __name__ == "__main__":
    run()
