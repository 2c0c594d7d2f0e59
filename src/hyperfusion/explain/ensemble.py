"""A run's ensemble held in memory, to score images and tabular vectors the data pipeline never made.

``predict`` (``score_frames``) scores edited tables; image attribution and gradients need the fold models
themselves. This loads the same members (the versions ``predict`` uses, every fold) with their saved preprocessing,
and combines their outputs in the same order: views averaged per model, fold models combined by the run's rule
(inverse entropy or mean), versions averaged.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from hyperfusion.data import ImageCache, TabularPreprocessor
from hyperfusion.explain.context import ExplainContext
from hyperfusion.run.finished import check_device
from hyperfusion.run.plan import Unit
from hyperfusion.run.setup import image_spec
from hyperfusion.tasks import get_task


@dataclass
class Member:
    """One fold model of the ensemble, with the preprocessing fitted on its training rows."""

    unit: Unit
    model: nn.Module
    preprocessor: TabularPreprocessor


class Ensemble:
    """The members of one (method, split seed) ensemble, in eval mode on ``device``.

    Args:
        members: the fold models, grouped by version (the order ``predict`` combines them in).
        task: ``"classification"`` or ``"regression"``.
        rule: the run's fold-combination rule (classification).
        device: where the models run.
    """

    def __init__(self, members: list[Member], *, task: str, rule: str, device: str = "cpu") -> None:
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = members
        self.task = task
        self.kind = get_task(task)
        self.rule = rule
        self.device = torch.device(device)
        for member in members:
            member.model.eval().to(self.device)
        self.versions = list(dict.fromkeys(m.unit.version for m in members))

    @classmethod
    def load(cls, context: ExplainContext, *, device: str = "cpu") -> Ensemble:
        """Rebuild every member of the context's ensemble from its checkpoint.

        Raises:
            FileNotFoundError: a member that was never trained to the end.
            CheckpointError: a checkpoint that is not this run's model.
        """
        device = check_device(device)
        finished = context.finished
        versions = finished.members(context.method, context.split_seed, None, get_task(context.task))
        members = []
        for version in versions:
            for fold in range(context.folds):
                unit = Unit(context.method, context.split_seed, version, fold)
                preprocessor = finished.preprocessor(unit)
                model = finished.model(unit, preprocessor, context.classes)
                members.append(Member(unit, model, preprocessor))
        return cls(members, task=context.task, rule=context.config.protocol.ensemble, device=device)

    # ------------------------------------------------------------------ inputs
    def tabular(self, frame: pd.DataFrame) -> list[Tensor]:
        """Each member's preprocessed tabular matrix of ``frame``'s rows (float32 ``[N, F_m]``)."""
        return [torch.from_numpy(m.preprocessor.transform(frame)) for m in self.members]

    # ------------------------------------------------------------------ scoring
    def member_values(self, member: Member, views: Tensor, tabular: Tensor, *, grad: bool = False) -> Tensor:
        """One member's per-view output: probabilities ``[B, S, C]`` (classification) or values ``[B, S]``.

        ``views`` is ``[B, S, 1, D, H, W]``; ``tabular`` ``[B, F]`` (this member's preprocessing).
        """
        with torch.set_grad_enabled(grad):
            outputs = []
            for s in range(views.shape[1]):
                out = member.model(views[:, s].to(self.device), tabular.to(self.device))
                outputs.append(self.kind.view_values(self.kind.output(out, views.shape[0]).float()))
            return torch.stack(outputs, dim=1)

    def combine(self, per_member: np.ndarray) -> np.ndarray:
        """Members' per-view values ``[M, B, S(, C)]`` → the ensemble's ``[B(, C)]``, as ``predict`` combines them."""
        per_model = per_member.mean(axis=2)
        by_version = []
        for version in self.versions:
            stack = np.stack([per_model[i] for i, m in enumerate(self.members) if m.unit.version == version])
            by_version.append(self.kind.combine(stack, self.rule))
        return np.mean(by_version, axis=0)

    def score(self, views: Tensor, tabular: list[Tensor], batch_size: int = 16) -> np.ndarray:
        """The ensemble's output for images ``[B, S, 1, D, H, W]`` and each member's tabular ``[B, F_m]``."""
        return self.combine(self.all_member_values(views, tabular, batch_size))

    def all_member_values(self, views: Tensor, tabular: list[Tensor], batch_size: int = 16) -> np.ndarray:
        """Every member's per-view output, stacked: ``[M, B, S(, C)]`` (no gradients)."""
        out = []
        for member, table in zip(self.members, tabular):
            parts = [
                self.member_values(member, views[i : i + batch_size], table[i : i + batch_size]).cpu()
                for i in range(0, views.shape[0], batch_size)
            ]
            out.append(torch.cat(parts).numpy().astype(np.float64))
        return np.stack(out)


def load_views(context: ExplainContext, rows: np.ndarray | None = None) -> Tensor:
    """The preprocessed images of the context's subjects as model views ``[N, S, 1, D, H, W]`` (float32).

    Hippocampus crops give two views (left, mirrored right), a whole-brain box one.
    """
    spec = image_spec(context.config)
    cache = ImageCache(context.run.cache)
    frame = context.cohort.frame if rows is None else context.cohort.frame.iloc[rows]
    arrays = [np.asarray(cache.get(path, spec), dtype=np.float32) for path in frame["image"]]
    stacked = np.stack(arrays)
    if spec.mode != "hippocampus":
        stacked = stacked[:, None]
    return torch.from_numpy(stacked[:, :, None].copy())


def mean_view(context: ExplainContext, fold: int = 0) -> Tensor:
    """The mean preprocessed image ``[S, 1, D, H, W]`` of the run cohort's training rows of ``fold``: the
    average anatomy the data layer shows the models."""
    spec = image_spec(context.config)
    cache = ImageCache(context.run.cache)
    total = None
    rows = context.training_rows(fold)
    for path in rows["image"]:
        array = np.asarray(cache.get(path, spec), dtype=np.float64)
        total = array if total is None else total + array
    assert total is not None  # a fold always has training rows
    mean = (total / len(rows)).astype(np.float32)
    if spec.mode != "hippocampus":
        mean = mean[None]
    return torch.from_numpy(mean[:, None].copy())


def batches(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))
