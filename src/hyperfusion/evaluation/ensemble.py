"""Ensembles of trained models' test predictions (paper §3.4, eqs. 6–8).

Inputs are stacked per-model arrays: probabilities ``[M, N, C]`` (M models, N subjects, C classes) or regression
predictions ``[M, N]``.

Inverse-entropy weighting (eqs. 7–8), per subject n and model m::

    H_mn = −Σ_c p_mnc · ln p_mnc          (0 · ln 0 = 0)
    J_mn = 1 / (H_mn + ε)
    w_mn = J_mn / Σ_k J_kn
    p_n  = Σ_m w_mn · p_mn

ε = 1e-8 nats only keeps a one-hot prediction (H = 0) finite: it then dominates the ensemble, the limit of
eq. 8, and two one-hot models weigh equally. A model 99.9 % sure among three classes already has H ≈ 8e-3, so
ε changes realistic weights by less than 1e-5 relative. The reference code instead adds 1e-7 to zero
probabilities and 1e-14 inside the logarithm; both agree to that precision away from
one-hot outputs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.special import xlogy

__all__ = [
    "ENTROPY_EPSILON",
    "combine_folds",
    "inverse_entropy_ensemble",
    "inverse_entropy_weights",
    "mean_probabilities",
    "predictive_entropy",
    "top_k_indices",
    "top_k_mean",
    "top_k_versions",
]

ENTROPY_EPSILON = 1e-8


def _check_stack(probabilities: np.ndarray) -> np.ndarray:
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 3 or 0 in p.shape:
        raise ValueError(f"expected stacked probabilities [models, subjects, classes], got shape {p.shape}")
    if not np.isfinite(p).all() or (p < 0).any():
        m, n, _ = np.argwhere(~np.isfinite(p) | (p < 0))[0]
        raise ValueError(
            f"model {m}, subject {n}: probabilities must be finite and >= 0, got {p[m, n].tolist()}"
        )
    sums = p.sum(axis=2)
    bad = np.argwhere(np.abs(sums - 1.0) > 1e-3)
    if bad.size:
        m, n = bad[0]
        raise ValueError(
            f"model {m}, subject {n}: probabilities sum to {sums[m, n]:.6g}, not 1 (pass softmax outputs)"
        )
    return p


def mean_probabilities(probabilities: np.ndarray) -> np.ndarray:
    """Plain mean of the models' probabilities, ``[M, N, C] → [N, C]``."""
    return _check_stack(probabilities).mean(axis=0)


def predictive_entropy(probabilities: np.ndarray) -> np.ndarray:
    """Shannon entropy in nats of each probability vector along the last axis, with 0 · ln 0 = 0."""
    p = np.asarray(probabilities, dtype=np.float64)
    return -xlogy(p, p).sum(axis=-1)


def inverse_entropy_weights(probabilities: np.ndarray, *, eps: float = ENTROPY_EPSILON) -> np.ndarray:
    """Eq. 8 per subject: ``w_mn = J_mn / Σ_k J_kn`` with ``J = 1 / (H + eps)``; returns ``[M, N]``."""
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    j = 1.0 / (predictive_entropy(_check_stack(probabilities)) + eps)
    return j / j.sum(axis=0, keepdims=True)


def inverse_entropy_ensemble(probabilities: np.ndarray, *, eps: float = ENTROPY_EPSILON) -> np.ndarray:
    """Eq. 7: ``p_n = Σ_m w_mn p_mn`` with the inverse-entropy weights of eq. 8; ``[M, N, C] → [N, C]``."""
    p = _check_stack(probabilities)
    w = inverse_entropy_weights(p, eps=eps)
    return np.einsum("mn,mnc->nc", w, p)


def top_k_indices(validation_mae: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k models with the lowest validation MAE, best first (ties: the lower index first)."""
    v = np.asarray(validation_mae, dtype=np.float64)
    if v.ndim != 1 or v.size == 0:
        raise ValueError(f"validation_mae must be a non-empty 1-D array, got shape {v.shape}")
    bad = np.flatnonzero(~np.isfinite(v))
    if bad.size:
        raise ValueError(f"validation_mae of model {bad[0]} is not finite: {v[bad[0]]}")
    if not 1 <= k <= v.size:
        raise ValueError(f"k must be between 1 and the number of models ({v.size}), got {k}")
    return np.argsort(v, kind="stable")[:k]


def top_k_mean(predictions: np.ndarray, validation_mae: np.ndarray, k: int) -> np.ndarray:
    """Eq. 6 over the top-k models by validation MAE: ``(1/k) Σ_{m in top-k} ŷ_m``; ``[M, N] → [N]``."""
    q = np.asarray(predictions, dtype=np.float64)
    v = np.asarray(validation_mae)
    if q.ndim != 2 or v.ndim != 1 or q.shape[0] != v.shape[0]:
        raise ValueError(
            f"predictions must be [models, subjects] with one validation MAE per model, "
            f"got predictions {q.shape} and validation_mae {v.shape}"
        )
    bad = np.argwhere(~np.isfinite(q))
    if bad.size:
        m, n = bad[0]
        raise ValueError(f"model {m}, subject {n}: prediction is not finite: {q[m, n]}")
    return q[top_k_indices(v, k)].mean(axis=0)


def combine_folds(stack: np.ndarray, rule: str) -> np.ndarray:
    """Fold models' probabilities ``[M, N, C]`` → the ensemble ``[N, C]`` (inverse entropy or mean)."""
    if rule == "inverse_entropy":
        return inverse_entropy_ensemble(stack)
    if rule == "mean":
        return mean_probabilities(stack)
    raise ValueError(f"ensemble rule must be 'inverse_entropy' or 'mean', got {rule!r}")


def top_k_versions(validation_mae: Sequence[float], k: int) -> list[int]:
    """Positions of the ``min(k, n)`` models with the lowest validation MAE (eq. 6's ensemble members)."""
    values = np.asarray(validation_mae, dtype=np.float64)
    return [int(i) for i in top_k_indices(values, min(k, values.size))]
