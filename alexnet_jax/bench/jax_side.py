"""The JAX measurements: this project's training step as the trainer builds it, and its speed levers.

Every measurement times `train.make_steps` on the same resident synthetic images: end to
end with an input pipeline, compute only on a batch already in place, evaluation, and the
levers (steps per dispatch with lax.scan, K models per step with jax.vmap, donated state,
a host sync per evaluation batch). JAX and its backends are imported on first use.
"""

from __future__ import annotations

import importlib.util
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from alexnet_jax.bench.records import cpu_device_kind, record
from alexnet_jax.bench.settings import Settings, SettingsError
from alexnet_jax.bench.workload import NUM_CLASSES, paper_augment

PAPER_CONFIG = Path(__file__).resolve().parents[2] / "experiments" / "configs" / "paper.py"


def _block(tree):
    import jax

    return jax.block_until_ready(tree)


def jax_device_info(mesh) -> dict:
    """The device fields of a record, from the mesh's first device."""
    device = mesh.devices.flat[0]
    kind = cpu_device_kind() if device.platform == "cpu" else device.device_kind
    return {"device": f"{device.platform}:{device.id}", "device_kind": kind, "device_count": int(mesh.size)}


def default_scan_modes() -> tuple[str, ...]:
    """Both scan forms on accelerators; only unrolled on CPU, where a rolled loop of AlexNet
    steps runs far slower (docs/performance.md)."""
    import jax

    return ("unrolled",) if jax.default_backend() == "cpu" else ("rolled", "unrolled")


def measure_jax_matmul_peak(dtype: str, n: int = 2048, reps: int = 5) -> float:
    """Best TFLOP/s of an n x n matmul under XLA: what this device demonstrably does."""
    import jax
    import jax.numpy as jnp

    if jax.default_backend() != "cpu":
        n = max(n, 8192)  # small matmuls do not fill an accelerator
    a = jnp.asarray(np.random.default_rng(0).standard_normal((n, n)), dtype)
    f = jax.jit(lambda x, y: x @ y)
    _block(f(a, a))
    best = math.inf
    for _ in range(reps):
        t0 = time.perf_counter()
        _block(f(a, a))
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / best / 1e12


class JaxBench:
    """Builds this project's model, optimizer, pipeline and steps as the trainer does."""

    def __init__(self, settings: Settings, images: np.ndarray, labels: np.ndarray):
        import jax

        from alexnet_jax import train

        self.s = settings
        self.images, self.labels = images, labels
        devices = jax.devices()
        if settings.devices > len(devices):
            raise SettingsError(f"--devices={settings.devices} but JAX sees only {len(devices)} device(s)")
        self.mesh = train.make_mesh(devices[: settings.devices])
        if settings.batch_size % self.mesh.size:
            raise SettingsError(f"--batch_size={settings.batch_size} is not divisible by --devices={self.mesh.size}")
        self.info = jax_device_info(self.mesh)
        self.config = self._config()

    def _config(self):
        """The paper's config (experiments/configs/paper.py) at the benchmark's sizes: the trainer's optimizer."""
        spec = importlib.util.spec_from_file_location("paper_config", PAPER_CONFIG)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        config = module.get_config()
        config.batch_size = config.eval_batch_size = self.s.batch_size
        config.data.image_size = self.s.image_size
        config.augment.crop_size = self.s.crop_size
        return config

    def build(self, pipeline_name: str, dtype: str):
        import jax
        import jax.numpy as jnp

        from alexnet_jax import input_pipeline, train
        from alexnet_jax.models import AlexNet, init_params

        cfg = paper_augment(self.s.crop_size)
        pipeline = input_pipeline.make_pipeline(
            pipeline_name,
            self.images,
            self.labels,
            image_size=self.s.image_size,
            train_augment=cfg,
            eval_augment=cfg,
            mesh=self.mesh,
        )
        model = AlexNet(num_classes=NUM_CLASSES, dropout_rate=0.5, dtype=getattr(jnp, dtype))
        tx = train.make_optimizer(self.config)
        train_step, eval_step = train.make_steps(model, tx, pipeline, self.mesh, num_classes=NUM_CLASSES)
        # The unjitted step, for the scanned / vmapped / non-donating variants built from it.
        raw_step, _ = train.make_steps(model, tx, pipeline, self.mesh, num_classes=NUM_CLASSES, jit=False)
        params = init_params(jax.random.key(self.s.seed), NUM_CLASSES, self.s.crop_size)
        state = train.replicate(train.TrainState(jnp.zeros((), jnp.int32), params, tx.init(params)), self.mesh)
        return pipeline, train_step, eval_step, state, raw_step

    def order(self, length: int, salt: int) -> np.ndarray:
        rng = np.random.default_rng([self.s.seed, salt])
        reps = -(-length // len(self.labels))
        return np.concatenate([rng.permutation(len(self.labels)) for _ in range(reps)])[:length]

    def base(self, **fields) -> dict:
        defaults = dict(
            framework="jax",
            batch_size=self.s.batch_size,
            image_size=self.s.image_size,
            crop_size=self.s.crop_size,
            timed_steps=self.s.steps,
            models_per_step=1,
            steps_per_dispatch=1,
            **self.info,
        )
        return record(**{**defaults, **fields})

    # ---- the plain step, end to end and compute only, and evaluation
    def measure_step(self, pipeline_name: str, dtype: str) -> tuple[dict, tuple]:
        import jax

        from alexnet_jax import train

        s = self.s
        bs, warmup, steps = s.batch_size, s.warmup, s.steps
        pipeline, train_step, eval_step, state, raw_step = self.build(pipeline_name, dtype)
        key = jax.random.key(s.seed)
        batches = pipeline.batches(self.order((warmup + steps) * bs, 1), bs, train=True, seed=s.seed)

        # End to end: the trainer's loop (next batch, dispatch, accumulate on the device).
        t0 = time.perf_counter()
        first = None
        for step in range(warmup):
            state, metrics = train_step(state, pipeline.resident, next(batches), train.step_key(key, 1, 0, step))
            if first is None:
                _block(state)
                first = time.perf_counter() - t0
        _block(state)
        host_wait = 0.0
        t0 = time.perf_counter()
        totals = None
        for step in range(warmup, warmup + steps):
            w0 = time.perf_counter()
            batch = next(batches)
            host_wait += time.perf_counter() - w0
            state, metrics = train_step(state, pipeline.resident, batch, train.step_key(key, 1, 0, step))
            totals = metrics if totals is None else jax.tree_util.tree_map(lambda a, b: a + b, totals, metrics)
        jax.device_get(totals)
        _block(state)
        e2e = (time.perf_counter() - t0) / steps

        # Compute only: the same step on one batch already on the device.
        fixed = next(iter(pipeline.batches(self.order(bs, 2), bs, train=True, seed=s.seed + 1)))
        _block(fixed)
        state, _ = train_step(state, pipeline.resident, fixed, train.step_key(key, 1, 1, 0))
        _block(state)
        t0 = time.perf_counter()
        for step in range(steps):
            state, _ = train_step(state, pipeline.resident, fixed, train.step_key(key, 1, 1, step))
        _block(state)
        compute = (time.perf_counter() - t0) / steps

        eval_ips = self.measure_eval(pipeline, eval_step, state.params, sync_every_batch=False)
        rec = self.base(
            name=f"jax {pipeline_name} {dtype}",
            variant="step",
            dtype=dtype,
            pipeline=pipeline_name,
            train_images_per_s=round(bs / e2e, 3),
            eval_images_per_s=round(eval_ips, 3),
            step_time_s=round(e2e, 6),
            compute_time_s=round(compute, 6),
            input_wait_s=round(max(0.0, e2e - compute), 6),
            compile_s=round(first or 0.0, 3),
        )
        rec["notes"].append(f"host time blocked in next(batch): {1000 * host_wait / steps:.2f} ms/step")
        return rec, (pipeline, train_step, eval_step, state, raw_step)

    def measure_eval(self, pipeline, eval_step, params, *, sync_every_batch: bool) -> float:
        """Evaluation images/s (the trainer's way: totals stay on the device until the end),
        or with a host round trip after every batch."""
        import jax

        from alexnet_jax import train

        s = self.s
        bs, warm, n_batches = s.batch_size, max(1, s.warmup), max(2, s.steps)
        key = jax.random.key(s.seed + 2)
        batches = pipeline.batches(self.order((warm + n_batches) * bs, 3), bs, train=False, seed=s.seed + 3)

        def run(count, offset):
            totals = None
            for step in range(count):
                out = eval_step(params, pipeline.resident, next(batches), train.step_key(key, 2, 0, offset + step))
                if sync_every_batch:
                    out = jax.device_get(out)
                    totals = out if totals is None else jax.tree_util.tree_map(np.add, totals, out)
                else:
                    out = dict(out)
                    out.pop("predictions")
                    totals = out if totals is None else jax.tree_util.tree_map(lambda a, b: a + b, totals, out)
            return jax.device_get(totals)

        run(warm, 0)
        t0 = time.perf_counter()
        run(n_batches, warm)
        return bs * n_batches / (time.perf_counter() - t0)

    # ---- levers, on the on_device pipeline
    @staticmethod
    def _copy(tree):
        """A private copy: the variants donate their input state, the shared one must survive."""
        import jax

        return jax.tree_util.tree_map(lambda x: x.copy(), tree)

    def _index_batches(self, pipeline, count: int, salt: int) -> list[dict]:
        from alexnet_jax import input_pipeline

        bs = self.s.batch_size
        pairs = input_pipeline.epoch_batches(self.order(count * bs, salt), bs)
        return [{"indices": idx, "labels": pipeline.labels[idx], "mask": mask} for idx, mask in pairs]

    def _stack(self, batches: list[dict]):
        import jax
        from jax.sharding import NamedSharding
        from jax.sharding import PartitionSpec as P

        stacked = {k: np.stack([b[k] for b in batches]) for k in batches[0]}
        return jax.device_put(stacked, NamedSharding(self.mesh, P(None, "data")))

    def _time(self, fn: Callable[[int], Any], steps: int) -> tuple[float, float]:
        """(seconds of the first call incl. compilation, steady seconds per call)."""
        t0 = time.perf_counter()
        _block(fn(0))
        first = time.perf_counter() - t0
        for i in range(1, 1 + max(0, self.s.warmup - 1)):
            _block(fn(i))
        t0 = time.perf_counter()
        for i in range(steps):
            out = fn(100 + i)
        _block(out)
        return first, (time.perf_counter() - t0) / steps

    def measure_scan(self, built, dtype: str, length: int, unroll: bool) -> dict:
        """`length` steps per dispatch with lax.scan, input included (index batches).

        Rolled, the steps form an XLA while loop; unrolled, one straight-line program. XLA:CPU
        runs convolutions inside a while loop far slower than outside one, hence both modes.
        """
        import jax

        from alexnet_jax import train

        pipeline, _, _, state, raw = built
        replicated = jax.sharding.NamedSharding(self.mesh, jax.sharding.PartitionSpec())

        def many(state, resident, batches, rngs):
            return jax.lax.scan(lambda st, x: raw(st, resident, x[0], x[1]), state, (batches, rngs), unroll=unroll)

        many = jax.jit(many, donate_argnums=(0,), out_shardings=(replicated, replicated))
        key = jax.random.key(self.s.seed + 5)
        dispatches = max(1, -(-self.s.steps // length))
        groups = [self._index_batches(pipeline, length, 10 + g) for g in range(2 + dispatches)]
        holder = {"state": self._copy(state)}

        def call(i):
            stacked = self._stack(groups[i % len(groups)])
            rngs = jax.vmap(lambda s: train.step_key(key, 1, 0, s))(np.arange(length) + i * length)
            holder["state"], metrics = many(holder["state"], pipeline.resident, stacked, rngs)
            return holder["state"]

        first, per_call = self._time(call, dispatches)
        bs = self.s.batch_size
        mode = "unrolled" if unroll else "rolled"
        return self.base(
            name=f"jax on_device {dtype} scan x{length} {mode}",
            variant=f"scan{length}_{mode}",
            dtype=dtype,
            pipeline="on_device",
            steps_per_dispatch=length,
            timed_steps=dispatches * length,
            train_images_per_s=round(length * bs / per_call, 3),
            step_time_s=round(per_call / length, 6),
            compile_s=round(first, 3),
        )

    def measure_vmap(self, built, dtype: str, k: int) -> dict:
        """K models in one step: jax.vmap over stacked train states, each with its own batch."""
        import jax
        import jax.numpy as jnp

        from alexnet_jax import train

        pipeline, _, _, state, raw = built
        replicated = jax.sharding.NamedSharding(self.mesh, jax.sharding.PartitionSpec())
        stacked_state = jax.device_put(jax.tree_util.tree_map(lambda x: jnp.stack([x] * k), state), replicated)
        step = jax.jit(
            jax.vmap(raw, in_axes=(0, None, 0, 0)), donate_argnums=(0,), out_shardings=(replicated, replicated)
        )
        key = jax.random.key(self.s.seed + 6)
        groups = [self._stack(self._index_batches(pipeline, k, 20 + g)) for g in range(4)]
        holder = {"state": stacked_state}

        def call(i):
            rngs = jax.vmap(lambda m: train.step_key(key, 1, m, i))(np.arange(k))
            holder["state"], _ = step(holder["state"], pipeline.resident, groups[i % len(groups)], rngs)
            return holder["state"]

        first, per_call = self._time(call, self.s.steps)
        bs = self.s.batch_size
        rec = self.base(
            name=f"jax on_device {dtype} vmap K={k}",
            variant=f"vmap{k}",
            dtype=dtype,
            pipeline="on_device",
            models_per_step=k,
            train_images_per_s=round(k * bs / per_call, 3),
            step_time_s=round(per_call, 6),
            compute_time_s=round(per_call, 6),
            compile_s=round(first, 3),
        )
        rec["notes"].append(f"images/s counts all {k} models; per model {bs / per_call:.1f}")
        return rec

    def measure_donation(self, built, dtype: str) -> list[dict]:
        """The same step with and without donating the train state (compute only)."""
        import jax

        from alexnet_jax import train

        pipeline, train_step, _, state, raw = built
        replicated = jax.sharding.NamedSharding(self.mesh, jax.sharding.PartitionSpec())
        key = jax.random.key(self.s.seed + 7)
        fixed = jax.device_put(
            self._index_batches(pipeline, 1, 30)[0],
            jax.sharding.NamedSharding(self.mesh, jax.sharding.PartitionSpec("data")),
        )
        out = []
        for donate in (True, False):
            # Donated: the trainer's own jitted step (already compiled); not donated: a re-jit of it.
            step = train_step if donate else jax.jit(raw, out_shardings=(replicated, replicated))
            holder = {"state": self._copy(state)}

            def call(i, step=step, holder=holder):
                holder["state"], _ = step(holder["state"], pipeline.resident, fixed, train.step_key(key, 1, 0, i))
                return holder["state"]

            first, per_call = self._time(call, self.s.steps)
            bs = self.s.batch_size
            out.append(
                self.base(
                    name=f"jax on_device {dtype} {'donated' if donate else 'not donated'}",
                    variant="donate" if donate else "no_donate",
                    dtype=dtype,
                    pipeline="on_device",
                    train_images_per_s=round(bs / per_call, 3),
                    step_time_s=round(per_call, 6),
                    compute_time_s=round(per_call, 6),
                    compile_s=round(first, 3),
                )
            )
        return out

    def measure_eval_sync(self, built, dtype: str) -> dict:
        pipeline, _, eval_step, state, _ = built
        ips = self.measure_eval(pipeline, eval_step, state.params, sync_every_batch=True)
        rec = self.base(
            name=f"jax on_device {dtype} eval, host sync per batch",
            variant="eval_sync",
            dtype=dtype,
            pipeline="on_device",
            eval_images_per_s=round(ips, 3),
        )
        rec["notes"].append("compare eval_images_per_s with the plain step's (accumulated on the device)")
        return rec
