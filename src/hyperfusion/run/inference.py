"""Apply a finished run to subjects it never saw, exactly as the run scored its test set.

Each fold model gets the tabular preprocessing fitted on its own training rows (saved in the run directory), every
subject is scored on both hippocampus sides, and the fold models are combined by the same aggregation the run's
report uses (inverse-entropy weights or the mean; for regression the top-k versions by validation MAE). Versions
are then averaged. A survival run gives each subject's log-risk and, from each member's recorded baseline hazard,
its survival probability at the report's horizons (columns ``survival_<h>mo``; `hyperfusion.run.hazards`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from torch.utils.data import DataLoader

from hyperfusion.atomic import write_text_atomic
from hyperfusion.data import (
    Cohort,
    CohortDataset,
    ImageCache,
    collate_items,
)
from hyperfusion.engine.trainer import predict
from hyperfusion.evaluation.survival import HORIZONS
from hyperfusion.run.finished import FinishedRun, check_device
from hyperfusion.run.guards import check_out, warn_if_seen
from hyperfusion.run.hazards import ensemble_survival, read_baseline, survival_columns
from hyperfusion.run.plan import Unit
from hyperfusion.run.setup import image_spec
from hyperfusion.tasks import Task, get_task


def score_subjects(
    run_dir: str | Path,
    cohort: Cohort,
    *,
    method: str | None = None,
    split_seed: int | None = None,
    version: int | None = None,
    device: str = "cpu",
) -> np.ndarray:
    """The run's ensemble prediction for every row of ``cohort``: probabilities ``[N, C]`` or values ``[N]``."""
    return score_frames(
        run_dir, cohort, [cohort.frame], method=method, split_seed=split_seed, version=version, device=device
    )[0]


def score_frames(
    run_dir: str | Path,
    cohort: Cohort,
    frames: list[pd.DataFrame],
    *,
    method: str | None = None,
    split_seed: int | None = None,
    version: int | None = None,
    device: str = "cpu",
) -> list[np.ndarray]:
    """Score several versions of the same subjects' table (same rows and images, edited tabular values) at once.

    Each frame is preprocessed by each fold's saved preprocessing and scored by that fold's model; fold models are
    combined and versions averaged as in the run. Models are loaded once for all frames.
    """
    finished = FinishedRun(run_dir)
    device = check_device(device)
    task = get_task(cohort.task)
    grid = _ensemble_units(finished, task, method, split_seed, version)
    scored = _unit_values(finished, cohort, frames, [u for units in grid for u in units], device)
    rule = finished.config.protocol.ensemble
    return [
        np.mean([task.combine(np.stack([scored[u][i] for u in units]), rule) for units in grid], axis=0)
        for i in range(len(frames))
    ]


def score_survival(
    run_dir: str | Path,
    cohort: Cohort,
    horizons: Sequence[float] = HORIZONS,
    *,
    method: str | None = None,
    split_seed: int | None = None,
    version: int | None = None,
    device: str = "cpu",
) -> tuple[np.ndarray, np.ndarray]:
    """A survival run's ensemble for every row of ``cohort``: its log-risk ``[N]`` (as `score_subjects`) and its
    survival probability ``[N, H]`` at the horizons, the mean of its members' (`hyperfusion.run.hazards`).

    Raises:
        MissingBaseline: a member's record without a baseline hazard (a run made before they were recorded).
    """
    finished = FinishedRun(run_dir)
    device = check_device(device)
    task = get_task(cohort.task)
    grid = _ensemble_units(finished, task, method, split_seed, version)
    units = [u for group in grid for u in group]
    baselines = {  # read before any model is loaded: an old run fails at once
        u: read_baseline(finished.directory.read_record(u) or {}, str(finished.directory.record_path(u)))
        for u in units
    }
    scored = _unit_values(finished, cohort, [cohort.frame], units, device)
    rule = finished.config.protocol.ensemble
    risk = np.mean([task.combine(np.stack([scored[u][0] for u in g]), rule) for g in grid], axis=0)
    survival = ensemble_survival([(baselines[u], scored[u][0]) for u in units], horizons)
    return risk, survival


def _ensemble_units(
    finished: FinishedRun, task: Task, method: str | None, split_seed: int | None, version: int | None
) -> list[list[Unit]]:
    """The units of the chosen ensemble: per member version, its fold models."""
    method, split_seed = finished.choose(method, split_seed)
    folds = range(task.folds(finished.config.protocol))
    return [
        [Unit(method, split_seed, v, fold) for fold in folds]
        for v in finished.members(method, split_seed, version, task)
    ]


def _unit_values(
    finished: FinishedRun, cohort: Cohort, frames: list[pd.DataFrame], units: list[Unit], device: str
) -> dict[Unit, list[np.ndarray]]:
    """Each unit's outputs for each frame: its own preprocessing and verified model, every view of a subject."""
    config = finished.config
    task = get_task(cohort.task)
    spec = image_spec(config)
    images = ImageCache(finished.directory.cache).ensure_all(cohort.frame["image"], spec)
    out: dict[Unit, list[np.ndarray]] = {}
    for unit in units:
        preprocessor = finished.preprocessor(unit)
        model = finished.model(unit, preprocessor, tuple(cohort.classes))
        out[unit] = []
        for frame in frames:
            dataset = CohortDataset(
                images,
                preprocessor.transform(frame),
                np.zeros(len(frame), dtype=np.int64 if task.has_classes else np.float32),
                frame["subject_id"].astype(str).tolist(),
                two_sides=spec.mode == "hippocampus",
                train=False,
            )
            loader = DataLoader(
                dataset, batch_size=config.training.batch_size, shuffle=False, collate_fn=collate_items
            )
            out[unit].append(predict(model, loader, task=cohort.task, device=device).values)  # type: ignore[arg-type]
    return out


#: ``predict --method all``: every method of the run, one table with a ``method`` column.
ALL_METHODS = "all"


def predict_new_subjects(
    run_dir: str | Path,
    manifest: str | Path,
    out: str | Path,
    *,
    method: str | None = None,
    split_seed: int | None = None,
    version: int | None = None,
    device: str = "cpu",
) -> pd.DataFrame:
    """Score the subjects of ``manifest`` with a run's models and write one CSV row per subject (and method).

    ``method="all"`` scores them with every method of the run: one table, the methods' rows one after another,
    told apart by the ``method`` column.

    Subjects whose scans the models were trained on are named in a warning (`guards.warn_if_seen`).

    Raises:
        ValueError: a method, seed or version the run does not have; a device this machine lacks; classes other
            than the run's or in another order; an ``out`` that is an input or inside the run directory.
        FileNotFoundError: a model of the chosen ensemble was never trained, or its checkpoint was deleted.
    """
    finished = FinishedRun(run_dir)
    run, config = finished.directory, finished.config
    methods = list(config.methods) if method == ALL_METHODS else [finished.choose(method, split_seed)[0]]
    split_seed = finished.choose(methods[0], split_seed)[1]
    cohort = finished.new_subjects(manifest)
    check_out(Path(out), run, {Path(manifest), cohort.table_path})
    test = get_task(cohort.task).test_partition(config.protocol)
    warn_if_seen(run, cohort, split_seed, test)
    frames = []
    task = get_task(cohort.task)
    for name in methods:
        chosen = {"method": name, "split_seed": split_seed, "version": version, "device": device}
        if task.time_to_event:  # the log-risk and the survival probability at each horizon
            values, survival = score_survival(run_dir, cohort, HORIZONS, **chosen)
        else:
            values = score_subjects(run_dir, cohort, **chosen)
        frame = pd.DataFrame({"subject_id": cohort.frame["subject_id"].to_numpy()})
        for column, value in task.prediction_columns(values, None, cohort.classes).items():
            frame[column] = value
        if task.time_to_event:
            for column, value in survival_columns(survival, HORIZONS).items():
                frame[column] = value
        frame["method"] = name
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    write_text_atomic(Path(out), table.to_csv(index=False))
    return table
