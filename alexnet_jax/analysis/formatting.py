"""How the tables, the report and the figures print numbers, classes and run lists.

Missing values print as "n/a" (p-values as "undefined"), never as None or nan.
"""

from __future__ import annotations

from collections.abc import Sequence

PRETTY_CLASS = {"elliptical": "Elliptical", "lenticular": "Lenticular", "spiral": "Spiral", "irr_misc": "Irr+Misc"}


def format_percent(value, digits: int = 1) -> str:
    """A fraction as percent: 0.5436 -> '54.4'."""
    return "n/a" if value is None else f"{100 * value:.{digits}f}"


def format_number(value, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def with_unit(text: str, unit: str) -> str:
    """'54.4' -> '54.4%', but 'n/a' stays bare."""
    return text if text == "n/a" else text + unit


def format_p(value) -> str:
    return "undefined" if value is None else f"{value:.3g}"


def scaled(value, scale: float = 100.0):
    """value * scale, with None kept: fractions to percent for the CSV files."""
    return None if value is None else value * scale


def class_label(name: str, names: Sequence[str]) -> str:
    """A class as tables and figures print it: among the paper's four classes (`names`), as the paper
    names it ("Irr+Misc"); in any other set of classes, as the data name it."""
    return PRETTY_CLASS[name] if set(names) == set(PRETTY_CLASS) else name


def format_runs(n: int) -> str:
    """1 -> '1 run', 3 -> '3 runs'."""
    return f"{n} run" if n == 1 else f"{n} runs"


def format_ranges(values: Sequence[int]) -> str:
    """[0,1,2,5] -> '0-2, 5'."""
    values = sorted(values)
    parts, start = [], None
    for i, v in enumerate(values):
        if start is None:
            start = v
        if i + 1 == len(values) or values[i + 1] != v + 1:
            parts.append(str(start) if start == v else f"{start}-{v}")
            start = None
    return ", ".join(parts) or "none"
