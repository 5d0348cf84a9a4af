"""Galaxy data: labels, splits, the prepared format, and the ways to build a prepared set, with
the classes the data has (the paper's four, a folder per class, a mapping, votes, Galaxy10).

Light to import (NumPy, pandas): the catalogue, SDSS, folder and TFDS parts load on
first use, and TensorFlow, torch and astroquery only inside the functions that need them.
See docs/data.md and `python -m alexnet_jax.data --help`.
"""

from alexnet_jax.data.labels import CLASS_NAMES, NUM_CLASSES, PAPER_CLASS_TOTALS, ttype_to_class
from alexnet_jax.data.prepared import PreparedDataset, load_prepared, read_manifest, write_prepared
from alexnet_jax.data.splits import (
    PAPER_RUN_TEST_COUNTS,
    carve_validation,
    class_counts,
    declared_split,
    default_train_size,
    paper_split,
    stratified_split,
    verify_paper_counts,
)
from alexnet_jax.errors import LabelError, PreparedDataError, SplitError

_LAZY = {
    # catalogue
    "Catalog": "catalog",
    "CatalogError": "catalog",
    "load_catalog": "catalog",
    "fetch_catalog": "catalog",
    "load_or_fetch_catalog": "catalog",
    "check_catalog": "catalog",
    "normalize_catalog": "catalog",
    "read_catalog_file": "catalog",
    # SDSS cut-outs
    "CutoutRequest": "sdss",
    "cutout_scale": "sdss",
    "fetch_cutouts": "sdss",
    "requests_from_catalog": "sdss",
    "prepare_nair_abraham": "sdss",
    # your own folder
    "FolderError": "folder",
    "ingest_folder": "folder",
    "load_image": "folder",
    "prepare_folder": "folder",
    # any classes: a mapping of catalogue values, a folder per class, Galaxy Zoo votes, Galaxy10
    "ClassMap": "class_map",
    "load_class_map": "class_map",
    "parse_class_map": "class_map",
    "table_labels": "class_map",
    "prepare_image_folder": "image_folder",
    "scan_image_folder": "image_folder",
    "prepare_galaxy_zoo": "galaxy_zoo",
    "prepare_galaxy10": "galaxy10",
    # TFDS
    "build_tfds": "tfds_builder",
    # synthetic (another module; optional)
    "generate_synthetic": "synthetic",
}

__all__ = [
    "CLASS_NAMES",
    "NUM_CLASSES",
    "PAPER_CLASS_TOTALS",
    "PAPER_RUN_TEST_COUNTS",
    "LabelError",
    "ttype_to_class",
    "PreparedDataError",
    "PreparedDataset",
    "load_prepared",
    "read_manifest",
    "write_prepared",
    "SplitError",
    "carve_validation",
    "class_counts",
    "declared_split",
    "default_train_size",
    "paper_split",
    "stratified_split",
    "verify_paper_counts",
    *_LAZY,
]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module = importlib.import_module(f"alexnet_jax.data.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'alexnet_jax.data' has no attribute {name!r}")
