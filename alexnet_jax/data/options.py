"""`DataOptions`: every flag of `python -m alexnet_jax.data`, read once into one frozen record.

The commands (data.commands) and the importers behind `prepare` (data.importers) take it; tests
and scripts build one with the fields they need (`DataOptions(dataset="image_folder", ...)`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from alexnet_jax import paper
from alexnet_jax.data import sdss  # stdlib + numpy only: the cut-out rule's defaults


@dataclasses.dataclass(frozen=True)
class DataOptions:
    """Every data command's options, one field per flag of the same name (defaults included)."""

    dataset: str = "synthetic"  # prepare: one of DATASETS
    output: str | None = None
    overwrite: bool = False
    num_examples: int = paper.NUM_EXAMPLES
    seed: int = 0
    num_workers: int | None = None
    catalog: str | None = None
    catalog_format: str | None = None
    cache_dir: str | None = None
    refresh_catalog: bool = False
    image_dir: str | None = None
    id_column: str | None = None
    image_glob: str | None = None
    on_bad_image: str = "fail"
    expected_rows: int = paper.NUM_EXAMPLES  # 0: any
    on_row_mismatch: str = "error"
    ttype_column: str | None = None
    radius_column: str | None = None
    sdss_url: str | None = None
    cutout_size: int = sdss.DEFAULT_WIDTH
    fov_factor: float = sdss.DEFAULT_FOV_FACTOR
    min_scale: float = sdss.MIN_SCALE
    max_scale: float = sdss.MAX_SCALE
    default_scale: float = sdss.SDSS_PIXEL_SCALE
    fixed_scale: float | None = None
    fetch_workers: int = 8
    rate: float = 5.0
    retries: int = 5
    backoff: float = 1.0
    timeout: float = 30.0
    progress: bool = True
    prepared: str | None = None
    data_dir: str | None = None
    run_index: int | None = None
    verify: bool = False
    json_out: str | None = None
    class_map: str | None = None  # folder, image_folder: values (or folder names) -> classes
    class_column: str | None = None  # folder: the catalogue column the classes come from
    unmapped: str = "fail"  # rows in no class of --class_map: fail or drop
    galaxy10: str | None = None  # galaxy10: sdss | decals (download it); None: detect from --h5_file
    h5_file: str | None = None  # galaxy10: a local Galaxy10 .h5 file
    galaxy10_url: str | None = None  # galaxy10: a mirror of the published file (same sha256)
    gz_release: str = "gz1"  # galaxy_zoo: gz1 (Lintott+ 2011, VizieR) | gz2 (Hart+ 2016)
    vote_rule: str | None = None  # galaxy_zoo: a preset of vote_rules.RULES (default: the release's)
    vote_classes: str | None = None  # galaxy_zoo: the user's classes, "name=column;name=column"
    vote_threshold: float | None = None  # galaxy_zoo: a class needs this fraction of the votes (rule's: 0.8)
    vote_missing: str = "error"  # galaxy_zoo: rows without the rule's fractions: error | drop
    gz_max_galaxies: int = 0  # galaxy_zoo: keep the first N classed galaxies (0: all)
    gz_table_url: str | None = None  # galaxy_zoo: VizieR asu-tsv server (gz1) or table file URL (gz2)

    @classmethod
    def from_flag_values(cls, values: Mapping[str, Any]) -> DataOptions:
        """The options from parsed flag values keyed by field name (other keys are ignored)."""
        return cls(**{field.name: values[field.name] for field in dataclasses.fields(cls)})

    @property
    def rows_expected(self) -> int | None:
        return self.expected_rows or None

    def sdss_kwargs(self) -> dict:
        return dict(
            base_url=self.sdss_url or sdss.DEFAULT_SDSS_URL,
            workers=self.fetch_workers,
            rate=self.rate,
            retries=self.retries,
            backoff=self.backoff,
            timeout=self.timeout,
            progress=self.progress,
        )

    def scale_kwargs(self) -> dict:
        return dict(
            width=self.cutout_size,
            fov_factor=self.fov_factor,
            min_scale=self.min_scale,
            max_scale=self.max_scale,
            default_scale=self.default_scale,
            fixed_scale=self.fixed_scale,
        )
