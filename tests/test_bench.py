"""The benchmark: analytic FLOPs, peaks, the report format, and real --quick smoke runs.

The smoke runs measure a reduced set at CI size and check only the output's shape (JSON
lines that parse, keys present, numbers positive, the Markdown table written); they never
assert on speed. They parse a real command line and call the library in-process (the
PyTorch measurements still run in their own subprocess, as always); one run goes through
`python -m alexnet_jax.bench` for the exit code and the error line.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import run_bench

from alexnet_jax.bench import flops, records, settings
from alexnet_jax.errors import SettingsError

REPO = Path(__file__).resolve().parent.parent


def test_training_flops_are_three_forward_passes_counted_by_xla():
    from alexnet_jax.models import forward_flops

    # XLA counts 1.32 GFLOP for AlexNet's forward at 224 px (4 classes): torchvision's 0.71 GMAC
    # less the taps on the convolutions' zero padding, which XLA does not count.
    assert flops.train_flops_per_image("alexnet", 224) == 3 * forward_flops("alexnet", 224, 4)
    assert flops.train_flops_per_image("alexnet", 224) == pytest.approx(3.95e9, rel=1e-2)
    assert flops.train_flops_per_image("alexnet", 64) < flops.train_flops_per_image("alexnet", 224)


def test_peak_table_and_flag():
    value, source = flops.table_peak("NVIDIA H100 80GB HBM3", "bfloat16")
    assert value == 790.0 and "measured" in source
    assert flops.table_peak("NVIDIA H100 PCIe", "bfloat16")[0] == 756.0
    assert flops.table_peak("cpu: Intel Xeon", "float32") is None
    assert settings.parse_peak_flag("100") == {"bfloat16": 100.0, "float32": 100.0}
    assert settings.parse_peak_flag("bfloat16=790,float32=494.7") == {"bfloat16": 790.0, "float32": 494.7}


def test_finish_record_projects_the_study():
    rec = records.record(
        name="x",
        framework="jax",
        model="alexnet",
        variant="step",
        dtype="bfloat16",
        crop_size=224,
        device_kind="NVIDIA H100 80GB HBM3",
        train_images_per_s=10_000.0,
        eval_images_per_s=30_000.0,
    )
    records.finish_record(rec, {"bfloat16": (790.0, "table")})
    assert rec["achieved_tflops"] == pytest.approx(
        10_000 * flops.train_flops_per_image("alexnet", 224) / 1e12, rel=1e-5
    )
    assert rec["mfu"] == pytest.approx(rec["achieved_tflops"] / 790.0, rel=1e-4)
    epoch_s = 12_000 / 10_000 + 2_034 / 30_000
    assert rec["projected_study_hours"] == pytest.approx(100 * 600 * epoch_s / 3600, rel=1e-4)
    missing = records.finish_record(
        records.record(
            name="y", model="alexnet", dtype="float32", crop_size=64, device_kind="cpu", train_images_per_s=5.0
        ),
        {},
    )
    assert missing["mfu"] is None and "--peak_tflops" in missing["mfu_note"]
    failed = records.finish_record(records.record(name="z", error="TensorFlow missing"), {})
    assert failed["mfu"] is None and failed["mfu_note"]


def check_measurement(rec, crop_size=64):
    assert set(records.MEASUREMENT_KEYS) <= set(rec), sorted(set(records.MEASUREMENT_KEYS) - set(rec))
    assert rec["schema"] == records.SCHEMA and isinstance(rec["notes"], list)
    assert rec["error"] is None, rec["error"]
    assert rec["device"] and rec["device_kind"] and rec["batch_size"] > 0 and rec["crop_size"] == crop_size
    numbers = [rec["train_images_per_s"], rec["eval_images_per_s"]]
    assert any(n is not None for n in numbers)
    for key in (
        "train_images_per_s",
        "eval_images_per_s",
        "step_time_s",
        "compute_time_s",
        "achieved_tflops",
        "mfu",
        "peak_tflops",
        "projected_study_hours",
    ):
        if rec[key] is not None:
            assert rec[key] > 0, (rec["name"], key, rec[key])
    if rec["input_wait_s"] is not None:
        assert rec["input_wait_s"] >= 0


def check_table(md: Path, names: list[str]) -> None:
    table = md.read_text()
    assert "| measurement | dtype |" in table and "0.96 GPU-months" in table
    for name in names:
        assert f"| {name} |" in table


def test_quick_benchmark_output_format(tmp_path, capsys):
    """Every JAX measurement and lever, on the tiny model (the backbone is not what is tested here;
    the PyTorch measurements and the measured peaks are, in test_benchmark_of_another_backbone)."""
    md, jsonl = tmp_path / "bench.md", tmp_path / "bench.jsonl"
    lines = run_bench(
        capsys,
        "--quick",
        "--model=tiny",
        "--batch_size=8",
        "--num_images=48",
        "--steps=1",
        "--warmup=1",
        "--dtypes=float32",
        "--pipelines=on_device,tf_data",
        "--levers=scan,vmap,donate,eval_sync",
        "--vmap_models=2",
        "--scan_steps=2",
        "--torch=",
        "--peak_tflops=float32=0.5,bfloat16=1",
        f"--output_md={md}",
        f"--output_jsonl={jsonl}",
    )
    assert lines == [json.loads(line) for line in jsonl.read_text().splitlines()]
    measurements = [r for r in lines if r["kind"] == "measurement"]
    names = [r["name"] for r in measurements]
    for expected in (
        "jax on_device float32",
        "jax tf_data float32",
        "jax on_device float32 scan x2 unrolled",
        "jax on_device float32 vmap K=2",
        "jax on_device float32 donated",
        "jax on_device float32 not donated",
    ):
        assert expected in names, names
    for rec in measurements:
        check_measurement(rec)
        assert rec["model"] == "tiny"
        if rec["train_images_per_s"]:
            assert rec["train_flops_per_image"] == flops.train_flops_per_image("tiny", 64)
    by_name = {r["name"]: r for r in measurements}
    plain = by_name["jax on_device float32"]
    assert plain["train_images_per_s"] and plain["eval_images_per_s"] and plain["mfu"] is not None
    assert plain["peak_tflops"] == 0.5
    assert by_name["jax on_device float32 vmap K=2"]["models_per_step"] == 2
    assert by_name["jax on_device float32 scan x2 unrolled"]["steps_per_dispatch"] == 2
    summary = lines[-1]
    assert summary["kind"] == "summary" and summary["paper_gpu_months"] == 0.96
    assert summary["projections_hours"] and all(v > 0 for v in summary["projections_hours"].values())
    assert {"float32", "bfloat16"} <= set(summary["peaks"]) and summary["torch_matmul_tflops"] is None
    check_table(md, names)


@pytest.mark.slow
def test_benchmark_of_another_backbone(tmp_path, capsys):
    """--model=resnet18: the trainer's steps with BatchNorm statistics, and torchvision's resnet18 in both
    PyTorch measurements (the paper recipe and the tuned peer, in their subprocess); the MFU from resnet18's
    FLOPs against the peak measured here by both frameworks."""
    md = tmp_path / "bench.md"
    lines = run_bench(
        capsys,
        "--quick",
        "--model=resnet18",
        "--batch_size=4",
        "--num_images=16",
        "--image_size=40",
        "--crop_size=32",
        "--steps=1",
        "--warmup=1",
        "--dtypes=float32",
        "--pipelines=on_device",
        "--levers=",
        "--torch=paper,tuned",
        "--torch_workers=1",
        "--jpeg_size=48",
        f"--output_md={md}",
    )
    measurements = [r for r in lines if r["kind"] == "measurement"]
    assert {r["framework"] for r in measurements} == {"jax", "torch"} and len(measurements) == 3
    for rec in measurements:
        check_measurement(rec, crop_size=32)
        assert rec["model"] == "resnet18"
        assert rec["train_flops_per_image"] == flops.train_flops_per_image("resnet18", 32)
    names = [r["name"] for r in measurements]
    assert "torch paper recipe float32" in names, names
    assert any(n.startswith("torch tuned bf16") for n in names), names
    by_name = {r["name"]: r for r in measurements}
    assert by_name["torch paper recipe float32"]["pipeline"] == "DataLoader+PIL (1 workers)"
    summary = lines[-1]
    assert summary["kind"] == "summary" and set(summary["torch_matmul_tflops"]) == {"float32", "bfloat16"}
    assert all("measured here" in peak["source"] for peak in summary["peaks"].values())
    check_table(md, names)


@pytest.mark.slow
def test_benchmark_of_efficientnet_lite0_beside_timm(tmp_path, capsys):
    """--model=efficientnet_lite0: the JAX step (its depthwise form named in the notes) and timm's
    tf_efficientnet_lite0 in the paper recipe, on the same images; --conv_impl picks the formulations
    and --depthwise overrides the depthwise one."""
    lines = run_bench(
        capsys,
        "--quick",
        "--model=efficientnet_lite0",
        "--depthwise=native",
        "--conv_impl=fast",
        "--batch_size=2",
        "--num_images=8",
        "--image_size=40",
        "--crop_size=32",
        "--steps=1",
        "--warmup=1",
        "--dtypes=float32",
        "--pipelines=on_device",
        "--levers=",
        "--torch=paper",
        "--torch_workers=0",
        "--jpeg_size=40",
        "--peak_tflops=1",
    )
    measurements = [r for r in lines if r["kind"] == "measurement"]
    assert [r["name"] for r in measurements] == ["jax on_device float32", "torch paper recipe float32"]
    jax_rec, torch_rec = measurements
    for rec in measurements:
        check_measurement(rec, crop_size=32)
        assert rec["model"] == "efficientnet_lite0"
    assert "conv_impl=fast: fast convolutions" in jax_rec["notes"]
    assert "depthwise convolutions: native; 1x1 convolutions: matmul" in jax_rec["notes"]
    assert lines[-1]["settings"]["depthwise"] == "native" and lines[-1]["settings"]["conv_impl"] == "fast"


def test_bad_flags_exit_2_with_one_line_naming_the_flag():
    """The benchmark's command line: a crop the model cannot take, a model without a PyTorch twin."""
    env = {**os.environ, "XLA_FLAGS": "", "TF_CPP_MIN_LOG_LEVEL": "2"}
    bad = subprocess.run(
        [sys.executable, "-m", "alexnet_jax.bench", "--quick", "--model=vit_b_16", "--crop_size=60"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "--crop_size=60: vit_b_16 needs at least 16 px, a multiple of 16" in bad.stderr
    with pytest.raises(SettingsError, match="--torch=paper,tuned: tiny has no torchvision or timm twin"):
        settings.Settings(model="tiny", crop_size=32)
    settings.Settings(model="tiny", crop_size=32, torch=())
    with pytest.raises(SettingsError, match="--depthwise=native: resnet18 has no depthwise option"):
        settings.Settings(model="resnet18", depthwise="native")
    with pytest.raises(SettingsError, match="--conv_impl=native: tiny has no conv_impl option"):
        settings.Settings(model="tiny", crop_size=32, torch=(), conv_impl="native")


def test_trainer_benchmark_prints_the_overhead_ratio(tmp_path, capsys):
    jsonl = tmp_path / "trainer.jsonl"
    (line,) = run_bench(
        capsys,
        "--trainer",
        "--model=tiny",
        "--num_images=48",
        "--batch_size=8",
        "--trainer_epochs=2",
        f"--output_jsonl={jsonl}",
    )
    assert line == json.loads(jsonl.read_text())
    assert line["kind"] == "trainer" and line["crop_size"] == 64 and line["epochs"] == 2 and line["model"] == "tiny"
    assert line["trainer_overhead_ratio"] > 0 and line["pure_epoch_s"] > 0 and line["projected_study_hours"] > 0
    assert line["trainer_overhead_ratio"] == pytest.approx(line["trainer_epoch_s"] / line["pure_epoch_s"], rel=1e-2)
    assert set(line["phases_s"]) == {"train_s", "eval_s", "checkpoint_s", "compile_s", "other_s"}
