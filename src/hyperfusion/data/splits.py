"""Stratified, grouped, seeded partitions (paper §4.3.4, Fig. C.7) and the 80/10/10 regression split (§4.2.3).

Rows are grouped (all rows of one subject together) and each group gets a stratum: the tuple of its
stratification values, continuous columns cut into quantile bins. The groups are then *dealt* like cards:
strata are laid out one after another in a boustrophedon order (sorted by the label, then within each label by
the next column in alternating directions, and so on), the groups of each stratum shuffled, and the i-th group
of that sequence goes to partition ``cycle[i mod n]`` (``cycle`` a seeded permutation of the partitions).

Any run of consecutive groups dealt this way holds each partition ⌊L/n⌋ or ⌈L/n⌉ times, and every stratum, every
label × sex block and every label is such a run: their subject counts per partition differ by at most one, and
so do the partition sizes. A value of the second column (e.g. one sex) forms two runs thanks to the alternating
order, so its counts differ by at most two however many age bins there are; later columns' values by a few.
When subjects have several rows, groups of the same stratum but of different sizes are then swapped between
partitions while that evens out the row counts (partition sizes, labels, sexes); subject counts are unchanged
by such a swap.

A stratum smaller than ``n_partitions`` cannot reach every partition: its groups are balanced only as part of
the coarser group's run (its last stratification column dropped, down to the label alone), and a one-line log
message says how many subjects that concerns and what stays balanced; a value of the *first* column (the
label) with fewer groups than partitions cannot be spread and raises. `check_stratifiable` makes that check
up front, naming classes by their labels, and `default_age_bins` picks a number of age bins that keeps the
strata large enough for the cohort's size.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd

from hyperfusion.atomic import write_atomic

log = logging.getLogger("hyperfusion")
#: The most age bins `default_age_bins` picks: the paper's 20 (enough for 2,120 subjects in 5 partitions).
MAX_AGE_BINS = 20
#: A numeric column with at most this many values (a class index, APOE4, a site code) is never binned.
FEW_VALUES = 10
AgeBins = int | Sequence[float] | str


def default_age_bins(
    n_subjects: int, n_partitions: int, *, other_strata: int = 6, max_bins: int = MAX_AGE_BINS
) -> int:
    """A number of (quantile) age bins suited to the cohort's size.

    Strata are class × sex × age bin (``other_strata`` = the number of class × sex values, 3 × 2 by default).
    A stratum with fewer subjects than partitions cannot put one in every partition, so its subjects are
    stratified more coarsely. The number of bins is chosen so that the *average* stratum holds at least twice
    ``n_partitions`` subjects — twice, because classes and sexes are rarely balanced and the smaller strata
    then still mostly fill every partition:

        bins = ⌊ n_subjects / (2 · other_strata · n_partitions) ⌋, clipped to [1, max_bins]

    e.g. 400 subjects in 5 partitions → 6 bins; 2,120 → 20 (the paper's); 50 → 1 (age not stratified).

    Raises:
        ValueError: a non-positive count.
    """
    for name, value in (
        ("n_subjects", n_subjects),
        ("n_partitions", n_partitions),
        ("other_strata", other_strata),
        ("max_bins", max_bins),
    ):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"default_age_bins: {name} must be a positive integer, got {value!r}")
    return int(min(max_bins, max(1, n_subjects // (2 * other_strata * n_partitions))))


def check_stratifiable(
    frame: pd.DataFrame,
    n_partitions: int,
    *,
    classes: Sequence[str] = (),
    label: str = "label",
    group: str | None = "subject_id",
    source: str = "the cohort",
) -> None:
    """Fail before partitioning when some partition would lack a class: every class needs ≥ n_partitions subjects.

    Args:
        frame: a cohort frame (one row per scan; a ``line`` column, if any, is used in messages).
        n_partitions: the number of partitions.
        classes: the declared classes (classification); empty for regression.
        label: the column holding each row's class name; rows without one (unlabelled) are ignored.
        group: the column whose rows form one subject (counted once); None = each row is a subject.
        source: the table file, for messages.

    Raises:
        ValueError: fewer subjects than partitions; a declared class no subject has; a class with fewer
            subjects than partitions — naming the class by its label, its subjects' lines, and what to do.
    """
    if not isinstance(n_partitions, (int, np.integer)) or n_partitions < 2:
        raise ValueError(f"n_partitions must be an integer >= 2, got {n_partitions!r}")
    groups = frame[group].astype(str) if group else pd.Series(np.arange(len(frame)).astype(str), frame.index)
    if groups.nunique() < n_partitions:
        raise ValueError(
            f"{source}: {groups.nunique()} subject(s) cannot fill {n_partitions} partitions; "
            "add subjects or use fewer partitions"
        )
    if not classes:
        return
    if label not in frame.columns:
        raise ValueError(f"{source}: no {label!r} column to check the classes {list(classes)} against")
    labelled = frame[label].notna()
    per_class = groups[labelled].groupby(frame.loc[labelled, label].astype(str)).nunique()
    absent = [c for c in classes if per_class.get(c, 0) == 0]
    if absent:
        raise ValueError(
            f"{source}: class(es) {absent} are declared in target.classes but no subject has them "
            f"(subjects per class: {per_class.to_dict()}); remove them from target.classes, map their labels "
            "onto them with target.mapping, or add their subjects"
        )
    small = {c: int(per_class[c]) for c in classes if per_class[c] < n_partitions}
    if small:
        name = next(iter(small))
        rows = frame.index[(frame[label].astype(str) == name).to_numpy()]
        where = (
            f" (lines {', '.join(str(int(v)) for v in frame.loc[rows, 'line'][:10])})"
            if "line" in frame.columns
            else ""
        )
        raise ValueError(
            f"{source}: class {name!r} has only {small[name]} subject(s){where}, fewer than the "
            f"{n_partitions} partitions, so some partition would have none (classes this small: {small}); "
            "add subjects, merge the class into another with target.mapping, or use fewer partitions"
        )


def make_partitions(
    df: pd.DataFrame,
    n_partitions: int = 5,
    *,
    stratify: Sequence[str] = (),
    age_bins: AgeBins = 5,
    group: str | None = None,
    seed: int = 0,
) -> pd.Series:
    """Partition ids ``0 … n_partitions−1`` for the rows of ``df`` (a Series indexed like ``df``).

    Args:
        df: one row per scan.
        n_partitions: number of partitions (≥ 2).
        stratify: columns whose joint distribution every partition should share, primary (the label) first.
            A numeric column with more distinct values than bins and than `FEW_VALUES` (e.g. age; never a
            class index) is cut into ``age_bins`` quantile bins (an int), at the given edges, or (``"auto"``)
            into `default_age_bins` quantile bins for this many groups and the other columns' values; missing
            values form their own stratum.
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

    first_rows = pd.Series(np.arange(len(df))).groupby(codes).first().to_numpy()
    binned = [c for c in stratify if _is_binned(df[c], age_bins)]
    other = math.prod(max(1, df[c].iloc[first_rows].nunique()) for c in stratify if c not in binned)
    auto = default_age_bins(n_groups, n_partitions, other_strata=other)
    bins = auto if isinstance(age_bins, str) else age_bins
    binned = [c for c in binned if _is_binned(df[c], bins)]
    levels = [_levels(df[c], bins) if c in binned else _levels(df[c], None) for c in stratify]
    keys = [tuple(level[r] for level in levels) for r in first_rows]  # a group's stratum = its first row's
    _check_small_strata(keys, n_partitions, list(stratify), binned=binned, bins=bins, auto=auto)
    sizes = np.bincount(codes, minlength=n_groups)

    rng = np.random.default_rng(seed)
    cycle = rng.permutation(n_partitions)
    shuffle = rng.permutation(n_groups)
    rank = {key: i for i, key in enumerate(_boustrophedon(list(dict.fromkeys(keys))))}
    dealt = sorted(shuffle, key=lambda g: rank[keys[g]])  # stable: shuffled within each stratum
    assignment = np.empty(n_groups, dtype=np.int64)
    assignment[dealt] = cycle[np.arange(n_groups) % n_partitions]
    if sizes.min() != sizes.max():
        _even_out_rows(assignment, keys, sizes, n_partitions)
    return pd.Series(assignment[codes], index=df.index, name="partition")


def make_split(
    df: pd.DataFrame,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    *,
    stratify: Sequence[str] = (),
    age_bins: AgeBins = 5,
    group: str | None = None,
    seed: int = 0,
) -> pd.Series:
    """A ``"train"/"val"/"test"`` split in the given fractions, stratified as `make_partitions`.

    The fractions are made exact multiples of 1/n (n ≤ 100, e.g. 10 for 80/10/10); the data are cut into n
    stratified partitions and whole partitions go to each role.

    Raises:
        ValueError: fractions that are not three non-negative numbers summing to 1 with a positive train part.
    """
    n = split_partitions(fractions)
    counts = [int(Fraction(f).limit_denominator(100) * n) for f in fractions]
    partitions = make_partitions(df, n, stratify=stratify, age_bins=age_bins, group=group, seed=seed)
    roles = np.array(["train"] * counts[0] + ["val"] * counts[1] + ["test"] * counts[2], dtype=object)
    return pd.Series(roles[partitions.to_numpy()], index=df.index, name="role")


def split_partitions(fractions: Sequence[float]) -> int:
    """How many stratified partitions `make_split` cuts the data into: the fractions' common denominator (≤ 100).

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
    return int(np.lcm.reduce([Fraction(f).limit_denominator(100).denominator for f in fractions]))


def time_strata(time: pd.Series, event: pd.Series, n_partitions: int, *, bins: int = 3) -> np.ndarray:
    """Per row, the time bin (0 = earliest) of its time among the rows of its event status, for stratifying a
    survival split by event × time: every partition then gets early and late converters, and short and long
    follow-up, in the cohort's proportions.

    Each status gets ``bins`` equal-count bins (tertiles), or fewer when it has too few rows for every bin to
    reach all ``n_partitions`` (``⌊rows / n_partitions⌋``, at least 1: then its time is not stratified), so no
    stratum is too small to spread. Tied times are binned by row order; a row without a time or event gets -1.
    """
    t = pd.to_numeric(time, errors="coerce").to_numpy(np.float64)
    e = pd.to_numeric(event, errors="coerce").to_numpy(np.float64)
    out = np.full(t.size, -1, dtype=np.int64)
    known = np.isfinite(t) & np.isfinite(e)
    for status in np.unique(e[known]):
        rows = np.flatnonzero(known & (e == status))
        k = max(1, min(bins, rows.size // n_partitions))
        order = rows[np.argsort(t[rows], kind="stable")]
        out[order] = np.arange(order.size) * k // order.size
    return out


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


def _is_binned(values: pd.Series, bins: AgeBins) -> bool:
    """A many-valued numeric column (age), cut into bins rather than taken value by value.

    Numeric with more distinct values than bins, and more than `FEW_VALUES` (so that a class index is never
    cut into bins, whatever the number of bins).
    """
    if isinstance(bins, str):
        if bins != "auto":
            raise ValueError(f"age_bins must be an integer, a list of bin edges or 'auto', got {bins!r}")
        n_bins = 1
    else:
        n_bins = bins if isinstance(bins, (int, np.integer)) else len(bins) - 1
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    return bool(numeric and values.nunique(dropna=True) > max(n_bins, FEW_VALUES))


def _levels(values: pd.Series, bins: int | Sequence[float] | None) -> list:
    """Stratum level per row: its bin (``bins`` given) or the value itself."""
    if bins is None:
        return ["<NA>" if pd.isna(v) else v for v in values]
    if isinstance(bins, (int, np.integer)):
        cut = pd.qcut(values, q=int(bins), labels=False, duplicates="drop")
    else:
        cut = pd.cut(values, bins=list(bins), labels=False, include_lowest=True)
    return ["<NA>" if pd.isna(v) else int(v) for v in cut]


def _check_small_strata(
    keys: list[tuple],
    n: int,
    columns: list[str],
    *,
    binned: Sequence[str] = (),
    bins: int | Sequence[float] = 5,
    auto: int = 1,
) -> list[tuple]:
    """Refuse a label too small to spread; log the groups in strata too small to reach every partition.

    Such a stratum's groups are balanced only as part of a coarser group's run: its last stratification value
    dropped until the group fits (or only the label is left), which is what the log line reports. Returns the
    coarsened keys.

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
    original = list(keys)
    changed: set[int] = set()
    while True:
        counts: dict[tuple, int] = {}
        for key in keys:
            counts[key] = counts.get(key, 0) + 1
        small = {k for k, c in counts.items() if c < n and len(k) > 1}  # never below the label
        if not small:
            break
        for i, key in enumerate(keys):
            if key in small:
                keys[i] = key[:-1]
                changed.add(i)
    if changed:
        _report_coarsened(original, keys, changed, n, columns, binned, bins, auto)
    return keys


def _report_coarsened(
    original: list[tuple],
    keys: list[tuple],
    changed: set[int],
    n: int,
    columns: list[str],
    binned: Sequence[str],
    bins: int | Sequence[float],
    auto: int,
) -> None:
    """One log line: how many subjects were stratified coarsely, what that means, and what to change.

    Measured on simulated 3-class cohorts of 300–1,200 subjects in 5 partitions: partition sizes stay within
    one subject, each class's count within one and each sex's within 1–3 subjects.
    """
    names = " × ".join(f"{c} bin" if c in binned else c for c in columns)
    # dealt within their label's run, merged subjects leave every column's counts close
    close = [c for c in columns if c not in binned] or columns[:1]
    lost = sorted({c for i in changed for c in columns[len(keys[i]) : len(original[i])]}, key=columns.index)
    uneven = [c for c in lost if c not in close] or [c for c in lost if c != columns[0]] or lost
    n_bins = bins if isinstance(bins, (int, np.integer)) else len(bins) - 1
    if binned and n_bins > auto:
        advice = (
            f"fewer age bins make the groups larger: about {auto} suit {len(keys)} subjects in {n} partitions "
            f"(now {n_bins}; age_bins: auto picks that number)"
        )
        level = logging.WARNING
    elif binned:
        advice = "the number of age bins already suits the cohort's size, so nothing needs changing"
        level = logging.DEBUG  # expected at any cohort size: not worth a line on every run
    else:
        advice = "merge rare values of the stratification columns, or stratify on fewer columns"
        level = logging.WARNING
    log.log(
        level,
        "%d of %d subjects were stratified on coarser groups because their %s group had fewer members than "
        "the %d partitions; partition sizes stay equal and the counts of each %s stay close (within a "
        "few subjects), but those subjects' %s are not spread evenly; %s",
        len(changed),
        len(keys),
        names,
        n,
        " and ".join(f"{c} bin" if c in binned else f"{c}" for c in close),
        " and ".join(f"{c} bins" if c in binned else f"{c} values" for c in uneven),
        advice,
    )


def _boustrophedon(keys: list[tuple]) -> list[tuple]:
    """Stratum keys in the order they are dealt: by the first value, then the rest in alternating directions.

    With the second column's order flipped from one label to the next, each value of that column forms at most
    two runs of the dealt sequence (F M | M F | F M ...), so its counts differ by at most two.
    """

    def order(suffixes: list[tuple], flip: bool) -> list[tuple]:
        out = [k for k in suffixes if not k]
        heads = sorted({k[0] for k in suffixes if k}, key=str, reverse=flip)
        for i, head in enumerate(heads):
            rest = [k[1:] for k in suffixes if k and k[0] == head]
            out += [(head, *tail) for tail in order(rest, flip=i % 2 == 1)]
        return out

    return order(keys, flip=False)


def _tallies(key: tuple) -> list[tuple]:
    """The row counts a group of stratum ``key`` adds to: the total, each coarser stratum, each column's value."""
    prefixes = [("stratum", key[:length]) for length in range(len(key), 0, -1)]
    values = [("value", column, value) for column, value in enumerate(key) if column > 0]
    return [("total",), *prefixes, *values]


def _even_out_rows(assignment: np.ndarray, keys: list[tuple], sizes: np.ndarray, n: int) -> None:
    """Swap same-stratum groups of different sizes between partitions while that evens out the row counts.

    The objective is the sum of squared row counts per partition over every tally (`_tallies`); swapping groups
    ``g`` (partition P, ``a`` rows) and ``h`` (Q, ``b`` rows) of one stratum moves ``d = a − b`` rows of each of
    its tallies from P to Q and changes it by ``2d·Σ(T[Q] − T[P] + d)``. The best swap is made until none helps;
    subject counts never change (both groups are of the same stratum).
    """
    rows: dict[tuple, np.ndarray] = {}
    strata: dict[tuple, list[int]] = {}
    for g, key in enumerate(keys):
        strata.setdefault(key, []).append(g)
        for tally in _tallies(key):
            rows.setdefault(tally, np.zeros(n, dtype=np.int64))[assignment[g]] += sizes[g]
    ordered = sorted(strata, key=lambda k: tuple(str(v) for v in k))
    while True:
        best: tuple | None = None
        for key in ordered:
            tallies = [rows[t] for t in _tallies(key)]
            by_partition: dict[int, dict[int, int]] = {}
            for g in strata[key]:  # one representative group per (partition, size)
                by_partition.setdefault(int(assignment[g]), {}).setdefault(int(sizes[g]), g)
            for p, mine in by_partition.items():
                for q, theirs in by_partition.items():
                    if p == q:
                        continue
                    gap = sum(int(t[q] - t[p]) for t in tallies)
                    for a, g in mine.items():
                        for b, h in theirs.items():
                            d = a - b
                            change = 2 * d * (gap + len(tallies) * d)
                            if d > 0 and change < 0 and (best is None or change < best[0]):
                                best = (change, g, h, p, q, d, key)
        if best is None:
            return
        _, g, h, p, q, d, key = best
        assignment[g], assignment[h] = q, p
        for tally in _tallies(key):
            rows[tally][p] -= d
            rows[tally][q] += d
