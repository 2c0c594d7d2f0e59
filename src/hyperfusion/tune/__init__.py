"""Equal-budget hyperparameter tuning of every method on the protocol's training folds (``hyperfusion tune``)."""

from hyperfusion.tune.study import TuningError, tune

__all__ = ["TuningError", "tune"]
