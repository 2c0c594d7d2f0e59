"""Leakage-free tabular preprocessing (paper §3.3): standardise, one-hot, impute iteratively, flag missing values.

Fitted on training rows only (fitting on every subject, test set included, would leak the test set's
statistics into training). Output columns, in order:

    continuous  z = (x − μ) / σ         μ, σ over the observed training values (σ = 1 if constant)
    binary      0/1                      the column's two values (declared, or the training rows' two, smaller
                                         first: 0 < 1, False < True, 'F' < 'M'); imputed values clipped to [0, 1]
    one-hot     [x == c] per category c (declared, or the training rows' sorted); a missing category is all-zero
    indicators  [x is missing]           for each column with a missing value in the training rows

Missing continuous/binary values are imputed in the standardised space by round-robin regression
(sklearn's ``IterativeImputer``, BayesianRidge by default, median start), each column regressed on all others,
one-hot columns included. A fitted linear imputer is a list of steps ``x_f ← clip(x_N · β + b)`` on the rows
missing ``f``, so the whole preprocessor is plain numbers and saves as JSON: loading a file from someone else
runs no code (no pickle).
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.experimental import enable_iterative_imputer  # noqa: F401  (registers IterativeImputer)
from sklearn.impute import IterativeImputer
from sklearn.linear_model._base import LinearModel

from hyperfusion.atomic import write_text_atomic
from hyperfusion.data.binary import binary_key, binary_keys, ordered

IMPUTE = ("iterative", "median", "none")
UNKNOWN = ("error", "zeros")
_FORMAT = "hyperfusion.TabularPreprocessor/1"


class TabularPreprocessor:
    """Turns a table's tabular columns into a float32 feature matrix, fitted on training rows only.

    Args:
        continuous, categorical, binary: column names by role. A binary column holds any two values
            ('M'/'F', True/False, 0/1, ...; see `hyperfusion.data.binary`), missing values allowed.
        categories: declared categories of some categorical columns (their one-hot columns, in this order,
            whether or not the training rows hold them); the others learn theirs from the training rows.
        binary_values: declared (value encoded 0, value encoded 1) of some binary columns; the others take
            the training rows' two values in order (numbers by value, then text alphabetically).
        impute: ``"iterative"`` (paper), ``"median"``, or ``"none"`` (a missing value is then an error).
        missing_indicators: append ``<col>_missing`` columns (paper §3.3); turn off for the paper's
            "unfair cue" caveat (missingness can reveal the class).
        unknown_category: a category unseen in training at transform time: ``"error"`` or ``"zeros"``.
        estimator: the iterative imputer's regressor (default BayesianRidge). Only linear models (with
            ``coef_`` and ``intercept_``) can be saved.
        max_iter, tol, seed: passed to ``IterativeImputer`` (``seed`` → ``random_state``).

    Errors about a row name its file line when the frame has a ``line`` column (a `Cohort` frame does),
    else its index label, and the file when a ``source`` is given.

    Raises:
        ValueError: unknown option values, repeated or no columns, declarations of undeclared columns or
            with the wrong number of values.

    Example:
        >>> pre = TabularPreprocessor(continuous=["AGE"], categorical=["PTGENDER"])
        >>> X = pre.fit(train_df).transform(test_df)  # doctest: +SKIP
    """

    def __init__(
        self,
        continuous: Sequence[str] = (),
        categorical: Sequence[str] = (),
        binary: Sequence[str] = (),
        *,
        categories: Mapping[str, Sequence[Any]] | None = None,
        binary_values: Mapping[str, Sequence[Any]] | None = None,
        impute: str = "iterative",
        missing_indicators: bool = True,
        unknown_category: str = "error",
        estimator: Any | None = None,
        max_iter: int = 100,
        tol: float = 1e-3,
        seed: int = 0,
    ) -> None:
        for name, value in (("continuous", continuous), ("categorical", categorical), ("binary", binary)):
            if isinstance(value, str):
                raise ValueError(f"TabularPreprocessor: {name} must be a list of column names, got {value!r}")
        self.continuous = [str(c) for c in continuous]
        self.categorical = [str(c) for c in categorical]
        self.binary = [str(c) for c in binary]
        columns = self.continuous + self.binary + self.categorical
        if not columns:
            raise ValueError("TabularPreprocessor needs at least one column")
        repeated = sorted({c for c in columns if columns.count(c) > 1})
        if repeated:
            raise ValueError(f"TabularPreprocessor: column(s) {repeated} given more than one role")
        if impute not in IMPUTE:
            raise ValueError(f"impute must be one of {IMPUTE}, got {impute!r}")
        if unknown_category not in UNKNOWN:
            raise ValueError(f"unknown_category must be one of {UNKNOWN}, got {unknown_category!r}")
        if not (isinstance(max_iter, int) and max_iter > 0):
            raise ValueError(f"max_iter must be a positive integer, got {max_iter!r}")
        self.categories = _declared_categories(categories or {}, self.categorical)
        self.binary_values = _declared_binary(binary_values or {}, self.binary)
        self.impute = impute
        self.missing_indicators = bool(missing_indicators)
        self.unknown_category = unknown_category
        self.estimator = estimator
        self.max_iter = max_iter
        self.tol = float(tol)
        self.seed = int(seed)
        self._state: dict[str, Any] | None = None
        self._sklearn: IterativeImputer | None = None

    # ---------------------------------------------------------------- fitting
    def fit(self, df: pd.DataFrame, *, source: str | None = None) -> TabularPreprocessor:
        """Learn every statistic from ``df`` (the training rows, and only those).

        Raises:
            ValueError: a column absent from ``df`` or missing in every row, a non-numeric value in a
                continuous column, a binary column with more than two values (or one value that does not
                say which the other is), a value outside a declaration; naming the column, line and value.
        """
        _check_frame(df, self.continuous + self.binary + self.categorical)
        binary = {c: binary_keys(df[c]) for c in self.binary}
        texts = {c: _category_texts(df[c]) for c in self.categorical}
        all_missing = [c for c in self.continuous if df[c].isna().all()]
        all_missing += [c for c in self.binary if binary[c].isna().all()]
        all_missing += [c for c in self.categorical if texts[c].isna().all()]
        if all_missing:
            raise ValueError(
                f"{_prefix(source)}column(s) {all_missing} are missing in every training row; cannot fit them"
            )
        self._state = {
            "binary": {c: self._binary_levels(c, binary[c], df, source) for c in self.binary},
            "categories": {c: self._category_levels(c, texts[c], df, source) for c in self.categorical},
        }
        numeric, categories = self._read(df, source)
        z = numeric[self.continuous].to_numpy(dtype=np.float64)
        mean = np.nanmean(z, axis=0) if z.shape[1] else np.zeros(0)
        std = np.nanstd(z, axis=0) if z.shape[1] else np.zeros(0)
        std = np.where(std > 0, std, 1.0)
        missing_cols = [c for c in self.continuous + self.binary if numeric[c].isna().any()]
        missing_cols += [c for c in self.categorical if categories[c].isna().any()]
        self._state |= {
            "mean": mean.tolist(),
            "scale": std.tolist(),
            "indicators": [c for c in self.continuous + self.binary + self.categorical if c in missing_cols]
            if self.missing_indicators
            else [],
            "imputer": None,
        }
        matrix = self._matrix(numeric, categories, df, source)
        self._state["imputer"] = self._fit_imputer(matrix)
        return self

    def fit_transform(self, df: pd.DataFrame) -> np.ndarray:
        return self.fit(df).transform(df)

    def _binary_levels(self, column: str, keys: pd.Series, df: pd.DataFrame, source: str | None) -> list[str]:
        """(value encoded 0, value encoded 1) of a binary column, from its declaration or the training rows."""
        seen = ordered(keys.dropna())
        declared = self.binary_values.get(column)
        if declared is not None:
            extra = [v for v in seen if v not in declared]
            if extra:
                row = keys.index[keys.isin(extra).to_numpy()][0]
                raise ValueError(
                    f"{_prefix(source)}binary column {column!r}, {_at(df, row)}: value {_shown(df[column][row])} is "
                    f"not one of its declared values {declared}"
                )
            return declared
        if len(seen) > 2:
            row = keys.index[(keys == seen[2]).to_numpy()][0]
            raise ValueError(
                f"{_prefix(source)}binary column {column!r} has {len(seen)} values {seen} in the training rows "
                f"(e.g. {_shown(df[column][row])} on {_at(df, row)}); a binary column takes two values: map other "
                "spellings onto them (the manifest's 'values') or declare the column categorical"
            )
        if len(seen) == 2:
            return seen
        if seen[0] in ("0", "1"):
            return ["0", "1"]
        if seen[0] in ("False", "True"):
            return ["False", "True"]
        raise ValueError(
            f"{_prefix(source)}binary column {column!r} holds only {seen[0]!r} in the training rows, which does "
            f"not say what its other value is; declare both (binary_values={{{column!r}: [..., {seen[0]!r}]}}; "
            f"in the manifest: tabular.binary: {{{column}: [..., {seen[0]}]}})"
        )

    def _category_levels(
        self, column: str, texts: pd.Series, df: pd.DataFrame, source: str | None
    ) -> list[str]:
        declared = self.categories.get(column)
        if declared is None:
            return sorted(texts.dropna().unique().tolist())
        extra = texts.notna() & ~texts.isin(declared)
        if extra.any():
            row = texts.index[extra.to_numpy()][0]
            raise ValueError(
                f"{_prefix(source)}column {column!r}, {_at(df, row)}: category {texts[row]!r} is not one of its "
                f"declared categories {declared}"
            )
        return declared

    def _fit_imputer(self, matrix: np.ndarray) -> dict[str, Any] | None:
        n_num = len(self.continuous) + len(self.binary)
        low = np.r_[np.full(len(self.continuous), -np.inf), np.zeros(matrix.shape[1] - len(self.continuous))]
        high = np.r_[np.full(len(self.continuous), np.inf), np.ones(matrix.shape[1] - len(self.continuous))]
        medians = np.nanmedian(matrix, axis=0) if matrix.shape[1] else np.zeros(0)
        base = {"initial": medians.tolist(), "low": low.tolist(), "high": high.tolist(), "steps": []}
        if self.impute == "none":
            return None
        if self.impute == "median" or n_num == 0 or matrix.shape[1] < 2:
            return base
        imputer = IterativeImputer(
            estimator=self.estimator,
            max_iter=self.max_iter,
            tol=self.tol,
            initial_strategy="median",
            random_state=self.seed,
            min_value=low,
            max_value=high,
        )
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*early stopping criterion not reached.*")
            imputer.fit(matrix)
        self._sklearn = imputer
        steps = []
        for triplet in imputer.imputation_sequence_:
            est = triplet.estimator
            if not (isinstance(est, LinearModel) and hasattr(est, "coef_") and np.ndim(est.coef_) == 1):
                base["steps"] = None  # not expressible as plain numbers: transform goes through sklearn
                return base
            steps.append(
                {
                    "feature": int(triplet.feat_idx),
                    "neighbors": [int(i) for i in triplet.neighbor_feat_idx],
                    "coef": [float(v) for v in est.coef_],
                    "intercept": float(est.intercept_),
                }
            )
        base["initial"] = [float(v) for v in imputer.initial_imputer_.statistics_]
        base["steps"] = steps
        return base

    # ---------------------------------------------------------------- transforming
    @property
    def is_fitted(self) -> bool:
        return self._state is not None

    @property
    def feature_names_out(self) -> list[str]:
        """Names of `transform`'s columns (see the module docstring for their order)."""
        state = self._fitted()
        onehot = [f"{c}={v}" for c in self.categorical for v in state["categories"][c]]
        return [*self.continuous, *self.binary, *onehot, *(f"{c}_missing" for c in state["indicators"])]

    @property
    def binary_levels(self) -> dict[str, list[str]]:
        """Per binary column, its (value encoded 0, value encoded 1) as canonical text."""
        return {c: list(v) for c, v in self._fitted()["binary"].items()}

    def transform(self, df: pd.DataFrame, *, source: str | None = None) -> np.ndarray:
        """Features of ``df``'s rows as float32 ``[len(df), len(feature_names_out)]``; ``df`` is not refitted.

        Each row is encoded on its own: a value missing in one row, or in every row of ``df`` (a new subject
        without CSF values), is imputed and flagged the same way.

        Raises:
            ValueError: as `check_known`.
        """
        numeric, categories, matrix = self._checked(df, source)
        missing = np.isnan(matrix)
        if missing.any():
            matrix = self._impute(matrix, missing)
        columns = [matrix]
        for column in self._fitted()["indicators"]:
            values = categories[column] if column in self.categorical else numeric[column]
            columns.append(values.isna().to_numpy(dtype=np.float64)[:, None])
        return np.concatenate(columns, axis=1).astype(np.float32)

    def check_known(self, df: pd.DataFrame, *, source: str | None = None) -> None:
        """Fail now, before any training, on a row of ``df`` that `transform` could not encode.

        Call it with a fold's validation and test rows once the fold's training rows are fitted: a category
        the training rows never had (unless ``unknown_category="zeros"``), a third value of a binary
        column, a non-numeric continuous value, or a missing value with ``impute="none"``.

        Raises:
            ValueError: naming ``source`` (the table file), the row's file line, the column and the value, and
                what to change (``unknown_category: zeros``, or declaring the categories).
        """
        self._checked(df, source)

    def _checked(self, df: pd.DataFrame, source: str | None) -> tuple[pd.DataFrame, dict, np.ndarray]:
        state = self._fitted()
        _check_frame(df, self.continuous + self.binary + self.categorical)
        numeric, categories = self._read(df, source)
        matrix = self._matrix(numeric, categories, df, source)
        missing = np.isnan(matrix)
        if missing.any() and state["imputer"] is None:
            row, col = np.argwhere(missing)[0]
            name = (self.continuous + self.binary)[col]
            raise ValueError(
                f"{_prefix(source)}column {name!r} is missing on {_at(df, df.index[row])} and impute='none'; "
                "choose impute='iterative' or 'median'"
            )
        return numeric, categories, matrix

    def _impute(self, matrix: np.ndarray, missing: np.ndarray) -> np.ndarray:
        spec = self._fitted()["imputer"]
        if spec["steps"] is None:  # non-linear estimator, kept in memory only
            if self._sklearn is None:
                raise ValueError("this preprocessor's imputer was not saved; refit it")
            return self._sklearn.transform(matrix)
        # Row by row, whatever else is in the batch: a row's result never depends on the other rows
        # (sklearn skips the regression steps when every value of the whole batch is missing; this does not).
        filled = np.where(missing, np.asarray(spec["initial"])[None, :], matrix)
        low, high = np.asarray(spec["low"]), np.asarray(spec["high"])
        for step in spec["steps"]:
            rows = missing[:, step["feature"]]
            if rows.any():
                pred = filled[np.ix_(rows, step["neighbors"])] @ np.asarray(step["coef"]) + step["intercept"]
                f = step["feature"]
                filled[rows, f] = np.clip(pred, low[f], high[f])
        return filled

    def _matrix(
        self,
        numeric: pd.DataFrame,
        categories: dict[str, pd.Series],
        df: pd.DataFrame,
        source: str | None = None,
    ) -> np.ndarray:
        """[z-scored continuous, binary, one-hot] with NaN where continuous/binary values are missing."""
        state = self._state
        n = len(df)
        z = (numeric[self.continuous].to_numpy(dtype=np.float64) - np.asarray(state["mean"])) / np.asarray(
            state["scale"]
        )
        blocks = [z.reshape(n, -1), numeric[self.binary].to_numpy(dtype=np.float64).reshape(n, -1)]
        for column in self.categorical:
            known = state["categories"][column]
            values = categories[column]
            unseen = values.notna() & ~values.isin(known)
            if unseen.any() and self.unknown_category == "error":
                row = values.index[unseen.to_numpy()][0]
                origin = "declared" if column in self.categories else "of the training rows"
                raise ValueError(
                    f"{_prefix(source)}column {column!r}, {_at(df, row)}: category {values[row]!r} is not among "
                    f"the categories {origin} {known} ({int(unseen.sum())} row(s) of {n} have such categories); "
                    "set unknown_category: zeros (the run config's tabular.unknown_category) to encode them as "
                    f"all-zero, or declare the column's categories (manifest: tabular.categorical: "
                    f"{{{column}: [...]}})"
                )
            onehot = [(values == v).to_numpy(dtype=np.float64) for v in known]
            blocks.append(np.stack(onehot, axis=1) if onehot else np.zeros((n, 0)))
        return np.concatenate(blocks, axis=1)

    def _read(self, df: pd.DataFrame, source: str | None) -> tuple[pd.DataFrame, dict[str, pd.Series]]:
        """Continuous values as float (NaN = missing), binary values as 0/1, categories as text."""
        levels = self._fitted()["binary"]
        numeric = pd.DataFrame(index=df.index)
        for column in self.continuous:
            values = pd.to_numeric(df[column], errors="coerce").astype(np.float64)
            bad = (values.isna() & df[column].notna()) | np.isinf(values)
            if bad.any():
                row = df.index[bad.to_numpy()][0]
                raise ValueError(
                    f"{_prefix(source)}column {column!r}, {_at(df, row)}: value {_shown(df[column][row])} is not a "
                    "finite number"
                )
            numeric[column] = values
        for column in self.binary:
            keys = binary_keys(df[column])
            code = {levels[column][0]: 0.0, levels[column][1]: 1.0}
            off = keys.notna() & ~keys.isin(list(code))
            if off.any():
                row = df.index[off.to_numpy()][0]
                raise ValueError(
                    f"{_prefix(source)}binary column {column!r}, {_at(df, row)}: value {_shown(df[column][row])} is "
                    f"neither of its two values {levels[column]} (encoded 0 and 1)"
                )
            numeric[column] = keys.map(code).astype(np.float64)
        categories = {c: _category_texts(df[c]) for c in self.categorical}
        return numeric, categories

    def _fitted(self) -> dict[str, Any]:
        if self._state is None:
            raise ValueError("TabularPreprocessor is not fitted; call fit(train_df) first")
        return self._state

    # ---------------------------------------------------------------- persistence (no pickle)
    def to_dict(self) -> dict[str, Any]:
        """Everything needed to transform, as JSON-able plain data.

        Raises:
            ValueError: not fitted, or an imputer estimator that is not linear (it would need pickle).
        """
        state = self._fitted()
        if state["imputer"] is not None and state["imputer"]["steps"] is None:
            raise ValueError(
                f"the imputer's estimator {self.estimator!r} is not a linear model, so it cannot be saved "
                "without pickle; use a linear estimator (e.g. BayesianRidge, the default) to save"
            )
        return {
            "format": _FORMAT,
            "continuous": self.continuous,
            "categorical": self.categorical,
            "binary": self.binary,
            "categories_declared": self.categories,
            "binary_values": self.binary_values,
            "impute": self.impute,
            "missing_indicators": self.missing_indicators,
            "unknown_category": self.unknown_category,
            "max_iter": self.max_iter,
            "tol": self.tol,
            "seed": self.seed,
            "state": json.loads(json.dumps(state, allow_nan=True)),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TabularPreprocessor:
        """Rebuild a fitted preprocessor from `to_dict` output (plain data only; runs no code).

        Raises:
            ValueError: wrong format tag or missing/ill-shaped fields.
        """
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            got = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise ValueError(f"not a saved TabularPreprocessor (format {got!r}, expected {_FORMAT!r})")
        try:
            pre = cls(
                continuous=data["continuous"],
                categorical=data["categorical"],
                binary=data["binary"],
                categories=data.get("categories_declared"),
                binary_values=data.get("binary_values"),
                impute=data["impute"],
                missing_indicators=data["missing_indicators"],
                unknown_category=data["unknown_category"],
                max_iter=data["max_iter"],
                tol=data["tol"],
                seed=data["seed"],
            )
            state = dict(data["state"])
            # files written before binary columns took any two values held 0/1 numbers
            state.setdefault("binary", {c: ["0", "1"] for c in pre.binary})
            if set(state["binary"]) != set(pre.binary) or any(
                not isinstance(v, list) or len(v) != 2 or len(set(map(str, v))) != 2
                for v in state["binary"].values()
            ):
                raise ValueError(f"binary levels must give two values for each of {pre.binary}")
            state["binary"] = {c: [str(x) for x in v] for c, v in state["binary"].items()}
            n_cont = len(pre.continuous)
            width = n_cont + len(pre.binary) + sum(len(state["categories"][c]) for c in pre.categorical)
            if len(state["mean"]) != n_cont or len(state["scale"]) != n_cont:
                raise ValueError(f"mean/scale need {n_cont} values")
            imputer = state["imputer"]
            if imputer is not None:
                if any(len(imputer[k]) != width for k in ("initial", "low", "high")):
                    raise ValueError(f"imputer statistics need {width} values")
                for step in imputer["steps"]:
                    if not 0 <= step["feature"] < width or len(step["coef"]) != len(step["neighbors"]):
                        raise ValueError(f"bad imputation step {step}")
                    if not all(0 <= i < width for i in step["neighbors"]) or not math.isfinite(
                        step["intercept"]
                    ):
                        raise ValueError(f"bad imputation step {step}")
        except (KeyError, TypeError) as err:
            raise ValueError(f"saved TabularPreprocessor is incomplete or malformed: {err!r}") from None
        pre._state = state
        return pre

    def save(self, path: str | Path) -> Path:
        """Write `to_dict` as JSON, atomically."""
        return write_text_atomic(path, json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: str | Path) -> TabularPreprocessor:
        """Read a preprocessor written by `save`.

        Raises:
            ValueError: not JSON or not a saved preprocessor, naming the file.
        """
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not a saved TabularPreprocessor (invalid JSON: {err})") from None
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None


def _check_frame(df: pd.DataFrame, columns: list[str]) -> None:
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"expected a pandas DataFrame, got {type(df).__name__}")
    absent = [c for c in columns if c not in df.columns]
    if absent:
        raise ValueError(f"column(s) {absent} not in the table (its columns: {list(df.columns)})")
    if df.empty:
        raise ValueError("the table has no rows")


def _category_texts(values: pd.Series) -> pd.Series:
    return values.map(lambda v: np.nan if pd.isna(v) else str(v).strip()).astype(object)


def _shown(value: Any) -> str:
    """A value as the user wrote it: ``2.0``, not ``np.float64(2.0)``."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _prefix(source: str | None) -> str:
    return f"{source}: " if source else ""


def _at(df: pd.DataFrame, label: Any) -> str:
    """Where a row is, for a person: its file line when the frame has a ``line`` column, else its index label."""
    if "line" in df.columns:
        line = df.at[label, "line"]
        if pd.notna(line):
            return f"line {int(line)}"
    plain = label.item() if isinstance(label, np.generic) else label
    return f"row {plain!r}"


def _declared_categories(declared: Mapping[str, Sequence[Any]], columns: list[str]) -> dict[str, list[str]]:
    out = {}
    for column, values in declared.items():
        if column not in columns:
            raise ValueError(
                f"categories declared for {column!r}, which is not a categorical column {columns}"
            )
        if isinstance(values, str) or not values:
            raise ValueError(f"categories of {column!r} must be a non-empty list, got {values!r}")
        texts = [str(v).strip() for v in values]
        if len(set(texts)) != len(texts):
            raise ValueError(f"categories of {column!r} repeat a value: {texts}")
        out[str(column)] = texts
    return out


def _declared_binary(declared: Mapping[str, Sequence[Any]], columns: list[str]) -> dict[str, list[str]]:
    out = {}
    for column, values in declared.items():
        if column not in columns:
            raise ValueError(f"binary values declared for {column!r}, which is not a binary column {columns}")
        keys = [binary_key(v) for v in values] if not isinstance(values, str) else []
        if len(keys) != 2 or None in keys or keys[0] == keys[1]:
            raise ValueError(
                f"binary values of {column!r} must be two different values (encoded 0, encoded 1), got {values!r}"
            )
        out[str(column)] = keys
    return out
