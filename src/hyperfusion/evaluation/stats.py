"""Significance of every method against a reference method over runs (paper Table 3: Mann–Whitney U).

A *run* is one (split seed, version) pair — with ``fold=None``, one (split seed, version, fold) triple. For each
metric and each method, the method's run values are compared with the reference method's by a **two-sided**
Mann–Whitney U test (``scipy.stats.mannwhitneyu``, exact for small samples without ties). The p-value is used as
SciPy returns it: the reference code's one-sided t-test that halved p without checking the sign of the
difference (reference.md §5.4, bug B13) is not repeated; the direction is read from the two means.

With fewer than ``min_runs`` (default 3) runs for either method the test is reported as not available — a
``note`` says why and ``p_value`` is NaN — rather than printing a p-value from too few runs. Even with 3 runs
against 3 the smallest possible two-sided p is 0.1; 4 against 4 reach 0.029.

Runs share their split seeds across methods, so a paired test would have more power; Mann–Whitney is what the
paper used and is kept for comparability.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import mannwhitneyu

__all__ = [
    "ENSEMBLE_FOLD",
    "MIN_RUNS",
    "RESULT_COLUMNS",
    "check_results",
    "compare_to_reference",
    "run_values",
]

RESULT_COLUMNS = ("method", "split_seed", "version", "fold", "metric", "value")
ENSEMBLE_FOLD = "ensemble"
MIN_RUNS = 3


def check_results(results: pd.DataFrame) -> pd.DataFrame:
    """Validate a long-form results table and return a copy with ``fold`` as text and ``value`` as float.

    Raises:
        ValueError: a missing column, a non-numeric value (the row is named), or a duplicated
            (method, split_seed, version, fold, metric) row.
    """
    missing = [c for c in RESULT_COLUMNS if c not in results.columns]
    if missing:
        raise ValueError(f"results table lacks column(s) {missing}; expected {list(RESULT_COLUMNS)}")
    df = results.loc[:, list(RESULT_COLUMNS)].copy()
    values = pd.to_numeric(df["value"], errors="coerce")
    bad = df.index[values.isna() & df["value"].notna()]
    if len(bad):
        raise ValueError(f"results row {bad[0]}: value {df.loc[bad[0], 'value']!r} is not a number")
    df["value"] = values.astype(float)
    df["fold"] = df["fold"].astype(str)
    df["method"] = df["method"].astype(str)
    df["metric"] = df["metric"].astype(str)
    key = ["method", "split_seed", "version", "fold", "metric"]
    dup = df.duplicated(key, keep=False)
    if dup.any():
        row = df[dup].iloc[0]
        raise ValueError(f"results table has duplicate rows for {dict(row[key])}")
    return df


def run_values(results: pd.DataFrame, *, fold: str | None = ENSEMBLE_FOLD) -> pd.DataFrame:
    """One row per (method, run), one column per metric; ``fold`` picks the rows (None: every fold is a run)."""
    df = check_results(results)
    if fold is not None:
        df = df[df["fold"] == str(fold)]
        if df.empty:
            raise ValueError(f"results table has no rows with fold == {fold!r}")
    return df.set_index(["method", "split_seed", "version", "fold", "metric"])["value"].unstack("metric")


def compare_to_reference(
    results: pd.DataFrame,
    reference: str,
    *,
    metrics: Sequence[str] | None = None,
    fold: str | None = ENSEMBLE_FOLD,
    min_runs: int = MIN_RUNS,
) -> pd.DataFrame:
    """Two-sided Mann–Whitney U of each method against ``reference``, per metric, as a tidy table.

    Returns columns ``metric, method, n, mean, std, reference_n, reference_mean, reference_std, U, p_value,
    note``; std is the sample standard deviation (ddof = 1). NaN values (e.g. the TP rate of a class absent
    from a test set) are dropped before counting runs.

    Raises:
        ValueError: ``reference`` or a requested metric is not in the table, or ``min_runs < 1``.
    """
    if min_runs < 1:
        raise ValueError(f"min_runs must be >= 1, got {min_runs}")
    wide = run_values(results, fold=fold)
    present = set(wide.index.get_level_values("method"))
    methods = [m for m in pd.unique(results["method"].astype(str)) if m in present]  # table order
    if reference not in methods:
        raise ValueError(f"reference method {reference!r} is not in the results; methods: {methods}")
    names = list(wide.columns) if metrics is None else list(metrics)
    unknown = [m for m in names if m not in wide.columns]
    if unknown:
        raise ValueError(f"metric(s) {unknown} are not in the results; metrics: {list(wide.columns)}")

    def column(method: str, metric: str) -> np.ndarray:
        v = wide.xs(method, level="method")[metric].to_numpy(dtype=float)
        return v[~np.isnan(v)]

    rows = []
    for metric in names:
        ref = column(reference, metric)
        for method in methods:
            if method == reference:
                continue
            vals = column(method, metric)
            row = {
                "metric": metric,
                "method": method,
                "n": vals.size,
                "mean": _mean(vals),
                "std": _std(vals),
                "reference_n": ref.size,
                "reference_mean": _mean(ref),
                "reference_std": _std(ref),
                "U": np.nan,
                "p_value": np.nan,
                "note": "",
            }
            if vals.size < min_runs or ref.size < min_runs:
                row["note"] = (
                    f"test not available: fewer than {min_runs} runs ({method}: {vals.size}, "
                    f"{reference}: {ref.size})"
                )
            else:
                test = mannwhitneyu(vals, ref, alternative="two-sided")
                row["U"], row["p_value"] = float(test.statistic), float(test.pvalue)
            rows.append(row)
    return pd.DataFrame(rows, columns=[*_COLUMNS])


_COLUMNS = (
    "metric",
    "method",
    "n",
    "mean",
    "std",
    "reference_n",
    "reference_mean",
    "reference_std",
    "U",
    "p_value",
    "note",
)


def _mean(v: np.ndarray) -> float:
    return float(v.mean()) if v.size else float("nan")


def _std(v: np.ndarray) -> float:
    return float(v.std(ddof=1)) if v.size > 1 else float("nan")
