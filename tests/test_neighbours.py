"""The nearest-neighbour query over an embedding file: known answers, ties, chunking, both formats, bad input.

The hand-made file (6 rows of 3 features) has answers worked by hand: from row 0 = (1, 0, 0),
the cosine similarities are row 5 (2, 0, 0): 1, row 1 (0.9, 0.1, 0): 0.9 / sqrt(0.82), rows 2
and 3 (unit vectors on the other axes): 0, a tie that goes to the lower row; row 4 failed (NaN).
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from alexnet_jax.errors import PredictError
from alexnet_jax.predict import neighbours

REPO = Path(__file__).resolve().parent.parent

HAND = np.array([[1, 0, 0], [0.9, 0.1, 0], [0, 1, 0], [0, 0, 1], [np.nan, np.nan, np.nan], [2, 0, 0]], dtype=np.float32)
HAND_IDS = ["a", "b", "c", "d", "e", "f"]
HAND_STATUS = ["ok", "ok", "ok", "ok", "unreadable image", "ok"]


def write_embeddings(path: Path, x: np.ndarray, ids, status=None, *, row_group: int = 4, metadata=None) -> Path:
    """An embedding file as embed writes it (Contract B): Parquet with an `embedding` fixed-size list
    column, or X.npy + X.rows.parquet, chosen by the suffix of `path`."""
    n, d = x.shape
    status = status or ["ok"] * n
    meta = {b"alexnet_jax": json.dumps(metadata or {"schema": "alexnet_jax.embeddings/1"}).encode()}
    columns = {
        "row": pa.array(np.arange(n, dtype=np.int64)),
        "id": pa.array([str(i) for i in ids]),
        "ra": pa.array(np.linspace(10.0, 20.0, n)),
        "dec": pa.array(np.linspace(-5.0, 5.0, n)),
        "status": pa.array(status),
    }
    if path.suffix == ".npy":
        np.save(path, x.astype(np.float32))
        table = pa.table(columns).replace_schema_metadata(meta)
        pq.write_table(table, path.with_name(path.name[:-4] + ".rows.parquet"), row_group_size=row_group)
    else:
        columns["embedding"] = pa.FixedSizeListArray.from_arrays(pa.array(x.astype(np.float32).reshape(-1)), d)
        pq.write_table(pa.table(columns).replace_schema_metadata(meta), path, row_group_size=row_group)
    return path


@pytest.fixture(params=["parquet", "npy"])
def hand_file(request, tmp_path):
    return write_embeddings(tmp_path / f"emb.{request.param}", HAND, HAND_IDS, HAND_STATUS)


def test_known_answer_by_id_cosine_and_euclidean_in_both_formats(hand_file):
    file = neighbours.EmbeddingFile(hand_file, chunk_rows=2)
    assert (file.num_rows, file.dim) == (6, 3)
    row, query = file.find("a")
    assert row == 0 and query.tolist() == [1, 0, 0]
    table = neighbours.nearest(file, query, k=4, exclude_row=row)
    assert table["row"].tolist() == [5, 1, 2, 3]  # 2 and 3 tie at 0: the lower row first; 4 (NaN) skipped
    assert table["rank"].tolist() == [1, 2, 3, 4]
    assert table["id"].tolist() == ["f", "b", "c", "d"]
    np.testing.assert_allclose(table["similarity"], [1.0, 0.9 / np.sqrt(0.82), 0.0, 0.0], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(table["ra"], np.linspace(10.0, 20.0, 6)[[5, 1, 2, 3]])
    euclid = neighbours.nearest(file, query, k=10, metric="euclidean", exclude_row=row)
    # distances from (1,0,0): row 1 sqrt(0.02), row 5 1, rows 2 and 3 sqrt(2) (tie)
    assert euclid["row"].tolist() == [1, 5, 2, 3]  # k beyond the usable rows: all of them
    np.testing.assert_allclose(euclid["distance"], [np.sqrt(0.02), 1.0, np.sqrt(2), np.sqrt(2)], rtol=1e-6)


def test_k_orders_best_first_and_the_query_row_counts_when_not_excluded(hand_file):
    file = neighbours.EmbeddingFile(hand_file)
    query = np.array([0, 1, 0.001], np.float32)
    one = neighbours.nearest(file, query, k=1)
    assert one["row"].tolist() == [2] and one["similarity"].iloc[0] == pytest.approx(1.0, abs=1e-6)
    # cosines by hand: c 1/|q| ~ 1, b 0.1/(|b| |q|) = 0.1104, d 0.001/|q|, a and f 0 (a tie: row 0 first)
    assert neighbours.nearest(file, query, k=2)["row"].tolist() == [2, 1]
    five = neighbours.nearest(file, query, k=5)
    assert five["row"].tolist() == [2, 1, 3, 0, 5]
    np.testing.assert_allclose(five["similarity"].iloc[1], 0.1 / np.sqrt(0.82) / np.sqrt(1 + 1e-6), rtol=1e-6)
    assert neighbours.nearest(file, query, k=6)["row"].tolist() == [2, 1, 3, 0, 5]  # row 4 (NaN) never


def brute_force(x: np.ndarray, query: np.ndarray, k: int, metric: str, usable: np.ndarray) -> list[int]:
    """The reference: every usable row scored at once, sorted by score then row."""
    x64, q64 = x.astype(np.float64), query.astype(np.float64)
    if metric == "cosine":
        key = -(x64 @ q64) / (np.linalg.norm(x64, axis=1) * np.linalg.norm(q64))
    else:
        key = np.linalg.norm(x64 - q64, axis=1)
    rows = np.flatnonzero(usable)
    order = np.lexsort((rows, np.round(key[rows], 12)))
    return rows[order][:k].tolist()


@pytest.mark.parametrize("suffix", ["parquet", "npy"])
@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_chunked_equals_unchunked_and_brute_force(tmp_path, suffix, metric):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((203, 16)).astype(np.float32)
    x[50] = x[7]  # exact ties across chunk boundaries
    x[120] = x[7]
    x[9] = np.nan
    status = ["ok"] * 203
    status[11] = "cut-out failed"
    path = write_embeddings(tmp_path / f"e.{suffix}", x, [f"g{i}" for i in range(203)], status, row_group=37)
    query = x[7] + 0.01
    tables = [
        neighbours.nearest(neighbours.EmbeddingFile(path, chunk_rows=c), query, k=12, metric=metric)
        for c in (1, 5, 64, 1000)
    ]
    for other in tables[1:]:
        assert other.equals(tables[0])
    usable = np.isfinite(x).all(1) & (np.array(status) == "ok")
    assert tables[0]["row"].tolist() == brute_force(x, query, 12, metric, usable)
    assert tables[0]["row"].tolist()[:3] == [7, 50, 120]  # the tied copies, lower row first
    assert 9 not in tables[0]["row"].tolist() and 11 not in tables[0]["row"].tolist()


def test_unknown_id_names_it_with_near_matches_and_failed_query_row(hand_file, tmp_path):
    file = neighbours.EmbeddingFile(hand_file)
    with pytest.raises(PredictError, match=r"--id=zz: no row of .* has this id$"):
        file.find("zz")
    path = write_embeddings(tmp_path / "ids.parquet", HAND, ["G100", "G101", "G102", "X", "Y", "Z"])
    with pytest.raises(PredictError, match=r"--id=G103: no row .* near matches: G100, G101, G102"):
        neighbours.EmbeddingFile(path, chunk_rows=2).find("G103")
    with pytest.raises(PredictError, match=r"--id=e: row 4 .* no usable embedding"):
        file.find("e")


def test_bad_files_and_queries_get_one_line(tmp_path, hand_file):
    with pytest.raises(PredictError, match="no such file"):
        neighbours.EmbeddingFile(tmp_path / "missing.parquet")
    lone = tmp_path / "lone.npy"
    np.save(lone, HAND)
    with pytest.raises(PredictError, match="lone.rows.parquet is missing"):
        neighbours.EmbeddingFile(lone)
    pq.write_table(pa.table({"row": [0], "x": [1.0]}), tmp_path / "other.parquet")
    with pytest.raises(PredictError, match="no column"):
        neighbours.EmbeddingFile(tmp_path / "other.parquet")
    file = neighbours.EmbeddingFile(hand_file)
    with pytest.raises(PredictError, match="the query has 2 features but .* holds 3"):
        neighbours.nearest(file, np.ones(2))
    with pytest.raises(PredictError, match="zero or not finite"):
        neighbours.nearest(file, np.zeros(3))


def test_command_prints_the_table_writes_csv_and_reports_bad_input(tmp_path):
    path = write_embeddings(tmp_path / "emb.parquet", HAND, HAND_IDS, HAND_STATUS)
    out = tmp_path / "nn.csv"
    command = [sys.executable, "-m", "alexnet_jax.predict.neighbours", f"--embeddings={path}"]
    done = subprocess.run(
        [*command, "--id=a", "--k=2", f"--output={out}"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "the 2 galaxies most like row 0 (id a) among 6 rows (cosine)" in done.stdout
    lines = out.read_text().splitlines()
    assert lines[0] == "rank,row,id,ra,dec,similarity" and lines[1].startswith("1,5,f,")
    bad = subprocess.run([*command, "--id=q"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [f"error: --id=q: no row of {path} has this id"]


def test_image_query_embeds_with_the_files_checkpoint_and_finds_its_own_row(tmp_path):
    """An image that is row 2 of the file comes back first (similarity 1 up to float noise), embedded with the
    checkpoint the metadata names; other weights than the file's are refused."""
    from PIL import Image

    from alexnet_jax.data.folder import load_image
    from alexnet_jax.predict.engine import Forward
    from alexnet_jax.predict.members import identity, load_members
    from tests.helpers import save_random_weights

    weights = save_random_weights(tmp_path / "weights", "tiny", num_classes=3)
    members, _ = load_members([weights])
    rng = np.random.default_rng(0)
    paths = []
    for i in range(4):
        path = tmp_path / f"g{i}.png"
        coarse = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        Image.fromarray(np.kron(coarse, np.ones((16, 16, 1), np.uint8))).save(path)
        paths.append(path)
    pixels = np.stack([load_image(p) for p in paths])
    features = Forward(members, features=True, batch_size=4)(pixels, 0)["features"]
    meta = {"schema": "alexnet_jax.embeddings/1", "identity": identity(members)}
    emb = write_embeddings(tmp_path / "emb.parquet", features, [p.stem for p in paths], metadata=meta)
    file = neighbours.EmbeddingFile(emb)
    table = neighbours.nearest(file, neighbours.embed_image(file, paths[2]), k=4)
    assert table["row"].iloc[0] == 2 and table["id"].iloc[0] == "g2"
    assert table["similarity"].iloc[0] == pytest.approx(1.0, abs=1e-5)
    other = save_random_weights(tmp_path / "other", "tiny", num_classes=3, seed=7)
    with pytest.raises(PredictError, match=r"--image: the weights at .*other .* are not those .* embedded with"):
        neighbours.embed_image(file, paths[2], checkpoint=str(other))
    with pytest.raises(PredictError, match=r"--image=.*missing.png"):
        neighbours.embed_image(file, tmp_path / "missing.png")


def test_npy_rows_are_read_by_range_in_either_header_version(tmp_path):
    x = np.arange(24, dtype=np.float32).reshape(6, 4)
    for version in ((1, 0), (2, 0)):
        path = tmp_path / f"v{version[0]}.npy"
        with open(path, "wb") as handle:
            np.lib.format.write_array(handle, x, version=version)
        rows = neighbours.NpyRows(path)
        assert rows.shape == (6, 4)
        assert rows.read(2, 3).tolist() == x[2:5].tolist() and rows.read(5, 10).tolist() == x[5:].tolist()
    np.save(tmp_path / "bytes.npy", np.zeros((2, 2), "S1"))
    with pytest.raises(PredictError, match="holds \\|S1 of shape \\(2, 2\\)"):
        neighbours.NpyRows(tmp_path / "bytes.npy")
