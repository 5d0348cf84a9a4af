"""The PyTorch measurements: the paper's recipe, a tuned PyTorch peer, and PyTorch's matmul peak.

With `torch_predict`, the only modules that import torch. It runs only in the subprocess that
`python -m alexnet_jax.bench --torch_worker=peak,paper,tuned` starts (`torch_process.spawn_torch`):
torchvision must never be imported after TensorFlow in one process (it segfaults), and each
framework keeps its own thread pools. The tuned peer's augmentation follows the same
`augment.AugmentConfig` as the JAX step, with the same parameter kinds and distributions, in
pure PyTorch on the device.
"""

from __future__ import annotations

import io
import math
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision import transforms

from alexnet_jax.bench.records import SCHEMA, cpu_device_kind, record
from alexnet_jax.bench.settings import Settings
from alexnet_jax.bench.torch_process import TORCH_DTYPES
from alexnet_jax.bench.workload import NUM_CLASSES, paper_augment, synthetic_images
from alexnet_jax.inputs.augment import AugmentConfig, center_offset
from alexnet_jax.models import torch_source


def torch_device():
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def torch_device_info(device) -> dict:
    """The device fields of a record."""
    if device.type == "cuda":
        return {
            "device": f"cuda:{device.index or 0}",
            "device_kind": torch.cuda.get_device_name(device),
            "device_count": 1,
        }
    return {"device": "cpu:0", "device_kind": cpu_device_kind(), "device_count": 1}


def reference_model(settings: Settings) -> torch.nn.Module:
    """--model's torch twin (torchvision's, or timm's for EfficientNet-Lite) with random weights, a
    NUM_CLASSES head, built for the crop: the converter's parity reference (`TorchSource.build_reference`)."""
    return torch_source(settings.model).build_reference(NUM_CLASSES, settings.crop_size)


def sync_device(device):
    """Wait for the device's queued work (CUDA); a no-op on CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def torch_base(settings: Settings, device, **fields) -> dict:
    return record(
        framework="torch",
        model=settings.model,
        batch_size=settings.batch_size,
        image_size=settings.image_size,
        crop_size=settings.crop_size,
        timed_steps=settings.steps,
        models_per_step=1,
        steps_per_dispatch=1,
        **torch_device_info(device),
        **fields,
    )


def versions_note() -> str:
    return f"torch {torch.__version__}, {torch.get_num_threads()} intra-op threads"


class JpegDataset:
    """The paper's data set: a JPEG per galaxy, decoded with PIL and transformed per item."""

    def __init__(self, jpegs: list[bytes], labels: np.ndarray, transform):
        self.jpegs, self.labels, self.transform = jpegs, labels, transform

    def __len__(self):
        return len(self.jpegs)

    def __getitem__(self, i):
        image = Image.open(io.BytesIO(self.jpegs[i])).convert("RGB")
        return self.transform(image), int(self.labels[i])


def paper_transform(image_size: int, crop_size: int):
    """The original's torchvision transforms, as it ran them."""
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


def torch_paper(settings: Settings) -> dict:
    """The original recipe (with --model's network): JPEG + PIL/tensor transforms in DataLoader workers,
    float32, SGD."""
    torch.manual_seed(settings.seed)
    device = torch_device()
    bs, warmup, steps = settings.batch_size, settings.warmup, settings.steps
    n_eval = max(2, steps)
    count = (warmup + steps) * bs
    total = max(count, (max(1, warmup) + n_eval) * bs)
    images, labels = synthetic_images(min(total, 1024), settings.jpeg_size, settings.seed)
    jpegs = []
    for image in images:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=90)
        jpegs.append(buffer.getvalue())
    jpegs = [jpegs[i % len(jpegs)] for i in range(total)]
    labels = np.resize(labels, total)
    transform = paper_transform(settings.image_size, settings.crop_size)
    workers = settings.torch_workers

    def loader(n_items):
        dataset = JpegDataset(jpegs[:n_items], labels[:n_items], transform)
        return torch.utils.data.DataLoader(
            dataset, batch_size=bs, shuffle=True, num_workers=workers, persistent_workers=False, drop_last=True
        )

    model = reference_model(settings).to(device)
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
        sync_device(device)
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
    dtype = TORCH_DTYPES["paper"]
    rec = torch_base(
        settings,
        device,
        name=f"torch paper recipe {dtype}",
        variant="paper",
        dtype=dtype,
        pipeline=f"DataLoader+PIL ({workers} workers)",
        train_images_per_s=round(bs / step_time, 3),
        eval_images_per_s=round(eval_ips, 3),
        step_time_s=round(step_time, 6),
        compute_time_s=round(compute / steps, 6),
        input_wait_s=round(wait / steps, 6),
        compile_s=round(first or 0.0, 3),
    )
    rec["notes"].append(f"JPEGs of {settings.jpeg_size} px decoded per item; {versions_note()}")
    return rec


def torch_sample_augment_params(batch_size: int, image_size: int, cfg: AugmentConfig, generator) -> dict:
    """PyTorch twin of `augment.sample_augment_params`, drawn on the generator's device.

    The same parameter kinds and distributions: integer crop offsets uniform on
    [0, image_size - crop] (as float tensors), flips with probability 0.5, the angle uniform
    on [-d, d) degrees.
    """
    device = generator.device

    def uniform():
        return torch.rand(batch_size, device=device, generator=generator)

    no_flip = torch.zeros(batch_size, dtype=torch.bool, device=device)
    angle = (uniform() * 2 - 1) * cfg.rotation_degrees
    hflip = uniform() < 0.5 if cfg.hflip else no_flip
    vflip = uniform() < 0.5 if cfg.vflip else no_flip
    if cfg.random_crop:
        span = image_size - cfg.crop_size + 1
        offset_x, offset_y = torch.floor(uniform() * span), torch.floor(uniform() * span)
    else:
        offset_x = offset_y = torch.full((batch_size,), float(center_offset(image_size, cfg.crop_size)), device=device)
    return dict(offset_y=offset_y, offset_x=offset_x, hflip=hflip, vflip=vflip, angle_deg=angle)


def torch_apply_augment_indexed(images_u8, indices, params: dict, crop: int):
    """PyTorch twin of `augment.apply_augment_indexed` for NCHW uint8 images, in one grid_sample.

    The same geometry: each output pixel is rotated back about the crop centre (nearest
    neighbour, zero outside the crop, as torchvision fills it), unflipped, then offset into
    the image. Returns float [0, 1].
    """
    src = images_u8[indices]
    b, _, h, w = src.shape
    device = src.device
    angle = torch.deg2rad(params["angle_deg"])
    cos, sin = torch.cos(angle), torch.sin(angle)
    # Output pixel -> rotated back -> unflipped, all in the crop's [-1, 1] coordinates.
    rotation = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
    base = F.affine_grid(torch.eye(2, 3, device=device).expand(b, 2, 3), (b, 1, crop, crop), align_corners=False)
    in_crop = torch.einsum("bij,bhwj->bhwi", rotation, base)
    inside = (in_crop.abs() <= 1.0).all(-1)
    flips = torch.stack([params["hflip"], params["vflip"]], -1)
    in_crop = in_crop * torch.where(flips, -1.0, 1.0)[:, None, None, :]
    # Crop offset (integer pixels) -> the full image's [-1, 1] coordinates.
    scale = torch.tensor([crop / w, crop / h], device=device)
    off_x, off_y = params["offset_x"], params["offset_y"]
    shift = torch.stack([(2 * off_x + crop) / w - 1, (2 * off_y + crop) / h - 1], -1)
    grid = in_crop * scale + shift[:, None, None, :]
    out = F.grid_sample(src.float(), grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return out * inside[:, None].to(out.dtype) / 255.0


def torch_tuned(settings: Settings) -> dict:
    """A strong PyTorch user's version: resident uint8 data, device-side augmentation,
    channels_last, bf16 autocast, torch.compile with a fallback, fused SGD, no per-step sync."""
    torch.manual_seed(settings.seed)
    device = torch_device()
    bs, warmup, steps = settings.batch_size, settings.warmup, settings.steps
    notes = []
    images, labels = synthetic_images(settings.num_images, settings.image_size, settings.seed)
    # NHWC uint8 viewed as NCHW: channels_last memory layout for free.
    data = torch.from_numpy(images).to(device).permute(0, 3, 1, 2)
    targets = torch.from_numpy(labels).to(device)
    model = reference_model(settings).to(device, memory_format=torch.channels_last)
    try:
        optimizer = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9, fused=True)
    except (RuntimeError, TypeError) as error:
        optimizer = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9, foreach=True)
        notes.append(f"fused SGD unavailable ({error}); foreach SGD")
    criterion = torch.nn.CrossEntropyLoss()
    compile_error = None
    net = model
    if settings.torch_compile:
        net = torch.compile(model)
    else:
        notes.append(
            "torch.compile off" + (" (--quick: a cold compile takes ~2 min on a 2-core CPU)" if settings.quick else "")
        )
    generator = torch.Generator(device=device)
    generator.manual_seed(settings.seed)
    amp = dict(device_type=device.type, dtype=torch.bfloat16)
    augment = paper_augment(settings.crop_size)

    def augmented(idx):
        params = torch_sample_augment_params(len(idx), settings.image_size, augment, generator)
        x = torch_apply_augment_indexed(data, idx, params, augment.crop_size)
        return x.contiguous(memory_format=torch.channels_last)

    def train_step(idx):
        x = augmented(idx)
        y = targets[idx]
        with torch.autocast(**amp):
            out = net(x)
            loss = criterion(out.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return (out.argmax(1) == y).sum()

    def indices(step):
        g = torch.Generator().manual_seed(settings.seed * 1000 + step)
        return torch.randint(0, len(labels), (bs,), generator=g).to(device, non_blocking=True)

    model.train()
    t0 = time.perf_counter()
    try:
        train_step(indices(0))
        sync_device(device)
    except Exception as error:  # noqa: BLE001 - any compile failure: report it and fall back
        if net is model:
            raise
        compile_error = f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"
        notes.append(f"torch.compile failed, fell back to eager: {compile_error}")
        net = model
        t0 = time.perf_counter()
        train_step(indices(0))
        sync_device(device)
    first = time.perf_counter() - t0
    for step in range(1, warmup):
        train_step(indices(step))
    sync_device(device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    t0 = time.perf_counter()
    for step in range(steps):
        correct += train_step(indices(100 + step))
    correct.item()
    sync_device(device)
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
            net(augmented(indices(200 + step))).argmax(1)
        total = torch.zeros((), device=device, dtype=torch.long)
        sync_device(device)
        t0 = time.perf_counter()
        for step in range(n_eval):
            idx = indices(300 + step)
            total += (net(augmented(idx)).argmax(1) == targets[idx]).sum()
        total.item()
        eval_ips = n_eval * bs / (time.perf_counter() - t0)
    compiled = settings.torch_compile and compile_error is None
    rec = torch_base(
        settings,
        device,
        name=f"torch tuned bf16{' compiled' if compiled else ' eager'}",
        variant="tuned" if compiled else "tuned_eager",
        dtype=TORCH_DTYPES["tuned"],
        pipeline="resident uint8 + device augment",
        train_images_per_s=round(bs / step_time, 3),
        eval_images_per_s=round(eval_ips, 3),
        step_time_s=round(step_time, 6),
        compute_time_s=round(compute, 6),
        input_wait_s=round(max(0.0, step_time - compute), 6),
        compile_s=round(first, 3),
    )
    rec["notes"] = [*notes, versions_note()]
    if compile_error:
        rec["notes"].append("compile_error: " + compile_error)
    return rec


def torch_matmul_peaks(n: int = 2048, reps: int = 5) -> dict:
    """Best matmul TFLOP/s per dtype under PyTorch on its device."""
    device = torch_device()
    if device.type == "cuda":
        n = max(n, 8192)  # small matmuls do not fill a GPU
    out = {}
    for name, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
        a = torch.randn(n, n, device=device).to(dtype)
        a @ a
        sync_device(device)
        best = math.inf
        for _ in range(reps):
            t0 = time.perf_counter()
            a @ a
            sync_device(device)
            best = min(best, time.perf_counter() - t0)
        out[name] = 2.0 * n**3 / best / 1e12
    return {"schema": SCHEMA, "kind": "torch_peak", "peaks": out, "matmul_size": n, **torch_device_info(device)}
