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

The steps are one `jax.jit` over a device mesh (`alexnet_jax.training.steps`), compiled once per
process for every run and arm of the same shapes; `config.pack_runs=K` trains K runs of an
arm in one vmapped step (`alexnet_jax.training.trainer`). Every epoch's seconds are split into
train, eval, checkpoint, compile and the rest, in metrics.jsonl and results.json.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import jax
import jax.numpy as jnp
from absl import app, flags

from alexnet_jax import cli, configs, errors, models
from alexnet_jax import results as results_lib
from alexnet_jax.errors import Interrupted, RunLockedError, TrainingError
from alexnet_jax.toolbox import BackgroundWriter, format_duration
from alexnet_jax.training.arms import arm_specs, check_available, finetune_plan, initial_variables
from alexnet_jax.training.arms import select as select_arms
from alexnet_jax.training.member import Member, RunRecord
from alexnet_jax.training.rundata import load_run_data, shared_pipeline
from alexnet_jax.training.rundir import Checkpoints, drop_resume_state, run_lock, stop_on_signals
from alexnet_jax.training.steps import CompileClock, make_mesh
from alexnet_jax.training.trainer import ArmTrainer

# Keys that measure the machine rather than the training; they differ between any two runs.
TIMING_KEYS = ("wall_time_s", "images_per_s", "epoch_seconds", "time")


def model_name(config) -> str:
    return config.model.get("name", models.DEFAULT_MODEL)


def build_model(config, frozen_blocks: tuple[str, ...] = ()):
    """The config's model (alexnet_jax.models), with its own options from config.model."""
    dtype = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}.get(config.model.dtype)
    if dtype is None:
        raise TrainingError(f"--config.model.dtype={config.model.dtype!r}: use 'float32' or 'bfloat16'")
    try:
        spec = models.get_spec(model_name(config))
    except ValueError as error:
        raise TrainingError(f"--config.model.name: {error}") from None
    options = {name: config.model[name] for name in spec.options if name in config.model}
    if spec.batch_norm:  # the blocks a partial finetune freezes keep their running statistics
        options["frozen"] = frozen_blocks
    return models.get_model(spec.name, config.model.num_classes, dtype=dtype, **options)


class _NeverStop:
    def is_set(self) -> bool:
        return False


class Session:
    """What the runs of one process share: the config and its arms, the mesh, the model, the
    background writer and the stop signal. Compiled steps and the resident data set are shared
    through their own caches (alexnet_jax.training.steps, alexnet_jax.training.rundata)."""

    def __init__(self, config, workdir: Path, *, pretrained_weights: Path | None = None, devices=None,
                 log: Callable[[str], None] = print, stop=None, config_file: str | None = None):  # fmt: skip
        self.config = config
        self.workdir = Path(workdir)
        self.pretrained_weights = Path(pretrained_weights) if pretrained_weights else None  # None: the model's
        self.mesh = make_mesh(devices)
        self.log = log
        self.stop = stop if stop is not None else _NeverStop()
        self.config_file = config_file
        self.specs = arm_specs(config)
        build_model(config)  # a bad model name or option is refused here, before any data is read
        CompileClock.install()

    def train(self, runs: list[int], arms: list[str]) -> list[dict]:
        """Train `arms` of `runs`; returns each run's results. The data and every asked arm's
        starting weights are checked before anything trains."""
        if runs:
            load_run_data(self.config, runs[0])
        for name in arms:
            check_available(self.specs[name], self.pretrained_weights, model_name(self.config))
        pack = int(self.config.get("pack_runs", 1) or 1)
        if pack < 1:
            raise TrainingError(f"--config.pack_runs={pack}: use 1 (each run alone) or more")
        compiled, started = CompileClock.seconds, time.perf_counter()
        writer = BackgroundWriter()
        try:
            if pack == 1:  # run by run, each run's arms in turn
                out = [self._train_run(run, arms, writer) for run in runs]
            else:  # arm by arm, up to `pack` runs at a time
                for arm in arms:
                    for group in self._groups(runs, arm, pack):
                        self._train_group(arm, group, writer)
                out = [self._records([run])[0].results for run in runs]
        finally:
            writer.close()
        compiled, wall = CompileClock.seconds - compiled, time.perf_counter() - started
        self.log(f"compilation: {compiled:.1f} s of this process's {wall:.1f} s ({100 * compiled / wall:.0f}%)")
        return out

    def _records(self, runs: list[int]) -> list[RunRecord]:
        return [RunRecord(self.config, self.workdir, r, load_run_data(self.config, r), self.config_file) for r in runs]

    def _train_run(self, run: int, arms: list[str], writer) -> dict:
        directory = results_lib.run_dir(self.workdir, run)
        lock = run_lock(directory) if jax.process_index() == 0 else contextlib.nullcontext()
        with lock:
            (record,) = self._records([run])
            if all(record.complete(a) for a in arms):
                self.log(f"run {run:03d} is already complete ({', '.join(arms)}); nothing to do")
                for arm in arms:  # in case a kill came between finishing an arm and deleting its state
                    drop_resume_state(self.config, record.dir / arm)
                return record.results
            data = record.data
            self.log(
                f"run {run:03d}: {len(data.train_idx)} train / {len(data.test_idx)} test images"
                f"{'' if data.val_idx is None else f' / {len(data.val_idx)} validation'}, "
                f"pipeline {shared_pipeline(self.config, data, self.mesh).name}, {self.mesh.size} device(s) "
                f"({jax.default_backend()})"
            )
            for arm in arms:
                self._train_members(arm, [record], writer)
            return record.results

    def _groups(self, runs: list[int], arm: str, pack: int) -> list[list[int]]:
        """The runs whose `arm` is unfinished, in packs of runs that stand at the same point."""
        by_position: dict[tuple, list[int]] = {}
        for run in runs:
            arm_dir = results_lib.run_dir(self.workdir, run) / arm
            position = (0, 0)
            if (arm_dir / "checkpoints").is_dir():
                meta = Checkpoints(arm_dir, False, writer=None).latest_meta()
                position = (meta["position"]["epoch"], meta["position"]["step"]) if meta else position
            by_position.setdefault(position, []).append(run)
        groups = [same[i : i + pack] for same in by_position.values() for i in range(0, len(same), pack)]
        return sorted(groups)

    def _train_group(self, arm: str, runs: list[int], writer) -> None:
        with contextlib.ExitStack() as locks:
            if jax.process_index() == 0:
                for run in runs:
                    locks.enter_context(run_lock(results_lib.run_dir(self.workdir, run)))
            self._train_members(arm, self._records(runs), writer)

    def _train_members(self, arm: str, records: list[RunRecord], writer) -> None:
        """Train `arm` of each record's run together (one member per run)."""
        if self.stop.is_set():
            raise Interrupted("stopped by a signal before the next arm started; run the same command again")
        started = time.perf_counter()
        spec = self.specs[arm]
        pending = []
        for record in records:
            if record.complete(arm):
                self.log(f"run {record.index:03d} [{arm}] already complete ({spec.epochs} epochs); skipping")
                drop_resume_state(self.config, record.dir / arm)  # a kill may have come before the deletion
            else:
                pending.append(record)
        if not pending:
            return
        members = [Member(record, spec, self.config) for record in pending]
        initial = [initial_variables(spec, self.config, m.key, self.pretrained_weights) for m in members]
        model_spec = models.get_spec(model_name(self.config))
        plan = finetune_plan(spec.finetune, list(initial[0][0]["params"]), model_spec.blocks, model_spec.head)
        ArmTrainer(
            self.config,
            spec,
            members,
            model=build_model(self.config, plan.frozen_blocks),
            plan=plan,
            pipeline=shared_pipeline(self.config, pending[0].data, self.mesh),
            mesh=self.mesh,
            initial=initial,
            writer=writer,
            stop=self.stop,
            log=self.log,
            started=started,
        ).train()
        for member in members:
            wall = member.time["wall_s"]
            peak = member.history["test_acc"][member.best["epoch"]]
            self.log(f"{member.label} done: {format_duration(wall)} in all, peak test acc {peak:.4f}")


class Trainer:
    """One run's arms: `Trainer(config, workdir, run_index).run(arms)` returns its results."""

    def __init__(self, config, workdir: Path, run_index: int, **session_options):
        self.session = Session(config, workdir, **session_options)
        self.run_index = run_index

    def run(self, arms: Iterable[str] | None = None) -> dict:
        arms = list(arms) if arms is not None else list(self.session.specs)
        return self.session.train([self.run_index], arms)[0]


def train_runs(config, workdir, runs: list[int], arms: list[str] | None = None, **session_options) -> list[dict]:
    session = Session(config, Path(workdir), **session_options)
    return session.train(runs, list(arms) if arms is not None else list(session.specs))


def parse_arms(text: str | None, config=None) -> list[str]:
    """`--arms` against the arms the config declares (all of them when not given); without a
    config, against the paper's two."""
    if config is None:
        from alexnet_jax.configs import paper

        config = paper.get_config()
    return select_arms(text, arm_specs(config))


# --------------------------------------------------------------------------------------
# Command line.


def define_flags():
    """The trainer's absl flags; public so that launchers (alexnet_jax.study) can reuse them."""
    from ml_collections import config_flags

    config_flags.DEFINE_config_file(
        "config",
        configs.path("quick"),
        "Config file (alexnet_jax/configs/*.py); --config.field=value overrides any field.",
        lock_config=True,
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
    config = FLAGS.config
    with config.unlocked():
        if FLAGS.data_dir:
            config.data.dir = FLAGS.data_dir
        if FLAGS.keep_every_epoch:
            config.keep_every_epoch = True
    try:
        cli.enable_compilation_cache(FLAGS.compilation_cache)
        if (FLAGS.run_index is None) == (FLAGS.runs is None):
            raise ValueError("give exactly one of --run_index=N or --runs=0-9,49")
        runs = [FLAGS.run_index] if FLAGS.run_index is not None else cli.parse_runs(FLAGS.runs)
        if any(r < 0 for r in runs):
            raise ValueError("--run_index must be >= 0")
        arms = parse_arms(FLAGS.arms, config)
        with stop_on_signals() as stop:
            train_runs(config, FLAGS.workdir, runs, arms, pretrained_weights=FLAGS.pretrained_weights, stop=stop,
                       config_file=FLAGS["config"].config_filename)  # fmt: skip
    except Interrupted as error:
        return cli.report_error(error, cli.EXIT_INTERRUPTED)
    except RunLockedError as error:
        return cli.report_error(error, cli.EXIT_LOCKED)
    except (TrainingError, ValueError, errors.ResultsError) as error:
        return cli.report_error(error, cli.EXIT_BAD_INPUT)
    return cli.EXIT_OK


def run() -> None:
    """`python -m alexnet_jax.train` and the `alexnet-jax-train` script."""
    define_flags()
    app.run(lambda argv: sys.exit(main(argv)))


if __name__ == "__main__":
    run()
