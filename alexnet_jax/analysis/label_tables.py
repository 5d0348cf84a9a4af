"""The label-efficiency tables (L1-L7), from summary.json's `label_efficiency` block.

Built like every other table, from (raw, text) cells (analysis.tables). A number of labels that the
sizes tried cannot pin down prints as "<= N_min" (the arm is already there at the smallest size) or
"not reached" (not within the largest size), in the CSV as "<=N_min" and ">N_max".
"""

from __future__ import annotations

from alexnet_jax.analysis.formatting import class_label, format_p
from alexnet_jax.analysis.label_efficiency import BELOW, NOT_REACHED, REACHED
from alexnet_jax.analysis.tables import Cell, Table, build_table, ci_cell, number_cell, percent_cell, text_cell

METRIC_NAMES = {"accuracy": "Accuracy", "balanced_accuracy": "Balanced accuracy", "macro_f1": "Macro-F1"}
TABLE_NUMBERS = {"accuracy": "L2", "balanced_accuracy": "L3", "macro_f1": "L4"}


def format_labels(n: float | None) -> str:
    """A number of labels, whole and with thousands separators: 1234.6 -> '1,235'."""
    return "n/a" if n is None else f"{n:,.0f}"


def size_text(block: dict, s: int) -> str:
    """A size as tables print it: '1,000', or '12,000 (all)' where the config asked for the whole pool."""
    design = block["design"]
    n, asked = design["sizes"][s], design["sizes_asked"][s]
    return format_labels(n) + ("" if asked.replace(",", "") == f"{n:.0f}" else f" ({asked})")


def censored(value: float | None, status: str | None, design: dict, per: float | None = None) -> Cell:
    """N* (or, with `per`, the ratio N* / per) as a cell: a number; '<= N_min' where the arm is already there
    with the fewest labels tried; 'not reached' where it never gets there (CSV: '<=N_min', '>N_max')."""
    show = format_labels if per is None else (lambda v: f"{v:.2f}")
    per = per or 1.0
    if status == REACHED:
        return value / per, show(value / per)
    if status == BELOW:
        return f"<={design['sizes'][0] / per:.6g}", f"<= {show(design['sizes'][0] / per)}"
    if status == NOT_REACHED:
        return f">{design['sizes'][-1] / per:.6g}", "not reached"
    return None, "n/a"


def bound_text(value: float | None, status: str | None, design: dict, per: float | None = None) -> str:
    """N* or a CI bound in words: a number, '<= N_min' or 'not reached'."""
    return censored(value, status, design, per)[1]


def ci_censored(entry: dict, design: dict, per: float | None = None) -> Cell:
    """The CI of N* (or of the ratio, with per = N_ref): '[500, 1,200]', a censored bound in words."""
    ci = entry["ci95"]
    if ci is None:
        return None, "n/a (< 2 repeats)"
    low, high = (censored(ci[key], ci[f"{key}_status"], design, per) for key in ("low", "high"))
    raw = "; ".join(f"{v:.6g}" if isinstance(v, float) else str(v) for v in (low[0], high[0]))
    return raw, f"[{low[1]}, {high[1]}]"


def labels_ci_text(entry: dict, design: dict) -> str:
    return ci_censored(entry, design)[1]


def ratio_ci_text(entry: dict, design: dict) -> str:
    return ci_censored(entry, design, entry["reference_size"])[1]


def design_table(block: dict) -> Table:
    """L1: each size: what was asked, repeats found, examples left for training and validation, budgets."""
    design, arms = block["design"], block["arms"]
    columns = ["Labels (size)", "Asked", "Repeats", "Train examples (mean)", "Val examples (mean)"]
    columns += [f"{arm} epochs / steps" for arm in arms]
    rows = []
    for s in range(len(design["sizes"])):
        found = sum(1 for runs in design["runs"][s] if runs)
        budgets = []
        for arm in arms:
            entries = design["budgets"][arm][s]
            text = "; ".join(
                f"{e['epochs'] if e['epochs'] is not None else '?'} / {e['steps'] or '?'}" for e in entries
            )
            budgets.append(text_cell(text or "not recorded"))
        rows.append(
            [text_cell(size_text(block, s)), text_cell(design["sizes_asked"][s]), text_cell(found)]
            + [(v, format_labels(v)) for v in (design["train_examples_mean"][s], design["val_examples_mean"][s])]
            + budgets
        )
    title = (
        f"The design: {len(design['sizes'])} sizes x {design['repeats_declared']} repeats, at least "
        f"{design['min_per_class']} examples per class in each subset, budget {design['budget_policy']}. Labels = "
        "the subset before its validation split is carved out; epochs / steps as the runs record them."
    )
    return build_table("L1", "label_design", title, columns, rows)


def metric_table(block: dict, metric: str) -> Table:
    """L2-L4: one metric per arm and size, mean over repeats with its bootstrap 95% CI."""
    arms = block["arms"]
    columns = ["Labels", "Repeats"] + [c for arm in arms for c in (f"{arm} mean (%)", f"{arm} 95% CI")]
    rows = []
    for s in range(len(block["design"]["sizes"])):
        counts = "/".join(str(block["curves"][metric][arm]["n"][s]) for arm in arms)
        row = [text_cell(size_text(block, s)), text_cell(counts)]
        for arm in arms:
            curve = block["curves"][metric][arm]
            row += [percent_cell(curve["mean"][s]), ci_cell(curve["ci95"][s])]
        rows.append(row)
    name = METRIC_NAMES[metric]
    title = (
        f"{name} against the number of labels: per arm, the mean over repeats of each run's {name.lower()} "
        "(best-epoch test confusion matrix), with a bootstrap 95% CI (repeats resampled, expanded percentile). "
        "Repeats: runs per arm, in arm order."
    )
    return build_table(TABLE_NUMBERS[metric], f"label_efficiency_{metric}", title, columns, rows)


def class_recall_table(block: dict) -> Table:
    """L5: per-class recall of each arm at each size, mean with its 95% CI."""
    arms, names = block["arms"], block["class_names"]
    columns = ["Labels", "Class"] + [c for arm in arms for c in (f"{arm} recall (%)", f"{arm} 95% CI")]
    rows = []
    for s in range(len(block["design"]["sizes"])):
        for i, name in enumerate(names):
            row = [text_cell(size_text(block, s)), text_cell(class_label(name, names))]
            for arm in arms:
                recall = block["class_recall"][arm]
                row += [percent_cell(recall["mean"][s][i]), ci_cell(recall["ci95"][s][i])]
            rows.append(row)
    title = (
        "Per-class recall (class accuracy: diagonal / row total of each run's best-epoch test confusion matrix) "
        "per arm and size, mean over repeats with a bootstrap 95% CI."
    )
    return build_table("L5", "label_efficiency_class_recall", title, columns, rows)


def differences_table(block: dict) -> Table:
    """L6: every pair at every size and metric, a minus b over repeats, with the tests and Holm."""
    columns = ["Metric", "Pair (a minus b)", "Labels", "Repeats", "Mean (points)", "95% CI (bootstrap)"]
    columns += ["a higher / lower / tied", "Sign p", "Sign p (Holm)", "Wilcoxon p", "Wilcoxon p (Holm)"]
    rows = []
    for metric, entries in block["differences"].items():
        for d in entries:
            sign, wilcoxon = d["sign_test"], d["wilcoxon"]
            s = block["design"]["sizes"].index(d["size"])
            rows.append(
                [text_cell(METRIC_NAMES[metric]), text_cell(f"{d['a']} minus {d['b']}")]
                + [text_cell(size_text(block, s)), text_cell(d["n"]), number_cell(d["diff_mean"], 100.0, 2)]
                + [ci_cell(d["diff_ci95"], digits=2), text_cell(f"{sign['wins']} / {sign['losses']} / {sign['ties']}")]
                + [(p, format_p(p)) for p in (sign["p_value"], sign["p_holm"], wilcoxon["p_value"], wilcoxon["p_holm"])]
            )
    title = (
        "Paired differences between arms at each size, over the repeats that have both (same subset, same test "
        "set). Holm adjusts each test's p-values per metric over every pair and size together."
    )
    return build_table("L6", "label_efficiency_differences", title, columns, rows, "" if rows else "None: one arm.")


def labels_saved_table(block: dict) -> Table:
    """L7: for each arm and reference size, the labels the arm needs to match the reference there, and the ratio."""
    design, reference = block["design"], block["reference_arm"]
    columns = [
        "Arm",
        f"{reference} labels",
        f"{reference} accuracy (%)",
        "Labels the arm needs",
        "95% CI",
        "Ratio (arm / reference)",
        "95% CI (ratio)",
        "Repeats",
        "Resamples reached / <= smallest / not reached",
    ]
    rows = []
    for entry in block["labels_saved"]:
        s = design["sizes"].index(entry["reference_size"])
        status, per = entry["status"], entry["reference_size"]
        counts = entry["resamples"]
        rows.append(
            [text_cell(entry["arm"]), (per, size_text(block, s)), percent_cell(entry["level"])]
            + [censored(entry["labels"], status, design), ci_censored(entry, design)]
            + [censored(entry["labels"], status, design, per), ci_censored(entry, design, per)]
            + [text_cell(entry["n_repeats"])]
            + [text_cell("n/a" if counts is None else f"{counts[REACHED]} / {counts[BELOW]} / {counts[NOT_REACHED]}")]
        )
    title = (
        f"Labels saved: the number of labels at which each arm's mean accuracy first reaches the {reference} "
        f"arm's mean accuracy at each size, linear on log N between the sizes tried (never extrapolated), the "
        f"ratio to the {reference} arm's labels, and bootstrap 95% CIs (repeats resampled, expanded percentile)."
    )
    note = "" if rows else "None: no reference arm, or no arm besides it."
    return build_table("L7", "labels_saved", title, columns, rows, note)


def make_label_tables(summary: dict) -> list[Table]:
    """Tables L1-L7 of a label-efficiency study; none for any other study."""
    block = summary.get("label_efficiency")
    if block is None:
        return []
    tables = [design_table(block)] + [metric_table(block, metric) for metric in block["metrics"]]
    tables += [class_recall_table(block), differences_table(block)]
    return tables + ([labels_saved_table(block)] if block["reference_arm"] is not None else [])
