"""The user's mapping of catalogue values to classes: values, ranges, files and refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest

from alexnet_jax.data.class_map import load_class_map, parse_class_map
from alexnet_jax.errors import LabelError


def test_values_ranges_and_text_in_label_order():
    mapping = parse_class_map("elliptical=-5; lenticular=-3..0; spiral=1..9; irr_misc=10,99")
    assert mapping.class_names == ("elliptical", "lenticular", "spiral", "irr_misc")
    labels, report = mapping.assign([-5, "-2", 0.0, 1, 9, "10", 99.0, 7], source="cat.csv", column="TType")
    np.testing.assert_array_equal(labels, [0, 1, 1, 2, 2, 3, 3, 2])
    assert report["class_counts"] == {"elliptical": 1, "lenticular": 2, "spiral": 3, "irr_misc": 2}
    assert report["mapping"]["lenticular"] == ["-3..0"]
    text = parse_class_map("early = E, S0\nlate = Sa, Sb  # spirals\n")
    assert text.class_of(" e ") == 0 and text.class_of("SB") == 1 and text.class_of("Irr") == -1


def test_open_ranges_and_unmapped_rows():
    mapping = parse_class_map("early=..0;late=1..")
    labels, report = mapping.assign([-5, 0.5, 3, float("nan"), "x"], source="t", column="c", unmapped="drop")
    np.testing.assert_array_equal(labels, [0, -1, 1, -1, -1])
    assert report["unmapped_rows"] == 3 and report["unmapped_values"] == {"0.5": 1, "empty": 1, "'x'": 1}
    with pytest.raises(LabelError, match=r"t: column 'c' holds values in no class .*0\.5 \(1 rows, first row 1\)"):
        mapping.assign([-5, 0.5, 3], source="t", column="c", unmapped="fail")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a=1,2; b=2", r"value '2' is in two classes, 'a' and 'b'"),
        ("a=E; b=e", r"value 'e' is in two classes, 'a' and 'b'"),
        ("a=0..5; b=3", r"value 3 of class 'b' lies in range 0..5 of class 'a'"),
        ("a=0..5; b=5..9", r"range 0..5 of class 'a' overlaps range 5..9 of class 'b'"),
        ("a=5..0; b=7", r"range '5..0' runs backwards"),
        ("a=1", r"at least two classes"),
        ("a=1; a=2", r"class 'a' is given twice"),
        ("a=; b=1", r"class 'a': no values"),
        ("a 1; b=2", r"'a 1' has no '='"),
        ("a=x..y; b=1", r"'x..y' is not a numeric range"),
    ],
)
def test_refusals_name_the_value_and_classes(text, message):
    with pytest.raises(LabelError, match=message):
        parse_class_map(text)


def test_files_text_and_json(tmp_path):
    (tmp_path / "map.txt").write_text("# GZ1-like\nsmooth=E\ndisk=S,Sa,Sb\n")
    assert load_class_map(str(tmp_path / "map.txt")).class_names == ("smooth", "disk")
    (tmp_path / "map.json").write_text(json.dumps({"early": ["..0"], "late": ["1..9", 99]}))
    mapping = load_class_map(str(tmp_path / "map.json"))
    assert mapping.class_of(99) == 1 and mapping.class_of(-1) == 0 and mapping.origin.endswith("map.json")
    with pytest.raises(LabelError, match="class map file .*missing.json does not exist"):
        load_class_map(str(tmp_path / "missing.json"))
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(LabelError, match="JSON must map class names to value lists"):
        load_class_map(str(tmp_path / "bad.json"))
    assert load_class_map("a=1;b=2").origin == "--class_map"


def test_a_class_without_rows_is_refused():
    with pytest.raises(LabelError, match=r"no row of column 'TType' falls in class\(es\) 'lenticular'"):
        parse_class_map("elliptical=-5; lenticular=-3..0; spiral=1..9").assign(
            [-5, 3], source="cat", column="TType", unmapped="drop"
        )
