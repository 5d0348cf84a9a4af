"""report.md, by one renderer: the data and runs, the paper's sections when its pair is present, every N-arm section.

The paper's sections (analysis.paper_report) switch on when both of the paper's arms have results;
without them the report describes the arms the study has and says why the paper's part is left out.
The paper's published numbers appear only when the runs classify the paper's four classes; for any
other classes one sentence says why they are left out.
Every number comes from the summary, so the report and summary.json never disagree.
"""

from __future__ import annotations

from alexnet_jax.analysis import arm_report, calibration_report, label_report, paper_report
from alexnet_jax.analysis.paper_view import has_paper_classes, has_paper_pair, paper_classes_note
from alexnet_jax.analysis.prose import MADE_BY, data_paragraph, starting_weights_lines
from alexnet_jax.analysis.tables import Table

Figure = tuple[str, str, str]  # (name, file name, caption)


def render_report(
    summary: dict,
    tables: list[Table],
    paper_figures: list[Figure],
    arm_figures: list[Figure],
    example_run: int | None,
) -> str:
    """The whole report.md; figures are those drawn (none with --nofigures)."""
    by_stem = {table.stem: table for table in tables}
    paper = has_paper_pair(summary)
    title = paper_report.title(summary) if paper else ", ".join(summary["arm_names"])
    lines = [f"# Study analysis: {title}", "", MADE_BY.format(workdir=summary["workdir"]), ""]
    classes = has_paper_classes(summary)
    data = data_paragraph(summary, side_by_side=paper and classes, paper_classes=classes)
    lines += ["## Data and runs", "", data, ""]
    if not classes:
        lines += [paper_classes_note(summary), ""]
    if paper:
        lines += paper_report.runs_lines(summary)
        lines += paper_report.sections(summary, by_stem, paper_figures, example_run)
    else:
        lines += arm_report.runs_lines(summary)
    drawn = {filename: (name, caption) for name, filename, caption in arm_figures}
    body = "\n".join(lines) + "\n" + arm_report.sections(summary, by_stem, drawn)
    label_lines = label_report.section(summary, by_stem, drawn)  # a label-efficiency study only
    if label_lines:
        body += "\n" + "\n".join(label_lines)
    body += "\n" + "\n".join(starting_weights_lines(summary))  # appended: earlier sections keep their text
    return body + "\n" + "\n".join(calibration_report.section(summary, by_stem, drawn))
