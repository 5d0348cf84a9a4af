"""Calibrate every finished run of a study: fit temperature scaling, measure before and after.

    python -m alexnet_jax.calibration --workdir=STUDY [--runs=0-4] [--arms=pretrained,scratch] [--bins=15]

For each run_NNN/<arm> whose training finished, the run's data split is rebuilt exactly as
training built it (from the config recorded in results.json, through alexnet_jax.training), and
the best/ weights' logits are computed by the prediction engine on two disjoint sets:

- the FIT set, on which the temperature is fitted: the run's validation split when it has one;
  without one (the paper's protocol selects the best epoch on the test set) one stratified half
  of the test set (within each class, a permutation seeded by the run index; the fit half takes
  floor(n/2) of the class);
- the EVALUATION set, on which ECE, NLL and Brier are reported before and after scaling: the
  test set, or the other test half.

It writes best/temperature.json (which `predict` applies) and run_NNN/<arm>/calibration.json (which
the study analysis reads), each atomically. An arm already calibrated for its current weights is
skipped unless --overwrite. Numbers are deterministic: the logits carry no randomness and the fit
is a deterministic search.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from alexnet_jax import cli
from alexnet_jax.calibration import metrics, record, temperature
from alexnet_jax.errors import CliError, PredictError, ResultsError, StudyError, TrainingError

HALF_SEED = 0x5CA1E  # the stratified test halves: default_rng([HALF_SEED, run_index])


def stratified_halves(test_idx: np.ndarray, labels: np.ndarray, run_index: int) -> tuple[np.ndarray, np.ndarray]:
    """(fit, evaluation) halves of the test indices, each class split evenly (fit gets floor(n/2))."""
    rng = np.random.default_rng([HALF_SEED, run_index])
    test_idx = np.asarray(test_idx)
    fit, evaluation = [], []
    for k in np.unique(labels[test_idx]):
        members = test_idx[labels[test_idx] == k]
        members = members[rng.permutation(len(members))]
        fit.append(members[: len(members) // 2])
        evaluation.append(members[len(members) // 2 :])
    return np.sort(np.concatenate(fit)), np.sort(np.concatenate(evaluation))


def compute_logits(member, images: np.ndarray, indices: np.ndarray, batch_size: int) -> np.ndarray:
    """Raw (unscaled) logits of one member for images[indices], in float64, through the prediction engine."""
    from alexnet_jax.predict.engine import Forward

    forward = Forward([member], batch_size=batch_size, calibrated=False)
    out = [
        np.asarray(forward(images[indices[start : start + batch_size]], batch)["logits"])
        for batch, start in enumerate(range(0, len(indices), batch_size))
    ]
    return np.concatenate(out).astype(np.float64)


def _run_data(results: dict, workdir: Path, run_index: int, data_dir: str | None):
    """The run's split, rebuilt from its recorded config as training built it."""
    import ml_collections

    from alexnet_jax import training
    from alexnet_jax.training import rundata

    config = ml_collections.ConfigDict(results["config"])
    plan = training.resolve(config, workdir=workdir, data_dir=data_dir)
    data = rundata.load_run_data(plan, run_index)
    recorded = results["split"].get("test_indices")
    if recorded is not None and not np.array_equal(np.asarray(recorded), data.test_idx):
        raise StudyError(
            f"run {run_index}: its test split rebuilt from {plan.data.dir} differs from the one results.json records; "
            "the data set changed since training. Point --data_dir at the data the run trained on"
        )
    return data


def _sets(data, run_index: int) -> tuple[np.ndarray, str, np.ndarray, str]:
    if data.val_idx is not None and len(data.val_idx):
        return np.asarray(data.val_idx), record.FIT_SETS[0], np.asarray(data.test_idx), record.EVALUATION_SETS[0]
    fit, evaluation = stratified_halves(data.test_idx, data.labels, run_index)
    return fit, record.FIT_SETS[1], evaluation, record.EVALUATION_SETS[1]


def _agreement(results: dict, arm: str, indices: np.ndarray, predicted: np.ndarray) -> float | None:
    """Share of the evaluation predictions equal to the best epoch's that training recorded; None when
    training scored the test set under the random training transform (eval_augment "random", the
    paper's), whose single random view the centre crop is not expected to reproduce."""
    if results.get("config", {}).get("eval_augment", "random") != "center":
        return None
    recorded = results["arms"][arm].get("test_predictions")
    test_indices = results["split"].get("test_indices")
    if recorded is None or test_indices is None:
        return None
    by_index = dict(zip(test_indices, recorded, strict=True))
    return float(np.mean([by_index[int(i)] == int(p) for i, p in zip(indices, predicted, strict=True)]))


def calibrate_arm(results: dict, data, arm_dir: Path, *, bins: int, batch_size: int, overwrite: bool, log) -> bool:
    """Fit and measure one arm; False when it was already calibrated for these weights (skipped)."""
    from alexnet_jax.predict.members import load_member

    member, warnings = load_member(arm_dir, use_temperature=False)
    for warning in warnings:
        log(f"WARNING {warning}")
    current, _ = temperature.read_temperature(member.params_dir, member.weights_sha256)
    if not overwrite and current is not None and (arm_dir / record.FILENAME).is_file():
        previous = record.read_record(arm_dir / record.FILENAME)
        if previous["weights_sha256"] == member.weights_sha256 and previous["bins"] == bins:
            return False
    run_index = int(results["run_index"])
    fit_idx, fit_set, eval_idx, eval_set = _sets(data, run_index)
    logits = compute_logits(member, data.images, np.concatenate([fit_idx, eval_idx]), batch_size)
    fit_logits, eval_logits = logits[: len(fit_idx)], logits[len(fit_idx) :]
    fitted = temperature.fit_temperature(fit_logits, data.labels[fit_idx])
    t = fitted["temperature"]
    eval_labels = data.labels[eval_idx]
    out = {
        "schema": record.SCHEMA,
        "run_index": run_index,
        "arm": arm_dir.name,
        "weights_sha256": member.weights_sha256,
        "temperature": t,
        "binning": record.BINNING,
        "bins": bins,
        "fit": {"set": fit_set, **{k: fitted[k] for k in ("num_examples", "nll_before", "nll_after")}},
        "evaluation": {"set": eval_set, "num_examples": int(len(eval_idx))},
        "before": metrics.summary(metrics.softmax(eval_logits), eval_labels, bins),
        "after": metrics.summary(metrics.softmax(eval_logits, t), eval_labels, bins),
        "agreement_with_training": _agreement(results, arm_dir.name, eval_idx, eval_logits.argmax(axis=1)),
    }
    temperature.write_temperature(member.params_dir, weights_sha256=member.weights_sha256, fitted_on=fit_set, **fitted)
    record.write_record(arm_dir, out)
    low, high = (abs(math.log(t) - bound) < 1e-3 for bound in temperature.LOG_T_BOUNDS)
    if low or high:
        why = "separate it perfectly" if low else "carry no signal on it (uniform probabilities fit best)"
        log(
            f"WARNING {arm_dir}: T = {t:.3g} sits at the edge of the search range: the logits {why}; "
            f"its fit set ({fit_set}, n = {fitted['num_examples']}) may be too small"
        )
    agreement = out["agreement_with_training"]
    if agreement is not None and agreement < 0.99:
        log(
            f"WARNING {arm_dir}: only {agreement:.1%} of the recomputed predictions equal those training recorded; "
            "the weights or the evaluation transform differ from training's"
        )
    before, after = out["before"], out["after"]
    log(
        f"{arm_dir}: T = {t:.3f} (fit on {fit_set}, n = {fitted['num_examples']}); on {eval_set} (n = {len(eval_idx)}) "
        f"ECE {before['ece']:.4f} -> {after['ece']:.4f}, NLL {before['nll']:.4f} -> {after['nll']:.4f}, "
        f"Brier {before['brier']:.4f} -> {after['brier']:.4f}"
    )
    return True


def _finished_arms(results: dict, run_dir: Path, wanted: Sequence[str] | None) -> list[str]:
    from alexnet_jax import params_io
    from alexnet_jax.results import is_complete

    arms = [arm for arm in results["arms"] if wanted is None or arm in wanted]
    return [arm for arm in arms if is_complete(results, arm) and params_io.is_params_dir(run_dir / arm / "best")]


def calibrate_study(
    workdir: str | Path,
    *,
    runs: Sequence[int] | None = None,
    arms: Sequence[str] | None = None,
    bins: int = 15,
    batch_size: int = 64,
    data_dir: str | None = None,
    overwrite: bool = False,
    log: Callable[[str], None] = print,
) -> dict[str, list[str]]:
    """Calibrate the finished arms of a study; {"calibrated": [...], "skipped": [...]} arm directories."""
    from alexnet_jax.results import find_run_dirs, load_results

    workdir = Path(workdir)
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise CliError(f"--bins={bins}: give a positive number of bins (default 15)")
    if batch_size < 1:
        raise CliError(f"--batch_size={batch_size}: give a positive batch size")
    dirs = {int(d.name.split("_", 1)[1]): d for d in find_run_dirs(workdir)}
    if not dirs:
        raise StudyError(f"--workdir={workdir}: no run_NNN directories there; give the study directory training wrote")
    chosen = sorted(dirs) if runs is None else [r for r in runs if r in dirs]
    if not chosen:
        raise StudyError(f"--runs: none of {list(runs)} is in {workdir} (its runs: {sorted(dirs)})")
    todo, known = [], set()
    for index in chosen:
        path = dirs[index] / "results.json"
        if not path.is_file():
            continue
        results = load_results(path)
        known.update(results["arms"])
        todo += [(index, results, arm) for arm in _finished_arms(results, dirs[index], arms)]
    unknown = [arm for arm in arms or () if arm not in known]
    if unknown:
        its = ", ".join(sorted(known)) or "none"
        raise CliError(f"--arms: {', '.join(unknown)} not in {workdir} (its arms: {its})")
    if not todo:
        asked = "" if arms is None else f" of arm(s) {', '.join(arms)}"
        raise StudyError(f"--workdir={workdir}: no finished run{asked} with best/ weights; train the study first")
    done: dict[str, list[str]] = {"calibrated": [], "skipped": []}
    data_by_run: dict[int, object] = {}
    for index, results, arm in todo:
        if index not in data_by_run:
            data_by_run = {index: _run_data(results, workdir, index, data_dir)}  # one run's split held at a time
        arm_dir = dirs[index] / arm
        fresh = calibrate_arm(
            results, data_by_run[index], arm_dir, bins=bins, batch_size=batch_size, overwrite=overwrite, log=log
        )
        done["calibrated" if fresh else "skipped"].append(str(arm_dir))
        if not fresh:
            log(f"{arm_dir}: already calibrated for these weights (--overwrite to redo)")
    return done


def main(argv: Sequence[str]) -> int:
    cli.quiet_library_logs()
    from absl import flags

    del argv
    f = flags.FLAGS
    try:
        runs = None if f.runs is None else cli.parse_runs(f.runs)
        arms = None if f.arms is None else [a.strip() for a in f.arms.split(",") if a.strip()]
        done = calibrate_study(
            f.workdir,
            runs=runs,
            arms=arms,
            bins=f.bins,
            batch_size=f.batch_size,
            data_dir=f.data_dir,
            overwrite=f.overwrite,
        )
    except (StudyError, ResultsError, PredictError, TrainingError, ValueError) as error:  # CliError is a ValueError
        return cli.report_error(error, cli.EXIT_BAD_INPUT)
    print(f"calibrated {len(done['calibrated'])} arm(s), skipped {len(done['skipped'])} already calibrated")
    return cli.EXIT_OK


def define_flags() -> None:
    from absl import flags

    flags.DEFINE_string("workdir", None, "Study directory holding run_NNN/results.json.", required=True)
    flags.DEFINE_string("runs", None, "Runs to calibrate, e.g. 0-4,9 (default: every run).")
    flags.DEFINE_string("arms", None, "Arms to calibrate, comma-separated (default: every finished arm).")
    flags.DEFINE_integer("bins", 15, "Equal-mass bins of the ECE and the reliability diagram.")
    flags.DEFINE_integer("batch_size", 64, "Images per forward pass.")
    flags.DEFINE_string("data_dir", None, "The prepared data set, when it moved since training.")
    flags.DEFINE_bool("overwrite", False, "Recalibrate arms already calibrated for their current weights.")


def run() -> None:
    """`python -m alexnet_jax.calibration`."""
    from absl import app

    define_flags()
    app.run(main)


if __name__ == "__main__":
    run()
