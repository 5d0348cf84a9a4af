"""The report's shared building blocks: the data paragraph, what went wrong while reading, tables and figures.

Used by the paper's sections (analysis.paper_report), the N-arm sections (analysis.arm_report) and
the one renderer that joins them (analysis.report).
"""

from __future__ import annotations

import json

from alexnet_jax import paper
from alexnet_jax.analysis.formatting import format_ranges
from alexnet_jax.analysis.tables import Table

MADE_BY = (
    "Made by `python -m alexnet_jax.analyze` from `{workdir}`. "
    "Definitions: `docs/analysis.md`. All numbers are also in `summary.json`."
)
SD_NOTE = (
    "Standard deviations are sample SDs (ddof = 1); with fewer than two runs they are undefined and "
    "shown as n/a (null in summary.json). Epochs are counted from 0, as in the original code."
)


def problem_lines(summary: dict, blocks: dict[str, dict]) -> list[str]:
    """Unfinished runs (of the arms in blocks), skipped files and warnings, each only where there are any."""
    lines = []
    incomplete = [(arm, r) for arm, block in blocks.items() for r in block["incomplete_runs"]]
    if incomplete:
        lines += [
            "**Unfinished runs** (`complete: false`): their finished epochs are included, so their peaks may "
            "still change: " + ", ".join(f"run {r} {arm}" for arm, r in incomplete) + ".",
            "",
        ]
    if summary["skipped"]:
        count = len(summary["skipped"])
        lines += [f"**Skipped {count} results file{'s' if count > 1 else ''}** (left out of every number):", ""]
        lines += [f"- `{s['path']}`: {s['reason']}" for s in summary["skipped"]] + [""]
    if summary["warnings"]:
        lines += ["**Warnings:**", ""] + [f"- {w}" for w in summary["warnings"]] + [""]
    return lines


def data_paragraph(summary: dict, side_by_side: bool = True, paper_classes: bool = True) -> str:
    """What data the runs used; `side_by_side`: the report holds the table beside the paper's numbers;
    `paper_classes`: the runs classify the paper's classes (else no word on comparing with the paper)."""
    data = summary["data"]
    if data["status"] == "synthetic":
        if not paper_classes:
            return f"**The data are synthetic** ({data['synthetic_evidence']}): every number below is made up."
        return (
            "**The data are synthetic** (" + data["synthetic_evidence"] + "). Every number below describes "
            "simulated or generated data, not the Nair & Abraham (2010) galaxies: it is **not comparable with "
            "the paper's results**"
            + (", and the side-by-side table only shows that the pipeline runs." if side_by_side else ".")
        )
    if data["status"] == "unknown":
        return "The results record no data set (no `config.data`)." + (
            " The comparison with the paper holds only if "
            f"the runs used the {paper.NUM_EXAMPLES:,} Nair & Abraham (2010) images under the paper's protocol."
            if paper_classes
            else ""
        )
    shown = "; ".join(
        f"runs {format_ranges(d['runs'])}: `{json.dumps(d['data'], sort_keys=True)}`" for d in data["descriptions"]
    )
    text = f"Data set as recorded in `config.data`: {shown}."
    if len(data["descriptions"]) > 1:
        text += " **The runs do not all use the same data description.**"
    if data["runs_without_data_config"]:
        text += f" {data['runs_without_data_config']} runs record no data set."
    if not paper_classes:
        return text
    return text + (
        " Compare with the paper only if this is the Nair & Abraham (2010) catalogue under the paper's protocol."
    )


NORMALIZATION_TEXT = {"none": "[0, 1] pixels", "imagenet": "ImageNet mean/std", "inception": "(x - 0.5) / 0.5"}


def starting_weights_lines(summary: dict) -> list[str]:
    """One bullet per arm and starting point: really pretrained (from which file or package) or random."""
    described = summary.get("starting_weights") or {}
    lines = []
    for arm in summary.get("arm_names", described):
        for start in described.get(arm, []):
            source, kind = start.get("source") or {}, start.get("kind") or "not recorded"
            if kind == "converted_torch_weights":
                origin = (
                    f"the registry package `{source['package']}` {source.get('package_version') or ''}".rstrip()
                    if source.get("package")
                    else f"`{source.get('kind', 'a converted file')}`"
                )
                text = f"**ImageNet-pretrained**, weights from {origin}"
                if source.get("file"):
                    text += f" (`{source['file']}`)"
            elif kind.endswith("_default_init"):
                text = f"random, {kind.removesuffix('_default_init')}'s default initialisation (not pretrained)"
            elif kind == "checkpoint":
                text = "a converted checkpoint"
            else:
                text = kind
            if start.get("source_sha256"):
                text += f", sha256 `{start['source_sha256'][:16]}...`"
            scaling = start.get("input_normalization")
            if scaling:
                text += f"; input scaled as {scaling} ({NORMALIZATION_TEXT.get(scaling, scaling)})"
            lines.append(f"- `{arm}` (runs {format_ranges(start['runs'])}): {text}.")
    return ["## Starting weights", "", *lines, ""] if lines else []


def table_lines(table: Table) -> list[str]:
    """A table in the report, with the name of its CSV file."""
    return [table.markdown(), "", f"CSV: `{table.stem}.csv`", ""]


def figure_lines(name: str, filename: str, caption: str) -> list[str]:
    return [f"![{name}]({filename})", "", f"**{name}.** {caption}", ""]
