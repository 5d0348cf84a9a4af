"""Galaxy10 SDSS and Galaxy10 DECaLS, the HDF5 files astroNN publishes, as a prepared data set.

Layout (astroNN's documentation and loaders, henrysky/astroNN docs/source/galaxy10*.rst):
  Galaxy10.h5         SDSS: `images` (21785, 69, 69, 3) uint8, `ans` (21785,) uint8 class 0..9
  Galaxy10_DECals.h5  DECaLS: `images` (17736, 256, 256, 3) uint8, `ans`, `ra`, `dec`,
                      `redshift`, `pxscale` (arcsec/pixel), one value per image
The variant follows from the image shape; anything else is refused with DataFileError.
SDSS's 69 px images get the paper's 256 x 256 PIL bilinear resize (as folder.load_image
does); DECaLS's are already 256 px. Pixels are streamed chunk by chunk into images.npy in
the staging directory with plain file writes, so memory stays bounded by one chunk (DECaLS
holds 3.5 GB of pixels). Class names are snake_case (the prepared format forbids ','); the
published descriptions go to the manifest's `galaxy10` entry. A row's `id` is its index in
the file; ra, dec (standard columns), redshift and pxscale are kept where the file has them.

`fetch_galaxy10` downloads the published file into the cache, resumable (HTTP Range into
a .part file) and checked against astroNN's sha256, recorded beside the file.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
from pathlib import Path

import numpy as np
import pandas as pd

from alexnet_jax.data.prepared import IMAGE_SIZE
from alexnet_jax.errors import DataFileError
from alexnet_jax.toolbox import sha256_file

COLUMNS = ("ra", "dec", "redshift", "pxscale")  # per-image values kept as metadata where present
CHUNK_IMAGES = 128  # images per read/resize/write step: 25 MB of 256 px pixels


@dataclasses.dataclass(frozen=True)
class Variant:
    name: str  # the --galaxy10 value
    title: str
    filename: str
    url: str  # astroNN's current download location (Zenodo)
    sha256: str  # as astroNN's loader and documentation publish it
    image_size: int  # pixels of the file's images
    num_examples: int  # as published
    class_descriptions: tuple[str, ...]  # published, in label order
    class_names: tuple[str, ...]  # the same, snake_case (the prepared format forbids ',')
    documentation: str


VARIANTS = {
    "sdss": Variant(
        name="sdss",
        title="Galaxy10 SDSS",
        filename="Galaxy10.h5",
        url="https://zenodo.org/records/10844811/files/Galaxy10.h5",
        sha256="969a6b1cefcc36e09fffa86febd2f699a4aa19b837ba0427f01b0bc6ded458af",
        image_size=69,
        num_examples=21785,
        class_descriptions=(
            "Disk, Face-on, No Spiral",
            "Smooth, Completely round",
            "Smooth, in-between round",
            "Smooth, Cigar shaped",
            "Disk, Edge-on, Rounded Bulge",
            "Disk, Edge-on, Boxy Bulge",
            "Disk, Edge-on, No Bulge",
            "Disk, Face-on, Tight Spiral",
            "Disk, Face-on, Medium Spiral",
            "Disk, Face-on, Loose Spiral",
        ),
        class_names=(
            "disk_face_on_no_spiral",
            "smooth_completely_round",
            "smooth_in_between_round",
            "smooth_cigar_shaped",
            "disk_edge_on_rounded_bulge",
            "disk_edge_on_boxy_bulge",
            "disk_edge_on_no_bulge",
            "disk_face_on_tight_spiral",
            "disk_face_on_medium_spiral",
            "disk_face_on_loose_spiral",
        ),
        documentation="https://astronn.readthedocs.io/en/latest/galaxy10sdss.html",
    ),
    "decals": Variant(
        name="decals",
        title="Galaxy10 DECaLS",
        filename="Galaxy10_DECals.h5",
        url="https://zenodo.org/records/10845026/files/Galaxy10_DECals.h5",
        sha256="19aefc477c41bb7f77ff07599a6b82a038dc042f889a111b0d4d98bb755c1571",
        image_size=256,
        num_examples=17736,
        class_descriptions=(
            "Disturbed Galaxies",
            "Merging Galaxies",
            "Round Smooth Galaxies",
            "In-between Round Smooth Galaxies",
            "Cigar Shaped Smooth Galaxies",
            "Barred Spiral Galaxies",
            "Unbarred Tight Spiral Galaxies",
            "Unbarred Loose Spiral Galaxies",
            "Edge-on Galaxies without Bulge",
            "Edge-on Galaxies with Bulge",
        ),
        class_names=(
            "disturbed",
            "merging",
            "round_smooth",
            "in_between_round_smooth",
            "cigar_shaped_smooth",
            "barred_spiral",
            "unbarred_tight_spiral",
            "unbarred_loose_spiral",
            "edge_on_without_bulge",
            "edge_on_with_bulge",
        ),
        documentation="https://astronn.readthedocs.io/en/latest/galaxy10.html",
    ),
}
NUM_CLASSES = 10
_EXPECTED = (
    "datasets 'images' (N, 69, 69, 3) uint8 (Galaxy10 SDSS) or (N, 256, 256, 3) uint8 (Galaxy10 DECaLS) "
    "and 'ans' (N,) class indices 0..9"
)
_TO_DO = (
    "use Galaxy10.h5 or Galaxy10_DECals.h5 as astroNN publishes them, or let "
    "`prepare --dataset=galaxy10 --galaxy10=sdss|decals` download one"
)


def variant_of(name: str) -> Variant:
    if name not in VARIANTS:
        raise DataFileError(f"Galaxy10 variant {name!r} is unknown; use one of {', '.join(VARIANTS)}")
    return VARIANTS[name]


# ----------------------------------------------------------------------------- reading


def _h5py():
    try:
        import h5py
    except ImportError as error:  # pragma: no cover - h5py is a dependency
        raise RuntimeError(f"reading Galaxy10 files needs h5py: pip install h5py ({error})") from error
    return h5py


def _describe(handle) -> str:
    """'images (20, 64, 64, 3) uint8, ans (20,) uint8, ...': what the file holds, for error lines."""
    parts = []
    for key in handle:
        item = handle[key]
        shape = getattr(item, "shape", None)
        parts.append(f"{key} {shape} {item.dtype}" if shape is not None else f"{key} (group)")
    return ", ".join(parts) or "nothing"


def check_layout(handle, path: Path, variant: str | None = None) -> Variant:
    """The variant an open HDF5 file holds; DataFileError naming file, expectation and findings."""

    def refuse(problem: str):
        raise DataFileError(f"{path}: {problem}; expected {_EXPECTED}, found {_describe(handle)}; {_TO_DO}")

    for key in ("images", "ans"):
        if key not in handle or not hasattr(handle[key], "shape"):
            refuse(f"no dataset {key!r}")
    images, ans = handle["images"], handle["ans"]
    shape = tuple(images.shape)
    square_rgb = len(shape) == 4 and shape[1] == shape[2] and shape[3] == 3
    found = next((v for v in VARIANTS.values() if square_rgb and v.image_size == shape[1]), None)
    if found is None or images.dtype != np.uint8:
        refuse(f"'images' is {shape} {images.dtype}, not a Galaxy10 image array")
    if variant is not None and variant_of(variant).name != found.name:
        raise DataFileError(
            f"{path} holds {found.title} ({shape[1]} px images) but --galaxy10={variant} asks for "
            f"{variant_of(variant).title}; drop --galaxy10 or give the {variant_of(variant).filename} file"
        )
    if tuple(ans.shape) != (shape[0],) or ans.dtype.kind not in "iuf":
        refuse(f"'ans' is {tuple(ans.shape)} {ans.dtype}, not one number per image")
    for key in COLUMNS:
        if key in handle and (
            tuple(getattr(handle[key], "shape", ())) != (shape[0],) or handle[key].dtype.kind not in "iuf"
        ):
            refuse(f"{key!r} is not one number per image")
    return found


def labels_from_ans(ans: np.ndarray, path: Path) -> np.ndarray:
    """`ans` as int64 labels; DataFileError naming the rows outside 0..9."""
    values = np.asarray(ans, dtype=np.float64)
    bad = np.flatnonzero(~np.isin(values, np.arange(NUM_CLASSES)))
    if len(bad):
        shown = ", ".join(f"row {i} = {values[i]:g}" for i in bad[:10])
        more = f" and {len(bad) - 10} more" if len(bad) > 10 else ""
        raise DataFileError(
            f"{path}: 'ans' must hold class indices 0..{NUM_CLASSES - 1}; {shown}{more}. "
            f"The file is damaged or not a Galaxy10 file; {_TO_DO}"
        )
    return values.astype(np.int64)


def resize_rgb(image: np.ndarray, size: int = IMAGE_SIZE) -> np.ndarray:
    """One (h, w, 3) uint8 image at size x size, PIL bilinear, exactly as folder.load_image resizes."""
    from PIL import Image

    if image.shape[:2] == (size, size):
        return image
    return np.asarray(Image.fromarray(image, "RGB").resize((size, size), Image.BILINEAR), dtype=np.uint8)


def write_images(
    dataset, target: Path, *, num_workers: int | None = None, progress: bool = False, chunk: int | None = None
) -> None:
    """Stream an HDF5 image dataset into a (N, 256, 256, 3) uint8 .npy file, one chunk in memory at a time.

    Plain writes, not a memory map: the pages of a written map count towards the process's
    resident memory until it is closed, a file's do not.
    """
    n, chunk = int(dataset.shape[0]), chunk or CHUNK_IMAGES
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": False}
    header["shape"] = (n, IMAGE_SIZE, IMAGE_SIZE, 3)
    bar = None
    if progress and n:
        from tqdm.auto import tqdm

        bar = tqdm(total=n, desc="Galaxy10 images", unit="img")
    try:
        with open(target, "wb") as handle, concurrent.futures.ThreadPoolExecutor(num_workers or 4) as pool:
            np.lib.format.write_array_header_1_0(handle, header)
            for start in range(0, n, chunk):
                block = np.ascontiguousarray(dataset[start : start + chunk], dtype=np.uint8)
                if block.shape[1:3] != (IMAGE_SIZE, IMAGE_SIZE):
                    small, block = block, np.empty((len(block), IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
                    for i, image in enumerate(pool.map(resize_rgb, small)):  # PIL releases the GIL
                        block[i] = image
                handle.write(block.data)  # no copy
                if bar is not None:
                    bar.update(len(block))
                del block  # else it is still alive while the next chunk is read: twice the memory
            handle.flush()
            os.fsync(handle.fileno())
    finally:
        if bar is not None:
            bar.close()


def read_galaxy10(
    path: str | os.PathLike,
    staging: str | os.PathLike,
    *,
    variant: str | None = None,
    num_workers: int | None = None,
    progress: bool = False,
) -> tuple[Variant, np.ndarray, np.ndarray, pd.DataFrame]:
    """(variant, images memory-mapped from staging/images.npy, labels, metadata) of a Galaxy10 file."""
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"Galaxy10 file {path} does not exist; give the .h5 file's path, or {_TO_DO}")
    h5py = _h5py()
    if not h5py.is_hdf5(path):
        with open(path, "rb") as handle:
            head = handle.read(16)
        raise DataFileError(
            f"{path} is not an HDF5 file (it starts {head!r}); expected {_EXPECTED}. "
            f"An interrupted download or an HTML error page looks like this; {_TO_DO}"
        )
    with h5py.File(path, "r") as handle:
        found = check_layout(handle, path, variant)
        labels = labels_from_ans(handle["ans"][()], path)
        missing = [found.class_names[c] for c in sorted(set(range(NUM_CLASSES)) - set(labels.tolist()))]
        if missing:
            raise DataFileError(
                f"{path}: no images of class(es) {', '.join(missing)}; a class without examples can be neither "
                f"trained nor scored. The published {found.title} file has every class; {_TO_DO}"
            )
        columns = {k: np.asarray(handle[k][()], dtype=np.float64) for k in COLUMNS if k in handle}
        target = Path(staging) / "images.npy"
        write_images(handle["images"], target, num_workers=num_workers, progress=progress)
    nan = np.full(len(labels), np.nan)
    metadata = pd.DataFrame(
        {
            "index": np.arange(len(labels)),
            "id": [str(i) for i in range(len(labels))],
            "ra": columns.pop("ra", nan),
            "dec": columns.pop("dec", nan),
            "ttype": nan,
            "label": labels,
            "class_name": [found.class_names[c] for c in labels],
            "source_file": path.name,
            **columns,  # redshift, pxscale where present
        }
    )
    return found, np.load(target, mmap_mode="r"), labels, metadata


# ----------------------------------------------------------------------------- downloading


def fetch_galaxy10(
    variant: str,
    cache_dir: str | os.PathLike | None = None,
    *,
    url: str | None = None,
    sha256: str | None = None,
    refresh: bool = False,
    timeout: float = 60.0,
    retries: int = 5,
    backoff: float = 1.0,
    progress: bool = True,
) -> Path:
    """The variant's published file in <cache_dir>/galaxy10, downloaded (resumable) if absent.

    Checked against astroNN's sha256, recorded in <file>.json (data.download.download_file).
    `url` names a mirror of the same file; `sha256` overrides the published checksum.
    """
    from alexnet_jax.data.catalog import default_cache_dir
    from alexnet_jax.data.download import download_file

    spec = variant_of(variant)
    directory = (Path(cache_dir) if cache_dir else default_cache_dir()) / "galaxy10"
    return download_file(
        url or spec.url,
        directory / spec.filename,
        sha256=sha256 or spec.sha256,
        refresh=refresh,
        timeout=timeout,
        retries=retries,
        backoff=backoff,
        progress=progress,
        own_copy="pass it with --h5_file=PATH",
    )


# ----------------------------------------------------------------------------- preparing


def prepare_galaxy10(
    output: str | os.PathLike,
    *,
    h5_file: str | os.PathLike | None = None,
    variant: str | None = None,
    overwrite: bool = False,
    num_workers: int | None = None,
    progress: bool = True,
    **fetch_kwargs,
) -> dict:
    """Write a Galaxy10 file (`h5_file`, else the variant's download) as a prepared set; return the manifest.

    `fetch_kwargs` go to fetch_galaxy10 (cache_dir, url, timeout, retries, backoff).
    """
    from alexnet_jax.data.download import is_recorded
    from alexnet_jax.data.folder import staged_output
    from alexnet_jax.data.prepared import write_prepared

    if h5_file is None and variant is None:
        raise DataFileError(f"Galaxy10: give a file (--h5_file=PATH) or a variant to download ({', '.join(VARIANTS)})")
    with staged_output(output, overwrite=overwrite) as staging:
        if h5_file is None:
            h5_file = fetch_galaxy10(variant, progress=progress, **fetch_kwargs)
        path = Path(h5_file).absolute()
        spec, images, labels, metadata = read_galaxy10(
            path, staging, variant=variant, num_workers=num_workers, progress=progress
        )
        recorded = is_recorded(path, spec.sha256)  # a checked download: no need to hash gigabytes again
        digest = spec.sha256 if recorded else sha256_file(path)
        return write_prepared(
            staging,
            images,
            labels,
            metadata,
            name=f"galaxy10_{spec.name}",
            source=f"{spec.title} (astroNN) {path}",
            class_names=list(spec.class_names),
            extra={
                "galaxy10": {
                    "variant": spec.name,
                    "title": spec.title,
                    "file": str(path),
                    "sha256": digest,
                    "published_sha256": spec.sha256,
                    "matches_published": digest == spec.sha256,
                    "published_num_examples": spec.num_examples,
                    "url": spec.url,
                    "documentation": spec.documentation,
                    "class_descriptions": list(spec.class_descriptions),
                    "columns": [c for c in COLUMNS if c in metadata.columns and metadata[c].notna().any()],
                    "id": "row index in the file",
                    "resize": f"PIL bilinear {spec.image_size} -> {IMAGE_SIZE} px"
                    if spec.image_size != IMAGE_SIZE
                    else "none (already 256 px)",
                }
            },
        )
