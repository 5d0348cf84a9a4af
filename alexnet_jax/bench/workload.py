"""What both frameworks measure: the synthetic images, the class count and the paper's augmentation."""

from __future__ import annotations

import numpy as np

from alexnet_jax import paper

NUM_CLASSES = len(paper.CLASS_NAMES)


def synthetic_images(num: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Smooth random colour fields (compress like photos, unlike white noise) and labels."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (num, 8, 8, 3), dtype=np.uint8)
    repeat = -(-size // 8)
    images = np.repeat(np.repeat(coarse, repeat, axis=1), repeat, axis=2)[:, :size, :size]
    noise = rng.integers(0, 32, images.shape, dtype=np.uint8)
    images = np.ascontiguousarray(images // 2 + noise)
    labels = rng.integers(0, NUM_CLASSES, num).astype(np.int64)
    return images, labels


def paper_augment(crop_size: int):
    """The paper's training augmentation (RandomCrop, both flips, RandomRotation(180)): the
    defaults of `augment.AugmentConfig`. The JAX step and the tuned PyTorch peer both take it from here."""
    from alexnet_jax.inputs.augment import AugmentConfig  # imports JAX (no backend starts): keep it off import

    return AugmentConfig(crop_size=crop_size)
