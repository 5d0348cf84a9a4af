"""What every alexnet_jax command shares: quiet library logs unless the user asks for them."""

from absl import flags, logging


def quiet_library_logs() -> None:
    """orbax and jax log every checkpoint step at INFO through absl; our own progress lines are
    printed. Library logs show again with --verbosity=0 (or higher)."""
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
