"""Numeric parsing of table columns, with censored values such as ADNIMERGE's ``">1700"`` or ``"<8"``.

A censored value is a bound, not a measurement: ``">1700"`` means "at least 1700" (the assay's upper limit).
It is read as the bound itself, as the paper's code does, and counted so that the caller can warn.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

_CENSORED = re.compile(r"^\s*(<=|>=|<|>)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")


def parse_numeric(
    values: pd.Series, *, column: str, source: str, parse_censored: bool = True
) -> tuple[pd.Series, int]:
    """Parse a column of strings (or numbers) into float64; missing values stay NaN.

    Returns the parsed column and the number of censored values (``"<8"``, ``">=1700"``) read as their bound.

    Raises:
        ValueError: a value that is neither a number nor (with ``parse_censored``) a censored number; the
            message names the source file, the column, the line (header = line 1) and the value.
    """
    out = np.full(len(values), np.nan, dtype=np.float64)
    n_censored = 0
    for pos, (index, raw) in enumerate(values.items()):
        if raw is None or (isinstance(raw, float) and np.isnan(raw)) or raw is pd.NA:
            continue
        if isinstance(raw, (int, float, np.integer, np.floating)) and not isinstance(raw, bool):
            out[pos] = float(raw)
            continue
        text = str(raw).strip()
        if text == "":
            continue
        try:
            out[pos] = float(text)
        except ValueError:
            match = _CENSORED.match(text) if parse_censored else None
            if match is None:
                raise ValueError(
                    f"{source}: column {column!r}, {_line(index)}: value {raw!r} is not a number"
                    + (" (nor a censored number such as '>1700')" if parse_censored else "")
                ) from None
            out[pos] = float(match.group(2))
            n_censored += 1
        if not np.isfinite(out[pos]):
            raise ValueError(f"{source}: column {column!r}, {_line(index)}: value {raw!r} is not finite")
    return pd.Series(out, index=values.index, name=values.name), n_censored


def _line(index: object) -> str:
    """The line of a table row in its file, when the index is the row position (header is line 1)."""
    if isinstance(index, (int, np.integer)):
        return f"line {int(index) + 2}"
    return f"row {index!r}"
