"""`prepare --dataset=NAME`: one importer call per data set, from the command's options.

Each importer lives in its own module (synthetic, sdss for Nair & Abraham, folder, image_folder,
galaxy10, galaxy_zoo) and writes a complete prepared set or nothing; this module reads the
options they need and prints what was written, dropped or left out.
"""

from __future__ import annotations

from alexnet_jax import cli
from alexnet_jax.data.options import DataOptions
from alexnet_jax.errors import CliError

DATASETS = ("synthetic", "nair_abraham", "folder", "image_folder", "galaxy10", "galaxy_zoo")


def prepare_dataset(options: DataOptions) -> int:
    """Write a prepared data set at --output from --dataset; print what was written."""
    if not options.output:
        raise CliError("prepare needs --output=DIR")
    if options.dataset not in DATASETS:
        raise CliError(f"--dataset={options.dataset}: use one of {', '.join(DATASETS)}")
    if options.dataset == "synthetic":
        manifest = _prepare_synthetic(options)
    elif options.dataset == "folder":
        manifest = _prepare_folder(options)
    elif options.dataset == "image_folder":
        manifest = _prepare_image_folder(options)
    elif options.dataset == "galaxy10":
        manifest = _prepare_galaxy10(options)
    elif options.dataset == "galaxy_zoo":
        manifest = _prepare_galaxy_zoo(options)
    else:
        from alexnet_jax.data.sdss import prepare_nair_abraham

        manifest, _ = prepare_nair_abraham(
            options.output,
            catalog=options.catalog,
            catalog_format=options.catalog_format,
            cache_dir=options.cache_dir,
            refresh_catalog=options.refresh_catalog,
            image_dir=options.image_dir,
            radius_column=options.radius_column,
            expected_rows=options.rows_expected,
            on_row_mismatch=options.on_row_mismatch,
            on_bad_image=options.on_bad_image,
            overwrite=options.overwrite,
            **options.scale_kwargs(),
            **options.sdss_kwargs(),
        )
    _print_manifest(options.output, manifest)
    return cli.EXIT_OK


def _prepare_folder(options: DataOptions) -> dict:
    from alexnet_jax.data.folder import prepare_folder

    if not options.image_dir or not options.catalog:
        raise CliError("--dataset=folder needs --image_dir and --catalog")
    manifest, result = prepare_folder(
        options.image_dir,
        options.catalog,
        options.output,
        id_column=options.id_column,
        pattern=options.image_glob,
        on_bad_image=options.on_bad_image,
        overwrite=options.overwrite,
        num_workers=options.num_workers,
        progress=options.progress,
        class_column=options.class_column,
        class_map=_class_map(options),
        unmapped=options.unmapped,
    )
    _print_labelling(result.labelling)
    for dropped in result.dropped:
        print(f"dropped row {dropped['row']} ({dropped['id']}, {dropped['file']}): {dropped['reason']}")
    if result.unused_files:
        print(f"{len(result.unused_files)} files in {options.image_dir} match no catalogue row (ignored)")
    return manifest


def _class_map(options: DataOptions):
    from alexnet_jax.data.class_map import load_class_map

    return load_class_map(options.class_map) if options.class_map else None


def _print_labelling(labelling: dict) -> None:
    if labelling.get("rows_in_no_class"):
        values = ", ".join(f"{v} ({n})" for v, n in labelling.get("unmapped_values", {}).items())
        print(f"dropped {labelling['rows_in_no_class']:,} rows in no class of --class_map: {values}")


def _prepare_image_folder(options: DataOptions) -> dict:
    from alexnet_jax.data.image_folder import prepare_image_folder

    if not options.image_dir:
        raise CliError(
            "--dataset=image_folder needs --image_dir=ROOT (ROOT/CLASS/*.jpg, or ROOT/train/CLASS/*.jpg ...)"
        )
    manifest, result = prepare_image_folder(
        options.image_dir,
        options.output,
        class_map=_class_map(options),
        unmapped=options.unmapped,
        on_bad_image=options.on_bad_image,
        overwrite=options.overwrite,
        num_workers=options.num_workers,
        progress=options.progress,
    )
    _print_labelling(manifest["labelling"])
    for dropped in result.dropped:
        print(f"dropped {dropped['file']}: {dropped['reason']}")
    return manifest


def _prepare_galaxy10(options: DataOptions) -> dict:
    from alexnet_jax.data.galaxy10 import prepare_galaxy10

    if not options.h5_file and not options.galaxy10:
        raise CliError("--dataset=galaxy10 needs --h5_file=PATH (a Galaxy10 .h5 file) or --galaxy10=sdss|decals")
    return prepare_galaxy10(
        options.output,
        h5_file=options.h5_file,
        variant=options.galaxy10,
        overwrite=options.overwrite,
        num_workers=options.num_workers,
        progress=options.progress,
        cache_dir=options.cache_dir,
        url=options.galaxy10_url,
        timeout=options.timeout,
        retries=options.retries,
        backoff=options.backoff,
    )


def _prepare_synthetic(options: DataOptions) -> dict:
    try:
        from alexnet_jax.data import synthetic
    except ImportError as error:
        raise RuntimeError(f"the synthetic generator is not available: {error}") from error
    from alexnet_jax.data.folder import staged_output
    from alexnet_jax.data.prepared import write_prepared

    with staged_output(options.output, overwrite=options.overwrite) as staging:
        images, labels, metadata = synthetic.generate_synthetic(
            num_examples=options.num_examples,
            seed=options.seed,
            num_workers=options.num_workers,
            progress=options.progress,
        )
        params = synthetic.generator_params()
        return write_prepared(
            staging,
            images,
            labels,
            metadata,
            name="synthetic",
            class_names=synthetic.CLASS_NAMES,
            allow_empty_classes=True,  # a small set in the catalogue's proportions may miss irr_misc
            source=f"alexnet_jax synthetic generator {synthetic.GENERATOR_VERSION}, seed {options.seed}",
            generator={
                "name": params.get("name", "alexnet_jax.synthetic"),
                "version": synthetic.GENERATOR_VERSION,
                "seed": options.seed,
                "num_examples": options.num_examples,
                "params": params,
            },
        )


def _prepare_galaxy_zoo(options: DataOptions) -> dict:
    """Galaxy Zoo vote table (downloaded, or --catalog) classed by a vote rule, with SDSS cut-outs."""
    from alexnet_jax.data.galaxy_zoo import prepare_galaxy_zoo

    manifest, _ = prepare_galaxy_zoo(
        options.output,
        release=options.gz_release,
        vote_rule=options.vote_rule,
        vote_classes=options.vote_classes,
        vote_threshold=options.vote_threshold,
        vote_missing=options.vote_missing,
        max_galaxies=options.gz_max_galaxies,
        catalog=options.catalog,
        catalog_format=options.catalog_format,
        table_url=options.gz_table_url,
        cache_dir=options.cache_dir,
        refresh_catalog=options.refresh_catalog,
        image_dir=options.image_dir,
        radius_column=options.radius_column,
        on_bad_image=options.on_bad_image,
        overwrite=options.overwrite,
        **options.scale_kwargs(),
        **options.sdss_kwargs(),
    )
    return manifest


def _print_manifest(output, manifest: dict) -> None:
    names = manifest["class_names"]  # the data set's own classes, in label order
    counts = ", ".join(f"{n} {c:,}" for n, c in zip(names, manifest["class_counts"], strict=True))
    print(f"wrote {manifest['num_examples']:,} examples to {output} ({counts})")
