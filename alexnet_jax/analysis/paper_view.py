"""The paper's view of the engine's results: summary.json's paper keys, for Tables 1-4, Figs 3-11 and the report.

The pair (pretrained, scratch) is the engine's own comparison of those two arms, oriented pretrained
minus scratch; each arm's statistics are the engine's. What only the paper's pair adds is computed
here, once: the scratch arm limited to the pretrained arm's 200 epochs (by the engine's
`compare_pair`, with the streams it always had), McNemar per run, and the long runs of Table 3.
A study without both arms still gets every key, with empty counts, so its files keep their shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from alexnet_jax import paper
from alexnet_jax.analysis.engine import Differences, Results, compare_pair
from alexnet_jax.analysis.stats import ALPHA, binomial_two_sided_p, summarize_arm, within_block
from alexnet_jax.analysis.study import Study
from alexnet_jax.results import ARMS

BUDGET_EPOCHS = paper.EPOCHS["pretrained"]  # scratch limited to the pretrained arm's budget (paper Figs 4 right, 5)
STANDARD_EPOCHS = paper.EPOCHS  # longer runs go to Table 3
FIRST_200_STREAM = ()  # the budget comparison draws streams (2,) and (3,) of the seed, as it always has
FIRST_200_QUANTITY = 2
PAPER_PAIR = ("pretrained", "scratch")  # a minus b


@dataclass(frozen=True)
class PaperPair:
    """Per-run differences, pretrained minus scratch: scratch over all its epochs, and within its first 200."""

    full: Differences
    first_200: Differences


def has_paper_classes(summary: dict) -> bool:
    """The runs classify the paper's four classes: only then are its published numbers comparable."""
    return sorted(summary["class_names"]) == sorted(paper.CLASS_NAMES)


def paper_classes_note(summary: dict) -> str:
    """The one sentence that says why the comparison with the paper's numbers is left out."""
    names = summary["class_names"]
    return (
        "The comparison with the paper's published numbers is left out: the paper classifies its "
        f"{len(paper.CLASS_NAMES)} classes ({', '.join(paper.CLASS_NAMES)}), these runs {len(names)} others "
        f"({', '.join(names)})."
    )


def has_paper_pair(summary: dict) -> bool:
    """Both of the paper's arms have results: the report's paper sections switch on."""
    return all(summary["arms_found"][arm] for arm in ARMS)


def _turned(pair: dict) -> dict:
    """A pair's peak comparison read the other way round (b minus a): the same draws, every sign turned."""
    out = {key: value for key, value in pair.items() if key != "class_acc"}  # the paper reads no class pairs
    out.update(a=pair["b"], b=pair["a"])
    for metric in ("peak_acc", "peak_epoch"):
        key = f"{metric}_diff"
        mean, low, high, ci = (pair[f"{key}_{stat}"] for stat in ("mean", "min", "max", "ci95"))
        out[f"{key}_mean"] = None if mean is None else -mean
        out[f"{key}_min"], out[f"{key}_max"] = (None, None) if low is None else (-high, -low)
        out[f"{key}_ci95"] = None if ci is None else [-ci[1], -ci[0]]
    out["sign_test"] = {
        metric: dict(test, wins=test["losses"], losses=test["wins"]) for metric, test in pair["sign_test"].items()
    }
    return out


def _paper_comparison(study: Study, results: Results) -> tuple[dict, Differences]:
    """The engine's pretrained-vs-scratch comparison, as pretrained minus scratch."""
    pair = results.pair(*PAPER_PAIR)
    if pair is None:  # an arm is absent: the comparison of nothing, for the keys' shape
        return compare_pair(study, *PAPER_PAIR, 0, 0, ())
    diffs = results.differences[(pair["a"], pair["b"])]
    return (pair, diffs) if pair["a"] == PAPER_PAIR[0] else (_turned(pair), diffs.negated())


def _test_block(test: dict) -> dict:
    """A test as the paper's keys hold it: without the Holm adjustment over the N-arm pairs."""
    return {key: value for key, value in test.items() if key != "p_holm"}


def mcnemar_runs(study: Study) -> dict:
    """Exact McNemar test per run on the two arms' best-epoch test predictions."""
    pre, scr = study.arms.get("pretrained", {}), study.arms.get("scratch", {})
    rows, not_tested = [], []
    for run in sorted(set(pre) & set(scr)):
        labels = study.test_labels.get(run)
        a, b = pre[run].predictions, scr[run].predictions
        if labels is None or a is None or b is None:
            not_tested.append({"run": run, "reason": "test_predictions or split.test_labels not saved"})
            continue
        if not len(a) == len(b) == len(labels):
            not_tested.append(
                {"run": run, "reason": f"lengths differ: labels {len(labels)}, pretrained {len(a)}, scratch {len(b)}"}
            )
            continue
        only_pre = int(np.sum((a == labels) & (b != labels)))
        only_scr = int(np.sum((a != labels) & (b == labels)))
        rows.append(
            {
                "run": run,
                "pretrained_only_correct": only_pre,
                "scratch_only_correct": only_scr,
                "p_value": binomial_two_sided_p(only_pre, only_scr),
            }
        )
    significant = [r for r in rows if r["p_value"] is not None and r["p_value"] < ALPHA]
    return {
        "alpha": ALPHA,
        "n_runs_tested": len(rows),
        "n_significant": len(significant),
        "n_significant_favour_pretrained": sum(
            r["pretrained_only_correct"] > r["scratch_only_correct"] for r in significant
        ),
        "n_significant_favour_scratch": sum(
            r["pretrained_only_correct"] < r["scratch_only_correct"] for r in significant
        ),
        "n_no_discordant": sum(r["p_value"] is None for r in rows),
        "not_tested": not_tested,
        "runs": rows,
    }


def long_runs(study: Study) -> list[dict]:
    """Table 3: runs with more than the standard epochs in either arm (the paper's 1,000-epoch repeats)."""
    out = []
    for run in sorted(study.runs):
        arms = {arm: study.arms.get(arm, {}).get(run) for arm in ARMS}
        if not any(r is not None and r.planned > STANDARD_EPOCHS[arm] for arm, r in arms.items()):
            continue
        row: dict[str, Any] = {"run": run}
        for arm, r in arms.items():
            row[f"{arm}_epochs"] = None if r is None else r.planned
            row[f"{arm}_epochs_finished"] = None if r is None else r.done
            row[f"{arm}_peak_acc"] = None if r is None else r.peak_acc
            row[f"{arm}_peak_epoch"] = None if r is None else r.peak_epoch
        both = all(r is not None for r in arms.values())
        row["peak_acc_diff"] = arms["pretrained"].peak_acc - arms["scratch"].peak_acc if both else None
        out.append(row)
    return out


def paper_keys(study: Study, results: Results, resamples: int, seed: int) -> tuple[dict, PaperPair]:
    """summary.json's paper keys, and the per-run differences that Figs 4 and 5 draw."""
    k = len(study.class_names)
    statistics = {arm: results.arm_statistics.get(arm) or summarize_arm([], k) for arm in ARMS}
    full, full_diffs = _paper_comparison(study, results)
    budget, budget_diffs = compare_pair(
        study, *PAPER_PAIR, resamples, seed, FIRST_200_STREAM, first_quantity=FIRST_200_QUANTITY, budget=BUDGET_EPOCHS
    )
    paired = {"n": full["n"], "n_first_200": budget["n"]}
    for suffix, block in (("", full), ("_first_200", budget)):
        for metric in ("peak_acc", "peak_epoch"):
            for stat in ("mean", "std", "ci95", "min", "max"):
                paired[f"{metric}_diff{suffix}_{stat}"] = block[f"{metric}_diff_{stat}"]
    first = within_block(study.records("scratch"), BUDGET_EPOCHS)
    keys = {
        "arms_found": {arm: len(study.arms.get(arm, {})) for arm in ARMS},
        "pretrained": statistics["pretrained"],
        "scratch": statistics["scratch"],
        "scratch_first_200": {
            "n": first["n"],
            "n_too_short": first["n_too_short"],
            "peak_acc_mean": first["mean"],
            "peak_acc_std": first["std"],
            "peak_epoch_mean": first["peak_epoch_mean"],
            "peak_epoch_std": first["peak_epoch_std"],
        },
        "paired": paired,
        **{
            test: {  # as summary.json has always ordered them: the full runs, then scratch's first 200
                f"{metric}{suffix}": _test_block(block[test][metric])
                for suffix, block in (("", full), ("_first_200", budget))
                for metric in ("peak_acc", "peak_epoch")
            }
            for test in ("sign_test", "wilcoxon")
        },
        "mcnemar": mcnemar_runs(study),
        "long_runs": long_runs(study),
    }
    return keys, PaperPair(full_diffs, budget_diffs)
