"""N-arm studies: schema v2 (and v1 still read), Holm, the cost of accuracy with known answers,
runs that never reach a target, one-arm reports, and the four-arm demo end to end."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from test_analyze import arm, curve, results, run_analysis, write_study  # the hand-built records

from alexnet_jax import analyze as analyze_command
from alexnet_jax import errors
from alexnet_jax import results as results_lib
from alexnet_jax.analysis import arm_figures, cost, demo, engine, figures, pipeline, stats, study

V2_EXTRAS = {
    "spec": {"init": "imagenet", "finetune": "last_blocks:2", "model": "alexnet"},
    "trainable_params": 10,
    "total_params": 20,
    "train_images_per_epoch": 100,
    "time": {k: 1.0 for k in results_lib.TIME_KEYS},
}


def v2(run: int, arms: dict, config_file: str | None = None, declared: dict | None = None) -> dict:
    """A version-2 results.json; `declared` becomes config.arms (default: the arms present)."""
    out = copy.deepcopy(results(run, {}))
    out["schema"] = results_lib.SCHEMA
    out["arms"] = arms
    names = declared if declared is not None else {name: {"init": "imagenet", "finetune": "full"} for name in arms}
    out["config"]["arms"] = names
    if config_file:
        out["config_file"] = config_file
    return results_lib.validate_results(out)


def timed(test_acc, seconds_per_epoch: float = 2.0, **kwargs) -> dict:
    record = arm(test_acc, **kwargs)
    record["epoch_seconds"] = [seconds_per_epoch] * len(test_acc)
    return record


def test_schema_v2_validates_and_names_file_and_key():
    good = v2(0, {"galaxy-2": {**arm([0.5, 0.6]), **V2_EXTRAS, "epoch_seconds": [1.0, 2.5]}})
    assert good["arms"]["galaxy-2"]["spec"]["finetune"] == "last_blocks:2"
    broken = {
        "arm name .a b.": ("arms", {"a b": arm([0.5])}),
        "spec.init": ("spec", {"init": "galaxies", "finetune": "full"}),
        "spec.finetune": ("spec", {"init": "scratch", "finetune": "last_blocks:0"}),
        "epoch_seconds": ("epoch_seconds", [1.0]),
        "'arms.x.epoch_seconds' is not": ("epoch_seconds", [1.0, -2.0]),
        "'arms.x.time' must": ("time", {"wall_s": 1.0}),
        "trainable_params": ("trainable_params", 30),
        "train_images_per_epoch": ("train_images_per_epoch", 1.5),
    }
    for message, (key, value) in broken.items():
        record = copy.deepcopy(good)
        record["arms"] = {"x": {**arm([0.5, 0.6]), **V2_EXTRAS}}
        if key == "arms":
            record["arms"] = value
        else:
            record["arms"]["x"][key] = value
        with pytest.raises(errors.ResultsError, match=f"run_007/results.json: .*{message}"):
            results_lib.validate_results(record, "run_007/results.json")
    assert results_lib.SPEC_INIT.match("checkpoint:/w/galaxy.msgpack")
    assert results_lib.SPEC_FINETUNE.match("lr_decay:0.5") and not results_lib.SPEC_FINETUNE.match("lr_decay:")
    record = copy.deepcopy(good)
    record["config"]["arms"] = {"ok": {}, "no good": {}}
    with pytest.raises(errors.ResultsError, match="config.arms.no good"):
        results_lib.validate_results(record)


def test_version_1_still_read_with_the_paper_specs(tmp_path):
    v1 = results(0, {"pretrained": arm([0.5, 0.7]), "scratch": arm([0.5, 0.6])})
    assert results_lib.arm_spec(v1, "pretrained") == results_lib.PAPER_SPECS["pretrained"]
    assert results_lib.arm_spec(v1, "scratch")["init"] == "scratch"
    assert results_lib.declared_arms(v1) == ["pretrained", "scratch"]
    unknown = copy.deepcopy(v1)
    unknown["arms"]["imagenet"] = arm([0.5])
    with pytest.raises(errors.ResultsError, match="version 1 knows only"):
        results_lib.validate_results(unknown)
    s = run_analysis(write_study(tmp_path, {0: v1}))
    assert s["arm_names"] == ["pretrained", "scratch"]
    assert s["arms"]["pretrained"]["spec"] == results_lib.PAPER_SPECS["pretrained"]
    assert s["reference_arm"] == {"name": "scratch", "rule": "the arm named 'scratch'"}
    assert s["cost"]["arms"]["scratch"]["seconds_source"] == {"wall_time_s spread evenly": 1}
    assert s["missing_arms"]["missing"] == {} and s["missing_arms"]["command"] is None


def test_holm_known_answers():
    assert stats.holm_adjust([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.holm_adjust([None, 0.2, 0.5]) == [None, pytest.approx(0.4), 0.5]  # None is not in the family
    assert stats.holm_adjust([0.6, 0.7]) == [1.0, 1.0]
    assert stats.holm_adjust([]) == [] and stats.holm_adjust([None]) == [None]
    assert engine.arm_pairs(["scratch", "imagenet", "probe"], "scratch") == [
        ("imagenet", "probe"),
        ("imagenet", "scratch"),
        ("probe", "scratch"),
    ]


def three_arm_study(root):
    """Three runs; a > b > c in every run, so each sign test is 3 of 3 (p = 0.25), the Holm family 3 x 0.25."""
    runs = {}
    for i in range(3):
        arms = {
            "scratch": timed(curve(40, 0.5, {30 + i: 0.70}), 4.0),
            "imagenet": timed(curve(20, 0.6, {3 + i: 0.80}), 4.0),
            "probe": timed(curve(20, 0.55, {10: 0.65 + 0.01 * i}), 1.0),
        }
        runs[i] = v2(i, arms)
    return write_study(root, runs)


def test_pairs_tests_and_holm_families(tmp_path):
    s = run_analysis(three_arm_study(tmp_path))
    assert s["arm_names"] == ["scratch", "imagenet", "probe"]  # the paper's scratch first, then as declared
    assert [(p["a"], p["b"]) for p in s["pairs"]] == [
        ("imagenet", "probe"),
        ("imagenet", "scratch"),
        ("probe", "scratch"),
    ]
    assert s["p_adjustment"]["method"] == "holm" and len(s["p_adjustment"]["families"]) == 6
    for pair in s["pairs"]:
        assert pair["sign_test"]["peak_acc"]["p_value"] == 0.25 and pair["sign_test"]["peak_acc"]["p_holm"] == 0.75
    imagenet_scratch = s["pairs"][1]
    assert imagenet_scratch["peak_acc_diff_mean"] == pytest.approx(0.10)
    assert imagenet_scratch["peak_epoch_diff_mean"] == pytest.approx(-27)
    assert imagenet_scratch["sign_test"]["peak_epoch"]["wins"] == 3  # imagenet peaks earlier in every run
    class_tests = [c["sign_test"] for p in s["pairs"] for c in p["class_acc"]]
    assert len(class_tests) == 12 and all(t["p_value"] is None and t["p_holm"] is None for t in class_tests)


def test_cost_of_accuracy_known_answers(tmp_path):
    s = run_analysis(three_arm_study(tmp_path))
    c = s["cost"]
    assert c["targets"]["reference_peak"] == pytest.approx(0.70)
    imagenet = c["arms"]["imagenet"]
    assert (
        imagenet["budget_accuracy"]["10"]["mean"] == pytest.approx(0.80) and imagenet["budget_accuracy"]["50"]["n"] == 0
    )
    reach = imagenet[
        "time_to_reference_peak"
    ]  # imagenet first reaches 0.70 at its peaks: epochs 3, 4, 5 -> 4, 5, 6 trained
    assert (reach["n_reached"], reach["n_never"], reach["epochs"]["median"]) == (3, 0, 5.0)
    assert reach["seconds"]["median"] == pytest.approx(20.0)
    probe = c["arms"]["probe"]["time_to_reference_peak"]  # peaks at 0.65-0.67: never reaches 0.70
    assert (probe["n_reached"], probe["n_never"], probe["epochs"]["median"]) == (0, 3, None)
    assert probe["epochs"]["mean_of_reached"] is None
    speed = c["arms"]["imagenet"]["speedup_vs_reference"]["epochs"]  # scratch needs 31, 32, 33; imagenet 4, 5, 6
    assert (speed["reference_median"], speed["arm_median"]) == (32.0, 5.0) and speed["speedup"] == pytest.approx(6.4)
    assert c["arms"]["probe"]["speedup_vs_reference"]["epochs"]["speedup"] is None
    curves = (tmp_path / "analysis" / "cost_curves.csv").read_text().splitlines()
    assert len(curves) == 1 + 40 + 20 + 20
    report = (tmp_path / "analysis" / "report.md").read_text()
    assert "`imagenet` reaches the `scratch` arm's peak 6.4 times sooner" in report
    assert "`probe` does not reach the `scratch` arm's peak in most runs" in report


def test_time_to_target_counts_runs_that_never_reach_it():
    def record(acc, complete=True):
        return study.ArmRun(
            0,
            "x",
            10,
            complete,
            "test",
            *(np.asarray(acc, dtype=float),) * 4,
            None,
            max(acc),
            0,
            np.eye(2),
            None,
            epoch_seconds=np.full(len(acc), 10.0),
        )

    reaches = [record([0.1, 0.1, 0.9]), record([0.1, 0.9, 0.9, 0.9, 0.9]), record([0.1] * 10)]
    late = record([0.1, 0.2], complete=False)  # unfinished: it may still get there
    block = cost.time_block(reaches + [late], [0.8] * 4, resamples=200, seed=0, stream=(9,))
    assert (block["n_runs"], block["n_counted"], block["n_reached"], block["n_never"], block["n_undetermined"]) == (
        4,
        3,
        2,
        1,
        1,
    )
    assert block["epochs"]["median"] == 3.0  # sorted 2, 3, never: the never-run is the latest, not dropped
    assert block["epochs"]["mean_of_reached"] == 2.5
    assert block["seconds"]["median"] == 30.0 and block["n_timed"] == 3
    assert block["epochs"]["median_ci95"][1] is None or np.isinf(block["epochs"]["median_ci95"][1])
    half = cost.time_block(reaches[1:], [0.8] * 2, resamples=200, seed=0, stream=(9,))
    assert half["epochs"]["median"] == np.inf  # one of two never: no median (JSON null, "not reached")
    band = cost.mean_band([np.array([0.5, 0.6]), np.array([0.5, 0.6]), np.array([0.5])], 100, 0, (1,))
    assert band["mean"].tolist() == [0.5, 0.6] and band["n"].tolist() == [3, 2]
    assert band["low"].tolist() == [0.5, 0.6] == band["high"].tolist()


def test_selection_bias(tmp_path):
    test_acc = curve(20, 0.5, {5: 0.9, 15: 0.8})
    val_acc = curve(20, 0.5, {15: 0.85})
    runs = {
        i: results(i, {"scratch": arm(test_acc, best_epoch=15, selection="val", val_acc=val_acc)}) for i in range(2)
    }
    s = run_analysis(write_study(tmp_path, runs))
    bias = s["selection_bias"]["scratch"]
    assert bias["test_chosen_mean"] == pytest.approx(0.9) and bias["val_chosen_mean"] == pytest.approx(0.8)
    assert bias["gap_mean"] == pytest.approx(0.1)
    assert "Peak chosen on test" in (tmp_path / "analysis" / "report.md").read_text()


def test_one_arm_report_names_the_missing_arm_and_the_command(tmp_path):
    runs = {i: results(i, {"scratch": arm(curve(30, 0.5, {20 + i: 0.7}))}) for i in range(3)}
    s = run_analysis(write_study(tmp_path / "v1", runs))
    assert s["missing_arms"]["missing"] == {"pretrained": [0, 1, 2]}
    command = f"python -m alexnet_jax.train --config=CONFIG --workdir={tmp_path / 'v1'} --runs=0-2 --arms=pretrained"
    assert s["missing_arms"]["command"] == command
    report = (tmp_path / "v1" / "analysis" / "report.md").read_text()
    assert command in report and "no `pretrained` arm" in report and "**Missing arms.**" in report
    rows = [line for line in report.splitlines() if line.startswith("|")]
    assert rows and not [row for row in rows if "n/a" in row or "None" in row]
    assert "## Paper and this study side by side" not in report
    # Version 2: the recorded config file goes into the command; only the runs that lack an arm are named.
    declared = {"scratch": {}, "imagenet": {}}
    runs = {i: v2(i, {"scratch": arm([0.5, 0.6])}, "cfg/galaxy.py", declared) for i in (0, 1, 4)}
    runs[1]["arms"]["imagenet"] = arm([0.6, 0.7])
    s = run_analysis(write_study(tmp_path / "v2", runs))
    assert s["missing_arms"]["command"].endswith(
        "--config=cfg/galaxy.py " + f"--workdir={tmp_path / 'v2'} --runs=0,4 --arms=imagenet"
    )


def test_reference_arm(tmp_path):
    root = three_arm_study(tmp_path)
    s = run_analysis(root, reference_arm="probe")
    assert s["reference_arm"]["name"] == "probe" and all(p["b"] == "probe" for p in s["pairs"][1:])
    with pytest.raises(errors.StudyError, match="--reference_arm=galaxy: no such arm"):
        run_analysis(root, reference_arm="galaxy")
    runs = {0: v2(0, {"rand": {**arm([0.5, 0.6]), "spec": {"init": "scratch", "finetune": "full"}}, "im": arm([0.7])})}
    s = run_analysis(write_study(tmp_path / "no_scratch", runs))
    assert s["reference_arm"] == {"name": "rand", "rule": "the first arm whose spec.init is 'scratch'"}


def test_four_arm_demo_end_to_end(tmp_path):
    epochs = {"scratch": 60, "imagenet": 25, "linear_probe": 25, "last_blocks": 25}
    demo.make_demo_study(tmp_path, num_runs=4, seed=5, arms=epochs)
    with pytest.raises(ValueError, match="not known"):
        demo.make_demo_study(tmp_path / "other", arms=["galaxy"])
    s = pipeline.analyze(tmp_path, resamples=300, log=lambda m: None)
    assert s["arm_names"] == list(demo.N_ARM_DEMO) and len(s["pairs"]) == 6
    assert s["arms"]["linear_probe"]["trainable_params"] == [demo.HEAD_PARAMS]
    assert s["cost"]["arms"]["imagenet"]["seconds_source"] == {"epoch_seconds": 4}
    out = tmp_path / "analysis"
    names = {filename for _, filename, _ in figures.FIGURES + arm_figures.FIGURES}
    assert {p.name for p in out.glob("*.png")} == names
    for stem in ("arms_summary", "pairs_peak_acc", "pairs_class_acc", "budget_accuracy", "time_to_accuracy", "speedup"):
        assert (out / f"{stem}.csv").exists() and f"CSV: `{stem}.csv`" in (out / "report.md").read_text()
    report = (out / "report.md").read_text()
    for heading in ("## Arms", "## Every pair of arms", "## The cost of accuracy", "## Selection bias"):
        assert heading in report
    assert json.loads((out / "summary.json").read_text())["p_adjustment"]["method"] == "holm"


def test_command_demo_arms(tmp_path, capsys):
    """Bad demo arms and a bad --reference_arm: exit code 2 and one error line naming the flag (in-process)."""
    common = {"resamples": 50, "demo_runs": 2, "figures": False}
    assert analyze_command.run_command(tmp_path, demo_arms="scratch,galaxy", **common) == 2
    assert "not known" in capsys.readouterr().err
    code = analyze_command.run_command(tmp_path / "b", demo_arms="scratch,linear_probe", reference_arm="nope", **common)
    assert code == 2 and "--reference_arm=nope" in capsys.readouterr().err
