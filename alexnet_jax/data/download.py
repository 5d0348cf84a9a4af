"""One large file over HTTP(S), resumable and checked: what a published data file needs.

Bytes go to `<target>.part`; a cut connection (or a later run) resumes from its end with
an HTTP Range request, and a server that ignores Range (200) makes it start over. The
whole file must match the expected sha256 before it is renamed to `target`, and the
source, checksum and size are recorded in `<target>.json`, so a later call trusts a file
of the recorded size without hashing gigabytes again. Standard library only.
"""

from __future__ import annotations

import http.client
import json
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

from alexnet_jax.errors import FetchError
from alexnet_jax.toolbox import sha256_file, write_json_atomic

USER_AGENT = "alexnet_jax data downloader"
BLOCK = 1 << 20
RETRY_STATUS = (408, 425, 429, 500, 502, 503, 504)


def _content_range_start(value: str | None) -> int | None:
    """The first byte of 'bytes START-END/TOTAL' (None when absent or malformed)."""
    if not value or not value.startswith("bytes ") or "-" not in value:
        return None
    first = value[6:].split("-", 1)[0].strip()
    return int(first) if first.isdigit() else None


def _download_once(url: str, part: Path, timeout: float, bar) -> None:
    """Append the rest of `url` to `part` (Range from its size); FetchError if cut short or refused."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": USER_AGENT}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as response:
            resumed = response.status == 206
            if resumed and _content_range_start(response.headers.get("Content-Range")) != have:
                raise FetchError(f"server sent range {response.headers.get('Content-Range')!r} for byte {have}")
            start = have if resumed else 0  # 200: the server ignored Range, start over
            length = response.headers.get("Content-Length")
            length = int(length) if length and length.strip().isdigit() else None
            if bar is not None:
                bar.reset(total=start + length if length else None)
                bar.update(start)
            received = 0
            with open(part, "ab" if resumed else "wb") as handle:
                while block := response.read(BLOCK):
                    handle.write(block)
                    received += len(block)
                    if bar is not None:
                        bar.update(len(block))
            if length is not None and received < length:  # read(n) returns b"" when the peer hangs up
                raise FetchError(f"connection cut after {received:,} of {length:,} bytes (kept)")
    except urllib.error.HTTPError as error:
        if error.code == 416 and have:  # nothing after byte `have`: the .part is whole already
            return
        raise FetchError(f"HTTP {error.code} {error.reason}", retry=error.code in RETRY_STATUS) from None
    except http.client.IncompleteRead as error:
        raise FetchError(f"connection cut ({len(error.partial):,} bytes of this request kept)") from None
    except (TimeoutError, urllib.error.URLError, http.client.HTTPException, OSError) as error:
        raise FetchError(f"connection failed: {type(error).__name__}: {error}") from None


def is_recorded(target: Path, sha256: str) -> bool:
    """Whether `target` exists with the size its record gives for this checksum (no hashing)."""
    record = Path(f"{target}.json")
    if not target.exists() or not record.exists():
        return False
    try:
        known = json.loads(record.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return known.get("sha256") == sha256.lower() and known.get("bytes") == target.stat().st_size


def download_file(
    url: str,
    target: str | os.PathLike,
    *,
    sha256: str,
    refresh: bool = False,
    timeout: float = 60.0,
    retries: int = 5,
    backoff: float = 1.0,
    progress: bool = True,
    own_copy: str = "give its path",
) -> Path:
    """`target`, downloaded from `url` unless already there with this sha256; see the module docstring.

    `own_copy` ends the failure message: how the caller takes a file downloaded by hand.
    """
    target, expected = Path(target), sha256.lower()
    part = Path(f"{target}.part")
    record = Path(f"{target}.json")
    if target.exists() and not refresh:
        if is_recorded(target, expected):
            return target
        if sha256_file(target) == expected:
            write_json_atomic(record, {"url": url, "sha256": expected, "bytes": target.stat().st_size})
            return target
    target.parent.mkdir(parents=True, exist_ok=True)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(desc=target.name, unit="B", unit_scale=True)
    try:
        for attempt in range(retries + 1):
            try:
                _download_once(url, part, timeout, bar)
                break
            except FetchError as error:
                if not error.retry or attempt == retries:
                    have = part.stat().st_size if part.exists() else 0
                    kept = f"{part} keeps the {have:,} bytes received: run again to resume there" if have else ""
                    raise FetchError(
                        f"could not download {url} ({error.reason}; {attempt + 1} attempt(s)); "
                        f"{kept or 'run again later'}, or download the file yourself and {own_copy}",
                        retry=False,
                    ) from None
                time.sleep(backoff * 2**attempt)
    finally:
        if bar is not None:
            bar.close()
    found = sha256_file(part)
    if found != expected:
        size = part.stat().st_size
        part.unlink()
        raise FetchError(
            f"{url}: the download ({size:,} bytes) has sha256 {found}, not the expected {expected}; "
            "it was removed: run again to download it afresh, or check the URL",
            retry=False,
        )
    os.replace(part, target)
    fetched = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    write_json_atomic(record, {"url": url, "sha256": found, "bytes": target.stat().st_size, "fetched": fetched})
    return target
