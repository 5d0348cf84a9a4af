"""`python -m alexnet_jax.convert` and the `alexnet-jax-convert` script; see alexnet_jax.convert."""

from __future__ import annotations

import sys

from alexnet_jax import cli
from alexnet_jax.convert.conversion import run_conversion
from alexnet_jax.convert.hub import DEFAULT_FILENAME
from alexnet_jax.convert.imagenet import EXIT_NOT_AVAILABLE, require_local_imagenet_file
from alexnet_jax.convert.naming import NAMINGS
from alexnet_jax.convert.parity import PARITY_TOLERANCE
from alexnet_jax.errors import (
    CheckpointError,
    ConversionError,
    HubFileNotFound,
    HubFileUnavailable,
    ImageNetWeightsUnavailable,
    NoTorchSource,
    ParamsDirError,
    ParityError,
)
from alexnet_jax.models import DEFAULT_MODEL, MODEL_NAMES


def define_flags(flag_values=None):
    """Flags exist only when run as a command, so importing this module never clashes with others'.
    `flag_values` (default absl's global FLAGS) lets a test run the command in-process."""
    from absl import flags

    flag_values = flags.FLAGS if flag_values is None else flag_values

    flags.DEFINE_enum(
        "model",
        DEFAULT_MODEL,
        MODEL_NAMES,
        "The network the checkpoint holds (one with a torch twin).",
        flag_values=flag_values,
    )
    flags.DEFINE_string(
        "torch_checkpoint",
        None,
        "PyTorch checkpoint to convert (.pth/.pt/.bin state dict, DDP or "
        "training-checkpoint dict, or .safetensors). Default: torchvision's IMAGENET1K_V1 for --model.",
        flag_values=flag_values,
    )
    flags.DEFINE_enum(
        "naming",
        "auto",
        NAMINGS,
        "The state dict's key names: torchvision's, timm's (ResNet-18/50, ConvNeXt-Tiny), or auto-detected.",
        flag_values=flag_values,
    )
    flags.DEFINE_string(
        "hf_repo",
        None,
        "Convert a file of this Hugging Face Hub repository (e.g. a Zoobot encoder), OWNER/NAME.",
        flag_values=flag_values,
    )
    flags.DEFINE_string("hf_filename", DEFAULT_FILENAME, "The file in --hf_repo.", flag_values=flag_values)
    flags.DEFINE_string(
        "hf_revision", None, "Branch, tag or commit of --hf_repo (default: main).", flag_values=flag_values
    )
    flags.DEFINE_integer(
        "num_classes",
        None,
        "Head size. Default: the checkpoint's. Another value, or a checkpoint without a head (an encoder), "
        "gives a fresh head with torchvision's init.",
        lower_bound=1,
        flag_values=flag_values,
    )
    flags.DEFINE_string(
        "output",
        None,
        "Output directory (relative to the current directory). Default: weights/imagenet1k_v1 for alexnet, "
        "weights/<model>_imagenet1k_v1 otherwise.",
        flag_values=flag_values,
    )
    flags.DEFINE_boolean(
        "parity", True, "Compare against torchvision on random inputs and store the report.", flag_values=flag_values
    )
    flags.DEFINE_float(
        "parity_tolerance", PARITY_TOLERANCE, "Fail if any relative difference exceeds this.", flag_values=flag_values
    )
    flags.DEFINE_integer(
        "seed", 0, "Seed of the fresh head, when the checkpoint's head is replaced or absent.", flag_values=flag_values
    )
    flags.DEFINE_string(
        "download_url",
        None,
        "Fetch IMAGENET1K_V1 from this URL (a mirror) instead of "
        "torchvision's; file name and hash check stay the same.",
        flag_values=flag_values,
    )
    flags.DEFINE_boolean(
        "check_only",
        False,
        "Only say whether --model's ImageNet file is available offline: "
        f"exit 0 and print its path if so, else exit {EXIT_NOT_AVAILABLE}. Never downloads.",
        flag_values=flag_values,
    )


# Each error the library raises, and the exit code it gets: bad input 2, a source that cannot be had 1.
EXIT_CODES = (
    ((ConversionError, CheckpointError, ParamsDirError, HubFileNotFound, NoTorchSource), cli.EXIT_BAD_INPUT),
    ((ImageNetWeightsUnavailable, HubFileUnavailable, ParityError), cli.EXIT_FAILED),
)


def main(argv, flag_values=None) -> int:
    """The command after flag parsing: its exit code (errors reported on stderr in one line)."""
    from absl import flags

    cli.quiet_library_logs()
    if len(argv) > 1:
        return cli.report_error(f"unexpected arguments: {argv[1:]}", cli.EXIT_BAD_INPUT)
    FLAGS = flags.FLAGS if flag_values is None else flag_values
    if FLAGS.check_only:
        try:
            print(require_local_imagenet_file(FLAGS.model))
        except NoTorchSource as error:
            return cli.report_error(error, cli.EXIT_BAD_INPUT)
        except (CheckpointError, ImageNetWeightsUnavailable) as error:
            print(error, file=sys.stderr)
            return EXIT_NOT_AVAILABLE
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
    except tuple(error for errors, _ in EXIT_CODES for error in errors) as error:
        return cli.report_error(error, next(code for errors, code in EXIT_CODES if isinstance(error, errors)))
    return cli.EXIT_OK


def run_in_process(args: list[str]) -> int:
    """The command with these arguments in this process (for tests): its exit code."""
    from absl import flags

    flag_values = flags.FlagValues()
    define_flags(flag_values)
    argv = flag_values(["alexnet_jax.convert", *args])
    return main(argv, flag_values)


def run() -> None:
    """`python -m alexnet_jax.convert` and the `alexnet-jax-convert` script."""
    from absl import app

    define_flags()
    app.run(lambda argv: sys.exit(main(argv)))


if __name__ == "__main__":
    run()
