"""The SLURM scripts: the commands they build (everywhere, with stand-ins for sbatch and
python), and a real single-machine cluster run (only where SLURM is installed).
"""

import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SLURM = REPO / "experiments" / "slurm"
SCRIPTS = ["train_array.sbatch", "analyze.sbatch", "submit.sh", "local_cluster_test.sh"]


def executable(path: Path, body: str) -> Path:
    path.write_text("#!/usr/bin/env bash\n" + textwrap.dedent(body))
    path.chmod(0o755)
    return path


@pytest.mark.parametrize("name", SCRIPTS)
def test_scripts_parse_and_are_executable(name):
    path = SLURM / name
    assert os.access(path, os.X_OK), f"{path} is not executable"
    subprocess.run(["bash", "-n", str(path)], check=True)


def test_array_task_runs_its_run_index(tmp_path):
    python = executable(tmp_path / "python", 'printf "%s\\n" "$@" > "$ARGS_OUT"\n')
    env = {
        **os.environ,
        "SLURM_ARRAY_TASK_ID": "7",
        "SLURM_ARRAY_JOB_ID": "123",
        "ALEXNET_JAX_WORKDIR": "runs/x",
        "ALEXNET_JAX_DATA_DIR": "/data/na",
        "ALEXNET_JAX_ARMS": "scratch",
        "ALEXNET_JAX_PYTHON": str(python),
        "ALEXNET_JAX_REPO": str(REPO),
        "ARGS_OUT": str(tmp_path / "args"),
    }
    done = subprocess.run(
        [str(SLURM / "train_array.sbatch"), "--config.model.dtype=bfloat16"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    args = (tmp_path / "args").read_text().split("\n")
    assert args[:3] == ["-m", "alexnet_jax.train", "--config=experiments/configs/paper.py"]
    for expected in (
        "--workdir=runs/x",
        "--run_index=7",
        "--arms=scratch",
        "--data_dir=/data/na",
        "--config.model.dtype=bfloat16",
    ):
        assert expected in args
    assert "job 123_7" in done.stdout

    env.pop("SLURM_ARRAY_TASK_ID")
    missing = subprocess.run([str(SLURM / "train_array.sbatch")], env=env, capture_output=True, text=True, timeout=60)
    assert missing.returncode != 0 and "--array" in missing.stderr


def test_submit_chains_the_analysis_after_the_array(tmp_path):
    calls = tmp_path / "calls"
    bindir = tmp_path / "bin"
    bindir.mkdir()
    executable(
        bindir / "sbatch",
        f"""
        echo "$*" >> {calls}
        if [[ "$*" == *analyze.sbatch* ]]; then echo 4242; else echo "4241;cluster"; fi
    """,
    )
    env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}"}
    workdir = tmp_path / "study"
    done = subprocess.run(
        [
            str(SLURM / "submit.sh"),
            f"--workdir={workdir}",
            "--data_dir=/data/na",
            "--runs=0-99%8",
            "--arms=scratch",
            "--sbatch=--gres=gpu:1 --time=12:00:00",
            "--",
            "--config.model.dtype=bfloat16",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "training array: job 4241" in done.stdout and "analysis: job 4242" in done.stdout
    array_call, analysis_call = calls.read_text().splitlines()
    assert "--array=0-99%8" in array_call and "--gres=gpu:1" in array_call and "--time=12:00:00" in array_call
    assert array_call.rstrip().endswith("train_array.sbatch --config.model.dtype=bfloat16")
    assert f"ALEXNET_JAX_WORKDIR={workdir}" in array_call and "ALEXNET_JAX_ARMS=scratch" in array_call
    assert "--dependency=afterok:4241" in analysis_call and "analyze.sbatch" in analysis_call
    assert "--gres" not in analysis_call and "--time=12:00:00" in analysis_call
    assert (workdir / "logs").is_dir()

    no_workdir = subprocess.run([str(SLURM / "submit.sh")], env=env, capture_output=True, text=True, timeout=60)
    assert no_workdir.returncode == 2 and "--workdir" in no_workdir.stderr


def _slurm_missing() -> str | None:
    tools = ["sbatch", "squeue", "scontrol", "sinfo", "slurmctld", "slurmd", "munged"]
    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    missing = [t for t in tools if shutil.which(t, path=path) is None]
    if missing:
        return f"SLURM is not installed here (missing {', '.join(missing)}); apt-get install -y slurm-wlm munge"
    return None


@pytest.mark.slow
@pytest.mark.skipif(_slurm_missing() is not None, reason=str(_slurm_missing()))
def test_local_cluster_trains_an_array_and_runs_the_analysis():
    """munged + slurmctld + slurmd on this machine, a 2-task array of tiny runs, the analysis after it."""
    done = subprocess.run(
        [str(SLURM / "local_cluster_test.sh"), "--runs=0-1", "--timeout=480"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode == 77:
        pytest.skip(done.stderr.strip())
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "PASSED" in done.stdout
    assert "array task 0: COMPLETED:0:0" in done.stdout and "array task 1: COMPLETED:0:0" in done.stdout
