"""The benchmark's outputs beyond the measurements: the summary record and the Markdown table."""

from __future__ import annotations

import datetime as dt
import os
import platform

from alexnet_jax import paper
from alexnet_jax.bench.records import SCHEMA, SECONDS_PER_MONTH
from alexnet_jax.bench.settings import Settings
from alexnet_jax.toolbox import package_versions

VERSIONED_PACKAGES = ("jax", "jaxlib", "flax", "optax", "torch", "torchvision", "tensorflow-cpu", "tensorflow")
PAPER_GPU_HOURS = paper.GPU_MONTHS * SECONDS_PER_MONTH / 3600
STUDY_SIZE = (
    f"{paper.RUNS} runs x ({' + '.join(str(n) for n in paper.EPOCHS.values())}) epochs x "
    f"({paper.TRAIN_SIZE:,} train + {paper.TEST_SIZE:,} test images)"
)


def summary_record(records: list[dict], settings: Settings, peaks: dict, torch_peaks: dict | None) -> dict:
    """The last JSON line: the paper's cost, the peaks used, every projection and the fastest."""
    summary = {
        "schema": SCHEMA,
        "kind": "summary",
        "paper_gpu_months": paper.GPU_MONTHS,
        "paper_gpu_hours": round(PAPER_GPU_HOURS, 1),
        "paper_study": {
            "runs": paper.RUNS,
            "epochs": dict(paper.EPOCHS),
            "train_images": paper.TRAIN_SIZE,
            "test_images": paper.TEST_SIZE,
        },
        "peaks": {k: {"tflops": v[0], "source": v[1]} for k, v in peaks.items()},
        "torch_matmul_tflops": torch_peaks,
        "projections_hours": {
            r["name"]: r["projected_study_hours"] for r in records if r.get("projected_study_hours") is not None
        },
        "settings": settings.workload(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    ok = [r for r in records if r.get("projected_study_hours")]
    if ok:
        best = min(ok, key=lambda r: r["projected_study_hours"])
        summary["fastest"] = {
            "name": best["name"],
            "hours": best["projected_study_hours"],
            "device_months": best["projected_study_device_months"],
            "vs_paper": round(paper.GPU_MONTHS / best["projected_study_device_months"], 3),
        }
    return summary


def header(settings: Settings, device_info: dict, peaks: dict, command: str) -> dict:
    """Where and how the table was measured: the lines above it."""
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "device": f"{device_info['device_kind']} x{device_info['device_count']}",
        "host": f"{platform.node()}, {os.cpu_count()} CPU cores, {platform.platform()}, load average at the end "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())} (other processes share the machine when > cores)",
        "versions": versions(),
        "settings": settings,
        "command": command,
        "peaks": "; ".join(f"{k} {v[0]} TFLOP/s ({v[1]})" for k, v in peaks.items()),
    }


def versions() -> str:
    found = package_versions(VERSIONED_PACKAGES)
    return ", ".join(f"{name} {version}" for name, version in found.items()) + f", Python {platform.python_version()}"


def _fmt(value, digits=1, scale=1.0):
    if value is None:
        return "–"
    return f"{value * scale:,.{digits}f}"


def markdown(records: list[dict], header: dict) -> str:
    """The table of measurements, one row each, with the paper recipe as the reference."""
    measured = [r for r in records if r.get("kind") == "measurement"]
    paper_recipe = next((r for r in measured if r["variant"] == "paper" and not r.get("error")), None)
    s = header["settings"]
    lines = [
        f"# alexnet_jax benchmark: {s.model} ({header['date']})",
        "",
        f"- Device: {header['device']}; {header['host']}",
        f"- Versions: {header['versions']}",
        f"- Settings: model {s.model}, batch {s.batch_size}, images {s.image_size} px, crop {s.crop_size} px, "
        f"{s.steps} timed steps "
        f"after {s.warmup} warm-up; paper recipe with {s.torch_workers} DataLoader workers",
        f"- Command: `{header['command']}`",
        f"- Peaks for MFU: {header['peaks']}",
        "",
        "| measurement | dtype | input | train img/s | eval img/s | step ms | compute ms | input wait ms | "
        "TFLOP/s | MFU | train vs paper recipe | study (h) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in measured:
        if r.get("error"):
            lines.append(
                f"| {r['name']} | {r.get('dtype') or '–'} | {r.get('pipeline') or '–'} | error: "
                f"{r['error'][:120]} |||||||||"
            )
            continue
        ratio = (
            r["train_images_per_s"] / paper_recipe["train_images_per_s"]
            if paper_recipe and r.get("train_images_per_s")
            else None
        )
        lines.append(
            f"| {r['name']} | {r['dtype']} | {r['pipeline']} | {_fmt(r['train_images_per_s'])} | "
            f"{_fmt(r['eval_images_per_s'])} | {_fmt(r['step_time_s'], 1, 1e3)} | "
            f"{_fmt(r['compute_time_s'], 1, 1e3)} | "
            f"{_fmt(r['input_wait_s'], 1, 1e3)} | {_fmt(r['achieved_tflops'], 3)} | "
            f"{_fmt(r['mfu'], 1, 100) + ' %' if r['mfu'] is not None else '–'} | "
            f"{_fmt(ratio, 2) + 'x' if ratio else '–'} | {_fmt(r['projected_study_hours'], 0)} |"
        )
    lines += [
        "",
        "Study (h): projected wall time of the full paper study on one such device from the measured train and eval "
        f"rates: {STUDY_SIZE}. The paper reports {paper.GPU_MONTHS} GPU-months (V100, about "
        f"{paper.SECONDS_PER_EPOCH:.0f} s per epoch) = {PAPER_GPU_HOURS:,.0f} GPU-hours.",
        "Compute = the step alone on a batch already on the device; input wait = end-to-end step minus that. "
        f"MFU = training FLOPs per image (3 x {s.model}'s forward FLOPs from XLA's cost analysis) x train img/s "
        "/ peak.",
    ]
    notes = [f"- {r['name']}: {'; '.join(r['notes'])}" for r in measured if r.get("notes")]
    if notes:
        lines += ["", "Notes:", *notes]
    return "\n".join(lines) + "\n"
