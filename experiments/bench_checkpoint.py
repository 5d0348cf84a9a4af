"""Time one checkpoint of a model's train state: what the step loop waits for, and the write behind it.

    python experiments/bench_checkpoint.py                       # the paper's 4-class AlexNet
    python experiments/bench_checkpoint.py --model=resnet50 --dir=/scratch/me

The trainer's `Checkpoints.save` dispatches a device copy of the state and queues the write
on a background thread; `save_best` queues `best/`. This prints the median over `--repeats`
saves (the first, which warms up, is left out) of the blocking part and of the whole write,
so that `config.checkpoint_every_seconds` can be chosen from figures (docs/performance.md).
The files go to a temporary directory under `--dir`, deleted at the end.
"""

import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from absl import app, flags


def define_flags() -> None:
    flags.DEFINE_string("model", "alexnet", "registered model (alexnet_jax.models)")
    flags.DEFINE_integer("num_classes", 4, "head size (the paper's 4 classes)")
    flags.DEFINE_integer("repeats", 5, "saves to time")
    flags.DEFINE_string("dir", None, "where to write (default: the system's temporary directory)")


def time_checkpoints(model: str, num_classes: int = 4, repeats: int = 5, directory: str | None = None) -> dict:
    """The figures `main` prints: sizes in MB and median seconds of each save, blocking and in all."""
    import jax
    import optax

    from alexnet_jax import models, toolbox
    from alexnet_jax.training.rundir import Checkpoints
    from alexnet_jax.training.steps import init_state

    variables = models.init_variables(model, jax.random.key(0), num_classes=num_classes)
    state = init_state(variables["params"], variables.get("batch_stats", {}), optax.sgd(0.01, momentum=0.9), None)
    jax.block_until_ready(state)
    timings = {"save_blocking": [], "save_total": [], "best_blocking": [], "best_total": []}
    with tempfile.TemporaryDirectory(prefix="alexnet_jax_bench_checkpoint_", dir=directory) as tmp:
        writer = toolbox.BackgroundWriter()
        checkpoints = Checkpoints(Path(tmp) / "arm", False, writer)
        meta = {"global_step": 0, "history": {"test_acc": [0.5] * 400}}
        for repeat in range(repeats + 1):
            meta["global_step"] = repeat + 1
            for kind, save in (
                ("save", lambda: checkpoints.save(state, meta)),
                ("best", lambda r=repeat: checkpoints.save_best(variables, {"epoch": r}, model)),
            ):
                t0 = time.perf_counter()
                save()
                t1 = time.perf_counter()
                writer.flush()
                t2 = time.perf_counter()
                if repeat:
                    timings[f"{kind}_blocking"].append(t1 - t0)
                    timings[f"{kind}_total"].append(t2 - t0)
        checkpoints.close()
        writer.close()
    state_mb = sum(leaf.nbytes for leaf in jax.tree.leaves(state)) / 1e6
    best_mb = sum(leaf.nbytes for leaf in jax.tree.leaves(variables)) / 1e6
    return {
        "model": model,
        "device": jax.devices()[0].device_kind,
        "state_mb": round(state_mb, 4),
        "best_mb": round(best_mb, 4),
        **{f"{name}_s": round(statistics.median(values), 4) for name, values in timings.items()},
        "load_average": os.getloadavg(),
    }


def main(argv):
    del argv
    f = flags.FLAGS
    print(json.dumps(time_checkpoints(f.model, f.num_classes, f.repeats, f.dir)))


if __name__ == "__main__":
    define_flags()
    app.run(main)
