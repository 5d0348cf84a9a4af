"""The study report's Calibration section: does ImageNet pretraining change calibration?

Reads each run_NNN/<arm>/calibration.json that `python -m alexnet_jax.calibration` wrote (schema:
alexnet_jax.calibration.record) for the runs the study read. Per arm: ECE, NLL and Brier score on
each run's evaluation set before and after temperature scaling (mean and sample SD over runs) and
the fitted temperature. Per pair of arms (engine.arm_pairs: the reference arm is always b): the
per-run differences a minus b of each of those 7 quantities, with the project's paired statistics
(stats.difference_block, sign_test, wilcoxon_test) and Holm's adjustment over the pairs and
quantities of each test. Bootstrap streams: (CALIBRATION_STREAM, pair, quantity).

A calibration.json that is malformed, or whose weights are no longer those in best/ (best/
rewritten since: its temperature.json is gone or names other weights), is skipped and named.
Without any, the section is one sentence saying how to produce them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from alexnet_jax.analysis.engine import arm_pairs
from alexnet_jax.analysis.formatting import format_number, format_p, format_ranges
from alexnet_jax.analysis.prose import figure_lines
from alexnet_jax.analysis.stats import difference_block, holm_adjust, mean_std, sign_test, wilcoxon_test
from alexnet_jax.analysis.tables import Table, build_table, number_cell, text_cell
from alexnet_jax.calibration import record as calibration_record
from alexnet_jax.calibration.temperature import FILENAME as TEMPERATURE_FILENAME
from alexnet_jax.errors import ResultsError
from alexnet_jax.results import run_dir

CALIBRATION_STREAM = 4  # bootstrap streams (CALIBRATION_STREAM, pair, quantity)
METRICS = ("ece", "nll", "brier")
SIDES = ("before", "after")
QUANTITIES = tuple(f"{metric}_{side}" for side in SIDES for metric in METRICS) + ("temperature",)
LABELS = {"ece": "ECE", "nll": "NLL", "brier": "Brier", "temperature": "temperature T"}
TESTS = ("sign_test", "wilcoxon")
FIGURE = ("Figure C1", "figC1_reliability.png")
HOW_TO = (
    "No calibration files: run `python -m alexnet_jax.calibration --workdir={workdir}` to fit temperature "
    "scaling for every finished run and measure ECE, NLL and Brier score before and after it, then analyse again."
)


def _stale(path: Path, record: dict) -> str | None:
    """Why a record no longer describes the weights in best/ (None when it still does)."""
    temperature_file = path.parent / "best" / TEMPERATURE_FILENAME
    try:
        fitted_for = json.loads(temperature_file.read_text()).get("weights_sha256")
    except (OSError, ValueError, AttributeError):
        fitted_for = None
    if fitted_for != record["weights_sha256"]:
        return f"stale: best/ changed since it was calibrated ({temperature_file} is missing or names other weights)"
    return None


def load_records(study) -> tuple[dict[str, dict[int, dict]], list[tuple[str, str]]]:
    """{arm: {run: record}} over the study's runs and arms, and the (path, reason) of each file skipped."""
    records: dict[str, dict[int, dict]] = {}
    skipped: list[tuple[str, str]] = []
    for arm in study.arm_names:
        for run in sorted(study.arms[arm]):
            path = run_dir(study.workdir, run) / arm / calibration_record.FILENAME
            if not path.is_file():
                continue
            try:
                record = calibration_record.read_record(path)
            except ResultsError as error:
                skipped.append((str(path), str(error).removeprefix(f"{path}: ")))
                continue
            reason = _stale(path, record)
            if reason is None and (record["arm"], record["run_index"]) != (arm, run):
                reason = f"records arm {record['arm']!r} of run {record['run_index']}, not {arm!r} of run {run}"
            if reason is not None:
                skipped.append((str(path), reason))
                continue
            records.setdefault(arm, {})[run] = record
    return records, skipped


def _value(record: dict, quantity: str) -> float:
    if quantity == "temperature":
        return float(record["temperature"])
    metric, side = quantity.rsplit("_", 1)
    return float(record[side][metric])


def _arm_block(arm: str, runs: dict[int, dict]) -> dict:
    block = {"arm": arm, "n_runs": len(runs), "runs": sorted(runs)}
    for quantity in QUANTITIES:
        mean, std = mean_std([_value(runs[r], quantity) for r in sorted(runs)])
        block[f"{quantity}_mean"], block[f"{quantity}_std"] = mean, std
    block["fit_sets"] = sorted({r["fit"]["set"] for r in runs.values()})
    block["evaluation_examples"] = sorted({r["evaluation"]["num_examples"] for r in runs.values()})
    return block


def _pair_block(a: str, b: str, records: dict, resamples: int, seed: int, index: int) -> dict:
    runs = sorted(set(records[a]) & set(records[b]))
    out: dict = {"a": a, "b": b, "n": len(runs), "runs": runs}
    for k, quantity in enumerate(QUANTITIES):
        values = np.array([_value(records[a][r], quantity) - _value(records[b][r], quantity) for r in runs])
        block = difference_block("diff", values, resamples, seed, (CALIBRATION_STREAM, index, k))
        block.update(sign_test=sign_test(values), wilcoxon=wilcoxon_test(values))
        out[quantity] = block
    return out


def summarize(study, reference: str | None, resamples: int, seed: int) -> dict | None:
    """summary.json's "calibration" block; None when no run has a calibration.json (nothing to add)."""
    records, skipped = load_records(study)
    if not records and not skipped:
        return None
    arms = [arm for arm in study.arm_names if arm in records]
    pairs = [_pair_block(a, b, records, resamples, seed, i) for i, (a, b) in enumerate(arm_pairs(arms, reference))]
    for test in TESTS:
        family = [pair[q][test] for pair in pairs for q in QUANTITIES]
        for entry, adjusted in zip(family, holm_adjust([t["p_value"] for t in family]), strict=True):
            entry["p_holm"] = adjusted
    bins = sorted({r["bins"] for runs in records.values() for r in runs.values()})
    return {
        "arms": {arm: _arm_block(arm, records[arm]) for arm in arms},
        "pairs": pairs,
        "bins": bins,
        "binning": calibration_record.BINNING,
        "differences": "a minus b over the runs calibrated in both arms; lower ECE, NLL and Brier are better",
        "p_adjustment": "holm over every pair and quantity, per test",
        "skipped": [{"path": path, "reason": reason} for path, reason in skipped],
    }


def _mean_sd(block: dict, quantity: str, digits: int = 4) -> tuple:
    mean, std = block[f"{quantity}_mean"], block[f"{quantity}_std"]
    return mean, f"{format_number(mean, digits)} ± {format_number(std, digits)}"


def make_tables(summary: dict) -> list[Table]:
    """Tables C1 (per arm, before and after scaling) and C2 (paired tests); none without calibration."""
    calibration = summary.get("calibration")
    if not calibration or not calibration["arms"]:
        return []
    columns = ["Arm", "Runs", "Fit set"] + [f"{LABELS[m]} {side}" for side in SIDES for m in METRICS] + ["T"]
    rows = []
    for arm, block in calibration["arms"].items():
        rows.append(
            [text_cell(arm), text_cell(block["n_runs"]), text_cell("; ".join(block["fit_sets"]))]
            + [_mean_sd(block, q, 3 if q == "temperature" else 4) for q in QUANTITIES]
        )
    bins = "/".join(map(str, calibration["bins"]))
    title = (
        f"Calibration on each run's evaluation set before and after temperature scaling: mean ± sample SD over runs. "
        f"ECE with {bins} equal-mass bins; NLL in nats; Brier = mean over examples of sum_k (p_k - y_k)^2."
    )
    tables = [build_table("C1", "tableC1_calibration", title, columns, rows)]
    columns = ["Pair (a - b)", "Quantity", "Runs", "Mean difference", "Wins / losses / ties (a higher)"]
    columns += ["Sign p", "Sign p (Holm)", "Wilcoxon p", "Wilcoxon p (Holm)"]
    rows = []
    for pair in calibration["pairs"]:
        for quantity in QUANTITIES:
            block = pair[quantity]
            sign, wilcoxon = block["sign_test"], block["wilcoxon"]
            metric, _, side = quantity.partition("_")
            label = LABELS[quantity] if quantity == "temperature" else f"{LABELS[metric]} {side}"
            rows.append(
                [text_cell(f"{pair['a']} - {pair['b']}"), text_cell(label), text_cell(pair["n"])]
                + [number_cell(block["diff_mean"], digits=4)]
                + [text_cell(f"{sign['wins']} / {sign['losses']} / {sign['ties']}")]
                + [(p, format_p(p)) for p in (sign["p_value"], sign["p_holm"], wilcoxon["p_value"], wilcoxon["p_holm"])]
            )
    note = "" if rows else "None: fewer than two calibrated arms, so no pairs."
    title = "Paired differences of calibration, a minus b over runs calibrated in both arms (lower is better)."
    tables.append(build_table("C2", "tableC2_calibration_pairs", title, columns, rows, note))
    return tables


def _pair_sentence(pair: dict) -> str:
    a, b = pair["a"], pair["b"]
    parts = []
    for metric in ("ece", "nll"):
        for side in SIDES:
            block = pair[f"{metric}_{side}"]
            sign = block["sign_test"]
            parts.append(
                f"{LABELS[metric]} {side} scaling {format_number(block['diff_mean'], 4)} "
                f"({a} higher in {sign['wins']} of {pair['n']} runs, sign test p = {format_p(sign['p_value'])}, "
                f"Holm {format_p(sign['p_holm'])})"
            )
    t = pair["temperature"]
    t_p = format_p(t["sign_test"]["p_value"])
    parts.append(f"temperature {format_number(t['diff_mean'], 3)} (sign test p = {t_p})")
    return f"- `{a}` minus `{b}` over {pair['n']} paired runs: " + "; ".join(parts) + "."


def section(summary: dict, tables: dict[str, Table], figures: dict) -> list[str]:
    """The report's Calibration section (figures: file name -> (name, caption))."""
    lines = ["## Calibration", ""]
    calibration = summary.get("calibration")
    if not calibration or not calibration["arms"]:
        lines += [HOW_TO.format(workdir=summary["workdir"]), ""]
        for entry in (calibration or {}).get("skipped", []):
            lines.append(f"- Skipped `{entry['path']}`: {entry['reason']}")
        return lines + ([""] if calibration and calibration["skipped"] else [])
    arms = calibration["arms"]
    counts = ", ".join(f"`{arm}` {b['n_runs']} (runs {format_ranges(b['runs'])})" for arm, b in arms.items())
    fit_sets = sorted({s for block in arms.values() for s in block["fit_sets"]})
    lines += [
        f"Runs calibrated: {counts}. Temperature scaling divides each run's logits by one T fitted to minimise "
        f"the NLL on its fit set ({'; '.join(fit_sets)}); the metrics are measured on the evaluation set, which "
        "the fit never saw (the test set, or with no validation split the other stratified half of it). Scaling "
        "leaves every prediction, and so accuracy, unchanged; T > 1 means the network was over-confident.",
        "",
    ]
    lines += [tables["tableC1_calibration"].markdown(), ""] if "tableC1_calibration" in tables else []
    if calibration["pairs"]:
        lines += ["Does ImageNet pretraining change calibration? Paired over runs:", ""]
        lines += [_pair_sentence(pair) for pair in calibration["pairs"]] + [""]
        lines += [tables["tableC2_calibration_pairs"].markdown(), ""] if "tableC2_calibration_pairs" in tables else []
    else:
        lines += ["Only one arm is calibrated, so no pair can be tested.", ""]
    if FIGURE[1] in figures:
        lines += figure_lines(figures[FIGURE[1]][0], FIGURE[1], figures[FIGURE[1]][1])
    for entry in calibration["skipped"]:
        lines.append(f"- Skipped `{entry['path']}`: {entry['reason']}")
    return lines + ([""] if calibration["skipped"] else [])
