"""Tests for hyperfusion.data.ranges: range declarations and the check against a per-value reference loop."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hyperfusion.data.ranges import check_ranges, parse_ranges, usable_ranges
from tests.faults import fault


def test_parse_ranges_accepts_numbers_and_open_ends() -> None:
    parsed = parse_ranges({"AGE": [40, 110], "FDG": [0.5, None], "X": None, "Y": [None, 3]}, source="s")
    assert parsed == {"AGE": (40.0, 110.0), "FDG": (0.5, None), "X": None, "Y": (None, 3.0)}
    assert parse_ranges(None, source="s") == {}


@fault(
    "manifest spec", "a range that is not [low, high] with low < high", "ValueError naming ranges.<column>"
)
@pytest.mark.parametrize(
    "bad", [[1], [1, 2, 3], "1-2", [2, 1], [1, 1], [True, 2], [float("nan"), 2], ["a", 2]]
)
def test_parse_ranges_rejects_malformed_ranges(bad) -> None:
    with pytest.raises(ValueError, match=r"s: 'ranges\.AGE'"):
        parse_ranges({"AGE": bad}, source="s")


def test_usable_ranges_drop_unused_preset_columns_but_not_declared_ones() -> None:
    merged = {"AGE": (40.0, 110.0), "FDG": (0.5, 15.0), "AV45": None}
    assert usable_ranges(merged, {}, {"AGE"}, source="s") == {"AGE": (40.0, 110.0)}
    with pytest.raises(ValueError, match=r"s: 'ranges' names column\(s\) \['FDG'\]"):
        usable_ranges(merged, {"FDG": (0.5, 15.0)}, {"AGE"}, source="s")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_check_ranges_against_a_reference_loop(seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = pd.Series(
        np.where(rng.random(40) < 0.2, np.nan, rng.normal(70, 25, 40)), index=np.arange(40) * 3
    )
    lines = pd.Series(np.arange(40) + 2, index=values.index)
    for bounds in ((40.0, 110.0), (None, 100.0), (30.0, None)):
        outside = [
            i
            for i, v in enumerate(values)
            if not np.isnan(v)
            and ((bounds[0] is not None and v < bounds[0]) or (bounds[1] is not None and v > bounds[1]))
        ]
        if not outside:
            check_ranges(values, "AGE", bounds, lines, source="t.csv")
            continue
        with pytest.raises(ValueError) as err:
            check_ranges(values, "AGE", bounds, lines, source="t.csv")
        first = outside[0]
        assert str(err.value).startswith(
            f"t.csv: column 'AGE', line {first + 2}: value {values.iloc[first]:g} is outside"
        )
        assert f"({len(outside)} value(s) outside)" in str(err.value)
