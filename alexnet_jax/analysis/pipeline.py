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

from alexnet_jax.analysis.arm_report import render_arm_report, render_arm_sections
from alexnet_jax.analysis.arm_tables import curves_csv, make_arm_tables
from alexnet_jax.analysis.arms import summarize_arms
from alexnet_jax.analysis.cost import cost_curves
from alexnet_jax.analysis.formatting import format_ranges
from alexnet_jax.analysis.report import render_report
from alexnet_jax.analysis.stats import BOOTSTRAP_RESAMPLES, paired_values, summarize
from alexnet_jax.analysis.study import load_study
from alexnet_jax.analysis.tables import make_tables, paired_table
from alexnet_jax.errors import StudyError
from alexnet_jax.results import ARMS
from alexnet_jax.toolbox import write_json_atomic, write_text_atomic


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

    The paper's pair keeps its outputs as they always were; the N-arm keys, tables, figures and report
    sections come after them. A study without both paper arms gets a report of the arms it has.
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
    arm_summary = summarize_arms(study, reference_arm, resamples, seed)  # first: a bad --reference_arm writes nothing
    outdir = Path(outdir) if outdir is not None else Path(workdir) / "analysis"
    outdir.mkdir(parents=True, exist_ok=True)
    summary = _json_ready(summarize(study, resamples=resamples, seed=seed))
    summary["example_run"] = example_run
    summary.update(_json_ready(arm_summary))
    write_json_atomic(outdir / "summary.json", summary)
    tables = make_tables(summary)
    paired = paired_table(summary)
    arm_tables = make_arm_tables(summary)
    for table in tables + [paired] + arm_tables:
        write_text_atomic(outdir / f"{table.stem}.csv", table.csv())
        write_text_atomic(outdir / f"{table.stem}.md", table.markdown() + "\n")
    curves = cost_curves(study, study.arm_names, resamples, seed)
    write_text_atomic(outdir / "cost_curves.csv", curves_csv(curves))
    figure_list: list[tuple[str, str, str]] = []
    arm_figure_list: list[tuple[str, str, str]] = []
    if figures:
        from alexnet_jax.analysis import arm_figures  # matplotlib only when figures are drawn
        from alexnet_jax.analysis import figures as figs

        figure_list = figs.make_all(outdir, study, summary, paired_values(study), example_run)
        arm_figure_list = arm_figures.make_all(outdir, study, summary, curves)
    drawn = {filename: (name, caption) for name, filename, caption in arm_figure_list}
    if all(summary["arms_found"][arm] for arm in ARMS):
        report = render_report(summary, tables, paired, figure_list, example_run)
        report += "\n" + render_arm_sections(summary, arm_tables, drawn)
    else:
        report = render_arm_report(summary, arm_tables, drawn)
    write_text_atomic(outdir / "report.md", report)
    found = ", ".join(f"{arm} {len(study.arms[arm])}" for arm in study.arm_names)
    log(
        f"wrote {outdir}: summary.json, report.md, {len(tables) + 1 + len(arm_tables)} tables, cost_curves.csv, "
        f"{len(figure_list) + len(arm_figure_list)} figures ({summary['num_runs']} runs; {found}; "
        f"skipped {len(summary['skipped'])})"
    )
    return summary
