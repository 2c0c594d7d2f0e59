"""Tables and plots from a long-form results table (paper Table 3, Fig. 5, Fig. C.8, Fig. 4B).

The input has columns ``method, split_seed, version, fold, metric, value``; by default only the rows with
``fold == "ensemble"`` (the test-set ensemble of each split seed × version) are summarised. Metric names follow
:func:`hyperfusion.evaluation.metrics.classification_metrics` / ``regression_metrics``: ``cm/<true>/<pred>``
cells make confusion-matrix plots, ``MAE-<group>`` columns the MAE-by-group plot.

The method ``no-skill`` (:data:`hyperfusion.evaluation.noskill.NO_SKILL`) is shown like any method but gets no
p-value: its comparison is the "better than no skill" section. The metrics ``tabular_sensitivity`` and
``image_sensitivity`` go to their own section, ``ECE`` and ``Brier`` to the calibration section.

``report.md`` is a list of sections (:data:`REPORT_SECTIONS`): each :class:`Section` renders its markdown from one
:class:`ReportContext` (the checked tables and settings of the :func:`write_report` call) and says nothing when
it has no data. A new section is one function: pass it as ``Section(name, render)`` in ``sections=`` (after the
others) or place it with ``layout=insert_section(...)``. :func:`write_report` also takes optional tables (their
columns are in :mod:`hyperfusion.evaluation.frames`): ``skill``, ``histories``, ``treatments``,
``predictions`` and ``members``. Each one adds a section.

Figures are drawn on :class:`matplotlib.figure.Figure` objects (Agg canvas, no pyplot state), each with a title,
and every file is written to a temporary name and renamed, so an interrupted report never leaves a half-written
file.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from hyperfusion.atomic import write_text_atomic
from hyperfusion.evaluation.calibration import DEFAULT_BINS
from hyperfusion.evaluation.figures import plot_learning_curves, plot_reliability, save_figure
from hyperfusion.evaluation.frames import check_histories, check_predictions, check_skill, check_treatments
from hyperfusion.evaluation.noskill import NO_SKILL
from hyperfusion.evaluation.sections import (
    entropy_section,
    format_p,
    learning_section,
    members_section,
    paired_section,
    reader_section,
    sensitivity_section,
    skill_section,
    treatments_section,
)
from hyperfusion.evaluation.sensitivity import (
    DEFAULT_FLOOR,
    DEFAULT_FRACTION,
    SENSITIVITY_METRICS,
    sensitivity_flags,
)
from hyperfusion.evaluation.stats import (
    ENSEMBLE_FOLD,
    MIN_RUNS,
    SIGNIFICANCE,
    check_results,
    compare_paired,
    compare_to_reference,
    run_values,
)
from hyperfusion.text import format_table

__all__ = [
    "CALIBRATION_METRICS",
    "REPORT_SECTIONS",
    "ReportContext",
    "Section",
    "insert_section",
    "main_metrics",
    "markdown_table",
    "plot_confusion_matrices",
    "plot_mae_by_group",
    "plot_metric_bars",
    "summary_table",
    "write_report",
]

CM_PREFIX = "cm/"
CALIBRATION_METRICS = ("ECE", "Brier")


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
    untested: Sequence[str] = (NO_SKILL,),
) -> pd.DataFrame:
    """Tidy ``method, metric, n, mean, std, p_value, min_p, note`` over runs (std with ddof = 1).

    ``p_value`` is the two-sided Mann–Whitney U against ``reference`` (NaN for the reference itself and for the
    ``untested`` methods, and with a ``note`` when fewer than ``min_runs`` runs make the test unavailable);
    ``min_p`` is the smallest p that test could give with these run counts. ``reference=None`` skips the tests.
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
    out["min_p"] = math.nan
    out["note"] = ""
    skip = {str(m) for m in untested} - ({reference} if reference is not None else set())
    tested = df[~df["method"].isin(skip)]
    if reference is not None:
        tests = compare_to_reference(tested, reference, metrics=names, fold=fold, min_runs=min_runs)
        key = tests.set_index(["method", "metric"])
        idx = pd.MultiIndex.from_frame(out[["method", "metric"]])
        out["p_value"] = key["p_value"].reindex(idx).to_numpy()
        out["min_p"] = key["min_p"].reindex(idx).to_numpy()
        out["note"] = key["note"].reindex(idx).fillna("").to_numpy()
    return out


def markdown_table(
    results: pd.DataFrame,
    *,
    reference: str | None = "HyperFusion",
    metrics: Sequence[str] | None = None,
    fold: str | None = ENSEMBLE_FOLD,
    digits: int = 3,
    min_runs: int = MIN_RUNS,
    untested: Sequence[str] = (NO_SKILL,),
) -> str:
    """The paper's Table 3 layout: methods as rows, metrics as columns, ``mean ± std`` and the p-value
    against ``reference`` in each cell, followed by a line saying which test was used or why it was not,
    and which methods cannot reach p < 0.05 at their run counts. ``untested`` methods (the no-skill
    baseline) get no p-value."""
    summary = summary_table(
        results, reference=reference, metrics=metrics, fold=fold, min_runs=min_runs, untested=untested
    )
    skip = {str(m) for m in untested}
    names = list(dict.fromkeys(summary["metric"]))
    rows = []
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
            if reference is not None and method != reference and method not in skip:
                if r["note"]:
                    unavailable = True
                    cell += " (p n/a)"
                else:
                    cell += f" ({format_p(r['p_value'])})"
            cells.append(cell)
        rows.append([method, int(sub["n"].max()), *cells])
    text = format_table(["method", "runs", *names], rows, right=range(1, len(names) + 2), escape=False)
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
        floor = summary[(summary["note"] == "") & (summary["min_p"] >= SIGNIFICANCE)]
        floor = floor[~floor["method"].isin(skip) & (floor["method"] != reference)]
        if not floor.empty:
            worst = floor.groupby("method", sort=False)["min_p"].max()
            listed = ", ".join(f"{m} (smallest exact p = {p:.3f})" for m, p in worst.items())
            text += (
                f"At these run counts the exact Mann–Whitney test cannot reach p < {SIGNIFICANCE:g} for {listed}; "
                "more runs are needed before a difference can show. (Where run values tie, SciPy switches to a "
                "normal approximation, whose smaller p-values are not exact at these sizes.)\n"
            )
        if any(m in skip for m in summary["method"]):
            text += f"{', '.join(m for m in dict.fromkeys(summary['method']) if m in skip)}: no p-value (a baseline).\n"
    return text


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
    _fit_error_bars(ax, mean, std, bounded=False)


def _fit_error_bars(ax, mean: np.ndarray, std: np.ndarray, *, bounded: bool) -> None:
    """Y-limits that show every bar and its whole error bar (at least [0, 1] for ``bounded`` scores)."""
    spread = np.nan_to_num(np.asarray(std, dtype=float))
    m = np.asarray(mean, dtype=float)
    lo, hi = np.nanmin(np.append(m - spread, 0.0)), np.nanmax(np.append(m + spread, 0.0))
    if bounded:
        hi = max(hi, 1.0)
    pad = 0.04 * (hi - lo if hi > lo else 1.0)
    ax.set_ylim(lo - pad if lo < 0 else 0.0, hi + pad)


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
    _fit_error_bars(ax, mean, std, bounded=all(not n.startswith("MAE") for n in names))
    ax.set_title("Every metric per method (mean ± std over runs)")
    ax.legend(
        fontsize=8, ncol=min(4, len(methods)), loc="upper center", bbox_to_anchor=(0.5, -0.1), frameon=False
    )
    return save_figure(fig, path)


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
    fig.suptitle("Row-normalised confusion matrices (mean ± std over runs)")
    return save_figure(fig, path)


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
    ax.set_title("MAE by group per method (mean ± std over runs)")
    ax.legend(
        fontsize=8, ncol=min(4, len(methods)), loc="upper center", bbox_to_anchor=(0.5, -0.15), frameon=False
    )
    return save_figure(fig, path)


def main_metrics(results: pd.DataFrame, *, fold: str | None = ENSEMBLE_FOLD) -> list[str]:
    """The metrics of the main table: every scalar metric but the sensitivities and calibration metrics
    (which have their own sections); all scalar metrics if nothing else is left."""
    df = check_results(results)
    scalar = _scalar_metrics(run_values(df, fold=fold), df)
    main = [m for m in scalar if m not in SENSITIVITY_METRICS and m not in CALIBRATION_METRICS]
    return main or scalar


def _empty(frame: pd.DataFrame | None) -> bool:
    return frame is None or len(frame) == 0


# ----------------------------------------------------------------------------------------------------------
# the report as a list of sections


@dataclass(frozen=True, eq=False)
class ReportContext:
    """What the report's sections read: the checked tables and the settings of one :func:`write_report` call.

    ``reference`` is ``None`` when it is not in the results; ``main`` and ``calibration`` are the metrics of the
    main and the calibration table, ``metrics`` every metric column of the run values (``cm/`` cells included);
    ``predictions`` is a classification table (a regression one is dropped). The optional tables are ``None``
    when not given or empty. ``figures`` collects the figures the sections draw, by name, in order.
    """

    results: pd.DataFrame
    out_dir: Path
    title: str
    reference: str | None
    fold: str | None
    min_runs: int
    main: tuple[str, ...]
    calibration: tuple[str, ...]
    metrics: tuple[str, ...]
    no_skill: str = NO_SKILL
    tabular_method: str | None = "Tabular"
    image_method: str | None = "Imaging"
    reader_method: str | None = None
    skill: pd.DataFrame | None = None
    members: pd.DataFrame | None = None
    histories: pd.DataFrame | None = None
    treatments: pd.DataFrame | None = None
    predictions: pd.DataFrame | None = None
    test_train_ratio: float | None = None
    sensitivity_fraction: float = DEFAULT_FRACTION
    sensitivity_floor: float = DEFAULT_FLOOR
    calibration_bins: int = DEFAULT_BINS
    seed: int = 0
    figures: dict[str, Path] = field(default_factory=dict)

    def results_table(self, metrics: Sequence[str]) -> str:
        """:func:`markdown_table` of ``metrics`` as the report shows it (the no-skill row without a p-value)."""
        return markdown_table(
            self.results,
            reference=self.reference,
            metrics=metrics,
            fold=self.fold,
            min_runs=self.min_runs,
            untested=(self.no_skill,),
        )

    def draw(self, name: str, plot: Callable[[Path], Path | None]) -> Path:
        """Draw figure ``name`` with ``plot(out_dir / "<name>.png")``, record it in ``figures``, return its path."""
        path = plot(self.out_dir / f"{name}.png")
        assert path is not None, f"{name}: nothing to draw"  # a section draws only what it has data for
        self.figures[name] = path
        return path


@dataclass(frozen=True)
class Section:
    """One part of ``report.md``: ``render`` returns its markdown, or ``""`` when it has nothing to say.

    A section's text opens with a blank line and its ``## `` heading and ends with a newline; the report is the
    sections' texts one after the other.
    """

    name: str
    render: Callable[[ReportContext], str]


def _main_table(report: ReportContext) -> str:
    return f"# {report.title}\n\n" + report.results_table(report.main)


FIGURE_CAPTIONS = {
    "metrics": "Every metric per method (mean ± std over runs)",
    "confusion": "Row-normalised confusion matrices (mean ± std over runs)",
    "mae_by_group": "MAE by group per method (mean ± std over runs)",
}


def _figures(report: ReportContext) -> str:
    df, fold = report.results, report.fold
    drawn = [report.draw("metrics", lambda p: plot_metric_bars(df, p, metrics=report.main, fold=fold))]
    if any(c.startswith(CM_PREFIX) for c in report.metrics):
        drawn.append(report.draw("confusion", lambda p: plot_confusion_matrices(df, p, fold=fold)))
    if any(c.startswith("MAE-") for c in report.metrics):
        drawn.append(report.draw("mae_by_group", lambda p: plot_mae_by_group(df, p, fold=fold)))
    return "".join(
        f"\n## {FIGURE_CAPTIONS[p.stem]}\n\n![{FIGURE_CAPTIONS[p.stem]}]({p.name})\n" for p in drawn
    )


def _reader(report: ReportContext) -> str:
    if report.reader_method is None or report.image_method is None:
        return ""
    return reader_section(
        report.results,
        image_methods=[report.image_method],
        reader=report.reader_method,
        no_skill=report.no_skill,
    )


def _skill(report: ReportContext) -> str:
    return "" if report.skill is None else skill_section(report.skill)


def _members(report: ReportContext) -> str:
    return "" if report.members is None else members_section(report.members)


def _paired(report: ReportContext) -> str:
    if report.reference is None:
        return ""
    paired = compare_paired(
        report.results,
        report.reference,
        metrics=[*report.main, *report.calibration],
        fold=report.fold,
        test_train_ratio=report.test_train_ratio,
        exclude=(report.no_skill,),
        unpaired="drop",
        min_runs=max(2, report.min_runs),
        seed=report.seed,
    )
    return paired_section(
        paired, report.reference, test_train_ratio=report.test_train_ratio, fold=report.fold
    )


def _inputs(report: ReportContext) -> str:
    reader = [report.reader_method] if report.reader_method else []  # the reader reads the image only
    flags = sensitivity_flags(
        report.results,
        fold=report.fold,
        tabular_method=report.tabular_method,
        image_method=report.image_method,
        exclude=(report.no_skill, *reader),
        fraction=report.sensitivity_fraction,
        floor=report.sensitivity_floor,
    )
    return sensitivity_section(
        flags,
        tabular_method=report.tabular_method,
        image_method=report.image_method,
        fraction=report.sensitivity_fraction,
        floor=report.sensitivity_floor,
    )


def _calibration(report: ReportContext) -> str:
    predictions = report.predictions
    if not report.calibration and predictions is None:
        return ""
    text = (
        "\n## Calibration\n\n"
        "ECE: top-label expected calibration error, Σ over equal-width confidence bins of (bin share) ×\n"
        "|accuracy − mean confidence| (0 = calibrated). Brier: mean over subjects of Σ_c (p_c − y_c)²\n"
        "(0 best, 2 worst). Both are computed on each run's test set; lower is better.\n\n"
    )
    if report.calibration:
        text += report.results_table(report.calibration)
    if predictions is not None:
        bins = report.calibration_bins
        figure = report.draw("reliability", lambda p: plot_reliability(predictions, p, n_bins=bins))
        text += (
            f"\n![Reliability diagrams]({figure.name})\n\n"
            f"Reliability diagrams: {bins} equal-width bins of the top-label confidence; a\n"
            "calibrated model's bars reach the diagonal.\n"
        )
        text += entropy_section(predictions)
    return text


def _treatments(report: ReportContext) -> str:
    return "" if report.treatments is None else treatments_section(report.treatments)


def _learning(report: ReportContext) -> str:
    histories = report.histories
    if histories is None:
        return ""
    figure = report.draw("learning_curves", lambda p: plot_learning_curves(histories, p))
    return learning_section(histories, figure.name)


#: The report's sections, in order (the caller's ``sections`` follow them).
REPORT_SECTIONS: tuple[Section, ...] = (
    Section("main table", _main_table),
    Section("figures", _figures),
    Section("reader", _reader),
    Section("skill", _skill),
    Section("members", _members),
    Section("paired", _paired),
    Section("inputs", _inputs),
    Section("calibration", _calibration),
    Section("treatments", _treatments),
    Section("learning curves", _learning),
)


def insert_section(
    section: Section,
    *,
    after: str | None = None,
    before: str | None = None,
    layout: Sequence[Section] = REPORT_SECTIONS,
) -> tuple[Section, ...]:
    """``layout`` with ``section`` placed right after (or before) the section named ``after`` (``before``).

    Raises:
        ValueError: not exactly one of ``after`` and ``before``, or no section of that name.
    """
    if (after is None) == (before is None):
        raise ValueError("insert_section takes one of after= and before=")
    names = [s.name for s in layout]
    anchor = after if after is not None else before
    if anchor not in names:
        raise ValueError(f"no report section {anchor!r}; sections: {names}")
    at = names.index(anchor) + (after is not None)
    return (*layout[:at], section, *layout[at:])


def write_report(
    results: pd.DataFrame,
    out_dir: str | os.PathLike[str],
    *,
    reference: str | None = "HyperFusion",
    fold: str | None = ENSEMBLE_FOLD,
    title: str = "Results",
    min_runs: int = MIN_RUNS,
    skill: pd.DataFrame | None = None,
    histories: pd.DataFrame | None = None,
    treatments: pd.DataFrame | None = None,
    predictions: pd.DataFrame | None = None,
    test_train_ratio: float | None = None,
    no_skill: str = NO_SKILL,
    tabular_method: str | None = "Tabular",
    image_method: str | None = "Imaging",
    reader_method: str | None = None,
    members: pd.DataFrame | None = None,
    sensitivity_fraction: float = DEFAULT_FRACTION,
    sensitivity_floor: float = DEFAULT_FLOOR,
    calibration_bins: int = DEFAULT_BINS,
    seed: int = 0,
    sections: Sequence[str | Section] = (),
    layout: Sequence[Section] = REPORT_SECTIONS,
) -> dict[str, Path]:
    """Write ``report.md`` and its PNG figures into ``out_dir``; return the written paths by name.

    The report is ``layout``'s sections (:data:`REPORT_SECTIONS`, or one from :func:`insert_section`), then
    ``sections``: each rendered from one :class:`ReportContext`, a section with nothing to say writing nothing.
    Always: the main table (every method, ``no_skill`` included without a p-value; two-sided Mann–Whitney U
    against ``reference``) and ``metrics.png``. With the data for them:

    - ``confusion.png`` (``cm/`` cells) and ``mae_by_group.png`` (``MAE-<group>`` metrics);
    - "Does the image model read what the crops hold?": ``image_method``'s share of ``reader_method``'s skill
      above no skill (balanced accuracy; both in the results);
    - "Better than no skill?" from ``skill``;
    - "Better than its own single-modality models?" from ``members`` (fusion − member per run, from
      :func:`hyperfusion.evaluation.aggregate.difference_table`), flagging a fusion below a member;
    - "Paired comparison with <reference>": Wilcoxon signed-rank, the corrected resampled t-test (needs
      ``test_train_ratio`` = n_test / n_train of one run) and effect sizes, for every method but ``no_skill``,
      on the runs it shares with the reference;
    - "Does each method use both inputs?" from the ``tabular_sensitivity`` / ``image_sensitivity`` metrics,
      flagging methods below ``max(sensitivity_floor, sensitivity_fraction × the single-input model's)``
      (:mod:`hyperfusion.evaluation.sensitivity`);
    - "Calibration" from the ``ECE`` / ``Brier`` metrics, with ``reliability.png`` and the entropy table from
      ``predictions`` (classification only; a regression ``predictions`` table is skipped);
    - "How each method was trained" from ``treatments``;
    - "Learning curves" (``learning_curves.png``) from ``histories``;
    - then ``sections``, the caller's: a :class:`Section`, or markdown it made (e.g. the regression ensemble's
      table), in order: the report is written once, never re-read and appended to.

    The optional tables' columns are in :mod:`hyperfusion.evaluation.frames`; empty tables are skipped. A
    ``reference`` absent from the results skips the p-values.

    Raises:
        ValueError: a malformed results or optional table (the message names the table, row and column).
    """
    df = check_results(results)
    # validate every optional table before anything is written
    skill = None if _empty(skill) else check_skill(skill)
    histories = None if _empty(histories) else check_histories(histories)
    treatments = None if _empty(treatments) else check_treatments(treatments)
    classified = None if _empty(predictions) or check_predictions(predictions) is None else predictions
    wide = run_values(df, fold=fold)
    if reference is not None and reference not in set(wide.index.get_level_values("method")):
        reference = None
    context = ReportContext(
        results=df,
        out_dir=Path(out_dir),
        title=title,
        reference=reference,
        fold=fold,
        min_runs=min_runs,
        main=tuple(main_metrics(df, fold=fold)),
        calibration=tuple(m for m in CALIBRATION_METRICS if m in wide.columns),
        metrics=tuple(wide.columns),
        no_skill=no_skill,
        tabular_method=tabular_method,
        image_method=image_method,
        reader_method=reader_method,
        skill=skill,
        members=None if _empty(members) else members,
        histories=histories,
        treatments=treatments,
        predictions=classified,
        test_train_ratio=test_train_ratio,
        sensitivity_fraction=sensitivity_fraction,
        sensitivity_floor=sensitivity_floor,
        calibration_bins=calibration_bins,
        seed=seed,
    )
    text = "".join(s if isinstance(s, str) else s.render(context) for s in (*layout, *sections))
    return {**context.figures, "report": write_text_atomic(context.out_dir / "report.md", text)}
