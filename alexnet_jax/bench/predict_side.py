"""`--predict`: galaxies per second of prediction, this project's Forward beside a plain PyTorch loop.

    python -m alexnet_jax.bench --predict --quick --model=resnet18 --output_md=predict.md

What `python -m alexnet_jax.predict` does per batch, on synthetic galaxies, for --model with random
weights (speed does not depend on the weights) trained-for --image_size and --crop_size:

  * jax predict decoded: JPEG files (--num_images of them, --jpeg_size px, written to a temporary
    folder) read and decoded with PIL to 256 px (`data.folder.load_image`, as the folder source
    does) in one background thread while the previous batch runs, then `predict.engine.Forward`:
    host resize to --image_size, centre crop, scaling, the network, softmax, entropy and mutual
    information, the rows back on the host;
  * jax predict prepared: the same from 256 px uint8 images already in memory (a prepared set);
  * torch predict decoded / prepared (unless --torch=): the same network's torchvision or timm twin in
    eval mode under torch.no_grad, in the PyTorch subprocess (`torch_predict`), same batches and crop.

Each is one JSON line in the bench's schema (variant "predict"; eval_images_per_s is galaxies per
second end to end; compute_time_s the forward alone on a batch already in memory; input_wait_s the
rest; compile_s the first batch). Every batch is --batch_size galaxies, after --warmup untimed
batches, --steps timed. The Markdown table (`markdown`) sets the four side by side.
"""

from __future__ import annotations

import concurrent.futures
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from alexnet_jax.bench.records import cpu_device_kind, emit, record
from alexnet_jax.bench.settings import Settings
from alexnet_jax.bench.workload import synthetic_images
from alexnet_jax.toolbox import write_text_atomic

INPUT_SIZE = 256  # what a prepared set stores and the folder source decodes to (predict.engine.INPUT_SIZE)
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))  # augment.NORMALIZATION_STATS["imagenet"]
PIPELINES = ("decoded", "prepared")
TORCH_NAMES = tuple(f"predict_{p}" for p in PIPELINES)  # the PyTorch subprocess's measurement names


def batch_rows(batch: int, batch_size: int, num_images: int) -> np.ndarray:
    """The rows of batch `batch`: consecutive, wrapping around the synthetic set."""
    return np.arange(batch * batch_size, (batch + 1) * batch_size) % num_images


def write_jpegs(directory: Path, settings: Settings) -> list[Path]:
    """--num_images synthetic galaxies as JPEG files of --jpeg_size px (quality 90); both sides write the same."""
    from PIL import Image

    images, _ = synthetic_images(settings.num_images, settings.jpeg_size, settings.seed)
    paths = []
    for i, image in enumerate(images):
        path = directory / f"galaxy_{i:06d}.jpg"
        Image.fromarray(image).save(path, format="JPEG", quality=90)
        paths.append(path)
    return paths


def prepared_images(settings: Settings) -> np.ndarray:
    """--num_images synthetic galaxies as a prepared set holds them: (N, 256, 256, 3) uint8."""
    return synthetic_images(settings.num_images, INPUT_SIZE, settings.seed)[0]


def bench_member(settings: Settings):
    """One ensemble member of --model with random weights, trained-for --image_size, --crop_size and
    ImageNet scaling, as `predict.members.load_members` would return it."""
    import jax

    from alexnet_jax.bench.trainer_side import trainer_config
    from alexnet_jax.bench.workload import NUM_CLASSES
    from alexnet_jax.models import init_variables
    from alexnet_jax.predict.members import Member, model_options

    config = trainer_config(settings, Path("<synthetic>"))  # what --trainer trains: the quick config, resized
    config.normalize = "imagenet"
    run_config = config.to_dict()
    options = model_options(settings.model, run_config)
    key = jax.random.key(settings.seed)
    variables = jax.device_get(init_variables(settings.model, key, NUM_CLASSES, settings.crop_size, **options))
    return Member(
        params_dir=Path(f"<random {settings.model}>"),
        model=settings.model,
        class_names=tuple(f"class_{i}" for i in range(NUM_CLASSES)),
        run_config=run_config,
        weights_sha256="random",
        temperature=None,
        variables=variables,
    )


def jax_predict(settings: Settings, pipeline: str, forward, jpegs: list[Path], prepared: np.ndarray) -> dict:
    """One JAX measurement: `pipeline` "decoded" (JPEG files, decoded in a background thread) or "prepared"."""
    import jax

    from alexnet_jax.data.folder import load_image

    bs = settings.batch_size

    def load(batch: int) -> np.ndarray:
        rows = batch_rows(batch, bs, settings.num_images)
        if pipeline == "prepared":
            return prepared[rows]
        return np.stack([load_image(jpegs[i], size=INPUT_SIZE) for i in rows])

    def predict(batch: int, images: np.ndarray) -> None:
        out = forward(images, batch)
        assert out["probabilities"].shape == (bs, forward.num_classes)  # on the host: nothing left pending

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as decoder:
        pending = decoder.submit(load, 0)
        t0 = time.perf_counter()
        first, start = None, None
        for batch in range(settings.warmup + settings.steps):
            if batch == settings.warmup:
                start = time.perf_counter()
            images = pending.result()
            pending = decoder.submit(load, batch + 1)
            predict(batch, images)
            first = first or time.perf_counter() - t0
        step = (time.perf_counter() - start) / settings.steps
        pending.result()
    resident = load(0)
    t0 = time.perf_counter()
    for batch in range(settings.steps):
        predict(batch, resident)
    compute = (time.perf_counter() - t0) / settings.steps
    device = jax.devices()[0]
    rec = record(
        framework="jax",
        model=settings.model,
        name=f"jax predict {pipeline} float32",
        variant="predict",
        device=f"{device.platform}:{device.id}",
        device_kind=cpu_device_kind() if device.platform == "cpu" else device.device_kind,
        device_count=1,
        batch_size=bs,
        image_size=settings.image_size,
        crop_size=settings.crop_size,
        dtype="float32",
        pipeline=(
            "JPEG files, PIL decode (1 thread, overlapped)" if pipeline == "decoded" else "prepared uint8 in memory"
        ),
        models_per_step=1,
        steps_per_dispatch=1,
        timed_steps=settings.steps,
        eval_images_per_s=round(bs / step, 3),
        step_time_s=round(step, 6),
        compute_time_s=round(compute, 6),
        input_wait_s=round(max(0.0, step - compute), 6),
        compile_s=round(first, 3),
        mfu_note="prediction: no MFU computed",
    )
    resize = f"host resize {INPUT_SIZE} -> {forward.image_size}"
    rec["notes"].append(f"predict.engine.Forward ({forward.describe()}), {resize}")
    return rec


def run_predict(settings: Settings, command: str, info: Callable[[str], None]) -> list[dict]:
    """Every prediction measurement, printed and returned; the Markdown table and JSON lines where asked."""
    import tempfile

    from alexnet_jax.bench import report
    from alexnet_jax.bench.torch_process import spawn_torch
    from alexnet_jax.predict.engine import Forward

    records: list[dict] = []
    torch_records = []
    if settings.torch:
        info(f"torch {', '.join(TORCH_NAMES)} (one subprocess) ...")
        torch_records = spawn_torch(list(TORCH_NAMES), settings)
    forward = Forward([bench_member(settings)], batch_size=settings.batch_size)
    with tempfile.TemporaryDirectory(prefix="bench_predict_") as tmp:
        jpegs = write_jpegs(Path(tmp), settings)
        prepared = prepared_images(settings)
        for pipeline in PIPELINES:
            info(f"jax predict {pipeline} ...")
            emit(jax_predict(settings, pipeline, forward, jpegs, prepared), records)
    for rec in torch_records:
        emit(rec, records)
    if settings.output_md:
        kind = records[0]["device_kind"]
        header = report.header(settings, {"device_kind": kind, "device_count": 1}, {}, command)
        write_text_atomic(settings.output_md, markdown(records, header))
        info(f"wrote {settings.output_md}")
    if settings.output_jsonl:
        write_text_atomic(settings.output_jsonl, "".join(json.dumps(r) + "\n" for r in records))
    return records


def markdown(records: list[dict], header: dict) -> str:
    """The prediction table: galaxies per second per framework and input, and the forward alone."""
    s = header["settings"]
    lines = [
        f"# alexnet_jax prediction benchmark: {s.model} ({header['date']})",
        "",
        f"- Device: {header['device']}; {header['host']}",
        f"- Versions: {header['versions']}",
        f"- Settings: model {s.model} (random weights), batch {s.batch_size}, stored {INPUT_SIZE} px, "
        f"resize {s.image_size} px, centre crop {s.crop_size} px, JPEGs of {s.jpeg_size} px; "
        f"{s.steps} timed batches after {s.warmup} warm-up",
        f"- Command: `{header['command']}`",
        "",
        "| measurement | input | galaxies/s | batch ms | forward ms | input wait ms | first batch s |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in records:
        if r.get("error"):
            lines.append(f"| {r['name']} | {r.get('pipeline') or '–'} | error: {r['error'][:120]} ||||")
            continue
        lines.append(
            f"| {r['name']} | {r['pipeline']} | {r['eval_images_per_s']:,.1f} | {r['step_time_s'] * 1e3:,.1f} | "
            f"{r['compute_time_s'] * 1e3:,.1f} | {r['input_wait_s'] * 1e3:,.1f} | {r['compile_s']:.2f} |"
        )
    return "\n".join(lines) + "\n"
