"""A run's report: its finished unit records → results.csv, predictions.csv, skill.csv, report.md and the plots.

Used at the end of ``run`` and by ``report``; ``predict`` combines models through the same aggregation module.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from hyperfusion.atomic import write_text_atomic
from hyperfusion.config import RunConfig, config_from_dict
from hyperfusion.data import Cohort, read_partitions
from hyperfusion.evaluation.aggregate import ENSEMBLE, Aggregate, Scoring, aggregate, difference_table
from hyperfusion.evaluation.report import ReportContext, Section, markdown_table, write_report
from hyperfusion.models import model_info
from hyperfusion.models.registry import family_member
from hyperfusion.run.setup import group_column
from hyperfusion.run.store import RunDirectory
from hyperfusion.tasks import get_task
from hyperfusion.yamlio import load_yaml


def load_run_config(run_dir: str | Path) -> RunConfig:
    """The resolved configuration a run directory was made with.

    A run directory is data: its plugins are imported only as the files, with the contents, that the run itself
    executed (its plugins.json), never looked up anew (see `hyperfusion.plugins`).

    Raises:
        FileNotFoundError: not a run directory.
        ValueError: a corrupt config.yaml or plugins.json, or a plugin that is not what the run executed.
    """
    run = RunDirectory(run_dir)
    path = run.config
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a run directory: it has no config.yaml")
    try:
        raw = load_yaml(path.read_text(), str(path))
    except yaml.YAMLError as err:
        raise ValueError(f"{path} is corrupt: {err}") from None
    recorded = run.recorded_plugins() or {}
    return config_from_dict(raw or {}, source=str(path), plugin_files=recorded, data_folder=run.root)


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


def no_skill_training_targets(
    config: RunConfig,
    cohort: Cohort,
    run: RunDirectory,
    split_seed: int,
    records: Sequence[Mapping[str, Any]] = (),
) -> np.ndarray:
    """The rows a no-skill model learns from: every non-test row (classification), the training rows (regression).

    Read from the partitions file the methods' ``records`` name (`RunDirectory.verified_partitions`), so the
    baseline learns from the same rows as the models it is compared with.
    """
    table = read_partitions(run.verified_partitions(split_seed, records))
    by_subject = dict(zip(table["subject_id"].astype(str), table["partition"]))
    assignment = cohort.frame["subject_id"].astype(str).map(by_subject)
    keep = get_task(cohort.task).no_skill_rows(assignment, config.protocol)
    return cohort.targets[keep.to_numpy()]


def collect_records(
    config: RunConfig, cohort: Cohort, run: RunDirectory, split_seeds: Sequence[int] | None = None
) -> dict[tuple, dict[str, Any]]:
    """(method, split seed, version, fold) → record, for every finished unit of the config's methods."""
    from hyperfusion.run.plan import Unit

    folds = get_task(cohort.task).folds(config.protocol)
    seeds = config.protocol.split_seeds if split_seeds is None else split_seeds
    records = {}
    for method in config.methods:
        for seed in seeds:
            for version in range(config.protocol.versions):
                for fold in range(folds):
                    record = run.read_record(Unit(method, seed, version, fold))
                    if record is not None:
                        records[(method, seed, version, fold)] = record
    return records


def aggregate_run(config: RunConfig, cohort: Cohort, run: RunDirectory) -> Aggregate:
    """The run's results from its finished records; the no-skill rows from the partitions those records name.

    Raises:
        RuntimeError: no finished model.
        RunDirectoryError: a partitions file that is not the one the records were trained on (checked first).
    """
    records = collect_records(config, cohort, run)
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
        train_targets=lambda seed: no_skill_training_targets(config, cohort, run, seed, of_seed[seed]),
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
        rows.append(
            {
                "method": method,
                "parameters": int(np.median([r.get("parameters", 0) for r in mine])),
                "warm start": ", ".join(warm),
                "epochs": _epochs(kinds, config.training.epochs),
                "learning rate": config.training.lr,
                "loss": config.training.loss,
                "batch size": config.training.batch_size,
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


def ensemble_section(top_k: int) -> Section:
    """Regression: the table of the test-set top-k ensembles, after the main table of each version's model."""

    def render(report: ReportContext) -> str:
        return (
            f"\n## Test-set ensemble: mean of the top {top_k} versions by validation MAE (eq. 6)\n\n"
            "The main table scores each version's single model; this one the ensemble.\n\n"
            + markdown_table(report.results, reference=None, fold=ENSEMBLE)
        )

    return Section("ensemble", render)


def build_report(config: RunConfig, cohort: Cohort, run: RunDirectory) -> pd.DataFrame:
    """Write results.csv, predictions.csv, skill.csv, report.md and its plots; returns the results table.

    Classification: the main table scores each version's fold ensemble. Regression: the main table scores each
    version's model, and a second table the top-k ensemble (paper eq. 6).
    """
    records = collect_records(config, cohort, run)
    result = aggregate_run(config, cohort, run)
    write_text_atomic(run.results, result.results.to_csv(index=False))
    if not result.predictions.empty:
        write_text_atomic(run.predictions, result.predictions.to_csv(index=False))
    write_text_atomic(run.root / "skill.csv", result.skill.to_csv(index=False))
    task = get_task(cohort.task)
    image_method = family_member(config.reference_method, "imaging")
    tabular_method = family_member(config.reference_method, "tabular")
    sections = []
    if task.reported_fold != ENSEMBLE and (result.results["fold"] == ENSEMBLE).any():
        sections.append(ensemble_section(config.protocol.top_k))
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
        members=members_table(
            config, result, scoring_for(config, cohort), tuple(m for m in (image_method, tabular_method) if m)
        ),
    )
    return result.results
