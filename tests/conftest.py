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

os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(tempfile.gettempdir(), "alexnet_jax_test_xla_cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

import contextlib  # noqa: E402
import ctypes  # noqa: E402
import gc  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def release_memory_after_each_module():
    """Each test module's data sets, pipelines and compiled programs are freed when it ends. A
    worker runs many modules, and without this its memory grew past 10 GB (the OOM killer took
    one of CI's two workers on the 24 GiB machine); the on-disk compilation cache keeps the
    recompiles cheap."""
    yield
    if "alexnet_jax.training.rundata" in sys.modules:
        sys.modules["alexnet_jax.training.rundata"].release_data()
    if "jax" in sys.modules:
        sys.modules["jax"].clear_caches()
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # glibc keeps freed heap pages: hand them back
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # (elsewhere there is nothing to trim)


@pytest.fixture(scope="module")
def module_tmp(tmp_path_factory, request):
    """A directory shared by one module's tests and deleted when they end (kept if any test
    failed, for debugging). Real AlexNet checkpoints are 0.2-0.7 GB each, and pytest would
    otherwise keep every module's until the session ends: CI's disk once ran out that way."""
    directory = tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])
    failed_before = request.session.testsfailed
    yield directory
    if request.session.testsfailed == failed_before:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """44 random 256 px images in the prepared format: the trainer tests' data set."""
    import numpy as np

    from alexnet_jax import paper
    from alexnet_jax.data.prepared import write_prepared

    directory = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (44, 256, 256, 3), dtype=np.uint8)
    labels = np.arange(44) % 4
    write_prepared(
        directory,
        images,
        labels,
        name="tiny-random",
        source="test: uniform random pixels",
        class_names=paper.CLASS_NAMES,
    )
    return directory
