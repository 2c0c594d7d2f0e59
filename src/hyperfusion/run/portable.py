"""A finished run's models, loaded for use outside hyperfusion's commands: ``load_model`` and ``load_ensemble``.

Each unit's model is rebuilt from the build arguments sealed beside its checkpoint (the exact keyword arguments
``create_model`` got, ``n_tabular`` after preprocessing included), so it needs neither the run's configuration nor
the package defaults of the day; its checkpoint and preprocessing are verified against the unit's record
(`FinishedRun`). The network takes preprocessed tabular rows: apply ``preprocessor.transform(frame)`` first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import nn

from hyperfusion.data import Cohort, TabularPreprocessor
from hyperfusion.run.finished import FinishedRun
from hyperfusion.run.plan import Unit
from hyperfusion.tasks import get_task

__all__ = ["Ensemble", "LoadedModel", "load_ensemble", "load_model"]


@dataclass
class LoadedModel:
    """One trained unit: its network (in eval mode), the tabular preprocessing fitted on its training rows, and the
    classes its outputs stand for, in order (empty for regression)."""

    unit: Unit
    network: nn.Module
    preprocessor: TabularPreprocessor
    classes: tuple[str, ...]


def load_model(
    run_dir: str | Path, method: str, split_seed: int, fold: int, *, version: int = 0
) -> LoadedModel:
    """The model one unit of a finished run trained, with its preprocessing.

    Raises:
        ValueError: a method or split seed the run does not have (naming those it has); a checkpoint, build record
            or preprocessing file that is not the one the unit's record names.
        FileNotFoundError: a unit never trained to the end.
    """
    finished = FinishedRun(run_dir)
    method, split_seed = finished.choose(method, split_seed)
    return _load(finished, Unit(method, split_seed, version, fold))


def _load(finished: FinishedRun, unit: Unit) -> LoadedModel:
    record = finished.directory.read_record(unit)
    if record is None:
        finished.directory.verified_checkpoint(unit)  # raises, naming the missing record
    classes = tuple((record or {}).get("classes", ()))
    preprocessor = finished.preprocessor(unit)
    network = finished.model(unit, preprocessor, classes).eval()
    return LoadedModel(unit, network, preprocessor, classes)


@dataclass
class Ensemble:
    """The models a run combines into one method's prediction for one split seed (every fold of the chosen
    versions), combined as the run's report and ``predict`` combine them."""

    run_dir: Path
    method: str
    split_seed: int
    members: list[LoadedModel]

    def predict(self, cohort: Cohort, *, device: str = "cpu") -> np.ndarray:
        """The ensemble's probabilities ``[N, C]`` (regression: predictions ``[N]``) for every row of ``cohort``."""
        from hyperfusion.run.inference import score_subjects

        return score_subjects(
            self.run_dir, cohort, method=self.method, split_seed=self.split_seed, device=device
        )


def load_ensemble(run_dir: str | Path, method: str, split_seed: int | None = None) -> Ensemble:
    """Every member model of one method's ensemble (default split seed: the run's first).

    Raises:
        ValueError, FileNotFoundError: as :func:`load_model`, for any member.
    """
    finished = FinishedRun(run_dir)
    method, split_seed = finished.choose(method, split_seed)
    task = get_task(finished.cohort.task)
    versions = finished.members(method, split_seed, None, task)
    folds = range(task.folds(finished.config.protocol))
    members = [_load(finished, Unit(method, split_seed, v, f)) for v in versions for f in folds]
    return Ensemble(Path(run_dir), method, split_seed, members)
