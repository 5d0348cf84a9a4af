"""Temperature scaling: one scalar T dividing the logits, fitted to minimise held-out NLL.

It changes no prediction (argmax is unmoved by T > 0), only how sure the probabilities are,
which is why it is the standard first remedy for an over- or under-confident network. The
fitted T lives in `temperature.json` beside the weights (the params dir, e.g. run_NNN/<arm>/best/)
together with the weights' sha256, so a T fitted for other weights (a retrained or replaced
checkpoint) is recognised as stale and ignored with a warning instead of silently applied.
numpy and scipy only.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from alexnet_jax.calibration.metrics import check_labelled
from alexnet_jax.errors import PredictError
from alexnet_jax.toolbox import write_json_atomic

SCHEMA = "alexnet_jax.temperature/1"
FILENAME = "temperature.json"
# T is searched in [1/100, 100]: beyond that the logits carry no usable scale (all-but-one-hot or uniform).
LOG_T_BOUNDS = (math.log(1e-2), math.log(1e2))
_KEYS = ("schema", "temperature", "weights_sha256", "fitted_on", "num_examples", "nll_before", "nll_after")


def _check_logits(logits, labels) -> tuple[np.ndarray, np.ndarray]:
    logits, labels = check_labelled(logits, labels, "logits")
    if not np.all(np.isfinite(logits)):
        raise ValueError("logits contain NaN or infinity; calibrate finite logits only")
    return logits, labels


def scaled_nll(logits, labels, temperature: float) -> float:
    """Mean negative log-likelihood (nats) of softmax(logits / temperature), in float64."""
    logits, labels = _check_logits(logits, labels)
    scaled = logits / float(temperature)
    top = scaled.max(axis=1, keepdims=True)
    log_norm = top[:, 0] + np.log(np.exp(scaled - top).sum(axis=1))
    return float(np.mean(log_norm - scaled[np.arange(len(labels)), labels]))


def fit_temperature(logits, labels) -> dict:
    """T minimising the mean NLL of softmax(logits / T) on (logits, labels).

    Bounded Brent search over log T (scipy's minimize_scalar, xatol 1e-10): deterministic, and
    log T keeps T positive and treats halving and doubling alike. Returns {"temperature",
    "num_examples", "nll_before" (T = 1), "nll_after"}; a T at a search bound is kept (it means
    the logits are nearly separable or nearly constant), and the NLLs show it.
    """
    from scipy.optimize import minimize_scalar

    logits, labels = _check_logits(logits, labels)
    result = minimize_scalar(
        lambda log_t: scaled_nll(logits, labels, math.exp(log_t)),
        bounds=LOG_T_BOUNDS,
        method="bounded",
        options={"xatol": 1e-10, "maxiter": 500},
    )
    temperature = math.exp(float(result.x))
    return {
        "temperature": temperature,
        "num_examples": int(len(labels)),
        "nll_before": scaled_nll(logits, labels, 1.0),
        "nll_after": scaled_nll(logits, labels, temperature),
    }


def write_temperature(
    params_dir: str | Path,
    *,
    temperature: float,
    weights_sha256: str,
    fitted_on: str,
    num_examples: int,
    nll_before: float,
    nll_after: float,
) -> Path:
    """Write params_dir/temperature.json atomically; returns its path."""
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a positive finite number; got {temperature!r}")
    path = Path(params_dir) / FILENAME
    record = {
        "schema": SCHEMA,
        "temperature": float(temperature),
        "weights_sha256": str(weights_sha256),
        "fitted_on": str(fitted_on),
        "num_examples": int(num_examples),
        "nll_before": float(nll_before),
        "nll_after": float(nll_after),
    }
    write_json_atomic(path, record)
    return path


_REDO = "delete it and calibrate again"


def load_temperature_file(path: str | Path) -> dict:
    """The validated record of one temperature.json; PredictError (one line naming the file) if malformed."""
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PredictError(f"{path}: cannot read the temperature file ({error}); {_REDO}") from None
    if not isinstance(record, dict) or record.get("schema") != SCHEMA:
        raise PredictError(f"{path}: not a {SCHEMA} file; {_REDO}")
    missing = [key for key in _KEYS if key not in record]
    if missing:
        raise PredictError(f"{path}: missing key(s) {', '.join(missing)}; {_REDO}")
    temperature = record["temperature"]
    is_number = isinstance(temperature, (int, float)) and not isinstance(temperature, bool)
    if not (is_number and math.isfinite(temperature) and temperature > 0):
        raise PredictError(f"{path}: key temperature must be a positive number, not {temperature!r}; {_REDO}")
    if not isinstance(record["weights_sha256"], str) or not record["weights_sha256"]:
        raise PredictError(f"{path}: key weights_sha256 must be a non-empty string; {_REDO}")
    return record


def read_temperature(params_dir: str | Path, weights_sha256: str) -> tuple[float | None, str | None]:
    """(T, None) when params_dir/temperature.json was fitted for these weights; (None, None) when
    there is no file; (None, warning) when it was fitted for other weights (stale: ignored)."""
    path = Path(params_dir) / FILENAME
    if not path.is_file():
        return None, None
    record = load_temperature_file(path)
    if record["weights_sha256"] != weights_sha256:
        return None, (
            f"{path}: fitted for other weights (sha256 {record['weights_sha256'][:12]}..., these are "
            f"{weights_sha256[:12]}...); ignoring it. Run `python -m alexnet_jax.calibration` again to refit"
        )
    return float(record["temperature"]), None
