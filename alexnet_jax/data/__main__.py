"""The data command line: `python -m alexnet_jax.data COMMAND --flags`.

Commands
  prepare        write a prepared data set (--dataset=synthetic|nair_abraham|folder|image_folder|galaxy10|galaxy_zoo,
                 --output=DIR)
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
  python -m alexnet_jax.data prepare --dataset=folder --image_dir=imgs --catalog=cat.csv \
      --class_column=TType --class_map='early=..0;late=1..9' --unmapped=drop --output=data/early_late
  python -m alexnet_jax.data prepare --dataset=image_folder --image_dir=galaxies --output=data/gz2
      (galaxies/CLASS/*.jpg, or galaxies/train/CLASS/*.jpg + galaxies/validation/CLASS/*.jpg)
  python -m alexnet_jax.data prepare --dataset=galaxy10 --galaxy10=decals --output=data/galaxy10_decals
  python -m alexnet_jax.data prepare --dataset=galaxy_zoo --gz_release=gz1 --output=data/gz1_clean
  python -m alexnet_jax.data prepare --dataset=galaxy_zoo --gz_release=gz2 --vote_threshold=0.9 --output=data/gz2
  python -m alexnet_jax.data prepare --dataset=galaxy_zoo --catalog=GalaxyZoo1_DR_table2.csv
      --vote_classes="elliptical=P_EL;spiral=P_CS" --vote_threshold=0.7 --output=data/gz1_raw_votes
  python -m alexnet_jax.data verify_paper --catalog=table2.tsv
Exit status (alexnet_jax.cli): 0 success, 1 verify_paper or fetch_images found a mismatch or a failure,
2 bad input (the message says what to fix).

This module parses the flags into `commands.DataOptions` and calls `commands.run`, where the
commands live.
"""

from __future__ import annotations

from absl import app, flags

from alexnet_jax import cli
from alexnet_jax.data.commands import COMMANDS, DATASETS, DataOptions
from alexnet_jax.data.commands import run as run_command

FLAGS = flags.FLAGS
DEFAULTS = DataOptions()


def define_flags() -> None:
    """The flags of every data command; defined only when the command runs."""
    flags.DEFINE_enum("dataset", DEFAULTS.dataset, DATASETS, "prepare: which data set.")
    flags.DEFINE_string("output", None, "prepare: the prepared data set directory to write.")
    flags.DEFINE_bool(
        "overwrite", False, "prepare: replace an existing data set at --output (only once the new one is complete)."
    )
    flags.DEFINE_integer("num_examples", DEFAULTS.num_examples, "synthetic: number of galaxies.")
    flags.DEFINE_integer("seed", DEFAULTS.seed, "synthetic: random seed.")
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
    flags.DEFINE_string(
        "class_map",
        None,
        "folder, image_folder: catalogue values (or class folder names) -> classes, in label order, e.g. "
        "'early=..0;late=1..9' or 'spiral=Sa,Sb,Sc;other=E,S0', or a .txt/.json file holding such a mapping.",
    )
    flags.DEFINE_string(
        "class_column", None, "folder: the catalogue column the classes come from (default: TType, else class)."
    )
    flags.DEFINE_enum(
        "unmapped", DEFAULTS.unmapped, ["fail", "drop"], "Rows in no class of --class_map: stop, or drop and count."
    )
    flags.DEFINE_string("image_glob", None, "folder: file pattern, e.g. '*.jpg' (default: common image extensions).")
    flags.DEFINE_enum(
        "on_bad_image",
        DEFAULTS.on_bad_image,
        ["fail", "skip"],
        "An unusable image: stop (fail) or drop its row and report it (skip).",
    )
    flags.DEFINE_integer(
        "expected_rows", DEFAULTS.expected_rows, "Rows the catalogue must have (Nair & Abraham: 14,034); 0 = any."
    )
    flags.DEFINE_enum(
        "on_row_mismatch",
        DEFAULTS.on_row_mismatch,
        ["error", "warn"],
        "A catalogue with another row count: error or warn.",
    )
    flags.DEFINE_string("ttype_column", None, "Catalogue column with the T-types (default: TType and aliases).")
    flags.DEFINE_string(
        "radius_column", None, "Catalogue column with a Petrosian radius in arcsec for the cut-out scale."
    )
    flags.DEFINE_string("sdss_url", None, "ImgCutout getjpeg endpoint (default: SDSS DR18 SkyServer).")
    flags.DEFINE_integer("cutout_size", DEFAULTS.cutout_size, "Cut-out width and height in pixels.")
    flags.DEFINE_float("fov_factor", DEFAULTS.fov_factor, "Cut-out field of view in units of the galaxy's R90 radius.")
    flags.DEFINE_float("min_scale", DEFAULTS.min_scale, "Smallest cut-out pixel scale, arcsec/pixel.")
    flags.DEFINE_float("max_scale", DEFAULTS.max_scale, "Largest cut-out pixel scale, arcsec/pixel.")
    flags.DEFINE_float("default_scale", DEFAULTS.default_scale, "Pixel scale when the radius is unknown, arcsec/pixel.")
    flags.DEFINE_float("fixed_scale", None, "One pixel scale for every galaxy (overrides the radius rule).")
    flags.DEFINE_integer("fetch_workers", DEFAULTS.fetch_workers, "Concurrent cut-out downloads.")
    flags.DEFINE_float("rate", DEFAULTS.rate, "Cut-out requests per second at most (0 = unlimited).")
    flags.DEFINE_integer("retries", DEFAULTS.retries, "Retries per cut-out after the first attempt.")
    flags.DEFINE_float("backoff", DEFAULTS.backoff, "First retry delay in seconds; doubles with each retry.")
    flags.DEFINE_float("timeout", DEFAULTS.timeout, "Per-request time-out in seconds.")
    flags.DEFINE_bool("progress", DEFAULTS.progress, "Show progress bars.")
    flags.DEFINE_string("prepared", None, "build_tfds/info: a prepared data set directory.")
    flags.DEFINE_string("data_dir", None, "build_tfds: the TFDS data_dir to write into.")
    flags.DEFINE_integer("run_index", None, "build_tfds: build the paper_run<r> config (train/test of paper_split(r)).")
    flags.DEFINE_bool("verify", False, "info: check every file's sha256 against the manifest.")
    flags.DEFINE_string("json_out", None, "verify_paper/check_catalog: also write the report as JSON here.")
    flags.DEFINE_enum(
        "galaxy10",
        None,
        ["sdss", "decals"],
        "galaxy10: which astroNN file; without --h5_file it is downloaded (resumable, sha256 checked) into "
        "<cache_dir>/galaxy10. With --h5_file it must match the file's images.",
    )
    flags.DEFINE_string("h5_file", None, "galaxy10: a local Galaxy10.h5 or Galaxy10_DECals.h5 (variant detected).")
    flags.DEFINE_string("galaxy10_url", None, "galaxy10: download from this mirror instead (same file, same sha256).")
    flags.DEFINE_enum(
        "gz_release",
        DEFAULTS.gz_release,
        ["gz1", "gz2"],
        "galaxy_zoo: gz1 (Lintott+ 2011, VizieR J/MNRAS/410/166) or gz2 (Hart+ 2016 gz2_hart16); "
        "downloaded into <cache_dir>/galaxy_zoo unless --catalog names a local copy.",
    )
    flags.DEFINE_string(
        "vote_rule",
        None,
        "galaxy_zoo: gz1_clean (default for gz1), gz1_superclean, gz2_smooth_features (default for gz2).",
    )
    flags.DEFINE_string(
        "vote_classes", None, "galaxy_zoo: your own classes instead of a rule, 'name=column;name=column'."
    )
    flags.DEFINE_float(
        "vote_threshold", None, "galaxy_zoo: fraction of the votes a class needs, above 0.5 (default: the rule's, 0.8)."
    )
    flags.DEFINE_enum(
        "vote_missing",
        DEFAULTS.vote_missing,
        ["error", "drop"],
        "galaxy_zoo: rows without the rule's vote fractions: stop (error) or drop and count them (drop).",
    )
    flags.DEFINE_integer(
        "gz_max_galaxies", DEFAULTS.gz_max_galaxies, "galaxy_zoo: keep the first N classed galaxies (0 = all)."
    )
    flags.DEFINE_string(
        "gz_table_url",
        None,
        "galaxy_zoo: VizieR asu-tsv endpoint (gz1) or the table's URL (gz2) instead of the default.",
    )


def main(argv: list[str]) -> int:
    cli.quiet_library_logs()
    if len(argv) != 2 or argv[1] not in COMMANDS:
        return cli.report_error(
            f"give one command: {', '.join(COMMANDS)} (got {' '.join(argv[1:]) or 'none'}); see --help",
            cli.EXIT_BAD_INPUT,
        )
    return run_command(argv[1], DataOptions.from_flag_values(FLAGS.flag_values_dict()))


def run() -> None:
    """`python -m alexnet_jax.data` and the `alexnet-jax-data` script."""
    define_flags()
    app.run(main)


if __name__ == "__main__":
    run()
