"""hyperfusion.training: the engine that trains one model on given DataLoaders, and predicts with it."""

from hyperfusion.training.module import balanced_class_weights
from hyperfusion.training.trainer import (
    Predictions,
    TrainResult,
    TrainSettings,
    dataset_targets,
    predict,
    seed_everything,
    train_model,
)

__all__ = [
    "Predictions",
    "TrainResult",
    "TrainSettings",
    "balanced_class_weights",
    "dataset_targets",
    "predict",
    "seed_everything",
    "train_model",
]
