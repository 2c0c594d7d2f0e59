"""Metrics against scikit-learn on random inputs, plus the documented undefined cases and bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.stats import pearsonr
from sklearn import metrics as skm

from hyperfusion.evaluation import metrics as m
from tests.faults import fault

NAMES = ["CN", "MCI", "AD"]


def _random_case(seed: int, n: int = 40, c: int = 3, *, ties: bool = False) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, c))
    if ties:  # coarse scores so the AUC tie handling is exercised
        logits = np.round(logits)
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = rng.integers(0, c, size=n)
    y[:c] = np.arange(c)  # every class present
    return p, y


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("ties", [False, True])
def test_matches_sklearn_on_random_inputs(seed: int, ties: bool) -> None:
    p, y = _random_case(seed, n=30 + seed * 7, ties=ties)
    pred = p.argmax(axis=1)
    labels = list(range(3))
    assert m.balanced_accuracy(p, y) == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert m.macro_precision(p, y) == pytest.approx(
        skm.precision_score(y, pred, labels=labels, average="macro", zero_division=0)
    )
    assert m.macro_f1(p, y) == pytest.approx(
        skm.f1_score(y, pred, labels=labels, average="macro", zero_division=0)
    )
    assert m.macro_auc(p, y) == pytest.approx(skm.roc_auc_score(y, p, multi_class="ovr", average="macro"))
    np.testing.assert_allclose(
        m.per_class_recall(p, y), skm.recall_score(y, pred, labels=labels, average=None, zero_division=0)
    )
    np.testing.assert_allclose(
        m.row_normalised_confusion(p, y), skm.confusion_matrix(y, pred, labels=labels, normalize="true")
    )
    np.testing.assert_array_equal(
        m.confusion_matrix(y, pred, 3), skm.confusion_matrix(y, pred, labels=labels)
    )


def _hand_counts(y: np.ndarray, pred: np.ndarray, c: int) -> np.ndarray:
    cm = np.zeros((c, c), dtype=np.int64)
    for t, q in zip(y.tolist(), pred.tolist()):
        cm[t, q] += 1
    return cm


@pytest.mark.parametrize("seed", range(40))
def test_sklearn_backed_metrics_equal_hand_counts_exactly(seed: int) -> None:
    """The metrics scikit-learn computes equal a count-by-hand computation bit for bit (the results tables are
    written at full precision), for 2-10 classes, classes absent from the targets and tied scores."""
    rng = np.random.default_rng(seed)
    c = int(rng.integers(2, 11))
    p, _ = _random_case(seed, n=int(rng.integers(c, 120)), c=c, ties=seed % 3 == 0)
    present = rng.choice(c, size=int(rng.integers(1, c + 1)), replace=False)
    y = present[rng.integers(0, present.size, size=p.shape[0])]
    pred = p.argmax(axis=1)
    cm = _hand_counts(y, pred, c)
    got = m.confusion_matrix(y, pred, c)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, cm)
    tp, actual, predicted = np.diag(cm).astype(float), cm.sum(axis=1), cm.sum(axis=0)
    recall = np.array([tp[k] / actual[k] if actual[k] else np.nan for k in range(c)])
    precision = np.array([tp[k] / predicted[k] if predicted[k] else 0.0 for k in range(c)])
    np.testing.assert_array_equal(m.per_class_recall(p, y), recall)
    assert m.macro_precision(p, y) == float(precision.mean())
    assert m.balanced_accuracy(p, y) == float(np.nanmean(recall))
    normalised = m.row_normalised_confusion(p, y)
    for k in range(c):
        expected = cm[k] / actual[k] if actual[k] else np.full(c, np.nan)
        np.testing.assert_array_equal(normalised[k], expected)


def test_empty_confusion_matrix_is_zeros() -> None:
    empty = np.array([], dtype=np.int64)
    np.testing.assert_array_equal(m.confusion_matrix(empty, empty, 3), np.zeros((3, 3), dtype=np.int64))


def test_four_classes_and_two_classes() -> None:
    for c in (2, 4):
        p, y = _random_case(11, n=50, c=c)
        pred = p.argmax(axis=1)
        assert m.balanced_accuracy(p, y) == pytest.approx(skm.balanced_accuracy_score(y, pred))
        expected_auc = (
            skm.roc_auc_score(y, p[:, 1])
            if c == 2
            else skm.roc_auc_score(y, p, multi_class="ovr", average="macro")
        )
        # for two classes the macro of both one-vs-rest AUCs equals the binary AUC
        assert m.macro_auc(p, y) == pytest.approx(expected_auc)


def test_hand_computed_example() -> None:
    # truth:     CN CN CN MCI MCI AD
    # predicted: CN CN MCI MCI AD AD
    y = np.array([0, 0, 0, 1, 1, 2])
    pred = np.array([0, 0, 1, 1, 2, 2])
    p = np.full((6, 3), 0.1)
    p[np.arange(6), pred] = 0.8
    out = m.classification_metrics(p, y, NAMES)
    assert out["TP-CN"] == pytest.approx(2 / 3)
    assert out["TP-MCI"] == pytest.approx(1 / 2)
    assert out["TP-AD"] == pytest.approx(1.0)
    assert out["BA"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    # precision: CN 2/2, MCI 1/2, AD 1/2
    assert out["PRC"] == pytest.approx((1 + 0.5 + 0.5) / 3)
    assert out["cm/CN/MCI"] == pytest.approx(1 / 3)
    assert out["cm/MCI/AD"] == pytest.approx(1 / 2)
    assert out["cm/AD/CN"] == 0.0


def test_flat_dict_keys_and_values_match_the_functions() -> None:
    p, y = _random_case(3)
    out = m.classification_metrics(p, y, NAMES)
    expected = {"BA", "PRC", "F1", "AUC", "TP-CN", "TP-MCI", "TP-AD"} | {
        f"cm/{a}/{b}" for a in NAMES for b in NAMES
    }
    assert set(out) == expected
    assert all(isinstance(v, float) for v in out.values())
    assert out["F1"] == pytest.approx(m.macro_f1(p, y))
    cm = m.row_normalised_confusion(p, y)
    assert out["cm/MCI/CN"] == pytest.approx(cm[1, 0])


def test_class_absent_from_targets() -> None:
    p, y = _random_case(5, n=30)
    y = np.where(y == 2, 0, y)  # AD absent
    pred = p.argmax(axis=1)
    recall = m.per_class_recall(p, y)
    assert np.isnan(recall[2])
    assert m.balanced_accuracy(p, y) == pytest.approx(np.mean(recall[:2]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns about the absent class too
        assert m.balanced_accuracy(p, y) == pytest.approx(skm.balanced_accuracy_score(y, pred))
        assert m.macro_precision(p, y) == pytest.approx(
            skm.precision_score(y, pred, labels=[0, 1, 2], average="macro", zero_division=0)
        )
        assert m.macro_f1(p, y) == pytest.approx(
            skm.f1_score(y, pred, labels=[0, 1, 2], average="macro", zero_division=0)
        )
    with pytest.warns(RuntimeWarning, match=r"\['AD'\]"):
        auc = m.macro_auc(p, y, NAMES)
    expected = np.mean([skm.roc_auc_score(y == c, p[:, c]) for c in (0, 1)])
    assert auc == pytest.approx(expected)
    with pytest.warns(RuntimeWarning):
        out = m.classification_metrics(p, y, NAMES)
    assert np.isnan(out["TP-AD"]) and np.isnan(out["cm/AD/CN"])


def test_single_class_auc_is_nan() -> None:
    p, _ = _random_case(2, n=10)
    with pytest.warns(RuntimeWarning):
        assert np.isnan(m.macro_auc(p, np.zeros(10, dtype=int)))


def test_never_predicted_class_counts_zero_precision() -> None:
    y = np.array([0, 1, 2, 2])
    p = np.array([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.1, 0.8, 0.1], [0.7, 0.2, 0.1]])  # AD never predicted
    # precision: CN 1/2, MCI 1/2, AD 0/0 -> 0
    assert m.macro_precision(p, y) == pytest.approx((0.5 + 0.5 + 0.0) / 3)


def test_regression_metrics_against_sklearn() -> None:
    rng = np.random.default_rng(0)
    t = rng.uniform(40, 80, size=50)
    q = t + rng.normal(scale=4, size=50)
    sex = rng.choice(["F", "M"], size=50)
    out = m.regression_metrics(q, t, sex)
    assert out["MAE"] == pytest.approx(skm.mean_absolute_error(t, q))
    for s in ("F", "M"):
        assert out[f"MAE-{s}"] == pytest.approx(skm.mean_absolute_error(t[sex == s], q[sex == s]))
    assert out["r"] == pytest.approx(pearsonr(q, t).statistic)
    assert set(m.regression_metrics(q, t)) == {"MAE", "r"}
    assert np.isnan(m.regression_metrics(np.full(50, 60.0), t)["r"])  # constant predictions: undefined


@pytest.mark.parametrize(
    ("probs", "targets", "match"),
    [
        (np.array([[0.5, 0.5], [2.0, -1.0]]), np.array([0, 1]), "row 1"),
        (np.array([[0.5, 0.5], [np.nan, 0.5]]), np.array([0, 1]), "row 1 is not finite"),
        (np.array([[3.0, 1.0], [0.5, 0.5]]), np.array([0, 1]), "logits"),
        (np.array([[0.5, 0.5], [0.5, 0.5]]), np.array([0, 2]), "class 2"),
        (np.array([[0.5, 0.5], [0.5, 0.5]]), np.array([0]), "shape"),
        (np.array([0.5, 0.5]), np.array([0]), "shape"),
        (np.array([[0.5, 0.5]]), np.array([0.5]), "integer"),
    ],
)
@fault(
    "metrics",
    "logits, NaN, an out-of-range class or mismatched shapes instead of probabilities and targets",
    "ValueError naming the row and the value",
)
def test_bad_classification_input(probs: np.ndarray, targets: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        m.balanced_accuracy(probs, targets)


@fault(
    "metrics",
    "wrong or duplicated class names, or non-finite regression predictions",
    "ValueError naming the names or the row",
)
def test_bad_class_names_and_regression_input() -> None:
    p, y = _random_case(0)
    with pytest.raises(ValueError, match="2 names"):
        m.classification_metrics(p, y, ["CN", "AD"])
    with pytest.raises(ValueError, match="unique"):
        m.classification_metrics(p, y, ["CN", "CN", "AD"])
    with pytest.raises(ValueError, match="predictions row 1"):
        m.mae(np.array([1.0, np.inf]), np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="equal-length"):
        m.mae(np.array([1.0, 2.0]), np.array([1.0]))
    with pytest.raises(ValueError, match="groups"):
        m.mae_by_group(np.array([1.0, 2.0]), np.array([1.0, 2.0]), ["F"])
