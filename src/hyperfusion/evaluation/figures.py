"""The report's newer figures: learning curves and reliability diagrams, drawn without pyplot state.

Each figure is a :class:`matplotlib.figure.Figure` with a title. It is saved through a temporary file and a
rename, so an interrupted report never leaves a half-written PNG.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from hyperfusion.atomic import write_atomic
from hyperfusion.evaluation.calibration import DEFAULT_BINS, expected_calibration_error, reliability_curve
from hyperfusion.evaluation.frames import check_histories, check_predictions

__all__ = ["mean_learning_curves", "plot_learning_curves", "plot_reliability", "save_figure"]


def save_figure(fig: Figure, path: str | os.PathLike[str]) -> Path:
    """Write ``fig`` as a PNG atomically (temporary file, then rename)."""
    return write_atomic(
        path, lambda fh: fig.savefig(fh, format="png", dpi=120, bbox_inches="tight"), binary=True
    )


def panel_grid(
    n: int, max_cols: int, width: float, height: float, *, pad: float = 0.6
) -> tuple[Figure, list]:
    """A figure of ``n`` panels of ``width`` × ``height`` inches, at most ``max_cols`` per row; the rest hidden."""
    ncols = max(1, min(max_cols, n))
    nrows = max(1, math.ceil(n / ncols))
    fig = Figure(figsize=(width * ncols + 0.6, height * nrows + pad), layout="constrained")
    axes = list(np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel())
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def mean_learning_curves(histories: pd.DataFrame) -> pd.DataFrame:
    """Per method and epoch: the mean training loss, validation loss and validation metric over every
    (split seed, version, fold) curve, and ``curves``, how many curves reached that epoch."""
    df = check_histories(histories)
    grouped = df.groupby(["method", "epoch"], sort=False)
    out = grouped[["train_loss", "val_loss", "val_metric"]].mean()
    out["curves"] = grouped.size()
    out["metric_name"] = grouped["metric_name"].agg(lambda s: "/".join(sorted({v for v in s if v})))
    out = out.reset_index()
    order = {m: i for i, m in enumerate(pd.unique(df["method"]))}  # methods in table order
    return out.sort_values(
        ["method", "epoch"], key=lambda c: c.map(order) if c.name == "method" else c
    ).reset_index(drop=True)


def plot_learning_curves(histories: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """One panel per method: mean training and validation loss (left axis) and validation metric (right)."""
    curves = mean_learning_curves(histories)
    methods = list(pd.unique(check_histories(histories)["method"]))
    fig, axes = panel_grid(len(methods), 3, 4.2, 3.0)
    handles = []
    for ax, method in zip(axes, methods):
        c = curves[curves["method"] == method]
        n = int(c["curves"].max())
        lines = ax.plot(c["epoch"], c["train_loss"], color="C0", label="training loss")
        lines += ax.plot(c["epoch"], c["val_loss"], color="C1", linestyle="--", label="validation loss")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.grid(alpha=0.3)
        metric = next((m for m in c["metric_name"] if m), "metric")
        twin = ax.twinx()
        lines += twin.plot(c["epoch"], c["val_metric"], color="C2", linestyle=":", label="validation metric")
        twin.set_ylabel(f"validation {metric}")
        ax.set_title(f"{method} (mean of {n} curve{'s' if n != 1 else ''})", fontsize=10)
        handles = handles or lines
    fig.suptitle("Learning curves: mean over split seeds, versions and folds")
    fig.legend(handles, [h.get_label() for h in handles], loc="outside lower center", ncol=3, frameon=False)
    return save_figure(fig, path)


def plot_reliability(
    predictions: pd.DataFrame, path: str | os.PathLike[str], *, n_bins: int = DEFAULT_BINS
) -> Path | None:
    """One reliability diagram per method, pooling its test subjects over runs; ``None`` for regression.

    Bars: the fraction correct in each equal-width confidence bin (count above each bar); the diagonal is
    perfect calibration; the title gives the pooled top-label ECE.
    """
    checked = check_predictions(predictions)
    if checked is None:
        return None
    df, names = checked
    columns = [f"p_{n}" for n in names]
    methods = list(pd.unique(df["method"]))
    fig, axes = panel_grid(len(methods), 3, 3.4, 3.2)
    for ax, method in zip(axes, methods):
        sub = df[df["method"] == method]
        p = sub[columns].to_numpy(dtype=np.float64)
        y = sub["class_index"].to_numpy()
        curve = reliability_curve(p, y, n_bins)
        ece = expected_calibration_error(p, y, n_bins)
        width = 1.0 / n_bins
        centres = (curve["low"] + curve["high"]).to_numpy() / 2
        ax.bar(centres, curve["accuracy"].fillna(0), width, color="C0", edgecolor="black", linewidth=0.4)
        ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1)
        shown = curve["count"] > 0
        ax.plot(curve.loc[shown, "confidence"], curve.loc[shown, "accuracy"], "o", color="C3", markersize=3)
        for x, acc, count in zip(centres[shown], curve.loc[shown, "accuracy"], curve.loc[shown, "count"]):
            ax.text(x, min(acc + 0.02, 1.02), str(int(count)), ha="center", va="bottom", fontsize=6)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.08)
        ax.set_xlabel("top-label confidence")
        ax.set_ylabel("fraction correct")
        ax.set_title(f"{method}: ECE {ece:.3f} (n = {len(sub)})", fontsize=10)
    fig.suptitle("Reliability diagrams: test subjects pooled over runs (dots: mean confidence per bin)")
    return save_figure(fig, path)
