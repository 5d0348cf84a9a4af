"""The epoch loop: K members (runs of one arm) trained in lockstep, one compiled step for all.

With K = 1 this is one arm of one run. With K > 1 (`Plan.pack_runs`) the members' states are
stacked and trained by one vmapped step; each keeps its own split, order, augmentation and
dropout, and writes its own run directory. Per epoch the host reads the device once (the
metrics; the test predictions only on a new best epoch), saves the resume state only when the
checkpoint policy says so (in the background), and accounts for every second.
"""

from __future__ import annotations

import signal
import time

import jax
import jax.numpy as jnp
import numpy as np

from alexnet_jax import models, seeds
from alexnet_jax.errors import Interrupted, TrainingError
from alexnet_jax.training.arms import ArmSpec, FinetunePlan
from alexnet_jax.training.member import Member, append_metrics, tensorboard_writer
from alexnet_jax.training.plan import Plan
from alexnet_jax.training.rundir import Checkpoints, check_free_space
from alexnet_jax.training.steps import (
    CompileClock,
    StepKey,
    build_steps,
    init_state,
    replicate,
    zero_eval_totals,
    zero_train_totals,
)

PHASES = ("train_s", "eval_s", "checkpoint_s", "compile_s", "other_s")


def _stack(trees):
    return trees[0] if len(trees) == 1 else jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def _member_slice(tree, k: int, packed: bool):
    return jax.tree.map(lambda x: x[k], tree) if packed else tree


def steps_for(plan: Plan, spec: ArmSpec, model, finetune: FinetunePlan, pipeline, mesh, pack: int = 1):
    """The compiled steps an arm trains with (shared by every arm and run of the same shapes)."""
    key = StepKey(
        model=model,
        optim=spec.optim,
        lr_scales=finetune.lr_scales,
        trainable=finetune.trainable,
        has_batch_stats=plan.model.spec.batch_norm,
        pipeline=pipeline.signature,
        mesh=mesh,
        num_classes=plan.model.num_classes,
        pack=pack,
    )
    return build_steps(key, pipeline)


class ArmTrainer:
    """Trains `members` (same arm, same position) to the end of the arm, or until `stop` is set.

    Building one touches no file: `restore()` is the step that opens the arm's checkpoints and
    resumes each member from its newest one; then `train()`."""

    def __init__(self, plan: Plan, spec: ArmSpec, members: list[Member], *, model, finetune: FinetunePlan, pipeline,
                 mesh, initial: list[dict], writer, stop, log, started: float):  # fmt: skip
        """`initial`: each member's variables to start from; `started`: when the caller began
        preparing this arm (perf_counter), so its wall time includes the set-up."""
        self.started, self.compile_start = started, CompileClock.install().seconds
        self.plan, self.spec, self.members = plan, spec, members
        self.pipeline, self.mesh, self.writer, self.stop, self.log = pipeline, mesh, writer, stop, log
        self.packed = len(members) > 1
        self.steps = steps_for(plan, spec, model, finetune, pipeline, mesh, pack=len(members))
        self.num_classes = plan.model.num_classes
        self.has_batch_stats = plan.model.spec.batch_norm
        conv_impl = dict(plan.model.options).get("conv_impl")
        formulation = {} if conv_impl is None else {"conv_impl": models.layers.resolved_formulation(conv_impl)}
        xla = models.layers.cpu_compiler_options_by_program(model)
        if xla:  # the XLA:CPU options the steps were compiled with (layers.cpu_compiler_options)
            formulation["compiler_options"] = xla
        self.states = []
        for member, variables in zip(members, initial, strict=True):
            params = variables["params"]
            state = init_state(params, variables.get("batch_stats", {}), self.steps.tx, finetune.trainable)
            member.extra = {
                "pipeline": pipeline.name,
                "devices": [str(d) for d in mesh.devices.flat],
                **formulation,  # what conv_impl resolved to on this backend: native or fast
                "total_params": models.count_params(params),
                "trainable_params": models.count_params(
                    params if finetune.trainable is None else {k: params[k] for k in finetune.trainable}
                ),
                **({"packed_with": len(members)} if self.packed else {}),
            }
            self.states.append(state)
        self.checkpoints: list[Checkpoints] = []
        self.state = None  # the members' stacked, replicated state, once restored

    def restore(self) -> None:
        """Check the disk can hold the arm's checkpoints, open them, and resume every member
        from its newest readable checkpoint (those without one start from `initial`)."""
        states = []
        try:
            for member, state in zip(self.members, self.states, strict=True):
                states.append(self._restore_member(member, state))
            positions = {m.position for m in self.members}
            if len(positions) != 1:
                raise TrainingError(f"packed members stand at different points {sorted(positions)}; train them apart")
        except BaseException:
            for checkpoints in self.checkpoints:
                checkpoints.close()
            raise
        self.state = replicate(_stack(states), self.mesh)
        self.states = []
        self.base_clocks = [(m.time["wall_s"], m.time["compile_s"]) for m in self.members]
        self.saved_at = self.members[0].position  # where the newest checkpoint stands
        self.best = [None] * len(self.members)  # device copies of best params not yet in best/

    def _restore_member(self, member: Member, state):
        if jax.process_index() == 0 and not member.arm_dir.joinpath("checkpoints").exists():
            check_free_space(member.arm_dir, state, member.label)
        checkpoints = Checkpoints(member.arm_dir, self.plan.keep_every_epoch, self.writer)
        self.checkpoints.append(checkpoints)
        if checkpoints.steps():  # another data set's classes: say so, rather than fail on the head's shape
            member.run.check_classes((checkpoints.latest_meta() or {}).get("class_names"), checkpoints.directory)
        restored = checkpoints.restore(jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), state))
        if restored is None:
            return state
        state, meta = restored
        member.resume_from(meta)
        epoch, step = member.position
        where = f"after epoch {epoch}/{self.spec.epochs}" if step == 0 else f"at epoch {epoch + 1}, step {step}"
        self.log(f"{member.label} resuming {where}")
        return state

    # ---- batches and keys of every member
    def _train_batches(self, epoch: int, skip: int):
        plan, members = self.plan, self.members
        shuffle = plan.data.shuffle_each_epoch
        orders = [
            seeds.epoch_order(m.run.data.train_idx, plan.seed, m.run.index, self.spec.id, epoch, shuffle)
            for m in members
        ]
        data_seeds = [seeds.train_data_seed(plan.seed, m.run.index, self.spec.id, epoch) for m in members]
        if self.packed:
            return self.pipeline.packed_batches(orders, plan.batch_size, train=True, seeds=data_seeds, skip=skip)
        return self.pipeline.batches(orders[0], plan.batch_size, train=True, seed=data_seeds[0], skip=skip)

    def _keys(self, purpose: int, epoch: int, step: int):
        keys = [seeds.step_key(m.key, purpose, epoch, step) for m in self.members]
        return jnp.stack(keys) if self.packed else keys[0]

    def _evaluate(self, split: str, purpose: int, epoch: int):
        """(device totals, device predictions per batch) of every member on its test or validation set."""
        size, seed = self.plan.eval_batch_size, self.plan.seed
        indices = [getattr(m.run.data, f"{split}_idx") for m in self.members]
        data_seeds = [seeds.eval_data_seed(seed, m.run.index, self.spec.id, epoch, purpose) for m in self.members]
        if self.packed:
            batches = self.pipeline.packed_batches(indices, size, train=False, seeds=data_seeds)
        else:
            batches = self.pipeline.batches(indices[0], size, train=False, seed=data_seeds[0])
        # On the mesh, replicated like the step's own outputs: host arrays would compile the step a second time.
        totals = replicate(_stack([zero_eval_totals(self.num_classes) for _ in self.members]), self.mesh)
        predictions = []
        for step, batch in enumerate(batches):
            totals, preds = self.steps.eval(self.state, self.pipeline.resident, batch, self._keys(purpose, epoch, step),
                                            totals)  # fmt: skip
            predictions.append(preds)
        return totals, predictions

    # ---- the loop
    def train(self) -> None:
        """Every epoch from the members' position to the end of the arm; raises Interrupted on a signal."""
        if self.state is None:
            raise RuntimeError("ArmTrainer.train() before restore(): open the arm's checkpoints first")
        self.tensorboard = [
            tensorboard_writer(m.arm_dir / "tb") if jax.process_index() == 0 else None for m in self.members
        ]
        start_epoch, start_step = self.members[0].position
        self._last_checkpoint = (start_epoch, time.perf_counter())
        try:
            for epoch in range(start_epoch, self.spec.epochs):
                skip = start_step if epoch == start_epoch else 0
                self._epoch(epoch, skip, [m.partial for m in self.members] if skip else None)
            self._finish()
        finally:
            self._update_clocks()
            for board in self.tensorboard:
                if board is not None:
                    board.close()
            for checkpoints in self.checkpoints:
                checkpoints.close()

    def _update_clocks(self) -> None:
        """Wall and compile seconds so far: earlier sessions' plus this one's, everything included."""
        wall, compiled = time.perf_counter() - self.started, CompileClock.seconds - self.compile_start
        for member, (base_wall, base_compile) in zip(self.members, self.base_clocks, strict=True):
            member.time["wall_s"], member.time["compile_s"] = base_wall + wall, base_compile + compiled

    def _epoch(self, epoch: int, skip: int, partial) -> None:
        t0, c0 = time.perf_counter(), CompileClock.seconds
        zero = zero_train_totals()
        if partial:
            totals = _stack([{k: jnp.asarray(p[k], zero[k].dtype) for k in zero} for p in partial])
        else:
            totals = _stack([zero_train_totals() for _ in self.members])
        totals = replicate(totals, self.mesh)  # placed as the step's outputs are, so the step compiles once
        for step, batch in enumerate(self._train_batches(epoch, skip), start=skip):
            if self.stop.is_set():
                self._interrupt(epoch, step, totals)
            keys = self._keys(seeds.TRAIN, epoch, step)
            self.state, totals = self.steps.train(self.state, self.pipeline.resident, batch, keys, totals, step)
        jax.block_until_ready(totals)
        t1, c1 = time.perf_counter(), CompileClock.seconds
        test = self._evaluate("test", seeds.TEST, epoch)
        val = self._evaluate("val", seeds.VALIDATION, epoch) if self.plan.selection == "val" else (None, None)
        host_train, host_test, host_val = jax.device_get((totals, test[0], val[0]))  # the epoch's one read
        t2, c2 = time.perf_counter(), CompileClock.seconds
        for k, member in enumerate(self.members):
            self._add_epoch(k, member, epoch, host_train, host_test, host_val, test[1], time.perf_counter() - t0)
        t3 = time.perf_counter()
        self._maybe_checkpoint(epoch + 1)
        t4 = time.perf_counter()
        phases = {"train_s": (t1 - t0) - (c1 - c0), "eval_s": (t2 - t1) - (c2 - c1), "checkpoint_s": t4 - t3}
        phases["compile_s"] = CompileClock.seconds - c0
        phases["other_s"] = max(0.0, (t4 - t0) - sum(phases.values()))
        self._update_clocks()
        for k, member in enumerate(self.members):
            member.history["epoch_seconds"][-1] = round(time.perf_counter() - t0, 4)
            for name in ("train_s", "eval_s", "checkpoint_s", "other_s"):
                member.time[name] += phases[name]
            member.publish(self.writer, complete=False)
            rounded = {name: round(value, 4) for name, value in phases.items()}
            row = member.report_epoch(self.log, rounded, self.spec.epochs - epoch - 1)
            if jax.process_index() == 0:
                self.writer.submit(append_metrics, member.arm_dir / "metrics.jsonl", row, self.tensorboard[k])

    def _add_epoch(self, k, member, epoch, host_train, host_test, host_val, predictions, seconds) -> None:
        def pick(tree):
            return _member_slice(tree, k, self.packed)

        bad = int(pick(host_train)["first_bad_step"])
        if bad >= 0:
            self.writer.flush()
            raise TrainingError(
                f"{member.label}: the training loss became non-finite at epoch {epoch} (0-based), step {bad}. "
                f"Its last checkpoint (if any) is kept in {member.arm_dir / 'checkpoints'}. "
                "Lower --config.optim.learning_rate or check the data."
            )
        val = None if host_val is None else pick(host_val)
        if member.add_epoch(pick(host_train), pick(host_test), val, seconds):
            n = len(member.run.data.test_idx)  # only the last batch is padded, at its end
            preds = np.concatenate([np.asarray(pick(p)) for p in jax.device_get(predictions)])[:n]
            member.best["predictions"] = preds.astype(int).tolist()
            variables = {"params": self.state.params}
            if self.has_batch_stats:
                variables["batch_stats"] = self.state.batch_stats
            variables = _member_slice(variables, k, self.packed)
            self.best[k] = variables if self.packed else jax.tree.map(jnp.copy, variables)  # outlives donation

    # ---- saving
    def _maybe_checkpoint(self, epochs_done: int) -> None:
        last_epochs, last_time = self._last_checkpoint
        if epochs_done >= self.spec.epochs:  # the arm ends: _finish writes what is left
            return
        if self.plan.checkpoints.due(epochs_done - last_epochs, time.perf_counter() - last_time):
            self._save(position=(epochs_done, 0), partial=None)
            self._last_checkpoint = (epochs_done, time.perf_counter())

    def _save(self, position: tuple[int, int], partial) -> None:
        """Queue best/ (if it changed) and then the resume state of every member."""
        self._update_clocks()
        self.saved_at = position
        for k, (member, checkpoints) in enumerate(zip(self.members, self.checkpoints, strict=True)):
            self._save_best(k)
            part = None if partial is None else jax.tree.map(float, _member_slice(partial, k, self.packed))
            number = position[0] * 1_000_000 + position[1]  # orbax's step: ordered like the positions
            checkpoints.save(_member_slice(self.state, k, self.packed), member.meta(number, position, part))

    def _save_best(self, k: int) -> None:
        if self.best[k] is not None and jax.process_index() == 0:
            self.checkpoints[k].save_best(self.best[k], self.members[k].best_metadata(), self.plan.model.name)
        self.best[k] = None

    def _interrupt(self, epoch: int, step: int, totals) -> None:
        if (epoch, step) != self.saved_at:  # else the newest checkpoint already holds this point
            self._save(position=(epoch, step), partial=jax.device_get(totals) if step else None)
        for member in self.members:
            member.publish(self.writer, complete=False)
        self.writer.flush()
        name = signal.Signals(getattr(self.stop, "signum", signal.SIGTERM)).name
        where = ", ".join(m.label for m in self.members)
        raise Interrupted(
            f"{where} stopped by {name} at epoch {epoch + 1}/{self.spec.epochs}, step {step}; the state is saved in "
            f"{self.members[0].arm_dir / 'checkpoints'}. Run the same command again to resume."
        )

    def _finish(self) -> None:
        if self.plan.keep_final_state:
            self._save(position=(self.spec.epochs, 0), partial=None)
        self._update_clocks()
        for k, member in enumerate(self.members):
            self._save_best(k)
            member.publish(self.writer, complete=True)
        self.writer.flush()  # the session drops the resume state of the finished arm
