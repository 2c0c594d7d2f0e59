"""The optional tables a report can be given, their exact columns, and their validation.

Every check returns a clean copy or raises a ``ValueError`` that names the table, the column and the row.

- **skill**: one row per (method, split seed, version, metric): a method's difference to the no-skill
  baseline on the same test subjects, with its bootstrap interval, oriented so that positive = better
  (:func:`hyperfusion.evaluation.bootstrap.bootstrap_differences` gives every column but the first three).
  Columns: ``method, split_seed, version, metric, difference, low, high``; optional ``value,
  baseline_value, n_subjects, n_resamples`` and ``confidence``.
- **histories**: one row per (method, split seed, version, fold, epoch). Columns: ``method, split_seed,
  version, fold, epoch, train_loss, val_loss, val_metric, metric_name``; losses and metric may be NaN.
- **treatments**: one row per method, ``method`` plus any columns (parameters, warm start, epochs,
  learning rate, …), shown as given.
- **predictions**: one row per (method, split seed, version, subject): the test-set ensemble's
  probabilities. Columns: ``method, split_seed, version, subject_id, target`` and ``p_<class>`` for each
  class, in class order. ``target`` is a class name (one of the ``<class>`` names) or a class index.
  Other columns (e.g. ``predicted``) are ignored. A regression table has no ``p_`` columns. It has nothing
  to calibrate and is skipped.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = [
    "HISTORY_COLUMNS",
    "PREDICTION_COLUMNS",
    "SKILL_COLUMNS",
    "check_histories",
    "check_predictions",
    "check_skill",
    "check_treatments",
    "probability_columns",
]

SKILL_COLUMNS = ("method", "split_seed", "version", "metric", "difference", "low", "high")
HISTORY_COLUMNS = (
    "method",
    "split_seed",
    "version",
    "fold",
    "epoch",
    "train_loss",
    "val_loss",
    "val_metric",
    "metric_name",
)
PREDICTION_COLUMNS = ("method", "split_seed", "version", "subject_id", "target")
PROBABILITY_PREFIX = "p_"
_SUM_TOLERANCE = 1e-3


def _require(frame: pd.DataFrame, columns: Sequence[str], name: str) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"{name} must be a pandas DataFrame, got {type(frame).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} table lacks column(s) {missing}; expected {list(columns)}")


def _numeric(frame: pd.DataFrame, columns: Sequence[str], name: str, *, allow_nan: bool) -> None:
    for column in columns:
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = frame.index[values.isna() & frame[column].notna()]
        if len(bad):
            raise ValueError(f"{name} row {bad[0]}: {column} {frame.loc[bad[0], column]!r} is not a number")
        if not allow_nan and values.isna().any():
            row = frame.index[values.isna()][0]
            raise ValueError(f"{name} row {row}: {column} is missing")
        frame[column] = values.astype(float)


def plain(value: object) -> object:
    """A NumPy scalar as the Python value it holds (and a whole float as an int), for readable messages."""
    v = value.item() if isinstance(value, np.generic) else value
    return int(v) if isinstance(v, float) and v.is_integer() else v


def _no_duplicates(frame: pd.DataFrame, key: Sequence[str], name: str) -> None:
    dup = frame.duplicated(list(key), keep=False)
    if dup.any():
        row = frame[dup].iloc[0]
        raise ValueError(f"{name} table has duplicate rows for { {k: plain(row[k]) for k in key} }")


def check_skill(skill: pd.DataFrame) -> pd.DataFrame:
    """Validate a skill table (see the module docstring); ``low <= difference <= high`` is not required
    (a percentile interval need not contain the full-sample estimate), ``low <= high`` is."""
    _require(skill, SKILL_COLUMNS, "skill")
    df = skill.copy()
    df["method"] = df["method"].astype(str)
    df["metric"] = df["metric"].astype(str)
    _numeric(df, ["difference"], "skill", allow_nan=False)
    _numeric(df, ["low", "high"], "skill", allow_nan=True)
    bad = df.index[df["low"] > df["high"]]
    if len(bad):
        raise ValueError(
            f"skill row {bad[0]}: interval low {df.loc[bad[0], 'low']} is above high {df.loc[bad[0], 'high']}"
        )
    _no_duplicates(df, ["method", "split_seed", "version", "metric"], "skill")
    return df


def check_histories(histories: pd.DataFrame) -> pd.DataFrame:
    """Validate a histories table (see the module docstring)."""
    _require(histories, HISTORY_COLUMNS, "histories")
    df = histories.loc[:, list(HISTORY_COLUMNS)].copy()
    df["method"] = df["method"].astype(str)
    df["metric_name"] = df["metric_name"].fillna("").astype(str)
    _numeric(df, ["epoch"], "histories", allow_nan=False)
    _numeric(df, ["train_loss", "val_loss", "val_metric"], "histories", allow_nan=True)
    _no_duplicates(df, ["method", "split_seed", "version", "fold", "epoch"], "histories")
    return df


def check_treatments(treatments: pd.DataFrame) -> pd.DataFrame:
    """Validate a treatments table: a ``method`` column with each method once."""
    _require(treatments, ["method"], "treatments")
    df = treatments.copy()
    df["method"] = df["method"].astype(str)
    _no_duplicates(df, ["method"], "treatments")
    return df


def probability_columns(predictions: pd.DataFrame) -> list[str]:
    """The ``p_<class>`` columns of a predictions table, in table order."""
    return [c for c in predictions.columns if str(c).startswith(PROBABILITY_PREFIX)]


def check_predictions(predictions: pd.DataFrame) -> tuple[pd.DataFrame, list[str]] | None:
    """Validate a predictions table; return it with an integer ``class_index`` column, and the class names.

    Returns ``None`` for a regression table (no ``p_<class>`` columns): there is nothing to calibrate.

    Raises:
        ValueError: a missing column, a duplicated (method, split_seed, version, subject_id), a probability
            that is not a number or a row that does not sum to 1, or a target that is neither a class name
            nor a class index; the message names the row.
    """
    _require(predictions, PREDICTION_COLUMNS, "predictions")
    columns = probability_columns(predictions)
    if not columns:
        return None
    if len(columns) < 2:
        raise ValueError(f"predictions table needs a p_<class> column per class (at least 2), got {columns}")
    names = [c[len(PROBABILITY_PREFIX) :] for c in columns]
    df = predictions.copy()
    df["method"] = df["method"].astype(str)
    _numeric(df, columns, "predictions", allow_nan=False)
    p = df[columns].to_numpy(dtype=np.float64)
    bad = np.flatnonzero(
        ~np.isfinite(p).all(axis=1) | (p < 0).any(axis=1) | (np.abs(p.sum(axis=1) - 1) > _SUM_TOLERANCE)
    )
    if bad.size:
        row = df.index[bad[0]]
        raise ValueError(
            f"predictions row {row}: probabilities {dict(zip(columns, p[bad[0]].tolist()))} are not a "
            f"probability vector (sum {p[bad[0]].sum():.6g})"
        )
    _no_duplicates(df, ["method", "split_seed", "version", "subject_id"], "predictions")
    df["class_index"] = [_class_index(t, names, row) for row, t in zip(df.index, df["target"])]
    return df, names


def _class_index(target: object, names: list[str], row: object) -> int:
    if str(target) in names:
        return names.index(str(target))
    if isinstance(target, (int, np.integer)) or (
        isinstance(target, (float, np.floating)) and float(target).is_integer()
    ):
        index = int(target)
        if 0 <= index < len(names):
            return index
    raise ValueError(
        f"predictions row {row}: target {target!r} is neither a class name {names} nor a class index"
    )
