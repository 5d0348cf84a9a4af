"""The plotting base of every figure: a figure on its own Agg canvas, atomic saving, empty panels, arm colours.

Each figure is built on its own `Figure` with an explicit `FigureCanvasAgg` (no pyplot), so drawing
here never changes the backend of a notebook or program that imports the analysis. The paper's
two arms keep their colours in every figure; other arms take a fixed palette, in arm order.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from alexnet_jax.toolbox import atomic_path

COLOR = {"pretrained": "#1f6fb4", "scratch": "#d9620b"}
PALETTE = ("#2a9d3f", "#8e5bb5", "#c0392b", "#17a2b8", "#8c564b", "#d6589f", "#5f6b73", "#b5a91f")
DPI = 150


def new_figure(nrows: int, ncols: int, size: tuple[float, float]):
    """A constrained-layout figure and its (nrows, ncols) array of axes."""
    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, squeeze=False)


def save_figure(fig: Figure, path: Path) -> None:
    """Atomic: a reader sees the old PNG or the new one."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=DPI, format="png")


def empty_panel(ax, text: str) -> None:
    """A panel that says why it has nothing to show."""
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=11, color="0.35", wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


def arm_colors(arms: list[str]) -> dict[str, str]:
    """The paper's arms keep their colours; every other arm takes the next palette colour, in arm order."""
    others = iter(PALETTE * (1 + len(arms) // len(PALETTE)))
    return {arm: COLOR[arm] if arm in COLOR else next(others) for arm in arms}
