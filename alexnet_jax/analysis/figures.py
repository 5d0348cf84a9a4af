"""The paper's Figs 3-11 for a study, drawn on the plotting base (analysis.plots: Agg canvas, no pyplot).

Called by analysis.pipeline; every function takes the loaded study, the summary and the paper
view's per-run differences (`PaperPair`), and the captions quote the paper from alexnet_jax.paper.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.collections import LineCollection

from alexnet_jax import paper
from alexnet_jax.analysis.class_layout import TURNED_LABEL, class_grid, matrix_layout, panel_letter
from alexnet_jax.analysis.formatting import class_label, format_percent
from alexnet_jax.analysis.paper_view import BUDGET_EPOCHS, PaperPair, has_paper_classes
from alexnet_jax.analysis.plots import COLOR, empty_panel, new_figure, save_figure
from alexnet_jax.analysis.stats import class_metrics
from alexnet_jax.results import ARMS

LABEL = {"pretrained": "Pretrained (ImageNet)", "scratch": "From scratch"}
LOWER = {"pretrained": "pretrained (ImageNet)", "scratch": "from scratch"}


def _edges(values: np.ndarray, integer: bool = False, max_bins: int = 30) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    lo, hi = float(values.min()), float(values.max())
    if hi - lo < 1e-9:
        half = 0.5 if integer else max(0.05, abs(lo) * 0.01)
        return np.array([lo - half, hi + half])
    bins = int(np.clip(len(np.histogram_bin_edges(values, bins="auto")) - 1, 20 if values.size >= 50 else 6, max_bins))
    # Accuracies are counts / test size, so values sit on a lattice (e.g. steps of 2% for a class of
    # 50 galaxies); bins that ignore it alternate between full and empty. Align bins to the lattice.
    unique = np.unique(values)
    step = 1.0 if integer else float(np.min(np.diff(unique)))
    units = (unique - lo) / step
    on_lattice = unique.size >= 5 and (hi - lo) / step <= 1000 and np.allclose(units, np.round(units), atol=1e-6)
    if integer or on_lattice:
        width = step * max(1, math.ceil(((hi - lo) / step + 1) / bins))
        return np.arange(lo - step / 2, hi + width, width)
    pad = (hi - lo) * 1e-6
    return np.linspace(lo - pad, hi + pad, bins + 1)


def _hist(
    ax,
    series: list[tuple[str, np.ndarray, str]],
    xlabel: str,
    unit: str,
    integer: bool = False,
    digits: int = 1,
    zero_line: bool = False,
) -> None:
    """Overlaid histograms, one per (arm, values, label); the legend gives n, mean and SD."""
    present = [(arm, np.asarray(v, dtype=np.float64), label) for arm, v, label in series if len(v)]
    if not present:
        empty_panel(ax, "no runs with this quantity")
        ax.set_xlabel(xlabel)
        return
    edges = _edges(np.concatenate([v for _, v, _ in present]), integer)
    for arm, values, label in present:
        color = COLOR.get(arm, "0.3")
        sd = f", SD {np.std(values, ddof=1):.{digits}f}{unit}" if len(values) > 1 else ""
        text = f"{label}: n = {len(values)}, mean {values.mean():.{digits}f}{unit}{sd}"
        ax.hist(values, bins=edges, color=color, alpha=0.35 if len(present) > 1 else 0.6, label=text)
        ax.hist(values, bins=edges, color=color, histtype="step", linewidth=1.4)
        ax.axvline(values.mean(), color=color, linestyle="--", linewidth=1.4)
        if len(values) < 20:  # with few runs, show each one
            ax.plot(values, np.zeros_like(values), "|", color=color, markersize=14, markeredgewidth=2, clip_on=False)
    if zero_line:
        ax.axvline(0, color="black", linewidth=1.0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("Number of runs")
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.legend(loc="upper left", fontsize=8.5, framealpha=0.9, edgecolor="none")
    ax.set_ylim(top=ax.get_ylim()[1] * 1.25)  # room for the legend
    ax.grid(axis="y", alpha=0.25)


def _paper_says(summary: dict, text: str) -> str:
    """A caption's quote of the paper's numbers, only where the runs classify the paper's classes."""
    return text if has_paper_classes(summary) else ""


def _records(study, arm):
    return [study.arms[arm][r] for r in sorted(study.arms[arm])]


def _arm_title(summary: dict, arm: str) -> str:
    planned = summary[arm]["epochs_planned"]
    return f"{LABEL[arm]}, {'/'.join(map(str, planned))} epochs" if planned else LABEL[arm]


# --------------------------------------------------------------------------- figures


def fig03(path, study, summary, paired, example_run) -> str:
    fig, axes = new_figure(1, 2, (12, 4.6))
    acc = [(arm, [100 * r.peak_acc for r in _records(study, arm)], _arm_title(summary, arm)) for arm in ARMS]
    epochs = [(arm, [r.peak_epoch for r in _records(study, arm)], _arm_title(summary, arm)) for arm in ARMS]
    _hist(axes[0, 0], acc, "Peak test accuracy (%)", "%")
    axes[0, 0].set_title("(A) Peak test accuracy of each run", loc="left")
    _hist(axes[0, 1], epochs, "Epoch of peak test accuracy (0-based)", "", integer=True, digits=0)
    axes[0, 1].set_title("(B) Epoch at which each run peaks", loc="left")
    save_figure(fig, path)
    paper_acc = {arm: format_percent(paper.PEAK_ACC[arm]) for arm in ARMS}
    (pre_mean, pre_sd), (scr_mean, scr_sd) = paper.PEAK_EPOCH["pretrained"], paper.PEAK_EPOCH["scratch"]
    caption = (
        "Histograms of (A) each run's peak test accuracy and (B) the epoch at which it occurs, per arm; "
        "dashed lines mark the means."
    )
    return caption + _paper_says(
        summary,
        f" Paper: {paper_acc['pretrained']}% vs {paper_acc['scratch']}%; "
        f"epoch {pre_mean} (SD {pre_sd}) vs {scr_mean} (SD {scr_sd}).",
    )


def fig04(path, study, summary, paired, example_run) -> str:
    fig, axes = new_figure(1, 2, (12, 4.6))
    n, n200 = len(paired.full.runs), len(paired.first_200.runs)
    _hist(
        axes[0, 0],
        [("pretrained", 100 * paired.full.peak_acc, "Pretrained minus scratch")],
        "Peak test accuracy difference (percentage points)",
        " pts",
        digits=2,
        zero_line=True,
    )
    wins = summary["sign_test"]["peak_acc"]
    axes[0, 0].set_title(f"(A) Accuracy gain from pretraining: higher in {wins['wins']} of {n} runs", loc="left")
    _hist(
        axes[0, 1],
        [("pretrained", paired.first_200.peak_epoch, f"Pretrained minus scratch (first {BUDGET_EPOCHS})")],
        "Peak epoch difference (epochs; negative = pretrained peaks earlier)",
        "",
        integer=True,
        digits=0,
        zero_line=True,
    )
    early = summary["sign_test"]["peak_epoch_first_200"]
    axes[0, 1].set_title(
        f"(B) Epochs to peak, scratch limited to {BUDGET_EPOCHS}: earlier in {early['wins']} of {n200}", loc="left"
    )
    save_figure(fig, path)
    return (
        "Paired differences, pretrained minus scratch: (A) peak test accuracy (scratch over all its epochs); "
        f"(B) the epoch of the peak, with scratch restricted to its first {BUDGET_EPOCHS} epochs, as in the paper. "
        "The black line marks no difference, the dashed line the mean."
    )


def fig05(path, study, summary, paired, example_run) -> str:
    fig, axes = new_figure(1, 1, (7.5, 4.6))
    _hist(
        axes[0, 0],
        [("pretrained", 100 * paired.first_200.peak_acc, f"Pretrained minus scratch (first {BUDGET_EPOCHS} epochs)")],
        "Peak test accuracy difference (percentage points)",
        " pts",
        digits=2,
        zero_line=True,
    )
    wins, n200 = summary["sign_test"]["peak_acc_first_200"], len(paired.first_200.runs)
    axes[0, 0].set_title(
        f"Equal budget of {BUDGET_EPOCHS} epochs: pretrained higher in {wins['wins']} of {n200} runs",
        loc="left",
    )
    save_figure(fig, path)
    return (
        f"As Fig. 4A, but the scratch arm only counts its first {BUDGET_EPOCHS} epochs, the pretrained arm's budget."
        + _paper_says(
            summary,
            f" Paper: the mean advantage roughly doubles, to about {paper.ADVANTAGE_FIRST_200_POINTS:g} points.",
        )
    )


def _curves(ax, records, arm, title) -> None:
    if not records:
        empty_panel(ax, f"no {LOWER[arm]} runs")
        ax.set_title(title, loc="left")
        return
    lines = [np.column_stack([np.arange(r.done), 100 * r.test_acc]) for r in records]
    ax.add_collection(
        LineCollection(lines, colors=COLOR[arm], linewidths=0.6, alpha=max(0.12, min(0.8, 8 / len(lines))))
    )
    longest = max(r.done for r in records)
    low = min(float(np.min(r.test_acc)) for r in records) * 100
    high = max(float(np.max(r.test_acc)) for r in records) * 100
    ax.set_xlim(0, max(1, longest - 1))
    ax.set_ylim(low - 1, high + 1)
    ax.set_xlabel("Epoch")
    ax.set_ylabel("Test accuracy (%)")
    ax.set_title(f"{title} ({len(records)} runs)", loc="left")
    ax.grid(alpha=0.25)


def fig06(path, study, summary, paired, example_run) -> str:
    fig, axes = new_figure(2, 2, (12, 8.4))
    records = _records(study, "pretrained")
    planned = summary["pretrained"]["epochs_planned"]
    full = f"{planned[0]} epochs" if len(planned) == 1 else "the full run"
    for ax, n, letter in zip(axes[0], paper.GAIN_FROM_LONGER_TRAINING, "AB", strict=True):
        gains = [100 * (r.peak_acc - r.peak_within(n)[1]) for r in records if r.done >= n]
        _hist(
            ax,
            [("pretrained", gains, f"Pretrained, {full} minus first {n}")],
            "Gain in peak test accuracy (percentage points)",
            " pts",
            digits=2,
        )
        ax.set_title(f"({letter}) Pretrained: gain from {full} instead of {n}", loc="left")
    _curves(axes[1, 0], records, "pretrained", "(C) Test accuracy of every pretrained run")
    _curves(axes[1, 1], _records(study, "scratch"), "scratch", "(D) Test accuracy of every scratch run")
    save_figure(fig, path)
    return (
        "(A, B) What the pretrained arm gains in peak test accuracy by training its full run instead of its "
        f"first {' or '.join(map(str, paper.GAIN_FROM_LONGER_TRAINING))} epochs"
        + _paper_says(summary, f" (paper: {' and '.join(paper.GAIN_FROM_LONGER_TRAINING.values())})")
        + ". (C, D) Test-accuracy curves of all runs, pretrained and from scratch."
    )


def fig07(path, study, summary, paired, example_run) -> str:
    fig, axes = new_figure(2, 2, (12, 8.4))
    letters = iter("ABCD")
    for row, (kind, unit) in enumerate((("acc", "Accuracy (%)"), ("loss", "Cross-entropy loss"))):
        for col, arm in enumerate(ARMS):
            ax = axes[row, col]
            letter = next(letters)
            title = f"({letter}) Run {example_run}, {LOWER[arm]}: {'accuracy' if kind == 'acc' else 'loss'}"
            record = study.arms[arm].get(example_run)
            if record is None:
                empty_panel(ax, f"run {example_run} has no {arm} arm")
                ax.set_title(title, loc="left")
                continue
            scale = 100 if kind == "acc" else 1
            x = np.arange(record.done)
            ax.plot(x, scale * getattr(record, f"train_{kind}"), color="0.45", linewidth=1.1, label="Train")
            ax.plot(x, scale * getattr(record, f"test_{kind}"), color=COLOR[arm], linewidth=1.3, label="Test")
            best = record.peak_epoch
            y = scale * getattr(record, f"test_{kind}")[best]
            ax.plot(
                [best],
                [y],
                marker="o",
                color="black",
                markersize=5,
                linestyle="none",
                label=f"Best epoch {best}" + (f" ({100 * record.peak_acc:.1f}%)" if kind == "acc" else ""),
            )
            ax.set_xlabel("Epoch")
            ax.set_ylabel(unit)
            ax.set_title(title, loc="left")
            ax.legend(loc="best", fontsize=9, frameon=False)
            ax.grid(alpha=0.25)
    save_figure(fig, path)
    return (
        f"Run {example_run}: train and test accuracy (A, B) and loss (C, D) over all epochs, pretrained (left) "
        "and from scratch (right); the dot marks the best epoch."
        + _paper_says(summary, f" The paper shows run {paper.EXAMPLE_RUN}.")
    )


def _class_hist(path, study, summary, arm) -> None:
    names = summary["class_names"]
    rows, columns, size = class_grid(len(names))
    fig, axes = new_figure(rows, columns, size)
    records = _records(study, arm)
    per_class = np.array([class_metrics(r.confusion)["class_acc"] for r in records]) if records else None
    for i, name in enumerate(names):
        ax = axes[i // columns, i % columns]
        if per_class is None:
            values = []
        else:
            values = 100 * per_class[:, i]
            values = values[~np.isnan(values)]
        _hist(ax, [(arm, values, LABEL[arm])], f"{class_label(name, names)} accuracy (%)", "%")
        ax.set_title(f"({panel_letter(i)}) {class_label(name, names)}", loc="left")
    for j in range(len(names), rows * columns):
        axes[j // columns, j % columns].set_visible(False)
    save_figure(fig, path)


def fig08(path, study, summary, paired, example_run) -> str:
    _class_hist(path, study, summary, "pretrained")
    return (
        "Per-class test accuracy (diagonal / row total of the best-epoch confusion matrix) of each pretrained "
        "run; dashed line: mean."
    )


def fig09(path, study, summary, paired, example_run) -> str:
    _class_hist(path, study, summary, "scratch")
    return "Per-class test accuracy of each run trained from scratch, as Fig. 8." + _paper_says(
        summary, " The paper finds Irr+Misc about half as accurate as with pretraining."
    )


def _matrix_layout(names, grid, paper_size, cell_text):
    """The figure's size and fonts for K classes (analysis.class_layout); the paper's with its four classes."""
    return matrix_layout([class_label(n, names) for n in names], grid, paper_size, cell_text)


def _matrix(fig, ax, values, text, names, title, layout, vmax=1.0, cmap="Blues", bar_label="") -> None:
    values = np.array([[np.nan if v is None else v for v in row] for row in values], dtype=np.float64)
    image = ax.imshow(values, cmap=cmap, vmin=0, vmax=vmax, aspect="auto")  # "equal" upsets the layout
    k = len(names)
    for i in range(k):
        for j in range(k):
            dark = not np.isnan(values[i, j]) and values[i, j] > 0.55 * vmax
            color = "white" if dark else "black"
            ax.text(j, i, text[i][j], ha="center", va="center", fontsize=layout.cell_points, color=color)
    labels = [class_label(n, names) for n in names]
    turn = TURNED_LABEL if layout.turn_x else {}
    ax.set_xticks(range(k), labels=labels, fontsize=layout.tick_points, **turn)
    ax.set_yticks(range(k), labels=labels, fontsize=layout.tick_points)
    ax.set_xlabel("Predicted class")
    ax.set_ylabel("True class")
    ax.set_title(title, loc="left", fontsize=11)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.03, label=bar_label)


def fig10(path, study, summary, paired, example_run) -> str:
    names = summary["class_names"]
    layout = _matrix_layout(names, (1, 2), (12.5, 5.2), cell_text=len("(100.0%)"))
    fig, axes = new_figure(1, 2, layout.size)
    for ax, arm, letter in zip(axes[0], ARMS, "AB", strict=True):
        record = study.arms[arm].get(example_run)
        if record is None:
            empty_panel(ax, f"run {example_run} has no {arm} arm")
            continue
        counts = record.confusion
        totals = counts.sum(axis=1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(totals > 0, counts / np.where(totals > 0, totals, 1), np.nan)
        text = [
            [
                f"{counts[i, j]}\n({100 * share[i, j]:.1f}%)" if totals[i, 0] else f"{counts[i, j]}"
                for j in range(len(names))
            ]
            for i in range(len(names))
        ]
        _matrix(
            fig,
            ax,
            share,
            text,
            names,
            f"({letter}) Run {example_run}, {LOWER[arm]}, best epoch {record.peak_epoch}",
            layout,
            bar_label="Share of the true class",
        )
    save_figure(fig, path)
    return (
        f"Confusion matrices of run {example_run}'s best-epoch models on its test set: counts, with the share "
        "of each true class (row) in brackets; colour follows the share."
    )


def fig11(path, study, summary, paired, example_run) -> str:
    names = summary["class_names"]
    layout = _matrix_layout(names, (2, 2), (12.5, 10), cell_text=len("0.000"))
    fig, axes = new_figure(2, 2, layout.size)
    sds = [v for arm in ARMS if summary[arm]["n_runs"] > 1 for r in summary[arm]["confusion_std"] for v in r]
    top = max((v for v in sds if v is not None), default=0.0) or 1.0  # one scale, so the arms compare
    for row, arm in enumerate(ARMS):
        block = summary[arm]
        n = block["n_runs"]
        if not n:
            for ax in axes[row]:
                empty_panel(ax, f"no {arm} runs")
            continue
        mean, std = block["confusion_mean"], block["confusion_std"]
        _matrix(
            fig,
            axes[row, 0],
            mean,
            [["n/a" if v is None else f"{v:.3f}" for v in r] for r in mean],
            names,
            f"({'AC'[row]}) {LABEL[arm]}: mean over {n} runs",
            layout,
            bar_label="Mean share of the true class",
        )
        if n > 1:
            _matrix(
                fig,
                axes[row, 1],
                std,
                [["n/a" if v is None else f"{v:.3f}" for v in r] for r in std],
                names,
                f"({'BD'[row]}) {LABEL[arm]}: SD over {n} runs",
                layout,
                vmax=top,
                cmap="Oranges",
                bar_label="SD of the share",
            )
        else:
            empty_panel(axes[row, 1], "SD undefined with a single run")
    save_figure(fig, path)
    return (
        "Each run's best-epoch confusion matrix as shares of its row (true-class) totals, then the cell-wise "
        "mean (A, C) and sample SD (B, D) over runs."
    )


FIGURES = (
    ("Figure 3", "fig03_peak_accuracy_and_epoch.png", fig03),
    ("Figure 4", "fig04_paired_differences.png", fig04),
    ("Figure 5", "fig05_difference_first_200.png", fig05),
    ("Figure 6", "fig06_gains_and_curves.png", fig06),
    ("Figure 7", "fig07_example_run_curves.png", fig07),
    ("Figure 8", "fig08_class_accuracy_pretrained.png", fig08),
    ("Figure 9", "fig09_class_accuracy_scratch.png", fig09),
    ("Figure 10", "fig10_confusion_example_run.png", fig10),
    ("Figure 11", "fig11_confusion_mean_sd.png", fig11),
)


def make_all(outdir: Path, study, summary: dict, paired: PaperPair, example_run: int) -> list[tuple[str, str, str]]:
    """Draw every figure into outdir; return (name, file name, caption) for the report."""
    out = []
    for name, filename, draw in FIGURES:
        caption = draw(Path(outdir) / filename, study, summary, paired, example_run)
        out.append((name, filename, caption))
    return out
