"""No-skill baselines: the training prior / mean, and the metrics they score, by hand."""

from __future__ import annotations

import numpy as np
import pytest

from hyperfusion.evaluation import noskill as ns
from tests.faults import fault

NAMES = ["CN", "MCI", "AD"]


def test_prior_is_estimated_on_the_training_rows_only() -> None:
    train = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 2])
    np.testing.assert_allclose(ns.class_prior(train, 3), [0.3, 0.2, 0.5])
    p = ns.noskill_probabilities(train, 4, 3)
    assert p.shape == (4, 3)
    np.testing.assert_allclose(p, np.tile([0.3, 0.2, 0.5], (4, 1)))
    np.testing.assert_allclose(ns.class_prior(np.array([1, 1]), 3), [0.0, 1.0, 0.0])  # absent class: 0


def test_classification_metrics_by_hand() -> None:
    train = np.array([0, 1, 1, 1, 2, 2])  # majority MCI -> everyone predicted MCI
    test = np.array([0, 0, 1, 1, 1, 2, 2, 2])
    out = ns.noskill_classification_metrics(train, test, NAMES)
    assert out["BA"] == pytest.approx(1 / 3)  # recall: CN 0, MCI 1, AD 0
    assert out["AUC"] == pytest.approx(0.5)  # every score ties
    assert out["PRC"] == pytest.approx((0 + 3 / 8 + 0) / 3)  # MCI precision 3/8
    f1_mci = 2 * (3 / 8) * 1 / (3 / 8 + 1)
    assert out["F1"] == pytest.approx(f1_mci / 3)
    assert out["TP-MCI"] == 1.0 and out["TP-CN"] == 0.0
    # calibration of the prior: confidence 0.5 for everyone, 3/8 correct
    assert out["ECE"] == pytest.approx(abs(3 / 8 - 0.5))
    prior = np.array([1 / 6, 1 / 2, 1 / 3])
    brier = np.mean([((prior - np.eye(3)[y]) ** 2).sum() for y in test])
    assert out["Brier"] == pytest.approx(brier)


def test_tie_for_majority_goes_to_the_lower_class() -> None:
    train = np.array([0, 2, 2, 0, 1])
    test = np.array([0, 1, 2, 2])
    out = ns.noskill_classification_metrics(train, test, NAMES)
    assert out["TP-CN"] == 1.0 and out["TP-AD"] == 0.0


def test_ba_is_one_over_the_classes_present() -> None:
    rng = np.random.default_rng(0)
    for c in (2, 3, 4):
        names = [f"c{i}" for i in range(c)]
        train = rng.integers(0, c, 50)
        test = np.concatenate([np.arange(c), rng.integers(0, c, 30)])
        out = ns.noskill_classification_metrics(train, test, names)
        assert out["BA"] == pytest.approx(1 / c)
        assert out["AUC"] == pytest.approx(0.5)


def test_regression_mean_and_mae_by_group() -> None:
    train = np.array([50.0, 60.0, 70.0])  # mean 60
    test = np.array([55.0, 62.0, 75.0, 60.0])
    sex = ["F", "M", "F", "M"]
    np.testing.assert_allclose(ns.noskill_predictions(train, 4), [60.0] * 4)
    out = ns.noskill_regression_metrics(train, test, sex)
    assert out["MAE"] == pytest.approx((5 + 2 + 15 + 0) / 4)
    assert out["MAE-F"] == pytest.approx((5 + 15) / 2)
    assert out["MAE-M"] == pytest.approx((2 + 0) / 2)
    assert set(ns.noskill_regression_metrics(train, test)) == {"MAE"}


@fault(
    "no-skill baseline", "a training target outside the class range", "ValueError naming the row and class"
)
def test_training_target_out_of_range() -> None:
    with pytest.raises(ValueError, match=r"train_targets row 2 has class 3, outside \[0, 3\)"):
        ns.class_prior(np.array([0, 1, 3]), 3)


@fault("no-skill baseline", "no training rows, or a non-integer class", "ValueError saying what is wrong")
def test_empty_or_fractional_training_targets() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        ns.class_prior(np.array([], dtype=int), 3)
    with pytest.raises(ValueError, match=r"row 1 is not a class index: 1\.5"):
        ns.class_prior(np.array([0.0, 1.5]), 3)
    with pytest.raises(ValueError, match="integer class indices"):
        ns.class_prior(np.array(["CN", "AD"]), 3)
    with pytest.raises(ValueError, match="n_test"):
        ns.noskill_probabilities(np.array([0, 1]), 0, 3)


@fault("no-skill baseline", "a missing (NaN) training target in regression", "ValueError naming the row")
def test_regression_training_target_not_finite() -> None:
    with pytest.raises(ValueError, match="train_targets row 1 is not finite"):
        ns.noskill_predictions(np.array([50.0, np.nan]), 3)
