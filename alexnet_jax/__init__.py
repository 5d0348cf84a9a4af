"""alexnet_jax: transfer learning for galaxy morphology with a torchvision-exact AlexNet in JAX.

Importing this package needs neither TensorFlow nor torch; those load only where used.
"""

from alexnet_jax.models import AlexNet, count_params, init_params

__all__ = ["AlexNet", "count_params", "init_params", "convert_torch_state_dict", "load_params", "save_params"]
__version__ = "0.1.0"


def __getattr__(name):  # lazy, so that `import alexnet_jax` stays light
    if name == "convert_torch_state_dict":
        from alexnet_jax.convert import convert_torch_state_dict

        return convert_torch_state_dict
    if name in ("load_params", "save_params"):
        from alexnet_jax import params_io

        return getattr(params_io, name)
    raise AttributeError(f"module 'alexnet_jax' has no attribute {name!r}")
