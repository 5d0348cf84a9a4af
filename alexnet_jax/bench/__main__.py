"""Training and evaluation throughput: this project's step against the paper's PyTorch recipe.

    python -m alexnet_jax.bench --output_md=bench.md            # paper scale: 256 px, crop 224, batch 384
    python -m alexnet_jax.bench --quick --output_md=bench.md    # CPU smoke test (< 2 minutes)
    python -m alexnet_jax.bench --trainer                       # the whole trainer against its steps
    python -m alexnet_jax.bench --model=resnet50 --output_md=bench_resnet50.md   # another backbone
    python -m alexnet_jax.bench --predict --quick --output_md=predict.md    # prediction: galaxies per second

Measured side by side for `--model` (default alexnet; any name of alexnet_jax.models, the same
torchvision or timm network on the PyTorch side), on the same machine and the same synthetic uint8 images:
  * jax/<pipeline>/<dtype>: the trainer's steps (`alexnet_jax.training.steps`) with each input pipeline
    (on_device, and tf_data where TensorFlow imports), float32 and bfloat16;
  * torch/paper: the torchvision model, a DataLoader decoding JPEGs with the paper's transforms
    (ToTensor, Resize, RandomCrop, flips, RandomRotation(180)) in --torch_workers processes,
    float32, SGD, one host sync per step (as the original's running accuracy did);
  * torch/tuned: what a strong PyTorch user writes: data resident on the device as uint8,
    augmentation on the device (one grid_sample: crop, flips, rotation, zero fill),
    channels_last, bf16 autocast, torch.compile (failures are reported and it falls back to
    eager), fused SGD, no host sync inside the epoch;
  * levers on the JAX on_device step: several steps per dispatch (lax.scan), K models per step
    (jax.vmap over stacked parameters: both arms or several runs at once), donated buffers
    vs none, evaluation with a host round trip per batch vs accumulated on the device.
The PyTorch measurements run in a subprocess (`--torch_worker`): torchvision must never be
imported after TensorFlow in one process (it segfaults), and each framework keeps its own
thread pools.

`--trainer` measures instead the real trainer (training --model) end to end on a few hundred
small images, where an epoch's compute is as short as a GPU epoch's: its wall time per epoch against the same
epoch's steps alone (`trainer_overhead_ratio`), the seconds by phase, and the study projected
from the measured end-to-end epoch (bench.trainer_side).

`--predict` measures prediction instead (bench.predict_side): galaxies per second of
`predict.engine.Forward` with the images decoded from JPEG files or already prepared in memory,
beside a plain PyTorch eval loop (torch.no_grad) on the same batches.

Every measurement is one JSON line on stdout (schema "alexnet_jax.bench/1"): device, batch
size, dtype, pipeline, steady-state train and eval images/s, the step time split into
compute (the step alone on a batch already in place) and input wait (the rest of the
end-to-end step), FLOP/s and MFU against the device's peak, and the projected wall time of
the full paper study (100 runs x (200 + 400) epochs x (12,000 train + 2,034 test images)).
MFU counts 3 x the model's forward FLOPs per training image, the forward's from XLA's cost
analysis of the compiled forward pass (`alexnet_jax.models.forward_flops`: AlexNet 1.32
GFLOP at 224 px, ResNet-50 8.0). Peaks: --peak_tflops, else a table of accelerator peaks,
else (CPU) a matmul measured here with both frameworks.

Exit status (alexnet_jax.cli): 0 success, 2 bad input (a flag the benchmark cannot run with;
the message names it). The flags are defined only when this runs and read once, into the
`settings.Settings` that everything else is given.
"""

from __future__ import annotations

import sys

from absl import app, flags

from alexnet_jax import cli
from alexnet_jax.bench.settings import QUICK, TORCH_MEASUREMENTS, TRAINER, Settings
from alexnet_jax.errors import SettingsError

PAPER_SCALE = Settings()


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """One flag per Settings field, same name; None defaults take the paper-scale or --quick value.
    `flag_values`: where to define them (tests parse a command line into their own FlagValues)."""
    from alexnet_jax.models import MODEL_NAMES

    q = QUICK
    flags.DEFINE_bool(
        "quick",
        PAPER_SCALE.quick,
        f"CPU smoke test: {q['image_size']} px images, crop {q['crop_size']}, batch {q['batch_size']}, "
        "few steps (< 2 min).",
        flag_values=flag_values,
    )
    flags.DEFINE_enum(
        "model",
        PAPER_SCALE.model,
        MODEL_NAMES,
        "The network measured, in both frameworks (PyTorch needs its torchvision or timm twin).",
        flag_values=flag_values,
    )
    flags.DEFINE_enum(
        "depthwise",
        PAPER_SCALE.depthwise,
        ["auto", "native", "shifted"],
        "How --model computes depthwise convolutions (EfficientNet-Lite; models.layers.DepthwiseConv): "
        "auto is shifted multiply-adds on CPU and XLA's grouped convolution elsewhere.",
        flag_values=flag_values,
    )
    flags.DEFINE_enum(
        "conv_impl",
        PAPER_SCALE.conv_impl,
        ["auto", "native", "fast"],
        "How --model computes its convolutions (models.layers): native is XLA's convolution, fast the CPU "
        "formulations (patches plus one matmul, shifted depthwise taps, attention with the heads leading); auto "
        "is fast on CPU, native elsewhere.",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "batch_size",
        None,
        f"Training and evaluation batch (default {PAPER_SCALE.batch_size}, the paper's; --quick {q['batch_size']}).",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "image_size",
        None,
        f"Side of the stored images (default {PAPER_SCALE.image_size}; --quick {q['image_size']}).",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "crop_size",
        None,
        f"Training crop (default {PAPER_SCALE.crop_size}; --quick {q['crop_size']}; "
        "at least the model's minimum input size).",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "num_images",
        None,
        f"Images in the resident synthetic set (default {PAPER_SCALE.num_images}; --quick {q['num_images']}).",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "steps",
        None,
        f"Timed steps per measurement (default {PAPER_SCALE.steps}; --quick {q['steps']}).",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "warmup",
        None,
        f"Untimed steps first, compilation included (default {PAPER_SCALE.warmup}; --quick {q['warmup']}).",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "devices", PAPER_SCALE.devices, "Devices in the JAX mesh (data parallel).", flag_values=flag_values
    )
    flags.DEFINE_list("dtypes", list(PAPER_SCALE.dtypes), "JAX compute dtypes.", flag_values=flag_values)
    flags.DEFINE_list("pipelines", list(PAPER_SCALE.pipelines), "JAX input pipelines.", flag_values=flag_values)
    flags.DEFINE_list("torch", list(PAPER_SCALE.torch), "PyTorch measurements (empty: none).", flag_values=flag_values)
    flags.DEFINE_list(
        "levers", list(PAPER_SCALE.levers), "JAX speed levers to measure (empty: none).", flag_values=flag_values
    )
    flags.DEFINE_list(
        "vmap_models",
        None,
        f"K models per step for the vmap lever (default {','.join(map(str, PAPER_SCALE.vmap_models))}; "
        f"--quick {','.join(map(str, q['vmap_models']))}).",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "scan_steps", PAPER_SCALE.scan_steps, "Steps per dispatch for the scan lever.", flag_values=flag_values
    )
    flags.DEFINE_list(
        "scan_modes",
        None,
        "rolled (an XLA while loop) and/or unrolled. Default: both on accelerators, "
        "unrolled on CPU, where a rolled loop of AlexNet steps runs far slower (docs/performance.md).",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "torch_workers",
        None,
        f"DataLoader workers of the paper recipe (default {PAPER_SCALE.torch_workers}; --quick {q['torch_workers']}).",
        flag_values=flag_values,
    )
    flags.DEFINE_enum(
        "torch_compile",
        "auto",
        ["auto", "on", "off"],
        "torch.compile in the tuned peer; auto: on, except in --quick (a cold compile takes ~2 min on a 2-core CPU).",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "jpeg_size",
        PAPER_SCALE.jpeg_size,
        "Side of the JPEGs the paper recipe decodes (its images were ~100 px).",
        flag_values=flag_values,
    )
    flags.DEFINE_string(
        "peak_tflops",
        None,
        "Device peak TFLOP/s for MFU: one number, or dtype=value pairs "
        "(e.g. bfloat16=790,float32=494.7). Default: the table of known peaks, else measured.",
        flag_values=flag_values,
    )
    flags.DEFINE_string("output_md", PAPER_SCALE.output_md, "Write the Markdown table here.", flag_values=flag_values)
    flags.DEFINE_string(
        "output_jsonl", PAPER_SCALE.output_jsonl, "Also write the JSON lines here.", flag_values=flag_values
    )
    flags.DEFINE_integer(
        "seed", PAPER_SCALE.seed, "Seed of the synthetic images and of every step.", flag_values=flag_values
    )
    flags.DEFINE_list(
        "torch_worker",
        None,
        f"Internal: run these PyTorch measurements (peak, {', '.join(TORCH_MEASUREMENTS)}) here.",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "torch_timeout",
        PAPER_SCALE.torch_timeout,
        "Seconds allowed for each PyTorch subprocess.",
        flag_values=flag_values,
    )
    flags.DEFINE_bool(
        "trainer",
        PAPER_SCALE.trainer,
        "Measure the whole trainer against its steps on small data (default sizes "
        + ", ".join(f"{k} {v}" for k, v in TRAINER.items())
        + "); prints trainer_overhead_ratio.",
        flag_values=flag_values,
    )
    flags.DEFINE_bool(
        "predict",
        PAPER_SCALE.predict,
        "Measure prediction instead: galaxies/s of predict.engine.Forward from decoded JPEGs and from prepared "
        "uint8 images, beside a plain PyTorch eval loop (unless --torch=); bench.predict_side.",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "trainer_epochs", PAPER_SCALE.trainer_epochs, "--trainer: epochs of the measured run.", flag_values=flag_values
    )


def parse_flags(argv: list[str]) -> list[str]:
    """absl's parsing, with a bad flag reported as bad input (exit 2) instead of a traceback."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as error:
        sys.exit(cli.report_error(error, cli.EXIT_BAD_INPUT))


def main(argv: list[str]) -> int:
    cli.quiet_library_logs()
    if len(argv) > 1:
        return cli.report_error(f"unexpected arguments: {' '.join(argv[1:])}", cli.EXIT_BAD_INPUT)
    values = flags.FLAGS.flag_values_dict()  # the only read of the flags: everything else gets `settings`
    try:
        settings = Settings.from_flag_values(values)
        from alexnet_jax.bench import run as bench

        bench.run(settings, "python -m alexnet_jax.bench " + " ".join(sys.argv[1:]), values["torch_worker"])
    except SettingsError as error:
        return cli.report_error(error, cli.EXIT_BAD_INPUT)
    return cli.EXIT_OK


def run() -> None:
    """`python -m alexnet_jax.bench` and the `alexnet-jax-bench` script."""
    define_flags()
    app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
    run()
