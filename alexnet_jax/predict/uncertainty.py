"""What many sampled predictions of one image say together: their mean, and how uncertain it is.

The samples are softmax outputs over members of an ensemble, MC-dropout passes and test-time
views. The predictive entropy of their mean is the total uncertainty; the mutual information
between the prediction and the sample (BALD: H(mean) - mean of H(sample)) is the part that comes
from the samples disagreeing, the model's own uncertainty, which more training data would shrink.
One sample, or identical samples, have none. Entropies are in nats; 0 log 0 counts as 0, so a
one-hot sample has entropy 0, not NaN. Computed in float64 on the host: a batch's samples are a
few thousand numbers.
"""

from __future__ import annotations

import numpy as np


def predictive_entropy(probabilities) -> np.ndarray:
    """-sum_k p_k ln p_k over the last axis, in nats; terms with p_k = 0 count 0."""
    p = np.asarray(probabilities, np.float64)
    safe = np.where(p > 0, p, 1.0)  # ln 1 = 0 where p is 0, so no 0 * -inf
    return -np.sum(p * np.log(safe), axis=-1)


def combine_samples(sample_probabilities) -> dict[str, np.ndarray]:
    """Samples (S, ..., K) of one set of images -> {"probabilities": their mean (..., K), "entropy":
    its predictive entropy, "mutual_information": BALD}. One sample: its own probabilities, MI 0."""
    samples = np.asarray(sample_probabilities, np.float64)
    if samples.ndim < 2 or samples.shape[0] < 1:
        raise ValueError(f"combine_samples expects (S >= 1, ..., K) probabilities, got shape {samples.shape}")
    mean = samples.mean(axis=0)
    entropy = predictive_entropy(mean)
    expected = predictive_entropy(samples).mean(axis=0)
    # H(mean) >= mean H (entropy is concave); rounding can dip below 0 by an ulp, which is 0.
    information = np.maximum(entropy - expected, 0.0)
    return {"probabilities": mean, "entropy": entropy, "mutual_information": information}


def mutual_information(sample_probabilities) -> np.ndarray:
    """BALD for samples (S, ..., K): H(mean over samples) - mean over samples of H(sample), nats."""
    return combine_samples(sample_probabilities)["mutual_information"]
