"""How the figures with one panel, bar group or matrix row per class grow with the number of classes K.

The paper's four short class names keep the sizes and fonts the figures always had. More classes or
longer names (Galaxy10's "in_between_round_smooth") get larger figures, smaller numbers in the
matrix cells, and x tick labels turned 45 degrees where they would overlap. Plain arithmetic on
text lengths, without matplotlib, so the rules are tested without drawing.
"""

from __future__ import annotations

import math
import string
from dataclasses import dataclass

PAPER_K = 4  # up to this many classes, the paper's figure sizes and panel grid
CHAR_EMS = 0.55  # a character's width in ems, about, in matplotlib's DejaVu Sans
TICK_POINTS = 10.0  # matplotlib's default tick label size
SMALL_TICK_POINTS = 8.0  # ... for cells narrower than NARROW_CELL
NARROW_CELL = 0.4  # inches
CELL_POINTS = 9.5  # the numbers in a matrix cell, at most (the paper-sized figures' size)
MIN_CELL_POINTS = 5.0
CELL_INCHES = 0.62  # a matrix cell in a figure grown for many classes
MATRIX_SIDE_MAX = 12.0  # inches of cells in one matrix, at most
MATRIX_MARGIN_X = 1.6  # inches beside a matrix's cells: axis label, colour bar and its label
MATRIX_MARGIN_Y = 1.15  # inches below and above: axis label and title
TURN = 45  # degrees of a turned tick label
TURNED_LABEL = dict(rotation=TURN, ha="right", rotation_mode="anchor")  # Axes.set_xticks keywords


def text_inches(text: str, points: float = TICK_POINTS) -> float:
    """About how wide a line of text is, in inches."""
    return max((len(line) for line in text.split("\n")), default=0) * CHAR_EMS * points / 72


def panel_letter(i: int) -> str:
    """A, B, ..., Z, AA, AB, ...: the letter of the i-th panel (0-based), for any number of panels."""
    letters = string.ascii_uppercase
    return letters[i] if i < len(letters) else panel_letter(i // len(letters) - 1) + letters[i % len(letters)]


def class_grid(k: int) -> tuple[int, int, tuple[float, float]]:
    """Rows, columns and figure size of one histogram panel per class (Figs 8 and 9)."""
    columns = 2 if k <= PAPER_K else (3 if k <= 9 else 4)
    rows = math.ceil(k / columns)
    return rows, columns, (12.0 if columns == 2 else 5.2 * columns, 4.0 * rows)


@dataclass(frozen=True)
class MatrixLayout:
    """A figure of KxK matrices: its size, the cell numbers' font size, the tick labels' size and turn."""

    size: tuple[float, float]
    cell_points: float
    tick_points: float
    turn_x: bool


def matrix_layout(labels: list[str], grid: tuple[int, int], paper_size: tuple[float, float], cell_text: int):
    """The layout of a (rows, columns) grid of matrices whose tick labels are `labels` and whose cells
    hold up to `cell_text` characters a line; `paper_size` is the figure's size with the paper's classes."""
    k, (rows, columns) = len(labels), grid
    label = max(text_inches(text) for text in labels)
    cell = CELL_INCHES if k <= 12 else max(0.32, MATRIX_SIDE_MAX / k)
    wanted = (columns * (k * cell + label + MATRIX_MARGIN_X), rows * (k * cell + label + MATRIX_MARGIN_Y))
    size = (max(paper_size[0], wanted[0]), max(paper_size[1], wanted[1]))  # the paper's four fit its size
    cell = min((size[0] / columns - label - MATRIX_MARGIN_X) / k, (size[1] / rows - MATRIX_MARGIN_Y) / k)
    tick_points = TICK_POINTS if cell >= NARROW_CELL else SMALL_TICK_POINTS
    fit = 0.85 * cell * 72 / (cell_text * CHAR_EMS)  # the longest cell line fills 85 % of the cell
    return MatrixLayout(
        size=size,
        cell_points=max(MIN_CELL_POINTS, min(CELL_POINTS, fit)),
        tick_points=tick_points,
        turn_x=text_inches(max(labels, key=len), tick_points) > 0.95 * cell,
    )


def bars_layout(labels: list[str], arms: int) -> tuple[tuple[float, float], bool]:
    """Figure size of one group of bars per class and arm (Fig 15), and whether the class labels turn."""
    k = len(labels)
    width = min(14, max(8, 0.6 * k * arms + 2)) if k <= PAPER_K else min(24, max(8, 0.45 * k * arms + 2))
    turn = text_inches(max(labels, key=len)) > 0.95 * (width - 1.2) / k
    return (width, 5.2 + (0.71 * text_inches(max(labels, key=len)) if turn else 0.0)), turn
