"""Apply a finished run to subjects it never saw, exactly as the protocol scored its test set.

Each fold model gets the tabular preprocessing fitted on its own training rows (saved in the run directory), every
subject is scored on both hippocampus sides, the fold models are combined as in the run (inverse-entropy weights
or the mean; for regression the top-k versions by validation MAE), and versions are averaged.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from torch.utils.data import DataLoader

from hyperfusion.atomic import write_text_atomic
from hyperfusion.data import Cohort, CohortDataset, ImageCache, TabularPreprocessor, load_manifest, load_table
from hyperfusion.data.manifest import spec_from_dict
from hyperfusion.evaluation.ensemble import inverse_entropy_ensemble, mean_probabilities, top_k_indices
from hyperfusion.models import create_model
from hyperfusion.training.protocol import RunDirectory, Unit, image_spec, load_run_config, model_kwargs
from hyperfusion.training.trainer import predict


def load_new_subjects(run_dir: str | Path, manifest: str | Path) -> Cohort:
    """The subjects to score: a manifest YAML, or a table laid out like the run's training table."""
    manifest = Path(manifest)
    if manifest.suffix in (".yaml", ".yml"):
        return load_manifest(manifest, require_target=False)
    saved = RunDirectory(run_dir).manifest
    spec = spec_from_dict(yaml.safe_load(saved.read_text()), source=str(saved))
    return load_table(spec, manifest, require_target=False)


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

    Raises:
        ValueError: a method, seed or version the run does not have.
        FileNotFoundError: a model of the chosen ensemble was never trained.
    """
    run = RunDirectory(run_dir)
    config = load_run_config(run_dir)
    method = method or config.reference_method
    if method not in config.methods:
        raise ValueError(f"method {method!r} is not in this run; its methods: {list(config.methods)}")
    split_seed = config.protocol.split_seeds[0] if split_seed is None else split_seed
    if split_seed not in config.protocol.split_seeds:
        raise ValueError(f"split seed {split_seed} is not in this run: {list(config.protocol.split_seeds)}")
    cohort = load_new_subjects(run_dir, manifest)
    classification = cohort.task == "classification"
    versions = _versions(run, config, method, split_seed, version, classification)
    folds = range(config.protocol.folds) if classification else range(1)
    spec = image_spec(config)
    images = ImageCache(run.cache).ensure_all(cohort.frame["image"], spec)
    per_version = []
    for v in versions:
        per_fold = []
        for fold in folds:
            unit = Unit(method, split_seed, v, fold)
            checkpoint = run.checkpoint(unit)
            if not run.record(unit).exists():
                raise FileNotFoundError(f"{checkpoint}: this model was never trained to the end")
            preprocessor = TabularPreprocessor.load(run.preprocessor(split_seed, fold))
            dataset = CohortDataset(
                images,
                preprocessor.transform(cohort.frame),
                np.zeros(len(cohort.frame), dtype=np.int64 if classification else np.float32),
                cohort.frame["subject_id"].tolist(),
                two_sides=spec.mode == "hippocampus",
                train=False,
            )
            kwargs = model_kwargs(
                config, method, n_tabular=len(preprocessor.feature_names_out), n_classes=len(cohort.classes)
            )
            model = create_model(method, **kwargs)
            model.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True))
            loader = DataLoader(dataset, batch_size=config.training.batch_size, shuffle=False)
            per_fold.append(predict(model, loader, task=cohort.task, device=device).values)
        stack = np.stack(per_fold)
        if classification:
            combine = (
                inverse_entropy_ensemble
                if config.protocol.ensemble == "inverse_entropy"
                else mean_probabilities
            )
            per_version.append(combine(stack))
        else:
            per_version.append(stack[0])
    values = np.mean(per_version, axis=0)
    frame = pd.DataFrame({"subject_id": cohort.frame["subject_id"].to_numpy()})
    if classification:
        for i, name in enumerate(cohort.classes):
            frame[f"p_{name}"] = values[:, i]
        frame["predicted"] = [cohort.classes[i] for i in values.argmax(1)]
    else:
        frame["predicted"] = values
    frame["method"] = method
    write_text_atomic(Path(out), frame.to_csv(index=False))
    return frame


def _versions(
    run: RunDirectory, config, method: str, split_seed: int, version: int | None, classification: bool
) -> list[int]:
    available = list(range(config.protocol.versions))
    if version is not None:
        if version not in available:
            raise ValueError(f"version {version} is not in this run: {available}")
        return [version]
    if classification:
        return available
    records = [run.record(Unit(method, split_seed, v, 0)) for v in available]
    missing = [str(p) for p in records if not p.exists()]
    if missing:
        raise FileNotFoundError(f"models never trained to the end: {missing}")
    val_mae = np.array([json.loads(p.read_text())["best_metric"] for p in records])
    return [available[i] for i in top_k_indices(val_mae, min(config.protocol.top_k, len(available)))]
