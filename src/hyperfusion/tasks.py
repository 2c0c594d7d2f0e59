"""What a learning task decides, in one place: classification and regression as two `Task` objects.

A task says how a cohort is partitioned and which rows train, validate and test each model; how many fold models
one version has; what a model must output and how its views are averaged; its training and validation loss; the
metric that picks the best epoch (its name and direction); the metrics of the results table; which models an
ensemble combines and how; and which rows a no-skill baseline learns from. The protocol, the engine, the report and
`predict` ask the task instead of testing its name, so a third task (survival) is one more class here, not one more
branch in each of them.

    task = get_task(cohort.task)
    partitions = task.partitions(cohort.frame, config.protocol, stratify=cohort.stratify, seed=0)
    roles = task.roles(partitions, config.protocol, fold=0)          # "train" | "val" | "test" per row
    if task.selection.better(new_ba, best_ba): ...

Classification follows the paper's AD protocol (§4.3.4): n partitions, the last one the test set, the others
rotating as the validation partition of ``folds`` fold models whose test predictions are combined per subject
(eqs. 7-8). Regression follows the brain-age protocol (§4.2.2): one train/val/test split per seed, one model per
version, the top-k versions by validation MAE averaged (eq. 6).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from hyperfusion.data.splits import (
    check_stratifiable,
    fold_roles,
    make_partitions,
    make_split,
    split_partitions,
    time_strata,
)
from hyperfusion.evaluation.calibration import calibration_metrics
from hyperfusion.evaluation.ensemble import combine_folds, top_k_versions
from hyperfusion.evaluation.metrics import (
    balanced_accuracy,
    classification_metrics,
    mae,
    regression_metrics,
)
from hyperfusion.evaluation.noskill import noskill_predictions, noskill_probabilities
from hyperfusion.evaluation.survival import harrell_c
from hyperfusion.nn.cox import cox_loss

if TYPE_CHECKING:
    from hyperfusion.config import ProtocolSettings
    from hyperfusion.models.registry import ModelInfo

TaskName = Literal["classification", "regression", "survival"]
#: the fold label of an ensemble's rows in the results table
ENSEMBLE = "ensemble"


@dataclass(frozen=True)
class Metric:
    """A metric with its name and direction: ``compute(values, targets) -> float``."""

    name: str
    higher_is_better: bool
    compute: Callable[[np.ndarray, np.ndarray], float]

    def better(self, value: float, best: float) -> bool:
        """Whether ``value`` beats ``best`` (any number beats a NaN best; a NaN value beats nothing)."""
        if math.isnan(best):
            return not math.isnan(value)
        return value > best if self.higher_is_better else value < best


class Task(ABC):
    """The decisions of one task (see the module docstring); stateless, one instance per task."""

    name: ClassVar[str]
    #: the validation metric that picks a model's best epoch
    selection: ClassVar[Metric]
    #: the metrics on which every method is compared with the no-skill baseline
    skill_metrics: ClassVar[tuple[str, ...]]
    #: the fold label of the rows the main results table scores
    reported_fold: ClassVar[str]
    #: an ensemble combines one version's fold models (else: one split seed's versions)
    ensembles_folds: ClassVar[bool]
    #: targets are class indices and outputs class probabilities: class weights and oversampling, the report's
    #: calibration, reliability and entropy sections
    has_classes: ClassVar[bool]
    #: the metrics a study summarises per cell
    summary_metrics: ClassVar[tuple[str, ...]]
    #: the preset a bare manifest of this task is validated with
    default_preset: ClassVar[str]
    #: what the partitions file's labels are called (the preflight's table header)
    partition_label: ClassVar[str]
    #: the model learns the target standardised by the training rows' mean and std
    standardises_target: ClassVar[bool]
    #: the results table has the metrics by group (``protocol.group_by``, e.g. MAE by sex)
    scores_by_group: ClassVar[bool]
    #: the task of the registered models this task trains (`hyperfusion.models.registry.ModelInfo.task`)
    model_family: ClassVar[str]
    #: the target is a time and an event (the manifest's ``target.time``/``target.event``/``target.from_visits``)
    time_to_event: ClassVar[bool] = False

    def check_method(self, method: str, info: ModelInfo) -> None:
        """Raise ValueError naming ``method`` when this task cannot train it (every model of its family can)."""
        return None

    # --- the protocol ------------------------------------------------------------------------------------
    @abstractmethod
    def folds(self, protocol: ProtocolSettings) -> int:
        """Fold models per (method, split seed, version)."""

    @abstractmethod
    def partitions(
        self, frame: pd.DataFrame, protocol: ProtocolSettings, *, stratify: Sequence[str], seed: int
    ) -> pd.Series:
        """The partition label of every row for one split seed (what the run's partitions file stores)."""

    @abstractmethod
    def roles(self, partitions: pd.Series, protocol: ProtocolSettings, fold: int) -> pd.Series:
        """``"train"``, ``"val"`` or ``"test"`` per row for fold model ``fold``."""

    @abstractmethod
    def describe_split(self, protocol: ProtocolSettings) -> str:
        """One phrase on how the partitions are used, for the preflight."""

    @abstractmethod
    def test_partition(self, protocol: ProtocolSettings) -> str:
        """The partition label of the test rows."""

    @abstractmethod
    def no_skill_rows(self, partitions: pd.Series, protocol: ProtocolSettings) -> pd.Series:
        """Which rows a no-skill baseline learns from (boolean per row), the same rows its methods learn from."""

    @abstractmethod
    def test_train_ratio(self, protocol: ProtocolSettings) -> float:
        """n_test / n_train of one model, for the corrected resampled t-test (Nadeau & Bengio 2003)."""

    @abstractmethod
    def check_loss(self, loss: str) -> None:
        """Raise ValueError naming ``training.loss`` when the loss is not one of this task's."""

    @abstractmethod
    def check_cohort(
        self, frame: pd.DataFrame, protocol: ProtocolSettings, *, classes: Sequence[str], source: str
    ):
        """Raise ValueError when the cohort cannot be run under ``protocol`` (e.g. a class too small to stratify)."""

    # --- the engine --------------------------------------------------------------------------------------
    @abstractmethod
    def output(self, out: torch.Tensor, batch: int) -> torch.Tensor:
        """A model's raw output checked (and squeezed) to this task's shape; ValueError naming the shape."""

    @abstractmethod
    def view_values(self, out: torch.Tensor) -> torch.Tensor:
        """What one view contributes to the view average: probabilities or predictions."""

    @abstractmethod
    def loss(
        self,
        output: torch.Tensor,
        target: torch.Tensor,
        *,
        class_weights: torch.Tensor | None,
        variance: float,
    ) -> torch.Tensor:
        """The training loss of raw outputs (``variance``: the target scale's square, 1 without one)."""

    @abstractmethod
    def validation_loss(
        self,
        values: torch.Tensor,
        target: torch.Tensor,
        *,
        class_weights: torch.Tensor | None,
        variance: float,
    ) -> float:
        """The loss of view-averaged values, on the training loss's scale."""

    @abstractmethod
    def cohort_targets(self, frame: pd.DataFrame) -> np.ndarray:
        """A cohort frame's targets as this task's arrays take them (what ``Cohort.targets`` returns)."""

    @abstractmethod
    def labelled(self, targets: np.ndarray) -> np.ndarray:
        """Which rows carry a target (float targets; new subjects may come without one)."""

    @abstractmethod
    def target_tensor(self, target: torch.Tensor) -> torch.Tensor:
        """Targets in the dtype the metrics and losses take."""

    # --- results -----------------------------------------------------------------------------------------
    @abstractmethod
    def metrics(
        self,
        values: np.ndarray,
        targets: np.ndarray,
        *,
        classes: Sequence[str] = (),
        groups: Sequence[str] | None = None,
    ) -> dict[str, float]:
        """Every metric of the results table."""

    @abstractmethod
    def no_skill_values(self, train_targets: np.ndarray, n_test: int, classes: Sequence[str]) -> np.ndarray:
        """What a model that knows nothing predicts for ``n_test`` subjects, learnt from ``train_targets``."""

    @abstractmethod
    def prediction_columns(
        self, values: np.ndarray, targets: np.ndarray | None, classes: Sequence[str]
    ) -> dict[str, Sequence]:
        """The per-subject columns of a predictions table: ``predicted`` (with the class probabilities before it),
        and ``target`` unless ``targets`` is None (new subjects)."""

    @abstractmethod
    def members(self, validation_metrics: Sequence[float], top_k: int) -> list[int]:
        """Positions of the models an ensemble combines, given each model's best validation metric."""

    @abstractmethod
    def combine(self, stack: np.ndarray, rule: str) -> np.ndarray:
        """The ensemble of stacked member outputs ``[M, N, ...]`` -> ``[N, ...]``."""


class Classification(Task):
    name = "classification"
    selection = Metric(
        "BA",
        True,
        lambda values, targets: balanced_accuracy(values.astype(np.float64), targets.astype(np.int64)),
    )
    skill_metrics = ("BA", "AUC", "F1", "PRC")
    reported_fold = ENSEMBLE
    ensembles_folds = True
    model_family = "classification"
    scores_by_group = False
    has_classes = True
    summary_metrics = ("BA", "AUC")
    default_preset = "ad-paper"
    partition_label = "partition"
    standardises_target = False

    def folds(self, protocol: ProtocolSettings) -> int:
        return protocol.folds

    def partitions(
        self, frame: pd.DataFrame, protocol: ProtocolSettings, *, stratify: Sequence[str], seed: int
    ) -> pd.Series:
        return make_partitions(
            frame, protocol.n_partitions, stratify=list(stratify), age_bins=protocol.age_bins, group="subject_id",
            seed=seed,
        )  # fmt: skip

    def roles(self, partitions: pd.Series, protocol: ProtocolSettings, fold: int) -> pd.Series:
        return fold_roles(partitions.astype(int), test=protocol.n_partitions - 1, val=fold)

    def describe_split(self, protocol: ProtocolSettings) -> str:
        test = protocol.n_partitions - 1
        return (
            f"subjects per partition; partition {test} is the test set, "
            f"partitions 0–{protocol.folds - 1} take turns as validation ({protocol.folds} folds)"
        )

    def test_partition(self, protocol: ProtocolSettings) -> str:
        return str(protocol.n_partitions - 1)

    def no_skill_rows(self, partitions: pd.Series, protocol: ProtocolSettings) -> pd.Series:
        return partitions.astype(int) != protocol.n_partitions - 1  # every non-test row

    def test_train_ratio(self, protocol: ProtocolSettings) -> float:
        return 1.0 / max(protocol.n_partitions - 2, 1)  # one test partition; n - 2 train each fold model

    def check_loss(self, loss: str) -> None:
        if loss == "mse":
            raise ValueError("training.loss: 'mse' is for regression; this cohort is a classification task")

    def check_cohort(
        self, frame: pd.DataFrame, protocol: ProtocolSettings, *, classes: Sequence[str], source: str
    ):
        check_stratifiable(frame, protocol.n_partitions, classes=classes, source=source)

    def output(self, out: torch.Tensor, batch: int) -> torch.Tensor:
        if out.dim() != 2 or out.shape[0] != batch or out.shape[1] < 2:
            raise ValueError(
                f"a classification model must return logits [B={batch}, C>=2], got {tuple(out.shape)}"
            )
        return out

    def view_values(self, out: torch.Tensor) -> torch.Tensor:
        return out.softmax(dim=1)

    def loss(
        self,
        output: torch.Tensor,
        target: torch.Tensor,
        *,
        class_weights: torch.Tensor | None,
        variance: float,
    ) -> torch.Tensor:
        return F.cross_entropy(output.float(), target.long(), weight=class_weights)

    def validation_loss(
        self,
        values: torch.Tensor,
        target: torch.Tensor,
        *,
        class_weights: torch.Tensor | None,
        variance: float,
    ) -> float:
        weight = None if class_weights is None else class_weights.cpu()
        return float(F.nll_loss(values.clamp_min(1e-12).log(), target.long(), weight=weight))

    def cohort_targets(self, frame: pd.DataFrame) -> np.ndarray:
        return frame["target"].to_numpy(dtype=np.int64)

    def labelled(self, targets: np.ndarray) -> np.ndarray:
        return targets >= 0  # an unlabelled subject's class is -1

    def target_tensor(self, target: torch.Tensor) -> torch.Tensor:
        return target.long()

    def metrics(
        self,
        values: np.ndarray,
        targets: np.ndarray,
        *,
        classes: Sequence[str] = (),
        groups: Sequence[str] | None = None,
    ) -> dict[str, float]:
        y = np.asarray(targets).astype(np.int64)
        return classification_metrics(values, y, classes) | calibration_metrics(values, y)

    def no_skill_values(self, train_targets: np.ndarray, n_test: int, classes: Sequence[str]) -> np.ndarray:
        return noskill_probabilities(np.asarray(train_targets).astype(np.int64), n_test, len(classes))

    def prediction_columns(
        self, values: np.ndarray, targets: np.ndarray | None, classes: Sequence[str]
    ) -> dict[str, Sequence]:
        columns: dict[str, Sequence] = {f"p_{name}": values[:, i] for i, name in enumerate(classes)}
        columns["predicted"] = [classes[i] for i in values.argmax(1)]
        if targets is not None:
            columns["target"] = [classes[int(t)] for t in targets]
        return columns

    def members(self, validation_metrics: Sequence[float], top_k: int) -> list[int]:
        return list(range(len(validation_metrics)))  # every fold model of a version

    def combine(self, stack: np.ndarray, rule: str) -> np.ndarray:
        return combine_folds(stack, rule)


def _one_per_subject(out: torch.Tensor, batch: int, what: str) -> torch.Tensor:
    """``[B]`` (or ``[B, 1]``, squeezed) outputs, else a ValueError: ``what`` and the shapes."""
    if out.dim() == 2 and out.shape[1] == 1:
        out = out[:, 0]
    if out.shape != (batch,):
        raise ValueError(f"{what} [B={batch}], got {tuple(out.shape)}")
    return out


class Regression(Task):
    name = "regression"
    selection = Metric("MAE", False, mae)
    skill_metrics = ("MAE",)
    reported_fold = "0"
    ensembles_folds = False
    model_family = "regression"
    scores_by_group = True
    has_classes = False
    summary_metrics = ("MAE",)
    default_preset = "brain-age-paper"
    partition_label = "role"
    standardises_target = True

    def folds(self, protocol: ProtocolSettings) -> int:
        return 1

    def partitions(
        self, frame: pd.DataFrame, protocol: ProtocolSettings, *, stratify: Sequence[str], seed: int
    ) -> pd.Series:
        train = 1 - protocol.val_fraction - protocol.test_fraction
        return make_split(
            frame, (train, protocol.val_fraction, protocol.test_fraction), stratify=list(stratify),
            age_bins=protocol.age_bins, group="subject_id", seed=seed,
        )  # fmt: skip

    def roles(self, partitions: pd.Series, protocol: ProtocolSettings, fold: int) -> pd.Series:
        return partitions.astype(str).rename("role")  # the split's own roles, named as fold_roles names them

    def describe_split(self, protocol: ProtocolSettings) -> str:
        train = round(100 * (1 - protocol.val_fraction - protocol.test_fraction))
        return f"subjects per role ({train}/{100 * protocol.val_fraction:.0f}/{100 * protocol.test_fraction:.0f})"

    def test_partition(self, protocol: ProtocolSettings) -> str:
        return "test"

    def no_skill_rows(self, partitions: pd.Series, protocol: ProtocolSettings) -> pd.Series:
        return partitions.astype(str) == "train"

    def test_train_ratio(self, protocol: ProtocolSettings) -> float:
        return protocol.test_fraction / (1.0 - protocol.val_fraction - protocol.test_fraction)

    def check_loss(self, loss: str) -> None:
        if loss != "mse":
            raise ValueError(f"training.loss: {loss!r} is for classification; use 'mse' for regression")

    def check_cohort(
        self, frame: pd.DataFrame, protocol: ProtocolSettings, *, classes: Sequence[str], source: str
    ):
        return None  # a random split of any size; its group column is checked by the protocol

    def output(self, out: torch.Tensor, batch: int) -> torch.Tensor:
        return _one_per_subject(out, batch, "a regression model must return predictions")

    def view_values(self, out: torch.Tensor) -> torch.Tensor:
        return out

    def loss(
        self,
        output: torch.Tensor,
        target: torch.Tensor,
        *,
        class_weights: torch.Tensor | None,
        variance: float,
    ) -> torch.Tensor:
        return F.mse_loss(output.float(), target.float()) / variance

    def validation_loss(
        self,
        values: torch.Tensor,
        target: torch.Tensor,
        *,
        class_weights: torch.Tensor | None,
        variance: float,
    ) -> float:
        return float(F.mse_loss(values, target.float())) / variance

    def cohort_targets(self, frame: pd.DataFrame) -> np.ndarray:
        return frame["target"].to_numpy(dtype=np.float32)

    def labelled(self, targets: np.ndarray) -> np.ndarray:
        return np.isfinite(targets)

    def target_tensor(self, target: torch.Tensor) -> torch.Tensor:
        return target.float()

    def metrics(
        self,
        values: np.ndarray,
        targets: np.ndarray,
        *,
        classes: Sequence[str] = (),
        groups: Sequence[str] | None = None,
    ) -> dict[str, float]:
        return regression_metrics(values, targets, groups)

    def no_skill_values(self, train_targets: np.ndarray, n_test: int, classes: Sequence[str]) -> np.ndarray:
        return noskill_predictions(train_targets, n_test)

    def prediction_columns(
        self, values: np.ndarray, targets: np.ndarray | None, classes: Sequence[str]
    ) -> dict[str, Sequence]:
        return {"predicted": values} if targets is None else {"predicted": values, "target": targets}

    def members(self, validation_metrics: Sequence[float], top_k: int) -> list[int]:
        return top_k_versions(validation_metrics, top_k)  # eq. 6: the top-k versions by validation MAE

    def combine(self, stack: np.ndarray, rule: str) -> np.ndarray:
        return stack.mean(axis=0)


#: the minimum number of events a survival cohort needs: fewer leave a role without a ranked pair
MIN_EVENTS = 6
#: the partitioning's column of each survival row's time bin within its event status
TIME_STRATUM = "event time bin"


def _harrell(values: np.ndarray, targets: np.ndarray) -> float:
    return harrell_c(values, targets[:, 0], targets[:, 1])


class Survival(Regression):
    """Time to an event (conversion): one log-risk per subject, the Cox partial likelihood, Harrell's C.

    The protocol is regression's (one train/val/test split per seed, stratified by the event and by the time bin
    within each event status — tertiles where the cohort is large enough; the top-k versions by validation C
    averaged, so an ensemble averages log-risks). Targets are float pairs
    ``[N, 2]``: months to the event or to censoring, and the event (1 seen, 0 censored). The no-skill model
    gives everyone the same risk (C = 0.5). Uno's C, the time-dependent AUC and the Brier score need the
    training rows' censoring and baseline hazard, so they are computed where those rows are at hand
    (`hyperfusion.evaluation.survival`), not from the scored rows alone.
    """

    name = "survival"
    selection = Metric("C", True, _harrell)
    model_family = "classification"  # the AD family built with one output: the log-risk
    time_to_event = True
    skill_metrics = ("C",)
    scores_by_group = False
    summary_metrics = ("C",)
    standardises_target = False

    def partitions(
        self, frame: pd.DataFrame, protocol: ProtocolSettings, *, stratify: Sequence[str], seed: int
    ) -> pd.Series:
        """Regression's split, stratified by the event, then the time bin within it (`time_strata`), then the rest."""
        train = 1 - protocol.val_fraction - protocol.test_fraction
        fractions = (train, protocol.val_fraction, protocol.test_fraction)
        n = split_partitions(fractions)
        strata = frame.assign(**{TIME_STRATUM: time_strata(frame["target"], frame["event"], n)})
        first, *rest = stratify or ["event"]
        return make_split(
            strata, fractions, stratify=[first, TIME_STRATUM, *rest], age_bins=protocol.age_bins,
            group="subject_id", seed=seed,
        )  # fmt: skip

    def check_method(self, method: str, info: ModelInfo) -> None:
        if (
            info.fusion == "late"
        ):  # its members' class probabilities are mixed; one risk has no softmax to mix
            raise ValueError(
                f"method {method!r}: late fusion of class probabilities does not apply to survival"
            )
        if info.fit != "gradient":  # the crop reader fits a classifier in closed form
            raise ValueError(
                f"method {method!r} fits a classifier in closed form; survival trains by gradient"
            )

    def check_loss(self, loss: str) -> None:
        if loss != "cox":
            raise ValueError(f"training.loss: {loss!r} is not a survival loss; use 'cox' for survival")

    def check_cohort(
        self, frame: pd.DataFrame, protocol: ProtocolSettings, *, classes: Sequence[str], source: str
    ):
        events = int(np.nansum(frame["event"].to_numpy(dtype=np.float64)))
        if events < MIN_EVENTS:
            raise ValueError(
                f"{source}: {events} event(s) among {len(frame)} subjects; a survival study needs at least "
                f"{MIN_EVENTS} so that every role has a pair to rank"
            )

    def output(self, out: torch.Tensor, batch: int) -> torch.Tensor:
        return _one_per_subject(out, batch, "a survival model must return one log-risk per subject")

    def loss(
        self,
        output: torch.Tensor,
        target: torch.Tensor,
        *,
        class_weights: torch.Tensor | None,
        variance: float,
    ) -> torch.Tensor:
        return cox_loss(output.float(), target[:, 0], target[:, 1])  # the risk set within the batch

    def validation_loss(
        self,
        values: torch.Tensor,
        target: torch.Tensor,
        *,
        class_weights: torch.Tensor | None,
        variance: float,
    ) -> float:
        return float(cox_loss(values.float(), target[:, 0].float(), target[:, 1].float()))

    def cohort_targets(self, frame: pd.DataFrame) -> np.ndarray:
        return frame[["target", "event"]].to_numpy(dtype=np.float32)

    def labelled(self, targets: np.ndarray) -> np.ndarray:
        return np.isfinite(targets).all(axis=1)

    def metrics(
        self,
        values: np.ndarray,
        targets: np.ndarray,
        *,
        classes: Sequence[str] = (),
        groups: Sequence[str] | None = None,
    ) -> dict[str, float]:
        return {"C": _harrell(np.asarray(values, dtype=np.float64), np.asarray(targets, dtype=np.float64))}

    def no_skill_values(self, train_targets: np.ndarray, n_test: int, classes: Sequence[str]) -> np.ndarray:
        return np.zeros(n_test)  # one risk for everyone: every pair ties

    def prediction_columns(
        self, values: np.ndarray, targets: np.ndarray | None, classes: Sequence[str]
    ) -> dict[str, Sequence]:
        columns: dict[str, Sequence] = {"predicted": values}  # the log-risk: higher = earlier event
        if targets is not None:
            columns |= {"time": targets[:, 0], "event": targets[:, 1].astype(np.int64)}
        return columns

    def members(self, validation_metrics: Sequence[float], top_k: int) -> list[int]:
        c = np.asarray(validation_metrics, dtype=np.float64)
        return top_k_versions(-np.nan_to_num(c, nan=0.0), top_k)  # highest C first; no C ranks last


TASKS: dict[str, Task] = {task.name: task for task in (Classification(), Regression(), Survival())}


def get_task(name: str | Task) -> Task:
    """The task called ``name`` (a `Task` passes through).

    Raises:
        ValueError: an unknown task, naming the known ones.
    """
    if isinstance(name, Task):
        return name
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; known: {', '.join(TASKS)}") from None
