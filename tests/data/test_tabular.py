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
from tests.faults import fault

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
    z_train = pre._matrix(*pre._read(train, None), train)
    z_test = pre._matrix(*pre._read(test, None), test)
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


@fault(
    "tabular preprocessing",
    "a saved preprocessing file that is not JSON, foreign or incomplete",
    "ValueError naming the file",
)
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


@fault(
    "tabular preprocessing",
    "saving an imputer with a non-linear estimator (it would need pickle)",
    "ValueError: use a linear estimator to save",
)
def test_nonlinear_estimator_works_but_cannot_be_saved() -> None:
    pre = _pre(estimator=ExtraTreesRegressor(n_estimators=5, random_state=0), max_iter=3).fit(_table(60, 0))
    assert np.all(np.isfinite(pre.transform(_table(20, 1, missing=0.5))))
    with pytest.raises(ValueError, match="not a linear model"):
        pre.to_dict()


def test_without_indicators() -> None:
    pre = _pre(missing_indicators=False).fit(_table(60, 0))
    assert not any(name.endswith("_missing") for name in pre.feature_names_out)
    assert pre.transform(_table(10, 1)).shape == (10, 6)


@fault(
    "tabular preprocessing",
    "a category the training rows never had, at transform time",
    "ValueError naming column, row and value, suggesting unknown_category: zeros; or all-zero with zeros",
)
def test_unknown_category_error_or_zeros() -> None:
    train, test = _table(40, 0), _table(5, 1)
    test.loc[3, "sex"] = "X"
    with pytest.raises(
        ValueError, match=r"column 'sex', row 3: category 'X' is not among .*unknown_category: zeros"
    ):
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


@fault("tabular preprocessing", "a missing value with impute: none", "ValueError naming the column and row")
def test_impute_none_refuses_missing_values() -> None:
    pre = _pre(impute="none").fit(_table(40, 0, missing=0.0))
    with pytest.raises(ValueError, match=r"is missing on row .* impute='none'"):
        pre.transform(_table(40, 1, missing=0.3))


@fault("tabular preprocessing", "a column missing in every training row", "ValueError naming the column")
def test_column_missing_for_every_training_row() -> None:
    train = _table(30, 0)
    train["fdg"] = np.nan
    with pytest.raises(ValueError, match=r"\['fdg'\] are missing in every training row"):
        _pre().fit(train)


@fault(
    "tabular preprocessing",
    "a declared column absent from the frame",
    "ValueError naming the column and the frame's columns",
)
def test_absent_column() -> None:
    with pytest.raises(ValueError, match=r"\['abeta'\] not in the table"):
        _pre().fit(_table(20, 0).drop(columns="abeta"))


@fault(
    "tabular preprocessing",
    "a non-numeric value in a continuous column of a frame",
    "ValueError naming column, row and value",
)
def test_non_numeric_value() -> None:
    bad = _table(20, 0).astype({"abeta": object})
    bad.loc[4, "abeta"] = ">1700"
    with pytest.raises(ValueError, match=r"column 'abeta', row 4: value '>1700' is not a finite number"):
        _pre().fit(bad)


@fault("tabular preprocessing", "transform before fit", "ValueError: not fitted")
def test_unfitted() -> None:
    with pytest.raises(ValueError, match="not fitted"):
        _pre().transform(_table(5, 0))


@fault(
    "tabular preprocessing",
    "an unknown option, a column given two roles, or no column",
    "ValueError naming the argument",
)
def test_bad_arguments() -> None:
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


# ---------------------------------------------------------------- binary columns of any two values
@pytest.mark.parametrize(
    ("values", "expected"),
    [  # expected by hand: the larger value (numbers by value, text alphabetically) is 1; None = missing
        (["M", "F", None, "M", " F "], [1, 0, None, 1, 0]),
        (["Male", "Female", "Female", np.nan, "Male"], [1, 0, 0, None, 1]),
        ([True, False, None, True, False], [1, 0, None, 1, 0]),
        ([1.0, 0.0, np.nan, 1.0, 0.0], [1, 0, None, 1, 0]),
        (["1", "0.0", "", "1.0", "0"], [1, 0, None, 1, 0]),
        ([2, 1, None, 2, 1], [1, 0, None, 1, 0]),
    ],
)
def test_binary_column_of_any_two_values(tmp_path, values: list, expected: list) -> None:
    train = pd.DataFrame({"age": np.arange(len(values), dtype=float), "b": pd.Series(values, dtype=object)})
    pre = TabularPreprocessor(continuous=["age"], binary=["b"]).fit(train)
    out = pre.transform(train)
    flag = pre.feature_names_out.index("b_missing")
    for row, want in enumerate(expected):
        if want is None:
            assert 0.0 <= out[row, 1] <= 1.0 and out[row, flag] == 1.0  # imputed, clipped, flagged
        else:
            assert out[row, 1] == want and out[row, flag] == 0.0, (row, values[row])
    saved = json.loads(pre.save(tmp_path / "pre.json").read_text())
    assert len(saved["state"]["binary"]["b"]) == 2  # the mapping is in the JSON
    np.testing.assert_array_equal(TabularPreprocessor.load(tmp_path / "pre.json").transform(train), out)


@fault(
    "tabular preprocessing",
    "a binary column with a third value in the training rows",
    "ValueError naming the column, its values and the file line",
)
def test_binary_third_value_at_fit_names_column_values_and_line() -> None:
    train = pd.DataFrame({"sex": ["F", "M", "F", "X", "M"], "line": [2, 3, 4, 6, 7]})
    with pytest.raises(
        ValueError, match=r"binary column 'sex' has 3 values \['F', 'M', 'X'\] .*'X' on line 6"
    ):
        TabularPreprocessor(binary=["sex"]).fit(train)


@fault(
    "tabular preprocessing",
    "a binary column with a third value in new rows",
    "ValueError naming the file, line, column and value",
)
def test_binary_third_value_at_transform() -> None:
    pre = TabularPreprocessor(binary=["sex"]).fit(pd.DataFrame({"sex": ["F", "M", "F"]}))
    new = pd.DataFrame({"sex": ["M", "unknown"], "line": [2, 9]})
    with pytest.raises(
        ValueError, match=r"t\.csv: binary column 'sex', line 9: value 'unknown' is neither .*\['F', 'M'\]"
    ):
        pre.transform(new, source="t.csv")
    with pytest.raises(ValueError, match=r"line 9"):
        pre.check_known(new, source="t.csv")


@fault(
    "tabular preprocessing",
    "a binary text column with one value in the training rows",
    "ValueError asking to declare both values",
)
def test_binary_single_text_value_must_be_declared() -> None:
    with pytest.raises(ValueError, match=r"holds only 'M' .*declare both"):
        TabularPreprocessor(binary=["sex"]).fit(pd.DataFrame({"sex": ["M", "M", None]}))
    pre = TabularPreprocessor(binary=["sex"], binary_values={"sex": ["F", "M"]}).fit(
        pd.DataFrame({"sex": ["M", "M", None]})
    )
    np.testing.assert_array_equal(pre.transform(pd.DataFrame({"sex": ["F", "M"]}))[:, 0], [0.0, 1.0])
    zero_one = TabularPreprocessor(binary=["b"]).fit(pd.DataFrame({"b": [0.0, 0.0]}))
    assert zero_one.binary_levels == {"b": ["0", "1"]}  # 0 alone still says what 1 is
    assert zero_one.transform(pd.DataFrame({"b": [1]}))[0, 0] == 1.0


def test_declared_binary_values_fix_the_encoding_whatever_the_order() -> None:
    pre = TabularPreprocessor(binary=["sex"], binary_values={"sex": ["M", "F"]}).fit(
        pd.DataFrame({"sex": ["F", "M", "F"]})
    )
    np.testing.assert_array_equal(pre.transform(pd.DataFrame({"sex": ["F", "M"]}))[:, 0], [1.0, 0.0])
    with pytest.raises(ValueError, match=r"line 4: value 'X' is not one of its declared values \['M', 'F'\]"):
        TabularPreprocessor(binary=["sex"], binary_values={"sex": ["M", "F"]}).fit(
            pd.DataFrame({"sex": ["F", "M", "X"], "line": [2, 3, 4]})
        )
    for bad in ({"sex": ["M"]}, {"sex": ["M", "M"]}, {"other": ["a", "b"]}):
        with pytest.raises(ValueError, match="binary values"):
            TabularPreprocessor(binary=["sex"], binary_values=bad)


def test_declared_categories_give_stable_one_hot_columns() -> None:
    pre = TabularPreprocessor(categorical=["site"], categories={"site": ["b", "a", "c"]}).fit(
        pd.DataFrame({"site": ["a", "b", "a"]})  # "c" declared, absent from training
    )
    assert pre.feature_names_out == ["site=b", "site=a", "site=c"]
    np.testing.assert_array_equal(
        pre.transform(pd.DataFrame({"site": ["c", "a"]})), [[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]]
    )
    with pytest.raises(ValueError, match=r"line 3: category 'd' is not one of its declared categories"):
        TabularPreprocessor(categorical=["site"], categories={"site": ["a", "b"]}).fit(
            pd.DataFrame({"site": ["a", "d"], "line": [2, 3]})
        )


@fault(
    "tabular preprocessing",
    "a category seen in only one row, which lands outside the fold's training rows",
    "check_known fails before training, naming file, line, column and value, and suggesting "
    "unknown_category: zeros or declaring the categories",
)
def test_check_known_names_file_line_column_and_value() -> None:
    frame = pd.DataFrame(
        {"site": ["a", "b", "a", "b", "rare"], "age": [60.0, 61, 62, 63, 64], "line": [2, 3, 4, 5, 6]},
        index=np.arange(5, dtype=np.int64),
    )
    train = frame.index < 4
    pre = TabularPreprocessor(continuous=["age"], categorical=["site"]).fit(frame[train])
    with pytest.raises(ValueError) as err:
        pre.check_known(frame[~train], source="cohort.csv")
    message = str(err.value)
    assert message.startswith("cohort.csv: column 'site', line 6: category 'rare' is not among")
    assert "unknown_category: zeros" in message and "tabular.categorical" in message
    assert "np.int64" not in message and "row 4" not in message
    pre.check_known(frame[train], source="cohort.csv")  # the training rows themselves pass
    zeros = TabularPreprocessor(continuous=["age"], categorical=["site"], unknown_category="zeros")
    zeros.fit(frame[train]).check_known(frame[~train], source="cohort.csv")  # the rule applies: no error


def test_every_row_is_imputed_on_its_own() -> None:
    """A row's features do not depend on the other rows, even when a column is missing in the whole batch."""
    train, test = _table(120, 0), _table(12, 4, missing=0.0)
    pre = _pre().fit(train)
    blanked = test.copy()
    blanked.loc[5, ["abeta", "fdg"]] = np.nan
    blanked.loc[7, ["age", "abeta", "fdg", "apoe_carrier"]] = np.nan  # every numeric value of the row missing
    batch = pre.transform(blanked)
    for row in (5, 7):
        alone = pre.transform(blanked.loc[[row]])  # every value of these columns missing in the batch of one
        np.testing.assert_allclose(alone[0], batch[row], rtol=1e-6, atol=1e-6)
    # the slow reference: the row imputed by hand, step by step, from the saved steps
    spec = pre.to_dict()["state"]["imputer"]
    x = pre._matrix(*pre._read(blanked.loc[[7]], None), blanked.loc[[7]])[0]
    missing = np.isnan(x)
    x = np.where(missing, spec["initial"], x)
    for step in spec["steps"]:
        if missing[step["feature"]]:
            value = sum(c * x[i] for c, i in zip(step["coef"], step["neighbors"])) + step["intercept"]
            x[step["feature"]] = min(max(value, spec["low"][step["feature"]]), spec["high"][step["feature"]])
    np.testing.assert_allclose(batch[7, : len(x)], x, rtol=1e-5, atol=1e-5)


def test_files_saved_before_binary_levels_still_load() -> None:
    pre = _pre().fit(_table(40, 0))
    data = pre.to_dict()
    del data["state"]["binary"], data["categories_declared"], data["binary_values"]
    old = TabularPreprocessor.from_dict(data)
    assert old.binary_levels == {"apoe_carrier": ["0", "1"]}
    np.testing.assert_array_equal(old.transform(_table(10, 1)), pre.transform(_table(10, 1)))
