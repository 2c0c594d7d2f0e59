"""Tests for hyperfusion.data.tabular: hand-computed standardisation, the JSON imputer against sklearn's,
leakage (validation/test rows cannot change the fit), persistence without pickle, and bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import ExtraTreesRegressor
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer

from hyperfusion.data.tabular import TabularPreprocessor

CONT, CAT, BIN = ["age", "abeta", "fdg"], ["sex"], ["apoe_carrier"]


def _table(n: int, seed: int, missing: float = 0.2) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    age = rng.normal(72, 7, n)
    df = pd.DataFrame(
        {
            "age": age,
            "abeta": 1200 - 8 * age + rng.normal(0, 20, n),
            "fdg": 1.3 - 0.004 * age + rng.normal(0, 0.05, n),
            "sex": rng.choice(["F", "M"], n),
            "apoe_carrier": rng.integers(0, 2, n).astype(float),
        }
    )
    for column in ["abeta", "fdg", "apoe_carrier"]:
        df.loc[rng.random(n) < missing, column] = np.nan
    return df


def _pre(**kwargs) -> TabularPreprocessor:
    return TabularPreprocessor(continuous=CONT, categorical=CAT, binary=BIN, **kwargs)


def test_columns_and_names() -> None:
    pre = _pre().fit(_table(80, 0))
    assert pre.feature_names_out == [
        *CONT,
        *BIN,
        "sex=F",
        "sex=M",
        "abeta_missing",
        "fdg_missing",
        "apoe_carrier_missing",
    ]
    out = pre.transform(_table(30, 1))
    assert out.shape == (30, 9) and out.dtype == np.float32 and np.all(np.isfinite(out))


def test_standardisation_one_hot_and_indicators_by_hand() -> None:
    train = _table(60, 0, missing=0.0)
    train.loc[[3, 7], "abeta"] = np.nan
    pre = _pre(impute="median").fit(train)
    test = _table(10, 5, missing=0.0)
    test.loc[2, "abeta"] = np.nan
    out = pre.transform(test)
    for j, column in enumerate(CONT):
        observed = train[column].dropna()
        expected = (test[column] - observed.mean()) / observed.std(ddof=0)
        if column == "abeta":
            median_z = np.median((observed - observed.mean()) / observed.std(ddof=0))
            expected[2] = median_z
        np.testing.assert_allclose(out[:, j], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(out[:, 3], test["apoe_carrier"])
    np.testing.assert_array_equal(out[:, 4], test["sex"] == "F")
    np.testing.assert_array_equal(out[:, 5], test["sex"] == "M")
    assert pre.feature_names_out[6:] == ["abeta_missing"]
    np.testing.assert_array_equal(out[:, 6], test["abeta"].isna())


def test_iterative_imputer_matches_sklearn() -> None:
    """Our plain-number replay of the fitted imputer equals sklearn's own transform."""
    train, test = _table(120, 0), _table(50, 1, missing=0.4)
    pre = _pre(missing_indicators=False).fit(train)
    ours = pre.transform(test)
    z_train = pre._matrix(*pre._read(train, fit=False), train.index)
    z_test = pre._matrix(*pre._read(test, fit=False), test.index)
    low = [-np.inf] * 3 + [0.0] * 3
    high = [np.inf] * 3 + [1.0] * 3
    reference = IterativeImputer(
        max_iter=100, tol=1e-3, initial_strategy="median", random_state=0, min_value=low, max_value=high
    ).fit(z_train)
    np.testing.assert_allclose(ours, reference.transform(z_test), rtol=1e-5, atol=1e-5)
    assert np.all((ours[:, 3] >= 0) & (ours[:, 3] <= 1))


def test_imputation_uses_the_other_columns() -> None:
    """abeta is nearly a linear function of age, so its imputed value follows age (unlike a median fill)."""
    train, test = _table(200, 0), _table(40, 2, missing=0.0)
    truth = test["abeta"].copy()
    test["abeta"] = np.nan
    pre = _pre().fit(train)
    imputed = pre.transform(test)[:, 1] * pre._state["scale"][1] + pre._state["mean"][1]
    assert np.corrcoef(imputed, truth)[0, 1] > 0.8


def test_leakage_changing_other_rows_changes_nothing() -> None:
    df = _table(100, 0)
    train = np.arange(100) < 70
    first = _pre().fit(df[train])
    changed = df.copy()
    rng = np.random.default_rng(9)
    changed.loc[~train, "age"] = rng.normal(30, 1, (~train).sum())  # wildly different val/test rows
    changed.loc[~train, ["abeta", "fdg"]] = np.nan
    changed.loc[~train, "sex"] = "M"
    second = _pre().fit(changed[train])
    assert first.to_dict() == second.to_dict()
    np.testing.assert_array_equal(first.transform(df[train]), second.transform(changed[train]))
    # and transforming other rows does not refit
    before = json.dumps(first.to_dict())
    first.transform(changed[~train])
    assert json.dumps(first.to_dict()) == before


def test_save_load_round_trip_is_plain_json(tmp_path) -> None:
    train, test = _table(80, 0), _table(40, 3, missing=0.5)
    pre = _pre().fit(train)
    path = pre.save(tmp_path / "pre.json")
    text = path.read_text()
    json.loads(text)  # plain JSON: loading runs no code
    loaded = TabularPreprocessor.load(path)
    np.testing.assert_array_equal(loaded.transform(test), pre.transform(test))
    assert loaded.feature_names_out == pre.feature_names_out


def test_load_rejects_foreign_or_broken_files(tmp_path) -> None:
    (tmp_path / "a.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"a\.json.*invalid JSON"):
        TabularPreprocessor.load(tmp_path / "a.json")
    (tmp_path / "b.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ValueError, match=r"b\.json.*not a saved TabularPreprocessor"):
        TabularPreprocessor.load(tmp_path / "b.json")
    data = _pre().fit(_table(50, 0)).to_dict()
    data["state"]["mean"] = [0.0]
    with pytest.raises(ValueError, match="mean/scale"):
        TabularPreprocessor.from_dict(data)
    del data["state"]
    with pytest.raises(ValueError, match="malformed"):
        TabularPreprocessor.from_dict(data)


def test_nonlinear_estimator_works_but_cannot_be_saved() -> None:
    pre = _pre(estimator=ExtraTreesRegressor(n_estimators=5, random_state=0), max_iter=3).fit(_table(60, 0))
    assert np.all(np.isfinite(pre.transform(_table(20, 1, missing=0.5))))
    with pytest.raises(ValueError, match="not a linear model"):
        pre.to_dict()


def test_without_indicators() -> None:
    pre = _pre(missing_indicators=False).fit(_table(60, 0))
    assert not any(name.endswith("_missing") for name in pre.feature_names_out)
    assert pre.transform(_table(10, 1)).shape == (10, 6)


def test_unknown_category_error_or_zeros() -> None:
    train, test = _table(40, 0), _table(5, 1)
    test.loc[3, "sex"] = "X"
    with pytest.raises(ValueError, match=r"'sex', row 3: category 'X' was not seen"):
        _pre().fit(train).transform(test)
    out = _pre(unknown_category="zeros").fit(train).transform(test)
    np.testing.assert_array_equal(out[3, 4:6], [0.0, 0.0])


def test_missing_category_is_all_zero_with_indicator() -> None:
    train = _table(40, 0)
    train.loc[1, "sex"] = np.nan
    pre = _pre().fit(train)
    out = pre.transform(train)
    assert "sex_missing" in pre.feature_names_out
    np.testing.assert_array_equal(out[1, 4:6], [0.0, 0.0])
    assert out[1, pre.feature_names_out.index("sex_missing")] == 1.0


def test_impute_none_refuses_missing_values() -> None:
    pre = _pre(impute="none").fit(_table(40, 0, missing=0.0))
    with pytest.raises(ValueError, match=r"is missing on row .* impute='none'"):
        pre.transform(_table(40, 1, missing=0.3))


def test_column_missing_for_every_training_row() -> None:
    train = _table(30, 0)
    train["fdg"] = np.nan
    with pytest.raises(ValueError, match=r"\['fdg'\] are missing in every training row"):
        _pre().fit(train)


def test_absent_column_and_non_numeric_value() -> None:
    with pytest.raises(ValueError, match=r"\['abeta'\] not in the table"):
        _pre().fit(_table(20, 0).drop(columns="abeta"))
    bad = _table(20, 0).astype({"abeta": object})
    bad.loc[4, "abeta"] = ">1700"
    with pytest.raises(ValueError, match=r"'abeta', row 4: value '>1700' is not a finite number"):
        _pre().fit(bad)
    bad = _table(20, 0)
    bad.loc[2, "apoe_carrier"] = 2.0
    with pytest.raises(ValueError, match=r"binary column 'apoe_carrier', row 2"):
        _pre().fit(bad)


def test_unfitted_and_bad_arguments() -> None:
    with pytest.raises(ValueError, match="not fitted"):
        _pre().transform(_table(5, 0))
    for kwargs in ({"impute": "knn"}, {"unknown_category": "ignore"}, {"max_iter": 0}):
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            _pre(**kwargs)
    with pytest.raises(ValueError, match="more than one role"):
        TabularPreprocessor(continuous=["a"], binary=["a"])
    with pytest.raises(ValueError, match="at least one column"):
        TabularPreprocessor()


def test_constant_column_does_not_divide_by_zero() -> None:
    train = _table(30, 0, missing=0.0)
    train["fdg"] = 1.0
    out = _pre().fit(train).transform(train)
    assert np.all(out[:, 2] == 0.0)
