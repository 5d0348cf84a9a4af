"""predict and embed: every kind of input, the output files and their metadata, shards, resume,
and one line for each kind of bad input.

The run is the tiny test model's (32 px, crop 28) on a 3-class set (a, b, c) of 50 random images,
trained for one epoch in this process. Jobs run in-process through `__main__.execute` (batches of 8,
parts of 16 rows, so a job has several parts); the command runs as a real process where its exit
code and its one-line errors are the subject. A catalogue's cut-outs come from a local stand-in
for the SDSS ImgCutout service (tests/test_sdss_fetch.py's)."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import REPO, save_random_weights, tiny_config, train
from PIL import Image

from alexnet_jax import paper, params_io
from alexnet_jax.data.prepared import write_prepared
from alexnet_jax.errors import PredictError
from alexnet_jax.predict import __main__ as command
from alexnet_jax.predict import output as out_lib
from alexnet_jax.predict import sources
from tests.test_sdss_fetch import CutoutServer

CLASSES = ["a", "b", "c"]
ROWS = 50


@pytest.fixture(scope="module")
def trained_run(module_tmp):
    root = module_tmp
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (ROWS, 256, 256, 3), dtype=np.uint8)
    labels = np.arange(ROWS) % 3
    write_prepared(root / "data", images, labels, name="tiny-random", source="test", class_names=CLASSES)
    # The same images under the same classes in another order, and under the paper's four.
    write_prepared(root / "reordered", images, labels, name="reordered", source="test", class_names=CLASSES[::-1])
    write_prepared(
        root / "paper", images[:8], np.arange(8) % 4, name="paper", source="test", class_names=paper.CLASS_NAMES
    )
    train(tiny_config(root / "data", **{"epochs.scratch": 1, "model.num_classes": 3}), root / "runs", 0, ["scratch"])
    folder = root / "cutouts"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(images[i]).save(folder / f"galaxy_{i}.png")
    Image.fromarray(images[3][..., 0]).save(folder / "galaxy_grey.png")  # greyscale is converted
    (folder / "galaxy_broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")  # a corrupt image among good ones
    (folder / "notes.txt").write_text("not an image, ignored")
    return root


def checkpoint(root):
    return str(root / "runs/run_000/scratch")


def job(root, images, output, **overrides):
    settings = dict(checkpoints=(checkpoint(root),), batch_size=8, rows_per_part=16, progress=False)
    return command.Job(images=str(images), output=str(output), **{**settings, **overrides})


def execute(job_, **kwargs):
    lines = []
    code = command.execute(job_, log=lines.append, **kwargs)
    return code, lines


def read(path) -> pa.Table:
    return pq.read_table(path)


def same_rows(one: pa.Table, other: pa.Table) -> bool:
    """Equal columns and values, NaN where the other has NaN (pyarrow's equals takes NaN != NaN)."""
    return one.schema.remove_metadata() == other.schema.remove_metadata() and one.to_pandas().equals(other.to_pandas())


def metadata_of(path) -> dict:
    return json.loads(pq.read_schema(path).metadata[b"alexnet_jax"])


def cli(*args, cwd=REPO, timeout=300):
    env = {**os.environ, "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu"}
    return subprocess.run([sys.executable, "-m", "alexnet_jax.predict", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env=env)  # fmt: skip


# ---- inputs and outputs


def test_the_command_on_a_folder_with_a_corrupt_image(trained_run, tmp_path):
    """A real process: Parquet by default, one row per file in name order; the corrupt file is a row
    with its reason and NaN numbers, counted at the end; the command says it is uncalibrated."""
    out = tmp_path / "preds.parquet"
    done = cli(f"--checkpoint={checkpoint(trained_run)}", f"--images={trained_run / 'cutouts'}", f"--output={out}")
    assert done.returncode == 0, done.stderr[-3000:]
    table = read(out).to_pydict()
    assert table["id"] == ["galaxy_0.png", "galaxy_1.png", "galaxy_2.png", "galaxy_broken.jpg", "galaxy_grey.png"]
    assert table["row"] == [0, 1, 2, 3, 4]
    assert table["status"][3].startswith("unreadable image:") and table["status"].count("ok") == 4
    assert np.isnan(table["p_a"][3]) and table["predicted_class"][3] is None and np.isnan(table["entropy"][3])
    for i in (0, 1, 2, 4):
        probs = np.array([table[f"p_{c}"][i] for c in CLASSES])
        assert probs.sum() == pytest.approx(1.0, abs=1e-5) and table["predicted_class"][i] == CLASSES[probs.argmax()]
        assert table["max_probability"][i] == pytest.approx(probs.max())
        assert table["entropy"][i] == pytest.approx(-(probs * np.log(probs)).sum(), abs=1e-5)
        assert table["mutual_information"][i] == pytest.approx(0.0, abs=1e-6)  # one deterministic sample
    assert np.isnan(table["ra"]).all() and set(table["model"]) == {"tiny"}
    assert set(table["uncertainty"]) == {"ensemble=1, mc_dropout=0, tta=0, temperature=none"}
    assert json.loads(table["preprocessing"][0])["crop"] == 28
    meta = metadata_of(out)
    assert meta["schema"] == "alexnet_jax.predictions/1" and meta["class_names"] == CLASSES
    assert meta["num_rows"] == 5 and meta["shard"] is None and "pyarrow" in meta["versions"]
    assert table["weights_sha256"][0] == meta["identity"]["weights_sha256"][0]
    assert "no temperature.json in" in done.stdout and "uncalibrated" in done.stdout
    assert "wrote 5 rows" in done.stdout and "1 rows have no numbers (unreadable image: 1)" in done.stdout
    assert not out.with_name(out.name + ".partial").exists()


def test_a_prepared_set_streams_to_the_engines_numbers_with_its_labels(trained_run, tmp_path):
    """A prepared set (read by offset) in parts of 16 rows: the same numbers as the engine on the
    whole array, its labels in true_class, and the accuracy in the summary."""
    from alexnet_jax.data.prepared import load_prepared
    from alexnet_jax.predict import engine, members

    out = tmp_path / "p.parquet"
    code, lines = execute(job(trained_run, trained_run / "data", out))
    assert code == 0
    table = read(out)
    assert table.num_rows == ROWS and table["row"].to_pylist() == list(range(ROWS))
    assert table["true_class"].to_pylist() == [CLASSES[i % 3] for i in range(ROWS)]
    (member,), _ = members.load_members([checkpoint(trained_run)])
    expected = engine.Forward([member], batch_size=8).run(np.asarray(load_prepared(trained_run / "data").images))
    got = np.stack([table[f"p_{c}"].to_numpy() for c in CLASSES], 1)
    np.testing.assert_array_equal(got, expected["probabilities"])
    accuracy = np.mean(got.argmax(1) == np.arange(ROWS) % 3)
    assert f"accuracy against the data set's labels: {accuracy:.4f} ({ROWS} rows)" in lines
    counts = np.bincount(got.argmax(1), minlength=3)
    assert f"predicted: a: {counts[0]}, b: {counts[1]}, c: {counts[2]}" in lines
    source = sources.open_source(trained_run / "data")  # read a batch at a time by offset
    images, statuses = source.read(10, 19)
    np.testing.assert_array_equal(images, load_prepared(trained_run / "data").images[10:19])
    assert statuses == ["ok"] * 9
    source.close()


def test_a_studys_arm_is_an_ensemble_of_its_runs(trained_run, tmp_path):
    """--study + --arm: every run_NNN/<arm> with best/ (here one run, so the same numbers as it)."""
    one = tmp_path / "one.parquet"
    execute(job(trained_run, trained_run / "cutouts", one))
    study = tmp_path / "study.parquet"
    code, _ = execute(job(trained_run, trained_run / "cutouts", study, checkpoints=(),
                          study=str(trained_run / "runs"), arm="scratch"))  # fmt: skip
    assert code == 0 and metadata_of(study)["identity"]["checkpoints"] == [
        str(trained_run / "runs/run_000/scratch/best")
    ]
    assert same_rows(read(study).drop_columns(["checkpoints"]), read(one).drop_columns(["checkpoints"]))


def test_csv_output_and_a_file_list(trained_run, tmp_path):
    """A .txt list (relative to its folder; a missing file is a row) to CSV with <output>.meta.json."""
    listing = trained_run / "list.txt"
    listing.write_text("cutouts/galaxy_1.png\n\ncutouts/nowhere.png\n" + str(trained_run / "cutouts/galaxy_0.png\n"))
    out = tmp_path / "p.csv"
    code, _ = execute(job(trained_run, listing, out))
    assert code == 0
    import pyarrow.csv

    table = pyarrow.csv.read_csv(out, convert_options=pyarrow.csv.ConvertOptions(column_types={"id": pa.string()}))
    assert table["id"].to_pylist() == ["cutouts/galaxy_1.png", "cutouts/nowhere.png",
                                       str(trained_run / "cutouts/galaxy_0.png")]  # fmt: skip
    assert table["status"].to_pylist() == ["ok", "missing file", "ok"]
    meta = json.loads(out.with_name("p.csv.meta.json").read_text())
    assert meta["schema"] == "alexnet_jax.predictions/1" and meta["input"]["kind"] == "files"
    parquet = tmp_path / "p.parquet"
    execute(job(trained_run, listing, parquet))
    np.testing.assert_allclose(table["p_b"].to_numpy(), read(parquet)["p_b"].to_numpy(), rtol=1e-6)


def test_a_catalogue_fetches_cutouts_and_lists_failures(trained_run, tmp_path):
    """RA/Dec rows (CSV and Parquet) whose cut-outs come from the loopback SDSS; a 404 is a row with
    its reason; bad coordinates are refused in one line naming the rows, or kept with --skip_bad_rows."""
    ras = [10.0 + i for i in range(10)]
    decs = [1.0] * 10
    decs[6] = 95.0  # out of range
    catalogue = tmp_path / "cat.csv"
    catalogue.write_text("objid,RA,DEC,mag\n" + "".join(f"{1000 + i},{r},{d},17\n" for i, (r, d)
                                                        in enumerate(zip(ras, decs, strict=True))))  # fmt: skip
    with CutoutServer({f"{ras[2]:.6f}": "notfound"}) as server:
        settings = dict(cutout_dir=str(tmp_path / "cut"), sdss_url=server.url, cutout_rate=0.0)
        with pytest.raises(PredictError) as caught:
            execute(job(trained_run, catalogue, tmp_path / "c.parquet", **settings))
        message = str(caught.value)
        assert "\n" not in message and f"--images={catalogue}: 1 of 10 rows" in message
        assert "row 6: ra=16.0, dec=95.0" in message and "--skip_bad_rows" in message
        code, lines = execute(job(trained_run, catalogue, tmp_path / "c.parquet", skip_bad_rows=True, **settings))
        assert code == 0
        table = read(tmp_path / "c.parquet").to_pydict()
        assert table["id"] == [str(1000 + i) for i in range(10)] and table["ra"] == ras
        assert table["status"][6] == "bad coordinates" and table["status"][2].startswith("cut-out failed: HTTP 404")
        assert table["status"].count("ok") == 8 and np.isnan(table["p_a"][2])
        assert any("2 rows have no numbers (bad coordinates: 1, cut-out failed: 1)" in line for line in lines)
        fetched = sum(server.hits.values())
        pq.write_table(pa.table({"objid": [str(1000 + i) for i in range(10)], "RA": ras, "DEC": decs}),
                       tmp_path / "cat.parquet")  # fmt: skip
        code, _ = execute(job(trained_run, tmp_path / "cat.parquet", tmp_path / "c2.parquet", skip_bad_rows=True,
                              **settings))  # fmt: skip
        assert server.hits[f"{ras[2]:.6f}"] == 2 and sum(server.hits.values()) == fetched + 1  # only the failure again
    second = read(tmp_path / "c2.parquet")
    assert same_rows(second.drop_columns(["checkpoints"]), read(tmp_path / "c.parquet").drop_columns(["checkpoints"]))


def test_an_image_pil_refuses_is_a_status_not_an_error(trained_run, monkeypatch):
    """PIL's own refusals (here its decompression-bomb guard, lowered) cost one row, never the job."""
    from PIL import Image as PILImage

    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 1000)
    out = np.zeros((256, 256, 3), np.uint8)
    status = sources.load_file(trained_run / "cutouts/galaxy_0.png", out)
    assert status.startswith("unreadable image: DecompressionBombError: Image size (65536 pixels) exceeds")


def test_embed_writes_parquet_or_npy_with_the_same_rows(trained_run, tmp_path):
    from alexnet_jax.predict import engine, members

    code, _ = execute(job(trained_run, trained_run / "cutouts", tmp_path / "e.parquet", command="embed"))
    assert code == 0
    table = read(tmp_path / "e.parquet")
    assert table.column_names == ["row", "id", "ra", "dec", "status", "embedding"]
    assert metadata_of(tmp_path / "e.parquet")["schema"] == "alexnet_jax.embeddings/1"
    vectors = np.stack(table["embedding"].to_numpy(zero_copy_only=False))
    code, _ = execute(job(trained_run, trained_run / "cutouts", tmp_path / "e.npy", command="embed"))
    array = np.load(tmp_path / "e.npy")
    rows = read(tmp_path / "e.rows.parquet")
    assert rows["id"].to_pylist() == table["id"].to_pylist() and array.shape == vectors.shape
    np.testing.assert_array_equal(array, vectors)  # NaN rows included
    assert np.isnan(array[3]).all() and np.isfinite(np.delete(array, 3, 0)).all()
    halves = [tmp_path / f"e{i}.parquet" for i in range(2)]  # the same sharding as predict's
    for i, half in enumerate(halves):
        execute(job(trained_run, trained_run / "data", half, command="embed", shard=f"{i}/2"))
    execute(job(trained_run, trained_run / "data", tmp_path / "whole.parquet", command="embed"))
    out_lib.merge_shards(halves, tmp_path / "merged.parquet", [])
    assert same_rows(read(tmp_path / "merged.parquet"), read(tmp_path / "whole.parquet"))
    (member,), _ = members.load_members([checkpoint(trained_run)])
    image = np.asarray(Image.open(trained_run / "cutouts/galaxy_0.png"))[None]
    np.testing.assert_allclose(array[0], engine.Forward([member], batch_size=8, features=True)(image, 0)["features"][0],
                               rtol=1e-5, atol=1e-6)  # fmt: skip


def test_sampling_ensembles_and_calibration_are_named_in_every_row(trained_run, tmp_path):
    from alexnet_jax.calibration.temperature import write_temperature
    from alexnet_jax.predict import members

    best = trained_run / "runs/run_000/scratch/best"
    (member,), _ = members.load_members([checkpoint(trained_run)])
    write_temperature(best, temperature=2.0, weights_sha256=member.weights_sha256, fitted_on="validation",
                      num_examples=10, nll_before=1.0, nll_after=0.9)  # fmt: skip
    try:
        two = (checkpoint(trained_run), str(best))
        code, lines = execute(job(trained_run, trained_run / "cutouts", tmp_path / "s.parquet", checkpoints=two,
                                  tta=2, mc_samples=3, seed=5))  # fmt: skip
        assert code == 0 and f"applied temperature 2 from {best / 'temperature.json'}" in lines
        table = read(tmp_path / "s.parquet").to_pydict()
        assert set(table["uncertainty"]) == {"ensemble=2, mc_dropout=3, tta=2, temperature=2;2"}
        assert all(v > 0 for v, s in zip(table["mutual_information"], table["status"], strict=True) if s == "ok")
        code, lines = execute(job(trained_run, trained_run / "cutouts", tmp_path / "u.parquet", calibrated=False))
        assert "--no_calibration: temperature not applied (1 member(s)): uncalibrated" in lines
        assert set(read(tmp_path / "u.parquet")["uncertainty"].to_pylist()) == {
            "ensemble=1, mc_dropout=0, tta=0, temperature=none"
        }
    finally:
        (best / "temperature.json").unlink()


# ---- shards and resume


def test_shards_together_equal_the_whole_and_merge_checks_them(trained_run, tmp_path):
    whole = tmp_path / "whole.parquet"
    execute(job(trained_run, trained_run / "data", whole))
    shards = []
    for i in range(3):
        shards.append(tmp_path / f"s{i}.parquet")
        code, _ = execute(job(trained_run, trained_run / "data", shards[-1], shard=f"{i}/3"))
        assert code == 0 and metadata_of(shards[-1])["shard"] == [i, 3]
    starts = [read(s)["row"][0].as_py() for s in shards]
    assert all(start % 8 == 0 for start in starts)  # whole batches
    assert same_rows(pa.concat_tables([read(s) for s in shards]), read(whole))
    with pytest.raises(PredictError, match=r"shard\(s\) 1/3 missing"):
        out_lib.merge_shards([shards[0], shards[2]], tmp_path / "m.parquet", [])
    with pytest.raises(PredictError, match="are both shard 0/3"):
        out_lib.merge_shards([shards[0], shards[0], shards[1]], tmp_path / "m.parquet", [])
    other = tmp_path / "other.parquet"
    execute(job(trained_run, trained_run / "data", other, shard="1/3", seed=9))
    with pytest.raises(PredictError, match="come from different jobs .*sampling"):
        out_lib.merge_shards([shards[0], other, shards[2]], tmp_path / "m.parquet", [])
    merged, tally = out_lib.merge_shards(shards[::-1], tmp_path / "m.parquet", [])
    assert same_rows(read(tmp_path / "m.parquet"), read(whole)) and tally.rows == ROWS
    done = cli("merge", f"--output={tmp_path / 'm.csv'}", *map(str, shards))
    assert done.returncode == 0 and f"wrote {ROWS} rows to {tmp_path / 'm.csv'} (csv)" in done.stdout, done.stderr
    assert json.loads((tmp_path / "m.csv.meta.json").read_text())["fingerprint"] == merged["fingerprint"]
    done = cli("merge", f"--output={tmp_path / 'm2.parquet'}", str(shards[0]))
    assert done.returncode == 2 and done.stderr.startswith("error: merge: shard(s) 1/3, 2/3 missing")
    assert merged["fingerprint"] == metadata_of(whole)["fingerprint"]  # the unsharded job's file
    code, lines = execute(job(trained_run, trained_run / "data", tmp_path / "m.parquet"))
    assert code == 0 and any("is complete" in line for line in lines)
    empty = tmp_path / "empty.parquet"  # 7 batches in 20 shards: shard 0 has none
    code, _ = execute(job(trained_run, trained_run / "data", empty, shard="0/20"))
    assert code == 0 and read(empty).num_rows == 0 and read(empty).schema.names == read(whole).schema.names


class Killed(Exception):
    pass


def test_a_killed_job_resumes_to_the_same_file(trained_run, tmp_path, monkeypatch):
    """Stopped after its second part: a rerun computes only the missing parts (counted at the
    engine) and writes a file byte-identical to an uninterrupted run's; a finished file is left alone."""
    from alexnet_jax.predict import engine

    whole = tmp_path / "whole.parquet"
    execute(job(trained_run, trained_run / "data", whole))
    out = tmp_path / "resumed.parquet"

    def stop_after_two(parts_done):
        if parts_done == 2:
            raise Killed

    with pytest.raises(Killed):
        execute(job(trained_run, trained_run / "data", out), after_part=stop_after_two)
    partial = out.with_name(out.name + ".partial")
    assert len(list(partial.glob("rows_*.parquet"))) == 2 and not out.exists()

    def interrupt(parts_done):  # SIGTERM (a preempted SLURM task) or Ctrl-C, after the third part
        raise KeyboardInterrupt

    code, lines = execute(job(trained_run, trained_run / "data", out), after_part=interrupt)
    assert code == 5 and lines[-1].startswith("interrupted: 3 of 4 parts are saved in") and not out.exists()
    (partial / "rows_000000000048_000000000050.parquet").unlink(missing_ok=True)
    (partial / "rows_000000000032_000000000048.parquet").unlink()  # as if killed before its commit
    calls = []
    original = engine.Forward.__call__
    monkeypatch.setattr(engine.Forward, "__call__", lambda self, x, b: calls.append(b) or original(self, x, b))
    code, lines = execute(job(trained_run, trained_run / "data", out))
    assert code == 0 and "reused 2 of 4 parts finished by an earlier run of this command" in lines
    assert sorted(calls) == list(range(4, 7))  # batches 4..6 only: rows 32..49
    assert out.read_bytes() == whole.read_bytes() and not partial.exists()
    before = out.stat().st_mtime_ns
    code, lines = execute(job(trained_run, trained_run / "data", out))
    assert code == 0 and lines[-1].endswith("is complete (the same job finished it before); nothing to do")
    assert out.stat().st_mtime_ns == before


def test_a_preempted_process_keeps_its_parts_and_resumes(trained_run, tmp_path):
    """A real process stopped by SIGTERM (SLURM's preemption) after its first part exits 5 and keeps
    it; the same job resumes from it to the rows of an uninterrupted run. Cut-outs come at 4 a
    second, so the process is still working when the signal comes."""
    import signal
    import time

    catalogue = tmp_path / "cat.csv"
    catalogue.write_text("id,ra,dec\n" + "".join(f"g{i},{20 + i},-2\n" for i in range(24)))
    out = tmp_path / "p.parquet"
    partial = out.with_name(out.name + ".partial")
    with CutoutServer({}) as server:
        settings = dict(cutout_dir=str(tmp_path / "cut"), sdss_url=server.url, cutout_rate=4.0, rows_per_part=8)
        flags = [f"--{k}={v}" for k, v in settings.items()]
        env = {**os.environ, "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu"}
        argv = [sys.executable, "-m", "alexnet_jax.predict", f"--checkpoint={checkpoint(trained_run)}",
                f"--images={catalogue}", f"--output={out}", "--batch_size=8", "--noprogress", *flags]  # fmt: skip
        process = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 240
        while not list(partial.glob("rows_*.parquet")) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=120)
        assert process.returncode == 5, stdout[-2000:] + stderr[-2000:]
        assert "interrupted: 1 of 3 parts are saved" in stdout and not out.exists()
        code, lines = execute(job(trained_run, catalogue, out, **settings))
        assert code == 0 and "reused 1 of 3 parts finished by an earlier run of this command" in lines
        execute(job(trained_run, catalogue, tmp_path / "whole.parquet", **settings))
    assert same_rows(read(out), read(tmp_path / "whole.parquet")) and read(out)["status"].to_pylist() == ["ok"] * 24


def test_another_jobs_files_are_refused_and_left_untouched(trained_run, tmp_path):
    stranger = tmp_path / "notes.parquet"
    stranger.write_text("my notes")
    with pytest.raises(PredictError, match="holds a file this command did not write .*left untouched"):
        execute(job(trained_run, trained_run / "cutouts", stranger))
    assert stranger.read_text() == "my notes"
    embedded = tmp_path / "e.parquet"
    execute(job(trained_run, trained_run / "cutouts", embedded, command="embed"))
    before = embedded.read_bytes()
    with pytest.raises(PredictError, match=r"another command's file \(alexnet_jax.embeddings/1\)"):
        execute(job(trained_run, trained_run / "cutouts", embedded))
    assert embedded.read_bytes() == before
    predicted = tmp_path / "p.parquet"
    execute(job(trained_run, trained_run / "cutouts", predicted))
    another = r"p.parquet holds the output of another job \(it differs in preprocessing, sampling\)"
    with pytest.raises(PredictError, match=another):
        execute(job(trained_run, trained_run / "cutouts", predicted, tta=2))
    out = tmp_path / "half.parquet"
    with pytest.raises(Killed):
        execute(job(trained_run, trained_run / "data", out), after_part=lambda n: (_ for _ in ()).throw(Killed()))
    with pytest.raises(PredictError, match=r"half.parquet.partial holds the parts of another job .*batch_size"):
        execute(job(trained_run, trained_run / "data", out, batch_size=4))
    assert len(list(out.with_name("half.parquet.partial").glob("rows_*"))) == 1
    fresh = tmp_path / "fresh.parquet"
    fresh.with_name("fresh.parquet.partial").mkdir()  # a job killed between its mkdir and its state.json
    assert execute(job(trained_run, trained_run / "cutouts", fresh))[0] == 0
    stray = tmp_path / "stray.parquet"
    (stray.with_name("stray.parquet.partial")).mkdir()
    (stray.with_name("stray.parquet.partial") / "mine.txt").write_text("not a part")
    with pytest.raises(PredictError, match="stray.parquet.partial is not a predict/embed partial folder"):
        execute(job(trained_run, trained_run / "cutouts", stray))


# ---- bad input: one line, exit 2


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["--shard=3/2"], "--shard=3/2: not a shard; give i/n with 0 <= i < n"),
        (["--shard=a/b"], "--shard=a/b: not a shard"),
        (["--shard=0/0"], "--shard=0/0: not a shard"),
        (["--output=p.json"], "--output=p.json: predict writes .csv or .parquet or .pq files"),
        (["--images=nowhere"], "--images=nowhere: no such file or folder"),
        (["--images=bad.csv"], "1 of 2 rows have no usable RA/Dec"),
        (["--images=bad.csv", "--skip_bad_rows"], "a catalogue needs --cutout_dir"),
        (["--images=bad.csv", "--ra_column=alpha", "--cutout_dir=c"], "no column 'alpha' for --ra_column"),
        (["--images=list.txt"], "the file list names no images"),
        (["--checkpoint=nowhere"], "--checkpoint=nowhere: no trained params there"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(trained_run, tmp_path, args, text):
    (tmp_path / "bad.csv").write_text("id,ra,dec\nx,10,1\ny,,2\n")
    (tmp_path / "list.txt").write_text("\n")
    defaults = {"--checkpoint": checkpoint(trained_run), "--images": str(trained_run / "cutouts"),
                "--output": "p.parquet"}  # fmt: skip
    given = {arg.split("=")[0] for arg in args}
    argv = args + [f"{k}={v}" for k, v in defaults.items() if k not in given]
    done = cli(*argv, cwd=tmp_path)
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and text in errors[0] and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert not (tmp_path / "p.parquet").exists()


@pytest.mark.parametrize(("data", "listed"), [("paper", r"\['elliptical', 'lenticular', 'spiral', 'irr_misc'\]"),
                                              ("reordered", r"\['c', 'b', 'a'\]")])  # fmt: skip
def test_a_data_set_with_other_classes_is_refused(trained_run, tmp_path, data, listed):
    """Its labels would be scored against the wrong outputs: one line naming both lists, in order."""
    with pytest.raises(PredictError) as caught:
        execute(job(trained_run, trained_run / data, tmp_path / "p.parquet"))
    message = str(caught.value)
    assert "\n" not in message and f"--images={trained_run / data}: its classes" in message
    assert re.search(listed + r" differ from the classes \['a', 'b', 'c'\] that .*best was trained on", message)
    assert ("another order" in message) == (data == "reordered")


def test_converted_weights_name_outputs_by_number_and_score_no_labels(trained_run, tmp_path):
    converted = save_random_weights(tmp_path / "converted", "tiny", num_classes=5)
    assert params_io.class_names_in(params_io.load_metadata(converted)) is None
    out = tmp_path / "p.parquet"
    code, lines = execute(job(trained_run, trained_run / "paper", out, checkpoints=(str(converted),)))
    assert code == 0 and any("converted weights" in line for line in lines)
    table = read(out)
    assert [f"p_class_{i}" for i in range(5)] == [c for c in table.column_names if c.startswith("p_")]
    assert "true_class" not in table.column_names


def test_the_slurm_array_script_runs_its_shard_and_resumes(tmp_path):
    """The array task passes --shard=TASK/COUNT and the user's flags to the command."""
    script = REPO / "experiments/slurm/predict_array.sbatch"
    subprocess.run(["bash", "-n", str(script)], check=True)
    assert os.access(script, os.X_OK)
    python = tmp_path / "python"
    python.write_text('#!/usr/bin/env bash\nprintf "%s\\n" "$@" > "$ARGS_OUT"\n')
    python.chmod(0o755)
    env = {**os.environ, "SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "8", "SLURM_ARRAY_JOB_ID": "77",
           "ALEXNET_JAX_PYTHON": str(python), "ALEXNET_JAX_REPO": str(REPO), "ARGS_OUT": str(tmp_path / "args"),
           "ALEXNET_JAX_OUTPUT": "preds/survey.parquet"}  # fmt: skip
    done = subprocess.run([str(script), "--checkpoint=runs/x/run_000/scratch", "--images=cat.parquet"], env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    args = (tmp_path / "args").read_text().split("\n")
    assert args[:2] == ["-m", "alexnet_jax.predict"]
    for expected in ("--shard=3/8", "--output=preds/survey.shard_003_of_008.parquet",
                     "--checkpoint=runs/x/run_000/scratch", "--images=cat.parquet"):  # fmt: skip
        assert expected in args
    env.pop("SLURM_ARRAY_TASK_ID")
    missing = subprocess.run([str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert missing.returncode != 0 and "--array" in missing.stderr
