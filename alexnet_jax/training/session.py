"""The one entry point for training runs: `train(plan, runs, arms)`.

A session is what the runs of one process share: the plan, the mesh, the background writer
and the stop signal (compiled steps and the resident data set are shared through their own
caches, alexnet_jax.training.steps and alexnet_jax.training.rundata). Runs train run by run,
each run's arms in turn, or with `plan.pack_runs=K` arm by arm, K runs at a time in one
vmapped step. A finished arm's resume state is dropped in one place, `_arm_finished`. A
label-efficiency run's arms train the epochs of its budget (`RunData.arm`), and only runs of
the same subset size (so the same budget) are packed together.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable

import jax

from alexnet_jax import results as results_lib
from alexnet_jax.errors import Interrupted, TrainingError
from alexnet_jax.toolbox import BackgroundWriter, format_duration
from alexnet_jax.training.arms import check_available, finetune_plan, initial_variables
from alexnet_jax.training.member import Member, RunRecord
from alexnet_jax.training.plan import Plan
from alexnet_jax.training.rundata import load_run_data, shared_pipeline
from alexnet_jax.training.rundir import Checkpoints, drop_resume_state, run_lock
from alexnet_jax.training.steps import CompileClock, make_mesh
from alexnet_jax.training.trainer import ArmTrainer


def train(
    plan: Plan,
    runs: Iterable[int],
    arms: Iterable[str] | None = None,
    *,
    stop=None,
    log: Callable[[str], None] = print,
    devices=None,
) -> list[dict]:
    """Train `arms` (default: every arm of the plan) of `runs` into `plan.workdir`; returns each
    run's results (results.json's content). The data and every asked arm's starting weights are
    checked before anything trains. `stop` (an Event-like `is_set()`) stops cleanly with
    `Interrupted`; `devices` (default: all) form the data-parallel mesh."""
    arms = plan.arm_names if arms is None else list(arms)
    plan.check_arms(arms)
    return Session(plan, devices=devices, log=log, stop=stop).train(list(runs), arms)


class _NeverStop:
    def is_set(self) -> bool:
        return False


class Session:
    """The runs of one process: `Session(plan).train(runs, arms)`."""

    def __init__(self, plan: Plan, *, devices=None, log: Callable[[str], None] = print, stop=None):
        self.plan = plan
        self.workdir = plan.workdir
        self.mesh = make_mesh(devices)
        self.log = log
        self.stop = stop if stop is not None else _NeverStop()
        CompileClock.install()

    def train(self, runs: list[int], arms: list[str]) -> list[dict]:
        plan = self.plan
        if plan.label_study is not None:
            plan.label_study.check_runs(runs)
        if runs:
            load_run_data(plan, runs[0])
        for name in arms:
            check_available(plan.arm(name), plan.pretrained_weights, plan.model.name)
        compiled, started = CompileClock.seconds, time.perf_counter()
        writer = BackgroundWriter()
        try:
            if plan.pack_runs == 1:  # run by run, each run's arms in turn
                out = [self._train_run(run, arms, writer) for run in runs]
            else:  # arm by arm, up to `pack_runs` runs at a time
                for arm in arms:
                    for group in self._groups(runs, arm, plan.pack_runs):
                        self._train_group(arm, group, writer)
                out = [self._records([run])[0].results for run in runs]
        finally:
            writer.close()
        compiled, wall = CompileClock.seconds - compiled, time.perf_counter() - started
        self.log(f"compilation: {compiled:.1f} s of this process's {wall:.1f} s ({100 * compiled / wall:.0f}%)")
        return out

    def _records(self, runs: list[int]) -> list[RunRecord]:
        return [RunRecord.load(self.plan, r, load_run_data(self.plan, r)) for r in runs]

    def _train_run(self, run: int, arms: list[str], writer) -> dict:
        directory = results_lib.run_dir(self.workdir, run)
        lock = run_lock(directory) if jax.process_index() == 0 else contextlib.nullcontext()
        with lock:
            (record,) = self._records([run])
            if all(record.complete(a) for a in arms):
                self.log(f"run {run:03d} is already complete ({', '.join(arms)}); nothing to do")
                for arm in arms:  # in case a kill came between finishing an arm and deleting its state
                    self._arm_finished(arm, [record])
                return record.results
            data = record.data
            self.log(
                f"run {run:03d}: {len(data.train_idx)} train / {len(data.test_idx)} test images"
                f"{'' if data.val_idx is None else f' / {len(data.val_idx)} validation'}, "
                f"pipeline {shared_pipeline(self.plan, data, self.mesh).name}, {self.mesh.size} device(s) "
                f"({jax.default_backend()})"
            )
            for arm in arms:
                self._train_members(arm, [record], writer)
            return record.results

    def _groups(self, runs: list[int], arm: str, pack: int) -> list[list[int]]:
        """The runs whose `arm` is unfinished, in packs of runs that stand at the same point (and,
        in a label-efficiency study, train subsets of the same size for the same budget)."""
        by_position: dict[tuple, list[int]] = {}
        study = self.plan.label_study
        for run in runs:
            arm_dir = results_lib.run_dir(self.workdir, run) / arm
            position = (0, 0)
            if (arm_dir / "checkpoints").is_dir():
                meta = Checkpoints(arm_dir, False, writer=None).latest_meta()
                position = (meta["position"]["epoch"], meta["position"]["step"]) if meta else position
            size_index = 0 if study is None else study.place(run)[0]
            by_position.setdefault((size_index, *position), []).append(run)
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
        plan = self.plan
        specs = {record.data.arm(plan.arm(arm)) for record in records}  # one budget per pack (_groups)
        if len(specs) != 1:
            raise TrainingError(f"runs {[r.index for r in records]} of arm {arm!r} differ in their epochs; train apart")
        (spec,) = specs
        pending = []
        for record in records:
            if record.complete(arm):
                self.log(f"run {record.index:03d} [{arm}] already complete ({spec.epochs} epochs); skipping")
            else:
                pending.append(record)
        if pending:
            members = [Member(record, spec, plan) for record in pending]
            model = plan.model
            crop = plan.data.train_augment.crop_size
            initial = [
                initial_variables(spec, model.name, model.num_classes, crop, m.key, plan.pretrained_weights)
                for m in members
            ]
            for member, (_, provenance) in zip(members, initial, strict=True):
                member.provenance = provenance
            finetune = finetune_plan(spec.finetune, list(initial[0][0]["params"]), model.spec.blocks, model.spec.head)
            trainer = ArmTrainer(
                plan,
                spec,
                members,
                model=model.build(finetune.frozen_blocks),
                finetune=finetune,
                pipeline=shared_pipeline(plan, pending[0].data, self.mesh),
                mesh=self.mesh,
                initial=[variables for variables, _ in initial],
                writer=writer,
                stop=self.stop,
                log=self.log,
                started=started,
            )
            trainer.restore()
            trainer.train()
            for member in members:
                wall = member.time["wall_s"]
                peak = member.history["test_acc"][member.best["epoch"]]
                self.log(f"{member.label} done: {format_duration(wall)} in all, peak test acc {peak:.4f}")
        self._arm_finished(arm, records)

    def _arm_finished(self, arm: str, records: list[RunRecord]) -> None:
        """The one place that drops a finished arm's resume state (unless the plan keeps it):
        after training it, and for an arm a kill left complete before the deletion."""
        if self.plan.keep_final_state:
            return
        for record in records:
            if record.complete(arm):
                drop_resume_state(record.dir / arm)
