"""alexnet_jax: transfer learning for galaxy morphology with torchvision-exact AlexNet (and other backbones) in JAX.

Public names load on first use, so `python -m alexnet_jax.data ...` starts without JAX and
nothing here needs TensorFlow or torch.
"""

import importlib

__version__ = "0.1.0"
_PUBLIC = {
    "AlexNet": "alexnet_jax.models",
    "get_model": "alexnet_jax.models",
    "init_params": "alexnet_jax.models",
    "init_variables": "alexnet_jax.models",
    "count_params": "alexnet_jax.models",
    "convert_torch_state_dict": "alexnet_jax.convert",
    "convert_state_dict": "alexnet_jax.convert",
    "load_params": "alexnet_jax.params_io",
    "load_variables": "alexnet_jax.params_io",
    "save_params": "alexnet_jax.params_io",
    "save_variables": "alexnet_jax.params_io",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'alexnet_jax' has no attribute {name!r}")
