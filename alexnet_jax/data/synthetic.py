"""Synthetic SDSS-like galaxy cut-outs: the default data set, so a first run needs no download.

Each image is rendered like an SDSS colour JPEG of a Nair & Abraham (2010) galaxy
(`alexnet_jax.data.galaxy_render`: the class-conditional parameters, the photometry, the
PSF, the noise and the display stretch). This module makes a data set of them: the class
counts, the seeds, the worker processes, the metadata table and the gallery.

Every example has its own random stream, `SeedSequence(seed, spawn_key=(0, index))`, so a
data set depends only on (num_examples, seed, image_size), never on the number of workers.
Bump GENERATOR_VERSION whenever the pixels for a given seed change.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from typing import Any

import numpy as np
import pandas as pd

from alexnet_jax.data import galaxy_params
from alexnet_jax.data.galaxy_render import render_example
from alexnet_jax.data.labels import CLASS_NAMES, PAPER_CLASS_TOTALS, PAPER_NUM_EXAMPLES, ttype_to_class
from alexnet_jax.data.prepared import default_metadata
from alexnet_jax.toolbox import atomic_path

GENERATOR_NAME = "alexnet_jax.synthetic"
GENERATOR_VERSION = "1.0.0"
# The catalogue's class proportions (2738/3215/7708/373 of 14,034), rounded to 3 decimals.
# `class_counts` apportions with the exact catalogue totals, so N=14034 gives them exactly.
CLASS_FRACTIONS = (0.195, 0.229, 0.549, 0.027)

# --------------------------------------------------------------------------------------
# Class counts and seeds


def class_counts(n: int) -> np.ndarray:
    """Examples per class for `n` images: the catalogue's proportions, summing to `n`.

    Largest-remainder rounding of n * (catalogue totals / 14034); n = 14034 gives the
    catalogue's own 2738 / 3215 / 7708 / 373.
    """
    if n < 0:
        raise ValueError(f"num_examples must be >= 0, got {n}")
    exact = n * np.asarray(PAPER_CLASS_TOTALS, np.float64) / PAPER_NUM_EXAMPLES
    counts = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: n - counts.sum()]] += 1
    return counts


def _labels_for(n: int, seed: int) -> np.ndarray:
    labels = np.repeat(np.arange(len(CLASS_NAMES), dtype=np.int64), class_counts(n))
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,)))
    return labels[rng.permutation(n)]


def _example_rng(seed: int, index: int) -> np.random.Generator:
    # Counter-based: the same stream as SeedSequence(seed).spawn(...)[index] under key 0.
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0, index)))


# --------------------------------------------------------------------------------------
# Public API


def _render_chunk(args) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    seed, indices, labels, image_size = args
    images = np.empty((len(indices), image_size, image_size, 3), np.uint8)
    params = []
    for k, (index, label) in enumerate(zip(indices, labels, strict=True)):
        images[k], row = render_example(int(label), _example_rng(seed, int(index)), image_size)
        params.append(row)
    return indices, images, params


def _start_method() -> str:
    """fork where safe (fast, no re-import); forkserver once JAX's runtime threads exist.

    Forking a process whose XLA backend is running risks a deadlock (JAX warns). The
    workers only need numpy, scipy and PIL, so fork is used until then. Under forkserver,
    as under spawn, a calling script needs the usual `if __name__ == "__main__":` guard.
    """
    if "fork" not in multiprocessing.get_all_start_methods():
        return "spawn"
    bridge = sys.modules.get("jax._src.xla_bridge")
    if bridge is not None and getattr(bridge, "_at_fork_handler_installed", True):
        return "forkserver"
    return "fork"


def generate_synthetic(
    num_examples: int = PAPER_NUM_EXAMPLES,
    seed: int = 0,
    image_size: int = 256,
    num_workers: int | None = None,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Render `num_examples` galaxies: (images uint8 NHWC, labels int64, metadata table).

    Class counts follow the catalogue (`class_counts`), in a seed-determined order. The
    result depends on (num_examples, seed, image_size) only. `num_workers`: processes to
    render with (None: os.cpu_count(); 0 or 1: in this process).
    """
    if num_examples < 0:
        raise ValueError(f"num_examples must be >= 0, got {num_examples}")
    if image_size < 8:
        raise ValueError(f"image_size must be >= 8 pixels, got {image_size}")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    workers = os.cpu_count() or 1 if num_workers is None else int(num_workers)
    labels = _labels_for(num_examples, seed)
    images = np.empty((num_examples, image_size, image_size, 3), np.uint8)
    rows: list[dict | None] = [None] * num_examples
    chunk = max(1, min(64, num_examples // max(4 * workers, 1) or 1))
    jobs = [
        (seed, np.arange(s, min(s + chunk, num_examples)), labels[s : s + chunk], image_size)
        for s in range(0, num_examples, chunk)
    ]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=num_examples, desc="synthetic galaxies", unit="img")

    def collect(result):
        indices, block, params = result
        images[indices] = block
        for index, row in zip(indices, params, strict=True):
            rows[index] = row
        if bar is not None:
            bar.update(len(indices))

    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            collect(_render_chunk(job))
    else:
        context = multiprocessing.get_context(_start_method())
        with context.Pool(min(workers, len(jobs))) as pool:
            for result in pool.imap_unordered(_render_chunk, jobs):
                collect(result)
    if bar is not None:
        bar.close()
    return images, labels, _metadata(labels, rows, seed)


def _metadata(labels: np.ndarray, rows: list, seed: int) -> pd.DataFrame:
    params = pd.DataFrame(rows) if rows else pd.DataFrame({"ttype": pd.Series([], dtype=np.int64)})
    ttype = params.pop("ttype").astype(np.int64).to_numpy()
    if len(ttype) and not np.array_equal(ttype_to_class(ttype), labels):
        raise AssertionError("internal error: a drawn T-type disagrees with its class")
    table = default_metadata(labels, CLASS_NAMES).assign(
        id=[f"synthetic-{seed}-{i:06d}" for i in range(len(labels))], ttype=ttype
    )
    return pd.concat([table, params.reset_index(drop=True)], axis=1)


def generator_params() -> dict[str, Any]:
    """The generator's fixed knobs, recorded in the prepared data set's manifest."""
    return {
        "name": GENERATOR_NAME,
        "version": GENERATOR_VERSION,
        "class_fractions": list(CLASS_FRACTIONS),
        "class_totals_for_rounding": list(PAPER_CLASS_TOTALS),
        "ttype_choices": {
            CLASS_NAMES[k]: {"ttypes": list(v), "weights": list(w)} for k, (v, w) in galaxy_params.TTYPE_CHOICES.items()
        },
        "bands": list(galaxy_params.BANDS),
        "pixel_arcsec": galaxy_params.PIXEL_ARCSEC,
        "native_px_range": [galaxy_params.NATIVE_MIN, galaxy_params.NATIVE_MAX],
        "seeing_arcsec_range": [1.0, 1.6],
        "psf": "Moffat, beta 2.5-4.5, FWHM scaled per band " + str(galaxy_params.SEEING_RELATIVE.tolist()),
        "electrons_per_nmgy": galaxy_params.ELECTRONS_PER_NMGY.tolist(),
        "sky_nmgy_per_px": galaxy_params.SKY_NMGY.tolist(),
        "saturation_nmgy_per_px": galaxy_params.SATURATION_NMGY,
        "display": {
            "channels": "RGB = (i, r, g)",
            "scales": galaxy_params.DISPLAY_SCALES.tolist(),
            "asinh_Q": galaxy_params.STRETCH_Q,
            "softening_nmgy": galaxy_params.STRETCH_SOFTENING,
        },
        "jpeg_quality_range": [75, 95],
        "resize": "PIL bilinear from the native cut-out",
        "seeding": "labels: SeedSequence(seed, spawn_key=(1,)); example i: SeedSequence(seed, spawn_key=(0, i))",
    }


def make_gallery(path, seed: int = 0, per_class: int = 6, image_size: int = 256) -> None:
    """Write a PNG grid: one row per class, `per_class` examples each, with T-types."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        len(CLASS_NAMES), per_class, figsize=(1.9 * per_class, 2.05 * len(CLASS_NAMES)), squeeze=False
    )
    for label, name in enumerate(CLASS_NAMES):
        for k in range(per_class):
            rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2, label, k)))
            image, params = render_example(label, rng, image_size)
            ax = axes[label, k]
            ax.imshow(image, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"T={params['ttype']} {params['subtype']}", fontsize=8)
            if k == 0:
                ax.set_ylabel(name, fontsize=11)
    fig.suptitle(f"alexnet_jax synthetic galaxies (generator {GENERATOR_VERSION}, seed {seed})", fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90, facecolor="white")
    plt.close(fig)
