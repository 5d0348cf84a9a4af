"""Where `predict` and `embed` write: shards, resumable parts, the final file and its metadata.

Batches are global: batch b holds rows [b*B, (b+1)*B) of the whole input, and `--shard=i/n`
takes a contiguous range of whole batches, so the shards' rows union to the input and a row's
numbers never depend on the sharding. The rows of a job are cut into parts (whole batches);
each finished part is one Parquet file in `<output>.partial/`, written atomically, beside a
`state.json` holding the job's fingerprint (a sha256 of everything that changes values: the
input, the members' weights, sampling, batch size, shard, versions). A rerun of the same job
skips the finished parts; another job's folder or final file is refused and left untouched.
When every part is there they are merged, one part at a time, into the final file (atomic),
and the folder is removed. The metadata holds no timestamps, so a resumed job's file equals an
uninterrupted one's byte for byte.

Final files: `.parquet` (metadata in the schema's `alexnet_jax` key) or `.csv` (metadata in
`<output>.meta.json`) for predictions; `.parquet` (an `embedding` fixed-size-list column) or
`.npy` ((N, D) float32 plus `<stem>.rows.parquet` with the rows and the metadata) for embeddings.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np

from alexnet_jax.errors import PredictError
from alexnet_jax.toolbox import atomic_path, write_json_atomic

METADATA_KEY = b"alexnet_jax"
SCHEMAS = {"predict": "alexnet_jax.predictions/1", "embed": "alexnet_jax.embeddings/1"}
STATE_SCHEMA = "alexnet_jax.predict_partial/1"
FORMATS = {"predict": {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"},
           "embed": {".parquet": "parquet", ".pq": "parquet", ".npy": "npy"}}  # fmt: skip


# ---- shards and parts
def parse_shard(text: str | None) -> tuple[int, int] | None:
    """'i/n' -> (i, n) with 0 <= i < n; None or '' -> None (the whole input)."""
    if not text:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match or int(match.group(2)) == 0 or int(match.group(1)) >= int(match.group(2)):
        raise PredictError(
            f"--shard={text}: not a shard; give i/n with 0 <= i < n (e.g. --shard=0/4 ... --shard=3/4, "
            "or --shard=$SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT)"
        )
    return int(match.group(1)), int(match.group(2))


def shard_rows(num_rows: int, batch_size: int, shard: tuple[int, int] | None) -> tuple[int, int]:
    """The rows [start, stop) of shard i of n: a contiguous range of whole global batches."""
    if shard is None:
        return 0, num_rows
    index, count = shard
    batches = -(-num_rows // batch_size)
    first, last = index * batches // count, (index + 1) * batches // count
    return min(first * batch_size, num_rows), min(last * batch_size, num_rows)


def plan_parts(start: int, stop: int, batch_size: int, rows_per_part: int) -> list[tuple[int, int]]:
    """[start, stop) cut into parts of whole batches (rows_per_part rounded up to a batch multiple)."""
    step = max(1, -(-rows_per_part // batch_size)) * batch_size
    return [(s, min(s + step, stop)) for s in range(start, stop, step)]


def output_format(output: Path, command: str) -> str:
    found = FORMATS[command].get(output.suffix.lower())
    if found is None:
        endings = " or ".join(sorted(set(FORMATS[command])))
        raise PredictError(f"--output={output}: {command} writes {endings} files; end the name with one of them")
    return found


# ---- metadata
def fingerprint(metadata: dict) -> str:
    """sha256 of everything in the metadata that changes values (all but the command line)."""
    kept = {k: v for k, v in metadata.items() if k not in ("command", "fingerprint")}
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()


def companion_paths(output: Path, fmt: str) -> list[Path]:
    """The files a final output consists of, the one holding the metadata last."""
    if fmt == "csv":
        return [output, output.with_name(output.name + ".meta.json")]
    if fmt == "npy":
        return [output, output.with_name(output.stem + ".rows.parquet")]
    return [output]


def read_metadata(output: Path, fmt: str) -> dict | None:
    """The metadata of an existing final file; None when it is not one of ours (or incomplete)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    holder = companion_paths(output, fmt)[-1]
    if not holder.is_file():
        return None
    try:
        if fmt == "csv":
            found = json.loads(holder.read_text())
        else:
            raw = (pq.read_schema(holder).metadata or {}).get(METADATA_KEY)
            found = json.loads(raw) if raw else None
    except (OSError, ValueError, pa.ArrowException):
        return None
    return found if isinstance(found, dict) else None


def _differences(ours: dict, theirs: dict) -> str:
    keys = sorted(k for k in set(ours) | set(theirs) if k not in ("command", "fingerprint")
                  and ours.get(k) != theirs.get(k))  # fmt: skip
    return ", ".join(keys) or "its fingerprint"


# ---- the partial folder
class PartStore:
    """`<output>.partial/`: state.json and one Parquet file per finished part."""

    def __init__(self, output: Path, metadata: dict):
        self.output = output
        self.folder = output.with_name(output.name + ".partial")
        self.metadata = metadata
        self.state_path = self.folder / "state.json"

    def check(self, fmt: str) -> str:
        """'complete' (this job's final file is there), 'resume' or 'new'; refuses another job's files.

        A final file whose metadata is missing counts as this job's unfinished merge only beside
        this job's partial folder."""
        mine = self.metadata["fingerprint"]
        ours = self.folder.exists() and self._check_folder()
        existing = [p for p in companion_paths(self.output, fmt) if p.exists()]
        if not existing:
            return "resume" if ours else "new"
        found = read_metadata(self.output, fmt)
        if found is not None and found.get("fingerprint") == mine and self.output.exists():
            return "resume" if ours else "complete"
        if found is None and ours:
            return "resume"
        if found is None:
            what = "a file this command did not write (or did not finish)"
        elif found.get("schema") != self.metadata["schema"]:
            what = f"another command's file ({found.get('schema')})"
        else:
            what = f"the output of another job (it differs in {_differences(self.metadata, found)})"
        where = f"--output={self.output}" + ("" if existing[0] == self.output else f": {existing[0]}")
        raise PredictError(f"{where} holds {what}; it is left untouched. Use another --output, or delete it")

    def _check_folder(self) -> bool:
        if not self.state_path.exists() and not any(self.folder.iterdir()):
            return True  # made by a job killed before its state.json: empty, so nothing to mix up
        try:
            state = json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            state = {}
        if state.get("schema") != STATE_SCHEMA:
            raise PredictError(f"--output={self.output}: {self.folder} is not a predict/embed partial folder "
                               "(no readable state.json); use another --output or delete it")  # fmt: skip
        if state.get("fingerprint") != self.metadata["fingerprint"]:
            raise PredictError(
                f"--output={self.output}: {self.folder} holds the parts of another job (it differs in "
                f"{_differences(self.metadata, state.get('metadata', {}))}); rerun that command to finish it, "
                "or use another --output, or delete the folder"
            )
        return True

    def open(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        if not self.state_path.exists():
            kept = {k: v for k, v in self.metadata.items() if k != "command"}
            state = {"schema": STATE_SCHEMA, "fingerprint": self.metadata["fingerprint"], "metadata": kept}
            write_json_atomic(self.state_path, state, sort_keys=True)

    def part_path(self, start: int, stop: int) -> Path:
        return self.folder / f"rows_{start:012d}_{stop:012d}.parquet"

    def done(self, start: int, stop: int) -> bool:
        return self.part_path(start, stop).is_file()

    def write(self, start: int, stop: int, table) -> None:
        import pyarrow.parquet as pq

        with atomic_path(self.part_path(start, stop)) as tmp:
            pq.write_table(table, tmp)

    def read(self, start: int, stop: int):
        import pyarrow.parquet as pq

        return pq.read_table(self.part_path(start, stop))

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


# ---- merging
@dataclasses.dataclass
class Tally:
    """What the command prints at the end, counted while the parts are merged."""

    rows: int = 0
    classified: int = 0
    per_class: dict = dataclasses.field(default_factory=dict)
    problems: dict = dataclasses.field(default_factory=dict)  # status -> count
    problem_rows: list = dataclasses.field(default_factory=list)  # the first few (row, id, status)
    correct: int = 0
    labelled: int = 0

    def add(self, table) -> None:
        columns = table.select([c for c in ("row", "id", "status", "predicted_class", "true_class")
                                if c in table.column_names]).to_pydict()  # fmt: skip
        self.rows += table.num_rows
        for i, status in enumerate(columns["status"]):
            if status != "ok":
                reason = status.split(":", 1)[0]
                self.problems[reason] = self.problems.get(reason, 0) + 1
                if len(self.problem_rows) < 5:
                    self.problem_rows.append((columns["row"][i], columns["id"][i], status))
                continue
            self.classified += 1
            predicted = columns.get("predicted_class", [None] * table.num_rows)[i]
            if predicted is not None:
                self.per_class[predicted] = self.per_class.get(predicted, 0) + 1
            if "true_class" in columns and columns["true_class"][i] is not None:
                self.labelled += 1
                self.correct += int(predicted == columns["true_class"][i])


def _schema_with(table, metadata: dict):
    return table.schema.with_metadata({METADATA_KEY: json.dumps(metadata, sort_keys=True).encode()})


def merge(store: PartStore, parts: list[tuple[int, int]], fmt: str, metadata: dict, empty) -> Tally:
    """Write the final file from the parts, one part in memory at a time, and return the tally.
    `empty()`: a table with no rows and the parts' schema, for a shard without rows."""
    import pyarrow.csv
    import pyarrow.parquet as pq

    tally = Tally()
    output = store.output
    tables = (store.read(start, stop) for start, stop in parts) if parts else iter([empty()])
    if fmt == "npy":
        return _merge_npy(store, tables, sum(stop - start for start, stop in parts), metadata, tally)
    if fmt == "csv":
        write_json_atomic(companion_paths(output, fmt)[1], metadata, sort_keys=True)
    with atomic_path(output) as tmp:
        writer = None
        try:
            for table in tables:
                tally.add(table)
                if writer is None:
                    if fmt == "csv":
                        writer = pyarrow.csv.CSVWriter(str(tmp), table.schema)
                    else:
                        writer = pq.ParquetWriter(str(tmp), _schema_with(table, metadata))
                writer.write_table(table)
        finally:
            if writer is not None:
                writer.close()
    return tally


def _merge_npy(store: PartStore, tables, total: int, metadata: dict, tally: Tally) -> Tally:
    """X.npy written in place through a memory map (never all in memory), then X.rows.parquet."""
    import pyarrow.parquet as pq

    output, rows_path = companion_paths(store.output, "npy")
    with atomic_path(rows_path) as rows_tmp, atomic_path(output) as tmp:
        array, writer, offset = None, None, 0
        try:
            for table in tables:
                column = table["embedding"].combine_chunks()
                width = column.type.list_size
                if array is None:
                    array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(total, width))
                values = column.flatten().to_numpy(zero_copy_only=False).reshape(-1, width)
                array[offset : offset + table.num_rows] = values
                offset += table.num_rows
                table = table.drop_columns(["embedding"])
                tally.add(table)
                if writer is None:
                    writer = pq.ParquetWriter(str(rows_tmp), _schema_with(table, metadata))
                writer.write_table(table)
            array.flush()
            del array
        finally:
            if writer is not None:
                writer.close()
    return tally


# ---- merging the shards of an array job
SHARD_KEYS = ("shard", "rows", "num_rows", "command", "fingerprint")


def _shard_metadata(path: Path) -> dict:
    if path.suffix.lower() not in (".parquet", ".pq"):
        raise PredictError(f"{path}: merge reads Parquet shard files (predict's default output); write the shards "
                           "as .parquet and name the merged file .parquet or .csv")  # fmt: skip
    found = read_metadata(path, "parquet")
    if found is None or found.get("schema") not in SCHEMAS.values():
        raise PredictError(f"{path}: not a predict or embed output (no alexnet_jax metadata); give the shard files")
    if found.get("shard") is None:
        raise PredictError(f"{path}: not a shard (written without --shard); there is nothing to merge")
    return found


def merge_shards(files: list[Path], output: Path, command: list[str]) -> tuple[dict, Tally]:
    """One file from the Parquet files of every shard of one job: their metadata must agree (but
    for the shard) and their rows cover the input exactly once. The merged file's metadata is the
    unsharded job's, so it is the file one unsharded run would write (row groups aside)."""
    import pyarrow.csv
    import pyarrow.parquet as pq

    if not files:
        raise PredictError("merge: name the shard files, e.g. python -m alexnet_jax.predict merge "
                           "--output=all.parquet preds.shard_*.parquet")  # fmt: skip
    found = [(path, _shard_metadata(path)) for path in files]
    first_path, first = found[0]
    for path, meta in found:
        differ = _differences({k: v for k, v in first.items() if k not in SHARD_KEYS},
                              {k: v for k, v in meta.items() if k not in SHARD_KEYS})  # fmt: skip
        if differ != "its fingerprint":
            raise PredictError(f"merge: {path} and {first_path} come from different jobs (they differ in {differ}); "
                               "merge only the shards of one command")  # fmt: skip
    counts = {tuple(meta["shard"])[1] for _, meta in found}
    if len(counts) != 1:
        raise PredictError(f"merge: the files are shards of different splits (n = {sorted(counts)}); give one job's")
    (count,) = counts
    by_index: dict[int, Path] = {}
    for path, meta in found:
        index = meta["shard"][0]
        if index in by_index:
            raise PredictError(f"merge: {by_index[index]} and {path} are both shard {index}/{count}; give each once")
        by_index[index] = path
    missing = sorted(set(range(count)) - set(by_index))
    if missing:
        raise PredictError(f"merge: shard(s) {', '.join(f'{i}/{count}' for i in missing)} missing; run them "
                           f"(--shard=i/{count}) and merge again")  # fmt: skip
    total, expected = first["input"]["num_rows"], 0
    for index in range(count):
        path, meta = by_index[index], dict(found)[by_index[index]]
        start, stop = meta["rows"]
        rows = pq.read_metadata(path).num_rows
        if start != expected or rows != stop - start:
            raise PredictError(f"merge: {path} holds rows [{start}, {stop}) ({rows} rows) where rows from "
                               f"{expected} were expected; it was altered or cut short: run it again")  # fmt: skip
        expected = stop
    if expected != total:
        raise PredictError(f"merge: the shards end at row {expected} of {total}; run the missing rows again")
    merged = {**{k: v for k, v in first.items() if k != "fingerprint"}, "shard": None, "rows": [0, total],
              "num_rows": total, "command": command}  # fmt: skip
    merged["fingerprint"] = fingerprint(merged)
    fmt = output_format(output, "predict" if merged["schema"] == SCHEMAS["predict"] else "embed")
    if fmt == "npy":
        raise PredictError(f"--output={output}: merge writes .parquet (or .csv for predictions)")
    if PartStore(output, merged).check(fmt) == "complete":
        return merged, None
    tally = Tally()
    if fmt == "csv":
        write_json_atomic(companion_paths(output, fmt)[1], merged, sort_keys=True)
    with atomic_path(output) as tmp:
        writer = None
        try:
            for index in range(count):
                shard = pq.ParquetFile(by_index[index])
                for group in range(shard.num_row_groups):  # one row group in memory at a time
                    table = shard.read_row_group(group).replace_schema_metadata(None)
                    tally.add(table)
                    if writer is None:
                        writer = (pyarrow.csv.CSVWriter(str(tmp), table.schema) if fmt == "csv"
                                  else pq.ParquetWriter(str(tmp), _schema_with(table, merged)))  # fmt: skip
                    writer.write_table(table)
        finally:
            if writer is not None:
                writer.close()
    return merged, tally
