"""The quick config lives in the package: alexnet_jax/configs/quick.py (its docstring has the commands).

This file keeps `--config=experiments/configs/quick.py` working from a checkout.
"""

from alexnet_jax.configs.quick import get_config  # noqa: F401
