"""Every command answers bad input the same way: one `error:` line naming what to fix, the
documented exit code, and no traceback. The README's table is the one in alexnet_jax.cli."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from alexnet_jax import cli

REPO = Path(__file__).resolve().parent.parent

CASES = [
    # (command line after `python -m`, expected exit code, text the error must contain)
    (["alexnet_jax.train", "--workdir=W", "--run_index=0", "--runs=0-1"], cli.EXIT_BAD_INPUT, "exactly one of"),
    (["alexnet_jax.train", "--workdir=W", "--runs=3-1"], cli.EXIT_BAD_INPUT, "runs backwards"),
    (["alexnet_jax.train", "--workdir=W", "--run_index=0", "--arms=imagenet"], cli.EXIT_BAD_INPUT, "unknown arm"),
    (["alexnet_jax.train", "--workdir=W", "--run_index=0", "--data_dir=nowhere"], cli.EXIT_BAD_INPUT, "nowhere"),
    (["alexnet_jax.study", "--workdir=W", "--runs=x", "--dry_run"], cli.EXIT_BAD_INPUT, "cannot read 'x'"),
    (["alexnet_jax.analyze", "--workdir=W"], cli.EXIT_BAD_INPUT, "--workdir W does not exist"),
    (["alexnet_jax.predict", "--checkpoint=W", "--images=W"], cli.EXIT_BAD_INPUT, "no trained params"),
    (["alexnet_jax.convert", "--torch_checkpoint=missing.pth", "--output=out"], cli.EXIT_BAD_INPUT, "no such file"),
    (["alexnet_jax.data", "frobnicate"], cli.EXIT_BAD_INPUT, "give one command"),
]


@pytest.mark.parametrize("argv, code, text", CASES, ids=[" ".join(c[0][:2]) for c in CASES])
def test_bad_input_gets_one_clear_line_and_the_documented_code(tmp_path, argv, code, text):
    done = subprocess.run(
        [sys.executable, "-m", *argv],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu", "HOME": str(tmp_path)},
    )
    assert done.returncode == code, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert errors and text in done.stderr, done.stderr[-2000:]


def test_the_readme_documents_exactly_these_exit_codes():
    readme = (REPO / "README.md").read_text()
    table = dict(re.findall(r"^\| `(\d+)` \| (.+?) \|$", readme, re.MULTILINE))
    assert {int(k): v for k, v in table.items()} == cli.EXIT_CODES
    assert len(set(cli.EXIT_CODES)) == len(cli.EXIT_CODES) == 6
