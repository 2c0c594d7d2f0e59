"""Significance of every method against a reference method over runs (paper Table 3: Mann–Whitney U).

A *run* is one (split seed, version) pair — with ``fold=None``, one (split seed, version, fold) triple. For each
metric and each method, the method's run values are compared with the reference method's by a **two-sided**
Mann–Whitney U test (``scipy.stats.mannwhitneyu``, exact for small samples without ties). The p-value is used as
SciPy returns it: the reference code's one-sided t-test that halved p without checking the sign of the
difference is not repeated; the direction is read from the two means.

With fewer than ``min_runs`` (default 3) runs for either method the test is reported as not available — a
``note`` says why and ``p_value`` is NaN — rather than printing a p-value from too few runs. Even with 3 runs
against 3 the smallest possible two-sided p is 0.1; 4 against 4 reach 0.029.

Runs share their split seeds across methods, so a paired test would have more power; Mann–Whitney is what the
paper used and is kept for comparability. :func:`compare_to_reference` also gives ``min_p``, the smallest
two-sided p any outcome could reach with these run counts (3 against 3: 0.1), so a table can say when the
test cannot reach significance at all.

**Paired tests** (:func:`compare_paired`). Methods share partitions, so run *i* of a method and run *i* of the
reference were trained and tested on the same subjects: they pair by (split seed, version), or by (split seed,
version, fold) for fold-level rows. On the paired differences ``d = method − reference`` (J pairs):

- **Wilcoxon signed-rank**, two-sided (``scipy.stats.wilcoxon``: exact for small J without ties, zero
  differences dropped). With J non-zero differences the smallest two-sided p is ``2 / 2^J``. 5 pairs
  cannot reach p < 0.05 (0.0625), 6 can (0.031).
- **Corrected resampled t-test** (Nadeau & Bengio, 2003): ``t = mean(d) / sqrt((1/J + n_test/n_train) ·
  var(d))`` with ``var`` the sample variance (ddof = 1) and J − 1 degrees of freedom. The plain paired t-test
  (the ``1/J`` term alone) assumes independent runs. Here the runs' training sets overlap, which makes their
  differences correlated and the plain test too confident. The ``n_test/n_train`` term corrects for that.
  ``n_test/n_train`` is the ratio of test to training subjects of one run (an argument, from the protocol).
  Runs that share a test set (the versions of one split seed) are even more alike than the correction
  assumes, so treat its p-value as optimistic, not as exact.
- **Effect sizes**: the mean difference with a percentile bootstrap interval over the runs (seeded), Cohen's
  ``d_z = mean(d) / sd(d)``, and the matched-pairs rank-biserial correlation
  ``r = (T₊ − T₋) / (T₊ + T₋)``, with T± the rank sums of the positive and negative differences (ranks of
  |d| over the non-zero differences, as the Wilcoxon test uses). r lies in [−1, 1]; +1 means every pair
  favours the method's larger value.

**Difference in differences** (:func:`difference_in_differences`). Whether a method's gap to the reference
changes between two settings (a study's control cell and a cell with an interaction): ``change = mean(d₁) −
mean(d₀)`` over the paired differences of the two cells. The cells are separate cohorts, so the two means are
independent: each one's variance is corrected as above, ``v = (1/J + n_test/n_train) · var(d)``, and the change is
tested by Welch's t with Satterthwaite's degrees of freedom, ``t = change / sqrt(v₀ + v₁)``. Without the
correction (ratio 0) this is exactly Welch's two-sample t-test of the two cells' differences.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps
from scipy.stats import mannwhitneyu

__all__ = [
    "ENSEMBLE_FOLD",
    "MIN_RUNS",
    "PAIRED_COLUMNS",
    "RESULT_COLUMNS",
    "check_results",
    "cohen_dz",
    "compare_paired",
    "compare_to_reference",
    "corrected_resampled_t",
    "difference_in_differences",
    "mannwhitney_min_p",
    "paired_runs",
    "rank_biserial",
    "run_values",
    "wilcoxon_min_p",
    "wilcoxon_signed_rank",
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
        shown = {k: (row[k].item() if isinstance(row[k], np.generic) else row[k]) for k in key}
        raise ValueError(f"results table has duplicate rows for {shown}")
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
    min_p, note``; std is the sample standard deviation (ddof = 1); ``min_p`` is the smallest p the test can
    give with these run counts (:func:`mannwhitney_min_p`). NaN values (e.g. the TP rate of a class absent
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
                "min_p": np.nan,
                "note": "",
            }
            if vals.size and ref.size:
                row["min_p"] = mannwhitney_min_p(vals.size, ref.size)
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
    "min_p",
    "note",
)


def _mean(v: np.ndarray) -> float:
    return float(v.mean()) if v.size else float("nan")


def _std(v: np.ndarray) -> float:
    return float(v.std(ddof=1)) if v.size > 1 else float("nan")


# ----------------------------------------------------------------------------------------------------------
# paired tests

SIGNIFICANCE = 0.05
DEFAULT_RESAMPLES = 2000

PAIRED_COLUMNS = (
    "metric",
    "method",
    "pairs",
    "mean",
    "reference_mean",
    "mean_difference",
    "difference_low",
    "difference_high",
    "sd_difference",
    "cohen_dz",
    "wilcoxon_W",
    "wilcoxon_p",
    "wilcoxon_min_p",
    "rank_biserial",
    "corrected_t",
    "corrected_df",
    "corrected_p",
    "note",
)


def mannwhitney_min_p(n: int, m: int) -> float:
    """The smallest two-sided p SciPy's Mann–Whitney U gives for n against m untied runs.

    That is the p of complete separation: exact ``2 / C(n + m, n)`` for small samples (3 vs 3: 0.1; 4 vs 4:
    0.029), the normal approximation where SciPy uses it. Tied values make SciPy use the normal
    approximation even for small samples; its p can then fall below this floor (3 vs 3, each group all
    tied: 0.047), an artefact of the approximation rather than evidence.
    """
    if n < 1 or m < 1:
        raise ValueError(f"run counts must be >= 1, got {n} and {m}")
    return float(mannwhitneyu(np.arange(n), np.arange(n, n + m), alternative="two-sided").pvalue)


def wilcoxon_min_p(n: int) -> float:
    """The smallest two-sided p SciPy's Wilcoxon signed-rank test gives for n non-zero untied differences.

    Exact: ``2 / 2^n`` (5 pairs: 0.0625, 6 pairs: 0.031); capped at 1.
    """
    if n < 1:
        raise ValueError(f"the number of differences must be >= 1, got {n}")
    return float(sps.wilcoxon(np.arange(1.0, n + 1), alternative="two-sided").pvalue)


def wilcoxon_signed_rank(differences: np.ndarray) -> tuple[float, float]:
    """Two-sided Wilcoxon signed-rank test of paired differences: ``(W, p)`` as SciPy returns them.

    Zero differences are dropped (SciPy's ``zero_method="wilcox"``); if every difference is zero there is no
    evidence of a difference and the result is ``(0.0, 1.0)``.
    """
    d = _check_differences(differences)
    if not np.any(d != 0):
        return 0.0, 1.0
    test = sps.wilcoxon(d, alternative="two-sided")
    return float(test.statistic), float(test.pvalue)


def rank_biserial(differences: np.ndarray) -> float:
    """Matched-pairs rank-biserial correlation ``(T₊ − T₋) / (T₊ + T₋)``; NaN if every difference is zero."""
    d = _check_differences(differences)
    nonzero = d[d != 0]
    if nonzero.size == 0:
        return float("nan")
    ranks = sps.rankdata(np.abs(nonzero))
    plus, minus = ranks[nonzero > 0].sum(), ranks[nonzero < 0].sum()
    return float((plus - minus) / (plus + minus))


def cohen_dz(differences: np.ndarray) -> float:
    """Cohen's d_z: mean paired difference over its sample standard deviation; NaN if that is 0 or n < 2."""
    d = _check_differences(differences)
    if d.size < 2:
        return float("nan")
    sd = d.std(ddof=1)
    return float(d.mean() / sd) if sd > 0 else float("nan")


def corrected_resampled_t(differences: np.ndarray, test_train_ratio: float) -> tuple[float, int, float]:
    """Nadeau–Bengio corrected resampled t-test: ``(t, df, two-sided p)`` with df = J − 1.

    ``t = mean(d) / sqrt((1/J + test_train_ratio) · var(d))``, var with ddof = 1. When every difference is
    equal the variance is 0 and t is undefined: ``(nan, J − 1, nan)``.

    Raises:
        ValueError: fewer than 2 differences, or a ratio that is negative or not finite.
    """
    d = _check_differences(differences)
    if d.size < 2:
        raise ValueError(f"the corrected t-test needs at least 2 paired runs, got {d.size}")
    ratio = _check_ratio(test_train_ratio)
    var = d.var(ddof=1)
    df = d.size - 1
    if not var > 0:
        return float("nan"), df, float("nan")
    t = d.mean() / np.sqrt((1.0 / d.size + ratio) * var)
    return float(t), df, float(2.0 * sps.t.sf(abs(t), df))


def difference_in_differences(
    control: np.ndarray, treated: np.ndarray, test_train_ratio: float, confidence: float = 0.95
) -> dict[str, float]:
    """How much a paired difference changes from a control cell to a treated cell (module docstring).

    Args:
        control, treated: each cell's paired differences ``method − reference``, one per run.
        test_train_ratio: n_test / n_train of one run (0: Welch's t-test without the correction).
        confidence: level of the interval of the change.

    Returns:
        ``change`` (mean(treated) − mean(control)), its interval ``low``/``high``, ``t``, ``df``
        (Welch–Satterthwaite) and the two-sided ``p``; t, df, p and the interval are NaN when both cells'
        differences are constant.

    Raises:
        ValueError: either cell with fewer than 2 differences or a non-finite one, or a bad ratio.
    """
    d0, d1 = _check_differences(control), _check_differences(treated)
    if min(d0.size, d1.size) < 2:
        raise ValueError(f"each cell needs at least 2 paired runs, got {d0.size} and {d1.size}")
    ratio = _check_ratio(test_train_ratio)
    v0 = (1.0 / d0.size + ratio) * d0.var(ddof=1)
    v1 = (1.0 / d1.size + ratio) * d1.var(ddof=1)
    change = float(d1.mean() - d0.mean())
    out = {"change": change, "low": float("nan"), "high": float("nan"), "t": float("nan"),
           "df": float("nan"), "p": float("nan")}  # fmt: skip
    if not v0 + v1 > 0:
        return out
    se = float(np.sqrt(v0 + v1))
    df = (v0 + v1) ** 2 / (v0**2 / (d0.size - 1) + v1**2 / (d1.size - 1))
    t = change / se
    half = float(sps.t.ppf(0.5 + confidence / 2, df)) * se
    out.update(low=change - half, high=change + half, t=t, df=float(df), p=float(2.0 * sps.t.sf(abs(t), df)))
    return out


def _check_differences(differences: np.ndarray) -> np.ndarray:
    d = np.asarray(differences, dtype=np.float64)
    if d.ndim != 1 or d.size == 0:
        raise ValueError(f"differences must be a non-empty 1-D array, got shape {d.shape}")
    bad = np.flatnonzero(~np.isfinite(d))
    if bad.size:
        raise ValueError(f"difference {bad[0]} is not finite: {d[bad[0]]}")
    return d


def _check_ratio(test_train_ratio: float) -> float:
    ratio = float(test_train_ratio)
    if not (np.isfinite(ratio) and ratio >= 0):
        raise ValueError(
            f"test_train_ratio (n_test / n_train) must be a finite number >= 0, got {test_train_ratio}"
        )
    return ratio


def _run_keys(df: pd.DataFrame, method: str, metric: str) -> pd.Series:
    sub = df[(df["method"] == method) & (df["metric"] == metric)]
    return sub.set_index(["split_seed", "version", "fold"])["value"]


def paired_runs(
    results: pd.DataFrame,
    reference: str,
    method: str,
    metric: str,
    *,
    fold: str | None = ENSEMBLE_FOLD,
    unpaired: str = "raise",
) -> pd.DataFrame:
    """The runs of ``method`` and ``reference`` for ``metric`` side by side, one row per shared run.

    Runs pair by (split seed, version, fold); with ``fold`` given that is (split seed, version). Returns
    columns ``method, reference`` indexed by ``split_seed, version, fold``; pairs with a NaN on either side
    are left out, and ``attrs["unpaired"]`` holds the number of runs each side had without a partner.

    Raises:
        ValueError: a method or metric not in the table, ``unpaired`` not ``"raise"``/``"drop"``, or (with
            ``unpaired="raise"``) runs that only one of the two methods has; the message lists them.
    """
    if unpaired not in ("raise", "drop"):
        raise ValueError(f"unpaired must be 'raise' or 'drop', got {unpaired!r}")
    df = check_results(results)
    if fold is not None:
        df = df[df["fold"] == str(fold)]
        if df.empty:
            raise ValueError(f"results table has no rows with fold == {fold!r}")
    for name in (reference, method):
        if not (df["method"] == name).any():
            raise ValueError(
                f"method {name!r} is not in the results; methods: {list(pd.unique(df['method']))}"
            )
    if not (df["metric"] == metric).any():
        raise ValueError(f"metric {metric!r} is not in the results; metrics: {list(pd.unique(df['metric']))}")
    a, b = _run_keys(df, method, metric), _run_keys(df, reference, metric)
    only_a = [k for k in a.index if k not in b.index]
    only_b = [k for k in b.index if k not in a.index]
    if (only_a or only_b) and unpaired == "raise":
        raise ValueError(
            f"{metric}: {method} and {reference} do not have the same runs (split_seed, version, fold): "
            f"only {method} has {only_a}, only {reference} has {only_b}; a paired test needs both methods "
            "on the same partitions (or pass unpaired='drop' to test the shared runs only)"
        )
    shared = [k for k in a.index if k in b.index]
    index = pd.MultiIndex.from_tuples(shared, names=["split_seed", "version", "fold"])
    out = pd.DataFrame(
        {"method": a.reindex(index).to_numpy(), "reference": b.reindex(index).to_numpy()}, index=index
    )
    out = out.dropna()
    out.attrs["unpaired"] = {method: len(only_a), reference: len(only_b)}
    return out


def _bootstrap_mean(d: np.ndarray, n_resamples: int, confidence: float, seed: int) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, size=(n_resamples, d.size))].mean(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


def compare_paired(
    results: pd.DataFrame,
    reference: str,
    *,
    metrics: Sequence[str] | None = None,
    fold: str | None = ENSEMBLE_FOLD,
    test_train_ratio: float | None = None,
    exclude: Sequence[str] = (),
    unpaired: str = "raise",
    min_runs: int = MIN_RUNS,
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = 0.95,
    seed: int = 0,
    alpha: float = SIGNIFICANCE,
) -> pd.DataFrame:
    """Paired tests of every method against ``reference``, per metric, over runs that share partitions.

    Args:
        results: the long-form results table.
        reference: the method every other one is compared with.
        metrics: the metrics to test (default: every metric in the table, in table order).
        fold: which rows are runs (``None``: every fold row, paired by split seed, version and fold).
        test_train_ratio: n_test / n_train of one run, for the corrected t-test (e.g. 1/3 with one test
            and three training partitions); ``None`` leaves that test out, with a note.
        exclude: methods not to test (e.g. the no-skill baseline, which has its own comparison).
        unpaired: ``"raise"`` when a method and the reference do not have the same runs, or ``"drop"``
            to test the shared runs only (the note says how many were left out).
        min_runs: fewer pairs than this give no p-values (a note says so).
        n_resamples, confidence, seed: the bootstrap interval of the mean difference over runs.
        alpha: the level the "cannot reach p < alpha" notes refer to.

    Returns:
        One row per (metric, method) with the columns of :data:`PAIRED_COLUMNS`. Differences are
        method − reference (for an error metric such as MAE, negative = the method is better). ``wilcoxon_*``
        come from the Wilcoxon signed-rank test, ``corrected_*`` from the Nadeau–Bengio corrected resampled
        t-test, ``note`` says why a value is missing and when a test cannot reach p < ``alpha``.

    Raises:
        ValueError: an unknown reference or metric, mismatched runs with ``unpaired="raise"``, a bad
            ``test_train_ratio``, ``min_runs < 2``, ``n_resamples < 1`` or a ``confidence`` outside (0, 1).
    """
    if min_runs < 2:
        raise ValueError(f"min_runs must be >= 2 for paired tests, got {min_runs}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    ratio = None if test_train_ratio is None else _check_ratio(test_train_ratio)
    df = check_results(results)
    wide = run_values(df, fold=fold)
    methods = [m for m in pd.unique(df["method"]) if m in set(wide.index.get_level_values("method"))]
    if reference not in methods:
        raise ValueError(f"reference method {reference!r} is not in the results; methods: {methods}")
    names = (
        list(pd.unique(df.loc[df["metric"].isin(wide.columns), "metric"]))
        if metrics is None
        else list(metrics)
    )
    unknown = [m for m in names if m not in wide.columns]
    if unknown:
        raise ValueError(f"metric(s) {unknown} are not in the results; metrics: {list(wide.columns)}")
    skip = {str(m) for m in exclude} | {reference}
    settings = {
        "fold": fold,
        "ratio": ratio,
        "unpaired": unpaired,
        "min_runs": min_runs,
        "n_resamples": n_resamples,
        "confidence": confidence,
        "seed": seed,
        "alpha": alpha,
    }
    rows = [
        _paired_row(df, reference, method, metric, **settings)
        for metric in names
        for method in methods
        if method not in skip
    ]
    return pd.DataFrame(rows, columns=list(PAIRED_COLUMNS))


def _paired_row(
    df: pd.DataFrame,
    reference: str,
    method: str,
    metric: str,
    *,
    fold: str | None,
    ratio: float | None,
    unpaired: str,
    min_runs: int,
    n_resamples: int,
    confidence: float,
    seed: int,
    alpha: float,
) -> dict[str, object]:
    pairs = paired_runs(df, reference, method, metric, fold=fold, unpaired=unpaired)
    d = (pairs["method"] - pairs["reference"]).to_numpy(dtype=np.float64)
    nan = float("nan")
    row: dict[str, object] = dict.fromkeys(PAIRED_COLUMNS, nan)
    row.update(metric=metric, method=method, pairs=int(d.size), note="")
    notes = []
    left_out = pairs.attrs["unpaired"]
    if left_out[method] or left_out[reference]:
        notes.append(
            f"runs without a partner left out: {left_out[method]} of {method}, {left_out[reference]} of {reference}"
        )
    if d.size:
        row.update(
            mean=float(pairs["method"].mean()),
            reference_mean=float(pairs["reference"].mean()),
            mean_difference=float(d.mean()),
        )
    if d.size < min_runs:
        notes.append(f"paired tests not available: {d.size} pair(s), fewer than {min_runs}")
        row["note"] = "; ".join(notes)
        return row
    row["difference_low"], row["difference_high"] = _bootstrap_mean(d, n_resamples, confidence, seed)
    row.update(sd_difference=float(d.std(ddof=1)), cohen_dz=cohen_dz(d), rank_biserial=rank_biserial(d))
    row["wilcoxon_W"], row["wilcoxon_p"] = wilcoxon_signed_rank(d)
    nonzero = int(np.count_nonzero(d))
    if nonzero == 0:
        notes.append("every paired difference is zero")
    else:
        row["wilcoxon_min_p"] = wilcoxon_min_p(nonzero)
        if row["wilcoxon_min_p"] >= alpha:
            notes.append(
                f"Wilcoxon cannot reach p < {alpha:g} with {nonzero} non-zero difference(s) "
                f"(smallest p = {row['wilcoxon_min_p']:.3g})"
            )
    if ratio is None:
        notes.append("corrected t-test not run: no n_test/n_train given")
    else:
        row["corrected_t"], row["corrected_df"], row["corrected_p"] = corrected_resampled_t(d, ratio)
        if np.isnan(row["corrected_t"]):
            notes.append("corrected t undefined: every paired difference is equal")
    row["note"] = "; ".join(notes)
    return row
