"""experiments/compare_curves.py: known curves give known gaps, peaks and spreads."""

import subprocess
import sys
from pathlib import Path

import pytest

from alexnet_jax import results as results_lib
from alexnet_jax import toolbox

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "experiments" / "compare_curves.py"
sys.path.insert(0, str(SCRIPT.parent))
import compare_curves  # noqa: E402


def write_run(workdir: Path, run_index: int, test_acc: list[float], complete: bool = True) -> None:
    n = len(test_acc)
    record = {
        "epochs": n if complete else n + 1,
        "complete": complete,
        "train_acc": test_acc,
        "test_acc": test_acc,
        "train_loss": [1.0] * n,
        "test_loss": [1.0] * n,
        "best_epoch": max(range(n), key=test_acc.__getitem__),
        "best_test_acc": max(test_acc),
        "confusion_matrix": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]],
        "wall_time_s": 1.0,
        "images_per_s": 1.0,
    }
    results = {
        "schema": results_lib.SCHEMA,
        "run_index": run_index,
        "class_names": ["elliptical", "lenticular", "spiral", "irr_misc"],
        "split": {},
        "arms": {"scratch": record},
    }
    toolbox.write_json_atomic(results_lib.run_dir(workdir, run_index) / results_lib.RESULTS_FILENAME, results)


def test_known_curves(tmp_path):
    write_run(tmp_path / "a", 0, [0.5, 0.6, 0.7])
    write_run(tmp_path / "a", 1, [0.5, 0.7, 0.6])
    write_run(tmp_path / "a", 2, [0.5, 0.5, 0.5], complete=False)  # unfinished: ignored
    (tmp_path / "a" / "run_003").mkdir()  # started, no results yet: ignored
    write_run(tmp_path / "b", 0, [0.5, 0.65, 0.7])
    write_run(tmp_path / "b", 1, [0.55, 0.7, 0.6])
    report = compare_curves.compare(
        compare_curves.load_curves(tmp_path / "a", "scratch"), compare_curves.load_curves(tmp_path / "b", "scratch")
    )
    assert [row["run"] for row in report["rows"]] == [0, 1]
    assert report["rows"][0]["max_gap"] == pytest.approx(0.05)
    assert report["rows"][1]["mean_gap"] == pytest.approx(0.05 / 3)
    assert report["rows"][0]["peak_epoch_baseline"] == 3 and report["rows"][1]["peak_epoch_candidate"] == 2
    assert report["peak_diff_mean"] == pytest.approx(0.0)
    assert report["baseline_peak_sd"] == pytest.approx(0.0)
    # per-epoch sd of [0.6, 0.7] and [0.7, 0.6] is 0.0707; epoch 1 has none
    assert report["baseline_epoch_sd_mean"] == pytest.approx(2 * 0.1 / 2**0.5 / 3)


def test_table_and_errors(tmp_path, capsys):
    write_run(tmp_path / "a", 0, [0.5, 0.6])
    write_run(tmp_path / "b", 0, [0.5, 0.6, 0.7])
    assert compare_curves.run(str(tmp_path / "a"), str(tmp_path / "a"), "scratch") == 0
    assert "| 0 | 0.6000 | 0.6000 | 2 / 2 |" in capsys.readouterr().out
    assert compare_curves.run(str(tmp_path / "a"), str(tmp_path / "b"), "scratch") == 2
    assert "different lengths [2, 3]" in capsys.readouterr().err


def test_cli_bad_input(tmp_path):
    """Through a process: the flags, and a missing study as one error line and exit code 2."""
    write_run(tmp_path / "a", 0, [0.5, 0.6])
    missing = subprocess.run(
        [sys.executable, str(SCRIPT), f"--baseline={tmp_path / 'nowhere'}", f"--candidate={tmp_path / 'a'}"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert missing.returncode == 2 and "nowhere: no such study directory" in missing.stderr
