"""Each survival model's Breslow baseline hazard: fitted on its training rows, sealed in its record, read back
checked; and an ensemble's survival probabilities from its members'.

A Cox model's log-risk r(x) ranks subjects; *when* they convert needs the baseline cumulative hazard H0 of the rows
the model learnt from: S(t | x) = exp(-H0(t) e^r(x)) (Breslow's estimator, `BreslowBaseline`). Each trained
survival unit fits H0 on its training rows' log-risks **after training, from the best epoch's weights** — the
state that scored its test set and that ``predict`` loads — and its record carries it (``baseline_hazard``: the
distinct training times and H0 just after each). Records are sealed, so the baseline is proven with them.

The ensemble rule: an ensemble's survival probability is the **mean of its members' S(t | x)**, each member with
its own baseline — a mixture of survival curves, itself one (in [0, 1], non-increasing in t). Its log-risk stays
the mean of the members' (eq. 6), which the C-index ranks; the two are not one Cox model (the ensemble's S is not
exp(-H0 e^mean r)), because each member's risks have their own scale and baseline.

A run made before baselines were recorded still reads and reports its C-indices; only what needs the
probabilities (``predict``, the Brier score, calibration) fails, naming the record (`MissingBaseline`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from hyperfusion.data.manifest import Cohort
from hyperfusion.evaluation.survival import BreslowBaseline
from hyperfusion.run.finished import FinishedRun
from hyperfusion.run.plan import Unit
from hyperfusion.tasks import get_task

#: the record field holding a survival unit's baseline hazard
BASELINE = "baseline_hazard"


class MissingBaseline(ValueError):
    """A survival unit's record has no baseline hazard: the run predates them."""


def baseline_field(risk: np.ndarray, targets: np.ndarray) -> dict[str, Any]:
    """The record field of a unit whose training rows have log-risks ``risk`` and targets ``[N, 2]`` (time, event)."""
    y = np.asarray(targets, dtype=np.float64)
    baseline = BreslowBaseline(np.asarray(risk, dtype=np.float64), y[:, 0], y[:, 1])
    return {
        "times": baseline.times.tolist(),
        "cumulative_hazard": baseline.cumulative_hazard.tolist(),
        "rows": int(y.shape[0]),
    }


def read_baseline(record: Mapping[str, Any], where: str) -> BreslowBaseline:
    """The baseline hazard a unit's record carries, checked.

    Raises:
        MissingBaseline: the record has none (a run made before baselines were recorded), naming ``where``.
        ValueError: a malformed field, naming ``where``.
    """
    field = record.get(BASELINE)
    if field is None:
        raise MissingBaseline(
            f"{where} has no {BASELINE}: the run was made before survival models recorded the baseline hazard "
            "of their training rows, so it gives risks but no survival probabilities; train it again "
            "(another --out, or --restart) to get them"
        )
    if not isinstance(field, Mapping) or not {"times", "cumulative_hazard"} <= set(field):
        raise ValueError(f"{where}: {BASELINE} must hold 'times' and 'cumulative_hazard'")
    return BreslowBaseline.from_arrays(field["times"], field["cumulative_hazard"], f"{where}: {BASELINE}")


def ensemble_survival(
    members: Sequence[tuple[BreslowBaseline, np.ndarray]], horizons: Sequence[float]
) -> np.ndarray:
    """``[N, H]``: the mean over the members (baseline, their log-risks of the same N subjects) of S(t | x)."""
    if not members:
        raise ValueError("an ensemble's survival needs at least one member")
    return np.mean([baseline.survival(risk, horizons) for baseline, risk in members], axis=0)


def ensemble_test_survival(
    finished: FinishedRun, cohort: Cohort, method: str, split_seed: int, horizons: Sequence[float]
) -> tuple[list[str], np.ndarray]:
    """The test subjects of one (method, split seed) and the survival of the run's ensemble at the horizons: the
    members the report's ensemble averages (`FinishedRun.members`), each with its record's baseline.

    Raises:
        MissingBaseline: a member's record without a baseline hazard.
        RuntimeError: members that scored different test subjects.
    """
    task = get_task(cohort.task)
    members, ids = [], None
    for version in finished.members(method, split_seed, None, task):
        for fold in range(task.folds(finished.config.protocol)):
            unit = Unit(method, split_seed, version, fold)
            record = finished.directory.read_record(unit)
            if record is None:
                raise FileNotFoundError(f"{finished.directory.record_path(unit)}: never trained to the end")
            test = record["test"]
            if ids is not None and list(test["subject_ids"]) != ids:
                raise RuntimeError(
                    f"the members of {method} split seed {split_seed} scored different subjects"
                )
            ids = list(test["subject_ids"])
            baseline = read_baseline(record, str(finished.directory.record_path(unit)))
            members.append((baseline, np.asarray(test["values"], dtype=np.float64)))
    return ids or [], ensemble_survival(members, horizons)


def survival_columns(survival: np.ndarray, horizons: Sequence[float]) -> dict[str, np.ndarray]:
    """Columns ``survival_<h>mo`` of a predictions table: each subject's probability of no event by month h."""
    return {f"survival_{h:g}mo": survival[:, k] for k, h in enumerate(horizons)}
