"""Counterfactual grids and tables: grid bounds, edited records, the long table, the two-level flip."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hyperfusion.explain.context import MISSING, Attribute
from hyperfusion.explain.counterfactual import (
    attribute_values,
    continuous_grid,
    counterfactuals,
    edited,
    level_table,
)
from tests.faults import fault


def test_continuous_grid_spans_the_training_5th_to_95th_percentiles():
    rng = np.random.default_rng(0)
    values = rng.normal(70, 8, 200)
    values[::9] = np.nan  # missing training values are ignored
    grid = continuous_grid(values, 7)
    low, high = np.percentile(values[~np.isnan(values)], [5, 95])
    assert len(grid) == 7
    assert grid[0] == pytest.approx(low) and grid[-1] == pytest.approx(high)
    np.testing.assert_allclose(np.diff(grid), (high - low) / 6)


def test_few_distinct_values_are_used_as_they_are():
    values = np.array([0, 0, 0, 1, 1, 2, 0, 1, 0, 2] * 10, dtype=float)  # an allele count
    np.testing.assert_array_equal(continuous_grid(values, 9), [0, 1, 2])
    outlier = np.r_[np.zeros(97), 1, 1, 30.0]  # the 95th percentile leaves the outlier out
    np.testing.assert_array_equal(continuous_grid(outlier, 9), [0.0])


@fault("explain", "a counterfactual grid of fewer than two points", "ValueError naming points")
def test_grid_needs_two_points():
    with pytest.raises(ValueError, match="points must be an integer >= 2"):
        continuous_grid([1.0, 2.0], 1)


@fault("explain", "a continuous attribute with no observed training value", "ValueError")
def test_grid_needs_an_observed_value():
    with pytest.raises(ValueError, match="no observed training value"):
        continuous_grid([np.nan, np.nan], 5)


def test_attribute_values_add_missing_last_and_levels_for_categories():
    training = pd.DataFrame({"AGE": np.linspace(50, 90, 41), "SEX": ["F", "M"] * 20 + ["F"]})
    age = attribute_values(Attribute("AGE", "continuous"), training, points=3)
    assert age[:3] == pytest.approx([52.0, 70.0, 88.0]) and np.isnan(age[3])
    sex = attribute_values(Attribute("SEX", "binary", ("F", "M")), training, missing=False)
    assert sex == ["F", "M"]


def test_editing_a_column_leaves_the_original_and_the_other_columns_alone():
    frame = pd.DataFrame({"subject_id": ["a", "b"], "SEX": ["F", "M"], "AGE": [60.0, 70.0]})
    missing = edited(frame, "SEX", np.nan)
    assert missing["SEX"].isna().all() and list(frame["SEX"]) == ["F", "M"]
    assert list(missing["AGE"]) == [60.0, 70.0]
    assert list(edited(frame, "AGE", 65.0)["AGE"]) == [65.0, 65.0]


def toy_scorer(frames):
    """Regression 'model': AGE (imputed 50 when missing) + 10 for SEX = M."""
    out = []
    for f in frames:
        age = pd.to_numeric(f["AGE"]).fillna(50.0).to_numpy()
        out.append(age + 10.0 * (f["SEX"] == "M").to_numpy())
    return out


def test_long_table_holds_each_subjects_prediction_under_each_value():
    frame = pd.DataFrame(
        {"subject_id": ["a", "b", "c"], "SEX": ["F", "M", np.nan], "AGE": [60.0, 70.0, 80.0]}
    )
    attributes = [Attribute("AGE", "continuous"), Attribute("SEX", "binary", ("F", "M"))]
    grids = {"AGE": [55.0, 75.0, np.nan], "SEX": ["F", "M", np.nan]}

    table = counterfactuals(frame, attributes, grids, toy_scorer)

    expected = ["subject_id", "row", "attribute", "kind", "value", "numeric", "observed", "predicted"]
    assert list(table.columns) == expected
    assert len(table) == 3 * 3 + 3 * 3
    age = table[(table["attribute"] == "AGE") & (table["value"] == "75")].set_index("subject_id")
    assert age["predicted"].to_dict() == {"a": 75.0, "b": 85.0, "c": 75.0}
    missing_age = table[(table["attribute"] == "AGE") & (table["value"] == MISSING)]
    assert missing_age["predicted"].tolist() == [50.0, 60.0, 50.0] and missing_age["numeric"].isna().all()
    as_m = table[(table["attribute"] == "SEX") & (table["value"] == "M")].set_index("subject_id")
    assert as_m["predicted"].to_dict() == {"a": 70.0, "b": 80.0, "c": 90.0}
    assert as_m["observed"].to_dict() == {"a": False, "b": True, "c": False}
    observed_missing = table[(table["attribute"] == "SEX") & (table["value"] == MISSING)]
    assert observed_missing["observed"].tolist() == [False, False, True]


def test_classification_table_has_a_probability_per_class_and_the_predicted_class():
    frame = pd.DataFrame({"subject_id": ["a", "b"], "X": [0.0, 1.0]})

    def score(frames):
        return [np.c_[1 - f["X"].to_numpy() / 2, f["X"].to_numpy() / 2] for f in frames]

    table = counterfactuals(
        frame, [Attribute("X", "continuous")], {"X": [0.0, 1.6]}, score, classes=("CN", "AD")
    )
    assert list(table.columns[-3:]) == ["p_CN", "p_AD", "predicted"]
    assert table["predicted"].tolist() == ["CN", "CN", "AD", "AD"]


def test_flip_table_pairs_each_subjects_two_predictions():
    frame = pd.DataFrame({"subject_id": ["a", "b"], "SEX": ["F", "M"], "AGE": [60.0, 70.0]})
    sex = Attribute("SEX", "categorical", ("F", "M"))
    table = counterfactuals(frame, [sex], {"SEX": ["F", "M", np.nan]}, toy_scorer)

    flip = level_table(table, frame, sex)

    assert flip.to_dict("list") == {
        "subject_id": ["a", "b"],
        "observed": ["F", "M"],
        "pred_F": [60.0, 70.0],
        "pred_M": [70.0, 80.0],
        "difference": [10.0, 10.0],
    }


@fault(
    "explain", "a flip asked of an attribute without exactly two levels", "ValueError naming the attribute"
)
def test_flip_needs_two_levels():
    frame = pd.DataFrame({"subject_id": ["a"], "SITE": ["A"]})
    with pytest.raises(ValueError, match="'SITE' has 3 levels, not two"):
        level_table(pd.DataFrame(), frame, Attribute("SITE", "categorical", ("A", "B", "C")))
