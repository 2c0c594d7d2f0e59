"""The Lightning module that trains one ``model(image, tabular)``: loss, optimiser, validation metric.

Batches are ``(image, tabular, target, subject_id)``. Evaluation batches may carry S views of each subject
(the two hippocampus sides) as ``image [B, S, 1, D, H, W]``: every view is scored and the softmaxes are averaged
(regression: the predictions), as the paper does on both hippocampi (§4.3.6). Validation loss is the
(weighted) negative log-likelihood of those averaged probabilities — not cross-entropy applied to probabilities
again (a mistake of the authors' code).

Losses (paper §3.2):

- regression: MSE, (1/B) Σ (y_i − ŷ_i)² (eq. 4);
- classification: cross-entropy with optional class weights w_c, in PyTorch's weighted mean
  Σ_i w_{y_i} ℓ_i / Σ_i w_{y_i} (eq. 5 up to that per-batch normaliser, as in the authors' code).

The validation metric that picks the best epoch is balanced accuracy (higher is better) for classification and
MAE (lower is better) for regression.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch import nn

from hyperfusion.atomic import write_atomic
from hyperfusion.tasks import TaskName, get_task

__all__ = [
    "Task",
    "TrainingModule",
    "balanced_class_weights",
    "has_batchnorm",
    "score_batch",
    "to_memory_format",
]

Task = TaskName  # the name a module is built with (kept for callers that import it from here)


def balanced_class_weights(targets: Sequence[int] | np.ndarray, n_classes: int) -> np.ndarray:
    """sklearn's "balanced" weights, w_c = N / (C · n_c): inversely proportional to class frequency.

    Raises:
        ValueError: a target outside ``[0, n_classes)`` or a class with no samples (its weight would be infinite).
    """
    y = np.asarray(targets)
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"targets must be a non-empty 1-D array, got shape {y.shape}")
    if n_classes < 2:
        raise ValueError(f"n_classes must be >= 2, got {n_classes}")
    bad = np.flatnonzero((y < 0) | (y >= n_classes) | (y != np.round(y)))
    if bad.size:
        raise ValueError(f"target {bad[0]} is {y[bad[0]]}, not a class index in [0, {n_classes})")
    counts = np.bincount(y.astype(np.int64), minlength=n_classes)
    if (counts == 0).any():
        raise ValueError(
            f"class(es) {np.flatnonzero(counts == 0).tolist()} have no training/validation samples; "
            "a balanced class weight would be infinite"
        )
    return y.size / (n_classes * counts.astype(np.float64))


def has_batchnorm(model: nn.Module) -> bool:
    """Whether any BatchNorm layer would fail on (or be corrupted by) a batch of one sample."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def to_memory_format(image: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """Channels-last-3D layout for 5-D image batches when asked (a 3–4× faster conv3d on GPUs)."""
    if channels_last and image.dim() == 5:
        return image.contiguous(memory_format=torch.channels_last_3d)
    return image


def score_batch(
    forward: nn.Module, image: torch.Tensor, tabular: torch.Tensor, task: Task, *, channels_last: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Score a batch: probabilities ``[B, C]`` (regression: predictions ``[B]``) and the per-view values.

    ``image`` is ``[B, 1, D, H, W]`` (one view) or ``[B, S, 1, D, H, W]`` (S views, e.g. both hippocampi).
    The per-view values are ``[B, S, C]`` / ``[B, S]``; the first return value is their mean over S.
    """
    if image.dim() == 6:
        views = [image[:, s] for s in range(image.shape[1])]
    elif image.dim() in (4, 5):
        views = [image]
    else:
        raise ValueError(
            f"image batch must be [B, 1, D, H, W] or [B, S, 1, D, H, W], got {tuple(image.shape)}"
        )
    per_view = []
    for view in views:
        out = (
            get_task(task)
            .output(forward(to_memory_format(view, channels_last), tabular), image.shape[0])
            .float()
        )
        per_view.append(get_task(task).view_values(out))
    stacked = torch.stack(per_view, dim=1)
    return stacked.mean(dim=1), stacked


class TrainingModule(L.LightningModule):
    """Wraps ``model`` for Lightning; saves the best epoch's ``state_dict`` to ``checkpoint_path``.

    Args:
        model: any ``model(image, tabular) -> logits [B, C] | predictions [B]``.
        task: ``"classification"`` or ``"regression"``.
        lr, weight_decay: Adam's (coupled L2, as in the paper and the authors' code).
        class_weights: per-class loss weights for classification, or None for plain cross-entropy.
        checkpoint_path: where the best ``state_dict`` is written (atomically), loadable with
            ``torch.load(path, weights_only=True)``.
        compile: wrap the forward pass in ``torch.compile`` (the saved ``state_dict`` stays the plain model's).
        channels_last: feed 5-D images in channels-last-3D layout (the model is converted by the caller).
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        task: Task,
        lr: float,
        weight_decay: float,
        checkpoint_path: str | os.PathLike[str],
        class_weights: Sequence[float] | None = None,
        compile: bool = False,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.kind = get_task(task)  # ValueError naming the known tasks
        self.model = model
        self.task: Task = task
        self.lr = lr
        self.weight_decay = weight_decay
        self.checkpoint_path = Path(checkpoint_path)
        self.channels_last = channels_last
        # kept out of the module tree so its parameters are not registered twice
        self._forward = [torch.compile(model) if compile else model]
        weights = None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32)
        self.register_buffer("class_weights", weights, persistent=False)
        self.skip_singletons = has_batchnorm(model)
        self.skipped_batches = 0
        self.best_metric = math.nan
        self.best_epoch = -1
        self.history: list[dict[str, float]] = []
        self._train_sum = 0.0
        self._train_count = 0
        self._epoch_start = time.perf_counter()
        self._val_outputs: list[torch.Tensor] = []
        self._val_targets: list[torch.Tensor] = []

    @property
    def metric_name(self) -> str:
        return self.kind.selection.name

    def _is_better(self, value: float) -> bool:
        return self.kind.selection.better(value, self.best_metric)

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Weighted cross-entropy on logits, or MSE on predictions (in standardised units when the model has a
        target scale, so the loss and weight decay keep the same balance whatever the target's units)."""
        return self.kind.loss(
            output, target, class_weights=self.class_weights, variance=self._target_variance()
        )

    def _target_variance(self) -> float:
        std = getattr(self.model, "target_std", None)
        return 1.0 if std is None else float(std) ** 2

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.model.parameters(), lr=self.lr, weight_decay=self.weight_decay)

    def on_train_epoch_start(self) -> None:
        self._train_sum, self._train_count = 0.0, 0
        self._epoch_start = time.perf_counter()
        # datasets that draw per epoch (a random hippocampus side per item) get fresh, reproducible draws
        dataset = getattr(self.trainer.train_dataloader, "dataset", None)
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(self.current_epoch)

    def training_step(self, batch: Sequence[object], batch_idx: int) -> torch.Tensor | None:
        image, tabular, target = batch[0], batch[1], batch[2]
        if image.dim() != 5 and image.dim() != 4:
            raise ValueError(f"training images must be [B, 1, D, H, W] (one view), got {tuple(image.shape)}")
        if image.shape[0] == 1 and self.skip_singletons:
            # BatchNorm cannot normalise one sample (the authors' code crashes here): drop the batch, as drop_last would
            self.skipped_batches += 1
            return None
        out = self.kind.output(
            self._forward[0](to_memory_format(image, self.channels_last), tabular), image.shape[0]
        )
        loss = self.loss(out, target)
        self._train_sum += float(loss.detach()) * image.shape[0]
        self._train_count += image.shape[0]
        return loss

    def on_validation_epoch_start(self) -> None:
        self._val_outputs, self._val_targets = [], []

    def validation_step(self, batch: Sequence[object], batch_idx: int) -> None:
        image, tabular, target = batch[0], batch[1], batch[2]
        values, _ = score_batch(self._forward[0], image, tabular, self.task, channels_last=self.channels_last)
        self._val_outputs.append(values.detach().cpu())
        self._val_targets.append(torch.as_tensor(target).detach().cpu())

    def validation_loss(self, values: torch.Tensor, target: torch.Tensor) -> float:
        """Weighted NLL of the view-averaged probabilities, or MSE of the view-averaged predictions (as training)."""
        return self.kind.validation_loss(
            values, target, class_weights=self.class_weights, variance=self._target_variance()
        )

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking or not self._val_outputs:
            return
        values = torch.cat(self._val_outputs)
        target = torch.cat(self._val_targets)
        metric = self.kind.selection.compute(values.numpy(), self.kind.target_tensor(target).numpy())
        epoch = self.current_epoch
        row = {
            "epoch": epoch,
            "train_loss": self._epoch_train_loss(),
            "val_loss": self.validation_loss(values, target),
            f"val_{self.metric_name}": metric,
            "seconds": time.perf_counter() - self._epoch_start,
        }
        self.history.append(row)
        if self.logger is not None:  # live curves (training.logger); the logger is rank-zero only
            self.logger.log_metrics(dict(row), step=epoch)
            self.logger.save()
        if self._is_better(metric):
            self.best_metric, self.best_epoch = metric, epoch
            if self.trainer.is_global_zero:  # every process validates on the whole set; one writes
                save_state_dict(self.model, self.checkpoint_path)

    def _epoch_train_loss(self) -> float:
        """Mean training loss of the epoch over every process's samples (one process: its own)."""
        totals = torch.tensor([self._train_sum, float(self._train_count)], dtype=torch.float64)
        if self.trainer.world_size > 1:
            totals = self.trainer.strategy.reduce(totals.to(self.device), reduce_op="sum").cpu()
        return float(totals[0] / totals[1]) if totals[1] > 0 else math.nan

    def on_fit_end(self) -> None:
        """Under several processes, the main process reads what rank 0 learned from a file beside the checkpoint."""
        if self.trainer.world_size > 1 and self.trainer.is_global_zero:
            summary = {"history": self.history, "best_epoch": self.best_epoch, "best_metric": self.best_metric,
                       "skipped_batches": self.skipped_batches}  # fmt: skip
            write_atomic(summary_path(self.checkpoint_path), lambda h: json.dump(summary, h))


def summary_path(checkpoint_path: str | os.PathLike[str]) -> Path:
    """Where a multi-process fit leaves its history for the process that started it."""
    path = Path(checkpoint_path)
    return path.with_name(f".{path.name}.fit.json")


def save_state_dict(model: nn.Module, path: str | os.PathLike[str]) -> Path:
    """Write ``model.state_dict()`` (on CPU) to ``path`` atomically."""
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return write_atomic(Path(path), lambda handle: torch.save(state, handle), binary=True)
