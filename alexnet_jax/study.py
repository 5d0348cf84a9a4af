"""Run the whole study on one machine: every local GPU busy, finished runs skipped.

    python -m alexnet_jax.study --runs=0-99 --workdir=runs/paper \
        --config=alexnet_jax/configs/paper.py --data_dir=data/nair_abraham

Each run is one `python -m alexnet_jax.train --run_index=r` process, pinned to a device group
with CUDA_VISIBLE_DEVICES: --devices_per_run GPUs per run (data parallel inside the run),
--runs_per_device runs sharing each GPU (memory split evenly). Without GPUs, --num_workers
CPU processes run side by side. Finished runs are skipped, partial runs resume, runs locked by
another process are left alone; logs go to WORKDIR/logs/. `--config.x=y` overrides are passed
through to every run. The scheduling is `alexnet_jax.training.launcher`; this command parses
flags, checks the config (its plan) and starts it.

Exit status (alexnet_jax.cli): 0 every asked run is complete, 1 some run failed, 2 bad flags,
4 some runs were locked by another process (nothing failed here), 5 stopped by SIGINT/SIGTERM
(running runs were stopped cleanly; launch the same command again to resume).

Multi-host, one run data-parallel over several machines: `python -m alexnet_jax.study train
TRAIN_FLAGS` on every host (e.g. under `srun`, see experiments/slurm/README.md) calls
`jax.distributed.initialize()` and then runs the trainer, whose mesh spans `jax.devices()`.
`python -m alexnet_jax.study check-distributed`, started the same way, tests that set-up with
one all-reduce over every device in seconds.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from absl import app, flags

from alexnet_jax import cli, configs, errors, multihost, training
from alexnet_jax.training import launcher

DEFAULT_CONFIG = configs.path("paper")


# --------------------------------------------------------------------------------------
# Command line.


def config_args(argv: list[str]) -> list[str]:
    """The --config and --config.x=y arguments of a command line, to hand to every run."""
    out, i = [], 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            break
        name = arg.split("=", 1)[0]
        if name == "--config" or name.startswith("--config."):
            if "=" in arg or i + 1 >= len(argv):
                out.append(arg)
            else:  # "--config.x y"
                out.append(f"{arg}={argv[i + 1]}")
                i += 1
        i += 1
    return out


def define_flags():
    cli.define_config_flag(
        DEFAULT_CONFIG, "Config file (alexnet_jax/configs/*.py); --config.x=y overrides are passed to every run."
    )
    flags.DEFINE_string("runs", None, "Runs to train, e.g. 0-99 or 0-9,49.", required=True)
    flags.DEFINE_string("workdir", None, "The study directory (run r goes to WORKDIR/run_NNN/).", required=True)
    flags.DEFINE_string("data_dir", None, "A prepared data set (overrides config.data.dir).")
    flags.DEFINE_string("arms", None, "Arms to train, by name (default: every arm the config declares).")
    flags.DEFINE_string("pretrained_weights", None, "Converted ImageNet weights (default: the trainer's).")
    flags.DEFINE_integer("devices_per_run", 1, "GPUs per run (data parallel inside a run).")
    flags.DEFINE_integer("runs_per_device", 1, "Runs sharing each GPU group (memory split evenly).")
    flags.DEFINE_integer("num_workers", 1, "Parallel runs on a machine without GPUs.")
    flags.DEFINE_string("gpus", None, "GPU ids to use, e.g. 0,1,2,3 (default: CUDA_VISIBLE_DEVICES or nvidia-smi).")
    flags.DEFINE_float("progress_every", 60.0, "Seconds between progress lines.")
    flags.DEFINE_integer("max_failures", 3, "Stop starting new runs after this many failures (0: never stop).")
    flags.DEFINE_bool("dry_run", False, "Print the plan (slots, runs to train, commands) and exit.")


def main(argv) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    FLAGS = flags.FLAGS
    try:
        runs = cli.parse_runs(FLAGS.runs)
        plan = training.resolve(FLAGS.config, data_dir=FLAGS.data_dir)
        arms = plan.select_arms(FLAGS.arms)
        gpus = (
            [g.strip() for g in FLAGS.gpus.split(",") if g.strip()]
            if FLAGS.gpus is not None
            else launcher.detect_gpus()
        )
        slots = launcher.make_slots(
            gpus,
            devices_per_run=FLAGS.devices_per_run,
            runs_per_device=FLAGS.runs_per_device,
            num_workers=FLAGS.num_workers,
        )
        planned = plan.epochs_by_run(runs, arms)  # a label-efficiency run's own budget
    except (ValueError, KeyError, errors.TrainingError) as error:
        return cli.report_error(error, cli.EXIT_BAD_INPUT)
    workdir = Path(FLAGS.workdir).resolve()
    train_args = config_args(sys.argv[1:])
    if not any(a.split("=", 1)[0] == "--config" for a in train_args):
        train_args.insert(0, f"--config={DEFAULT_CONFIG}")
    if FLAGS.data_dir:
        train_args.append(f"--data_dir={Path(FLAGS.data_dir).resolve()}")
    if FLAGS.pretrained_weights:
        train_args.append(f"--pretrained_weights={Path(FLAGS.pretrained_weights).resolve()}")
    study = launcher.Study(
        workdir=workdir,
        runs=runs,
        arms=arms,
        slots=slots,
        train_args=train_args,
        planned_epochs=planned,
        progress_every=FLAGS.progress_every,
        max_failures=FLAGS.max_failures,
    )
    if FLAGS.dry_run:
        print(json.dumps(study.dry_run(), indent=1))
        return cli.EXIT_OK
    return study.run()


def run() -> None:
    """`python -m alexnet_jax.study [train | check-distributed]` and the `alexnet-jax-study` script."""
    if len(sys.argv) > 1 and sys.argv[1] == "train":
        multihost.distributed_train(sys.argv[2:])
    elif len(sys.argv) > 1 and sys.argv[1] == "check-distributed":
        sys.exit(multihost.check_distributed())
    else:
        cli.exit_on_bad_config(sys.argv[1:], DEFAULT_CONFIG)
        define_flags()
        app.run(lambda argv: sys.exit(main(argv)))


if __name__ == "__main__":
    run()
