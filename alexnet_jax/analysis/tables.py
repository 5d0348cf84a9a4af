"""The paper's Tables 1-4 and the table of paired differences, from summary.json's numbers.

Each `Table` holds its raw values (for the CSV) beside its formatted cells (for Markdown and
the report), so the CSV files keep full precision and the Markdown shows what the paper shows.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any

from alexnet_jax import paper
from alexnet_jax.analysis.formatting import class_label, format_number, format_percent, format_ranges, scaled
from alexnet_jax.analysis.stats import BUDGET_EPOCHS, STANDARD_EPOCHS, WITHIN_EPOCHS


@dataclass
class Table:
    """One table: `number` as in the paper ("1"-"4", "P" for paired), `stem` names its files."""

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


def make_tables(summary: dict) -> list[Table]:
    names = summary["class_names"]
    pre, scr, first = summary["pretrained"], summary["scratch"], summary["scratch_first_200"]

    def planned(block):
        return ("/".join(str(e) for e in block["epochs_planned"]) or "n/a") + " epochs"

    columns = ["Arm, epochs considered", "Runs", "Mean peak test acc (%)", "SD (%)", "Mean peak epoch", "SD (epochs)"]
    rows = [
        [
            "Pretrained, all " + planned(pre),
            pre["n_runs"],
            pre["peak_acc_mean"],
            pre["peak_acc_std"],
            pre["peak_epoch_mean"],
            pre["peak_epoch_std"],
        ],
    ]
    for n in WITHIN_EPOCHS:
        w = pre["peak_acc_within"][str(n)]
        rows.append([f"Pretrained, first {n}", w["n"], w["mean"], w["std"], w["peak_epoch_mean"], w["peak_epoch_std"]])
    rows.append(
        [
            "Scratch, all " + planned(scr),
            scr["n_runs"],
            scr["peak_acc_mean"],
            scr["peak_acc_std"],
            scr["peak_epoch_mean"],
            scr["peak_epoch_std"],
        ]
    )
    rows.append(
        [
            f"Scratch, first {BUDGET_EPOCHS}",
            first["n"],
            first["peak_acc_mean"],
            first["peak_acc_std"],
            first["peak_epoch_mean"],
            first["peak_epoch_std"],
        ]
    )
    csv_rows = [[r[0], r[1], scaled(r[2]), scaled(r[3]), r[4], r[5]] for r in rows]
    cells = [
        [r[0], str(r[1]), format_percent(r[2]), format_percent(r[3], 2), format_number(r[4]), format_number(r[5])]
        for r in rows
    ]
    table1 = Table(
        "1",
        "table1_summary",
        "Peak test accuracy and the (0-based) epoch of the peak, over runs. "
        '"First N" takes each run\'s peak within its first N epochs, over runs with at least N finished '
        "epochs.",
        columns,
        csv_rows,
        cells,
    )

    columns = [
        "Class",
        "Pretrained mean (%)",
        "Pretrained SD (%)",
        "Scratch mean (%)",
        "Scratch SD (%)",
        "Ratio pretrained / scratch",
        "Runs (pretrained / scratch)",
    ]
    rows, cells = [], []
    for i, name in enumerate(names):
        pm, ps, sm, ss = (
            pre["class_acc_mean"][i],
            pre["class_acc_std"][i],
            scr["class_acc_mean"][i],
            scr["class_acc_std"][i],
        )
        ratio = pm / sm if pm is not None and sm else None
        runs = f"{pre['class_acc_n'][i]} / {scr['class_acc_n'][i]}"
        rows.append([class_label(name), scaled(pm), scaled(ps), scaled(sm), scaled(ss), ratio, runs])
        cells.append(
            [
                class_label(name),
                format_percent(pm),
                format_percent(ps),
                format_percent(sm),
                format_percent(ss),
                format_number(ratio, 2),
                runs,
            ]
        )
    table2 = Table(
        "2",
        "table2_class_accuracy",
        "Per-class test accuracy (diagonal / row total of each run's "
        "best-epoch confusion matrix), mean and sample SD over runs.",
        columns,
        rows,
        cells,
    )

    columns = [
        "Run",
        "Pretrained epochs",
        "Pretrained peak acc (%)",
        "Pretrained peak epoch",
        "Scratch epochs",
        "Scratch peak acc (%)",
        "Scratch peak epoch",
        "Difference (points)",
    ]
    rows, cells = [], []
    for row in summary["long_runs"]:
        values = [
            row["run"],
            row["pretrained_epochs"],
            scaled(row["pretrained_peak_acc"]),
            row["pretrained_peak_epoch"],
            row["scratch_epochs"],
            scaled(row["scratch_peak_acc"]),
            row["scratch_peak_epoch"],
            scaled(row["peak_acc_diff"]),
        ]
        rows.append(values)
        cells.append(
            [
                str(values[0]),
                str(values[1]),
                format_number(values[2]),
                str(values[3]),
                str(values[4]),
                format_number(values[5]),
                str(values[6]),
                format_number(values[7]),
            ]
        )
    table3 = Table(
        "3",
        "table3_long_runs",
        f"Runs trained longer than the standard "
        f"{STANDARD_EPOCHS['pretrained']} (pretrained) or {STANDARD_EPOCHS['scratch']} (scratch) epochs "
        f"(the paper repeated runs {format_ranges(paper.LONG_RUNS)} with {paper.LONG_RUN_EPOCHS:,} epochs per arm).",
        columns,
        rows,
        cells,
        note="" if rows else "None: no run in this study has more than the standard epochs.",
    )

    columns = ["Class"] + [f"{m} {a}" for m in ("Precision", "Recall", "F1") for a in ("pretrained", "scratch")]
    rows, cells = [], []
    for i, name in enumerate(names):
        raw, text = [class_label(name)], [class_label(name)]
        for metric in ("precision", "recall", "f1"):
            for block in (pre, scr):
                mean, std = block[f"{metric}_mean"][i], block[f"{metric}_std"][i]
                raw.append(mean)
                text.append("n/a" if mean is None else f"{mean:.3f}" + ("" if std is None else f" ({std:.3f})"))
        rows.append(raw)
        cells.append(text)
    notes = []
    for label, block in (("pretrained", pre), ("scratch", scr)):
        for i, name in enumerate(names):
            if block["precision_undefined_runs"][i]:
                notes.append(
                    f"{class_label(name)} was never predicted in {block['precision_undefined_runs'][i]} "
                    f"of {block['n_runs']} {label} runs: precision is undefined there and left out of its "
                    f"mean (recall and F1 count those runs as 0)."
                )
    table4 = Table(
        "4",
        "table4_precision_recall_f1",
        "Precision, recall and F1 per class from each run's best-epoch confusion matrix, mean (sample SD) over runs.",
        columns,
        rows,
        cells,
        note=" ".join(notes),
    )
    return [table1, table2, table3, table4]


def paired_table(summary: dict) -> Table:
    p = summary["paired"]
    columns = ["Pretrained minus scratch", "Pairs", "Mean", "SD", "95% CI of mean (bootstrap)", "Min", "Max"]
    specs = [
        ("Peak test accuracy, scratch all epochs (points)", "peak_acc_diff", "n", 100.0),
        (
            f"Peak test accuracy, scratch first {BUDGET_EPOCHS} (points)",
            "peak_acc_diff_first_200",
            "n_first_200",
            100.0,
        ),
        ("Peak epoch, scratch all epochs", "peak_epoch_diff", "n", 1.0),
        (f"Peak epoch, scratch first {BUDGET_EPOCHS}", "peak_epoch_diff_first_200", "n_first_200", 1.0),
    ]
    rows, cells = [], []
    for label, key, n_key, scale in specs:
        ci = p[f"{key}_ci95"]
        values = [scaled(p[f"{key}_{s}"], scale) for s in ("mean", "std", "min", "max")]
        rows.append(
            [
                label,
                p[n_key],
                values[0],
                values[1],
                None if ci is None else f"{ci[0] * scale:.6g}; {ci[1] * scale:.6g}",
                values[2],
                values[3],
            ]
        )
        fmt = (lambda v: format_number(v, 2)) if scale == 100.0 else (lambda v: format_number(v, 1))
        ci_text = "n/a" if ci is None else f"[{fmt(ci[0] * scale)}, {fmt(ci[1] * scale)}]"
        cells.append([label, str(p[n_key]), fmt(values[0]), fmt(values[1]), ci_text, fmt(values[2]), fmt(values[3])])
    return Table(
        "P",
        "paired_differences",
        "Paired differences over runs that have both arms (epoch differences: negative = pretrained peaks earlier).",
        columns,
        rows,
        cells,
    )
