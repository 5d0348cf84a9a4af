"""The weight converter, its checkpoint forms, its safety and its on-disk format.

A torchvision AlexNet with random weights stands in for ImageNet's (the real file is
tested only where it is already on disk). Parity is checked here independently of the
converter's own report: torchvision and alexnet_jax run on the same inputs.
"""

import contextlib
import copy
import hashlib
import io
import json
import os
import pickle
import socket
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torchvision

from alexnet_jax import convert, errors, models, params_io
from alexnet_jax.convert import __main__ as convert_command
from alexnet_jax.convert import (
    convert_torch_state_dict,
    find_imagenet_checkpoint,
    load_torch_checkpoint,
    run_conversion,
)
from alexnet_jax.convert.parity import torch_model as torch_model_of
from alexnet_jax.errors import CheckpointError, ConversionError, ImageNetWeightsUnavailable
from alexnet_jax.models import AlexNet, count_params

sys.path.insert(0, str(Path(__file__).parent))
from float_spread import module_spread, relative, tolerance  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SIZES = ((224, 224), (100, 100), (257, 300))
# max |jax - torch| relative to max |torch|, float32 on CPU; never less than SPREAD_FACTOR x torch's own
# float32-vs-float64 difference of that output, measured on the same inputs (see float_spread).
TOLERANCE = 1e-4


def _quiet(*args, **kwargs):
    pass


def _subprocess_env(**extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env.pop(convert.IMAGENET_ENV, None)
    env.update(extra)
    return env


def _run_cli(args, cwd, **env):
    return subprocess.run(
        [sys.executable, "-m", "alexnet_jax.convert", *args],
        cwd=cwd,
        env=_subprocess_env(**env),
        capture_output=True,
        text=True,
        timeout=300,
    )


def _closed_port_url():
    with socket.socket() as sock:  # a port that was free a moment ago and now has no listener
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/{convert.IMAGENET_FILENAME}"


def _assert_trees_equal(a, b):
    assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@jax.jit
def _jax_forward(params, images):
    model = AlexNet(num_classes=params["classifier_6"]["bias"].shape[0])
    logits, state = model.apply({"params": params}, images, capture=True, mutable=["intermediates"])
    return logits, state["intermediates"]["features"][0], state["intermediates"]["avgpool"][0]


def _compare(torch_model, params, height, width, seed=1):
    """Relative max differences (logits, features, avgpool) on one random batch, and a function giving
    what each may be: tolerance(TOLERANCE, torch's own float32-vs-float64 spread of it on the same
    batch), measured when called (only when an output exceeds TOLERANCE: the spread can only raise it).

    Logits are left out when the heads differ in size (a fresh head vs the checkpoint's).
    """
    images = np.random.default_rng(seed).standard_normal((2, 3, height, width)).astype(np.float32)

    def torch_outputs(module, dtype):
        with torch.no_grad():
            features = module.features(torch.from_numpy(images).to(dtype))
            pooled = module.avgpool(features)
            logits = module.classifier(torch.flatten(pooled, 1))
        return logits.numpy(), features.numpy().transpose(0, 2, 3, 1), pooled.numpy().transpose(0, 2, 3, 1)

    ours = jax.device_get(_jax_forward(jax.tree_util.tree_map(jnp.asarray, params), images.transpose(0, 2, 3, 1)))
    theirs = torch_outputs(torch_model, torch.float32)
    assert [o.shape for o in ours[1:]] == [t.shape for t in theirs[1:]]
    names = ("logits", "features", "avgpool")
    rel = {name: relative(o, t) for name, o, t in zip(names, ours, theirs, strict=True) if o.shape == t.shape}

    def allowed():
        exact = torch_outputs(copy.deepcopy(torch_model).double(), torch.float64)
        return {name: tolerance(TOLERANCE, relative(t, e)) for name, t, e in zip(names, theirs, exact, strict=True)}

    return rel, allowed


def _assert_within(compared, names=None):
    rel, allowed = compared
    over = [name for name in names or rel if rel[name] > TOLERANCE]
    if over:
        limits = allowed()
        for name in over:
            assert rel[name] <= limits[name], (name, rel, limits)


def _assert_report_within_spread(report, state_dict, params, fixed=TOLERANCE):
    """Every output of the converter's parity report within tolerance(fixed, torch's float32-vs-float64
    spread of it), measured on the report's own inputs (numpy seed 0, one draw per size, in order). The
    spread can only raise `fixed`, so it is measured only for a size where some output exceeds `fixed`."""
    model = report["model"]
    spec, source = models.get_spec(model), models.torch_source(model)
    rng = np.random.default_rng(0)
    for row in report["sizes"]:
        images = rng.standard_normal((row["batch"], 3, row["height"], row["width"])).astype(np.float32)
        outputs = {name: d for name, d in row.items() if isinstance(d, dict)}
        assert all(d["scale"] > 0 for d in outputs.values()), row
        over = {name: d["rel"] for name, d in outputs.items() if d["rel"] > fixed}
        if over:
            named = convert.to_reference_names(convert.strip_ddp_prefix(state_dict), model)[0]
            size = row["height"] if source.size_argument else spec.default_input_size
            reference = torch_model_of(model, named, params, size)[0]
            spread = module_spread(reference, images, dict(spec.taps))
            for name, rel in over.items():
                assert rel <= tolerance(fixed, spread[name]), (row["height"], name, rel, spread[name])


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def workdir(module_tmp):
    return module_tmp


@pytest.fixture(scope="module")
def torch_model():
    torch.manual_seed(0)
    return torchvision.models.alexnet(weights=None).eval()


@pytest.fixture(scope="module")
def state_dict(torch_model):
    return torch_model.state_dict()


@pytest.fixture(scope="module")
def pth_path(workdir, state_dict):
    path = workdir / "random_alexnet.pth"
    torch.save(state_dict, path)
    return path


@pytest.fixture(scope="module")
def reference_params(state_dict):
    return convert_torch_state_dict(state_dict)


def _run_command(args) -> tuple[int, str, str]:
    """The convert command with these flags, in this process: (exit code, stdout, stderr). The process
    boundary itself (absl's app.run, exit codes seen by a shell) is tested in test_cli_check_only_and_offline_exit."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = convert_command.run_in_process(list(args))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def cli_1000(workdir, pth_path):
    """The `convert` command (in-process), with its parity report and what it printed."""
    output = workdir / "out1000"
    code, stdout, stderr = _run_command([f"--torch_checkpoint={pth_path}", f"--output={output}"])
    assert code == 0, stderr[-3000:]
    return output, stdout


@pytest.fixture(scope="module")
def converted_4(workdir, pth_path):
    output = workdir / "out4"
    metadata = run_conversion(pth_path, output=output, num_classes=4, seed=0, log=_quiet)
    return output, metadata


# --------------------------------------------------------------------------- parity


def test_cli_1000_classes_matches_torchvision(cli_1000, pth_path, torch_model, reference_params):
    output, stdout = cli_1000
    params = params_io.load_params(output)
    _assert_trees_equal(params, reference_params)
    assert count_params(params) == 61_100_840
    for height, width in SIZES:
        compared = _compare(torch_model, params, height, width)
        assert set(compared[0]) == {"logits", "features", "avgpool"}
        _assert_within(compared)

    metadata = params_io.load_metadata(output)
    assert metadata["num_classes"] == metadata["checkpoint_num_classes"] == 1000
    assert metadata["head"] == "checkpoint"
    assert metadata["source_sha256"] == hashlib.sha256(pth_path.read_bytes()).hexdigest()
    assert metadata["source"]["path"] == str(pth_path.resolve())
    assert {"torch", "torchvision", "jax", "flax"} <= set(metadata["versions"])
    report = metadata["parity"]
    assert [(r["height"], r["width"]) for r in report["sizes"]] == list(SIZES)
    for row in report["sizes"]:
        for output_name in ("logits", "features", "avgpool"):
            d = row[output_name]
            assert d["max_abs"] == pytest.approx(d["rel"] * d["scale"], rel=1e-12)
    _assert_report_within_spread(report, torch_model.state_dict(), params)
    assert "logits" in stdout and "257x300" in stdout  # the printed table


def test_four_class_head_is_fresh_and_backbone_exact(converted_4, reference_params, torch_model, state_dict):
    output, metadata = converted_4
    params = params_io.load_params(output)
    assert count_params(params) == 57_020_228
    assert metadata["num_classes"] == 4 and metadata["checkpoint_num_classes"] == 1000
    assert metadata["head"].startswith("fresh") and "fresh" in metadata["parity"]["head"]
    _assert_report_within_spread(metadata["parity"], state_dict, params)
    backbone = {k: v for k, v in params.items() if k != "classifier_6"}
    _assert_trees_equal(backbone, {k: v for k, v in reference_params.items() if k != "classifier_6"})

    # The head: torchvision's Linear init, U(-1/sqrt(4096), 1/sqrt(4096)) = U(-1/64, 1/64).
    kernel = params["classifier_6"]["kernel"]
    bias = params["classifier_6"]["bias"]
    assert kernel.shape == (4096, 4) and bias.shape == (4,)
    bound = 1 / 64
    assert np.all(np.abs(kernel) <= bound) and np.all(np.abs(bias) <= bound)
    n = kernel.size
    assert abs(kernel.mean()) <= 5 * (bound / np.sqrt(3)) / np.sqrt(n)
    assert abs(kernel.std() - bound / np.sqrt(3)) <= 5 * bound / np.sqrt(15 * n)
    assert np.abs(kernel).max() > 0.99 * bound  # uniform, reaching the bound

    # Features and avgpool come from the checkpoint, so they match the 1000-class torch model.
    for height, width in SIZES:
        _assert_within(_compare(torch_model, params, height, width), ("features", "avgpool"))

    # Same head in torch -> logits match too.
    model4 = torchvision.models.alexnet(weights=None, num_classes=4).eval()
    tensors = dict(state_dict)
    tensors["classifier.6.weight"] = torch.from_numpy(np.ascontiguousarray(kernel.T))
    tensors["classifier.6.bias"] = torch.from_numpy(np.array(bias))
    model4.load_state_dict(tensors)
    _assert_within(_compare(model4, params, 224, 224), ("logits",))


def test_fresh_head_is_seeded(state_dict):
    from alexnet_jax.models import init_head

    default = convert_torch_state_dict(state_dict, num_classes=4)  # rng=None means jax.random.key(0)
    _assert_trees_equal(default["classifier_6"], init_head(jax.random.key(0), 4))
    assert not np.array_equal(default["classifier_6"]["kernel"], np.asarray(init_head(jax.random.key(1), 4)["kernel"]))
    same = convert_torch_state_dict(state_dict, num_classes=1000)  # equal to the checkpoint's: kept
    np.testing.assert_array_equal(same["classifier_6"]["bias"], state_dict["classifier.6.bias"].numpy())


def test_layouts(state_dict, reference_params):
    np.testing.assert_array_equal(
        reference_params["features_0"]["kernel"], state_dict["features.0.weight"].numpy().transpose(2, 3, 1, 0)
    )
    for key in ("classifier.1.weight", "classifier.6.weight"):
        np.testing.assert_array_equal(reference_params[key[:12].replace(".", "_")]["kernel"], state_dict[key].numpy().T)
    np.testing.assert_array_equal(reference_params["features_10"]["bias"], state_dict["features.10.bias"].numpy())
    for leaf in jax.tree_util.tree_leaves(reference_params):
        assert isinstance(leaf, np.ndarray) and leaf.dtype == np.float32 and leaf.flags.c_contiguous
    # The params own their memory: changing the torch tensors afterwards changes nothing.
    assert not any(
        np.may_share_memory(leaf, t.numpy())
        for leaf in jax.tree_util.tree_leaves(reference_params)
        for t in state_dict.values()
    )

    # numpy arrays work as well as torch tensors, and bfloat16 tensors are widened.
    mixed = {k: v.numpy() for k, v in state_dict.items()}
    mixed["features.0.bias"] = state_dict["features.0.bias"].to(torch.bfloat16)
    converted = convert_torch_state_dict(mixed)
    np.testing.assert_array_equal(
        converted["features_0"]["bias"], state_dict["features.0.bias"].to(torch.bfloat16).float().numpy()
    )
    _assert_trees_equal(converted["classifier_1"], reference_params["classifier_1"])


# --------------------------------------------------------------------------- checkpoint forms


def _paper_checkpoint(state_dict):
    """What the paper's scripts saved: DDP-wrapped 4-class model, optimizer state, epoch."""
    torch.manual_seed(1)
    model = torchvision.models.alexnet(weights=None)
    model.load_state_dict(state_dict)
    model.classifier[6] = torch.nn.Linear(4096, 4)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    return model.eval(), {
        "epoch": 154,
        "model_state_dict": {f"module.{k}": v for k, v in model.state_dict().items()},
        "optimizer_state_dict": optimizer.state_dict(),
        "loss": 0.42,
    }


FORMS = {
    "state_dict.pth": (lambda sd: sd, "state dict"),
    "ddp.pth": (lambda sd: {f"module.{k}": v for k, v in sd.items()}, "DDP state dict"),
    "model_state_dict.pth": (
        lambda sd: {"epoch": 3, "model_state_dict": sd, "optimizer_state_dict": {"state": {}, "param_groups": []}},
        "['model_state_dict']",
    ),
    "state_dict_key.pt": (lambda sd: {"state_dict": sd, "epoch": 3}, "['state_dict']"),
    "weights.safetensors": (None, "safetensors"),
}


@pytest.mark.parametrize("name", list(FORMS))
def test_checkpoint_forms(name, workdir, state_dict):
    make, form_text = FORMS[name]
    path = workdir / name
    try:
        if make is None:
            from safetensors.torch import save_file

            save_file({k: v.contiguous() for k, v in state_dict.items()}, str(path))
        else:
            torch.save(make(state_dict), path)
        loaded, form = load_torch_checkpoint(path)
        assert form_text in form
        loaded = convert.strip_ddp_prefix(loaded)  # what convert_torch_state_dict sees
        assert sorted(loaded) == sorted(state_dict)
        for key, value in state_dict.items():
            assert torch.equal(torch.as_tensor(loaded[key]), value), key
    finally:
        path.unlink(missing_ok=True)


def test_paper_training_checkpoint(workdir, state_dict):
    model4, checkpoint = _paper_checkpoint(state_dict)
    path = workdir / "run_049_epoch_154.pth"
    torch.save(checkpoint, path)
    try:
        output = workdir / "paper4"
        metadata = run_conversion(path, output=output, parity=False, log=_quiet)
        assert "model_state_dict" in metadata["source"]["form"] and "DDP" in metadata["source"]["form"]
        assert metadata["num_classes"] == 4 and metadata["head"] == "checkpoint" and metadata["parity"] is None
        params = params_io.load_params(output)
        np.testing.assert_array_equal(params["classifier_6"]["kernel"], model4.classifier[6].weight.detach().numpy().T)
        np.testing.assert_array_equal(
            params["features_3"]["kernel"], model4.features[3].weight.detach().numpy().transpose(2, 3, 1, 0)
        )
        report = convert.parity_report(checkpoint["model_state_dict"], params, sizes=((100, 100),))
        assert report["head"] == "checkpoint"
        _assert_report_within_spread(report, checkpoint["model_state_dict"], params)
    finally:
        path.unlink(missing_ok=True)


# --------------------------------------------------------------------------- safety and errors


class _Payload:
    """Unpickling this runs code: it creates the file named by `marker`."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


def test_malicious_pickle_is_refused_and_never_runs(tmp_path, state_dict):
    marker = tmp_path / "payload_ran"
    # The payload is live: plain pickle would run it.
    pickle.loads(pickle.dumps(_Payload(marker)))
    assert marker.exists()
    marker.unlink()

    zip_path = tmp_path / "evil.pth"
    torch.save(
        {"features.0.weight": _Payload(marker), **{k: v for k, v in state_dict.items() if k != "features.0.weight"}},
        zip_path,
    )
    legacy_path = tmp_path / "evil_legacy.pth"
    with open(legacy_path, "wb") as handle:
        pickle.dump({"model_state_dict": _Payload(marker)}, handle, protocol=2)
    for path in (zip_path, legacy_path):
        with pytest.raises(CheckpointError, match="refused") as info:
            load_torch_checkpoint(path)
        assert str(path) in str(info.value) and "weights_only" in str(info.value)
        with pytest.raises(CheckpointError):
            run_conversion(path, output=tmp_path / "out", parity=False, log=_quiet)
    assert not marker.exists()
    assert not (tmp_path / "out").exists()


def test_whole_model_pickle_is_refused(tmp_path):
    path = tmp_path / "model.pth"
    torch.save(torchvision.models.alexnet(weights=None, num_classes=4), path)
    with pytest.raises(CheckpointError, match="refused"):
        load_torch_checkpoint(path)


def test_shape_missing_and_unexpected_keys_are_named(state_dict, pth_path, tmp_path):
    bad = dict(state_dict)
    bad["classifier.1.weight"] = torch.zeros(4096, 100)
    del bad["features.3.bias"]
    bad["features.1.weight"] = torch.zeros(5)
    with pytest.raises(ConversionError) as info:
        convert_torch_state_dict(bad)
    message = str(info.value)
    assert "'classifier.1.weight': expected shape (4096, 9216), found (4096, 100)" in message
    assert "missing key 'features.3.bias' (expected shape (192,))" in message
    assert "unexpected key 'features.1.weight' (shape (5,))" in message

    no_head = {k: v for k, v in state_dict.items() if not k.startswith("classifier.6")}
    with pytest.raises(ConversionError, match=r"classifier\.6\.weight.*missing"):
        convert_torch_state_dict(no_head)
    bad_bias = dict(state_dict, **{"classifier.6.bias": torch.zeros(7)})
    with pytest.raises(ConversionError, match=r"'classifier\.6\.bias': expected shape \(1000,\), found \(7,\)"):
        convert_torch_state_dict(bad_bias)
    ints = dict(state_dict, **{"features.0.bias": torch.zeros(64, dtype=torch.int64)})
    with pytest.raises(ConversionError, match="features.0.bias.*floating"):
        convert_torch_state_dict(ints)

    # Through the file path, the error also names the file.
    path = tmp_path / "bad.pth"
    torch.save(bad, path)
    with pytest.raises(ConversionError, match=str(path)):
        run_conversion(path, output=tmp_path / "out", parity=False, log=_quiet)
    other = tmp_path / "other.pth"
    torch.save({"epoch": 3, "weights": {"a": 1}}, other)
    with pytest.raises(CheckpointError, match=r"model_state_dict.*top-level keys: \['epoch', 'weights'\]"):
        load_torch_checkpoint(other)
    with pytest.raises(CheckpointError, match="no such file"):
        load_torch_checkpoint(tmp_path / "absent.pth")
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- ImageNet weights


@pytest.fixture
def isolated_imagenet_search(tmp_path, monkeypatch):
    """No ImageNet file anywhere: empty torch home, no env var, an empty cwd."""
    monkeypatch.delenv(convert.IMAGENET_ENV, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_search_order(isolated_imagenet_search, monkeypatch):
    root = isolated_imagenet_search
    assert find_imagenet_checkpoint() is None
    hub = root / "torch_home" / "hub" / "checkpoints" / convert.IMAGENET_FILENAME
    hub.parent.mkdir(parents=True)
    hub.write_bytes(b"not the real file")
    assert find_imagenet_checkpoint() == hub
    local = Path("weights") / convert.IMAGENET_FILENAME
    local.parent.mkdir()
    local.write_bytes(b"not the real file either")
    assert find_imagenet_checkpoint() == local
    env_file = root / "elsewhere.pth"
    env_file.write_bytes(b"x")
    monkeypatch.setenv(convert.IMAGENET_ENV, str(env_file))
    assert find_imagenet_checkpoint() == env_file
    with pytest.raises(CheckpointError, match="sha256"):  # a wrong or truncated file is caught
        find_imagenet_checkpoint(verify=True)
    monkeypatch.setenv(convert.IMAGENET_ENV, str(root / "absent.pth"))
    with pytest.raises(ImageNetWeightsUnavailable, match="absent.pth"):
        find_imagenet_checkpoint()


def test_offline_default_fails_clearly(isolated_imagenet_search, monkeypatch):
    from torchvision.models import AlexNet_Weights

    # torchvision's own download path, pointed at a closed local port.
    monkeypatch.setattr(AlexNet_Weights.IMAGENET1K_V1.value, "url", _closed_port_url())
    with pytest.raises(ImageNetWeightsUnavailable) as info:
        run_conversion(output=isolated_imagenet_search / "out", log=_quiet)
    message = str(info.value)
    for hint in ("--torch_checkpoint", convert.IMAGENET_ENV, "weights/alexnet-owt-7be5be79.pth", "Connection refused"):
        assert hint in message
    assert not (isolated_imagenet_search / "out").exists()
    assert not list((isolated_imagenet_search / "torch_home").rglob("*.pth"))  # no partial download left


def test_cli_check_only_and_offline_exit(tmp_path, monkeypatch):
    """--check_only: exit 3 when the file is not here, nothing downloaded (in-process). Then the command as
    a process (python -m, the one such test of `convert`): exit 1 when the file cannot be had."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.delenv(convert.IMAGENET_ENV, raising=False)
    code, _, stderr = _run_command(["--check_only"])
    assert code == convert.EXIT_NOT_AVAILABLE, stderr[-2000:]
    assert "not available" in stderr and not (tmp_path / "torch_home").exists()  # nothing downloaded
    proc = _run_cli(
        [f"--download_url={_closed_port_url()}", "--output=out"], cwd=tmp_path, TORCH_HOME=str(tmp_path / "torch_home")
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "--torch_checkpoint" in proc.stderr and convert.IMAGENET_ENV in proc.stderr
    assert not (tmp_path / "out").exists()


def test_real_imagenet_weights(tmp_path):
    try:
        path = find_imagenet_checkpoint()
    except ImageNetWeightsUnavailable as error:
        pytest.skip(f"real ImageNet weights not usable: {error}")
    if path is None:
        pytest.skip(
            f"torchvision's {convert.IMAGENET_FILENAME} is not on this machine (set {convert.IMAGENET_ENV} "
            "or put it in the torch hub cache or weights/ to run this test)"
        )
    metadata = run_conversion(output=tmp_path / "imagenet", log=_quiet)
    assert metadata["source_sha256"].startswith(convert.IMAGENET_SHA256_PREFIX)
    assert metadata["num_classes"] == 1000
    params = params_io.load_params(tmp_path / "imagenet")
    _assert_report_within_spread(metadata["parity"], torch.load(path, map_location="cpu", weights_only=True), params)
    assert count_params(params) == 61_100_840
    torch_model = torchvision.models.alexnet(weights=None).eval()
    torch_model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    for height, width in SIZES:
        _assert_within(_compare(torch_model, params, height, width))


# --------------------------------------------------------------------------- params_io


def test_params_io_roundtrip_overwrite_and_checks(workdir, reference_params):
    from alexnet_jax.models import init_head

    target = workdir / "io_target"
    params_io.save_params(target, reference_params, {"note": "first"})
    _assert_trees_equal(params_io.load_params(target), reference_params)
    metadata = params_io.load_metadata(target)
    assert metadata["note"] == "first" and metadata["param_count"] == 61_100_840 and metadata["num_classes"] == 1000

    # Overwrite with a 4-class tree of jax arrays: stored as float32 numpy, old files gone.
    params4 = dict(reference_params, classifier_6=init_head(jax.random.key(3), 4))
    params_io.save_params(target, jax.tree_util.tree_map(jnp.asarray, params4), {"note": "second"})
    _assert_trees_equal(params_io.load_params(target), jax.tree_util.tree_map(np.asarray, params4))
    metadata = json.loads((target / "metadata.json").read_text())
    assert metadata["note"] == "second" and metadata["num_classes"] == 4 and metadata["param_count"] == 57_020_228
    assert [p.name for p in workdir.iterdir() if p.name.startswith(".io_target")] == []  # no leftovers

    metadata["num_classes"] = 1000  # metadata that lies about the head
    (target / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(errors.ParamsDirError, match=r"classifier_6/bias: expected \(1000,\), found \(4,\)"):
        params_io.load_params(target)


def test_params_io_refuses_foreign_directories(tmp_path, reference_params, pth_path):
    foreign = tmp_path / "data"
    foreign.mkdir()
    (foreign / "precious.txt").write_text("keep me")
    with pytest.raises(errors.ParamsDirError, match="refusing to overwrite"):
        params_io.save_params(foreign, reference_params, {})
    with pytest.raises(errors.ParamsDirError, match=str(foreign)):  # before any conversion work
        run_conversion(pth_path, output=foreign, log=_quiet)
    assert (foreign / "precious.txt").read_text() == "keep me"
    with pytest.raises(errors.ParamsDirError, match=str(foreign)):
        params_io.load_params(foreign)
    with pytest.raises(errors.ParamsDirError, match="no metadata.json"):
        params_io.load_metadata(tmp_path / "nowhere")
    (foreign / "metadata.json").write_text(json.dumps({"format": "something/else"}))
    with pytest.raises(errors.ParamsDirError, match="format is 'something/else'"):
        params_io.load_params(foreign)


def test_a_model_without_torch_weights_is_refused_in_one_line(tmp_path, monkeypatch):
    """`--model=tiny` (the test model, no torchvision twin): exit 2 and one line naming it and the models
    that have weights, both for a conversion and for --check_only; nothing written."""
    monkeypatch.chdir(tmp_path)
    for args in (
        ["--model=tiny"],
        ["--model=tiny", "--check_only"],
        ["--model=tiny", f"--torch_checkpoint={tmp_path}"],
    ):
        code, stdout, stderr = _run_command(args)
        assert code == 2 and stdout == "", (args, stdout, stderr)
        assert stderr.count("\n") == 1 and stderr.startswith("error: model 'tiny' has no torchvision or timm twin")
        assert "alexnet, resnet18, resnet50, convnext_tiny, vit_b_16" in stderr
    assert not list(tmp_path.iterdir())
