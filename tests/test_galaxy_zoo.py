"""Galaxy Zoo vote tables -> classes by a vote rule -> SDSS cut-outs -> a prepared set, end to end.

A loopback server stands in for VizieR (asu-tsv), the Hart16 bucket and SkyServer's
ImgCutout; the tables are generated in the real formats with the real column names:
data.galaxyzoo.org GZ1 table 2 (OBJID, RA, DEC, NVOTE, P_EL, ..., P_EL_DEBIASED, P_CS_DEBIASED,
SPIRAL, ELLIPTICAL, UNCERTAIN), gz2_hart16 (dr7objid, ra, dec, rastring, decstring, sample,
gz2_class, total_classifications, total_votes, t01_..._{count,weight,fraction,weighted_fraction,
debiased,flag}) and VizieR J/MNRAS/410/166/galaxies (objID, RAJ2000, DEJ2000, N, pcS, paS, pDK,
fE, fS, fU). VizieR's names of the two debiased fractions are not confirmed here, so the
fixture gives them neutral names and the importer finds them by their `#Column` descriptions.
"""

from __future__ import annotations

import gzip
import io
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from alexnet_jax.data import vote_rules
from alexnet_jax.data.commands import DataOptions, run
from alexnet_jax.data.prepared import load_prepared, read_manifest
from tests.loopback import LoopbackServer

# GZ1: 6 ellipticals (one exactly at 0.8), 8 spirals, 6 reaching no class at 0.8.
GZ1_EL = (
    [0.95, 0.9, 0.85, 0.8, 0.99, 0.88]
    + [0.05, 0.1, 0.02, 0.15, 0.0, 0.12, 0.08, 0.1]
    + [0.5, 0.3, 0.6, 0.79, 0.4, 0.45]
)
GZ1_CS = (
    [0.03, 0.05, 0.1, 0.15, 0.0, 0.1]
    + [0.9, 0.85, 0.95, 0.8, 0.97, 0.82, 0.9, 0.88]
    + [0.45, 0.6, 0.35, 0.2, 0.55, 0.5]
)
N1 = len(GZ1_EL)
# GZ2 task 01 (debiased fractions sum to 1): 8 smooth, 8 features or disk, 3 star or artifact, 5 none.
GZ2_T01 = (
    [(0.9, 0.08, 0.02), (0.85, 0.1, 0.05), (0.95, 0.05, 0.0), (0.8, 0.2, 0.0)] * 2
    + [(0.1, 0.88, 0.02), (0.05, 0.93, 0.02), (0.15, 0.82, 0.03), (0.0, 1.0, 0.0)] * 2
    + [(0.05, 0.05, 0.9), (0.1, 0.05, 0.85), (0.0, 0.0, 1.0)]
    + [(0.5, 0.45, 0.05), (0.6, 0.4, 0.0), (0.3, 0.6, 0.1), (0.45, 0.45, 0.1), (0.7, 0.2, 0.1)]
)
N2 = len(GZ2_T01)
ANSWERS = ("a01_smooth", "a02_features_or_disk", "a03_star_or_artifact")


def objid(i: int) -> str:
    return str(587722981736120347 + 1000 * i)


def sexagesimal(degrees: float, hours: bool, sep: str) -> str:
    value = degrees / 15 if hours else abs(degrees)
    a, rest = int(value), (value % 1) * 60
    b, c = int(rest), (rest % 1) * 60
    sign = "" if hours else ("-" if degrees < 0 else "+")
    return f"{sign}{a:02d}{sep}{b:02d}{sep}{c:05.2f}"


def gz1_ra(i: int) -> float:
    return 150.0 + 0.75 * i


def gz1_dec(i: int) -> float:
    return -1.5 + 0.25 * i


def flag(fraction) -> int:
    return int(isinstance(fraction, float) and fraction > 0.8)


def gz1_csv(path, el=GZ1_EL, cs=GZ1_CS, drop_columns=()):
    """data.galaxyzoo.org's GalaxyZoo1_DR_table2.csv: sexagesimal RA/DEC strings, raw and debiased fractions."""
    rows = []
    for i, (p_el, p_cs) in enumerate(zip(el, cs, strict=True)):
        rows.append(
            {
                "OBJID": objid(i),
                "RA": sexagesimal(gz1_ra(i), True, ":"),
                "DEC": sexagesimal(gz1_dec(i), False, ":"),
                "NVOTE": 30 + i,
                "P_EL": p_el,  # raw fractions: here the same as the debiased ones, for simplicity
                "P_CW": round(p_cs / 3, 3) if isinstance(p_cs, float) else "",
                "P_ACW": round(p_cs / 3, 3) if isinstance(p_cs, float) else "",
                "P_EDGE": round(p_cs / 3, 3) if isinstance(p_cs, float) else "",
                "P_DK": 0.0,
                "P_MG": 0.0,
                "P_CS": p_cs,
                "P_EL_DEBIASED": p_el,
                "P_CS_DEBIASED": p_cs,
                "SPIRAL": flag(p_cs),
                "ELLIPTICAL": flag(p_el),
                "UNCERTAIN": 0,
            }
        )
    pd.DataFrame(rows).drop(columns=list(drop_columns)).to_csv(path, index=False)
    return path


def gz1_vizier_tsv() -> str:
    """VizieR's asu-tsv answer for J/MNRAS/410/166/galaxies (comments, #Column lines, header, units, dashes)."""
    columns = [
        ("objID", "(A18)", "SDSS object identifier", ""),
        ("RAJ2000", '("h:m:s")', "Right ascension (J2000)", '"h:m:s"'),
        ("DEJ2000", '("d:m:s")', "Declination (J2000)", '"d:m:s"'),
        ("N", "(I3)", "Number of votes", ""),
        ("pcS", "(F5.3)", "Fraction of votes for clockwise spiral", ""),
        ("paS", "(F5.3)", "Fraction of votes for anticlockwise spiral", ""),
        ("pDK", "(F5.3)", "Fraction of votes for don't know", ""),
        ("pElDebiased", "(F5.3)", "Debiased fraction of votes for elliptical", ""),
        ("pCSDebiased", "(F5.3)", "Debiased fraction of votes for combined spiral", ""),
        ("fS", "(I1)", "[0/1] Spiral flag", ""),
        ("fE", "(I1)", "[0/1] Elliptical flag", ""),
        ("fU", "(I1)", "[0/1] Uncertain flag", ""),
    ]
    lines = [
        "#",
        "#   VizieR Astronomical Server vizier.cds.unistra.fr",
        "#INFO\trequest=https://vizier.cds.unistra.fr/viz-bin/asu-tsv?-source=J/MNRAS/410/166/galaxies",
        "#RESOURCE=yCat_74100166",
        "#Name: J/MNRAS/410/166",
        "#Title: Galaxy Zoo 1 data release (Lintott+, 2011)",
        "#Table\tJ_MNRAS_410_166_galaxies:",
        "#Name: J/MNRAS/410/166/galaxies",
    ]
    lines += [f"#Column\t{name}\t{fmt}\t{text}\t[ucd=]" for name, fmt, text, _ in columns]
    lines += ["\t".join(c[0] for c in columns), "\t".join(c[3] or " " for c in columns)]
    lines.append("\t".join("-" * 6 for _ in columns))
    for i in range(N1):
        ra, dec = sexagesimal(gz1_ra(i), True, " "), sexagesimal(gz1_dec(i), False, " ")
        el, cs = GZ1_EL[i], GZ1_CS[i]
        cells = [objid(i), ra, dec, 30 + i, cs / 2, cs / 2, 0.0, el, cs, int(cs > 0.8), int(el > 0.8), 0]
        lines.append("\t".join(f"{c:.3f}" if isinstance(c, float) else str(c) for c in cells))
    return "\n".join(lines + ["", "#END#", ""])


def gz2_ra(i: int) -> float:
    return 180.0 + 0.5 * i


def hart16_csv_gz() -> bytes:
    """gz2_hart16.csv.gz: decimal ra/dec plus strings, six numbers per task-01 answer, another task's columns."""
    rows = []
    for i, fractions in enumerate(GZ2_T01):
        row = {
            "dr7objid": objid(i),
            "ra": f"{gz2_ra(i):.6f}",
            "dec": f"{2.0 + 0.1 * i:.6f}",
            "rastring": sexagesimal(gz2_ra(i), True, ":"),
            "decstring": sexagesimal(2.0 + 0.1 * i, False, ":"),
            "sample": "original",
            "gz2_class": "Er",
            "total_classifications": 44,
            "total_votes": 120,
        }
        for answer, fraction in zip(ANSWERS, fractions, strict=True):
            stem = f"t01_smooth_or_features_{answer}"
            row |= {
                f"{stem}_count": round(44 * fraction),
                f"{stem}_weight": float(round(44 * fraction)),
                f"{stem}_fraction": fraction,
                f"{stem}_weighted_fraction": fraction,
                f"{stem}_debiased": fraction,
                f"{stem}_flag": int(fraction > 0.8),
            }
        row |= {"t02_edgeon_a04_yes_debiased": 0.1, "t02_edgeon_a05_no_debiased": 0.9}
        rows.append(row)
    return gzip.compress(pd.DataFrame(rows).to_csv(index=False).encode())


def jpeg(width: int, seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (width, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


class Server(LoopbackServer):
    """VizieR asu-tsv, the Hart16 file and ImgCutout on 127.0.0.1; counts hits; `missing_ra` answers 404."""

    def __init__(self):
        self.hits = {"vizier": 0, "hart16": 0, "cutout": 0}
        self.queries: list[str] = []
        self.missing_ra: set[str] = set()
        self.lock = threading.Lock()
        self.hart16 = hart16_csv_gz()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802
                parts = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(parts.query))
                if parts.path == "/viz-bin/asu-tsv":
                    server.count("vizier", parts.query)
                    return self.send(gz1_vizier_tsv().encode(), "text/tab-separated-values")
                if parts.path == "/gz2_hart16.csv.gz":
                    server.count("hart16")
                    return self.send(server.hart16, "application/gzip")
                if parts.path == "/ImgCutout/getjpeg":
                    server.count("cutout")
                    if query.get("ra") in server.missing_ra:
                        return self.send_error(404, "no such field")
                    return self.send(jpeg(int(query["width"]), seed=int(float(query["ra"]) * 100)), "image/jpeg")
                self.send_error(404, "not here")

            def send(self, body: bytes, content_type: str):
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.serve(Handler)

    def count(self, key: str, query: str = "") -> None:
        with self.lock:
            self.hits[key] += 1
            if query:
                self.queries.append(query)


@pytest.fixture(scope="module")
def server():
    with Server() as s:
        yield s


def options(tmp_path, server, **overrides) -> DataOptions:
    base = dict(
        dataset="galaxy_zoo",
        output=str(tmp_path / "out"),
        cache_dir=str(tmp_path / "cache"),
        sdss_url=f"{server.url}/ImgCutout/getjpeg",
        cutout_size=32,
        fetch_workers=4,
        rate=0.0,
        retries=0,
        backoff=0.0,
        timeout=10.0,
        progress=False,
    )
    return DataOptions(**(base | overrides))


def test_gz1_from_vizier_clean_rule_then_resume(tmp_path, server, capsys):
    server.hits.update(vizier=0, hart16=0, cutout=0)
    opts = options(tmp_path, server, gz_release="gz1", gz_table_url=f"{server.url}/viz-bin/asu-tsv")
    assert run("prepare", opts) == 0
    printed = capsys.readouterr().out
    assert "vote rule gz1_clean" in printed and "dropped 6 of 20 galaxies" in printed
    assert "-source=J/MNRAS/410/166/galaxies" in server.queries[-1] and "-out.all" in server.queries[-1]
    manifest = read_manifest(opts.output)
    assert manifest["class_names"] == ["elliptical", "spiral"] and manifest["class_counts"] == [6, 8]
    rule = manifest["vote_rule"]
    assert rule["name"] == "gz1_clean" and rule["threshold"] == 0.8
    assert rule["class_counts"] == {"elliptical": 6, "spiral": 8}
    assert rule["dropped"] == 6 and rule["dropped_no_class"] == 6 and rule["rows"] == N1
    assert rule["columns"] == {"elliptical": "pElDebiased", "spiral": "pCSDebiased"}  # found by description
    data = load_prepared(opts.output, verify=True)
    meta = data.metadata
    rows = meta["catalog_row"].to_numpy()
    np.testing.assert_array_equal(rows, np.arange(14))  # table order, the six unclassed rows left out
    np.testing.assert_allclose(meta["pElDebiased"], np.array(GZ1_EL)[rows])
    np.testing.assert_allclose(meta["pCSDebiased"], np.array(GZ1_CS)[rows])
    np.testing.assert_allclose(meta["ra"], [gz1_ra(i) for i in rows], atol=1e-4)  # sexagesimal hours read
    assert list(meta["id"]) == [objid(i) for i in rows]
    np.testing.assert_array_equal(data.labels, [0] * 6 + [1] * 8)
    assert server.hits == {"vizier": 1, "hart16": 0, "cutout": 14}  # only classed galaxies are fetched

    again = options(tmp_path, server, gz_release="gz1", gz_table_url=f"{server.url}/viz-bin/asu-tsv", overwrite=True)
    assert run("prepare", again) == 0
    assert server.hits == {"vizier": 1, "hart16": 0, "cutout": 14}  # table and cut-outs reused
    second = read_manifest(opts.output)
    assert second["cutouts"]["fetched"] == 0 and second["cutouts"]["reused"] == 14
    assert second["sha256"]["images.npy"] == manifest["sha256"]["images.npy"]


def test_gz2_hart16_smooth_features_and_a_failed_cutout(tmp_path, server, capsys):
    server.hits.update(hart16=0, cutout=0)
    url = f"{server.url}/gz2_hart16.csv.gz"
    server.missing_ra = {f"{gz2_ra(2):.6f}"}
    try:
        opts = options(tmp_path, server, gz_release="gz2", gz_table_url=url)
        assert run("prepare", opts) == 2
        assert "1 cut-outs could not be fetched" in capsys.readouterr().err
        assert not (tmp_path / "out").exists()  # nothing half-written
        assert run("prepare", options(tmp_path, server, gz_release="gz2", gz_table_url=url, on_bad_image="skip")) == 0
    finally:
        server.missing_ra = set()
    assert server.hits["hart16"] == 1
    manifest = read_manifest(opts.output)
    assert manifest["class_names"] == ["smooth", "features_or_disk", "star_or_artifact"]
    assert manifest["class_counts"] == [7, 8, 3]  # row 2 (smooth) had no cut-out
    assert manifest["vote_rule"]["class_counts"] == {"smooth": 8, "features_or_disk": 8, "star_or_artifact": 3}
    assert manifest["vote_rule"]["dropped"] == 5
    assert [d["row"] for d in manifest["dropped"]] == [2]
    meta = load_prepared(opts.output).metadata
    assert 2 not in set(meta["catalog_row"])
    for k, answer in enumerate(ANSWERS):
        column = f"t01_smooth_or_features_{answer}_debiased"
        np.testing.assert_allclose(meta[column], [GZ2_T01[r][k] for r in meta["catalog_row"]])
    np.testing.assert_allclose(meta["ra"], [gz2_ra(r) for r in meta["catalog_row"]])


def test_gz1_local_table_with_own_classes_threshold_and_missing_votes(tmp_path, server, capsys):
    el, cs = list(GZ1_EL), list(GZ1_CS)
    el[1] = cs[1] = ""  # a galaxy without debiased fractions (as GZ1's galaxies without spectra)
    table = gz1_csv(tmp_path / "GalaxyZoo1_DR_table2.csv", el, cs)
    own = options(
        tmp_path,
        server,
        catalog=str(table),
        vote_classes="early=P_EL;late=P_CS",
        vote_threshold=0.9,
        vote_missing="drop",
    )
    assert run("prepare", own) == 0
    rule = read_manifest(own.output)["vote_rule"]
    assert rule["name"] == "custom" and rule["threshold"] == 0.9
    assert rule["class_counts"] == {"early": 2, "late": 4}  # P_EL 0.95, 0.99; P_CS 0.9, 0.95, 0.97, 0.9
    assert rule["dropped_no_votes"] == 1 and rule["columns"] == {"early": "P_EL", "late": "P_CS"}

    clean = options(tmp_path, server, catalog=str(table), output=str(tmp_path / "clean"), vote_missing="drop")
    assert run("prepare", clean) == 0
    rule = read_manifest(clean.output)["vote_rule"]
    assert rule["dropped_no_votes"] == 1 and rule["class_counts"] == {"elliptical": 5, "spiral": 8}
    meta = load_prepared(clean.output).metadata
    np.testing.assert_allclose(meta["dec"], [gz1_dec(i) for i in meta["catalog_row"]], atol=1e-4)
    assert "P_EL_DEBIASED" in meta.columns and "P_CS_DEBIASED" in meta.columns


def _error(tmp_path, capsys, opts) -> str:
    assert run("prepare", opts) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]  # no staging left behind
    return err


@pytest.mark.parametrize(
    ("table_kwargs", "flags", "expected"),
    [
        ({}, {"vote_rule": "gz3_bars"}, "unknown vote rule 'gz3_bars'; use one of gz1_clean"),
        (
            {"drop_columns": ["P_CS_DEBIASED"]},
            {},
            "no column 'P_CS_DEBIASED' for class 'spiral' of vote rule 'gz1_clean' (near matches: P_EL_DEBIASED",
        ),
        (
            {"el": GZ1_EL[:3] + [1.3] + GZ1_EL[4:]},
            {},
            "'P_EL_DEBIASED' (class 'elliptical') holds vote fractions outside [0, 1] at row 3 (e.g. 1.3)",
        ),
        (
            {"el": GZ1_EL[:2] + [""] + GZ1_EL[3:5] + [""] + GZ1_EL[6:]},
            {},
            "2 of 20 rows lack a value in 'P_EL_DEBIASED' or "
            "'P_CS_DEBIASED' (rows 2, 5); fix the table, or pass --vote_missing=drop",
        ),
        ({}, {"vote_threshold": 0.5}, "vote threshold 0.5: use a value above 0.5"),
        (
            {},
            {"vote_threshold": 0.98},
            "no galaxy reaches 0.98 of the votes for class 'spiral' (column 'P_CS_DEBIASED', highest 0.97",
        ),
        ({}, {"vote_threshold": 0.999}, "no galaxy reaches 0.999 of the votes for class 'elliptical'"),
        ({}, {"vote_classes": "smooth=P_EL;round=P_EL"}, "column 'P_EL' is given to both 'smooth' and 'round'"),
        ({}, {"vote_classes": "smooth"}, "'smooth' is not name=column"),
        ({}, {"vote_classes": "a=P_EL;b=P_CS", "vote_rule": "gz1_clean"}, "give --vote_rule or --vote_classes"),
        ({"el": GZ1_EL[:4] + ["lots"] + GZ1_EL[5:]}, {}, "holds 'lots', not a number, at row 4"),
    ],
)
def test_bad_input_is_one_line(tmp_path, server, capsys, table_kwargs, flags, expected):
    table = gz1_csv(tmp_path / "table2.csv", **table_kwargs)
    err = _error(tmp_path, capsys, options(tmp_path, server, catalog=str(table), **flags))
    assert expected in err


def test_no_galaxy_passing_is_named_and_lowering_suggested(tmp_path, server, capsys):
    table = gz1_csv(tmp_path / "table2.csv")
    err = _error(tmp_path, capsys, options(tmp_path, server, catalog=str(table), vote_threshold=0.999))
    assert "lower --vote_threshold" in err


def test_download_errors_and_a_changed_cache(tmp_path, server, capsys):
    err = _error(tmp_path, capsys, options(tmp_path, server, gz_release="gz2", gz_table_url=f"{server.url}/nope.gz"))
    assert "downloading http://127.0.0.1" in err and "HTTP 404" in err
    assert not (tmp_path / "cache" / "galaxy_zoo" / "gz2_hart16.csv.gz").exists()
    opts = options(tmp_path, server, gz_release="gz2", gz_table_url=f"{server.url}/gz2_hart16.csv.gz", retries=0)
    assert run("prepare", opts) == 0
    cached = tmp_path / "cache" / "galaxy_zoo" / "gz2_hart16.csv.gz"
    assert json.loads((cached.parent / "gz2_hart16.csv.gz.json").read_text())["url"].endswith("/gz2_hart16.csv.gz")
    cached.write_bytes(gzip.compress(b"dr7objid,ra,dec\n1,2,3\n"))
    capsys.readouterr()
    assert (
        run(
            "prepare",
            options(tmp_path, server, gz_release="gz2", gz_table_url=opts.gz_table_url, output=str(tmp_path / "again")),
        )
        == 2
    )
    assert "changed since download" in capsys.readouterr().err


def test_two_classes_passing_are_dropped_as_ambiguous_and_the_rule_serialises():
    rule = vote_rules.parse_vote_classes("a=x;b=y", 0.6)
    table = pd.DataFrame({"x": [0.7, 0.9, 0.2], "y": [0.65, 0.05, 0.9]})  # row 0 sums over 1: both pass
    votes = vote_rules.vote_fractions(table, rule, "t.csv")
    result = vote_rules.classify(votes, rule, "t.csv")
    np.testing.assert_array_equal(result.labels, [-1, 0, 1])
    assert result.report["dropped_ambiguous"] == 1
    assert vote_rules.get_rule("gz1_superclean").threshold == 0.95
    assert json.loads(json.dumps(rule.to_json()))["classes"][1] == {"name": "b", "columns": ["y"]}
