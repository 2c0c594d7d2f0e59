"""Tests for hyperfusion.data.binary: canonical values of a binary column and their encoding order."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hyperfusion.data.binary import binary_key, binary_keys, ordered


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        (None, None),
        (np.nan, None),
        (pd.NA, None),
        ("", None),
        ("  ", None),
        (True, "True"),
        (np.bool_(False), "False"),
        (1, "1"),
        (np.int64(0), "0"),
        (1.0, "1"),
        (np.float32(2.5), "2.5"),
        ("1.0", "1"),
        (" 0 ", "0"),
        ("2.50", "2.5"),
        (" M ", "M"),
        ("male", "male"),
        ("True", "True"),
        ("inf", "inf"),
    ],
)
def test_binary_key_by_hand(raw, key) -> None:
    assert binary_key(raw) == key


def test_order_numbers_by_value_then_text() -> None:
    assert ordered(["M", "F"]) == ["F", "M"]
    assert ordered(["True", "False", "True"]) == ["False", "True"]
    assert ordered(["10", "9"]) == ["9", "10"]  # by value, not as text
    assert ordered(["yes", "1", "0"]) == ["0", "1", "yes"]


def test_binary_keys_keeps_the_index() -> None:
    values = pd.Series(["F", None, "M"], index=[5, 7, 9])
    keys = binary_keys(values)
    assert keys.index.tolist() == [5, 7, 9] and keys[5] == "F" and pd.isna(keys[7]) and keys[9] == "M"
