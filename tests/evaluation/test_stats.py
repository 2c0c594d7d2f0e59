"""Mann–Whitney and paired tests: SciPy and hand computations on made-up runs, the minimum-p notes, bad tables."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from scipy.stats import mannwhitneyu, ttest_rel, wilcoxon

from hyperfusion.evaluation import stats
from tests.faults import fault


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
    # not halved: a better and a worse method, mirror images of each other, get the same two-sided p
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


@fault(
    "results table",
    "a missing column, a non-numeric value or a duplicated row",
    "ValueError naming the column or row",
)
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


# ----------------------------------------------------------------------------------------------------------
# minimum p-values


def test_mann_whitney_min_p_by_hand() -> None:
    assert stats.mannwhitney_min_p(3, 3) == pytest.approx(2 / math.comb(6, 3))  # 0.1
    assert stats.mannwhitney_min_p(4, 4) == pytest.approx(2 / math.comb(8, 4))  # 0.029
    assert stats.mannwhitney_min_p(3, 5) == pytest.approx(2 / math.comb(8, 3))
    df = _table({"HyperFusion": [0.7, 0.71, 0.72], "Imaging": [0.5, 0.52, 0.51]})
    assert stats.compare_to_reference(df, "HyperFusion").iloc[0]["min_p"] == pytest.approx(0.1)


def test_wilcoxon_min_p_by_hand() -> None:
    for j in range(1, 10):
        assert stats.wilcoxon_min_p(j) == pytest.approx(min(1.0, 2 / 2**j))
    assert stats.wilcoxon_min_p(5) >= 0.05 > stats.wilcoxon_min_p(6)


# ----------------------------------------------------------------------------------------------------------
# paired statistics


@pytest.mark.parametrize("seed", range(4))
def test_wilcoxon_matches_scipy(seed: int) -> None:
    d = np.random.default_rng(seed).normal(0.01, 0.02, size=int(4 + seed)).round(3)
    expected = wilcoxon(d, alternative="two-sided")
    assert stats.wilcoxon_signed_rank(d) == pytest.approx((expected.statistic, expected.pvalue))


def test_wilcoxon_all_zero_differences() -> None:
    assert stats.wilcoxon_signed_rank(np.zeros(4)) == (0.0, 1.0)
    assert np.isnan(stats.rank_biserial(np.zeros(4)))


def test_rank_biserial_by_hand() -> None:
    # |d| ranks 1..4; T+ = 1 + 2 + 4 = 7, T- = 3: r = (7 - 3) / 10
    assert stats.rank_biserial(np.array([0.1, 0.2, -0.3, 0.4])) == pytest.approx(0.4)
    # a zero is dropped; ties share ranks: |d| = 1, 1, 2 -> ranks 1.5, 1.5, 3; T+ = 4.5, T- = 1.5
    assert stats.rank_biserial(np.array([0.0, 1.0, -1.0, 2.0])) == pytest.approx(0.5)
    assert stats.rank_biserial(np.array([1.0, 2.0, 3.0])) == 1.0


def test_cohen_dz_by_hand() -> None:
    assert stats.cohen_dz(np.array([0.02, 0.04, 0.03])) == pytest.approx(0.03 / 0.01)
    assert np.isnan(stats.cohen_dz(np.array([0.02, 0.02])))


def test_corrected_t_three_runs_by_hand() -> None:
    # d = 0.02, 0.04, 0.03: mean 0.03, var 1e-4; ratio 1/3 -> t = 0.03 / sqrt((1/3 + 1/3) 1e-4) = 3.6742
    t, df, p = stats.corrected_resampled_t(np.array([0.02, 0.04, 0.03]), 1 / 3)
    assert t == pytest.approx(0.03 / math.sqrt(2 / 3 * 1e-4))
    assert t == pytest.approx(3.674235, rel=1e-6)
    assert df == 2
    # Student t with 2 df: P(T > t) = (1 - t / sqrt(t^2 + 2)) / 2, in closed form
    assert p == pytest.approx(1 - t / math.sqrt(t * t + 2))
    assert p == pytest.approx(0.066743, abs=1e-6)


def test_corrected_t_without_correction_is_the_plain_paired_t() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(0.7, 0.02, 6), rng.normal(0.68, 0.02, 6)
    t, _, p = stats.corrected_resampled_t(a - b, 0.0)
    expected = ttest_rel(a, b)
    assert (t, p) == pytest.approx((expected.statistic, expected.pvalue))
    t2, _, p2 = stats.corrected_resampled_t(a - b, 0.25)
    assert abs(t2) < abs(t) and p2 > p  # the correction only ever widens
    assert np.isnan(stats.corrected_resampled_t(np.full(3, 0.01), 0.2)[0])


def _paired_table(
    values: dict[str, list[float]], metric: str = "BA", *, shuffle: bool = False
) -> pd.DataFrame:
    """Runs 0..J-1 as (split seed, version) = (i // 2, i % 2), in the same order for every method."""
    df = _table(values, metric)
    return df.sample(frac=1.0, random_state=0) if shuffle else df


def test_compare_paired_against_direct_computations() -> None:
    ref = [0.70, 0.72, 0.69, 0.75, 0.71, 0.73]
    other = [0.66, 0.70, 0.70, 0.71, 0.66, 0.70]
    df = pd.concat(
        [_paired_table({"HF": ref, "Imaging": other}), _paired_table({"HF": ref, "Imaging": other}, "AUC")]
    )
    out = stats.compare_paired(df.sample(frac=1.0, random_state=1), "HF", test_train_ratio=1 / 3, seed=3)
    assert sorted(out["metric"]) == ["AUC", "BA"] and list(out["method"]) == ["Imaging", "Imaging"]
    row = out.set_index("metric").loc["BA"]
    d = np.array(other) - np.array(ref)
    assert row["pairs"] == 6
    assert row["mean_difference"] == pytest.approx(d.mean())
    assert row["sd_difference"] == pytest.approx(d.std(ddof=1))
    assert row["cohen_dz"] == pytest.approx(d.mean() / d.std(ddof=1))
    w = wilcoxon(d)
    assert (row["wilcoxon_W"], row["wilcoxon_p"]) == pytest.approx((w.statistic, w.pvalue))
    t, _, p = stats.corrected_resampled_t(d, 1 / 3)
    assert (row["corrected_t"], row["corrected_p"], row["corrected_df"]) == pytest.approx((t, p, 5))
    assert row["rank_biserial"] == pytest.approx(stats.rank_biserial(d))
    # bootstrap of the mean difference over runs, written out
    rng = np.random.default_rng(3)
    means = d[rng.integers(0, 6, size=(2000, 6))].mean(axis=1)
    assert (row["difference_low"], row["difference_high"]) == pytest.approx(
        tuple(np.quantile(means, [0.025, 0.975]))
    )
    assert row["note"] == ""


def test_pairs_follow_split_seed_and_version_not_row_order() -> None:
    ref = [0.70, 0.72, 0.69, 0.75]
    df = pd.concat([_paired_table({"HF": ref}), _paired_table({"A": [r + 0.01 for r in ref]}, shuffle=True)])
    row = stats.compare_paired(df, "HF").iloc[0]
    assert row["mean_difference"] == pytest.approx(0.01)
    assert row["rank_biserial"] == pytest.approx(1.0)


def test_paired_notes_say_when_a_test_cannot_reach_significance() -> None:
    ref = [0.70, 0.72, 0.69, 0.75, 0.71]
    df = _paired_table({"HF": ref, "A": [r + 0.05 for r in ref]})
    row = stats.compare_paired(df, "HF").iloc[0]
    assert row["wilcoxon_p"] == pytest.approx(0.0625) and row["wilcoxon_min_p"] == pytest.approx(0.0625)
    assert "Wilcoxon cannot reach p < 0.05 with 5 non-zero difference(s) (smallest p = 0.0625)" in row["note"]
    assert "corrected t-test not run: no n_test/n_train given" in row["note"]
    assert np.isnan(row["corrected_p"])
    few = stats.compare_paired(_paired_table({"HF": ref[:2], "A": ref[:2]}), "HF").iloc[0]
    assert "paired tests not available: 2 pair(s), fewer than 3" in few["note"] and np.isnan(
        few["wilcoxon_p"]
    )


def test_excluded_methods_and_dropped_runs() -> None:
    ref = [0.70, 0.72, 0.69, 0.75]
    df = pd.concat(
        [
            _paired_table({"HF": ref, "no-skill": [1 / 3] * 4}),
            _paired_table({"A": [0.6, 0.61, 0.62]}),  # the fourth run is missing
        ]
    )
    out = stats.compare_paired(df, "HF", exclude=["no-skill"], unpaired="drop")
    assert list(out["method"]) == ["A"]
    assert out.iloc[0]["pairs"] == 3
    assert "runs without a partner left out: 0 of A, 1 of HF" in out.iloc[0]["note"]
    pairs = stats.paired_runs(df, "HF", "A", "BA", unpaired="drop")
    assert list(pairs.index) == [(0, 0, "ensemble"), (0, 1, "ensemble"), (1, 0, "ensemble")]
    assert pairs.attrs["unpaired"] == {"A": 0, "HF": 1}


@fault(
    "significance",
    "a paired test of methods that do not share the same runs",
    "ValueError listing the unmatched runs",
)
def test_mismatched_runs_raise() -> None:
    df = pd.concat([_paired_table({"HF": [0.7, 0.71, 0.72, 0.73]}), _paired_table({"A": [0.6, 0.61, 0.62]})])
    with pytest.raises(ValueError, match=r"only HF has \[\(1, 1, 'ensemble'\)\]"):
        stats.compare_paired(df, "HF")


@fault(
    "significance",
    "a negative or NaN n_test/n_train for the corrected t-test, or fewer than 2 pairs",
    "ValueError naming test_train_ratio",
)
def test_bad_ratio() -> None:
    df = _paired_table({"HF": [0.7, 0.71, 0.72], "A": [0.6, 0.61, 0.65]})
    with pytest.raises(ValueError, match="test_train_ratio"):
        stats.compare_paired(df, "HF", test_train_ratio=-0.5)
    with pytest.raises(ValueError, match="test_train_ratio"):
        stats.corrected_resampled_t(np.array([0.1, 0.2]), float("nan"))
    with pytest.raises(ValueError, match="at least 2 paired runs"):
        stats.corrected_resampled_t(np.array([0.1]), 0.2)


@fault(
    "significance",
    "an unknown reference method or metric for the paired tests",
    "ValueError listing what the table has",
)
def test_paired_unknown_names() -> None:
    df = _paired_table({"HF": [0.7, 0.71, 0.72], "A": [0.6, 0.61, 0.65]})
    with pytest.raises(ValueError, match="reference method 'X'"):
        stats.compare_paired(df, "X")
    with pytest.raises(ValueError, match=r"metric\(s\) \['AUC'\]"):
        stats.compare_paired(df, "HF", metrics=["AUC"])
    with pytest.raises(ValueError, match="unpaired must be"):
        stats.paired_runs(df, "HF", "A", "BA", unpaired="ignore")


@pytest.mark.parametrize("seed", range(5))
def test_difference_in_differences_without_correction_is_welch(seed: int) -> None:
    rng = np.random.default_rng(seed)
    control, treated = rng.normal(0, 0.05, 9), rng.normal(0.03, 0.08, 7)
    out = stats.difference_in_differences(control, treated, 0.0)
    welch = sps.ttest_ind(treated, control, equal_var=False)
    assert out["change"] == pytest.approx(treated.mean() - control.mean())
    assert out["t"] == pytest.approx(welch.statistic)
    assert out["p"] == pytest.approx(welch.pvalue)
    interval = welch.confidence_interval(0.95)
    assert (out["low"], out["high"]) == pytest.approx((interval.low, interval.high))


def test_difference_in_differences_correction_by_hand() -> None:
    control, treated = np.array([0.0, 0.02, 0.04]), np.array([0.05, 0.07, 0.09])
    # both variances 0.0004; corrected: (1/3 + 0.25) * 0.0004 each; equal sizes → df = 4
    v = (1 / 3 + 0.25) * 0.0004
    out = stats.difference_in_differences(control, treated, 0.25)
    assert out["change"] == pytest.approx(0.05)
    assert out["df"] == pytest.approx(4.0)
    assert out["t"] == pytest.approx(0.05 / np.sqrt(2 * v))
    assert out["p"] == pytest.approx(2 * sps.t.sf(0.05 / np.sqrt(2 * v), 4))


def test_difference_in_differences_bad_input() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        stats.difference_in_differences(np.array([0.1]), np.array([0.1, 0.2]), 0.25)
    constant = stats.difference_in_differences(np.array([0.1, 0.1]), np.array([0.2, 0.2]), 0.25)
    assert constant["change"] == pytest.approx(0.1) and np.isnan(constant["p"])
