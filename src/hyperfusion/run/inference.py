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
import torch
from torch import nn
from torch.utils.data import DataLoader

from hyperfusion.atomic import write_text_atomic
from hyperfusion.config import RunConfig, check_device_name
from hyperfusion.data import (
    Cohort,
    CohortDataset,
    ImageCache,
    TabularPreprocessor,
    collate_items,
    load_manifest,
    load_table,
)
from hyperfusion.data.manifest import spec_from_dict
from hyperfusion.engine.trainer import predict
from hyperfusion.run.guards import check_out, warn_if_seen
from hyperfusion.run.plan import Unit
from hyperfusion.run.reporting import load_run_config
from hyperfusion.run.setup import build_model, image_spec, load_checkpoint
from hyperfusion.run.store import RunDirectory
from hyperfusion.tasks import Task, get_task
from hyperfusion.yamlio import load_yaml


def load_new_subjects(run_dir: str | Path, manifest: str | Path) -> Cohort:
    """The subjects to score: a manifest YAML, or a table laid out like the run's training table."""
    manifest = Path(manifest)
    if manifest.suffix in (".yaml", ".yml"):
        return load_manifest(manifest, require_target=False)
    saved = RunDirectory(run_dir).manifest
    spec = spec_from_dict(load_yaml(saved.read_text(), str(saved)), source=str(saved))
    return load_table(spec, manifest, require_target=False)


def check_device(device: str) -> str:
    """A device this machine has, or a one-line error saying which it lacks (or that it names no device)."""
    check_device_name(device, "--device")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(
            f"device {device!r}: this machine has no CUDA GPU (torch {torch.__version__}); use cpu"
        )
    if device.startswith("cuda:") and int(device[5:]) >= torch.cuda.device_count():
        raise ValueError(f"device {device!r}: this machine has {torch.cuda.device_count()} GPU(s)")
    return device


def choose_ensemble(config: RunConfig, method: str | None, split_seed: int | None) -> tuple[str, int]:
    """The ensemble to apply: a method and split seed of the run (defaults: the reference method, the first seed).

    Raises:
        ValueError: a method or split seed the run does not have (the message lists those it has).
    """
    method = method or config.reference_method
    if method not in config.methods:
        raise ValueError(f"method {method!r} is not in this run; its methods: {list(config.methods)}")
    split_seed = config.protocol.split_seeds[0] if split_seed is None else split_seed
    if split_seed not in config.protocol.split_seeds:
        raise ValueError(f"split seed {split_seed} is not in this run: {list(config.protocol.split_seeds)}")
    return method, split_seed


def ensemble_members(
    run: RunDirectory,
    config: RunConfig,
    method: str,
    split_seed: int,
    version: int | None,
    task: Task,
) -> list[int]:
    """The versions whose models form the run's ensemble (regression: the top-k by validation MAE)."""
    available = list(range(config.protocol.versions))
    if version is not None:
        if version not in available:
            raise ValueError(f"version {version} is not in this run: {available}")
        return [version]
    if task.ensembles_folds:  # every version's fold ensemble, averaged
        return available
    records = [run.read_record(Unit(method, split_seed, v, 0)) for v in available]
    missing = [
        str(run.record_path(Unit(method, split_seed, v, 0))) for v, r in zip(available, records) if r is None
    ]
    if missing:
        raise FileNotFoundError(f"models never trained to the end: {missing}")
    chosen = task.members([r["best_metric"] for r in records], config.protocol.top_k)  # type: ignore[index]
    return [available[i] for i in chosen]


def trained_preprocessor(run: RunDirectory, unit: Unit) -> TabularPreprocessor:
    """The tabular preprocessing a finished unit was trained with (verified against its record).

    Raises:
        FileNotFoundError: never trained to the end, or the file is gone.
        RunDirectoryError: the fold's file is not the one the unit's record names.
    """
    record = run.read_record(unit)
    if record is None:
        run.verified_checkpoint(unit)  # raises, naming the missing record
    return TabularPreprocessor.load(run.verified_preprocessor(unit.split_seed, unit.fold, [record]))


def trained_model(
    run: RunDirectory,
    config: RunConfig,
    unit: Unit,
    preprocessor: TabularPreprocessor,
    classes: tuple[str, ...],
) -> nn.Module:
    """A finished unit's model rebuilt from its verified checkpoint, for subjects labelled with ``classes``.

    The record says which classes, in which order, the model's outputs are; subjects whose manifest lists them in
    another order would get each probability under another class's name, so that is refused.

    Raises:
        FileNotFoundError: never trained to the end, or its checkpoint deleted since (`verified_checkpoint`).
        ValueError: classes other than the model's, or in another order; a checkpoint that is not the recorded one.
    """
    checkpoint = run.verified_checkpoint(unit)
    trained = tuple((run.read_record(unit) or {}).get("classes", ()))
    if trained != tuple(classes):
        order = "in another order" if sorted(trained) == sorted(classes) else "other classes"
        raise ValueError(
            f"the run's model {unit.name} outputs the classes {list(trained)} in that order, but the subjects' "
            f"manifest lists {list(classes)} ({order}); list target.classes as the run did, or every "
            "probability would be reported under another class's name"
        )
    model = build_model(config, unit.method, n_tabular=len(preprocessor.feature_names_out), classes=trained)
    return load_checkpoint(model, checkpoint)


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
    run = RunDirectory(run_dir)
    config = load_run_config(run_dir)
    method, split_seed = choose_ensemble(config, method, split_seed)
    device = check_device(device)
    task = get_task(cohort.task)
    versions = ensemble_members(run, config, method, split_seed, version, task)
    folds = range(task.folds(config.protocol))
    spec = image_spec(config)
    images = ImageCache(run.cache).ensure_all(cohort.frame["image"], spec)
    per_frame_version: list[list[np.ndarray]] = [[] for _ in frames]
    for v in versions:
        per_frame_fold: list[list[np.ndarray]] = [[] for _ in frames]
        for fold in folds:
            unit = Unit(method, split_seed, v, fold)
            preprocessor = trained_preprocessor(run, unit)
            model = trained_model(run, config, unit, preprocessor, tuple(cohort.classes))
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
    """Score the subjects of ``manifest`` with a run's models and write one CSV row per subject.

    Subjects whose scans the models were trained on are named in a warning (`guards.warn_if_seen`).

    Raises:
        ValueError: a method, seed or version the run does not have; a device this machine lacks; classes other
            than the run's or in another order; an ``out`` that is an input or inside the run directory.
        FileNotFoundError: a model of the chosen ensemble was never trained, or its checkpoint was deleted.
    """
    run = RunDirectory(run_dir)
    config = load_run_config(run_dir)
    method, split_seed = choose_ensemble(config, method, split_seed)
    cohort = load_new_subjects(run_dir, manifest)
    check_out(Path(out), run, {Path(manifest), cohort.table_path})
    test = get_task(cohort.task).test_partition(config.protocol)
    warn_if_seen(run, cohort, split_seed, test)
    values = score_subjects(
        run_dir, cohort, method=method, split_seed=split_seed, version=version, device=device
    )
    frame = pd.DataFrame({"subject_id": cohort.frame["subject_id"].to_numpy()})
    for name, column in get_task(cohort.task).prediction_columns(values, None, cohort.classes).items():
        frame[name] = column
    frame["method"] = method
    write_text_atomic(Path(out), frame.to_csv(index=False))
    return frame
