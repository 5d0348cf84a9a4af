"""Classify galaxies with a trained model: one CSV row per image.

    python -m alexnet_jax.predict --checkpoint=runs/quick/run_000/pretrained \
        --images=path/to/cutouts --output=preds.csv

`--checkpoint` is an arm directory of a run (its best-epoch params in `best/`) or any
params directory (`best/` itself, or converted weights); the model is the one its metadata
names (any backbone of `alexnet_jax.models`; BatchNorm models use their running statistics).
`--images` is a folder of image files (JPEG, PNG, TIFF, ...; sorted by name) or a prepared
data set. Images go through the transform the model was evaluated with: resize to 256 px (the
paper's), then to the run's image size, then a centre crop; `--tta=K` instead averages K
random paper augmentations. The CSV's columns are the checkpoint's classes (the data it was
trained on, recorded in its metadata); a prepared data set with other classes, or the same in
another order, is refused. The work is `alexnet_jax.inference`; this command parses flags,
calls it and writes the CSV.
"""

from __future__ import annotations

import sys

from absl import app, flags

from alexnet_jax import cli, errors, inference
from alexnet_jax.errors import PredictError


def define_flags():
    flags.DEFINE_string(
        "checkpoint", None, "A run's arm directory (run_NNN/<arm>) or a params directory.", required=True
    )
    flags.DEFINE_string("images", None, "A folder of images or a prepared data set.", required=True)
    flags.DEFINE_string("output", "predictions.csv", "CSV to write.")
    flags.DEFINE_integer("batch_size", 64, "Images per forward pass.")
    flags.DEFINE_integer("tta", 0, "0: centre crop. K > 0: average K random paper augmentations.")
    flags.DEFINE_integer("seed", 0, "Seed for --tta.")


def main(argv) -> int:
    cli.quiet_library_logs()
    del argv
    FLAGS = flags.FLAGS
    try:
        out = inference.predict(FLAGS.checkpoint, FLAGS.images, batch_size=FLAGS.batch_size, tta=FLAGS.tta,
                                seed=FLAGS.seed)  # fmt: skip
        inference.write_predictions(FLAGS.output, out.names, out.probabilities, out.class_names, out.labels)
    except (PredictError, errors.ParamsDirError, ValueError) as error:
        return cli.report_error(error, cli.EXIT_BAD_INPUT)
    for warning in out.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    counts, *accuracy = out.summary()
    print(f"wrote {len(out.names)} predictions to {FLAGS.output} ({counts})")
    for line in accuracy:
        print(line)
    return cli.EXIT_OK


def run() -> None:
    """`python -m alexnet_jax.predict` and the `alexnet-jax-predict` script."""
    define_flags()
    app.run(lambda argv: sys.exit(main(argv)))


if __name__ == "__main__":
    run()
