"""Tables: one `Table` type and one way to build one, from cells; the paper's Tables 1-4 and Table P.

A table keeps its raw values (for the CSV, full precision) beside its formatted text (for
Markdown and the report): every cell is built once, as a (raw, text) pair, by the helpers
below. The N-arm tables (analysis.arm_tables) are built the same way.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from alexnet_jax import paper
from alexnet_jax.analysis.formatting import class_label, format_number, format_percent, format_ranges, scaled
from alexnet_jax.analysis.paper_view import BUDGET_EPOCHS, STANDARD_EPOCHS
from alexnet_jax.analysis.stats import WITHIN_EPOCHS

TOO_FEW = "n/a (< 2 runs)"
Cell = tuple  # (raw value for the CSV, text for Markdown)


@dataclass
class Table:
    """One table: `number` as in the paper ("1"-"4", "P" for paired, "A1"-"A8"), `stem` names its files."""

    number: str
    stem: str
    title: str
    columns: list[str]
    rows: list[list[Any]]  # raw values for the CSV
    cells: list[list[str]]  # formatted for Markdown
    note: str = ""

    def markdown(self) -> str:
        lines = [f"**Table {self.number}.** {self.title}", ""]
        if not self.rows:
            return "\n".join(lines + [self.note or "None."])
        lines.append("| " + " | ".join(self.columns) + " |")
        lines.append("|" + "|".join("---" if i == 0 else "---:" for i in range(len(self.columns))) + "|")
        lines += ["| " + " | ".join(row) + " |" for row in self.cells]
        if self.note:
            lines += ["", self.note]
        return "\n".join(lines)

    def csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(self.columns)
        for row in self.rows:
            writer.writerow(["" if v is None else (f"{v:.6g}" if isinstance(v, float) else v) for v in row])
        return buffer.getvalue()


def build_table(
    number: str, stem: str, title: str, columns: list[str], rows: list[list[Cell]], note: str = ""
) -> Table:
    """A table from rows of (raw, text) cells."""
    raw = [[r for r, _ in row] for row in rows]
    return Table(number, stem, title, columns, raw, [[t for _, t in row] for row in rows], note)


def text_cell(value) -> Cell:
    return value, str(value)


def percent_cell(value, digits: int = 1) -> Cell:
    """A fraction: percent in both, the text rounded."""
    return scaled(value), format_percent(value, digits)


def number_cell(value, scale: float = 1.0, digits: int = 1) -> Cell:
    return scaled(value, scale), format_number(scaled(value, scale), digits)


def ci_cell(
    ci, scale: float = 100.0, digits: int = 1, show: Callable[[Any], str] | None = None, missing: str = TOO_FEW
) -> Cell:
    """A CI: 'low; high' at full precision for the CSV (a bound never reached is inf), '[low, high]' as text."""
    if ci is None:
        return None, missing
    show = show or (lambda v: format_number(scaled(v, scale), digits))
    return "; ".join("inf" if v is None else f"{v * scale:.6g}" for v in ci), f"[{show(ci[0])}, {show(ci[1])}]"


def _planned(block: dict) -> str:
    return ("/".join(str(e) for e in block["epochs_planned"]) or "n/a") + " epochs"


def _table1(summary: dict) -> Table:
    pre, scr, first = summary["pretrained"], summary["scratch"], summary["scratch_first_200"]
    columns = ["Arm, epochs considered", "Runs", "Mean peak test acc (%)", "SD (%)", "Mean peak epoch", "SD (epochs)"]
    rows = [("Pretrained, all " + _planned(pre), pre["n_runs"], pre["peak_acc_mean"], pre["peak_acc_std"])]
    rows[0] += (pre["peak_epoch_mean"], pre["peak_epoch_std"])
    for n in WITHIN_EPOCHS:
        w = pre["peak_acc_within"][str(n)]
        rows.append((f"Pretrained, first {n}", w["n"], w["mean"], w["std"], w["peak_epoch_mean"], w["peak_epoch_std"]))
    rows.append(("Scratch, all " + _planned(scr), scr["n_runs"], scr["peak_acc_mean"], scr["peak_acc_std"]))
    rows[-1] += (scr["peak_epoch_mean"], scr["peak_epoch_std"])
    rows.append((f"Scratch, first {BUDGET_EPOCHS}", first["n"], first["peak_acc_mean"], first["peak_acc_std"]))
    rows[-1] += (first["peak_epoch_mean"], first["peak_epoch_std"])
    cells = [
        [text_cell(label), text_cell(n), percent_cell(acc), percent_cell(sd, 2), number_cell(epoch), number_cell(esd)]
        for label, n, acc, sd, epoch, esd in rows
    ]
    title = (
        "Peak test accuracy and the (0-based) epoch of the peak, over runs. "
        '"First N" takes each run\'s peak within its first N epochs, over runs with at least N finished epochs.'
    )
    return build_table("1", "table1_summary", title, columns, cells)


def _table2(summary: dict) -> Table:
    pre, scr = summary["pretrained"], summary["scratch"]
    columns = ["Class", "Pretrained mean (%)", "Pretrained SD (%)", "Scratch mean (%)", "Scratch SD (%)"]
    columns += ["Ratio pretrained / scratch", "Runs (pretrained / scratch)"]
    rows, names = [], summary["class_names"]
    for i, name in enumerate(names):
        pm, ps = pre["class_acc_mean"][i], pre["class_acc_std"][i]
        sm, ss = scr["class_acc_mean"][i], scr["class_acc_std"][i]
        ratio = pm / sm if pm is not None and sm else None
        rows.append(
            [text_cell(class_label(name, names))]
            + [percent_cell(pm), percent_cell(ps), percent_cell(sm), percent_cell(ss)]
            + [number_cell(ratio, digits=2), text_cell(f"{pre['class_acc_n'][i]} / {scr['class_acc_n'][i]}")]
        )
    title = (
        "Per-class test accuracy (diagonal / row total of each run's "
        "best-epoch confusion matrix), mean and sample SD over runs."
    )
    return build_table("2", "table2_class_accuracy", title, columns, rows)


def _table3(summary: dict) -> Table:
    columns = ["Run", "Pretrained epochs", "Pretrained peak acc (%)", "Pretrained peak epoch", "Scratch epochs"]
    columns += ["Scratch peak acc (%)", "Scratch peak epoch", "Difference (points)"]
    rows = [
        [text_cell(row["run"])]
        + [
            cell
            for arm in ("pretrained", "scratch")
            for cell in (
                text_cell(row[f"{arm}_epochs"]),
                number_cell(row[f"{arm}_peak_acc"], 100.0),
                text_cell(row[f"{arm}_peak_epoch"]),
            )
        ]
        + [number_cell(row["peak_acc_diff"], 100.0)]
        for row in summary["long_runs"]
    ]
    title = (
        f"Runs trained longer than the standard "
        f"{STANDARD_EPOCHS['pretrained']} (pretrained) or {STANDARD_EPOCHS['scratch']} (scratch) epochs "
        f"(the paper repeated runs {format_ranges(paper.LONG_RUNS)} with {paper.LONG_RUN_EPOCHS:,} epochs per arm)."
    )
    note = "" if rows else "None: no run in this study has more than the standard epochs."
    return build_table("3", "table3_long_runs", title, columns, rows, note)


def _table4(summary: dict) -> Table:
    names, pre, scr = summary["class_names"], summary["pretrained"], summary["scratch"]
    columns = ["Class"] + [f"{m} {a}" for m in ("Precision", "Recall", "F1") for a in ("pretrained", "scratch")]
    rows = []
    for i, name in enumerate(names):
        row = [text_cell(class_label(name, names))]
        for metric in ("precision", "recall", "f1"):
            for block in (pre, scr):
                mean, std = block[f"{metric}_mean"][i], block[f"{metric}_std"][i]
                text = "n/a" if mean is None else f"{mean:.3f}" + ("" if std is None else f" ({std:.3f})")
                row.append((mean, text))
        rows.append(row)
    notes = [
        f"{class_label(name, names)} was never predicted in {block['precision_undefined_runs'][i]} "
        f"of {block['n_runs']} {label} runs: precision is undefined there and left out of its "
        f"mean (recall and F1 count those runs as 0)."
        for label, block in (("pretrained", pre), ("scratch", scr))
        for i, name in enumerate(names)
        if block["precision_undefined_runs"][i]
    ]
    title = (
        "Precision, recall and F1 per class from each run's best-epoch confusion matrix, mean (sample SD) over runs."
    )
    return build_table("4", "table4_precision_recall_f1", title, columns, rows, " ".join(notes))


def make_tables(summary: dict) -> list[Table]:
    """The paper's Tables 1-4, from summary.json's paper keys."""
    return [_table1(summary), _table2(summary), _table3(summary), _table4(summary)]


def paired_table(summary: dict) -> Table:
    """Table P: the paper's pair, pretrained minus scratch; the CIs are the engine's, as in Tables A2 and A3."""
    p = summary["paired"]
    columns = ["Pretrained minus scratch", "Pairs", "Mean", "SD", "95% CI of mean (bootstrap)", "Min", "Max"]
    specs = [
        ("Peak test accuracy, scratch all epochs (points)", "peak_acc_diff", "n", 100.0, 2),
        (
            f"Peak test accuracy, scratch first {BUDGET_EPOCHS} (points)",
            "peak_acc_diff_first_200",
            "n_first_200",
            100.0,
            2,
        ),
        ("Peak epoch, scratch all epochs", "peak_epoch_diff", "n", 1.0, 1),
        (f"Peak epoch, scratch first {BUDGET_EPOCHS}", "peak_epoch_diff_first_200", "n_first_200", 1.0, 1),
    ]
    rows = [
        [text_cell(label), text_cell(p[n_key])]
        + [number_cell(p[f"{key}_{stat}"], scale, digits) for stat in ("mean", "std")]
        + [ci_cell(p[f"{key}_ci95"], scale, digits, missing="n/a")]
        + [number_cell(p[f"{key}_{stat}"], scale, digits) for stat in ("min", "max")]
        for label, key, n_key, scale, digits in specs
    ]
    title = "Paired differences over runs that have both arms (epoch differences: negative = pretrained peaks earlier)."
    return build_table("P", "paired_differences", title, columns, rows)
