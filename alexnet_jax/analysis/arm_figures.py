"""Figures 12-16 for any number of arms: one colour per arm, in the study's arm order, with legends.

Drawn on the plotting base (analysis.plots), as Figs 3-11 are: the paper's two arms keep their
colours, the others take a fixed palette in order. A figure's file name does not depend on the
data, so reruns leave no stale files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from alexnet_jax.analysis.class_layout import TURNED_LABEL, bars_layout
from alexnet_jax.analysis.formatting import class_label, format_p
from alexnet_jax.analysis.plots import arm_colors, empty_panel, new_figure, save_figure


def _label(summary: dict, arm: str) -> str:
    spec = summary["arms"][arm]["spec"] or {}
    what = ", ".join(str(spec[k]) for k in ("init", "finetune") if k in spec)
    return f"{arm} ({what})" if what else arm


def _time_axis(curves: dict) -> tuple[float, str]:
    """Seconds, minutes or hours, whichever keeps the longest arm's numbers readable."""
    longest = max((np.nanmax(c["seconds"]) for c in curves.values() if np.isfinite(c["seconds"]).any()), default=0)
    return (3600.0, "hours") if longest > 3 * 3600 else ((60.0, "minutes") if longest > 180 else (1.0, "seconds"))


def fig12(path, study, summary, curves) -> str:
    arms, colors = summary["arm_names"], arm_colors(summary["arm_names"])
    fig, axes = new_figure(1, 3, (16, 4.8))
    scale, unit = _time_axis(curves)
    target = summary["cost"]["targets"]["reference_peak"]
    panels = (
        ("epochs_trained", 1.0, "Epochs trained", "(A) Against epochs"),
        ("images_seen", 1e6, "Training images seen (millions)", "(B) Against images seen"),
        ("seconds", scale, f"Wall time ({unit}, evaluation included)", "(C) Against measured wall time"),
    )
    for ax, (key, divide, xlabel, title) in zip(axes[0], panels, strict=True):
        drawn = False
        for arm in arms:
            c = curves[arm]
            x = c[key] / divide
            keep = np.isfinite(x)
            if not keep.any():
                continue
            drawn = True
            ax.plot(x[keep], 100 * c["mean"][keep], color=colors[arm], linewidth=1.4, label=_label(summary, arm))
            band = keep & np.isfinite(c["low"])
            ax.fill_between(x[band], 100 * c["low"][band], 100 * c["high"][band], color=colors[arm], alpha=0.22)
        if not drawn:
            empty_panel(ax, "no run records this" if key != "seconds" else "no run records its wall time")
        elif target is not None:
            reference = summary["reference_arm"]["name"]
            ax.axhline(100 * target, color="0.3", linestyle="--", linewidth=1.0, label=f"{reference} mean peak")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("Mean test accuracy (%)")
        ax.set_title(title, loc="left")
        ax.grid(alpha=0.25)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 5), frameon=False, fontsize=9.5)
    save_figure(fig, path)
    band = summary["cost"]["band"]
    return (
        "Mean test accuracy over runs of each arm, with a 95% bootstrap band (runs resampled, "
        f"{band['resamples']:,} resamples), against (A) epochs, (B) training images seen and (C) measured wall "
        "time (per run, the mean over its runs' cumulative seconds). The dashed line is the reference arm's mean peak."
    )


def fig13(path, study, summary, curves) -> str:
    pairs = summary["pairs"]
    fig, axes = new_figure(1, 2, (16, 1.8 + 0.55 * max(len(pairs), 1)))
    specs = (
        ("peak_acc", 100.0, "Peak test accuracy difference (points)"),
        ("peak_epoch", 1.0, "Peak epoch difference (epochs; negative: a peaks earlier)"),
    )
    for ax, (metric, scale, xlabel), letter in zip(axes[0], specs, "AB", strict=True):
        if not pairs:
            empty_panel(ax, "a single arm: no pairs")
            continue
        y = np.arange(len(pairs))[::-1]
        for row, pair in zip(y, pairs, strict=True):
            mean, ci = pair[f"{metric}_diff_mean"], pair[f"{metric}_diff_ci95"]
            if mean is None:
                continue
            low, high = (mean, mean) if ci is None else ci
            ax.plot([scale * low, scale * high], [row, row], color="0.25", linewidth=2)
            ax.plot([scale * mean], [row], "o", color="black", markersize=6)
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_yticks(y, labels=[f"{p['a']} minus {p['b']}" for p in pairs])
        ax.set_ylim(-0.7, len(pairs) - 0.3)
        right = ax.twinx()  # the tests, as a column of labels beside the plot
        right.set_ylim(ax.get_ylim())
        right.set_yticks(y, labels=[f"n={p['n']}, Holm p={format_p(p['sign_test'][metric]['p_holm'])}" for p in pairs])
        right.tick_params(length=0, labelsize=8.5)
        ax.set_xlabel(xlabel)
        ax.set_title(f"({letter}) Mean paired difference, 95% CI", loc="left")
        ax.grid(axis="x", alpha=0.25)
    save_figure(fig, path)
    return (
        "Every pair of arms: the mean paired difference (a minus b) of (A) peak test accuracy and (B) the epoch of "
        "the peak (negative: a peaks earlier), with bootstrap 95% CIs; on the right, the pairs and the "
        "Holm-adjusted sign-test p."
    )


def fig14(path, study, summary, curves) -> str:
    arms, colors = summary["arm_names"], arm_colors(summary["arm_names"])
    fig, axes = new_figure(1, 2, (max(9, 2.6 * len(arms) + 4), 4.8))
    rng = np.random.default_rng(0)  # jitter only: the points' positions along the arm axis
    for ax, (attr, scale, ylabel, title) in zip(
        axes[0],
        (
            ("peak_acc", 100, "Peak test accuracy (%)", "(A) Peak test accuracy"),
            ("peak_epoch", 1, "Epoch of the peak (0-based)", "(B) Epoch of the peak"),
        ),
        strict=True,
    ):
        for i, arm in enumerate(arms):
            values = np.array([scale * getattr(r, attr) for r in study.records(arm)], dtype=np.float64)
            ax.boxplot(values, positions=[i], widths=0.5, showfliers=False, medianprops={"color": "black"})
            ax.plot(i + rng.uniform(-0.18, 0.18, values.size), values, "o", color=colors[arm], alpha=0.6, markersize=4)
        ax.set_xticks(range(len(arms)), labels=[_label(summary, a).replace(" (", "\n(") for a in arms], fontsize=9)
        ax.set_ylabel(ylabel)
        ax.set_title(title, loc="left")
        ax.grid(axis="y", alpha=0.25)
    save_figure(fig, path)
    return "Each run's peak test accuracy (A) and epoch of the peak (B), per arm: points are runs, boxes the quartiles."


def fig15(path, study, summary, curves) -> str:
    arms, colors, names = summary["arm_names"], arm_colors(summary["arm_names"]), summary["class_names"]
    labels = [class_label(n, names) for n in names]
    size, turn = bars_layout(labels, len(arms))  # wider with more classes; long names turn
    fig, axes = new_figure(1, 1, size)
    ax = axes[0, 0]
    width = 0.8 / len(arms)
    for j, arm in enumerate(arms):
        block = summary["arms"][arm]
        mean = np.array([np.nan if v is None else 100 * v for v in block["class_acc_mean"]])
        sd = np.array([0 if v is None else 100 * v for v in block["class_acc_std"]])
        x = np.arange(len(names)) + (j - (len(arms) - 1) / 2) * width
        ax.bar(x, mean, width * 0.92, yerr=sd, color=colors[arm], capsize=3, label=_label(summary, arm))
    ax.set_xticks(range(len(names)), labels=labels, **(TURNED_LABEL if turn else {}))
    ax.set_ylabel("Class accuracy (%), mean and SD over runs")
    ax.set_ylim(0, 105)
    fig.legend(loc="outside lower center", ncols=min(len(arms), 4), frameon=False, fontsize=9.5)
    ax.grid(axis="y", alpha=0.25)
    save_figure(fig, path)
    return "Per-class test accuracy of each arm (best-epoch confusion matrices): mean over runs, error bars one SD."


def fig16(path, study, summary, curves) -> str:
    arms, colors = summary["arm_names"], arm_colors(summary["arm_names"])
    fig, axes = new_figure(1, 2, (14, 4.8))
    ax = axes[0, 0]
    for arm in arms:
        points = []
        for budget, b in summary["cost"]["arms"][arm]["budget_accuracy"].items():
            if b["n"] and b["mean"] is not None:
                x = max(summary["arms"][arm]["epochs_planned"]) if budget == "full" else int(budget)
                points.append((x, 100 * b["mean"], b["ci95"]))
        points = sorted(dict((p[0], p) for p in points).values())  # "full" at a budget's length is that budget
        x = [p[0] for p in points]
        ax.plot(x, [p[1] for p in points], "o-", color=colors[arm], label=_label(summary, arm))
        for px, _, ci in points:
            if ci is not None:
                ax.plot([px, px], [100 * ci[0], 100 * ci[1]], color=colors[arm], linewidth=2)
    ax.set_xscale("log")
    ticks = sorted({x for line in ax.get_lines() for x in line.get_xdata()})  # the budgets some arm has
    ax.set_xticks(ticks, labels=[f"{t:g}" for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("Epoch budget (log scale; each arm's last point is its whole run)")
    ax.set_ylabel("Mean test accuracy within the budget (%)")
    ax.set_title("(A) Accuracy for a budget of epochs, 95% CI", loc="left")
    ax.legend(loc="lower right", fontsize=9, framealpha=0.9, edgecolor="none")
    ax.grid(alpha=0.25)
    ax = axes[0, 1]
    reference = summary["reference_arm"]["name"]
    if reference is None:
        empty_panel(ax, "no reference arm")
    else:
        _time_panel(ax, summary, arms, colors, reference)
    save_figure(fig, path)
    return (
        "(A) Mean test accuracy that each run's selection rule picks within its first N epochs, per arm. (B) Median "
        "epochs until test accuracy first reaches the reference arm's mean peak (filled) and 99% of the run's own "
        "peak (open), with bootstrap 95% CIs; an arrowhead at the right edge marks a median or bound that is not "
        "reached (more than half the runs, or resamples, never get there)."
    )


def _time_panel(ax, summary, arms, colors, reference) -> None:
    """Median epochs to each target with its CI; what is not reached points off the right edge (an arrowhead)."""
    y = np.arange(len(arms))[::-1]
    edge = 1.05 * max(max(summary["arms"][a]["epochs_planned"]) for a in arms)
    for row, arm in zip(y, arms, strict=True):
        for kind, offset, fill in (
            ("time_to_reference_peak", 0.15, colors[arm]),
            ("time_to_own_peak_99", -0.15, "white"),
        ):
            e, at = summary["cost"]["arms"][arm][kind]["epochs"], row + offset
            low, high = (edge if v is None else v for v in (e["median_ci95"] or (e["median"], e["median"])))
            ax.plot([low, high], [at, at], color=colors[arm], linewidth=2)
            if e["median"] is not None:
                ax.plot([e["median"]], [at], "o", markerfacecolor=fill, markeredgecolor=colors[arm], markersize=7)
            if high == edge:
                ax.plot([edge], [at], ">", color=colors[arm], markersize=7)
                text = "median not reached" if e["median"] is None else "CI bound not reached"
                ax.annotate(text, (edge, at), xytext=(7, 0), textcoords="offset points", va="center", fontsize=8)
    ax.set_yticks(y, labels=arms)
    ax.set_xlim(0, edge * 1.3)
    ax.set_xlabel("Epochs trained until first reached (median, 95% CI)")
    ax.set_title(f"(B) Time to {reference}'s mean peak (filled) and 99% of own peak (open)", loc="left")
    ax.grid(axis="x", alpha=0.25)


FIGURES = (
    ("Figure 12", "fig12_cost_curves.png", fig12),
    ("Figure 13", "fig13_pairwise_differences.png", fig13),
    ("Figure 14", "fig14_peaks_by_arm.png", fig14),
    ("Figure 15", "fig15_class_accuracy_by_arm.png", fig15),
    ("Figure 16", "fig16_budgets_and_time_to_accuracy.png", fig16),
)


def make_all(outdir: Path, study, summary: dict, curves: dict) -> list[tuple[str, str, str]]:
    """Draw Figures 12-16 into outdir; return (name, file name, caption) for the report."""
    return [(name, filename, draw(Path(outdir) / filename, study, summary, curves)) for name, filename, draw in FIGURES]
