"""Tests for hyperfusion.data.splits: size and stratum balance (checked by counting), groups kept whole,
determinism, the small-stratum policy, the 80/10/10 split, fold roles and the partitions CSV."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from hyperfusion.data.splits import (
    check_stratifiable,
    default_age_bins,
    fold_roles,
    make_partitions,
    make_split,
    read_partitions,
    split_partitions,
    time_strata,
    write_partitions,
)
from tests.faults import fault


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


def _messages(caplog, level: int = logging.WARNING) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "hyperfusion" and r.levelno >= level]


def test_sizes_and_every_stratum_within_one(caplog) -> None:
    df = _cohort()
    with caplog.at_level(logging.INFO, logger="hyperfusion"):
        parts = make_partitions(df, 5, stratify=("target", "sex", "age"), age_bins=3, seed=0)
    assert not _messages(caplog, logging.INFO)  # 400 rows: no stratum is small, so no fallback
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


@fault(
    "partitions",
    "a stratum (class × sex × age bin) smaller than the number of partitions",
    "its subjects are stratified on coarser groups, with one log line saying how many, what stays balanced "
    "and what to change",
)
def test_small_strata_fall_back_to_coarser_with_warning(caplog) -> None:
    df = _cohort(200)
    df.loc[:2, "sex"] = "X"  # 3 rows of a rare sex: fewer than 5 partitions
    with caplog.at_level(logging.WARNING, logger="hyperfusion"):
        parts = make_partitions(df, 5, stratify=("target", "sex"), seed=0)
    (message,) = _messages(caplog)
    assert message.startswith(
        "3 of 200 subjects were stratified on coarser groups because their target × sex "
    )
    assert "partition sizes stay equal and the counts of each target and sex stay close" in message
    assert "those subjects' sex values are not spread evenly; merge rare values" in message
    assert "\n" not in message
    assert parts.value_counts().max() - parts.value_counts().min() <= 1
    assert _spread(parts, df["target"]) <= 1


@fault(
    "partitions",
    "a class value with fewer subjects than partitions, given to make_partitions",
    "ValueError naming the column, value and count",
)
def test_class_with_fewer_members_than_partitions_fails() -> None:
    df = _cohort(100)
    df.loc[:3, "target"] = 7
    df.loc[4:, "target"] = df.loc[4:, "target"].replace(7, 0)
    with pytest.raises(ValueError, match=r"'target' = 7 has only 4 group\(s\), fewer than the 5 partitions"):
        make_partitions(df, 5, stratify=("target", "sex"), seed=0)


def test_missing_stratification_values_form_their_own_stratum(caplog) -> None:
    df = _cohort(100)
    df.loc[:9, "age"] = np.nan
    with caplog.at_level(logging.DEBUG, logger="hyperfusion"):
        parts = make_partitions(df, 5, stratify=("target", "age"), age_bins=2, seed=0)
    assert any("stratified on coarser groups" in m for m in _messages(caplog, logging.DEBUG))
    assert parts[:10].value_counts().max() <= 3


@fault(
    "partitions",
    "a partition count below 2, an absent column, more partitions than subjects, an unknown age_bins",
    "ValueError naming the argument",
)
def test_bad_arguments() -> None:
    df = _cohort(20)
    with pytest.raises(ValueError, match="n_partitions"):
        make_partitions(df, 1)
    with pytest.raises(ValueError, match=r"\['nope'\] not in the table"):
        make_partitions(df, 5, stratify=("nope",))
    with pytest.raises(ValueError, match="cannot fill 50 partitions"):
        make_partitions(df, 50)
    with pytest.raises(ValueError, match="age_bins must be an integer, a list of bin edges or 'auto'"):
        make_partitions(df, 5, stratify=("age",), age_bins="many")


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


# ---------------------------------------------------------------- age bins for the cohort's size
@pytest.mark.parametrize(
    ("n", "partitions", "other", "expected"),
    [(400, 5, 6, 6), (2120, 5, 6, 20), (50, 5, 6, 1), (200, 5, 6, 3), (2000, 10, 2, 20), (400, 10, 2, 10)],
)
def test_default_age_bins_by_hand(n: int, partitions: int, other: int, expected: int) -> None:
    assert (
        default_age_bins(n, partitions, other_strata=other) == expected
    )  # ⌊n / (2·other·partitions)⌋ in [1, 20]


def test_default_age_bins_keeps_the_typical_stratum_full() -> None:
    """With the chosen bins the average class × sex × age stratum holds ≥ 2 × partitions subjects."""
    for n in range(60, 3000, 37):
        bins = default_age_bins(n, 5)
        assert 1 <= bins <= 20
        assert bins == 1 or n / (6 * bins) >= 2 * 5
        assert bins == 20 or n / (6 * (bins + 1)) < 2 * 5  # the largest such number (below the cap)
    with pytest.raises(ValueError, match="n_subjects"):
        default_age_bins(0, 5)


def test_auto_age_bins_at_400_subjects_coarsen_few_and_only_inform(caplog) -> None:
    """The paper's 20 bins at 400 subjects coarsen most subjects and warn; 'auto' coarsens few and stays quiet."""
    df = _cohort(400)
    with caplog.at_level(logging.INFO, logger="hyperfusion"):
        make_partitions(df, 5, stratify=("target", "sex", "age"), age_bins=20, seed=0)
    (warning,) = _messages(caplog)
    n_coarse = int(warning.split(" of ")[0])
    assert n_coarse > 100 and "about 6 suit 400 subjects" in warning and "age_bins: auto" in warning
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="hyperfusion"):
        parts = make_partitions(df, 5, stratify=("target", "sex", "age"), age_bins="auto", seed=0)
    assert not _messages(caplog, logging.WARNING)
    infos = _messages(caplog, logging.INFO)
    assert all(int(m.split(" of ")[0]) < 0.1 * 400 for m in infos)
    age_bin = pd.qcut(df["age"], 6, labels=False)
    assert _spread(parts, df["target"]) <= 2 and _spread(parts, df["sex"]) <= 2
    assert _spread(parts, df["target"].astype(str) + df["sex"] + age_bin.astype(str)) <= 2


def test_a_class_index_is_never_cut_into_age_bins() -> None:
    """With 2 age bins, the 3-valued class column still stratifies by class (not by 2 quantile bins of it)."""
    df = _cohort(150)
    parts = make_partitions(df, 5, stratify=("target", "age"), age_bins=2, seed=0)
    assert _spread(parts, df["target"]) <= 1


# ---------------------------------------------------------------- stratifiable before partitioning
def _labelled(counts: dict[str, int]) -> pd.DataFrame:
    labels = [name for name, count in counts.items() for _ in range(count)]
    return pd.DataFrame(
        {
            "subject_id": [f"S{i}" for i in range(len(labels))],
            "label": labels,
            "line": np.arange(len(labels)) + 2,
        }
    )


@fault(
    "partitions",
    "a class declared in target.classes that no subject has",
    "ValueError naming the class by its label",
)
def test_declared_class_absent_is_named_by_label() -> None:
    frame = _labelled({"CN": 10, "MCI": 12})
    with pytest.raises(
        ValueError, match=r"t\.csv: class\(es\) \['AD'\] are declared in target\.classes but no subject"
    ):
        check_stratifiable(frame, 5, classes=("CN", "MCI", "AD"), source="t.csv")


@fault(
    "partitions",
    "a class with fewer subjects than partitions",
    "ValueError naming the class by its label, its subjects' lines, and what to do",
)
def test_class_too_small_is_named_by_label_with_lines() -> None:
    frame = _labelled({"CN": 10, "AD": 3, "MCI": 12})
    with pytest.raises(
        ValueError, match=r"class 'AD' has only 3 subject\(s\) \(lines 12, 13, 14\), fewer than the 5"
    ):
        check_stratifiable(frame, 5, classes=("CN", "MCI", "AD"), source="t.csv")
    check_stratifiable(frame, 3, classes=("CN", "MCI", "AD"))  # enough for 3 partitions


def test_stratifiable_counts_subjects_not_scans() -> None:
    frame = _labelled({"CN": 8, "AD": 5})
    visits = pd.concat(
        [frame, frame[frame["label"] == "AD"].iloc[:2]], ignore_index=True
    )  # repeat 2 AD scans
    check_stratifiable(visits, 5, classes=("CN", "AD"))
    with pytest.raises(ValueError, match="class 'AD' has only 4"):
        check_stratifiable(visits.drop(index=[12]), 5, classes=("CN", "AD"))
    unlabelled = pd.concat([frame, pd.DataFrame({"subject_id": ["new"], "label": [np.nan], "line": [99]})])
    check_stratifiable(unlabelled, 5, classes=("CN", "AD"))  # rows without a label are not a class


@fault("partitions", "fewer subjects than partitions", "ValueError naming both counts")
def test_too_few_subjects_for_the_partitions() -> None:
    with pytest.raises(ValueError, match=r"3 subject\(s\) cannot fill 5 partitions"):
        check_stratifiable(_labelled({"CN": 3}), 5)


def _visits(n_rows: int, seed: int) -> pd.DataFrame:
    """A cohort of ``n_rows`` scans: most subjects with one row, some with two or three (later visits)."""
    rng = np.random.default_rng(seed)
    sizes: list[int] = []
    while sum(sizes) < n_rows:
        sizes.append(int(rng.choice([1, 2, 3], p=[0.75, 0.2, 0.05])))
    sizes[-1] -= sum(sizes) - n_rows
    sizes = [s for s in sizes if s > 0]
    n = len(sizes)
    label = rng.choice(["CN", "MCI", "AD"], n, p=[0.35, 0.48, 0.17])
    sex, age = rng.choice(["F", "M"], n), rng.normal(73, 7, n)
    rows = [(f"S{i:03d}", label[i], sex[i], age[i] + 0.5 * k) for i, s in enumerate(sizes) for k in range(s)]
    return pd.DataFrame(rows, columns=["subject_id", "label", "sex", "age"])


@fault(
    "partitions",
    "401 rows with label × sex × age strata and subjects of several rows (age bins chosen from the cohort's size)",
    "every label's and sex's subject and row count per partition within 3 (it reached 9)",
)
def test_grouped_label_sex_age_strata_stay_within_three() -> None:
    for seed in (126, 477):  # one row per subject: label and sex had reached a spread of 4
        df = _cohort(401, seed)
        parts = make_partitions(df, 5, stratify=("target", "sex", "age"), age_bins="auto", group="subject_id")
        assert _spread(parts, df["target"]) <= 1 and _spread(parts, df["sex"]) <= 3, seed
    for seed in range(6):
        df = _visits(401, seed)
        for split_seed in (0, 1):
            parts = make_partitions(
                df, 5, stratify=("label", "sex", "age"), age_bins="auto", group="subject_id", seed=split_seed
            )
            subjects = df.assign(p=parts).drop_duplicates("subject_id")
            for column in ("label", "sex"):
                assert _spread(parts, df[column]) <= 3, (seed, split_seed, column, "rows")
                assert _spread(subjects["p"], subjects[column]) <= 3, (seed, split_seed, column, "subjects")
            assert parts.value_counts().max() - parts.value_counts().min() <= 3


def test_time_strata_are_tertiles_within_each_event_status() -> None:
    time = pd.Series([5.0, 1.0, 3.0, 2.0, 6.0, 4.0, 9.0, 7.0, 8.0, 30.0, 10.0, 20.0])
    event = pd.Series([1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    # events: times 1..6 -> ranks 0..5 -> bins 0,0,1,1,2,2; censored: 7,8,9,10,20,30 likewise
    np.testing.assert_array_equal(time_strata(time, event, 2), [2, 0, 1, 0, 2, 1, 1, 0, 0, 2, 1, 2])
    # with 4 partitions a status of 6 rows has room for one bin only (6 // 4): its time is not stratified
    np.testing.assert_array_equal(time_strata(time, event, 4), np.zeros(12))
    rng = np.random.default_rng(0)
    t, e = pd.Series(rng.exponential(20, 100)), pd.Series((rng.random(100) < 0.3).astype(float))
    bins = time_strata(t, e, 5)
    for status in (0.0, 1.0):
        rows = (e == status).to_numpy()
        by_bin = [t[rows & (bins == b)] for b in range(3)]
        assert all(by_bin[b].max() <= by_bin[b + 1].min() for b in range(2))  # ordered by time
        assert np.ptp([len(x) for x in by_bin]) <= 1 and min(len(x) for x in by_bin) >= 5
    gaps = time_strata(pd.Series([1.0, np.nan, 2.0]), pd.Series([1.0, 1.0, np.nan]), 2)
    assert gaps.tolist() == [0, -1, -1]


def test_split_partitions_is_the_fractions_common_denominator() -> None:
    assert split_partitions((0.8, 0.1, 0.1)) == 10 and split_partitions((0.6, 0.2, 0.2)) == 5
    with pytest.raises(ValueError, match="summing to 1"):
        split_partitions((0.5, 0.1, 0.1))
