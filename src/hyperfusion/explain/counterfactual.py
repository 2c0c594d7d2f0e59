"""Counterfactual conditioning: the same scans scored under changed tabular records.

For each attribute as the manifest names it, every chosen subject's record is copied with that attribute set to
each value of a grid, holding the scan and every other value fixed, and the copies are scored by the run's
ensemble exactly as ``predict`` would score them (``score_frames``: each fold's saved preprocessing, then the
fold models, combined as the run combines them). The grid:

- continuous: between the 5th and 95th percentiles of the training rows' observed values (fold 0's training
  rows); the distinct training values in that range when there are at most ``points`` of them (an allele count,
  a score), else ``points`` evenly spaced values;
- binary and categorical: every level the preprocessing knows;
- and "missing" (NaN), which the saved preprocessing imputes and flags as it would for a real missing value
  (left out when the run's preprocessing cannot impute).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from hyperfusion.explain.context import MISSING, Attribute

Scorer = Callable[[list[pd.DataFrame]], list[np.ndarray]]
DEFAULT_POINTS = 9


def continuous_grid(
    training_values: Sequence[float] | np.ndarray, points: int = DEFAULT_POINTS
) -> np.ndarray:
    """Values between the 5th and 95th percentiles of the observed (non-NaN) training values.

    Raises:
        ValueError: fewer than 2 points asked for, or no observed training value.
    """
    if isinstance(points, bool) or not isinstance(points, (int, np.integer)) or points < 2:
        raise ValueError(f"points must be an integer >= 2, got {points!r}")
    values = np.asarray(training_values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise ValueError("no observed training value to place a grid on")
    low, high = np.percentile(values, [5, 95])
    inside = np.unique(values[(values >= low) & (values <= high)])
    if inside.size <= points:
        return inside
    return np.linspace(low, high, int(points))


def attribute_values(
    attribute: Attribute,
    training: pd.DataFrame,
    *,
    points: int = DEFAULT_POINTS,
    missing: bool = True,
) -> list[object]:
    """The values an attribute takes in the counterfactual grid (``np.nan`` = missing, last)."""
    if attribute.kind == "continuous":
        values: list[object] = [float(v) for v in continuous_grid(training[attribute.name], points)]
    else:
        values = list(attribute.levels)
    if missing:
        values.append(np.nan)
    return values


def value_label(value: object) -> str:
    """How a grid value is written in the tables: the level, the number, or ``(missing)``."""
    if isinstance(value, float):
        return MISSING if np.isnan(value) else f"{value:g}"
    return str(value)


def edited(frame: pd.DataFrame, column: str, value: object) -> pd.DataFrame:
    """A copy of ``frame`` with every row's ``column`` set to ``value`` (NaN: missing)."""
    out = frame.copy()
    out[column] = value
    return out


def counterfactuals(
    frame: pd.DataFrame,
    attributes: Sequence[Attribute],
    grids: dict[str, list[object]],
    score: Scorer,
    *,
    classes: Sequence[str] = (),
) -> pd.DataFrame:
    """The ensemble's prediction for every subject under every grid value of every attribute, in long form.

    Args:
        frame: the subjects' rows (``subject_id`` and the tabular columns, as a ``Cohort`` frame holds them).
        attributes: the attributes to vary.
        grids: attribute name → its values (:func:`attribute_values`).
        score: scores a list of edited frames (e.g. ``score_frames`` bound to the run).
        classes: class names (classification); empty for regression.

    Returns:
        Columns ``subject_id, row, attribute, kind, value, numeric, observed`` then ``p_<class>…, predicted``
        (classification) or ``predicted`` (regression). ``row`` is the subject's row in ``frame`` (a subject
        with several scans has several); ``numeric`` is the value of a continuous attribute (NaN otherwise and
        for missing); ``observed`` marks the value the subject's record actually holds.
    """
    jobs = [(a, v) for a in attributes for v in grids[a.name]]
    scored = score([edited(frame, a.name, v) for a, v in jobs])
    ids = frame["subject_id"].astype(str).to_numpy()
    parts = []
    for (attribute, value), values in zip(jobs, scored):
        part = pd.DataFrame({"subject_id": ids, "row": np.arange(len(ids))})
        part["attribute"] = attribute.name
        part["kind"] = attribute.kind
        part["value"] = value_label(value)
        part["numeric"] = float(value) if attribute.kind == "continuous" else np.nan
        part["observed"] = _observed(frame[attribute.name], attribute, value)
        _add_predictions(part, values, classes)
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def _observed(column: pd.Series, attribute: Attribute, value: object) -> np.ndarray:
    if isinstance(value, float) and np.isnan(value):
        return column.isna().to_numpy()
    if attribute.kind == "continuous":
        return np.isclose(pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64), float(value))
    return (column.astype(object).map(lambda v: None if pd.isna(v) else str(v)) == str(value)).to_numpy()


def _add_predictions(part: pd.DataFrame, values: np.ndarray, classes: Sequence[str]) -> None:
    if classes:
        for i, name in enumerate(classes):
            part[f"p_{name}"] = values[:, i]
        part["predicted"] = [classes[i] for i in values.argmax(axis=1)]
    else:
        part["predicted"] = values


def factual(frame: pd.DataFrame, values: np.ndarray, classes: Sequence[str]) -> pd.DataFrame:
    """Each subject's prediction under its own record (what ``predict`` writes), with its target when known."""
    out = pd.DataFrame({"subject_id": frame["subject_id"].astype(str).to_numpy()})
    if "label" in frame.columns:
        out["target"] = frame["label"].to_numpy()
    elif "target" in frame.columns:
        out["target"] = frame["target"].to_numpy()
    _add_predictions(out, values, classes)
    return out


def level_table(table: pd.DataFrame, frame: pd.DataFrame, attribute: Attribute) -> pd.DataFrame:
    """Regression: per subject, the prediction under each level of a two-level attribute (e.g. the sex flip).

    Columns ``subject_id, observed, pred_<level>…, difference`` (second level − first).

    Raises:
        ValueError: an attribute without exactly two levels, or a table without its rows.
    """
    if len(attribute.levels) != 2:
        raise ValueError(f"attribute {attribute.name!r} has {len(attribute.levels)} levels, not two")
    rows = table[(table["attribute"] == attribute.name) & table["value"].isin(attribute.levels)]
    wide = rows.pivot(index="row", columns="value", values="predicted")
    missing = [lv for lv in attribute.levels if lv not in wide.columns]
    if missing:
        raise ValueError(f"the counterfactual table has no rows for {attribute.name} = {missing}")
    observed = frame[attribute.name].astype(object).map(lambda v: MISSING if pd.isna(v) else str(v))
    out = pd.DataFrame(
        {"subject_id": frame["subject_id"].astype(str).to_numpy(), "observed": observed.to_numpy()}
    )
    first, second = attribute.levels
    rows_of_frame = np.arange(len(frame))
    out[f"pred_{first}"] = wide.loc[rows_of_frame, first].to_numpy()
    out[f"pred_{second}"] = wide.loc[rows_of_frame, second].to_numpy()
    out["difference"] = out[f"pred_{second}"] - out[f"pred_{first}"]
    return out
