"""Train one model on given DataLoaders and predict with it: the engine below the protocol runner.

``train_model`` runs Lightning quietly (no model summary, no checkpoint folders; only the best ``state_dict`` is
written, to the path given, and the training curves when a logger is asked for), keeps the epoch with the
best validation metric (BA for classification, MAE for regression), and leaves the model holding those best weights.

Class imbalance (paper §3.2, Table C.7):

- ``"weighted"``: cross-entropy with w_c = N / (C · n_c) over the training + validation rows (sklearn's
  "balanced" formula), unless ``TrainSettings.class_weights`` gives them;
- ``"oversample"``: plain cross-entropy with a ``WeightedRandomSampler`` drawing each training row with
  probability ∝ 1 / n_{y_i} (N draws per epoch, with replacement, seeded);
- ``"none"``: plain cross-entropy.

Targets for the weights and the sampler are read from ``loader.dataset.targets`` (an array, or a method
returning one; ``Subset`` is followed), or else by reading every item of the dataset once.

Repeatability: ``train_model`` seeds Python, NumPy and torch with ``settings.seed`` before building the trainer,
so the data order, dropout and sampling repeat; seed before constructing the model too (``seed_everything``)
for identical initial weights. On a CPU the same seed gives the same weights bit for bit.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import lightning as L
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler, Subset, WeightedRandomSampler

from hyperfusion.config import PRECISIONS
from hyperfusion.engine.devices import accelerator, torch_device
from hyperfusion.engine.loggers import Tracking, make_logger, quiet_mlflow
from hyperfusion.engine.module import (
    Task,
    TrainingModule,
    balanced_class_weights,
    score_batch,
    summary_path,
)
from hyperfusion.tasks import get_task

__all__ = [
    "Predictions",
    "TrainResult",
    "TrainSettings",
    "dataset_targets",
    "predict",
    "seed_everything",
    "train_model",
]

ClassBalance = Literal["weighted", "oversample", "none"]
Precision = Literal["fp32", "bf16"]  # the run configuration's names (config.PRECISIONS)


@dataclass(frozen=True)
class TrainSettings:
    """How to train one model.

    Args:
        task: ``"classification"`` (logits ``[B, C]``) or ``"regression"`` (predictions ``[B]``).
        epochs: passes over the training loader.
        lr, weight_decay: Adam's learning rate and (coupled L2) weight decay.
        n_classes: number of classes (classification only; needed for the class weights).
        class_balance: ``"weighted"``, ``"oversample"`` or ``"none"`` (see the module docstring).
        class_weights: explicit per-class weights for ``"weighted"`` (e.g. the authors' hand-set ones).
        seed: seeds Python, NumPy, torch and the oversampler.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:<i>"`` or ``"auto"`` (a GPU when there is one).
        precision: ``"fp32"`` or ``"bf16"`` (bf16 autocast; weights and optimiser stay fp32).
        channels_last: channels-last-3D memory format for the model and its 5-D image batches.
        compile: ``torch.compile`` the model's forward pass.
        progress_bar: show Lightning's progress bar.
        devices: train one model on this many devices with DDP (CPU processes with gloo, or GPUs with NCCL); each
            process takes ``batch_size / devices`` samples of every global batch, so one optimiser step sees the
            same samples as with one device. ``batch_size`` must divide evenly.
        deterministic: ask PyTorch for deterministic kernels (Lightning's ``deterministic="warn"``: ops
            without one warn instead of failing). Only matters on a GPU, where cuDNN otherwise picks
            non-deterministic kernels (two fp32 runs of the AD model differed by up to 0.03 in a weight after
            four epochs on an H200); on a CPU the same seed already gives the same weights.
    """

    task: Task
    epochs: int = 10
    lr: float = 1e-4
    weight_decay: float = 0.0
    n_classes: int | None = None
    class_balance: ClassBalance = "weighted"
    class_weights: tuple[float, ...] | None = None
    seed: int = 0
    device: str = "cpu"
    precision: Precision = "fp32"
    channels_last: bool = False
    compile: bool = False
    progress_bar: bool = True
    deterministic: bool = False
    devices: int = 1

    def __post_init__(self) -> None:
        get_task(self.task)  # ValueError naming the known tasks
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.class_balance not in ("weighted", "oversample", "none"):
            raise ValueError(
                f"class_balance must be 'weighted', 'oversample' or 'none', got {self.class_balance!r}"
            )
        check_precision(self.precision)
        accelerator(self.device)  # validates
        if not isinstance(self.devices, int) or self.devices < 1:
            raise ValueError(f"devices must be a positive int, got {self.devices!r}")
        if self.devices > 1 and self.device.startswith("cuda:"):
            raise ValueError(
                f"devices={self.devices} takes the first GPUs; use device 'cuda', not {self.device!r}"
            )
        if self.devices > 1 and self.class_balance == "oversample":
            raise ValueError("oversampling is not supported with devices > 1; use weighted cross-entropy")
        if get_task(self.task).has_classes:
            if self.n_classes is None or self.n_classes < 2:
                raise ValueError(f"classification needs n_classes >= 2, got {self.n_classes}")
            if self.class_weights is not None:
                w = self.class_weights
                if len(w) != self.n_classes or not all(math.isfinite(x) and x > 0 for x in w):
                    raise ValueError(
                        f"class_weights must be {self.n_classes} positive numbers, got {list(w)}"
                    )


@dataclass
class TrainResult:
    """What one training produced.

    ``best_epoch`` counts from 0; ``history`` has one dict per epoch with ``epoch``, ``train_loss``,
    ``val_loss``, ``val_BA`` / ``val_MAE`` and ``seconds`` (training + validation of that epoch);
    ``class_weights`` are the loss weights used (None if unweighted); ``skipped_batches`` counts the
    training batches of one sample dropped because the model has BatchNorm.
    """

    best_epoch: int
    best_metric: float
    metric_name: str
    checkpoint_path: Path
    history: list[dict[str, float]] = field(default_factory=list)
    class_weights: list[float] | None = None
    skipped_batches: int = 0
    seconds: float = 0.0


@dataclass
class Predictions:
    """Per-subject outputs of :func:`predict`.

    ``values`` are probabilities ``[N, C]`` (classification) or predictions ``[N]`` (regression), averaged over
    the views of each subject; ``per_view`` keeps them per view, ``[N, S, C]`` / ``[N, S]``.
    """

    subject_ids: list[str]
    values: np.ndarray
    per_view: np.ndarray
    targets: np.ndarray


def check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (call before building a model)."""
    L.seed_everything(seed, workers=True, verbose=False)


def dataset_targets(dataset: Dataset) -> np.ndarray:
    """The target of every item of ``dataset``: its ``targets`` attribute when it has one, else item[2] of each."""
    if isinstance(dataset, Subset):
        return dataset_targets(dataset.dataset)[np.asarray(dataset.indices)]
    targets = getattr(dataset, "targets", None)
    if callable(targets):
        targets = targets()
    if targets is None:
        targets = [_as_scalar(dataset[i][2]) for i in range(len(dataset))]  # type: ignore[arg-type]
    return np.asarray(targets)


def _as_scalar(value: object) -> float | int:
    return value.item() if isinstance(value, (torch.Tensor, np.ndarray)) else value  # type: ignore[return-value]


def _oversampling_loader(loader: DataLoader, targets: np.ndarray, seed: int) -> DataLoader:
    if loader.batch_size is None:
        raise ValueError(
            "oversampling needs a training DataLoader built with batch_size (not a batch_sampler)"
        )
    counts = np.bincount(targets.astype(np.int64))
    weights = 1.0 / counts[targets.astype(np.int64)]
    generator = torch.Generator().manual_seed(seed)
    sampler = WeightedRandomSampler(
        torch.as_tensor(weights, dtype=torch.double), len(targets), replacement=True, generator=generator
    )
    return DataLoader(
        loader.dataset,
        batch_size=loader.batch_size,
        sampler=sampler,
        num_workers=loader.num_workers,
        collate_fn=loader.collate_fn,
        pin_memory=loader.pin_memory,
        drop_last=loader.drop_last,
        worker_init_fn=loader.worker_init_fn,
        persistent_workers=loader.persistent_workers,
    )


@contextlib.contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Silence Lightning's start-up banners, tips and advice warnings for the duration of a fit."""
    loggers = [logging.getLogger(n) for n in ("lightning", "lightning.pytorch", "lightning.fabric")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module=r"lightning(\.|$)")
            warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
            warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


@contextlib.contextmanager
def _restore_global_torch_state() -> Iterator[None]:
    """Undo the process-wide switches a deterministic Lightning run flips, so one training cannot change the next."""
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    cublas = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn
        if cublas is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
        else:
            os.environ["CUBLAS_WORKSPACE_CONFIG"] = cublas


def train_model(
    model: nn.Module,
    train_loader: DataLoader,
    val_loader: DataLoader,
    settings: TrainSettings,
    checkpoint_path: str | os.PathLike[str],
    *,
    callbacks: list[L.Callback] | None = None,
    tracking: Tracking | None = None,
) -> TrainResult:
    """Train ``model`` for ``settings.epochs`` epochs and keep the best validation epoch.

    With ``tracking``, Lightning's CSV, TensorBoard or MLflow logger (`hyperfusion.engine.loggers`) receives one
    row per epoch (the ``history`` fields, readable while training) and the hyper-parameters. Logging draws no
    random numbers: results are bit-identical with any logger or none.

    The best epoch's ``state_dict`` is written to ``checkpoint_path`` (atomically) and loaded back into
    ``model`` before returning. Nothing else is written.

    Raises:
        ValueError: bad settings, a class with no training/validation rows under ``"weighted"``, or a model
            whose output does not fit the task.
    """
    start = time.perf_counter()
    checkpoint_path = Path(checkpoint_path)
    seed_everything(settings.seed)
    class_weights: list[float] | None = None
    if get_task(settings.task).has_classes and settings.class_balance == "weighted":
        if settings.class_weights is not None:
            class_weights = list(settings.class_weights)
        else:
            y = np.concatenate([dataset_targets(train_loader.dataset), dataset_targets(val_loader.dataset)])
            class_weights = balanced_class_weights(y, settings.n_classes).tolist()  # type: ignore[arg-type]
    if get_task(settings.task).has_classes and settings.class_balance == "oversample":
        train_loader = _oversampling_loader(
            train_loader, dataset_targets(train_loader.dataset), settings.seed
        )

    if settings.channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
    module = TrainingModule(
        model,
        task=settings.task,
        lr=settings.lr,
        weight_decay=settings.weight_decay,
        checkpoint_path=checkpoint_path,
        class_weights=class_weights,
        compile=settings.compile,
        channels_last=settings.channels_last,
    )
    kind, devices = accelerator(settings.device)
    strategy: object = "auto"
    if settings.devices > 1:
        devices = settings.devices
        train_loader = _sharded_loader(train_loader, settings)
        strategy = _ddp_strategy(kind)
        summary_path(checkpoint_path).unlink(missing_ok=True)
    logger = make_logger(tracking) if tracking is not None else False
    with _quiet_lightning(), quiet_mlflow(), _restore_global_torch_state():
        trainer = L.Trainer(
            accelerator=kind,
            devices=devices,
            strategy=strategy,
            use_distributed_sampler=False,  # training shards through its own sampler; every process validates all
            precision="bf16-mixed" if settings.precision == "bf16" else "32-true",
            max_epochs=settings.epochs,
            logger=logger,
            enable_checkpointing=False,
            enable_model_summary=False,
            enable_progress_bar=settings.progress_bar,
            num_sanity_val_steps=0,
            deterministic="warn" if settings.deterministic else None,
            default_root_dir=checkpoint_path.parent,
            callbacks=list(callbacks or []),  # e.g. hyperfusion.tune's per-epoch pruning
        )
        trainer.fit(module, train_dataloaders=train_loader, val_dataloaders=val_loader)
    if settings.devices > 1:
        _read_fit_summary(module, checkpoint_path)
    if module.best_epoch < 0:
        raise RuntimeError(
            f"training produced no finite validation {module.metric_name}; history: {module.history}"
        )
    state = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return TrainResult(
        best_epoch=module.best_epoch,
        best_metric=module.best_metric,
        metric_name=module.metric_name,
        checkpoint_path=checkpoint_path,
        history=module.history,
        class_weights=class_weights,
        skipped_batches=module.skipped_batches,
        seconds=time.perf_counter() - start,
    )


class ShardedShuffleSampler(Sampler[int]):
    """A seeded shuffle of the dataset per epoch, of which each of ``world`` processes takes every world-th index.

    Consecutive groups of ``world`` indices form one global batch's per-process slices in order, so with a per-process
    batch of ``B / world`` the processes together see exactly the global batches of a single process with batch
    ``B`` over the same permutation. An incomplete last global batch is dropped (every process must take the same
    number of steps). The rank and world size are read when iterating (inside each DDP process).
    """

    def __init__(self, size: int, *, seed: int, shuffle: bool = True, per_process_batch: int = 1) -> None:
        self.size, self.seed, self.shuffle, self.batch = size, seed, shuffle, per_process_batch
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _rank_world(self) -> tuple[int, int]:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
        return 0, 1

    def _order(self) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.size)
        return np.random.default_rng([self.seed, self.epoch]).permutation(self.size)

    def __iter__(self) -> Iterator[int]:
        rank, world = self._rank_world()
        order = self._order()
        step = self.batch * world
        for start in range(0, len(order) - step + 1, step):
            yield from order[start + rank * self.batch : start + (rank + 1) * self.batch].tolist()

    def __len__(self) -> int:
        _, world = self._rank_world()
        return (self.size // (self.batch * world)) * self.batch


def _sharded_loader(loader: DataLoader, settings: TrainSettings) -> DataLoader:
    """The training loader for one of ``settings.devices`` processes: its slice of every global batch."""
    if loader.batch_size is None or loader.batch_size % settings.devices:
        raise ValueError(
            f"batch_size {loader.batch_size} must be divisible by devices={settings.devices} "
            "(each process takes an equal slice of every batch)"
        )
    per_process = loader.batch_size // settings.devices
    shuffle = not isinstance(loader.sampler, torch.utils.data.SequentialSampler)
    sampler = ShardedShuffleSampler(
        len(loader.dataset), seed=settings.seed, shuffle=shuffle, per_process_batch=per_process
    )
    return DataLoader(
        loader.dataset,
        batch_size=per_process,
        sampler=sampler,
        num_workers=loader.num_workers,
        collate_fn=loader.collate_fn,
        pin_memory=loader.pin_memory,
        persistent_workers=loader.persistent_workers,
    )


def _ddp_strategy(accelerator: str):
    from lightning.pytorch.strategies import DDPStrategy

    if accelerator == "cpu":
        return DDPStrategy(process_group_backend="gloo", start_method="fork")
    return DDPStrategy(process_group_backend="nccl", start_method="spawn")


def _read_fit_summary(module: TrainingModule, checkpoint_path: Path) -> None:
    path = summary_path(checkpoint_path)
    if not path.is_file():
        raise RuntimeError(f"the multi-process fit left no summary at {path}")
    summary = json.loads(path.read_text())
    path.unlink()
    module.history = summary["history"]
    module.best_epoch = summary["best_epoch"]
    module.best_metric = summary["best_metric"]
    module.skipped_batches = summary["skipped_batches"]


@torch.inference_mode()
def predict(
    model: nn.Module,
    loader: DataLoader,
    *,
    task: Task,
    device: str = "cpu",
    precision: Precision = "fp32",
    channels_last: bool = False,
) -> Predictions:
    """Score every subject of ``loader`` with ``model`` in eval mode, averaging the views of each subject.

    Returns probabilities (softmax of the logits) for classification and predictions for regression, with the
    subject ids and targets of the batches, in loader order.
    """
    check_precision(precision)
    dev = torch_device(device)
    was_training = model.training
    model.eval().to(dev)
    if channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
    ids: list[str] = []
    values, per_view, targets = [], [], []
    try:
        for batch in loader:
            image, tabular, target, subject = batch[0], batch[1], batch[2], batch[3]
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
                mean, views = score_batch(
                    model, image.to(dev), tabular.to(dev), task, channels_last=channels_last
                )
            values.append(mean.float().cpu())
            per_view.append(views.float().cpu())
            targets.append(torch.as_tensor(target).cpu())
            ids += _subject_ids(subject)
    finally:
        model.train(was_training)
    if not ids:
        raise ValueError("predict got an empty loader")
    return Predictions(
        subject_ids=ids,
        values=torch.cat(values).numpy(),
        per_view=torch.cat(per_view).numpy(),
        targets=torch.cat(targets).numpy(),
    )


def _subject_ids(subject: object) -> list[str]:
    if isinstance(subject, torch.Tensor):
        return [str(s) for s in subject.tolist()]
    if isinstance(subject, str):
        return [subject]
    if isinstance(subject, Sequence):
        return [str(s) for s in subject]
    raise ValueError(f"subject ids must be strings or numbers, got {type(subject).__name__}")
