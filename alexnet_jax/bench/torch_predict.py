"""`bench --predict`, PyTorch side: the plain prediction loop a PyTorch user writes, for comparison.

Imports torch, so it runs only in the benchmark's PyTorch subprocess (`torch_worker.run_worker`,
names `predict_decoded` and `predict_prepared`), never after TensorFlow. The network is --model's
torchvision or timm twin with random weights (`torch_side.reference_model`), in eval mode under
torch.no_grad, float32, with the batch size, resize and centre crop of the JAX side:

  * predict_decoded: a DataLoader (--torch_workers processes) reading the same JPEG files with PIL,
    transforms Resize(image_size), CenterCrop(crop_size), ToTensor, Normalize (ImageNet);
  * predict_prepared: the same 256 px uint8 images resident in memory; per batch an antialiased
    bilinear resize to image_size (what PIL's resize does), the centre crop and the scaling.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torchvision import transforms

from alexnet_jax.bench.predict_side import IMAGENET, batch_rows, prepared_images, write_jpegs
from alexnet_jax.bench.settings import Settings
from alexnet_jax.bench.torch_side import reference_model, sync_device, torch_base, torch_device, versions_note


class JpegFiles(torch.utils.data.Dataset):
    def __init__(self, paths: list[Path], transform):
        self.paths, self.transform = paths, transform

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        with Image.open(self.paths[i]) as image:
            return self.transform(image.convert("RGB"))


def _timed_loop(settings: Settings, batches, predict) -> tuple[float, float]:
    """(seconds of the first batch, seconds per batch over the timed ones): warm-up, then --steps."""
    t0 = time.perf_counter()
    first = None
    for _ in range(settings.warmup):
        predict(next(batches))
        first = first or time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(settings.steps):
        predict(next(batches))
    return first or 0.0, (time.perf_counter() - t0) / settings.steps


def torch_predict(settings: Settings, pipeline: str) -> dict:
    """One PyTorch prediction measurement: `pipeline` is "decoded" or "prepared"."""
    torch.manual_seed(settings.seed)
    device = torch_device()
    model = reference_model(settings).to(device).eval()
    mean = torch.tensor(IMAGENET[0], device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET[1], device=device).view(1, 3, 1, 1)
    bs, crop, size = settings.batch_size, settings.crop_size, settings.image_size
    needed = settings.warmup + settings.steps

    @torch.no_grad()
    def predict(x):
        probabilities = torch.softmax(model(x.to(device, non_blocking=True)), -1)
        return probabilities.cpu().numpy()  # the rows leave the device, as a writer needs them

    with tempfile.TemporaryDirectory(prefix="bench_predict_torch_") as tmp:
        if pipeline == "decoded":
            paths = write_jpegs(Path(tmp), settings)
            transform = transforms.Compose(
                [
                    transforms.Resize((size, size)),
                    transforms.CenterCrop(crop),
                    transforms.ToTensor(),
                    transforms.Normalize(*IMAGENET),
                ]
            )
            order = [paths[i] for b in range(needed) for i in batch_rows(b, bs, len(paths))]
            loader = torch.utils.data.DataLoader(
                JpegFiles(order, transform), batch_size=bs, num_workers=settings.torch_workers
            )
            first, step = _timed_loop(settings, iter(loader), predict)
            label = f"JPEG files, DataLoader+PIL ({settings.torch_workers} workers)"
        else:
            images = torch.from_numpy(prepared_images(settings)).to(device)
            offset = (size - crop) // 2

            def prepare(b):
                x = images[torch.from_numpy(batch_rows(b, bs, len(images))).to(device)]
                x = x.permute(0, 3, 1, 2).float() / 255.0
                if x.shape[-1] != size:
                    x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
                x = x[:, :, offset : offset + crop, offset : offset + crop]
                return ((x - mean) / std).contiguous()  # NCHW, as a DataLoader's batches are

            first, step = _timed_loop(settings, (prepare(b) for b in range(needed)), predict)
            label = "prepared uint8 in memory"
            sync_device(device)
        resident = prepare(0) if pipeline == "prepared" else next(iter(loader))
        t0 = time.perf_counter()
        for _ in range(settings.steps):
            predict(resident)
        compute = (time.perf_counter() - t0) / settings.steps
    rec = torch_base(
        settings,
        device,
        name=f"torch predict {pipeline} float32",
        variant="predict",
        dtype="float32",
        pipeline=label,
        eval_images_per_s=round(bs / step, 3),
        step_time_s=round(step, 6),
        compute_time_s=round(compute, 6),
        input_wait_s=round(max(0.0, step - compute), 6),
        compile_s=round(first, 3),
    )
    rec["mfu_note"] = "prediction: no MFU computed"
    rec["notes"].append(f"eval mode, torch.no_grad, random weights; {versions_note()}")
    return rec
