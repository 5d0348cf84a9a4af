"""The report's paper sections: the runs of the paper's pair, the paper side by side, the tests, Tables 1-4
and P, and Figures 3-11. analysis.report switches them on when both of the paper's arms are present.

The paper's numbers come from `alexnet_jax.paper`, the study's from the summary (the paper view of the
engine's results), so the report and summary.json never disagree.
"""

from __future__ import annotations

from alexnet_jax import paper
from alexnet_jax.analysis.formatting import (
    format_number,
    format_p,
    format_percent,
    format_ranges,
    format_runs,
    scaled,
    with_unit,
)
from alexnet_jax.analysis.paper_view import BUDGET_EPOCHS, has_paper_classes
from alexnet_jax.analysis.prose import SD_NOTE, figure_lines, problem_lines, table_lines
from alexnet_jax.analysis.tables import Table
from alexnet_jax.results import ARMS

MODEL_TITLES = {"alexnet": "AlexNet"}  # how a title names a model; others by their registry name


def title(summary: dict) -> str:
    """The paper's title, naming the network the runs trained (AlexNet where they record none)."""
    models = summary.get("models") or ["alexnet"]
    return "pretrained vs from-scratch " + ", ".join(MODEL_TITLES.get(m, m) for m in models)


TABLE_ORDER = ("table1_summary", "paired_differences", "table2_class_accuracy", "table3_long_runs")
TABLE_ORDER += ("table4_precision_recall_f1",)
Figure = tuple[str, str, str]  # (name, file name, caption)


def _sentences_tests(summary: dict) -> list[str]:
    s, w, m, p = summary["sign_test"], summary["wilcoxon"], summary["mcnemar"], summary["paired"]
    boot = summary["bootstrap"]
    out = []
    specs = [
        ("peak_acc", "peak test accuracy (scratch over all its epochs)", "had the higher peak", "n"),
        (
            "peak_acc_first_200",
            f"peak test accuracy (scratch limited to its first {BUDGET_EPOCHS} epochs)",
            "had the higher peak",
            "n_first_200",
        ),
        ("peak_epoch", "epoch of the peak (scratch over all its epochs)", "peaked earlier", "n"),
        (
            "peak_epoch_first_200",
            f"epoch of the peak (scratch limited to its first {BUDGET_EPOCHS} epochs)",
            "peaked earlier",
            "n_first_200",
        ),
    ]
    for key, what, verb, _n_key in specs:
        t, wt = s[key], w[key]
        if t["n_pairs"] == 0:
            out.append(f"- **Sign test, {what}:** no paired runs, so no test.")
            continue
        text = (
            f"- **Sign test, {what}:** the pretrained arm {verb} in {t['wins']} of {t['n_pairs']} paired runs "
            f"({t['losses']} losses, {t['ties']} ties dropped); two-sided exact p = {format_p(t['p_value'])}"
        )
        text += "." if t["p_value"] is not None else " (every pair tied)."
        if wt["p_value"] is not None:
            text += (
                f" Wilcoxon signed-rank on the differences: W = {wt['statistic']:g}, p = {format_p(wt['p_value'])} "
                f"({wt['method']}, {wt['n_nonzero']} non-zero differences)."
            )
        else:
            text += f" Wilcoxon signed-rank: {wt.get('note', 'undefined')}."
        out.append(text)
    for key, label, scale, unit in (
        ("peak_acc_diff", "peak accuracy, scratch all epochs", 100, "points"),
        ("peak_acc_diff_first_200", f"peak accuracy, scratch first {BUDGET_EPOCHS}", 100, "points"),
        ("peak_epoch_diff", "peak epoch, scratch all epochs", 1, "epochs"),
        ("peak_epoch_diff_first_200", f"peak epoch, scratch first {BUDGET_EPOCHS}", 1, "epochs"),
    ):
        mean, ci = p[f"{key}_mean"], p[f"{key}_ci95"]
        if mean is None:
            continue
        ci_text = "undefined with fewer than 2 pairs" if ci is None else f"[{ci[0] * scale:.2f}, {ci[1] * scale:.2f}]"
        out.append(
            f"- **Mean difference (pretrained minus scratch), {label}:** {mean * scale:.2f} {unit}, "
            f"bootstrap 95% CI {ci_text} ({boot['resamples']:,} resamples, seed {boot['seed']})."
        )
    if m["n_runs_tested"]:
        out.append(
            f"- **McNemar's exact test per run** (the two arms' best-epoch test predictions, same test images): "
            f"{m['n_significant']} of {m['n_runs_tested']} runs differ at the {m['alpha']} level, "
            f"{m['n_significant_favour_pretrained']} in favour of pretraining and "
            f"{m['n_significant_favour_scratch']} of scratch"
            + (f"; {m['n_no_discordant']} runs had no discordant predictions" if m["n_no_discordant"] else "")
            + (f"; {len(m['not_tested'])} paired runs lacked saved predictions" if m["not_tested"] else "")
            + "."
        )
    elif m["not_tested"]:
        out.append(
            f"- **McNemar's exact test per run:** not possible; {len(m['not_tested'])} paired runs lack "
            "saved test predictions (arms.*.test_predictions with split.test_labels)."
        )
    return out


def _paper_rows(summary: dict) -> list[list[str]]:
    """(quantity, the paper's value, this study's value) for the side-by-side table."""
    pre, scr, paired, sign = summary["pretrained"], summary["scratch"], summary["paired"], summary["sign_test"]
    names = summary["class_names"]
    rows = [
        [
            f"Mean peak test accuracy, {arm}",
            with_unit(format_percent(paper.PEAK_ACC[arm]), "%"),
            with_unit(format_percent(summary[arm]["peak_acc_mean"]), "%"),
        ]
        for arm in ARMS
    ]
    rows += [
        [
            f"Peak epoch, {arm}: mean (SD)",
            "{} ({})".format(*paper.PEAK_EPOCH[arm]),
            f"{format_number(summary[arm]['peak_epoch_mean'], 0)} ({format_number(summary[arm]['peak_epoch_std'], 0)})",
        ]
        for arm in ARMS
    ]
    rows.append(
        [
            f"Pretrained advantage, scratch limited to {BUDGET_EPOCHS} epochs",
            f"about {paper.ADVANTAGE_FIRST_200_POINTS:g} points",
            with_unit(format_number(scaled(paired["peak_acc_diff_first_200_mean"]), 2), " points"),
        ]
    )
    rows += [
        [
            f"Pretrained, first {n} epochs",
            with_unit(format_percent(acc), "%"),
            with_unit(format_percent(pre["peak_acc_within"][str(n)]["mean"]), "%"),
        ]
        for n, acc in paper.PRETRAINED_WITHIN.items()
    ]
    if "irr_misc" in names:
        i = names.index("irr_misc")
        a, b = pre["class_acc_mean"][i], scr["class_acc_mean"][i]
        ratio = f"{a / b:.2f}x" if a is not None and b else "n/a"
        rows.append(
            [
                "Irr+Misc class accuracy, pretrained vs scratch",
                f"about {paper.IRR_MISC_RATIO:g}x, pretrained below "
                + with_unit(format_percent(paper.IRR_MISC_PRETRAINED_BELOW, 0), "%"),
                f"{ratio} ({with_unit(format_percent(a), '%')} vs {with_unit(format_percent(b), '%')})",
            ]
        )
    published = "{} ({} of {})".format(format_p(paper.SIGN_TEST_P), *paper.SIGN_TEST_WINS)
    for key, label in (("peak_acc", "Sign test p, peak accuracy"), ("peak_epoch", "Sign test p, peak epoch")):
        t = sign[key]
        rows.append(
            [label + " (wins of pairs)", published, f"{format_p(t['p_value'])} ({t['wins']} of {t['n_pairs']})"]
        )
    diffs = [r["peak_acc_diff"] for r in summary["long_runs"] if r["peak_acc_diff"] is not None]
    rows.append(
        [
            f"Long runs ({paper.LONG_RUN_EPOCHS:,} epochs, runs {format_ranges(paper.LONG_RUNS)}): pretrained ahead by",
            "{:.1f}-{:.1f} points".format(*paper.LONG_RUN_ADVANTAGE_POINTS),
            f"{min(diffs) * 100:.2f} to {max(diffs) * 100:.2f} points ({format_runs(len(diffs))})"
            if diffs
            else "no such runs",
        ]
    )
    return rows


def runs_lines(summary: dict) -> list[str]:
    """The rest of "Data and runs", after the data paragraph: the two arms, their runs and budgets, what went wrong."""
    pre, scr = summary["pretrained"], summary["scratch"]
    both = summary["paired"]["n"]
    lines = [
        f"Found {summary['run_dirs_found']} run director{'y' if summary['run_dirs_found'] == 1 else 'ies'} and "
        f"read the results of {format_runs(summary['num_runs'])} (run numbers {format_ranges(summary['runs'])}). "
        f"Arms: pretrained in {format_runs(pre['n_runs'])} ({', '.join(map(str, pre['epochs_planned'])) or 'no'} "
        f"epochs planned), scratch in {format_runs(scr['n_runs'])} "
        f"({', '.join(map(str, scr['epochs_planned'])) or 'no'} epochs planned); both "
        f"arms in {format_runs(both)}, which the paired comparisons use."
    ]
    for arm, block in (("pretrained", pre), ("scratch", scr)):
        if len(block["epochs_planned"]) > 1:
            lines.append(
                f"\n**Mixed budgets:** the {arm} arm's runs plan different numbers of epochs "
                f"({block['epochs_planned']}); its peak statistics mix them."
            )
        if "val" in block["selection"]:
            lines.append(
                f"\nThe {arm} arm picks its best epoch on a validation split in some runs "
                f"(selection {block['selection']}); their peak accuracy is the test accuracy at that epoch."
            )
    lines.append("")
    lines += problem_lines(summary, {arm: summary[arm] for arm in ARMS})
    short = []
    for arm in ARMS:
        for n, w in summary[arm]["peak_acc_within"].items():
            if w["n_too_short"]:
                short.append(f"{arm} first {n} epochs: {format_runs(w['n'])} ({w['n_too_short']} too short)")
    if summary["scratch_first_200"]["n_too_short"]:
        short.append(
            f"scratch first {BUDGET_EPOCHS} epochs: {format_runs(summary['scratch_first_200']['n'])} "
            f"({summary['scratch_first_200']['n_too_short']} too short)"
        )
    if short:
        lines += [
            "Peaks within the first N epochs use only runs with at least N finished epochs: " + "; ".join(short) + ".",
            "",
        ]
    return lines + [SD_NOTE, ""]


def side_by_side_lines(summary: dict) -> list[str]:
    """The paper's published numbers beside this study's."""
    lines = ["## Paper and this study side by side", ""]
    if summary["data"]["status"] == "synthetic":
        lines += ["*Synthetic data: the right-hand column is not comparable with the paper.*", ""]
    lines += ["| Quantity | Paper | This study |", "|---|---:|---:|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in _paper_rows(summary)]
    return lines + [""]


def sections(summary: dict, tables: dict[str, Table], figures: list[Figure], example_run: int | None) -> list[str]:
    """The paper side by side (only for the paper's classes), the tests, Tables 1-4 and P (by stem), and the
    paper's figures."""
    lines = side_by_side_lines(summary) if has_paper_classes(summary) else []

    lines += ["## Statistical tests", ""]
    lines += [
        "A win is a pretrained peak accuracy higher than scratch's (or a pretrained peak reached at an earlier "
        "epoch); ties are dropped from the sign test and counted. The paper's tests compare the pretrained "
        f"arm's peak with the scratch arm's over all its epochs; the first-{BUDGET_EPOCHS} variants are "
        "added here.",
        "",
    ]
    lines += _sentences_tests(summary) + [""]

    lines += ["## Tables", ""]
    for stem in TABLE_ORDER:
        lines += table_lines(tables[stem])

    lines += ["## Figures", ""]
    for figure in figures:
        lines += figure_lines(*figure)
    if example_run is not None:
        lines += [f"Figures 7 and 10 show run {example_run}.", ""]
    return lines
