"""The survival report section: C-indices and time-dependent AUC on the test subjects, Kaplan–Meier curves by
predicted-risk tertile, the integrated Brier score beside the Kaplan–Meier one, and calibration at a horizon.

Uno's C, the time-dependent AUC and the Brier score weigh test subjects by the censoring distribution of the
split's **training rows** (read from the partitions file the run trained on), so the section is made in `run/`.
Horizons are 12, 24 and 36 months, the visits every ADNI phase has; one outside the test subjects' or the training
rows' follow-up shows ``—``. Uno's C is truncated at the last horizon shown.

Survival probabilities are each ensemble's (the mean of its members' S(t | x), each member with the Breslow
baseline of its own training rows; `hyperfusion.run.hazards`); no skill gives everyone the Kaplan–Meier curve of
the training rows. The integrated Brier score runs over a monthly grid from the first to the last horizon (cut at
the follow-up); calibration compares, at 24 months (or the last horizon inside the follow-up), each predicted-risk
tertile's mean predicted S(t) with the Kaplan–Meier estimate of its subjects.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from hyperfusion.data.manifest import Cohort
from hyperfusion.evaluation.figures import panel_grid, save_figure
from hyperfusion.evaluation.noskill import NO_SKILL
from hyperfusion.evaluation.report import ReportContext, Section
from hyperfusion.evaluation.sections import skill_section
from hyperfusion.evaluation.survival import (
    HORIZONS,
    calibration_at,
    cumulative_dynamic_auc,
    harrell_c,
    integrated_brier_score,
    kaplan_meier,
    noskill_survival,
    uno_c,
)
from hyperfusion.run.finished import FinishedRun
from hyperfusion.run.hazards import MissingBaseline, ensemble_test_survival
from hyperfusion.text import format_table

TERTILES = ("low", "middle", "high")
#: the horizon calibration is shown at (months), when the follow-up reaches it
CALIBRATION_HORIZON = 24.0


def followed(t: np.ndarray, t_train: np.ndarray, horizons) -> list[float]:
    """The horizons before both the test subjects' and the training rows' last follow-up."""
    end = min(float(np.max(t)), float(np.max(t_train)))
    return [float(h) for h in horizons if h < end]


def brier_grid(t: np.ndarray, t_train: np.ndarray) -> np.ndarray:
    """The integrated Brier score's months: every month from the first to the last horizon, inside the follow-up."""
    return np.asarray(followed(t, t_train, np.arange(HORIZONS[0], HORIZONS[-1] + 1.0)))


def calibration_horizon(t: np.ndarray, t_train: np.ndarray) -> float | None:
    """`CALIBRATION_HORIZON` when the follow-up reaches past it, else the last horizon that it does (or None)."""
    usable = followed(t, t_train, HORIZONS)
    if CALIBRATION_HORIZON in usable:
        return CALIBRATION_HORIZON
    return usable[-1] if usable else None


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


def probability_rows(
    survival: np.ndarray,
    grid: np.ndarray,
    at_horizon: np.ndarray | None,
    horizon: float | None,
    p: pd.DataFrame,
    train: np.ndarray,
) -> tuple[list[str], list[list[str]]]:
    """One ensemble's Brier cells (its integrated Brier score, the Kaplan–Meier one) and calibration rows.

    ``survival`` is its test subjects' S ``[N, G]`` at the months of ``grid``, ``at_horizon`` their S at the
    calibration ``horizon`` (``p``'s rows, in order; None without a horizon); ``train`` the split's training
    targets ``[M, 2]``.
    """
    t, e = p["time"].to_numpy(np.float64), p["event"].to_numpy(np.float64)
    t_train, e_train = train[:, 0].astype(np.float64), train[:, 1].astype(np.float64)
    brier = ["—", "—"]
    if grid.size >= 2:
        km = noskill_survival(t_train, e_train, len(t), grid)
        brier = [f"{integrated_brier_score(s, t, e, t_train, e_train, grid):.3f}" for s in (survival, km)]
    calibration = []
    if horizon is not None and at_horizon is not None:
        groups = risk_tertiles(p["predicted"].to_numpy(np.float64))
        for group, n, predicted, observed in calibration_at(at_horizon, t, e, groups, horizon):
            km_cell = "—" if np.isnan(observed) else f"{observed:.3f}"
            calibration.append([TERTILES[group], str(n), f"{horizon:g}", f"{predicted:.3f}", km_cell])
    return brier, calibration


def probability_tables(finished: FinishedRun, cohort: Cohort, predictions: pd.DataFrame, train) -> str:
    """The Brier table (every method's ensemble beside no skill's) and the calibration table, as markdown."""
    brier_rows, calibration_rows = [], []
    for (method, seed, version), p in predictions.groupby(["method", "split_seed", "version"], sort=False):
        if method == NO_SKILL:
            continue
        t, t_train = p["time"].to_numpy(np.float64), train[int(seed)][:, 0]
        grid, horizon = brier_grid(t, t_train), calibration_horizon(t, t_train)
        months = [*grid.tolist(), *([] if horizon is None else [horizon])]
        try:
            ids, survival = ensemble_test_survival(finished, cohort, str(method), int(seed), months)
        except MissingBaseline as err:
            return f"\nSurvival probabilities are not shown: {err}.\n"
        p = p.set_index(p["subject_id"].astype(str)).loc[ids]
        at_horizon = None if horizon is None else survival[:, -1]
        brier, calibration = probability_rows(
            survival[:, : grid.size], grid, at_horizon, horizon, p, train[int(seed)]
        )
        brier_rows.append([str(method), str(seed), str(version), *brier])
        calibration_rows += [[str(method), str(seed), str(version), *row] for row in calibration]
    brier_table = format_table(
        ["method", "split seed", "version", "IBS", "Kaplan–Meier IBS (no skill)"], brier_rows, right=[3, 4]
    )
    calibration_table = format_table(
        [
            "method",
            "split seed",
            "version",
            "risk tertile",
            "subjects",
            "month",
            "predicted S",
            "Kaplan–Meier S",
        ],
        calibration_rows,
        right=[4, 5, 6, 7],
    )
    return (
        "\n### Survival probabilities: integrated Brier score beside no skill\n\n"
        f"The integrated Brier score over months {HORIZONS[0]:g}–{HORIZONS[-1]:g} (lower is better; cut at the "
        "follow-up) of each ensemble's survival probabilities — the mean of its members' S(t | x), each from the "
        "Breslow baseline hazard of its own training rows — beside no skill's, which gives every subject the "
        "training rows' Kaplan–Meier curve.\n\n"
        f"{brier_table}\n"
        "\n### Calibration: predicted against observed survival by predicted-risk tertile\n\n"
        "Each tertile's mean predicted S(t) beside the Kaplan–Meier estimate of its test subjects (— where none is "
        "followed to that month). A calibrated model has the two close in every tertile.\n\n"
        f"{calibration_table}"
    )


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
            f"{probability_tables(finished, cohort, predictions, train)}"
        )

    return Section("survival", render)


#: what survival's no-skill baseline predicts, for the "Better than no skill?" section
SURVIVAL_BASELINE = (
    "gives\nevery subject one risk (C = 0.5) and the training rows' Kaplan–Meier curve as its survival (the "
    "integrated\nBrier score a model must beat, below)"
)


def survival_skill_section() -> Section:
    """The report's "Better than no skill?" section in survival's words (its baseline; the bootstrap by event)."""

    def render(report: ReportContext) -> str:
        if report.skill is None:
            return ""
        return skill_section(report.skill, baseline=SURVIVAL_BASELINE, strata="stratified by the event")

    return Section("skill", render)
