"""The N-arm tables (A1-A8), from summary.json's N-arm keys, and the cost curves as CSV.

Built like the paper's tables, from (raw, text) cells (analysis.tables). Rows exist only for
what the study has: an arm shorter than a budget has no row for it (the note says so), and a
target never reached reads "not reached".
"""

from __future__ import annotations

import csv
import io
import math

import numpy as np

from alexnet_jax.analysis.formatting import class_label, format_number, format_p, format_percent
from alexnet_jax.analysis.tables import (
    Cell,
    Table,
    build_table,
    ci_cell,
    number_cell,
    percent_cell,
    text_cell,
)
from alexnet_jax.toolbox import format_duration

NOT_REACHED = "not reached"


def _reach_text(value, seconds: bool = False) -> str:
    """A median time: epochs with one decimal or a duration; never reached (JSON null) is "not reached"."""
    if value is None:
        return NOT_REACHED
    return format_duration(value) if seconds else format_number(value, 1)


def _reach(value, seconds: bool = False) -> Cell:
    return value, _reach_text(value, seconds)


def _times_text(value) -> str:
    """A speed-up: None (the arm's median never gets there) or 0 (such a CI bound) is "not reached"."""
    return NOT_REACHED if not value else f"{value:.1f}x"


def _tests(sign: dict, wilcoxon: dict) -> list[Cell]:
    """Wins / losses / ties, then sign and Wilcoxon p, each raw and Holm-adjusted."""
    counts = f"{sign['wins']} / {sign['losses']} / {sign['ties']}"
    ps = (sign["p_value"], sign["p_holm"], wilcoxon["p_value"], wilcoxon["p_holm"])
    return [text_cell(counts)] + [(p, format_p(p)) for p in ps]


def arm_blocks(summary: dict, key: str) -> list[tuple[str, dict]]:
    """(arm, summary.cost.arms[arm][key]) for every arm that has that block, in arm order."""
    blocks = summary["cost"]["arms"]
    return [(arm, blocks[arm][key]) for arm in summary["arm_names"] if key in blocks[arm]]


TEST_COLUMNS = ["Sign p", "Sign p (Holm)", "Wilcoxon p", "Wilcoxon p (Holm)"]
NO_PAIRS = "None: fewer than two arms, so no pairs."


def arms_table(summary: dict) -> Table:
    columns = ["Arm", "Init", "Finetune", "Trainable params", "Runs", "Epochs planned", "Mean peak test acc (%)"]
    columns += ["SD (%)", "Mean peak epoch", "SD (epochs)", "Mean s / epoch"]
    rows = []
    for arm in summary["arm_names"]:
        b = summary["arms"][arm]
        spec = b["spec"] or {}
        seconds = b["seconds_per_epoch_mean"]
        rows.append(
            [
                text_cell(arm),
                text_cell(spec.get("init", "not recorded")),
                text_cell(spec.get("finetune", "not recorded")),
            ]
            + [text_cell("/".join(f"{p:,}" for p in b["trainable_params"]) or "not recorded"), text_cell(b["n_runs"])]
            + [
                text_cell("/".join(map(str, b["epochs_planned"]))),
                percent_cell(b["peak_acc_mean"]),
                percent_cell(b["peak_acc_std"], 2),
            ]
            + [number_cell(b["peak_epoch_mean"]), number_cell(b["peak_epoch_std"])]
            + [(seconds, "not timed" if seconds is None else format_number(seconds))]
        )
    title = "Every arm: what it is (spec), its runs, and its peak test accuracy and (0-based) epoch of the peak."
    return build_table("A1", "arms_summary", title, columns, rows)


def pair_table(summary: dict, metric: str) -> Table:
    """A2 (peak accuracy) or A3 (epoch of the peak): every pair, a minus b, with raw and Holm-adjusted p."""
    accuracy = metric == "peak_acc"
    unit, scale, digits = ("points", 100.0, 2) if accuracy else ("epochs", 1.0, 1)
    verb = "higher / lower / tied" if accuracy else "earlier / later / tied"
    columns = ["Pair (a minus b)", "Pairs", f"Mean ({unit})", "95% CI (bootstrap)", f"a {verb}"] + TEST_COLUMNS
    rows = [
        [text_cell(f"{p['a']} minus {p['b']}"), text_cell(p["n"]), number_cell(p[f"{metric}_diff_mean"], scale, digits)]
        + [ci_cell(p[f"{metric}_diff_ci95"], scale, digits)]
        + _tests(p["sign_test"][metric], p["wilcoxon"][metric])
        for p in summary["pairs"]
    ]
    what = "peak test accuracy" if accuracy else "epoch of the peak (negative: a peaks earlier)"
    title = (
        f"Every pair of arms, paired differences of the {what} over the runs that have both. "
        "Holm adjusts each test's p-values over all pairs."
    )
    return build_table("A2" if accuracy else "A3", f"pairs_{metric}", title, columns, rows, "" if rows else NO_PAIRS)


def pair_class_table(summary: dict) -> Table:
    columns = ["Pair (a minus b)", "Class", "Pairs", "Mean (points)", "95% CI (bootstrap)", "a higher / lower / tied"]
    names = summary["class_names"]
    rows = [
        [text_cell(f"{p['a']} minus {p['b']}"), text_cell(class_label(c["class"], names)), text_cell(c["n"])]
        + [number_cell(c["class_acc_diff_mean"], 100.0, 2), ci_cell(c["class_acc_diff_ci95"], digits=2)]
        + _tests(c["sign_test"], c["wilcoxon"])
        for p in summary["pairs"]
        for c in p["class_acc"]
    ]
    title = (
        "Per-class test accuracy (best-epoch confusion matrix), paired differences per pair of arms. "
        "Holm adjusts each test's p-values over all pairs and classes together."
    )
    return build_table("A4", "pairs_class_acc", title, columns + TEST_COLUMNS, rows, "" if rows else NO_PAIRS)


def budget_table(summary: dict) -> Table:
    columns = ["Arm", "Budget (epochs)", "Runs", "Mean test acc (%)", "SD (%)", "95% CI (bootstrap)"]
    rows, left_out = [], []
    for arm in summary["arm_names"]:
        planned = "/".join(map(str, summary["arms"][arm]["epochs_planned"]))
        for budget, b in summary["cost"]["arms"][arm]["budget_accuracy"].items():
            if not b["n"]:
                left_out.append(f"{arm} {budget}")
                continue
            label = f"full ({planned})" if budget == "full" else budget
            rows.append(
                [
                    text_cell(arm),
                    text_cell(label),
                    text_cell(b["n"]),
                    percent_cell(b["mean"]),
                    percent_cell(b["std"], 2),
                ]
            )
            rows[-1].append(ci_cell(b["ci95"]))
    note = "Runs with fewer finished epochs than a budget are left out of it."
    if left_out:
        note += " No run reaches these budgets, so they have no row: " + ", ".join(left_out) + "."
    title = (
        "Test accuracy within a budget of N epochs: each run's own selection rule applied to its first N epochs "
        "(as the paper's 'first N'); 'full' is the whole run."
    )
    return build_table("A5", "budget_accuracy", title, columns, rows, note)


def _target_label(summary: dict, kind: str) -> str:
    targets = summary["cost"]["targets"]
    if kind == "time_to_reference_peak":
        return f"{summary['reference_arm']['name']} mean peak ({format_percent(targets['reference_peak'])}%)"
    return f"{100 * targets['own_peak_share']:g}% of own peak"


def time_table(summary: dict) -> Table:
    columns = ["Arm", "Target", "Runs counted", "Reached", "Never", "Undetermined", "Median epochs", "95% CI"]
    columns += ["Mean epochs (reached)", "Timed runs", "Median time", "95% CI (time)"]
    rows = []
    for kind in ("time_to_reference_peak", "time_to_own_peak_99"):
        for arm, b in arm_blocks(summary, kind):
            e, s = b["epochs"], b["seconds"]
            reached = e["mean_of_reached"]
            rows.append(
                [text_cell(arm), text_cell(_target_label(summary, kind))]
                + [text_cell(b[k]) for k in ("n_counted", "n_reached", "n_never", "n_undetermined")]
                + [_reach(e["median"]), ci_cell(e["median_ci95"], 1.0, show=_reach_text)]
                + [(reached, "none reached" if reached is None else format_number(reached)), text_cell(b["n_timed"])]
                + (
                    [_reach(s["median"], True), ci_cell(s["median_ci95"], 1.0, show=lambda v: _reach_text(v, True))]
                    if b["n_timed"]
                    else [(None, "not timed")] * 2
                )
            )
    title = (
        "Epochs trained (0-based epoch + 1) and wall time until test accuracy first reaches the target. A complete "
        "run that never reaches it counts as never (later than any run that did); an unfinished one that has "
        "not reached it yet is undetermined and left out. A median is 'not reached' when half the counted runs "
        "or more never reach the target."
    )
    return build_table("A6", "time_to_accuracy", title, columns, rows, "" if rows else "None: no reference arm.")


def speedup_table(summary: dict) -> Table:
    reference = summary["reference_arm"]["name"]
    columns = ["Arm", "Runs paired", "Never", f"Median epochs, {reference} to its peak", "Median epochs, arm"]
    columns += ["Speed-up (epochs)", "95% CI", "Timed pairs", "Speed-up (time)", "95% CI (time)", "Median time saved"]
    rows = []
    for arm, b in arm_blocks(summary, "speedup_vs_reference"):
        e, s = b["epochs"], b["seconds"]
        saved = s["saved_median"]
        saved_text = NOT_REACHED if saved is None else ("-" if saved < 0 else "") + format_duration(abs(saved))
        rows.append(
            [
                text_cell(arm),
                text_cell(e["n"]),
                text_cell(e["n_never"]),
                number_cell(e["reference_median"]),
                _reach(e["arm_median"]),
            ]
            + [
                (e["speedup"], _times_text(e["speedup"])),
                ci_cell(e["speedup_ci95"], 1.0, show=_times_text),
                text_cell(s["n"]),
            ]
            + (
                [(s["speedup"], _times_text(s["speedup"])), ci_cell(s["speedup_ci95"], 1.0, show=_times_text)]
                + [(saved, saved_text)]
                if s["n"]
                else [(None, "not timed")] * 3
            )
        )
    title = (
        f"How many times sooner each arm reaches, run by run, the test accuracy at which the {reference} arm "
        f"peaks: median {reference} epochs to its peak over median epochs the arm needs to reach it "
        "(never: counted as never; a CI bound is 'not reached' when the arm's median never gets there in "
        "that many resamples)."
    )
    return build_table("A7", "speedup", title, columns, rows, "" if rows else "None: no arm besides the reference.")


def selection_table(summary: dict) -> Table:
    columns = ["Arm", "Runs (selection=val)", "Peak chosen on test (%)", "95% CI", "Test acc at val-chosen epoch (%)"]
    columns += ["95% CI", "Gap (points)", "95% CI (gap)"]
    rows = [
        [text_cell(arm), text_cell(b["n"]), percent_cell(b["test_chosen_mean"]), ci_cell(b["test_chosen_ci95"])]
        + [percent_cell(b["val_chosen_mean"]), ci_cell(b["val_chosen_ci95"])]
        + [number_cell(b["gap_mean"], 100.0, 2), ci_cell(b["gap_ci95"], digits=2)]
        for arm, b in summary["selection_bias"].items()
    ]
    title = (
        "Selection bias: the peak chosen on the test set (the paper's choice, optimistic) beside the test accuracy "
        "at the epoch the validation split chose (unbiased), for runs trained with selection=val."
    )
    note = "" if rows else "None: no run chose its epoch on a validation split (selection=val)."
    return build_table("A8", "selection_bias", title, columns, rows, note)


def make_arm_tables(summary: dict) -> list[Table]:
    return [
        arms_table(summary),
        pair_table(summary, "peak_acc"),
        pair_table(summary, "peak_epoch"),
        pair_class_table(summary),
        budget_table(summary),
        time_table(summary),
        speedup_table(summary),
        selection_table(summary),
    ]


CURVE_COLUMNS = {  # CSV column -> key of analysis.cost.cost_curves
    "epochs_trained": "epochs_trained",
    "runs": "n",
    "test_acc_mean": "mean",
    "band_low": "low",
    "band_high": "high",
    "images_seen_mean": "images_seen",
    "seconds_mean": "seconds",
}


def curves_csv(curves: dict[str, dict[str, np.ndarray]]) -> str:
    """cost_curves.csv: per arm and epoch, mean test accuracy with its band, images seen and seconds so far."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["arm", "epoch", *CURVE_COLUMNS])
    for arm, curve in curves.items():
        for epoch in range(len(curve["mean"])):
            values = [float(curve[key][epoch]) for key in CURVE_COLUMNS.values()]
            writer.writerow([arm, epoch] + ["" if math.isnan(v) else f"{v:.6g}" for v in values])
    return buffer.getvalue()
