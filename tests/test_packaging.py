"""A non-editable install works on its own: the wheel carries the configs, and the trainer's
default config, the console scripts and `python -m` all run from it, far from the checkout."""

import configparser
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from alexnet_jax import cli, paper
from alexnet_jax.data.prepared import write_prepared

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The project built as a wheel from its tracked files and installed into a bare directory."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    for name in tracked.splitlines():
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(root / "dist"), "."],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    (wheel,) = (root / "dist").glob("alexnet_jax-*.whl")
    site = root / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-compile", "--target", str(site), str(wheel)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    return wheel, site


def _run(site: Path, cwd: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(site), "HOME": str(cwd), "JAX_PLATFORMS": "cpu"}
    cache = os.environ.get("JAX_COMPILATION_CACHE_DIR")  # the suite's compiled steps (conftest), not the checkout
    if cache:
        env["JAX_COMPILATION_CACHE_DIR"] = cache
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_the_wheel_carries_the_configs_and_the_console_scripts(installed):
    wheel, _ = installed
    names = zipfile.ZipFile(wheel).namelist()
    assert {"alexnet_jax/configs/paper.py", "alexnet_jax/configs/quick.py"} <= set(names)
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    parser = configparser.ConfigParser()
    parser.read_string(zipfile.ZipFile(wheel).read(entry_points).decode())
    scripts = dict(parser["console_scripts"])
    assert scripts["alexnet-jax-train"] == "alexnet_jax.train:run"
    assert {"alexnet-jax-study", "alexnet-jax-analyze", "alexnet-jax-predict", "alexnet-jax-convert"} <= set(scripts)
    assert scripts["alexnet-jax-calibrate"] == "alexnet_jax.calibration.__main__:run"
    assert scripts["alexnet-jax-neighbours"] == "alexnet_jax.predict.neighbours:run"
    assert not any(n.startswith(("tests/", "experiments/")) for n in names)


@pytest.mark.slow  # trains in a real process
def test_train_runs_from_the_installed_package_with_its_default_config(installed, tmp_path):
    _, site = installed
    data = tmp_path / "data"
    rng = np.random.default_rng(0)
    write_prepared(
        data,
        rng.integers(0, 256, (20, 256, 256, 3), dtype=np.uint8),  # the prepared format's 256 px
        np.arange(20) % 4,
        name="tiny-random",
        source="test: uniform random pixels",
        class_names=paper.CLASS_NAMES,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = _run(site, elsewhere, "-c", "import alexnet_jax.configs as c; print(c.path('quick'))")
    assert where.returncode == 0 and where.stdout.strip().startswith(str(site)), where.stdout + where.stderr
    done = _run(
        site,
        elsewhere,
        "-m",
        "alexnet_jax.train",
        f"--workdir={tmp_path / 'runs'}",
        f"--data_dir={data}",
        "--run_index=0",
        "--arms=scratch",
        "--config.epochs.scratch=1",
        "--config.batch_size=8",
        "--config.eval_batch_size=8",
        "--config.model.name=tiny",  # what is tested is the installed package, not the backbone
        "--config.data.image_size=40",
        "--config.augment.crop_size=32",
    )
    assert done.returncode == cli.EXIT_OK, done.stdout[-3000:] + done.stderr[-3000:]
    assert (tmp_path / "runs" / "run_000" / "results.json").is_file()
    assert (tmp_path / "runs" / "run_000" / "scratch" / "best" / "metadata.json").is_file()
