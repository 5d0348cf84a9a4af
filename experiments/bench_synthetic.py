"""Time the synthetic generator: the full default data set (14,034 images at 256 x 256).

    python experiments/bench_synthetic.py                      # all cores, full size
    python experiments/bench_synthetic.py --num_examples=2000 --num_workers=1

Prints images per second and total seconds; nothing is written. On a shared machine the
figures depend on the load, so the load average is printed beside them.
"""

import os
import time

from absl import app, flags

from alexnet_jax import paper
from alexnet_jax.data import synthetic


def define_flags() -> None:
    flags.DEFINE_integer("num_examples", paper.NUM_EXAMPLES, "images to render")
    flags.DEFINE_integer("image_size", 256, "output side, pixels")
    flags.DEFINE_integer("seed", 0, "generator seed")
    flags.DEFINE_integer("num_workers", None, "worker processes (default: os.cpu_count())")


def main(argv):
    del argv
    f = flags.FLAGS
    workers = f.num_workers if f.num_workers is not None else os.cpu_count()
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    images, labels, metadata = synthetic.generate_synthetic(
        f.num_examples, seed=f.seed, image_size=f.image_size, num_workers=f.num_workers, progress=True
    )
    seconds = time.perf_counter() - start
    print(
        f"generator {synthetic.GENERATOR_VERSION}: {len(images)} images at {f.image_size}x{f.image_size}, "
        f"{workers} worker(s) on {os.cpu_count()} cores"
    )
    print(
        f"total {seconds:.1f} s, {len(images) / seconds:.1f} images/s "
        f"({len(images) / seconds / max(workers, 1):.1f} per worker)"
    )
    print(f"load average 1 min: {load_before:.2f} before, {os.getloadavg()[0]:.2f} after")
    print(f"output {images.nbytes / 2**30:.2f} GiB; class counts {synthetic.class_counts(len(images)).tolist()}")
    print(
        "native cut-out side (px): median {:.0f}, range {}-{}".format(
            metadata["native_px"].median(), metadata["native_px"].min(), metadata["native_px"].max()
        )
    )


if __name__ == "__main__":
    define_flags()
    app.run(main)
