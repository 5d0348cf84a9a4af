"""Analyse a study: summary.json, the paper's Tables 1-4 and Figs 3-11, every pair of arms, the cost of
accuracy (Tables A1-A8, Figs 12-16), a label-efficiency study's curves and labels saved (Tables L1-L7,
Figs 17-19, where the runs carry label_budget), and report.md.

    python -m alexnet_jax.analyze --workdir=DIR [--example_run=49] [--outdir=DIR/analysis] [--reference_arm=scratch]
    python -m alexnet_jax.analyze --workdir=/tmp/demo --demo_runs=100   # synthetic demo study
    python -m alexnet_jax.analyze --workdir=/tmp/demo4 --demo_runs=20 \
        --demo_arms=scratch,imagenet,linear_probe,last_blocks             # synthetic, four arms
    python -m alexnet_jax.analyze --workdir=/tmp/demo2 --demo_runs=10 --demo_classes=spiral,not_spiral

Reads every DIR/run_*/results.json (schema "alexnet_jax.run/2" or "/1", see alexnet_jax.results) and
writes DIR/analysis/, for any K >= 2 classes; the paper's published numbers are compared only when
the runs classify its four, and runs that classify different classes are refused. Partial studies
work: a broken or half-written results.json is named and skipped, missing arms and short runs
shrink the counts, and every such case is listed in the report, with the command that trains
missing arms. The work is done by alexnet_jax.analysis
(`analysis.pipeline.analyze` from Python); definitions of every number: docs/analysis.md.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from alexnet_jax import cli
from alexnet_jax.analysis.demo import DEMO_ARMS, DEMO_EPOCHS, make_demo_study
from alexnet_jax.analysis.pipeline import analyze
from alexnet_jax.analysis.stats import BOOTSTRAP_RESAMPLES
from alexnet_jax.errors import ResultsError, StudyError


def run_command(
    workdir: str | Path,
    *,
    outdir: str | None = None,
    example_run: int | None = None,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
    figures: bool = True,
    reference_arm: str | None = None,
    demo_runs: int = 0,
    demo_arms: str | None = None,
    demo_classes: str | None = None,
) -> int:
    """What the command does, given its flags: the exit code; bad input is one `error:` line on stderr."""
    workdir = Path(workdir)
    if demo_runs:
        started = time.perf_counter()
        names = [a.strip() for a in demo_arms.split(",") if a.strip()] if demo_arms else None
        classes = [c.strip() for c in demo_classes.split(",")] if demo_classes else None
        try:
            make_demo_study(workdir, demo_runs, seed=seed, arms=names, class_names=classes)
        except (FileExistsError, ValueError) as error:
            return cli.report_error(error, cli.EXIT_BAD_INPUT)
        print(f"made a SYNTHETIC demo study of {demo_runs} runs in {workdir} ({time.perf_counter() - started:.1f} s)")
    started = time.perf_counter()
    try:
        analyze(
            workdir,
            outdir,
            example_run=example_run,
            resamples=resamples,
            seed=seed,
            figures=figures,
            reference_arm=reference_arm,
        )
    except (StudyError, ResultsError) as error:
        return cli.report_error(error, cli.EXIT_BAD_INPUT)
    print(f"analysis took {time.perf_counter() - started:.1f} s")
    return cli.EXIT_OK


def main(argv: Sequence[str]) -> int:
    cli.quiet_library_logs()
    from absl import flags

    del argv
    f = flags.FLAGS
    return run_command(
        f.workdir,
        outdir=f.outdir,
        example_run=f.example_run,
        resamples=f.bootstrap_resamples,
        seed=f.seed,
        figures=f.figures,
        reference_arm=f.reference_arm,
        demo_runs=f.demo_runs,
        demo_arms=f.demo_arms,
        demo_classes=f.demo_classes,
    )


def define_flags() -> None:
    from absl import flags

    flags.DEFINE_string("workdir", None, "Study directory holding run_NNN/results.json.", required=True)
    flags.DEFINE_string("outdir", None, "Where to write; default WORKDIR/analysis.")
    flags.DEFINE_integer("example_run", None, "Run shown in Figs 7 and 10; default the first run found.")
    flags.DEFINE_integer("bootstrap_resamples", BOOTSTRAP_RESAMPLES, "Bootstrap resamples for the 95% CIs.")
    flags.DEFINE_integer("seed", 0, "Seed of the bootstrap (and of --demo_runs).")
    flags.DEFINE_bool("figures", True, "Draw the figures (off: summary, tables and report only).")
    flags.DEFINE_string(
        "reference_arm",
        None,
        "Arm the cost of accuracy and labels saved are measured against (default: the arm named scratch, else "
        "one whose spec.init is scratch).",
    )
    flags.DEFINE_integer(
        "demo_runs",
        0,
        f"First write a SYNTHETIC demo study of this many runs ({'/'.join(map(str, DEMO_EPOCHS))} epochs) "
        "into the empty --workdir, then analyse it.",
    )
    flags.DEFINE_string(
        "demo_arms",
        None,
        f"With --demo_runs: the demo's arms, from {', '.join(DEMO_ARMS)} (default: the paper's two).",
    )
    flags.DEFINE_string(
        "demo_classes",
        None,
        "With --demo_runs: the demo's classes, comma-separated, any 2 or more (default: the paper's four).",
    )


def run() -> None:
    """`python -m alexnet_jax.analyze` and the `alexnet-jax-analyze` script."""
    from absl import app

    define_flags()
    app.run(main)


if __name__ == "__main__":
    run()
