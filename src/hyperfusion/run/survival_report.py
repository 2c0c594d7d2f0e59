"""The survival report section: C-indices and time-dependent AUC on the test subjects, and Kaplan–Meier curves by
predicted-risk tertile.

Uno's C and the time-dependent AUC weigh test subjects by the censoring distribution of the split's **training
rows** (read from the partitions file the run trained on), so the section is made in `run/`. Horizons are 12, 24
and 36 months, the visits every ADNI phase has; one outside the test subjects' or the training rows' follow-up
shows ``—``. Uno's C is truncated at the last horizon shown.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from hyperfusion.data.manifest import Cohort
from hyperfusion.evaluation.figures import panel_grid, save_figure
from hyperfusion.evaluation.report import ReportContext, Section
from hyperfusion.evaluation.survival import cumulative_dynamic_auc, harrell_c, kaplan_meier, uno_c
from hyperfusion.run.finished import FinishedRun
from hyperfusion.text import format_table

HORIZONS = (12.0, 24.0, 36.0)
TERTILES = ("low", "middle", "high")


def risk_tertiles(risk: np.ndarray) -> np.ndarray:
    """0 / 1 / 2 per subject: the third of the predicted risks it falls in (ties by position, stable)."""
    order = np.argsort(np.asarray(risk, dtype=np.float64), kind="stable")
    out = np.empty(order.size, dtype=np.int64)
    out[order] = np.arange(order.size) * 3 // order.size
    return out


def survival_rows(predictions: pd.DataFrame, train: dict[int, np.ndarray]) -> list[list[str]]:
    """One row per method, split seed and version: Harrell's C, Uno's C and the AUC at each horizon."""
    rows = []
    for (method, seed, version), p in predictions.groupby(["method", "split_seed", "version"], sort=False):
        t, e = p["time"].to_numpy(np.float64), p["event"].to_numpy(np.float64)
        r = p["predicted"].to_numpy(np.float64)
        t_train, e_train = (
            train[int(seed)][:, 0].astype(np.float64),
            train[int(seed)][:, 1].astype(np.float64),
        )
        usable = [h for h in HORIZONS if t.min() < h < min(t.max(), t_train.max())]
        auc = dict(zip(usable, cumulative_dynamic_auc(r, t, e, t_train, e_train, usable), strict=True))
        uno = uno_c(r, t, e, t_train, e_train, tau=max(usable) if usable else None)
        cells = [
            f"{harrell_c(r, t, e):.3f}",
            f"{uno:.3f}",
            *(f"{auc[h]:.3f}" if h in auc else "—" for h in HORIZONS),
        ]
        rows.append([str(method), str(seed), str(version), *cells])
    return rows


def plot_risk_tertiles(predictions: pd.DataFrame, path: Path) -> Path:
    """Kaplan–Meier curves of the test subjects of each method's first run, split by predicted-risk tertile (not
    for one risk given to everyone, as no skill does: its thirds would be an arbitrary split)."""
    ranked = predictions.groupby("method", sort=False)["predicted"].transform("nunique") > 1
    runs = predictions[ranked].groupby("method", sort=False)
    fig, axes = panel_grid(runs.ngroups, 3, 3.4, 2.6)
    for ax, (method, p) in zip(axes, runs, strict=True):
        first = p[(p["split_seed"] == p["split_seed"].iloc[0]) & (p["version"] == p["version"].iloc[0])]
        third = risk_tertiles(first["predicted"].to_numpy())
        for k, name in enumerate(TERTILES):
            rows = third == k
            times, surv = kaplan_meier(first["time"].to_numpy()[rows], first["event"].to_numpy()[rows])
            ax.step(np.r_[0.0, times], np.r_[1.0, surv], where="post", label=f"{name} risk (n={rows.sum()})")
        ax.set(title=str(method), xlabel="months", ylabel="event-free", ylim=(0, 1.02))
        ax.legend(fontsize=6)
    fig.suptitle("Kaplan–Meier by predicted-risk tertile (test subjects)")
    return save_figure(fig, path)


def survival_section(finished: FinishedRun, cohort: Cohort, predictions: pd.DataFrame) -> Section:
    """The section (empty without predictions): the C table beside no skill, and the tertile figure."""

    def render(report: ReportContext) -> str:
        if predictions.empty:
            return ""
        seeds = sorted({int(s) for s in predictions["split_seed"]})
        train = {s: finished.no_skill_targets(cohort, s) for s in seeds}
        header = [
            "method",
            "split seed",
            "version",
            "Harrell C",
            "Uno C",
            *(f"AUC {h:g} mo" for h in HORIZONS),
        ]
        table = format_table(header, survival_rows(predictions, train), right=list(range(3, 8)))
        figure = ""
        if (predictions.groupby("method")["predicted"].nunique() > 1).any():
            path = report.draw("survival_tertiles", lambda out: plot_risk_tertiles(predictions, out))
            figure = f"![Kaplan–Meier by predicted-risk tertile]({path.name})\n"
        return (
            "\n## Survival: concordance and time-dependent AUC on the test subjects\n\n"
            "No skill gives every subject one risk: C = 0.5 and AUC = 0.5. Uno's C and the AUC weigh subjects by "
            "the censoring of the training rows.\n\n"
            f"{table}\n{figure}"
        )

    return Section("survival", render)
