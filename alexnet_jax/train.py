"""Training: a run is one split, and every arm of the config trains on it (the paper: an
ImageNet-pretrained and a scratch arm).

    python -m alexnet_jax.train --config=alexnet_jax/configs/quick.py \
        --data_dir=data/synthetic_quick --workdir=runs/quick --runs=0-1

Each run writes only into WORKDIR/run_NNN/: results.json (schema in `alexnet_jax.results`)
and per arm its resume state (`checkpoints/`, deleted once the arm is complete unless
config.keep_final_state), the best-epoch params (`best/`), TensorBoard logs and
metrics.jsonl. The resume state is saved in the background every
`config.checkpoint_every_seconds` and/or `checkpoint_every_epochs`, and whenever SIGTERM or
SIGINT stops the run (exit code 5). A run killed at any moment resumes from its last
checkpoint, replays what came after it, and ends with the numbers of an uninterrupted run,
bit for bit on CPU: all randomness derives from (seed, run, arm, epoch, step).

The command only parses flags, resolves the config into a plan (`alexnet_jax.training.plan`)
and calls `alexnet_jax.training.train(plan, runs, arms)`; docs/training.md describes the library.
"""

from __future__ import annotations

import sys

from absl import app, flags

from alexnet_jax import cli, configs, errors, training
from alexnet_jax.errors import Interrupted, RunLockedError, TrainingError
from alexnet_jax.training.rundir import stop_on_signals

# Keys that measure the machine rather than the training; they differ between any two runs.
TIMING_KEYS = ("wall_time_s", "images_per_s", "epoch_seconds", "time")
DEFAULT_CONFIG = configs.path("quick")


# --------------------------------------------------------------------------------------
# Command line.


def define_flags():
    """The trainer's absl flags; public so that launchers (alexnet_jax.multihost) can reuse them."""
    cli.define_config_flag(
        DEFAULT_CONFIG, "Config file (alexnet_jax/configs/*.py); --config.field=value overrides any field."
    )
    flags.DEFINE_string("workdir", None, "Output directory; run r writes only into WORKDIR/run_NNN/.", required=True)
    flags.DEFINE_integer("run_index", None, "The run (split) to train.")
    flags.DEFINE_string("runs", None, "Several runs, e.g. 0-9,49 (instead of --run_index).")
    flags.DEFINE_string("arms", None, "Arms to train, by name (default: every arm the config declares).")
    flags.DEFINE_string("data_dir", None, "A prepared data set (overrides config.data.dir).")
    flags.DEFINE_string(
        "pretrained_weights",
        None,
        "Converted ImageNet weights of the config's model, for every arm that starts from `imagenet` "
        "(default: where `python -m alexnet_jax.convert --model=NAME` puts them, weights/imagenet1k_v1 for AlexNet).",
    )
    flags.DEFINE_bool("keep_every_epoch", False, "Keep a checkpoint of every epoch, not only the latest.")
    flags.DEFINE_string(
        "compilation_cache",
        None,
        "Directory of JAX's persistent compilation cache (default $ALEXNET_JAX_COMPILATION_CACHE or "
        "~/.cache/alexnet_jax/xla); 'off' turns it off.",
    )


def main(argv) -> int:
    cli.quiet_library_logs()
    del argv
    FLAGS = flags.FLAGS
    try:
        plan = training.resolve(
            FLAGS.config,
            workdir=FLAGS.workdir,
            pretrained_weights=FLAGS.pretrained_weights,
            config_file=FLAGS["config"].config_filename,
            data_dir=FLAGS.data_dir,
            keep_every_epoch=FLAGS.keep_every_epoch,
        )
        cli.enable_compilation_cache(FLAGS.compilation_cache)
        if (FLAGS.run_index is None) == (FLAGS.runs is None):
            raise ValueError("give exactly one of --run_index=N or --runs=0-9,49")
        runs = [FLAGS.run_index] if FLAGS.run_index is not None else cli.parse_runs(FLAGS.runs)
        if any(r < 0 for r in runs):
            raise ValueError("--run_index must be >= 0")
        arms = plan.select_arms(FLAGS.arms)
        with stop_on_signals() as stop:
            training.train(plan, runs, arms, stop=stop)
    except Interrupted as error:
        return cli.report_error(error, cli.EXIT_INTERRUPTED)
    except RunLockedError as error:
        return cli.report_error(error, cli.EXIT_LOCKED)
    except (TrainingError, ValueError, errors.ResultsError, errors.ConfigError) as error:
        return cli.report_error(error, cli.EXIT_BAD_INPUT)
    return cli.EXIT_OK


def run() -> None:
    """`python -m alexnet_jax.train` and the `alexnet-jax-train` script."""
    cli.exit_on_bad_config(sys.argv[1:], DEFAULT_CONFIG)
    define_flags()
    app.run(lambda argv: sys.exit(main(argv)))


if __name__ == "__main__":
    run()
