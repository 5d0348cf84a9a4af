"""The run directory's protocol: who may train a run, with what config, and what it keeps.

    WORKDIR/run_NNN/.lock            flock held by the one process training the run
    WORKDIR/run_NNN/results.json     alexnet_jax.results schema; its config is the fingerprint
    WORKDIR/run_NNN/<arm>/checkpoints/   latest train state (orbax), to resume
    WORKDIR/run_NNN/<arm>/best/          best-epoch params (alexnet_jax.params_io)

The study launcher reads the same lock to skip runs another process holds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import json
import os
import shutil
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from alexnet_jax.errors import RunLockedError, TrainingError
from alexnet_jax.inputs.augment import LEGACY_NORMALIZE_KEY, run_normalization

LOCK_FILENAME = ".lock"
# Config keys that say what to keep on disk, when to save it and how to schedule the work,
# never what the numbers are (packed runs equal lone runs within float32 rounding).
NOT_FINGERPRINTED = (
    "keep_every_epoch",
    "keep_final_state",
    "checkpoint_every_epochs",
    "checkpoint_every_seconds",
    "pack_runs",
)
# Keys older configs had and that never changed a number; a run made with them still resumes.
RETIRED_KEYS = ("name", "log_every_steps")


def _added_defaults() -> dict:
    """Keys added to the configs since results.json "alexnet_jax.run/1", with the value that
    reproduces what a config without them did, so that older runs still resume."""
    from alexnet_jax import configs

    arms = {"pretrained": configs.arm("imagenet"), "scratch": configs.arm("scratch")}
    added = {"model.name": "alexnet", "model.conv_impl": "auto"}
    return {"arms": {name: json.loads(arm.to_json()) for name, arm in arms.items()}, **added}


@contextlib.contextmanager
def run_lock(directory: Path) -> Iterator[None]:
    """An exclusive flock on run_NNN/.lock: a second process on the same run exits clearly.
    The kernel drops the lock when its holder dies, even by SIGKILL."""
    directory.mkdir(parents=True, exist_ok=True)
    handle = open(directory / LOCK_FILENAME, "a+")  # noqa: SIM115  (held, with its flock, for the whole run)
    holder = _try_lock(handle)
    if holder is not None:
        handle.close()
        raise RunLockedError(
            f"{directory} is in use by {holder}. Two processes must not train the same run; "
            "wait for it to finish or stop it first."
        )
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on {os.uname().nodename}\n")
    handle.flush()
    try:
        yield
    finally:
        handle.truncate(0)
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def lock_holder(directory: Path) -> str | None:
    """Who holds the run's lock, or None if nobody does. Creates nothing; a free lock is
    taken and released at once."""
    try:
        handle = open(directory / LOCK_FILENAME)  # noqa: SIM115  (closed by the with block below)
    except OSError:
        return None
    with handle:
        holder = _try_lock(handle)
        if holder is None:
            fcntl.flock(handle, fcntl.LOCK_UN)
        return holder


def _try_lock(handle) -> str | None:
    """Take the flock without waiting: None on success, else the holder's line."""
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        if error.errno not in (errno.EAGAIN, errno.EACCES):
            raise
        handle.seek(0)
        return handle.read().strip() or "another process"
    return None


def config_fingerprint(config) -> dict:
    """The parts of the config that change the numbers (output paths and what to keep do not)."""
    d = json.loads(config.to_json()) if hasattr(config, "to_json") else json.loads(json.dumps(config))
    for key in NOT_FINGERPRINTED + RETIRED_KEYS:
        d.pop(key, None)
    d.get("data", {}).pop("dir", None)
    d["normalize"] = run_normalization(d)  # a run made with normalize_imagenet=True/False resumes as imagenet/none
    d.pop(LEGACY_NORMALIZE_KEY, None)
    for dotted, value in _added_defaults().items():
        *parents, leaf = dotted.split(".")
        target = d
        for parent in parents:
            target = target.setdefault(parent, {})
        target.setdefault(leaf, value)
    return d


def fingerprint_differences(ours, theirs, prefix: str = "") -> list[str]:
    """'key: theirs -> ours' for every fingerprint key that differs (nested keys dotted)."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        out = []
        for key in sorted(set(ours) | set(theirs)):
            out += fingerprint_differences(ours.get(key), theirs.get(key), f"{prefix}{key}.")
        return out
    return [] if ours == theirs else [f"{prefix[:-1]}: {theirs!r} -> {ours!r}"]


@contextlib.contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """While active, SIGTERM (what SLURM sends before SIGKILL) and SIGINT (Ctrl-C) set the
    yielded event instead of killing the process, so the trainer can save and stop at the next
    step. A second signal stops at once, as the default handler would."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop  # signals reach the main thread only; nothing to install
        return

    def handler(signum, frame):
        if stop.is_set():
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
        stop.signum = signum
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@dataclasses.dataclass(frozen=True)
class CheckpointPolicy:
    """When the resume state is saved: every N epochs and/or every S seconds, whichever comes
    first (0 turns a rule off), and always when a signal stops the run. Resolved from the config
    by alexnet_jax.training.plan."""

    every_epochs: int = 0
    every_seconds: float = 0.0

    def due(self, epochs_since: int, seconds_since: float) -> bool:
        return bool(
            (self.every_epochs and epochs_since >= self.every_epochs)
            or (self.every_seconds and seconds_since >= self.every_seconds)
        )


class Checkpoints:
    """Per arm: the resume state (orbax CheckpointManager in checkpoints/) and `best/`.

    `save` only dispatches a device copy of the state and queues the write on `writer` (a
    single background thread, so best/ and the state land in the order they were asked for);
    the step loop goes on while the copy reaches the host and the files are written. A
    checkpoint is numbered by the optimizer step it holds; its JSON part says where in the
    arm that is (epoch and step) and carries the history up to there.
    """

    ITEMS = ("state", "meta")

    def __init__(self, arm_dir: Path, keep_all: bool, writer):
        import orbax.checkpoint as ocp

        self._ocp = ocp
        self.arm_dir = arm_dir
        self.directory = arm_dir.resolve() / "checkpoints"
        self.writer = writer
        options = ocp.CheckpointManagerOptions(max_to_keep=None if keep_all else 1, create=True)
        self.manager = ocp.CheckpointManager(self.directory, options=options, item_names=self.ITEMS)

    def steps(self) -> list[int]:
        return sorted(self.manager.all_steps(), reverse=True)

    def latest_meta(self) -> dict | None:
        """The JSON part of the newest checkpoint (where it stands), without loading the state."""
        for step in self.steps():
            try:
                return self._restore(step, meta_only=True)["meta"]
            except Exception:  # noqa: BLE001  (damaged: restore() says so, with the path)
                continue
        return None

    def save(self, state, meta: dict) -> None:
        snapshot = jax.tree.map(jnp.copy, state)  # survives the next step's donation of `state`
        for leaf in jax.tree.leaves(snapshot):
            leaf.copy_to_host_async()
        step = int(meta["global_step"])
        frozen = json.loads(json.dumps(meta))  # as it is now: the trainer goes on appending to its lists
        self.writer.submit(self._write, step, snapshot, frozen)

    def _write(self, step: int, snapshot, meta: dict) -> None:
        ocp = self._ocp
        host = jax.device_get(snapshot)
        if step in self.manager.all_steps():  # a damaged one skipped at restore, or an earlier life's
            self.manager.delete(step)
        args = ocp.args.Composite(state=ocp.args.StandardSave(host), meta=ocp.args.JsonSave(meta))
        self.manager.save(step, args=args, force=True)
        self.manager.wait_until_finished()

    def _restore(self, step: int, abstract_state=None, meta_only: bool = False) -> dict:
        ocp = self._ocp
        items = {"meta": ocp.args.JsonRestore()}
        if not meta_only:
            items["state"] = ocp.args.StandardRestore(abstract_state)
        return self.manager.restore(step, args=ocp.args.Composite(**items))

    def restore(self, abstract_state) -> tuple[Any, dict] | None:
        """The newest readable checkpoint as (state, meta), or None if there is none.

        A damaged checkpoint (truncated or corrupt files, say after a crash of the machine) is
        skipped for an older one; if none can be read the error names the path and what to do.
        """
        failures = []
        for step in self.steps():
            try:
                restored = self._restore(step, abstract_state)
            except Exception as error:  # noqa: BLE001  (orbax raises many types for damaged files)
                failures.append(f"{self.directory / str(step)}: {type(error).__name__}: {str(error)[:300]}")
                continue
            if failures:
                logging.warning("skipped unreadable checkpoints, resuming from step %d: %s", step, failures)
            return restored["state"], restored["meta"]
        if failures:
            raise TrainingError(
                f"{self.arm_dir}: no checkpoint in {self.directory} can be read:\n  "
                + "\n  ".join(failures)
                + f"\nDelete {self.directory} to train this arm again from its first epoch (its results.json "
                "entry is then rebuilt), or restore the directory from a backup."
            )
        return None

    def save_best(self, variables: dict, metadata: dict, model: str) -> None:
        """Queue `best/`: the best epoch's variables, loadable by predict. They must not be donated."""
        from alexnet_jax import params_io

        for leaf in jax.tree.leaves(variables):
            leaf.copy_to_host_async()

        def write():
            params_io.save_variables(self.arm_dir / "best", jax.device_get(variables), metadata, model=model)

        self.writer.submit(write)

    def close(self):
        self.manager.close()


def drop_resume_state(arm_dir: Path) -> None:
    """Deletes the latest-state checkpoints of a finished arm (the plan says whether to keep them:
    `Plan.keep_final_state`). They only serve to resume, and at 2x the parameters (params + momentum) they would make a
    100-run study of the full model ~90 GB larger; `best/` and results.json hold everything
    the analysis and predict need."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("alexnet_jax: arm finished")
    if jax.process_index() == 0:
        shutil.rmtree(arm_dir / "checkpoints", ignore_errors=True)


def tree_bytes(tree) -> int:
    return sum(int(np.prod(np.shape(x))) * np.dtype(x.dtype).itemsize for x in jax.tree_util.tree_leaves(tree))


def _directory_bytes(directory: Path) -> int:
    return sum(f.stat().st_size for f in directory.rglob("*") if f.is_file()) if directory.is_dir() else 0


def check_free_space(arm_dir: Path, state, label: str) -> None:
    """Fails before the first epoch, not in the middle of an orbax write, when the disk cannot
    hold the arm's checkpoints: at the peak, the old and new latest state (params + optimizer)
    and the best params with their staging copy. What the arm already wrote counts as room."""
    needed = 2 * tree_bytes(state) + 2 * tree_bytes(state.params) - _directory_bytes(arm_dir)
    arm_dir.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(arm_dir).free
    if needed > free:
        raise TrainingError(
            f"{label}: its checkpoints need about {needed / 1e9:.2f} GB free in {arm_dir}, but only "
            f"{free / 1e9:.2f} GB is free there. Free some space, or point --workdir at a larger disk; "
            "this arm has not started."
        )
