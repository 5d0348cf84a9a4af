"""Shared test set-up.

Import order matters: importing torchvision *after* TensorFlow segfaults with the pinned
wheels (their bundled image libraries clash), the other order is fine. pytest imports all
test modules into one process, so torchvision goes first, here.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")

try:  # noqa: SIM105
    import torchvision  # noqa: F401  (must precede any TensorFlow import)
except ImportError:
    pass

# Compiled XLA programs are cached on disk for the session, so the many small Trainers and the
# subprocesses of the resume tests compile each distinct step once rather than every time.
import tempfile  # noqa: E402

_CACHE = os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(tempfile.gettempdir(), "alexnet_jax_test_xla_cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
