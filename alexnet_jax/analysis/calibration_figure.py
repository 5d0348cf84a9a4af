"""Figure C1: reliability diagrams per arm, before and after temperature scaling.

One panel per calibrated arm and side (rows: arms; columns: before, after). Each run's equal-mass
bins are drawn as points at (mean confidence, accuracy), joined in confidence order, faintly, so
the spread over runs shows; the diagonal is perfect calibration. Points below the diagonal are
over-confident bins. The title gives the arm's mean ECE over runs. Drawn only when the study has
calibration files (analysis.calibration_report).
"""

from __future__ import annotations

from pathlib import Path

from alexnet_jax.analysis.calibration_report import FIGURE, SIDES, load_records
from alexnet_jax.analysis.formatting import format_number
from alexnet_jax.analysis.plots import arm_colors, new_figure, save_figure


def reliability_figure(path: Path, study, summary: dict) -> str:
    """Draw Figure C1 into `path`; return its caption."""
    calibration = summary["calibration"]
    records, _ = load_records(study)
    arms = list(calibration["arms"])
    colors = arm_colors(study.arm_names)
    fig, axes = new_figure(len(arms), 2, (9.0, 0.4 + 4.0 * len(arms)))
    for row, arm in enumerate(arms):
        block = calibration["arms"][arm]
        for column, side in enumerate(SIDES):
            ax = axes[row, column]
            ax.plot([0, 1], [0, 1], color="0.5", linestyle="--", linewidth=1)
            for run in sorted(records[arm]):
                table = records[arm][run][side]["reliability"]
                ax.plot(
                    table["confidence"],
                    table["accuracy"],
                    marker="o",
                    markersize=3,
                    linewidth=0.8,
                    alpha=max(0.15, 1.0 / len(records[arm]) ** 0.5),
                    color=colors[arm],
                )
            ece = format_number(block[f"ece_{side}_mean"], 3)
            scaled = "after temperature scaling" if side == "after" else "before scaling"
            ax.set_title(f"{arm}, {scaled}\nmean ECE over runs {ece}", loc="left", fontsize=10)
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1)
            ax.set_aspect("equal")
            ax.set_xlabel("mean confidence in bin")
            ax.set_ylabel("accuracy in bin")
            ax.grid(alpha=0.25)
    save_figure(fig, path)
    bins = "/".join(map(str, calibration["bins"]))
    return (
        f"Reliability diagrams: each line is one run's {bins} equal-mass bins on its evaluation set (mean confidence "
        "against accuracy); the dashed diagonal is perfect calibration, and bins below it are over-confident. "
        "Left: the network's own probabilities; right: after dividing the logits by the run's fitted temperature."
    )


def make_all(outdir: Path, study, summary: dict) -> list[tuple[str, str, str]]:
    """Figure C1 when the study has calibration results; nothing otherwise."""
    calibration = summary.get("calibration")
    if not calibration or not calibration["arms"]:
        return []
    name, filename = FIGURE
    return [(name, filename, reliability_figure(Path(outdir) / filename, study, summary))]
