"""Values of a binary column, compared by meaning: ``1``, ``1.0``, ``"1"`` and ``" 1.0 "`` are one value.

A binary column may hold any two values ('M'/'F', 'Male'/'Female', True/False, 0/1, 1/2). Each raw value is
reduced to a canonical text key, so a table read as text and a frame of numbers or booleans agree:

    missing (None, NaN, empty text)      → None
    True / False                         → "True" / "False"
    a finite number, or text of one      → "1", "0", "2.5" (integers without a decimal point)
    any other text                       → the text, stripped (case is kept: map spellings with ``values``)

The two values of a column are ordered numbers first (by value), then text (alphabetically); the first is
encoded 0 and the second 1, so 0/1 stays 0/1, False/True is 0/1 and 'F'/'M' is 0/1.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd


def binary_key(value: Any) -> str | None:
    """The canonical text of one raw value of a binary column (None when missing)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, (bool, np.bool_)):
        return "True" if value else "False"
    if isinstance(value, (int, float, np.integer, np.floating)):
        number = float(value)
        return None if math.isnan(number) else _number(number)
    text = str(value).strip()
    if not text:
        return None
    try:
        number = float(text)
    except ValueError:
        return text
    return text if math.isnan(number) else _number(number)


def binary_keys(values: pd.Series) -> pd.Series:
    """`binary_key` of every value (object Series, NaN where missing), indexed like ``values``."""
    return values.map(binary_key).astype(object)


def ordered(keys: Iterable[str]) -> list[str]:
    """Distinct keys in encoding order: numbers by value, then text alphabetically."""
    return sorted(set(keys), key=_order)


def _order(key: str) -> tuple[int, float, str]:
    try:
        number = float(key)
    except ValueError:
        return (1, 0.0, key)
    return (0, number, "") if math.isfinite(number) else (1, 0.0, key)


def _number(number: float) -> str:
    if math.isfinite(number) and number.is_integer() and abs(number) < 1e15:
        return str(int(number))
    return repr(number)
