"""Calibration: ECE, Brier and the reliability curve against slow loops and scikit-learn; entropy groups."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss

from hyperfusion.evaluation import calibration as cal
from tests.faults import fault

NAMES = ["CN", "MCI", "AD"]


def _case(seed: int, n: int = 60, c: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    logits = rng.normal(scale=1.5, size=(n, c))
    logits[np.arange(n), y] += 1.0
    return np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True), y


def _slow_ece(p: np.ndarray, y: np.ndarray, n_bins: int) -> float:
    """Top-label ECE written out: bin b holds confidences in (b/K, (b+1)/K], bin 0 also holds 0."""
    total = 0.0
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        members = [i for i in range(len(y)) if (lo < p[i].max() <= hi) or (b == 0 and p[i].max() == 0)]
        if not members:
            continue
        acc = np.mean([p[i].argmax() == y[i] for i in members])
        conf = np.mean([p[i].max() for i in members])
        total += len(members) / len(y) * abs(acc - conf)
    return total


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("n_bins", [5, 10, 15])
def test_ece_matches_a_loop(seed: int, n_bins: int) -> None:
    p, y = _case(seed)
    assert cal.expected_calibration_error(p, y, n_bins) == pytest.approx(_slow_ece(p, y, n_bins), abs=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_reliability_curve_matches_sklearn_calibration_curve(seed: int) -> None:
    p, y = _case(seed, n=200)
    curve = cal.reliability_curve(p, y, 10)
    confidence, correct = cal.top_label(p, y)
    # top-label calibration is the binary calibration of "correct" against the confidence
    prob_true, prob_pred = calibration_curve(correct.astype(int), confidence, n_bins=10, strategy="uniform")
    shown = curve[curve["count"] > 0]
    np.testing.assert_allclose(shown["accuracy"], prob_true)
    np.testing.assert_allclose(shown["confidence"], prob_pred)
    assert curve["count"].sum() == 200 and len(curve) == 10
    ece = (shown["count"] / 200 * (shown["accuracy"] - shown["confidence"]).abs()).sum()
    assert cal.expected_calibration_error(p, y) == pytest.approx(ece)


def test_bin_edges_follow_sklearn_on_the_boundaries() -> None:
    conf = np.array([0.0, 0.1, 0.1000001, 0.3, 0.5, 0.7, 1.0])
    np.testing.assert_array_equal(cal.confidence_bins(conf, 10), [0, 0, 1, 2, 4, 6, 9])


def test_hand_computed_ece_and_brier() -> None:
    # two subjects at confidence 0.9 (one right), two at 0.6 (both right)
    p = np.array([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.4, 0.6]])
    y = np.array([0, 1, 1, 1])
    assert cal.expected_calibration_error(p, y) == pytest.approx(0.5 * abs(0.5 - 0.9) + 0.5 * abs(1.0 - 0.6))
    brier = np.mean([0.01 + 0.01, 0.81 + 0.81, 0.16 + 0.16, 0.16 + 0.16])
    assert cal.brier_score(p, y) == pytest.approx(brier)


@pytest.mark.parametrize("seed", range(3))
def test_brier_against_sklearn_and_a_loop(seed: int) -> None:
    p, y = _case(seed)
    loop = np.mean([sum((p[i, c] - (y[i] == c)) ** 2 for c in range(3)) for i in range(len(y))])
    assert cal.brier_score(p, y) == pytest.approx(loop)
    assert cal.brier_score(p, y) == pytest.approx(
        brier_score_loss(y, p, labels=[0, 1, 2], scale_by_half=False)
    )
    p2, y2 = _case(seed, c=2)
    # two classes: the multi-class sum counts the one binary error twice
    assert cal.brier_score(p2, y2) == pytest.approx(2 * brier_score_loss(y2, p2[:, 1]))


def test_perfectly_calibrated_and_certain_predictions() -> None:
    y = np.array([0, 1, 2, 0])
    certain = np.eye(3)[y]
    assert cal.expected_calibration_error(certain, y) == 0.0 and cal.brier_score(certain, y) == 0.0
    assert cal.calibration_metrics(certain, y) == {"ECE": 0.0, "Brier": 0.0}


def test_entropy_by_true_class_and_correctness() -> None:
    p, y = _case(5, n=40)
    y[y == 2] = 0  # AD absent: its row has n = 0
    out = cal.entropy_by_group(p, y, NAMES).set_index(["by", "group"])
    h = np.array([-sum(q * math.log(q) for q in row) for row in p])
    correct = p.argmax(axis=1) == y
    assert out.loc[("all", "all"), "mean"] == pytest.approx(h.mean())
    assert out.loc[("true class", "CN"), "mean"] == pytest.approx(h[y == 0].mean())
    assert out.loc[("true class", "CN"), "std"] == pytest.approx(h[y == 0].std(ddof=1))
    assert out.loc[("true class", "AD"), "n"] == 0 and np.isnan(out.loc[("true class", "AD"), "mean"])
    assert out.loc[("prediction", "correct"), "mean"] == pytest.approx(h[correct].mean())
    assert out.loc[("prediction", "incorrect"), "n"] == (~correct).sum()


@fault("calibration", "n_bins that is not a positive integer", "ValueError naming n_bins")
def test_bad_bins() -> None:
    p, y = _case(0)
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match="n_bins must be an integer >= 1"):
            cal.expected_calibration_error(p, y, bad)


@fault(
    "calibration",
    "logits instead of probabilities",
    "ValueError naming the row and telling to pass softmax outputs",
)
def test_logits_are_refused() -> None:
    with pytest.raises(ValueError, match=r"row 0 .*softmax"):
        cal.brier_score(np.array([[2.0, -1.0]]), np.array([0]))
