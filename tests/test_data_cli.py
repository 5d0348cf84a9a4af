"""`python -m alexnet_jax.data`: the commands end to end on tiny data, in-process through
`commands.run` (what the command line calls), and once through the command line itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from alexnet_jax.data import load_prepared, paper_split, read_manifest
from alexnet_jax.data.commands import DataOptions
from alexnet_jax.data.commands import run as run_command

sys.path.insert(0, str(Path(__file__).parent))
from test_sdss_fetch import CutoutServer  # noqa: E402  (the local SkyServer stand-in)


class Result:
    """What a command returned and printed."""

    def __init__(self, returncode: int, stdout: str, stderr: str):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def run_data(capsys, command: str, **options) -> Result:
    """`python -m alexnet_jax.data COMMAND --flags --noprogress`, in this process."""
    capsys.readouterr()
    code = run_command(command, DataOptions(progress=False, **options))
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


def test_prepare_synthetic_records_generator_and_protects_output(tmp_path, capsys):
    out = tmp_path / "synthetic"
    result = run_data(capsys, "prepare", dataset="synthetic", output=str(out), num_examples=8, seed=1, num_workers=1)
    assert result.returncode == 0, result.stderr
    assert "wrote 8 examples" in result.stdout
    manifest = read_manifest(out)
    generator = manifest["generator"]
    from alexnet_jax.data import synthetic

    assert generator["version"] == synthetic.GENERATOR_VERSION and generator["seed"] == 1
    assert generator["name"] and generator["params"] == json.loads(json.dumps(synthetic.generator_params()))
    data = load_prepared(out, verify=True)
    assert data.images.shape == (8, 256, 256, 3) and manifest["num_examples"] == 8

    before = (out / "manifest.json").read_text()
    again = run_data(capsys, "prepare", dataset="synthetic", output=str(out), num_examples=4, num_workers=1)
    assert again.returncode == 2 and "pass --overwrite" in again.stderr
    assert (out / "manifest.json").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["synthetic"]

    info = run_data(capsys, "info", prepared=str(out), verify=True)
    assert info.returncode == 0 and "sha256 of every file matches" in info.stdout


def paper_like_catalog(path, run0_matches: bool, seed=0):
    """14,034 rows with the paper's class totals; optionally arranged so run 0's test counts match."""
    rng = np.random.default_rng(seed)
    class_ttype = np.array([-5, 0, 4, 10])
    labels = rng.permutation(np.repeat(np.arange(4), [2738, 3215, 7708, 373]))
    if run0_matches:
        _, test0 = paper_split(0)
        mask = np.ones(14034, bool)
        mask[test0] = False
        labels[test0] = rng.permutation(np.repeat(np.arange(4), [386, 485, 1113, 50]))
        labels[mask] = rng.permutation(np.repeat(np.arange(4), [2352, 2730, 6595, 323]))
    pd.DataFrame({"SDSS": [f"J{i:06d}" for i in range(14034)], "TType": class_ttype[labels]}).to_csv(
        path, sep="\t", index=False
    )
    return labels


def test_verify_paper_reports_totals_and_run_counts(tmp_path, capsys):
    catalog = tmp_path / "table2.tsv"
    paper_like_catalog(catalog, run0_matches=False)
    report_path = tmp_path / "report.json"
    result = run_data(capsys, "verify_paper", catalog=str(catalog), json_out=str(report_path))
    assert result.returncode == 1, result.stderr
    lines = {line.split("  ")[0]: line for line in result.stdout.splitlines()}
    assert lines["class totals"].rstrip().endswith("match") and "2,738 / 3,215 / 7,708 / 373" in lines["class totals"]
    assert lines["run 0 test counts"].rstrip().endswith("MISMATCH")
    assert "386 / 485 / 1,113 / 50" in lines["run 0 test counts"]
    assert "375 / 501 / 1,108 / 50" in lines["run 49 test counts"]
    assert "MISMATCH: this catalogue" in result.stdout
    report = json.loads(report_path.read_text())
    assert report["class_totals"]["match"] and not report["all_match"]
    assert report["runs"]["0"]["paper"] == [386, 485, 1113, 50]

    arranged = tmp_path / "arranged.tsv"
    labels = paper_like_catalog(arranged, run0_matches=True)
    result = run_data(capsys, "verify_paper", catalog=str(arranged))
    lines = {line.split("  ")[0]: line for line in result.stdout.splitlines()}
    assert lines["run 0 test counts"].rstrip().endswith(" match")
    run49 = np.bincount(labels[paper_split(49)[1]], minlength=4)
    assert " / ".join(f"{c:,}" for c in run49) in lines["run 49 test counts"]
    assert result.returncode == (0 if run49.tolist() == [375, 501, 1108, 50] else 1)


def test_catalog_errors_are_clear_on_the_command_line(tmp_path):
    """The one run through `python -m alexnet_jax.data`: flags in, one error line and exit code 2 out."""
    catalog = tmp_path / "few.csv"
    pd.DataFrame({"TType": [1, 2, 3]}).to_csv(catalog, index=False)
    result = subprocess.run(
        [sys.executable, "-m", "alexnet_jax.data", "check_catalog", f"--catalog={catalog}", "--noprogress"],
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 2 and "3 rows, expected 14034" in result.stderr
    assert [
        line for line in result.stderr.splitlines() if line.startswith("error: ")
    ] and "Traceback" not in result.stderr


def test_catalog_errors_are_clear(tmp_path, capsys):
    catalog = tmp_path / "few.csv"
    pd.DataFrame({"TType": [1, 2, 3]}).to_csv(catalog, index=False)
    result = run_data(capsys, "check_catalog", catalog=str(catalog))
    assert result.returncode == 2 and "3 rows, expected 14034" in result.stderr
    pd.DataFrame({"morph": [1, 2, 3]}).to_csv(catalog, index=False)
    result = run_data(capsys, "check_catalog", catalog=str(catalog), expected_rows=3)
    assert result.returncode == 2 and "no ttype column" in result.stderr and "Columns found: morph" in result.stderr
    assert result.stderr.startswith("error: ")


def test_prepare_folder(tmp_path, capsys):
    images = tmp_path / "imgs"
    images.mkdir()
    for i in range(5):
        Image.new("RGB", (64, 48), (50 * i, 10, 10)).save(images / f"{i:02d}.jpg")
    catalog = tmp_path / "cat.csv"
    pd.DataFrame({"TType": [-5, -1, 3, 99, 7]}).to_csv(catalog, index=False)
    out = tmp_path / "mine"
    result = run_data(capsys, "prepare", dataset="folder", image_dir=str(images), catalog=str(catalog), output=str(out))
    assert result.returncode == 0, result.stderr
    data = load_prepared(out, verify=True)
    np.testing.assert_array_equal(data.labels, [0, 1, 2, 3, 2])
    assert "wrote 5 examples" in result.stdout and "spiral 2" in result.stdout


def test_prepare_nair_abraham_from_local_catalog_and_server(tmp_path, capsys):
    n = 6
    catalog = tmp_path / "table2.tsv"
    lines = [
        "# VizieR-like excerpt",
        "",
        "_RAJ2000\t_DEJ2000\tSDSS\tTType\tR90r",
        "deg\tdeg\t \t \tarcsec",
        "--------\t--------\t----\t---\t----",
    ]
    for i in range(n):
        r90 = "" if i == 2 else f"{5 + 3 * i:.1f}"
        lines.append(f"{150 + i:.5f}\t{2 - i / 3:+.5f}\tJ{150 + i:06d}.00+0{i}\t{[-5, 0, 1, 10, 4, -2][i]}\t{r90}")
    catalog.write_text("\n".join(lines) + "\n")
    cache, out = tmp_path / "cache", tmp_path / "na"
    with CutoutServer({}) as server:  # every request answered with a JPEG
        options = dict(
            dataset="nair_abraham",
            catalog=str(catalog),
            output=str(out),
            cache_dir=str(cache),
            sdss_url=server.url,
            expected_rows=n,
            cutout_size=64,
            rate=0,
            backoff=0.01,
        )
        result = run_data(capsys, "prepare", **options)
        assert result.returncode == 0, result.stderr
        assert sum(server.hits.values()) == n and f"{n} fetched" in result.stdout
        data = load_prepared(out, verify=True)
        np.testing.assert_array_equal(data.labels, [0, 1, 2, 3, 2, 1])
        meta = data.metadata
        assert list(meta["id"]) == [f"J{150 + i:06d}.00+0{i}" for i in range(n)]
        np.testing.assert_allclose(meta["ra"], 150 + np.arange(n))
        np.testing.assert_allclose(meta["ttype"], [-5, 0, 1, 10, 4, -2])
        expected_scale = [8.48 * (5 + 3 * i) / 64 if i != 2 else 0.396 for i in range(n)]
        np.testing.assert_allclose(meta["scale_arcsec_per_px"], np.clip(expected_scale, 0.1, 2.0), rtol=1e-6)
        assert list(meta["source_file"]) == sorted(meta["source_file"])  # cut-outs sort in catalogue order
        manifest = read_manifest(out)
        assert manifest["name"] == "nair_abraham" and manifest["catalog"]["rows"] == n
        assert len(manifest["catalog"]["sha256"]) == 64 and manifest["cutouts"]["base_url"] == server.url
        assert manifest["cutouts"]["index_sha256"]

        # rebuilding reuses the cached cut-outs: no request reaches the server
        result = run_data(capsys, "prepare", **options, overwrite=True)
        assert result.returncode == 0, result.stderr
        assert sum(server.hits.values()) == n and f"{n} already present, 0 fetched" in result.stdout
