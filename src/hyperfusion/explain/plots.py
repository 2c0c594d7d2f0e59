"""The explanation's figures, drawn without pyplot state and written atomically (``save_figure``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from hyperfusion.evaluation.figures import panel_grid, save_figure
from hyperfusion.explain.context import MISSING, Attribute

#: Individual subjects' curves drawn per panel (the mean is over every subject).
MAX_CURVES = 30
COLORS = ("tab:blue", "tab:orange", "tab:red", "tab:green", "tab:purple", "tab:brown", "tab:pink", "tab:gray")


def _series(classes: Sequence[str]) -> list[tuple[str, str]]:
    """(column, legend label) of what is plotted: each class's probability, or the prediction."""
    return [(f"p_{c}", f"p({c})") for c in classes] if classes else [("predicted", "prediction")]


def plot_counterfactual(
    table: pd.DataFrame,
    attributes: Sequence[Attribute],
    classes: Sequence[str],
    path: str | os.PathLike[str],
    *,
    title: str = "Counterfactual conditioning: the same scans under changed records",
) -> Path:
    """One panel per attribute. Continuous: each subject's curve (thin; at most ``MAX_CURVES``) and the mean over
    all subjects (thick), "missing" as a separate point; binary/categorical: the mean ± standard deviation over
    subjects at each level."""
    fig, axes = panel_grid(len(attributes), 3, 4.0, 2.9, pad=0.8)
    series = _series(classes)
    for ax, attribute in zip(axes, attributes):
        rows = table[table["attribute"] == attribute.name]
        if attribute.kind == "continuous":
            _continuous_panel(ax, rows, series)
        else:
            _level_panel(ax, rows, series, attribute)
        ax.set_title(attribute.name, fontsize=10)
        ax.set_ylabel("probability" if classes else "prediction", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    if axes:
        handles, labels = axes[0].get_legend_handles_labels()
        if handles:
            fig.legend(handles, labels, loc="outside lower center", ncols=len(labels), fontsize=8)
    fig.suptitle(title, fontsize=11)
    return save_figure(fig, path)


def _continuous_panel(ax, rows: pd.DataFrame, series: list[tuple[str, str]]) -> None:
    grid = rows[rows["value"] != MISSING]
    missing = rows[rows["value"] == MISSING]
    xs = np.sort(grid["numeric"].unique())
    step = (xs[-1] - xs[0]) / max(len(xs) - 1, 1) if len(xs) > 1 else 1.0
    x_missing = xs[-1] + 1.5 * step if len(xs) else 0.0
    for (column, label), color in zip(series, COLORS):
        wide = grid.pivot(index="row", columns="numeric", values=column)[xs]
        for _, curve in wide.head(MAX_CURVES).iterrows():
            ax.plot(xs, curve.to_numpy(), color=color, alpha=0.12, linewidth=0.7)
        ax.plot(xs, wide.mean(axis=0).to_numpy(), color=color, linewidth=2.2, label=label)
        if not missing.empty:
            values = missing[column].to_numpy(dtype=np.float64)
            ax.errorbar([x_missing], [values.mean()], yerr=[values.std()], color=color, marker="s", capsize=3)
    if not missing.empty:
        ticks = list(ax.get_xticks())
        ticks = [t for t in ticks if xs[0] - step <= t <= xs[-1] + 0.5 * step]
        ax.set_xticks([*ticks, x_missing], [*(f"{t:g}" for t in ticks), "missing"])
        ax.set_xlim(xs[0] - 0.3 * step, x_missing + 0.7 * step)


def _level_panel(ax, rows: pd.DataFrame, series: list[tuple[str, str]], attribute: Attribute) -> None:
    levels = [lv for lv in (*attribute.levels, MISSING) if (rows["value"] == lv).any()]
    width = 0.7 / max(len(series), 1)
    for k, ((column, label), color) in enumerate(zip(series, COLORS)):
        offset = (k - (len(series) - 1) / 2) * width
        means = [rows.loc[rows["value"] == lv, column].mean() for lv in levels]
        stds = [rows.loc[rows["value"] == lv, column].std(ddof=0) for lv in levels]
        xs = np.arange(len(levels)) + offset
        ax.errorbar(xs, means, yerr=stds, color=color, marker="o", linestyle="none", capsize=3, label=label)
    ax.set_xticks(np.arange(len(levels)), ["missing" if lv == MISSING else lv for lv in levels])


def plot_flip(
    table: pd.DataFrame, attribute: Attribute, path: str | os.PathLike[str], *, unit: str = ""
) -> Path:
    """Regression: each subject's prediction under both levels of a two-level attribute (lines), coloured by the
    level its record holds, and the mean change per observed level."""
    first, second = attribute.levels
    fig = Figure(figsize=(8.4, 3.4), layout="constrained")
    left, right = fig.subplots(1, 2)
    present = set(table["observed"])
    observed = [lv for lv in (*attribute.levels, MISSING) if lv in present]
    for level, color in zip(observed, COLORS):
        rows = table[table["observed"] == level]
        for _, row in rows.iterrows():
            left.plot([0, 1], [row[f"pred_{first}"], row[f"pred_{second}"]], color=color, alpha=0.35)
        left.plot([], [], color=color, label=f"record says {level} (n = {len(rows)})")
    left.set_xticks([0, 1], [f"as {first}", f"as {second}"])
    left.set_ylabel(f"prediction{f' ({unit})' if unit else ''}")
    left.set_xlim(-0.2, 1.2)
    left.legend(fontsize=8)
    left.grid(alpha=0.3)
    means = [table.loc[table["observed"] == lv, "difference"].mean() for lv in observed]
    stds = [table.loc[table["observed"] == lv, "difference"].std(ddof=0) for lv in observed]
    right.bar(range(len(observed)), means, yerr=stds, color=COLORS[: len(observed)], capsize=4)
    right.axhline(0, color="black", linewidth=0.8)
    right.set_xticks(range(len(observed)), [f"record says {lv}" for lv in observed])
    right.set_ylabel(f"prediction as {second} − as {first}")
    right.grid(alpha=0.3, axis="y")
    fig.suptitle(f"{attribute.name} flip: the same scans, the other {attribute.name}", fontsize=11)
    return save_figure(fig, path)


def plot_tabular_attribution(
    importance: pd.DataFrame | None, gradients: pd.DataFrame | None, metric: str, path: str | os.PathLike[str]
) -> Path:
    """Permutation importance (mean ± std over repeats) and mean |integrated gradients| per attribute."""
    panels = [p for p in (importance, gradients) if p is not None]
    fig, axes = panel_grid(len(panels), 2, 4.2, 0.6 + 0.32 * max(len(p) for p in panels), pad=0.8)
    k = 0
    if importance is not None:
        ax = axes[k]
        order = importance.iloc[::-1]
        ax.barh(order["attribute"], order["importance_mean"], xerr=order["importance_std"], color="tab:blue")
        ax.axvline(0, color="black", linewidth=0.8)
        worse = "drop" if metric != "MAE" else "increase"
        ax.set_xlabel(f"{metric} {worse} when permuted", fontsize=9)
        ax.set_title("permutation importance", fontsize=10)
        k += 1
    if gradients is not None:
        ax = axes[k]
        order = gradients.iloc[::-1]
        ax.barh(order["attribute"], order["mean_abs_attribution"], color="tab:orange")
        ax.set_xlabel("mean |integrated gradients|", fontsize=9)
        ax.set_title("integrated gradients", fontsize=10)
    for ax in axes:
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3, axis="x")
    fig.suptitle("Tabular attribution", fontsize=11)
    return save_figure(fig, path)


def plot_map_slices(
    background: np.ndarray,
    attribution: np.ndarray,
    title: str,
    path: str | os.PathLike[str],
    *,
    magnitude: np.ndarray | None = None,
) -> Path:
    """Three orthogonal slices through the ``magnitude``-weighted centre of the map, over the mean image in grey.

    Top row: the signed attribution (red supports the explained output, blue opposes it; a mean over subjects
    cancels where they disagree). Bottom row, when ``magnitude`` (e.g. the mean |attribution|) is given: where the
    output is sensitive at all, whatever the direction.
    """
    weights = np.abs(attribution) if magnitude is None else magnitude
    if weights.sum() > 0:
        grid = np.indices(attribution.shape).reshape(3, -1)
        centre = tuple(round(float(c)) for c in grid @ weights.ravel() / weights.sum())
    else:
        centre = tuple(n // 2 for n in attribution.shape)
    rows = [("signed", attribution)] + ([] if magnitude is None else [("magnitude", magnitude)])
    fig = Figure(figsize=(9.0, 0.3 + 3.0 * len(rows)), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(rows), 3))
    cuts = [
        ("sagittal (x = %d)", 0, ("y", "z")),
        ("coronal (y = %d)", 1, ("x", "z")),
        ("axial (z = %d)", 2, ("x", "y")),
    ]
    for row, (kind, volume) in zip(axes, rows):
        limit = float(np.abs(volume).max()) or 1.0
        image = None
        for ax, (name, axis, labels) in zip(row, cuts):
            index = [slice(None)] * 3
            index[axis] = centre[axis]
            overlay = volume[tuple(index)]
            ax.imshow(background[tuple(index)].T, origin="lower", cmap="gray", alpha=0.6)
            shown = np.ma.masked_where(np.abs(overlay) < 0.1 * limit, overlay)
            if kind == "signed":
                image = ax.imshow(shown.T, origin="lower", cmap="RdBu_r", vmin=-limit, vmax=limit, alpha=0.9)
            else:
                image = ax.imshow(shown.T, origin="lower", cmap="hot", vmin=0, vmax=limit, alpha=0.8)
            ax.set_title(name % centre[axis], fontsize=9)
            ax.set_xlabel(f"{labels[0]} (voxels)", fontsize=8)
            ax.set_ylabel(f"{labels[1]} (voxels)", fontsize=8)
            ax.tick_params(labelsize=7)
        if image is not None:
            label = "mean attribution" if kind == "signed" else "mean |attribution|"
            fig.colorbar(image, ax=list(row), shrink=0.8, label=label)
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def plot_separation(summary: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Per hyper layer: each subgrouping's median distance ratio over models, against its random-groups level."""
    layers = list(dict.fromkeys(summary["layer"]))
    fig, axes = panel_grid(len(layers), 2, 5.0, 0.8 + 0.4 * summary.groupby("layer").size().max(), pad=0.8)
    for ax, layer in zip(axes, layers):
        rows = summary[summary["layer"] == layer].iloc[::-1]
        labels = [f"{g}: {a} vs {b}" for g, a, b in zip(rows["grouping"], rows["group_a"], rows["group_b"])]
        y = np.arange(len(rows))
        ratios = rows["ratio_median"].to_numpy(dtype=np.float64)
        finite = ratios[np.isfinite(ratios)]
        top = 1.15 * max(finite.max() if finite.size else 1.0, float(rows["null_ratio"].max()))
        shown = np.where(np.isfinite(ratios), ratios, top)
        ax.barh(y, np.nan_to_num(shown), color="tab:purple", label="between / within")
        for k in np.flatnonzero(np.isinf(ratios)):
            ax.text(
                top, y[k], "∞: no spread within groups ", va="center", ha="right", fontsize=7, color="white"
            )
        low = min(float(np.min(shown[shown > 0], initial=top)), float(rows["null_ratio"].min()))
        if top / max(low, 1e-300) > 100:
            ax.set_xscale("log")
        ax.scatter(rows["null_ratio"], y, color="black", marker="|", s=200, label="random groups", zorder=3)
        ax.set_yticks(y, labels, fontsize=8)
        ax.set_xlabel("distance of group means / within-group spread", fontsize=9)
        ax.set_title(layer, fontsize=10)
        ax.grid(alpha=0.3, axis="x")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=2, fontsize=8)
    fig.suptitle("Generated weights: how far apart subgroups' mean weights are", fontsize=11)
    return save_figure(fig, path)
