"""Tests for hyperfusion.data.censor: ADNIMERGE-style censored strings read as their bound."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hyperfusion.data.censor import parse_numeric
from tests.faults import fault


def test_numbers_censored_values_and_missing() -> None:
    raw = pd.Series(["812.5", ">1700", "<8", " >= 2.5e3 ", "<=.5", np.nan, "", "-3", 7, 1.5])
    values, n = parse_numeric(raw, column="ABETA", source="t.csv")
    expected = [812.5, 1700, 8, 2500, 0.5, np.nan, np.nan, -3, 7, 1.5]
    np.testing.assert_array_equal(values.to_numpy(), np.array(expected, dtype=float))
    assert n == 4 and values.index.equals(raw.index)


@fault(
    "cohort table",
    "a numeric cell holding text, a unit, a thousands separator or inf",
    "ValueError naming file, column, line and value",
)
@pytest.mark.parametrize("bad", ["abc", ">", "1,700", "> x", "12 mg", "inf"])
def test_non_numeric_value_names_file_column_line(bad: str) -> None:
    raw = pd.Series(["1", "2", bad])
    with pytest.raises(ValueError, match=rf"t\.csv: column 'TAU', line 4: value '{bad}'"):
        parse_numeric(raw, column="TAU", source="t.csv")


@fault(
    "cohort table",
    "a censored value such as '>3' where censoring is not allowed (a target)",
    "ValueError: not a number",
)
def test_censoring_can_be_refused() -> None:
    with pytest.raises(ValueError, match=r"is not a number$"):
        parse_numeric(pd.Series([">3"]), column="age", source="p.tsv", parse_censored=False)
