"""The paper's TType -> class rule, and its refusal of anything else."""

from __future__ import annotations

import numpy as np
import pytest

from alexnet_jax.data import CLASS_NAMES, ttype_to_class
from alexnet_jax.data.labels import NUM_CLASSES, PAPER_CLASS_TOTALS, PAPER_NUM_EXAMPLES, PAPER_TRAIN_SIZE
from alexnet_jax.errors import LabelError


def test_rule_covers_every_ttype_of_the_scheme():
    expected = {-5: 0, -3: 1, -2: 1, -1: 1, 0: 1, 10: 3, 99: 3, **{t: 2 for t in range(1, 10)}}
    for ttype, label in expected.items():
        assert ttype_to_class(ttype) == label
        assert ttype_to_class(float(ttype)) == label
        assert ttype_to_class(str(ttype)) == label
    values = np.array(sorted(expected))
    np.testing.assert_array_equal(ttype_to_class(values), [expected[v] for v in values])
    assert ttype_to_class(values).dtype == np.int64
    assert isinstance(ttype_to_class(np.int32(4)), int)


def test_shape_is_kept():
    grid = np.array([[-5, 0], [7, 99]])
    np.testing.assert_array_equal(ttype_to_class(grid), [[0, 1], [2, 3]])


@pytest.mark.parametrize("bad", [-4, -6, 11, 98, 2.5, float("nan"), None, "S0", ""])
def test_values_outside_the_rule_are_refused(bad):
    with pytest.raises(LabelError, match="Unknown or invalid TType"):
        ttype_to_class(bad)


def test_error_names_source_values_and_rows():
    values = [1, -4, 3, -4, 12]
    with pytest.raises(LabelError) as info:
        ttype_to_class(values, source="table2.tsv")
    message = str(info.value)
    assert "in table2.tsv" in message
    assert "TType -4 at rows 1, 3" in message and "TType 12 at row 4" in message
    many = np.full(30, 50)
    with pytest.raises(LabelError, match="and 20 more"):
        ttype_to_class(many)


def test_paper_constants():
    assert CLASS_NAMES == ("elliptical", "lenticular", "spiral", "irr_misc") and NUM_CLASSES == 4
    assert PAPER_CLASS_TOTALS == (2738, 3215, 7708, 373)
    assert sum(PAPER_CLASS_TOTALS) == PAPER_NUM_EXAMPLES == 14034
    assert PAPER_TRAIN_SIZE == 12000
