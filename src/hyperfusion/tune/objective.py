"""One trial: train a method with the trial's settings on the protocol's own folds, from training and validation
rows only.

The test partition's rows are never turned into a dataset: their images are never read and their records never
transformed, so nothing a trial computes can depend on them (tests/tune poisons them to check). Partitions are the
protocol's own (``runner.partitions_of``), so the folds tuned on are the folds the tuned run trains on.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import optuna
import torch

from hyperfusion.config import RunConfig
from hyperfusion.data import Augment, Cohort, CohortDataset, ImageCache, TabularPreprocessor
from hyperfusion.engine.trainer import train_model
from hyperfusion.models import model_info
from hyperfusion.models.registry import family_member
from hyperfusion.nn import principled_init_from_data_, warm_start_
from hyperfusion.run.plan import Unit, has_tabular_encoder
from hyperfusion.run.runner import partitions_of
from hyperfusion.run.setup import build_model, image_spec, make_preprocessor, static_model_kwargs
from hyperfusion.run.units import _fused, _loader, _tabular_encoder_of, settings_for
from hyperfusion.tasks import get_task


class PruneOnValidation(L.Callback):
    """Reports each epoch's validation metric to the trial and stops a trial the pruner gives up on."""

    def __init__(self, trial: optuna.Trial, metric: str, step_offset: int) -> None:
        self.trial, self.metric, self.offset = trial, metric, step_offset

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        history = getattr(module, "history", [])
        if not history:
            return
        self.trial.report(float(history[-1][f"val_{self.metric}"]), self.offset + len(history) - 1)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {len(history) - 1}")


def tunable(method: str) -> str | None:
    """Why ``method`` cannot be tuned by a trial (None: it can): it must be trained by gradient descent."""
    info = model_info(method)
    if info.fit == "closed_form":
        return "fitted in closed form (no settings to tune)"
    if info.fusion == "late":
        return "composed from separately trained members (not tuned in this version)"
    return None


@dataclasses.dataclass
class FoldData:
    """One fold's training and validation datasets (the test rows are left out before anything is read)."""

    train: CohortDataset
    val: CohortDataset
    preprocessor: TabularPreprocessor
    train_targets: np.ndarray


def fold_data(config: RunConfig, cohort: Cohort, cache: ImageCache, split_seed: int, fold: int) -> FoldData:
    task = get_task(cohort.task)
    roles = task.roles(partitions_of(config, cohort, split_seed), config.protocol, fold).to_numpy()
    spec = image_spec(config)
    train_rows, val_rows = roles == "train", roles == "val"
    preprocessor = make_preprocessor(config, cohort).fit(
        cohort.frame[train_rows], source=str(cohort.table_path)
    )

    def dataset(rows: np.ndarray, train: bool) -> CohortDataset:
        frame = cohort.frame[rows]
        return CohortDataset(
            cache.ensure_all(frame["image"], spec),
            preprocessor.transform(frame),
            cohort.targets[np.flatnonzero(rows)],
            frame["subject_id"].tolist(),
            two_sides=spec.mode == "hippocampus",
            train=train,
            seed=0,
            augment=Augment(config.training.augment_shift, config.training.augment_flip),
        )

    return FoldData(
        dataset(train_rows, True), dataset(val_rows, False), preprocessor, cohort.targets[train_rows]
    )


def with_trial(config: RunConfig, method: str, training: dict[str, Any], model: dict[str, Any]) -> RunConfig:
    """``config`` with one method's trial settings (training for every model the trial trains)."""
    overrides = {**config.model_overrides, method: {**config.model_overrides.get(method, {}), **model}}
    return dataclasses.replace(
        config, training=dataclasses.replace(config.training, **training), model_overrides=overrides
    )


def train_on_fold(
    config: RunConfig,
    cohort: Cohort,
    data: FoldData,
    method: str,
    unit: Unit,
    workdir: Path,
    callbacks: list[L.Callback] | None = None,
) -> tuple[float, list[dict[str, float]]]:
    """The best validation metric of ``method`` trained on one fold, warm-started as the protocol would, and its
    per-epoch history (validation loss too: a finer record of the trial than the selection metric)."""
    batch = config.training.batch_size
    n_tabular = len(data.preprocessor.feature_names_out)
    task = get_task(cohort.task)
    encoder = None
    tabular = family_member(method, "tabular")
    if (
        config.training.warm_start != "none"
        and tabular
        and has_tabular_encoder(method, static_model_kwargs(config).get(method))
    ):
        torch.manual_seed(
            unit.seed
        )  # as the protocol's own unit: initial weights from the unit, not the process
        source = build_model(config, tabular, n_tabular=n_tabular, classes=cohort.classes)
        train_model(
            source,
            _loader(data.train, batch, shuffle=True, seed=unit.seed, workers=0),
            _loader(data.val, batch, shuffle=False, seed=0, workers=0),
            settings_for(config, cohort.task, len(cohort.classes), unit.of(tabular)),
            workdir / f"{tabular}.pt",
        )
        encoder = _tabular_encoder_of(source)
    torch.manual_seed(unit.seed)
    model = build_model(
        config,
        method,
        n_tabular=n_tabular,
        classes=cohort.classes,
        train_targets=data.train_targets if task.standardises_target else None,
    )
    fused = _fused(model)
    if encoder is not None and fused is not None:
        warm_start_(fused, encoder)
    if fused is not None and fused.hyper_layers:
        principled_init_from_data_(fused, list(torch.as_tensor(data.train.tabular).split(batch)))
    result = train_model(
        model,
        _loader(data.train, batch, shuffle=True, seed=unit.seed, workers=0),
        _loader(data.val, batch, shuffle=False, seed=0, workers=0),
        settings_for(config, cohort.task, len(cohort.classes), unit),
        workdir / f"{method}.pt",
        callbacks=callbacks,
    )
    return float(result.best_metric), result.history
