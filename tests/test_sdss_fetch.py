"""The SDSS cut-out fetcher against a local HTTP server that misbehaves on purpose."""

from __future__ import annotations

import io
import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler

import numpy as np
import pytest
from PIL import Image

from alexnet_jax.data import sdss
from alexnet_jax.data.sdss import CutoutRequest, check_jpeg, cutout_scale, fetch_cutouts
from alexnet_jax.errors import FetchError
from tests.loopback import LoopbackServer


def jpeg_bytes(width: int, height: int, seed: int = 0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


class CutoutServer(LoopbackServer):
    """A local ImgCutout stand-in. `behaviour[ra]` picks the answer for a request with that ra:
    ok, flaky500 (500 first), slow (sleeps past the client time-out first), truncated (short
    body with a full Content-Length first), truncated_noclen (short body, no length, first),
    html (always an HTML page), notfound (always 404), garbage (always a broken JPEG)."""

    def __init__(self, behaviour: dict[str, str], slow_seconds: float = 4.0):
        self.behaviour = behaviour
        self.slow_seconds = slow_seconds
        self.hits: dict[str, int] = {}
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_GET(self):  # noqa: N802
                query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
                ra = query.get("ra", "")
                with server.lock:
                    server.hits[ra] = server.hits.get(ra, 0) + 1
                    first = server.hits[ra] == 1
                kind = server.behaviour.get(ra, "ok")
                body = jpeg_bytes(int(query.get("width", 16)), int(query.get("height", 16)), seed=len(ra))
                try:
                    if kind == "flaky500" and first:
                        self.send_error(500, "try again")
                    elif kind == "slow" and first:
                        time.sleep(server.slow_seconds)
                        self._send(body)
                    elif kind == "truncated" and first:
                        self.send_response(200)
                        self.send_header("Content-Type", "image/jpeg")
                        self.send_header("Content-Length", str(len(body)))
                        self.end_headers()
                        self.wfile.write(body[: len(body) // 2])
                        self.close_connection = True
                    elif kind == "truncated_noclen" and first:
                        self.send_response(200)
                        self.send_header("Content-Type", "image/jpeg")
                        self.send_header("Connection", "close")
                        self.end_headers()
                        self.wfile.write(body[: len(body) // 2])
                        self.close_connection = True
                    elif kind == "html":
                        self._send(b"<html><body>Server busy</body></html>", "text/html")
                    elif kind == "notfound":
                        self.send_error(404, "no such field")
                    elif kind == "garbage":
                        self._send(b"\xff\xd8\xff\xe0" + b"\x00garbage" * 20 + b"\xff\xd9")
                    else:
                        self._send(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (time-out); that is the point of the test

            def _send(self, body: bytes, content_type: str = "image/jpeg"):
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.serve(Handler, "/ImgCutout/getjpeg")


BEHAVIOURS = ["ok", "flaky500", "slow", "truncated", "truncated_noclen", "html", "notfound", "garbage", "ok"]


def make_requests(width: int = 24, scale: float = 0.4) -> list[CutoutRequest]:
    # ra values 10.000000, 11.000000, ... identify the behaviour on the server
    return [
        CutoutRequest(i, f"J{i:02d}+kind-{kind}", 10.0 + i, -1.5, scale, width, width)
        for i, kind in enumerate(BEHAVIOURS)
    ]


def server_behaviour(requests) -> dict[str, str]:
    return {f"{r.ra:.6f}": kind for r, kind in zip(requests, BEHAVIOURS, strict=False)}


# time-out well above a local answer even on a loaded machine, well below the slow answer
FAST = dict(workers=4, rate=0, retries=3, backoff=0.001, max_backoff=0.01, timeout=1.5, progress=False)


def test_fetch_retries_failures_and_resume(tmp_path):
    requests = make_requests()
    out = tmp_path / "cutouts"
    with CutoutServer(server_behaviour(requests)) as server:
        summary = fetch_cutouts(requests, out, base_url=server.url, **FAST)
        files = sorted(p.name for p in out.iterdir())

        # recoverable faults were retried and succeeded; permanent ones failed with reasons
        ok_kinds = {"ok", "flaky500", "slow", "truncated", "truncated_noclen"}
        expect_ok = [r.filename for r, k in zip(requests, BEHAVIOURS, strict=False) if k in ok_kinds]
        expect_failed = {r.filename: k for r, k in zip(requests, BEHAVIOURS, strict=False) if k not in ok_kinds}
        assert summary.fetched == len(expect_ok)
        assert set(summary.failed) == set(expect_failed)
        reasons = {expect_failed[name]: reason for name, reason in summary.failed.items()}
        assert "not a JPEG" in reasons["html"] and "text/html" in reasons["html"]
        assert "HTTP 404" in reasons["notfound"] and "after 1 attempt;" in reasons["notfound"]
        assert "decode" in reasons["garbage"]
        assert server.hits[f"{requests[6].ra:.6f}"] == 1  # 404 is not retried
        assert server.hits[f"{requests[5].ra:.6f}"] == 4  # html: 1 + 3 retries
        for kind in ("flaky500", "slow", "truncated", "truncated_noclen"):
            assert server.hits[f"{requests[BEHAVIOURS.index(kind)].ra:.6f}"] == 2, kind

        # every written file is a complete JPEG of the requested size; nothing partial remains
        for name in expect_ok:
            assert check_jpeg((out / name).read_bytes()) == (24, 24)
        assert not [f for f in files if f.endswith(".part") or f.startswith(".")]
        for name in expect_failed:
            assert name not in files
        report = json.loads((out / "failures.json").read_text())
        assert set(report["failed"]) == set(expect_failed) and report["fetched"] == len(expect_ok)
        index = json.loads((out / "cutouts.json").read_text())["files"]
        assert set(index) == set(expect_ok)

        # second run: nothing valid is fetched again; only the failures are retried
        hits_before = dict(server.hits)
        again = fetch_cutouts(requests, out, base_url=server.url, **FAST)
        assert again.reused == len(expect_ok) and again.fetched == 0
        assert set(again.failed) == set(expect_failed)
        for r, kind in zip(requests, BEHAVIOURS, strict=False):
            key = f"{r.ra:.6f}"
            assert server.hits[key] == hits_before[key] + (0 if kind in ok_kinds else (1 if kind == "notfound" else 4))


def test_resume_refetches_invalid_and_changed(tmp_path):
    requests = make_requests()[:2]  # ok, flaky500
    out = tmp_path / "c"
    with CutoutServer(server_behaviour(requests)) as server:
        first = fetch_cutouts(requests, out, base_url=server.url, **FAST)
        assert first.ok and first.fetched == 2
        untouched = fetch_cutouts(requests, out, base_url=server.url, **FAST)
        assert untouched.fetched == 0 and untouched.attempts == 0
        # a file cut short (e.g. by a disk problem) is detected and fetched again
        path = out / requests[0].filename
        path.write_bytes(path.read_bytes()[:100])
        (out / f".{requests[1].filename}.123.456.part").write_bytes(b"\xff\xd8half")  # stale temp file
        repaired = fetch_cutouts(requests, out, base_url=server.url, **FAST)
        assert repaired.fetched == 1 and repaired.reused == 1
        assert check_jpeg(path.read_bytes()) == (24, 24)
        assert not list(out.glob(".*.part"))
        # other cut-out parameters -> the old images do not count
        bigger = [CutoutRequest(r.index, r.id, r.ra, r.dec, 0.5, 32, 32) for r in requests]
        changed = fetch_cutouts(bigger, out, base_url=server.url, **FAST)
        assert changed.fetched == 2 and check_jpeg(path.read_bytes()) == (32, 32)


def test_backoff_delays_grow_and_are_injectable(tmp_path):
    requests = [CutoutRequest(0, "J0", 10.0, 0.0, 0.4, 16, 16)]
    delays: list[float] = []
    with CutoutServer({"10.000000": "html"}) as server:
        summary = fetch_cutouts(
            requests,
            tmp_path,
            base_url=server.url,
            workers=1,
            rate=0,
            retries=3,
            backoff=0.5,
            max_backoff=1.5,
            timeout=2,
            progress=False,
            sleep=delays.append,
        )
    assert summary.failed and summary.attempts == 4
    assert len(delays) == 3
    # 0.5 * 2**k, capped at max_backoff, jitter in [1, 1.25)
    for delay, base in zip(delays, (0.5, 1.0, 1.5), strict=False):
        assert base <= delay < base * 1.25


def test_rate_limiter_spaces_starts(monkeypatch):
    clock = {"now": 100.0}
    slept: list[float] = []
    monkeypatch.setattr(sdss.time, "monotonic", lambda: clock["now"])
    monkeypatch.setattr(sdss.time, "sleep", slept.append)
    limiter = sdss.RateLimiter(rate=4.0)
    for _ in range(4):
        limiter.wait()
    assert slept == pytest.approx([0.25, 0.5, 0.75])
    unlimited = sdss.RateLimiter(rate=0)
    unlimited.wait()
    assert len(slept) == 3


def test_check_jpeg_rejects_bad_bodies():
    good = jpeg_bytes(8, 8)
    assert check_jpeg(good) == (8, 8)
    with pytest.raises(FetchError, match="not a JPEG"):
        check_jpeg(b"<html>")
    with pytest.raises(FetchError, match="truncated"):
        check_jpeg(good[:-10])
    png = io.BytesIO()
    Image.new("RGB", (4, 4)).save(png, format="PNG")
    with pytest.raises(FetchError, match="not a JPEG"):
        check_jpeg(png.getvalue())


def test_scale_rule_and_requests():
    # field of view = fov_factor * R90; scale = fov / width, clipped
    assert cutout_scale(20.0, 256, fov_factor=8.48) == pytest.approx(8.48 * 20 / 256)
    assert cutout_scale(0.5, 256) == 0.1 and cutout_scale(500.0, 256) == 2.0
    assert cutout_scale(None) == cutout_scale(float("nan")) == cutout_scale(-1.0) == 0.396
    import pandas as pd

    table = pd.DataFrame({"id": ["J1", "J 2/x"], "ra": [1.0, 2.0], "dec": [3.0, -4.0], "petro_radius": [20.0, np.nan]})
    requests = sdss.requests_from_catalog(table, width=128)
    assert [r.scale for r in requests] == pytest.approx([8.48 * 20 / 128, 0.396])
    assert [r.filename for r in requests] == ["000000_J1.jpg", "000001_J_2_x.jpg"]
    assert sorted(r.filename for r in requests) == [r.filename for r in requests]
    fixed = sdss.requests_from_catalog(table, fixed_scale=0.25)
    assert {r.scale for r in fixed} == {0.25}
    url = sdss.cutout_url("http://h/getjpeg", 1.5, -2.25, 0.3, 64, 64)
    assert urllib.parse.parse_qs(urllib.parse.urlsplit(url).query) == {
        "ra": ["1.500000"],
        "dec": ["-2.250000"],
        "scale": ["0.30000"],
        "width": ["64"],
        "height": ["64"],
    }
    table.loc[1, "ra"] = np.nan
    with pytest.raises(ValueError, match="rows without RA/Dec cannot be fetched: 1"):
        sdss.requests_from_catalog(table)


def test_interrupt_stops_new_requests_and_keeps_the_index(tmp_path):
    requests = [CutoutRequest(0, "J0", 10.0, 0.0, 0.4, 16, 16)] + [
        CutoutRequest(i, f"J{i}", 20.0 + i, 0.0, 0.4, 16, 16) for i in range(1, 5)
    ]

    def interrupt(_delay):
        raise KeyboardInterrupt

    with CutoutServer({"10.000000": "flaky500"}) as server:
        with pytest.raises(KeyboardInterrupt):
            fetch_cutouts(
                requests, tmp_path, base_url=server.url, workers=1, rate=0, retries=2, progress=False, sleep=interrupt
            )
        # the worker may have started one more request before the cancel; the rest never ran
        assert sum(server.hits.values()) <= 2
    index = json.loads((tmp_path / "cutouts.json").read_text())["files"]
    assert sorted(index) == sorted(p.name for p in tmp_path.glob("*.jpg"))
    assert requests[0].filename not in index and not list(tmp_path.glob(".*.part"))
