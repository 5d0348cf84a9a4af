"""The paper config lives in the package: alexnet_jax/configs/paper.py (its docstring has the commands).

This file keeps `--config=experiments/configs/paper.py` working from a checkout.
"""

from alexnet_jax.configs.paper import get_config  # noqa: F401
