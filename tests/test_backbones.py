"""The model registry and the new backbones against torchvision: specs, initialisation, BatchNorm,
frozen blocks, stochastic depth, input sizes, dtypes and FLOPs.

Output parity with converted weights, and the train step, live in test_convert_backbones.py.
"""

import copy
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
import torch
import torchvision

from alexnet_jax import convert, errors, models
from alexnet_jax.models import convnext, layers

sys.path.insert(0, str(Path(__file__).parent))
from float_spread import module_spread, relative, tolerance, torch_spread  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BACKBONES = ("resnet18", "resnet50", "convnext_tiny", "vit_b_16")
SIGMAS = 5.0  # sampling-error allowance for the initialisation statistics
KS_P_VALUE = 1e-6  # two-sample Kolmogorov-Smirnov: a sample of ours against one of torch's


def _python(code: str) -> subprocess.CompletedProcess:
    """`python -c code` in a fresh interpreter at the repository root."""
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)


def _shapes(model, size, batch=1):
    return jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((batch, size, size, 3))))


def _random_resnet18(seed=0):
    """torchvision's resnet18 with non-trivial BatchNorm parameters and statistics, and its variables."""
    torch.manual_seed(seed)
    module = torchvision.models.resnet18(weights=None)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, value in module.state_dict().items():
            if name.rsplit(".", 1)[-1] in ("weight", "running_var") and value.ndim == 1:
                value.copy_(0.5 + torch.rand(value.shape, generator=generator))
            elif name.rsplit(".", 1)[-1] in ("bias", "running_mean") and value.ndim == 1:
                value.copy_(0.2 * torch.randn(value.shape, generator=generator))
    return module, convert.convert_state_dict(module.state_dict(), "resnet18")


# --------------------------------------------------------------------------- the registry


@pytest.mark.parametrize(
    "name", [m for m in models.TORCH_MODEL_NAMES if models.torch_source(m).framework == "torchvision"]
)  # timm's (EfficientNet-Lite): test_efficientnet_lite.test_registry_matches_timm
def test_specs_match_torchvision(name):
    spec = models.get_spec(name)
    source = models.torch_source(name)
    reference = getattr(torchvision.models, source.builder)(weights=None)
    shapes = models.param_shapes(1000, name)
    assert sum(int(np.prod(s)) for s in shapes.values()) == sum(p.numel() for p in reference.parameters())
    # Blocks, from input to head, and the head partition the top-level parameters.
    grouped = [top for block in spec.blocks for top in block.params] + [spec.head]
    assert sorted(grouped) == sorted({path[0] for path in shapes}) and len(grouped) == len(set(grouped))
    for block in spec.blocks:
        for path in block.torch_modules:  # torchvision modules, or parameters of the model itself (ViT's)
            assert path in dict(reference.named_modules()) or path in dict(reference.named_parameters()), path
        reference.get_submodule(block.torch_output)
    reference.get_submodule(spec.torch_head)
    for _, path in source.extra_taps:
        reference.get_submodule(path)
    assert spec.batch_norm == any(isinstance(m, torch.nn.BatchNorm2d) for m in reference.modules())
    # torchvision's IMAGENET1K_V1 entry: url, file name, hash prefix, minimum size.
    weights = torchvision.models.get_weight(source.imagenet.enum)
    assert weights in list(torchvision.models.get_model_weights(source.builder))
    assert source.imagenet.url == weights.url and source.imagenet.filename == weights.url.rsplit("/", 1)[-1]
    assert source.imagenet.sha256_prefix in source.imagenet.filename and len(source.imagenet.sha256_prefix) == 8
    if name != "vit_b_16":  # torchvision's ViT takes only its image_size; ours interpolates (below)
        assert weights.meta["min_size"] == (spec.min_input_size, spec.min_input_size)
    assert source.parity_sizes[0] == (224, 224) and len(source.parity_sizes) >= 2
    if source.timm_architecture:
        import timm

        assert source.timm_architecture in timm.list_models()
    assert convert.IMAGENET_FILENAME == models.torch_source("alexnet").imagenet.filename == "alexnet-owt-7be5be79.pth"


def test_the_test_model_is_registered_without_a_torch_source():
    """`tiny` trains like the others (blocks and head partition its parameters, BatchNorm, dropout), and
    anything that needs torch weights refuses it in one line naming it and the models that have them."""
    spec = models.get_spec("tiny")
    assert "tiny" in models.MODEL_NAMES and "tiny" not in models.TORCH_MODEL_NAMES and spec.torch is None
    shapes = models.variable_shapes("tiny", 4)
    grouped = [top for block in spec.blocks for top in block.params] + [spec.head]
    assert sorted(grouped) == sorted({path[1] for path in shapes if path[0] == "params"})
    assert spec.batch_norm and {path[0] for path in shapes} == {"params", "batch_stats"}
    assert models.count_params(models.init_variables("tiny", jax.random.key(0), 4)["params"]) < 2_000
    for refuse in (
        lambda: models.torch_source("tiny"),
        lambda: convert.find_imagenet_checkpoint(model="tiny"),
        lambda: convert.run_conversion(model="tiny", log=lambda *a: None),
        lambda: convert.convert_state_dict({}, "tiny"),
    ):
        with pytest.raises(errors.NoTorchSource) as info:
            refuse()
        message = str(info.value)
        assert "\n" not in message and "'tiny'" in message and ", ".join(models.TORCH_MODEL_NAMES) in message


def test_get_model_options_and_errors():
    assert isinstance(models.get_model(), models.AlexNet)
    model = models.get_model("resnet50", 4, dtype="bfloat16", frozen=["stem", "layer1"])
    assert model.num_classes == 4 and model.dtype == jnp.bfloat16 and model.frozen == ("stem", "layer1")
    assert models.get_model("convnext_tiny").drop_path_rate == 0.1  # torchvision's default
    with pytest.raises(ValueError, match="unknown model 'resnet34'.*resnet18"):
        models.get_model("resnet34")
    with pytest.raises(ValueError, match="resnet18 has no option 'dropout_rate'; it takes conv_impl, dtype, frozen"):
        models.get_model("resnet18", dropout_rate=0.5)
    with pytest.raises(ValueError, match=r"frozen=\['layer5'\] names no block; its blocks are stem, layer1"):
        models.get_model("resnet18", frozen=("layer5",))
    assert models.get_spec("vit_b_16").block_names[:2] == ("embedding", "encoder_layer_0")
    assert models.get_spec("convnext_tiny").blocks[2].params == ("features_2", "features_3")


@pytest.mark.parametrize(
    "name, smallest, refused, message",
    [
        ("resnet18", 1, None, None),
        ("convnext_tiny", 32, (31, 31), "at least 32x32"),
        ("vit_b_16", 16, (15, 15), "at least 16x16"),
        ("vit_b_16", 16, (32, 48), "square images whose side is a multiple of 16"),
        ("vit_b_16", 16, (40, 40), "square images whose side is a multiple of 16"),
    ],
)
def test_input_sizes(name, smallest, refused, message):
    model = models.get_model(name)
    variables = _shapes(model, models.get_spec(name).default_input_size)
    logits = jax.eval_shape(lambda v: model.apply(v, jnp.zeros((2, smallest, smallest, 3))), variables)
    assert logits.shape == (2, 1000) and logits.dtype == jnp.float32
    if refused:
        with pytest.raises(ValueError, match=message):
            jax.eval_shape(lambda v: model.apply(v, jnp.zeros((2, *refused, 3))), variables)
    with pytest.raises(ValueError, match="NHWC"):
        jax.eval_shape(lambda v: model.apply(v, jnp.zeros((2, 3, 64, 64))), variables)
    if name == "convnext_tiny":  # torchvision refuses it too
        with pytest.raises(RuntimeError):
            torchvision.models.convnext_tiny()(torch.zeros(1, 3, 31, 31))


def test_forward_flops_come_from_xla():
    """XLA's count of the compiled forward pass, near 2 x torchvision's multiply-adds ('_ops'). XLA leaves
    out the taps that fall on a convolution's zero padding (AlexNet, ResNet: 7-8 % fewer) and counts
    elementwise work too (ConvNeXt's LayerNorms and GELUs: 6 % more)."""
    for name in ("alexnet", "resnet18"):
        flops = models.forward_flops(name, 224)
        macs = torchvision.models.get_weight(models.torch_source(name).imagenet.enum).meta["_ops"] * 1e9
        assert 0.9 <= flops / (2 * macs) <= 1.1, (name, flops, macs)
        assert models.forward_flops(name, 224) is flops  # cached
    assert models.forward_flops("resnet18", 112) < 0.3 * models.forward_flops("resnet18", 224)


# --------------------------------------------------------------------------- initialisation


# ResNet-50 shares ResNet-18's init code, Lite1-4 Lite0's. XLA takes ~20 s on 2 cores to compile Lite0's init.
@pytest.mark.parametrize(
    "name", ("resnet18", "convnext_tiny", "vit_b_16", pytest.param("efficientnet_lite0", marks=pytest.mark.slow))
)
def test_init_statistics_match_torchvision(name):
    """Each tensor, ours against torchvision's (timm's for EfficientNet-Lite: TensorFlow's init): constants
    equal; otherwise the same distribution (Kolmogorov-Smirnov on samples), mean and standard deviation
    within sampling error."""
    source = models.torch_source(name)
    ours = models.init_variables(name, jax.random.key(0), 1000)
    torch.manual_seed(0)
    reference = source.build_reference(1000, 224)
    if source.framework == "timm":  # ours is the classifier timm gives a finetune (PyTorch's Linear default)
        reference.reset_classifier(1000)
    theirs = convert.convert_state_dict(reference.state_dict(), name, naming=source.framework)
    assert jax.tree_util.tree_structure(ours) == jax.tree_util.tree_structure(theirs)
    rng = np.random.default_rng(0)
    checked = 0
    for (path, mine), reference in zip(
        jax.tree_util.tree_leaves_with_path(ours), jax.tree_util.tree_leaves(theirs), strict=True
    ):
        mine, reference = np.asarray(mine, np.float64).ravel(), np.asarray(reference, np.float64).ravel()
        where = jax.tree_util.keystr(path)
        if np.all(reference == reference[0]):
            np.testing.assert_array_equal(mine, np.full_like(mine, reference[0]), err_msg=where)
            continue
        sample = rng.choice(mine.size, min(mine.size, 20_000), replace=False)
        assert scipy.stats.ks_2samp(mine[sample], reference[sample]).pvalue > KS_P_VALUE, where
        # Both inverse-CDF truncated-normal samplers can return the clamp bound (+-2, i.e. 100 sigma for
        # std 0.02) with probability ~1e-7 a draw; one such value moves a std by 1 %. Compare the bulk.
        sigma = reference.std()
        mine, reference = mine[np.abs(mine) <= 6 * sigma], reference[np.abs(reference) <= 6 * sigma]
        n, sigma = min(mine.size, reference.size), reference.std()
        kurtosis = scipy.stats.kurtosis(reference, fisher=False)  # sd(s) / sigma ~ sqrt((kurtosis - 1) / 4n)
        assert abs(mine.mean() - reference.mean()) <= SIGMAS * np.sqrt(2 / n) * sigma, where
        assert abs(mine.std() / sigma - 1) <= SIGMAS * np.sqrt(2 * (kurtosis - 1) / (4 * n)), where
        checked += 1
    assert checked > 10
    again = models.init_variables(name, jax.random.key(0), 1000)  # deterministic, bit for bit
    for a, b in zip(jax.tree_util.tree_leaves(ours), jax.tree_util.tree_leaves(again), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    head = models.get_spec(name).init_head(jax.random.key(1), 4)  # a fresh head: the module's own init
    reference_head = np.asarray(ours["params"][models.get_spec(name).head]["kernel"])
    assert head["kernel"].shape == (reference_head.shape[0], 4)
    if np.all(reference_head == 0):
        assert not np.any(head["kernel"])
    else:
        assert scipy.stats.ks_2samp(np.asarray(head["kernel"]).ravel(), reference_head.ravel()).pvalue > KS_P_VALUE


# --------------------------------------------------------------------------- BatchNorm, as PyTorch's


def _batch_norm_spread(reference: torch.nn.BatchNorm2d, x_nchw: np.ndarray) -> dict[str, float]:
    """torch's own float32-vs-float64 spread of one train-mode step (output, running mean and variance)
    and of the eval-mode output after it, each relative to its largest value."""

    def run(dtype):
        layer = copy.deepcopy(reference).to(dtype)
        with torch.no_grad():
            train = layer.train()(torch.from_numpy(x_nchw).to(dtype))
            evaluated = layer.eval()(torch.from_numpy(x_nchw).to(dtype))
        return {"train": train, "mean": layer.running_mean, "var": layer.running_var, "eval": evaluated}

    single, double = run(torch.float32), run(torch.float64)
    return {k: relative(single[k].numpy(), double[k].numpy()) for k in single}


def test_batch_norm_is_pytorchs():
    """Train mode: batch mean and biased variance normalise, the unbiased variance goes into running_var,
    momentum 0.1, eps 1e-5; eval mode: the running statistics. `mask` leaves padding out. Against torch:
    within the fixed tolerances, or SPREAD_FACTOR x torch's own float32-vs-float64 spread where that is
    larger (float_spread)."""
    rng = np.random.default_rng(0)
    x = (3 + 2 * rng.standard_normal((4, 5, 6, 7))).astype(np.float32)  # NHWC, n = 120 per channel
    reference = torch.nn.BatchNorm2d(7)
    with torch.no_grad():
        reference.weight.copy_(torch.linspace(0.5, 1.5, 7))
        reference.bias.copy_(torch.linspace(-1, 1, 7))
    variables = {
        "params": {"scale": reference.weight.detach().numpy(), "bias": reference.bias.detach().numpy()},
        "batch_stats": {"mean": np.zeros(7, np.float32), "var": np.ones(7, np.float32)},
    }
    layer = layers.BatchNorm()
    out, updates = layer.apply(variables, x, False, mutable=["batch_stats"])
    spread = _batch_norm_spread(reference, x.transpose(0, 3, 1, 2))  # measured before `reference` moves on
    expected = reference.train()(torch.from_numpy(x.transpose(0, 3, 1, 2))).detach().numpy().transpose(0, 2, 3, 1)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=tolerance(1e-5, spread["train"]))
    for key, theirs in (("mean", reference.running_mean.numpy()), ("var", reference.running_var.numpy())):
        np.testing.assert_allclose(updates["batch_stats"][key], theirs, rtol=tolerance(1e-6, spread[key]))
    biased = x.astype(np.float64).reshape(-1, 7).var(0)
    np.testing.assert_allclose(updates["batch_stats"]["var"], 0.9 + 0.1 * biased * 120 / 119, rtol=1e-6)

    stats = {"params": variables["params"], "batch_stats": updates["batch_stats"]}
    frozen_out = layer.apply(stats, x, True)  # eval mode, or a frozen block in train mode
    expected = reference.eval()(torch.from_numpy(x.transpose(0, 3, 1, 2))).detach().numpy().transpose(0, 2, 3, 1)
    np.testing.assert_allclose(frozen_out, expected, rtol=1e-5, atol=tolerance(1e-5, spread["eval"]))

    padded = np.concatenate([x, np.zeros((2, 5, 6, 7), np.float32)])
    mask = np.array([True] * 4 + [False] * 2)
    masked_out, masked = layer.apply(variables, padded, False, mask, mutable=["batch_stats"])
    np.testing.assert_allclose(masked_out[:4], out, rtol=1e-6, atol=1e-6)
    for key in ("mean", "var"):
        np.testing.assert_allclose(masked["batch_stats"][key], updates["batch_stats"][key], rtol=1e-6)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        layer.apply(variables, x[:1, :1, :1], False, mutable=["batch_stats"])


def _statistics_spread(module: torch.nn.Module, images_nchw: np.ndarray) -> float:
    """The largest float32-vs-float64 spread of any running statistic after one forward of (a copy of) module."""

    def run(dtype):
        copied = copy.deepcopy(module).to(dtype)
        with torch.no_grad():
            copied(torch.from_numpy(images_nchw).to(dtype))
        return {k: v.numpy() for k, v in copied.state_dict().items() if k.endswith(("running_mean", "running_var"))}

    single, double = run(torch.float32), run(torch.float64)
    return max(relative(single[k], double[k]) for k in single)


def test_frozen_blocks_keep_their_running_statistics():
    """resnet18 with frozen=('stem', 'layer1') in train mode is torchvision's with those blocks'
    BatchNorm layers in eval mode: same logits and statistics; the frozen ones stay put. Tolerances:
    fixed, or SPREAD_FACTOR x torch's own float32-vs-float64 spread where that is larger (float_spread)."""
    module, variables = _random_resnet18()
    images = np.random.default_rng(1).standard_normal((4, 3, 64, 64)).astype(np.float32)
    frozen = ("stem", "layer1")
    model = models.get_model("resnet18", 1000, frozen=frozen)
    logits, updates = jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"]))(
        variables, images.transpose(0, 2, 3, 1)
    )
    module.train()
    for path in ("bn1", "layer1"):
        module.get_submodule(path).eval()
    spread = module_spread(module, images)["logits"]  # torch's own float32-vs-float64, on a copy
    stats_spread = _statistics_spread(module, images)
    with torch.no_grad():
        expected = module(torch.from_numpy(images)).numpy()
    assert np.max(np.abs(np.asarray(logits) - expected)) <= tolerance(1e-5, spread) * np.max(np.abs(expected))
    after = convert.convert_state_dict(module.state_dict(), "resnet18")["batch_stats"]
    for top in variables["batch_stats"]:
        for (path, ours), theirs, before in zip(
            jax.tree_util.tree_leaves_with_path(updates["batch_stats"][top]),
            jax.tree_util.tree_leaves(after[top]),
            jax.tree_util.tree_leaves(variables["batch_stats"][top]),
            strict=True,
        ):
            rtol = tolerance(1e-5, stats_spread)
            np.testing.assert_allclose(np.asarray(ours), theirs, rtol=rtol, atol=1e-6, err_msg=f"{top}{path}")
            is_frozen = top in ("bn1", "layer1")
            assert np.array_equal(np.asarray(ours), before) == is_frozen, (top, path)
    # Models without BatchNorm take the option and are unchanged by it.
    for name in ("alexnet", "convnext_tiny", "vit_b_16"):
        spec = models.get_spec(name)
        assert models.get_model(name, frozen=spec.block_names[:1]).frozen == spec.block_names[:1]


def test_bfloat16_compute_keeps_float32_parameters_and_logits():
    _, variables = _random_resnet18()
    images = jnp.asarray(np.random.default_rng(2).standard_normal((2, 64, 64, 3)), jnp.float32)
    full = models.get_model("resnet18").apply(variables, images)
    low = models.get_model("resnet18", dtype=jnp.bfloat16).apply(variables, images)
    assert low.dtype == jnp.float32
    assert float(jnp.max(jnp.abs(low - full))) <= 0.05 * float(jnp.max(jnp.abs(full)))


# --------------------------------------------------------------------------- stochastic depth


def test_stochastic_depth_is_torchvisions():
    """Rates rise linearly over ConvNeXt's 18 blocks as in torchvision; 'row' mode: an example's whole
    branch is dropped or scaled by 1/(1-p); it draws from 'dropout' and is off in eval."""
    reference = torchvision.models.convnext_tiny(stochastic_depth_prob=0.3)
    expected = [block.stochastic_depth.p for stage in reference.features[1::2] for block in stage]
    assert [p for stage in convnext.drop_path_rates(0.3) for p in stage] == expected

    layer = layers.stochastic_depth(0.25)
    x = jnp.ones((4000, 2, 2, 3))
    out = np.asarray(layer.apply({}, x, deterministic=False, rngs={"dropout": jax.random.key(0)}))
    per_row = out.reshape(4000, -1)
    assert np.all((per_row == 0) | np.isclose(per_row, 1 / 0.75)) and np.all(per_row.min(1) == per_row.max(1))
    dropped = np.mean(per_row[:, 0] == 0)
    assert abs(dropped - 0.25) <= SIGMAS * np.sqrt(0.25 * 0.75 / 4000)
    np.testing.assert_array_equal(layer.apply({}, x, deterministic=True), x)
    with pytest.raises(Exception, match="dropout"):
        layer.apply({}, x, deterministic=False)

    torch.manual_seed(0)
    variables = convert.convert_state_dict(torchvision.models.convnext_tiny().state_dict(), "convnext_tiny")
    images = jnp.asarray(np.random.default_rng(3).standard_normal((2, 32, 32, 3)), jnp.float32)
    key = {"dropout": jax.random.key(4)}
    eval_logits = models.get_model("convnext_tiny").apply(variables, images)
    no_drop = models.get_model("convnext_tiny", drop_path_rate=0.0).apply(variables, images, train=True, rngs=key)
    np.testing.assert_array_equal(no_drop, eval_logits)
    dropping = models.get_model("convnext_tiny", drop_path_rate=0.5)
    first = dropping.apply(variables, images, train=True, rngs=key)
    np.testing.assert_array_equal(first, dropping.apply(variables, images, train=True, rngs=key))
    assert not np.allclose(first, eval_logits)


# --------------------------------------------------------------------------- ViT's position embeddings


@pytest.mark.parametrize("grid", (1, 4, 10, 20))
def test_position_embedding_interpolation_is_torchvisions(grid):
    from torchvision.models.vision_transformer import interpolate_embeddings

    from alexnet_jax.models import vit

    stored = np.random.default_rng(grid).standard_normal((1, 197, 8)).astype(np.float32)
    ours = np.asarray(vit.interpolate_pos_embedding(jnp.asarray(stored), grid))

    def theirs_of(embedding):
        return interpolate_embeddings(grid * 16, 16, {"encoder.pos_embedding": embedding})["encoder.pos_embedding"]

    theirs = theirs_of(torch.from_numpy(stored)).numpy()
    spread = torch_spread(theirs_of, stored) * np.max(np.abs(theirs))  # float_spread: torch's own rounding
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=tolerance(1e-5, spread))


def test_importing_models_params_io_and_the_converter_needs_no_torch():
    code = (
        "import sys; import alexnet_jax.models, alexnet_jax.params_io, alexnet_jax.convert; "
        "heavy = ('tensorflow', 'torch', 'torchvision', 'timm', 'huggingface_hub'); "
        "bad = sorted(m for m in heavy if m in sys.modules); "
        "print(','.join(bad)); sys.exit(1 if bad else 0)"
    )
    done = _python(code)
    assert done.returncode == 0, f"imported: {done.stdout.strip()} {done.stderr[-2000:]}"


# --------------------------------------------------------------------------- the config


@pytest.mark.parametrize("name", BACKBONES)
def test_backbones_config(name):
    from alexnet_jax.configs import backbones, paper

    config, base = backbones.get_config(name), paper.get_config()
    options = {k: v for k, v in config.model.items() if k not in ("name", "num_classes")}
    assert config.model.name == name and set(options) == {"dtype", *models.get_spec(name).options}
    assert config.model.num_classes == 0  # the data set's classes, resolved by the plan
    assert models.get_model(name, 4, **options).num_classes == 4
    assert config.optim.learning_rate == pytest.approx(
        backbones.RECIPES[name]["learning_rate"] * 384 / backbones.RECIPE_BATCH[name]
    )
    assert (
        config.normalize == "weights" and config.batch_size == 384 and config.epochs.to_dict() == base.epochs.to_dict()
    )
    for section in ("data", "augment"):
        assert config[section].to_dict() == base[section].to_dict()
    assert base.model.name == "alexnet" and backbones.get_config("alexnet").to_dict() == base.to_dict()
    with pytest.raises(ValueError, match="needs a model after ':'"):
        backbones.get_config()


def test_backbones_config_through_the_config_flag():
    """`--config=alexnet_jax/configs/backbones.py:vit_b_16`, parsed as the train command parses it
    (in-process, with flags of its own)."""
    from absl import flags
    from ml_collections import config_flags

    flag_values = flags.FlagValues()
    config_flags.DEFINE_config_file("config", flag_values=flag_values)
    flag_values(["x", f"--config={REPO / 'alexnet_jax/configs/backbones.py'}:vit_b_16"])
    c = flag_values.config
    assert [c.model.name, c.optim.name, c.optim.clip_grad_norm, c.model.dropout_rate] == ["vit_b_16", "adamw", 1.0, 0.0]
