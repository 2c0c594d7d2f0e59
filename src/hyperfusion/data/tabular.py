"""Leakage-free tabular preprocessing (paper §3.3): standardise, one-hot, impute iteratively, flag missing values.

Fitted on training rows only — the authors' code fits on every subject, test set included
(``shared/research/reference.md`` B9). Output columns, in order:

    continuous  z = (x − μ) / σ         μ, σ over the observed training values (σ = 1 if constant)
    binary      0/1                      imputed values clipped to [0, 1]
    one-hot     [x == c] per training category c (sorted); a missing category is all-zero
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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.experimental import enable_iterative_imputer  # noqa: F401  (registers IterativeImputer)
from sklearn.impute import IterativeImputer
from sklearn.linear_model._base import LinearModel

from hyperfusion.atomic import write_text_atomic

IMPUTE = ("iterative", "median", "none")
UNKNOWN = ("error", "zeros")
_FORMAT = "hyperfusion.TabularPreprocessor/1"


class TabularPreprocessor:
    """Turns a table's tabular columns into a float32 feature matrix, fitted on training rows only.

    Args:
        continuous, categorical, binary: column names by role.
        impute: ``"iterative"`` (paper), ``"median"``, or ``"none"`` (a missing value is then an error).
        missing_indicators: append ``<col>_missing`` columns (paper §3.3); turn off for the paper's
            "unfair cue" caveat (missingness can reveal the class).
        unknown_category: a category unseen in training at transform time: ``"error"`` or ``"zeros"``.
        estimator: the iterative imputer's regressor (default BayesianRidge). Only linear models (with
            ``coef_`` and ``intercept_``) can be saved.
        max_iter, tol, seed: passed to ``IterativeImputer`` (``seed`` → ``random_state``).

    Raises:
        ValueError: unknown option values, repeated or no columns.

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
        impute: str = "iterative",
        missing_indicators: bool = True,
        unknown_category: str = "error",
        estimator: Any | None = None,
        max_iter: int = 100,
        tol: float = 1e-3,
        seed: int = 0,
    ) -> None:
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
    def fit(self, df: pd.DataFrame) -> TabularPreprocessor:
        """Learn every statistic from ``df`` (the training rows, and only those).

        Raises:
            ValueError: a column absent from ``df``, missing in every row, or holding a non-numeric value
                in a numeric role; naming the column (and the row).
        """
        numeric, categories = self._read(df, fit=True)
        all_missing = [c for c in numeric if numeric[c].isna().all()]
        all_missing += [c for c in self.categorical if categories[c].isna().all()]
        if all_missing:
            raise ValueError(f"column(s) {all_missing} are missing in every training row; cannot fit them")
        z = numeric[self.continuous].to_numpy(dtype=np.float64)
        mean = np.nanmean(z, axis=0) if z.shape[1] else np.zeros(0)
        std = np.nanstd(z, axis=0) if z.shape[1] else np.zeros(0)
        std = np.where(std > 0, std, 1.0)
        levels = {c: sorted(categories[c].dropna().unique().tolist()) for c in self.categorical}
        missing_cols = [c for c in self.continuous + self.binary if numeric[c].isna().any()]
        missing_cols += [c for c in self.categorical if categories[c].isna().any()]
        self._state = {
            "mean": mean.tolist(),
            "scale": std.tolist(),
            "categories": levels,
            "indicators": [c for c in self.continuous + self.binary + self.categorical if c in missing_cols]
            if self.missing_indicators
            else [],
            "imputer": None,
        }
        matrix = self._matrix(numeric, categories, df.index)
        self._state["imputer"] = self._fit_imputer(matrix)
        return self

    def fit_transform(self, df: pd.DataFrame) -> np.ndarray:
        return self.fit(df).transform(df)

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

    def transform(self, df: pd.DataFrame) -> np.ndarray:
        """Features of ``df``'s rows as float32 ``[len(df), len(feature_names_out)]``; ``df`` is not refitted.

        Raises:
            ValueError: as `fit`; also an unseen category (``unknown_category="error"``), or a missing value
                with ``impute="none"``, naming column, row and value.
        """
        state = self._fitted()
        numeric, categories = self._read(df, fit=False)
        matrix = self._matrix(numeric, categories, df.index)
        missing = np.isnan(matrix)
        if missing.any():
            if state["imputer"] is None:
                row, col = np.argwhere(missing)[0]
                name = (self.continuous + self.binary)[col]
                raise ValueError(
                    f"column {name!r} is missing on row {df.index[row]!r} and impute='none'; "
                    "choose impute='iterative' or 'median'"
                )
            matrix = self._impute(matrix, missing)
        columns = [matrix]
        for column in state["indicators"]:
            source = categories[column] if column in self.categorical else numeric[column]
            columns.append(source.isna().to_numpy(dtype=np.float64)[:, None])
        return np.concatenate(columns, axis=1).astype(np.float32)

    def _impute(self, matrix: np.ndarray, missing: np.ndarray) -> np.ndarray:
        spec = self._fitted()["imputer"]
        if spec["steps"] is None:  # non-linear estimator, kept in memory only
            if self._sklearn is None:
                raise ValueError("this preprocessor's imputer was not saved; refit it")
            return self._sklearn.transform(matrix)
        filled = np.where(missing, np.asarray(spec["initial"])[None, :], matrix)
        if missing.all():
            return filled
        low, high = np.asarray(spec["low"]), np.asarray(spec["high"])
        for step in spec["steps"]:
            rows = missing[:, step["feature"]]
            if rows.any():
                pred = filled[np.ix_(rows, step["neighbors"])] @ np.asarray(step["coef"]) + step["intercept"]
                f = step["feature"]
                filled[rows, f] = np.clip(pred, low[f], high[f])
        return filled

    def _matrix(self, numeric: pd.DataFrame, categories: dict[str, pd.Series], index: pd.Index) -> np.ndarray:
        """[z-scored continuous, binary, one-hot] with NaN where continuous/binary values are missing."""
        state = self._state
        z = (numeric[self.continuous].to_numpy(dtype=np.float64) - np.asarray(state["mean"])) / np.asarray(
            state["scale"]
        )
        blocks = [
            z.reshape(len(index), -1),
            numeric[self.binary].to_numpy(dtype=np.float64).reshape(len(index), -1),
        ]
        for column in self.categorical:
            known = state["categories"][column]
            values = categories[column]
            unseen = values.notna() & ~values.isin(known)
            if unseen.any() and self.unknown_category == "error":
                row = values.index[unseen.to_numpy()][0]
                raise ValueError(
                    f"column {column!r}, row {row!r}: category {values[row]!r} was not seen in training "
                    f"(known: {known}); set unknown_category='zeros' to encode it as all-zero"
                )
            blocks.append(np.stack([(values == v).to_numpy(dtype=np.float64) for v in known], axis=1))
        return np.concatenate(blocks, axis=1)

    def _read(self, df: pd.DataFrame, *, fit: bool) -> tuple[pd.DataFrame, dict[str, pd.Series]]:
        if not isinstance(df, pd.DataFrame):
            raise ValueError(f"expected a pandas DataFrame, got {type(df).__name__}")
        absent = [c for c in self.continuous + self.binary + self.categorical if c not in df.columns]
        if absent:
            raise ValueError(f"column(s) {absent} not in the table (its columns: {list(df.columns)})")
        if df.empty:
            raise ValueError("the table has no rows")
        numeric = pd.DataFrame(index=df.index)
        for column in self.continuous + self.binary:
            values = pd.to_numeric(df[column], errors="coerce").astype(np.float64)
            bad = (values.isna() & df[column].notna()) | np.isinf(values)
            if bad.any():
                row = df.index[bad.to_numpy()][0]
                raise ValueError(
                    f"column {column!r}, row {row!r}: value {df[column][row]!r} is not a finite number"
                )
            if column in self.binary:
                off = values.notna() & ~values.isin([0.0, 1.0])
                if off.any():
                    row = df.index[off.to_numpy()][0]
                    raise ValueError(
                        f"binary column {column!r}, row {row!r}: value {df[column][row]!r} is not 0/1"
                    )
            numeric[column] = values
        categories = {
            c: df[c].map(lambda v: np.nan if pd.isna(v) else str(v).strip()).astype(object)
            for c in self.categorical
        }
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
                impute=data["impute"],
                missing_indicators=data["missing_indicators"],
                unknown_category=data["unknown_category"],
                max_iter=data["max_iter"],
                tol=data["tol"],
                seed=data["seed"],
            )
            state = data["state"]
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
