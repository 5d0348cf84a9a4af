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
