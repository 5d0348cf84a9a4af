"""Galaxy10 SDSS and DECaLS files (astroNN's layout) imported through the data command, and the
resumable download against a local HTTP server that cuts connections on purpose."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from alexnet_jax.data import galaxy10
from alexnet_jax.data.commands import DataOptions, run
from alexnet_jax.data.download import download_file
from alexnet_jax.data.folder import load_image
from alexnet_jax.data.prepared import load_prepared, read_manifest
from alexnet_jax.errors import FetchError
from tests.loopback import LoopbackServer


def make_sdss(path: Path, n: int = 30, seed: int = 0) -> dict:
    """A small Galaxy10.h5: `images` (n, 69, 69, 3) uint8 and `ans` uint8, nothing else (as published)."""
    rng = np.random.default_rng(seed)
    data = {"images": rng.integers(0, 256, (n, 69, 69, 3), dtype=np.uint8), "ans": (np.arange(n) % 10)[::-1]}
    data["ans"] = data["ans"].astype(np.uint8)
    with h5py.File(path, "w") as handle:
        for key, value in data.items():
            handle.create_dataset(key, data=value)
    return data


def make_decals(path: Path, n: int = 20, seed: int = 1) -> dict:
    """A small Galaxy10_DECals.h5: 256 px images, ans, ra, dec, redshift (some NaN), pxscale."""
    rng = np.random.default_rng(seed)
    data = {
        "images": rng.integers(0, 256, (n, 256, 256, 3), dtype=np.uint8),
        "ans": (np.arange(n) % 10).astype(np.uint8),
        "ra": rng.uniform(0, 360, n),
        "dec": rng.uniform(-20, 60, n),
        "redshift": np.where(np.arange(n) % 4 == 0, np.nan, rng.uniform(0, 0.3, n)).astype(np.float32),
        "pxscale": np.full(n, 0.262, np.float32),
    }
    with h5py.File(path, "w") as handle:
        for key, value in data.items():
            handle.create_dataset(key, data=value)
    return data


def prepare(tmp_path: Path, **options) -> int:
    options = {"dataset": "galaxy10", "output": str(tmp_path / "out"), "progress": False, **options}
    return run("prepare", DataOptions(**options))


def test_sdss_file_becomes_a_prepared_set_with_ten_named_classes(tmp_path, capsys):
    source = make_sdss(tmp_path / "Galaxy10.h5")
    assert prepare(tmp_path, h5_file=str(tmp_path / "Galaxy10.h5")) == 0
    assert "wrote 30 examples" in capsys.readouterr().out
    images, labels, metadata = load_prepared(tmp_path / "out", verify=True)
    manifest = read_manifest(tmp_path / "out")
    spec = galaxy10.VARIANTS["sdss"]
    assert manifest["name"] == "galaxy10_sdss"
    assert manifest["class_names"] == list(spec.class_names)
    assert manifest["class_names"][0] == "disk_face_on_no_spiral"
    assert manifest["galaxy10"]["class_descriptions"][0] == "Disk, Face-on, No Spiral"
    assert manifest["galaxy10"]["matches_published"] is False  # a made-up file, not astroNN's
    assert manifest["class_counts"] == [3] * 10
    np.testing.assert_array_equal(labels, source["ans"])
    assert list(metadata["id"]) == [str(i) for i in range(30)]
    assert list(metadata["class_name"]) == [spec.class_names[a] for a in source["ans"]]
    assert metadata["ra"].isna().all() and "redshift" not in metadata.columns
    assert images.shape == (30, 256, 256, 3)
    for row in (0, 17, 29):  # the same resize as a folder of 69 px PNGs would get
        png = tmp_path / f"{row}.png"
        Image.fromarray(source["images"][row]).save(png)
        np.testing.assert_array_equal(images[row], load_image(png))


def test_decals_file_keeps_pixels_and_coordinates_across_chunks(tmp_path, monkeypatch):
    source = make_decals(tmp_path / "Galaxy10_DECals.h5")
    monkeypatch.setattr(galaxy10, "CHUNK_IMAGES", 7)  # 20 images: chunks of 7, 7 and 6
    assert prepare(tmp_path, h5_file=str(tmp_path / "Galaxy10_DECals.h5"), galaxy10="decals") == 0
    images, labels, metadata = load_prepared(tmp_path / "out", verify=True)
    manifest = read_manifest(tmp_path / "out")
    assert manifest["class_names"][-1] == "edge_on_with_bulge"
    assert manifest["galaxy10"]["variant"] == "decals"
    assert manifest["galaxy10"]["columns"] == ["ra", "dec", "redshift", "pxscale"]
    np.testing.assert_array_equal(images, source["images"])
    np.testing.assert_array_equal(labels, source["ans"])
    np.testing.assert_allclose(metadata["ra"], source["ra"])
    np.testing.assert_allclose(metadata["dec"], source["dec"])
    np.testing.assert_allclose(metadata["redshift"], source["redshift"], rtol=1e-6)  # NaN where the file has NaN
    assert metadata["redshift"].isna().sum() == 5
    np.testing.assert_allclose(metadata["pxscale"], 0.262, rtol=1e-6)


def test_snake_case_names_follow_the_published_descriptions():
    for spec in galaxy10.VARIANTS.values():
        assert len(spec.class_names) == len(spec.class_descriptions) == 10
        for name, description in zip(spec.class_names, spec.class_descriptions, strict=True):
            words = description.lower().replace(" galaxies", "").replace(",", "").replace("-", " ").split()
            assert name == "_".join(words)


def _bad_files(tmp_path: Path) -> dict[str, tuple[Path, list[str]]]:
    """name -> (file, phrases its error line must hold)."""
    rng = np.random.default_rng(0)
    cases = {}

    def h5(name, **datasets):
        path = tmp_path / f"{name}.h5"
        with h5py.File(path, "w") as handle:
            for key, value in datasets.items():
                handle.create_dataset(key, data=value)
        return path

    images69 = rng.integers(0, 256, (12, 69, 69, 3), dtype=np.uint8)
    ans = (np.arange(12) % 10).astype(np.uint8)
    cases["no_ans"] = (h5("no_ans", images=images69, labels=ans), ["no dataset 'ans'", "labels (12,) uint8"])
    cases["wrong_shape"] = (
        h5("wrong_shape", images=images69[:, :64, :64], ans=ans),
        ["'images' is (12, 64, 64, 3) uint8", "(N, 256, 256, 3)"],
    )
    bad_ans = ans.copy()
    bad_ans[[3, 5]] = [10, 255]
    cases["ans_range"] = (h5("ans_range", images=images69, ans=bad_ans), ["row 3 = 10", "row 5 = 255", "0..9"])
    cases["float_images"] = (h5("float_images", images=images69 / 255.0, ans=ans), ["float64", "Galaxy10 image"])
    cases["short_ra"] = (h5("short_ra", images=images69, ans=ans, ra=np.zeros(5)), ["'ra' is not one number"])
    cases["no_class_9"] = (h5("no_class_9", images=images69, ans=ans % 9), ["disk_face_on_loose_spiral"])
    text = tmp_path / "page.h5"
    text.write_text("<html>Service unavailable</html>")
    cases["not_hdf5"] = (text, ["is not an HDF5 file", "<html>"])
    return cases


@pytest.mark.parametrize(
    "case", ["no_ans", "wrong_shape", "ans_range", "float_images", "short_ra", "no_class_9", "not_hdf5"]
)
def test_a_file_in_another_layout_is_one_error_line_and_leaves_nothing(tmp_path, capsys, case):
    path, phrases = _bad_files(tmp_path)[case]
    capsys.readouterr()
    assert prepare(tmp_path, h5_file=str(path)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and str(path) in err, err
    for phrase in phrases:
        assert phrase in err, (phrase, err)
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]  # no staging left behind


def test_asking_for_the_other_variant_is_refused(tmp_path, capsys):
    make_sdss(tmp_path / "Galaxy10.h5", n=10)
    assert prepare(tmp_path, h5_file=str(tmp_path / "Galaxy10.h5"), galaxy10="decals") == 2
    err = capsys.readouterr().err
    assert "--galaxy10=decals" in err and "Galaxy10 SDSS" in err
    assert prepare(tmp_path, h5_file=str(tmp_path / "missing.h5")) == 2
    assert "does not exist" in capsys.readouterr().err
    assert prepare(tmp_path) == 2
    assert "--h5_file" in capsys.readouterr().err


# ----------------------------------------------------------------------------- download


class FileServer(LoopbackServer):
    """Serves one payload with HTTP Range. `cut` responses (the first ones) promise the whole
    length but send `cut_at` bytes and hang up; `ignore_range` answers every request in full."""

    def __init__(self, payload: bytes, *, cut: int = 0, cut_at: int = 0, ignore_range: bool = False):
        self.payload, self.cut, self.cut_at, self.ignore_range = payload, cut, cut_at, ignore_range
        self.ranges: list[str | None] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802
                asked = self.headers.get("Range")
                server.ranges.append(asked)
                body, start = server.payload, 0
                if asked and not server.ignore_range:
                    start = int(asked.split("=")[1].split("-")[0])
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                if len(server.ranges) <= server.cut:
                    self.wfile.write(body[start : start + server.cut_at])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body[start:])

        self.serve(Handler, "/Galaxy10.h5")


def test_cut_download_resumes_with_range_then_import_uses_the_cache(tmp_path, monkeypatch, capsys):
    make_sdss(tmp_path / "source.h5")
    payload = (tmp_path / "source.h5").read_bytes()
    digest = hashlib.sha256(payload).hexdigest()
    published = dataclasses.replace(galaxy10.VARIANTS["sdss"], sha256=digest)  # stand in for astroNN's file
    monkeypatch.setitem(galaxy10.VARIANTS, "sdss", published)
    cache = tmp_path / "cache"
    with FileServer(payload, cut=2, cut_at=len(payload) // 3) as server:
        options = dict(galaxy10="sdss", galaxy10_url=server.url, cache_dir=str(cache), backoff=0.0, retries=3)
        assert prepare(tmp_path, **options) == 0, capsys.readouterr().err
        third = len(payload) // 3
        assert server.ranges == [None, f"bytes={third}-", f"bytes={2 * third}-"]
        target = cache / "galaxy10" / "Galaxy10.h5"
        assert target.read_bytes() == payload and not Path(f"{target}.part").exists()
        record = json.loads(Path(f"{target}.json").read_text())
        assert record["sha256"] == digest and record["bytes"] == len(payload) and record["url"] == server.url
        manifest = read_manifest(tmp_path / "out")
        assert manifest["galaxy10"]["matches_published"] is True and manifest["num_examples"] == 30
        assert prepare(tmp_path, overwrite=True, **options) == 0  # from the cache: no new request
        assert len(server.ranges) == 3


def test_download_resumes_a_part_left_by_an_earlier_run(tmp_path):
    payload = bytes(range(256)) * 400
    target = tmp_path / "file.h5"
    Path(f"{target}.part").write_bytes(payload[:1000])
    with FileServer(payload) as server:
        download_file(server.url, target, sha256=hashlib.sha256(payload).hexdigest(), progress=False)
    assert server.ranges == ["bytes=1000-"] and target.read_bytes() == payload


def test_a_server_ignoring_range_restarts_from_zero(tmp_path):
    payload = bytes(range(256)) * 400
    target = tmp_path / "file.h5"
    with FileServer(payload, cut=1, cut_at=5000, ignore_range=True) as server:
        download_file(server.url, target, sha256=hashlib.sha256(payload).hexdigest(), backoff=0.0, progress=False)
    assert server.ranges == [None, "bytes=5000-"] and target.read_bytes() == payload


def test_a_wrong_checksum_or_dead_server_leaves_no_file(tmp_path):
    payload = b"not what was published" * 100
    target = tmp_path / "file.h5"
    with FileServer(payload) as server, pytest.raises(FetchError, match="not the expected"):
        download_file(server.url, target, sha256="0" * 64, progress=False)
    assert not target.exists() and not Path(f"{target}.part").exists()
    with FileServer(payload, cut=99, cut_at=100) as server, pytest.raises(FetchError, match="keeps the 300 bytes"):
        download_file(server.url, target, sha256="0" * 64, retries=2, backoff=0.0, progress=False)
    assert not target.exists() and Path(f"{target}.part").stat().st_size == 300
