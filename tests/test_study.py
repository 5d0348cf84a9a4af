"""The study launcher: device groups, skipping, locks, failure reports, and a real two-worker study.

The end-to-end test trains two runs of the tiny test model (32 px images, crop 28, one scratch
epoch) in two CPU worker processes, then launches again and checks that nothing is retrained.
"""

import fcntl
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from helpers import TINY_FLAGS

from alexnet_jax import paper, study, toolbox
from alexnet_jax import results as results_lib
from alexnet_jax.data.prepared import write_prepared
from alexnet_jax.training import launcher

REPO = Path(__file__).resolve().parent.parent
TINY = [
    "--config=experiments/configs/quick.py",
    "--config.epochs.scratch=1",
    *(f"--config.{key}={value}" for key, value in TINY_FLAGS.items()),
]


def fake_results(workdir: Path, run_index: int, arms: dict) -> Path:
    """A schema-valid results.json with `arms` = {arm: (epochs_done, epochs_planned)}."""
    record = {}
    for arm, (done, planned) in arms.items():
        record[arm] = {
            "epochs": planned,
            "complete": done == planned,
            "train_acc": [0.5] * done,
            "test_acc": [0.5] * done,
            "train_loss": [1.0] * done,
            "test_loss": [1.0] * done,
            "best_epoch": 0,
            "best_test_acc": 0.5,
            "confusion_matrix": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]] if done else [],
            "wall_time_s": 10.0 * done,
            "images_per_s": 100.0 if done else None,
        }
    results = {
        "schema": results_lib.SCHEMA,
        "run_index": run_index,
        "class_names": ["elliptical", "lenticular", "spiral", "irr_misc"],
        "split": {},
        "arms": record,
    }
    path = launcher.results_path(workdir, run_index)
    toolbox.write_json_atomic(path, results)
    return path


def test_make_slots_groups_gpus_and_shares_memory():
    slots = launcher.make_slots(["0", "1", "2", "3"], devices_per_run=2, runs_per_device=2, log=lambda _: None)
    assert [s.name for s in slots] == ["gpu0-1#0", "gpu0-1#1", "gpu2-3#0", "gpu2-3#1"]
    assert slots[0].env["CUDA_VISIBLE_DEVICES"] == "0,1" and slots[2].env["CUDA_VISIBLE_DEVICES"] == "2,3"
    if "XLA_PYTHON_CLIENT_MEM_FRACTION" not in os.environ:
        assert float(slots[0].env["XLA_PYTHON_CLIENT_MEM_FRACTION"]) == pytest.approx(0.45)
    warnings = []
    assert len(launcher.make_slots(["0", "1", "2"], devices_per_run=2, log=warnings.append)) == 1
    assert "1 GPU(s) left idle" in warnings[0]
    with pytest.raises(ValueError, match="only 1 GPU"):
        launcher.make_slots(["0"], devices_per_run=2)
    cpu = launcher.make_slots([], num_workers=3)
    assert [s.name for s in cpu] == ["cpu0", "cpu1", "cpu2"] and cpu[0].env["CUDA_VISIBLE_DEVICES"] == ""


def test_detect_gpus_reads_cuda_visible_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5")
    assert launcher.detect_gpus() == ["2", "5"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert launcher.detect_gpus() == []


def test_config_args_are_passed_through():
    argv = [
        "--runs=0-3",
        "--config=experiments/configs/quick.py",
        "--config.batch_size=8",
        "--workdir=x",
        "--config.model.dtype",
        "bfloat16",
        "--configure=no",
    ]
    assert study.config_args(argv) == [
        "--config=experiments/configs/quick.py",
        "--config.batch_size=8",
        "--config.model.dtype=bfloat16",
    ]


def test_complete_partial_and_progress(tmp_path):
    fake_results(tmp_path, 0, {"scratch": (3, 3), "pretrained": (2, 2)})
    fake_results(tmp_path, 1, {"scratch": (1, 3)})
    assert launcher.run_complete(tmp_path, 0, ["scratch", "pretrained"])
    assert launcher.run_complete(tmp_path, 0, ["scratch"])
    assert not launcher.run_complete(tmp_path, 1, ["scratch"])
    assert not launcher.run_complete(tmp_path, 1, ["pretrained"])
    assert not launcher.run_complete(tmp_path, 2, ["scratch"])
    progress = launcher.measure_progress(tmp_path, [0, 1, 2], ["scratch"], {"scratch": 3})
    assert (progress.runs_complete, progress.epochs_done, progress.epochs_planned) == (1, 4, 9)
    assert progress.images_trained == pytest.approx(100.0 * 30 + 100.0 * 10)
    assert progress.seconds_per_epoch == pytest.approx(10.0)
    # Nothing gained yet in this launch: the recorded epoch time, shared over two slots.
    assert launcher.estimate_remaining(progress, progress, 5.0, 2) == pytest.approx(5 * 10.0 / 2)
    later = launcher.Progress(epochs_done=6, epochs_planned=9)
    assert launcher.estimate_remaining(progress, later, 20.0, 2) == pytest.approx(3 * 20.0 / 2)
    # A truncated results.json (a crash mid-write elsewhere) counts as not complete, never crashes.
    launcher.results_path(tmp_path, 3).parent.mkdir(parents=True)
    launcher.results_path(tmp_path, 3).write_text('{"schema": ')
    assert not launcher.run_complete(tmp_path, 3, ["scratch"])


def fake_python(tmp_path: Path, body: str) -> str:
    """An executable standing in for `python -m alexnet_jax.train ...`."""
    path = tmp_path / "fake_python"
    path.write_text("#!/usr/bin/env bash\n" + textwrap.dedent(body))
    path.chmod(0o755)
    return str(path)


def make_study(tmp_path, python, runs, **kwargs):
    lines = []
    s = launcher.Study(
        workdir=tmp_path / "w",
        runs=runs,
        arms=["scratch"],
        slots=launcher.make_slots([], num_workers=2),
        train_args=[],
        planned_epochs={"scratch": 1},
        python=python,
        progress_every=0.5,
        log=lines.append,
        **kwargs,
    )
    return s, lines


def test_failures_are_reported_with_run_and_log(tmp_path):
    python = fake_python(
        tmp_path,
        """
        echo "loading data for $*"
        echo "Traceback: something broke" >&2
        exit 1
    """,
    )
    s, lines = make_study(tmp_path, python, [0, 1, 2], max_failures=1)
    assert s.run() == launcher.FAILED
    text = "\n".join(lines)
    assert "run 000 FAILED on cpu0" in text and "exit status 1" in text
    assert str(tmp_path / "w" / "logs" / "run_000.log") in text
    assert "Traceback: something broke" in text  # the log's tail is shown
    assert "stopped starting runs after 2 failures" in text and "1 not started" in text
    log = (tmp_path / "w" / "logs" / "run_001.log").read_text()
    assert "--run_index=1" in log and "Traceback: something broke" in log
    assert (tmp_path / "w" / "logs" / "study.log").read_text().count("FAILED") == 2


def test_locked_runs_are_left_alone(tmp_path):
    python = fake_python(
        tmp_path,
        """
        # The trainer's answer when another process holds the run.
        echo "error: /w/run_001 is in use by pid 99 on elsewhere. Two processes must not train the same run" >&2
        exit 4
    """,
    )
    workdir = tmp_path / "w"
    fake_results(workdir, 0, {"scratch": (1, 1)})
    lock_dir = results_lib.run_dir(workdir, 2)
    lock_dir.mkdir(parents=True)
    with open(lock_dir / ".lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write("pid 4242 on testhost\n")
        held.flush()
        assert launcher.lock_holder(workdir, 2) == "pid 4242 on testhost"
        s, lines = make_study(tmp_path, python, [0, 1, 2])
        assert s.run() == launcher.LOCKED
    assert launcher.lock_holder(workdir, 2) is None
    text = "\n".join(lines)
    assert "1 already complete, 1 in use by another process, 1 to train" in text
    assert "run 002 skipped: in use by pid 4242 on testhost" in text
    assert "run 001 skipped: in use by pid 99 on elsewhere" in text
    assert "FAILED" not in text
    assert not (workdir / "logs" / "run_000.log").exists()  # complete: never launched


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    directory = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    write_prepared(
        directory,
        rng.integers(0, 256, (40, 256, 256, 3), dtype=np.uint8),
        np.arange(40) % 4,
        name="tiny-random",
        source="test: uniform random pixels",
        class_names=paper.CLASS_NAMES,
    )
    return directory


@pytest.mark.slow
def test_two_workers_train_then_skip(tmp_path, tiny_data):
    workdir = tmp_path / "study"
    command = [
        sys.executable,
        "-m",
        "alexnet_jax.study",
        "--runs=0-1",
        f"--workdir={workdir}",
        f"--data_dir={tiny_data}",
        "--arms=scratch",
        "--num_workers=2",
        "--progress_every=2",
        *TINY,
    ]
    env = {**os.environ, "XLA_FLAGS": "", "TF_CPP_MIN_LOG_LEVEL": "2"}
    first = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stdout + first.stderr
    for r in (0, 1):
        results = results_lib.load_results(launcher.results_path(workdir, r))
        assert results_lib.is_complete(results, "scratch") and len(results["arms"]["scratch"]["test_acc"]) == 1
        assert results["config"]["batch_size"] == 8  # the overrides reached the trainer
        assert f"--run_index={r}" in (workdir / "logs" / f"run_{r:03d}.log").read_text()
    assert "run 000 started on cpu" in first.stdout and "run 001 started on cpu" in first.stdout
    assert "2 trained now" in first.stdout
    assert "2/2 runs done" in first.stdout
    assert "img/s end to end" in first.stdout  # the progress line, and the summary:
    assert "[study] end to end:" in first.stdout and "of the runs' wall time was not train/eval steps" in first.stdout
    mtimes = {r: launcher.results_path(workdir, r).stat().st_mtime_ns for r in (0, 1)}

    second = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "2 already complete, 0 in use by another process, 0 to train" in second.stdout
    assert "started on" not in second.stdout
    assert {r: launcher.results_path(workdir, r).stat().st_mtime_ns for r in (0, 1)} == mtimes


@pytest.mark.slow
def test_runs_share_one_gpu_with_runs_per_device(tmp_path, tiny_data):
    """--runs_per_device=2 on one (pretend) GPU: two trainers side by side, each told its share of
    the GPU's memory. JAX_PLATFORMS=cpu lets them train on this machine's CPU."""
    workdir = tmp_path / "study"
    command = [
        sys.executable,
        "-m",
        "alexnet_jax.study",
        "--runs=0-1",
        f"--workdir={workdir}",
        f"--data_dir={tiny_data}",
        "--arms=scratch",
        "--gpus=0",
        "--runs_per_device=2",
        *TINY,
    ]
    env = {**os.environ, "XLA_FLAGS": "", "TF_CPP_MIN_LOG_LEVEL": "2", "JAX_PLATFORMS": "cpu"}
    env.pop("XLA_PYTHON_CLIENT_MEM_FRACTION", None)
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "slot(s): gpu0#0, gpu0#1" in done.stdout
    logs = {r: (workdir / "logs" / f"run_{r:03d}.log").read_text() for r in (0, 1)}
    assert {"gpu0#0", "gpu0#1"} == {next(s for s in ("gpu0#0", "gpu0#1") if f"on {s}" in log) for log in logs.values()}
    assert all("XLA_PYTHON_CLIENT_MEM_FRACTION=0.450" in log for log in logs.values())
    for r in (0, 1):
        assert results_lib.is_complete(results_lib.load_results(launcher.results_path(workdir, r)), "scratch")


def test_dry_run_prints_the_plan(tmp_path):
    workdir = tmp_path / "w"
    fake_results(workdir, 0, {"scratch": (1, 1)})
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "alexnet_jax.study",
            "--runs=0-2",
            f"--workdir={workdir}",
            "--arms=scratch",
            "--num_workers=2",
            "--dry_run",
            *TINY,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
    )
    assert out.returncode == 0, out.stderr
    plan = json.loads(out.stdout)
    assert plan["runs_to_train"] == [1, 2]
    assert [s["name"] for s in plan["slots"]] == ["cpu0", "cpu1"]
    assert "--run_index=1" in plan["example_command"] and "--config.batch_size=8" in plan["example_command"]


def test_check_distributed_all_reduces_over_two_processes():
    """`study check-distributed`: jax.distributed.initialize() from the environment, gloo on CPU."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    processes = []
    for index in range(2):
        env = {
            **os.environ,
            "JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}",
            "JAX_NUM_PROCESSES": "2",
            "JAX_PROCESS_ID": str(index),
            "JAX_PLATFORMS": "cpu",
            "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
        }
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "alexnet_jax.study", "check-distributed"],
                cwd=REPO,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    reports = []
    for process in processes:
        try:
            out, err = process.communicate(timeout=120)
        finally:
            if process.poll() is None:
                process.kill()
        assert process.returncode == 0, err[-2000:]
        reports.append(json.loads(next(line for line in out.splitlines() if line.startswith("{"))))
    assert sorted(r["process_index"] for r in reports) == [0, 1]
    for report in reports:
        assert report["process_count"] == 2 and report["global_devices"] == 4 and report["local_devices"] == 2
        assert report["ok"] and report["all_reduce"] == 1 * 2 + 2 * 2
