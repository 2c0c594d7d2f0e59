"""What an explanation reads from a finished run: its configuration, its cohort, the subjects, the attributes.

The subjects to explain are the run's test subjects of the chosen split seed (from its partitions file), a list of
the run cohort's subject ids, or a new table laid out like the run's (as ``predict`` reads it). The run's own
cohort is read in every case: counterfactual grids and attribution baselines come from its training rows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from hyperfusion.config import RunConfig
from hyperfusion.data import Cohort, TabularPreprocessor
from hyperfusion.run.finished import FinishedRun
from hyperfusion.run.store import RunDirectory
from hyperfusion.tasks import get_task

Kind = Literal["continuous", "binary", "categorical"]
MISSING = "(missing)"


@dataclass(frozen=True)
class Attribute:
    """One tabular attribute as the manifest names it; ``levels`` for binary/categorical ones (fold 0's)."""

    name: str
    kind: Kind
    levels: tuple[str, ...] = ()


@dataclass
class ExplainContext:
    """A finished run, the method and split seed whose ensemble is explained, and the subjects to explain.

    Attributes:
        run_dir: the run directory.
        config: its resolved configuration.
        method, split_seed: the ensemble explained (defaults: the reference method, the first split seed).
        run_cohort: the cohort the run was trained on.
        cohort: the subjects explained (rows of ``run_cohort``, or new subjects), images and tabular values.
        attributes: the tabular attributes, in the manifest's order (continuous, binary, categorical).
    """

    run_dir: Path
    config: RunConfig
    method: str
    split_seed: int
    run_cohort: Cohort
    cohort: Cohort
    attributes: list[Attribute]

    @property
    def run(self) -> RunDirectory:
        return RunDirectory(self.run_dir)

    @property
    def finished(self) -> FinishedRun:
        return FinishedRun(self.run_dir, self.config)

    @property
    def task(self) -> str:
        return self.cohort.task

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.cohort.classes)

    @property
    def folds(self) -> int:
        return get_task(self.task).folds(self.config.protocol)

    @property
    def subject_ids(self) -> list[str]:
        return self.cohort.frame["subject_id"].astype(str).tolist()

    @property
    def row_names(self) -> list[str]:
        """A unique name per row for file names: the subject id, ``<id>-2``, ``<id>-3``… for further scans."""
        seen: dict[str, int] = {}
        names = []
        for subject in self.subject_ids:
            seen[subject] = seen.get(subject, 0) + 1
            names.append(subject if seen[subject] == 1 else f"{subject}-{seen[subject]}")
        return names

    def preprocessor(self, fold: int) -> TabularPreprocessor:
        """The tabular preprocessing the run fitted on ``fold``'s training rows."""
        return TabularPreprocessor.load(self.run.preprocessor(self.split_seed, fold))

    def training_rows(self, fold: int) -> pd.DataFrame:
        """The run cohort's raw rows that ``fold``'s models were trained on (from the partitions file)."""
        roles = self.finished.roles(self.run_cohort, self.split_seed, fold)
        return self.run_cohort.frame[(roles == "train").to_numpy()]


def attributes_of(cohort: Cohort, preprocessor: TabularPreprocessor) -> list[Attribute]:
    """The cohort's tabular attributes with the levels the preprocessing knows (declared or learnt)."""
    state = preprocessor.to_dict()["state"]
    out = [Attribute(c, "continuous") for c in cohort.continuous]
    out += [Attribute(c, "binary", tuple(state["binary"][c])) for c in cohort.binary]
    out += [Attribute(c, "categorical", tuple(state["categories"][c])) for c in cohort.categorical]
    return out


def column_attributes(preprocessor: TabularPreprocessor) -> list[str]:
    """For each column of ``preprocessor.transform``'s output, the attribute it encodes.

    A continuous or binary attribute owns its own column and its missing flag; a categorical one its one-hot
    columns and its missing flag.
    """
    state = preprocessor.to_dict()["state"]
    owners = [*preprocessor.continuous, *preprocessor.binary]
    owners += [c for c in preprocessor.categorical for _ in state["categories"][c]]
    owners += list(state["indicators"])
    if len(owners) != len(preprocessor.feature_names_out):
        raise RuntimeError("the preprocessing's columns do not match its attributes")  # a format change
    return owners


def load_context(
    run_dir: str | Path,
    *,
    method: str | None = None,
    split_seed: int | None = None,
    subjects: Sequence[str] | None = None,
    manifest: str | Path | None = None,
) -> ExplainContext:
    """Read what an explanation needs from ``run_dir``.

    Args:
        run_dir: a directory written by ``hyperfusion run``.
        method, split_seed: the ensemble to explain (defaults: the run's reference method, its first split seed).
        subjects: subject ids of the run's cohort to explain.
        manifest: a table laid out like the run's training table (or a manifest YAML) of subjects to explain.
            Without ``subjects`` or ``manifest``: the run's test subjects of ``split_seed``.

    Raises:
        FileNotFoundError: not a run directory, or the run's cohort or partitions file is gone.
        ValueError: both ``subjects`` and ``manifest``, a method or split seed the run does not have, unknown
            subject ids, no subject to explain, a cohort whose rows differ from the run's.
    """
    run_dir = Path(run_dir)
    finished = FinishedRun(run_dir)
    config = finished.config
    method, split_seed = finished.choose(method, split_seed)
    if subjects is not None and manifest is not None:
        raise ValueError("give either subjects or a manifest of new subjects, not both")
    cohort_path = Path(config.cohort)
    run_cohort = finished.cohort  # the rows the models learnt from, checked against the run's fingerprint
    if manifest is not None:
        cohort = finished.new_subjects(manifest)
    else:
        ids = run_cohort.frame["subject_id"].astype(str)
        if subjects is None:
            roles = finished.roles(run_cohort, split_seed, 0)
            keep = (roles == "test").to_numpy()
        else:
            wanted = [str(s).strip() for s in subjects]
            unknown = [s for s in wanted if s not in set(ids)]
            if unknown:
                raise ValueError(
                    f"subject(s) {unknown[:5]} are not in the run's cohort {cohort_path} "
                    f"({len(ids)} subjects, e.g. {ids.iloc[:3].tolist()})"
                )
            keep = ids.isin(wanted).to_numpy()
        cohort = dataclasses.replace(run_cohort, frame=run_cohort.frame[keep].reset_index(drop=True))
    if cohort.frame.empty:
        raise ValueError("no subject to explain")
    preprocessor = TabularPreprocessor.load(finished.directory.preprocessor(split_seed, 0))
    return ExplainContext(
        run_dir=run_dir,
        config=config,
        method=method,
        split_seed=split_seed,
        run_cohort=run_cohort,
        cohort=cohort,
        attributes=attributes_of(run_cohort, preprocessor),
    )


def labelled(cohort: Cohort) -> np.ndarray:
    """Which rows carry a target (new subjects may come without one: class ``-1`` or NaN; survival's
    target is the (time, event) pair, so it is read as the task reads it)."""
    targets = np.asarray(cohort.targets, dtype=np.float64)
    return get_task(cohort.task).labelled(targets)
