"""Plausible value ranges: a sentinel such as ``-999`` or a value in the wrong unit fails at load, not in training.

A range is ``[low, high]`` (inclusive; either end may be ``null`` for no bound). The presets carry ranges for
the columns they know (ADNIMERGE's AGE, PTEDUCAT, APOE4, CSF ABETA/PTAU/TAU, FDG, AV45; BIDS and UK Biobank
ages); a manifest's ``ranges`` key overrides them column by column, and ``null`` turns one off.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any

import numpy as np
import pandas as pd

Range = tuple[float | None, float | None]


def parse_ranges(raw: Any, *, source: str) -> dict[str, Range | None]:
    """Validate a ``ranges`` mapping ``{column: [low, high] | null}``.

    Raises:
        ValueError: not a mapping, or a range that is not two numbers (or nulls) with low < high.
    """
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ValueError(f"{source}: 'ranges' must map column -> [low, high], got {raw!r}")
    out: dict[str, Range | None] = {}
    for column, value in raw.items():
        if value is None:
            out[str(column)] = None
            continue
        if not isinstance(value, (list, tuple)) or len(value) != 2 or not all(map(_bound, value)):
            raise ValueError(
                f"{source}: 'ranges.{column}' must be [low, high] (numbers, or null for no bound), got {value!r}"
            )
        low, high = (None if v is None else float(v) for v in value)
        if low is not None and high is not None and not low < high:
            raise ValueError(f"{source}: 'ranges.{column}' needs low < high, got {value!r}")
        out[str(column)] = (low, high)
    return out


def usable_ranges(
    merged: Mapping[str, Range | None],
    declared: Mapping[str, Range | None],
    columns: Collection[str],
    *,
    source: str,
) -> dict[str, Range]:
    """The ranges that apply to a spec's numeric ``columns``.

    A preset's range for a column the spec does not use is dropped; a range the manifest itself declares
    (``declared``) for a column the spec does not use is an error (a typo would silently check nothing).
    """
    stray = sorted(c for c, r in declared.items() if r is not None and c not in columns)
    if stray:
        raise ValueError(
            f"{source}: 'ranges' names column(s) {stray} that the spec does not read as numbers; "
            f"ranges apply to continuous, regression-target and stratification columns: {sorted(columns)}"
        )
    return {c: r for c, r in merged.items() if r is not None and c in columns}


def check_ranges(values: pd.Series, column: str, bounds: Range, lines: pd.Series, *, source: str) -> None:
    """Fail on the first value of ``values`` outside ``bounds`` (missing values pass).

    ``lines`` gives each row's line in the table file (indexed like ``values``).

    Raises:
        ValueError: naming the file, the column, the line and the value, how many values are out of range,
            and how to change the range.
    """
    if not pd.api.types.is_numeric_dtype(values):
        raise ValueError(f"{source}: 'ranges.{column}' is set, but column {column!r} is not numeric")
    low, high = bounds
    numbers = values.to_numpy(dtype=np.float64)
    outside = np.zeros(len(numbers), dtype=bool)
    with np.errstate(invalid="ignore"):
        if low is not None:
            outside |= numbers < low
        if high is not None:
            outside |= numbers > high
    if not outside.any():
        return
    first = int(np.flatnonzero(outside)[0])
    shown = [_number(low), _number(high)]
    raise ValueError(
        f"{source}: column {column!r}, line {int(lines.iloc[first])}: value {_number(numbers[first])} is outside "
        f"the plausible range [{shown[0]}, {shown[1]}] ({int(outside.sum())} value(s) outside); a missing-value "
        f"code such as -999 should be an empty cell, a value in another unit should be converted, and a range "
        f"that is too narrow can be set in the manifest: ranges: {{{column}: [low, high]}} (null for no bound)"
    )


def _bound(value: Any) -> bool:
    if value is None:
        return True
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _number(value: float | None) -> str:
    return "null" if value is None else f"{value:g}"
