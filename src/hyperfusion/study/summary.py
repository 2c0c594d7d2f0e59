"""A study's summary: per cell and method, the metric with its 95 % interval, and paired tests against the reference.

Runs of one cell pair across methods by (split seed, version) — they share partitions and initialisation seeds — so
the tests are paired: Wilcoxon signed-rank and the corrected resampled t-test (Nadeau & Bengio 2003), with the mean
paired difference and its bootstrap interval; the paper's Mann–Whitney U is given too. Which test each p-value comes
from is named in every column, and a note says when a test cannot reach p < 0.05 with the cell's run count.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy import stats

from hyperfusion.atomic import write_atomic, write_text_atomic
from hyperfusion.evaluation.noskill import NO_SKILL
from hyperfusion.evaluation.stats import compare_paired, compare_to_reference

SUMMARY_COLUMNS = [
    "method", "metric", "runs", "mean", "ci_low", "ci_high", "difference", "difference_low", "difference_high",
    "cohen_dz", "wilcoxon_p", "corrected_t_p", "mannwhitney_p", "note",
]  # fmt: skip


def interval(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean and t-interval over runs (NaN bounds with fewer than two runs)."""
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return (np.nan, np.nan, np.nan)
    mean = float(v.mean())
    if v.size < 2:
        return (mean, np.nan, np.nan)
    half = float(stats.t.ppf(0.5 + confidence / 2, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size))
    return (mean, mean - half, mean + half)


def cell_summary(
    results: pd.DataFrame,
    *,
    reference: str,
    metrics: Sequence[str],
    fold: str,
    test_train_ratio: float,
) -> pd.DataFrame:
    """One row per (method, metric) of one cell: interval over runs and the paired tests against ``reference``."""
    runs = results[results["fold"].astype(str) == fold]
    paired = compare_paired(
        results, reference, metrics=metrics, fold=fold, test_train_ratio=test_train_ratio,
        exclude=(NO_SKILL,), unpaired="drop",
    ).set_index(["method", "metric"])  # fmt: skip
    mann = compare_to_reference(
        results[results["method"] != NO_SKILL], reference, metrics=metrics, fold=fold
    ).set_index(["method", "metric"])
    rows = []
    for method in dict.fromkeys(runs["method"]):
        for metric in metrics:
            values = runs[(runs["method"] == method) & (runs["metric"] == metric)]["value"].to_numpy()
            mean, low, high = interval(values)
            row = {"method": method, "metric": metric, "runs": int(np.sum(~np.isnan(values))), "mean": mean,
                   "ci_low": low, "ci_high": high}  # fmt: skip
            key = (method, metric)
            if key in paired.index:
                test = paired.loc[key]
                row.update(
                    difference=test["mean_difference"], difference_low=test["difference_low"],
                    difference_high=test["difference_high"], cohen_dz=test["cohen_dz"],
                    wilcoxon_p=test["wilcoxon_p"], corrected_t_p=test["corrected_p"], note=test["note"],
                )  # fmt: skip
            if key in mann.index:
                row["mannwhitney_p"] = mann.loc[key, "p_value"]
            rows.append(row)
    return pd.DataFrame(rows).reindex(columns=SUMMARY_COLUMNS)


def write_summary(
    summaries: Mapping[str, pd.DataFrame],
    values: Mapping[str, Mapping[str, object]],
    out: Path,
    *,
    axes: Sequence[str],
    reference: str,
    title: str,
    header: str = "",
) -> pd.DataFrame:
    """``summary.csv``, ``summary.md`` and ``summary.png`` from the per-cell summaries."""
    frames = []
    for cell, frame in summaries.items():
        frame = frame.copy()
        for axis in axes:
            frame.insert(0, axis, _plain(values[cell][axis]))
        frame.insert(0, "cell", cell)
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    write_text_atomic(out / "summary.csv", table.to_csv(index=False))
    write_text_atomic(out / "summary.md", _markdown(table, axes, reference, title, header))
    figure = _figure(table, axes, reference, title)
    write_atomic(
        out / "summary.png", lambda handle: figure.savefig(handle, format="png", dpi=110), binary=True
    )
    return table


def _plain(value: object) -> object:
    return str(value) if isinstance(value, (list, dict)) else value


def _fmt(value: float, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"


def _p(value: float) -> str:
    if value is None or np.isnan(value):
        return "–"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def _markdown(table: pd.DataFrame, axes: Sequence[str], reference: str, title: str, header: str) -> str:
    lines = [f"# {title}", ""]
    if header:
        lines += [header, ""]
    lines += [
        f"Each cell is one run directory. Mean over runs (split seed × version) with a 95 % t-interval; the "
        f"difference to {reference} is paired by run (mean, 95 % bootstrap interval over runs, Cohen's d_z). "
        "p-values: Wilcoxon signed-rank (paired), corrected resampled t-test (Nadeau & Bengio 2003, paired), "
        "two-sided Mann–Whitney U (unpaired, the paper's test).",
        "",
    ]
    axis_columns = [a.rsplit(".", 1)[-1] for a in axes]
    head = [*axis_columns, "method", "metric", "runs", "mean [95 % CI]", f"Δ vs {reference} [95 % CI]", "d_z",
            "Wilcoxon p", "corrected t p", "Mann–Whitney p"]  # fmt: skip
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    notes = {}
    for data in table.to_dict("records"):
        ci = f"{_fmt(data['mean'])} [{_fmt(data['ci_low'])}, {_fmt(data['ci_high'])}]"
        if data["method"] == reference:
            diff = "(reference)"
        elif pd.isna(data["difference"]):
            diff = "–"
        else:
            diff = (
                f"{data['difference']:+.3f} [{data['difference_low']:+.3f}, {data['difference_high']:+.3f}]"
            )
        cells = [str(data[a]) for a in axes] + [data["method"], data["metric"], str(data["runs"]), ci, diff,
                 _fmt(data["cohen_dz"], 2), _p(data["wilcoxon_p"]), _p(data["corrected_t_p"]),
                 _p(data["mannwhitney_p"])]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
        if isinstance(data["note"], str) and data["note"]:
            notes.setdefault(data["note"], None)
    if notes:
        lines += ["", "Notes:"] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def _figure(table: pd.DataFrame, axes: Sequence[str], reference: str, title: str) -> Figure:
    metrics = list(dict.fromkeys(table["metric"]))
    x_axis = axes[0] if axes else None
    figure = Figure(figsize=(5.5 * len(metrics), 4.2), constrained_layout=True)
    for index, metric in enumerate(metrics):
        ax = figure.add_subplot(1, len(metrics), index + 1)
        sub = table[table["metric"] == metric]
        for method in dict.fromkeys(sub["method"]):
            rows = sub[sub["method"] == method]
            # one axis: its values on x; several axes: one tick per cell
            xs = rows[x_axis].astype(str).tolist() if len(axes) == 1 else rows["cell"].tolist()
            positions = np.arange(len(xs)) + 0.04 * (list(dict.fromkeys(sub["method"])).index(method) - 2)
            err = np.vstack([rows["mean"] - rows["ci_low"], rows["ci_high"] - rows["mean"]])
            style = (
                dict(lw=2.2) if method == reference else dict(lw=1.2, ls="--" if method == NO_SKILL else "-")
            )
            ax.errorbar(positions, rows["mean"], yerr=np.nan_to_num(err), marker="o", capsize=3, label=method,
                        **style)  # fmt: skip
            ax.set_xticks(np.arange(len(xs)), xs)
        ax.set_xlabel(x_axis.rsplit(".", 1)[-1] if x_axis else "")
        ax.set_ylabel(metric)
        ax.set_title(f"{metric} (mean and 95 % CI over runs)")
        ax.grid(alpha=0.3)
    figure.axes[0].legend(fontsize=8, loc="best")
    figure.suptitle(title)
    return figure
