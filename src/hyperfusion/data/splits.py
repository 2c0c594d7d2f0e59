"""Stratified, grouped, seeded partitions (paper §4.3.4, Fig. C.7) and the 80/10/10 regression split (§4.2.3).

Rows are grouped (all rows of one subject together) and each group gets a stratum: the tuple of its
stratification values, continuous columns cut into quantile bins. Groups are taken stratum by stratum,
shuffled within a stratum (largest first when groups differ in size), and each goes to the partition with

    the fewest rows of its stratum, then the fewest rows overall, then a seeded random priority.

With one row per group this is a round-robin: every stratum's counts and the partition sizes differ by at
most one; ties between equally full partitions go to the one holding fewer of the coarser strata (the label
alone, ...), then fewer of each other column's value (e.g. the same sex).

Strata smaller than ``n_partitions`` are merged into coarser ones (their last stratification column
dropped, down to one pool of leftovers) with a warning; a value of the *first* column (the label) with
fewer groups than partitions cannot be spread and raises.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd

from hyperfusion.atomic import write_atomic


def make_partitions(
    df: pd.DataFrame,
    n_partitions: int = 5,
    *,
    stratify: Sequence[str] = (),
    age_bins: int | Sequence[float] = 5,
    group: str | None = None,
    seed: int = 0,
) -> pd.Series:
    """Partition ids ``0 … n_partitions−1`` for the rows of ``df`` (a Series indexed like ``df``).

    Args:
        df: one row per scan.
        n_partitions: number of partitions (≥ 2).
        stratify: columns whose joint distribution every partition should share, primary (the label) first.
            A numeric column with more distinct values than bins (e.g. age) is cut into ``age_bins``
            quantile bins (an int) or at the given edges; missing values form their own stratum.
        group: a column (e.g. subject id) whose rows must share a partition; None = each row alone.
        seed: the split seed; the same inputs and seed always give the same partitions.

    Raises:
        ValueError: fewer groups than partitions, an absent column, or a value of the first stratification
            column with fewer groups than partitions.
    """
    if not isinstance(n_partitions, (int, np.integer)) or n_partitions < 2:
        raise ValueError(f"n_partitions must be an integer >= 2, got {n_partitions!r}")
    absent = [c for c in (*stratify, *([group] if group else [])) if c not in df.columns]
    if absent:
        raise ValueError(f"column(s) {absent} not in the table (its columns: {list(df.columns)})")
    if df.index.has_duplicates:
        raise ValueError("the table's index has duplicate labels; reset it before partitioning")
    groups = df[group].astype(str).to_numpy() if group else np.arange(len(df)).astype(str)
    codes, uniques = pd.factorize(groups)
    n_groups = len(uniques)
    if n_groups < n_partitions:
        raise ValueError(f"{n_groups} group(s) cannot fill {n_partitions} partitions")

    levels = [_levels(df[c], age_bins) for c in stratify]
    first_rows = pd.Series(np.arange(len(df))).groupby(codes).first().to_numpy()
    keys = [tuple(level[r] for level in levels) for r in first_rows]  # a group's stratum = its first row's
    keys = _coarsen(keys, n_partitions, list(stratify))
    sizes = np.bincount(codes, minlength=n_groups)

    rng = np.random.default_rng(seed)
    priority = rng.permutation(n_partitions)
    shuffle = rng.permutation(n_groups)
    strata: dict[tuple, list[int]] = {}
    for g in shuffle:
        strata.setdefault(keys[g], []).append(int(g))
    assignment = np.empty(n_groups, dtype=np.int64)
    totals = np.zeros(n_partitions, dtype=np.int64)
    counts: dict[tuple, np.ndarray] = {}  # rows per partition of every stratum and of its coarser prefixes
    for key in sorted(strata, key=_sort_key):
        members = sorted(strata[key], key=lambda g: -sizes[g])  # stable: shuffled order among equal sizes
        prefixes = [key[:length] for length in range(len(key), 0, -1)] or [()]
        marginals = [("marginal", column, value) for column, value in enumerate(key)][1:]
        tallies = [counts.setdefault(k, np.zeros(n_partitions, dtype=np.int64)) for k in prefixes + marginals]
        in_stratum = tallies[0]
        for g in members:
            best = min(
                range(n_partitions),
                key=lambda p: (in_stratum[p], totals[p], *(t[p] for t in tallies[1:]), priority[p]),
            )
            assignment[g] = best
            for tally in tallies:
                tally[best] += sizes[g]
            totals[best] += sizes[g]
    return pd.Series(assignment[codes], index=df.index, name="partition")


def make_split(
    df: pd.DataFrame,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    *,
    stratify: Sequence[str] = (),
    age_bins: int | Sequence[float] = 5,
    group: str | None = None,
    seed: int = 0,
) -> pd.Series:
    """A ``"train"/"val"/"test"`` split in the given fractions, stratified as `make_partitions`.

    The fractions are made exact multiples of 1/n (n ≤ 100, e.g. 10 for 80/10/10); the data are cut into n
    stratified partitions and whole partitions go to each role.

    Raises:
        ValueError: fractions that are not three non-negative numbers summing to 1 with a positive train part.
    """
    if (
        len(fractions) != 3
        or any(f < 0 for f in fractions)
        or abs(sum(fractions) - 1) > 1e-6
        or fractions[0] <= 0
    ):
        raise ValueError(f"fractions must be (train, val, test) >= 0 summing to 1, got {tuple(fractions)}")
    parts = [Fraction(f).limit_denominator(100) for f in fractions]
    n = int(np.lcm.reduce([p.denominator for p in parts]))
    counts = [int(p * n) for p in parts]
    partitions = make_partitions(df, n, stratify=stratify, age_bins=age_bins, group=group, seed=seed)
    roles = np.array(["train"] * counts[0] + ["val"] * counts[1] + ["test"] * counts[2], dtype=object)
    return pd.Series(roles[partitions.to_numpy()], index=df.index, name="role")


def fold_roles(partitions: pd.Series, *, test: int, val: int | None) -> pd.Series:
    """``"train"/"val"/"test"`` per row: one partition tests, another validates, the rest train (Fig. C.7).

    Raises:
        ValueError: ``test`` or ``val`` not a partition id present, or equal.
    """
    present = set(partitions.unique().tolist())
    for name, value in (("test", test), ("val", val)):
        if value is not None and value not in present:
            raise ValueError(f"{name} partition {value!r} is not among the partitions {sorted(present)}")
    if val is not None and val == test:
        raise ValueError(f"the validation and test partitions must differ, both are {test}")
    roles = np.where(partitions == test, "test", np.where(partitions == val, "val", "train")).astype(object)
    return pd.Series(roles, index=partitions.index, name="role")


def write_partitions(path: str | Path, subject_ids: Sequence[str], partitions: pd.Series) -> Path:
    """Write ``subject_id,partition`` rows (in the given order) to a CSV, atomically."""
    if len(subject_ids) != len(partitions):
        raise ValueError(f"{len(subject_ids)} subject ids for {len(partitions)} partition ids")
    table = pd.DataFrame({"subject_id": list(subject_ids), "partition": partitions.to_numpy()})
    return write_atomic(path, lambda handle: table.to_csv(handle, index=False))


def read_partitions(path: str | Path) -> pd.DataFrame:
    """Read a CSV written by `write_partitions` (columns ``subject_id`` (str) and ``partition`` (int))."""
    table = pd.read_csv(path, dtype={"subject_id": str})
    if list(table.columns[:2]) != ["subject_id", "partition"]:
        raise ValueError(f"{path}: expected columns subject_id,partition; got {list(table.columns)}")
    return table


def _levels(values: pd.Series, bins: int | Sequence[float]) -> list:
    """Stratum level per row: the value itself, or its bin for a many-valued numeric column."""
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    n_bins = bins if isinstance(bins, int) else len(bins) - 1
    if numeric and values.nunique(dropna=True) > n_bins:
        if isinstance(bins, int):
            cut = pd.qcut(values, q=bins, labels=False, duplicates="drop")
        else:
            cut = pd.cut(values, bins=list(bins), labels=False, include_lowest=True)
        return ["<NA>" if pd.isna(v) else int(v) for v in cut]
    return ["<NA>" if pd.isna(v) else v for v in values]


def _coarsen(keys: list[tuple], n: int, columns: list[str]) -> list[tuple]:
    """Drop the last stratification value of groups in strata smaller than ``n`` until every stratum fits.

    Raises:
        ValueError: a value of the first column held by fewer than ``n`` groups.
    """
    primary: dict[object, int] = {}
    for key in keys:
        if key:
            primary[key[0]] = primary.get(key[0], 0) + 1
    for value, count in primary.items():
        if count < n:
            raise ValueError(
                f"{columns[0]!r} = {value!r} has only {count} group(s), fewer than the {n} partitions; "
                "some partitions would have none (remove those rows or merge the class)"
            )
    keys = list(keys)
    changed: set[int] = set()
    while True:
        counts: dict[tuple, int] = {}
        for key in keys:
            counts[key] = counts.get(key, 0) + 1
        small = {k for k, c in counts.items() if c < n and len(k) > 0}
        if not small:
            break
        for i, key in enumerate(keys):
            if key in small:
                keys[i] = key[:-1]
                changed.add(i)
    if changed:
        warnings.warn(
            f"{len(changed)} group(s) were in strata smaller than the {n} partitions; they were stratified "
            f"by coarser strata (fewer of {columns}, from the last)",
            stacklevel=3,
        )
    return keys


def _sort_key(key: tuple) -> tuple:
    return (len(key), tuple(str(v) for v in key))
