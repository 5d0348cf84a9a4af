"""Bring your own images: a folder of galaxy images plus a catalogue -> prepared-data arrays.

Pairing, as the user chooses:
  * by position (default): the i-th file of `sorted()` names is the i-th catalogue row,
    as the original paired `sorted(glob("*.jpg"))` with its catalogue; counts must agree.
  * by id (`id_column`): each row names its file (exact file name, or the name without
    extension); rows without a file are errors, files without a row are ignored.
Classes (alexnet_jax.data.class_map.table_labels): a TType column (the paper's rule), `label`
(0..3, the paper's classes), a `class` column of names, or any column with a mapping of its
values to classes (`class_map`); rows in no class are dropped and counted, or refused.

Every image is decoded in full. Modes are made RGB where that is sound: greyscale and
bilevel are replicated to three channels, palette images expanded, alpha composited
on black (the sky), CMYK and YCbCr converted by PIL, 16-bit integer images scaled by
1/257. Float images are refused (no sound 8-bit mapping). Then the paper's 256 x 256
bilinear resize (PIL, which low-pass filters when shrinking).

A bad image (unreadable, truncated, unsupported) never shifts another's label:
`on_bad_image="fail"` (default) stops and lists every bad file; "skip" drops those rows
and reports their ids and reasons. Positions still pair by the full sorted list, so
skipping a file drops its own row, not its neighbour's.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from alexnet_jax.data.class_map import ClassMap, table_labels
from alexnet_jax.data.prepared import IMAGE_SIZE
from alexnet_jax.errors import BadImageError, FolderError
from alexnet_jax.toolbox import atomic_directory, sha256_file

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".gif", ".webp")


def to_rgb(image):
    """A PIL image as 8-bit RGB (see module docstring for the rules); raises BadImageError."""
    from PIL import Image

    mode = image.mode
    if mode == "RGB":
        return image
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        return to_rgb(image)
    if mode == "PA":
        return to_rgb(image.convert("RGBA"))
    if mode in ("RGBA", "RGBa", "LA", "La"):
        if mode in ("RGBa", "La"):  # premultiplied already: drop alpha
            return image.convert("RGB")
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float64)
        rgb = np.rint(rgba[..., :3] * (rgba[..., 3:] / 255.0))  # composite on black
        return Image.fromarray(rgb.astype(np.uint8), "RGB")
    if mode in ("L", "1"):
        return image.convert("L").convert("RGB")
    if mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        return image.convert("RGB")
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        values = np.asarray(image, dtype=np.float64)
        if mode == "I" and (values.min() < 0 or values.max() > 65535):
            raise BadImageError(f"32-bit integer image with values outside 0..65535 ({values.min()}..{values.max()})")
        if mode == "I" and values.max() <= 255:
            grey = values  # an 8-bit image stored as 32-bit
        else:
            grey = values / 257.0  # 16-bit full range -> 8-bit full range
        grey = np.clip(np.rint(grey), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    raise BadImageError(f"image mode {mode!r} has no sound conversion to 8-bit RGB")


def load_image(path: str | os.PathLike, size: int = IMAGE_SIZE) -> np.ndarray:
    """(size, size, 3) uint8 RGB from an image file; BadImageError for anything unsound."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()  # full decode: a truncated file raises here
            rgb = to_rgb(image)
            if rgb.size != (size, size):
                rgb = rgb.resize((size, size), Image.BILINEAR)
            array = np.asarray(rgb, dtype=np.uint8)
    except BadImageError:
        raise
    except UnidentifiedImageError:
        raise BadImageError("not an image PIL can read") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise BadImageError(f"cannot decode ({error})") from None
    if array.shape != (size, size, 3):  # pragma: no cover - guarded by to_rgb
        raise BadImageError(f"decoded to shape {array.shape}")
    return array


@dataclasses.dataclass
class IngestResult:
    images: np.ndarray  # (N, 256, 256, 3) uint8
    labels: np.ndarray  # (N,) int64
    class_names: list[str]  # in label order
    metadata: pd.DataFrame  # prepared-format columns plus catalog_row
    dropped: list[dict]  # {"row", "id", "file", "reason"} for each skipped row
    unused_files: list[str]  # files no catalogue row refers to (id pairing only)
    labelling: dict = dataclasses.field(default_factory=dict)  # the class rule and its counts


def load_images(
    paths: Sequence[Path],
    *,
    size: int = IMAGE_SIZE,
    num_workers: int | None = None,
    progress: bool = False,
    desc: str = "images",
) -> tuple[np.ndarray, dict[int, str]]:
    """Decode `paths` into one array; bad ones leave zeros and are returned as {position: reason}."""
    out = np.zeros((len(paths), size, size, 3), np.uint8)
    bad: dict[int, str] = {}

    def work(i: int) -> None:
        try:
            out[i] = load_image(paths[i], size)
        except BadImageError as error:
            bad[i] = str(error)
        except FileNotFoundError:
            bad[i] = "file not found"

    workers = num_workers or min(8, os.cpu_count() or 1)
    bar = None
    if progress and len(paths):
        from tqdm.auto import tqdm

        bar = tqdm(total=len(paths), desc=desc, unit="img")
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:  # PIL releases the GIL
            for future in concurrent.futures.as_completed([pool.submit(work, i) for i in range(len(paths))]):
                future.result()
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return out, bad


def list_images(image_dir: str | os.PathLike, pattern: str | None = None) -> list[Path]:
    """Image files in `image_dir`, sorted by name (the original's sorted-glob order)."""
    image_dir = Path(image_dir)
    if not image_dir.is_dir():
        raise FolderError(f"image folder {image_dir} does not exist")
    if pattern:
        files = [p for p in image_dir.glob(pattern) if p.is_file()]
    else:
        files = [p for p in image_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    return sorted(files, key=lambda p: p.name)


def _column(table: pd.DataFrame, key: str):
    """The catalogue's id/ra/dec column by the catalogue aliases (None when absent)."""
    from alexnet_jax.data.catalog import ALIASES, find_column

    name = find_column(list(table.columns), (key,) + ALIASES[key])
    return None if name is None else table[name]


def _degrees(table: pd.DataFrame, key: str) -> np.ndarray:
    from alexnet_jax.data.catalog import is_text_column, parse_sexagesimal

    column = _column(table, key)
    if column is None:
        return np.full(len(table), np.nan)
    if is_text_column(column):
        try:
            return parse_sexagesimal(column, hours=key == "ra")
        except ValueError:
            return pd.to_numeric(column, errors="coerce").to_numpy(float)
    return column.to_numpy(float)


def ingest_folder(
    image_dir: str | os.PathLike,
    catalog: pd.DataFrame,
    *,
    source: str = "catalogue",
    id_column: str | None = None,
    pattern: str | None = None,
    on_bad_image: str = "fail",
    num_workers: int | None = None,
    progress: bool = False,
    paths: Sequence[Path] | None = None,
    labels: np.ndarray | None = None,
    class_names: Sequence[str] | None = None,
    class_column: str | None = None,
    class_map: ClassMap | None = None,
    unmapped: str = "fail",
) -> IngestResult:
    """Pair images with catalogue rows, decode, convert and resize them; see the module docstring.

    `paths` (one per row) skips the pairing step; the SDSS pipeline uses it. `labels` (one per
    row, indices into `class_names`, -1 for a row in no class) skips reading classes from the
    table: importers that apply their own rule (Galaxy Zoo votes) give them. Rows in no class are
    not decoded; the result counts them in `labelling`.
    """
    if on_bad_image not in ("fail", "skip"):
        raise FolderError(f"on_bad_image must be 'fail' or 'skip', got {on_bad_image!r}")
    image_dir = Path(image_dir)
    table = catalog.reset_index(drop=True)
    if labels is None:
        found = table_labels(table, source, class_column=class_column, class_map=class_map, unmapped=unmapped)
        labels, class_names, ttype, labelling = found.labels, found.class_names, found.ttype, found.report
    else:
        if class_names is None or len(labels) != len(table):
            raise FolderError(f"{source}: give class_names and one label per row ({len(labels)} for {len(table)})")
        labels, class_names = np.asarray(labels, np.int64), list(class_names)
        ttype = pd.to_numeric(table["ttype"], errors="coerce").to_numpy(float) if "ttype" in table else None
        ttype = np.full(len(table), np.nan) if ttype is None else ttype
        labelling = {"rule": "given by the importer"}
    unused: list[str] = []
    missing: dict[int, str] = {}
    if paths is not None:
        paths = [Path(p) for p in paths]
        if len(paths) != len(table):
            raise FolderError(f"{len(paths)} image paths for {len(table)} catalogue rows")
    elif id_column is None:
        paths = list_images(image_dir, pattern)
        if len(paths) != len(table):
            raise FolderError(
                f"{image_dir} holds {len(paths)} image files but {source} has {len(table)} rows; pairing by "
                "position needs one image per row. Remove stray files, fix the catalogue, or pair by name "
                "with --id_column."
            )
    else:
        if id_column not in table.columns:
            raise FolderError(
                f"{source}: id column {id_column!r} not found; columns: {', '.join(map(str, table.columns))}"
            )
        ids = table[id_column].astype(str).str.strip()
        duplicated = ids[ids.duplicated()].unique()
        if len(duplicated):
            raise FolderError(f"{source}: id column {id_column!r} repeats {', '.join(duplicated[:10])}")
        files = list_images(image_dir, pattern)
        by_name = {p.name: p for p in files}
        by_stem: dict[str, Path] = {}
        for p in files:
            if p.stem in by_stem:
                raise FolderError(f"{image_dir}: {by_stem[p.stem].name} and {p.name} share the id {p.stem!r}")
            by_stem[p.stem] = p
        paths = []
        for row, galaxy_id in enumerate(ids):
            path = by_name.get(galaxy_id) or by_stem.get(galaxy_id)
            if path is None:
                missing[row] = f"no file named {galaxy_id!r} (with or without extension) in {image_dir}"
                path = image_dir / galaxy_id
            paths.append(path)
        used = {p.name for p in paths}
        unused = [p.name for p in files if p.name not in used]

    wanted = np.flatnonzero(labels >= 0)  # rows in no class are neither decoded nor kept
    loaded, bad_loaded = load_images([paths[i] for i in wanted], num_workers=num_workers, progress=progress)
    bad = {int(wanted[i]): reason for i, reason in bad_loaded.items()}
    bad.update({row: reason for row, reason in missing.items() if labels[row] >= 0})
    ids_column = _column(table, "id") if id_column is None else table[id_column]
    ids_out = (
        ids_column.astype(str).str.strip().to_numpy()
        if ids_column is not None
        else np.array([p.stem for p in paths], dtype=object)
    )
    dropped = [{"row": int(i), "id": str(ids_out[i]), "file": paths[i].name, "reason": bad[i]} for i in sorted(bad)]
    if dropped and on_bad_image == "fail":
        listing = "\n".join(f"  row {d['row']} ({d['id']}): {d['file']}: {d['reason']}" for d in dropped[:50])
        more = f"\n  ... and {len(dropped) - 50} more" if len(dropped) > 50 else ""
        raise FolderError(
            f"{len(dropped)} of {len(paths)} images could not be used:\n{listing}{more}\n"
            "Fix or replace them, or pass --on_bad_image=skip to drop these rows (reported in the manifest)."
        )
    keep = np.setdiff1d(wanted, sorted(bad))
    metadata = pd.DataFrame(
        {
            "index": np.arange(len(keep)),
            "id": ids_out[keep],
            "ra": _degrees(table, "ra")[keep],
            "dec": _degrees(table, "dec")[keep],
            "ttype": ttype[keep],
            "label": labels[keep],
            "class_name": [class_names[label] for label in labels[keep]],
            "source_file": [paths[i].name for i in keep],
            "catalog_row": keep,
        }
    )
    declared = _declared_split(table, source)
    if declared is not None:
        metadata["split"] = declared[keep]
    images = loaded if len(keep) == len(wanted) else loaded[np.isin(wanted, keep)]
    labelling["rows_in_no_class"] = int(len(labels) - len(wanted))
    return IngestResult(
        images=images,
        labels=labels[keep],
        class_names=class_names,
        metadata=metadata,
        dropped=dropped,
        unused_files=unused,
        labelling=labelling,
    )


SPLIT_VALUES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
}


def _declared_split(table: pd.DataFrame, source: str) -> np.ndarray | None:
    """A catalogue's own split (a `split` column: train / val or validation / test), or None."""
    lower = {str(c).lower(): c for c in table.columns}
    if "split" not in lower:
        return None
    values = table[lower["split"]].astype(str).str.strip().str.lower()
    bad = np.flatnonzero(~values.isin(list(SPLIT_VALUES)).to_numpy())
    if len(bad):
        raise FolderError(
            f"{source}: column {lower['split']!r} must say train, val (or validation) or test; "
            f"{values.iloc[bad[0]]!r} at row {bad[0]}{f' and {len(bad) - 1} more rows' if len(bad) > 1 else ''}"
        )
    return values.map(SPLIT_VALUES).to_numpy(object)


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """A user catalogue: CSV, TSV, VizieR TSV, FITS, ECSV or VOTable (see catalog.read_catalog_file)."""
    from alexnet_jax.data.catalog import read_catalog_file

    frame, _, _ = read_catalog_file(path)
    return frame


@contextlib.contextmanager
def staged_output(output: str | os.PathLike, *, overwrite: bool = False):
    """Yield a temporary sibling directory; on success it replaces `output`, on failure it is removed.

    An existing non-empty `output` is refused unless `overwrite`, checked before any work,
    and is only removed after the new data set is complete.
    """
    output = Path(output).absolute()
    if output.exists() and not output.is_dir():
        raise FolderError(f"output {output} exists and is not a directory")
    if output.is_dir() and any(output.iterdir()) and not overwrite:
        raise FolderError(f"output {output} already holds files; pass --overwrite to replace it")

    def still_free():  # another process may have filled it while we worked
        if not overwrite and output.is_dir() and any(output.iterdir()):
            raise FolderError(f"output {output} was filled meanwhile; pass --overwrite to replace it")

    with atomic_directory(output, before_swap=still_free) as staging:
        yield staging


def prepare_folder(
    image_dir: str | os.PathLike,
    catalog_path: str | os.PathLike,
    output: str | os.PathLike,
    *,
    id_column: str | None = None,
    pattern: str | None = None,
    on_bad_image: str = "fail",
    overwrite: bool = False,
    name: str = "folder",
    num_workers: int | None = None,
    progress: bool = True,
    class_column: str | None = None,
    class_map: ClassMap | None = None,
    unmapped: str = "fail",
) -> tuple[dict, IngestResult]:
    """Ingest a folder + catalogue and write a prepared data set to `output`; return (manifest, result)."""
    from alexnet_jax.data.prepared import write_prepared

    catalog_path = Path(catalog_path)
    with staged_output(output, overwrite=overwrite) as staging:
        table = read_table(catalog_path)
        result = ingest_folder(
            image_dir,
            table,
            source=str(catalog_path),
            id_column=id_column,
            pattern=pattern,
            on_bad_image=on_bad_image,
            num_workers=num_workers,
            progress=progress,
            class_column=class_column,
            class_map=class_map,
            unmapped=unmapped,
        )
        if not len(result.labels):
            raise FolderError(f"no usable images in {image_dir}")
        manifest = write_prepared(
            staging,
            result.images,
            result.labels,
            result.metadata,
            name=name,
            class_names=result.class_names,
            source=f"folder {Path(image_dir).absolute()} with catalogue {catalog_path.absolute()}",
            extra={
                "catalog": {
                    "path": str(catalog_path.absolute()),
                    "sha256": sha256_file(catalog_path),
                    "rows": int(len(table)),
                },
                "pairing": f"id column {id_column!r}" if id_column else "sorted file names by row position",
                "image_dir": str(Path(image_dir).absolute()),
                "on_bad_image": on_bad_image,
                "labelling": result.labelling,
                "dropped": result.dropped,
                "unused_files": result.unused_files,
                "resize": "PIL bilinear to 256x256",
            },
        )
    return manifest, result
