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

from alexnet_jax.analysis.formatting import format_ranges
from alexnet_jax.analysis.report import render_report
from alexnet_jax.analysis.stats import BOOTSTRAP_RESAMPLES, paired_values, summarize
from alexnet_jax.analysis.study import StudyError, load_study
from alexnet_jax.analysis.tables import make_tables, paired_table
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
    log: Callable[[str], None] = print,
) -> dict:
    """Load the study under workdir, write summary.json, tables, figures and report.md; return the summary."""
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
    outdir = Path(outdir) if outdir is not None else Path(workdir) / "analysis"
    outdir.mkdir(parents=True, exist_ok=True)
    summary = _json_ready(summarize(study, resamples=resamples, seed=seed))
    summary["example_run"] = example_run
    write_json_atomic(outdir / "summary.json", summary)
    tables = make_tables(summary)
    paired = paired_table(summary)
    for table in tables + [paired]:
        write_text_atomic(outdir / f"{table.stem}.csv", table.csv())
        write_text_atomic(outdir / f"{table.stem}.md", table.markdown() + "\n")
    figure_list: list[tuple[str, str, str]] = []
    if figures:
        from alexnet_jax.analysis import figures as figs  # matplotlib only when figures are drawn

        figure_list = figs.make_all(outdir, study, summary, paired_values(study), example_run)
    write_text_atomic(outdir / "report.md", render_report(summary, tables, paired, figure_list, example_run))
    log(
        f"wrote {outdir}: summary.json, report.md, {len(tables) + 1} tables, {len(figure_list)} figures "
        f"({summary['num_runs']} runs; pretrained {summary['arms_found']['pretrained']}, "
        f"scratch {summary['arms_found']['scratch']}; skipped {len(summary['skipped'])})"
    )
    return summary
