"""`bench --predict`: the prediction measurements' records and table (shape, never speed).

The fast test runs the JAX side on the tiny model (which has no PyTorch twin, so `--torch=`); the
slow one adds the PyTorch subprocess's plain eval loop for resnet18, as test_bench does for training.
"""

import json

import pytest
from helpers import run_bench

from alexnet_jax.bench import predict_side, settings
from alexnet_jax.errors import SettingsError


def check_rates(rec: dict, model: str, batch_size: int) -> None:
    assert rec["schema"] == "alexnet_jax.bench/1" and rec["kind"] == "measurement" and rec["variant"] == "predict"
    assert rec["error"] is None, rec["error"]
    assert rec["model"] == model and rec["batch_size"] == batch_size and rec["crop_size"] == 32
    assert rec["eval_images_per_s"] > 0 and rec["step_time_s"] > 0 and rec["compute_time_s"] > 0
    assert rec["input_wait_s"] >= 0 and rec["compile_s"] > 0
    assert rec["eval_images_per_s"] == pytest.approx(batch_size / rec["step_time_s"], rel=1e-3)
    assert rec["train_images_per_s"] is None  # nothing is trained


def test_predict_bench_prints_a_positive_rate_per_input(tmp_path, capsys):
    md, jsonl = tmp_path / "predict.md", tmp_path / "predict.jsonl"
    lines = run_bench(
        capsys,
        "--predict",
        "--quick",
        "--model=tiny",
        "--torch=",
        "--batch_size=4",
        "--num_images=6",  # fewer than two batches: the rows wrap around
        "--image_size=40",
        "--crop_size=32",
        "--jpeg_size=24",
        "--steps=2",
        "--warmup=1",
        f"--output_md={md}",
        f"--output_jsonl={jsonl}",
    )
    assert [r["name"] for r in lines] == ["jax predict decoded float32", "jax predict prepared float32"]
    for rec in lines:
        check_rates(rec, "tiny", 4)
        assert rec["framework"] == "jax" and rec["timed_steps"] == 2
    assert lines[0]["pipeline"].startswith("JPEG files") and lines[1]["pipeline"] == "prepared uint8 in memory"
    assert lines == [json.loads(line) for line in jsonl.read_text().splitlines()]
    table = md.read_text()
    assert "| measurement | input | galaxies/s |" in table
    assert "| jax predict decoded float32 |" in table and "| jax predict prepared float32 |" in table
    assert "resize 40 px, centre crop 32 px" in table


def test_batches_wrap_around_the_synthetic_set_and_flags_conflict():
    assert predict_side.batch_rows(1, 4, 6).tolist() == [4, 5, 0, 1]
    with pytest.raises(SettingsError, match="--predict and --trainer"):
        settings.Settings(model="tiny", crop_size=32, torch=(), predict=True, trainer=True)


@pytest.mark.slow
def test_predict_bench_beside_the_plain_pytorch_loop(capsys):
    lines = run_bench(
        capsys,
        "--predict",
        "--quick",
        "--model=resnet18",
        "--batch_size=2",
        "--num_images=4",
        "--image_size=40",
        "--crop_size=32",
        "--jpeg_size=24",
        "--steps=1",
        "--warmup=1",
        "--torch_workers=0",
    )
    names = [r["name"] for r in lines]
    assert names == [
        "jax predict decoded float32",
        "jax predict prepared float32",
        "torch predict decoded float32",
        "torch predict prepared float32",
    ]
    for rec in lines:
        check_rates(rec, "resnet18", 2)
    assert {r["framework"] for r in lines} == {"jax", "torch"}
