"""AlexNet's analytic FLOPs and the accelerators' peak rates: the two halves of MFU."""

from __future__ import annotations

from alexnet_jax.bench.workload import NUM_CLASSES

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


def table_peak(device_kind: str, dtype: str) -> tuple[float, str] | None:
    """(TFLOP/s, source) from PEAKS, or None for a device or dtype it does not list."""
    for pattern, peaks in PEAKS:
        if pattern.lower() in device_kind.lower() and dtype in peaks:
            value, source = peaks[dtype]
            return value, f"{source} ({pattern})"
    return None
