"""A finished run, read back: the one reader that ``report``, ``predict``, ``explain`` and ``study`` share.

Before this there were parallel copies — partitions turned into roles in four places, an ensemble rebuilt in two —
that could drift apart. `FinishedRun` opens a run directory once: its configuration (plugins only as recorded), its
cohort (checked against the run's fingerprint), the partitions its records name, the roles they give, the members of
each ensemble, and each member's preprocessing and model, every file verified against the record that names it
(`RunDirectory`'s ``verified_*``). A run directory is data: nothing read here executes anything the run did not.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml
from torch import nn

from hyperfusion.config import RunConfig, check_device_name, config_from_dict
from hyperfusion.data import Cohort, TabularPreprocessor, load_manifest, load_table, read_partitions
from hyperfusion.data.manifest import spec_from_dict
from hyperfusion.engine.devices import check_available
from hyperfusion.run.plan import Unit
from hyperfusion.run.setup import build_model, load_checkpoint, model_from_build
from hyperfusion.run.store import RunDirectory, fingerprint_cohort
from hyperfusion.tasks import Task, get_task
from hyperfusion.yamlio import load_yaml

RecordKey = tuple[str, int, int, int]  # (method, split seed, version, fold)


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


def check_device(device: str) -> str:
    """A device this machine has, or a one-line error saying which it lacks (or that it names no device)."""
    check_device_name(device, "--device")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    check_available(device, key="--device")
    return device


class FinishedRun:
    """A run directory and the configuration it was made with, read once and verified as it is read.

    Args:
        run_dir: a directory written by ``hyperfusion run``.
        config: its resolved configuration when the caller has it already (``run`` reports what it just trained);
            read from the directory otherwise.

    Raises:
        FileNotFoundError: not a run directory.
        ValueError: a corrupt config.yaml or plugins.json, or a plugin that is not what the run executed.
    """

    def __init__(self, run_dir: str | Path, config: RunConfig | None = None) -> None:
        self.directory = RunDirectory(run_dir)
        self.config = load_run_config(run_dir) if config is None else config

    @property
    def root(self) -> Path:
        return self.directory.root

    # ------------------------------------------------------------------ the cohort
    @cached_property
    def cohort(self) -> Cohort:
        """The cohort the run was trained on, refused unless its rows are the ones the run fingerprinted.

        Raises:
            FileNotFoundError: the run's cohort manifest is gone.
            RunDirectoryError: its rows differ from the run's.
        """
        path = Path(self.config.cohort)
        if not path.is_file():
            raise FileNotFoundError(
                f"the run's cohort manifest {path} (from {self.directory.config}) does not exist; "
                "what reads a finished run needs its training rows"
            )
        cohort = load_manifest(path)
        self.directory.check_fingerprint(fingerprint_cohort(cohort.frame), write=False)
        return cohort

    def new_subjects(self, manifest: str | Path) -> Cohort:
        """Subjects to score: a manifest YAML, or a table laid out like the run's training table (its manifest)."""
        manifest = Path(manifest)
        if manifest.suffix in (".yaml", ".yml"):
            return load_manifest(manifest, require_target=False)
        saved = self.directory.manifest
        spec = spec_from_dict(load_yaml(saved.read_text(), str(saved)), source=str(saved))
        return load_table(spec, manifest, require_target=False)

    # ------------------------------------------------------------------ records and partitions
    def records(self, cohort: Cohort, split_seeds: Any = None) -> dict[RecordKey, dict[str, Any]]:
        """(method, split seed, version, fold) → record, for every finished unit of the run's methods."""
        config = self.config
        folds = get_task(cohort.task).folds(config.protocol)
        seeds = config.protocol.split_seeds if split_seeds is None else split_seeds
        found = {}
        for method in config.methods:
            for seed in seeds:
                for version in range(config.protocol.versions):
                    for fold in range(folds):
                        record = self.directory.read_record(Unit(method, seed, version, fold))
                        if record is not None:
                            found[(method, seed, version, fold)] = record
        return found

    def partitions(self, cohort: Cohort, split_seed: int, records: Any = None) -> pd.DataFrame:
        """The partitions file of ``split_seed``, verified to be the one ``records`` were trained on.

        Raises:
            FileNotFoundError: the run has no partitions file for this split seed.
            RunDirectoryError: a partitions file that is not the one the records name.
        """
        if records is None:
            records = self.records(cohort, [split_seed]).values()
        return read_partitions(self.directory.verified_partitions(split_seed, list(records)))

    def assignment(self, cohort: Cohort, split_seed: int, records: Any = None) -> pd.Series:
        """Each row of ``cohort``'s partition in ``split_seed`` (NaN for a subject the file does not list)."""
        table = self.partitions(cohort, split_seed, records)
        by_subject = dict(zip(table["subject_id"].astype(str), table["partition"]))
        return cohort.frame["subject_id"].astype(str).map(by_subject)

    def roles(self, cohort: Cohort, split_seed: int, fold: int) -> pd.Series:
        """``train``/``val``/``test`` per row of ``cohort``, as the run's partitions file assigns them.

        Raises:
            FileNotFoundError: the run has no partitions file for this split seed.
            ValueError: a subject of the cohort that the partitions file does not list (another cohort), or a
                partitions file that is not the one the run's models were trained on.
        """
        assignment = self.assignment(cohort, split_seed)
        unknown = sorted(set(cohort.frame["subject_id"].astype(str)[assignment.isna()]))
        if unknown:
            raise ValueError(
                f"{self.directory.partitions(split_seed)} does not list {len(unknown)} subject(s) of the run's "
                f"cohort (e.g. {unknown[:3]}); the cohort changed since the run"
            )
        return get_task(cohort.task).roles(assignment, self.config.protocol, fold)

    def no_skill_targets(self, cohort: Cohort, split_seed: int, records: Any = ()) -> np.ndarray:
        """The rows a no-skill model learns from: every non-test row (classification), the training rows
        (regression) — read from the partitions file the methods' ``records`` name, so the baseline learns from
        the same rows as the models it is compared with."""
        assignment = self.assignment(cohort, split_seed, records)
        keep = get_task(cohort.task).no_skill_rows(assignment, self.config.protocol)
        return cohort.targets[keep.to_numpy()]

    # ------------------------------------------------------------------ ensembles
    def choose(self, method: str | None, split_seed: int | None) -> tuple[str, int]:
        """The ensemble to apply: a method and split seed of the run (defaults: the reference method, the first).

        Raises:
            ValueError: a method or split seed the run does not have (the message lists those it has).
        """
        config = self.config
        method = method or config.reference_method
        if method not in config.methods:
            raise ValueError(f"method {method!r} is not in this run; its methods: {list(config.methods)}")
        split_seed = config.protocol.split_seeds[0] if split_seed is None else split_seed
        if split_seed not in config.protocol.split_seeds:
            raise ValueError(
                f"split seed {split_seed} is not in this run: {list(config.protocol.split_seeds)}"
            )
        return method, split_seed

    def members(self, method: str, split_seed: int, version: int | None, task: Task) -> list[int]:
        """The versions whose models form the run's ensemble (regression: the top-k by validation MAE)."""
        available = list(range(self.config.protocol.versions))
        if version is not None:
            if version not in available:
                raise ValueError(f"version {version} is not in this run: {available}")
            return [version]
        if task.ensembles_folds:  # every version's fold ensemble, averaged
            return available
        units = [Unit(method, split_seed, v, 0) for v in available]
        records = [self.directory.read_record(unit) for unit in units]
        missing = [str(self.directory.record_path(u)) for u, r in zip(units, records) if r is None]
        if missing:
            raise FileNotFoundError(f"models never trained to the end: {missing}")
        chosen = task.members([r["best_metric"] for r in records], self.config.protocol.top_k)  # type: ignore[index]
        return [available[i] for i in chosen]

    def preprocessor(self, unit: Unit) -> TabularPreprocessor:
        """The tabular preprocessing a finished unit was trained with (verified against its record).

        Raises:
            FileNotFoundError: never trained to the end, or the file is gone.
            RunDirectoryError: the fold's file is not the one the unit's record names.
        """
        record = self.directory.read_record(unit)
        if record is None:
            self.directory.verified_checkpoint(unit)  # raises, naming the missing record
        path = self.directory.verified_preprocessor(unit.split_seed, unit.fold, [record])  # type: ignore[list-item]
        return TabularPreprocessor.load(path)

    def model(self, unit: Unit, preprocessor: TabularPreprocessor, classes: tuple[str, ...]) -> nn.Module:
        """A finished unit's model rebuilt from its verified checkpoint, for subjects labelled with ``classes``.

        The record says which classes, in which order, the model's outputs are; subjects whose manifest lists them
        in another order would get each probability under another class's name, so that is refused.

        Raises:
            FileNotFoundError: never trained to the end, or its checkpoint deleted since (`verified_checkpoint`).
            ValueError: classes other than the model's, or in another order; a checkpoint that is not the recorded
                one.
        """
        checkpoint = self.directory.verified_checkpoint(unit)
        trained = tuple((self.directory.read_record(unit) or {}).get("classes", ()))
        if trained != tuple(classes):
            order = "in another order" if sorted(trained) == sorted(classes) else "other classes"
            raise ValueError(
                f"the run's model {unit.name} outputs the classes {list(trained)} in that order, but the subjects' "
                f"manifest lists {list(classes)} ({order}); list target.classes as the run did, or every "
                "probability would be reported under another class's name"
            )
        build = self.directory.read_build(unit)
        if build is not None:  # the exact arguments it was built with
            return load_checkpoint(model_from_build(build), checkpoint)
        n_tabular = len(
            preprocessor.feature_names_out
        )  # a run from before build records: rebuilt from its config
        model = build_model(self.config, unit.method, n_tabular=n_tabular, classes=trained)
        return load_checkpoint(model, checkpoint)
