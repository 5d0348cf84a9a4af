"""The run directory's protocol: who may train a run, with what config, and what it keeps.

    WORKDIR/run_NNN/.lock            flock held by the one process training the run
    WORKDIR/run_NNN/results.json     alexnet_jax.results schema; its config is the fingerprint
    WORKDIR/run_NNN/<arm>/checkpoints/   latest train state (orbax), to resume
    WORKDIR/run_NNN/<arm>/best/          best-epoch params (alexnet_jax.params_io)

The study launcher reads the same lock to skip runs another process holds.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import jax
import numpy as np

LOCK_FILENAME = ".lock"
# Config keys that say what to keep on disk or where, never what the numbers are.
NOT_FINGERPRINTED = ("keep_every_epoch", "keep_final_state")
# Keys older configs had and that never changed a number; a run made with them still resumes.
RETIRED_KEYS = ("name", "log_every_steps")


class TrainingError(RuntimeError):
    """A failure the user must act on; the message says what happened and what to do."""


class RunLockedError(TrainingError):
    """Another process holds the run's lock."""


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
    return d


def fingerprint_differences(ours, theirs, prefix: str = "") -> list[str]:
    """'key: theirs -> ours' for every fingerprint key that differs (nested keys dotted)."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        out = []
        for key in sorted(set(ours) | set(theirs)):
            out += fingerprint_differences(ours.get(key), theirs.get(key), f"{prefix}{key}.")
        return out
    return [] if ours == theirs else [f"{prefix[:-1]}: {theirs!r} -> {ours!r}"]


class Checkpoints:
    """Per arm: the latest training state and history (orbax CheckpointManager, one kept
    unless keep_every_epoch) and the best-epoch params (`best/`, loadable by predict)."""

    def __init__(self, arm_dir: Path, keep_every_epoch: bool):
        import orbax.checkpoint as ocp

        self._ocp = ocp
        self.arm_dir = arm_dir
        options = ocp.CheckpointManagerOptions(
            max_to_keep=None if keep_every_epoch else 1, enable_async_checkpointing=False, create=True
        )
        self.manager = ocp.CheckpointManager(
            arm_dir.resolve() / "checkpoints", options=options, item_names=("state", "history")
        )

    def latest_epoch(self) -> int | None:
        return self.manager.latest_step()

    def save(self, epoch: int, state, history: dict) -> None:
        ocp = self._ocp
        self.manager.save(
            epoch,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(jax.device_get(state)), history=ocp.args.JsonSave(history)
            ),
        )
        self.manager.wait_until_finished()

    def restore(self, epoch: int, abstract_state):
        ocp = self._ocp
        restored = self.manager.restore(
            epoch,
            args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state), history=ocp.args.JsonRestore()),
        )
        return restored["state"], restored["history"]

    def save_best(self, params, metadata: dict) -> None:
        from alexnet_jax import params_io

        params_io.save_params(self.arm_dir / "best", jax.device_get(params), metadata)

    def close(self):
        self.manager.close()


def drop_resume_state(config, arm_dir: Path) -> None:
    """Deletes the latest-state checkpoints of a finished arm, unless the config keeps them.
    They only serve to resume, and at 2x the parameters (params + momentum) they would make a
    100-run study of the full model ~90 GB larger; `best/` and results.json hold everything
    the analysis and predict need."""
    if config.get("keep_final_state", False) or config.keep_every_epoch:
        return
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
