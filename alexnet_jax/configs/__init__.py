"""The experiment configs, shipped inside the package (ml_collections files, as big_vision keeps them).

Each file's docstring is the command that runs it. Commands take a config by path
(`--config=alexnet_jax/configs/paper.py`, or `experiments/configs/paper.py` from a checkout);
`path("paper")` gives the installed file's path.
"""

from pathlib import Path

import ml_collections

DIRECTORY = Path(__file__).resolve().parent


def path(name: str) -> str:
    """The file of config `name` ("paper", "quick", ...), wherever the package is installed."""
    return str(DIRECTORY / f"{name}.py")


def arm(init: str, finetune: str = "full") -> ml_collections.ConfigDict:
    """One arm of a study (alexnet_jax.training.arms): its start, what it trains, and optimizer overrides
    (None keeps the study's config.optim value; each can be set from the command line)."""
    optim = ml_collections.ConfigDict(
        {
            name: ml_collections.FieldReference(None, field_type=float)
            for name in ("learning_rate", "momentum", "weight_decay")
        }
    )
    return ml_collections.ConfigDict({"init": init, "finetune": finetune, "optim": optim})


def override(config: ml_collections.ConfigDict, overrides: dict) -> ml_collections.ConfigDict:
    """`config` with dotted keys set, as `--config.a.b=v` sets them: override(c, {"optim.learning_rate": 0.01})."""
    for key, value in overrides.items():
        *parents, leaf = key.split(".")
        target = config
        for parent in parents:
            target = target[parent]
        target[leaf] = value
    return config
