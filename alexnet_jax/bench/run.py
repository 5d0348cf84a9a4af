"""The whole benchmark in order: PyTorch in its subprocess, the JAX steps and levers, then the report.

PyTorch runs first, before JAX claims the accelerator's memory; its subprocess also measures
a matmul peak, the MFU reference where the peak table has no entry.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time

from absl import logging

from alexnet_jax.bench import report
from alexnet_jax.bench.flops import table_peak
from alexnet_jax.bench.jax_side import JaxBench, default_scan_modes, measure_jax_matmul_peak
from alexnet_jax.bench.records import emit, finish_record
from alexnet_jax.bench.settings import Settings
from alexnet_jax.bench.torch_process import spawn_torch
from alexnet_jax.bench.workload import synthetic_images
from alexnet_jax.toolbox import write_text_atomic

_START = time.monotonic()


def info(message: str) -> None:
    """A progress line on stderr (stdout carries only the JSON records)."""
    print(f"[bench {time.monotonic() - _START:6.1f}s] {message}", file=sys.stderr, flush=True)


def run(settings: Settings, command: str, torch_worker: list[str] | None = None) -> list[dict]:
    """What `python -m alexnet_jax.bench` does: the benchmark (`run_benchmark`), or in the PyTorch
    subprocess (`--torch_worker`) its PyTorch measurements."""
    if torch_worker:
        from alexnet_jax.bench import torch_worker as worker  # only here: torch never shares a process with TF

        worker.run_worker(torch_worker, settings)
        return []
    return run_benchmark(settings, command)


def run_benchmark(settings: Settings, command: str) -> list[dict]:
    """Every measurement the settings ask for, printed and returned, the summary last; writes the outputs."""
    if settings.predict:
        from alexnet_jax.bench.predict_side import run_predict

        return run_predict(settings, command, info)
    records: list[dict] = []
    if settings.trainer:
        from alexnet_jax.bench.trainer_side import measure_trainer

        emit(measure_trainer(settings, info), records)
        write_outputs(settings, records, None)
        return records
    torch_peaks, torch_records = None, []
    if settings.needs_torch:
        torch_names = ["peak", *settings.torch]
        info(f"torch {', '.join(torch_names)} (one subprocess) ...")
        peak_record, *torch_records = spawn_torch(torch_names, settings)
        torch_peaks = peak_record.get("peaks")
    else:
        info("torch: nothing to measure (--torch= and --peak_tflops gives every peak)")

    images, labels = synthetic_images(settings.num_images, settings.image_size, settings.seed)
    bench = JaxBench(settings, images, labels)
    info(
        f"JAX on {bench.info['device_kind']} x{bench.info['device_count']}; batch {settings.batch_size}, "
        f"crop {settings.crop_size} px"
    )
    peaks = resolve_peaks(settings, bench.info["device_kind"], torch_peaks)
    info(f"peaks: {peaks}")
    if settings.scan_modes is None:
        settings = dataclasses.replace(settings, scan_modes=default_scan_modes())

    built_on_device = measure_steps(bench, settings, peaks, records)
    measure_levers(bench, settings, built_on_device, peaks, records)
    for rec in torch_records:
        emit(finish_record(rec, peaks), records)
    emit(report.summary_record(records, settings, peaks, torch_peaks), records)

    write_outputs(settings, records, report.header(settings, bench.info, peaks, command))
    return records


def write_outputs(settings: Settings, records: list[dict], header: dict | None) -> None:
    """The Markdown table (steps only) and the JSON lines, where the flags ask for them."""
    if settings.output_md and header is not None:
        write_text_atomic(settings.output_md, report.markdown(records, header))
        info(f"wrote {settings.output_md}")
    if settings.output_jsonl:
        write_text_atomic(settings.output_jsonl, "".join(json.dumps(r) + "\n" for r in records))


def resolve_peaks(settings: Settings, device_kind: str, torch_peaks: dict | None) -> dict:
    """(TFLOP/s, source) per dtype: --peak_tflops, else the table, else the best matmul measured here."""
    given = settings.peak_tflops or {}
    n = settings.matmul_size
    peaks = {}
    for dtype in ("float32", "bfloat16"):
        if dtype in given:
            peaks[dtype] = (given[dtype], "--peak_tflops")
        elif (known := table_peak(device_kind, dtype)) is not None:
            peaks[dtype] = known
        else:  # no table entry (CPUs, unlisted GPUs): the best matmul either framework reaches here
            xla = measure_jax_matmul_peak(dtype, n)
            best, source = xla, "XLA"
            if torch_peaks and torch_peaks.get(dtype, 0) > xla:
                best, source = torch_peaks[dtype], "PyTorch"
            peaks[dtype] = (
                round(best, 4),
                f"measured here: best {n}x{n} {dtype} matmul ({source}; XLA {xla:.3f}"
                + (f", PyTorch {torch_peaks[dtype]:.3f}" if torch_peaks else "")
                + " TFLOP/s)",
            )
    return peaks


def measure_steps(bench: JaxBench, settings: Settings, peaks: dict, records: list) -> dict:
    """The plain JAX step per dtype and pipeline; returns what each on_device build made, by dtype."""
    built_on_device = {}
    for dtype in settings.dtypes:
        for pipeline in settings.pipelines:
            info(f"jax {pipeline} {dtype} ...")
            try:
                rec, built = bench.measure_step(pipeline, dtype)
                if pipeline == "on_device":
                    built_on_device[dtype] = built
            except Exception as error:  # noqa: BLE001 - e.g. TensorFlow missing: reported, not fatal
                logging.exception("measurement failed")
                rec = bench.base(
                    name=f"jax {pipeline} {dtype}",
                    variant="step",
                    dtype=dtype,
                    pipeline=pipeline,
                    error=f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}",
                )
            emit(finish_record(rec, peaks), records)
    return built_on_device


def measure_levers(bench: JaxBench, settings: Settings, built_on_device: dict, peaks: dict, records: list) -> None:
    """The levers, on the dtype whose plain on_device step was fastest here (bf16 on GPUs, f32 on most CPUs)."""
    rates = {
        r["dtype"]: r["train_images_per_s"]
        for r in records
        if r.get("variant") == "step" and r.get("pipeline") == "on_device" and r.get("train_images_per_s")
    }
    dtype = max((d for d in built_on_device if d in rates), key=rates.get, default=None)
    if dtype is None:
        if settings.levers:
            info("levers skipped: they need a successful on_device measurement")
        return
    built = built_on_device[dtype]
    measure = {
        "scan": lambda: [
            bench.measure_scan(built, dtype, settings.scan_steps, mode == "unrolled") for mode in settings.scan_modes
        ],
        "vmap": lambda: [bench.measure_vmap(built, dtype, k) for k in settings.vmap_models],
        "donate": lambda: bench.measure_donation(built, dtype),
        "eval_sync": lambda: [bench.measure_eval_sync(built, dtype)],
    }
    for lever in settings.levers:
        info(f"lever {lever} ({dtype}) ...")
        try:
            out = measure[lever]()
        except Exception as error:  # noqa: BLE001
            logging.exception("lever failed")
            out = [
                bench.base(
                    name=f"jax lever {lever}",
                    variant=lever,
                    dtype=dtype,
                    pipeline="on_device",
                    error=f"{type(error).__name__}: {error}",
                )
            ]
        for rec in out:
            emit(finish_record(rec, peaks), records)
