"""Every random number of a run derives from (seed, run, arm, epoch, step).

So the same command gives the same numbers bit for bit on CPU, a resumed run replays exactly
what it would have done, and packed or data-parallel runs draw what they would draw alone.
"""

from __future__ import annotations

import jax
import numpy as np

# What a key is for, folded in after the arm: initialisation, training, test and validation.
INIT, TRAIN, TEST, VALIDATION = 0, 1, 2, 3
# The stream of a label-efficiency repeat's nested subset order; 7 is the validation carve's.
LABEL_SUBSET = 11


def arm_key(seed: int, run_index: int, arm_id: int) -> jax.Array:
    return jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), run_index), arm_id)


def step_key(key: jax.Array, purpose: int, epoch: int, step: int) -> jax.Array:
    return jax.random.fold_in(jax.random.fold_in(jax.random.fold_in(key, purpose), epoch), step)


def numpy_seed(*words: int) -> int:
    return int(np.random.SeedSequence([int(w) for w in words]).generate_state(1)[0])


def subset_seed(seed: int, repeat: int) -> int:
    """The seed of a label-efficiency repeat's nested subset order: one per repeat, so every size
    of the repeat takes a prefix of the same order."""
    return numpy_seed(seed, repeat, LABEL_SUBSET)


def epoch_order(
    train_idx: np.ndarray, seed: int, run_index: int, arm_id: int, epoch: int, shuffle_each_epoch: bool
) -> np.ndarray:
    """The order of training examples in an epoch. The paper's sampler never had its epoch set,
    so its order was the same in every epoch; `shuffle_each_epoch` draws a new one."""
    shuffle_epoch = epoch if shuffle_each_epoch else 0
    rng = np.random.default_rng(numpy_seed(seed, run_index, arm_id, shuffle_epoch, 1))
    return train_idx[rng.permutation(len(train_idx))]


def train_data_seed(seed: int, run_index: int, arm_id: int, epoch: int) -> int:
    """The host pipeline's (tf.data) augmentation seed of a training epoch."""
    return numpy_seed(seed, run_index, arm_id, epoch, 3)


def eval_data_seed(seed: int, run_index: int, arm_id: int, epoch: int, purpose: int) -> int:
    """The host pipeline's augmentation seed of an evaluation (test or validation) in an epoch."""
    base = numpy_seed(seed, run_index, arm_id, 2)
    return base + epoch + (10_000 if purpose == VALIDATION else 0)
