"""A run's report: its finished unit records → results.csv, predictions.csv, skill.csv, report.md and the plots.

Used at the end of ``run`` and by ``report``; ``predict`` combines models through the same aggregation module.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from hyperfusion.atomic import write_text_atomic
from hyperfusion.config import RunConfig
from hyperfusion.data import Cohort
from hyperfusion.evaluation.aggregate import ENSEMBLE, Aggregate, Scoring, aggregate, difference_table
from hyperfusion.evaluation.report import (
    REPORT_SECTIONS,
    ReportContext,
    Section,
    markdown_table,
    write_report,
)
from hyperfusion.models import model_info
from hyperfusion.models.registry import family_member
from hyperfusion.run.finished import FinishedRun
from hyperfusion.run.setup import group_column
from hyperfusion.run.store import RunDirectory
from hyperfusion.run.survival_report import survival_section, survival_skill_section
from hyperfusion.run.tuning_report import tuning_section
from hyperfusion.tasks import get_task


def scoring_for(config: RunConfig, cohort: Cohort) -> Scoring:
    groups = None
    if get_task(cohort.task).scores_by_group:
        column = group_column(cohort, config.protocol.group_by)
        if column is not None:
            groups = dict(zip(cohort.frame["subject_id"].astype(str), cohort.frame[column].astype(str)))
    return Scoring(
        task=cohort.task,
        classes=tuple(cohort.classes),
        ensemble=config.protocol.ensemble,
        top_k=config.protocol.top_k,
        groups=groups,
    )


def aggregate_run(finished: FinishedRun, cohort: Cohort) -> Aggregate:
    """The run's results from its finished records; the no-skill rows from the partitions those records name.

    Raises:
        RuntimeError: no finished model.
        RunDirectoryError: a partitions file that is not the one the records were trained on (checked first).
    """
    config, run = finished.config, finished.directory
    records = finished.records(cohort)
    if not records:
        raise RuntimeError(f"{run.root}: no finished models to report")
    of_seed = {
        seed: [r for (_, s, _, _), r in records.items() if s == seed] for seed in config.protocol.split_seeds
    }
    for seed, mine in of_seed.items():
        if mine:
            run.verified_partitions(seed, mine)
    return aggregate(
        records,
        methods=config.methods,
        split_seeds=config.protocol.split_seeds,
        versions=config.protocol.versions,
        folds=get_task(cohort.task).folds(config.protocol),
        scoring=scoring_for(config, cohort),
        train_targets=lambda seed: finished.no_skill_targets(cohort, seed, of_seed[seed]),
    )


def treatments(config: RunConfig, records: dict[tuple, dict[str, Any]]) -> pd.DataFrame:
    """How each method was trained: parameters, warm start, epochs, learning rate, loss, batch size."""
    rows = []
    for method in config.methods:
        mine = [r for (m, *_), r in records.items() if m == method]
        if not mine:
            continue
        kinds = {r.get("kind", "train") for r in mine}
        warm = sorted({r.get("warm_start") or "none" for r in mine})
        training = config.training_for(method)  # its own settings where method_training gives them
        rows.append(
            {
                "method": method,
                "parameters": int(np.median([r.get("parameters", 0) for r in mine])),
                "warm start": ", ".join(warm),
                "epochs": _epochs(kinds, training.epochs),
                "learning rate": training.lr,
                "loss": config.training.loss,
                "batch size": training.batch_size,
            }
        )
    return pd.DataFrame(rows)


def members_table(
    config: RunConfig, result: Aggregate, scoring: Scoring, members: tuple[str, ...]
) -> pd.DataFrame:
    """Every fusion method's ensembles against each of its single-modality members that the run reports."""
    reported = {method for method, _, _ in result.ensembles}
    fusions = [m for m in config.methods if model_info(m).fusion != "none"]
    pairs = [(m, member) for m in fusions for member in members if member in reported]
    return difference_table(result.ensembles, scoring, pairs)


def _epochs(kinds: set[str], epochs: int) -> int | str:
    if kinds == {"compose"}:
        return "— (combines trained members)"
    if kinds == {"fit"}:
        return "— (closed form)"
    return epochs


def test_train_ratio(config: RunConfig, task: str) -> float:
    """n_test / n_train of one run, for the corrected resampled t-test (Nadeau & Bengio 2003)."""
    return get_task(task).test_train_ratio(config.protocol)


def ensemble_section(top_k: int, metric: str = "MAE") -> Section:
    """Regression and survival: the table of the test-set top-k ensembles, after the main table of each version's
    model (``metric``: the validation metric that ranks the versions)."""

    def render(report: ReportContext) -> str:
        return (
            f"\n## Test-set ensemble: mean of the top {top_k} versions by validation {metric} (eq. 6)\n\n"
            "The main table scores each version's single model; this one the ensemble.\n\n"
            + markdown_table(report.results, reference=None, fold=ENSEMBLE)
        )

    return Section("ensemble", render)


def build_report(config: RunConfig, cohort: Cohort, run: RunDirectory) -> pd.DataFrame:
    """Write results.csv, predictions.csv, skill.csv, report.md and its plots; returns the results table.

    Classification: the main table scores each version's fold ensemble. Regression: the main table scores each
    version's model, and a second table the top-k ensemble (paper eq. 6).
    """
    finished = FinishedRun(run.root, config)
    records = finished.records(cohort)
    result = aggregate_run(finished, cohort)
    write_text_atomic(run.results, result.results.to_csv(index=False))
    if not result.predictions.empty:
        write_text_atomic(run.predictions, result.predictions.to_csv(index=False))
    write_text_atomic(run.root / "skill.csv", result.skill.to_csv(index=False))
    task = get_task(cohort.task)
    image_method = family_member(config.reference_method, "imaging")
    tabular_method = family_member(config.reference_method, "tabular")
    sections = []
    if task.reported_fold != ENSEMBLE and (result.results["fold"] == ENSEMBLE).any():
        sections.append(ensemble_section(config.protocol.top_k, task.selection.name))
    if config.tuning:  # made from a tuned.yaml: how each method was tuned
        sections.append(tuning_section(config))
    layout = REPORT_SECTIONS
    if {"time", "event"} <= set(result.predictions.columns):  # survival predictions: C, AUC, KM, Brier
        sections.append(survival_section(finished, cohort, result.predictions))
        layout = tuple(survival_skill_section() if s.name == "skill" else s for s in REPORT_SECTIONS)
    write_report(
        result.results,
        run.root,
        reference=config.reference_method,
        fold=task.reported_fold,
        title=f"HyperFusion comparison: {cohort.task}, {len(cohort.frame)} subjects ({config.cohort})",
        skill=result.skill,
        histories=result.histories,
        treatments=treatments(config, records),
        predictions=result.predictions if task.has_classes else None,
        test_train_ratio=test_train_ratio(config, cohort.task),
        tabular_method=tabular_method,
        image_method=image_method,
        reader_method=family_member(config.reference_method, "reader"),
        sections=sections,
        layout=layout,
        members=members_table(
            config, result, scoring_for(config, cohort), tuple(m for m in (image_method, tabular_method) if m)
        ),
    )
    return result.results
