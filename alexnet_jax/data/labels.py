"""The paper's four classes and the Nair & Abraham TType -> class rule.

The original code initialised every label to 0 and then overwrote known TTypes, so any
unexpected TType silently became "elliptical". Here every value outside the rule, every
non-integer and every missing value is an error that names the value and its rows.
"""

from __future__ import annotations

import numpy as np

from alexnet_jax import paper
from alexnet_jax.errors import LabelError

CLASS_NAMES = paper.CLASS_NAMES
NUM_CLASSES = len(CLASS_NAMES)
# The 14,034-galaxy catalogue's class totals and the paper's train size (alexnet_jax.paper).
PAPER_CLASS_TOTALS = paper.CLASS_TOTALS
PAPER_NUM_EXAMPLES = paper.NUM_EXAMPLES
PAPER_TRAIN_SIZE = paper.TRAIN_SIZE

TTYPE_TO_CLASS = {-5: 0, -3: 1, -2: 1, -1: 1, 0: 1, **{t: 2 for t in range(1, 10)}, 10: 3, 99: 3}


def _describe_rows(rows: np.ndarray, limit: int = 10) -> str:
    shown = ", ".join(str(int(r)) for r in rows[:limit])
    more = f" and {len(rows) - limit} more" if len(rows) > limit else ""
    return f"row{'s' if len(rows) > 1 else ''} {shown}{more}"


def ttype_to_class(ttype, *, source: str | None = None):
    """Map TType (scalar or array) to class indices 0..3; refuse anything else.

    `source` (e.g. a catalogue path) is named in the error message.
    """
    scalar = np.ndim(ttype) == 0
    values = np.asarray(ttype, dtype=object).reshape(-1)  # rows are flat (C-order) positions
    where = f" in {source}" if source else ""
    out = np.empty(values.shape, np.int64)
    bad: dict[str, list[int]] = {}
    for row, value in enumerate(values):
        try:
            number = float(value)
        except (TypeError, ValueError):
            bad.setdefault(repr(value), []).append(row)
            continue
        if not np.isfinite(number) or number != int(number) or int(number) not in TTYPE_TO_CLASS:
            bad.setdefault(repr(value), []).append(row)
            continue
        out[row] = TTYPE_TO_CLASS[int(number)]
    if bad:
        problems = "; ".join(f"TType {value} at {_describe_rows(np.asarray(rows))}" for value, rows in bad.items())
        raise LabelError(
            f"Unknown or invalid TType{where}: {problems}. Valid values are -5 (elliptical), "
            "-3..0 (lenticular), 1..9 (spiral), 10 or 99 (irr_misc). Fix or drop these rows "
            "in the catalogue; they are never relabelled silently."
        )
    return int(out[0]) if scalar else out.reshape(np.shape(ttype))
