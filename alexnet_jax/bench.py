"""Training and evaluation throughput: this project's step against the paper's PyTorch recipe.

    python -m alexnet_jax.bench --output_md=bench.md            # paper scale: 256 px, crop 224, batch 384
    python -m alexnet_jax.bench --quick --output_md=bench.md    # CPU smoke test (< 2 minutes)

Measured side by side, on the same machine and the same synthetic uint8 images:
  * jax/<pipeline>/<dtype>: `train.make_steps` with each input pipeline (on_device, and tf_data
    where TensorFlow imports), float32 and bfloat16;
  * torch/paper: torchvision AlexNet, a DataLoader decoding JPEGs with the paper's transforms
    (ToTensor, Resize, RandomCrop, flips, RandomRotation(180)) in --torch_workers processes,
    float32, SGD, one host sync per step (as the original's running accuracy did);
  * torch/tuned: what a strong PyTorch user writes: data resident on the device as uint8,
    augmentation on the device (one grid_sample: crop, flips, rotation, zero fill),
    channels_last, bf16 autocast, torch.compile (failures are reported and it falls back to
    eager), fused SGD, no host sync inside the epoch;
  * levers on the JAX on_device step: several steps per dispatch (lax.scan), K models per step
    (jax.vmap over stacked parameters: both arms or several runs at once), donated buffers
    vs none, evaluation with a host round trip per batch vs accumulated on the device.
The PyTorch measurements run in a subprocess (`--torch_worker`): torchvision must never be
imported after TensorFlow in one process (it segfaults), and each framework keeps its own
thread pools.

Every measurement is one JSON line on stdout (schema "alexnet_jax.bench/1"): device, batch
size, dtype, pipeline, steady-state train and eval images/s, the step time split into
compute (the step alone on a batch already in place) and input wait (the rest of the
end-to-end step), FLOP/s and MFU against the device's peak, and the projected wall time of
the full paper study (100 runs x (200 + 400) epochs x (12,000 train + 2,034 test images)).
MFU counts AlexNet's analytic FLOPs (3 x 2 x MACs per training image; 0.71 GMAC forward at
224 px). Peaks: --peak_tflops, else a table of accelerator peaks, else (CPU) a matmul
measured here with both frameworks.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from absl import app, flags, logging

from alexnet_jax.toolbox import write_text_atomic

SCHEMA = "alexnet_jax.bench/1"
NUM_CLASSES = 4
PAPER = {
    "runs": 100,
    "epochs": {"pretrained": 200, "scratch": 400},
    "train_images": 12_000,
    "test_images": 2_034,
    "gpu_months": 0.96,  # one V100 per run, as the paper reports
    "seconds_per_epoch": 41.0,
}
SECONDS_PER_MONTH = 30.44 * 86400
# Peak dense TFLOP/s by device kind (first substring match wins) and compute dtype. JAX and
# PyTorch run float32 convolutions as TF32 on Ampere and newer GPUs, so float32 counts TF32.
PEAKS = (
    ("H100 PCIe", {"bfloat16": (756.0, "NVIDIA spec, dense"), "float32": (378.0, "NVIDIA spec, TF32 dense")}),
    (
        "H100",
        {
            "bfloat16": (790.0, "measured bf16 dense matmul on these H100 SXM machines"),
            "float32": (494.7, "NVIDIA spec, TF32 dense (not measured)"),
        },
    ),
    ("H200", {"bfloat16": (989.4, "NVIDIA spec, dense"), "float32": (494.7, "NVIDIA spec, TF32 dense")}),
    ("A100", {"bfloat16": (312.0, "NVIDIA spec, dense"), "float32": (156.0, "NVIDIA spec, TF32 dense")}),
    (
        "V100",
        {
            "bfloat16": (125.0, "NVIDIA spec, fp16 tensor cores (no bf16)"),
            "float32": (15.7, "NVIDIA spec, fp32 (no TF32)"),
        },
    ),
)
MEASUREMENT_KEYS = (
    "schema",
    "kind",
    "name",
    "framework",
    "variant",
    "device",
    "device_kind",
    "device_count",
    "batch_size",
    "image_size",
    "crop_size",
    "dtype",
    "pipeline",
    "models_per_step",
    "steps_per_dispatch",
    "timed_steps",
    "train_images_per_s",
    "eval_images_per_s",
    "step_time_s",
    "compute_time_s",
    "input_wait_s",
    "compile_s",
    "train_flops_per_image",
    "achieved_tflops",
    "peak_tflops",
    "peak_source",
    "mfu",
    "mfu_note",
    "projected_study_hours",
    "projected_study_device_months",
    "error",
    "notes",
)

FLAGS = flags.FLAGS


def _define_flags():
    flags.DEFINE_bool("quick", False, "CPU smoke test: 72 px images, crop 64, batch 16, few steps (< 2 min).")
    flags.DEFINE_integer("batch_size", None, "Training and evaluation batch (default 384, the paper's; --quick 16).")
    flags.DEFINE_integer("image_size", None, "Side of the stored images (default 256; --quick 72).")
    flags.DEFINE_integer("crop_size", None, "Training crop (default 224; --quick 64; AlexNet needs >= 63).")
    flags.DEFINE_integer("num_images", None, "Images in the resident synthetic set (default 4096; --quick 256).")
    flags.DEFINE_integer("steps", None, "Timed steps per measurement (default 20; --quick 3).")
    flags.DEFINE_integer("warmup", None, "Untimed steps first, compilation included (default 3; --quick 1).")
    flags.DEFINE_integer("devices", 1, "Devices in the JAX mesh (data parallel).")
    flags.DEFINE_list("dtypes", ["float32", "bfloat16"], "JAX compute dtypes.")
    flags.DEFINE_list("pipelines", ["on_device", "tf_data"], "JAX input pipelines.")
    flags.DEFINE_list("torch", ["paper", "tuned"], "PyTorch measurements (empty: none).")
    flags.DEFINE_list("levers", ["scan", "vmap", "donate", "eval_sync"], "JAX speed levers to measure (empty: none).")
    flags.DEFINE_list("vmap_models", None, "K models per step for the vmap lever (default 1,2,4; --quick 1,2).")
    flags.DEFINE_integer("scan_steps", 4, "Steps per dispatch for the scan lever.")
    flags.DEFINE_list(
        "scan_modes",
        None,
        "rolled (an XLA while loop) and/or unrolled. Default: both on accelerators, "
        "unrolled on CPU, where a rolled loop of AlexNet steps runs far slower (docs/performance.md).",
    )
    flags.DEFINE_integer("torch_workers", None, "DataLoader workers of the paper recipe (default 6; --quick 1).")
    flags.DEFINE_enum(
        "torch_compile",
        "auto",
        ["auto", "on", "off"],
        "torch.compile in the tuned peer; auto: on, except in --quick (a cold compile takes ~2 min on a 2-core CPU).",
    )
    flags.DEFINE_integer("jpeg_size", 100, "Side of the JPEGs the paper recipe decodes (its images were ~100 px).")
    flags.DEFINE_string(
        "peak_tflops",
        None,
        "Device peak TFLOP/s for MFU: one number, or dtype=value pairs "
        "(e.g. bfloat16=790,float32=494.7). Default: the table of known peaks, else measured.",
    )
    flags.DEFINE_string("output_md", None, "Write the Markdown table here.")
    flags.DEFINE_string("output_jsonl", None, "Also write the JSON lines here.")
    flags.DEFINE_integer("seed", 0, "Seed of the synthetic images and of every step.")
    flags.DEFINE_list("torch_worker", None, "Internal: run these PyTorch measurements (peak, paper, tuned) here.")
    flags.DEFINE_integer("torch_timeout", 1800, "Seconds allowed for each PyTorch subprocess.")


# --------------------------------------------------------------------------------------
# Settings, FLOPs, peaks, records.


def settings_from_flags() -> dict:
    quick = FLAGS.quick

    def pick(value, full, small):
        return value if value is not None else (small if quick else full)

    s = {
        "quick": quick,
        "batch_size": pick(FLAGS.batch_size, 384, 16),
        "image_size": pick(FLAGS.image_size, 256, 72),
        "crop_size": pick(FLAGS.crop_size, 224, 64),
        "num_images": pick(FLAGS.num_images, 4096, 256),
        "steps": pick(FLAGS.steps, 20, 3),
        "warmup": pick(FLAGS.warmup, 3, 1),
        "torch_workers": pick(FLAGS.torch_workers, 6, 1),
        "torch_compile": (not quick) if FLAGS.torch_compile == "auto" else FLAGS.torch_compile == "on",
        "jpeg_size": FLAGS.jpeg_size,
        "seed": FLAGS.seed,
        "devices": FLAGS.devices,
        "scan_steps": FLAGS.scan_steps,
        "vmap_models": [int(k) for k in (FLAGS.vmap_models or (["1", "2"] if quick else ["1", "2", "4"]))],
        "scan_modes": list(FLAGS.scan_modes) if FLAGS.scan_modes else None,  # None: by backend, see run_benchmark
    }
    for mode in s["scan_modes"] or []:
        if mode not in ("rolled", "unrolled"):
            raise app.UsageError(f"--scan_modes: unknown mode {mode!r}; use rolled, unrolled")
    if s["crop_size"] > s["image_size"]:
        raise app.UsageError(f"--crop_size={s['crop_size']} exceeds --image_size={s['image_size']}")
    if s["crop_size"] < 63:
        raise app.UsageError(f"--crop_size={s['crop_size']}: torchvision's AlexNet needs at least 63 px")
    for name in ("batch_size", "num_images", "steps", "warmup", "scan_steps", "devices"):
        if s[name] < 1:
            raise app.UsageError(f"--{name} must be at least 1 (warm-up includes compilation), got {s[name]}")
    return s


def alexnet_macs(crop_size: int, num_classes: int = NUM_CLASSES) -> int:
    """Multiply-accumulates of one forward pass of torchvision's AlexNet at `crop_size` px."""
    from alexnet_jax.models import CONV_LAYERS, LINEAR_LAYERS, POOL_AFTER, POOLED_SIZE

    size, channels, macs = crop_size, 3, 0
    for index, out, kernel, stride, pad in CONV_LAYERS:
        size = (size + 2 * pad - kernel) // stride + 1
        macs += size * size * out * channels * kernel * kernel
        channels = out
        if index in POOL_AFTER:
            size = (size - 3) // 2 + 1
    features = channels * POOLED_SIZE * POOLED_SIZE
    for _, out in LINEAR_LAYERS:
        macs += features * out
        features = out
    return macs + features * num_classes


def train_flops_per_image(crop_size: int) -> float:
    """Forward + backward: 3 x (2 FLOP per MAC) x MACs."""
    return 6.0 * alexnet_macs(crop_size)


def parse_peak_flag(text: str | None) -> dict | None:
    if not text:
        return None
    try:
        if "=" not in text:
            value = float(text)
            return {"bfloat16": value, "float32": value}
        out = {}
        for part in text.split(","):
            key, value = part.split("=")
            out[key.strip()] = float(value)
        return out
    except ValueError:
        raise app.UsageError(f"--peak_tflops={text!r}: give a number or dtype=value pairs, e.g. bfloat16=790") from None


def table_peak(device_kind: str, dtype: str) -> tuple[float, str] | None:
    for pattern, peaks in PEAKS:
        if pattern.lower() in device_kind.lower() and dtype in peaks:
            value, source = peaks[dtype]
            return value, f"{source} ({pattern})"
    return None


def record(**fields) -> dict:
    out = {key: None for key in MEASUREMENT_KEYS}
    out.update(schema=SCHEMA, kind="measurement", notes=[])
    unknown = set(fields) - set(MEASUREMENT_KEYS)
    if unknown:
        raise KeyError(f"unknown measurement keys {sorted(unknown)}")
    out.update(fields)
    return out


def finish_record(rec: dict, peaks: dict) -> dict:
    """Add FLOP/s, MFU and the projected study time to a measurement."""
    if rec.get("error") or not rec.get("train_images_per_s"):
        if not rec.get("mfu_note"):
            rec["mfu_note"] = "no training rate measured"
        return rec
    rec["train_flops_per_image"] = train_flops_per_image(rec["crop_size"])
    achieved = rec["train_images_per_s"] * rec["train_flops_per_image"] / 1e12
    rec["achieved_tflops"] = round(achieved, 6)
    peak = peaks.get(rec["dtype"])
    if peak:
        rec["peak_tflops"], rec["peak_source"] = peak
        rec["mfu"] = round(achieved / peak[0], 6)
    else:
        rec["mfu_note"] = (
            rec.get("mfu_note") or f"no peak known for {rec['device_kind']} {rec['dtype']}; pass --peak_tflops"
        )
    if rec.get("eval_images_per_s"):
        epoch_s = PAPER["train_images"] / rec["train_images_per_s"] + PAPER["test_images"] / rec["eval_images_per_s"]
        study_s = PAPER["runs"] * sum(PAPER["epochs"].values()) * epoch_s
        rec["projected_study_hours"] = round(study_s / 3600, 3)
        rec["projected_study_device_months"] = round(study_s / SECONDS_PER_MONTH, 4)
        if rec["crop_size"] != 224:
            rec["notes"].append(
                f"measured at {rec['crop_size']} px crops, so the projection is not the paper's 224 px cost"
            )
    return rec


def emit(rec: dict, sink: list) -> None:
    sink.append(rec)
    print(json.dumps(rec, allow_nan=False), flush=True)


_START = time.monotonic()


def info(message: str) -> None:
    print(f"[bench {time.monotonic() - _START:6.1f}s] {message}", file=sys.stderr, flush=True)


def synthetic_images(num: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Smooth random colour fields (compress like photos, unlike white noise) and labels."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (num, 8, 8, 3), dtype=np.uint8)
    repeat = -(-size // 8)
    images = np.repeat(np.repeat(coarse, repeat, axis=1), repeat, axis=2)[:, :size, :size]
    noise = rng.integers(0, 32, images.shape, dtype=np.uint8)
    images = np.ascontiguousarray(images // 2 + noise)
    labels = rng.integers(0, NUM_CLASSES, num).astype(np.int64)
    return images, labels


# --------------------------------------------------------------------------------------
# JAX.


def _block(tree):
    import jax

    return jax.block_until_ready(tree)


def jax_device_info(mesh) -> dict:
    device = mesh.devices.flat[0]
    kind = device.device_kind
    if device.platform == "cpu":
        kind = f"cpu: {_cpu_model()} ({os.cpu_count()} cores)"
    return {"device": f"{device.platform}:{device.id}", "device_kind": kind, "device_count": int(mesh.size)}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


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

    def __init__(self, settings: dict, images: np.ndarray, labels: np.ndarray):
        import jax

        from alexnet_jax import train

        self.s = settings
        self.images, self.labels = images, labels
        devices = jax.devices()
        if settings["devices"] > len(devices):
            raise app.UsageError(f"--devices={settings['devices']} but JAX sees only {len(devices)} device(s)")
        self.mesh = train.make_mesh(devices[: settings["devices"]])
        if settings["batch_size"] % self.mesh.size:
            raise app.UsageError(
                f"--batch_size={settings['batch_size']} is not divisible by --devices={self.mesh.size}"
            )
        self.info = jax_device_info(self.mesh)
        self.config = self._config()

    def _config(self):
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "experiments" / "configs"))
        try:
            import paper
        finally:
            sys.path.pop(0)
        config = paper.get_config()
        config.batch_size = config.eval_batch_size = self.s["batch_size"]
        config.data.image_size = self.s["image_size"]
        config.augment.crop_size = self.s["crop_size"]
        return config

    def build(self, pipeline_name: str, dtype: str):
        import jax
        import jax.numpy as jnp

        from alexnet_jax import augment, input_pipeline, train
        from alexnet_jax.models import AlexNet, init_params

        cfg = augment.AugmentConfig(
            crop_size=self.s["crop_size"], random_crop=True, hflip=True, vflip=True, rotation_degrees=180.0
        )
        pipeline = input_pipeline.make_pipeline(
            pipeline_name,
            self.images,
            self.labels,
            image_size=self.s["image_size"],
            train_augment=cfg,
            eval_augment=cfg,
            mesh=self.mesh,
        )
        model = AlexNet(num_classes=NUM_CLASSES, dropout_rate=0.5, dtype=getattr(jnp, dtype))
        tx = train.make_optimizer(self.config)
        train_step, eval_step = train.make_steps(model, tx, pipeline, self.mesh, num_classes=NUM_CLASSES)
        # The unjitted step, for the scanned / vmapped / non-donating variants built from it.
        raw_step, _ = train.make_steps(model, tx, pipeline, self.mesh, num_classes=NUM_CLASSES, jit=False)
        params = init_params(jax.random.key(self.s["seed"]), NUM_CLASSES, self.s["crop_size"])
        state = train.replicate(train.TrainState(jnp.zeros((), jnp.int32), params, tx.init(params)), self.mesh)
        return pipeline, train_step, eval_step, state, raw_step

    def order(self, length: int, salt: int) -> np.ndarray:
        rng = np.random.default_rng([self.s["seed"], salt])
        reps = -(-length // len(self.labels))
        return np.concatenate([rng.permutation(len(self.labels)) for _ in range(reps)])[:length]

    def base(self, **fields) -> dict:
        defaults = dict(
            framework="jax",
            batch_size=self.s["batch_size"],
            image_size=self.s["image_size"],
            crop_size=self.s["crop_size"],
            timed_steps=self.s["steps"],
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
        bs, warmup, steps = s["batch_size"], s["warmup"], s["steps"]
        pipeline, train_step, eval_step, state, raw_step = self.build(pipeline_name, dtype)
        key = jax.random.key(s["seed"])
        batches = pipeline.batches(self.order((warmup + steps) * bs, 1), bs, train=True, seed=s["seed"])

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
        fixed = next(iter(pipeline.batches(self.order(bs, 2), bs, train=True, seed=s["seed"] + 1)))
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
        bs, warm, n_batches = s["batch_size"], max(1, s["warmup"]), max(2, s["steps"])
        key = jax.random.key(s["seed"] + 2)
        batches = pipeline.batches(self.order((warm + n_batches) * bs, 3), bs, train=False, seed=s["seed"] + 3)

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

        bs = self.s["batch_size"]
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
        for i in range(1, 1 + max(0, self.s["warmup"] - 1)):
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
        key = jax.random.key(self.s["seed"] + 5)
        dispatches = max(1, -(-self.s["steps"] // length))
        groups = [self._index_batches(pipeline, length, 10 + g) for g in range(2 + dispatches)]
        holder = {"state": self._copy(state)}

        def call(i):
            stacked = self._stack(groups[i % len(groups)])
            rngs = jax.vmap(lambda s: train.step_key(key, 1, 0, s))(np.arange(length) + i * length)
            holder["state"], metrics = many(holder["state"], pipeline.resident, stacked, rngs)
            return holder["state"]

        first, per_call = self._time(call, dispatches)
        bs = self.s["batch_size"]
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
        key = jax.random.key(self.s["seed"] + 6)
        groups = [self._stack(self._index_batches(pipeline, k, 20 + g)) for g in range(4)]
        holder = {"state": stacked_state}

        def call(i):
            rngs = jax.vmap(lambda m: train.step_key(key, 1, m, i))(np.arange(k))
            holder["state"], _ = step(holder["state"], pipeline.resident, groups[i % len(groups)], rngs)
            return holder["state"]

        first, per_call = self._time(call, self.s["steps"])
        bs = self.s["batch_size"]
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
        key = jax.random.key(self.s["seed"] + 7)
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

            first, per_call = self._time(call, self.s["steps"])
            bs = self.s["batch_size"]
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


# --------------------------------------------------------------------------------------
# PyTorch (runs in a subprocess: python -m alexnet_jax.bench --torch_worker=...).


def torch_device():
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def torch_device_info(device) -> dict:
    import torch

    if device.type == "cuda":
        return {
            "device": f"cuda:{device.index or 0}",
            "device_kind": torch.cuda.get_device_name(device),
            "device_count": 1,
        }
    return {"device": "cpu:0", "device_kind": f"cpu: {_cpu_model()} ({os.cpu_count()} cores)", "device_count": 1}


def _sync(device):
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def torch_base(settings: dict, device, **fields) -> dict:
    return record(
        framework="torch",
        batch_size=settings["batch_size"],
        image_size=settings["image_size"],
        crop_size=settings["crop_size"],
        timed_steps=settings["steps"],
        models_per_step=1,
        steps_per_dispatch=1,
        **torch_device_info(device),
        **fields,
    )


class JpegDataset:
    """The paper's data set: a JPEG per galaxy, decoded with PIL and transformed per item."""

    def __init__(self, jpegs: list[bytes], labels: np.ndarray, transform):
        self.jpegs, self.labels, self.transform = jpegs, labels, transform

    def __len__(self):
        return len(self.jpegs)

    def __getitem__(self, i):
        from PIL import Image

        image = Image.open(io.BytesIO(self.jpegs[i])).convert("RGB")
        return self.transform(image), int(self.labels[i])


def paper_transform(image_size: int, crop_size: int):
    from torchvision import transforms

    return transforms.Compose(
        [
            transforms.ToTensor(),
            transforms.Resize((image_size, image_size)),
            transforms.RandomCrop(crop_size),
            transforms.RandomHorizontalFlip(),
            transforms.RandomVerticalFlip(),
            transforms.RandomRotation(180),
        ]
    )


def torch_paper(settings: dict) -> dict:
    """The original recipe: JPEG + PIL/tensor transforms in DataLoader workers, float32, SGD."""
    import torch
    import torchvision
    from PIL import Image

    torch.manual_seed(settings["seed"])
    device = torch_device()
    bs, warmup, steps = settings["batch_size"], settings["warmup"], settings["steps"]
    n_eval = max(2, steps)
    count = (warmup + steps) * bs
    total = max(count, (max(1, warmup) + n_eval) * bs)
    images, labels = synthetic_images(min(total, 1024), settings["jpeg_size"], settings["seed"])
    jpegs = []
    for image in images:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=90)
        jpegs.append(buffer.getvalue())
    jpegs = [jpegs[i % len(jpegs)] for i in range(total)]
    labels = np.resize(labels, total)
    transform = paper_transform(settings["image_size"], settings["crop_size"])
    workers = settings["torch_workers"]

    def loader(n_items):
        dataset = JpegDataset(jpegs[:n_items], labels[:n_items], transform)
        return torch.utils.data.DataLoader(
            dataset, batch_size=bs, shuffle=True, num_workers=workers, persistent_workers=False, drop_last=True
        )

    model = torchvision.models.alexnet(num_classes=NUM_CLASSES).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9)
    criterion = torch.nn.CrossEntropyLoss()

    def train_step(x, y):
        x, y = x.to(device), y.to(device)
        out = model(x)
        loss = criterion(out, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return (out.argmax(1) == y).sum().item()  # the original's running accuracy: a host sync per step

    model.train()
    it = iter(loader(count))
    t0 = time.perf_counter()
    first = None
    for _ in range(warmup):
        train_step(*next(it))
        first = first or time.perf_counter() - t0
    wait = compute = 0.0
    for _ in range(steps):
        w0 = time.perf_counter()
        x, y = next(it)
        c0 = time.perf_counter()
        train_step(x, y)
        _sync(device)
        wait += c0 - w0
        compute += time.perf_counter() - c0
    step_time = (wait + compute) / steps
    del it

    model.eval()
    it = iter(loader((max(1, warmup) + n_eval) * bs))
    with torch.no_grad():
        for _ in range(max(1, warmup)):
            x, _ = next(it)
            model(x.to(device)).argmax(1).cpu()
        t0 = time.perf_counter()
        for _ in range(n_eval):
            x, y = next(it)
            (model(x.to(device)).argmax(1) == y.to(device)).sum().item()
        eval_ips = n_eval * bs / (time.perf_counter() - t0)
    del it
    rec = torch_base(
        settings,
        device,
        name="torch paper recipe float32",
        variant="paper",
        dtype="float32",
        pipeline=f"DataLoader+PIL ({workers} workers)",
        train_images_per_s=round(bs / step_time, 3),
        eval_images_per_s=round(eval_ips, 3),
        step_time_s=round(step_time, 6),
        compute_time_s=round(compute / steps, 6),
        input_wait_s=round(wait / steps, 6),
        compile_s=round(first or 0.0, 3),
    )
    rec["notes"].append(
        f"JPEGs of {settings['jpeg_size']} px decoded per item; torch {torch.__version__}, "
        f"{torch.get_num_threads()} intra-op threads"
    )
    return rec


def device_augment(images_u8, indices, crop: int, generator=None):
    """The paper's augmentation on the device in one grid_sample, for NCHW uint8 images.

    RandomCrop, both flips and a rotation by U[-180, 180] degrees about the crop centre,
    nearest neighbour, zero outside the crop (as torchvision fills it). Returns float [0, 1].
    """
    import torch
    import torch.nn.functional as F

    src = images_u8[indices]
    b, _, h, w = src.shape
    device = src.device
    rand = lambda *shape: torch.rand(*shape, device=device, generator=generator)  # noqa: E731
    angle = (rand(b) * 2 - 1) * math.pi
    cos, sin = torch.cos(angle), torch.sin(angle)
    flip_x = torch.where(rand(b) < 0.5, -1.0, 1.0)
    flip_y = torch.where(rand(b) < 0.5, -1.0, 1.0)
    # Output pixel -> rotated back -> unflipped, all in the crop's [-1, 1] coordinates.
    rotation = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
    base = F.affine_grid(torch.eye(2, 3, device=device).expand(b, 2, 3), (b, 1, crop, crop), align_corners=False)
    in_crop = torch.einsum("bij,bhwj->bhwi", rotation, base)
    inside = (in_crop.abs() <= 1.0).all(-1)
    in_crop = in_crop * torch.stack([flip_x, flip_y], -1)[:, None, None, :]
    # Crop offset (integer pixels, uniform as RandomCrop) -> the full image's [-1, 1] coordinates.
    off_x = torch.floor(rand(b) * (w - crop + 1))
    off_y = torch.floor(rand(b) * (h - crop + 1))
    scale = torch.tensor([crop / w, crop / h], device=device)
    shift = torch.stack([(2 * off_x + crop) / w - 1, (2 * off_y + crop) / h - 1], -1)
    grid = in_crop * scale + shift[:, None, None, :]
    out = F.grid_sample(src.float(), grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return out * inside[:, None].to(out.dtype) / 255.0


def torch_tuned(settings: dict) -> dict:
    """A strong PyTorch user's version: resident uint8 data, device-side augmentation,
    channels_last, bf16 autocast, torch.compile with a fallback, fused SGD, no per-step sync."""
    import torch
    import torchvision

    torch.manual_seed(settings["seed"])
    device = torch_device()
    bs, warmup, steps = settings["batch_size"], settings["warmup"], settings["steps"]
    notes = []
    images, labels = synthetic_images(settings["num_images"], settings["image_size"], settings["seed"])
    # NHWC uint8 viewed as NCHW: channels_last memory layout for free.
    data = torch.from_numpy(images).to(device).permute(0, 3, 1, 2)
    targets = torch.from_numpy(labels).to(device)
    model = torchvision.models.alexnet(num_classes=NUM_CLASSES).to(device, memory_format=torch.channels_last)
    try:
        optimizer = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9, fused=True)
    except (RuntimeError, TypeError) as error:
        optimizer = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9, foreach=True)
        notes.append(f"fused SGD unavailable ({error}); foreach SGD")
    criterion = torch.nn.CrossEntropyLoss()
    compile_error = None
    net = model
    if settings["torch_compile"]:
        net = torch.compile(model)
    else:
        notes.append(
            "torch.compile off"
            + (" (--quick: a cold compile takes ~2 min on a 2-core CPU)" if settings["quick"] else "")
        )
    generator = torch.Generator(device=device)
    generator.manual_seed(settings["seed"])
    amp = dict(device_type=device.type, dtype=torch.bfloat16)

    def train_step(idx):
        x = device_augment(data, idx, settings["crop_size"], generator).contiguous(memory_format=torch.channels_last)
        y = targets[idx]
        with torch.autocast(**amp):
            out = net(x)
            loss = criterion(out.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return (out.argmax(1) == y).sum()

    def indices(step):
        g = torch.Generator().manual_seed(settings["seed"] * 1000 + step)
        return torch.randint(0, len(labels), (bs,), generator=g).to(device, non_blocking=True)

    model.train()
    t0 = time.perf_counter()
    try:
        train_step(indices(0))
        _sync(device)
    except Exception as error:  # noqa: BLE001 - any compile failure: report it and fall back
        if net is model:
            raise
        compile_error = f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"
        notes.append(f"torch.compile failed, fell back to eager: {compile_error}")
        net = model
        t0 = time.perf_counter()
        train_step(indices(0))
        _sync(device)
    first = time.perf_counter() - t0
    for step in range(1, warmup):
        train_step(indices(step))
    _sync(device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    t0 = time.perf_counter()
    for step in range(steps):
        correct += train_step(indices(100 + step))
    correct.item()
    _sync(device)
    step_time = (time.perf_counter() - t0) / steps
    fixed = indices(1)
    t0 = time.perf_counter()
    for _ in range(steps):
        correct += train_step(fixed)
    correct.item()
    compute = (time.perf_counter() - t0) / steps

    model.eval()
    n_eval = max(2, steps)
    with torch.no_grad(), torch.autocast(**amp):
        for step in range(max(1, warmup)):
            net(
                device_augment(data, indices(200 + step), settings["crop_size"], generator).contiguous(
                    memory_format=torch.channels_last
                )
            ).argmax(1)
        total = torch.zeros((), device=device, dtype=torch.long)
        _sync(device)
        t0 = time.perf_counter()
        for step in range(n_eval):
            idx = indices(300 + step)
            x = device_augment(data, idx, settings["crop_size"], generator).contiguous(
                memory_format=torch.channels_last
            )
            total += (net(x).argmax(1) == targets[idx]).sum()
        total.item()
        eval_ips = n_eval * bs / (time.perf_counter() - t0)
    compiled = settings["torch_compile"] and compile_error is None
    rec = torch_base(
        settings,
        device,
        name=f"torch tuned bf16{' compiled' if compiled else ' eager'}",
        variant="tuned" if compiled else "tuned_eager",
        dtype="bfloat16",
        pipeline="resident uint8 + device augment",
        train_images_per_s=round(bs / step_time, 3),
        eval_images_per_s=round(eval_ips, 3),
        step_time_s=round(step_time, 6),
        compute_time_s=round(compute, 6),
        input_wait_s=round(max(0.0, step_time - compute), 6),
        compile_s=round(first, 3),
    )
    rec["notes"] = notes + [f"torch {torch.__version__}, {torch.get_num_threads()} intra-op threads"]
    if compile_error:
        rec["notes"].append("compile_error: " + compile_error)
    return rec


def torch_matmul_peaks(n: int = 2048, reps: int = 5) -> dict:
    """Best matmul TFLOP/s per dtype under PyTorch on its device."""
    import torch

    device = torch_device()
    if device.type == "cuda":
        n = max(n, 8192)  # small matmuls do not fill a GPU
    out = {}
    for name, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
        a = torch.randn(n, n, device=device).to(dtype)
        a @ a
        _sync(device)
        best = math.inf
        for _ in range(reps):
            t0 = time.perf_counter()
            a @ a
            _sync(device)
            best = min(best, time.perf_counter() - t0)
        out[name] = 2.0 * n**3 / best / 1e12
    return {"schema": SCHEMA, "kind": "torch_peak", "peaks": out, "matmul_size": n, **torch_device_info(device)}


def run_torch_worker(names: list[str], settings: dict) -> None:
    """Child process: each PyTorch measurement as one JSON line, errors included."""
    for name in names:
        try:
            if name == "peak":
                rec = torch_matmul_peaks(matmul_size(settings))
            elif name == "paper":
                rec = torch_paper(settings)
            elif name == "tuned":
                rec = torch_tuned(settings)
            else:
                raise ValueError(f"unknown PyTorch measurement {name!r}")
        except Exception as error:  # noqa: BLE001 - reported in the JSON, never hidden
            import traceback

            traceback.print_exc(file=sys.stderr)
            rec = torch_error(name, settings, f"{type(error).__name__}: {error}")
        print(json.dumps(rec, allow_nan=False), flush=True)


def torch_error(name: str, settings: dict, error: str) -> dict:
    if name == "peak":
        return {"schema": SCHEMA, "kind": "torch_peak", "peaks": None, "error": error}
    return record(
        framework="torch",
        variant=name,
        name=f"torch {name}",
        dtype="float32" if name == "paper" else "bfloat16",
        batch_size=settings["batch_size"],
        image_size=settings["image_size"],
        crop_size=settings["crop_size"],
        error=error,
    )


def spawn_torch(names: list[str], settings: dict, argv: list[str]) -> list[dict]:
    """Run the PyTorch measurements `names` in one fresh interpreter; one record per name."""
    command = [sys.executable, "-m", "alexnet_jax.bench", f"--torch_worker={','.join(names)}", *argv]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=FLAGS.torch_timeout)
        stdout, stderr, code = done.stdout, done.stderr, done.returncode
    except subprocess.TimeoutExpired as timeout:
        stdout = timeout.stdout.decode() if isinstance(timeout.stdout, bytes) else (timeout.stdout or "")
        stderr, code = f"timed out after {FLAGS.torch_timeout}s (--torch_timeout)", None
    lines = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    if len(lines) < len(names):
        tail = "\n".join(stderr.strip().splitlines()[-5:])
        reason = stderr if code is None else f"the PyTorch subprocess exited {code}: {tail}"
        lines += [torch_error(name, settings, reason) for name in names[len(lines) :]]
    return lines


def _child_argv(settings: dict) -> list[str]:
    """The settings as flags for the PyTorch subprocess."""
    argv = [
        f"--{k}={settings[k]}"
        for k in (
            "batch_size",
            "image_size",
            "crop_size",
            "num_images",
            "steps",
            "warmup",
            "torch_workers",
            "jpeg_size",
            "seed",
        )
    ]
    argv.append(f"--torch_compile={'on' if settings['torch_compile'] else 'off'}")
    return argv + (["--quick"] if settings["quick"] else [])


def matmul_size(settings: dict) -> int:
    return 1024 if settings["quick"] else 2048


# --------------------------------------------------------------------------------------
# Report.


def _fmt(value, digits=1, scale=1.0):
    if value is None:
        return "–"
    return f"{value * scale:,.{digits}f}"


def markdown(records: list[dict], header: dict) -> str:
    measured = [r for r in records if r.get("kind") == "measurement"]
    paper = next((r for r in measured if r["variant"] == "paper" and not r.get("error")), None)
    lines = [
        f"# alexnet_jax benchmark ({header['date']})",
        "",
        f"- Device: {header['device']}; {header['host']}",
        f"- Versions: {header['versions']}",
        f"- Settings: batch {header['settings']['batch_size']}, images {header['settings']['image_size']} px, crop "
        f"{header['settings']['crop_size']} px, {header['settings']['steps']} timed steps after "
        f"{header['settings']['warmup']} warm-up; paper recipe with {header['settings']['torch_workers']} DataLoader "
        f"workers",
        f"- Command: `{header['command']}`",
        f"- Peaks for MFU: {header['peaks']}",
        "",
        "| measurement | dtype | input | train img/s | eval img/s | step ms | compute ms | input wait ms | "
        "TFLOP/s | MFU | train vs paper recipe | study (h) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in measured:
        if r.get("error"):
            lines.append(
                f"| {r['name']} | {r.get('dtype') or '–'} | {r.get('pipeline') or '–'} | error: "
                f"{r['error'][:120]} |||||||||"
            )
            continue
        ratio = r["train_images_per_s"] / paper["train_images_per_s"] if paper and r.get("train_images_per_s") else None
        lines.append(
            f"| {r['name']} | {r['dtype']} | {r['pipeline']} | {_fmt(r['train_images_per_s'])} | "
            f"{_fmt(r['eval_images_per_s'])} | {_fmt(r['step_time_s'], 1, 1e3)} | "
            f"{_fmt(r['compute_time_s'], 1, 1e3)} | "
            f"{_fmt(r['input_wait_s'], 1, 1e3)} | {_fmt(r['achieved_tflops'], 3)} | "
            f"{_fmt(r['mfu'], 1, 100) + ' %' if r['mfu'] is not None else '–'} | "
            f"{_fmt(ratio, 2) + 'x' if ratio else '–'} | {_fmt(r['projected_study_hours'], 0)} |"
        )
    lines += [
        "",
        "Study (h): projected wall time of the full paper study on one such device from the measured train and eval "
        "rates: 100 runs x (200 + 400) epochs x (12,000 train + 2,034 test images). The paper reports "
        f"{PAPER['gpu_months']} GPU-months (V100, about {PAPER['seconds_per_epoch']:.0f} s per epoch) = "
        f"{PAPER['gpu_months'] * SECONDS_PER_MONTH / 3600:,.0f} GPU-hours.",
        "Compute = the step alone on a batch already on the device; input wait = end-to-end step minus that. "
        "MFU = analytic AlexNet FLOPs (3 x 2 x MACs per training image) x train img/s / peak.",
    ]
    notes = [f"- {r['name']}: {'; '.join(r['notes'])}" for r in measured if r.get("notes")]
    if notes:
        lines += ["", "Notes:", *notes]
    return "\n".join(lines) + "\n"


def versions() -> str:
    from importlib import metadata

    out = []
    for package in ("jax", "jaxlib", "flax", "optax", "torch", "torchvision", "tensorflow-cpu", "tensorflow"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out.append(f"{package} {metadata.version(package)}")
    return ", ".join(out) + f", Python {platform.python_version()}"


# --------------------------------------------------------------------------------------
# Main.


def run_benchmark(settings: dict) -> list[dict]:
    records: list[dict] = []
    torch_names = list(FLAGS.torch)
    for name in torch_names:
        if name not in ("paper", "tuned"):
            raise app.UsageError(f"--torch: unknown measurement {name!r}; use paper, tuned")

    # PyTorch first, in one subprocess, before JAX claims the accelerator's memory. It also
    # measures a matmul peak on its device: the MFU reference where no table entry exists.
    info(f"torch {', '.join(['peak'] + torch_names)} (one subprocess) ...")
    out = spawn_torch(["peak"] + torch_names, settings, _child_argv(settings))
    torch_peaks = out.pop(0).get("peaks")
    torch_records = out

    import jax

    images, labels = synthetic_images(settings["num_images"], settings["image_size"], settings["seed"])
    bench = JaxBench(settings, images, labels)
    info(
        f"JAX on {bench.info['device_kind']} x{bench.info['device_count']}; batch {settings['batch_size']}, "
        f"crop {settings['crop_size']} px"
    )
    given = parse_peak_flag(FLAGS.peak_tflops)
    peaks: dict = {}
    n = matmul_size(settings)
    for dtype in ("float32", "bfloat16"):
        if given and dtype in given:
            peaks[dtype] = (given[dtype], "--peak_tflops")
        elif (known := table_peak(bench.info["device_kind"], dtype)) is not None:
            peaks[dtype] = known
        else:  # no table entry (CPUs, unlisted GPUs): the best matmul either framework reaches here
            xla = measure_jax_matmul_peak(dtype, n)
            best, source = xla, "XLA"
            if torch_peaks and torch_peaks.get(dtype, 0) > xla:
                best, source = torch_peaks[dtype], "PyTorch"
            peaks[dtype] = (
                round(best, 4),
                f"measured here: best {n}x{n} {dtype} matmul ({source}; XLA {xla:.3f}"
                + (f", PyTorch {torch_peaks[dtype]:.3f}" if torch_peaks else "")
                + " TFLOP/s)",
            )
    info(f"peaks: {peaks}")
    if settings["scan_modes"] is None:
        settings["scan_modes"] = ["unrolled"] if jax.default_backend() == "cpu" else ["rolled", "unrolled"]

    built_on_device = {}
    for dtype in FLAGS.dtypes:
        for pipeline in FLAGS.pipelines:
            info(f"jax {pipeline} {dtype} ...")
            try:
                rec, built = bench.measure_step(pipeline, dtype)
                if pipeline == "on_device":
                    built_on_device[dtype] = built
            except Exception as error:  # noqa: BLE001 - e.g. TensorFlow missing: reported, not fatal
                logging.exception("measurement failed")
                rec = bench.base(
                    name=f"jax {pipeline} {dtype}",
                    variant="step",
                    dtype=dtype,
                    pipeline=pipeline,
                    error=f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}",
                )
            emit(finish_record(rec, peaks), records)

    # Levers on the dtype whose plain on_device step was fastest here (bf16 on GPUs, f32 on most CPUs).
    rates = {
        r["dtype"]: r["train_images_per_s"]
        for r in records
        if r.get("variant") == "step" and r.get("pipeline") == "on_device" and r.get("train_images_per_s")
    }
    lever_dtype = max((d for d in built_on_device if d in rates), key=rates.get, default=None)
    if lever_dtype is None and FLAGS.levers:
        info("levers skipped: they need a successful on_device measurement")
    for lever in FLAGS.levers if lever_dtype else []:
        built = built_on_device[lever_dtype]
        info(f"lever {lever} ({lever_dtype}) ...")
        try:
            if lever == "scan":
                out = [
                    bench.measure_scan(built, lever_dtype, settings["scan_steps"], mode == "unrolled")
                    for mode in settings["scan_modes"]
                ]
            elif lever == "vmap":
                out = [bench.measure_vmap(built, lever_dtype, k) for k in settings["vmap_models"]]
            elif lever == "donate":
                out = bench.measure_donation(built, lever_dtype)
            elif lever == "eval_sync":
                out = [bench.measure_eval_sync(built, lever_dtype)]
            else:
                raise app.UsageError(f"--levers: unknown lever {lever!r}; use scan, vmap, donate, eval_sync")
        except app.UsageError:
            raise
        except Exception as error:  # noqa: BLE001
            logging.exception("lever failed")
            out = [
                bench.base(
                    name=f"jax lever {lever}",
                    variant=lever,
                    dtype=lever_dtype,
                    pipeline="on_device",
                    error=f"{type(error).__name__}: {error}",
                )
            ]
        for rec in out:
            emit(finish_record(rec, peaks), records)

    for rec in torch_records:
        emit(finish_record(rec, peaks), records)

    summary = {
        "schema": SCHEMA,
        "kind": "summary",
        "paper_gpu_months": PAPER["gpu_months"],
        "paper_gpu_hours": round(PAPER["gpu_months"] * SECONDS_PER_MONTH / 3600, 1),
        "paper_study": {k: PAPER[k] for k in ("runs", "epochs", "train_images", "test_images")},
        "peaks": {k: {"tflops": v[0], "source": v[1]} for k, v in peaks.items()},
        "torch_matmul_tflops": torch_peaks,
        "projections_hours": {
            r["name"]: r["projected_study_hours"] for r in records if r.get("projected_study_hours") is not None
        },
        "settings": settings,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    ok = [r for r in records if r.get("projected_study_hours")]
    if ok:
        best = min(ok, key=lambda r: r["projected_study_hours"])
        summary["fastest"] = {
            "name": best["name"],
            "hours": best["projected_study_hours"],
            "device_months": best["projected_study_device_months"],
            "vs_paper": round(PAPER["gpu_months"] / best["projected_study_device_months"], 3),
        }
    emit(summary, records)
    header = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "device": f"{bench.info['device_kind']} x{bench.info['device_count']}",
        "host": f"{platform.node()}, {os.cpu_count()} CPU cores, {platform.platform()}, load average at the end "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())} (other processes share the machine when > cores)",
        "versions": versions(),
        "settings": settings,
        "command": "python -m alexnet_jax.bench " + " ".join(sys.argv[1:]),
        "peaks": "; ".join(f"{k} {v[0]} TFLOP/s ({v[1]})" for k, v in peaks.items()),
    }
    if FLAGS.output_md:
        write_text_atomic(FLAGS.output_md, markdown(records, header))
        info(f"wrote {FLAGS.output_md}")
    if FLAGS.output_jsonl:
        write_text_atomic(FLAGS.output_jsonl, "".join(json.dumps(r) + "\n" for r in records))
    return records


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    settings = settings_from_flags()
    if FLAGS.torch_worker:
        run_torch_worker(list(FLAGS.torch_worker), settings)
        return 0
    run_benchmark(settings)
    return 0


if __name__ == "__main__":
    _define_flags()
    app.run(lambda argv: sys.exit(main(argv)))
