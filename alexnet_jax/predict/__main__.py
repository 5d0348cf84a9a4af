"""`python -m alexnet_jax.predict`: classify (or embed) a survey's galaxies with trained arms.

    python -m alexnet_jax.predict --checkpoint=runs/quick/run_000/pretrained \
        --images=catalogue.parquet --cutout_dir=cutouts/ --output=predictions.parquet
    python -m alexnet_jax.predict embed --checkpoint=... --images=... --output=embeddings.npy
    python -m alexnet_jax.predict merge --output=all.parquet preds_*.parquet

`--images` is a folder of images, a prepared data set, a catalogue of RA/Dec (.csv or .parquet;
cut-outs fetched from SDSS into --cutout_dir) or a list of image files (.txt); `--input_kind`
overrides the guess. `--checkpoint` (repeatable) or `--study` + `--arm` give the members of an
ensemble; `--mc_samples` and `--tta` add samples; a fitted temperature is applied unless
`--no_calibration`. Output: Parquet (or CSV) with one row per galaxy, written in resumable parts;
`--shard=i/n` computes one slice of a SLURM array, and `merge` joins the shards. The library is
alexnet_jax.predict.{members, engine, sources, output, stream}; this module parses flags, runs a
job and prints its summary. Bad input is one line and exit 2; SIGTERM/Ctrl-C keep the finished
parts and exit 5 (rerun the same command to resume).
"""

from __future__ import annotations

import dataclasses
import json
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from absl import app, flags

from alexnet_jax import cli, errors
from alexnet_jax.errors import PredictError
from alexnet_jax.predict import output as out_lib
from alexnet_jax.predict import sources

COMMANDS = ("predict", "embed", "merge")


@dataclasses.dataclass(frozen=True)
class Job:
    """One predict or embed job, as its flags describe it."""

    images: str
    output: str
    checkpoints: tuple[str, ...] = ()
    study: str | None = None
    arm: str | None = None
    command: str = "predict"  # or "embed"
    input_kind: str | None = None
    batch_size: int = 64
    tta: int = 0
    mc_samples: int = 0
    seed: int = 0
    shard: str | None = None
    calibrated: bool = True
    id_column: str | None = None
    ra_column: str | None = None
    dec_column: str | None = None
    cutout_dir: str | None = None
    sdss_url: str | None = None
    cutout_scale: float | None = None
    cutout_workers: int = 8
    cutout_rate: float = 5.0
    skip_bad_rows: bool = False
    rows_per_part: int = 4096
    progress: bool = True
    argv: tuple[str, ...] = ()
    compilation_cache: bool = False  # JAX's persistent cache (the command turns it on: SLURM tasks share it)


def define_flags() -> None:
    flags.DEFINE_multi_string("checkpoint", [], "A run's arm directory (run_NNN/<arm>) or a params directory; "
                              "repeat it for an ensemble.")  # fmt: skip
    flags.DEFINE_string("study", None, "A study's workdir: with --arm, every run's <arm> is a member.")
    flags.DEFINE_string("arm", None, "The arm of --study whose runs form the ensemble.")
    flags.DEFINE_string("images", None, "A folder of images, a prepared data set, a catalogue (.csv, .parquet) "
                        "or a list of image files (.txt).")  # fmt: skip
    flags.DEFINE_string("input_kind", None, f"What --images is, when the guess is wrong: {', '.join(sources.KINDS)}.")
    flags.DEFINE_string("output", None, "predict: .parquet (default predictions.parquet) or .csv; "
                        "embed: .parquet (default embeddings.parquet) or .npy.")  # fmt: skip
    flags.DEFINE_integer("batch_size", 64, "Images per forward pass (a row's numbers depend on it: keep it).")
    flags.DEFINE_integer("tta", 0, "0: centre crop. K > 0: average K random paper augmentations.")
    flags.DEFINE_integer("mc_samples", 0, "0: dropout off. S > 0: average S passes with dropout on (MC dropout).")
    flags.DEFINE_integer("seed", 0, "Seed of --tta and --mc_samples.")
    flags.DEFINE_string("shard", None, "i/n: compute shard i of n (e.g. $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT).")
    flags.DEFINE_bool("no_calibration", False, "Ignore a fitted temperature.json (applied by default).")
    flags.DEFINE_string("id_column", None, "Catalogue: the id column (default: SDSS, objid, id, ...; else the row).")
    flags.DEFINE_string("ra_column", None, "Catalogue: the RA column in degrees (default: ra, RAJ2000, ...).")
    flags.DEFINE_string("dec_column", None, "Catalogue: the Dec column in degrees (default: dec, DEJ2000, ...).")
    flags.DEFINE_string("cutout_dir", None, "Catalogue: where its SDSS cut-outs are cached (resumable).")
    flags.DEFINE_string("sdss_url", None, "Catalogue: the ImgCutout service (default: SDSS DR18's).")
    flags.DEFINE_float("cutout_scale", None, "Catalogue: arcsec per pixel (default: SDSS's native 0.396).")
    flags.DEFINE_integer("cutout_workers", 8, "Catalogue: parallel downloads.")
    flags.DEFINE_float("cutout_rate", 5.0, "Catalogue: at most this many requests per second (0: no limit).")
    flags.DEFINE_bool("skip_bad_rows", False, "Catalogue: keep rows without usable RA/Dec as 'bad coordinates'.")
    flags.DEFINE_integer("rows_per_part", 4096, "Rows per resumable part file (rounded up to whole batches).")
    flags.DEFINE_bool("progress", True, "Show a progress bar.")


def job_from_flags(command: str, argv: list[str]) -> Job:
    FLAGS = flags.FLAGS
    if not FLAGS.images:
        raise PredictError("--images: give a folder of images, a prepared data set, a catalogue or a file list")
    return Job(
        images=FLAGS.images,
        output=FLAGS.output or ("predictions.parquet" if command == "predict" else "embeddings.parquet"),
        checkpoints=tuple(FLAGS.checkpoint), study=FLAGS.study, arm=FLAGS.arm, command=command,
        input_kind=FLAGS.input_kind, batch_size=FLAGS.batch_size, tta=FLAGS.tta, mc_samples=FLAGS.mc_samples,
        seed=FLAGS.seed, shard=FLAGS.shard, id_column=FLAGS.id_column,
        calibrated=not FLAGS.no_calibration and command == "predict",  # features take no temperature
        ra_column=FLAGS.ra_column, dec_column=FLAGS.dec_column, cutout_dir=FLAGS.cutout_dir,
        sdss_url=FLAGS.sdss_url, cutout_scale=FLAGS.cutout_scale, cutout_workers=FLAGS.cutout_workers,
        cutout_rate=FLAGS.cutout_rate, skip_bad_rows=FLAGS.skip_bad_rows, rows_per_part=FLAGS.rows_per_part,
        progress=FLAGS.progress, argv=tuple(argv),
    )  # fmt: skip


def open_source(job: Job) -> sources.Source:
    cutouts = None
    if job.cutout_dir:
        from alexnet_jax.data import sdss

        cutouts = sources.CutoutOptions(Path(job.cutout_dir), job.sdss_url or sdss.DEFAULT_SDSS_URL,
                                        job.cutout_scale or sdss.SDSS_PIXEL_SCALE, job.cutout_workers,
                                        job.cutout_rate)  # fmt: skip
    return sources.open_source(job.images, kind=job.input_kind, id_column=job.id_column, ra_column=job.ra_column,
                               dec_column=job.dec_column, skip_bad_rows=job.skip_bad_rows, cutouts=cutouts)  # fmt: skip


def temperature_lines(members, calibrated: bool) -> list[str]:
    """What the command says of calibration: one line per member, or one per outcome for a big ensemble."""
    if not calibrated:
        return [f"--no_calibration: temperature not applied ({len(members)} member(s)): uncalibrated"]
    outcomes: dict[str, list[str]] = {}
    for member in members:
        where = member.params_dir / "temperature.json"
        if member.temperature is not None:
            line = f"applied temperature {member.temperature:.4g} from {where}"
        elif where.exists():
            line = f"{where} does not fit these weights: uncalibrated"
        else:
            line = f"no temperature.json in {member.params_dir}: uncalibrated"
        outcomes.setdefault(line.split(" ", 2)[0], []).append(line)
    if len(members) <= 3:
        return [line for lines in outcomes.values() for line in lines]
    return [f"{lines[0]} (and {len(lines) - 1} more member(s) alike)" if len(lines) > 1 else lines[0]
            for lines in outcomes.values()]  # fmt: skip


def job_metadata(job: Job, source, forward, members, rows: tuple[int, int], shard) -> dict:
    from alexnet_jax import toolbox
    from alexnet_jax.predict import members as members_lib

    versions = toolbox.package_versions(["jax", "jaxlib", "flax", "numpy", "pyarrow", "alexnet_jax"])
    metadata = {
        "schema": out_lib.SCHEMAS[job.command],
        "command": ["python -m alexnet_jax.predict", *job.argv],
        "class_names": list(forward.class_names),
        "identity": members_lib.identity(members),
        "sampling": {
            "tta": job.tta,
            "mc_samples": job.mc_samples,
            "seed": job.seed,
            "calibrated": job.calibrated,
            "temperatures": forward.temperatures,
            "uncertainty": forward.describe(),
        },  # fmt: skip
        "preprocessing": forward.preprocessing,
        "shard": None if shard is None else list(shard),
        "rows": list(rows),
        "batch_size": job.batch_size,
        "num_rows": rows[1] - rows[0],
        "input": source.describe(),
        "versions": versions,
    }
    metadata["fingerprint"] = out_lib.fingerprint(metadata)
    return metadata


def execute(job: Job, *, log: Callable[[str], None] = print, after_part=None) -> int:
    """Run one predict/embed job; raises PredictError (and the like) for bad input."""
    fmt = out_lib.output_format(Path(job.output), job.command)
    shard = out_lib.parse_shard(job.shard)
    if job.batch_size < 1 or job.rows_per_part < 1:
        raise PredictError(f"--batch_size={job.batch_size}, --rows_per_part={job.rows_per_part}: both must be >= 1")
    source = open_source(job)  # the input's problems are told before JAX or any weights load
    try:
        from alexnet_jax.predict import engine, stream
        from alexnet_jax.predict import members as members_lib

        if job.compilation_cache:
            cli.enable_compilation_cache()
        members, warnings = members_lib.load_members(job.checkpoints, study=job.study, arm=job.arm,
                                                     use_temperature=job.calibrated)  # fmt: skip
        converted = all(not m.run_config for m in members)
        labelled = source.class_names is not None and not converted
        if source.class_names is not None and converted:
            warnings.append(f"{members[0].params_dir} holds converted weights (no classes): "
                            f"the labels of {job.images} are not scored")  # fmt: skip
        if labelled:
            members_lib.check_same_classes(list(members[0].class_names), source.class_names,
                                           members[0].params_dir, job.images)  # fmt: skip
        sampling = engine.Sampling(tta=job.tta, mc_samples=job.mc_samples, seed=job.seed)
        forward = engine.Forward(members, sampling, batch_size=job.batch_size, features=job.command == "embed",
                                 calibrated=job.calibrated)  # fmt: skip
        for warning in warnings:
            log(f"warning: {warning}")
        if job.command == "predict":
            for line in temperature_lines(members, job.calibrated):
                log(line)
        rows = out_lib.shard_rows(source.num_rows, job.batch_size, shard)
        metadata = job_metadata(job, source, forward, members, rows, shard)
        store = out_lib.PartStore(Path(job.output), metadata)
        state = store.check(fmt)
        if state == "complete":
            log(f"{job.output} is complete (the same job finished it before); nothing to do")
            return cli.EXIT_OK
        ident = metadata["identity"]
        constants = (("model", ident["model"]), ("checkpoints", ";".join(ident["checkpoints"])),
                     ("weights_sha256", ";".join(ident["weights_sha256"])),
                     ("preprocessing", json.dumps(forward.preprocessing, sort_keys=True)),
                     ("uncertainty", forward.describe()))  # fmt: skip
        columns = stream.Columns(job.command, tuple(forward.class_names), constants, labelled)
        parts = out_lib.plan_parts(*rows, job.batch_size, job.rows_per_part)
        store.open()
        where = f"rows {rows[0]}-{rows[1] - 1} (shard {shard[0]}/{shard[1]}) of {source.num_rows}" if shard else (
            f"{source.num_rows} rows")  # fmt: skip
        log(f"{job.command}: {where} of {job.images} ({source.kind}); {forward.describe()}")
        try:
            stats = stream.run(source, forward, store, parts, columns, batch_size=job.batch_size,
                               progress=job.progress, after_part=after_part)  # fmt: skip
        except KeyboardInterrupt:
            done = sum(store.done(*part) for part in parts)
            log(f"interrupted: {done} of {len(parts)} parts are saved in {store.folder}; "
                "run the same command to resume")  # fmt: skip
            return cli.EXIT_INTERRUPTED

        def empty():
            return columns.table(source.rows(rows[0], rows[0]), [], _empty_outputs(forward, job.command))

        tally = out_lib.merge(store, parts, fmt, metadata, empty)
        store.remove()
    finally:
        source.close()
    if stats.reused:
        log(f"reused {stats.reused} of {stats.parts} parts finished by an earlier run of this command")
    for line in summary_lines(tally, job.output, fmt, forward.class_names):
        log(line)
    return cli.EXIT_OK


def _empty_outputs(forward, command: str) -> dict:
    import numpy as np

    if command == "embed":  # the width comes from one pass (only for a shard without rows)
        return {"features": forward(np.zeros((1, 256, 256, 3), np.uint8), 0)["features"][:0]}
    k = forward.num_classes
    return {"probabilities": np.zeros((0, k), np.float32), "entropy": np.zeros(0), "mutual_information": np.zeros(0)}


def summary_lines(tally, output, fmt: str, class_names) -> list[str]:
    """The closing lines: rows written, counts per predicted class (in the head's order), rows
    without numbers by reason (the first few named), accuracy against a labelled set."""
    lines = [f"wrote {tally.rows} rows to {output} ({fmt})"]
    if tally.per_class:
        lines.append("predicted: " + ", ".join(f"{name}: {tally.per_class.get(name, 0)}" for name in class_names))
    if tally.problems:
        reasons = ", ".join(f"{reason}: {count}" for reason, count in sorted(tally.problems.items()))
        first = "; ".join(f"row {row} ({galaxy}): {status}" for row, galaxy, status in tally.problem_rows)
        lines.append(f"{tally.rows - tally.classified} rows have no numbers ({reasons}); first: {first}; "
                     "their `status` column says why")  # fmt: skip
    if tally.labelled:
        lines.append(f"accuracy against the data set's labels: {tally.correct / tally.labelled:.4f} "
                     f"({tally.labelled} rows)")  # fmt: skip
    return lines


def merge_command(files: list[str], output: str | None, argv: list[str]) -> int:
    if not output:
        raise PredictError("merge: give --output, the merged file (.parquet or .csv)")
    metadata, tally = out_lib.merge_shards([Path(f) for f in files], Path(output),
                                           ["python -m alexnet_jax.predict", *argv])  # fmt: skip
    if tally is None:
        print(f"{output} is complete (the same shards were merged before); nothing to do")
        return cli.EXIT_OK
    fmt = out_lib.output_format(Path(output), "predict" if metadata["schema"] == out_lib.SCHEMAS["predict"]
                                else "embed")  # fmt: skip
    for line in summary_lines(tally, output, fmt, metadata["class_names"]):
        print(line)
    return cli.EXIT_OK


def _stop_on_sigterm(signum, frame):
    raise KeyboardInterrupt  # SLURM's preemption: save nothing more, keep the finished parts


def main(argv, command: str | None = None) -> int:
    cli.quiet_library_logs()
    positional = argv[1:]
    if command is None and positional and positional[0] in COMMANDS:
        command, positional = positional[0], positional[1:]
    command = command or "predict"
    if command != "merge" and positional:
        return cli.report_error(f"unexpected arguments {positional}; give flags only (--images=..., --output=...) "
                                f"or one command of {', '.join(COMMANDS)} first")  # fmt: skip
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        if command == "merge":
            return merge_command(positional, flags.FLAGS.output, sys.argv[1:])
        given = sys.argv[1:]
        recorded = ["embed", *given] if command == "embed" and "embed" not in given else given  # the embed script
        job = dataclasses.replace(job_from_flags(command, recorded), compilation_cache=True)
        return execute(job)
    except (PredictError, errors.ParamsDirError, errors.PreparedDataError) as error:
        return cli.report_error(error, cli.EXIT_BAD_INPUT)
    except KeyboardInterrupt:
        return cli.report_error("interrupted before any part was computed; run the same command again",
                                cli.EXIT_INTERRUPTED)  # fmt: skip
    except OSError as error:  # a full disk, an unwritable --output or --cutout_dir: finished parts stay
        return cli.report_error(f"{error}; the finished parts are kept: fix it and run the same command",
                                cli.EXIT_FAILED)  # fmt: skip


def run() -> None:
    """`python -m alexnet_jax.predict` and the `alexnet-jax-predict` script."""
    define_flags()
    app.run(lambda argv: sys.exit(main(argv)))


def run_embed() -> None:
    """The `alexnet-jax-embed` script: `predict embed`, the penultimate layer's features."""
    define_flags()
    app.run(lambda argv: sys.exit(main(argv, "embed")))


if __name__ == "__main__":
    run()
