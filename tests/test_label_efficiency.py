"""The label-efficiency analysis with known answers: results.json files written by hand (the design's
contract, `label_budget`), no training. Curves known in closed form give labels saved exactly; noisy
simulated studies give the bootstrap CI's coverage; Holm is checked against a hand computation; arms
that never reach a level or are already there are counted; mismatched test sets and designs are refused."""

from __future__ import annotations

import itertools
import json
import math
import re

import numpy as np
import pytest

from alexnet_jax import analyze as analyze_command
from alexnet_jax.analysis import label_design, label_efficiency, pipeline
from alexnet_jax.errors import ResultsError
from alexnet_jax.results import RESULTS_FILENAME, SCHEMA, run_dir, validate_results
from alexnet_jax.toolbox import write_json_atomic

CLASSES = ["smooth", "featured"]
TEST_PER_CLASS = 500  # 1,000 test images: accuracy in steps of 0.001
SPECS = {"scratch": "scratch", "imagenet": "imagenet", "halfstep": "imagenet", "never": "imagenet"}


def _confusion(correct: int) -> list[list[int]]:
    """Two classes of TEST_PER_CLASS test images with `correct` right answers in all."""
    first = (correct + 1) // 2
    second = correct - first
    return [[first, TEST_PER_CLASS - first], [TEST_PER_CLASS - second, second]]


def _arm(correct: int, epochs: int, init: str) -> dict:
    confusion = _confusion(correct)
    labels = [0] * TEST_PER_CLASS + [1] * TEST_PER_CLASS
    predictions = [0] * confusion[0][0] + [1] * confusion[0][1] + [0] * confusion[1][0] + [1] * confusion[1][1]
    assert len(predictions) == len(labels)
    best = correct / (2 * TEST_PER_CLASS)
    test_acc = [max(0.0, best - 0.05), best, max(0.0, best - 0.01)]
    return {
        "epochs": 3,
        "complete": True,
        "train_acc": [0.5, 0.7, 0.8],
        "test_acc": test_acc,
        "train_loss": [1.0, 0.8, 0.6],
        "test_loss": [1.1, 0.9, 0.95],
        "val_acc": [0.5, 0.8, 0.7],
        "val_loss": [1.0, 0.7, 0.8],
        "selection": "val",
        "best_epoch": 1,
        "best_test_acc": best,
        "confusion_matrix": confusion,
        "test_predictions": predictions,
        "wall_time_s": 3.0,
        "epoch_seconds": [1.0, 1.0, 1.0],
        "spec": {"init": init, "finetune": "full", "model": "alexnet"},
        "train_images_per_epoch": 90,
    }


def write_label_study(workdir, correct, sizes, repeats: int, arms=("scratch", "imagenet"), policy="equal_epochs"):
    """A label-efficiency study as training writes it: run r = repeat * S + size index; `correct(arm, s, r)`
    is the number of right answers (of 1,000) at the arm's best epoch. Returns the run directories."""
    sizes_text = ",".join(str(n) for n in sizes)
    paths = []
    for r in range(repeats):
        test_indices = sorted(np.random.default_rng([7, r]).choice(50_000, 2 * TEST_PER_CLASS, replace=False).tolist())
        for s, size in enumerate(sizes):
            run = r * len(sizes) + s
            val = [max(1, size // 20)] * 2
            results = {
                "schema": SCHEMA,
                "run_index": run,
                "class_names": CLASSES,
                "split": {
                    "protocol": "stratified",
                    "train_counts": [size // 2 - val[0], size - size // 2 - val[1]],
                    "val_counts": val,
                    "test_counts": [TEST_PER_CLASS, TEST_PER_CLASS],
                    "test_indices": test_indices,
                    "test_labels": [0] * TEST_PER_CLASS + [1] * TEST_PER_CLASS,
                },
                "arms": {arm: _arm(correct(arm, s, r), 3, SPECS[arm]) for arm in arms},
                "label_budget": {
                    "size": size,
                    "size_asked": str(size),
                    "size_index": s,
                    "repeat": r,
                    "num_sizes": len(sizes),
                    "repeats": repeats,
                    "pool_size": 40_000,
                    "subset_seed": 1000 + r,
                    "min_per_class": 5,
                    "train_counts": [size // 2 - val[0], size - size // 2 - val[1]],
                    "val_counts": val,
                    "budget": {
                        "policy": policy,
                        "epochs": {arm: 3 for arm in arms},
                        "steps": {arm: 3 * math.ceil(size / 8) for arm in arms},
                    },
                },
                "config_file": "alexnet_jax/configs/label_efficiency.py",
                "config": {
                    "data": {"name": "test", "synthetic": True},
                    "label_efficiency": {"train_sizes": sizes_text, "repeats": repeats, "min_per_class": 5},
                    "epochs": {arm: 3 for arm in arms},
                    "arms": {arm: {"init": SPECS[arm], "finetune": "full"} for arm in arms},
                },
            }
            validate_results(results)
            write_json_atomic(run_dir(workdir, run) / RESULTS_FILENAME, results)
            paths.append(run_dir(workdir, run))
    return paths


# Accuracy linear in log2 N on sizes 100 * 2^j: imagenet at N equals scratch at 4N exactly.
GRID = [100 * 2**j for j in range(6)]
STEP = 40  # right answers gained per doubling of the labels
LEVELS = {"imagenet": 500, "scratch": 420, "halfstep": 480, "never": 370}  # right answers at 100 labels


def _linear(arm, s, r):
    return LEVELS[arm] + STEP * s


def _analyse(workdir, resamples=200, figures=False, **kwargs):
    return pipeline.analyze(workdir, resamples=resamples, figures=figures, log=lambda _: None, **kwargs)


def _saved(summary, arm, size):
    return next(
        e for e in summary["label_efficiency"]["labels_saved"] if e["arm"] == arm and e["reference_size"] == size
    )


def test_labels_saved_known_answers(tmp_path):
    """imagenet(N) = scratch(4N): N* = N_ref / 4 and ratio 0.25; halfstep sits half a doubling lower, so N* lies
    between two sizes tried and log-N interpolation puts it at N_ref * 2^-1.5; never lags by 1.25 doublings."""
    write_label_study(tmp_path, _linear, GRID, 3, arms=("scratch", "imagenet", "halfstep", "never"))
    summary = _analyse(tmp_path)
    block = summary["label_efficiency"]
    assert block["reference_arm"] == "scratch" and block["design"]["sizes"] == GRID
    assert block["curves"]["accuracy"]["imagenet"]["mean"] == pytest.approx([(500 + STEP * j) / 1000 for j in range(6)])
    for size in GRID[2:]:
        entry = _saved(summary, "imagenet", size)
        assert entry["status"] == "reached"
        assert entry["labels"] == pytest.approx(size / 4, rel=1e-9) and entry["ratio"] == pytest.approx(0.25, rel=1e-9)
        assert entry["ci95"]["low"] == pytest.approx(size / 4, rel=1e-9)  # identical repeats: a CI of one point
        assert entry["resamples"] == {"n": 200, "reached": 200, "below_smallest": 0, "not_reached": 0}
    for size in GRID[:2]:  # scratch with 100 or 200 labels is below imagenet with 100: "<= 100", not extrapolated
        entry = _saved(summary, "imagenet", size)
        assert entry["status"] == "below_smallest" and entry["labels"] is None and entry["bound"] == 100
        assert entry["ci95"]["low_status"] == entry["ci95"]["high_status"] == "below_smallest"
        assert entry["resamples"]["below_smallest"] == 200
    for size in GRID[2:]:
        entry = _saved(summary, "halfstep", size)
        assert entry["labels"] == pytest.approx(size * 2**-1.5, rel=1e-9)
        assert entry["ratio"] == pytest.approx(2**-1.5, rel=1e-9)
    assert _saved(summary, "never", 800)["labels"] == pytest.approx(100 * 2**4.25, rel=1e-9)
    for size in GRID[4:]:  # 1.25 doublings behind: beyond 3,200 labels, never extrapolated
        entry = _saved(summary, "never", size)
        assert entry["status"] == "not_reached" and entry["labels"] is None and entry["bound"] == 3200
        assert entry["resamples"]["not_reached"] == 200
    report = (tmp_path / "analysis" / "report.md").read_text()
    assert "## Label efficiency" in report
    assert "`imagenet` reached the accuracy `scratch` has with 3,200 labels (62.0%) using 800 [800, 800] labels, " in (
        report
    )
    assert "0.25 [0.25, 0.25] times as many (3 repeats)." in report
    assert "`never` did not reach the accuracy `scratch` has with 3,200 labels (62.0%) with any number" in report
    assert "`imagenet` already has the accuracy `scratch` has with 100 labels (42.0%) at the smallest size" in report
    table = (tmp_path / "analysis" / "labels_saved.md").read_text()
    assert "| imagenet | 3,200 | 62.0 | 800 | [800, 800] | 0.25 | [0.25, 0.25] | 3 | 200 / 0 / 0 |" in table
    assert "| never | 3,200 | 62.0 | not reached | [not reached, not reached] | not reached |" in table
    assert "| imagenet | 100 | 42.0 | <= 100 | [<= 100, <= 100] | <= 1.00 |" in table
    csv = (tmp_path / "analysis" / "labels_saved.csv").read_text()
    assert "never,3200,62,>3200,>3200; >3200,>1," in csv


def test_labels_needed_edges():
    """First crossing, interpolation on log N, the tolerance at a size tried, censoring both ways."""
    log_sizes = np.log([100.0, 1000.0, 10_000.0])
    curves = np.array([[0.5, 0.6, 0.7], [0.5, 0.6, 0.7], [0.5, 0.6, 0.7], [0.5, 0.6, 0.7], [0.5, 0.7, 0.6]])
    levels = np.array([0.65, 0.5 + 1e-12, 0.45, 0.75, 0.65])
    needed = np.exp(label_efficiency.labels_needed(curves, levels, log_sizes))
    assert needed[0] == pytest.approx(10**3.5)  # half-way between 1,000 and 10,000 on log N
    assert needed[1] == pytest.approx(100)  # at the smallest size, within the tolerance: reached there
    assert needed[2] == 0.0 and needed[3] == np.inf  # already above: -inf (<= N_min); never: +inf
    assert needed[4] == pytest.approx(10**2.75)  # a curve that dips later: its first crossing counts


def _simulated(rng, n_repeats, sizes, truth_shift, noise):
    """(S, R) accuracies of an arm and the reference: the arm at N as the reference at shift * N, plus a repeat
    effect shared by both arms and sizes (one test set per repeat) and independent noise."""
    log2 = np.log2(np.asarray(sizes) / 100)
    repeat_effect = rng.normal(0, noise, n_repeats)
    arm = (
        0.5
        + 0.04 * (log2 + np.log2(truth_shift))[:, None]
        + repeat_effect
        + rng.normal(0, noise, (len(sizes), n_repeats))
    )
    reference = 0.5 + 0.04 * log2[:, None] + repeat_effect + rng.normal(0, noise, (len(sizes), n_repeats))
    return arm, reference


@pytest.mark.parametrize("repeats", [5, 20])
def test_labels_saved_ci_coverage(repeats):
    """Over many simulated studies whose true answer is N_ref / 4, the 95% bootstrap CI covers it about 95 % of
    the time, with the design's default 5 repeats as with more (expanded percentile interval, repeats
    resampled; 400 studies, 1,000 resamples each)."""
    rng = np.random.default_rng(2024)
    sizes = np.array(GRID, dtype=float)
    covered, trials = 0, 400
    for trial in range(trials):
        arm, reference = _simulated(rng, repeats, sizes, 4.0, 0.02)
        block = label_efficiency.labels_saved_block(arm, reference, sizes, 4, 1000, 0, (9, trial))
        low = block["ci95"]["low"] if block["ci95"]["low_status"] == "reached" else 0.0
        high = block["ci95"]["high"] if block["ci95"]["high_status"] == "reached" else np.inf
        covered += low <= sizes[4] / 4 <= high
    assert 0.91 <= covered / trials <= 0.985, covered / trials


def test_expanded_quantiles():
    """The expanded interval's tails: t(4) and sqrt(5/4) for 5 repeats; the plain 2.5 % for many."""
    low, high = label_efficiency.expanded_quantiles(5)
    assert low == pytest.approx(0.000954, rel=0.01) and high == pytest.approx(1 - low)
    assert label_efficiency.expanded_quantiles(10_000)[0] == pytest.approx(0.025, rel=0.01)


def test_resamples_that_do_not_reach_are_counted_in_the_ci(tmp_path):
    """An arm that reaches the level only at the largest size, with noise: some resamples do not get there,
    the CI's upper bound says 'not reached' when 2.5 % or more of them do not, and the report counts them."""

    def noisy(arm, s, r):
        wobble = [0, 12, -12, 6, -6][r]
        return (
            LEVELS["scratch"] + STEP * s - (2 * STEP if arm == "imagenet" else 0) + (wobble if arm == "imagenet" else 0)
        )

    write_label_study(tmp_path, noisy, GRID, 5)
    summary = _analyse(tmp_path, resamples=400)
    entry = _saved(summary, "imagenet", 800)  # the level 54.0 % is imagenet's at 3,200 labels, give or take noise
    counts = entry["resamples"]
    assert counts["not_reached"] > 0 and counts["reached"] + counts["not_reached"] == 400
    assert entry["ci95"]["high_status"] == "not_reached" and entry["ci95"]["high"] is None
    report = (tmp_path / "analysis" / "report.md").read_text()
    assert f"Of 400 resamples, in {counts['not_reached']} it does not get there within 3,200" in report


def _sign_p(wins: int, losses: int) -> float:
    n = wins + losses
    return min(1.0, 2 * sum(math.comb(n, k) for k in range(min(wins, losses) + 1)) / 2**n)


def _wilcoxon_p(differences) -> float:
    """Exact two-sided Wilcoxon p by enumerating every sign pattern (distinct |d|, no zeros)."""
    ranks = np.argsort(np.argsort(np.abs(differences))) + 1
    observed = ranks[np.asarray(differences) > 0].sum()
    stats = [
        sum(r for r, s in zip(ranks, signs, strict=True) if s) for signs in itertools.product([0, 1], repeat=len(ranks))
    ]
    mean = ranks.sum() / 2
    return min(1.0, sum(abs(s - mean) >= abs(observed - mean) for s in stats) / len(stats))


def _holm(ps):
    order = np.argsort(ps)
    adjusted, running = [0.0] * len(ps), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(ps) - rank) * ps[i]))
        adjusted[i] = running
    return adjusted


def test_paired_differences_and_holm_by_hand(tmp_path):
    """Six repeats, three sizes: imagenet minus scratch in right answers per repeat, chosen so the sign and
    Wilcoxon p-values and their Holm adjustment over the three sizes can be worked out by hand."""
    gaps = {0: [5, 10, 15, 20, 25, 30], 1: [-3, 10, 15, 20, 25, 30], 2: [-5, 10, -15, 20, -25, 30]}

    def correct(arm, s, r):
        base = 600 + 7 * r + 30 * s
        return base + (gaps[s][r] if arm == "imagenet" else 0)

    write_label_study(tmp_path, correct, [200, 400, 800], 6)
    summary = _analyse(tmp_path)
    block = summary["label_efficiency"]
    accuracy = block["differences"]["accuracy"]
    assert [(d["a"], d["b"], d["size"], d["n"]) for d in accuracy] == [
        ("imagenet", "scratch", n, 6) for n in (200, 400, 800)
    ]
    sign = [_sign_p(sum(g > 0 for g in gaps[s]), sum(g < 0 for g in gaps[s])) for s in range(3)]
    assert sign == pytest.approx([2 / 64, 14 / 64, 1.0])
    wilcoxon = [_wilcoxon_p(np.array(gaps[s]) / 1000) for s in range(3)]
    for s, d in enumerate(accuracy):
        assert d["diff_mean"] == pytest.approx(np.mean(gaps[s]) / 1000)
        assert d["sign_test"]["p_value"] == pytest.approx(sign[s], rel=1e-12)
        assert d["wilcoxon"]["p_value"] == pytest.approx(wilcoxon[s], rel=1e-12)
    assert [d["sign_test"]["p_holm"] for d in accuracy] == pytest.approx(_holm(sign), rel=1e-12)
    assert [d["sign_test"]["p_holm"] for d in accuracy] == pytest.approx([3 * 2 / 64, 2 * 14 / 64, 1.0])
    assert [d["wilcoxon"]["p_holm"] for d in accuracy] == pytest.approx(_holm(wilcoxon), rel=1e-12)
    assert block["smallest_p"] == pytest.approx(2 / 64)
    report = (tmp_path / "analysis" / "report.md").read_text()
    assert (
        "With 6 repeats the smallest two-sided p the sign test (and the exact Wilcoxon test) can give is 0.0312."
        in report
    )
    assert "**Accuracy differs at the 0.05 level after Holm** (sign test): nowhere." in report


def test_metrics_from_a_confusion_matrix():
    """Accuracy, balanced accuracy and macro-F1 as defined, a class never predicted included."""
    values, recall = label_design.run_metrics(np.array([[8, 2, 0], [3, 7, 0], [5, 5, 0]]))
    assert values["accuracy"] == pytest.approx(15 / 30)
    assert recall.tolist() == pytest.approx([0.8, 0.7, 0.0])
    assert values["balanced_accuracy"] == pytest.approx(1.5 / 3)
    f1 = [2 * 8 / (10 + 16), 2 * 7 / (10 + 14), 0.0]
    assert values["macro_f1"] == pytest.approx(np.mean(f1))


def _edit(path, change) -> None:
    results = json.loads(path.read_text())
    change(results)
    path.write_text(json.dumps(results))


@pytest.mark.parametrize(
    "case, run, change, message",
    [
        (
            "sizes of a repeat, other test sets",
            4,
            lambda r: r["split"].update(test_indices=[i + 1 for i in r["split"]["test_indices"]]),
            "repeat 1: runs 3 (size 100) and 4 (size 200) have different test sets",
        ),
        (
            "an arm on another test set",
            2,
            lambda r: r["arms"]["imagenet"].update(confusion_matrix=[[400, 99], [100, 400]]),
            "run 2 (size 400, repeat 0) arm imagenet: its confusion matrix holds [499, 500] test images per class",
        ),
        (
            "designs disagree",
            5,
            lambda r: r["label_budget"].update(repeats=3),
            "the runs' label_budget designs disagree: runs 0-4 (train_sizes 100,200,400, 3 sizes, 2 repeats",
        ),
        (
            "sizes lists disagree",
            0,
            lambda r: r["config"]["label_efficiency"].update(train_sizes="100,200,500"),
            "run 0 (train_sizes 100,200,500, 3 sizes, 2 repeats, min_per_class 5, budget equal_epochs) but runs 1-5",
        ),
        (
            "a run without label_budget",
            1,
            lambda r: r.pop("label_budget"),
            "runs 0, 2-5 carry 'label_budget' but run 1 does not",
        ),
    ],
)
def test_refusals_name_the_runs(tmp_path, capsys, case, run, change, message):
    """One ResultsError line naming the runs (exit 2 from the command), and nothing written."""
    write_label_study(tmp_path, _linear, [100, 200, 400], 2)
    _edit(run_dir(tmp_path, run) / RESULTS_FILENAME, change)
    with pytest.raises(ResultsError, match=re.escape(message)):
        _analyse(tmp_path)
    assert not (tmp_path / "analysis").exists()
    assert analyze_command.run_command(tmp_path, resamples=50, figures=False) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: ") and "\n" not in error and message in error


def test_end_to_end_figures_and_command(tmp_path, capsys):
    """The command on a small study: the ordinary analysis, then tables L1-L7, Figs 17-19 and the section."""
    write_label_study(tmp_path, lambda arm, s, r: _linear(arm, s, r) + 3 * r, [100, 400, 1600], 3)
    assert analyze_command.run_command(tmp_path, resamples=100) == 0
    out = tmp_path / "analysis"
    for name in ("fig17_label_efficiency.png", "fig18_label_efficiency_class_recall.png", "fig19_labels_saved.png"):
        assert (out / name).stat().st_size > 10_000
        assert f"]({name})" in (out / "report.md").read_text()
    for stem in ("label_design", "label_efficiency_accuracy", "label_efficiency_macro_f1", "labels_saved"):
        assert (out / f"{stem}.csv").exists() and (out / f"{stem}.md").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary)[-1] == "label_efficiency"
    assert summary["label_efficiency"]["design"]["budget_policy"] == "equal_epochs"
    assert summary["label_efficiency"]["class_recall"]["imagenet"]["mean"][0] == pytest.approx([0.5, 0.5], abs=0.01)


def test_ordinary_studies_have_no_label_block(tmp_path):
    from alexnet_jax.analysis.demo import make_demo_study

    make_demo_study(tmp_path, 3, epochs=(5, 6))
    summary = _analyse(tmp_path, resamples=20)
    assert "label_efficiency" not in summary
    assert not list((tmp_path / "analysis").glob("label*"))


def test_partial_study_missing_arm_all_and_no_reference(tmp_path):
    """A run lacking an arm: its cell is missing, counted in its size's numbers and listed; labels saved uses the
    repeats that have every size of both arms. 'all' prints with its size. Without a reference arm there are
    no labels saved, and the report says why."""
    write_label_study(tmp_path, _linear, [100, 400, 1600], 3)
    for run in (2, 5, 8):
        _edit(run_dir(tmp_path, run) / RESULTS_FILENAME, lambda r: r["label_budget"].update(size_asked="all"))
    _edit(run_dir(tmp_path, 4) / RESULTS_FILENAME, lambda r: r["arms"].pop("imagenet"))
    summary = _analyse(tmp_path)
    block = summary["label_efficiency"]
    assert block["missing"] == [{"size": 400, "repeat": 1, "arm": "imagenet"}]
    assert block["curves"]["accuracy"]["imagenet"]["n"] == [3, 2, 3]
    entry = _saved(summary, "imagenet", 1600)
    assert entry["n_repeats"] == 2 and entry["repeats_used"] == [0, 2] and entry["labels"] == pytest.approx(100)
    report = (tmp_path / "analysis" / "report.md").read_text()
    assert "**Missing results** (left out of their size's numbers, and their repeat out of labels saved): " in report
    assert "imagenet at 400 labels, repeat 1." in report
    assert "| 1,600 (all) | all | 3 |" in (tmp_path / "analysis" / "label_design.md").read_text()
    assert "**Only 3 repeats:** every CI below is too narrow" in report

    other = tmp_path / "no_reference"
    write_label_study(other, _linear, [100, 400], 2, arms=("imagenet", "halfstep"))
    summary = _analyse(other)
    assert summary["label_efficiency"]["reference_arm"] is None and summary["label_efficiency"]["labels_saved"] == []
    assert "No reference arm (name one with `--reference_arm`), so no labels saved." in (
        (other / "analysis" / "report.md").read_text()
    )
    summary = _analyse(other, reference_arm="halfstep")
    assert _saved(summary, "imagenet", 400)["labels"] == pytest.approx(200)  # half-way from 100 to 400 on log N


def test_one_cell_in_two_runs(tmp_path):
    """Two runs holding the same arm of one (size, repeat) are refused, naming both. (run_003 is made a copy of
    run 2 in all but its directory name, as results.py checks run_index = repeat * num_sizes + size_index.)"""
    write_label_study(tmp_path, _linear, [100, 200], 2)
    _edit(
        run_dir(tmp_path, 3) / RESULTS_FILENAME,
        lambda r: (r.update(run_index=2), r["label_budget"].update(size_index=0, size_asked="100")),
    )
    with pytest.raises(ResultsError, match=re.escape("runs 2 and 3 both hold size_index 0, repeat 1 of arm imagenet")):
        _analyse(tmp_path)
