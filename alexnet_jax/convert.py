"""Port torchvision AlexNet weights to alexnet_jax's Flax params, and check them.

    python -m alexnet_jax.convert                      # torchvision IMAGENET1K_V1 -> weights/imagenet1k_v1
    python -m alexnet_jax.convert --torch_checkpoint=run_049.pth --output=weights/run_049
    python -m alexnet_jax.convert --num_classes=4      # ImageNet backbone, fresh 4-class head
    python -m alexnet_jax.convert --check_only         # exit 0 if the ImageNet file is here offline, else 3

`--torch_checkpoint` takes a torchvision state dict (.pth/.pt), the same with DDP's
`module.` prefix, a training checkpoint dict holding it under `model_state_dict` or
`state_dict` (what the paper's scripts saved), or a `.safetensors` file. Pickles are read
with `torch.load(weights_only=True)`: a file that would build arbitrary objects is refused
before anything in it runs.

Without `--torch_checkpoint` the ImageNet file `alexnet-owt-7be5be79.pth` is looked up, in
order, at $ALEXNET_IMAGENET_PTH, `weights/alexnet-owt-7be5be79.pth` (relative to the
current directory, i.e. the repo root when run from there) and torch's hub cache
(`torch.hub.get_dir()/checkpoints/`); if none has it, torchvision downloads it the usual
way. Relative paths (`weights/`, the default `--output=weights/imagenet1k_v1`) are
relative to the current directory.

The output directory holds the params as an orbax checkpoint plus `metadata.json`
(source, its sha256, class count, library versions and a parity report against
torchvision on identical inputs); see `alexnet_jax.params_io`.
"""

from __future__ import annotations

import os
import pickle
import sys
import urllib.error
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from alexnet_jax import cli
from alexnet_jax.models import HEAD, AlexNet, init_head, num_classes_of, param_shapes
from alexnet_jax.params_io import DEFAULT_IMAGENET_DIR
from alexnet_jax.toolbox import package_versions, sha256_file

IMAGENET_FILENAME = "alexnet-owt-7be5be79.pth"
IMAGENET_SHA256_PREFIX = "7be5be79"  # torch.hub's convention: the hash prefix is in the file name.
IMAGENET_ENV = "ALEXNET_IMAGENET_PTH"
DEFAULT_OUTPUT = DEFAULT_IMAGENET_DIR  # relative to the current directory
WEIGHTS_DIR = DEFAULT_OUTPUT.parent
PARITY_SIZES = ((224, 224), (100, 100), (257, 300))
PARITY_TOLERANCE = 1e-4  # max |jax - torch| / max |torch|, per output, float32
EXIT_NOT_AVAILABLE = cli.EXIT_UNAVAILABLE  # `--check_only` when the ImageNet file is not here
VERSIONED_PACKAGES = ("torch", "torchvision", "jax", "jaxlib", "flax", "orbax-checkpoint", "numpy", "safetensors")
STATE_DICT_KEYS = ("model_state_dict", "state_dict")  # where training checkpoints keep the weights
DDP_PREFIX = "module."


class ConversionError(ValueError):
    """A state dict that does not fit AlexNet; the message names every bad key."""


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read safely; the message names the file."""


class ImageNetWeightsUnavailable(RuntimeError):
    """The ImageNet file is neither on disk nor downloadable; says how to provide it."""


class ParityError(RuntimeError):
    """Converted weights disagree with torchvision beyond the tolerance."""


# --------------------------------------------------------------------------- conversion


def _torch_key(flax_layer: str, leaf: str) -> str:
    return flax_layer.replace("_", ".") + (".weight" if leaf == "kernel" else ".bias")


def _to_torch_layout(shape: tuple[int, ...]) -> tuple[int, ...]:
    if len(shape) == 4:  # HWIO -> OIHW
        return (shape[3], shape[2], shape[0], shape[1])
    if len(shape) == 2:  # (in, out) -> (out, in)
        return (shape[1], shape[0])
    return shape


def expected_torch_shapes(num_classes: int = 1000) -> dict[str, tuple[int, ...]]:
    """torchvision AlexNet's state-dict keys and shapes for a head of `num_classes`."""
    return {
        _torch_key(layer, leaf): _to_torch_layout(shape) for (layer, leaf), shape in param_shapes(num_classes).items()
    }


def _to_numpy(value: Any, key: str) -> np.ndarray:
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
    """A contiguous copy of `matrix.T`, in row blocks: several times faster than a naive
    copy for the 9216x4096 classifier.1 weight, whose columns are far apart in memory."""
    out = np.empty(matrix.shape[::-1], dtype=np.float32)
    for start in range(0, matrix.shape[0], block):
        out[:, start : start + block] = matrix[start : start + block].T
    return out


def strip_ddp_prefix(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Drop DistributedDataParallel's `module.` prefix when every key carries it."""
    keys = list(state_dict)
    if keys and all(k.startswith(DDP_PREFIX) for k in keys):
        return {k[len(DDP_PREFIX) :]: v for k, v in state_dict.items()}
    return dict(state_dict)


def _checkpoint_num_classes(state_dict: Mapping[str, Any]) -> int | None:
    weight = state_dict.get("classifier.6.weight")
    shape = tuple(getattr(weight, "shape", ()))
    return int(shape[0]) if len(shape) == 2 else None


def convert_torch_state_dict(state_dict: Mapping[str, Any], num_classes: int | None = None, rng=None) -> dict:
    """torchvision AlexNet state dict -> alexnet_jax.models.AlexNet params (float32 numpy leaves).

    Values may be torch tensors or numpy arrays; a `module.` prefix is stripped. Every key
    must be present with torchvision's shape, and no other key may appear: the error lists
    each offender with expected and found shapes. If `num_classes` differs from the
    checkpoint's head, `classifier_6` becomes a fresh head with torchvision's init drawn from
    `rng` (default `jax.random.key(0)`, so the result is reproducible).
    """
    state_dict = strip_ddp_prefix(state_dict)
    ckpt_classes = _checkpoint_num_classes(state_dict)
    if ckpt_classes is None:
        found = getattr(state_dict.get("classifier.6.weight"), "shape", None)
        raise ConversionError(
            "key 'classifier.6.weight' (the head): expected shape (num_classes, 4096), "
            + ("missing" if found is None else f"found {tuple(found)}")
        )
    if num_classes is not None and num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")

    expected = expected_torch_shapes(ckpt_classes)
    problems = []
    for key, shape in expected.items():
        if key not in state_dict:
            problems.append(f"missing key {key!r} (expected shape {shape})")
            continue
        found = tuple(getattr(state_dict[key], "shape", np.shape(state_dict[key])))
        if found != shape:
            problems.append(f"key {key!r}: expected shape {shape}, found {found}")
    for key in state_dict:
        if key not in expected:
            found = tuple(getattr(state_dict[key], "shape", np.shape(state_dict[key])))
            problems.append(f"unexpected key {key!r} (shape {found}); torchvision AlexNet has no such parameter")
    if problems:
        raise ConversionError("state dict does not match torchvision AlexNet:\n  - " + "\n  - ".join(problems))

    params: dict[str, dict[str, np.ndarray]] = {}
    for layer, leaf in param_shapes(ckpt_classes):
        key = _torch_key(layer, leaf)
        value = _to_numpy(state_dict[key], key)
        if value.ndim == 4:
            value = np.ascontiguousarray(value.transpose(2, 3, 1, 0))  # OIHW -> HWIO
        elif value.ndim == 2:
            value = _transpose_2d(value)  # (out, in) -> (in, out); the channel-first flatten needs no more
        else:
            value = np.array(value, dtype=np.float32)  # own copy, not a view of the caller's tensor
        params.setdefault(layer, {})[leaf] = value

    if num_classes is not None and num_classes != ckpt_classes:
        rng = jax.random.key(0) if rng is None else rng
        head = init_head(rng, num_classes, fan_in=params[HEAD]["kernel"].shape[0])
        params[HEAD] = {k: np.asarray(v, dtype=np.float32) for k, v in head.items()}
    return params


# --------------------------------------------------------------------------- reading files


def _is_tensor_like(value: Any) -> bool:
    return hasattr(value, "shape") and (hasattr(value, "detach") or isinstance(value, np.ndarray))


def extract_state_dict(obj: Any, source: str = "checkpoint") -> tuple[dict[str, Any], str]:
    """The model state dict inside a loaded checkpoint, and a description of the form found."""
    if not isinstance(obj, Mapping):
        raise CheckpointError(
            f"{source}: expected a state dict or a checkpoint dict, found {type(obj).__name__}. "
            "Save `model.state_dict()` (not the model object)."
        )
    for key in STATE_DICT_KEYS:
        if isinstance(obj.get(key), Mapping):
            inner, form = extract_state_dict(obj[key], source)
            return inner, f"training checkpoint[{key!r}], {form}"
    non_tensors = [k for k, v in obj.items() if not _is_tensor_like(v)]
    if non_tensors:
        raise CheckpointError(
            f"{source}: neither a state dict (entries {non_tensors[:5]} are not tensors) nor a training "
            f"checkpoint with the weights under one of {list(STATE_DICT_KEYS)}; top-level keys: {list(obj)[:10]}"
        )
    keys = list(obj)
    form = "DDP state dict ('module.' prefix)" if keys and all(k.startswith(DDP_PREFIX) for k in keys) else "state dict"
    return dict(obj), form


def load_torch_checkpoint(path: str | os.PathLike) -> tuple[dict[str, Any], str]:
    """Read a .pth/.pt (safely) or .safetensors file -> (state dict, form description)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    if path.suffix == ".safetensors":
        try:
            try:
                from safetensors.torch import load_file  # keeps bfloat16 readable
            except ImportError:
                from safetensors.numpy import load_file
            return extract_state_dict(load_file(str(path)), str(path))[0], "safetensors state dict"
        except CheckpointError:
            raise
        except Exception as error:  # safetensors raises its own SafetensorError
            raise CheckpointError(f"{path}: not a readable .safetensors file ({error})") from error

    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(
            f"{path}: refused to load. The pickle asks to build objects other than tensors and plain "
            "containers (code could run that way), so torch.load(weights_only=True) stopped before "
            "executing any of it. Only plain state dicts and training-checkpoint dicts are accepted: "
            "in a trusted environment, re-save `model.state_dict()` with torch.save or as .safetensors.\n"
            f"torch said: {str(error).splitlines()[0] if str(error) else type(error).__name__}"
        ) from error
    except (RuntimeError, EOFError, OSError) as error:
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({error})") from error
    state_dict, form = extract_state_dict(obj, str(path))
    return state_dict, form


# --------------------------------------------------------------------------- ImageNet weights


def _torch_hub_dir() -> Path:
    try:
        import torch.hub

        return Path(torch.hub.get_dir())
    except ImportError:  # same rule as torch.hub, for a JAX-only install
        cache = os.getenv("XDG_CACHE_HOME", os.path.join("~", ".cache"))
        return Path(os.path.expanduser(os.getenv("TORCH_HOME", os.path.join(cache, "torch")))) / "hub"


def imagenet_candidates() -> list[tuple[str, Path]]:
    """Where the ImageNet file is looked for, in order, as (description, path)."""
    found = []
    if os.environ.get(IMAGENET_ENV):
        found.append((f"${IMAGENET_ENV}", Path(os.environ[IMAGENET_ENV]).expanduser()))
    found.append(("weights directory", WEIGHTS_DIR / IMAGENET_FILENAME))
    found.append(("torch hub cache", _torch_hub_dir() / "checkpoints" / IMAGENET_FILENAME))
    return found


def verify_imagenet_file(path: str | os.PathLike) -> str:
    """sha256 of the file; raises if it is not torchvision's IMAGENET1K_V1 (e.g. truncated)."""
    digest = sha256_file(path)
    if not digest.startswith(IMAGENET_SHA256_PREFIX):
        raise CheckpointError(
            f"{path}: sha256 {digest[:16]}... does not start with {IMAGENET_SHA256_PREFIX}, so it is not "
            f"torchvision's {IMAGENET_FILENAME} (or the download was cut short). Delete it and convert again, "
            "or pass your own file with --torch_checkpoint."
        )
    return digest


def find_imagenet_checkpoint(verify: bool = False) -> Path | None:
    """The local ImageNet IMAGENET1K_V1 file, or None. Never downloads.

    Order: $ALEXNET_IMAGENET_PTH (must exist if set), weights/alexnet-owt-7be5be79.pth,
    torch.hub.get_dir()/checkpoints/. With `verify`, the sha256 prefix is checked too.
    """
    for description, path in imagenet_candidates():
        if description.startswith("$") and not path.is_file():
            raise ImageNetWeightsUnavailable(f"{IMAGENET_ENV}={path} but there is no such file")
        if path.is_file():
            if verify:
                verify_imagenet_file(path)
            return path
    return None


def _unavailable_message(reason: str) -> str:
    places = "\n".join(f"    {d}: {p}" for d, p in imagenet_candidates())
    return (
        f"torchvision's ImageNet AlexNet weights ({IMAGENET_FILENAME}) are not available: {reason}\n"
        f"  Looked in:\n{places}\n"
        "  To use a local copy, do one of:\n"
        "    python -m alexnet_jax.convert --torch_checkpoint=/path/to/alexnet-owt-7be5be79.pth\n"
        f"    export {IMAGENET_ENV}=/path/to/alexnet-owt-7be5be79.pth\n"
        f"    cp /path/to/alexnet-owt-7be5be79.pth {WEIGHTS_DIR / IMAGENET_FILENAME}\n"
        "  (download it elsewhere from https://download.pytorch.org/models/alexnet-owt-7be5be79.pth)"
    )


def download_imagenet_checkpoint(url: str | None = None) -> tuple[dict[str, Any], Path]:
    """Let torchvision fetch IMAGENET1K_V1 into torch's hub cache -> (state dict, file path).

    `url` replaces torchvision's address (a mirror); the file name and hash check stay.
    """
    import torch.hub
    from torchvision.models import AlexNet_Weights

    weights = AlexNet_Weights.IMAGENET1K_V1
    kwargs = dict(progress=True, check_hash=True, map_location="cpu", weights_only=True)
    try:
        if url is None or url == weights.url:
            state_dict = weights.get_state_dict(**kwargs)
        else:
            state_dict = torch.hub.load_state_dict_from_url(url, file_name=IMAGENET_FILENAME, **kwargs)
    except (urllib.error.URLError, OSError) as error:  # URLError, refused, DNS, timeouts
        raise ImageNetWeightsUnavailable(
            _unavailable_message(f"download from {url or weights.url} failed ({error})")
        ) from error
    except RuntimeError as error:  # torch.hub's hash mismatch
        raise ImageNetWeightsUnavailable(_unavailable_message(f"download failed ({error})")) from error
    return state_dict, Path(torch.hub.get_dir()) / "checkpoints" / IMAGENET_FILENAME


# --------------------------------------------------------------------------- parity


def _torch_reference(state_dict: Mapping[str, Any], params: Mapping[str, Any]):
    """torchvision's alexnet holding the same weights; a replaced head is copied over from params."""
    import torch
    import torchvision

    state_dict = strip_ddp_prefix(state_dict)
    num_classes = num_classes_of(params)
    model = torchvision.models.alexnet(weights=None, num_classes=num_classes)
    tensors = {k: torch.from_numpy(np.array(_to_numpy(v, k))) for k, v in state_dict.items()}
    head_from_checkpoint = _checkpoint_num_classes(state_dict) == num_classes
    if not head_from_checkpoint:
        tensors["classifier.6.weight"] = torch.from_numpy(np.ascontiguousarray(np.asarray(params[HEAD]["kernel"]).T))
        tensors["classifier.6.bias"] = torch.from_numpy(np.array(params[HEAD]["bias"]))
    model.load_state_dict(tensors, strict=True)
    return model.eval(), head_from_checkpoint


def _diff(ours: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    max_abs = float(np.max(np.abs(ours.astype(np.float64) - reference.astype(np.float64))))
    scale = float(np.max(np.abs(reference)))
    return {"max_abs": max_abs, "scale": scale, "rel": max_abs / scale if scale > 0 else max_abs}


def parity_report(
    state_dict: Mapping[str, Any],
    params: Mapping[str, Any],
    sizes=PARITY_SIZES,
    batch_size: int = 2,
    seed: int = 0,
) -> dict:
    """Run torchvision and alexnet_jax on identical random inputs; compare outputs per size.

    For each (height, width): max |jax - torch| and that divided by max |torch| ("rel") for
    the logits, the map after `features` and after the adaptive average pool. If params carry
    a fresh head, torch gets the same head, so the logits remain comparable.
    """
    import torch

    model, head_from_checkpoint = _torch_reference(state_dict, params)
    flax_model = AlexNet(num_classes=num_classes_of(params))
    jax_params = jax.tree_util.tree_map(jnp.asarray, dict(params))

    @jax.jit
    def forward(params, images):  # params as an argument: as constants XLA would fold them, slowly
        logits, state = flax_model.apply(
            {"params": params}, images, train=False, capture=True, mutable=["intermediates"]
        )
        return logits, state["intermediates"]["features"][0], state["intermediates"]["avgpool"][0]

    rows = []
    rng = np.random.default_rng(seed)
    for height, width in sizes:
        images = rng.standard_normal((batch_size, 3, height, width)).astype(np.float32)  # NCHW, as torch takes it
        with torch.no_grad():
            x = torch.from_numpy(images)
            features = model.features(x)
            pooled = model.avgpool(features)
            logits = model.classifier(torch.flatten(pooled, 1))
        with jax.default_matmul_precision("highest"):  # no TF32 on GPUs: compare like with like
            j_logits, j_features, j_pooled = jax.device_get(
                forward(jax_params, jnp.asarray(images.transpose(0, 2, 3, 1)))
            )
        rows.append(
            {
                "height": height,
                "width": width,
                "batch": batch_size,
                "logits": _diff(np.asarray(j_logits), logits.numpy()),
                "features": _diff(np.asarray(j_features), features.numpy().transpose(0, 2, 3, 1)),
                "avgpool": _diff(np.asarray(j_pooled), pooled.numpy().transpose(0, 2, 3, 1)),
            }
        )
    return {
        "inputs": f"standard normal, NCHW float32, numpy seed {seed}",
        "head": "checkpoint" if head_from_checkpoint else "fresh (same head loaded into torchvision)",
        "jax_backend": jax.default_backend(),
        "sizes": rows,
        "max_rel": max(row[o]["rel"] for row in rows for o in ("logits", "features", "avgpool")),
    }


def format_parity_table(report: Mapping[str, Any]) -> str:
    lines = [
        f"Parity vs torchvision (head: {report['head']}; inputs: {report['inputs']}; jax on {report['jax_backend']})",
        f"{'input':>9}  {'output':<9} {'max |diff|':>11} {'max |torch|':>12} {'relative':>10}",
    ]
    for row in report["sizes"]:
        for output in ("logits", "features", "avgpool"):
            d = row[output]
            size = f"{row['height']:>4}x{row['width']:<4}"
            lines.append(f"{size}  {output:<9} {d['max_abs']:>11.3e} {d['scale']:>12.4g} {d['rel']:>10.3e}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- the command


def run_conversion(
    torch_checkpoint: str | os.PathLike | None = None,
    output: str | os.PathLike = DEFAULT_OUTPUT,
    num_classes: int | None = None,
    parity: bool = True,
    seed: int = 0,
    download_url: str | None = None,
    parity_tolerance: float = PARITY_TOLERANCE,
    log=print,
) -> dict:
    """What `python -m alexnet_jax.convert` does; returns the metadata written beside the params."""
    from alexnet_jax.params_io import ensure_replaceable, save_params

    ensure_replaceable(output)  # fail before the slow part, not after it
    if torch_checkpoint is not None:
        path = Path(torch_checkpoint)
        state_dict, form = load_torch_checkpoint(path)
        digest = sha256_file(path)
        source = {"kind": "file", "path": str(path.resolve()), "form": form}
    else:
        path = find_imagenet_checkpoint()
        if path is not None:
            log(f"Using local ImageNet weights: {path}")
            digest = verify_imagenet_file(path)
            state_dict, form = load_torch_checkpoint(path)
        else:
            log("ImageNet weights not found locally; asking torchvision to download them.")
            state_dict, path = download_imagenet_checkpoint(download_url)
            digest = verify_imagenet_file(path)
            form = "state dict"
        source = {"kind": "torchvision AlexNet_Weights.IMAGENET1K_V1", "path": str(path.resolve()), "form": form}

    try:
        params = convert_torch_state_dict(state_dict, num_classes=num_classes, rng=jax.random.key(seed))
    except ConversionError as error:
        raise ConversionError(f"{path}: {error}") from error
    ckpt_classes = _checkpoint_num_classes(strip_ddp_prefix(state_dict))
    fresh_head = num_classes_of(params) != ckpt_classes
    metadata = {
        "source": source,
        "source_sha256": digest,
        "num_classes": num_classes_of(params),
        "checkpoint_num_classes": ckpt_classes,
        "head": f"fresh, torchvision init, jax.random.key({seed})" if fresh_head else "checkpoint",
        "versions": package_versions(VERSIONED_PACKAGES),
    }
    if parity:
        report = parity_report(state_dict, params)
        log(format_parity_table(report))
        metadata["parity"] = report
        if report["max_rel"] > parity_tolerance:
            raise ParityError(
                f"{path}: converted weights differ from torchvision by {report['max_rel']:.3e} (relative) > "
                f"{parity_tolerance:g}; nothing written to {output}"
            )
    else:
        metadata["parity"] = None
    save_params(output, params, metadata)
    log(f"Wrote {metadata['num_classes']}-class params ({source['form']}) to {output}")
    return metadata


def define_flags():
    """Flags exist only when run as a command, so importing this module never clashes with others'."""
    from absl import flags

    flags.DEFINE_string(
        "torch_checkpoint",
        None,
        "PyTorch checkpoint to convert (.pth/.pt state dict, DDP or "
        "training-checkpoint dict, or .safetensors). Default: torchvision's IMAGENET1K_V1.",
    )
    flags.DEFINE_integer(
        "num_classes",
        None,
        "Head size. Default: the checkpoint's. Another value gives a fresh head with torchvision's init.",
        lower_bound=1,
    )
    flags.DEFINE_string("output", str(DEFAULT_OUTPUT), "Output directory (relative to the current directory).")
    flags.DEFINE_boolean("parity", True, "Compare against torchvision on random inputs and store the report.")
    flags.DEFINE_float("parity_tolerance", PARITY_TOLERANCE, "Fail if any relative difference exceeds this.")
    flags.DEFINE_integer("seed", 0, "Seed of the fresh head, when --num_classes differs from the checkpoint.")
    flags.DEFINE_string(
        "download_url",
        None,
        "Fetch IMAGENET1K_V1 from this URL (a mirror) instead of "
        "torchvision's; file name and hash check stay the same.",
    )
    flags.DEFINE_boolean(
        "check_only",
        False,
        "Only say whether the ImageNet file is available offline: "
        f"exit 0 and print its path if so, else exit {EXIT_NOT_AVAILABLE}. Never downloads.",
    )


def main(argv) -> int:
    from absl import flags

    from alexnet_jax.params_io import ParamsDirError

    cli.quiet_library_logs()
    if len(argv) > 1:
        return cli.report_error(f"unexpected arguments: {argv[1:]}", cli.EXIT_BAD_INPUT)
    FLAGS = flags.FLAGS
    if FLAGS.check_only:
        try:
            path = find_imagenet_checkpoint(verify=True)
        except (CheckpointError, ImageNetWeightsUnavailable) as error:
            print(error, file=sys.stderr)
            return EXIT_NOT_AVAILABLE
        if path is None:
            print(_unavailable_message("no local copy (nothing was downloaded)"), file=sys.stderr)
            return EXIT_NOT_AVAILABLE
        print(path)
        return cli.EXIT_OK
    try:
        run_conversion(
            torch_checkpoint=FLAGS.torch_checkpoint,
            output=FLAGS.output,
            num_classes=FLAGS.num_classes,
            parity=FLAGS.parity,
            seed=FLAGS.seed,
            download_url=FLAGS.download_url,
            parity_tolerance=FLAGS.parity_tolerance,
        )
    except (ConversionError, CheckpointError, ParamsDirError) as error:
        return cli.report_error(error, cli.EXIT_BAD_INPUT)
    except (ImageNetWeightsUnavailable, ParityError) as error:
        return cli.report_error(error, cli.EXIT_FAILED)
    return cli.EXIT_OK


def run() -> None:
    """`python -m alexnet_jax.convert` and the `alexnet-jax-convert` script."""
    from absl import app

    define_flags()
    app.run(lambda argv: sys.exit(main(argv)))


if __name__ == "__main__":
    run()
