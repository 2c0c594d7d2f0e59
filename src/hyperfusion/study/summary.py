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
from hyperfusion.evaluation.stats import (
    compare_paired,
    compare_to_reference,
    difference_in_differences,
    paired_runs,
)
from hyperfusion.text import format_table

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


CONTRAST_COLUMNS = [
    "axis", "control", "cell", "method", "metric", "runs_control", "runs_cell", "difference_control",
    "difference_cell", "change", "change_low", "change_high", "df", "corrected_p",
]  # fmt: skip


def interaction_contrasts(
    cells: Sequence[tuple[str, Mapping[str, object], pd.DataFrame]],
    *,
    axes: Sequence[str],
    reference: str,
    metrics: Sequence[str],
    fold: str,
    test_train_ratio: float,
) -> pd.DataFrame:
    """Does each method's gap to the reference change along the grid's last axis?

    Each cell is compared with its control: the cell with the same values on the other axes and the last axis at
    its first value (e.g. interaction 0). Per method and metric: the mean paired difference ``method −
    reference`` in both cells, its change, and the change's interval and p-value
    (:func:`~hyperfusion.evaluation.stats.difference_in_differences`, corrected for overlapping training sets).

    Args:
        cells: (name, grid values, results table) per cell, in grid order.
    """
    if not axes or len(cells) < 2:
        return pd.DataFrame(columns=CONTRAST_COLUMNS)
    last = axes[-1]
    first_value = cells[0][1][last]
    controls = {
        tuple(v for k, v in values.items() if k != last): (name, results)
        for name, values, results in cells
        if values[last] == first_value
    }
    rows = []
    for name, values, results in cells:
        if values[last] == first_value:
            continue
        control = controls.get(tuple(v for k, v in values.items() if k != last))
        if control is None:
            continue
        control_name, control_results = control
        methods = [m for m in dict.fromkeys(results["method"]) if m not in (reference, NO_SKILL)]
        for method in methods:
            for metric in metrics:
                try:
                    d0 = _differences(control_results, reference, method, metric, fold)
                    d1 = _differences(results, reference, method, metric, fold)
                except ValueError:
                    continue  # the method or metric is missing from one of the two cells
                if min(d0.size, d1.size) < 2:
                    continue
                test = difference_in_differences(d0, d1, test_train_ratio)
                rows.append(
                    {
                        "axis": last,
                        "control": control_name,
                        "cell": name,
                        "method": method,
                        "metric": metric,
                        "runs_control": d0.size,
                        "runs_cell": d1.size,
                        "difference_control": float(d0.mean()),
                        "difference_cell": float(d1.mean()),
                        "change": test["change"],
                        "change_low": test["low"],
                        "change_high": test["high"],
                        "df": test["df"],
                        "corrected_p": test["p"],
                    }
                )
    return pd.DataFrame(rows, columns=CONTRAST_COLUMNS)


def _differences(results: pd.DataFrame, reference: str, method: str, metric: str, fold: str) -> np.ndarray:
    pairs = paired_runs(results, reference, method, metric, fold=fold, unpaired="drop")
    return (pairs["method"] - pairs["reference"]).to_numpy(dtype=float)


SHARE_COLUMNS = [
    "cell",
    "method",
    "runs",
    "BA",
    "additive",
    "interaction",
    "share",
    "share_low",
    "share_high",
]


def share_summary(shares: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Per cell and method: mean BA, the oracles and the share of the headroom with its 95 % t-interval over runs
    (from :func:`hyperfusion.study.oracle.headroom_shares` of each cell)."""
    rows = []
    for cell, frame in shares.items():
        for method in dict.fromkeys(frame["method"]):
            sub = frame[frame["method"] == method]
            share, low, high = interval(sub["share"].to_numpy(dtype=float))
            rows.append(
                {"cell": cell, "method": method, "runs": len(sub), "BA": float(sub["BA"].mean()),
                 "additive": float(sub["additive"].mean()), "interaction": float(sub["interaction"].mean()),
                 "share": share, "share_low": low, "share_high": high}
            )  # fmt: skip
    return pd.DataFrame(rows, columns=SHARE_COLUMNS)


def write_summary(
    summaries: Mapping[str, pd.DataFrame],
    values: Mapping[str, Mapping[str, object]],
    out: Path,
    *,
    axes: Sequence[str],
    reference: str,
    title: str,
    header: str = "",
    contrasts: pd.DataFrame | None = None,
    shares: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """``summary.csv``, ``summary.md`` and ``summary.png`` from the per-cell summaries (``contrasts.csv`` too, and
    ``headroom.csv`` / ``headroom.png`` with the shares of the interaction headroom when the cohorts have oracles)."""
    frames = []
    for cell, frame in summaries.items():
        frame = frame.copy()
        for axis in axes:
            frame.insert(0, axis, _plain(values[cell][axis]))
        frame.insert(0, "cell", cell)
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    write_text_atomic(out / "summary.csv", table.to_csv(index=False))
    text = _markdown(table, axes, reference, title, header)
    if contrasts is not None and not contrasts.empty:
        write_text_atomic(out / "contrasts.csv", contrasts.to_csv(index=False))
        text += _contrast_markdown(contrasts, reference)
    if shares is not None and not shares.empty:
        shares = shares.copy()
        for axis in axes:
            shares.insert(1, axis, [_plain(values[c][axis]) for c in shares["cell"]])
        write_text_atomic(out / "headroom.csv", shares.to_csv(index=False))
        text += _share_markdown(shares, axes)
        figure = _share_figure(shares, axes, reference, title)
        write_atomic(
            out / "headroom.png", lambda handle: figure.savefig(handle, format="png", dpi=110), binary=True
        )
    write_text_atomic(out / "summary.md", text)
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
    rows = []
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
        rows.append(cells)
        if isinstance(data["note"], str) and data["note"]:
            notes.setdefault(data["note"], None)
    lines.append(format_table(head, rows, escape=False).removesuffix("\n"))
    if notes:
        lines += ["", "Notes:"] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def _contrast_markdown(contrasts: pd.DataFrame, reference: str) -> str:
    axis = str(contrasts["axis"].iloc[0]).rsplit(".", 1)[-1]
    lines = [
        "",
        f"## Does the gap to {reference} change with {axis}?",
        "",
        f"Per method: the mean paired difference (method − {reference}) in the control cell and in the cell, and "
        "its change (difference in differences) with a 95 % interval and a two-sided p-value (Welch's t on the "
        "two cells' paired differences, each variance corrected for overlapping training sets as in the "
        f"corrected resampled t-test). For a score such as BA a negative change means {reference} gains on the "
        "method as the setting changes; for an error such as MAE, a positive one.",
        "",
    ]
    rows = []
    for data in contrasts.to_dict("records"):
        change = f"{data['change']:+.3f} [{_signed(data['change_low'])}, {_signed(data['change_high'])}]"
        rows.append([f"{data['control']} → {data['cell']}", data["method"], data["metric"],
                     f"{data['difference_control']:+.3f}", f"{data['difference_cell']:+.3f}", change,
                     _fmt(data["df"], 1), _p(data["corrected_p"])])  # fmt: skip
    head = ["control → cell", "method", "metric", "Δ control", "Δ cell", "change [95 % CI]", "df", "p"]
    return "\n".join(lines) + "\n" + format_table(head, rows, right=(3, 4, 6, 7), escape=False)


def _share_markdown(shares: pd.DataFrame, axes: Sequence[str]) -> str:
    axis_columns = [a.rsplit(".", 1)[-1] for a in axes]
    lines = [
        "",
        "## How much of the interaction headroom does each method capture?",
        "",
        "The cohorts are simulated, so each split's test subjects have two oracles: logistic regressions on the "
        "realised volumes of the structures the disease acts on (with a read-out error) and the record — "
        "**additive** (volumes and record side by side) and **interaction** (plus every volume × sex product, the "
        "location mode's true form), fitted on the split's non-test rows. A method's share of the headroom is "
        "(method − additive) / (interaction − additive) per run: 0 = as good as adding the two modalities, 1 = as "
        "good as reading the image through the record; negative below the additive oracle. Mean over runs with a "
        "95 % t-interval; a split without headroom gives no share.",
        "",
    ]
    rows = []
    for data in shares.to_dict("records"):
        share = f"{_signed(data['share'])} [{_signed(data['share_low'])}, {_signed(data['share_high'])}]"
        cells = [str(data[a]) for a in axes] + [data["method"], str(data["runs"]), _fmt(data["BA"]),
                 _fmt(data["additive"]), _fmt(data["interaction"]), share]  # fmt: skip
        rows.append(cells)
    head = [*axis_columns, "method", "runs", "BA", "additive", "interaction", "share [95 % CI]"]
    lines.append(format_table(head, rows, escape=False).removesuffix("\n"))
    lines += ["", "![Share of the interaction headroom per method](headroom.png)"]
    return "\n".join(lines) + "\n"


def _share_figure(shares: pd.DataFrame, axes: Sequence[str], reference: str, title: str) -> Figure:
    """Test BA per method beside the two oracles, and the share of the headroom, along the last grid axis."""
    axis = axes[-1] if axes else None
    figure = Figure(figsize=(11, 4.2), constrained_layout=True)
    left, right = figure.add_subplot(1, 2, 1), figure.add_subplot(1, 2, 2)
    methods = list(dict.fromkeys(shares["method"]))
    for index, method in enumerate(methods):
        rows = shares[shares["method"] == method]
        xs = np.arange(len(rows)) + 0.04 * (index - len(methods) / 2)
        style = dict(lw=2.2) if method == reference else dict(lw=1.2)
        left.plot(xs, rows["BA"], marker="o", label=method, **style)
        err = np.vstack([rows["share"] - rows["share_low"], rows["share_high"] - rows["share"]])
        right.errorbar(
            xs, rows["share"], yerr=np.nan_to_num(err), marker="o", capsize=3, label=method, **style
        )
    first = shares[shares["method"] == methods[0]]
    ticks = first[axis].astype(str).tolist() if axis else first["cell"].tolist()
    left.plot(np.arange(len(first)), first["additive"], "k--", lw=1, label="additive oracle")
    left.plot(np.arange(len(first)), first["interaction"], "k:", lw=1.5, label="interaction oracle")
    for ax, label in ((left, "test BA (mean over runs)"), (right, "share of the headroom (95 % CI)")):
        ax.set_xticks(np.arange(len(ticks)), ticks)
        ax.set_xlabel(axis.rsplit(".", 1)[-1] if axis else "cell")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    right.axhline(0, color="k", lw=0.8)
    left.legend(fontsize=7, loc="best")
    figure.suptitle(f"{title}: what each method captures of the interaction headroom")
    return figure


def _signed(value: float) -> str:
    return "–" if value is None or np.isnan(value) else f"{value:+.3f}"


def _figure(table: pd.DataFrame, axes: Sequence[str], reference: str, title: str) -> Figure:
    metrics = list(dict.fromkeys(table["metric"]))
    varying = [a for a in axes if table[a].astype(str).nunique() > 1]  # an axis with one value labels nothing
    axes = varying or list(axes[:1])
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
