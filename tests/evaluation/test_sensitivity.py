"""Input-use flags: a fusion method is flagged exactly when its sensitivity is below the documented threshold."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hyperfusion.evaluation.sensitivity import sensitivity_flags
from tests.faults import fault


def _results(sens: dict[str, tuple[float, float]], runs: int = 3) -> pd.DataFrame:
    """Each method's (tabular, image) sensitivity, the same in every run, plus a BA row."""
    rows = []
    for method, (tab, img) in sens.items():
        for run in range(runs):
            key = (method, 0, run, "ensemble")
            rows += [(*key, "BA", 0.6), (*key, "tabular_sensitivity", tab), (*key, "image_sensitivity", img)]
    return pd.DataFrame(rows, columns=["method", "split_seed", "version", "fold", "metric", "value"])


def test_flags_relative_to_the_single_input_models() -> None:
    df = _results(
        {
            "Imaging": (0.0, 0.15),
            "Tabular": (0.20, 0.0),
            "HyperFusion": (0.05, 0.10),  # uses both: 0.05 >= 0.1 * 0.20
            "Concat": (0.019, 0.10),  # below 0.02: ignores the tabular data
            "FiLM": (0.08, 0.01),  # below 0.015: ignores the images
            "no-skill": (0.0, 0.0),
        }
    )
    flags = sensitivity_flags(df).set_index("method")
    assert flags.loc["HyperFusion", "tabular_threshold"] == pytest.approx(0.02)
    assert flags.loc["HyperFusion", "image_threshold"] == pytest.approx(0.015)
    assert not flags.loc["HyperFusion", "ignores_tabular"] and not flags.loc["HyperFusion", "ignores_images"]
    assert flags.loc["Concat", "ignores_tabular"] and not flags.loc["Concat", "ignores_images"]
    assert flags.loc["FiLM", "ignores_images"] and not flags.loc["FiLM", "ignores_tabular"]
    for single in ("Imaging", "Tabular", "no-skill"):  # zero by construction: not checked, not flagged
        assert not flags.loc[single, "checked"]
        assert not flags.loc[single, "ignores_tabular"] and not flags.loc[single, "ignores_images"]
    assert flags.loc["Concat", "runs"] == 3 and flags.loc["Concat", "tabular_std"] == pytest.approx(0.0)


def test_floor_alone_without_single_input_models() -> None:
    df = _results({"HyperFusion": (0.0009, 0.2), "DAFT": (0.0011, 0.2)})
    flags = sensitivity_flags(df).set_index("method")
    assert flags.loc["HyperFusion", "tabular_threshold"] == pytest.approx(1e-3)
    assert flags.loc["HyperFusion", "ignores_tabular"] and not flags.loc["DAFT", "ignores_tabular"]
    # a weak tabular-only model never lowers the threshold below the floor
    flags = sensitivity_flags(pd.concat([df, _results({"Tabular": (0.002, 0.0)})])).set_index("method")
    assert flags.loc["DAFT", "tabular_threshold"] == pytest.approx(1e-3)


def test_no_sensitivity_metrics_gives_an_empty_table() -> None:
    df = _results({"A": (0.1, 0.1)})
    assert sensitivity_flags(df[~df["metric"].str.endswith("sensitivity")]).empty
    only_tabular = df[df["metric"] != "image_sensitivity"]
    flags = sensitivity_flags(only_tabular)
    assert (
        len(flags) == 1
        and np.isnan(flags.iloc[0]["image_sensitivity"])
        and not flags.iloc[0]["ignores_images"]
    )


@fault(
    "input-use flags",
    "a negative or infinite sensitivity fraction or floor",
    "ValueError naming the argument",
)
def test_bad_thresholds() -> None:
    df = _results({"A": (0.1, 0.1)})
    with pytest.raises(ValueError, match="fraction must be"):
        sensitivity_flags(df, fraction=-0.1)
    with pytest.raises(ValueError, match="floor must be"):
        sensitivity_flags(df, floor=float("inf"))
