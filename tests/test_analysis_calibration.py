"""The calibration command on a tiny trained study, and the study analysis's Calibration section.

One study of two runs of both arms (the tiny model at 32 px, one epoch each, a validation split
so the temperature is fitted on validation as the spec asks) is trained once for the module.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from helpers import REPO, save_random_weights, subprocess_env, tiny_config, train

from alexnet_jax.analysis import calibration_report, pipeline
from alexnet_jax.calibration import record, temperature
from alexnet_jax.calibration.__main__ import calibrate_study, stratified_halves
from alexnet_jax.errors import CliError, StudyError
from alexnet_jax.predict.members import load_member

ARMS = ("pretrained", "scratch")


def quiet(_message: str) -> None:
    pass


@pytest.fixture(scope="module")
def study(module_tmp, tiny_data):
    """Two runs of both arms, trained with a validation split; returns the workdir."""
    weights = save_random_weights(module_tmp / "weights")
    config = tiny_config(
        tiny_data,
        **{
            "epochs.pretrained": 1,
            "epochs.scratch": 1,
            "selection": "val",
            "data.val_fraction": 0.25,
            "eval_augment": "center",
        },  # training scores the centre crop, as predict does
    )
    workdir = module_tmp / "runs"
    train(config, workdir, [0, 1], pretrained_weights=weights)
    return workdir


def test_calibrate_writes_both_files_and_the_analysis_reports_them(study, tmp_path):
    workdir = tmp_path / "runs"
    shutil.copytree(study, workdir)
    summary = pipeline.analyze(workdir, resamples=50, figures=False, log=quiet)
    assert "calibration" not in summary  # nothing calibrated: summary.json as before
    report = (workdir / "analysis" / "report.md").read_text()
    assert "## Calibration" in report and "python -m alexnet_jax.calibration --workdir=" in report

    done = calibrate_study(workdir, bins=4, batch_size=8, log=quiet)
    assert len(done["calibrated"]) == 4 and not done["skipped"]
    for run in (0, 1):
        results = json.loads((workdir / f"run_{run:03d}" / "results.json").read_text())
        for arm in ARMS:
            arm_dir = workdir / f"run_{run:03d}" / arm
            calibration = record.read_record(arm_dir / record.FILENAME)
            fitted = json.loads((arm_dir / "best" / temperature.FILENAME).read_text())
            # fitted on the run's validation split (as training carved it), measured on its test set
            assert calibration["fit"]["set"] == fitted["fitted_on"] == "validation"
            assert calibration["fit"]["num_examples"] == sum(results["split"]["val_counts"])
            assert calibration["evaluation"]["num_examples"] == len(results["split"]["test_indices"])
            assert calibration["agreement_with_training"] == 1.0  # the engine's centre crop is training's
            assert fitted["weights_sha256"] == calibration["weights_sha256"]
            assert fitted["temperature"] == calibration["temperature"] > 0
            assert fitted["nll_after"] <= fitted["nll_before"]
            assert calibration["before"]["accuracy"] == calibration["after"]["accuracy"]
            # predict applies it: the member loads with this temperature
            member, warnings = load_member(arm_dir)
            assert member.temperature == calibration["temperature"] and not warnings

    snapshot = {p: p.read_bytes() for p in workdir.glob("run_*/*/calibration.json")}
    assert calibrate_study(workdir, bins=4, batch_size=8, log=quiet)["skipped"] == sorted(
        str(workdir / f"run_{r:03d}" / a) for r in (0, 1) for a in ARMS
    )
    calibrate_study(workdir, bins=4, batch_size=8, overwrite=True, log=quiet)
    assert {p: p.read_bytes() for p in snapshot} == snapshot  # deterministic bit for bit

    summary = pipeline.analyze(workdir, resamples=50, log=quiet)
    block = summary["calibration"]
    assert block["bins"] == [4] and set(block["arms"]) == set(ARMS)
    assert [(p["a"], p["b"], p["n"]) for p in block["pairs"]] == [("pretrained", "scratch", 2)]
    ece = [json.loads((workdir / f"run_{r:03d}/{a}/calibration.json").read_text())["before"]["ece"] for r in (0, 1)
           for a in ARMS]  # fmt: skip
    assert block["pairs"][0]["ece_before"]["diff_mean"] == pytest.approx(((ece[0] - ece[1]) + (ece[2] - ece[3])) / 2)
    report = (workdir / "analysis" / "report.md").read_text()
    section = report[report.index("## Calibration") :]
    assert "Table C1." in section and "Table C2." in section and "figC1_reliability.png" in section
    assert "Does ImageNet pretraining change calibration?" in section
    assert (workdir / "analysis" / "figC1_reliability.png").stat().st_size > 0
    assert (workdir / "analysis" / "tableC1_calibration.csv").read_text().startswith("Arm,Runs,Fit set")


def test_stale_temperature_is_ignored_with_a_warning_and_its_calibration_skipped(study, tmp_path):
    workdir = tmp_path / "runs"
    shutil.copytree(study, workdir)
    arm_dir = workdir / "run_000" / "scratch"
    calibrate_study(workdir, runs=[0], arms=["scratch"], bins=4, batch_size=8, log=quiet)
    path = arm_dir / "best" / temperature.FILENAME
    fitted = json.loads(path.read_text())
    path.write_text(json.dumps(fitted | {"weights_sha256": "0" * 64}))  # as if fitted for other weights
    member, warnings = load_member(arm_dir)
    assert member.temperature is None
    assert len(warnings) == 1 and str(path) in warnings[0] and "other weights" in warnings[0]
    summary = pipeline.analyze(workdir, resamples=50, figures=False, log=quiet)
    assert summary["calibration"]["arms"] == {}
    assert [s["path"] for s in summary["calibration"]["skipped"]] == [str(arm_dir / record.FILENAME)]
    report = (workdir / "analysis" / "report.md").read_text()
    assert "stale" in report[report.index("## Calibration") :]
    # calibrating again refits it for the weights in best/
    assert calibrate_study(workdir, runs=[0], arms=["scratch"], bins=4, batch_size=8, log=quiet)["calibrated"]
    assert load_member(arm_dir)[0].temperature == pytest.approx(fitted["temperature"])


def test_bad_flags_and_empty_studies_are_one_line(study, tmp_path):
    with pytest.raises(StudyError, match="no run_NNN"):
        calibrate_study(tmp_path, log=quiet)
    with pytest.raises(CliError, match="--arms: nope not in"):
        calibrate_study(study, arms=["nope"], log=quiet)
    with pytest.raises(StudyError, match="--runs"):
        calibrate_study(study, runs=[7], log=quiet)
    with pytest.raises(CliError, match="--bins"):
        calibrate_study(study, bins=0, log=quiet)
    out = subprocess.run(
        [sys.executable, "-m", "alexnet_jax.calibration", f"--workdir={tmp_path}"],
        capture_output=True, text=True, env=subprocess_env(), cwd=REPO, check=False,
    )  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [f"error: --workdir={tmp_path}: no run_NNN directories there; "
                                                "give the study directory training wrote"]  # fmt: skip


def test_stratified_halves_split_each_class_evenly_and_disjointly():
    labels = np.array([0] * 5 + [1] * 4 + [2] * 1)
    test_idx = np.arange(10)[::-1]
    fit, evaluation = stratified_halves(test_idx, labels, run_index=3)
    assert sorted(np.concatenate([fit, evaluation]).tolist()) == list(range(10))
    assert np.bincount(labels[fit], minlength=3).tolist() == [2, 2, 0]  # floor(n / 2) of each class
    assert np.bincount(labels[evaluation], minlength=3).tolist() == [3, 2, 1]
    again = stratified_halves(test_idx, labels, run_index=3)
    assert all(np.array_equal(x, y) for x, y in zip((fit, evaluation), again, strict=True))


def test_no_calibration_files_means_no_summary_block():
    class Empty:
        arm_names: list = []

    assert calibration_report.summarize(Empty(), None, 10, 0) is None


def test_without_a_validation_split_it_fits_on_half_the_test_set(module_tmp, tiny_data):
    """The paper's protocol (no validation split): fit on one stratified test half, measure on the other."""
    workdir = module_tmp / "paper_split"
    train(tiny_config(tiny_data, **{"epochs.scratch": 1}), workdir, 0, ["scratch"])
    calibrate_study(workdir, bins=3, batch_size=8, log=quiet)
    results = json.loads((workdir / "run_000" / "results.json").read_text())
    calibration = record.read_record(workdir / "run_000" / "scratch" / record.FILENAME)
    assert calibration["fit"]["set"] == "test half (no validation split)"
    assert calibration["evaluation"]["set"] == "other test half (no validation split)"
    counts = np.bincount(results["split"]["test_labels"])  # the halves' sizes follow from the class counts
    assert calibration["fit"]["num_examples"] == int(np.sum(counts // 2))
    assert calibration["evaluation"]["num_examples"] == int(np.sum(counts - counts // 2))
    assert calibration["agreement_with_training"] is None  # training scored one random view (the paper's)
