"""Converted weights against the reference: the same inputs through both, every block's output compared.

The reference is torchvision's own model (timm's for EfficientNet-Lite) loaded with the source
state dict (under the reference's names; a fresh head is copied over from the converted params).
For ViT at a size other than 224 px it is torchvision's model built for that size, loaded through torchvision's
`interpolate_embeddings`, so the apply-time interpolation is checked against torchvision's.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from alexnet_jax.convert.naming import IGNORED_SUFFIX, checkpoint_num_classes, to_numpy
from alexnet_jax.models import get_model, get_spec, num_classes_of, torch_source, variable_shapes

PARITY_TOLERANCE = 1e-4  # max |jax - torch| / max |torch|, per output, float32
PARITY_SIZES = torch_source("alexnet").parity_sizes


def torch_model(model: str, state_dict: Mapping[str, Any], params: Mapping[str, Any], image_size: int = 224):
    """torchvision's `model` holding `state_dict` (torchvision-named), in eval mode; a head of another
    size than the state dict's is taken from `params`. Returns (module, whether the head is the checkpoint's)."""
    import torch

    spec, source = get_spec(model), torch_source(model)
    num_classes = num_classes_of(params, model)
    tensors = {
        k: torch.from_numpy(np.array(to_numpy(v, k))) for k, v in state_dict.items() if not k.endswith(IGNORED_SUFFIX)
    }
    head_from_checkpoint = checkpoint_num_classes(state_dict, model) == num_classes
    if not head_from_checkpoint:
        head = params[spec.head]
        tensors[f"{spec.torch_head}.weight"] = torch.from_numpy(np.ascontiguousarray(np.asarray(head["kernel"]).T))
        tensors[f"{spec.torch_head}.bias"] = torch.from_numpy(np.array(head["bias"]))
    reference = source.build_reference(num_classes, image_size)
    if source.size_argument:  # ViT, built for this size: its position embeddings as torchvision resizes them
        from torchvision.models.vision_transformer import interpolate_embeddings

        tensors = interpolate_embeddings(image_size, reference.patch_size, tensors)
    missing, unexpected = reference.load_state_dict(tensors, strict=False)
    missing = [k for k in missing if not k.endswith(IGNORED_SUFFIX)]  # the counter may be left out of a file
    if missing or unexpected:
        raise RuntimeError(
            f"{source.framework} {model} did not take the state dict: missing {missing}, unexpected {unexpected}"
        )
    return reference.eval(), head_from_checkpoint


def torch_outputs(reference, model: str, images_nchw: np.ndarray) -> dict[str, np.ndarray]:
    """{'logits', every tap}: torchvision's outputs (NHWC where 4-D), caught with forward hooks."""
    import torch

    captured = {}
    handles = []
    for tap, module_path in get_spec(model).taps:

        def hook(_module, _inputs, output, tap=tap):
            captured[tap] = output.detach().clone()

        handles.append(reference.get_submodule(module_path).register_forward_hook(hook))
    try:
        with torch.no_grad():
            captured["logits"] = reference(torch.from_numpy(images_nchw))
    finally:
        for handle in handles:
            handle.remove()
    return {k: (v.numpy().transpose(0, 2, 3, 1) if v.ndim == 4 else v.numpy()) for k, v in captured.items()}


def jax_outputs(model: str, variables: Mapping[str, Any], images_nhwc: np.ndarray) -> dict[str, np.ndarray]:
    """{'logits', every tap}: the Flax model's eval outputs, float32 at full matmul precision."""
    forward = _jax_forward(model, num_classes_of(variables["params"], model))
    with jax.default_matmul_precision("highest"):  # no TF32 on GPUs: compare like with like
        outputs = forward(jax.tree_util.tree_map(jnp.asarray, dict(variables)), jnp.asarray(images_nhwc))
    return {k: np.asarray(v) for k, v in jax.device_get(outputs).items()}


@functools.cache
def _jax_forward(model: str, num_classes: int):
    """One jitted forward per (model, classes); the variables are an argument, since as constants
    XLA would fold them, slowly."""
    flax_model = get_model(model, num_classes)

    def forward(variables, images):
        logits, state = flax_model.apply(variables, images, train=False, capture=True, mutable=["intermediates"])
        sown = {k: v[0] for k, v in state["intermediates"].items()}
        return {"logits": logits, **sown.pop("blocks"), **sown}

    return jax.jit(forward)


def relative_difference(ours: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """max |ours - reference|, max |reference| and their ratio ('rel')."""
    if ours.shape != reference.shape:
        raise ValueError(f"shapes differ: {ours.shape} against torch's {reference.shape}")
    max_abs = float(np.max(np.abs(ours.astype(np.float64) - reference.astype(np.float64))))
    scale = float(np.max(np.abs(reference)))
    return {"max_abs": max_abs, "scale": scale, "rel": max_abs / scale if scale > 0 else max_abs}


def parity_report(
    state_dict: Mapping[str, Any],
    params: Mapping[str, Any],
    sizes=None,
    batch_size: int = 2,
    seed: int = 0,
    *,
    model: str = "alexnet",
    batch_stats: Mapping[str, Any] | None = None,
) -> dict:
    """Run torchvision and alexnet_jax on identical random inputs; compare outputs per size.

    `state_dict` is torchvision-named (a DDP prefix is stripped). For each (height, width) of
    `sizes` (default: the model's parity sizes): max |jax - torch| and that divided by max |torch|
    ("rel") for the logits and every block's output (for AlexNet also the maps after `features`
    and `avgpool`). If params carry a fresh head, torch gets the same head, so the logits stay
    comparable.
    """
    from alexnet_jax.convert.files import strip_ddp_prefix

    spec, source = get_spec(model), torch_source(model)
    state_dict = strip_ddp_prefix(state_dict)
    variables = {"params": params} | ({"batch_stats": batch_stats} if batch_stats is not None else {})
    collections = {path[0] for path in variable_shapes(model, num_classes_of(params, model))}
    if set(variables) != collections:
        raise ValueError(f"{model} needs the variables {sorted(collections)}, got {sorted(variables)}")
    rows, references, head_from_checkpoint = [], {}, True
    rng = np.random.default_rng(seed)
    for height, width in sizes or source.parity_sizes:
        reference_size = height if source.size_argument else spec.default_input_size
        if reference_size not in references:
            references[reference_size] = torch_model(model, state_dict, params, reference_size)
        reference, head_from_checkpoint = references[reference_size]
        images = rng.standard_normal((batch_size, 3, height, width)).astype(np.float32)  # NCHW, as torch takes it
        theirs = torch_outputs(reference, model, images)
        ours = jax_outputs(model, variables, images.transpose(0, 2, 3, 1))
        row = {"height": height, "width": width, "batch": batch_size}
        row.update(
            {name: relative_difference(ours[name], theirs[name]) for name in ("logits", *(t for t, _ in spec.taps))}
        )
        rows.append(row)
    return {
        "model": model,
        "reference": f"{source.framework} {source.builder}",
        "inputs": f"standard normal, NCHW float32, numpy seed {seed}",
        "head": "checkpoint" if head_from_checkpoint else "fresh (same head loaded into torchvision)",
        "jax_backend": jax.default_backend(),
        "sizes": rows,
        "max_rel": max(d["rel"] for row in rows for d in row.values() if isinstance(d, dict)),
    }


def format_parity_table(report: Mapping[str, Any]) -> str:
    lines = [
        f"Parity vs {report.get('reference', 'torchvision')} (head: {report['head']}; inputs: {report['inputs']}; "
        f"jax on {report['jax_backend']})",
        f"{'input':>9}  {'output':<17} {'max |diff|':>11} {'max |torch|':>12} {'relative':>10}",
    ]
    for row in report["sizes"]:
        size = f"{row['height']:>4}x{row['width']:<4}"
        for output, d in row.items():
            if isinstance(d, dict):
                lines.append(f"{size}  {output:<17} {d['max_abs']:>11.3e} {d['scale']:>12.4g} {d['rel']:>10.3e}")
    return "\n".join(lines)
