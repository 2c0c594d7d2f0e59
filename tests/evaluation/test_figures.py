"""Learning curves and reliability diagrams: the averaged curves by hand, and readable PNGs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from hyperfusion.evaluation import figures
from hyperfusion.evaluation.frames import HISTORY_COLUMNS


def _histories() -> pd.DataFrame:
    rows = []
    for method, offset in (("Imaging", 0.0), ("HyperFusion", 0.1)):
        for version in range(2):
            for fold in range(2):
                for epoch in range(6):
                    loss = 1.0 / (epoch + 1) + 0.1 * version + 0.01 * fold
                    rows.append(
                        (method, 0, version, fold, epoch, loss, loss + 0.2, 0.4 + offset + 0.05 * epoch, "BA")
                    )
    return pd.DataFrame(rows, columns=list(HISTORY_COLUMNS))


def _predictions(n: int = 80) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frames = []
    for method in ("Imaging", "HyperFusion"):
        y = rng.integers(0, 3, n)
        logits = rng.normal(size=(n, 3))
        logits[np.arange(n), y] += 1.5
        p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        frames.append(
            pd.DataFrame(
                {
                    "method": method,
                    "split_seed": 0,
                    "version": "0",
                    "subject_id": [f"s{i}" for i in range(n)],
                    "p_CN": p[:, 0],
                    "p_MCI": p[:, 1],
                    "p_AD": p[:, 2],
                    "target": np.array(["CN", "MCI", "AD"])[y],
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def test_mean_learning_curves_by_hand() -> None:
    curves = figures.mean_learning_curves(_histories())
    row = curves[(curves["method"] == "Imaging") & (curves["epoch"] == 2)].iloc[0]
    # four curves at epoch 2: 1/3 + 0.1 v + 0.01 f averaged over v, f in {0, 1}
    assert row["train_loss"] == pytest.approx(1 / 3 + 0.05 + 0.005)
    assert row["val_loss"] == pytest.approx(1 / 3 + 0.05 + 0.005 + 0.2)
    assert row["val_metric"] == pytest.approx(0.5)
    assert row["curves"] == 4 and row["metric_name"] == "BA"


def _not_blank(path: Path) -> None:
    image = imread(path)
    assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 300
    assert image[..., :3].std() > 0.05


def test_learning_curve_figure(tmp_path: Path) -> None:
    path = figures.plot_learning_curves(_histories(), tmp_path / "curves.png")
    _not_blank(path)
    assert [p.name for p in tmp_path.iterdir()] == ["curves.png"]


def test_reliability_figure_and_regression_skip(tmp_path: Path) -> None:
    _not_blank(figures.plot_reliability(_predictions(), tmp_path / "reliability.png"))
    regression = pd.DataFrame(
        {
            "method": ["A"],
            "split_seed": [0],
            "version": ["top5"],
            "subject_id": ["s"],
            "predicted": [1.0],
            "target": [2.0],
        }
    )
    assert figures.plot_reliability(regression, tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists()
