"""Tables and plots from a long-form results table (paper Table 3, Fig. 5, Fig. C.8, Fig. 4B).

The input has columns ``method, split_seed, version, fold, metric, value``; by default only the rows with
``fold == "ensemble"`` (the test-set ensemble of each split seed × version) are summarised. Metric names follow
:func:`hyperfusion.evaluation.metrics.classification_metrics` / ``regression_metrics``: ``cm/<true>/<pred>``
cells make confusion-matrix plots, ``MAE-<group>`` columns the MAE-by-group plot.

Figures are drawn on :class:`matplotlib.figure.Figure` objects (Agg canvas, no pyplot state), and every file is
written to a temporary name and renamed, so an interrupted report never leaves a half-written file.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from hyperfusion.atomic import write_atomic, write_text_atomic
from hyperfusion.evaluation.stats import (
    ENSEMBLE_FOLD,
    MIN_RUNS,
    check_results,
    compare_to_reference,
    run_values,
)

__all__ = [
    "markdown_table",
    "plot_confusion_matrices",
    "plot_mae_by_group",
    "plot_metric_bars",
    "summary_table",
    "write_report",
]

CM_PREFIX = "cm/"


def _methods(results: pd.DataFrame, wide: pd.DataFrame) -> list[str]:
    present = set(wide.index.get_level_values("method"))
    return [m for m in pd.unique(results["method"].astype(str)) if m in present]


def _scalar_metrics(wide: pd.DataFrame, results: pd.DataFrame) -> list[str]:
    order = pd.unique(results["metric"].astype(str))
    return [m for m in order if m in wide.columns and not m.startswith(CM_PREFIX)]


def summary_table(
    results: pd.DataFrame,
    *,
    reference: str | None = "HyperFusion",
    metrics: Sequence[str] | None = None,
    fold: str | None = ENSEMBLE_FOLD,
    min_runs: int = MIN_RUNS,
) -> pd.DataFrame:
    """Tidy ``method, metric, n, mean, std, p_value, note`` over runs (std with ddof = 1).

    ``p_value`` is the two-sided Mann–Whitney U against ``reference`` (NaN for the reference itself, and with a
    ``note`` when fewer than ``min_runs`` runs make the test unavailable). ``reference=None`` skips the tests.
    """
    df = check_results(results)
    wide = run_values(df, fold=fold)
    names = _scalar_metrics(wide, df) if metrics is None else list(metrics)
    unknown = [m for m in names if m not in wide.columns]
    if unknown:
        raise ValueError(f"metric(s) {unknown} are not in the results; metrics: {list(wide.columns)}")
    rows = []
    for method in _methods(df, wide):
        sub = wide.xs(method, level="method")
        for metric in names:
            v = sub[metric].to_numpy(dtype=float)
            v = v[~np.isnan(v)]
            rows.append(
                {
                    "method": method,
                    "metric": metric,
                    "n": v.size,
                    "mean": float(v.mean()) if v.size else math.nan,
                    "std": float(v.std(ddof=1)) if v.size > 1 else math.nan,
                }
            )
    out = pd.DataFrame(rows, columns=["method", "metric", "n", "mean", "std"])
    out["p_value"] = math.nan
    out["note"] = ""
    if reference is not None:
        tests = compare_to_reference(df, reference, metrics=names, fold=fold, min_runs=min_runs)
        key = tests.set_index(["method", "metric"])
        idx = pd.MultiIndex.from_frame(out[["method", "metric"]])
        out["p_value"] = key["p_value"].reindex(idx).to_numpy()
        out["note"] = key["note"].reindex(idx).fillna("").to_numpy()
    return out


def _format_p(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def markdown_table(
    results: pd.DataFrame,
    *,
    reference: str | None = "HyperFusion",
    metrics: Sequence[str] | None = None,
    fold: str | None = ENSEMBLE_FOLD,
    digits: int = 3,
    min_runs: int = MIN_RUNS,
) -> str:
    """The paper's Table 3 layout: methods as rows, metrics as columns, ``mean ± std`` and the p-value
    against ``reference`` in each cell, followed by a line saying which test was used or why it was not."""
    summary = summary_table(results, reference=reference, metrics=metrics, fold=fold, min_runs=min_runs)
    names = list(dict.fromkeys(summary["metric"]))
    lines = ["| method | runs | " + " | ".join(names) + " |", "|---|---:|" + "---:|" * len(names)]
    unavailable = False
    for method, sub in summary.groupby("method", sort=False):
        sub = sub.set_index("metric")
        cells = []
        for metric in names:
            r = sub.loc[metric]
            if r["n"] == 0:
                cells.append("–")
                continue
            cell = f"{r['mean']:.{digits}f}"
            if r["n"] > 1:
                cell += f" ± {r['std']:.{digits}f}"
            if reference is not None and method != reference:
                if r["note"]:
                    unavailable = True
                    cell += " (p n/a)"
                else:
                    cell += f" ({_format_p(r['p_value'])})"
            cells.append(cell)
        lines.append(f"| {method} | {int(sub['n'].max())} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    if reference is not None:
        text += (
            f"\nMean ± sample std over runs; p: two-sided Mann–Whitney U of each method against {reference} "
            "over the same runs.\n"
        )
        if unavailable:
            text += (
                f"p n/a: the test is not available with fewer than {min_runs} runs per method; "
                "no p-value is reported.\n"
            )
    return text


def _atomic_savefig(fig: Figure, path: str | os.PathLike[str]) -> Path:
    return write_atomic(
        path, lambda fh: fig.savefig(fh, format="png", dpi=120, bbox_inches="tight"), binary=True
    )


def _grouped_bars(ax, groups: list[str], methods: list[str], mean: np.ndarray, std: np.ndarray) -> None:
    """Bars for mean[method, group] with std error bars, one colour per method, groups along x."""
    width = 0.8 / max(len(methods), 1)
    x = np.arange(len(groups))
    colours = [f"C{i % 10}" for i in range(len(methods))]
    for i, method in enumerate(methods):
        ax.bar(
            x - 0.4 + width * (i + 0.5),
            mean[i],
            width,
            yerr=np.nan_to_num(std[i]),
            capsize=2,
            label=method,
            color=colours[i],
            edgecolor="black",
            linewidth=0.4,
        )
    ax.set_xticks(x, groups)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)


def plot_metric_bars(
    results: pd.DataFrame,
    path: str | os.PathLike[str],
    *,
    metrics: Sequence[str] | None = None,
    fold: str | None = ENSEMBLE_FOLD,
) -> Path:
    """Fig. 5: every metric (x) per method (bars), mean with ± std error bars over runs."""
    summary = summary_table(results, reference=None, metrics=metrics, fold=fold)
    names = list(dict.fromkeys(summary["metric"]))
    methods = list(dict.fromkeys(summary["method"]))
    mean = summary.pivot(index="method", columns="metric", values="mean").loc[methods, names].to_numpy()
    std = summary.pivot(index="method", columns="metric", values="std").loc[methods, names].to_numpy()
    fig = Figure(figsize=(max(6.0, 1.1 * len(names) + 0.25 * len(names) * len(methods)), 4.2))
    ax = fig.subplots()
    _grouped_bars(ax, names, methods, mean, std)
    ax.set_ylabel("score (mean ± std over runs)")
    if all(not n.startswith("MAE") for n in names):
        ax.set_ylim(0, 1)
    ax.legend(
        fontsize=8, ncol=min(4, len(methods)), loc="upper center", bbox_to_anchor=(0.5, -0.1), frameon=False
    )
    return _atomic_savefig(fig, path)


def _class_names(results: pd.DataFrame) -> list[str]:
    """Class names from the ``cm/<true>/<pred>`` metrics, in the order they first appear in the table."""
    cells = [c for c in pd.unique(results["metric"].astype(str)) if c.startswith(CM_PREFIX)]
    if not cells:
        raise ValueError(f"results have no confusion-matrix metrics ({CM_PREFIX}<true>/<pred>)")
    names: list[str] = []
    for c in cells:
        parts = c[len(CM_PREFIX) :].split("/")
        if len(parts) != 2 or not all(parts):
            raise ValueError(f"metric {c!r} is not of the form {CM_PREFIX}<true>/<pred>")
        for name in parts:
            if name not in names:
                names.append(name)
    return names


def plot_confusion_matrices(
    results: pd.DataFrame, path: str | os.PathLike[str], *, fold: str | None = ENSEMBLE_FOLD
) -> Path:
    """Fig. C.8: one row-normalised confusion matrix per method, each cell ``mean ± std`` over runs."""
    df = check_results(results)
    wide = run_values(df, fold=fold)
    names = _class_names(df)
    methods = _methods(df, wide)
    k = len(names)
    ncols = min(4, len(methods))
    nrows = math.ceil(len(methods) / ncols)
    fig = Figure(figsize=(3.0 * ncols + 0.8, 3.0 * nrows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    image = None
    for ax, method in zip(axes, methods):
        sub = wide.xs(method, level="method")
        mean = np.full((k, k), np.nan)
        std = np.full((k, k), np.nan)
        for i, a in enumerate(names):
            for j, b in enumerate(names):
                col = f"{CM_PREFIX}{a}/{b}"
                if col in sub:
                    v = sub[col].to_numpy(dtype=float)
                    v = v[~np.isnan(v)]
                    if v.size:
                        mean[i, j] = v.mean()
                        std[i, j] = v.std(ddof=1) if v.size > 1 else np.nan
        image = ax.imshow(mean, cmap="Blues", vmin=0.0, vmax=1.0)
        for i in range(k):
            for j in range(k):
                if np.isnan(mean[i, j]):
                    continue
                text = f"{mean[i, j]:.2f}" + ("" if np.isnan(std[i, j]) else f"\n± {std[i, j]:.2f}")
                ax.text(
                    j,
                    i,
                    text,
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if mean[i, j] > 0.6 else "black",
                )
        ax.set_xticks(range(k), names)
        ax.set_yticks(range(k), names)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(method, fontsize=10)
    for ax in axes[len(methods) :]:
        ax.set_visible(False)
    if image is not None:
        fig.colorbar(image, ax=list(axes[: len(methods)]), shrink=0.8, label="fraction of the true class")
    return _atomic_savefig(fig, path)


def plot_mae_by_group(
    results: pd.DataFrame, path: str | os.PathLike[str], *, fold: str | None = ENSEMBLE_FOLD
) -> Path:
    """Fig. 4B: MAE on each group's test subjects (``MAE-<group>``) and on all of them, bars per method."""
    df = check_results(results)
    wide = run_values(df, fold=fold)
    group_metrics = [m for m in _scalar_metrics(wide, df) if m.startswith("MAE-")]
    if not group_metrics:
        raise ValueError("results have no MAE-<group> metrics to plot")
    metrics = [*group_metrics, "MAE"] if "MAE" in wide.columns else group_metrics
    summary = summary_table(df, reference=None, metrics=metrics, fold=fold)
    methods = list(dict.fromkeys(summary["method"]))
    mean = summary.pivot(index="method", columns="metric", values="mean").loc[methods, metrics].to_numpy()
    std = summary.pivot(index="method", columns="metric", values="std").loc[methods, metrics].to_numpy()
    labels = [m.removeprefix("MAE-") if m != "MAE" else "all" for m in metrics]
    fig = Figure(figsize=(max(5.0, 1.6 * len(labels) + 0.3 * len(labels) * len(methods)), 4.0))
    ax = fig.subplots()
    _grouped_bars(ax, labels, methods, mean, std)
    ax.set_xlabel("test subjects")
    ax.set_ylabel("MAE (mean ± std over runs)")
    ax.legend(
        fontsize=8, ncol=min(4, len(methods)), loc="upper center", bbox_to_anchor=(0.5, -0.15), frameon=False
    )
    return _atomic_savefig(fig, path)


def write_report(
    results: pd.DataFrame,
    out_dir: str | os.PathLike[str],
    *,
    reference: str | None = "HyperFusion",
    fold: str | None = ENSEMBLE_FOLD,
    title: str = "Results",
    min_runs: int = MIN_RUNS,
) -> dict[str, Path]:
    """Write ``report.md`` and its PNG plots into ``out_dir``; return the written paths by name.

    Plots: ``metrics.png`` always; ``confusion.png`` when the results carry ``cm/`` cells; ``mae_by_group.png``
    when they carry ``MAE-<group>`` metrics. A ``reference`` absent from the results skips the p-values.
    """
    df = check_results(results)
    out = Path(out_dir)
    wide = run_values(df, fold=fold)
    if reference is not None and reference not in set(wide.index.get_level_values("method")):
        reference = None
    paths = {"metrics": plot_metric_bars(df, out / "metrics.png", fold=fold)}
    if any(c.startswith(CM_PREFIX) for c in wide.columns):
        paths["confusion"] = plot_confusion_matrices(df, out / "confusion.png", fold=fold)
    if any(c.startswith("MAE-") for c in wide.columns):
        paths["mae_by_group"] = plot_mae_by_group(df, out / "mae_by_group.png", fold=fold)
    captions = {
        "metrics": "Every metric per method (mean ± std over runs)",
        "confusion": "Row-normalised confusion matrices (mean ± std over runs)",
        "mae_by_group": "MAE by group per method (mean ± std over runs)",
    }
    text = f"# {title}\n\n" + markdown_table(df, reference=reference, fold=fold, min_runs=min_runs)
    for name, p in paths.items():
        text += f"\n## {captions[name]}\n\n![{captions[name]}]({p.name})\n"
    paths["report"] = write_text_atomic(out / "report.md", text)
    return paths
