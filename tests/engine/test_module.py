"""Tests for hyperfusion.engine.module: the Lightning module takes its loss, selection metric and output checks
from the task (against per-sample references), class weights equal scikit-learn's, the view average is a plain
mean of per-view scores, and the best checkpoint is written atomically and loads back."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.utils.class_weight import compute_class_weight
from torch import nn

from hyperfusion.engine.module import (
    TrainingModule,
    balanced_class_weights,
    has_batchnorm,
    save_state_dict,
    score_batch,
    to_memory_format,
)


class Scorer(nn.Module):
    """Logits (or a value) from the image's mean and the record: linear, so a per-view reference is easy."""

    def __init__(self, outputs: int) -> None:
        super().__init__()
        self.linear = nn.Linear(2, outputs)

    def forward(self, image: torch.Tensor, tabular: torch.Tensor) -> torch.Tensor:
        features = torch.stack([image.flatten(1).mean(dim=1), tabular[:, 0]], dim=1)
        return self.linear(features)


def _module(task: str, tmp_path: Path, outputs: int, weights=None) -> TrainingModule:
    torch.manual_seed(0)
    return TrainingModule(
        Scorer(outputs), task=task, lr=1e-3, weight_decay=0.0, checkpoint_path=tmp_path / "best.pt",
        class_weights=weights,
    )  # fmt: skip


def test_balanced_class_weights_equal_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    for _ in range(10):
        y = rng.integers(0, 4, 50)
        y[:4] = np.arange(4)  # every class present
        want = compute_class_weight("balanced", classes=np.arange(4), y=y)
        np.testing.assert_allclose(balanced_class_weights(y, 4), want, rtol=1e-12)


def test_an_unknown_task_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown task 'ranking'"):
        _module("ranking", tmp_path, 2)


def test_selection_metric_and_direction_come_from_the_task(tmp_path: Path) -> None:
    classifier, regressor = _module("classification", tmp_path, 3), _module("regression", tmp_path, 1)
    assert classifier.metric_name == "BA" and regressor.metric_name == "MAE"
    assert classifier._is_better(0.4)  # anything beats no best yet
    classifier.best_metric = 0.5
    assert (
        classifier._is_better(0.6) and not classifier._is_better(0.5) and not classifier._is_better(math.nan)
    )
    regressor.best_metric = 5.0
    assert regressor._is_better(4.0) and not regressor._is_better(6.0)


def test_classification_loss_is_the_weighted_per_sample_mean(tmp_path: Path) -> None:
    weights = [0.5, 2.0, 1.0]
    module = _module("classification", tmp_path, 3, weights)
    logits = torch.randn(8, 3, generator=torch.Generator().manual_seed(1))
    target = torch.tensor([0, 1, 2, 1, 1, 0, 2, 2])
    log_p = logits.double().log_softmax(dim=1)
    want = sum(-weights[y] * log_p[i, y] for i, y in enumerate(target)) / sum(weights[y] for y in target)
    assert float(module.loss(logits, target)) == pytest.approx(float(want), rel=1e-6)


def test_regression_loss_is_in_standardised_units(tmp_path: Path) -> None:
    module = _module("regression", tmp_path, 1)
    module.model.target_std = 4.0  # a standardised regressor's scale
    values, target = torch.tensor([60.0, 70.0]), torch.tensor([62.0, 65.0])
    assert float(module.loss(values, target)) == pytest.approx(((2**2 + 5**2) / 2) / 16)


def test_score_batch_averages_per_view_probabilities(tmp_path: Path) -> None:
    model = Scorer(3)
    g = torch.Generator().manual_seed(2)
    views, tabular = torch.randn(4, 2, 1, 3, 3, 3, generator=g), torch.randn(4, 1, generator=g)
    mean, per_view = score_batch(model, views, tabular, "classification")
    for i in range(4):  # the slow reference: one subject, one view at a time
        for s in range(2):
            p = model(views[i : i + 1, s], tabular[i : i + 1]).softmax(dim=1)[0]
            torch.testing.assert_close(per_view[i, s], p)
        torch.testing.assert_close(mean[i], per_view[i].mean(dim=0))
    with pytest.raises(ValueError, match=r"\[B, 1, D, H, W\]"):
        score_batch(model, torch.randn(4, 3), tabular, "classification")
    with pytest.raises(ValueError, match=r"predictions \[B=4\]"):
        score_batch(model, views[:, 0], tabular, "regression")  # three outputs are no regression


def test_batchnorm_and_memory_format() -> None:
    assert has_batchnorm(nn.Sequential(nn.Conv3d(1, 2, 3), nn.BatchNorm3d(2)))
    assert not has_batchnorm(nn.Sequential(nn.Conv3d(1, 2, 3), nn.GroupNorm(1, 2)))
    image = torch.randn(2, 1, 4, 4, 4)
    assert to_memory_format(image, True).is_contiguous(memory_format=torch.channels_last_3d)
    assert to_memory_format(image, False) is image


def test_saved_state_dict_loads_back(tmp_path: Path) -> None:
    model = Scorer(3)
    path = save_state_dict(model, tmp_path / "best.pt")
    again = Scorer(3)
    again.load_state_dict(torch.load(path, weights_only=True))
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        torch.testing.assert_close(a, b)
    assert [p.name for p in tmp_path.iterdir()] == ["best.pt"]  # nothing half-written left behind
