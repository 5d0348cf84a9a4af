"""Many runs on one machine (the library behind `python -m alexnet_jax.study`): one `python -m
alexnet_jax.train --run_index=r` process per run, scheduled over device slots (GPU groups via
CUDA_VISIBLE_DEVICES, or CPU workers) until every run is done, failed or locked. Complete runs
are skipped, partial ones resume, locked ones are left alone; logs go to WORKDIR/logs/.
`Study.run()` returns the command's exit status (alexnet_jax.cli: 0, 1 failed, 4 locked, 5 stopped).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime as dt
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from alexnet_jax import cli, errors
from alexnet_jax import results as results_lib
from alexnet_jax.toolbox import format_duration
from alexnet_jax.training import rundir

ALL_DONE, FAILED, LOCKED, INTERRUPTED = cli.EXIT_OK, cli.EXIT_FAILED, cli.EXIT_LOCKED, cli.EXIT_INTERRUPTED


@dataclasses.dataclass(frozen=True)
class Slot:
    """Where one training process runs: a name for the logs and the environment it gets."""

    name: str
    env: dict


def detect_gpus() -> list[str]:
    """GPU ids this process may use, without initialising any GPU runtime here.

    CUDA_VISIBLE_DEVICES wins (SLURM sets it for --gres jobs); otherwise `nvidia-smi -L`.
    """
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [d.strip() for d in visible.split(",") if d.strip() and d.strip() != "-1"]
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(row for row in listing.splitlines() if row.startswith("GPU "))]


def make_slots(
    gpus: list[str],
    *,
    devices_per_run: int = 1,
    runs_per_device: int = 1,
    num_workers: int = 1,
    log: Callable[[str], None] = print,
) -> list[Slot]:
    """Split the GPUs into groups of `devices_per_run`, each hosting `runs_per_device` runs.

    With no GPUs, `num_workers` CPU slots. Processes sharing a GPU each get an even share of
    its memory (XLA_PYTHON_CLIENT_MEM_FRACTION) unless that variable is already set.
    """
    if devices_per_run < 1 or runs_per_device < 1 or num_workers < 1:
        raise ValueError("--devices_per_run, --runs_per_device and --num_workers must be >= 1")
    if not gpus:
        return [
            Slot(f"cpu{i}", {"CUDA_VISIBLE_DEVICES": "", "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu")})
            for i in range(num_workers)
        ]
    groups = [gpus[i : i + devices_per_run] for i in range(0, len(gpus) - devices_per_run + 1, devices_per_run)]
    if not groups:
        raise ValueError(
            f"--devices_per_run={devices_per_run} but only {len(gpus)} GPU(s) are visible ({','.join(gpus)})"
        )
    if len(gpus) % devices_per_run:
        log(
            f"[study] warning: {len(gpus) % devices_per_run} GPU(s) left idle: {len(gpus)} GPUs do not split into "
            f"groups of {devices_per_run}"
        )
    slots = []
    for group in groups:
        env = {"CUDA_VISIBLE_DEVICES": ",".join(group)}
        if runs_per_device > 1 and "XLA_PYTHON_CLIENT_MEM_FRACTION" not in os.environ:
            env["XLA_PYTHON_CLIENT_MEM_FRACTION"] = f"{0.9 / runs_per_device:.3f}"
        for k in range(runs_per_device):
            slots.append(Slot(f"gpu{'-'.join(group)}" + (f"#{k}" if runs_per_device > 1 else ""), env))
    return slots


def results_path(workdir: Path, run_index: int) -> Path:
    return results_lib.run_dir(workdir, run_index) / results_lib.RESULTS_FILENAME


def read_results(workdir: Path, run_index: int) -> dict | None:
    """The run's results.json, or None if absent or unreadable (a run in its first epoch)."""
    path = results_path(workdir, run_index)
    if not path.exists():
        return None
    try:
        return results_lib.load_results(path)
    except errors.ResultsError:
        return None


def arms_complete(results: dict | None, arms: Iterable[str]) -> bool:
    return results is not None and all(results_lib.is_complete(results, arm) for arm in arms)


def run_complete(workdir: Path, run_index: int, arms: Iterable[str]) -> bool:
    return arms_complete(read_results(workdir, run_index), arms)


def lock_holder(workdir: Path, run_index: int) -> str | None:
    """Who holds the run's lock (the trainer's flock on run_NNN/.lock), or None if free."""
    return rundir.lock_holder(results_lib.run_dir(workdir, run_index))


@dataclasses.dataclass
class Progress:
    """Epochs and images done over the asked runs, read from their results.json files."""

    runs_complete: int = 0
    epochs_done: int = 0
    epochs_planned: int = 0
    images_trained: float = 0.0
    seconds_per_epoch: float | None = None  # mean over arms with history (trainer wall time)
    wall_seconds: float = 0.0  # the arms' own wall time, everything included
    compute_seconds: float = 0.0  # of which in the train and eval steps (results.json "time")

    def not_compute_share(self, since: Progress | None = None) -> float | None:
        """The share of the arms' wall time spent outside the train and eval steps."""
        wall = self.wall_seconds - (since.wall_seconds if since else 0.0)
        compute = self.compute_seconds - (since.compute_seconds if since else 0.0)
        return 1.0 - compute / wall if wall > 0 else None


def measure_progress(workdir: Path, runs: list[int], arms: list[str], planned_epochs: dict) -> Progress:
    """`planned_epochs`: per arm, its epochs or {run: epochs} (Plan.epochs_by_run), for runs not begun."""
    progress = Progress()
    wall, epochs_timed = 0.0, 0
    for r in runs:
        results = read_results(workdir, r)
        records = (results or {}).get("arms", {})
        complete = results is not None
        for arm in arms:
            record = records.get(arm)
            asked = planned_epochs[arm]
            planned = int(record["epochs"]) if record else int(asked[r] if isinstance(asked, dict) else asked)
            done = len(record["test_acc"]) if record else 0
            progress.epochs_planned += planned
            progress.epochs_done += min(done, planned)
            complete = complete and record is not None and results_lib.is_complete(results, arm)
            if record and done and record.get("wall_time_s"):
                wall += float(record["wall_time_s"])
                epochs_timed += done
                if record.get("train_images_per_epoch"):
                    progress.images_trained += done * float(record["train_images_per_epoch"])
                elif record.get("images_per_s"):
                    progress.images_trained += float(record["images_per_s"]) * float(record["wall_time_s"])
                timing = record.get("time") or {}
                progress.wall_seconds += float(timing.get("wall_s", record["wall_time_s"]))
                progress.compute_seconds += float(timing.get("train_s", 0.0)) + float(timing.get("eval_s", 0.0))
        progress.runs_complete += int(complete)
    progress.seconds_per_epoch = wall / epochs_timed if epochs_timed else None
    return progress


def estimate_remaining(start: Progress, now: Progress, elapsed: float, num_slots: int) -> float | None:
    """Seconds left: from this launch's own pace, else from the recorded epoch times."""
    remaining = now.epochs_planned - now.epochs_done
    if remaining <= 0:
        return 0.0
    gained = now.epochs_done - start.epochs_done
    if gained > 0 and elapsed > 0:
        return remaining * elapsed / gained
    if now.seconds_per_epoch:
        return remaining * now.seconds_per_epoch / max(1, num_slots)
    return None


@dataclasses.dataclass
class Running:
    run_index: int
    slot: Slot
    process: subprocess.Popen
    log_path: Path
    log_handle: object
    started: float


class Study:
    """Schedules `train` processes over slots until every run is done, failed or locked."""

    def __init__(
        self,
        *,
        workdir: Path,
        runs: list[int],
        arms: list[str],
        slots: list[Slot],
        train_args: list[str],
        planned_epochs: dict,
        python: str = sys.executable,
        progress_every: float = 60.0,
        max_failures: int = 3,
        log: Callable[[str], None] = print,
    ):
        self.workdir = Path(workdir)
        self.runs, self.arms, self.slots = list(runs), list(arms), list(slots)
        self.train_args = list(train_args)
        self.planned_epochs = dict(planned_epochs)
        self.python = python
        self.progress_every = progress_every
        self.max_failures = max_failures
        self._print = log
        self.log_dir = self.workdir / "logs"
        self.done: list[int] = []
        self.skipped: list[int] = []
        self.locked: dict[int, str] = {}
        self.failed: dict[int, str] = {}
        self.interrupted: list[int] = []
        self.running: dict[str, Running] = {}
        self._stop = False

    def log(self, line: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        self._print(line)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_dir / "study.log", "a") as handle:
            handle.write(f"{stamp} {line}\n")

    def command(self, run_index: int) -> list[str]:
        return [
            self.python,
            "-m",
            "alexnet_jax.train",
            f"--workdir={self.workdir}",
            f"--run_index={run_index}",
            f"--arms={','.join(self.arms)}",
            *self.train_args,
        ]

    def _launch(self, run_index: int, slot: Slot) -> None:
        log_path = self.log_dir / f"run_{run_index:03d}.log"
        handle = open(log_path, "a")  # noqa: SIM115  (the child writes to it until _finish closes it)
        command = self.command(run_index)
        env = {**os.environ, **slot.env, "PYTHONUNBUFFERED": "1"}
        handle.write(
            f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} study launcher: run {run_index} on {slot.name} "
            f"({' '.join(f'{k}={v}' for k, v in slot.env.items())})\n===== {shlex.join(command)}\n"
        )
        handle.flush()
        process = subprocess.Popen(
            command, stdout=handle, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )  # Ctrl-C reaches the launcher, which stops them cleanly
        self.running[slot.name] = Running(run_index, slot, process, log_path, handle, time.monotonic())
        self.log(f"[study] run {run_index:03d} started on {slot.name} (pid {process.pid}, log {log_path})")

    def _finish(self, item: Running, code: int) -> None:
        item.log_handle.close()
        took = format_duration(time.monotonic() - item.started)
        results = read_results(self.workdir, item.run_index) if code == 0 else None
        if arms_complete(results, self.arms):
            self.done.append(item.run_index)
            peaks = ", ".join(f"{arm} {100 * results['arms'][arm]['best_test_acc']:.1f}%" for arm in self.arms)
            self.log(f"[study] run {item.run_index:03d} done on {item.slot.name} in {took} (peak test acc: {peaks})")
            return
        tail = _tail(item.log_path, 6)
        if code == cli.EXIT_LOCKED:  # the exit code decides; the trainer's message names the holder
            named = re.search(r"in use by (.*?)(?:\. Two processes|$)", tail, re.MULTILINE)
            holder = named.group(1).strip() if named else "another process"
            self.locked[item.run_index] = holder
            self.log(f"[study] run {item.run_index:03d} skipped: in use by {holder} (log {item.log_path})")
            return
        if code == cli.EXIT_INTERRUPTED:  # stopped cleanly (our SIGTERM, or SLURM's): it resumes next launch
            self.interrupted.append(item.run_index)
            self.log(f"[study] run {item.run_index:03d} stopped cleanly after {took}; it resumes on the next launch")
            return
        reason = f"exit status {code}" if code >= 0 else f"killed by signal {-code}"
        if code == 0:
            reason = "exited 0 but its results.json is not complete"
        self.failed[item.run_index] = reason
        indented = "\n".join("    " + line for line in tail.splitlines())
        self.log(
            f"[study] run {item.run_index:03d} FAILED on {item.slot.name} after {took} ({reason}); "
            f"log: {item.log_path}\n{indented}"
        )

    def report_progress(self, start: Progress, started: float) -> Progress:
        now = measure_progress(self.workdir, self.runs, self.arms, self.planned_epochs)
        elapsed = time.monotonic() - started
        rate = (now.images_trained - start.images_trained) / elapsed if elapsed > 0 else 0.0
        share = now.not_compute_share(start)
        left = estimate_remaining(start, now, elapsed, len(self.slots))
        if left is None:
            eta = "ETA unknown until an epoch finishes"
        else:
            end = dt.datetime.now() + dt.timedelta(seconds=left)
            eta = f"ETA {end:%Y-%m-%d %H:%M} (in {format_duration(left)})"
        self.log(
            f"[study] {now.runs_complete}/{len(self.runs)} runs done, {len(self.running)} running, "
            f"{len(self.failed)} failed | epochs {now.epochs_done}/{now.epochs_planned} | "
            f"{rate:,.0f} img/s end to end"
            + ("" if share is None else f", {100 * share:.0f}% of the runs' time outside the steps")
            + f" | {eta}"
        )
        return now

    def stop(self, *_):
        self._stop = True

    def run(self) -> int:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        pending: collections.deque[int] = collections.deque()
        for r in self.runs:
            if run_complete(self.workdir, r, self.arms):
                self.skipped.append(r)
            elif (holder := lock_holder(self.workdir, r)) is not None:
                self.locked[r] = holder
            else:
                pending.append(r)
        self.log(
            f"[study] {len(self.runs)} runs ({', '.join(self.arms)}) in {self.workdir}: {len(self.skipped)} already "
            f"complete, {len(self.locked)} in use by another process, {len(pending)} to train on {len(self.slots)} "
            f"slot(s): {', '.join(s.name for s in self.slots)}"
        )
        for r, holder in self.locked.items():
            self.log(f"[study] run {r:03d} skipped: in use by {holder}")
        started = time.monotonic()
        start_progress = measure_progress(self.workdir, self.runs, self.arms, self.planned_epochs)
        last_report = started
        previous = {sig: signal.signal(sig, self.stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            while (pending or self.running) and not self._stop:
                too_many = self.max_failures and len(self.failed) >= self.max_failures
                for slot in self.slots:
                    if pending and not too_many and slot.name not in self.running:
                        self._launch(pending.popleft(), slot)
                if not self.running:
                    break
                for name, item in list(self.running.items()):
                    code = item.process.poll()
                    if code is not None:
                        del self.running[name]
                        self._finish(item, code)
                if time.monotonic() - last_report >= self.progress_every:
                    self.report_progress(start_progress, started)
                    last_report = time.monotonic()
                time.sleep(0.2)
        finally:
            if self.running:
                self._terminate_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        final = self.report_progress(start_progress, started)
        not_started = len(pending)
        summary = (
            f"[study] finished: {len(self.done)} trained now, {len(self.skipped)} were already complete, "
            f"{len(self.failed)} failed, {len(self.locked)} in use by another process"
            + (f", {len(self.interrupted)} stopped cleanly" if self.interrupted else "")
            + (f", {not_started} not started" if not_started else "")
        )
        self.log(summary)
        elapsed = time.monotonic() - started
        trained = final.images_trained - start_progress.images_trained
        share = final.not_compute_share(start_progress)
        if trained > 0 and elapsed > 0:
            self.log(
                f"[study] end to end: {trained:,.0f} training images in {format_duration(elapsed)} = "
                f"{trained / elapsed:,.0f} img/s"
                + ("" if share is None else f"; {100 * share:.1f}% of the runs' wall time was not train/eval steps")
            )
        for r, reason in sorted(self.failed.items()):
            self.log(f"[study]   failed: run {r:03d} ({reason}), log {self.log_dir / f'run_{r:03d}.log'}")
        if self.max_failures and len(self.failed) >= self.max_failures and not_started:
            self.log(
                f"[study] stopped starting runs after {len(self.failed)} failures (--max_failures); fix the "
                "cause and launch again: finished runs are skipped"
            )
        if self._stop:
            self.log("[study] interrupted; launch the same command again to resume")
        if self.failed or (not_started and not self._stop):
            return FAILED
        if self._stop or self.interrupted:
            return INTERRUPTED
        return LOCKED if self.locked else ALL_DONE

    def dry_run(self) -> dict:
        """What `run()` would do: the slots, the runs left to train and the first one's command."""
        todo = [r for r in self.runs if not run_complete(self.workdir, r, self.arms)]
        return {
            "slots": [dataclasses.asdict(s) for s in self.slots],
            "runs_to_train": todo,
            "example_command": shlex.join(self.command(todo[0])) if todo else None,
        }

    def _terminate_all(self, grace: float = 60.0) -> None:
        """SIGTERM every training process we started, then SIGKILL what is left after `grace` s."""
        self.log(f"[study] stopping {len(self.running)} training process(es); they resume on the next launch")
        for item in self.running.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(item.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for item in self.running.values():
            try:
                item.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(item.process.pid, signal.SIGKILL)
                item.process.wait()
            item.log_handle.close()
        self.running.clear()


def _tail(path: Path, lines: int) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 16384))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])
