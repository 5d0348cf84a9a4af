"""A folder per class, as torchvision's ImageFolder lays it out -> a prepared data set.

    ROOT/CLASS/*.jpg                                  the split is left to the study
    ROOT/{train, validation | val, test}/CLASS/*.jpg  the source's own split, kept (metadata `split`)

The classes are the class folders' names, sorted as ImageFolder sorts them; a `class_map`
(alexnet_jax.data.class_map, values are folder names) renames, orders or merges them. Images
in sub-folders of a class folder belong to that class. Hidden files (names starting with '.')
are ignored, and so are files beside the folders at the top (a README, a catalogue), which
the manifest lists. An image outside a class folder, any other file that is not an image, a
class folder without images and a class that only the held-out splits have are refused by name.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pandas as pd

from alexnet_jax.data.class_map import ClassMap
from alexnet_jax.data.folder import IMAGE_EXTENSIONS, SPLIT_VALUES, IngestResult, ingest_folder, staged_output
from alexnet_jax.errors import FolderError

SPLIT_FOLDERS = SPLIT_VALUES  # folder name (any case) -> split


@dataclasses.dataclass
class FolderScan:
    """Every image under ROOT: its path, its class folder's name and its split (None: no split folders)."""

    root: Path
    paths: list[Path]
    folders: list[str]
    splits: list[str] | None
    split_folders: dict[str, str]  # folder name -> split, for the manifest
    ignored: list[str]  # non-image files at the top, beside the folders (README, catalogues)


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def _images_below(class_dir: Path, strays: list[Path]) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(class_dir):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for filename in sorted(filenames):
            path = Path(dirpath) / filename
            if not _visible(path):
                continue
            (found if path.suffix.lower() in IMAGE_EXTENSIONS else strays).append(path)
    return found


def scan_image_folder(root: str | os.PathLike) -> FolderScan:
    """The images of an ImageFolder tree, with or without split folders; refuses stray files."""
    root = Path(root)
    if not root.is_dir():
        raise FolderError(f"image folder {root} does not exist or is not a folder")
    entries = sorted((p for p in root.iterdir() if _visible(p)), key=lambda p: p.name)
    ignored = [p.name for p in entries if not p.is_dir() and p.suffix.lower() not in IMAGE_EXTENSIONS]
    strays = [p for p in entries if not p.is_dir() and p.name not in ignored]
    dirs = [p for p in entries if p.is_dir()]
    split_dirs = [d for d in dirs if d.name.lower() in SPLIT_FOLDERS]
    if split_dirs and len(split_dirs) != len(dirs):
        others = ", ".join(d.name for d in dirs if d not in split_dirs)
        raise FolderError(
            f"{root} holds split folders ({', '.join(d.name for d in split_dirs)}) beside other folders ({others}); "
            "put every class folder under a split folder, or use no split folders"
        )
    splits_seen = [SPLIT_FOLDERS[d.name.lower()] for d in split_dirs]
    repeated = sorted({s for s in splits_seen if splits_seen.count(s) > 1})
    if repeated:
        raise FolderError(f"{root}: more than one folder for split {repeated[0]!r}; keep one")
    groups = [(d, SPLIT_FOLDERS[d.name.lower()]) for d in split_dirs] if split_dirs else [(root, None)]
    paths, folders, splits, empty = [], [], [], []
    for parent, split in groups:
        class_dirs = []
        for entry in sorted((p for p in parent.iterdir() if _visible(p)), key=lambda p: p.name):
            (class_dirs if entry.is_dir() else strays).append(entry)
        for class_dir in class_dirs:
            images = _images_below(class_dir, strays)
            if not images:
                empty.append(class_dir)
            paths += images
            folders += [class_dir.name] * len(images)
            splits += [split] * len(images)
    if strays:
        shown = ", ".join(str(p.relative_to(root)) for p in strays[:10])
        more = f" and {len(strays) - 10} more" if len(strays) > 10 else ""
        raise FolderError(
            f"{root}: {len(strays)} file(s) outside a class folder or not images ({', '.join(IMAGE_EXTENSIONS)}): "
            f"{shown}{more}; remove or move them"
        )
    if empty:
        shown = ", ".join(str(p.relative_to(root)) for p in empty[:10])
        raise FolderError(f"{root}: class folder(s) without images: {shown}; add images or remove the folders")
    if len(set(folders)) < 2:
        raise FolderError(
            f"{root}: found {len(set(folders))} class folder(s) ({', '.join(sorted(set(folders)))}); a classification "
            "needs a folder per class, e.g. ROOT/spiral/*.jpg and ROOT/elliptical/*.jpg"
        )
    split_folders = {d.name: SPLIT_FOLDERS[d.name.lower()] for d in split_dirs}
    return FolderScan(root, paths, folders, splits if split_dirs else None, split_folders, ignored)


def _labels(scan: FolderScan, class_map: ClassMap | None, unmapped: str) -> tuple[np.ndarray, list[str], dict]:
    if class_map is None:
        names = sorted(set(scan.folders))
        lookup = {name: k for k, name in enumerate(names)}
        return np.array([lookup[f] for f in scan.folders], np.int64), names, {"rule": "class folders, sorted"}
    labels, report = class_map.assign(scan.folders, source=str(scan.root), column="class folder", unmapped=unmapped)
    return labels, list(class_map.class_names), {"rule": "class map on folder names", **report}


def _check_training_split(scan: FolderScan, labels: np.ndarray, names: list[str]) -> None:
    if scan.splits is None:
        return
    splits = np.array(scan.splits)
    if "train" not in splits:
        raise FolderError(f"{scan.root}: split folders {sorted(scan.split_folders)} but no 'train' folder")
    held_out_only = [n for k, n in enumerate(names) if not np.any((labels == k) & (splits == "train"))]
    if held_out_only:
        raise FolderError(
            f"{scan.root}: class(es) {', '.join(map(repr, held_out_only))} have images in the held-out split(s) but "
            "none under train/; add training images or remove those folders"
        )


def _table(scan: FolderScan) -> pd.DataFrame:
    stems = [p.stem for p in scan.paths]
    relative = [str(p.relative_to(scan.root)) for p in scan.paths]
    unique = len(set(stems)) == len(stems)
    table = pd.DataFrame({"id": stems if unique else [str(Path(r).with_suffix("")) for r in relative]})
    table["folder"] = scan.folders
    if scan.splits is not None:
        table["split"] = scan.splits
    table["relative_path"] = relative
    return table


def prepare_image_folder(
    root: str | os.PathLike,
    output: str | os.PathLike,
    *,
    class_map: ClassMap | None = None,
    unmapped: str = "fail",
    on_bad_image: str = "fail",
    overwrite: bool = False,
    name: str = "image_folder",
    num_workers: int | None = None,
    progress: bool = True,
) -> tuple[dict, IngestResult]:
    """Import an ImageFolder tree into a prepared data set at `output`; return (manifest, result)."""
    from alexnet_jax.data.prepared import write_prepared

    root = Path(root)
    with staged_output(output, overwrite=overwrite) as staging:
        scan = scan_image_folder(root)
        labels, names, labelling = _labels(scan, class_map, unmapped)
        _check_training_split(scan, labels, names)
        table = _table(scan)
        result = ingest_folder(
            root,
            table,
            source=str(root),
            paths=scan.paths,
            labels=labels,
            class_names=names,
            on_bad_image=on_bad_image,
            num_workers=num_workers,
            progress=progress,
        )
        kept = table.iloc[result.metadata["catalog_row"].to_numpy()].reset_index(drop=True)
        metadata = result.metadata.assign(
            source_file=kept["relative_path"].to_numpy(), folder=kept["folder"].to_numpy()
        )
        labelling.update(rows_in_no_class=result.labelling["rows_in_no_class"])
        manifest = write_prepared(
            staging,
            result.images,
            result.labels,
            metadata,
            name=name,
            source=f"image folder {root.absolute()}",
            class_names=names,
            extra={
                "image_dir": str(root.absolute()),
                "layout": "split/class folders" if scan.splits is not None else "class folders",
                "split_folders": scan.split_folders,
                "ignored_files": scan.ignored,
                "labelling": labelling,
                "on_bad_image": on_bad_image,
                "dropped": result.dropped,
                "resize": "PIL bilinear to 256x256",
            },
        )
    return manifest, result
