"""Apply a finished run to subjects it never saw, exactly as the run scored its test set.

Each fold model gets the tabular preprocessing fitted on its own training rows (saved in the run directory), every
subject is scored on both hippocampus sides, and the fold models are combined by the same aggregation the run's
report uses (inverse-entropy weights or the mean; for regression the top-k versions by validation MAE). Versions
are then averaged.
"""

from __future__ import annotations

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
from hyperfusion.run.finished import FinishedRun, check_device
from hyperfusion.run.guards import check_out, warn_if_seen
from hyperfusion.run.plan import Unit
from hyperfusion.run.setup import image_spec
from hyperfusion.tasks import get_task


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
    run, config = finished.directory, finished.config
    method, split_seed = finished.choose(method, split_seed)
    device = check_device(device)
    task = get_task(cohort.task)
    versions = finished.members(method, split_seed, version, task)
    folds = range(task.folds(config.protocol))
    spec = image_spec(config)
    images = ImageCache(run.cache).ensure_all(cohort.frame["image"], spec)
    per_frame_version: list[list[np.ndarray]] = [[] for _ in frames]
    for v in versions:
        per_frame_fold: list[list[np.ndarray]] = [[] for _ in frames]
        for fold in folds:
            unit = Unit(method, split_seed, v, fold)
            preprocessor = finished.preprocessor(unit)
            model = finished.model(unit, preprocessor, tuple(cohort.classes))
            for i, frame in enumerate(frames):
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
                per_frame_fold[i].append(predict(model, loader, task=cohort.task, device=device).values)  # type: ignore[arg-type]
        for i in range(len(frames)):
            stack = np.stack(per_frame_fold[i])
            combined = task.combine(stack, config.protocol.ensemble)
            per_frame_version[i].append(combined)
    return [np.mean(values, axis=0) for values in per_frame_version]


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
    for name in methods:
        values = score_subjects(
            run_dir, cohort, method=name, split_seed=split_seed, version=version, device=device
        )
        frame = pd.DataFrame({"subject_id": cohort.frame["subject_id"].to_numpy()})
        for column, value in get_task(cohort.task).prediction_columns(values, None, cohort.classes).items():
            frame[column] = value
        frame["method"] = name
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    write_text_atomic(Path(out), table.to_csv(index=False))
    return table
