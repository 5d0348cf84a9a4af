"""One measurement as a JSON record: its keys, its derived figures (FLOP/s, MFU, study time), its output."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

from alexnet_jax import paper
from alexnet_jax.bench.flops import train_flops_per_image

SCHEMA = "alexnet_jax.bench/1"
SECONDS_PER_MONTH = 30.44 * 86400
PAPER_CROP_SIZE = 224
MEASUREMENT_KEYS = (
    "schema",
    "kind",
    "name",
    "framework",
    "model",
    "variant",
    "device",
    "device_kind",
    "device_count",
    "batch_size",
    "image_size",
    "crop_size",
    "dtype",
    "pipeline",
    "models_per_step",
    "steps_per_dispatch",
    "timed_steps",
    "train_images_per_s",
    "eval_images_per_s",
    "step_time_s",
    "compute_time_s",
    "input_wait_s",
    "compile_s",
    "train_flops_per_image",
    "achieved_tflops",
    "peak_tflops",
    "peak_source",
    "mfu",
    "mfu_note",
    "projected_study_hours",
    "projected_study_device_months",
    "error",
    "notes",
)


def record(**fields) -> dict:
    """A measurement with every key present (None where not measured); unknown keys are a bug."""
    out = {key: None for key in MEASUREMENT_KEYS}
    out.update(schema=SCHEMA, kind="measurement", notes=[])
    unknown = set(fields) - set(MEASUREMENT_KEYS)
    if unknown:
        raise KeyError(f"unknown measurement keys {sorted(unknown)}")
    out.update(fields)
    return out


def study_seconds(train_images_per_s: float, eval_images_per_s: float) -> float:
    """Wall time of the paper's whole study at these rates: every run, arm and epoch, train and test."""
    epoch_s = paper.TRAIN_SIZE / train_images_per_s + paper.TEST_SIZE / eval_images_per_s
    return paper.RUNS * sum(paper.EPOCHS.values()) * epoch_s


def finish_record(rec: dict, peaks: dict) -> dict:
    """Add FLOP/s, MFU and the projected study time to a measurement."""
    if rec.get("error") or not rec.get("train_images_per_s"):
        if not rec.get("mfu_note"):
            rec["mfu_note"] = "no training rate measured"
        return rec
    rec["train_flops_per_image"] = train_flops_per_image(rec["model"], rec["crop_size"])
    achieved = rec["train_images_per_s"] * rec["train_flops_per_image"] / 1e12
    rec["achieved_tflops"] = round(achieved, 6)
    peak = peaks.get(rec["dtype"])
    if peak:
        rec["peak_tflops"], rec["peak_source"] = peak
        rec["mfu"] = round(achieved / peak[0], 6)
    else:
        rec["mfu_note"] = (
            rec.get("mfu_note") or f"no peak known for {rec['device_kind']} {rec['dtype']}; pass --peak_tflops"
        )
    if rec.get("eval_images_per_s"):
        study_s = study_seconds(rec["train_images_per_s"], rec["eval_images_per_s"])
        rec["projected_study_hours"] = round(study_s / 3600, 3)
        rec["projected_study_device_months"] = round(study_s / SECONDS_PER_MONTH, 4)
        if rec["crop_size"] != PAPER_CROP_SIZE:
            rec["notes"].append(
                f"measured at {rec['crop_size']} px crops, so the projection is not the paper's "
                f"{PAPER_CROP_SIZE} px cost"
            )
    return rec


def emit(rec: dict, sink: list) -> None:
    """Keep `rec` and print it as one JSON line, at once (a crash later loses nothing printed)."""
    sink.append(rec)
    print(json.dumps(rec, allow_nan=False), flush=True)


def cpu_device_kind() -> str:
    """The device_kind of a CPU, its model and core count, in both frameworks' records."""
    return f"cpu: {_cpu_model()} ({os.cpu_count()} cores)"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"
