"""Galaxy Zoo vote tables + SDSS cut-outs -> a prepared data set, classes by a stated vote rule.

Releases (the table is downloaded once into the cache, or read from --catalog):
  gz1  Galaxy Zoo 1, Lintott et al. (2011, MNRAS 410, 166): VizieR `J/MNRAS/410/166/galaxies`
       through VizieR's asu-tsv service (all columns, all rows). A local copy of the
       data.galaxyzoo.org table 2 CSV or of SDSS CasJobs `zooSpec` works too (--catalog).
  gz2  Galaxy Zoo 2 main sample with the Hart et al. (2016, MNRAS 461, 3663) debiasing:
       gz2_hart16.csv.gz from data.galaxyzoo.org's public bucket.
The rule (`vote_rules`: default gz1_clean for gz1, gz2_smooth_features for gz2, or the user's
classes and threshold) picks the galaxies and their classes; only those get cut-outs, fetched
by RA/Dec through `sdss.fetch_cutouts` into a cache that later runs reuse. Cut-out files are
named by table row, so another rule over the same table reuses them too.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from alexnet_jax.data import sdss
from alexnet_jax.data import vote_rules as rules
from alexnet_jax.errors import CatalogError, LabelError
from alexnet_jax.toolbox import atomic_path, sha256_file, write_json_atomic

GZ1_VIZIER_TABLE = "J/MNRAS/410/166/galaxies"
DEFAULT_VIZIER_URL = "https://vizier.cds.unistra.fr/viz-bin/asu-tsv"
GZ2_HART16_URL = "https://gz2hart.s3.amazonaws.com/gz2_hart16.csv.gz"
_CHUNK = 1 << 20


@dataclasses.dataclass(frozen=True)
class Release:
    name: str
    default_rule: str
    cached_name: str
    fmt: str  # read_catalog_file format of the downloaded table
    citation: str


RELEASES = {
    "gz1": Release(
        "gz1", "gz1_clean", "gz1_J_MNRAS_410_166_galaxies.tsv", "vizier_tsv", "Galaxy Zoo 1 (Lintott+ 2011)"
    ),
    "gz2": Release("gz2", "gz2_smooth_features", "gz2_hart16.csv.gz", "csv", "Galaxy Zoo 2 (Hart+ 2016)"),
}


def get_release(name: str) -> Release:
    if name not in RELEASES:
        raise CatalogError(f"--gz_release={name!r}: use one of {', '.join(RELEASES)}")
    return RELEASES[name]


def table_url(release: str, url: str | None = None) -> str:
    """Where a release's table is downloaded from; `url` replaces the server (VizieR) or the file (gz2)."""
    if get_release(release).name == "gz2":
        return url or GZ2_HART16_URL
    query = urllib.parse.urlencode({"-source": GZ1_VIZIER_TABLE, "-out.max": "unlimited"}, safe="/")
    return f"{url or DEFAULT_VIZIER_URL}?{query}&-out.all"


def gz_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    from alexnet_jax.data.catalog import default_cache_dir

    return (Path(cache_dir) if cache_dir else default_cache_dir()) / "galaxy_zoo"


def _looks_complete(path: Path, url: str) -> str | None:
    """Why the downloaded file is not the table asked for (None when it looks right)."""
    with path.open("rb") as handle:
        head = handle.read(1 << 16)
    if url.split("?")[0].endswith(".gz"):
        if not head.startswith(b"\x1f\x8b"):
            return f"not gzip data (starts {head[:40]!r})"
        try:
            with gzip.open(path, "rb") as handle:
                while handle.read(_CHUNK):
                    pass
        except (OSError, EOFError) as error:
            return f"a broken gzip file ({error})"
        return None
    text = head.decode("utf-8", "replace")
    rows = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    if not rows or "\t" not in rows[0]:
        errors = [line for line in text.splitlines() if "error" in line.lower()][:2]
        return f"no table in the answer ({' '.join(errors) or text[:120]!r})"
    return None


def download_table(
    url: str,
    path: str | os.PathLike,
    *,
    refresh: bool = False,
    timeout: float = 300.0,
    log: Callable[[str], None] = print,
) -> Path:
    """Download `url` to `path` once; later calls check the recorded sha256 and reuse it.

    `<path>.json` records the URL, sha256, size and time. Another URL, or `refresh`, downloads
    again; a cached file that changed since is refused rather than silently used.
    """
    path = Path(path)
    record_path = path.with_name(path.name + ".json")
    if path.exists() and record_path.exists() and not refresh:
        record = json.loads(record_path.read_text())
        if record.get("url") == url:
            found = sha256_file(path)
            if found != record.get("sha256"):
                raise CatalogError(
                    f"cached table {path} changed since download (sha256 {found}, recorded {record.get('sha256')}); "
                    "delete it, or download again with --refresh_catalog"
                )
            return path
    log(f"downloading {url}")
    request = urllib.request.Request(url, headers={"User-Agent": sdss.USER_AGENT})
    digest, size = hashlib.sha256(), 0
    try:
        with atomic_path(path) as tmp:
            with urllib.request.urlopen(request, timeout=timeout) as response, open(tmp, "wb") as out:
                length = response.headers.get("Content-Length")
                while block := response.read(_CHUNK):
                    out.write(block)
                    digest.update(block)
                    size += len(block)
            if length is not None and length.strip().isdigit() and int(length) != size:
                raise CatalogError(f"downloading {url}: got {size} of {length} bytes; run the command again")
            problem = _looks_complete(tmp, url)
            if problem:
                raise CatalogError(f"downloading {url}: the answer is {problem}; check the URL or try again later")
    except urllib.error.HTTPError as error:
        raise CatalogError(f"downloading {url} failed: HTTP {error.code} {error.reason}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise CatalogError(
            f"downloading {url} failed: {reason}. Run again when the network is back, or pass a local "
            "copy with --catalog"
        ) from None
    write_json_atomic(
        record_path,
        {"url": url, "sha256": digest.hexdigest(), "bytes": size, "fetched": time.strftime("%Y-%m-%dT%H:%M:%SZ")},
    )
    log(f"saved {size:,} bytes to {path}")
    return path


def vizier_descriptions(path: str | os.PathLike) -> dict[str, str]:
    """Column -> description from a VizieR TSV's `#Column` lines (empty for other files)."""
    out: dict[str, str] = {}
    with open(path, errors="replace") as handle:
        for line in handle:
            if line.strip() and not line.startswith("#"):
                break
            if line.startswith("#Column\t"):
                parts = line.rstrip("\n").split("\t")
                if len(parts) > 3:
                    out[parts[1].strip()] = parts[3].strip()
    return out


def galaxy_positions(frame: pd.DataFrame, source: str, radius_column: str | None = None) -> pd.DataFrame:
    """id, ra, dec (degrees) and petro_radius (arcsec, NaN unless `radius_column`) of every row."""
    from alexnet_jax.data.catalog import ALIASES, find_column, is_text_column, parse_sexagesimal

    columns = list(frame.columns)
    out = pd.DataFrame(index=frame.index)
    id_column = find_column(columns, ALIASES["id"])
    out["id"] = frame[id_column].astype(str).str.strip() if id_column else [f"{i:06d}" for i in range(len(frame))]
    for key, hours in (("ra", True), ("dec", False)):
        name = find_column(columns, ALIASES[key])
        if name is None:
            raise CatalogError(
                f"{source}: no {key} column (looked for {', '.join(ALIASES[key])}); columns: {', '.join(columns[:40])}"
            )
        values = frame[name]
        out[key] = parse_sexagesimal(values, hours) if is_text_column(values) else values.to_numpy(float)
    if radius_column is not None:
        if radius_column not in columns:
            raise CatalogError(f"{source}: radius column {radius_column!r} not found; columns: {', '.join(columns)}")
        radius = pd.to_numeric(frame[radius_column], errors="coerce").to_numpy(float)
        out["petro_radius"] = np.where(radius > 0, radius, np.nan)
    else:
        out["petro_radius"] = np.nan
    return out.reset_index(drop=True)


def load_vote_table(
    release: Release,
    *,
    catalog: str | os.PathLike | None,
    catalog_format: str | None,
    url: str | None,
    cache_dir: str | os.PathLike | None,
    refresh: bool,
    timeout: float,
    log: Callable[[str], None],
) -> tuple[pd.DataFrame, dict[str, str], dict]:
    """(table in file order, VizieR column descriptions, provenance)."""
    from alexnet_jax.data.catalog import read_catalog_file

    if catalog:
        path, fmt, where = Path(catalog), catalog_format, None
    else:
        where = table_url(release.name, url)
        path = download_table(
            where, gz_cache_dir(cache_dir) / release.cached_name, refresh=refresh, timeout=timeout, log=log
        )
        fmt = release.fmt
    frame, _, fmt = read_catalog_file(path, fmt)
    descriptions = vizier_descriptions(path) if fmt == "vizier_tsv" else {}
    provenance = {"path": str(path.absolute()), "url": where, "format": fmt, "sha256": sha256_file(path)}
    return frame, descriptions, provenance


def prepare_galaxy_zoo(
    output: str | os.PathLike,
    *,
    release: str = "gz1",
    vote_rule: str | None = None,
    vote_classes: str | None = None,
    vote_threshold: float | None = None,
    vote_missing: str = "error",
    max_galaxies: int = 0,
    catalog: str | os.PathLike | None = None,
    catalog_format: str | None = None,
    table_url: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    refresh_catalog: bool = False,
    image_dir: str | os.PathLike | None = None,
    radius_column: str | None = None,
    base_url: str = sdss.DEFAULT_SDSS_URL,
    width: int = sdss.DEFAULT_WIDTH,
    fov_factor: float = sdss.DEFAULT_FOV_FACTOR,
    min_scale: float = sdss.MIN_SCALE,
    max_scale: float = sdss.MAX_SCALE,
    default_scale: float = sdss.SDSS_PIXEL_SCALE,
    fixed_scale: float | None = None,
    workers: int = 8,
    rate: float = 5.0,
    retries: int = 5,
    backoff: float = 1.0,
    timeout: float = 30.0,
    on_bad_image: str = "fail",
    overwrite: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> tuple[dict, sdss.FetchSummary]:
    """A Galaxy Zoo table, classed by a vote rule, with SDSS cut-outs -> a prepared set in `output`.

    `max_galaxies` (0: all) keeps the first N classed galaxies in table order: the full tables
    class hundreds of thousands, more than one machine's memory holds as 256 px images.
    """
    from alexnet_jax.data.folder import ingest_folder, staged_output
    from alexnet_jax.data.prepared import write_prepared

    chosen = get_release(release)
    if vote_classes and vote_rule:
        raise LabelError("give --vote_rule or --vote_classes, not both")
    if vote_classes:
        rule = rules.parse_vote_classes(vote_classes, 0.8 if vote_threshold is None else vote_threshold)
    else:
        rule = rules.get_rule(vote_rule or chosen.default_rule).with_threshold(vote_threshold)
    rules.check_threshold(rule.threshold)
    if max_galaxies < 0:
        raise LabelError(f"--gz_max_galaxies={max_galaxies}: give 0 (all) or a positive number")

    with staged_output(output, overwrite=overwrite) as staging:
        frame, descriptions, provenance = load_vote_table(
            chosen,
            catalog=catalog,
            catalog_format=catalog_format,
            url=table_url,
            cache_dir=cache_dir,
            refresh=refresh_catalog,
            timeout=max(timeout, 300.0),
            log=log,
        )
        source = provenance["url"] or provenance["path"]
        votes = rules.vote_fractions(frame, rule, source, missing=vote_missing, descriptions=descriptions)
        classified = rules.classify(votes, rule, source)
        for line in rules.report_lines(rule, classified.report):
            log(line)
        rows = np.flatnonzero(classified.labels >= 0)
        if max_galaxies and len(rows) > max_galaxies:
            rows = rows[:max_galaxies]
            log(f"keeping the first {max_galaxies:,} classed galaxies in table order (--gz_max_galaxies)")
        positions = galaxy_positions(frame, source, radius_column).iloc[rows].reset_index(drop=True)
        unplaced = np.flatnonzero(~np.isfinite(positions["ra"].to_numpy()) | ~np.isfinite(positions["dec"].to_numpy()))
        if len(unplaced):
            raise CatalogError(
                f"{source}: no RA/Dec for classed galaxies at rows {', '.join(map(str, rows[unplaced][:10]))}"
            )
        requests = sdss.requests_from_catalog(
            positions,
            width=width,
            fov_factor=fov_factor,
            min_scale=min_scale,
            max_scale=max_scale,
            default_scale=default_scale,
            fixed_scale=fixed_scale,
        )
        requests = [dataclasses.replace(r, index=int(row)) for r, row in zip(requests, rows, strict=True)]
        image_dir = Path(image_dir) if image_dir else gz_cache_dir(cache_dir) / f"{chosen.name}_cutouts"
        summary = sdss.fetch_for_import(
            requests,
            image_dir,
            on_bad_image=on_bad_image,
            log=log,
            base_url=base_url,
            workers=workers,
            rate=rate,
            retries=retries,
            backoff=backoff,
            timeout=timeout,
            progress=progress,
        )
        result = ingest_folder(
            image_dir,
            positions,
            source=source,
            on_bad_image=on_bad_image,
            paths=sdss.iter_paths(requests, image_dir),
            labels=classified.labels[rows],
            class_names=rule.class_names,
            progress=progress,
        )
        kept = result.metadata["catalog_row"].to_numpy()  # positions within `rows`
        for dropped in result.dropped:
            dropped["row"] = int(rows[dropped["row"]])  # the table's row, as everywhere else
        result.metadata["catalog_row"] = rows[kept]
        for k, column in enumerate(votes.columns.values()):
            result.metadata[column] = votes.fractions[rows[kept], k]
        result.metadata["scale_arcsec_per_px"] = np.array([r.scale for r in requests])[kept]
        report = {**classified.report, "max_galaxies": max_galaxies or None, "fetched_galaxies": int(len(rows))}
        manifest = write_prepared(
            staging,
            result.images,
            result.labels,
            result.metadata,
            name=f"galaxy_zoo_{chosen.name}",
            class_names=rule.class_names,
            source=f"{chosen.citation} ({source}), classes by vote rule {rule.name}, SDSS cut-outs from {base_url}",
            extra={
                "vote_rule": {**rule.to_json(), **report},
                "catalog": {**provenance, "rows": int(len(frame))},
                "cutouts": {
                    "base_url": base_url,
                    "image_dir": str(image_dir.absolute()),
                    "width": width,
                    "fov_factor": fov_factor,
                    "default_scale": default_scale,
                    "fixed_scale": fixed_scale,
                    "radius_column": radius_column,
                    "index_sha256": sdss.index_sha256(image_dir),
                    "fetched": summary.fetched,
                    "reused": summary.reused,
                    "failed": summary.failed,
                },
                "on_bad_image": on_bad_image,
                "dropped": result.dropped,
                "resize": "PIL bilinear to 256x256",
            },
        )
    return manifest, summary
