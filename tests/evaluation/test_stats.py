"""Mann–Whitney table: scipy on hand-made runs, the too-few-runs rule, and bad tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import mannwhitneyu

from hyperfusion.evaluation import stats


def _table(values: dict[str, list[float]], metric: str = "BA", *, fold: str = "ensemble") -> pd.DataFrame:
    rows = []
    for method, vals in values.items():
        for i, v in enumerate(vals):
            rows.append(
                {
                    "method": method,
                    "split_seed": i // 2,
                    "version": i % 2,
                    "fold": fold,
                    "metric": metric,
                    "value": v,
                }
            )
    return pd.DataFrame(rows)


def test_hand_computed_exact_test() -> None:
    # every Imaging run below every HyperFusion run: U = 0, exact two-sided p = 2 / C(6, 3) = 0.1
    df = _table({"HyperFusion": [0.7, 0.71, 0.72], "Imaging": [0.5, 0.52, 0.51]})
    out = stats.compare_to_reference(df, "HyperFusion")
    assert len(out) == 1
    row = out.iloc[0]
    assert row["method"] == "Imaging" and row["metric"] == "BA"
    assert row["U"] == 0.0
    assert row["p_value"] == pytest.approx(0.1)
    assert row["mean"] == pytest.approx(0.51) and row["reference_mean"] == pytest.approx(0.71)
    assert row["std"] == pytest.approx(np.std([0.5, 0.52, 0.51], ddof=1))
    assert row["n"] == 3 and row["reference_n"] == 3 and row["note"] == ""


def test_two_sided_not_halved_in_either_direction() -> None:
    # B13: a better and a worse method, mirror images of each other, get the same two-sided p
    rng = np.random.default_rng(0)
    ref = rng.normal(0.6, 0.02, size=6)
    df = pd.concat(
        [
            _table({"HyperFusion": ref.tolist()}),
            _table({"Worse": (ref - 0.05).tolist()}),
            _table({"Better": (ref + 0.05).tolist()}),
        ]
    )
    out = stats.compare_to_reference(df, "HyperFusion").set_index("method")
    assert out.loc["Worse", "p_value"] == pytest.approx(out.loc["Better", "p_value"])
    expected = mannwhitneyu(ref - 0.05, ref, alternative="two-sided").pvalue
    assert out.loc["Worse", "p_value"] == pytest.approx(expected)
    assert list(out.index) == ["Worse", "Better"]  # table order, reference left out


@pytest.mark.parametrize("seed", range(3))
def test_matches_scipy_on_random_runs(seed: int) -> None:
    rng = np.random.default_rng(seed)
    vals = {
        m: rng.uniform(0.4, 0.8, size=int(rng.integers(3, 9))).round(2).tolist() for m in ("HF", "A", "B")
    }
    df = pd.concat([_table(vals, "BA"), _table({k: [1 - x for x in v] for k, v in vals.items()}, "AUC")])
    out = stats.compare_to_reference(df, "HF")
    assert len(out) == 4
    for _, row in out.iterrows():
        a = np.array(vals[row["method"]])
        b = np.array(vals["HF"])
        if row["metric"] == "AUC":
            a, b = 1 - a, 1 - b
        expected = mannwhitneyu(a, b, alternative="two-sided")
        assert row["U"] == pytest.approx(expected.statistic)
        assert row["p_value"] == pytest.approx(expected.pvalue)


def test_fewer_than_three_runs_says_not_available() -> None:
    df = _table({"HyperFusion": [0.7, 0.71], "Imaging": [0.5, 0.52, 0.51]})
    row = stats.compare_to_reference(df, "HyperFusion").iloc[0]
    assert np.isnan(row["p_value"]) and np.isnan(row["U"])
    assert "not available" in row["note"] and "HyperFusion: 2" in row["note"]
    assert row["mean"] == pytest.approx(0.51)


def test_nan_values_do_not_count_as_runs() -> None:
    df = _table({"HyperFusion": [0.7, 0.71, 0.72], "Imaging": [0.5, np.nan, 0.51]})
    row = stats.compare_to_reference(df, "HyperFusion").iloc[0]
    assert row["n"] == 2 and "not available" in row["note"]


def test_fold_selection() -> None:
    ens = _table({"HF": [0.7, 0.71, 0.72], "A": [0.5, 0.52, 0.51]})
    folds = _table({"HF": [0.1, 0.2, 0.3], "A": [0.4, 0.5, 0.6]}, fold="0")
    df = pd.concat([ens, folds])
    assert stats.compare_to_reference(df, "HF").iloc[0]["mean"] == pytest.approx(0.51)
    assert stats.compare_to_reference(df, "HF", fold="0").iloc[0]["mean"] == pytest.approx(0.5)
    assert stats.compare_to_reference(df, "HF", fold=None).iloc[0]["n"] == 6
    with pytest.raises(ValueError, match="fold == '3'"):
        stats.compare_to_reference(df, "HF", fold="3")


def test_bad_tables() -> None:
    df = _table({"HF": [0.7, 0.71, 0.72]})
    with pytest.raises(ValueError, match="reference method 'HyperFusion'"):
        stats.compare_to_reference(df, "HyperFusion")
    with pytest.raises(ValueError, match=r"metric\(s\) \['AUC'\]"):
        stats.compare_to_reference(df, "HF", metrics=["AUC"])
    with pytest.raises(ValueError, match="lacks column"):
        stats.check_results(df.drop(columns="fold"))
    bad = df.copy()
    bad["value"] = bad["value"].astype(object)
    bad.loc[1, "value"] = "n/a"
    with pytest.raises(ValueError, match="row 1: value 'n/a'"):
        stats.check_results(bad)
    with pytest.raises(ValueError, match="duplicate"):
        stats.check_results(pd.concat([df, df.iloc[:1]]))
    with pytest.raises(ValueError, match="min_runs"):
        stats.compare_to_reference(df, "HF", min_runs=0)
