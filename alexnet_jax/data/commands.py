"""The data commands as library calls: `DataOptions` (the flags of `python -m alexnet_jax.data`,
read once) and one function per command that prints its report and returns the exit code.

`run(command, options)` is what the command line calls; tests and scripts call it (or a
command's function) in-process with the same options. Bad input raises one of `BAD_INPUT`,
which `run` turns into one `error: ...` line and exit code 2 (`alexnet_jax.cli`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from alexnet_jax import cli
from alexnet_jax.data.importers import DATASETS as DATASETS  # the data sets `prepare` knows (the flag's choices)
from alexnet_jax.data.options import DataOptions as DataOptions  # the flags, read once
from alexnet_jax.errors import (
    CatalogError,
    CliError,
    DataFileError,
    FolderError,
    LabelError,
    PreparedDataError,
    SplitError,
)

# What a command raises for input the user must fix: exit 2 with the message, no traceback.
BAD_INPUT = (
    CliError,
    CatalogError,
    DataFileError,
    FolderError,
    LabelError,
    PreparedDataError,
    SplitError,
    FileNotFoundError,
    RuntimeError,
)


def run(command: str, options: DataOptions) -> int:
    """Run one of COMMANDS; bad input is one `error:` line on stderr and exit code 2."""
    try:
        return COMMAND_FUNCTIONS[command](options)
    except BAD_INPUT as error:
        return cli.report_error(error, cli.EXIT_BAD_INPUT)


def _catalog(options: DataOptions):
    from alexnet_jax.data.catalog import load_or_fetch_catalog

    return load_or_fetch_catalog(
        options.catalog,
        cache_dir=options.cache_dir,
        refresh=options.refresh_catalog,
        fmt=options.catalog_format,
        ttype_column=options.ttype_column,
        radius_column=options.radius_column,
    )


def _write_json(options: DataOptions, obj) -> None:
    if options.json_out:
        from alexnet_jax.toolbox import write_json_atomic

        write_json_atomic(options.json_out, obj)


def prepare(options: DataOptions) -> int:
    """Write a prepared data set at --output from --dataset (one importer per data set: data.importers)."""
    from alexnet_jax.data.importers import prepare_dataset

    return prepare_dataset(options)


def verify_paper(options: DataOptions) -> int:
    """Class totals and the test-set class counts of runs 0 and 49 against the paper: 0 all match, 1 not."""
    from alexnet_jax.data.catalog import check_catalog
    from alexnet_jax.data.labels import CLASS_NAMES
    from alexnet_jax.data.splits import verify_paper_counts

    catalog = _catalog(options)
    check_catalog(catalog, expected_rows=options.rows_expected, on_row_mismatch=options.on_row_mismatch)
    report = verify_paper_counts(catalog.labels())
    report["source"] = catalog.source
    report["sha256"] = catalog.sha256

    def row(title, entry):
        found = " / ".join(f"{c:,}" for c in entry["found"])
        paper_counts = " / ".join(f"{c:,}" for c in entry["paper"])
        return f"{title:<22}{found:<28}{paper_counts:<28}{'match' if entry['match'] else 'MISMATCH'}"

    print(f"catalogue: {catalog.source} ({report['num_examples']:,} rows, rows in file order)")
    print(f"{'':<22}{'found':<28}{'paper':<28}")
    print(f"{'classes':<22}{' / '.join(CLASS_NAMES)}")
    print(row("class totals", report["class_totals"]))
    for run_index, entry in report["runs"].items():
        print(row(f"run {run_index} test counts", entry))
    print(
        "all match" if report["all_match"] else "MISMATCH: this catalogue (or its row order) differs from the paper's"
    )
    _write_json(options, {**report, "runs": {str(k): v for k, v in report["runs"].items()}})
    return cli.EXIT_OK if report["all_match"] else cli.EXIT_FAILED


def fetch_catalog(options: DataOptions) -> int:
    """Download VizieR's table 2 into the cache and check it."""
    from alexnet_jax.data.catalog import check_catalog, load_catalog
    from alexnet_jax.data.catalog import fetch_catalog as fetch

    path = fetch(options.cache_dir, refresh=options.refresh_catalog)
    print(f"catalogue cached at {path}")
    catalog = load_catalog(path, "ecsv", ttype_column=options.ttype_column, radius_column=options.radius_column)
    report = check_catalog(catalog, expected_rows=options.rows_expected, on_row_mismatch=options.on_row_mismatch)
    print("\n".join(report.lines()))
    return cli.EXIT_OK


def check_catalog(options: DataOptions) -> int:
    """Read a catalogue (--catalog, else the cached VizieR copy) and check it."""
    from alexnet_jax.data.catalog import check_catalog as check

    catalog = _catalog(options)
    report = check(catalog, expected_rows=options.rows_expected, on_row_mismatch=options.on_row_mismatch)
    print(f"catalogue: {catalog.source}" + (f" (sha256 {catalog.sha256})" if catalog.sha256 else ""))
    print("\n".join(report.lines()))
    _write_json(options, {"source": catalog.source, "sha256": catalog.sha256, **report.to_json()})
    return cli.EXIT_OK


def fetch_images(options: DataOptions) -> int:
    """Fetch a catalogue's SDSS cut-outs into --image_dir (resumable): 0 all fetched, 1 some failed."""
    from alexnet_jax.data.catalog import check_catalog as check
    from alexnet_jax.data.catalog import default_cache_dir
    from alexnet_jax.data.sdss import fetch_cutouts, requests_from_catalog

    catalog = _catalog(options)
    check(
        catalog, expected_rows=options.rows_expected, on_row_mismatch=options.on_row_mismatch, require_coordinates=True
    )
    image_dir = (
        Path(options.image_dir)
        if options.image_dir
        else (Path(options.cache_dir) if options.cache_dir else default_cache_dir()) / "sdss_cutouts"
    )
    requests = requests_from_catalog(catalog.table, **options.scale_kwargs())
    summary = fetch_cutouts(requests, image_dir, **options.sdss_kwargs())
    print("\n".join(summary.lines()))
    print(f"cut-outs in {image_dir}; failures listed in {image_dir / 'failures.json'}")
    return cli.EXIT_OK if summary.ok else cli.EXIT_FAILED


def build_tfds(options: DataOptions) -> int:
    """Write the TFDS version of --prepared into --data_dir."""
    if not options.prepared or not options.data_dir:
        raise CliError("build_tfds needs --prepared=DIR and --data_dir=DIR")
    from alexnet_jax.data.tfds_builder import build_tfds as build

    builder = build(options.prepared, options.data_dir, run_index=options.run_index)
    splits = {name: info.num_examples for name, info in builder.info.splits.items()}
    print(f"TFDS {builder.name}/{builder.builder_config.name} {builder.version} in {builder.data_dir}: {splits}")
    return cli.EXIT_OK


def info(options: DataOptions) -> int:
    """Print a prepared set's manifest; --verify checks every file's sha256 first."""
    if not options.prepared:
        raise CliError("info needs --prepared=DIR")
    from alexnet_jax.data.prepared import load_prepared, read_manifest

    manifest = read_manifest(options.prepared)
    if options.verify:
        load_prepared(options.prepared, verify=True)
    print(json.dumps(manifest, indent=1))
    if options.verify:
        print("sha256 of every file matches the manifest")
    return cli.EXIT_OK


COMMAND_FUNCTIONS: dict[str, Callable[[DataOptions], int]] = {
    "prepare": prepare,
    "verify_paper": verify_paper,
    "fetch_catalog": fetch_catalog,
    "check_catalog": check_catalog,
    "fetch_images": fetch_images,
    "build_tfds": build_tfds,
    "info": info,
}
COMMANDS = tuple(COMMAND_FUNCTIONS)
