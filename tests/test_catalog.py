"""Reading, normalising and checking the Nair & Abraham catalogue in its several shapes."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from alexnet_jax.data import catalog as cat
from alexnet_jax.data.catalog import check_catalog, fetch_catalog, load_catalog
from alexnet_jax.errors import CatalogError, LabelError
from alexnet_jax.toolbox import sha256_file

TTYPES = [-5, -3, 0, 1, 4, 9, 10, 99]
LABELS = [0, 1, 1, 2, 2, 2, 3, 3]
NAMES = [f"J{100000 + i}.00+0{i}0000.0" for i in range(8)]
RA = [150.1 + i for i in range(8)]
DEC = [-1.25 + i / 2 for i in range(8)]


def vizier_tsv(path, ra_sexagesimal: bool = True):
    """VizieR's TSV output: comment header, names, units, dashes, rows (first table only)."""
    lines = [
        "#",
        "# VizieR Astronomical Server vizier.cds.unistra.fr",
        "#RESOURCE=yCat_21860427",
        "#Name: J/ApJS/186/427",
        "#Table\tJ_ApJS_186_427_table2:",
        "#Title: Catalog (table2)",
        "",
        "_RAJ2000\t_DEJ2000\tSDSS\tRAJ2000\tDEJ2000\tz\tTType\tR90r\tRp",
        'deg\tdeg\t \t"h:m:s"\t"d:m:s"\t \t \tarcsec\tkpc',
        "----------\t----------\t-------------------\t-----------\t-----------\t-----\t----\t-----\t-----",
    ]
    for i in range(8):
        hours = RA[i] / 15
        h, m = int(hours), int((hours % 1) * 60)
        s = ((hours * 60) % 1) * 60
        sign = "-" if DEC[i] < 0 else "+"
        d_abs = abs(DEC[i])
        dm, ds = int((d_abs % 1) * 60), ((d_abs * 60) % 1) * 60
        ra_text = f"{h:02d} {m:02d} {s:06.3f}" if ra_sexagesimal else f"{RA[i]:.5f}"
        lines.append(
            f"{RA[i]:.5f}\t{DEC[i]:+.5f}\t{NAMES[i]}\t{ra_text}\t{sign}{int(d_abs):02d} {dm:02d} {ds:05.2f}\t"
            f"0.05\t{TTYPES[i]:>3}\t{10 + i:.2f}\t{3 + i:.1f}"
        )
    lines += ["", "#END#", "", "#Table\tanother:", "a\tb", "1\t2"]
    path.write_text("\n".join(lines) + "\n")
    return path


def frame() -> pd.DataFrame:
    return pd.DataFrame({"SDSS": NAMES, "RAJ2000": RA, "DEJ2000": DEC, "TType": TTYPES, "R90r": np.arange(8) + 10.0})


def test_vizier_tsv_is_read_in_file_order_with_units(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Rp (kpc) comes after R90r, so no unit warning is due
        c = load_catalog(vizier_tsv(tmp_path / "table2.tsv"))
    assert len(c) == 8
    assert c.column_map == {"ttype": "TType", "id": "SDSS", "ra": "RAJ2000", "dec": "DEJ2000", "petro_radius": "R90r"}
    assert list(c.table["id"]) == NAMES
    np.testing.assert_allclose(c.table["ra"], RA, atol=1e-5)  # sexagesimal hours -> degrees
    np.testing.assert_allclose(c.table["dec"], DEC, atol=1e-5)
    np.testing.assert_array_equal(c.labels(), LABELS)
    np.testing.assert_allclose(c.table["petro_radius"], np.arange(8) + 10.0)
    assert c.units["R90r"] == "arcsec" and c.units["Rp"] == "kpc"
    assert c.sha256 and len(c.sha256) == 64
    assert "z" in c.table.columns  # every source column is kept


def test_radius_in_kpc_is_not_used(tmp_path):
    path = vizier_tsv(tmp_path / "t.tsv")
    text = path.read_text().replace("\tR90r\t", "\tR90x\t")
    path.write_text(text)
    with pytest.warns(UserWarning, match="'Rp' has unit 'kpc'"):
        c = load_catalog(path)
    assert c.column_map["petro_radius"] is None and c.table["petro_radius"].isna().all()
    explicit = load_catalog(path, radius_column="R90x")
    np.testing.assert_allclose(explicit.table["petro_radius"], np.arange(8) + 10.0)


@pytest.mark.parametrize("kind", ["csv", "tsv", "fits", "ecsv"])
def test_other_formats(tmp_path, kind):
    table = frame()
    path = tmp_path / f"cat.{'txt' if kind == 'tsv' else kind}"
    if kind == "csv":
        table.to_csv(path, index=False)
    elif kind == "tsv":  # what the original read with pandas.read_table
        table.to_csv(path, sep="\t", index=False)
    else:
        from astropy.table import Table

        Table.from_pandas(table).write(path, format="fits" if kind == "fits" else "ascii.ecsv")
    c = load_catalog(path)
    assert list(c.table["id"]) == NAMES
    np.testing.assert_allclose(c.table["ra"], RA)
    np.testing.assert_array_equal(c.labels(), LABELS)


def test_aliases_and_missing_columns(tmp_path):
    table = frame().rename(columns={"RAJ2000": "_RA", "DEJ2000": "_DE", "TType": "T", "SDSS": "JID"})
    path = tmp_path / "a.csv"
    table.to_csv(path, index=False)
    c = load_catalog(path)
    assert c.column_map["ra"] == "_RA" and c.column_map["ttype"] == "T" and c.column_map["id"] == "JID"
    table.drop(columns=["T"]).to_csv(path, index=False)
    with pytest.raises(CatalogError, match=r"no ttype column.*Columns found: JID, _RA, _DE, R90r"):
        load_catalog(path)
    table.drop(columns=["T"]).assign(morph=TTYPES).to_csv(path, index=False)
    np.testing.assert_array_equal(load_catalog(path, ttype_column="morph").labels(), LABELS)
    with pytest.raises(CatalogError, match="column 'nope'"):
        load_catalog(path, ttype_column="nope")
    table.drop(columns=["_DE"]).to_csv(path, index=False)
    with pytest.raises(CatalogError, match="only one of RA/Dec"):
        load_catalog(path)


def test_bad_ttype_names_file_and_rows(tmp_path):
    table = frame().astype({"TType": float})
    table.loc[[2, 5], "TType"] = [6.5, 11]
    path = tmp_path / "bad.csv"
    table.to_csv(path, index=False)
    c = load_catalog(path)
    with pytest.raises(LabelError, match=r"bad\.csv.*TType '6\.5' at row 2.*TType '11(\.0)?' at row 5"):
        c.labels()


def test_check_catalog_rows_and_class_totals(tmp_path):
    path = tmp_path / "c.csv"
    frame().to_csv(path, index=False)
    c = load_catalog(path)
    with pytest.raises(CatalogError, match="8 rows, expected 14034"):
        check_catalog(c)
    with pytest.warns(UserWarning, match="8 rows, expected 14034"):
        report = check_catalog(c, on_row_mismatch="warn")
    assert report.class_counts == [1, 2, 3, 2] and not report.counts_match and not report.rows_match
    report = check_catalog(c, expected_rows=8)
    assert report.rows_match
    text = "\n".join(report.lines())
    assert "elliptical" in text and "2,738" in text and "DIFFER" in text

    # a catalogue with the paper's totals reports a match
    rng = np.random.default_rng(0)
    ttypes = rng.permutation(np.repeat([-5, 0, 5, 10], [2738, 3215, 7708, 373]))
    big = tmp_path / "big.csv"
    pd.DataFrame({"TType": ttypes}).to_csv(big, index=False)
    full = check_catalog(load_catalog(big))
    assert full.counts_match and full.rows_match and full.class_counts == [2738, 3215, 7708, 373]
    with pytest.raises(CatalogError, match="no RA/Dec"):
        check_catalog(load_catalog(big), require_coordinates=True)


class FakeVizier:
    """Stands in for astroquery's Vizier: returns a TableList-like dict of astropy tables."""

    def __init__(self):
        self.calls = []

    def get_catalogs(self, name):
        import astropy.units as u
        from astropy.table import Table

        self.calls.append(name)
        table = Table.from_pandas(frame())
        table["R90r"].unit = u.arcsec
        table["_RA"] = np.array(RA) * u.deg
        return {"J/ApJS/186/427/table1": Table({"x": [1]}), "J/ApJS/186/427/table2": table}


def test_fetch_catalog_caches_with_checksum(tmp_path):
    fake = FakeVizier()
    path = fetch_catalog(tmp_path, vizier=fake)
    assert fake.calls == ["J/ApJS/186/427/table2"]
    digest = (tmp_path / (path.name + ".sha256")).read_text().split()[0]
    assert digest == sha256_file(path)
    loaded = cat.load_or_fetch_catalog(cache_dir=tmp_path, vizier=fake)
    assert fake.calls == ["J/ApJS/186/427/table2"]  # reused, not fetched again
    assert "VizieR" in loaded.source and list(loaded.table["id"]) == NAMES
    np.testing.assert_array_equal(loaded.labels(), LABELS)
    assert loaded.units["R90r"] == "arcsec"
    assert not list(tmp_path.glob(".*tmp"))

    path.write_text(path.read_text().replace("J100003", "J999999"))
    with pytest.raises(CatalogError, match="changed since download"):
        fetch_catalog(tmp_path, vizier=fake)
    fetch_catalog(tmp_path, vizier=fake, refresh=True)
    assert len(fake.calls) == 2 and fetch_catalog(tmp_path, vizier=fake) == path


def test_failed_query_is_a_clear_error(tmp_path):
    class Broken:
        def get_catalogs(self, name):
            raise ConnectionError("no route to host")

    with pytest.raises(CatalogError, match="VizieR query for J/ApJS/186/427/table2 failed: no route"):
        fetch_catalog(tmp_path, vizier=Broken())
    assert not list(tmp_path.iterdir())


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(CatalogError, match="does not exist"):
        load_catalog(tmp_path / "nope.csv")
    bad = tmp_path / "bad.fits"
    bad.write_bytes(b"not fits at all")
    with pytest.raises(CatalogError, match="could not read catalogue .*bad.fits as fits"):
        load_catalog(bad)
