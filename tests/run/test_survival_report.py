"""The survival report section's pieces: risk tertiles by hand, the C/AUC rows against the metric functions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hyperfusion.evaluation.survival import (
    HORIZONS,
    calibration_at,
    cumulative_dynamic_auc,
    harrell_c,
    integrated_brier_score,
    noskill_survival,
    uno_c,
)
from hyperfusion.run.survival_report import (
    brier_grid,
    calibration_horizon,
    plot_risk_tertiles,
    probability_rows,
    risk_tertiles,
    survival_rows,
)


def test_tertiles_split_the_risks_in_thirds() -> None:
    np.testing.assert_array_equal(risk_tertiles(np.array([5.0, 1.0, 3.0, 2.0, 6.0, 4.0])), [2, 0, 1, 0, 2, 1])
    assert np.bincount(risk_tertiles(np.random.default_rng(0).normal(size=10))).tolist() == [4, 3, 3]


def _predictions(rng: np.random.Generator, n: int) -> pd.DataFrame:
    risk = rng.normal(size=n)
    return pd.DataFrame(
        {
            "method": "m",
            "split_seed": 0,
            "version": "top1",
            "subject_id": [f"s{i}" for i in range(n)],
            "predicted": risk,
            "time": rng.integers(1, 9, n) * 6.0,
            "event": (rng.random(n) < 0.4).astype(int),
        }
    )


def test_rows_are_the_metric_functions_with_the_training_censoring(tmp_path) -> None:
    rng = np.random.default_rng(1)
    p = _predictions(rng, 40)
    train = np.column_stack([rng.integers(1, 10, 80) * 6.0, (rng.random(80) < 0.4).astype(float)])
    train[np.argmax(train[:, 0]), 1] = 0.0
    (row,) = survival_rows(p, {0: train})
    t, e, r = p["time"].to_numpy(float), p["event"].to_numpy(float), p["predicted"].to_numpy()
    assert row[:4] == ["m", "0", "top1", f"{harrell_c(r, t, e):.3f}"]
    assert row[4] == f"{uno_c(r, t, e, train[:, 0], train[:, 1], tau=36.0):.3f}"
    auc = cumulative_dynamic_auc(r, t, e, train[:, 0], train[:, 1], HORIZONS)
    assert row[5:] == [f"{a:.3f}" for a in auc]
    short = p.assign(time=np.minimum(p["time"], 20.0))  # no test subject followed past 24 months
    (row,) = survival_rows(short, {0: train})
    assert row[6:] == ["—", "—"]
    assert plot_risk_tertiles(
        pd.concat([p, p.assign(method="no-skill", predicted=0.0)]), tmp_path / "km.png"
    ).exists()


def test_the_no_skill_row_is_half() -> None:
    rng = np.random.default_rng(2)
    p = _predictions(rng, 30).assign(predicted=0.0)
    train = np.column_stack([rng.integers(1, 10, 60) * 6.0, np.r_[np.ones(59), 0.0]])
    (row,) = survival_rows(p, {0: train})
    assert row[3] == "0.500" and all(c in ("0.500", "—") for c in row[4:])
    assert float(row[3]) == pytest.approx(0.5)


def test_probability_rows_are_the_brier_and_calibration_functions() -> None:
    rng = np.random.default_rng(3)
    p = _predictions(rng, 40)
    train = np.column_stack([rng.integers(1, 10, 80) * 6.0, (rng.random(80) < 0.4).astype(float)])
    train[np.argmax(train[:, 0]), 1] = 0.0
    t, e = p["time"].to_numpy(float), p["event"].to_numpy(float)
    grid = brier_grid(t, train[:, 0])
    assert grid[0] == 12.0 and np.all(np.diff(grid) == 1.0) and grid[-1] < min(t.max(), train[:, 0].max())
    assert calibration_horizon(t, train[:, 0]) == 24.0
    survival = np.exp(-np.outer(np.exp(p["predicted"]), grid) / 60)
    at_24 = survival[:, list(grid).index(24.0)]
    brier, calibration = probability_rows(survival, grid, at_24, 24.0, p, train)
    km = noskill_survival(train[:, 0], train[:, 1], len(t), grid)
    assert brier == [
        f"{integrated_brier_score(s, t, e, train[:, 0], train[:, 1], grid):.3f}" for s in (survival, km)
    ]
    expected = calibration_at(at_24, t, e, risk_tertiles(p["predicted"].to_numpy()), 24.0)
    assert [row[0] for row in calibration] == ["low", "middle", "high"]
    assert [row[1:] for row in calibration] == [
        [str(n), "24", f"{s:.3f}", f"{o:.3f}"] for _, n, s, o in expected
    ]
    short = p.assign(time=np.minimum(p["time"], 13.0))  # followed to 13 months: one month, no integral
    assert calibration_horizon(short["time"].to_numpy(float), train[:, 0]) == 12.0
    brier, _ = probability_rows(survival[:, :1], brier_grid(short["time"].to_numpy(float), train[:, 0]),
                                None, None, short, train)  # fmt: skip
    assert brier == ["—", "—"]
