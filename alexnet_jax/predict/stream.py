"""The loop of `predict` and `embed`: source -> decode (a thread ahead) -> Forward -> part files.

A reader thread decodes each part's images a batch at a time into a queue of two batches, while
another fetches the next part's cut-outs, so the device waits on neither and memory holds at most
a few batches whatever the input's size. The main thread runs the forward pass, keeps only the numbers of the
part in progress, and commits each finished part to the PartStore (atomically): a job killed at
any moment loses at most the part in progress. Rows without an image (their status says why) get
NaN numbers; the batch is still computed whole, so the other rows' numbers do not depend on which
images failed. A tqdm bar counts rows per second.
"""

from __future__ import annotations

import dataclasses
import queue
import sys
import threading
import time
from collections.abc import Callable

import numpy as np

from alexnet_jax.predict.output import PartStore

QUEUE_BATCHES = 2
_DONE = object()


@dataclasses.dataclass(frozen=True)
class Columns:
    """How a part's table is built: predictions (class probabilities and uncertainty) or embeddings."""

    command: str  # "predict" or "embed"
    class_names: tuple[str, ...]
    constants: tuple[tuple[str, str], ...] = ()  # predict's per-row identity columns (model, checkpoints, ...)
    labelled: bool = False  # a true_class column (a labelled prepared set)

    def table(self, rows, statuses: list[str], outputs: dict[str, np.ndarray]):
        """rows (row, id, ra, dec [, true_class]) + statuses + the forward outputs -> a pyarrow Table."""
        import pyarrow as pa

        n = rows.num_rows
        ok = np.array([s == "ok" for s in statuses], bool)
        columns = {name: rows[name] for name in ("row", "id", "ra", "dec")}
        if self.command == "embed":
            features = np.asarray(outputs["features"], np.float32)
            features = features.reshape(n, features.shape[-1]).copy()
            features[~ok] = np.nan
            flat = pa.array(features.reshape(-1), pa.float32())
            columns["status"] = pa.array(statuses, pa.string())
            columns["embedding"] = pa.FixedSizeListArray.from_arrays(flat, features.shape[1])
            return pa.table(columns)
        probabilities = np.asarray(outputs["probabilities"], np.float32).reshape(n, len(self.class_names)).copy()
        probabilities[~ok] = np.nan
        for k, name in enumerate(self.class_names):
            columns[f"p_{name}"] = pa.array(probabilities[:, k], pa.float32())
        best = probabilities.argmax(1) if n else np.zeros(0, int)
        predicted = [self.class_names[b] if good else None for b, good in zip(best, ok, strict=True)]
        columns["predicted_class"] = pa.array(predicted, pa.string())
        columns["max_probability"] = pa.array(probabilities.max(1) if n else np.zeros(0, np.float32), pa.float32())
        for name in ("entropy", "mutual_information"):
            values = np.asarray(outputs[name], np.float32).reshape(n).copy()
            values[~ok] = np.nan
            columns[name] = pa.array(values, pa.float32())
        columns["status"] = pa.array(statuses, pa.string())
        if self.labelled:
            columns["true_class"] = rows["true_class"]
        for name, value in self.constants:
            columns[name] = pa.array([value] * n, pa.string())
        return pa.table(columns)


@dataclasses.dataclass
class StreamStats:
    parts: int  # in this job (its shard)
    reused: int  # finished by an earlier run of the same job
    computed_rows: int
    seconds: float


def _reader(source, parts, batch_size: int, out: queue.Queue, stop: threading.Event) -> None:
    """Put (part index, batch start, images, statuses) for every batch of `parts`, then _DONE."""

    def put(item) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    try:
        fetched = _Background(source.prefetch, *parts[0])
        for index, (start, stop_row) in enumerate(parts):
            fetched.result()
            if index + 1 < len(parts):  # the next part's cut-outs download while this one is decoded
                fetched = _Background(source.prefetch, *parts[index + 1])
            for batch_start in range(start, stop_row, batch_size):
                batch_stop = min(batch_start + batch_size, stop_row)
                images, statuses = source.read(batch_start, batch_stop)
                if not put((index, batch_start, images, statuses)):
                    return
        put(_DONE)
    except BaseException as error:  # noqa: BLE001 - handed to the main thread, which raises it
        put(error)


class _Background:
    """fn(*args) in a daemon thread (an interrupted job does not wait for a download to end)."""

    def __init__(self, fn, *args):
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(fn, args), daemon=True, name="alexnet_jax-fetch")
        self.thread.start()

    def _run(self, fn, args) -> None:
        try:
            fn(*args)
        except BaseException as error:  # noqa: BLE001 - raised again by result()
            self.error = error

    def result(self) -> None:
        self.thread.join()
        if self.error is not None:
            raise self.error


def run(
    source,
    forward: Callable[[np.ndarray, int], dict],
    store: PartStore,
    parts: list[tuple[int, int]],
    columns: Columns,
    *,
    batch_size: int,
    progress: bool = True,
    after_part: Callable[[int], None] | None = None,
) -> StreamStats:
    """Compute every part of `parts` that `store` lacks. `forward(images, batch_index)` is the
    engine's Forward; `after_part(count)` is called after each committed part (tests stop there)."""
    todo = [part for part in parts if not store.done(*part)]
    began = time.perf_counter()
    stats = StreamStats(len(parts), len(parts) - len(todo), 0, 0.0)
    if not todo:
        return stats
    items: queue.Queue = queue.Queue(maxsize=QUEUE_BATCHES)
    stop = threading.Event()
    thread = threading.Thread(target=_reader, args=(source, todo, batch_size, items, stop), daemon=True,
                              name="alexnet_jax-decode")  # fmt: skip
    bar = None
    if progress:
        from tqdm.auto import tqdm

        total = sum(b - a for a, b in todo)
        bar = tqdm(total=total, unit="row", unit_scale=True, desc="predict" if columns.command == "predict"
                   else "embed", file=sys.stderr, mininterval=1.0 if sys.stderr.isatty() else 30.0)  # fmt: skip
    thread.start()
    pending: dict[str, list] = {}
    statuses: list[str] = []
    try:
        while True:
            item = items.get()
            if item is _DONE:
                break
            if isinstance(item, BaseException):
                raise item
            index, batch_start, images, batch_statuses = item
            outputs = forward(images, batch_start // batch_size)
            for name, value in outputs.items():
                pending.setdefault(name, []).append(np.asarray(value))
            statuses += batch_statuses
            start, stop_row = todo[index]
            if batch_start + len(images) < stop_row:
                continue
            merged = {name: np.concatenate(values) for name, values in pending.items()}
            store.write(start, stop_row, columns.table(source.rows(start, stop_row), statuses, merged))
            stats.computed_rows += stop_row - start
            pending, statuses = {}, []
            if bar is not None:
                bar.update(stop_row - start)
            if after_part is not None:
                after_part(stats.reused + index + 1)
    finally:
        stop.set()
        thread.join(timeout=60)
        if bar is not None:
            bar.close()
    stats.seconds = time.perf_counter() - began
    return stats
