"""One unit of work: train (or compose) one model and write its checkpoint and record.

A unit runs wherever the executor puts it — this process, another process, another machine — from nothing but the
run directory and a :class:`UnitJob` (plain, picklable data). It reads the cohort, its fold's partition and tabular
preprocessing (written once by the run before any unit starts) and the checkpoints of the units it needs, and
writes its own checkpoint and record through the run directory. The same job gives the same result whichever
executor runs it: every random draw is seeded from the unit.

A record holds the validation and test predictions, the training history, and the test predictions again with the
tabular rows permuted among the test subjects and with the images permuted: the aggregation turns those into each
model's (and each ensemble's) tabular and image sensitivity — does the model use the tabular data at all?
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader

from hyperfusion.config import RunConfig, config_from_dict
from hyperfusion.data import (
    Augment,
    Cohort,
    CohortDataset,
    ImageCache,
    TabularPreprocessor,
    collate_items,
    load_manifest,
    read_partitions,
)
from hyperfusion.data.manifest import warnings_shown
from hyperfusion.engine.module import balanced_class_weights, save_state_dict
from hyperfusion.engine.target import StandardizedRegressor
from hyperfusion.engine.trainer import Predictions, TrainSettings, predict, train_model
from hyperfusion.nn import ConditionedModel, principled_init_from_data_, warm_start_, warm_start_network_
from hyperfusion.run.hazards import BASELINE, baseline_field
from hyperfusion.run.plan import PlannedUnit, Unit, tabular_encoder_of
from hyperfusion.run.setup import build_arguments, build_model, image_spec, load_checkpoint, parameter_count
from hyperfusion.run.store import RunDirectory
from hyperfusion.run.tracking import unit_tracking
from hyperfusion.tasks import get_task

ROLES = ("train", "val", "test")


@dataclass(frozen=True)
class UnitJob:
    """Everything a worker needs to run one unit: picklable, so Ray can ship it."""

    planned: PlannedUnit
    config: dict[str, Any]  # the resolved configuration (RunConfig.to_dict())
    run_dir: str


@dataclass(frozen=True)
class UnitOutcome:
    unit: Unit
    seconds: float
    summary: str


def run_unit(job: UnitJob) -> UnitOutcome:
    """Train or compose the job's unit and write its checkpoint and record; returns a one-line summary."""
    start = time.perf_counter()
    config = config_from_dict(
        job.config,
        source=str(Path(job.run_dir) / "config.yaml"),
        plugin_files=RunDirectory(job.run_dir).recorded_plugins() or {},
    )
    context = _context(job.run_dir, config)
    planned = job.planned
    make = {"compose": _compose_late_fusion, "fit": _fit_closed_form, "train": _train}[planned.kind]
    record = make(context, planned)
    context.run.write_record(planned.unit, record)
    seconds = time.perf_counter() - start
    metric = record.get("metric_name", "")
    summary = f"{planned.unit.name}: best validation {metric} {record.get('best_metric', float('nan')):.3f}"
    return UnitOutcome(planned.unit, seconds, summary)


# ----------------------------------------------------------------------------------------------------------
# what every unit of a run shares (cached per process: a worker running many units reads the cohort once)


@dataclass
class RunContext:
    config: RunConfig
    run: RunDirectory
    cohort: Cohort
    cache: ImageCache

    @property
    def task(self) -> str:
        return self.cohort.task

    @functools.cached_property
    def spec(self):
        return image_spec(self.config)

    def roles(self, split_seed: int, fold: int) -> pd.Series:
        """train/val/test per cohort row for one fold, from the run's partitions file."""
        table = read_partitions(self.run.partitions(split_seed))
        by_subject = dict(zip(table["subject_id"].astype(str), table["partition"]))
        values = self.cohort.frame["subject_id"].astype(str).map(by_subject)
        if values.isna().any():
            missing = self.cohort.frame.loc[values.isna(), "subject_id"].iloc[0]
            raise ValueError(f"{self.run.partitions(split_seed)} has no partition for subject {missing!r}")
        values.index = self.cohort.frame.index
        return get_task(self.task).roles(values, self.config.protocol, fold)

    def preprocessor(self, split_seed: int, fold: int) -> TabularPreprocessor:
        return TabularPreprocessor.load(self.run.preprocessor(split_seed, fold))

    def dataset(
        self,
        rows: np.ndarray,
        preprocessor: TabularPreprocessor,
        *,
        train: bool,
        seed: int,
        permute_tabular: np.ndarray | None = None,
        permute_images: np.ndarray | None = None,
    ) -> CohortDataset:
        """A dataset over the rows (a boolean mask), optionally with tabular rows or images permuted among them."""
        frame = self.cohort.frame[rows]
        images = self.cache.ensure_all(frame["image"], self.spec)
        tabular = preprocessor.transform(frame)
        if permute_images is not None:
            images = [images[i] for i in permute_images]
        if permute_tabular is not None:
            tabular = tabular[permute_tabular]
        return CohortDataset(
            images,
            tabular,
            self.cohort.targets[np.flatnonzero(rows)],
            frame["subject_id"].tolist(),
            two_sides=self.spec.mode == "hippocampus",
            train=train,
            seed=seed,
            augment=Augment(self.config.training.augment_shift, self.config.training.augment_flip),
        )


@functools.lru_cache(maxsize=4)
def _cached_context(run_dir: str, config_text: str) -> RunContext:
    import json

    run = RunDirectory(run_dir)
    config = config_from_dict(json.loads(config_text), plugin_files=run.recorded_plugins() or {})
    with warnings_shown():  # the run read this cohort before planning any unit and showed its warnings then
        cohort = load_manifest(config.cohort)
    return RunContext(config, run, cohort, ImageCache(run.cache))


def _context(run_dir: str, config: RunConfig) -> RunContext:
    import json

    return _cached_context(str(run_dir), json.dumps(config.to_dict(), sort_keys=True, default=str))


def settings_for(config: RunConfig, task: str, n_classes: int, unit: Unit) -> TrainSettings:
    """How ``unit`` is trained: the run's training settings with its method's own (``method_training``)."""
    training = config.training_for(unit.method)
    balance = {
        "weighted_ce": "weighted",
        "oversample": "oversample",
        "ce": "none",
        "mse": "none",
        "cox": "none",
    }
    return TrainSettings(
        task=task,  # type: ignore[arg-type]
        epochs=training.epochs,
        lr=training.lr,
        weight_decay=training.weight_decay,
        n_classes=n_classes if get_task(task).has_classes else None,
        class_balance=balance[training.loss],  # type: ignore[arg-type]
        seed=unit.seed,
        device=training.device,
        precision=training.precision,  # type: ignore[arg-type]
        channels_last=training.channels_last,
        compile=training.compile,
        # the run shows its own progress (image preprocessing bar, a line per model with the time left);
        # Lightning's per-epoch bars would interleave with it and flood a redirected log, so they stay off
        progress_bar=False,
        deterministic=training.deterministic,
        devices=training.devices,
    )


def permutation(n: int, split_seed: int, what: str) -> np.ndarray:
    """The permutation of the test subjects used for a sensitivity: the same for every model of a split seed."""
    salt = {"tabular": 1, "image": 2}[what]
    rng = np.random.default_rng([split_seed, salt, 7919])
    if n < 2:
        return np.arange(n)
    while True:  # a derangement: no subject keeps its own row, so every prediction is a counterfactual
        order = rng.permutation(n)
        if not np.any(order == np.arange(n)):
            return order


def _loader(dataset, batch_size: int, *, shuffle: bool, seed: int, workers: int) -> DataLoader:
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        generator=torch.Generator().manual_seed(seed),
        num_workers=workers,
        persistent_workers=workers > 0,
        collate_fn=collate_items,
    )


def _prediction_record(predictions: Predictions) -> dict[str, Any]:
    return {
        "subject_ids": predictions.subject_ids,
        "values": predictions.values.tolist(),
        "targets": predictions.targets.tolist(),
    }


# ----------------------------------------------------------------------------------------------------------
# training a unit


def _train(context: RunContext, planned: PlannedUnit) -> dict[str, Any]:
    unit = planned.unit
    config = context.config
    roles = context.roles(unit.split_seed, unit.fold).to_numpy()
    preprocessor = context.preprocessor(unit.split_seed, unit.fold)
    rows = {role: roles == role for role in ROLES}
    datasets = {
        role: context.dataset(rows[role], preprocessor, train=role == "train", seed=unit.seed)
        for role in ROLES
    }
    batch, workers = config.training_for(unit.method).batch_size, config.training.num_workers
    train_loader = _loader(datasets["train"], batch, shuffle=True, seed=unit.seed, workers=workers)
    val_loader = _loader(datasets["val"], batch, shuffle=False, seed=0, workers=workers)

    torch.manual_seed(unit.seed)
    model = build_model(
        config,
        unit.method,
        n_tabular=len(preprocessor.feature_names_out),
        classes=context.cohort.classes,
        train_targets=context.cohort.targets[rows["train"]]
        if get_task(context.task).standardises_target
        else None,
    )
    fused = _fused(model)
    if planned.warm_network_from is not None:  # the image network first: the trained imaging-only model's
        source = _load_trained(context, planned.warm_network_from, preprocessor)
        warm_start_network_(fused, _unwrapped(source))
    if planned.warm_start_from is not None:
        source = _load_trained(context, planned.warm_start_from, preprocessor)
        warm_start_(fused, tabular_encoder_of(source))
    if fused is not None and fused.hyper_layers:  # eqs. (1)-(2) with E[e²] on this fold's training rows
        principled_init_from_data_(fused, list(torch.as_tensor(datasets["train"].tabular).split(batch)))

    settings = settings_for(config, context.task, len(context.cohort.classes), unit)
    result = train_model(
        model,
        train_loader,
        val_loader,
        settings,
        context.run.checkpoint(unit),
        tracking=unit_tracking(config, context.run, unit, _hyperparameters(unit, settings)),
    )
    _write_build(context, unit, preprocessor)
    record = {
        "unit": dataclasses.asdict(unit),
        "classes": list(context.cohort.classes),  # the order of the model's outputs
        "kind": "train",
        "parameters": parameter_count(model),
        "warm_start": _warm_label(planned),
        "training": trained_with(settings, batch),
        "best_epoch": result.best_epoch,
        "metric_name": result.metric_name,
        "best_metric": result.best_metric,
        "seconds": result.seconds,
        "class_weights": result.class_weights,
        "history": result.history,
    }
    record.update(_score(context, model, preprocessor, rows, unit, settings.device))
    return record


def _fit_closed_form(context: RunContext, planned: PlannedUnit) -> dict[str, Any]:
    """A model that fits itself (the crop reader): ``model.fit`` on the training rows, choices on validation.

    Both loaders hold evaluation items (every view of a subject), so the reader sees the same crops the CNNs
    train on and is chosen on validation as the CNN's best epoch is.
    """
    unit = planned.unit
    start = time.perf_counter()
    roles = context.roles(unit.split_seed, unit.fold).to_numpy()
    preprocessor = context.preprocessor(unit.split_seed, unit.fold)
    rows = {role: roles == role for role in ROLES}
    batch = context.config.training.batch_size

    def loader(role: str) -> DataLoader:
        dataset = context.dataset(rows[role], preprocessor, train=False, seed=unit.seed)
        return _loader(dataset, batch, shuffle=False, seed=0, workers=0)

    model = build_model(
        context.config,
        unit.method,
        n_tabular=len(preprocessor.feature_names_out),
        classes=context.cohort.classes,
    )
    model.fit(loader("train"), loader("val"))
    save_state_dict(model, context.run.checkpoint(unit))
    _write_build(context, unit, preprocessor)
    selection = dict(model.selection)
    record = {
        "unit": dataclasses.asdict(unit),
        "classes": list(context.cohort.classes),  # the order of the model's outputs
        "kind": "fit",
        "parameters": int(selection["parameters"]),
        "warm_start": None,
        "selection": selection,
        "best_epoch": None,
        "metric_name": "BA",
        "best_metric": float(selection["val_BA"]),
        "seconds": time.perf_counter() - start,
        "class_weights": None,
        "history": [],
    }
    record.update(_score(context, model, preprocessor, rows, unit, "cpu"))
    return record


def _score(
    context: RunContext,
    model: nn.Module,
    preprocessor: TabularPreprocessor,
    rows: dict[str, np.ndarray],
    unit: Unit,
    device: str,
) -> dict[str, Any]:
    """Validation and test predictions, and test predictions with tabular rows or images permuted; a survival
    model's baseline hazard of its training rows (`hyperfusion.run.hazards`)."""
    n_test = int(rows["test"].sum())
    variants = {
        "validation": ("val", {}),
        "test": ("test", {}),
        "test_tabular_permuted": (
            "test",
            {"permute_tabular": permutation(n_test, unit.split_seed, "tabular")},
        ),
        "test_image_permuted": ("test", {"permute_images": permutation(n_test, unit.split_seed, "image")}),
    }

    def scored(role: str, permuted: dict[str, np.ndarray]) -> Predictions:
        dataset = context.dataset(rows[role], preprocessor, train=False, seed=0, **permuted)
        return predict(
            model,
            _loader(dataset, context.config.training.batch_size, shuffle=False, seed=0, workers=0),
            task=context.task,  # type: ignore[arg-type]
            device=device,
            precision=context.config.training.precision,  # type: ignore[arg-type]
        )

    out: dict[str, Any] = {
        name: _prediction_record(scored(role, permuted)) for name, (role, permuted) in variants.items()
    }
    if get_task(context.task).time_to_event:  # the training rows' baseline hazard, from the state that scored
        train = scored("train", {})  # every view, unaugmented, as the test rows
        out[BASELINE] = baseline_field(train.values, train.targets)
    return out


def trained_with(settings: TrainSettings, batch_size: int) -> dict[str, Any]:
    """The settings a unit was optimised with, as its record states them (``method_training`` may set them)."""
    return {
        "epochs": settings.epochs,
        "batch_size": batch_size,
        "lr": settings.lr,
        "weight_decay": settings.weight_decay,
    }


def _hyperparameters(unit: Unit, settings: TrainSettings) -> dict[str, Any]:
    """The unit and its training settings as plain values, for the logger (hparams.yaml, MLflow parameters)."""
    fields = {**dataclasses.asdict(unit), **dataclasses.asdict(settings)}
    return {k: list(v) if isinstance(v, tuple) else v for k, v in fields.items()}


def _write_build(context: RunContext, unit: Unit, preprocessor: TabularPreprocessor) -> None:
    """Record beside the unit's checkpoint the exact arguments its model was built with (``load_model`` reads them)."""
    build = build_arguments(
        context.config,
        unit.method,
        n_tabular=len(preprocessor.feature_names_out),
        classes=tuple(context.cohort.classes),
    )
    context.run.write_build(unit, build)


def _unwrapped(model: nn.Module) -> nn.Module:
    """A unit's network without the regression target scaling around it."""
    return model.network if isinstance(model, StandardizedRegressor) else model


def _fused(model: nn.Module) -> ConditionedModel | None:
    """The fused (conditioned) network inside a unit's model, if it has one (regression wraps it)."""
    inner = _unwrapped(model)
    return inner if isinstance(inner, ConditionedModel) else None


def _warm_label(planned: PlannedUnit) -> str | None:
    """The record's ``warm_start``: the methods this unit started from (``"ad-tabular + ad-imaging"``)."""
    sources = [u.method for u in (planned.warm_start_from, planned.warm_network_from) if u is not None]
    return " + ".join(sources) or None


def _load_trained(context: RunContext, unit: Unit, preprocessor: TabularPreprocessor) -> nn.Module:
    model = build_model(
        context.config,
        unit.method,
        n_tabular=len(preprocessor.feature_names_out),
        classes=context.cohort.classes,
    )
    return load_checkpoint(model, context.run.verified_checkpoint(unit))


# ----------------------------------------------------------------------------------------------------------
# late fusion: separately trained members, combined


def _compose_late_fusion(context: RunContext, planned: PlannedUnit) -> dict[str, Any]:
    """Combine the imaging-only and tabular-only models of this fold (rule from the model's ``rule`` argument).

    Predictions are mixed from the members' records — mixing is linear, so mixing view-averaged probabilities equals
    averaging the views of the mixed model — and the composed model is saved as one checkpoint for ``predict``.
    """
    unit = planned.unit
    members = {role: context.run.read_record(member) for role, member in planned.members.items()}
    for role, record in members.items():
        if record is None:
            raise RuntimeError(f"{unit.name}: its {role} member {planned.members[role].name} is not finished")
    preprocessor = context.preprocessor(unit.split_seed, unit.fold)
    model = build_model(
        context.config,
        unit.method,
        n_tabular=len(preprocessor.feature_names_out),
        classes=context.cohort.classes,
    )
    compose = getattr(model, "compose", None)
    if compose is None:
        raise ValueError(
            f"{unit.method} is registered as late fusion but {type(model).__name__} has no compose()"
        )
    imaging, tabular = members["imaging"], members["tabular"]
    class_weights = None
    if context.config.training.loss == "weighted_ce":
        roles = context.roles(unit.split_seed, unit.fold).to_numpy()
        y = context.cohort.targets[(roles == "train") | (roles == "val")]
        class_weights = balanced_class_weights(y, len(context.cohort.classes))
    members_models = {
        role: _load_trained(context, planned.members[role], preprocessor) for role in ("imaging", "tabular")
    }
    validation = tuple(np.asarray(v) for v in (imaging["validation"]["values"], tabular["validation"]["values"],
                                              imaging["validation"]["targets"]))  # fmt: skip
    composed = compose(members_models["imaging"], members_models["tabular"], validation, class_weights)
    weight = float(composed.imaging_weight)
    save_state_dict(composed, context.run.checkpoint(unit))
    _write_build(context, unit, preprocessor)

    def mix(name: str) -> dict[str, Any]:
        a, b = imaging[name], tabular[name]
        if a["subject_ids"] != b["subject_ids"]:
            raise RuntimeError(f"{unit.name}: its members scored different {name} subjects")
        values = composed.mix(a["values"], b["values"])
        return {"subject_ids": a["subject_ids"], "values": values.tolist(), "targets": a["targets"]}

    validation = mix("validation")
    y = np.asarray(validation["targets"])
    values = np.asarray(validation["values"])
    selection = get_task(context.task).selection
    metric = selection.compute(values, y)
    record = {
        "unit": dataclasses.asdict(unit),
        "classes": list(context.cohort.classes),
        "kind": "compose",
        "parameters": parameter_count(composed),
        "warm_start": None,
        "members": {role: dataclasses.asdict(u) for role, u in planned.members.items()},
        "late_fusion_weight": weight,
        "rule": model.rule,
        "best_epoch": None,
        "metric_name": selection.name,
        "best_metric": metric,
        "seconds": 0.0,
        "class_weights": None,
        "history": [],
    }
    for name in ("validation", "test", "test_tabular_permuted", "test_image_permuted"):
        record[name] = mix(name)
    return record


def clone_without_training(model: nn.Module) -> nn.Module:
    return copy.deepcopy(model)
