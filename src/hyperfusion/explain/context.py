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
from hyperfusion.data import Cohort, TabularPreprocessor, load_manifest, read_partitions
from hyperfusion.run.inference import choose_ensemble, load_new_subjects
from hyperfusion.run.reporting import collect_records, load_run_config
from hyperfusion.run.store import RunDirectory, fingerprint_cohort
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
        roles = roles_of(self.run, self.config, self.run_cohort, self.split_seed, fold)
        return self.run_cohort.frame[(roles == "train").to_numpy()]


def roles_of(run: RunDirectory, config: RunConfig, cohort: Cohort, split_seed: int, fold: int) -> pd.Series:
    """``train``/``val``/``test`` per row of ``cohort``, as the partitions file of ``split_seed`` assigns them.

    Raises:
        FileNotFoundError: the run has no partitions file for this split seed.
        ValueError: a subject of the cohort that the partitions file does not list (another cohort), or a partitions
            file that is not the one the run's models were trained on.
    """
    records = collect_records(config, cohort, run, [split_seed]).values()
    path = run.verified_partitions(split_seed, list(records))  # the rows the models were trained on
    table = read_partitions(path)
    by_subject = dict(zip(table["subject_id"].astype(str), table["partition"]))
    ids = cohort.frame["subject_id"].astype(str)
    unknown = sorted(set(ids) - set(by_subject))
    if unknown:
        raise ValueError(
            f"{path} does not list {len(unknown)} subject(s) of the run's cohort (e.g. {unknown[:3]}); the "
            "cohort changed since the run"
        )
    return get_task(cohort.task).roles(ids.map(by_subject), config.protocol, fold)


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
    config = load_run_config(run_dir)
    method, split_seed = choose_ensemble(config, method, split_seed)
    if subjects is not None and manifest is not None:
        raise ValueError("give either subjects or a manifest of new subjects, not both")
    cohort_path = Path(config.cohort)
    if not cohort_path.is_file():
        raise FileNotFoundError(
            f"the run's cohort manifest {cohort_path} (from {RunDirectory(run_dir).config}) does not exist; "
            "explanations need the run's training rows"
        )
    run_cohort = load_manifest(cohort_path)
    run = RunDirectory(run_dir)
    run.check_fingerprint(
        fingerprint_cohort(run_cohort.frame), write=False
    )  # the rows the models learnt from
    if manifest is not None:
        cohort = load_new_subjects(run_dir, manifest)
    else:
        ids = run_cohort.frame["subject_id"].astype(str)
        if subjects is None:
            roles = roles_of(run, config, run_cohort, split_seed, 0)
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
    preprocessor = TabularPreprocessor.load(run.preprocessor(split_seed, 0))
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
    """Which rows carry a target (new subjects may come without one: class ``-1`` or NaN)."""
    targets = cohort.frame["target"].to_numpy(dtype=np.float64)
    return get_task(cohort.task).labelled(targets)
