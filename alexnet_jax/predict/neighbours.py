"""Galaxies like this one: the exact k nearest neighbours of one galaxy in an embedding file.

    python -m alexnet_jax.predict.neighbours --embeddings=emb.parquet --id=1237648720693755918 --k=10
    python -m alexnet_jax.predict.neighbours --embeddings=emb.npy --image=cutout.jpg --output=like_it.csv
    python -m alexnet_jax.predict.neighbours --embeddings=emb.parquet --id=... --metric=euclidean

The file is what `embed` writes: Parquet with row, id, ra, dec, status and an `embedding`
fixed-size list column, or `X.npy` (N, D) float32 beside `X.rows.parquet` (row, id, ra, dec, status).
The query is a row of the file named by its `id` (that row itself is left out of the answer), or an
image file embedded with the checkpoint the file's metadata records (`identity.checkpoints`, the
same preprocessing through `predict.engine.Forward`), so the answer is in the file's own space.

The search is exact: every ok row is scored (cosine similarity by default, highest first;
`--metric=euclidean`, lowest first), chunk by chunk, so memory holds one chunk of rows (`--chunk_rows`)
beside the query and the k best so far, whatever the file's size. Ties go to the lower row, so
the answer does not depend on the chunk size. Rows whose status is not "ok", or whose embedding
is missing or not finite (failed cut-outs), are skipped; under cosine, zero vectors too.

Cost: one pass over the file, O(N D) per query, bound by reading and decoding the N x D floats;
memory does not grow with N. Measured with generated embeddings of D = 1280 (ReLU-like), cosine,
k = 10, the default 16,384-row chunks, on the 2-core AMD EPYC VM of docs/neighbours.md (shared,
load average 5): `.npy` 1.3 s at N = 10^5 and 12.9 s at N = 10^6 (5.1 GB), peak resident memory
0.4 GB at both; Parquet 5.2 s and 46 s (decoding the list column dominates), 0.85 GB at both.
Many queries over one file, or files far beyond 10^7 rows, want an index (FAISS, an approximate
method); this exact pass is the reference such an index is checked against.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from alexnet_jax.errors import PredictError

METRICS = ("cosine", "euclidean")
DEFAULT_CHUNK_ROWS = 16_384
ROW_COLUMNS = ("row", "id", "ra", "dec", "status")
METADATA_KEY = b"alexnet_jax"


@dataclasses.dataclass
class Chunk:
    """Consecutive rows of an embedding file: their row columns and (n, D) float32 embeddings."""

    rows: np.ndarray  # int64 row numbers
    ids: np.ndarray  # object (str)
    ra: np.ndarray
    dec: np.ndarray
    usable: np.ndarray  # bool: status ok and a finite embedding
    embeddings: np.ndarray | None  # None when only the row columns were read


class EmbeddingFile:
    """One embedding file, either format, read in chunks of at most `chunk_rows` rows."""

    def __init__(self, path: str | os.PathLike, chunk_rows: int = DEFAULT_CHUNK_ROWS):
        import pyarrow.parquet as pq

        if chunk_rows < 1:
            raise PredictError(f"--chunk_rows must be at least 1, got {chunk_rows}")
        self.path, self.chunk_rows = Path(path), chunk_rows
        if not self.path.exists():
            raise PredictError(f"--embeddings={self.path}: no such file; give the Parquet or .npy that embed wrote")
        self.matrix = None
        if self.path.suffix == ".npy":
            self.rows_path = self.path.with_name(self.path.name[: -len(".npy")] + ".rows.parquet")
            if not self.rows_path.exists():
                raise PredictError(
                    f"--embeddings={self.path}: its row file {self.rows_path.name} is missing; "
                    "embed writes both, keep them side by side"
                )
            self.matrix = NpyRows(self.path)
        else:
            self.rows_path = self.path
        try:
            self.parquet = pq.ParquetFile(self.rows_path, pre_buffer=False)  # pre-buffering kept every chunk read
        except Exception as error:  # noqa: BLE001 - pyarrow raises several kinds for a file that is not Parquet
            raise PredictError(f"--embeddings={self.rows_path}: not a Parquet file ({error})") from None
        schema = self.parquet.schema_arrow
        missing = [c for c in ROW_COLUMNS if c not in schema.names]
        if self.matrix is None and "embedding" not in schema.names:
            missing.append("embedding")
        if missing:
            raise PredictError(
                f"--embeddings={self.rows_path}: no column(s) {', '.join(missing)}; is it an embedding file from embed?"
            )
        self.num_rows = self.parquet.metadata.num_rows
        if self.matrix is not None:
            self.dim = int(self.matrix.shape[1])
            if self.matrix.shape[0] != self.num_rows:
                raise PredictError(
                    f"--embeddings={self.path}: {self.matrix.shape[0]} embeddings for {self.num_rows} rows "
                    f"in {self.rows_path.name}; the two files are from different runs"
                )
        else:
            self.dim = int(schema.field("embedding").type.list_size)
        raw = (schema.metadata or {}).get(METADATA_KEY)
        self.metadata = json.loads(raw) if raw else {}

    def chunks(self, embeddings: bool = True) -> Iterator[Chunk]:
        """Every row in order, `chunk_rows` at a time (fewer at row-group ends)."""
        columns = list(ROW_COLUMNS) + (["embedding"] if embeddings and self.matrix is None else [])
        start = 0
        for batch in self.parquet.iter_batches(batch_size=self.chunk_rows, columns=columns):
            n = batch.num_rows
            status = batch.column("status").to_numpy(zero_copy_only=False)
            usable = status == "ok"
            x = None
            if embeddings:
                if self.matrix is not None:
                    x = self.matrix.read(start, n)
                else:
                    x, present = _fixed_size_lists(batch.column("embedding"), self.dim)
                    usable &= present
                usable &= np.isfinite(x).all(axis=1)
            yield Chunk(
                rows=batch.column("row").to_numpy(zero_copy_only=False).astype(np.int64),
                ids=batch.column("id").to_numpy(zero_copy_only=False).astype(str).astype(object),
                ra=batch.column("ra").to_numpy(zero_copy_only=False).astype(np.float64),
                dec=batch.column("dec").to_numpy(zero_copy_only=False).astype(np.float64),
                usable=usable,
                embeddings=x,
            )
            start += n

    def find(self, wanted_id: str) -> tuple[int, np.ndarray]:
        """(row, embedding) of the first row whose id is `wanted_id`; one line with near matches if none.
        Reads the row columns only, then the one embedding."""
        near = NearMatches(wanted_id)
        start = 0
        for chunk in self.chunks(embeddings=False):
            hits = np.flatnonzero(chunk.ids == wanted_id)
            if len(hits):
                i = hits[0]
                embedding = self.embedding_at(start + i)
                if not chunk.usable[i] or not np.isfinite(embedding).all():
                    raise PredictError(
                        f"--id={wanted_id}: row {chunk.rows[i]} of {self.path} has no usable embedding "
                        "(its status is not ok); choose another galaxy"
                    )
                return int(chunk.rows[i]), embedding
            near.add(chunk.ids)
            start += len(chunk.rows)
        hint = f"; near matches: {', '.join(near.best())}" if near.best() else ""
        raise PredictError(f"--id={wanted_id}: no row of {self.path} has this id{hint}")

    def embedding_at(self, position: int) -> np.ndarray:
        """The embedding of the file's `position`-th row (NaN where it is missing), reading one chunk."""
        if self.matrix is not None:
            return self.matrix.read(position, 1)[0]
        metadata, first = self.parquet.metadata, 0
        for group in range(metadata.num_row_groups):
            size = metadata.row_group(group).num_rows
            if position < first + size:
                break
            first += size
        batches = self.parquet.iter_batches(batch_size=self.chunk_rows, row_groups=[group], columns=["embedding"])
        for batch in batches:
            if position < first + batch.num_rows:
                x, _ = _fixed_size_lists(batch.column("embedding"), self.dim)
                return x[position - first].copy()
            first += batch.num_rows
        raise IndexError(position)  # pragma: no cover - position < num_rows


class NearMatches:
    """The ids most like a missing one (difflib's ratio, at least `cutoff`; ties to the smaller id),
    kept while the file is read: the cut-off rises to the n-th best so far, so most ids cost a length check."""

    def __init__(self, wanted: str, n: int = 3, cutoff: float = 0.6):
        self.matcher = difflib.SequenceMatcher()
        self.matcher.set_seq2(wanted)
        self.n, self.cutoff, self.found = n, cutoff, {}

    def add(self, ids) -> None:
        m = self.matcher
        for candidate in ids:
            m.set_seq1(candidate)
            if m.real_quick_ratio() >= self.cutoff and m.quick_ratio() >= self.cutoff:
                ratio = m.ratio()
                if ratio >= self.cutoff and candidate not in self.found:
                    self.found[candidate] = ratio
                    if len(self.found) > self.n:
                        del self.found[max(self.found, key=lambda c: (-self.found[c], c))]
                    if len(self.found) == self.n:
                        self.cutoff = min(self.found.values())

    def best(self) -> list[str]:
        return sorted(self.found, key=lambda c: (-self.found[c], c))


class NpyRows:
    """Rows of a 2-D .npy file read with plain file reads, a range at a time: unlike a memory map,
    the pages read do not stay in the process (its resident memory stays one chunk)."""

    def __init__(self, path: Path):
        self.path = path
        try:
            with open(path, "rb") as handle:
                version = np.lib.format.read_magic(handle)
                header = (
                    np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                )
                shape, fortran, dtype = header(handle)
                self.offset = handle.tell()
        except ValueError as error:
            raise PredictError(f"--embeddings={path}: not a NumPy array file ({error})") from None
        if len(shape) != 2 or fortran or dtype.kind != "f":
            raise PredictError(
                f"--embeddings={path}: holds {'Fortran-order ' if fortran else ''}{dtype} of shape {shape}; "
                "embed writes a (rows, D) float32 array"
            )
        self.shape, self.dtype = shape, dtype

    def read(self, start: int, count: int) -> np.ndarray:
        count = max(0, min(count, self.shape[0] - start))
        with open(self.path, "rb") as handle:
            handle.seek(self.offset + start * self.shape[1] * self.dtype.itemsize)
            x = np.fromfile(handle, dtype=self.dtype, count=count * self.shape[1])
        return x.reshape(count, self.shape[1]).astype(np.float32, copy=False)


def _fixed_size_lists(column, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, dim) float32 values of a fixed-size list column (null entries as NaN) and which are present."""
    n = len(column)
    values = column.values.slice(column.offset * dim, n * dim).to_numpy(zero_copy_only=False)
    x = np.asarray(values, dtype=np.float32).reshape(n, dim)
    present = np.asarray(column.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    if not present.all():
        x = x.copy()
        x[~present] = np.nan
    return x, present


def scores(x: np.ndarray, query: np.ndarray, metric: str, block: int = 2048) -> np.ndarray:
    """Per row of `x`: cosine similarity with `query` (NaN for a zero row), or the Euclidean distance.

    In float64, each row summed on its own (NumPy's pairwise sum along a row), so a row's score does
    not depend on which other rows share its chunk: the answer is the same for every --chunk_rows.
    Converted `block` rows at a time, so the float64 copies stay small beside the chunk.
    """
    q64 = query.astype(np.float64)
    q_norm = np.sqrt((q64 * q64).sum())
    out = np.empty(len(x), np.float64)
    for start in range(0, len(x), block):
        x64 = x[start : start + block].astype(np.float64)
        if metric == "cosine":
            norms = np.sqrt((x64 * x64).sum(axis=1))
            with np.errstate(invalid="ignore", divide="ignore"):
                out[start : start + block] = (x64 * q64).sum(axis=1) / (norms * q_norm)
        else:
            diff = x64 - q64
            out[start : start + block] = np.sqrt((diff * diff).sum(axis=1))
    return out


def nearest(
    file: EmbeddingFile, query: np.ndarray, k: int = 10, metric: str = "cosine", exclude_row: int | None = None
):
    """The k rows closest to `query`, best first (ties: lower row first), as a pandas DataFrame with
    rank, row, id, ra, dec and `similarity` (cosine) or `distance` (euclidean)."""
    import pandas as pd

    if metric not in METRICS:
        raise PredictError(f"--metric={metric}: use {' or '.join(METRICS)}")
    if k < 1:
        raise PredictError(f"--k must be at least 1, got {k}")
    query = np.asarray(query, dtype=np.float32).reshape(-1)
    if query.shape[0] != file.dim:
        raise PredictError(f"the query has {query.shape[0]} features but {file.path} holds {file.dim} per row")
    if not np.isfinite(query).all() or (metric == "cosine" and not np.any(query)):
        raise PredictError("the query's embedding is zero or not finite, so no similarity is defined")
    sign = -1.0 if metric == "cosine" else 1.0  # sort keys ascending: best first
    best = {"key": np.empty(0), "row": np.empty(0, np.int64), "score": np.empty(0), "id": [], "ra": [], "dec": []}
    for chunk in file.chunks(embeddings=True):
        keep = chunk.usable.copy()
        if exclude_row is not None:
            keep &= chunk.rows != exclude_row
        if not keep.any():
            continue
        score = scores(chunk.embeddings[keep], query, metric)
        index = np.flatnonzero(keep)
        finite = np.isfinite(score)  # cosine of a zero row
        score, index = score[finite], index[finite]
        key = sign * score
        if len(key) > k:  # every row tied with the k-th best stays, so the tie rule decides below
            threshold = np.partition(key, k - 1)[k - 1]
            take = key <= threshold
            key, score, index = key[take], score[take], index[take]
        merged_key = np.concatenate([best["key"], key])
        merged_row = np.concatenate([best["row"], chunk.rows[index]])
        order = np.lexsort((merged_row, merged_key))[:k]
        pool_id = list(best["id"]) + list(chunk.ids[index])
        pool_ra = np.concatenate([best["ra"], chunk.ra[index]])
        pool_dec = np.concatenate([best["dec"], chunk.dec[index]])
        best = {
            "key": merged_key[order],
            "row": merged_row[order],
            "score": np.concatenate([best["score"], score])[order],
            "id": [pool_id[i] for i in order],
            "ra": pool_ra[order],
            "dec": pool_dec[order],
        }
    column = "similarity" if metric == "cosine" else "distance"
    return pd.DataFrame(
        {
            "rank": np.arange(1, len(best["row"]) + 1),
            "row": best["row"].astype(np.int64),
            "id": best["id"],
            "ra": np.asarray(best["ra"], np.float64),
            "dec": np.asarray(best["dec"], np.float64),
            column: np.asarray(best["score"], np.float64),
        }
    )


def embed_image(file: EmbeddingFile, image_path: str | os.PathLike, checkpoint: str | None = None) -> np.ndarray:
    """The image's features from the checkpoint the file was embedded with (or `checkpoint`), checked
    to be the same weights the file records, through the same preprocessing."""
    from alexnet_jax.data.folder import load_image
    from alexnet_jax.data.prepared import IMAGE_SIZE
    from alexnet_jax.errors import BadImageError
    from alexnet_jax.predict.engine import Forward
    from alexnet_jax.predict.members import load_members

    identity = file.metadata.get("identity") or {}
    recorded = list(identity.get("checkpoints") or [])
    chosen = [checkpoint] if checkpoint else recorded[:1]
    if not chosen:
        raise PredictError(
            f"--image: {file.path} records no checkpoint in its metadata (identity.checkpoints); pass --checkpoint"
        )
    members, _ = load_members(chosen)
    expected = list(identity.get("weights_sha256") or [])
    if expected and members[0].weights_sha256 not in expected:
        raise PredictError(
            f"--image: the weights at {chosen[0]} (sha256 {members[0].weights_sha256[:12]}...) are not those "
            f"{file.path} was embedded with ({expected[0][:12]}...); pass --checkpoint= the checkpoint that made it"
        )
    try:
        pixels = load_image(image_path, size=IMAGE_SIZE)
    except (BadImageError, FileNotFoundError) as error:
        raise PredictError(f"--image={image_path}: {error}") from None
    forward = Forward(members, features=True, batch_size=1)
    features = np.asarray(forward(pixels[None], 0)["features"][0], dtype=np.float32)
    return features


def format_table(table) -> str:
    """The answer as aligned text, one galaxy a line."""
    return table.to_string(index=False, float_format=lambda v: f"{v:.6f}")


def define_flags() -> None:
    from absl import flags

    flags.DEFINE_string("embeddings", None, "An embedding file from embed: .parquet, or X.npy (+ X.rows.parquet).")
    flags.DEFINE_string("id", None, "The query: the id of a row of the file (that row is left out of the answer).")
    flags.DEFINE_string("image", None, "The query: an image file, embedded with the file's checkpoint.")
    flags.DEFINE_string("checkpoint", None, "--image: embed with this checkpoint instead of the file's.")
    flags.DEFINE_integer("k", 10, "How many neighbours.")
    flags.DEFINE_enum("metric", "cosine", list(METRICS), "cosine similarity (highest first) or euclidean distance.")
    flags.DEFINE_integer("chunk_rows", DEFAULT_CHUNK_ROWS, "Rows read at a time (bounds the memory).")
    flags.DEFINE_string("output", None, "Also write the table as CSV here.")


def main(argv) -> int:
    from absl import flags

    from alexnet_jax import cli
    from alexnet_jax.toolbox import atomic_path

    cli.quiet_library_logs()
    FLAGS = flags.FLAGS
    if len(argv) > 1:
        return cli.report_error(f"unexpected arguments: {' '.join(argv[1:])}")
    if not FLAGS.embeddings:
        return cli.report_error("--embeddings is required: the file embed wrote")
    if (FLAGS.id is None) == (FLAGS.image is None):
        return cli.report_error("give exactly one query: --id=<a row's id> or --image=<an image file>")
    try:
        file = EmbeddingFile(FLAGS.embeddings, FLAGS.chunk_rows)
        if FLAGS.id is not None:
            row, query = file.find(FLAGS.id)
            what = f"row {row} (id {FLAGS.id})"
        else:
            row, query = None, embed_image(file, FLAGS.image, FLAGS.checkpoint)
            what = FLAGS.image
        table = nearest(file, query, FLAGS.k, FLAGS.metric, exclude_row=row)
    except PredictError as error:
        return cli.report_error(error)
    print(f"the {len(table)} galaxies most like {what} among {file.num_rows} rows ({FLAGS.metric}):")
    print(format_table(table))
    if FLAGS.output:
        with atomic_path(FLAGS.output) as tmp:
            table.to_csv(tmp, index=False)
        print(f"wrote {FLAGS.output}")
    return cli.EXIT_OK


def run() -> None:
    """`python -m alexnet_jax.predict.neighbours`."""
    from absl import app

    define_flags()
    app.run(lambda argv: sys.exit(main(argv)))


if __name__ == "__main__":
    run()
