"""From finished units to results: ensembles, metrics, no-skill rows, sensitivities — one implementation.

``run``, ``report`` and ``predict`` all combine fold models through this module, so they cannot disagree about an
ensemble, and nothing is cached on disk that could go stale: ensembles are recomputed from the unit records.

- Classification (paper eqs. 7–8): the fold models of one (method, split seed, version) are combined per subject
  with inverse-entropy weights (or the plain mean); the ensemble is one run of the method.
- Regression (paper eq. 6): the top-k versions of one (method, split seed) by validation MAE are averaged; the
  ensemble's version label is ``top<k>``.
- No skill: the class prior of the training rows (classification: BA = 1/C, AUC = 0.5) or the training rows' mean
  (regression), predicted for every test subject; reported as method ``no-skill`` beside every method.
- Sensitivities: the records hold test predictions with the tabular rows, and with the images, permuted among the
  test subjects; combined into ensembles the same way, the mean absolute change of the predicted probabilities
  (regression: of the predicted value) says how much a model uses each input.

Inputs are plain records (dicts of arrays as lists), never models or paths.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from hyperfusion.evaluation.bootstrap import bootstrap_differences
from hyperfusion.evaluation.frames import HISTORY_COLUMNS
from hyperfusion.evaluation.noskill import NO_SKILL
from hyperfusion.tasks import ENSEMBLE, Task, get_task

VARIANTS = ("test", "test_tabular_permuted", "test_image_permuted")
SENSITIVITY = {"test_tabular_permuted": "tabular_sensitivity", "test_image_permuted": "image_sensitivity"}
RESULT_COLUMNS = ["method", "split_seed", "version", "fold", "metric", "value"]


@dataclass(frozen=True)
class Scoring:
    """How to score predictions of one run: the task, class names, the ensemble rule, and groups for MAE."""

    task: str
    classes: tuple[str, ...] = ()
    ensemble: str = "inverse_entropy"  # classification: inverse_entropy | mean
    top_k: int = 5  # regression
    groups: Mapping[str, str] | None = None  # subject id -> group (e.g. sex) for MAE by group

    @property
    def kind(self) -> Task:
        """The `Task` this scoring's task name stands for."""
        return get_task(self.task)

    def metrics(
        self, values: np.ndarray, targets: np.ndarray, subject_ids: Sequence[str]
    ) -> dict[str, float]:
        """Every metric of the results table (classification: with ECE and Brier)."""
        return self.kind.metrics(values, targets, classes=self.classes, groups=self.group_values(subject_ids))

    def group_values(self, subject_ids: Sequence[str]) -> list[str] | None:
        return None if self.groups is None else [self.groups[s] for s in subject_ids]


# ----------------------------------------------------------------------------------------------------------
# ensembles


def _stack(
    records: Sequence[Mapping[str, Any]], variant: str, what: str
) -> tuple[np.ndarray, list[str], np.ndarray]:
    parts = [r[variant] for r in records]
    ids = parts[0]["subject_ids"]
    if any(p["subject_ids"] != ids for p in parts):
        raise RuntimeError(
            f"the models of {what} scored different test subjects; the run directory is inconsistent"
        )
    return (
        np.stack([np.asarray(p["values"], dtype=np.float64) for p in parts]),
        ids,
        np.asarray(parts[0]["targets"]),
    )


def ensemble(
    records: Sequence[Mapping[str, Any]], scoring: Scoring, what: str = "an ensemble"
) -> dict[str, Any]:
    """Combine finished units into one ensemble: per variant (test, permuted), subject ids, values, targets.

    Classification: ``records`` are the fold models of one version. Regression: ``records`` are the versions of
    one split seed; the top-k by validation MAE (``best_metric``) are averaged, and ``members`` says which.
    """
    if not records:
        raise ValueError(f"{what}: no finished models to combine")
    members = scoring.kind.members([r["best_metric"] for r in records], scoring.top_k)
    chosen = [records[i] for i in members]
    out: dict[str, Any] = {"members": members}
    for variant in VARIANTS:
        if variant not in chosen[0]:
            continue
        stack, ids, targets = _stack(chosen, variant, what)
        values = scoring.kind.combine(stack, scoring.ensemble)
        out[variant] = {"subject_ids": ids, "values": values, "targets": targets}
    return out


def sensitivities(scored: Mapping[str, Any]) -> dict[str, float]:
    """Mean absolute change of the predictions when tabular rows / images are permuted among test subjects."""
    base = np.asarray(scored["test"]["values"], dtype=np.float64)
    out = {}
    for variant, name in SENSITIVITY.items():
        if variant in scored:
            out[name] = float(np.abs(np.asarray(scored[variant]["values"], dtype=np.float64) - base).mean())
    return out


# ----------------------------------------------------------------------------------------------------------
# no skill


def no_skill_values(train_targets: np.ndarray, n_test: int, scoring: Scoring) -> np.ndarray:
    """The prediction of a model that knows nothing: the training class prior, or the training mean."""
    return scoring.kind.no_skill_values(train_targets, n_test, scoring.classes)


# ----------------------------------------------------------------------------------------------------------
# the results table


@dataclass
class Aggregate:
    """Everything a report needs, in long form."""

    results: pd.DataFrame  # method, split_seed, version, fold, metric, value
    predictions: pd.DataFrame  # per-subject ensemble predictions on the test sets
    skill: pd.DataFrame  # method, split_seed, version, metric, difference, low, high (+ verdict): vs no skill
    histories: (
        pd.DataFrame
    )  # method, split_seed, version, fold, epoch, train_loss, val_loss, val_metric, metric_name
    ensembles: dict[tuple[str, int, str], dict[str, Any]]  # (method, split seed, version label) -> ensemble


def aggregate(
    records: Mapping[tuple[str, int, int, int], Mapping[str, Any]],
    *,
    methods: Sequence[str],
    split_seeds: Sequence[int],
    versions: int,
    folds: int,
    scoring: Scoring,
    train_targets: Mapping[int, np.ndarray] | Callable[[int], np.ndarray],
) -> Aggregate:
    """The long-form results of a run from its finished unit records.

    Args:
        records: (method, split seed, version, fold) → the unit's record, for every finished unit.
        methods: the methods to report (helper models trained only for others are left out unless listed).
        split_seeds, versions, folds: the run's grid (``folds=1`` for regression).
        scoring: the task and how to ensemble and score.
        train_targets: per split seed, the targets of the rows no test set holds (the no-skill model's training
            rows), or a function returning them.
    """
    targets_of = train_targets if callable(train_targets) else train_targets.__getitem__
    rows: list[dict[str, Any]] = []
    prediction_frames: list[pd.DataFrame] = []
    histories: list[dict[str, Any]] = []
    ensembles: dict[tuple[str, int, str], dict[str, Any]] = {}

    def add(method: str, seed: int, version: Any, fold: Any, metrics: Mapping[str, float]) -> None:
        rows.extend(
            dict(
                method=method, split_seed=seed, version=str(version), fold=str(fold), metric=k, value=float(v)
            )
            for k, v in metrics.items()
        )

    for method in methods:
        for seed in split_seeds:
            per_version: list[Mapping[str, Any]] = []
            for version in range(versions):
                fold_records = []
                for fold in range(folds):
                    record = records.get((method, seed, version, fold))
                    if record is None:
                        continue
                    fold_records.append(record)
                    test = record["test"]
                    metrics = scoring.metrics(
                        np.asarray(test["values"]), np.asarray(test["targets"]), test["subject_ids"]
                    )
                    add(method, seed, version, fold, {**metrics, **sensitivities(record)})
                    histories += _history_rows(method, seed, version, fold, record)
                if scoring.kind.ensembles_folds and len(fold_records) == folds:
                    label = str(version)
                    scored = ensemble(fold_records, scoring, f"{method} split seed {seed} version {version}")
                    _add_ensemble(add, prediction_frames, ensembles, scoring, method, seed, label, scored)
                if len(fold_records) == folds:
                    per_version.append(fold_records[0])
            if not scoring.kind.ensembles_folds and len(per_version) == versions:
                label = f"top{min(scoring.top_k, versions)}"
                scored = ensemble(per_version, scoring, f"{method} split seed {seed}")
                _add_ensemble(add, prediction_frames, ensembles, scoring, method, seed, label, scored)

    _add_no_skill(add, prediction_frames, ensembles, scoring, targets_of)
    if (
        scoring.kind.reported_fold != ENSEMBLE
    ):  # single models are the main table's runs: no skill beside each
        _add_no_skill_per_version(add, rows, scoring, targets_of)
    results = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    predictions = pd.concat(prediction_frames, ignore_index=True) if prediction_frames else pd.DataFrame()
    history = pd.DataFrame(histories, columns=list(HISTORY_COLUMNS))
    return Aggregate(results, predictions, skill_table(ensembles, scoring), history, ensembles)


def _add_ensemble(add, frames, ensembles, scoring, method, seed, label, scored) -> None:
    test = scored["test"]
    metrics = scoring.metrics(test["values"], test["targets"], test["subject_ids"])
    add(method, seed, label, ENSEMBLE, {**metrics, **sensitivities(scored)})
    ensembles[(method, seed, label)] = scored
    frames.append(prediction_frame(method, seed, label, test, scoring))


def _add_no_skill(add, frames, ensembles, scoring, targets_of) -> None:
    """One no-skill run per (split seed, ensemble label) that some method has, scored on the same test subjects."""
    seen: dict[tuple[int, str], dict[str, Any]] = {}
    for (_method, seed, label), scored in ensembles.items():
        seen.setdefault((seed, label), scored["test"])
    for (seed, label), test in seen.items():
        values = no_skill_values(targets_of(seed), len(test["subject_ids"]), scoring)
        scored = {"test": {"subject_ids": test["subject_ids"], "values": values, "targets": test["targets"]}}
        _add_ensemble(add, frames, ensembles, scoring, NO_SKILL, seed, label, scored)


def _add_no_skill_per_version(add, rows, scoring, targets_of) -> None:
    """Regression: a no-skill row at fold "0" for every (split seed, version) a method has single-model rows for."""
    keys = {(r["split_seed"], r["version"]) for r in rows if r["fold"] == "0" and r["method"] != NO_SKILL}
    by_seed = {}
    for r in rows:
        if r["method"] == NO_SKILL and r["fold"] == ENSEMBLE:
            by_seed.setdefault(r["split_seed"], {})[r["metric"]] = r["value"]
    for seed, version in sorted(keys):
        if seed in by_seed:
            add(NO_SKILL, seed, version, "0", by_seed[seed])


def skill_table(
    ensembles: Mapping[tuple[str, int, str], Mapping[str, Any]], scoring: Scoring, *, n_resamples: int = 2000
) -> pd.DataFrame:
    """Each ensemble's metrics minus the no-skill baseline's on the same test subjects, with a paired bootstrap
    95 % interval over subjects (positive = better than no skill)."""
    pairs = [(method, NO_SKILL) for method in dict.fromkeys(m for m, _, _ in ensembles) if method != NO_SKILL]
    table = difference_table(ensembles, scoring, pairs, n_resamples=n_resamples)
    return table.drop(columns="baseline")


def difference_table(
    ensembles: Mapping[tuple[str, int, str], Mapping[str, Any]],
    scoring: Scoring,
    pairs: Sequence[tuple[str, str]],
    *,
    n_resamples: int = 2000,
) -> pd.DataFrame:
    """For each (method, baseline) pair: the method's ensemble minus the baseline's on the same test subjects of
    every (split seed, version) both have, with a paired bootstrap 95 % interval over the subjects (positive =
    the method is better; :func:`~hyperfusion.evaluation.bootstrap.bootstrap_differences`).

    Columns: ``method, baseline, split_seed, version, metric`` and those of ``bootstrap_differences``.
    """
    frames = []
    for method, baseline_method in pairs:
        for (name, seed, label), scored in ensembles.items():
            baseline = ensembles.get((baseline_method, seed, label))
            if name != method or baseline is None:
                continue
            test = scored["test"]
            if list(test["subject_ids"]) != list(baseline["test"]["subject_ids"]):
                raise ValueError(
                    f"{method} and {baseline_method} scored different test subjects (seed {seed})"
                )
            table = bootstrap_differences(
                np.asarray(test["values"]),
                np.asarray(baseline["test"]["values"]),
                np.asarray(test["targets"]),
                scoring.kind.skill_metrics,
                groups=scoring.group_values(test["subject_ids"]),
                n_resamples=n_resamples,
                seed=seed,
                baseline_name="no skill" if baseline_method == NO_SKILL else baseline_method,
            )
            frames.append(
                table.assign(method=method, baseline=baseline_method, split_seed=seed, version=label)
            )
    first = ["method", "baseline", "split_seed", "version", "metric"]
    if not frames:
        return pd.DataFrame(columns=[*first, "difference", "low", "high"])
    table = pd.concat(frames, ignore_index=True)
    return table[first + [c for c in table.columns if c not in first]]


def prediction_frame(
    method: str, seed: int, label: str, test: Mapping[str, Any], scoring: Scoring
) -> pd.DataFrame:
    """Per-subject ensemble predictions: probabilities per class and the predicted class, or the predicted value."""
    frame = pd.DataFrame(
        {"method": method, "split_seed": seed, "version": label, "subject_id": test["subject_ids"]}
    )
    columns = scoring.kind.prediction_columns(
        np.asarray(test["values"]), np.asarray(test["targets"]), scoring.classes
    )
    for name, column in columns.items():
        frame[name] = column
    return frame


def _history_rows(method: str, seed: int, version: int, fold: int, record: Mapping[str, Any]) -> list[dict]:
    name = record.get("metric_name", "")
    return [
        {
            "method": method,
            "split_seed": seed,
            "version": version,
            "fold": fold,
            "epoch": h["epoch"],
            "train_loss": h.get("train_loss", np.nan),
            "val_loss": h.get("val_loss", np.nan),
            "val_metric": h.get(f"val_{name}", np.nan),
            "metric_name": name,
        }
        for h in record.get("history", [])
    ]
