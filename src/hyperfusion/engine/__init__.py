"""hyperfusion.engine: trains one model on the DataLoaders it is given, and predicts with it.

It knows nothing of run directories, partitions or cohorts; :mod:`hyperfusion.run` (the protocol) builds the
loaders and decides what is trained.
"""

from hyperfusion.engine.loggers import Tracking
from hyperfusion.engine.module import balanced_class_weights
from hyperfusion.engine.trainer import (
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
    "Tracking",
    "TrainResult",
    "TrainSettings",
    "balanced_class_weights",
    "dataset_targets",
    "predict",
    "seed_everything",
    "train_model",
]
