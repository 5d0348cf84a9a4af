"""How well calibrated are the probabilities: ECE, reliability bins, NLL and Brier score.

numpy only, float64 throughout, no randomness: the same arrays give the same numbers bit for bit.
Every function takes `probs` (N, K), each row a probability vector, and integer `labels` (N,).

Binning rule (ECE and reliability): EQUAL-MASS bins. Examples are sorted by confidence (the top
probability) with a stable sort, then cut into `bins` consecutive groups of equal count the way
`np.array_split` does: with N = q * bins + r, the first r bins (lowest confidence) hold q + 1
examples, the rest q. When N < bins, only N bins (one example each) are formed. Equal-mass bins
avoid the near-empty high-confidence-gap bins of equal-width binning, where a network that is
mostly very sure puts nearly everything in the last bin.
"""

from __future__ import annotations

import numpy as np

# NLL takes log(max(p, this)): a probability of exactly 0 on the true class is ~27.6 nats, not inf.
NLL_FLOOR = 1e-12
_SUM_TOLERANCE = 1e-3


def check_labelled(scores, labels, what: str) -> tuple[np.ndarray, np.ndarray]:
    """(N, K) float64 scores (probabilities or logits) and (N,) int64 labels in [0, K), or one ValueError line."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    if scores.ndim != 2 or scores.shape[0] == 0 or scores.shape[1] < 2:
        raise ValueError(f"{what} must be (N > 0, K >= 2); got shape {scores.shape}")
    if labels.shape != (scores.shape[0],):
        raise ValueError(f"labels must be ({scores.shape[0]},) to match the {what}; got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 or labels.max() >= scores.shape[1]:
        found = f"{labels.dtype} {labels.min()}..{labels.max()}" if labels.size else str(labels.dtype)
        raise ValueError(f"labels must be integers in [0, {scores.shape[1]}); got {found}")
    return scores, labels.astype(np.int64)


def _check(probs, labels) -> tuple[np.ndarray, np.ndarray]:
    probs, labels = check_labelled(probs, labels, "probabilities")
    if not np.all(np.isfinite(probs)) or probs.min() < 0 or probs.max() > 1:
        raise ValueError("probabilities must be finite and within [0, 1]")
    worst = float(np.max(np.abs(probs.sum(axis=1) - 1.0)))
    if worst > _SUM_TOLERANCE:
        raise ValueError(f"each row of probabilities must sum to 1; one is off by {worst:.3g}")
    return probs, labels


def _check_bins(bins: int) -> int:
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
        raise ValueError(f"bins must be a positive integer; got {bins!r}")
    return int(bins)


def reliability(probs, labels, bins: int = 15) -> dict[str, np.ndarray]:
    """Per equal-mass bin (lowest confidence first; rule in the module docstring):
    "confidence" mean top probability, "accuracy" fraction whose argmax is the label, "count",
    and "edges" (num_bins + 1,): the lowest confidence of each bin, then the highest overall."""
    probs, labels = _check(probs, labels)
    bins = _check_bins(bins)
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    order = np.argsort(confidence, kind="stable")
    groups = [group for group in np.array_split(order, min(bins, len(order))) if len(group)]
    return {
        "confidence": np.array([confidence[group].mean() for group in groups]),
        "accuracy": np.array([correct[group].mean() for group in groups]),
        "count": np.array([len(group) for group in groups], dtype=np.int64),
        "edges": np.array([confidence[group[0]] for group in groups] + [confidence[order[-1]]]),
    }


def ece(probs, labels, bins: int = 15) -> float:
    """Expected calibration error: sum over equal-mass bins of (count / N) * |accuracy - confidence|."""
    table = reliability(probs, labels, bins)
    weights = table["count"] / table["count"].sum()
    return float(np.sum(weights * np.abs(table["accuracy"] - table["confidence"])))


def nll(probs, labels) -> float:
    """Mean negative log-likelihood of the true class, nats (probabilities floored at NLL_FLOOR)."""
    probs, labels = _check(probs, labels)
    return float(-np.mean(np.log(np.maximum(probs[np.arange(len(labels)), labels], NLL_FLOOR))))


def brier(probs, labels) -> float:
    """Multi-class Brier score: mean over examples of sum_k (p_k - y_k)^2, y one-hot; 0 best, 2 worst."""
    probs, labels = _check(probs, labels)
    onehot = np.zeros_like(probs)
    onehot[np.arange(len(labels)), labels] = 1.0
    return float(np.mean(np.sum((probs - onehot) ** 2, axis=1)))


def accuracy(probs, labels) -> float:
    """Fraction of examples whose most probable class is the label (unchanged by temperature scaling)."""
    probs, labels = _check(probs, labels)
    return float(np.mean(probs.argmax(axis=1) == labels))


def summary(probs, labels, bins: int = 15) -> dict:
    """Every metric at once, JSON-ready: ece, nll, brier, accuracy and the reliability bins as lists."""
    table = reliability(probs, labels, bins)
    return {
        "ece": ece(probs, labels, bins),
        "nll": nll(probs, labels),
        "brier": brier(probs, labels),
        "accuracy": accuracy(probs, labels),
        "reliability": {key: value.tolist() for key, value in table.items()},
    }


def softmax(logits, temperature: float = 1.0) -> np.ndarray:
    """softmax(logits / temperature) in float64, stable for large logits."""
    scaled = np.asarray(logits, dtype=np.float64) / float(temperature)
    scaled = scaled - scaled.max(axis=1, keepdims=True)
    exp = np.exp(scaled)
    return exp / exp.sum(axis=1, keepdims=True)
