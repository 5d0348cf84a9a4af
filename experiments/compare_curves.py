"""Do two studies learn the same? Compares one arm's test-accuracy curves, run by run.

    python experiments/compare_curves.py --baseline=runs/f32 --candidate=runs/bf16 --arm=scratch

Built to check that a speed lever (bfloat16 compute, packing) leaves accuracy alone: both
studies train the same runs (same splits, same initial weights, same data order), so the
difference between them on one run is the lever's effect plus chaotic divergence, and it
is compared with the run-to-run spread of the baseline itself (different splits and
initialisations). Prints a Markdown table per run and a summary; writes nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from absl import app, flags

from alexnet_jax import cli, errors
from alexnet_jax import results as results_lib


def define_flags() -> None:
    flags.DEFINE_string("baseline", None, "Workdir of the reference study (e.g. float32).", required=True)
    flags.DEFINE_string("candidate", None, "Workdir of the study to compare (e.g. bfloat16).", required=True)
    flags.DEFINE_string("arm", "scratch", "Arm to compare: pretrained or scratch.")


def load_curves(workdir: str, arm: str) -> dict[int, np.ndarray]:
    """run index -> test-accuracy curve of the arm, for the runs where that arm is complete."""
    if not Path(workdir).is_dir():
        raise ValueError(f"{workdir}: no such study directory")
    curves = {}
    for directory in results_lib.find_run_dirs(workdir):
        path = directory / results_lib.RESULTS_FILENAME
        if not path.exists():  # a run that has not finished its first epoch
            continue
        results = results_lib.load_results(path)
        if results_lib.is_complete(results, arm):
            curves[int(results["run_index"])] = np.asarray(results["arms"][arm]["test_acc"], dtype=float)
    return curves


def compare(baseline: dict[int, np.ndarray], candidate: dict[int, np.ndarray]) -> dict:
    """Per shared run: peak accuracy, epoch of the peak (1-based), final accuracy and the
    largest per-epoch gap; plus the baseline's run-to-run spread for scale."""
    shared = sorted(set(baseline) & set(candidate))
    if not shared:
        raise ValueError("the two studies have no complete run of this arm in common")
    lengths = {len(baseline[r]) for r in shared} | {len(candidate[r]) for r in shared}
    if len(lengths) != 1:
        raise ValueError(f"the curves have different lengths {sorted(lengths)}: compare studies with equal epochs")
    rows = []
    for r in shared:
        a, b = baseline[r], candidate[r]
        rows.append(
            {
                "run": r,
                "peak_baseline": a.max(),
                "peak_candidate": b.max(),
                "peak_epoch_baseline": int(a.argmax()) + 1,
                "peak_epoch_candidate": int(b.argmax()) + 1,
                "final_baseline": a[-1],
                "final_candidate": b[-1],
                "max_gap": float(np.abs(a - b).max()),
                "mean_gap": float(np.abs(a - b).mean()),
            }
        )
    stacked = np.stack([baseline[r] for r in sorted(baseline)])
    spread = stacked.std(axis=0, ddof=1) if len(stacked) > 1 else None
    peaks = stacked.max(axis=1)
    return {
        "rows": rows,
        "peak_diff_mean": float(np.mean([row["peak_candidate"] - row["peak_baseline"] for row in rows])),
        "baseline_peak_sd": float(peaks.std(ddof=1)) if len(peaks) > 1 else None,
        "baseline_epoch_sd_mean": float(spread.mean()) if spread is not None else None,
        "baseline_runs": len(stacked),
    }


def to_markdown(report: dict, arm: str) -> str:
    lines = [
        f"Arm: {arm}. Test accuracy, baseline vs candidate, same runs.",
        "",
        "| run | peak (baseline) | peak (candidate) | peak epoch | final | max per-epoch gap | mean gap |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in report["rows"]:
        lines.append(
            f"| {row['run']} | {row['peak_baseline']:.4f} | {row['peak_candidate']:.4f} | "
            f"{row['peak_epoch_baseline']} / {row['peak_epoch_candidate']} | "
            f"{row['final_baseline']:.4f} / {row['final_candidate']:.4f} | "
            f"{row['max_gap']:.4f} | {row['mean_gap']:.4f} |"
        )
    lines.append("")
    lines.append(f"Mean peak difference (candidate - baseline): {report['peak_diff_mean']:+.4f}")
    if report["baseline_peak_sd"] is not None:
        lines.append(
            f"Baseline run-to-run sd over {report['baseline_runs']} runs: peak {report['baseline_peak_sd']:.4f}, "
            f"per epoch (mean over epochs) {report['baseline_epoch_sd_mean']:.4f}"
        )
    return "\n".join(lines)


def run(baseline: str, candidate: str, arm: str) -> int:
    """Print the comparison; the exit code (bad input: one `error:` line on stderr, code 2)."""
    try:
        report = compare(load_curves(baseline, arm), load_curves(candidate, arm))
    except (ValueError, errors.ResultsError) as error:
        return cli.report_error(error, cli.EXIT_BAD_INPUT)
    print(to_markdown(report, arm))
    return cli.EXIT_OK


def main(argv):
    del argv
    f = flags.FLAGS
    return run(f.baseline, f.candidate, f.arm)


if __name__ == "__main__":
    define_flags()
    app.run(lambda argv: sys.exit(main(argv)))
