"""The small helpers every layer shares: atomic writes, a background writer, sha256, durations,
package versions.

Everything here is standard library only, so any module (the data tools without JAX
included) can use it. Writes are atomic: a reader sees the old file or directory or the new
one, never half of one, and a crash mid-write leaves the old one in place.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

_CHUNK = 1 << 22


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary file beside `path`; when the block succeeds it replaces `path`.

    The file is flushed to disk before the rename and made readable as the umask allows
    (mkstemp's own 0600 would hide results from the rest of a shared cluster). The name is
    unique, so threads and processes may write siblings at once.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: str | os.PathLike, obj: Any, *, indent: int = 1, sort_keys: bool = False) -> None:
    """JSON with NaN and infinity refused: they are not JSON, and readers choke on them."""
    write_text_atomic(path, json.dumps(obj, indent=indent, sort_keys=sort_keys, allow_nan=False) + "\n")


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike, before_swap: Callable[[], None] | None = None) -> Iterator[Path]:
    """Yield an empty staging directory beside `path`; when the block succeeds it becomes `path`.

    An existing `path` is replaced as a whole and deleted only after the new one is in place.
    `before_swap` runs just before the swap and may raise to cancel it (say, when the target
    filled up meanwhile). On any failure the staging directory is removed.
    """
    path = Path(path).absolute()
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        os.chmod(staging, 0o777 & ~_umask())  # mkdtemp makes it private; the result should not be
        yield staging
        if before_swap is not None:
            before_swap()
        if path.exists():
            retired = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".old"))
            os.replace(path, retired / "x")
            os.replace(staging, path)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(staging, path)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def format_duration(seconds: float) -> str:
    """'1d02h03m', '1h02m' or '3m05s': as long as it needs to be, no longer."""
    seconds = int(max(seconds, 0))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h{minutes:02d}m"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{seconds:02d}s"


def package_versions(names: Iterable[str]) -> dict[str, str]:
    """Installed versions of the named distributions; absent ones are left out."""
    import importlib.metadata as metadata

    versions = {}
    for name in names:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return versions


class BackgroundWriter:
    """One thread that runs file writes in the order they were queued, off the training loop.

    A failed write is raised in the caller's thread at the next `submit` or `flush`, so a full
    disk stops training with its own error instead of being lost. At most `max_pending` writes
    wait at once; `submit` blocks beyond that, so a slow disk slows training rather than
    filling memory with snapshots.
    """

    def __init__(self, max_pending: int = 8):
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="alexnet_jax-writer")
        self._slots = threading.Semaphore(max_pending)
        self._futures: list[concurrent.futures.Future] = []

    def submit(self, fn: Callable, *args) -> None:
        self.raise_errors()
        self._slots.acquire()
        future = self._pool.submit(fn, *args)
        future.add_done_callback(lambda _: self._slots.release())
        self._futures.append(future)

    def raise_errors(self) -> None:
        pending = []
        for future in self._futures:
            if not future.done():
                pending.append(future)
            elif future.exception() is not None:
                raise future.exception()
        self._futures = pending

    def flush(self) -> None:
        """Wait for every queued write; raise the first that failed."""
        for future in self._futures:
            future.result()
        self._futures = []

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._pool.shutdown(wait=True)
