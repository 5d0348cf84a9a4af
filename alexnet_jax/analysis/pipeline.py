"""One analysis from start to end: load a study, write summary.json, the tables, the figures and report.md.

`python -m alexnet_jax.analyze` is the command around it; from Python, call `analyze(workdir)`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from alexnet_jax.analysis import calibration_report, engine
from alexnet_jax.analysis.arm_tables import curves_csv, make_arm_tables
from alexnet_jax.analysis.formatting import format_ranges
from alexnet_jax.analysis.label_efficiency import summarize as summarize_label_efficiency
from alexnet_jax.analysis.label_tables import make_label_tables
from alexnet_jax.analysis.paper_view import has_paper_classes, paper_classes_note, paper_keys
from alexnet_jax.analysis.report import render_report
from alexnet_jax.analysis.stats import BOOTSTRAP_RESAMPLES
from alexnet_jax.analysis.study import load_study
from alexnet_jax.analysis.tables import make_tables, paired_table
from alexnet_jax.errors import StudyError
from alexnet_jax.toolbox import write_json_atomic, write_text_atomic

# summary.json's keys in the order they have always had: the study, the paper's view, the N-arm keys.
SUMMARY_ORDER = (
    "schema",
    "workdir",
    "num_runs",
    "run_dirs_found",
    "runs",
    "class_names",
    "arms_found",
    "data",
    "models",
    "starting_weights",
    "pretrained",
    "scratch",
    "scratch_first_200",
    "paired",
    "sign_test",
    "wilcoxon",
    "bootstrap",
    "mcnemar",
    "long_runs",
    "skipped",
    "warnings",
    "conventions",
    "example_run",
)


def _json_ready(obj: Any) -> Any:
    """numpy -> Python; NaN -> None (only where documented as undefined; counts sit beside them)."""
    if isinstance(obj, dict):
        return {str(k): _json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_ready(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _json_ready(obj.tolist())
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return None if not math.isfinite(obj) else float(obj)
    return obj


def analyze(
    workdir: str | os.PathLike,
    outdir: str | os.PathLike | None = None,
    *,
    example_run: int | None = None,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
    figures: bool = True,
    reference_arm: str | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Load the study under workdir, write summary.json, tables, figures and report.md; return the summary.

    The engine computes every number once (analysis.engine); the paper's keys, Tables 1-4 and P and
    Figs 3-11 are its view (analysis.paper_view), written first as they always were; the N-arm keys,
    tables and figures follow. One renderer writes report.md (analysis.report). Any K >= 2 classes
    work; runs that classify different classes raise ResultsError naming two of them. Runs that carry
    `label_budget` (a label-efficiency study) also get summary["label_efficiency"], Tables L1-L7 and
    Figs 17-19 (analysis.label_efficiency), computed before anything is written.
    """
    study = load_study(workdir)
    for path, reason in study.skipped:
        log(f"SKIPPED {path}: {reason}")
    for warning in study.warnings:
        log(f"WARNING {warning}")
    if example_run is None:
        example_run = min(study.runs)
    elif example_run not in study.runs:
        runs_read = format_ranges(sorted(study.runs))
        raise StudyError(f"--example_run={example_run}: no usable results for that run; runs read: {runs_read}")
    results = engine.run(study, reference_arm, resamples, seed)  # first: a bad --reference_arm writes nothing
    label_efficiency = summarize_label_efficiency(study, results.arm_keys["reference_arm"]["name"], resamples, seed)
    paper, paper_pair = paper_keys(study, results, resamples, seed)
    keys = {**results.study_keys, **paper, "example_run": example_run}
    summary = _json_ready({key: keys[key] for key in SUMMARY_ORDER} | results.arm_keys)
    if not has_paper_classes(summary):  # only then: the paper's studies keep their summary.json as it was
        summary["paper_comparison_left_out"] = paper_classes_note(summary)
    if label_efficiency is not None:  # only then: every other study keeps its summary.json as it was
        summary["label_efficiency"] = _json_ready(label_efficiency)
    calibration = calibration_report.summarize(study, results.arm_keys["reference_arm"]["name"], resamples, seed)
    if calibration is not None:  # only with calibration.json files: other studies keep their summary.json
        summary["calibration"] = _json_ready(calibration)
    outdir = Path(outdir) if outdir is not None else Path(workdir) / "analysis"
    outdir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(outdir / "summary.json", summary)
    tables = make_tables(summary) + [paired_table(summary)] + make_arm_tables(summary) + make_label_tables(summary)
    tables += calibration_report.make_tables(summary)
    for table in tables:
        write_text_atomic(outdir / f"{table.stem}.csv", table.csv())
        write_text_atomic(outdir / f"{table.stem}.md", table.markdown() + "\n")
    write_text_atomic(outdir / "cost_curves.csv", curves_csv(results.curves))
    paper_figures: list[tuple[str, str, str]] = []
    arm_figures: list[tuple[str, str, str]] = []
    if figures:
        from alexnet_jax.analysis import arm_figures as arm_figs  # matplotlib only when figures are drawn
        from alexnet_jax.analysis import calibration_figure, label_figures
        from alexnet_jax.analysis import figures as figs

        paper_figures = figs.make_all(outdir, study, summary, paper_pair, example_run)
        arm_figures = arm_figs.make_all(outdir, study, summary, results.curves)
        arm_figures += label_figures.make_all(outdir, summary)
        arm_figures += calibration_figure.make_all(outdir, study, summary)
    write_text_atomic(outdir / "report.md", render_report(summary, tables, paper_figures, arm_figures, example_run))
    found = ", ".join(f"{arm} {len(study.arms[arm])}" for arm in study.arm_names)
    log(
        f"wrote {outdir}: summary.json, report.md, {len(tables)} tables, cost_curves.csv, "
        f"{len(paper_figures) + len(arm_figures)} figures ({summary['num_runs']} runs; {found}; "
        f"skipped {len(summary['skipped'])})"
    )
    return summary
