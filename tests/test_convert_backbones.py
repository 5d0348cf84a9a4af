"""ResNet-18/50, ConvNeXt-Tiny and ViT-B/16 against torchvision and timm, through the real converter.

Random torchvision (and timm) models stand in for trained ones; every tensor that torchvision
initialises to a constant (norm weights and biases, running statistics, layer scale, biases,
ViT's class token and zero head) is randomised first, so that every parameter shows in the
outputs. Each state dict is saved to a file and converted (in-process; the command's exit codes
are tested through it, and as a process in test_convert.py). Then, float32 on CPU: the eval
logits and every block's output at 224 px and another size (the converter's own report, and here
against timm's forward), and one SGD step in train mode (loss and gradients in float32; gradients,
updated parameters and BatchNorm statistics in float64) against torch's. Tolerances: see
float_spread.
"""

import copy
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import timm
import torch
import torchvision

from alexnet_jax import convert, models, params_io
from alexnet_jax.convert.parity import jax_outputs, relative_difference

sys.path.insert(0, str(Path(__file__).parent))
from float_spread import module_spread, tolerance  # noqa: E402
from test_convert import (  # noqa: E402
    _assert_report_within_spread,
    _assert_trees_equal,
    _closed_port_url,
    _quiet,
    _run_command,
)

from alexnet_jax import errors

BACKBONES = ("resnet18", "resnet50", "convnext_tiny", "vit_b_16")
TOLERANCE = 1e-5  # max |jax - torch| / max |torch|: logits, block outputs, BatchNorm statistics; never less
# than SPREAD_FACTOR x torch's own float32-vs-float64 difference, measured (see float_spread)
GRAD_TOLERANCE = 1e-4  # per gradient tensor, relative to its max |torch| (see gradient_errors)
GRAD_FLOOR = 1e-3  # gradients below this fraction of the largest are compared to that, not to themselves
LOSS_TOLERANCE = 1e-6  # |jax - torch| / torch, the mean cross-entropy of the batch
# timm's modules whose outputs end the registry's blocks (its ResNets use torchvision's names).
TIMM_TAPS = {
    "convnext_tiny": {
        "stem": "stem",
        "stage1": "stages.0",
        "stage2": "stages.1",
        "stage3": "stages.2",
        "stage4": "stages.3",
        "final_norm": "head.norm",
    },
}
SLOW = {"resnet50", "vit_b_16"}  # each has one test marked slow: its train step


def randomize_(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Give every constant-initialised float tensor random values of a plausible size: c + U(-1/2, 1/2) *
    max(|c|, 0.1) (so variances and norm weights stay positive); layer scales U(0.5, 1.5)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for key, value in module.state_dict().items():
            if not value.is_floating_point() or not torch.all(value == value.flatten()[0]):
                continue
            noise = torch.rand(value.shape, generator=generator) - 0.5
            if key.endswith(("layer_scale", "gamma")):
                value.copy_(1.0 + noise)
            else:
                constant = float(value.flatten()[0])
                value.copy_(constant + noise * max(abs(constant), 0.1))
    return module


def torchvision_model(name: str, seed: int = 0, **kwargs) -> torch.nn.Module:
    torch.manual_seed(seed)
    return randomize_(getattr(torchvision.models, name)(weights=None, **kwargs), seed)


def timm_model(name: str, seed: int = 1) -> torch.nn.Module:
    torch.manual_seed(seed)
    return randomize_(timm.create_model(name, pretrained=False), seed)


def hooked_outputs(module: torch.nn.Module, taps: dict[str, str], images_nchw: np.ndarray) -> dict[str, np.ndarray]:
    """The logits and the outputs of `taps` ({name: module path}) of a torch model in eval mode, NHWC."""
    captured = {}
    handles = [
        module.get_submodule(path).register_forward_hook(
            lambda _m, _i, out, name=name: captured.__setitem__(name, out.detach().clone())
        )
        for name, path in taps.items()
    ]
    with torch.no_grad():
        captured["logits"] = module.eval()(torch.from_numpy(images_nchw))
    for handle in handles:
        handle.remove()
    return {k: v.numpy().transpose(0, 2, 3, 1) if v.ndim == 4 else v.numpy() for k, v in captured.items()}


def max_relative(ours: dict, theirs: dict) -> dict[str, float]:
    return {name: relative_difference(ours[name], theirs[name])["rel"] for name in theirs}


# --------------------------------------------------------------------------- the converter, for real


class Converted:
    """One random model saved to a file and converted (in-process: the command's exit codes and error
    lines are tested through a real process below and in test_convert.py), with what it printed."""

    def __init__(self, workdir: Path, model: str, source: str):
        self.model, self.source = model, source
        self.torch = timm_model(model) if source == "timm" else torchvision_model(model)
        self.file = workdir / f"{model}_{source}.pth"
        torch.save(self.torch.state_dict(), self.file)
        self.output = workdir / f"{model}_{source}_out"
        printed = []
        convert.run_conversion(self.file, output=self.output, model=model, log=printed.append)
        self.printed = "\n".join(map(str, printed))
        self.variables = params_io.load_variables(self.output)
        self.metadata = params_io.load_metadata(self.output)


@pytest.fixture(scope="module")
def converted(module_tmp):
    cache = {}

    def get(model: str, source: str = "torchvision") -> Converted:
        if (model, source) not in cache:
            cache[model, source] = Converted(module_tmp, model, source)
        return cache[model, source]

    return get


@pytest.mark.parametrize(
    "model, source",
    [(m, "torchvision") for m in BACKBONES] + [(m, "timm") for m in ("resnet18", "resnet50", "convnext_tiny")],
)
def test_cli_conversion_matches_torchvision_and_timm(converted, model, source):
    result = converted(model, source)
    spec = models.get_spec(model)
    metadata = result.metadata
    assert metadata["model"] == model and metadata["format"] == params_io.FORMAT
    assert metadata["num_classes"] == metadata["checkpoint_num_classes"] == 1000 and metadata["head"] == "checkpoint"
    assert metadata["naming"] == ("timm" if source == "timm" and model == "convnext_tiny" else "torchvision")
    assert metadata["param_count"] == sum(p.numel() for p in result.torch.parameters())
    assert set(result.variables) == ({"params", "batch_stats"} if spec.batch_norm else {"params"})
    # The converter's own report: logits and every block, 224 px and another size.
    assert [(r["height"], r["width"]) for r in metadata["parity"]["sizes"]] == list(
        models.torch_source(model).parity_sizes
    )
    _assert_report_within_spread(metadata["parity"], result.torch.state_dict(), result.variables["params"], TOLERANCE)
    if source == "torchvision":
        assert spec.block_names[-1] in result.printed  # the printed table
    else:  # timm's own forward too
        taps = TIMM_TAPS.get(model) or dict(spec.taps)
        rng = np.random.default_rng(5)
        for height, width in models.torch_source(model).parity_sizes:
            images = rng.standard_normal((2, 3, height, width)).astype(np.float32)
            theirs = hooked_outputs(result.torch, taps, images)
            ours = jax_outputs(model, result.variables, images.transpose(0, 2, 3, 1))
            rel = max_relative(ours, theirs)
            assert set(rel) == {"logits", *spec.block_names}
            over = {name: value for name, value in rel.items() if value > TOLERANCE}
            if over:  # the measured spread can only raise TOLERANCE: measured only when needed
                spread = module_spread(result.torch.eval(), images, taps)
                for name, value in over.items():
                    assert value <= tolerance(TOLERANCE, spread[name]), (height, name, value, spread[name])
            blocks = max(rel[name] for name in spec.block_names)
            print(f"measured {model} timm {height}x{width}: logits {rel['logits']:.1e}, blocks max {blocks:.1e}")


@pytest.mark.parametrize("conv_impl", ("native", "fast"))
@pytest.mark.parametrize("model", [pytest.param(m, marks=pytest.mark.slow) if m in SLOW else m for m in BACKBONES])
def test_forward_matches_torchvision_with_either_formulation(converted, model, conv_impl):
    """Logits and every block against torchvision at the smallest parity size, with XLA's convolutions
    and with the CPU formulations (the converter's own report checks 'auto')."""
    result, spec = converted(model), models.get_spec(model)
    sizes = models.torch_source(model).parity_sizes  # ViT's reference takes only its first (224 px)
    height, width = sizes[0] if spec.input_multiple > 1 else min(sizes)
    images = np.random.default_rng(6).standard_normal((2, 3, height, width)).astype(np.float32)
    theirs = hooked_outputs(result.torch, dict(spec.taps), images)
    flax_model = models.get_model(model, 1000, conv_impl=conv_impl)
    with jax.default_matmul_precision("highest"):
        logits, state = flax_model.apply(
            result.variables, images.transpose(0, 2, 3, 1), capture=True, mutable=["intermediates"]
        )
    ours = {"logits": logits} | dict(state["intermediates"]["blocks"][0])
    names = ("logits", *spec.block_names)
    rel = max_relative({k: np.asarray(v) for k, v in ours.items()}, {k: theirs[k] for k in names})
    over = {name: value for name, value in rel.items() if value > TOLERANCE}
    if over:  # the measured spread can only raise TOLERANCE
        spread = module_spread(result.torch.eval(), images, dict(spec.taps))
        for name, value in over.items():
            assert value <= tolerance(TOLERANCE, spread[name]), (name, value, spread[name])
    print(f"measured {model} ({conv_impl}) {height}x{width}: logits {rel['logits']:.1e}, max {max(rel.values()):.1e}")


def test_timm_and_torchvision_names_give_identical_parameters(converted):
    """The same ConvNeXt under both namings. The correspondence here is the state dicts' order
    (both list the same tensors in the same order), independent of the converter's table."""
    timm_side = converted("convnext_tiny", "timm")
    timm_state = timm_side.torch.state_dict()
    reference = torchvision.models.convnext_tiny(weights=None)
    tv_keys = list(reference.state_dict())
    assert len(tv_keys) == len(timm_state)
    renamed = {}
    for tv_key, (timm_key, value) in zip(tv_keys, timm_state.items(), strict=True):
        target_shape = reference.state_dict()[tv_key].shape
        assert value.numel() == target_shape.numel(), (tv_key, timm_key)
        renamed[tv_key] = value.reshape(target_shape)  # timm's gamma is (C,), torchvision's layer_scale (C, 1, 1)
    ours = convert.convert_state_dict(renamed, "convnext_tiny", naming="torchvision")
    _assert_trees_equal(ours, timm_side.variables)
    assert convert.detect_naming(renamed, "convnext_tiny") == "torchvision"
    assert convert.detect_naming(timm_state, "convnext_tiny") == "timm"
    # timm's ResNets share torchvision's names: the same tensors under the same keys.
    resnet = converted("resnet18", "timm")
    assert list(resnet.torch.state_dict()) == list(torchvision.models.resnet18().state_dict())
    _assert_trees_equal(
        convert.convert_state_dict(resnet.torch.state_dict(), "resnet18", naming="timm"), resnet.variables
    )


# --------------------------------------------------------------------------- one SGD step in train mode


def _flat(tree) -> dict[str, np.ndarray]:
    return {jax.tree_util.keystr(p): np.asarray(v, np.float64) for p, v in jax.tree_util.tree_leaves_with_path(tree)}


def gradient_errors(ours: dict, theirs: dict) -> dict[str, float]:
    """Per tensor, max |ours - theirs| / max(max |theirs|, GRAD_FLOOR x the largest gradient anywhere):
    relative, except for tensors whose gradient is ~0 (ViT's key biases: softmax ignores a constant
    added to all of a query's logits, so theirs is exactly zero in exact arithmetic)."""
    largest = max(np.max(np.abs(v)) for v in theirs.values())
    return {
        k: float(np.max(np.abs(ours[k] - theirs[k])) / max(np.max(np.abs(theirs[k])), GRAD_FLOOR * largest))
        for k in theirs
    }


def _torch_train_step(module, model, images, labels, learning_rate, dtype):
    """One SGD step of a copy of `module` in `dtype`: (loss, grads, state after the step), in Flax layout."""
    module = copy.deepcopy(module).to(dtype).train()
    optimizer = torch.optim.SGD(module.parameters(), lr=learning_rate)
    loss = torch.nn.functional.cross_entropy(module(torch.from_numpy(images).to(dtype)), torch.from_numpy(labels))
    loss.backward()
    naming = models.torch_source(model).framework  # the reference's own key names
    grads = {k: p.grad for k, p in module.named_parameters()} | dict(module.named_buffers())
    grads = convert.convert_state_dict(grads, model, naming=naming)["params"]
    optimizer.step()
    return loss.item(), _flat(grads), convert.convert_state_dict(module.state_dict(), model, naming=naming)


def _jax_train_step(model, variables, images, labels, dtype, conv_impl="auto"):
    """(loss, grads, updated batch_stats or None) of the Flax model in train mode, compute dtype `dtype`."""
    spec = models.get_spec(model)
    off = {option: 0.0 for option in ("drop_path_rate", "dropout_rate") if option in spec.options}
    flax_model = models.get_model(model, 1000, dtype=dtype, conv_impl=conv_impl, **off)
    variables = jax.tree_util.tree_map(lambda v: jnp.asarray(v, dtype), variables)
    nhwc = jnp.asarray(images.transpose(0, 2, 3, 1), dtype)

    def loss_fn(params):
        inputs = {"params": params} | ({"batch_stats": variables["batch_stats"]} if spec.batch_norm else {})
        rngs = {"dropout": jax.random.key(0)}
        if spec.batch_norm:
            logits, updates = flax_model.apply(inputs, nhwc, train=True, rngs=rngs, mutable=["batch_stats"])
        else:
            logits, updates = flax_model.apply(inputs, nhwc, train=True, rngs=rngs), {}
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean(), updates

    with jax.default_matmul_precision("highest"):
        (loss, updates), grads = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(variables["params"])
    return float(loss), _flat(grads), (_flat(updates["batch_stats"]) if spec.batch_norm else None)


@pytest.mark.parametrize("conv_impl", ("native", "fast"))
@pytest.mark.parametrize("model", [pytest.param(m, marks=pytest.mark.slow) if m in SLOW else m for m in BACKBONES])
def test_train_step_matches_torch(converted, model, conv_impl):
    """Same weights, same batch, dropout and stochastic depth off: the loss, the gradients, BatchNorm's
    updated running statistics and the SGD-updated parameters of both frameworks agree.

    The float32 step at random init is ill-conditioned: torch's own float32 gradients differ from its
    float64 ones by ~2e-2 per tensor for ResNet-50 on every machine tried, and on a 2-core AMD EPYC
    ResNet-18's JAX and torch float32 gradients differed by 2.7e-2 (`layer1.1.bn2.bias`). So the
    gradients, the updated parameters and the running statistics are compared in float64 (JAX with x64
    against torch in double), where the same mathematics must agree far inside the tolerances. In
    float32, the loss and the gradients are compared within SPREAD_FACTOR x torch's own float32-vs-
    float64 difference of them, measured here (never tighter than LOSS_TOLERANCE, GRAD_TOLERANCE).
    Both formulations of the convolutions (models.layers: XLA's, and the CPU ones) pass.
    """
    result = converted(model, "torchvision")
    # ViT's gradients are comparable only on its stored grid; ConvNeXt at its minimum (torch's float64
    # depthwise convolutions are slow); the ResNets at 64 px, so that layer4's BatchNorm sees 2x2 maps.
    size = {"vit_b_16": 224, "convnext_tiny": 32}.get(model, 64)
    tv_options = {"stochastic_depth_prob": 0.0} if model == "convnext_tiny" else {}
    reference = getattr(torchvision.models, model)(weights=None, **tv_options)
    reference.load_state_dict(result.torch.state_dict())
    # torch's steps do not depend on the formulation: computed for 'native', reused (and dropped) by 'fast'
    torch_steps = _TORCH_STEPS.pop(model, None) if conv_impl == "fast" else _TORCH_STEPS.setdefault(model, {})
    assert_train_step_matches(model, reference, result.variables, size, conv_impl=conv_impl, torch_steps=torch_steps)


_TORCH_STEPS: dict[str, dict] = {}  # model -> its torch steps in float32 and float64, between the two formulations


def assert_train_step_matches(
    model: str,
    reference: torch.nn.Module,
    variables,
    size: int,
    float32_gradients: bool = True,
    conv_impl: str = "auto",
    torch_steps: dict | None = None,
) -> None:
    """One SGD step of `reference` (torch, dropout and stochastic depth off) and of the Flax model holding
    the same `variables`, on one batch of 2 `size` px images: see test_train_step_matches_torch. Without
    `float32_gradients`, gradients are compared in float64 only (a network whose float32 gradients hinge
    on which side of a kink a pre-activation lies within rounding: see test_efficientnet_lite). `torch_steps`:
    a dict that keeps torch's two steps for another call on the same model and weights."""
    spec = models.get_spec(model)
    images = np.random.default_rng(7).standard_normal((2, 3, size, size)).astype(np.float32)
    labels = np.array([141, 999])
    learning_rate = 0.1

    if not torch_steps:
        dtypes = (torch.float32, torch.float64)
        steps = [_torch_train_step(reference, model, images, labels, learning_rate, t) for t in dtypes]
        torch_steps = {} if torch_steps is None else torch_steps
        torch_steps["steps"] = steps
    (torch_loss, torch_grads, _), (exact_loss, exact_grads, torch_after) = torch_steps["steps"]
    jax_loss, jax_grads, _ = _jax_train_step(model, variables, images, labels, jnp.float32, conv_impl)
    loss_spread = abs(torch_loss - exact_loss) / exact_loss
    assert abs(jax_loss - torch_loss) <= tolerance(LOSS_TOLERANCE, loss_spread) * torch_loss, (jax_loss, torch_loss)
    assert set(jax_grads) == set(torch_grads) == set(exact_grads)
    grad_spread = max(gradient_errors(torch_grads, exact_grads).values())
    single = gradient_errors(jax_grads, torch_grads)
    if float32_gradients:
        assert max(single.values()) <= tolerance(GRAD_TOLERANCE, grad_spread), (grad_spread, _worst(single))

    with jax.enable_x64(True):
        double_loss, jax_grads, jax_stats = _jax_train_step(model, variables, images, labels, jnp.float64, conv_impl)
    assert abs(double_loss - exact_loss) <= LOSS_TOLERANCE * exact_loss, (double_loss, exact_loss)
    errors = gradient_errors(jax_grads, exact_grads)
    assert max(errors.values()) <= GRAD_TOLERANCE, _worst(errors)
    print(
        f"measured {model} ({conv_impl}) train step: float32 loss {abs(jax_loss - torch_loss) / torch_loss:.1e} "
        f"(torch's own spread {loss_spread:.1e}), grads {max(single.values()):.1e} (spread {grad_spread:.1e}"
        f"{'' if float32_gradients else ', not compared'}); "
        f"float64 grads {max(errors.values()):.1e}"
    )

    params = _flat(variables["params"])
    updated = {k: params[k] - learning_rate * jax_grads[k] for k in params}
    after = {k: relative_difference(updated[k], v)["rel"] for k, v in _flat(torch_after["params"]).items()}
    assert max(after.values()) <= TOLERANCE, _worst(after)
    if spec.batch_norm:
        before, theirs = _flat(variables["batch_stats"]), _flat(torch_after["batch_stats"])
        stats = {k: relative_difference(jax_stats[k], theirs[k])["rel"] for k in theirs}
        assert max(stats.values()) <= TOLERANCE, _worst(stats)
        print(f"measured {model} train step: BatchNorm running statistics max {max(stats.values()):.1e} (float64)")
        assert all(np.max(np.abs(jax_stats[k] - before[k])) > 0 for k in before)  # every running statistic moved


def _worst(errors: dict[str, float], count: int = 3) -> list[tuple[str, float]]:
    return sorted(errors.items(), key=lambda kv: -kv[1])[:count]


# --------------------------------------------------------------------------- refusals and the other sources


def test_wrong_architecture_is_refused_naming_key_and_shapes(converted, tmp_path):
    """Another network's weights: one line naming it and the --model to pass. A damaged state dict of this
    network: every key named with the expected and the found shape (a long list cut short)."""
    resnet50 = converted("resnet50").torch.state_dict()
    with pytest.raises(errors.ConversionError) as info:
        convert.convert_state_dict(resnet50, "resnet18")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("these are resnet50's weights (torchvision names), not resnet18's: pass --model=resnet50")
    timm_convnext = converted("convnext_tiny", "timm").torch.state_dict()
    with pytest.raises(errors.ConversionError, match=r"these are convnext_tiny's weights \(timm names\), not resnet50"):
        convert.convert_state_dict(timm_convnext, "resnet50")
    with pytest.raises(errors.ConversionError, match="timm key names are not read for vit_b_16; .* torchvision keys"):
        convert.convert_state_dict(timm_convnext, "vit_b_16", naming="timm")
    bad = dict(timm_convnext, **{"stages.2.blocks.4.mlp.fc1.weight": torch.zeros(3, 3)})
    with pytest.raises(
        errors.ConversionError,
        match=r"key 'features\.5\.4\.block\.3\.weight' \(timm: 'stages\.2\.blocks\.4\.mlp\.fc1\.weight'\): "
        r"expected shape \(1536, 384\), found \(3, 3\)",
    ):
        convert.convert_state_dict(bad, "convnext_tiny")
    # Every convolution and running variance of ResNet-18 the wrong shape: no other network's, so each is listed.
    damaged = {
        k: torch.zeros(3, 3) if v.ndim == 4 else torch.ones(2) if k.endswith("running_var") else v
        for k, v in converted("resnet18").torch.state_dict().items()
    }
    with pytest.raises(errors.ConversionError) as info:
        convert.convert_state_dict(damaged, "resnet18")
    message = str(info.value)
    assert message.startswith("state dict (torchvision names) does not match torchvision resnet18:\n")
    assert "key 'conv1.weight': expected shape (64, 3, 7, 7), found (3, 3)" in message
    assert "key 'layer1.0.bn1.running_var': expected shape (64,), found (2,)" in message
    assert "... and " in message and "more" in message  # a long list is cut short
    # Through the command (in-process): exit 2, one line naming the file and the model, nothing written.
    output = tmp_path / "out"
    code, _, stderr = _run_command(
        ["--model=resnet18", f"--torch_checkpoint={converted('resnet50').file}", f"--output={output}"]
    )
    assert code == 2 and stderr.startswith("error: ") and stderr.count("\n") == 1 and "Traceback" not in stderr
    assert str(converted("resnet50").file) in stderr and "pass --model=resnet50" in stderr
    assert not output.exists()


def test_encoder_from_the_hub_gets_a_fresh_head(monkeypatch, module_tmp, tmp_path):
    """A timm encoder (num_classes=0: no fc) as a Hub repository would hold it. The download itself is
    huggingface_hub's; here it returns the file, and everything after it runs for real."""
    import huggingface_hub

    torch.manual_seed(2)
    encoder = randomize_(timm.create_model("resnet18", pretrained=False, num_classes=0), 2)
    path = module_tmp / "pytorch_model.bin"
    torch.save(encoder.state_dict(), path)
    asked = []
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda **kw: asked.append(kw) or str(path))
    with pytest.raises(errors.ConversionError, match=r"'fc\.weight' \(the head\).*missing.*needs num_classes"):
        convert.run_conversion(model="resnet18", hf_repo="someone/encoder", output=tmp_path / "no_head", log=_quiet)
    metadata = convert.run_conversion(
        model="resnet18", hf_repo="someone/encoder", num_classes=4, output=tmp_path / "out", log=_quiet
    )
    assert asked[-1] == {"repo_id": "someone/encoder", "filename": "pytorch_model.bin", "revision": None}
    assert metadata["source"]["kind"] == "huggingface" and metadata["source"]["repo"] == "someone/encoder"
    assert metadata["checkpoint_num_classes"] is None and metadata["head"].startswith("fresh")
    assert metadata["parity"]["head"].startswith("fresh")
    variables = params_io.load_variables(tmp_path / "out")
    _assert_report_within_spread(metadata["parity"], encoder.state_dict(), variables["params"], TOLERANCE)
    assert variables["params"]["fc"]["kernel"].shape == (512, 4)
    encoder_features = encoder.eval()(torch.zeros(1, 3, 64, 64))  # timm's pooled features: fc is Identity
    assert encoder_features.shape == (1, 512)


def test_hub_offline_says_which_file_to_fetch(tmp_path, monkeypatch):
    """The command (in-process) with HF_HUB_OFFLINE set: exit 1 and where to get the file by hand."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # what HF_HUB_OFFLINE=1 sets when huggingface_hub loads
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf_home" / "hub"))
    output = tmp_path / "out"
    code, _, stderr = _run_command(
        [
            "--model=convnext_tiny",
            "--hf_repo=mwalmsley/zoobot-encoder-convnext_tiny",
            "--num_classes=4",
            f"--output={output}",
        ]
    )
    assert code == 1 and "Traceback" not in stderr, stderr[-2000:]
    for hint in (
        "mwalmsley/zoobot-encoder-convnext_tiny/pytorch_model.bin",
        "https://huggingface.co/mwalmsley/zoobot-encoder-convnext_tiny/resolve/main/pytorch_model.bin",
        "--torch_checkpoint=/path/to/pytorch_model.bin",
        "offline mode is enabled",
    ):
        assert hint in stderr, hint
    assert not output.exists()

    # An endpoint nobody listens on (huggingface_hub retries with back-off: its sleeps are skipped here).
    import huggingface_hub.utils._http as hub_http

    endpoint = _closed_port_url().rsplit("/", 1)[0]
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)  # what HF_ENDPOINT sets when huggingface_hub is imported
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", endpoint + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub_cache"))
    monkeypatch.setattr(hub_http.time, "sleep", lambda seconds: None)
    with pytest.raises(errors.HubFileUnavailable) as info:
        convert.download_hub_file("mwalmsley/zoobot-encoder-resnet18")
    message = str(info.value)
    assert f"{endpoint}/mwalmsley/zoobot-encoder-resnet18/resolve/main/pytorch_model.bin" in message
    assert "Connection refused" in message and "--torch_checkpoint" in message


def test_imagenet_files_of_other_models_offline(tmp_path, monkeypatch):
    """Each model's file is looked for under its own name and variable (test_convert.py runs the
    --check_only command itself for AlexNet), and a failed download says how to supply it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.delenv("VIT_B_16_IMAGENET_PTH", raising=False)
    monkeypatch.delenv("RESNET18_IMAGENET_PTH", raising=False)
    assert convert.find_imagenet_checkpoint(model="resnet18") is None
    local = Path("weights") / "resnet18-f37072fd.pth"
    local.parent.mkdir()
    local.write_bytes(b"not the real file")
    assert convert.find_imagenet_checkpoint(model="resnet18") == local
    with pytest.raises(errors.CheckpointError, match="does not start with f37072fd"):
        convert.find_imagenet_checkpoint(verify=True, model="resnet18")
    monkeypatch.setenv("RESNET18_IMAGENET_PTH", str(tmp_path / "absent.pth"))
    with pytest.raises(errors.ImageNetWeightsUnavailable, match="RESNET18_IMAGENET_PTH=.*absent.pth"):
        convert.find_imagenet_checkpoint(model="resnet18")
    local.unlink()
    local.parent.rmdir()

    with pytest.raises(errors.ImageNetWeightsUnavailable) as info:
        convert.run_conversion(model="vit_b_16", download_url=_closed_port_url(), log=_quiet)
    message = str(info.value)
    for hint in (
        "--model=vit_b_16 --torch_checkpoint=/path/to/vit_b_16-c867db91.pth",
        "VIT_B_16_IMAGENET_PTH",
        "weights/vit_b_16-c867db91.pth",
        "https://download.pytorch.org/models/vit_b_16-c867db91.pth",
        "Connection refused",
    ):
        assert hint in message, hint
    assert not (tmp_path / "weights").exists() and not list((tmp_path / "torch_home").rglob("*.pth"))
    assert params_io.default_weights_dir("vit_b_16") == Path("weights") / "vit_b_16_imagenet1k_v1"
    assert params_io.default_weights_dir("alexnet") == params_io.DEFAULT_IMAGENET_DIR == Path("weights/imagenet1k_v1")


def test_safetensors_and_params_directories(converted, tmp_path):
    from safetensors.torch import save_file

    result = converted("resnet18")
    path = tmp_path / "resnet18.safetensors"
    save_file({k: v.contiguous() for k, v in result.torch.state_dict().items()}, str(path))
    convert.run_conversion(path, output=tmp_path / "st", parity=False, model="resnet18", log=_quiet)
    _assert_trees_equal(params_io.load_variables(tmp_path / "st"), result.variables)

    with pytest.raises(errors.ParamsDirError, match="has BatchNorm statistics; read it with params_io.load_variables"):
        params_io.load_params(result.output)
    # A format-1 directory (before the registry) is AlexNet's.
    old = tmp_path / "format1"
    (old / "params").mkdir(parents=True)
    (old / "metadata.json").write_text('{"format": "alexnet_jax.params/1", "num_classes": 4}')
    assert params_io.is_params_dir(old) and params_io.model_of(params_io.load_metadata(old)) == "alexnet"


def test_predict_reads_the_model_from_the_params_directory(converted):
    """What `python -m alexnet_jax.predict` computes (its command line is test_predict's), on converted
    ResNet-18 weights: the model and its BatchNorm statistics come from the directory, the outputs are
    named by number (no training data), and the probabilities are the eval-mode model's on the centre
    crop; the features are the input of the head."""
    from alexnet_jax.inputs import augment
    from alexnet_jax.predict.engine import Forward
    from alexnet_jax.predict.members import load_members

    result = converted("resnet18")
    images = np.random.default_rng(9).integers(0, 256, (2, 256, 256, 3), dtype=np.uint8)
    members, warnings = load_members([result.output])
    assert warnings == [] and members[0].model == "resnet18" and members[0].temperature is None
    assert members[0].class_names == tuple(f"class_{c}" for c in range(1000))
    out = Forward(members, batch_size=4, features=True)(images, 0)
    view = augment.eval_transform(images, augment.center_crop(224))
    logits = models.get_model("resnet18").apply(result.variables, augment.normalize(view, "none"))
    expected = np.asarray(jax.nn.softmax(logits, -1))
    np.testing.assert_allclose(out["probabilities"], expected, rtol=1e-5, atol=1e-7)
    assert out["features"].shape == (2, 512)
    head = result.variables["params"]["fc"]
    np.testing.assert_allclose(out["features"] @ head["kernel"] + head["bias"], logits, rtol=1e-4, atol=1e-4)
