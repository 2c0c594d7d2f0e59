"""Survival metrics against scikit-survival on random inputs (to 1e-6), and by hand on tiny cohorts."""

from __future__ import annotations

import numpy as np
import pytest
from sksurv.linear_model.coxph import BreslowEstimator
from sksurv.metrics import (
    concordance_index_censored,
    concordance_index_ipcw,
    cumulative_dynamic_auc,
    integrated_brier_score,
)
from sksurv.nonparametric import CensoringDistributionEstimator, kaplan_meier_estimator
from sksurv.util import Surv

from hyperfusion.evaluation import survival as sv


def _cohort(rng: np.random.Generator, n: int, tied: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    risk = rng.normal(size=n)
    if tied:
        risk = np.round(risk, 1)  # tied risks too
        time = rng.integers(1, 12, size=n).astype(float) * 6  # visits every 6 months: many tied times
    else:
        time = rng.exponential(30, size=n) * np.exp(-0.5 * risk)
    event = rng.random(n) < 0.55
    return risk, time, event


def _pairs(rng: np.random.Generator, tied: bool):
    """A training cohort, and a test cohort inside its follow-up (sksurv refuses times past the training's)."""
    train = _cohort(rng, int(rng.integers(30, 80)), tied)
    test = _cohort(rng, int(rng.integers(15, 50)), tied)
    keep = test[1] < train[1].max()
    test = tuple(a[keep] for a in test)
    train[2][np.argmax(train[1])] = False  # G stays positive up to the last training time
    return train, test


CASES = [(seed, tied) for seed in range(8) for tied in (False, True)]


@pytest.mark.parametrize(("seed", "tied"), CASES)
def test_concordances_match_scikit_survival(seed: int, tied: bool) -> None:
    rng = np.random.default_rng(seed)
    (_, t_train, e_train), (risk, time, event) = _pairs(rng, tied)
    reference = concordance_index_censored(event, time, risk)[0]
    assert sv.harrell_c(risk, time, event) == pytest.approx(reference, abs=1e-6)
    y_train, y_test = Surv.from_arrays(e_train, t_train), Surv.from_arrays(event, time)
    assert sv.uno_c(risk, time, event, t_train, e_train) == pytest.approx(
        concordance_index_ipcw(y_train, y_test, risk)[0], abs=1e-6
    )
    tau = float(np.quantile(time, 0.7))
    assert sv.uno_c(risk, time, event, t_train, e_train, tau=tau) == pytest.approx(
        concordance_index_ipcw(y_train, y_test, risk, tau=tau)[0], abs=1e-6
    )


@pytest.mark.parametrize(("seed", "tied"), CASES)
def test_auc_brier_and_breslow_match_scikit_survival(seed: int, tied: bool) -> None:
    rng = np.random.default_rng(100 + seed)
    (r_train, t_train, e_train), (risk, time, event) = _pairs(rng, tied)
    y_train, y_test = Surv.from_arrays(e_train, t_train), Surv.from_arrays(event, time)
    horizons = np.quantile(time[event], [0.25, 0.5, 0.75]) + 0.5
    horizons = horizons[horizons < time.max()]
    reference_auc, _ = cumulative_dynamic_auc(y_train, y_test, risk, horizons)
    np.testing.assert_allclose(
        sv.cumulative_dynamic_auc(risk, time, event, t_train, e_train, horizons), reference_auc, atol=1e-6
    )

    baseline = sv.BreslowBaseline(r_train, t_train, e_train)
    reference = BreslowEstimator().fit(r_train, e_train, t_train)
    expected = np.array([fn(horizons) for fn in reference.get_survival_function(risk)])
    survival = baseline.survival(risk, horizons)
    np.testing.assert_allclose(survival, expected, atol=1e-6)
    if horizons.size >= 2:
        ibs = integrated_brier_score(y_train, y_test, survival, horizons)
        assert sv.integrated_brier_score(survival, time, event, t_train, e_train, horizons) == pytest.approx(
            ibs, abs=1e-6
        )


@pytest.mark.parametrize("seed", range(5))
def test_kaplan_meier_and_censoring_survival_match_scikit_survival(seed: int) -> None:
    rng = np.random.default_rng(200 + seed)
    _, time, event = _cohort(rng, 40, tied=True)
    event[np.argmax(time)] = False
    times, surv = sv.kaplan_meier(time, event)
    ref_times, ref_surv = kaplan_meier_estimator(event, time)
    np.testing.assert_allclose(times, ref_times)
    np.testing.assert_allclose(surv, ref_surv, atol=1e-12)
    g_times, g = sv.censoring_survival(time, event)
    reference = CensoringDistributionEstimator().fit(Surv.from_arrays(event, time))
    at = np.linspace(0, time.max(), 17)
    np.testing.assert_allclose(sv.step_at(g_times, g, at), reference.predict_proba(at), atol=1e-12)


def test_harrell_by_hand() -> None:
    # times 1 (event), 2 (censored), 3 (event), 3 (censored); comparable pairs: (0,1) (0,2) (0,3) (2,3)
    time = np.array([1.0, 2.0, 3.0, 3.0])
    event = np.array([1, 0, 1, 0])
    risk = np.array([2.0, 1.0, 3.0, 3.0])  # (0,1) yes, (0,2) no, (0,3) no, (2,3) tied -> 1/2
    assert sv.harrell_c(risk, time, event) == pytest.approx((1 + 0 + 0 + 0.5) / 4)


def test_no_skill_is_half_and_the_training_kaplan_meier() -> None:
    rng = np.random.default_rng(7)
    (_, t_train, e_train), (_, time, event) = _pairs(rng, tied=False)
    constant = np.zeros_like(time)
    assert sv.harrell_c(constant, time, event) == 0.5
    assert sv.uno_c(constant, time, event, t_train, e_train) == pytest.approx(0.5)
    horizons = [5.0, 10.0, 20.0]
    s = sv.noskill_survival(t_train, e_train, 3, horizons)
    times, surv = kaplan_meier_estimator(e_train, t_train)
    expected = [surv[times <= h][-1] if (times <= h).any() else 1.0 for h in horizons]
    np.testing.assert_allclose(s, np.tile(expected, (3, 1)))


def test_the_baseline_is_fitted_on_training_rows_only() -> None:
    rng = np.random.default_rng(8)
    r, t, e = _cohort(rng, 50, tied=False)
    before = sv.BreslowBaseline(r, t, e).survival(np.zeros(1), [10.0])
    changed = r.copy()
    changed[:10] += 5  # only what it was fitted on moves it
    after = sv.BreslowBaseline(changed, t, e).survival(np.zeros(1), [10.0])
    assert before[0, 0] != pytest.approx(after[0, 0])


def test_bad_input_names_the_row_and_value() -> None:
    with pytest.raises(ValueError, match=r"time on row 1 is -1\.0"):
        sv.harrell_c(np.zeros(2), np.array([1.0, -1.0]), np.array([1, 0]))
    with pytest.raises(ValueError, match=r"event on row 0 is 2\.0"):
        sv.harrell_c(np.zeros(2), np.array([1.0, 2.0]), np.array([2, 0]))
    with pytest.raises(ValueError, match="risks must be 2 finite"):
        sv.harrell_c(np.array([np.nan, 0.0]), np.array([1.0, 2.0]), np.array([1, 0]))
    with pytest.raises(ValueError, match="censoring survival is 0 at month 5"):
        sv.uno_c(np.zeros(2), np.array([5.0, 6.0]), np.array([1, 0]), np.array([1.0, 2.0]), np.array([1, 0]))
    assert np.isnan(sv.harrell_c(np.zeros(2), np.array([1.0, 2.0]), np.array([0, 0])))  # no event: no pair


def test_the_auc_needs_no_weight_for_events_after_the_last_horizon():
    """A test event later than every training row's follow-up (censoring survival 0 there) is never a case at
    the horizons asked, so it does not stop the score; the AUC equals the score without that subject's weight."""
    from hyperfusion.evaluation.survival import cumulative_dynamic_auc

    rng = np.random.default_rng(0)
    train_t, train_e = rng.uniform(1, 40, 60), rng.integers(0, 2, 60).astype(float)
    train_t[np.argmax(train_t)], train_e[np.argmax(train_t)] = 40.0, 0.0  # last training row censored at 40
    t = np.r_[rng.uniform(1, 35, 30), 72.0]
    e = np.r_[rng.integers(0, 2, 30).astype(float), 1.0]  # one event at 72 months
    risk = rng.normal(size=31)
    got = cumulative_dynamic_auc(risk, t, e, train_t, train_e, [12.0, 24.0])
    as_control = cumulative_dynamic_auc(
        risk, np.r_[t[:30], 72.0], np.r_[e[:30], 0.0], train_t, train_e, [12.0, 24.0]
    )
    np.testing.assert_allclose(got, as_control)  # beyond every horizon it is only ever a control


@pytest.mark.parametrize("seed", range(4))
def test_calibration_is_each_groups_mean_prediction_beside_its_kaplan_meier(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 45
    time, event = rng.integers(1, 9, n) * 6.0, rng.random(n) < 0.5
    survival, groups = rng.random(n), rng.integers(0, 3, n)
    rows = sv.calibration_at(survival, time, event, groups, 24.0)
    assert [r[0] for r in rows] == sorted(set(groups.tolist()))
    for group, count, predicted, observed in rows:
        mine = groups == group
        times, km = kaplan_meier_estimator(event[mine], time[mine])
        assert count == mine.sum() and predicted == pytest.approx(survival[mine].mean())
        assert observed == pytest.approx(km[times <= 24.0][-1] if (times <= 24.0).any() else 1.0, abs=1e-12)


def test_calibration_past_a_groups_follow_up_is_undefined() -> None:
    time, event = np.array([6.0, 12.0, 18.0, 6.0, 12.0]), np.array([1, 0, 0, 1, 1])
    rows = sv.calibration_at(np.full(5, 0.5), time, event, np.array([0, 0, 0, 1, 1]), 24.0)
    assert np.isnan(rows[0][3])  # group 0: followed to 18 months at most, its curve still above 0
    assert rows[1][3] == 0.0  # group 1: every subject converted by 12 months, so S(24) = 0 is known
    with pytest.raises(ValueError, match="one per subject"):
        sv.calibration_at(np.ones(4), time, event, np.zeros(5), 24.0)
