"""Tests for hyperfusion.data.splits: size and stratum balance (checked by counting), groups kept whole,
determinism, the small-stratum policy, the 80/10/10 split, fold roles and the partitions CSV."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from hyperfusion.data.splits import fold_roles, make_partitions, make_split, read_partitions, write_partitions


def _cohort(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "subject_id": [f"S{i:04d}" for i in range(n)],
            "target": rng.choice([0, 1, 2], n, p=[0.35, 0.48, 0.17]),
            "sex": rng.choice(["F", "M"], n),
            "age": rng.normal(73, 7, n),
        }
    )


def _spread(parts: pd.Series, keys: pd.Series | list) -> int:
    """max − min count over partitions, worst stratum (the slow, obvious check: a crosstab)."""
    table = pd.crosstab(keys, parts)
    return int((table.max(axis=1) - table.min(axis=1)).max())


def test_sizes_and_every_stratum_within_one() -> None:
    df = _cohort()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 400 rows: no stratum is small, so no fallback warning
        parts = make_partitions(df, 5, stratify=("target", "sex", "age"), age_bins=3, seed=0)
    assert parts.index.equals(df.index) and set(parts) == set(range(5))
    sizes = parts.value_counts()
    assert sizes.max() - sizes.min() <= 1
    age_bin = pd.qcut(df["age"], 3, labels=False)
    assert _spread(parts, df["target"].astype(str) + df["sex"] + age_bin.astype(str)) <= 1
    assert _spread(parts, df["target"]) <= 2
    assert _spread(parts, df["sex"]) <= 2


@pytest.mark.parametrize("n_partitions", [2, 3, 5, 10])
def test_sizes_within_one_for_any_count(n_partitions: int) -> None:
    df = _cohort(203, seed=n_partitions)
    parts = make_partitions(df, n_partitions, stratify=("target", "sex"), seed=1)
    assert parts.value_counts().max() - parts.value_counts().min() <= 1
    assert _spread(parts, df["target"].astype(str) + df["sex"]) <= 1


def test_deterministic_per_seed_and_seed_matters() -> None:
    df = _cohort()
    a = make_partitions(df, 5, stratify=("target", "sex"), seed=3)
    b = make_partitions(df, 5, stratify=("target", "sex"), seed=3)
    c = make_partitions(df, 5, stratify=("target", "sex"), seed=4)
    pd.testing.assert_series_equal(a, b)
    assert (a != c).mean() > 0.5
    shuffled = df.sample(frac=1.0, random_state=0)  # same rows, other order: still one subject per partition
    d = make_partitions(shuffled, 5, stratify=("target", "sex"), seed=3)
    assert d.value_counts().max() - d.value_counts().min() <= 1


def test_groups_stay_together() -> None:
    base = _cohort(120)
    visits = base.loc[base.index.repeat(np.random.default_rng(0).integers(1, 4, len(base)))].reset_index(
        drop=True
    )
    parts = make_partitions(visits, 5, stratify=("target", "sex"), group="subject_id", seed=0)
    assert (visits.assign(p=parts).groupby("subject_id")["p"].nunique() == 1).all()
    groups_per_partition = visits.assign(p=parts).groupby("p")["subject_id"].nunique()
    assert groups_per_partition.max() - groups_per_partition.min() <= 2
    rows = parts.value_counts()
    assert rows.max() - rows.min() <= 3  # groups of up to 3 rows: balanced up to one group


def test_small_strata_fall_back_to_coarser_with_warning() -> None:
    df = _cohort(200)
    df.loc[:2, "sex"] = "X"  # 3 rows of a rare sex: fewer than 5 partitions
    with pytest.warns(UserWarning, match="coarser strata"):
        parts = make_partitions(df, 5, stratify=("target", "sex"), seed=0)
    assert parts.value_counts().max() - parts.value_counts().min() <= 1
    assert _spread(parts, df["target"]) <= 1


def test_class_with_fewer_members_than_partitions_fails() -> None:
    df = _cohort(100)
    df.loc[:3, "target"] = 7
    df.loc[4:, "target"] = df.loc[4:, "target"].replace(7, 0)
    with pytest.raises(ValueError, match=r"'target' = 7 has only 4 group\(s\), fewer than the 5 partitions"):
        make_partitions(df, 5, stratify=("target", "sex"), seed=0)


def test_missing_stratification_values_form_their_own_stratum() -> None:
    df = _cohort(100)
    df.loc[:9, "age"] = np.nan
    with pytest.warns(UserWarning, match="coarser strata"):
        parts = make_partitions(df, 5, stratify=("target", "age"), age_bins=2, seed=0)
    assert parts[:10].value_counts().max() <= 3


def test_bad_arguments() -> None:
    df = _cohort(20)
    with pytest.raises(ValueError, match="n_partitions"):
        make_partitions(df, 1)
    with pytest.raises(ValueError, match=r"\['nope'\] not in the table"):
        make_partitions(df, 5, stratify=("nope",))
    with pytest.raises(ValueError, match="cannot fill 50 partitions"):
        make_partitions(df, 50)


def test_regression_split_80_10_10_stratified_by_age_and_sex() -> None:
    df = _cohort(500)
    roles = make_split(df, (0.8, 0.1, 0.1), stratify=("age", "sex"), seed=0)
    counts = roles.value_counts()
    assert counts["train"] == 400 and counts["val"] == 50 and counts["test"] == 50
    age_bin = pd.qcut(df["age"], 5, labels=False)
    for role in ("val", "test"):
        share = pd.crosstab(age_bin, roles)[role] / 50
        assert (share - 0.2).abs().max() <= 0.04
        assert abs((df["sex"][roles == role] == "F").mean() - (df["sex"] == "F").mean()) <= 0.04
    with pytest.raises(ValueError, match="fractions"):
        make_split(df, (0.5, 0.5, 0.5))


def test_fold_roles_follow_figure_c7() -> None:
    parts = make_partitions(_cohort(100), 5, stratify=("target",), seed=0)
    roles = fold_roles(parts, test=4, val=1)
    assert (roles[parts == 4] == "test").all() and (roles[parts == 1] == "val").all()
    assert (roles[~parts.isin([1, 4])] == "train").all()
    with pytest.raises(ValueError, match="must differ"):
        fold_roles(parts, test=2, val=2)
    with pytest.raises(ValueError, match="not among the partitions"):
        fold_roles(parts, test=5, val=0)


def test_partitions_csv_round_trip(tmp_path) -> None:
    df = _cohort(50)
    parts = make_partitions(df, 5, stratify=("target",), seed=0)
    path = write_partitions(tmp_path / "out" / "partitions.csv", df["subject_id"], parts)
    back = read_partitions(path)
    assert back["subject_id"].tolist() == df["subject_id"].tolist()
    assert back["partition"].tolist() == parts.tolist()
    assert not list((tmp_path / "out").glob(".*tmp"))  # nothing half-written left behind
