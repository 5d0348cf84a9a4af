"""The report's "Label efficiency" section, in plain sentences, from summary.json's `label_efficiency` block.

Only a study whose runs carry `label_budget` has it; analysis.report appends it after the N-arm
sections, so every other report keeps its text. Every number comes from the summary.
"""

from __future__ import annotations

from alexnet_jax.analysis.formatting import format_number, format_p, format_percent, scaled
from alexnet_jax.analysis.label_efficiency import BELOW, NOT_REACHED, REACHED
from alexnet_jax.analysis.label_tables import (
    METRIC_NAMES,
    bound_text,
    format_labels,
    labels_ci_text,
    ratio_ci_text,
    size_text,
)
from alexnet_jax.analysis.prose import figure_lines, table_lines
from alexnet_jax.analysis.stats import ALPHA
from alexnet_jax.analysis.tables import Table

Figures = dict[str, tuple[str, str]]  # file name -> (name, caption), for the figures drawn


def _figure(figures: Figures, filename: str) -> list[str]:
    return figure_lines(figures[filename][0], filename, figures[filename][1]) if filename in figures else []


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}s"


def _design_lines(block: dict) -> list[str]:
    design = block["design"]
    sizes = ", ".join(size_text(block, s) for s in range(len(design["sizes"])))
    found = design["repeats_found"]
    lines = [
        f"Every arm ({', '.join(f'`{a}`' for a in block['arms'])}) was trained on subsets of "
        f"{len(design['sizes'])} sizes, {sizes} labels, in {_plural(design['repeats_declared'], 'repeat')} "
        f"({len(found)} found). Within a repeat the subsets are nested (the smaller inside the larger) and every "
        f"size and arm is tested on one test set, so the curves are paired; each subset holds at least "
        f"{design['min_per_class']} examples of every class that has them, and the training budget is "
        f"`{design['budget_policy']}` (Table L1). A number of labels is the size of a run's subset before its "
        "validation split is carved out: every galaxy that must be labelled to train and to select the model.",
        "",
        "Bootstrap CIs resample whole repeats (each a test set with its nested subsets and every arm), so arms "
        f"and sizes stay paired; {block['bootstrap']['resamples']:,} resamples. With so few repeats the plain "
        "percentile interval is too narrow (in simulation it covered the truth 83 % of the time with 5 repeats, "
        "the expanded one 92 %), so every 95% interval here is the expanded percentile interval (docs/analysis.md). "
        "The "
        "sections above pool every size as if each run were another repeat of one protocol; per size, read this "
        "section.",
        "",
    ]
    if len(found) < 5:
        lines += [
            f"**Only {_plural(len(found), 'repeat')}:** every CI below is too narrow (with 3 repeats a bootstrap "
            "can draw only 10 different samples, and in simulation its 95% intervals covered the truth 75 % of the "
            "time); read them as rough, and train more repeats to rely on them.",
            "",
        ]
    if block["missing"]:
        cells = "; ".join(
            f"{m['arm']} at {format_labels(m['size'])} labels, repeat {m['repeat']}" for m in block["missing"]
        )
        lines += [
            f"**Missing results** (left out of their size's numbers, and their repeat out of labels saved): {cells}.",
            "",
        ]
    if block["incomplete"]:
        runs = ", ".join(f"run {i['run']} {i['arm']}" for i in block["incomplete"])
        lines += [f"**Unfinished** (their best epoch so far is used; the numbers may still change): {runs}.", ""]
    return lines


def _differences_lines(block: dict) -> list[str]:
    differences = block["differences"]
    n_tests = len(differences["accuracy"])
    if not n_tests:
        return ["With a single arm there is nothing to compare.", ""]
    lines = [
        "Each pair of arms (a minus b, the reference arm always b) is compared at each size over the repeats that "
        "have both: the sign test (ties dropped) and the Wilcoxon signed-rank test, two-sided, and a bootstrap 95% "
        f"CI of the mean difference. **Holm** adjusts each test's p-values per metric over every pair and size "
        f"together ({n_tests} tests a family).",
    ]
    smallest = block["smallest_p"]
    if smallest is not None:
        repeats = max(d["n"] for d in differences["accuracy"])
        text = (
            f"With {_plural(repeats, 'repeat')} the smallest two-sided p the sign test (and the exact Wilcoxon "
            f"test) can give is {format_p(smallest)}"
        )
        if smallest >= ALPHA:
            text += (
                f", so the sign test cannot reach the {ALPHA} level whatever the data (the Wilcoxon test's normal "
                "approximation, used where differences tie, can dip lower, but is rough with so few pairs): these "
                "repeats estimate the differences (the CIs) rather than test them; more repeats can test them."
            )
        else:
            text += "."
        lines.append(text)
    lines.append("")
    for metric, entries in differences.items():
        found = [
            f"{d['a']} minus {d['b']} at {format_labels(d['size'])} labels "
            f"({format_number(scaled(d['diff_mean']), 2)} points, Holm p = {format_p(d['sign_test']['p_holm'])})"
            for d in entries
            if (d["sign_test"]["p_holm"] or 1.0) < ALPHA
        ]
        lines.append(
            f"- **{METRIC_NAMES[metric]} differs at the {ALPHA} level after Holm** (sign test): "
            + ("; ".join(found) or "nowhere")
            + "."
        )
    return lines + [""]


def _resample_note(entry: dict, design: dict) -> str:
    """Resamples that do not give a number of labels, where some do and some do not."""
    counts = entry["resamples"]
    if counts is None:
        return f" ({_plural(entry['n_repeats'], 'repeat')}: too few for a CI)"
    if counts[entry["status"]] == counts["n"]:
        return ""
    parts = []
    if counts[NOT_REACHED]:
        parts.append(f"in {counts[NOT_REACHED]:,} it does not get there within {format_labels(design['sizes'][-1])}")
    if counts[BELOW]:
        parts.append(f"in {counts[BELOW]:,} it is there already at {format_labels(design['sizes'][0])}")
    return f" Of {counts['n']:,} resamples, {' and '.join(parts)}; the CI counts them as such." if parts else ""


def saved_sentence(entry: dict, block: dict) -> str:
    """One labels-saved result in words, e.g. '`imagenet` reached the accuracy `scratch` has with 3,000 labels
    (81.2%) using 800 [500, 1,200] labels, 0.27 [0.17, 0.40] times as many.'"""
    design = block["design"]
    arm, reference = f"`{entry['arm']}`", f"`{entry['reference']}`"
    s = design["sizes"].index(entry["reference_size"])
    where = f"the accuracy {reference} has with {size_text(block, s)} labels"
    if entry["status"] is None:
        return f"- {arm} vs {where}: no repeat has every size of both arms, so it cannot be computed."
    where += f" ({format_percent(entry['level'])}%)"
    repeats = _plural(entry["n_repeats"], "repeat")
    ci = labels_ci_text(entry, design)
    note = _resample_note(entry, design)
    if entry["status"] == REACHED:
        return (
            f"- {arm} reached {where} using {format_labels(entry['labels'])} {ci} labels, "
            f"{entry['ratio']:.2f} {ratio_ci_text(entry, design)} times as many ({repeats}).{note}"
        )
    if entry["status"] == BELOW:
        bound = bound_text(None, BELOW, design)
        return (
            f"- {arm} already has {where} at the smallest size tried: it needs {bound} labels (95% CI {ci}), at "
            f"most {entry['bound'] / entry['reference_size']:.2f} times as many; the sizes tried cannot say how "
            f"few ({repeats}).{note}"
        )
    return (
        f"- {arm} did not reach {where} with any number of labels tried (up to {format_labels(design['sizes'][-1])}; "
        f"95% CI {ci}; {repeats}).{note}"
    )


def _saved_lines(block: dict, tables: dict[str, Table], figures: Figures) -> list[str]:
    reference = block["reference_arm"]
    lines = ["### Labels saved", ""]
    if reference is None:
        return lines + ["No reference arm (name one with `--reference_arm`), so no labels saved.", ""]
    if not block["labels_saved"]:
        return lines + [f"No arm besides the reference arm `{reference}`.", ""]
    lines += [
        f"For each arm and each size N of the reference arm `{reference}`: the number of labels N* at which the "
        f"arm's mean accuracy curve first reaches `{reference}`'s mean accuracy with N labels, interpolated "
        "linearly on log N between the sizes tried, and N* / N. Nothing is extrapolated: an arm already at the "
        'level with the fewest labels tried needs "<= N_min", one that never gets there within the sizes tried '
        'is "not reached", counted and never dropped, and bootstrap resamples are counted the same way (a CI '
        "bound reads so when that many resamples are).",
        "",
    ]
    lines += [saved_sentence(entry, block) for entry in block["labels_saved"]] + [""]
    return lines + table_lines(tables["labels_saved"]) + _figure(figures, "fig19_labels_saved.png")


def section(summary: dict, tables: dict[str, Table], figures: Figures) -> list[str]:
    """The section's lines; none for a study without `label_efficiency`."""
    block = summary.get("label_efficiency")
    if block is None:
        return []
    lines = ["## Label efficiency", ""] + _design_lines(block) + table_lines(tables["label_design"])
    lines += _figure(figures, "fig17_label_efficiency.png")
    for metric in block["metrics"]:
        lines += table_lines(tables[f"label_efficiency_{metric}"])
    lines += table_lines(tables["label_efficiency_class_recall"]) + _figure(
        figures, "fig18_label_efficiency_class_recall.png"
    )
    lines += ["### Paired differences between arms at each size", ""] + _differences_lines(block)
    lines += table_lines(tables["label_efficiency_differences"])
    return lines + _saved_lines(block, tables, figures)
