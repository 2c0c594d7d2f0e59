"""Paired bootstrap: the vectorised resampled metrics against a per-resample loop of the plain metrics,
hand-computed intervals, the sign convention and the verdict."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn import metrics as skm

from hyperfusion.evaluation import bootstrap as b
from hyperfusion.evaluation import calibration as cal
from hyperfusion.evaluation import metrics as m
from hyperfusion.evaluation.noskill import noskill_predictions, noskill_probabilities
from tests.faults import fault


def _case(seed: int, n: int = 40, c: int = 3, *, ties: bool = False) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    y[:c] = np.arange(c)
    logits = rng.normal(size=(n, c))
    logits[np.arange(n), y] += 0.8
    if ties:
        logits = np.round(logits)
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return p, y


def _slow_metric(metric: str, p: np.ndarray, y: np.ndarray) -> float:
    """The plain metric functions on one duplicated resample."""
    if metric == "BA":
        return m.balanced_accuracy(p, y)
    if metric == "PRC":
        return m.macro_precision(p, y)
    if metric == "F1":
        return m.macro_f1(p, y)
    if metric == "AUC":
        auc = m.one_vs_rest_auc(p, y)
        return float(np.nanmean(auc)) if not np.isnan(auc).all() else float("nan")
    if metric == "ECE":
        return cal.expected_calibration_error(p, y)
    return cal.brier_score(p, y)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("ties", [False, True])
def test_resampled_classification_metrics_match_a_loop(seed: int, ties: bool) -> None:
    p, y = _case(seed, n=30, ties=ties)
    idx = b.bootstrap_indices(y.size, 25, seed=seed)  # unstratified: some resamples lose a class
    for metric in b.CLASSIFICATION_METRICS:
        fast = b.resampled_metric(metric, p, y, idx)
        slow = [_slow_metric(metric, p[i], y[i]) for i in idx]
        np.testing.assert_allclose(fast, slow, rtol=1e-10, atol=1e-12, err_msg=metric)


def _sklearn_metric(metric: str, p: np.ndarray, y: np.ndarray) -> float:
    """scikit-learn's metric on one duplicated resample (AUC: the mean of the defined one-vs-rest AUCs)."""
    labels = np.arange(p.shape[1])
    pred = p.argmax(axis=1)
    if metric == "BA":
        return skm.balanced_accuracy_score(y, pred)
    if metric == "PRC":
        return skm.precision_score(y, pred, labels=labels, average="macro", zero_division=0)
    if metric == "F1":
        return skm.f1_score(y, pred, labels=labels, average="macro", zero_division=0)
    if metric == "Brier":
        return skm.brier_score_loss(y, p, labels=labels, scale_by_half=False)
    per_class = [skm.roc_auc_score(y == c, p[:, c]) for c in labels if 0 < (y == c).sum() < y.size]
    return float(np.mean(per_class)) if per_class else float("nan")


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("classes", [2, 3, 4])
@pytest.mark.parametrize("stratified", [False, True])
def test_resampled_metrics_match_sklearn_on_the_duplicated_arrays(
    seed: int, classes: int, stratified: bool
) -> None:
    """The count-based resampled metrics (kept for speed: scikit-learn per resample is ~200x slower) equal
    scikit-learn's metric on ``p[idx], y[idx]``, also where an unstratified resample loses a class."""
    p, y = _case(seed, n=25 + 5 * seed, c=classes, ties=seed % 2 == 1)
    idx = b.bootstrap_indices(y.size, 10, seed=seed, strata=y if stratified else None)
    for metric in ("BA", "PRC", "F1", "AUC", "Brier"):
        fast = b.resampled_metric(metric, p, y, idx)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scikit-learn warns about a class a resample lost
            slow = [_sklearn_metric(metric, p[i], y[i]) for i in idx]
        np.testing.assert_allclose(fast, slow, rtol=1e-12, atol=1e-14, err_msg=metric)


def test_resampled_regression_metrics_match_a_loop() -> None:
    rng = np.random.default_rng(0)
    t = rng.uniform(40, 80, 35)
    q = t + rng.normal(scale=5, size=35)
    sex = rng.choice(["F", "M"], 35)
    idx = b.bootstrap_indices(35, 30, seed=1, strata=sex)
    np.testing.assert_allclose(b.resampled_metric("MAE", q, t, idx), [m.mae(q[i], t[i]) for i in idx])
    for g in ("F", "M"):
        slow = [m.mae_by_group(q[i], t[i], sex[i])[g] for i in idx]
        np.testing.assert_allclose(b.resampled_metric(f"MAE-{g}", q, t, idx, groups=sex), slow)


def test_stratified_indices_keep_every_class_and_its_size() -> None:
    y = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    idx = b.bootstrap_indices(y.size, 200, seed=3, strata=y)
    assert idx.shape == (200, 9)
    for row in idx:
        np.testing.assert_array_equal(np.bincount(y[row], minlength=3), [3, 2, 4])
    np.testing.assert_array_equal(idx, b.bootstrap_indices(y.size, 200, seed=3, strata=y))  # seeded
    assert not np.array_equal(idx, b.bootstrap_indices(y.size, 200, seed=4, strata=y))
    # every member of a stratum is drawn with equal chance
    counts = np.bincount(b.bootstrap_indices(y.size, 4000, seed=0, strata=y).ravel(), minlength=9)
    np.testing.assert_allclose(counts / 4000, 1.0, atol=0.06)


@pytest.mark.parametrize("metric", ["BA", "AUC", "F1", "PRC", "ECE", "Brier"])
def test_difference_and_interval_match_a_slow_loop(metric: str) -> None:
    p, y = _case(7, n=36)
    base = noskill_probabilities(np.random.default_rng(1).integers(0, 3, 80), y.size, 3)
    out = b.bootstrap_difference(p, base, y, metric, n_resamples=300, seed=5)
    idx = b.bootstrap_indices(y.size, 300, seed=5, strata=y)
    sign = -1.0 if metric in ("ECE", "Brier") else 1.0
    diffs = [sign * (_slow_metric(metric, p[i], y[i]) - _slow_metric(metric, base[i], y[i])) for i in idx]
    assert out.difference == pytest.approx(
        sign * (_slow_metric(metric, p, y) - _slow_metric(metric, base, y))
    )
    assert out.value == pytest.approx(_slow_metric(metric, p, y))
    assert (out.low, out.high) == pytest.approx(tuple(np.quantile(diffs, [0.025, 0.975])))
    assert out.n_resamples == 300 and out.n_subjects == 36


def test_hand_computed_mae_interval() -> None:
    # per-subject error gain d = |baseline err| − |method err| = [1, 3]; the resampled mean is 1, 2 or 3
    t = np.array([10.0, 20.0])
    method = np.array([11.0, 21.0])  # errors 1, 1
    baseline = np.array([12.0, 24.0])  # errors 2, 4
    out = b.bootstrap_difference(method, baseline, t, "MAE", seed=0)
    assert out.difference == pytest.approx(2.0)  # 3 − 1: positive = the method is better
    assert out.value == pytest.approx(1.0) and out.baseline_value == pytest.approx(3.0)
    assert (out.low, out.high) == (pytest.approx(1.0), pytest.approx(3.0))
    assert out.n_resamples == 2000 and not out.higher_is_better
    assert out.verdict == "better than no skill"


def test_hand_computed_perfect_classifier_against_the_prior() -> None:
    y = np.array([0, 0, 1, 1])
    perfect = np.eye(2)[y] * 0.9 + 0.05
    prior = noskill_probabilities(np.array([0, 0, 0, 1]), 4, 2)  # predicts class 0 for all
    out = b.bootstrap_differences(perfect, prior, y, ["BA", "AUC"], n_resamples=500)
    ba, auc = out.iloc[0], out.iloc[1]
    # stratified: both classes stay, BA is 1 vs 1/2 and AUC 1 vs 1/2 in every resample
    assert (ba["difference"], ba["low"], ba["high"]) == pytest.approx((0.5, 0.5, 0.5))
    assert (auc["difference"], auc["low"], auc["high"]) == pytest.approx((0.5, 0.5, 0.5))


def test_no_skill_against_itself_is_not_better() -> None:
    _, y = _case(2)
    base = noskill_probabilities(y, y.size, 3)
    out = b.bootstrap_differences(base, base, y, ["BA", "AUC", "F1"], n_resamples=200)
    assert (out[["difference", "low", "high"]].to_numpy() == 0).all()
    assert set(out["verdict"]) == {"not better than no skill"}


def test_regression_stratifies_by_group_and_uses_the_training_mean() -> None:
    rng = np.random.default_rng(3)
    t = rng.uniform(40, 80, 60)
    sex = np.array(["F"] * 5 + ["M"] * 55)
    good = t + rng.normal(scale=2, size=60)
    base = noskill_predictions(rng.uniform(40, 80, 100), 60)
    out = b.bootstrap_differences(good, base, t, ["MAE", "MAE-F", "MAE-M"], groups=sex, n_resamples=300)
    assert (out["n_resamples"] == 300).all()  # the small group F is in every resample
    assert (out["low"] > 0).all() and (out["verdict"] == "better than no skill").all()


def test_verdict() -> None:
    assert b.skill_verdict(0.01, 0.2) == "better than no skill"
    assert b.skill_verdict(-0.01, 0.2) == "not better than no skill"
    assert b.skill_verdict(0.0, 0.2) == "not better than no skill"  # the interval includes zero
    assert b.skill_verdict(-0.3, -0.1) == "worse than no skill"
    assert b.skill_verdict(float("nan"), float("nan")) == "not better than no skill"
    assert b.skill_verdict(0.1, 0.2, "Imaging") == "better than Imaging"
    assert b.higher_is_better("AUC") and not b.higher_is_better("MAE-F") and not b.higher_is_better("Brier")


def test_two_thousand_resamples_of_three_hundred_subjects_are_fast() -> None:
    import time

    p, y = _case(0, n=300)
    base = noskill_probabilities(y, 300, 3)
    start = time.perf_counter()
    b.bootstrap_differences(p, base, y, list(b.CLASSIFICATION_METRICS))
    assert time.perf_counter() - start < 5.0


@fault("bootstrap", "method and baseline predictions for different subjects", "ValueError naming both shapes")
def test_mismatched_predictions() -> None:
    p, y = _case(0)
    with pytest.raises(ValueError, match=r"predictions \(40, 3\) and baseline \(39, 3\)"):
        b.bootstrap_difference(p, p[:-1], y, "BA")


@fault("bootstrap", "a metric the bootstrap does not know, or one that needs groups", "ValueError naming it")
def test_unknown_metric() -> None:
    p, y = _case(0)
    with pytest.raises(ValueError, match="'MAE' is not a classification metric"):
        b.bootstrap_difference(p, p, y, "MAE")
    t = np.arange(5.0)
    with pytest.raises(ValueError, match="'MAE-F' needs groups"):
        b.bootstrap_difference(t, t, t, "MAE-F")
    with pytest.raises(ValueError, match="no test subject has group 'X'"):
        b.bootstrap_difference(t, t, t, "MAE-X", groups=["F"] * 5)


@fault("bootstrap", "a confidence outside (0, 1) or no resamples", "ValueError naming the argument")
def test_bad_settings() -> None:
    p, y = _case(0)
    with pytest.raises(ValueError, match="confidence must be in"):
        b.bootstrap_difference(p, p, y, "BA", confidence=95)
    with pytest.raises(ValueError, match="n_resamples must be >= 1"):
        b.bootstrap_difference(p, p, y, "BA", n_resamples=0)


def test_survival_c_of_a_resample_is_harrells_c_on_the_duplicated_arrays() -> None:
    from hyperfusion.evaluation.survival import harrell_c

    rng = np.random.default_rng(11)
    n = 25
    risk = rng.normal(size=n).round(1)
    targets = np.column_stack([rng.integers(1, 8, n) * 6.0, rng.random(n) < 0.5])
    idx = b.bootstrap_indices(n, 30, seed=2)
    got = b.resampled_metric("C", risk, targets, idx)
    want = [harrell_c(risk[i], targets[i, 0], targets[i, 1]) for i in idx]
    np.testing.assert_allclose(got, want, atol=1e-12)
    out = b.bootstrap_differences(risk, np.zeros(n), targets, ["C"], n_resamples=200)
    assert out["baseline_value"].item() == 0.5
    assert out["value"].item() == pytest.approx(harrell_c(risk, targets[:, 0], targets[:, 1]))
    with pytest.raises(ValueError, match="not a survival metric the bootstrap knows"):
        b.resampled_metric("MAE", risk, targets, idx)
