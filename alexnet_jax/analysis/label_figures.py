"""Figures 17-19 of a label-efficiency study: the curves against the number of labels (log axis) with
bootstrap bands, per-class recall, and labels saved.

Drawn on the plotting base (analysis.plots) from summary.json's `label_efficiency` block, one colour
per arm as in Figs 12-16; only a study whose runs carry `label_budget` gets them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from alexnet_jax.analysis.class_layout import class_grid, panel_letter
from alexnet_jax.analysis.formatting import class_label
from alexnet_jax.analysis.label_efficiency import BELOW, REACHED
from alexnet_jax.analysis.label_tables import METRIC_NAMES, format_labels
from alexnet_jax.analysis.plots import arm_colors, empty_panel, new_figure, save_figure


def _size_axis(ax, sizes: list[float]) -> None:
    ax.set_xscale("log")
    ax.set_xticks(sizes, labels=[format_labels(n) for n in sizes])
    ax.minorticks_off()
    ax.grid(alpha=0.25)


def _curve(ax, sizes, curve: dict, color: str, label: str | None, at: int | None = None) -> None:
    """A mean line with markers and its 95% band where it exists; `at`: class `at` of a per-class curve."""
    pick = (lambda values: values) if at is None else (lambda values: values[at])
    mean = np.array([np.nan if pick(v) is None else 100 * pick(v) for v in curve["mean"]])
    ax.plot(sizes, mean, "o-", color=color, linewidth=1.4, markersize=4, label=label)
    cis = [pick(c) for c in curve["ci95"]]
    low = np.array([np.nan if c is None else 100 * c[0] for c in cis])
    high = np.array([np.nan if c is None else 100 * c[1] for c in cis])
    band = np.isfinite(low)
    if band.any():
        ax.fill_between(np.asarray(sizes)[band], low[band], high[band], color=color, alpha=0.2, linewidth=0)


def fig17(path: Path, summary: dict) -> str:
    block = summary["label_efficiency"]
    sizes, arms = block["design"]["sizes"], block["arms"]
    colors = arm_colors(arms)
    fig, axes = new_figure(1, len(block["metrics"]), (5.4 * len(block["metrics"]), 4.6))
    for i, (ax, metric) in enumerate(zip(axes[0], block["metrics"], strict=True)):
        for arm in arms:
            _curve(ax, sizes, block["curves"][metric][arm], colors[arm], arm if i == 0 else None)
        _size_axis(ax, sizes)
        ax.set_xlabel("Labels (training subset before the validation carve; log scale)")
        ax.set_ylabel(f"Mean test {METRIC_NAMES[metric].lower()} (%)")
        ax.set_title(f"({panel_letter(i)}) {METRIC_NAMES[metric]}", loc="left")
    fig.legend(loc="outside lower center", ncols=min(len(arms), 5), frameon=False, fontsize=9.5)
    save_figure(fig, path)
    return (
        "Test accuracy, balanced accuracy and macro-F1 (best-epoch confusion matrices) against the number of "
        "labels, per arm: the mean over repeats with a 95% bootstrap band (repeats resampled, "
        f"{block['bootstrap']['resamples']:,} resamples)."
    )


def fig18(path: Path, summary: dict) -> str:
    block = summary["label_efficiency"]
    sizes, arms, names = block["design"]["sizes"], block["arms"], block["class_names"]
    colors = arm_colors(arms)
    rows, columns, size = class_grid(len(names))
    fig, axes = new_figure(rows, columns, size)
    for i, ax in enumerate(axes.ravel()):
        if i >= len(names):
            ax.set_axis_off()
            continue
        for arm in arms:
            _curve(ax, sizes, block["class_recall"][arm], colors[arm], arm if i == 0 else None, at=i)
        _size_axis(ax, sizes)
        ax.set_xlabel("Labels (log scale)")
        ax.set_ylabel("Mean recall (%)")
        ax.set_title(f"({panel_letter(i)}) {class_label(names[i], names)}", loc="left")
    fig.legend(loc="outside lower center", ncols=min(len(arms), 5), frameon=False, fontsize=9.5)
    save_figure(fig, path)
    return (
        "Per-class recall (class accuracy) against the number of labels, per arm: the mean over repeats with a 95% "
        "bootstrap band."
    )


def fig19(path: Path, summary: dict) -> str:
    block = summary["label_efficiency"]
    sizes, reference = block["design"]["sizes"], block["reference_arm"]
    arms = [arm for arm in block["arms"] if arm != reference]
    colors = arm_colors(block["arms"])
    fig, axes = new_figure(1, 1, (7.5, 6.0))
    ax = axes[0, 0]
    if not block["labels_saved"]:
        empty_panel(ax, "no reference arm, or no arm besides it")
        save_figure(fig, path)
        return "Labels saved: nothing to show."
    bottom, top = sizes[0] / 1.6, sizes[-1] * 1.6
    edge = {BELOW: bottom, REACHED: None}
    for offset, arm in zip(np.linspace(-0.04, 0.04, len(arms)), arms, strict=True):
        for entry in (e for e in block["labels_saved"] if e["arm"] == arm and e["status"] is not None):
            x = entry["reference_size"] * 10**offset
            y = entry["labels"] if entry["status"] == REACHED else (sizes[0] if entry["status"] == BELOW else top)
            marker = "o" if entry["status"] == REACHED else ("v" if entry["status"] == BELOW else "^")
            ax.plot([x], [y], marker, color=colors[arm], markersize=7)
            ci = entry["ci95"]
            if ci is not None:
                low = ci["low"] if ci["low_status"] == REACHED else edge.get(ci["low_status"], top)
                high = ci["high"] if ci["high_status"] == REACHED else edge.get(ci["high_status"], top)
                ax.plot([x, x], [low, high], color=colors[arm], linewidth=2)
        ax.plot([], [], "o", color=colors[arm], label=arm)
    ax.plot([bottom, top], [bottom, top], color="0.4", linestyle="--", linewidth=1, label=f"as many as {reference}")
    ax.plot([], [], "v", color="0.45", label=f"<= {format_labels(sizes[0])}: already there with the fewest tried")
    ax.plot([], [], "^", color="0.45", label="not reached within the sizes tried")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(bottom, top)
    ax.set_ylim(bottom / 1.1, top * 1.1)
    ax.set_xticks(sizes, labels=[format_labels(n) for n in sizes])
    ax.set_yticks(sizes, labels=[format_labels(n) for n in sizes])
    ax.minorticks_off()
    ax.grid(alpha=0.25)
    ax.set_xlabel(f"Labels {reference} has (log scale)")
    ax.set_ylabel(f"Labels the arm needs for {reference}'s accuracy there (log scale)")
    ax.legend(loc="upper left", fontsize=9, framealpha=0.9, edgecolor="none")
    save_figure(fig, path)
    return (
        f"Labels saved: for each size of the {reference} arm (x), the number of labels at which each arm's mean "
        "accuracy reaches the reference's mean accuracy there (y, linear on log N between the sizes tried), with "
        "bootstrap 95% CIs. Below the dashed line an arm needs fewer labels. A downward triangle at the smallest "
        "size: already there with the fewest labels tried (at most that many); an upward triangle at the top: not "
        "reached within the sizes tried; a CI line running to an edge has that bound censored the same way."
    )


FIGURES = (
    ("Figure 17", "fig17_label_efficiency.png", fig17),
    ("Figure 18", "fig18_label_efficiency_class_recall.png", fig18),
    ("Figure 19", "fig19_labels_saved.png", fig19),
)


def make_all(outdir: Path, summary: dict) -> list[tuple[str, str, str]]:
    """Draw Figures 17-19 into outdir for a label-efficiency study (none otherwise); (name, file, caption) each."""
    if "label_efficiency" not in summary:
        return []
    figures = FIGURES if summary["label_efficiency"]["reference_arm"] is not None else FIGURES[:2]
    return [(name, filename, draw(Path(outdir) / filename, summary)) for name, filename, draw in figures]
