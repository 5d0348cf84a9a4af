"""The analysis follows the classes of the data: K = 2, 3 and 10 classes, not only the paper's four.

Synthetic demo studies with classes of their own (Galaxy Zoo 2's "spiral or not", a 3-class Galaxy
Zoo question, Galaxy10's ten) run through the whole analysis in-process: every per-class number,
table and figure has K entries, the paper's published numbers are left out with the reason, and a
study whose runs classify different classes is refused in one line.
"""

from __future__ import annotations

import copy
import csv
import json
import struct
from pathlib import Path

import pytest

from alexnet_jax import analyze as analyze_command
from alexnet_jax import paper
from alexnet_jax.analysis import arm_figures, demo, figures, pipeline
from alexnet_jax.analysis.class_layout import bars_layout, class_grid, matrix_layout, panel_letter
from alexnet_jax.analysis.paper_view import has_paper_classes, paper_classes_note
from alexnet_jax.data import galaxy10
from alexnet_jax.errors import ResultsError
from alexnet_jax.results import validate_results

GALAXY10 = list(galaxy10.VARIANTS["decals"].class_names)  # the ten published DECaLS classes
CLASSES = {
    2: ["spiral", "not_spiral"],  # holds one of the paper's names, which must still print as the data names it
    3: ["smooth", "features_or_disk", "star_or_artifact"],
    10: GALAXY10,
}
RUNS = 3
ARMS = ("pretrained", "scratch")
PAPER_FIGURE_SIZE = (1875, 780)  # fig10 at 150 dpi, 12.5 x 5.2 inches: the paper's four classes


def _rows(path: Path) -> list[list[str]]:
    return list(csv.reader(path.read_text().splitlines()))[1:]


def _png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", header[16:24])


@pytest.fixture(scope="module", params=sorted(CLASSES))
def analysed(request, tmp_path_factory):
    """(K, class names, summary, output directory) of a demo study of K classes, analysed with figures."""
    k = request.param
    workdir = tmp_path_factory.mktemp(f"classes{k}")
    demo.make_demo_study(workdir, num_runs=RUNS, epochs=(12, 16), seed=1, class_names=CLASSES[k])
    summary = pipeline.analyze(workdir, resamples=100, log=lambda message: None)
    return k, CLASSES[k], summary, workdir / "analysis"


def test_every_per_class_number_has_k_entries(analysed):
    k, names, s, _ = analysed
    assert s["class_names"] == names
    for arm in ARMS:
        for block in (s[arm], s["arms"][arm]):
            for key in ("class_acc", "precision", "recall", "f1"):
                for stat in ("mean", "std", "n"):
                    assert len(block[f"{key}_{stat}"]) == k, (arm, key, stat)
            assert len(block["precision_undefined_runs"]) == k and len(block["confusion_row_n"]) == k
            for key in ("confusion_mean", "confusion_std", "confusion_counts_mean"):
                assert len(block[key]) == k and all(len(row) == k for row in block[key]), key
            # The mean confusion counts add up to each class's test images, as the demo made them.
            assert [round(sum(row)) for row in block["confusion_counts_mean"]] == demo.demo_test_counts(k).tolist()


def test_sign_tests_per_class(analysed):
    k, names, s, _ = analysed
    (pair,) = s["pairs"]
    assert [c["class"] for c in pair["class_acc"]] == names
    for c in pair["class_acc"]:
        sign = c["sign_test"]
        assert sign["n_pairs"] == RUNS == sign["wins"] + sign["losses"] + sign["ties"]
        assert (sign["p_value"] is None) == (sign["p_holm"] is None)
        assert c["wilcoxon"]["n_pairs"] == RUNS
    defined = [c["sign_test"]["p_value"] for c in pair["class_acc"] if c["sign_test"]["p_value"] is not None]
    assert defined, "no class had a defined sign test"
    for c in pair["class_acc"]:  # Holm over K classes (one pair): never below the raw p, at most K times it
        p, holm = c["sign_test"]["p_value"], c["sign_test"]["p_holm"]
        if p is not None:
            assert p <= holm <= min(1.0, len(defined) * p) + 1e-12


def test_tables_have_k_rows(analysed):
    k, names, s, out = analysed
    for stem in ("table2_class_accuracy", "table4_precision_recall_f1"):
        rows = _rows(out / f"{stem}.csv")
        assert [row[0] for row in rows] == names, stem  # the data's names, verbatim ("spiral", not "Spiral")
        assert f"| {names[-1]} |" in (out / f"{stem}.md").read_text()
    rows = _rows(out / "pairs_class_acc.csv")
    assert [row[1] for row in rows] == names and {row[0] for row in rows} == {"pretrained minus scratch"}


def test_figures_are_drawn_and_grow_with_k(analysed):
    k, _, _, out = analysed
    drawn = {filename for _, filename, _ in figures.FIGURES + arm_figures.FIGURES}
    assert {p.name for p in out.glob("*.png")} == drawn
    width, height = _png_size(out / "fig10_confusion_example_run.png")
    if k <= 4:
        assert (width, height) == PAPER_FIGURE_SIZE  # few classes: the paper's size
    else:
        assert width > PAPER_FIGURE_SIZE[0] and height > PAPER_FIGURE_SIZE[1]
    rows, columns, _ = class_grid(k)
    assert _png_size(out / "fig08_class_accuracy_pretrained.png")[1] == round(150 * 4.0 * rows)
    report = (out / "report.md").read_text()
    for name in drawn:
        assert f"]({name})" in report


def test_paper_comparison_left_out_with_the_reason(analysed):
    k, names, s, out = analysed
    report = (out / "report.md").read_text()
    note = paper_classes_note(s)
    assert s["paper_comparison_left_out"] == note
    assert report.count(note) == 1 and f"these runs {k} others ({', '.join(names)})" in note
    assert "side by side" not in report and "| Quantity | Paper | This study |" not in report
    assert "Paper:" not in report and "(paper:" not in report and "Irr+Misc" not in report
    assert "Nair & Abraham" not in report  # nor the paper's data set


def test_paper_classes_keep_the_paper_comparison(tmp_path):
    """The paper's four classes, in any order: the side-by-side table, and no key saying it is left out."""
    order = list(reversed(paper.CLASS_NAMES))
    assert has_paper_classes({"class_names": order}) and not has_paper_classes({"class_names": order[:3]})
    demo.make_demo_study(tmp_path, num_runs=2, epochs=(12, 16), seed=1)
    s = pipeline.analyze(tmp_path, resamples=50, figures=False, log=lambda message: None)
    assert "paper_comparison_left_out" not in s
    assert "## Paper and this study side by side" in (tmp_path / "analysis" / "report.md").read_text()


def _two_runs(tmp_path: Path, second_names: list[str]) -> tuple[Path, Path]:
    demo.make_demo_study(tmp_path, num_runs=2, epochs=(5, 6), seed=1, class_names=CLASSES[3])
    other = tmp_path / "other"
    demo.make_demo_study(other, num_runs=2, epochs=(5, 6), seed=1, class_names=second_names)
    first, second = (tmp_path / f"run_{i:03d}" / "results.json" for i in (0, 1))
    second.write_text((other / "run_001" / "results.json").read_text())
    return first, second


@pytest.mark.parametrize("second", [CLASSES[2], list(reversed(CLASSES[3]))], ids=["other_classes", "other_order"])
def test_runs_with_different_classes_are_refused(tmp_path, second, capsys):
    first, later = _two_runs(tmp_path, second)
    with pytest.raises(ResultsError) as caught:
        pipeline.analyze(tmp_path, resamples=50, figures=False, log=lambda message: None)
    message = str(caught.value)
    assert "\n" not in message
    for text in (str(first), str(later), str(CLASSES[3]), str(second)):
        assert text in message
    assert not (tmp_path / "analysis").exists()  # nothing written
    assert analyze_command.run_command(tmp_path, resamples=50, figures=False) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: ") and str(later) in line and str(first) in line


def test_demo_command_takes_classes(tmp_path, capsys):
    code = analyze_command.run_command(tmp_path, resamples=50, figures=False, demo_runs=2, demo_classes="a, b")
    assert code == 0
    assert json.loads((tmp_path / "analysis" / "summary.json").read_text())["class_names"] == ["a", "b"]
    assert analyze_command.run_command(tmp_path / "x", demo_runs=1, demo_classes="a,a") == 2
    assert "at least 2 different" in capsys.readouterr().err


def _record(names: list[str]) -> dict:
    """A small valid version-2 results.json of len(names) classes."""
    k = len(names)
    return {
        "schema": "alexnet_jax.run/2",
        "run_index": 0,
        "class_names": names,
        "split": {"train_counts": [3] * k, "test_counts": [2] * k, "test_labels": [i for i in range(k) for _ in "ab"]},
        "arms": {
            "scratch": {
                "epochs": 1,
                "train_acc": [0.5],
                "test_acc": [1.0],
                "train_loss": [1.0],
                "test_loss": [1.0],
                "best_epoch": 0,
                "best_test_acc": 1.0,
                "confusion_matrix": [[2 if i == j else 0 for j in range(k)] for i in range(k)],
                "wall_time_s": 1.0,
            }
        },
    }


@pytest.mark.parametrize("k", [2, 3, 10])
def test_results_of_any_k_validate(k):
    assert validate_results(_record(GALAXY10[:k]))["class_names"] == GALAXY10[:k]


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda r: r.update(class_names=["only"]), "at least 2 class names"),
        (lambda r: r.update(class_names="ab"), "at least 2 class names"),
        (lambda r: r.update(class_names=["a", ""]), "at least 2 class names"),
        (lambda r: r.update(class_names=["a", "b", "a"]), "'a' more than once"),
        (lambda r: r["split"].update(test_counts=[2, 2]), "'split.test_counts' is [2, 2], expected 3 counts"),
        (lambda r: r["split"].update(val_counts=[1, -1, 1]), "'split.val_counts'"),
        (lambda r: r["split"].update(test_labels=[0, 1, 3]), "holds 3, expected class indices 0..2"),
        (lambda r: r["arms"]["scratch"].update(confusion_matrix=[[2, 0], [0, 2]]), "is not 3x3 counts"),
        (lambda r: r["arms"]["scratch"]["confusion_matrix"][1].append(0), "is not 3x3 counts"),
        (lambda r: r["arms"]["scratch"]["confusion_matrix"][1].__setitem__(0, 0.5), "is not 3x3 counts"),
    ],
)
def test_validation_of_per_class_fields(change, expected):
    record = copy.deepcopy(_record(CLASSES[3]))
    change(record)
    with pytest.raises(ResultsError, match="^results.json: ") as caught:
        validate_results(record)
    assert expected in str(caught.value)


def test_layout_rules():
    paper_labels = ["Elliptical", "Lenticular", "Spiral", "Irr+Misc"]
    layout = matrix_layout(paper_labels, (1, 2), (12.5, 5.2), cell_text=8)
    assert layout.size == (12.5, 5.2) and layout.cell_points == 9.5 and not layout.turn_x
    assert bars_layout(paper_labels, 2) == ((8, 5.2), False)
    assert class_grid(4) == (2, 2, (12.0, 8.0))  # the paper's Figs 8 and 9
    many = matrix_layout(GALAXY10, (1, 2), (12.5, 5.2), cell_text=8)
    assert many.size[0] > 12.5 and many.size[1] > 5.2 and many.turn_x and many.cell_points < 9.5
    size, turn = bars_layout(GALAXY10, 2)
    assert size[0] > 8 and size[1] > 5.2 and turn
    assert not bars_layout(GALAXY10, 4)[1]  # four arms: a wide figure, where the names fit
    assert matrix_layout(CLASSES[3], (1, 2), (12.5, 5.2), cell_text=8).size == (12.5, 5.2)  # few classes fit it
    assert class_grid(10)[:2] == (3, 4) and class_grid(2)[:2] == (1, 2)
    assert [panel_letter(i) for i in (0, 7, 25, 26, 27, 52)] == ["A", "H", "Z", "AA", "AB", "BA"]


def test_demo_keeps_the_paper_study_and_makes_others(tmp_path):
    """Without class_names the demo is the paper's (the golden fixtures depend on it); with them, K classes."""
    paper_run = json.loads(demo.make_demo_study(tmp_path / "p", num_runs=1, epochs=(3, 3))[0].read_text())
    assert paper_run["class_names"] == list(paper.CLASS_NAMES)
    assert paper_run["split"]["test_counts"] == list(paper.RUN_TEST_COUNTS[0])
    (path,) = demo.make_demo_study(tmp_path / "g", num_runs=1, epochs=(3, 3), class_names=GALAXY10)
    run = json.loads(path.read_text())
    counts = run["split"]["test_counts"]
    assert len(counts) == 10 and counts == sorted(counts, reverse=True) and min(counts) >= 10
    assert run["arms"]["scratch"]["total_params"] == demo.TOTAL_PARAMS + 6 * demo.PARAMS_PER_CLASS
    with pytest.raises(ValueError, match="one per class"):
        demo.make_demo_study(tmp_path / "bad", num_runs=1, class_names=["a", "b"], test_counts=[1, 2, 3])
