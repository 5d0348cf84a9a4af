"""The Nair & Abraham (2010) catalogue: fetch it from VizieR or read a local copy, normalise, check.

VizieR `J/ApJS/186/427`, table `table2`: 14,034 SDSS DR4 galaxies with visual T-types.
The paper's labels come from its `TType` column, and the original paired images with
catalogue rows by position, so row order matters: every reader here keeps file order.

`load_catalog` returns a `Catalog`: the table with the original columns plus canonical
ones in front, `id`, `ra`, `dec` (degrees, J2000), `ttype`, `petro_radius` (arcsec, NaN
where unknown), and `column_map` saying which source column fed each. astroquery and
astropy are imported only when a FITS/ECSV/VOTable file is read or VizieR is queried.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from alexnet_jax.data.labels import CLASS_NAMES, PAPER_CLASS_TOTALS, PAPER_NUM_EXAMPLES, ttype_to_class
from alexnet_jax.errors import CatalogError
from alexnet_jax.toolbox import atomic_path, sha256_file, write_text_atomic

VIZIER_CATALOG = "J/ApJS/186/427"
VIZIER_TABLE = "J/ApJS/186/427/table2"
CACHE_ENV = "ALEXNET_JAX_CACHE"
CACHED_NAME = "nair_abraham_2010_table2.ecsv"

# Canonical column -> accepted source names, in order of preference (matched case-insensitively).
ALIASES: dict[str, tuple[str, ...]] = {
    "ttype": ("TType", "T-Type", "T_Type", "ttype", "T"),
    "ra": ("RAJ2000", "_RAJ2000", "RAdeg", "RA_ICRS", "_RA", "_RA.icrs", "ra", "RA"),
    "dec": ("DEJ2000", "_DEJ2000", "DEdeg", "DE_ICRS", "_DE", "_DE.icrs", "dec", "DE", "Decl"),
    "id": ("SDSS", "JID", "iauname", "Name", "objid", "dr7objid", "id"),
}
# Size columns for the cut-out scale, with the factor that turns each into an R90-like
# outer radius (R90/R50 is about 2.5 for a typical galaxy: ~2.3 discs, ~3 spheroids).
RADIUS_ALIASES: tuple[tuple[str, float], ...] = (
    ("R90r", 1.0),
    ("petroR90_r", 1.0),
    ("Rp90", 1.0),
    ("R90", 1.0),
    ("Rpr", 1.0),
    ("petroRad_r", 1.0),
    ("Rp", 1.0),
    ("R50r", 2.5),
    ("petroR50_r", 2.5),
    ("Rp50", 2.5),
    ("R50", 2.5),
)
ARCSEC_UNITS = {"arcsec", "arcseconds", "arcsecond", '"', "asec"}


@dataclasses.dataclass
class Catalog:
    table: pd.DataFrame  # canonical columns first, then every source column, file order
    source: str  # path or VizieR id
    sha256: str | None
    column_map: dict[str, str | None]  # canonical -> source column
    units: dict[str, str]  # source column -> unit, where the file says

    def __len__(self) -> int:
        return len(self.table)

    def labels(self) -> np.ndarray:
        """Class indices by the paper's TType rule; unknown TTypes raise, naming this file."""
        return ttype_to_class(self.table["ttype"].to_numpy(), source=self.source)


# ----------------------------------------------------------------------------- reading


def _read_vizier_tsv(path: Path, text: str) -> tuple[pd.DataFrame, dict[str, str]]:
    """VizieR's tab-separated output: '#' comments, header, unit line, dash line, rows.

    Only the first table of a multi-table file is read.
    """
    lines = text.splitlines()
    i = 0
    while i < len(lines) and (not lines[i].strip() or lines[i].startswith("#")):
        i += 1
    if i == len(lines):
        raise CatalogError(f"{path}: no table found (only comments or blank lines)")
    header = lines[i].split("\t")
    i += 1
    units: dict[str, str] = {}
    dash = re.compile(r"^-*$")
    if i + 1 < len(lines) and all(dash.match(f.strip()) for f in lines[i + 1].split("\t")):
        units = {name: u.strip() for name, u in zip(header, lines[i].split("\t"), strict=False) if u.strip()}
        i += 2
    elif i < len(lines) and all(dash.match(f.strip()) for f in lines[i].split("\t")):
        i += 1
    body = []
    while i < len(lines) and lines[i].strip() and not lines[i].startswith("#"):
        body.append(lines[i])
        i += 1
    frame = pd.read_csv(
        io.StringIO("\n".join(body)),
        sep="\t",
        header=None,
        names=header,
        dtype=str,
        keep_default_na=False,
        skipinitialspace=False,
    )
    return frame, units


def _read_astropy(path: Path, fmt: str | None) -> tuple[pd.DataFrame, dict[str, str]]:
    try:
        from astropy.table import Table
    except ImportError as error:  # pragma: no cover - astropy is in the [catalog] extra
        raise CatalogError(f"reading {path} needs astropy: pip install 'alexnet_jax[catalog]'") from error
    table = Table.read(path, format=fmt) if fmt else Table.read(path)
    return _astropy_to_frame(table)


def _astropy_to_frame(table) -> tuple[pd.DataFrame, dict[str, str]]:
    units = {name: str(table[name].unit) for name in table.colnames if table[name].unit is not None}
    columns = {}
    for name in table.colnames:
        column = table[name]
        if column.ndim > 1:
            continue  # vector cells have no place in a flat catalogue
        data = np.asarray(np.ma.getdata(column))
        if data.dtype.kind == "S":
            data = np.char.decode(data, "utf-8")
        mask = np.asarray(getattr(column, "mask", False))
        if mask.any():
            if data.dtype.kind in "iuf":
                data = np.where(mask, np.nan, data.astype(float))
            else:
                data = np.where(mask, None, data.astype(object))
        elif data.dtype.kind == "U":
            data = data.astype(object)
        columns[name] = data
    return pd.DataFrame(columns), units


def read_catalog_file(path: str | os.PathLike, fmt: str | None = None) -> tuple[pd.DataFrame, dict[str, str], str]:
    """Read a local catalogue copy; return (table in file order, units, format used).

    Formats: 'vizier_tsv' (VizieR's '#'-commented TSV with unit and dash lines), 'tsv'
    (a plain tab-separated table, as the original read with pandas.read_table), 'csv',
    'fits', 'ecsv', 'votable'. Without `fmt` the extension and content decide.
    """
    path = Path(path)
    if not path.is_file():
        raise CatalogError(f"catalogue file {path} does not exist")
    name = path.name.lower()
    if fmt is None:
        if name.endswith((".fits", ".fit", ".fits.gz", ".fit.gz", ".fts")):
            fmt = "fits"
        elif name.endswith(".ecsv"):
            fmt = "ecsv"
        elif name.endswith((".vot", ".xml", ".votable")):
            fmt = "votable"
        else:
            with path.open("r", errors="replace") as handle:
                head = handle.read(1 << 16)
            lines = [line for line in head.splitlines() if line.strip()]
            if head.startswith("# %ECSV"):
                fmt = "ecsv"
            elif lines and lines[0].startswith("#") or any(re.fullmatch(r"[-\t ]+", line) for line in lines[:50]):
                fmt = "vizier_tsv"
            elif name.endswith(".csv") or (lines and lines[0].count(",") > lines[0].count("\t")):
                fmt = "csv"
            else:
                fmt = "tsv"
    try:
        if fmt == "vizier_tsv":
            frame, units = _read_vizier_tsv(path, path.read_text(errors="replace"))
        elif fmt in ("tsv", "csv"):
            frame = pd.read_csv(path, sep="\t" if fmt == "tsv" else ",", dtype=str, keep_default_na=False)
            frame.columns = [str(c).strip() for c in frame.columns]
            units = {}
        elif fmt in ("fits", "ecsv", "votable"):
            frame, units = _read_astropy(path, {"fits": "fits", "ecsv": "ascii.ecsv", "votable": "votable"}[fmt])
        else:
            raise CatalogError(f"unknown catalogue format {fmt!r}; use vizier_tsv, tsv, csv, fits, ecsv or votable")
    except CatalogError:
        raise
    except Exception as error:  # noqa: BLE001 - name the file whatever the parser says
        raise CatalogError(f"could not read catalogue {path} as {fmt}: {error}") from error
    return frame, units, fmt


# ----------------------------------------------------------------------------- normalising


def find_column(columns, candidates) -> str | None:
    lower = {str(c).lower(): c for c in columns}
    for candidate in candidates:
        if candidate in columns:
            return candidate
        if candidate.lower() in lower:
            return lower[candidate.lower()]
    return None


def is_text_column(series: pd.Series) -> bool:
    return series.dtype == object or pd.api.types.is_string_dtype(series.dtype)


def parse_sexagesimal(values: pd.Series, hours: bool) -> np.ndarray:
    """'hh mm ss.s' / 'dd:mm:ss' strings (or numbers) to decimal degrees."""
    out = np.full(len(values), np.nan)
    for i, value in enumerate(values):
        if value is None or (isinstance(value, float) and np.isnan(value)):
            continue
        if isinstance(value, (int, float, np.integer, np.floating)):
            out[i] = float(value)
            continue
        text = str(value).strip()
        if not text:
            continue
        parts = re.split(r"[\s:hdms°'\"]+", text.strip("hdms°'\" "))
        try:
            numbers = [float(p) for p in parts if p]
        except ValueError:
            raise CatalogError(f"cannot read coordinate {text!r} at row {i}") from None
        if len(numbers) == 1:
            out[i] = numbers[0]
            continue
        sign = -1.0 if text.startswith("-") else 1.0
        degrees = abs(numbers[0]) + numbers[1] / 60 + (numbers[2] if len(numbers) > 2 else 0.0) / 3600
        out[i] = sign * degrees * (15.0 if hours else 1.0)
    return out


def normalize_catalog(
    frame: pd.DataFrame,
    units: dict[str, str] | None = None,
    *,
    source: str = "catalogue",
    sha256: str | None = None,
    ttype_column: str | None = None,
    id_column: str | None = None,
    radius_column: str | None = None,
    require_coordinates: bool = False,
) -> Catalog:
    """Add canonical columns (id, ra, dec, ttype, petro_radius) to a raw catalogue table.

    Explicit `*_column` arguments override the alias search. A missing TType column (or
    missing coordinates with `require_coordinates`) is an error listing the columns found.
    """
    units = dict(units or {})
    columns = list(frame.columns)
    found = ", ".join(map(str, columns))
    column_map: dict[str, str | None] = {}

    def pick(key: str, explicit: str | None, required: bool) -> str | None:
        if explicit is not None:
            if explicit not in columns:
                raise CatalogError(f"{source}: column {explicit!r} (given for {key}) not found; columns: {found}")
            return explicit
        name = find_column(columns, ALIASES[key])
        if name is None and required:
            raise CatalogError(
                f"{source}: no {key} column; looked for {', '.join(ALIASES[key])}. Columns found: {found}. "
                f"Name the column explicitly (e.g. --{key}_column)."
            )
        return name

    column_map["ttype"] = pick("ttype", ttype_column, True)
    column_map["id"] = pick("id", id_column, False)
    column_map["ra"] = pick("ra", None, require_coordinates)
    column_map["dec"] = pick("dec", None, require_coordinates)
    if (column_map["ra"] is None) != (column_map["dec"] is None):
        raise CatalogError(f"{source}: found only one of RA/Dec ({column_map}); columns: {found}")

    out = pd.DataFrame(index=frame.index)
    out["id"] = (
        frame[column_map["id"]].astype(str).str.strip() if column_map["id"] else [f"{i:06d}" for i in range(len(frame))]
    )
    for key, hours in (("ra", True), ("dec", False)):
        name = column_map[key]
        if name is None:
            out[key] = np.nan
            continue
        values = frame[name]
        unit = units.get(name, "").lower()
        is_text = is_text_column(values)
        if is_text or unit in ("h:m:s", "d:m:s", "hms", "dms"):
            out[key] = parse_sexagesimal(values, hours=hours and (is_text or unit in ("h:m:s", "hms")))
        else:
            out[key] = values.astype(float).to_numpy()
    out["ttype"] = frame[column_map["ttype"]].to_numpy()

    radius, factor = None, 1.0
    if radius_column is not None:
        if radius_column not in columns:
            raise CatalogError(f"{source}: radius column {radius_column!r} not found; columns: {found}")
        radius = radius_column
    else:
        for candidate, candidate_factor in RADIUS_ALIASES:
            name = find_column(columns, (candidate,))
            if name is None:
                continue
            unit = units.get(name, "").strip().lower()
            if unit and unit not in ARCSEC_UNITS:
                warnings.warn(
                    f"{source}: column {name!r} has unit {unit!r}, not arcsec; not used for the cut-out scale",
                    stacklevel=2,
                )
                continue
            radius, factor = name, candidate_factor
            break
    column_map["petro_radius"] = radius
    if radius is None:
        out["petro_radius"] = np.nan
    else:
        values = pd.to_numeric(frame[radius], errors="coerce").to_numpy(dtype=float) * factor
        out["petro_radius"] = np.where(values > 0, values, np.nan)

    rest = frame[[c for c in columns if c not in out.columns]]
    table = pd.concat([out, rest], axis=1).reset_index(drop=True)
    return Catalog(table=table, source=source, sha256=sha256, column_map=column_map, units=units)


def load_catalog(path: str | os.PathLike, fmt: str | None = None, **normalize_kwargs) -> Catalog:
    """Read and normalise a local catalogue file (any format `read_catalog_file` knows)."""
    path = Path(path)
    frame, units, _ = read_catalog_file(path, fmt)
    return normalize_catalog(frame, units, source=str(path), sha256=sha256_file(path), **normalize_kwargs)


# ----------------------------------------------------------------------------- VizieR


def default_cache_dir() -> Path:
    """$ALEXNET_JAX_CACHE, else $XDG_CACHE_HOME/alexnet_jax, else ~/.cache/alexnet_jax."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "alexnet_jax"


def fetch_catalog(
    cache_dir: str | os.PathLike | None = None,
    *,
    refresh: bool = False,
    vizier=None,
    timeout: float = 300.0,
) -> Path:
    """Download VizieR J/ApJS/186/427/table2 (all rows, all columns) once; return the cached path.

    The table is stored as ECSV (units and types kept) with its sha256 in a `.sha256`
    file beside it; a later call verifies the hash and refuses a changed file. `vizier`
    is an object with `get_catalogs` (tests pass a stand-in); by default
    `astroquery.vizier.Vizier(columns=['**'], row_limit=-1)`.
    """
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    path = cache_dir / CACHED_NAME
    digest_path = path.with_name(path.name + ".sha256")
    if path.exists() and not refresh:
        if not digest_path.exists():
            raise CatalogError(f"{path} has no {digest_path.name}; delete it or fetch again with refresh")
        expected = digest_path.read_text().split()[0]
        found = sha256_file(path)
        if found != expected:
            raise CatalogError(
                f"cached catalogue {path} changed since download (sha256 {found}, recorded {expected}). "
                "Delete it, or fetch again with --refresh_catalog."
            )
        return path
    if vizier is None:
        try:
            from astroquery.vizier import Vizier
        except ImportError as error:
            raise CatalogError(
                "fetching the catalogue needs astroquery: pip install 'alexnet_jax[catalog]', "
                "or pass a local copy with --catalog"
            ) from error
        vizier = Vizier(columns=["**"], row_limit=-1, timeout=timeout)
    try:
        tables = vizier.get_catalogs(VIZIER_TABLE)
    except Exception as error:  # noqa: BLE001
        raise CatalogError(f"VizieR query for {VIZIER_TABLE} failed: {error}") from error
    keys = list(tables.keys()) if hasattr(tables, "keys") else []
    chosen = next((k for k in keys if str(k).endswith("table2")), keys[0] if keys else None)
    if chosen is None:
        raise CatalogError(f"VizieR returned no table for {VIZIER_TABLE}")
    table = tables[chosen]
    table.meta["alexnet_jax_source"] = f"VizieR {chosen}"
    table.meta["alexnet_jax_fetched"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    cache_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        table.write(tmp, format="ascii.ecsv", overwrite=True)
        digest = sha256_file(tmp)
    write_text_atomic(digest_path, f"{digest}  {path.name}\n")
    return path


def load_or_fetch_catalog(
    catalog: str | os.PathLike | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    refresh: bool = False,
    fmt: str | None = None,
    vizier=None,
    **normalize_kwargs,
) -> Catalog:
    """A local file when `catalog` is given, else the cached (or freshly fetched) VizieR table."""
    if catalog:
        return load_catalog(catalog, fmt, **normalize_kwargs)
    path = fetch_catalog(cache_dir, refresh=refresh, vizier=vizier)
    loaded = load_catalog(path, "ecsv", **normalize_kwargs)
    loaded.source = f"VizieR {VIZIER_TABLE} (cached at {path})"
    return loaded


# ----------------------------------------------------------------------------- checks


@dataclasses.dataclass
class CatalogReport:
    num_rows: int
    expected_rows: int | None
    class_counts: list[int]
    paper_class_counts: list[int]
    rows_match: bool
    counts_match: bool
    column_map: dict[str, str | None]

    def lines(self) -> list[str]:
        out = [f"rows: {self.num_rows}" + (f" (expected {self.expected_rows})" if self.expected_rows else "")]
        out.append("columns used: " + ", ".join(f"{k}={v}" for k, v in self.column_map.items()))
        out.append(f"{'class':<12}{'catalogue':>10}{'paper':>8}")
        for name, found, paper in zip(CLASS_NAMES, self.class_counts, self.paper_class_counts, strict=True):
            out.append(f"{name:<12}{found:>10,}{paper:>8,}{'' if found == paper else '  <- differs'}")
        out.append("class totals " + ("match the paper" if self.counts_match else "DIFFER from the paper"))
        return out

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def check_catalog(
    catalog: Catalog,
    *,
    expected_rows: int | None = PAPER_NUM_EXAMPLES,
    on_row_mismatch: str = "error",
    require_coordinates: bool = False,
) -> CatalogReport:
    """Check row count, required columns and labels; compare class totals with the paper.

    `on_row_mismatch`: 'error' (default) or 'warn' when the row count is not `expected_rows`.
    Unknown TTypes always raise (from `ttype_to_class`, naming the file and rows).
    """
    if on_row_mismatch not in ("error", "warn"):
        raise ValueError(f"on_row_mismatch must be 'error' or 'warn', got {on_row_mismatch!r}")
    n = len(catalog)
    rows_match = expected_rows is None or n == expected_rows
    if not rows_match:
        message = (
            f"{catalog.source}: {n} rows, expected {expected_rows} (Nair & Abraham 2010 table2). "
            "A different row count shifts the image pairing and the paper's splits; "
            "pass --expected_rows=N (or --on_row_mismatch=warn) if this is intended."
        )
        if on_row_mismatch == "error":
            raise CatalogError(message)
        warnings.warn(message, stacklevel=2)
    if require_coordinates:
        bad = np.flatnonzero(
            ~np.isfinite(catalog.table["ra"].to_numpy(float)) | ~np.isfinite(catalog.table["dec"].to_numpy(float))
        )
        if catalog.column_map.get("ra") is None:
            raise CatalogError(f"{catalog.source}: no RA/Dec columns; columns: {', '.join(catalog.table.columns)}")
        if len(bad):
            raise CatalogError(f"{catalog.source}: missing RA/Dec at rows {', '.join(map(str, bad[:10]))}")
    counts = np.bincount(catalog.labels(), minlength=len(CLASS_NAMES)).tolist()
    return CatalogReport(
        num_rows=n,
        expected_rows=expected_rows,
        class_counts=counts,
        paper_class_counts=list(PAPER_CLASS_TOTALS),
        rows_match=rows_match,
        counts_match=counts == list(PAPER_CLASS_TOTALS),
        column_map=dict(catalog.column_map),
    )


def catalog_summary_json(catalog: Catalog) -> str:
    return json.dumps(
        {"source": catalog.source, "sha256": catalog.sha256, "rows": len(catalog), "column_map": catalog.column_map},
        indent=1,
    )
