"""One trial: train a method with the trial's settings on the protocol's own folds, from training and validation
rows only.

The test partition's rows are never turned into a dataset: their images are never read and their records never
transformed, so nothing a trial computes can depend on them (tests/tune poisons them to check). Partitions are the
protocol's own (``runner.partitions_of``), so the folds tuned on are the folds the tuned run trains on.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
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
from hyperfusion.nn import principled_init_from_data_, warm_start_, warm_start_network_
from hyperfusion.run.plan import Unit, tabular_encoder_of, warm_sources
from hyperfusion.run.runner import partitions_of
from hyperfusion.run.setup import (
    build_model,
    image_spec,
    make_preprocessor,
    static_kwargs,
    static_model_kwargs,
)
from hyperfusion.run.units import _fused, _loader, _unwrapped, settings_for
from hyperfusion.tasks import get_task


class PruneOnValidation(L.Callback):
    """Reports each epoch's validation metric to the trial and stops a trial the pruner gives up on.

    No fold is judged before ``warmup`` epochs: the first epochs of a CNN's validation curve sit near chance for
    good and bad settings alike (the AD demo's first tuning pruned 17 of 32 trials in their second or third epoch
    on that noise), so the pruner compares trials only once the shortest schedule the space allows could have
    finished.
    """

    def __init__(self, trial: optuna.Trial, metric: str, step_offset: int, warmup: int = 0) -> None:
        self.trial, self.metric, self.offset, self.warmup = trial, metric, step_offset, warmup

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        history = getattr(module, "history", [])
        if not history:
            return
        self.trial.report(float(history[-1][f"val_{self.metric}"]), self.offset + len(history) - 1)
        if len(history) > self.warmup and self.trial.should_prune():
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

    seed = Unit("", split_seed, 0, fold).seed  # the protocol's unit of this fold: the same views each epoch

    def dataset(rows: np.ndarray, train: bool) -> CohortDataset:
        frame = cohort.frame[rows]
        return CohortDataset(
            cache.ensure_all(frame["image"], spec),
            preprocessor.transform(frame),
            cohort.targets[np.flatnonzero(rows)],
            frame["subject_id"].tolist(),
            two_sides=spec.mode == "hippocampus",
            train=train,
            seed=seed,
            augment=Augment(config.training.augment_shift, config.training.augment_flip),
        )

    return FoldData(
        dataset(train_rows, True), dataset(val_rows, False), preprocessor, cohort.targets[train_rows]
    )


def with_trial(config: RunConfig, method: str, training: dict[str, Any], model: dict[str, Any]) -> RunConfig:
    """``config`` with one method's trial settings: its ``method_training`` and ``model_overrides`` only, so the
    members it is warm-started from keep theirs, as in the tuned run."""
    overrides = {**config.model_overrides, method: {**config.model_overrides.get(method, {}), **model}}
    own = {**config.method_training, method: {**config.method_training.get(method, {}), **training}}
    return dataclasses.replace(config, model_overrides=overrides, method_training=own)


class Members:
    """The trained members a trial warm-starts from, trained once per fold and settings.

    A member (the tabular-only model whose encoder, the imaging-only model whose network a fused model starts
    from) is trained with its own settings — the config's, with its tuned ones once its study is done — exactly as
    the tuned run trains it, so a trial scores what the run will train. Training is seeded by the unit, so a
    member trained again would be the same model: it is kept for the following trials.
    """

    def __init__(self) -> None:
        self._trained: dict[str, torch.nn.Module] = {}

    def trained(
        self, config: RunConfig, cohort: Cohort, data: FoldData, unit: Unit, workdir: Path
    ) -> torch.nn.Module:
        key = json.dumps(
            [dataclasses.asdict(unit), config.training_for(unit.method).__repr__(),
             static_kwargs(config, unit.method)], default=str,
        )  # fmt: skip
        if key not in self._trained:
            self._trained[key] = _train_one(config, cohort, data, unit, workdir)[0]
        return self._trained[key]


def _train_one(
    config: RunConfig,
    cohort: Cohort,
    data: FoldData,
    unit: Unit,
    workdir: Path,
    *,
    start_from: Callable[[torch.nn.Module], None] | None = None,
    callbacks: list[L.Callback] | None = None,
) -> tuple[torch.nn.Module, Any]:
    """One model of ``unit`` trained on the fold with its method's settings (its best-validation weights)."""
    task = get_task(cohort.task)
    batch = config.training_for(unit.method).batch_size
    torch.manual_seed(unit.seed)  # as the protocol's own unit: initial weights from the unit, not the process
    model = build_model(
        config,
        unit.method,
        n_tabular=len(data.preprocessor.feature_names_out),
        classes=cohort.classes,
        train_targets=data.train_targets if task.standardises_target else None,
    )
    if start_from is not None:
        start_from(model)
    result = train_model(
        model,
        _loader(data.train, batch, shuffle=True, seed=unit.seed, workers=0),
        _loader(data.val, batch, shuffle=False, seed=0, workers=0),
        settings_for(config, cohort.task, len(cohort.classes), unit),
        workdir / f"{unit.method}.pt",
        callbacks=callbacks,
    )
    return model, result


def train_on_fold(
    config: RunConfig,
    cohort: Cohort,
    data: FoldData,
    method: str,
    unit: Unit,
    workdir: Path,
    callbacks: list[L.Callback] | None = None,
    members: Members | None = None,
) -> tuple[float, list[dict[str, float]]]:
    """The best validation metric of ``method`` trained on one fold, warm-started as the protocol would (from
    members trained with their own settings), and its per-epoch history (validation loss too: a finer record of
    the trial than the selection metric)."""
    members = members or Members()
    tabular, imaging = warm_sources(unit, config.training.warm_start, static_model_kwargs(config))
    batch = config.training_for(method).batch_size

    def start_from(model: torch.nn.Module) -> None:
        fused = _fused(model)
        if fused is None:
            return
        if imaging is not None:  # the image network first, as the protocol's unit
            warm_start_network_(fused, _unwrapped(members.trained(config, cohort, data, imaging, workdir)))
        if tabular is not None:
            warm_start_(fused, tabular_encoder_of(members.trained(config, cohort, data, tabular, workdir)))
        if fused.hyper_layers:
            principled_init_from_data_(fused, list(torch.as_tensor(data.train.tabular).split(batch)))

    _, result = _train_one(config, cohort, data, unit, workdir, start_from=start_from, callbacks=callbacks)
    return float(result.best_metric), result.history
