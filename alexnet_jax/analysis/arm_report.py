"""The report's N-arm sections (every study has them), and "Data and runs" of a study that lacks one of
the paper's two arms (there the paper's sections would be mostly n/a). analysis.report joins them.

Every number comes from summary.json's N-arm keys (analysis.engine), so report and summary agree.
"""

from __future__ import annotations

from alexnet_jax.analysis.arm_tables import NOT_REACHED, arm_blocks
from alexnet_jax.analysis.formatting import (
    class_label,
    format_number,
    format_p,
    format_percent,
    format_ranges,
    format_runs,
    scaled,
)
from alexnet_jax.analysis.paper_view import has_paper_classes
from alexnet_jax.analysis.prose import SD_NOTE, figure_lines, problem_lines, table_lines
from alexnet_jax.analysis.stats import ALPHA
from alexnet_jax.analysis.tables import Table
from alexnet_jax.results import ARMS
from alexnet_jax.toolbox import format_duration

Figures = dict[str, tuple[str, str]]  # file name -> (name, caption), for the figures drawn


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _sooner(ratio: float) -> str:
    """A speed-up in words: above 1 sooner, below 1 later."""
    return f"{ratio:.1f} times sooner" if ratio >= 1 else f"{1 / ratio:.1f} times later"


def _saved(seconds: float) -> str:
    return (
        f"a median {format_duration(seconds)} saved" if seconds >= 0 else f"a median {format_duration(-seconds)} lost"
    )


def _code(names) -> str:
    return ", ".join(f"`{n}`" for n in names)


def _figure(figures: Figures, filename: str) -> list[str]:
    """The figure if it was drawn (figures: file name -> (name, caption))."""
    return figure_lines(figures[filename][0], filename, figures[filename][1]) if filename in figures else []


def _missing_lines(summary: dict) -> list[str]:
    m = summary["missing_arms"]
    if not m["missing"]:
        return [f"Every arm the runs' configs declare ({_code(m['declared'])}) is present in every run.", ""]
    absent = "; ".join(
        f"`{arm}` in {format_runs(len(runs))} ({format_ranges(runs)})" for arm, runs in m["missing"].items()
    )
    lines = [
        f"**Missing arms.** The runs' configs declare {_code(m['declared'])}, but these have no results: {absent}. "
        "This one command trains them (arms already finished are left alone):",
        "",
        f"    {m['command']}",
        "",
    ]
    if len(m["config_files"]) > 1:
        lines += [f"The runs record different config files ({_code(m['config_files'])}): pick the right one.", ""]
    elif not m["config_files"]:
        lines += [
            "The results do not record the config file (`config_file`; version-1 files never do): replace "
            "`CONFIG` with the config the runs were trained with (each results.json holds it under `config`).",
            "",
        ]
    return lines


def _timing_sentence(summary: dict) -> str:
    sources: dict[str, int] = {}
    for arm in summary["arm_names"]:
        for source, n in summary["cost"]["arms"][arm]["seconds_source"].items():
            sources[source] = sources.get(source, 0) + n
    total = sum(sources.values())
    parts = []
    if sources.get("epoch_seconds"):
        parts.append(
            f"from `epoch_seconds` (each epoch's wall time, evaluation included) in {sources['epoch_seconds']}"
        )
    if sources.get("wall_time_s spread evenly"):
        n = sources["wall_time_s spread evenly"]
        parts.append(f"from `wall_time_s` spread evenly over the finished epochs in {n} (no epoch_seconds recorded)")
    if sources.get("none"):
        parts.append(f"nowhere in {sources['none']}, which are left out of every time figure")
    return f"Wall seconds come {'; '.join(parts)} of the {total} arm-runs (one arm of one run each)."


def _arms_section(summary: dict, tables: dict[str, Table], figures: Figures) -> list[str]:
    arms, reference = summary["arm_names"], summary["reference_arm"]
    lines = ["## Arms", ""]
    lines.append(
        f"{len(arms)} arm{'s' if len(arms) > 1 else ''} in this study, in the order of every N-arm table and "
        f"figure: {_code(arms)}."
    )
    if reference["name"]:
        lines.append(
            f"Reference arm: `{reference['name']}` ({reference['rule']}). The cost of accuracy is measured against "
            "it, and in a pair it is the arm subtracted."
        )
    else:
        lines.append(f"No reference arm: {reference['rule']}.")
    lines += [""] + _missing_lines(summary)
    lines += table_lines(tables["arms_summary"])
    lines += [_timing_sentence(summary), ""]
    return lines + _figure(figures, "fig14_peaks_by_arm.png") + _figure(figures, "fig15_class_accuracy_by_arm.png")


def _significant(pairs: list[dict], class_names: list[str]) -> list[str]:
    """Sentences on what survives Holm at ALPHA: peak accuracy per pair, and classes."""
    acc = [
        f"{p['a']} minus {p['b']} ({format_number(scaled(p['peak_acc_diff_mean']), 2)} points, "
        f"Holm p = {format_p(p['sign_test']['peak_acc']['p_holm'])})"
        for p in pairs
        if (p["sign_test"]["peak_acc"]["p_holm"] or 1.0) < ALPHA
    ]
    classes = []
    for p in pairs:
        names = [
            class_label(c["class"], class_names) for c in p["class_acc"] if (c["sign_test"]["p_holm"] or 1.0) < ALPHA
        ]
        if names:
            classes.append(f"{p['a']} minus {p['b']}: {', '.join(names)}")
    return [
        f"- **Peak accuracy differs at the {ALPHA} level after Holm** (sign test): "
        + ("; ".join(acc) or "no pair")
        + ".",
        f"- **Class accuracy differs at the {ALPHA} level after Holm** (sign test; differences in Table A4): "
        + ("; ".join(classes) or "no pair and class")
        + ".",
    ]


def _irr_misc_lines(summary: dict) -> list[str]:
    """The paper reports Irr+Misc about twice as accurate with pretraining but never tests it: here it is, for
    every pair with the reference arm (every pair where there is none)."""
    lines = []
    reference = summary["reference_arm"]["name"]
    if not has_paper_classes(summary):  # a class of another data set may share the name, not the paper's claim
        return lines
    for p in summary["pairs"]:
        if reference is not None and p["b"] != reference:
            continue
        for c in p["class_acc"]:
            if c["class"] != "irr_misc" or not c["n"]:
                continue
            a, b = (
                summary["arms"][arm]["class_acc_mean"][summary["class_names"].index("irr_misc")]
                for arm in (p["a"], p["b"])
            )
            ratio = f"{a / b:.2f}x" if a is not None and b else "undefined"
            ci = c["class_acc_diff_ci95"]
            ci_text = "" if ci is None else f", 95% CI [{100 * ci[0]:.2f}, {100 * ci[1]:.2f}]"
            lines.append(
                f"- **Irr+Misc, {p['a']} vs {p['b']}:** {format_percent(a)}% vs {format_percent(b)}% (ratio {ratio}); "
                f"paired difference {format_number(scaled(c['class_acc_diff_mean']), 2)} points{ci_text} over "
                f"{format_runs(c['n'])}; sign test {c['sign_test']['wins']} / {c['sign_test']['losses']} / "
                f"{c['sign_test']['ties']} (higher / lower / tied), p = {format_p(c['sign_test']['p_value'])}, "
                f"Holm p = {format_p(c['sign_test']['p_holm'])}; Wilcoxon p = {format_p(c['wilcoxon']['p_value'])}, "
                f"Holm p = {format_p(c['wilcoxon']['p_holm'])}."
            )
    return lines


def _pairs_section(summary: dict, tables: dict[str, Table], figures: Figures) -> list[str]:
    pairs = summary["pairs"]
    lines = ["## Every pair of arms", ""]
    if not pairs:
        return lines + ["With a single arm there is nothing to compare.", ""]
    k = len(summary["class_names"])
    lines += [
        f"Every pair (a, b) of arms, here {_plural(len(pairs), 'pair')}, is compared on the runs, that is the "
        "splits, that have both arms: a minus b. Tests as in the paper's section: the sign test (ties dropped) "
        "and the Wilcoxon signed-rank test, two-sided, and percentile bootstrap 95% CIs of the mean difference.",
        "",
        f"**p-value adjustment: Holm** (step-down; it controls the family-wise error rate), `p_holm` in summary.json. "
        f"Families: each test and metric (peak accuracy; epoch of the peak) over all pairs ({len(pairs)}); per-class "
        f"accuracy, each test over all pairs and classes together ({len(pairs)} x {k}). An undefined test is left "
        "out of its family.",
        "",
    ]
    lines += _significant(pairs, summary["class_names"]) + _irr_misc_lines(summary) + [""]
    for stem in ("pairs_peak_acc", "pairs_peak_epoch", "pairs_class_acc"):
        lines += table_lines(tables[stem])
    return lines + _figure(figures, "fig13_pairwise_differences.png")


def _speedup_sentences(summary: dict) -> list[str]:
    reference = summary["reference_arm"]["name"]
    out = []
    for arm, block in arm_blocks(summary, "speedup_vs_reference"):
        e, s = block["epochs"], block["seconds"]
        planned = "/".join(map(str, summary["arms"][arm]["epochs_planned"]))
        never = (
            f"{e['n_never']} never reached it within their {planned} epochs and count as never"
            if e["n_never"]
            else "every one reached it"
        )
        undetermined = (
            f"; {block['n_undetermined']} unfinished runs not yet there are left out" if block["n_undetermined"] else ""
        )
        if e["speedup"] is None:
            out.append(
                f"- **`{arm}` does not reach the `{reference}` arm's peak in most runs:** of {format_runs(e['n'])} "
                f"paired, {never}{undetermined}."
            )
            continue
        ci = e["speedup_ci95"]
        ci_text = "undefined with fewer than 2 pairs" if ci is None else f"[{ci[0]:.1f}, {ci[1]:.1f}]"
        text = (
            f"- **`{arm}` reaches the `{reference}` arm's peak {_sooner(e['speedup'])}** (epochs; bootstrap "
            f"95% CI {ci_text}): the median `{reference}` run needs {format_number(e['reference_median'], 1)} epochs "
            f"to its peak, the median `{arm}` run {format_number(e['arm_median'], 1)} epochs to reach that same run's "
            f"`{reference}` peak accuracy ({format_runs(e['n'])} paired; {never}{undetermined})."
        )
        if s["n"] and s["speedup"] is not None:
            sci = s["speedup_ci95"]
            sci_text = "" if sci is None else f", 95% CI [{sci[0]:.1f}, {sci[1]:.1f}]"
            text += (
                f" In measured wall time: {_sooner(s['speedup'])}{sci_text}, {_saved(s['saved_median'])} per run "
                f"({format_runs(s['n'])} with timings)."
            )
        elif not s["n"]:
            text += " No wall-time figure: these runs record no timings."
        out.append(text)
    return out


def _censoring_lines(summary: dict) -> list[str]:
    never = undetermined = 0
    for arm in summary["arm_names"]:
        for key, block in summary["cost"]["arms"][arm].items():
            if key.startswith("time_to_"):
                never, undetermined = never + block["n_never"], undetermined + block["n_undetermined"]
            elif key == "speedup_vs_reference":
                never, undetermined = never + block["epochs"]["n_never"], undetermined + block["n_undetermined"]
    return [
        "**Runs that never reach a target** are not dropped: a complete run that never reaches it counts as "
        "*never*, later than every run that did, so a median is finite only when more than half the counted "
        'runs reached the target (else it reads "' + NOT_REACHED + '"), and a CI bound is "' + NOT_REACHED + '" '
        "when that many resamples are. An unfinished run (`complete: false`) that has not reached it yet may "
        "still do so: it is *undetermined* and left out. Means are over the runs that reached the target only, "
        f"and say so. In this study: {never} never, {undetermined} undetermined, over every arm and target.",
        "",
    ]


def _cost_section(summary: dict, tables: dict[str, Table], figures: Figures) -> list[str]:
    lines = ["## The cost of accuracy", ""]
    sentences = _speedup_sentences(summary) if summary["reference_arm"]["name"] else []
    lines += sentences + ([""] if sentences else [])
    lines += _figure(figures, "fig12_cost_curves.png")
    lines += table_lines(tables["budget_accuracy"])
    if summary["reference_arm"]["name"]:
        lines += table_lines(tables["time_to_accuracy"]) + _censoring_lines(summary)
        if len(summary["arm_names"]) > 1:
            lines += table_lines(tables["speedup"])
    return lines + _figure(figures, "fig16_budgets_and_time_to_accuracy.png")


def _selection_section(summary: dict, tables: dict[str, Table]) -> list[str]:
    lines = ["## Selection bias", ""]
    if not summary["selection_bias"]:
        return lines + [
            "Every run picked its best epoch on the test set (`selection: test`, the paper's protocol), so every "
            "peak above is optimistic and the bias cannot be measured here. Runs trained with "
            "`--config.selection=val --config.data.val_fraction=0.1` measure it.",
            "",
        ]
    return lines + [
        "For runs that chose their epoch on a validation split, the peak the paper would report (chosen on the "
        "test set) beside the test accuracy at the epoch validation chose, and the gap: how optimistic the "
        "paper's protocol is.",
        "",
        *table_lines(tables["selection_bias"]),
    ]


def sections(summary: dict, tables: dict[str, Table], figures: Figures) -> str:
    """The N-arm sections, after the paper's (or after "Data and runs" where the paper's pair is absent)."""
    lines = _arms_section(summary, tables, figures) + _pairs_section(summary, tables, figures)
    lines += _cost_section(summary, tables, figures) + _selection_section(summary, tables)
    return "\n".join(lines)


def runs_lines(summary: dict) -> list[str]:
    """The rest of "Data and runs", after the data paragraph, for a study without both of the paper's arms."""
    arms = summary["arm_names"]
    absent = [arm for arm in ARMS if arm not in arms]
    lines = [
        f"Found {summary['run_dirs_found']} run director{'y' if summary['run_dirs_found'] == 1 else 'ies'} and "
        f"read the results of {format_runs(summary['num_runs'])} (run numbers {format_ranges(summary['runs'])}). "
        "Arms: "
        + "; ".join(
            f"{arm} in {format_runs(summary['arms'][arm]['n_runs'])} "
            f"({'/'.join(map(str, summary['arms'][arm]['epochs_planned']))} epochs planned)"
            for arm in arms
        )
        + ".",
        "",
        f"The paper's own sections (Tables 1-4, Figures 3-11, the paper side by side) need arms named "
        f"{' and '.join(_code([a]) for a in ARMS)}; this study has no {' or '.join(_code([a]) for a in absent)} arm, "
        "so they are left out of this report (their files are still written, mostly empty)"
        + (
            ", and fill in once the missing arm is trained (see Missing arms below)."
            if any(arm in summary["missing_arms"]["missing"] for arm in absent)
            else ". Every pair of the arms present is compared below."
        ),
        "",
    ]
    return lines + problem_lines(summary, {arm: summary["arms"][arm] for arm in arms}) + [SD_NOTE, ""]
