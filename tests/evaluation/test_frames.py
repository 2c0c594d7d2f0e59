"""The report's optional tables: accepted shapes, and a clear error for each malformed one."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from hyperfusion.evaluation import frames
from tests.faults import fault


def _predictions() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "method": ["A", "A", "B"],
            "split_seed": [0, 0, 0],
            "version": ["0", "0", "0"],
            "subject_id": ["s1", "s2", "s1"],
            "p_CN": [0.7, 0.2, 0.5],
            "p_AD": [0.3, 0.8, 0.5],
            "predicted": ["CN", "AD", "CN"],
            "target": ["CN", "CN", "AD"],
        }
    )


def test_predictions_with_class_names_or_indices() -> None:
    df, names = frames.check_predictions(_predictions())
    assert names == ["CN", "AD"]
    assert list(df["class_index"]) == [0, 0, 1]
    by_index = _predictions().assign(target=[0, 0, 1])
    assert list(frames.check_predictions(by_index)[0]["class_index"]) == [0, 0, 1]


def test_regression_predictions_are_skipped() -> None:
    reg = pd.DataFrame(
        {
            "method": ["A"],
            "split_seed": [0],
            "version": ["top5"],
            "subject_id": ["s"],
            "predicted": [60.0],
            "target": [61.0],
        }
    )
    assert frames.check_predictions(reg) is None


@fault(
    "report tables",
    "a predictions table with the same subject twice in one run",
    "ValueError naming the method, run and subject",
)
def test_duplicated_prediction() -> None:
    df = pd.concat([_predictions(), _predictions().iloc[[1]]], ignore_index=True)
    with pytest.raises(ValueError, match=r"duplicate rows for .*'subject_id': 's2'"):
        frames.check_predictions(df)


@fault(
    "report tables",
    "probabilities in a predictions table that do not sum to 1",
    "ValueError naming the row and its probabilities",
)
def test_probabilities_not_summing_to_one() -> None:
    df = _predictions()
    df.loc[2, "p_AD"] = 0.9
    with pytest.raises(ValueError, match=r"predictions row 2: probabilities .* \(sum 1\.4\)"):
        frames.check_predictions(df)


@fault(
    "report tables",
    "a target that is neither a class name nor a class index",
    "ValueError naming the row and the classes",
)
def test_unknown_target() -> None:
    with pytest.raises(ValueError, match=r"row 1: target 'MCI' is neither a class name \['CN', 'AD'\]"):
        frames.check_predictions(_predictions().assign(target=["CN", "MCI", "AD"]))
    with pytest.raises(ValueError, match="target 5"):
        frames.check_predictions(_predictions().assign(target=[0, 5, 1]))


@fault(
    "report tables",
    "a histories table without a column or with an epoch twice",
    "ValueError naming the column or the run",
)
def test_bad_histories() -> None:
    h = pd.DataFrame(
        {
            "method": ["A", "A"],
            "split_seed": [0, 0],
            "version": [0, 0],
            "fold": [0, 0],
            "epoch": [0, 0],
            "train_loss": [1.0, 0.9],
            "val_loss": [1.1, np.nan],  # NaN is allowed
            "val_metric": [0.5, 0.6],
            "metric_name": ["BA", "BA"],
        }
    )
    with pytest.raises(ValueError, match=r"duplicate rows for .*'epoch': 0"):
        frames.check_histories(h)
    with pytest.raises(ValueError, match=r"histories table lacks column\(s\) \['val_metric'\]"):
        frames.check_histories(h.drop(columns="val_metric"))
    with pytest.raises(ValueError, match="histories row 1: train_loss 'x' is not a number"):
        frames.check_histories(h.assign(epoch=[0, 1], train_loss=[1.0, "x"]))
    assert len(frames.check_histories(h.assign(epoch=[0, 1]))) == 2


@fault("report tables", "a treatments table with a method twice", "ValueError naming the method")
def test_duplicated_treatment() -> None:
    with pytest.raises(ValueError, match=re.escape("duplicate rows for {'method': 'A'}")):
        frames.check_treatments(pd.DataFrame({"method": ["A", "A"], "epochs": [10, 20]}))


@fault("report tables", "a skill table whose interval has low above high", "ValueError naming the row")
def test_bad_skill_interval() -> None:
    skill = pd.DataFrame(
        {
            "method": ["A"],
            "split_seed": [0],
            "version": [0],
            "metric": ["BA"],
            "difference": [0.1],
            "low": [0.2],
            "high": [0.05],
        }
    )
    with pytest.raises(ValueError, match=re.escape("skill row 0: interval low 0.2 is above high 0.05")):
        frames.check_skill(skill)
    with pytest.raises(ValueError, match="lacks column"):
        frames.check_skill(skill.drop(columns="low"))
