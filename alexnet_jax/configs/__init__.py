"""The experiment configs, shipped inside the package (ml_collections files, as big_vision keeps them).

Each file's docstring is the command that runs it. Commands take a config by path
(`--config=alexnet_jax/configs/paper.py`, or `experiments/configs/paper.py` from a checkout);
`path("paper")` gives the installed file's path.
"""

from pathlib import Path

DIRECTORY = Path(__file__).resolve().parent


def path(name: str) -> str:
    """The file of config `name` ("paper", "quick", ...), wherever the package is installed."""
    return str(DIRECTORY / f"{name}.py")
