"""A survival unit's baseline hazard against scikit-survival's Breslow estimator, read back checked, and the
ensemble's survival as a per-member loop."""

from __future__ import annotations

import numpy as np
import pytest
from sksurv.linear_model.coxph import BreslowEstimator

from hyperfusion.run.hazards import (
    BASELINE,
    MissingBaseline,
    baseline_field,
    ensemble_survival,
    read_baseline,
    survival_columns,
)


def _training_rows(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    risk = rng.normal(size=n)
    time = rng.integers(1, 10, size=n) * 6.0  # visits every 6 months: tied times
    event = (rng.random(n) < 0.5).astype(float)
    return risk, np.column_stack([time, event])


@pytest.mark.parametrize("seed", range(5))
def test_the_recorded_baseline_is_scikit_survivals_breslow(seed: int) -> None:
    rng = np.random.default_rng(seed)
    risk, targets = _training_rows(rng, int(rng.integers(20, 80)))
    field = baseline_field(risk, targets)
    reference = BreslowEstimator().fit(risk, targets[:, 1].astype(bool), targets[:, 0])
    hazard = reference.cum_baseline_hazard_
    np.testing.assert_allclose(field["times"], hazard.x, atol=1e-9)
    np.testing.assert_allclose(field["cumulative_hazard"], hazard.y, rtol=1e-6, atol=1e-9)
    assert field["rows"] == len(risk)
    new = rng.normal(size=7)
    horizons = [12.0, 24.0, 36.0]
    expected = np.stack([f(horizons) for f in reference.get_survival_function(new)])
    got = read_baseline({BASELINE: field}, "units/m/s0_v0_f0.json").survival(new, horizons)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-9)


def test_an_ensemble_is_the_mean_of_its_members_survival() -> None:
    rng = np.random.default_rng(9)
    horizons = [6.0, 30.0]
    members = []
    for _ in range(3):
        risk, targets = _training_rows(rng, 40)
        members.append((read_baseline({BASELINE: baseline_field(risk, targets)}, "r"), rng.normal(size=5)))
    got = ensemble_survival(members, horizons)
    by_hand = np.zeros((5, 2))
    for baseline, risk in members:
        for i in range(5):
            for k, h in enumerate(horizons):
                before = baseline.times <= h
                hazard = baseline.cumulative_hazard[before][-1] if before.any() else 0.0
                by_hand[i, k] += np.exp(-hazard * np.exp(risk[i])) / len(members)
    np.testing.assert_allclose(got, by_hand, rtol=1e-12)
    assert np.all(np.diff(got, axis=1) <= 0) and np.all((got >= 0) & (got <= 1))
    with pytest.raises(ValueError, match="at least one member"):
        ensemble_survival([], horizons)
    columns = survival_columns(got, horizons)
    assert list(columns) == ["survival_6mo", "survival_30mo"]
    np.testing.assert_array_equal(columns["survival_30mo"], got[:, 1])


def test_a_record_without_a_baseline_fails_naming_it() -> None:
    with pytest.raises(
        MissingBaseline, match=r"units/m/s0_v1_f0\.json has no baseline_hazard.*train it again"
    ):
        read_baseline({"test": {}}, "units/m/s0_v1_f0.json")


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ({"times": [1.0, 2.0]}, "must hold 'times' and 'cumulative_hazard'"),
        ({"times": [1.0, 2.0], "cumulative_hazard": [0.1]}, "two non-empty lists of one length"),
        ({"times": [2.0, 1.0], "cumulative_hazard": [0.1, 0.2]}, "strictly increasing"),
        ({"times": [1.0, 2.0], "cumulative_hazard": [0.2, 0.1]}, "non-decreasing"),
        ({"times": [1.0, 2.0], "cumulative_hazard": [0.1, float("nan")]}, "finite"),
    ],
)
def test_a_malformed_baseline_is_refused_naming_the_record(field: dict, message: str) -> None:
    with pytest.raises(ValueError, match=rf"units/x\.json.*{message}"):
        read_baseline({BASELINE: field}, "units/x.json")
