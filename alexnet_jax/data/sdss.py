"""Colour JPEG cut-outs from the SDSS SkyServer ImgCutout service, fetched politely and resumably.

Scale rule (docs/data.md#cut-out-scale): the field of view is `fov_factor` times the
galaxy's Petrosian R90-like radius, so every galaxy fills the frame the same way; the
default 8.48 is Galaxy Zoo 2's choice (0.02 * petroR90_r arcsec/pixel at 424 pixels).
    scale = clip(fov_factor * R / width, min_scale, max_scale)   [arcsec/pixel]
and `default_scale` (SDSS's native 0.396"/pixel) when R is unknown.

The fetcher: a thread pool (default 8), a shared rate limit (requests/s), retries with
exponential backoff on HTTP errors, time-outs, truncated bodies and non-JPEG answers;
each body is checked (Content-Length, JPEG start/end markers, a full PIL decode) and
written to a temporary name then renamed, so a partial file is never taken as an image.
`cutouts.json` in the output folder records each file's request and sha256, so a re-run
fetches only what is missing, invalid, or was asked for with other parameters.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import http.client
import io
import json
import os
import random
import re
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from alexnet_jax import paper
from alexnet_jax.errors import FetchError, FolderError
from alexnet_jax.toolbox import sha256_bytes, sha256_file, write_bytes_atomic, write_json_atomic

DEFAULT_SDSS_URL = "https://skyserver.sdss.org/dr18/SkyServerWS/ImgCutout/getjpeg"
SDSS_PIXEL_SCALE = 0.396  # arcsec/pixel of the SDSS imaging camera
DEFAULT_FOV_FACTOR = 8.48  # Galaxy Zoo 2: 0.02 * petroR90_r arcsec/pixel x 424 pixels
DEFAULT_WIDTH = 256
MIN_SCALE = 0.1  # arcsec/pixel: the cut-out scale rule clips to [MIN_SCALE, MAX_SCALE]
MAX_SCALE = 2.0
INDEX_NAME = "cutouts.json"
FAILURES_NAME = "failures.json"
USER_AGENT = "alexnet_jax/0.1 (research; SDSS cut-out fetcher)"
_RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}


def cutout_scale(
    radius_arcsec: float | None,
    width: int = DEFAULT_WIDTH,
    *,
    fov_factor: float = DEFAULT_FOV_FACTOR,
    min_scale: float = MIN_SCALE,
    max_scale: float = MAX_SCALE,
    default_scale: float = SDSS_PIXEL_SCALE,
) -> float:
    """Pixel scale (arcsec/pixel) that frames a galaxy of outer radius `radius_arcsec`."""
    if radius_arcsec is None or not np.isfinite(radius_arcsec) or radius_arcsec <= 0:
        return float(default_scale)
    return float(np.clip(fov_factor * float(radius_arcsec) / width, min_scale, max_scale))


def cutout_url(base_url: str, ra: float, dec: float, scale: float, width: int, height: int) -> str:
    query = urllib.parse.urlencode(
        {"ra": f"{ra:.6f}", "dec": f"{dec:.6f}", "scale": f"{scale:.5f}", "width": width, "height": height}
    )
    return f"{base_url}{'&' if '?' in base_url else '?'}{query}"


def safe_name(text: str) -> str:
    """A file-name-safe version of a catalogue id (SDSS names like J155341.74-003807.1 stay as they are)."""
    return re.sub(r"[^A-Za-z0-9.+_-]", "_", str(text)).strip(".") or "galaxy"


@dataclasses.dataclass(frozen=True)
class CutoutRequest:
    """One galaxy's cut-out; `filename` sorts in catalogue order (zero-padded row index first)."""

    index: int
    id: str
    ra: float
    dec: float
    scale: float
    width: int = DEFAULT_WIDTH
    height: int = DEFAULT_WIDTH

    @property
    def filename(self) -> str:
        return f"{self.index:06d}_{safe_name(self.id)}.jpg"

    def params(self) -> dict:
        return {
            "ra": round(self.ra, 6),
            "dec": round(self.dec, 6),
            "scale": round(self.scale, 5),
            "width": self.width,
            "height": self.height,
        }


def requests_from_catalog(
    table,
    *,
    width: int = DEFAULT_WIDTH,
    fov_factor: float = DEFAULT_FOV_FACTOR,
    min_scale: float = MIN_SCALE,
    max_scale: float = MAX_SCALE,
    default_scale: float = SDSS_PIXEL_SCALE,
    fixed_scale: float | None = None,
) -> list[CutoutRequest]:
    """One request per row of a normalised catalogue table (columns id, ra, dec, petro_radius).

    `fixed_scale` overrides the radius rule for every galaxy.
    """
    ra = np.asarray(table["ra"], float)
    dec = np.asarray(table["dec"], float)
    bad = np.flatnonzero(~np.isfinite(ra) | ~np.isfinite(dec))
    if len(bad):
        raise ValueError(f"rows without RA/Dec cannot be fetched: {', '.join(map(str, bad[:10]))}")
    radius = np.asarray(table["petro_radius"], float) if "petro_radius" in table else np.full(len(ra), np.nan)
    out = []
    for i, (galaxy_id, r, d, rad) in enumerate(zip(table["id"], ra, dec, radius, strict=True)):
        scale = (
            fixed_scale
            if fixed_scale
            else cutout_scale(
                rad, width, fov_factor=fov_factor, min_scale=min_scale, max_scale=max_scale, default_scale=default_scale
            )
        )
        out.append(CutoutRequest(i, str(galaxy_id), float(r), float(d), float(scale), width, width))
    return out


def check_jpeg(body: bytes) -> tuple[int, int]:
    """(width, height) of a complete JPEG; FetchError when `body` is not one."""
    if not body.startswith(b"\xff\xd8\xff"):
        snippet = body[:60].decode("ascii", "replace").replace("\n", " ")
        raise FetchError(f"not a JPEG (starts {snippet!r})")
    if not body.rstrip(b"\x00\r\n ").endswith(b"\xff\xd9"):
        raise FetchError("truncated JPEG (no end-of-image marker)")
    from PIL import Image

    try:
        with Image.open(io.BytesIO(body)) as image:
            if image.format != "JPEG":
                raise FetchError(f"not a JPEG (PIL reads {image.format})")
            image.load()
            return image.size
    except FetchError:
        raise
    except Exception as error:  # noqa: BLE001 - PIL raises several types for broken data
        raise FetchError(f"JPEG does not decode: {error}") from None


class RateLimiter:
    """At most `rate` starts per second across threads (rate <= 0: no limit)."""

    def __init__(self, rate: float):
        self.interval = 1.0 / rate if rate and rate > 0 else 0.0
        self._next = time.monotonic()
        self._lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            time.sleep(start - now)


def _download(url: str, timeout: float) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept": "image/jpeg"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            content_type = response.headers.get("Content-Type", "")
            length = response.headers.get("Content-Length")
            body = response.read()
    except urllib.error.HTTPError as error:
        wait = None
        retry_after = error.headers.get("Retry-After") if error.headers else None
        if retry_after and retry_after.strip().isdigit():
            wait = float(retry_after)
        raise FetchError(f"HTTP {error.code} {error.reason}", retry=error.code in _RETRY_STATUS, wait=wait) from None
    except http.client.IncompleteRead as error:
        raise FetchError(f"truncated body ({len(error.partial)} bytes received)") from None
    except TimeoutError as error:
        raise FetchError(f"timed out after {timeout:g} s ({error})") from None
    except urllib.error.URLError as error:
        reason = error.reason
        if isinstance(reason, (socket.timeout, TimeoutError)):
            raise FetchError(f"timed out after {timeout:g} s") from None
        raise FetchError(f"connection failed: {reason}") from None
    except (ConnectionError, http.client.HTTPException, OSError) as error:
        raise FetchError(f"connection failed: {type(error).__name__}: {error}") from None
    if length is not None and length.strip().isdigit() and int(length) != len(body):
        raise FetchError(f"truncated body ({len(body)} of {length} bytes)")
    if not body.startswith(b"\xff\xd8\xff"):
        snippet = body[:60].decode("ascii", "replace").replace("\n", " ")
        raise FetchError(f"not a JPEG (Content-Type {content_type or 'unset'}, starts {snippet!r})")
    return body


@dataclasses.dataclass
class FetchSummary:
    requested: int
    fetched: int  # downloaded in this call
    reused: int  # already present, valid and recorded with the same request
    failed: dict[str, str]  # filename -> reason of the last attempt
    attempts: int  # HTTP requests made
    output_dir: str
    base_url: str

    @property
    def ok(self) -> bool:
        return not self.failed

    def lines(self) -> list[str]:
        out = [
            f"cut-outs: {self.requested} requested, {self.reused} already present, {self.fetched} fetched "
            f"({self.attempts} requests), {len(self.failed)} failed"
        ]
        for name, reason in list(self.failed.items())[:20]:
            out.append(f"  FAILED {name}: {reason}")
        if len(self.failed) > 20:
            out.append(f"  ... and {len(self.failed) - 20} more (see {FAILURES_NAME})")
        return out


def _load_index(output_dir: Path) -> dict:
    path = output_dir / INDEX_NAME
    if not path.exists():
        return {}
    try:
        index = json.loads(path.read_text())
        return index.get("files", {}) if isinstance(index, dict) else {}
    except (json.JSONDecodeError, OSError):
        return {}  # a broken index only costs re-downloads


def _is_done(output_dir: Path, request: CutoutRequest, base_url: str, entry: dict | None) -> bool:
    path = output_dir / request.filename
    if entry is None or not path.exists():
        return False
    if entry.get("params") != request.params() or entry.get("base_url") != base_url:
        return False
    body = path.read_bytes()
    if sha256_bytes(body) != entry.get("sha256"):
        return False
    try:
        check_jpeg(body)
    except FetchError:
        return False
    return True


def fetch_cutouts(
    requests: Sequence[CutoutRequest],
    output_dir: str | os.PathLike,
    *,
    base_url: str = DEFAULT_SDSS_URL,
    workers: int = 8,
    rate: float = 5.0,
    retries: int = 5,
    backoff: float = 1.0,
    max_backoff: float = 60.0,
    timeout: float = 30.0,
    progress: bool = True,
    checkpoint_every: int = 100,
    sleep: Callable[[float], None] = time.sleep,
) -> FetchSummary:
    """Fetch every request into `output_dir`; return a summary (also written to failures.json).

    Attempt k (0-based) of a request that failed waits min(max_backoff, backoff * 2**k)
    times a jitter in [1, 1.25) (or the server's Retry-After) before trying again, up to
    `retries` retries. HTTP 4xx other than 408/425/429 are not retried.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    names = [r.filename for r in requests]
    if len(set(names)) != len(names):
        raise ValueError("two requests share a file name; give each a distinct index")
    for pattern in (".*.part", ".*.tmp"):  # left by an interrupted run; never an image
        for stale in output_dir.glob(pattern):
            stale.unlink()
    index = _load_index(output_dir)
    todo = [r for r in requests if not _is_done(output_dir, r, base_url, index.get(r.filename))]
    reused = len(requests) - len(todo)
    limiter = RateLimiter(rate)
    lock = threading.Lock()
    counters = {"attempts": 0, "fetched": 0, "since_checkpoint": 0}
    failed: dict[str, str] = {}
    jitter = random.Random()

    def save_index() -> None:
        write_json_atomic(output_dir / INDEX_NAME, {"schema": "alexnet_jax.cutouts/1", "files": index}, sort_keys=True)

    def one(request: CutoutRequest) -> None:
        url = cutout_url(base_url, request.ra, request.dec, request.scale, request.width, request.height)
        last = "not attempted"
        for attempt in range(retries + 1):
            if attempt:
                delay = min(max_backoff, backoff * 2 ** (attempt - 1)) * (1 + 0.25 * jitter.random())
                sleep(delay)
            limiter.wait()
            with lock:
                counters["attempts"] += 1
            try:
                body = _download(url, timeout)
                size = check_jpeg(body)
            except FetchError as error:
                last = error.reason
                if not error.retry:
                    break
                if error.wait:
                    sleep(min(max_backoff, error.wait))
                continue
            write_bytes_atomic(output_dir / request.filename, body)
            with lock:
                index[request.filename] = {
                    "id": request.id,
                    "params": request.params(),
                    "base_url": base_url,
                    "sha256": sha256_bytes(body),
                    "bytes": len(body),
                    "size": list(size),
                }
                counters["fetched"] += 1
                counters["since_checkpoint"] += 1
                if counters["since_checkpoint"] >= checkpoint_every:
                    counters["since_checkpoint"] = 0
                    save_index()
            return
        with lock:
            failed[request.filename] = f"{last} (after {attempt + 1} attempt{'s' if attempt else ''}; {url})"
            index.pop(request.filename, None)
        path = output_dir / request.filename
        if path.exists():
            path.unlink()  # an old, now invalid or mismatched file must not pass as this request's image

    bar = None
    if progress and todo:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc="SDSS cut-outs", unit="img")
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers))
    try:
        futures = [pool.submit(one, r) for r in todo]
        for future in concurrent.futures.as_completed(futures):
            future.result()
            if bar is not None:
                bar.update(1)
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)  # Ctrl-C: finish the requests in flight, start no more
        raise
    finally:
        pool.shutdown(wait=True)
        if bar is not None:
            bar.close()
        with lock:
            save_index()
    summary = FetchSummary(
        requested=len(requests),
        fetched=counters["fetched"],
        reused=reused,
        failed=dict(sorted(failed.items())),
        attempts=counters["attempts"],
        output_dir=str(output_dir),
        base_url=base_url,
    )
    write_json_atomic(
        output_dir / FAILURES_NAME,
        {
            "requested": summary.requested,
            "fetched": summary.fetched,
            "reused": summary.reused,
            "attempts": summary.attempts,
            "base_url": base_url,
            "failed": summary.failed,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
        sort_keys=True,
    )
    return summary


def index_sha256(output_dir: str | os.PathLike) -> str | None:
    """sha256 of the folder's cutouts.json (recorded in a prepared set's manifest)."""
    path = Path(output_dir) / INDEX_NAME
    return sha256_file(path) if path.exists() else None


def fetch_for_import(
    requests: Sequence[CutoutRequest], image_dir: Path, *, on_bad_image: str, log: Callable[[str], None], **fetch
) -> FetchSummary:
    """Fetch an import's cut-outs (resumable), report them, and stop if any failed under "fail"."""
    summary = fetch_cutouts(requests, image_dir, **fetch)
    for line in summary.lines():
        log(line)
    if summary.failed and on_bad_image == "fail":
        raise FolderError(
            f"{len(summary.failed)} cut-outs could not be fetched (listed in {Path(image_dir) / FAILURES_NAME}). "
            "Run the command again to retry only those, or pass --on_bad_image=skip to drop their rows."
        )
    return summary


def iter_paths(requests: Iterable[CutoutRequest], output_dir: str | os.PathLike) -> list[Path]:
    return [Path(output_dir) / r.filename for r in requests]


def prepare_nair_abraham(
    output: str | os.PathLike,
    *,
    catalog: str | os.PathLike | None = None,
    catalog_format: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    refresh_catalog: bool = False,
    image_dir: str | os.PathLike | None = None,
    base_url: str = DEFAULT_SDSS_URL,
    width: int = DEFAULT_WIDTH,
    fov_factor: float = DEFAULT_FOV_FACTOR,
    min_scale: float = MIN_SCALE,
    max_scale: float = MAX_SCALE,
    default_scale: float = SDSS_PIXEL_SCALE,
    fixed_scale: float | None = None,
    radius_column: str | None = None,
    workers: int = 8,
    rate: float = 5.0,
    retries: int = 5,
    backoff: float = 1.0,
    timeout: float = 30.0,
    expected_rows: int | None = paper.NUM_EXAMPLES,
    on_row_mismatch: str = "error",
    on_bad_image: str = "fail",
    overwrite: bool = False,
    progress: bool = True,
    vizier=None,
    log: Callable[[str], None] = print,
) -> tuple[dict, FetchSummary]:
    """Catalogue (local or VizieR) + SDSS cut-outs -> a prepared data set in `output`.

    Cut-outs are cached in `image_dir` (default: <cache>/sdss_cutouts) and reused by
    later runs. Rows whose image cannot be had stop the build (`on_bad_image="fail"`,
    re-running resumes the fetch) or are dropped and listed in the manifest ("skip";
    the paper's splits then no longer index the same galaxies).
    """
    from alexnet_jax.data.catalog import check_catalog, default_cache_dir, load_or_fetch_catalog
    from alexnet_jax.data.folder import ingest_folder, staged_output
    from alexnet_jax.data.prepared import write_prepared

    with staged_output(output, overwrite=overwrite) as staging:
        cat = load_or_fetch_catalog(
            catalog,
            cache_dir=cache_dir,
            refresh=refresh_catalog,
            fmt=catalog_format,
            vizier=vizier,
            radius_column=radius_column,
            require_coordinates=True,
        )
        report = check_catalog(
            cat, expected_rows=expected_rows, on_row_mismatch=on_row_mismatch, require_coordinates=True
        )
        for line in report.lines():
            log(line)
        requests = requests_from_catalog(
            cat.table,
            width=width,
            fov_factor=fov_factor,
            min_scale=min_scale,
            max_scale=max_scale,
            default_scale=default_scale,
            fixed_scale=fixed_scale,
        )
        radius_known = int(np.isfinite(cat.table["petro_radius"].to_numpy(float)).sum())
        log(
            f"cut-out scale: {'fixed ' + str(fixed_scale) if fixed_scale else 'radius rule'}; "
            f"radius column {cat.column_map.get('petro_radius')!r} known for {radius_known} of {len(cat)} rows"
        )
        image_dir = (
            Path(image_dir) if image_dir else (Path(cache_dir) if cache_dir else default_cache_dir()) / "sdss_cutouts"
        )
        summary = fetch_for_import(
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
            cat.table,
            source=cat.source,
            on_bad_image=on_bad_image,
            paths=iter_paths(requests, image_dir),
            progress=progress,
        )
        scales = np.array([r.scale for r in requests])
        result.metadata["scale_arcsec_per_px"] = scales[result.metadata["catalog_row"].to_numpy()]
        manifest = write_prepared(
            staging,
            result.images,
            result.labels,
            result.metadata,
            name="nair_abraham",
            class_names=paper.CLASS_NAMES,
            source=f"Nair & Abraham (2010) catalogue ({cat.source}) with SDSS cut-outs from {base_url}",
            extra={
                "catalog": {
                    "source": cat.source,
                    "sha256": cat.sha256,
                    "rows": len(cat),
                    "column_map": cat.column_map,
                    "class_counts": report.class_counts,
                    "paper_class_counts": report.paper_class_counts,
                },
                "cutouts": {
                    "base_url": base_url,
                    "image_dir": str(image_dir.absolute()),
                    "width": width,
                    "height": width,
                    "fov_factor": fov_factor,
                    "min_scale": min_scale,
                    "max_scale": max_scale,
                    "default_scale": default_scale,
                    "fixed_scale": fixed_scale,
                    "index_sha256": index_sha256(image_dir),
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
