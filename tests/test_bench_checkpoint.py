"""experiments/bench_checkpoint.py times real saves and reports their figures (their values measure
the machine). In-process, on the tiny model: what is tested is the script's measurement, not the
backbone, and its `main` only reads the flags and prints these figures as one JSON line."""

import json
import sys
from pathlib import Path

import jax

from alexnet_jax import models

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "experiments" / "bench_checkpoint.py"
sys.path.insert(0, str(SCRIPT.parent))
import bench_checkpoint  # noqa: E402


def test_bench_checkpoint_prints_the_blocking_and_background_seconds(tmp_path):
    figures = bench_checkpoint.time_checkpoints("tiny", num_classes=4, repeats=1, directory=str(tmp_path))
    json.dumps(figures)  # what the script prints
    variables = models.init_variables("tiny", jax.random.key(0), num_classes=4)
    params = sum(leaf.size for leaf in jax.tree.leaves(variables["params"]))
    stats = sum(leaf.size for leaf in jax.tree.leaves(variables.get("batch_stats", {})))
    # float32: the best checkpoint holds the params and the BatchNorm statistics
    assert figures["model"] == "tiny" and figures["best_mb"] == round(4 * (params + stats) / 1e6, 4)
    assert figures["state_mb"] > 1.9 * figures["best_mb"]  # params and momentum, BatchNorm statistics once
    for kind in ("save", "best"):
        assert 0 <= figures[f"{kind}_blocking_s"] <= figures[f"{kind}_total_s"]
    assert list(tmp_path.iterdir()) == []  # nothing left behind
