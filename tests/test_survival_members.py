"""benchmarks/survival_members.py: C and member correlations of a survival run, checked by hand and by sksurv."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sksurv.metrics import concordance_index_censored

from tests.scripts import load_benchmark


def _predictions(rng: np.random.Generator, n: int = 40) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    time = rng.integers(6, 60, n).astype(float)
    event = rng.random(n) < 0.5
    imaging, tabular = rng.normal(size=n), rng.normal(size=n)
    risks = {"img": imaging, "tab": tabular, "fused": 3 * tabular + 0.1 * imaging, "none": np.zeros(n)}
    rows = [
        {"method": m, "subject_id": f"s{i:02d}", "predicted": r[i], "time": time[i], "event": int(event[i])}
        for m, r in risks.items()
        for i in range(n)
    ]
    return pd.DataFrame(rows), {"time": time, "event": event, **risks}


def test_c_and_correlations_match_sksurv_and_numpy():
    script = load_benchmark("survival_members")
    frame, truth = _predictions(np.random.default_rng(3))
    table = script.member_table(frame, "img", "tab").set_index("method")
    assert "none" not in table.index  # one risk for all has no correlation
    for method in ("img", "tab", "fused"):
        reference = concordance_index_censored(truth["event"], truth["time"], truth[method])[0]
        assert table.loc[method, "harrell_c"] == pytest.approx(reference, abs=1e-12)
        assert table.loc[method, "corr_tabular"] == pytest.approx(
            np.corrcoef(truth[method], truth["tab"])[0, 1]
        )
    z = lambda x: (x - x.mean()) / x.std(ddof=1)  # noqa: E731
    summed = z(truth["img"]) + z(truth["tab"])
    reference = concordance_index_censored(truth["event"], truth["time"], summed)[0]
    assert table.loc["z(imaging) + z(tabular)", "harrell_c"] == pytest.approx(reference, abs=1e-12)
    assert table.loc["fused", "corr_tabular"] > 0.99  # the fused risk is mostly the tabular one
