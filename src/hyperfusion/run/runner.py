"""A whole comparison: plan the units, prepare the run directory, hand the units to an executor, report.

Classification (paper §4.3.4, §4.3.6, Fig. C.7): per split seed the cohort is cut into ``n_partitions`` stratified
partitions; the last is the test set, the others take turns as validation (``folds`` of them), the rest train.
Regression (§4.2.2): one 80/10/10 split per split seed. Everything a unit needs that must be identical for every
unit — partitions, each fold's tabular preprocessing fitted on its training rows only, preprocessed images — is
written once here, before any unit starts, so units can run anywhere and in any order the plan allows.

A rerun of the same command resumes: finished units are kept, only unfinished ones run. A run can grow in place
(more versions, split seeds, folds of the same partitions, methods); what would change finished units (learning
rate, epochs, image spec, the cohort itself) is refused with a message naming it, unless ``restart`` is asked for.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from hyperfusion.config import RunConfig
from hyperfusion.data import Cohort, ImageCache, TabularPreprocessor, load_manifest
from hyperfusion.data.duplicates import check_duplicate_images
from hyperfusion.models import model_info
from hyperfusion.run.executors import LocalExecutor, RayExecutor, make_executor
from hyperfusion.run.plan import PlannedUnit, Unit, plan_units, warm_start_conflict
from hyperfusion.run.reporting import build_report
from hyperfusion.run.setup import (
    effective_model_arguments,
    group_column,
    image_spec,
    make_preprocessor,
    member_kwargs,
    static_model_kwargs,
)
from hyperfusion.run.store import RunDirectory, RunDirectoryError, fingerprint_cohort
from hyperfusion.run.tracking import log_finished_run, start_experiment
from hyperfusion.run.units import UnitJob, UnitOutcome
from hyperfusion.tasks import get_task

log = logging.getLogger("hyperfusion")
Echo = Callable[[str], None]


class RunInterrupted(KeyboardInterrupt):
    """The run was interrupted; ``finished`` of ``total`` units are kept in the run directory."""

    def __init__(self, finished: int, total: int, run_dir: Path) -> None:
        super().__init__(f"{finished} of {total} models finished and kept in {run_dir}")
        self.finished, self.total, self.run_dir = finished, total, run_dir


def check_cohort(config: RunConfig, cohort: Cohort) -> None:
    """What can be known about a config and a cohort before anything is preprocessed or trained.

    Raises:
        ValueError: a method of another task, a loss of the wrong task, a class too small to stratify.
    """
    task = get_task(cohort.task)
    for method in config.methods:
        if model_info(method).task != task.model_family:
            raise ValueError(
                f"method {method!r} is a {model_info(method).task} model but the cohort's task is {cohort.task}"
            )
        task.check_method(method, model_info(method))
        conflict = warm_start_conflict(method, config.training.warm_start, member_kwargs(config))
        if conflict is not None:
            raise ValueError(
                f"training.warm_start {config.training.warm_start}: {conflict}; give both the same width "
                "(model_overrides) or set training.warm_start: none"
            )
    task.check_loss(config.training.loss)
    if task.scores_by_group:  # a named group column the cohort lacks fails now, not at the end
        group_column(cohort, config.protocol.group_by)
    task.check_cohort(cohort.frame, config.protocol, classes=cohort.classes, source=str(cohort.table_path))


def partitions_of(config: RunConfig, cohort: Cohort, split_seed: int) -> pd.Series:
    """Partition id (classification) or train/val/test role (regression) per cohort row for one split seed."""
    return get_task(cohort.task).partitions(
        cohort.frame, config.protocol, stratify=cohort.stratify, seed=split_seed
    )


def plan_of(config: RunConfig, task: str) -> list[PlannedUnit]:
    """Every unit of the run and what it waits for (`Run.plan`; ``validate`` plans with the same call)."""
    protocol = config.protocol
    return plan_units(
        config.methods,
        split_seeds=protocol.split_seeds,
        versions=protocol.versions,
        folds=get_task(task).folds(protocol),
        warm_start=config.training.warm_start,
        model_kwargs=static_model_kwargs(config),
    )


def fit_fold(config: RunConfig, cohort: Cohort, roles: np.ndarray) -> TabularPreprocessor:
    """A fold's tabular preprocessing fitted on its training rows and checked on the others: every category of the
    validation and test rows was seen in training or has a rule (``validate`` fits with the same call)."""
    source = str(cohort.table_path)
    preprocessor = make_preprocessor(config, cohort).fit(cohort.frame[roles == "train"], source=source)
    check_known = getattr(preprocessor, "check_known", None)
    if check_known is not None:
        check_known(cohort.frame[roles != "train"], source=source)
    return preprocessor


def fold_roles_of(config: RunConfig, task: str, partitions: pd.Series, fold: int) -> pd.Series:
    return get_task(task).roles(partitions, config.protocol, fold)


class Run:
    """One run directory and the configuration it is run with."""

    def __init__(self, config: RunConfig, out_dir: str | Path, *, echo: Echo = print) -> None:
        self.config = config
        self.run = RunDirectory(out_dir)
        self.echo = echo
        self.cohort = load_manifest(config.cohort)
        self.task = self.cohort.task
        check_cohort(config, self.cohort)
        self.spec = image_spec(config)
        self.cache = ImageCache(self.run.cache)
        self.folds = get_task(self.task).folds(config.protocol)

    def plan(self) -> list[PlannedUnit]:
        return plan_of(self.config, self.task)

    # --- preparing the run directory -----------------------------------------------------------------------

    def prepare(self, planned: list[PlannedUnit], *, restart: bool = False) -> None:
        """Check and write what every unit shares: config, fingerprint, images, partitions, preprocessing."""
        resolved = self.config.to_dict()
        if restart:
            self.run.clear()
        self._check_plugins_outside()
        grown = self.run.check_config(resolved)
        self.run.check_plugins(self.config.plugin_files)
        if grown:
            self.echo(f"the run grows in place: {', '.join(grown)} changed; only new models will be trained")
        self.echo(f"preprocessing {len(self.cohort.frame)} images into {self.run.cache} ...")
        check_duplicate_images(self.cohort, self.cache)  # the same scan under two subjects would leak
        images = self.cohort.frame["image"]
        bar = tqdm(images, desc="preprocess images", unit="image", disable=not self.config.training.progress)
        for path in bar:  # a bar only for the long step: thousands of NIfTI files at 1 mm
            self.cache.ensure(path, self.spec)
        self.run.check_fingerprint(fingerprint_cohort(self.cohort.frame, self.cache.digest))
        methods = dict.fromkeys(p.unit.method for p in planned)
        self.run.check_models({m: effective_model_arguments(self.config, m) for m in methods})
        self.run.save_config(resolved, Path(self.config.cohort).read_text(), self.config.plugin_files)
        for split_seed in dict.fromkeys(p.unit.split_seed for p in planned):
            partitions = partitions_of(self.config, self.cohort, split_seed)
            table = pd.DataFrame(
                {"subject_id": self.cohort.frame["subject_id"], "partition": partitions.to_numpy()}
            )
            self.run.write_once(self.run.partitions(split_seed), table.to_csv(index=False), "partitions")
            for fold in range(self.folds):
                finished = [p.unit for p in planned if (p.unit.split_seed, p.unit.fold) == (split_seed, fold)]
                self._prepare_preprocessor(split_seed, fold, partitions, finished)

    def _check_plugins_outside(self) -> None:
        """A plugin inside the run directory is refused: a run directory is data, nothing in it is executed later."""
        root = self.run.root.resolve()
        for name, file in self.config.plugin_files.items():
            if Path(file["path"]).is_relative_to(root):
                raise RunDirectoryError(
                    f"plugins: {name!r} is the file {file['path']}, inside the run directory {self.run.root}; "
                    "report, predict and explain never execute code from a run directory, so keep plugins "
                    "outside --out"
                )

    def _prepare_preprocessor(
        self, split_seed: int, fold: int, partitions: pd.Series, units: list[Unit]
    ) -> None:
        """Fit and save a fold's preprocessing once; on a resume, load it as the fold's finished ``units`` name it."""
        path = self.run.preprocessor(split_seed, fold)
        roles = fold_roles_of(self.config, self.task, partitions, fold).to_numpy()
        frame = self.cohort.frame
        if not path.is_file():
            fit_fold(self.config, self.cohort, roles).save(path)
            return
        records = [r for r in map(self.run.read_record, units) if r is not None]
        preprocessor = TabularPreprocessor.load(self.run.verified_preprocessor(split_seed, fold, records))
        check_known = getattr(preprocessor, "check_known", None)
        if check_known is not None:  # every category of the other rows was seen in training (or has a rule)
            check_known(frame[roles != "train"], source=str(self.cohort.table_path))

    # --- running ---------------------------------------------------------------------------------------------

    def execute(
        self, executor: LocalExecutor | RayExecutor | None = None, *, restart: bool = False
    ) -> pd.DataFrame:
        executor = executor or make_executor(
            self.config.protocol.executor,
            address=self.config.protocol.address,
            num_cpus=self.config.protocol.num_cpus,
            num_gpus=self.config.protocol.num_gpus,
        )
        with self.run.lock():
            planned = self.plan()
            self.prepare(planned, restart=restart)
            start_experiment(self.config, self.run)  # MLflow: the store opened and the experiment made once
            todo = [p for p in planned if not self.run.is_finished(p.unit)]
            self.echo(
                f"{len(planned)} models in this run ({len(planned) - len(todo)} already finished); "
                f"{len(self.cohort.frame)} subjects, task {self.task}, executor {executor.name}"
            )
            jobs = [UnitJob(p, self.config.to_dict(), str(self.run.root)) for p in todo]
            progress = Progress(todo, self.echo)
            try:
                executor.run(jobs, progress.done)
            except KeyboardInterrupt:
                finished = sum(self.run.is_finished(p.unit) for p in planned)
                raise RunInterrupted(finished, len(planned), self.run.root) from None
            results = self.report()
            log_finished_run(self.config, self.run, results, get_task(self.task).reported_fold)
            return results

    def report(self) -> pd.DataFrame:
        return build_report(self.config, self.cohort, self.run)


class Progress:
    """Prints each finished model and an estimate of the time left.

    The estimate takes each remaining model at its method's mean time so far; until every method has finished
    a model it is a lower bound (the methods not yet timed count as nothing) and says so.
    """

    def __init__(self, todo: list[PlannedUnit], echo: Echo) -> None:
        self.remaining = {p.unit: p for p in todo}
        self.total = len(todo)
        self.methods = list(dict.fromkeys(p.unit.method for p in todo))
        self.echo = echo
        self.started = time.perf_counter()
        self.durations: dict[str, list[float]] = {}

    def done(self, outcome: UnitOutcome) -> None:
        self.remaining.pop(outcome.unit, None)
        self.durations.setdefault(outcome.unit.method, []).append(outcome.seconds)
        finished = self.total - len(self.remaining)
        line = f"[{finished}/{self.total}] {outcome.summary} ({outcome.seconds:.1f} s)"
        if self.remaining:
            line += f"; {self.left()}"
        self.echo(line)

    def left(self) -> str:
        """The time left in words: an estimate, or a lower bound until every method has been timed."""
        eta = self.estimate()
        if eta is not None:
            return f"about {_duration(eta)} left"
        timed = sum(m in self.durations for m in self.methods)
        bound = self.estimate(partial=True)
        return (
            f"at least {_duration(bound or 0.0)} left (a full estimate after the first model of each method: "
            f"{timed} of {len(self.methods)} so far)"
        )

    def estimate(self, *, partial: bool = False) -> float | None:
        """Seconds left: each remaining unit at its method's mean so far, scaled by the parallelism seen.

        None while a remaining unit's method has no finished model, unless ``partial``: then those units count 0.
        """
        methods = {u.method for u in self.remaining}
        if not partial and not methods <= set(self.durations):
            return None
        busy = sum(sum(v) for v in self.durations.values())
        wall = time.perf_counter() - self.started
        scale = wall / busy if busy > 0 else 1.0
        known = [u for u in self.remaining if u.method in self.durations]
        return scale * sum(float(np.mean(self.durations[u.method])) for u in known)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def run_protocol(
    config: RunConfig,
    out_dir: str | Path,
    *,
    echo: Echo = print,
    executor: LocalExecutor | RayExecutor | None = None,
    restart: bool = False,
) -> pd.DataFrame:
    """Run or resume ``config`` into ``out_dir``; returns the long-form results table."""
    return Run(config, out_dir, echo=echo).execute(executor, restart=restart)


def report_run(run_dir: str | Path, *, echo: Echo = print) -> pd.DataFrame:
    """Rebuild results, predictions, report and plots of a run directory from its finished units.

    Under the run's lock (one writer; what a killed writer left is swept), and only for the cohort the run was
    made with: its table's rows must match the run's fingerprint, as for a resume — the no-skill baseline is
    computed from those rows while the methods' scores come from the records.

    Raises:
        RunDirectoryError: another process writes the run, or the cohort's rows differ from the run's.
    """
    from hyperfusion.run.finished import load_run_config

    config = load_run_config(run_dir)
    run = Run(config, run_dir, echo=echo)
    with run.run.lock():
        run.run.check_fingerprint(fingerprint_cohort(run.cohort.frame), write=False)
        return run.report()


def unit_roles(config: RunConfig, cohort: Cohort, unit: Unit) -> pd.Series:
    """train/val/test per cohort row for one unit (recomputed; equals what the partitions file holds)."""
    return fold_roles_of(config, cohort.task, partitions_of(config, cohort, unit.split_seed), unit.fold)


__all__ = ["Run", "RunDirectoryError", "RunInterrupted", "check_cohort", "report_run", "run_protocol"]
