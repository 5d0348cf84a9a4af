"""Tolerances for parity tests, from the framework's own float32 rounding measured in the test.

A fixed tight tolerance holds only on the CPU it was tuned on: the order of float32 sums
(vector width, threading, the BLAS kernel) differs between x86-64 machines. So a parity test
measures how far torch's float32 result lies from torch's float64 result on the same input
(the spread), and allows `SPREAD_FACTOR` times that, but never less than its own fixed
tolerance: JAX's float32 error and torch's are each about one spread, so two machines that
round differently stay inside it. Since the spread can only raise the fixed tolerance, a costly
measurement (a whole network in float64) is made only when an output exceeds the fixed one.
Where a computation is ill-conditioned (the spread is near the tolerance itself), the test
compares in float64 instead.
"""

import copy

import numpy as np
import torch

SPREAD_FACTOR = 10.0


def relative(ours, reference) -> float:
    """max |ours - reference| / max |reference|, in float64."""
    ours, reference = np.asarray(ours, np.float64), np.asarray(reference, np.float64)
    scale = np.max(np.abs(reference))
    return float(np.max(np.abs(ours - reference)) / scale) if scale > 0 else float(np.max(np.abs(ours)))


def tolerance(fixed: float, spread: float) -> float:
    """The larger of a test's fixed tolerance and SPREAD_FACTOR x the measured float32-vs-float64 spread."""
    return max(fixed, SPREAD_FACTOR * spread)


def torch_spread(function, *arrays) -> float:
    """How far `function` (torch tensors in, one tensor out) in float32 lies from itself in float64."""
    with torch.no_grad():
        single = function(*(torch.as_tensor(np.asarray(a, np.float32)) for a in arrays))
        double = function(*(torch.as_tensor(np.asarray(a, np.float64)) for a in arrays))
    return relative(single.numpy(), double.numpy())


def module_spread(module: torch.nn.Module, images_nchw: np.ndarray, taps: dict[str, str] = ()) -> dict[str, float]:
    """{'logits', every tap}: a torch module's float32 outputs against its float64 copy's, on the same images
    (in the module's current train/eval mode; a module in train mode is copied, so its statistics stay)."""

    def outputs(dtype):
        model = copy.deepcopy(module).to(dtype)
        captured = {}
        for name, path in dict(taps).items():
            model.get_submodule(path).register_forward_hook(
                lambda _m, _i, out, name=name: captured.__setitem__(name, out.detach())
            )
        with torch.no_grad():
            captured["logits"] = model(torch.from_numpy(images_nchw).to(dtype))
        return {k: v.numpy() for k, v in captured.items()}

    single, double = outputs(torch.float32), outputs(torch.float64)
    return {name: relative(single[name], double[name]) for name in double}
