"""One run over the devices of several processes (hosts): `python -m alexnet_jax.study train|check-distributed`.

Every process calls `jax.distributed.initialize()` before anything touches a device; the
trainer's mesh then spans `jax.devices()` of all of them (experiments/slurm/README.md).
"""

from __future__ import annotations

import json
import os
import sys

from absl import app


def initialize_distributed() -> None:
    """`jax.distributed.initialize()` from the environment, before anything touches a device.

    Under SLURM (srun, one task per host) JAX reads coordinator, process count and index
    itself. Elsewhere set JAX_COORDINATOR_ADDRESS=host:port, JAX_NUM_PROCESSES and
    JAX_PROCESS_ID on every process. CPU processes talk through gloo.
    """
    import jax

    kwargs = {}
    if os.environ.get("JAX_COORDINATOR_ADDRESS"):
        try:
            kwargs = dict(
                coordinator_address=os.environ["JAX_COORDINATOR_ADDRESS"],
                num_processes=int(os.environ["JAX_NUM_PROCESSES"]),
                process_id=int(os.environ["JAX_PROCESS_ID"]),
            )
        except (KeyError, ValueError) as error:
            raise SystemExit(
                f"error: JAX_COORDINATOR_ADDRESS is set, so JAX_NUM_PROCESSES and JAX_PROCESS_ID must be "
                f"integers too ({error})"
            ) from None
    if os.environ.get("JAX_PLATFORMS", "").startswith("cpu"):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(**kwargs)
    print(
        f"[study] process {jax.process_index()}/{jax.process_count()}: {jax.local_device_count()} local of "
        f"{jax.device_count()} devices",
        flush=True,
    )


def check_distributed() -> int:
    """`python -m alexnet_jax.study check-distributed`: initialise, all-reduce across every device, report.

    Run it with the same srun/environment as a multi-host job to test the set-up in seconds.
    """
    initialize_distributed()
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    mesh = jax.make_mesh((jax.device_count(),), ("data",), devices=jax.devices())
    local = np.full((jax.local_device_count(),), jax.process_index() + 1, np.float32)
    x = jax.make_array_from_process_local_data(NamedSharding(mesh, P("data")), local)
    total = jax.jit(jnp.sum, out_shardings=NamedSharding(mesh, P()))(x)
    expected = sum((p + 1) * n for p, n in _local_counts().items())
    print(
        json.dumps(
            {
                "process_index": jax.process_index(),
                "process_count": jax.process_count(),
                "local_devices": jax.local_device_count(),
                "global_devices": jax.device_count(),
                "all_reduce": float(total),
                "expected": float(expected),
                "ok": float(total) == float(expected),
            }
        ),
        flush=True,
    )
    return 0 if float(total) == float(expected) else 1


def _local_counts() -> dict:
    import jax

    counts: dict = {}
    for device in jax.devices():
        counts[device.process_index] = counts.get(device.process_index, 0) + 1
    return counts


def distributed_train(argv: list[str]) -> None:
    """`python -m alexnet_jax.study train FLAGS`: the trainer's CLI after jax.distributed.initialize()."""
    from alexnet_jax import cli, train

    cli.exit_on_bad_config(argv, train.DEFAULT_CONFIG)  # before any process waits for the others
    initialize_distributed()
    sys.argv = [f"{sys.argv[0]} train", *argv]
    train.define_flags()
    app.run(lambda args: sys.exit(train.main(args)))
