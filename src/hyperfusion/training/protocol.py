"""The paper's protocol end to end: split seeds × versions × folds × methods, resumable, in one run directory.

Classification (paper §4.3.4, §4.3.6, Fig. C.7): the cohort is cut into ``n_partitions`` stratified partitions
per split seed; the last one is the test set, the others take turns as validation (``folds`` of them), the rest
train. Each (method, split seed, version) trains one model per fold; the fold models are ensembled on the test
set with per-subject inverse-entropy weights (eqs. 7–8), every subject scored on both hippocampus sides.

Regression (paper §4.2.2): an 80/10/10 split per split seed, stratified by age bins and sex; each version is one
model; the test prediction is the mean of the top-k versions by validation MAE (eq. 6).

Everything a run produces lives under its directory, written atomically; a unit of work (one trained model)
is finished exactly when its record ``units/<method>/s<seed>_v<version>_f<fold>.json`` exists, so a rerun skips
finished units and an interrupted one loses nothing that was finished.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml
from torch.utils.data import DataLoader

from hyperfusion.atomic import write_text_atomic
from hyperfusion.config import RunConfig, config_from_dict
from hyperfusion.data import (
    Cohort,
    ImageCache,
    ImageSpec,
    TabularPreprocessor,
    build_dataset,
    fold_roles,
    load_manifest,
    make_partitions,
    make_split,
    write_partitions,
)
from hyperfusion.evaluation.ensemble import inverse_entropy_ensemble, mean_probabilities, top_k_indices
from hyperfusion.evaluation.metrics import classification_metrics, regression_metrics
from hyperfusion.evaluation.report import markdown_table, write_report
from hyperfusion.models import create_model, model_arguments, model_info
from hyperfusion.nn import HyperModel, estimate_embedding_variance, principled_init_
from hyperfusion.training.trainer import Predictions, TrainSettings, predict, train_model

log = logging.getLogger("hyperfusion")

ENSEMBLE = "ensemble"
GROUP_COLUMNS = ("sex", "Sex", "PTGENDER", "gender", "Gender")


@dataclass(frozen=True)
class Unit:
    """One trained model: a method on one split seed, version (initialisation) and fold."""

    method: str
    split_seed: int
    version: int
    fold: int

    @property
    def key(self) -> str:
        return f"s{self.split_seed}_v{self.version}_f{self.fold}"

    @property
    def seed(self) -> int:
        """The initialisation seed: shared by every method of a (split seed, version, fold), so runs pair."""
        return 10_000 * self.split_seed + 100 * self.version + self.fold


class RunDirectory:
    """The layout of a run directory; the protocol is the only writer."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    config = property(lambda self: self.root / "config.yaml")
    results = property(lambda self: self.root / "results.csv")
    predictions = property(lambda self: self.root / "predictions.csv")
    cache = property(lambda self: self.root / "cache")
    manifest = property(lambda self: self.root / "manifest.yaml")  # the cohort's spec, for `predict`

    def partitions(self, split_seed: int) -> Path:
        return self.root / f"partitions_seed{split_seed}.csv"

    def preprocessor(self, split_seed: int, fold: int) -> Path:
        return self.root / "preprocessing" / f"s{split_seed}_f{fold}.json"

    def checkpoint(self, unit: Unit) -> Path:
        return self.root / "checkpoints" / unit.method / f"{unit.key}.pt"

    def record(self, unit: Unit) -> Path:
        return self.root / "units" / unit.method / f"{unit.key}.json"

    def ensemble(self, method: str, split_seed: int, version: int | str) -> Path:
        return self.root / "ensembles" / method / f"s{split_seed}_v{version}.json"


# ----------------------------------------------------------------------------------------------------------
# set-up shared by training and prediction


def image_spec(config: RunConfig) -> ImageSpec:
    image = config.image
    if image.mode == "hippocampus":
        return ImageSpec.hippocampus(
            voxel_mm=image.voxel_mm,
            shape=image.shape,
            left_center_mm=image.left_center_mm,
            right_center_mm=image.right_center_mm,
        )
    return ImageSpec.whole_brain(voxel_mm=image.voxel_mm, shape=image.shape, center_mm=image.center_mm)


def make_preprocessor(config: RunConfig, cohort: Cohort) -> TabularPreprocessor:
    return cohort.preprocessor(
        impute=config.tabular.impute,
        missing_indicators=config.tabular.missing_indicators,
        unknown_category=config.tabular.unknown_category,
    )


def model_kwargs(config: RunConfig, method: str, *, n_tabular: int, n_classes: int) -> dict[str, Any]:
    """Keyword arguments for one method: the shared ``model`` settings it accepts, then its overrides."""
    accepted = model_arguments(method)
    kwargs = {k: v for k, v in config.model.items() if k in accepted}
    if "n_tabular" in accepted:
        kwargs["n_tabular"] = n_tabular
    if "n_classes" in accepted and model_info(method).task == "classification":
        kwargs["n_classes"] = n_classes
    if "input_shape" in accepted:
        kwargs["input_shape"] = tuple(config.image.shape)
    kwargs.update(config.model_overrides.get(method, {}))
    return {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}


def tabular_twin(method: str) -> str | None:
    """The tabular-only model whose trained MLP initialises ``method``'s embedding (paper §4.3.6), if any."""
    if "tabular_model" not in model_arguments(method):
        return None
    twin = method.split("-")[0] + "-tabular"
    try:
        model_info(twin)
    except ValueError:
        return None
    return twin


def group_column(cohort: Cohort, name: str = "auto") -> str | None:
    """The column MAE is broken down by: ``name``, or with ``"auto"`` a sex column when the cohort has one.

    Raises:
        ValueError: a named column the cohort does not have (e.g. UK Biobank's sex is field ``31-0.0``).
    """
    if name == "auto":
        return next((c for c in GROUP_COLUMNS if c in cohort.frame.columns), None)
    if name not in cohort.frame.columns:
        raise ValueError(
            f"protocol.group_by: the cohort has no column {name!r}; columns: {list(cohort.frame.columns)}"
        )
    return name


def _loader(dataset, batch_size: int, *, shuffle: bool, seed: int, workers: int) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, generator=generator, num_workers=workers
    )


def _write_json(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=1))


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text())


# ----------------------------------------------------------------------------------------------------------
# the run


class Protocol:
    """Runs (or resumes) a whole comparison; see the module docstring."""

    def __init__(
        self, config: RunConfig, out_dir: str | Path, *, echo: Callable[[str], None] = print
    ) -> None:
        self.config = config
        self.run = RunDirectory(out_dir)
        self.echo = echo
        self.cohort = load_manifest(config.cohort)
        self.task = self.cohort.task
        for method in config.methods:
            if model_info(method).task != self.task:
                raise ValueError(
                    f"method {method!r} is a {model_info(method).task} model but the cohort's task is {self.task}"
                )
        if self.task == "classification" and config.training.loss == "mse":
            raise ValueError("training.loss: 'mse' is for regression; this cohort is a classification task")
        self.spec = image_spec(config)
        self.cache = ImageCache(self.run.cache)
        self.group = group_column(self.cohort, config.protocol.group_by)

    # --- bookkeeping ------------------------------------------------------------------------------------

    def _check_config(self) -> None:
        resolved = self.config.to_dict()
        if self.run.config.exists():
            previous = yaml.safe_load(self.run.config.read_text())
            if previous != resolved:
                changed = sorted(
                    k for k in set(previous) | set(resolved) if previous.get(k) != resolved.get(k)
                )
                raise ValueError(
                    f"{self.run.root} holds a run with a different configuration (keys {changed}); "
                    "use another --out directory to start a new run"
                )
        else:
            self.run.root.mkdir(parents=True, exist_ok=True)
            write_text_atomic(self.run.manifest, Path(self.config.cohort).read_text())
            write_text_atomic(self.run.config, yaml.safe_dump(resolved, sort_keys=False))

    def roles(self, split_seed: int) -> Iterator[tuple[int, pd.Series]]:
        """(fold, train/val/test role per row) for every fold of one split seed; writes the partitions CSV."""
        frame = self.cohort.frame
        protocol = self.config.protocol
        stratify = list(self.cohort.stratify)
        if self.task == "classification":
            parts = make_partitions(
                frame,
                protocol.n_partitions,
                stratify=stratify,
                age_bins=protocol.age_bins,
                group="subject_id",
                seed=split_seed,
            )
            test = protocol.n_partitions - 1
            self._write_partitions(split_seed, parts)
            for fold in range(protocol.folds):
                yield fold, fold_roles(parts, test=test, val=fold)
        else:
            train = 1 - protocol.val_fraction - protocol.test_fraction
            roles = make_split(
                frame,
                (train, protocol.val_fraction, protocol.test_fraction),
                stratify=stratify,
                age_bins=protocol.age_bins,
                group="subject_id",
                seed=split_seed,
            )
            self._write_partitions(split_seed, roles)
            yield 0, roles

    def _write_partitions(self, split_seed: int, assignment: pd.Series) -> None:
        write_partitions(
            self.run.partitions(split_seed), self.cohort.frame["subject_id"].tolist(), assignment
        )

    def units(self) -> list[Unit]:
        """Every model the run trains, tabular twins (needed as pretrained embeddings) first."""
        methods = list(self.config.methods)
        if self.config.training.pretrain_embedding:
            twins = [t for t in map(tabular_twin, methods) if t is not None]
            methods = list(dict.fromkeys([*twins, *methods]))  # twins first, each method once
        folds = self.config.protocol.folds if self.task == "classification" else 1
        return [
            Unit(method, seed, version, fold)
            for seed in self.config.protocol.split_seeds
            for version in range(self.config.protocol.versions)
            for method in methods
            for fold in range(folds)
        ]

    # --- one unit ---------------------------------------------------------------------------------------

    def train_settings(self, unit: Unit) -> TrainSettings:
        training = self.config.training
        balance = {"weighted_ce": "weighted", "oversample": "oversample", "ce": "none", "mse": "none"}
        return TrainSettings(
            task=self.task,
            epochs=training.epochs,
            lr=training.lr,
            weight_decay=training.weight_decay,
            n_classes=len(self.cohort.classes) if self.task == "classification" else None,
            class_balance=balance[training.loss],
            seed=unit.seed,
            device=training.device,
            precision="bf16" if training.precision == "bf16" else "32",
            channels_last=training.channels_last,
            compile=training.compile,
            progress_bar=training.progress,
        )

    def build_model(self, unit: Unit, n_tabular: int, train_loader: DataLoader | None) -> torch.nn.Module:
        kwargs = model_kwargs(
            self.config, unit.method, n_tabular=n_tabular, n_classes=len(self.cohort.classes)
        )
        twin = tabular_twin(unit.method)
        if twin and self.config.training.pretrain_embedding and train_loader is not None:
            tabular = create_model(
                twin,
                **model_kwargs(self.config, twin, n_tabular=n_tabular, n_classes=len(self.cohort.classes)),
            )
            state = torch.load(self.run.checkpoint(dataclasses.replace(unit, method=twin)), weights_only=True)
            tabular.load_state_dict(state)
            kwargs["tabular_model"] = tabular
        torch.manual_seed(unit.seed)
        model = create_model(unit.method, **kwargs)
        if isinstance(model, HyperModel) and train_loader is not None:
            self._principled_init(model, train_loader)
        return model

    @staticmethod
    def _principled_init(model: HyperModel, train_loader: DataLoader) -> None:
        """Eqs. (1)–(2) with E[e²] of each layer's embedding measured on this fold's training rows.

        The tabular rows are read straight from the dataset in training-sized batches: no image is loaded.
        """
        tabular = list(train_loader.dataset.tabular.split(train_loader.batch_size))
        embeddings = (
            model.embeddings if not model.shared_embedding else [model.embeddings[0]] * len(model.layer_names)
        )
        for layer, embedding in zip(model.hyper_layers.values(), embeddings, strict=True):
            principled_init_(layer, estimate_embedding_variance(embedding, tabular))

    def train_unit(self, unit: Unit, roles: pd.Series) -> None:
        config = self.config
        frame = self.cohort.frame
        train_rows = (roles == "train").to_numpy()
        preprocessor_path = self.run.preprocessor(unit.split_seed, unit.fold)
        if preprocessor_path.exists():
            preprocessor = TabularPreprocessor.load(preprocessor_path)
        else:
            preprocessor = make_preprocessor(config, self.cohort).fit(frame[train_rows])  # training rows only
            preprocessor.save(preprocessor_path)
        datasets = {
            role: build_dataset(
                self.cohort,
                (roles == role).to_numpy(),
                preprocessor,
                self.spec,
                self.cache,
                train=role == "train",
                seed=unit.seed,
            )
            for role in ("train", "val", "test")
        }
        batch = config.training.batch_size
        workers = config.training.num_workers
        train_loader = _loader(datasets["train"], batch, shuffle=True, seed=unit.seed, workers=workers)
        val_loader = _loader(datasets["val"], batch, shuffle=False, seed=0, workers=workers)
        test_loader = _loader(datasets["test"], batch, shuffle=False, seed=0, workers=workers)
        model = self.build_model(unit, len(preprocessor.feature_names_out), train_loader)
        settings = self.train_settings(unit)
        result = train_model(model, train_loader, val_loader, settings, self.run.checkpoint(unit))
        validation = predict(model, val_loader, task=self.task, device=settings.device)
        test = predict(model, test_loader, task=self.task, device=settings.device)
        record = {
            "unit": dataclasses.asdict(unit),
            "best_epoch": result.best_epoch,
            "metric_name": result.metric_name,
            "best_metric": result.best_metric,
            "seconds": result.seconds,
            "class_weights": result.class_weights,
            "history": result.history,
            "validation": self._prediction_record(validation),
            "test": self._prediction_record(test),
        }
        _write_json(self.run.record(unit), record)

    @staticmethod
    def _prediction_record(predictions: Predictions) -> dict[str, Any]:
        return {
            "subject_ids": predictions.subject_ids,
            "values": predictions.values.tolist(),
            "targets": predictions.targets.tolist(),
        }

    # --- scoring ----------------------------------------------------------------------------------------

    def metrics(self, values: np.ndarray, targets: np.ndarray, subject_ids: list[str]) -> dict[str, float]:
        if self.task == "classification":
            return classification_metrics(values, targets, self.cohort.classes)
        groups = None
        if self.group is not None:
            by_subject = dict(zip(self.cohort.frame["subject_id"], self.cohort.frame[self.group].astype(str)))
            groups = [by_subject[s] for s in subject_ids]
        return regression_metrics(values, targets, groups)

    def ensemble(self, method: str, split_seed: int, version: int) -> dict[str, Any] | None:
        """Classification: the fold models of one version on the test set, inverse-entropy weighted."""
        records = [
            self.run.record(Unit(method, split_seed, version, fold))
            for fold in range(self.config.protocol.folds)
        ]
        if not all(path.exists() for path in records):
            return None
        tests = [_read_json(path)["test"] for path in records]
        ids = tests[0]["subject_ids"]
        if any(t["subject_ids"] != ids for t in tests):
            raise RuntimeError(
                f"fold models of {method} s{split_seed} v{version} scored different test subjects"
            )
        stack = np.stack([np.asarray(t["values"]) for t in tests])  # [M, N, C]
        combine = (
            inverse_entropy_ensemble
            if self.config.protocol.ensemble == "inverse_entropy"
            else mean_probabilities
        )
        values = combine(stack)
        return {"subject_ids": ids, "values": values.tolist(), "targets": tests[0]["targets"]}

    def regression_ensemble(self, method: str, split_seed: int) -> dict[str, Any] | None:
        """Regression: the mean of the top-k versions by validation MAE (eq. 6)."""
        versions = range(self.config.protocol.versions)
        records = [self.run.record(Unit(method, split_seed, v, 0)) for v in versions]
        if not all(path.exists() for path in records):
            return None
        loaded = [_read_json(path) for path in records]
        val_mae = np.array([r["best_metric"] for r in loaded])
        chosen = top_k_indices(val_mae, min(self.config.protocol.top_k, len(loaded)))
        stack = np.stack([np.asarray(loaded[i]["test"]["values"]) for i in chosen])
        test = loaded[0]["test"]
        return {
            "subject_ids": test["subject_ids"],
            "values": stack.mean(axis=0).tolist(),
            "targets": test["targets"],
            "versions": [int(i) for i in chosen],
        }

    def collect(self) -> pd.DataFrame:
        """The long-form results table from every finished unit and ensemble (rebuilt from the records)."""
        rows: list[dict[str, Any]] = []
        prediction_rows: list[pd.DataFrame] = []
        protocol = self.config.protocol
        for method in self.config.methods:
            for seed in protocol.split_seeds:
                for version in range(protocol.versions):
                    folds = protocol.folds if self.task == "classification" else 1
                    for fold in range(folds):
                        path = self.run.record(Unit(method, seed, version, fold))
                        if not path.exists():
                            continue
                        record = _read_json(path)
                        test = record["test"]
                        metrics = self.metrics(
                            np.asarray(test["values"]), np.asarray(test["targets"]), test["subject_ids"]
                        )
                        rows += [
                            dict(
                                method=method,
                                split_seed=seed,
                                version=version,
                                fold=str(fold),
                                metric=k,
                                value=v,
                            )
                            for k, v in metrics.items()
                        ]
                    if self.task == "classification":
                        ensemble = self._cached_ensemble(method, seed, version)
                        if ensemble is not None:
                            rows += self._ensemble_rows(method, seed, version, ensemble)
                            prediction_rows.append(self._prediction_frame(method, seed, version, ensemble))
                if self.task == "regression":
                    ensemble = self._cached_ensemble(method, seed, f"top{protocol.top_k}")
                    if ensemble is not None:
                        rows += self._ensemble_rows(method, seed, f"top{protocol.top_k}", ensemble)
                        prediction_rows.append(
                            self._prediction_frame(method, seed, f"top{protocol.top_k}", ensemble)
                        )
        results = pd.DataFrame(rows, columns=["method", "split_seed", "version", "fold", "metric", "value"])
        write_text_atomic(self.run.results, results.to_csv(index=False))
        if prediction_rows:
            write_text_atomic(self.run.predictions, pd.concat(prediction_rows).to_csv(index=False))
        return results

    def _cached_ensemble(self, method: str, seed: int, version: int | str) -> dict[str, Any] | None:
        path = self.run.ensemble(method, seed, version)
        if path.exists():
            return _read_json(path)
        ensemble = (
            self.ensemble(method, seed, version)
            if isinstance(version, int)
            else (self.regression_ensemble(method, seed))
        )
        if ensemble is not None:
            _write_json(path, ensemble)
        return ensemble

    def _ensemble_rows(self, method: str, seed: int, version: int | str, ensemble: dict) -> list[dict]:
        metrics = self.metrics(
            np.asarray(ensemble["values"]), np.asarray(ensemble["targets"]), ensemble["subject_ids"]
        )
        return [
            dict(method=method, split_seed=seed, version=version, fold=ENSEMBLE, metric=k, value=v)
            for k, v in metrics.items()
        ]

    def _prediction_frame(self, method: str, seed: int, version: int | str, ensemble: dict) -> pd.DataFrame:
        frame = pd.DataFrame(
            {"method": method, "split_seed": seed, "version": version, "subject_id": ensemble["subject_ids"]}
        )
        values = np.asarray(ensemble["values"])
        targets = np.asarray(ensemble["targets"])
        if self.task == "classification":
            for i, name in enumerate(self.cohort.classes):
                frame[f"p_{name}"] = values[:, i]
            frame["predicted"] = [self.cohort.classes[i] for i in values.argmax(1)]
            frame["target"] = [self.cohort.classes[int(t)] for t in targets]
        else:
            frame["predicted"] = values
            frame["target"] = targets
        return frame

    # --- driver -----------------------------------------------------------------------------------------

    def execute(self) -> pd.DataFrame:
        self._check_config()
        units = self.units()
        todo = [u for u in units if not self.run.record(u).exists()]
        self.echo(
            f"{len(units)} models in this run ({len(units) - len(todo)} already finished); "
            f"{len(self.cohort.frame)} subjects, task {self.task}"
        )
        if todo:
            self.echo(f"preprocessing {len(self.cohort.frame)} images into {self.run.cache} ...")
            self.cache.ensure_all(self.cohort.frame["image"], self.spec)
        roles_by_seed: dict[int, dict[int, pd.Series]] = {}
        for number, unit in enumerate(todo, start=1):
            if unit.split_seed not in roles_by_seed:
                roles_by_seed[unit.split_seed] = dict(self.roles(unit.split_seed))
            self.echo(
                f"[{number}/{len(todo)}] {unit.method} split seed {unit.split_seed}, version "
                f"{unit.version}, fold {unit.fold}"
            )
            self.train_unit(unit, roles_by_seed[unit.split_seed][unit.fold])
        return self.report()

    def _append_ensemble_table(self, results: pd.DataFrame) -> None:
        if not (results["fold"] == ENSEMBLE).any():
            return
        report = self.run.root / "report.md"
        text = report.read_text() + _ensemble_section(results, self.config.protocol.top_k)
        write_text_atomic(report, text)

    def report(self) -> pd.DataFrame:
        results = self.collect()
        if results.empty:
            raise RuntimeError(f"{self.run.root}: no finished models to report")
        fold = ENSEMBLE if self.task == "classification" else "0"
        write_report(
            results,
            self.run.root,
            reference=self.config.reference_method,
            fold=fold,
            title=f"HyperFusion comparison: {self.task}, {len(self.cohort.frame)} subjects ({self.config.cohort})",
        )
        if self.task == "regression":
            self._append_ensemble_table(results)
        return results


def _ensemble_section(results: pd.DataFrame, top_k: int) -> str:
    table = markdown_table(results, reference=None, fold=ENSEMBLE)
    return (
        f"\n## Test-set ensemble: mean of the top {top_k} versions by validation MAE (eq. 6)\n\n"
        "The table above scores each version's single model (one run per version); this one the ensemble.\n\n"
        + table
    )


def load_run_config(run_dir: str | Path) -> RunConfig:
    """The resolved configuration a run directory was made with."""
    path = RunDirectory(run_dir).config
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a run directory: it has no config.yaml")
    return config_from_dict(yaml.safe_load(path.read_text()), source=str(path))


def run_protocol(
    config: RunConfig, out_dir: str | Path, *, echo: Callable[[str], None] = print
) -> pd.DataFrame:
    """Run or resume ``config`` into ``out_dir``; returns the long-form results table."""
    return Protocol(config, out_dir, echo=echo).execute()
