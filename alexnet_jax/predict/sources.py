"""What `predict` and `embed` read: one interface over four kinds of input.

Every source numbers its rows 0..N-1 in input order (a folder: file names sorted; a prepared
set: its order; a catalogue: its rows; a file list: its non-blank lines) and gives

    rows(start, stop)  -> pyarrow Table: row (int64), id (str), ra, dec (float64, NaN where
                          unknown) [, true_class (str) for a labelled prepared set]
    read(start, stop)  -> (images (n, 256, 256, 3) uint8, statuses: "ok" or why the row has no image)
    prefetch(start, stop)  fetches what the range needs onto disk (cut-outs); a no-op elsewhere

Only the row table lives in memory (ids and coordinates, ~40 bytes a row); images are read a
batch at a time (a prepared set's images.npy by file offset, never loaded or mapped whole), so
memory stays bounded at any catalogue size. One bad image never stops a job: its row gets a status
(unreadable image, missing file, cut-out failed) and zeros, and the writer gives it NaN numbers.
A catalogue's cut-outs go through `alexnet_jax.data.sdss` into `cutout_dir` (cached and
resumable: a rerun fetches only what is missing), one sub-folder per 10,000 rows so no index
file grows with the catalogue and SLURM array tasks rarely share one.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
from pathlib import Path

import numpy as np

from alexnet_jax.errors import BadImageError, PredictError

IMAGE_SIZE = 256
KINDS = ("folder", "prepared", "catalogue", "files")
CATALOGUE_SUFFIXES = (".csv", ".parquet", ".pq")
LIST_SUFFIXES = (".txt", ".lst")
BAD_COORDINATES = "bad coordinates"
CUTOUT_BLOCK = 10_000  # rows per cut-out sub-folder


@dataclasses.dataclass(frozen=True)
class CutoutOptions:
    """How a catalogue's cut-outs are fetched (see alexnet_jax.data.sdss)."""

    directory: Path
    base_url: str
    scale: float  # arcsec/pixel, the same for every galaxy
    workers: int = 8
    rate: float = 5.0
    retries: int = 5
    timeout: float = 30.0


class Source:
    """The row table and the image reader shared by every kind; subclasses fill in `_read_one`."""

    kind = ""

    def __init__(self, path: Path, table, class_names: list[str] | None = None, workers: int | None = None):
        self.path = path
        self.table = table  # pyarrow Table: row, id, ra, dec [, true_class]
        self.class_names = class_names  # a labelled set's classes, in label order; None when unlabelled
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 1))

    @property
    def num_rows(self) -> int:
        return self.table.num_rows

    def describe(self) -> dict:
        """What the output's metadata and the resume fingerprint record of the input."""
        return {"kind": self.kind, "path": str(self.path), "num_rows": self.num_rows}

    def rows(self, start: int, stop: int):
        return self.table.slice(start, stop - start)

    def prefetch(self, start: int, stop: int) -> None:  # noqa: B027 - most sources have nothing to fetch
        """Bring what rows [start, stop) need onto disk before they are read."""

    def read(self, start: int, stop: int) -> tuple[np.ndarray, list[str]]:
        images = np.zeros((stop - start, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
        statuses = ["ok"] * (stop - start)

        def one(i: int) -> None:
            statuses[i] = self._read_one(start + i, images[i])

        list(self._pool.map(one, range(stop - start)))  # PIL releases the GIL while it decodes
        return images, statuses

    def _read_one(self, row: int, out: np.ndarray) -> str:
        raise NotImplementedError

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def load_file(path: Path, out: np.ndarray) -> str:
    """Decode one image file into `out`; its status ("ok" or the reason it cannot be read)."""
    from alexnet_jax.data.folder import load_image

    if not path.is_file():
        return "missing file"
    try:
        out[...] = load_image(path, IMAGE_SIZE)
    except BadImageError as error:
        return f"unreadable image: {error}"
    except OSError as error:
        return f"unreadable image: {error.strerror or error}"
    except Exception as error:  # noqa: BLE001 - PIL's others (a decompression bomb, ...): one row, not the job
        return f"unreadable image: {type(error).__name__}: {' '.join(str(error).split())}"
    return "ok"


def _table(ids, ra=None, dec=None, true_class=None):
    import pyarrow as pa

    n = len(ids)
    columns = {
        "row": pa.array(np.arange(n, dtype=np.int64)),
        "id": pa.array(ids, pa.string()) if not isinstance(ids, pa.ChunkedArray | pa.Array) else ids.cast(pa.string()),
        "ra": pa.array(np.full(n, np.nan) if ra is None else np.asarray(ra, np.float64)),
        "dec": pa.array(np.full(n, np.nan) if dec is None else np.asarray(dec, np.float64)),
    }
    if true_class is not None:
        columns["true_class"] = pa.array(true_class, pa.string())
    return pa.table(columns)


class FileSource(Source):
    """Image files: a folder's (sorted by name) or a list file's (in its order)."""

    def __init__(self, path: Path, files: list[Path], ids: list[str], kind: str):
        self.kind = kind
        self.files = files
        super().__init__(path, _table(ids))

    def _read_one(self, row: int, out: np.ndarray) -> str:
        return load_file(self.files[row], out)


def folder_source(path: Path) -> FileSource:
    from alexnet_jax.data.folder import IMAGE_EXTENSIONS

    files = sorted((p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS),
                   key=lambda p: p.name)  # fmt: skip
    if not files:
        raise PredictError(f"--images={path}: no image files ({', '.join(IMAGE_EXTENSIONS)}) in this folder")
    return FileSource(path, files, [p.name for p in files], "folder")


def list_source(path: Path) -> FileSource:
    """One path a line; relative paths are relative to the list file's folder; blank lines are skipped."""
    try:
        lines = [line.strip() for line in path.read_text().splitlines()]
    except (OSError, UnicodeDecodeError) as error:
        raise PredictError(f"--images={path}: cannot read this file list ({error})") from None
    entries = [line for line in lines if line]
    if not entries:
        raise PredictError(f"--images={path}: the file list names no images; write one image path per line")
    files = [Path(e) if Path(e).is_absolute() else path.parent / e for e in entries]
    return FileSource(path, files, entries, "files")


class PreparedSource(Source):
    """A prepared data set: ids, coordinates and labels from its metadata; images.npy read a batch at
    a time by offset (not memory-mapped: a mapping's touched pages would count as the process's
    memory, growing with the file)."""

    kind = "prepared"

    def __init__(self, path: Path):
        from alexnet_jax.data import prepared

        try:
            data = prepared.load_prepared(path)
            class_names = prepared.class_names_of(prepared.read_manifest(path))
        except (ValueError, OSError) as error:
            raise PredictError(f"--images={path}: {error}") from None
        self._offset = int(data.images.offset)  # the .npy header's length; the rows follow, C order
        self._row_shape = tuple(data.images.shape[1:])
        self._file = open(path / "images.npy", "rb")  # noqa: SIM115 - closed by close()
        meta = data.metadata
        ra = meta["ra"].to_numpy(float) if "ra" in meta else None
        dec = meta["dec"].to_numpy(float) if "dec" in meta else None
        true_class = [class_names[int(label)] for label in data.labels]
        super().__init__(path, _table([str(x) for x in meta["id"]], ra, dec, true_class), class_names)

    def read(self, start: int, stop: int) -> tuple[np.ndarray, list[str]]:
        row_bytes = int(np.prod(self._row_shape))
        data = os.pread(self._file.fileno(), (stop - start) * row_bytes, self._offset + start * row_bytes)
        return np.frombuffer(data, np.uint8).reshape(stop - start, *self._row_shape), ["ok"] * (stop - start)

    def close(self) -> None:
        self._file.close()
        super().close()


class CatalogueSource(Source):
    """RA/Dec rows whose images are SDSS cut-outs fetched (and cached) a range at a time."""

    kind = "catalogue"

    def __init__(self, path: Path, table, cutouts: CutoutOptions):
        self.cutouts = cutouts
        self.failed: dict[int, str] = {}  # row -> why its cut-out could not be had
        self._ra = table["ra"].to_numpy()
        self._dec = table["dec"].to_numpy()
        self._good = coordinates_ok(self._ra, self._dec)
        super().__init__(path, table)

    def describe(self) -> dict:
        return {**super().describe(), "cutout_url": self.cutouts.base_url, "cutout_scale": self.cutouts.scale}

    def _request(self, row: int):
        from alexnet_jax.data.sdss import CutoutRequest

        galaxy_id = str(self.table["id"][row].as_py())
        return CutoutRequest(row, galaxy_id, float(self._ra[row]), float(self._dec[row]), self.cutouts.scale)

    def _block_dir(self, row: int) -> Path:
        return self.cutouts.directory / f"rows_{row // CUTOUT_BLOCK * CUTOUT_BLOCK:09d}"

    def prefetch(self, start: int, stop: int) -> None:
        from alexnet_jax.data.sdss import fetch_cutouts

        for block in range(start // CUTOUT_BLOCK * CUTOUT_BLOCK, stop, CUTOUT_BLOCK):
            rows = [r for r in range(max(start, block), min(stop, block + CUTOUT_BLOCK)) if self._good[r]]
            if not rows:
                continue
            requests = [self._request(r) for r in rows]
            c = self.cutouts
            summary = fetch_cutouts(requests, self._block_dir(block), base_url=c.base_url, workers=c.workers,
                                    rate=c.rate, retries=c.retries, timeout=c.timeout, progress=False)  # fmt: skip
            by_name = {r.filename: r.index for r in requests}
            for name, reason in summary.failed.items():
                self.failed[by_name[name]] = reason

    def _read_one(self, row: int, out: np.ndarray) -> str:
        if not self._good[row]:
            return BAD_COORDINATES
        if row in self.failed:
            return f"cut-out failed: {self.failed[row]}"
        status = load_file(self._block_dir(row) / self._request(row).filename, out)
        return "cut-out failed: not fetched" if status == "missing file" else status


def coordinates_ok(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """RA in [0, 360) and Dec in [-90, 90], both finite."""
    with np.errstate(invalid="ignore"):
        return np.isfinite(ra) & np.isfinite(dec) & (ra >= 0) & (ra < 360) & (dec >= -90) & (dec <= 90)


def _numbers(column, name: str, path: Path) -> np.ndarray:
    """A coordinate column as float64 degrees: numbers, numeric text, or sexagesimal text."""
    import pandas as pd
    import pyarrow as pa

    if pa.types.is_floating(column.type) or pa.types.is_integer(column.type):
        return column.to_numpy(zero_copy_only=False).astype(np.float64)
    if pa.types.is_null(column.type):
        return np.full(len(column), np.nan)
    values = pd.Series(column.to_pylist(), dtype=object)
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(float)
    text = values.notna() & np.isnan(numbers)
    if text.any():
        from alexnet_jax.data.catalog import parse_sexagesimal

        for i in np.flatnonzero(text.to_numpy()):
            try:
                numbers[i] = parse_sexagesimal(values.iloc[i : i + 1], hours=name == "ra")[0]
            except ValueError:
                numbers[i] = np.nan
    return numbers


def _pick_column(names: list[str], explicit: str | None, key: str, flag: str, path: Path, required: bool):
    from alexnet_jax.data.catalog import ALIASES, find_column

    if explicit:
        if explicit not in names:
            raise PredictError(f"--images={path}: no column {explicit!r} for {flag}; its columns are {names}")
        return explicit
    found = find_column(names, ALIASES[key])
    if found is None and required:
        raise PredictError(
            f"--images={path}: no {key.upper()} column (looked for {', '.join(ALIASES[key])}); "
            f"name it with {flag}= (its columns are {names})"
        )
    return found


def read_catalogue_table(path: Path, id_column=None, ra_column=None, dec_column=None, skip_bad_rows=False):
    """The catalogue's rows as (row, id, ra, dec); rows with bad coordinates refused or kept (see module)."""
    import pyarrow as pa
    import pyarrow.csv
    import pyarrow.parquet as pq

    try:
        if path.suffix.lower() == ".csv":
            names = pyarrow.csv.open_csv(path).schema.names
        else:
            names = pq.read_schema(path).names
    except (OSError, pa.ArrowInvalid) as error:
        raise PredictError(f"--images={path}: cannot read this catalogue ({' '.join(str(error).split())})") from None
    columns = {
        "id": _pick_column(names, id_column, "id", "--id_column", path, required=False),
        "ra": _pick_column(names, ra_column, "ra", "--ra_column", path, required=True),
        "dec": _pick_column(names, dec_column, "dec", "--dec_column", path, required=True),
    }
    wanted = sorted({c for c in columns.values() if c})
    try:
        if path.suffix.lower() == ".csv":
            types = {columns["id"]: pa.string()} if columns["id"] else {}
            options = pyarrow.csv.ConvertOptions(include_columns=wanted, column_types=types)
            raw = pyarrow.csv.read_csv(path, convert_options=options)
        else:
            raw = pq.read_table(path, columns=wanted)
    except (OSError, pa.ArrowInvalid) as error:
        raise PredictError(f"--images={path}: cannot read this catalogue ({' '.join(str(error).split())})") from None
    n = raw.num_rows
    if n == 0:
        raise PredictError(f"--images={path}: the catalogue has no rows")
    ids = raw[columns["id"]].cast(pa.string()) if columns["id"] else pa.array([str(i) for i in range(n)])
    ra = _numbers(raw[columns["ra"]].combine_chunks(), "ra", path)
    dec = _numbers(raw[columns["dec"]].combine_chunks(), "dec", path)
    bad = np.flatnonzero(~coordinates_ok(ra, dec))
    if len(bad) and not skip_bad_rows:
        shown = "; ".join(f"row {r}: ra={ra[r]}, dec={dec[r]}" for r in bad[:5])
        more = f"; and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise PredictError(
            f"--images={path}: {len(bad)} of {n} rows have no usable RA/Dec (missing, or RA outside [0, 360) or "
            f"Dec outside [-90, 90]; rows count from 0 after the header): {shown}{more}. Fix them, or pass "
            f"--skip_bad_rows to keep them as rows with status '{BAD_COORDINATES}'"
        )
    return _table(ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids, ra, dec)


def detect_kind(path: Path) -> str:
    if path.is_dir():
        return "prepared" if (path / "manifest.json").exists() else "folder"
    suffix = path.suffix.lower()
    if not path.exists():
        raise PredictError(f"--images={path}: no such file or folder")
    if suffix in CATALOGUE_SUFFIXES:
        return "catalogue"
    if suffix in LIST_SUFFIXES:
        return "files"
    raise PredictError(
        f"--images={path}: cannot tell what this is; give a folder of images, a prepared data set, a catalogue "
        f"({', '.join(CATALOGUE_SUFFIXES)}) or a list of image files ({', '.join(LIST_SUFFIXES)}), "
        f"or say which with --input_kind ({', '.join(KINDS)})"
    )


def open_source(
    images: str | os.PathLike,
    *,
    kind: str | None = None,
    id_column: str | None = None,
    ra_column: str | None = None,
    dec_column: str | None = None,
    skip_bad_rows: bool = False,
    cutouts: CutoutOptions | None = None,
) -> Source:
    """The source behind `--images` (its kind detected unless `kind` is given)."""
    path = Path(images)
    if kind is not None and kind not in KINDS:
        raise PredictError(f"--input_kind={kind}: not a kind of input; use one of {', '.join(KINDS)}")
    kind = kind or detect_kind(path)
    if not path.exists():
        raise PredictError(f"--images={path}: no such file or folder")
    if kind in ("folder", "prepared") and not path.is_dir():
        raise PredictError(f"--images={path}: --input_kind={kind} needs a folder")
    if kind in ("catalogue", "files") and not path.is_file():
        raise PredictError(f"--images={path}: --input_kind={kind} needs a file")
    if kind == "prepared":
        return PreparedSource(path)
    if kind == "folder":
        return folder_source(path)
    if kind == "files":
        return list_source(path)
    if path.suffix.lower() not in CATALOGUE_SUFFIXES:
        raise PredictError(f"--images={path}: a catalogue is read from {' or '.join(CATALOGUE_SUFFIXES)} files")
    table = read_catalogue_table(path, id_column, ra_column, dec_column, skip_bad_rows)
    if cutouts is None:
        raise PredictError(f"--images={path}: a catalogue needs --cutout_dir, where its cut-outs are kept")
    return CatalogueSource(path, table, cutouts)
