"""Each model's FLOPs (from XLA's cost analysis) and the accelerators' peak rates: the two halves of MFU."""

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


def train_flops_per_image(model: str, crop_size: int) -> float:
    """Forward + backward FLOPs of one training image: 3 x the forward pass's FLOPs, which come from
    XLA's cost analysis of the compiled forward (`alexnet_jax.models.forward_flops`; the backward
    does two matmuls or convolutions for each of the forward's)."""
    from alexnet_jax.models import forward_flops

    return 3.0 * forward_flops(model, crop_size, NUM_CLASSES)


def table_peak(device_kind: str, dtype: str) -> tuple[float, str] | None:
    """(TFLOP/s, source) from PEAKS, or None for a device or dtype it does not list."""
    for pattern, peaks in PEAKS:
        if pattern.lower() in device_kind.lower() and dtype in peaks:
            value, source = peaks[dtype]
            return value, f"{source} ({pattern})"
    return None
