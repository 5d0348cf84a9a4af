"""Calibration maths against hand-worked answers, temperature scaling recovering a known T, and the files.

No model is trained here (numpy and scipy only): the study command is tested in test_analysis_calibration.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from alexnet_jax.calibration import metrics, record, temperature
from alexnet_jax.errors import PredictError, ResultsError

# Six two-class examples. (probabilities, label) -> confidence, correct?
#   [0.60, 0.40] 0 -> 0.60 right     [0.30, 0.70] 0 -> 0.70 wrong     [0.55, 0.45] 1 -> 0.55 wrong
#   [0.10, 0.90] 1 -> 0.90 right     [0.80, 0.20] 0 -> 0.80 right     [0.05, 0.95] 1 -> 0.95 right
SIX = np.array([[0.6, 0.4], [0.3, 0.7], [0.55, 0.45], [0.1, 0.9], [0.8, 0.2], [0.05, 0.95]])
SIX_LABELS = np.array([0, 0, 1, 1, 0, 1])


def test_ece_and_reliability_two_equal_mass_bins_by_hand():
    # Sorted by confidence: 0.55 (wrong), 0.60 (right), 0.70 (wrong) | 0.80, 0.90, 0.95 (all right).
    # Bin 1: confidence (0.55 + 0.6 + 0.7) / 3 = 0.616667, accuracy 1/3, gap 0.283333.
    # Bin 2: confidence (0.8 + 0.9 + 0.95) / 3 = 0.883333, accuracy 1, gap 0.116667.
    # ECE = 3/6 * 0.283333 + 3/6 * 0.116667 = 0.2.
    table = metrics.reliability(SIX, SIX_LABELS, bins=2)
    np.testing.assert_allclose(table["confidence"], [1.85 / 3, 2.65 / 3])
    np.testing.assert_allclose(table["accuracy"], [1 / 3, 1.0])
    np.testing.assert_array_equal(table["count"], [3, 3])
    np.testing.assert_allclose(table["edges"], [0.55, 0.8, 0.95])
    assert metrics.ece(SIX, SIX_LABELS, bins=2) == pytest.approx(0.2, abs=1e-12)


def test_ece_unequal_count_puts_the_extra_example_in_the_lowest_bin():
    # The first five examples: 0.55 (wrong), 0.60 (right), 0.70 (wrong) | 0.80, 0.90 (right):
    # 5 = 2 * 2 + 1, so the low bin holds 3 (gap 0.283333) and the high bin 2 (confidence 0.85,
    # accuracy 1, gap 0.15). ECE = 3/5 * 0.283333 + 2/5 * 0.15 = 0.17 + 0.06 = 0.23.
    table = metrics.reliability(SIX[:5], SIX_LABELS[:5], bins=2)
    np.testing.assert_array_equal(table["count"], [3, 2])
    assert metrics.ece(SIX[:5], SIX_LABELS[:5], bins=2) == pytest.approx(0.23, abs=1e-12)


def test_ece_one_bin_is_the_gap_between_mean_confidence_and_accuracy():
    # One bin: mean confidence (0.6 + 0.7 + 0.55 + 0.9 + 0.8 + 0.95) / 6 = 4.5 / 6 = 0.75, accuracy 4/6.
    assert metrics.ece(SIX, SIX_LABELS, bins=1) == pytest.approx(0.75 - 4 / 6, abs=1e-12)


def test_more_bins_than_examples_gives_one_example_per_bin():
    # Each bin is one example: ECE = mean |correct - confidence|
    # = (|1-0.6| + |0-0.7| + |0-0.55| + |1-0.9| + |1-0.8| + |1-0.95|) / 6 = 2.0 / 6.
    assert metrics.reliability(SIX, SIX_LABELS, bins=15)["count"].tolist() == [1] * 6
    assert metrics.ece(SIX, SIX_LABELS, bins=15) == pytest.approx(2.0 / 6, abs=1e-12)


def test_brier_and_nll_by_hand():
    probs = np.array([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3]])
    labels = np.array([0, 2])
    # Brier: (0.3^2 + 0.2^2 + 0.1^2) = 0.14 and (0.2^2 + 0.5^2 + 0.7^2) = 0.78; mean 0.46.
    assert metrics.brier(probs, labels) == pytest.approx(0.46, abs=1e-12)
    # NLL: -(ln 0.7 + ln 0.3) / 2 = (0.356675 + 1.203973) / 2 = 0.780324.
    assert metrics.nll(probs, labels) == pytest.approx(0.780324, abs=1e-6)
    # Two-class: [0.6, 0.4] label 0 -> 0.16 + 0.16 = 0.32; [0.3, 0.7] label 0 -> 0.49 + 0.49 = 0.98.
    assert metrics.brier(SIX[:2], SIX_LABELS[:2]) == pytest.approx(0.65, abs=1e-12)
    assert metrics.accuracy(SIX, SIX_LABELS) == pytest.approx(4 / 6)


def test_nll_of_a_zero_probability_is_floored_not_infinite():
    assert metrics.nll(np.array([[1.0, 0.0]]), np.array([1])) == pytest.approx(-math.log(metrics.NLL_FLOOR))


@pytest.mark.parametrize(
    ("probs", "labels", "message"),
    [
        (np.zeros((0, 2)), np.zeros(0, int), "N > 0"),
        (SIX, SIX_LABELS[:5], "to match"),
        (SIX, SIX_LABELS + 1, r"integers in \[0, 2\)"),
        (SIX * 2, SIX_LABELS, r"within \[0, 1\]"),
        (SIX * 0.9, SIX_LABELS, "sum to 1"),
        (SIX, SIX_LABELS.astype(float), "integers"),
    ],
)
def test_bad_inputs_are_refused_in_one_line(probs, labels, message):
    with pytest.raises(ValueError, match=message) as caught:
        metrics.ece(probs, labels)
    assert "\n" not in str(caught.value)


def test_bins_must_be_a_positive_integer():
    with pytest.raises(ValueError, match="bins"):
        metrics.ece(SIX, SIX_LABELS, bins=0)


def _generated(t0: float, n: int = 20000, k: int = 4, seed: int = 0):
    """Logits z ~ N(0, 3^2) and labels drawn from softmax(z / t0): the true temperature is t0."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 3.0, size=(n, k))
    cumulative = np.cumsum(metrics.softmax(logits, t0), axis=1)
    labels = (rng.random(n)[:, None] > cumulative).sum(axis=1)
    return logits, np.minimum(labels, k - 1)


def test_temperature_scaling_recovers_a_known_temperature():
    logits, labels = _generated(2.5)
    fitted = temperature.fit_temperature(logits, labels)
    assert abs(fitted["temperature"] - 2.5) < 0.1  # sampling error at n = 20,000 is ~0.03
    assert fitted["nll_after"] < fitted["nll_before"]
    assert fitted["nll_before"] == pytest.approx(temperature.scaled_nll(logits, labels, 1.0))
    # scaling does not move any prediction
    np.testing.assert_array_equal(
        metrics.softmax(logits).argmax(1), metrics.softmax(logits, fitted["temperature"]).argmax(1)
    )
    # a calibrated model (T0 = 1) gets T near 1, and the fit is deterministic bit for bit
    logits, labels = _generated(1.0, seed=1)
    once, twice = temperature.fit_temperature(logits, labels), temperature.fit_temperature(logits, labels)
    assert abs(once["temperature"] - 1.0) < 0.05
    assert once == twice


def test_temperature_file_round_trip_and_stale_weights(tmp_path):
    path = temperature.write_temperature(
        tmp_path, temperature=1.7, weights_sha256="a" * 64, fitted_on="validation", num_examples=10,
        nll_before=0.9, nll_after=0.8,
    )  # fmt: skip
    assert json.loads(path.read_text())["schema"] == temperature.SCHEMA
    assert temperature.read_temperature(tmp_path, "a" * 64) == (1.7, None)
    value, warning = temperature.read_temperature(tmp_path, "b" * 64)
    assert value is None
    assert str(path) in warning and "other weights" in warning and "\n" not in warning
    assert temperature.read_temperature(tmp_path / "nothing", "a" * 64) == (None, None)


@pytest.mark.parametrize(
    "text",
    ["{not json", '{"schema": "other"}', json.dumps({"schema": temperature.SCHEMA, "temperature": 1.0})],
)
def test_malformed_temperature_file_is_one_line_naming_it(tmp_path, text):
    (tmp_path / temperature.FILENAME).write_text(text)
    with pytest.raises(PredictError) as caught:
        temperature.read_temperature(tmp_path, "a" * 64)
    assert str(tmp_path / temperature.FILENAME) in str(caught.value) and "\n" not in str(caught.value)


def test_negative_temperature_is_refused(tmp_path):
    fields = {"schema": temperature.SCHEMA, "temperature": -1.0, "weights_sha256": "a", "fitted_on": "validation"}
    fields |= {"num_examples": 1, "nll_before": 1, "nll_after": 1}
    (tmp_path / temperature.FILENAME).write_text(json.dumps(fields))
    with pytest.raises(PredictError, match="positive"):
        temperature.read_temperature(tmp_path, "a")


def _calibration_record() -> dict:
    summary = metrics.summary(SIX, SIX_LABELS, bins=2)
    return {
        "schema": record.SCHEMA, "run_index": 0, "arm": "scratch", "weights_sha256": "a" * 64,
        "temperature": 1.0, "binning": record.BINNING, "bins": 2,
        "fit": {"set": "validation", "num_examples": 6, "nll_before": 1.0, "nll_after": 1.0},
        "evaluation": {"set": "test", "num_examples": 6}, "before": summary, "after": summary,
    }  # fmt: skip


def test_calibration_record_round_trip_and_malformed_files(tmp_path):
    path = record.write_record(tmp_path, _calibration_record())
    assert record.read_record(path)["before"]["ece"] == pytest.approx(0.2)
    broken = _calibration_record()
    broken["after"]["reliability"]["count"] = [3, 2]  # no longer sums to the evaluation set
    with pytest.raises(ResultsError, match="count"):
        record.write_record(tmp_path, broken)
    path.write_text("{")
    with pytest.raises(ResultsError) as caught:
        record.read_record(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)
