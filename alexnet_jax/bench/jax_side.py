"""The JAX measurements: this project's training step as the trainer builds it, and its speed levers.

Every measurement times the trainer's own steps (`alexnet_jax.training.steps.build_steps`) on the same
resident synthetic images: end to end with an input pipeline, compute only on a batch already
in place, evaluation, and the levers (steps per dispatch with lax.scan, K models per step with
jax.vmap, donated state, a host sync per evaluation batch). JAX and its backends are imported
on first use.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from alexnet_jax.bench.records import cpu_device_kind, record
from alexnet_jax.bench.settings import Settings
from alexnet_jax.bench.workload import NUM_CLASSES, paper_augment
from alexnet_jax.errors import SettingsError


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


def model_options(settings: Settings) -> tuple[dict, list[str]]:
    """The registry's defaults for --model, but --conv_impl and --depthwise; and a note of how the
    convolutions that have a CPU formulation (models.layers) are computed here."""
    from alexnet_jax.models import get_model, get_spec, layers

    options = get_spec(settings.model).options
    chosen, notes = {}, []
    if "conv_impl" in options:
        chosen["conv_impl"] = settings.conv_impl
        notes.append(f"conv_impl={settings.conv_impl}: {layers.resolved_formulation(settings.conv_impl)} convolutions")
        model = get_model(settings.model, NUM_CLASSES, conv_impl=settings.conv_impl)
        for program, xla in layers.cpu_compiler_options_by_program(model).items():
            notes.append(f"{program} program compiled with {', '.join(f'{k}={v}' for k, v in xla.items())}")
    if "depthwise" not in options:
        return chosen, notes
    impls = layers.layer_impls(settings.conv_impl)
    depthwise = layers.resolve_depthwise(impls["depthwise"] if settings.depthwise == "auto" else settings.depthwise)
    note = f"depthwise convolutions: {depthwise}; 1x1 convolutions: {layers.resolve_pointwise(impls['pointwise'])}"
    return {**chosen, "depthwise": settings.depthwise}, [*notes, note]


class JaxBench:
    """Builds the model (--model), optimizer, pipeline and steps as the trainer does."""

    def __init__(self, settings: Settings, images: np.ndarray, labels: np.ndarray):
        import jax

        from alexnet_jax.inputs import pipeline as input_pipeline
        from alexnet_jax.training import steps

        self.s = settings
        self.images, self.labels = images, labels
        devices = jax.devices()
        if settings.devices > len(devices):
            raise SettingsError(f"--devices={settings.devices} but JAX sees only {len(devices)} device(s)")
        self.mesh = steps.make_mesh(devices[: settings.devices])
        try:
            input_pipeline.check_batch_size(settings.batch_size, self.mesh.size, "--batch_size")
        except ValueError as error:
            raise SettingsError(f"{error} (--devices={self.mesh.size})") from None
        self.info = jax_device_info(self.mesh)
        self.model_options, self.notes = model_options(settings)
        self.config = self._config()

    def _config(self):
        """The paper's config at the benchmark's sizes: the trainer's optimizer."""
        from alexnet_jax.configs import paper

        config = paper.get_config()
        config.batch_size = config.eval_batch_size = self.s.batch_size
        config.data.image_size = self.s.image_size
        config.augment.crop_size = self.s.crop_size
        return config

    def build(self, pipeline_name: str, dtype: str):
        import jax
        import jax.numpy as jnp

        from alexnet_jax.inputs import pipeline as input_pipeline
        from alexnet_jax.models import get_model, get_spec, init_variables, layers
        from alexnet_jax.training import steps

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
        model = get_model(self.s.model, NUM_CLASSES, dtype=getattr(jnp, dtype), **self.model_options)
        batch_norm = get_spec(self.s.model).batch_norm
        optim = tuple(sorted((k, self.config.optim[k]) for k in ("learning_rate", "momentum", "weight_decay")))
        key = steps.StepKey(model, optim, None, None, batch_norm, pipeline.signature, self.mesh, NUM_CLASSES, 1)
        built = steps.build_steps(key, pipeline)  # the trainer's jitted steps, from its cache
        # The unjitted step, for the scanned / vmapped / non-donating variants built from it.
        raw_step, _ = steps.make_steps(model, built.tx, pipeline, num_classes=NUM_CLASSES, has_batch_stats=batch_norm)
        variables = init_variables(self.s.model, jax.random.key(self.s.seed), NUM_CLASSES, self.s.crop_size)
        state = steps.init_state(variables["params"], variables.get("batch_stats", {}), built.tx, None)
        state = steps.replicate(state, self.mesh)
        self.train_compiler_options = layers.cpu_compiler_options(model, "train")  # for the re-jitted variants
        return pipeline, built.train, built.eval, state, raw_step

    def zero_totals(self, train: bool = True):
        """An epoch's zero metrics, placed as the steps return them (replicated): uncommitted
        zeros would give the first call another signature, and the second call a compilation."""
        from alexnet_jax.training import steps

        totals = steps.zero_train_totals() if train else steps.zero_eval_totals(NUM_CLASSES)
        return steps.replicate(totals, self.mesh)

    def order(self, length: int, salt: int) -> np.ndarray:
        rng = np.random.default_rng([self.s.seed, salt])
        reps = -(-length // len(self.labels))
        return np.concatenate([rng.permutation(len(self.labels)) for _ in range(reps)])[:length]

    def base(self, **fields) -> dict:
        defaults = dict(
            framework="jax",
            model=self.s.model,
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

        from alexnet_jax import seeds

        s = self.s
        bs, warmup, steps = s.batch_size, s.warmup, s.steps
        pipeline, train_step, eval_step, state, raw_step = self.build(pipeline_name, dtype)
        key = jax.random.key(s.seed)
        batches = pipeline.batches(self.order((warmup + steps) * bs, 1), bs, train=True, seed=s.seed)

        # End to end: the trainer's loop (next batch, dispatch; the metrics accumulate on the device).
        t0 = time.perf_counter()
        first = None
        totals = self.zero_totals()
        for step in range(warmup):
            key_step = seeds.step_key(key, seeds.TRAIN, 0, step)
            state, totals = train_step(state, pipeline.resident, next(batches), key_step, totals, step)
            if first is None:
                _block(state)
                first = time.perf_counter() - t0
        _block(state)
        host_wait = 0.0
        t0 = time.perf_counter()
        for step in range(warmup, warmup + steps):
            w0 = time.perf_counter()
            batch = next(batches)
            host_wait += time.perf_counter() - w0
            key_step = seeds.step_key(key, seeds.TRAIN, 0, step)
            state, totals = train_step(state, pipeline.resident, batch, key_step, totals, step)
        jax.device_get(totals)
        _block(state)
        e2e = (time.perf_counter() - t0) / steps

        # Compute only: the same step on one batch already on the device.
        fixed = next(iter(pipeline.batches(self.order(bs, 2), bs, train=True, seed=s.seed + 1)))
        _block(fixed)
        state, totals = train_step(state, pipeline.resident, fixed, seeds.step_key(key, seeds.TRAIN, 1, 0), totals, 0)
        _block(state)
        t0 = time.perf_counter()
        for step in range(steps):
            key_step = seeds.step_key(key, seeds.TRAIN, 1, step)
            state, totals = train_step(state, pipeline.resident, fixed, key_step, totals, step)
        _block(state)
        compute = (time.perf_counter() - t0) / steps

        eval_ips = self.measure_eval(pipeline, eval_step, state, sync_every_batch=False)
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
        rec["notes"] += self.notes
        return rec, (pipeline, train_step, eval_step, state, raw_step)

    def measure_eval(self, pipeline, eval_step, state, *, sync_every_batch: bool) -> float:
        """Evaluation images/s (the trainer's way: totals stay on the device until the end),
        or with a host round trip after every batch."""
        import jax

        from alexnet_jax import seeds

        s = self.s
        bs, warm, n_batches = s.batch_size, max(1, s.warmup), max(2, s.steps)
        key = jax.random.key(s.seed + 2)
        batches = pipeline.batches(self.order((warm + n_batches) * bs, 3), bs, train=False, seed=s.seed + 3)

        def run(count, offset):
            totals = self.zero_totals(train=False)
            for step in range(count):
                key_step = seeds.step_key(key, seeds.TEST, 0, offset + step)
                totals, predictions = eval_step(state, pipeline.resident, next(batches), key_step, totals)
                if sync_every_batch:  # the old way: read every batch's results back at once
                    jax.device_get((totals, predictions))
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
        from alexnet_jax.inputs import pipeline as input_pipeline

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

        from alexnet_jax import seeds

        pipeline, _, _, state, raw = built
        replicated = jax.sharding.NamedSharding(self.mesh, jax.sharding.PartitionSpec())

        def many(carry, resident, batches, rngs):
            def one(carry, x):
                return raw(carry[0], resident, x[0], x[1], carry[1], 0), None

            return jax.lax.scan(one, carry, (batches, rngs), unroll=unroll)[0]

        many = jax.jit(
            many, donate_argnums=(0,), out_shardings=replicated, compiler_options=self.train_compiler_options
        )
        key = jax.random.key(self.s.seed + 5)
        dispatches = max(1, -(-self.s.steps // length))
        groups = [self._index_batches(pipeline, length, 10 + g) for g in range(2 + dispatches)]
        holder = {"carry": (self._copy(state), self.zero_totals())}

        def call(i):
            stacked = self._stack(groups[i % len(groups)])
            rngs = jax.vmap(lambda s: seeds.step_key(key, seeds.TRAIN, 0, s))(np.arange(length) + i * length)
            holder["carry"] = many(holder["carry"], pipeline.resident, stacked, rngs)
            return holder["carry"]

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

        from alexnet_jax import seeds
        from alexnet_jax.training.steps import zero_train_totals

        pipeline, _, _, state, raw = built
        replicated = jax.sharding.NamedSharding(self.mesh, jax.sharding.PartitionSpec())
        stacked = jax.device_put(jax.tree.map(lambda x: jnp.stack([x] * k), (state, zero_train_totals())), replicated)
        step = jax.jit(
            jax.vmap(raw, in_axes=(0, None, 0, 0, 0, None)),
            donate_argnums=(0, 4),
            out_shardings=replicated,
            compiler_options=self.train_compiler_options,
        )
        key = jax.random.key(self.s.seed + 6)
        groups = [self._stack(self._index_batches(pipeline, k, 20 + g)) for g in range(4)]
        holder = {"carry": stacked}

        def call(i):
            rngs = jax.vmap(lambda m: seeds.step_key(key, seeds.TRAIN, m, i))(np.arange(k))
            state, totals = holder["carry"]
            holder["carry"] = step(state, pipeline.resident, groups[i % len(groups)], rngs, totals, i)
            return holder["carry"]

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

        from alexnet_jax import seeds

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
            step = (
                train_step
                if donate
                else jax.jit(raw, out_shardings=(replicated, replicated), compiler_options=self.train_compiler_options)
            )
            holder = {"carry": (self._copy(state), self.zero_totals())}

            def call(i, step=step, holder=holder):
                state, totals = holder["carry"]
                key_step = seeds.step_key(key, seeds.TRAIN, 0, i)
                holder["carry"] = step(state, pipeline.resident, fixed, key_step, totals, i)
                return holder["carry"]

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
        ips = self.measure_eval(pipeline, eval_step, state, sync_every_batch=True)
        rec = self.base(
            name=f"jax on_device {dtype} eval, host sync per batch",
            variant="eval_sync",
            dtype=dtype,
            pipeline="on_device",
            eval_images_per_s=round(ips, 3),
        )
        rec["notes"].append("compare eval_images_per_s with the plain step's (accumulated on the device)")
        return rec
