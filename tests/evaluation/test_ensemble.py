"""Ensembles against hand computations and a per-sample loop of the reference procedure."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hyperfusion.evaluation import ensemble as e
from tests.faults import fault


def _softmax(x: np.ndarray) -> np.ndarray:
    z = np.exp(x - x.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def test_inverse_entropy_hand_computation() -> None:
    # subject 0: model A uniform (H = ln 2), model B [0.9, 0.1] (H = 0.325083 nats)
    p = np.array([[[0.5, 0.5]], [[0.9, 0.1]]])
    h_b = -(0.9 * math.log(0.9) + 0.1 * math.log(0.1))
    assert h_b == pytest.approx(0.3250830)
    j_a, j_b = 1 / math.log(2), 1 / h_b
    w_a, w_b = j_a / (j_a + j_b), j_b / (j_a + j_b)
    assert (w_a, w_b) == pytest.approx((0.319263, 0.680737), abs=1e-6)
    np.testing.assert_allclose(e.inverse_entropy_weights(p), [[w_a], [w_b]], rtol=1e-7)
    out = e.inverse_entropy_ensemble(p)
    np.testing.assert_allclose(out, [[0.772295, 0.227705]], atol=1e-6)


def test_weights_are_per_subject_and_sum_to_one() -> None:
    # subject 0: A is confident; subject 1: B is confident -> the weights swap
    p = np.array([[[0.98, 0.01, 0.01], [0.4, 0.3, 0.3]], [[0.4, 0.3, 0.3], [0.01, 0.98, 0.01]]])
    w = e.inverse_entropy_weights(p)
    assert w.shape == (2, 2)
    np.testing.assert_allclose(w.sum(axis=0), 1.0)
    assert w[0, 0] > w[1, 0] and w[1, 1] > w[0, 1]
    np.testing.assert_allclose(w[0, 0], w[1, 1])
    np.testing.assert_allclose(e.inverse_entropy_ensemble(p).sum(axis=1), 1.0)


def _reference_loop(p: np.ndarray) -> np.ndarray:
    """The authors' published procedure (1e-7 added to zero probabilities, 1e-14 in the log), one subject at a time."""
    out = np.zeros(p.shape[1:])
    for n in range(p.shape[1]):
        probs = [p[m, n].copy() for m in range(p.shape[0])]
        inv_h = []
        for q in probs:
            q[q == 0] += 1e-7
            inv_h.append(1.0 / -(q * np.log(q + 1e-14)).sum())
        total = sum(inv_h)
        out[n] = sum(w / total * q for w, q in zip(inv_h, probs))
    return out


def _eq8_loop(p: np.ndarray, eps: float) -> np.ndarray:
    """Eqs. 7–8 written out per subject and model, with our epsilon."""
    out = np.zeros(p.shape[1:])
    for n in range(p.shape[1]):
        j = []
        for m in range(p.shape[0]):
            h = -sum(float(q) * math.log(q) for q in p[m, n] if q > 0)
            j.append(1.0 / (h + eps))
        for m in range(p.shape[0]):
            out[n] += j[m] / sum(j) * p[m, n]
    return out


@pytest.mark.parametrize("seed", range(4))
def test_matches_loops_on_random_inputs(seed: int) -> None:
    rng = np.random.default_rng(seed)
    p = _softmax(rng.normal(scale=3.0, size=(4, 25, 3)))
    out = e.inverse_entropy_ensemble(p)
    np.testing.assert_allclose(out, _eq8_loop(p, e.ENTROPY_EPSILON), rtol=1e-10, atol=1e-12)
    # the reference's own epsilons differ from ours only at the 1e-5 relative level (module docstring)
    np.testing.assert_allclose(out, _reference_loop(p), rtol=1e-4, atol=1e-9)


def test_one_hot_predictions_stay_finite() -> None:
    p = np.array([[[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]], [[0.2, 0.3, 0.5]]])
    w = e.inverse_entropy_weights(p)
    assert np.isfinite(w).all()
    # the two one-hot models share (almost) all the weight equally
    np.testing.assert_allclose(w[:2, 0], 0.5, atol=1e-7)
    np.testing.assert_allclose(e.inverse_entropy_ensemble(p)[0], [0.5, 0.5, 0.0], atol=1e-7)


def test_mean_probabilities() -> None:
    p = np.array([[[0.2, 0.8]], [[0.6, 0.4]]])
    np.testing.assert_allclose(e.mean_probabilities(p), [[0.4, 0.6]])


def test_top_k_mean_hand_computation() -> None:
    preds = np.array([[50.0, 60.0], [52.0, 61.0], [70.0, 90.0], [49.0, 59.0]])
    val_mae = np.array([3.0, 2.5, 9.0, 3.0])
    np.testing.assert_array_equal(e.top_k_indices(val_mae, 3), [1, 0, 3])  # tie 0/3: lower index first
    np.testing.assert_allclose(e.top_k_mean(preds, val_mae, 3), [(52 + 50 + 49) / 3, (61 + 60 + 59) / 3])
    np.testing.assert_allclose(e.top_k_mean(preds, val_mae, 1), [52.0, 61.0])
    np.testing.assert_allclose(e.top_k_mean(preds, val_mae, 4), preds.mean(axis=0))


@fault(
    "ensembles",
    "probabilities that do not sum to 1, NaN, a bad k or mismatched validation MAEs",
    "ValueError naming the model and subject",
)
def test_bad_input() -> None:
    with pytest.raises(ValueError, match=r"sum to 1\.2"):
        e.inverse_entropy_ensemble(np.array([[[0.6, 0.6]]]))
    with pytest.raises(ValueError, match="model 1, subject 0"):
        e.mean_probabilities(np.array([[[0.5, 0.5]], [[np.nan, 0.5]]]))
    with pytest.raises(ValueError, match="shape"):
        e.mean_probabilities(np.array([[0.5, 0.5]]))
    with pytest.raises(ValueError, match="eps"):
        e.inverse_entropy_weights(np.array([[[0.5, 0.5]]]), eps=0.0)
    with pytest.raises(ValueError, match="k must be between 1 and the number of models \\(2\\), got 3"):
        e.top_k_mean(np.zeros((2, 3)), np.array([1.0, 2.0]), 3)
    with pytest.raises(ValueError, match="validation_mae"):
        e.top_k_mean(np.zeros((2, 3)), np.array([1.0, 2.0, 3.0]), 1)
    with pytest.raises(ValueError, match="model 1 is not finite"):
        e.top_k_indices(np.array([1.0, np.nan]), 1)
    with pytest.raises(ValueError, match="model 0, subject 2"):
        e.top_k_mean(np.array([[1.0, 2.0, np.inf]]), np.array([1.0]), 1)
