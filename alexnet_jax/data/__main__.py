"""The data command line: `python -m alexnet_jax.data COMMAND --flags`.

Commands
  prepare        write a prepared data set (--dataset=synthetic|nair_abraham|folder, --output=DIR)
  verify_paper   class totals and the test-set class counts of runs 0 and 49 vs the paper
  fetch_catalog  download VizieR J/ApJS/186/427/table2 into the cache and check it
  check_catalog  read a catalogue (--catalog, else the cached VizieR copy) and check it
  fetch_images   fetch the SDSS cut-outs of a catalogue into --image_dir (resumable)
  build_tfds     write the TFDS version of a prepared set (--prepared, --data_dir)
  info           print a prepared set's manifest (--prepared; --verify checks the hashes)

Examples
  python -m alexnet_jax.data prepare --dataset=synthetic --output=data/synthetic
  python -m alexnet_jax.data prepare --dataset=nair_abraham --output=data/nair_abraham
  python -m alexnet_jax.data prepare --dataset=folder --image_dir=imgs --catalog=cat.csv --output=data/mine
  python -m alexnet_jax.data verify_paper --catalog=table2.tsv
Exit status (alexnet_jax.cli): 0 success, 1 verify_paper or fetch_images found a mismatch or a failure,
2 bad input (the message says what to fix).
"""

from __future__ import annotations

import json
from pathlib import Path

from absl import app, flags

from alexnet_jax import cli, paper
from alexnet_jax.data import sdss  # stdlib + numpy only: the cut-out rule's defaults
from alexnet_jax.errors import CliError

COMMANDS = ("prepare", "verify_paper", "fetch_catalog", "check_catalog", "fetch_images", "build_tfds", "info")

FLAGS = flags.FLAGS


def define_flags() -> None:
    """The flags of every data command; defined only when the command runs."""
    flags.DEFINE_enum("dataset", "synthetic", ["synthetic", "nair_abraham", "folder"], "prepare: which data set.")
    flags.DEFINE_string("output", None, "prepare: the prepared data set directory to write.")
    flags.DEFINE_bool(
        "overwrite", False, "prepare: replace an existing data set at --output (only once the new one is complete)."
    )
    flags.DEFINE_integer("num_examples", paper.NUM_EXAMPLES, "synthetic: number of galaxies.")
    flags.DEFINE_integer("seed", 0, "synthetic: random seed.")
    flags.DEFINE_integer("num_workers", None, "Processes (synthetic) or threads (image decoding); default: all cores.")
    flags.DEFINE_string(
        "catalog",
        None,
        "A local catalogue file (VizieR TSV, TSV, CSV, FITS, ECSV, VOTable). "
        "nair_abraham/verify_paper: omitted = fetch VizieR J/ApJS/186/427/table2 (cached).",
    )
    flags.DEFINE_string(
        "catalog_format", None, "Force the catalogue format: vizier_tsv, tsv, csv, fits, ecsv, votable."
    )
    flags.DEFINE_string(
        "cache_dir",
        None,
        "Cache for the VizieR table and SDSS cut-outs (default $ALEXNET_JAX_CACHE or ~/.cache/alexnet_jax).",
    )
    flags.DEFINE_bool("refresh_catalog", False, "Download the VizieR table again even if cached.")
    flags.DEFINE_string(
        "image_dir",
        None,
        "folder: the images. nair_abraham/fetch_images: the cut-out cache (default <cache_dir>/sdss_cutouts).",
    )
    flags.DEFINE_string(
        "id_column",
        None,
        "folder: catalogue column naming each row's image file; default pairs "
        "sorted file names with rows by position, as the original did.",
    )
    flags.DEFINE_string("image_glob", None, "folder: file pattern, e.g. '*.jpg' (default: common image extensions).")
    flags.DEFINE_enum(
        "on_bad_image", "fail", ["fail", "skip"], "An unusable image: stop (fail) or drop its row and report it (skip)."
    )
    flags.DEFINE_integer(
        "expected_rows", paper.NUM_EXAMPLES, "Rows the catalogue must have (Nair & Abraham: 14,034); 0 = any."
    )
    flags.DEFINE_enum(
        "on_row_mismatch", "error", ["error", "warn"], "A catalogue with another row count: error or warn."
    )
    flags.DEFINE_string("ttype_column", None, "Catalogue column with the T-types (default: TType and aliases).")
    flags.DEFINE_string(
        "radius_column", None, "Catalogue column with a Petrosian radius in arcsec for the cut-out scale."
    )
    flags.DEFINE_string("sdss_url", None, "ImgCutout getjpeg endpoint (default: SDSS DR18 SkyServer).")
    flags.DEFINE_integer("cutout_size", sdss.DEFAULT_WIDTH, "Cut-out width and height in pixels.")
    flags.DEFINE_float(
        "fov_factor", sdss.DEFAULT_FOV_FACTOR, "Cut-out field of view in units of the galaxy's R90 radius."
    )
    flags.DEFINE_float("min_scale", sdss.MIN_SCALE, "Smallest cut-out pixel scale, arcsec/pixel.")
    flags.DEFINE_float("max_scale", sdss.MAX_SCALE, "Largest cut-out pixel scale, arcsec/pixel.")
    flags.DEFINE_float("default_scale", sdss.SDSS_PIXEL_SCALE, "Pixel scale when the radius is unknown, arcsec/pixel.")
    flags.DEFINE_float("fixed_scale", None, "One pixel scale for every galaxy (overrides the radius rule).")
    flags.DEFINE_integer("fetch_workers", 8, "Concurrent cut-out downloads.")
    flags.DEFINE_float("rate", 5.0, "Cut-out requests per second at most (0 = unlimited).")
    flags.DEFINE_integer("retries", 5, "Retries per cut-out after the first attempt.")
    flags.DEFINE_float("backoff", 1.0, "First retry delay in seconds; doubles with each retry.")
    flags.DEFINE_float("timeout", 30.0, "Per-request time-out in seconds.")
    flags.DEFINE_bool("progress", True, "Show progress bars.")
    flags.DEFINE_string("prepared", None, "build_tfds/info: a prepared data set directory.")
    flags.DEFINE_string("data_dir", None, "build_tfds: the TFDS data_dir to write into.")
    flags.DEFINE_integer("run_index", None, "build_tfds: build the paper_run<r> config (train/test of paper_split(r)).")
    flags.DEFINE_bool("verify", False, "info: check every file's sha256 against the manifest.")
    flags.DEFINE_string("json_out", None, "verify_paper/check_catalog: also write the report as JSON here.")


def _catalog():
    from alexnet_jax.data.catalog import load_or_fetch_catalog

    return load_or_fetch_catalog(
        FLAGS.catalog,
        cache_dir=FLAGS.cache_dir,
        refresh=FLAGS.refresh_catalog,
        fmt=FLAGS.catalog_format,
        ttype_column=FLAGS.ttype_column,
        radius_column=FLAGS.radius_column,
    )


def _expected_rows():
    return FLAGS.expected_rows or None


def _write_json(obj) -> None:
    if FLAGS.json_out:
        from alexnet_jax.toolbox import write_json_atomic

        write_json_atomic(FLAGS.json_out, obj)


def _sdss_kwargs() -> dict:
    from alexnet_jax.data.sdss import DEFAULT_SDSS_URL

    return dict(
        base_url=FLAGS.sdss_url or DEFAULT_SDSS_URL,
        workers=FLAGS.fetch_workers,
        rate=FLAGS.rate,
        retries=FLAGS.retries,
        backoff=FLAGS.backoff,
        timeout=FLAGS.timeout,
        progress=FLAGS.progress,
    )


def _scale_kwargs() -> dict:
    return dict(
        width=FLAGS.cutout_size,
        fov_factor=FLAGS.fov_factor,
        min_scale=FLAGS.min_scale,
        max_scale=FLAGS.max_scale,
        default_scale=FLAGS.default_scale,
        fixed_scale=FLAGS.fixed_scale,
    )


def cmd_prepare() -> int:
    if not FLAGS.output:
        raise CliError("prepare needs --output=DIR")
    if FLAGS.dataset == "synthetic":
        return _prepare_synthetic()
    if FLAGS.dataset == "folder":
        from alexnet_jax.data.folder import prepare_folder

        if not FLAGS.image_dir or not FLAGS.catalog:
            raise CliError("--dataset=folder needs --image_dir and --catalog")
        manifest, result = prepare_folder(
            FLAGS.image_dir,
            FLAGS.catalog,
            FLAGS.output,
            id_column=FLAGS.id_column,
            pattern=FLAGS.image_glob,
            on_bad_image=FLAGS.on_bad_image,
            overwrite=FLAGS.overwrite,
            num_workers=FLAGS.num_workers,
            progress=FLAGS.progress,
        )
        for dropped in result.dropped:
            print(f"dropped row {dropped['row']} ({dropped['id']}, {dropped['file']}): {dropped['reason']}")
        if result.unused_files:
            print(f"{len(result.unused_files)} files in {FLAGS.image_dir} match no catalogue row (ignored)")
    else:
        from alexnet_jax.data.sdss import prepare_nair_abraham

        manifest, _ = prepare_nair_abraham(
            FLAGS.output,
            catalog=FLAGS.catalog,
            catalog_format=FLAGS.catalog_format,
            cache_dir=FLAGS.cache_dir,
            refresh_catalog=FLAGS.refresh_catalog,
            image_dir=FLAGS.image_dir,
            radius_column=FLAGS.radius_column,
            expected_rows=_expected_rows(),
            on_row_mismatch=FLAGS.on_row_mismatch,
            on_bad_image=FLAGS.on_bad_image,
            overwrite=FLAGS.overwrite,
            **_scale_kwargs(),
            **_sdss_kwargs(),
        )
    _print_manifest(FLAGS.output, manifest)
    return 0


def _prepare_synthetic() -> int:
    try:
        from alexnet_jax.data import synthetic
    except ImportError as error:
        raise RuntimeError(f"the synthetic generator is not available: {error}") from error
    from alexnet_jax.data.folder import staged_output
    from alexnet_jax.data.prepared import write_prepared

    with staged_output(FLAGS.output, overwrite=FLAGS.overwrite) as staging:
        images, labels, metadata = synthetic.generate_synthetic(
            num_examples=FLAGS.num_examples,
            seed=FLAGS.seed,
            num_workers=FLAGS.num_workers,
            progress=FLAGS.progress,
        )
        params = synthetic.generator_params()
        manifest = write_prepared(
            staging,
            images,
            labels,
            metadata,
            name="synthetic",
            source=f"alexnet_jax synthetic generator {synthetic.GENERATOR_VERSION}, seed {FLAGS.seed}",
            generator={
                "name": params.get("name", "alexnet_jax.synthetic"),
                "version": synthetic.GENERATOR_VERSION,
                "seed": FLAGS.seed,
                "num_examples": FLAGS.num_examples,
                "params": params,
            },
        )
    _print_manifest(FLAGS.output, manifest)
    return 0


def _print_manifest(output, manifest: dict) -> None:
    from alexnet_jax.data.labels import CLASS_NAMES

    counts = ", ".join(f"{n} {c:,}" for n, c in zip(CLASS_NAMES, manifest["class_counts"], strict=True))
    print(f"wrote {manifest['num_examples']:,} examples to {output} ({counts})")


def cmd_verify_paper() -> int:
    from alexnet_jax.data.catalog import check_catalog
    from alexnet_jax.data.labels import CLASS_NAMES
    from alexnet_jax.data.splits import verify_paper_counts

    catalog = _catalog()
    check_catalog(catalog, expected_rows=_expected_rows(), on_row_mismatch=FLAGS.on_row_mismatch)
    report = verify_paper_counts(catalog.labels())
    report["source"] = catalog.source
    report["sha256"] = catalog.sha256

    def row(title, entry):
        found = " / ".join(f"{c:,}" for c in entry["found"])
        paper = " / ".join(f"{c:,}" for c in entry["paper"])
        return f"{title:<22}{found:<28}{paper:<28}{'match' if entry['match'] else 'MISMATCH'}"

    print(f"catalogue: {catalog.source} ({report['num_examples']:,} rows, rows in file order)")
    print(f"{'':<22}{'found':<28}{'paper':<28}")
    print(f"{'classes':<22}{' / '.join(CLASS_NAMES)}")
    print(row("class totals", report["class_totals"]))
    for run, entry in report["runs"].items():
        print(row(f"run {run} test counts", entry))
    print(
        "all match" if report["all_match"] else "MISMATCH: this catalogue (or its row order) differs from the paper's"
    )
    _write_json({**report, "runs": {str(k): v for k, v in report["runs"].items()}})
    return 0 if report["all_match"] else 1


def cmd_fetch_catalog() -> int:
    from alexnet_jax.data.catalog import check_catalog, fetch_catalog, load_catalog

    path = fetch_catalog(FLAGS.cache_dir, refresh=FLAGS.refresh_catalog)
    print(f"catalogue cached at {path}")
    catalog = load_catalog(path, "ecsv", ttype_column=FLAGS.ttype_column, radius_column=FLAGS.radius_column)
    report = check_catalog(catalog, expected_rows=_expected_rows(), on_row_mismatch=FLAGS.on_row_mismatch)
    print("\n".join(report.lines()))
    return 0


def cmd_check_catalog() -> int:
    from alexnet_jax.data.catalog import check_catalog

    catalog = _catalog()
    report = check_catalog(catalog, expected_rows=_expected_rows(), on_row_mismatch=FLAGS.on_row_mismatch)
    print(f"catalogue: {catalog.source}" + (f" (sha256 {catalog.sha256})" if catalog.sha256 else ""))
    print("\n".join(report.lines()))
    _write_json({"source": catalog.source, "sha256": catalog.sha256, **report.to_json()})
    return 0


def cmd_fetch_images() -> int:
    from alexnet_jax.data.catalog import check_catalog, default_cache_dir
    from alexnet_jax.data.sdss import fetch_cutouts, requests_from_catalog

    catalog = _catalog()
    check_catalog(
        catalog, expected_rows=_expected_rows(), on_row_mismatch=FLAGS.on_row_mismatch, require_coordinates=True
    )
    image_dir = (
        Path(FLAGS.image_dir)
        if FLAGS.image_dir
        else (Path(FLAGS.cache_dir) if FLAGS.cache_dir else default_cache_dir()) / "sdss_cutouts"
    )
    requests = requests_from_catalog(catalog.table, **_scale_kwargs())
    summary = fetch_cutouts(requests, image_dir, **_sdss_kwargs())
    print("\n".join(summary.lines()))
    print(f"cut-outs in {image_dir}; failures listed in {image_dir / 'failures.json'}")
    return 0 if summary.ok else 1


def cmd_build_tfds() -> int:
    if not FLAGS.prepared or not FLAGS.data_dir:
        raise CliError("build_tfds needs --prepared=DIR and --data_dir=DIR")
    from alexnet_jax.data.tfds_builder import build_tfds

    builder = build_tfds(FLAGS.prepared, FLAGS.data_dir, run_index=FLAGS.run_index)
    splits = {name: info.num_examples for name, info in builder.info.splits.items()}
    print(f"TFDS {builder.name}/{builder.builder_config.name} {builder.version} in {builder.data_dir}: {splits}")
    return 0


def cmd_info() -> int:
    if not FLAGS.prepared:
        raise CliError("info needs --prepared=DIR")
    from alexnet_jax.data.prepared import load_prepared, read_manifest

    manifest = read_manifest(FLAGS.prepared)
    if FLAGS.verify:
        load_prepared(FLAGS.prepared, verify=True)
    print(json.dumps(manifest, indent=1))
    if FLAGS.verify:
        print("sha256 of every file matches the manifest")
    return 0


def main(argv: list[str]) -> int:
    cli.quiet_library_logs()
    if len(argv) != 2 or argv[1] not in COMMANDS:
        return cli.report_error(
            f"give one command: {', '.join(COMMANDS)} (got {' '.join(argv[1:]) or 'none'}); see --help",
            cli.EXIT_BAD_INPUT,
        )
    from alexnet_jax.errors import CatalogError, FolderError, LabelError, PreparedDataError, SplitError

    try:
        return globals()[f"cmd_{argv[1]}"]()
    except (
        CliError,
        CatalogError,
        FolderError,
        LabelError,
        PreparedDataError,
        SplitError,
        FileNotFoundError,
        RuntimeError,
    ) as error:
        return cli.report_error(error, cli.EXIT_BAD_INPUT)


def run() -> None:
    """`python -m alexnet_jax.data` and the `alexnet-jax-data` script."""
    define_flags()
    app.run(main)


if __name__ == "__main__":
    run()
