"""experiments/bench_checkpoint.py runs and prints its figures (their values measure the machine)."""

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_bench_checkpoint_prints_the_blocking_and_background_seconds(tmp_path):
    done = subprocess.run(
        [sys.executable, "experiments/bench_checkpoint.py", "--model=resnet18", "--repeats=1", f"--dir={tmp_path}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    # ResNet-18, 4 classes: 11,178,564 parameters, with SGD momentum twice that in the state
    assert figures["model"] == "resnet18" and abs(figures["best_mb"] - 4 * 11_178_564 / 1e6) < 0.2
    assert figures["state_mb"] > 1.9 * figures["best_mb"]  # params and momentum, BatchNorm statistics once
    for kind in ("save", "best"):
        assert 0 <= figures[f"{kind}_blocking_s"] <= figures[f"{kind}_total_s"]
    assert list(tmp_path.iterdir()) == []  # nothing left behind
