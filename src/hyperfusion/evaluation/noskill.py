"""No-skill baselines: what a model that ignores every input scores on the same test subjects.

A method is only worth reporting if it beats these. They are estimated on the **training** rows alone, so
they use no information a trained model would not have had:

- **Classification**: the class prior of the training rows, predicted for every test subject. Every score
  ties, so the AUC is 0.5. The argmax is the majority training class (on a tie, the lower class index), so
  the balanced accuracy is 1/C over the C classes present in the test set. Precision and F1 follow from
  predicting that one class for everyone.
- **Regression**: the mean training target, predicted for every test subject. The MAE per group (for
  example by sex) is the MAE of that one number on each group's test subjects.

The constant :data:`NO_SKILL` is the method name the results table uses for these rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hyperfusion.evaluation.calibration import calibration_metrics
from hyperfusion.evaluation.metrics import classification_metrics, regression_metrics

__all__ = [
    "NO_SKILL",
    "class_prior",
    "noskill_classification_metrics",
    "noskill_predictions",
    "noskill_probabilities",
    "noskill_regression_metrics",
]

NO_SKILL = "no-skill"


def class_prior(train_targets: np.ndarray, n_classes: int) -> np.ndarray:
    """Fraction of the training rows in each class, ``[C]`` (a class absent from training gets 0).

    Raises:
        ValueError: no training rows, ``n_classes < 2``, or a target that is not a class index in
            ``[0, n_classes)`` (the row is named).
    """
    if n_classes < 2:
        raise ValueError(f"n_classes must be >= 2, got {n_classes}")
    y = np.asarray(train_targets)
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"train_targets must be a non-empty 1-D array of class indices, got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.number) or np.issubdtype(y.dtype, np.complexfloating):
        raise ValueError(f"train_targets must be integer class indices, got dtype {y.dtype}")
    if not np.issubdtype(y.dtype, np.integer):
        bad = np.flatnonzero(~np.isfinite(y) | (y != np.round(y)))
        if bad.size:
            raise ValueError(f"train_targets row {bad[0]} is not a class index: {y[bad[0]].item()!r}")
        y = y.astype(np.int64)
    bad = np.flatnonzero((y < 0) | (y >= n_classes))
    if bad.size:
        raise ValueError(f"train_targets row {bad[0]} has class {y[bad[0]]}, outside [0, {n_classes})")
    return np.bincount(y, minlength=n_classes) / y.size


def noskill_probabilities(train_targets: np.ndarray, n_test: int, n_classes: int) -> np.ndarray:
    """The training class prior repeated for each of ``n_test`` test subjects, ``[n_test, C]``."""
    if n_test < 1:
        raise ValueError(f"n_test must be >= 1, got {n_test}")
    return np.tile(class_prior(train_targets, n_classes), (n_test, 1))


def noskill_predictions(train_targets: np.ndarray, n_test: int) -> np.ndarray:
    """The mean training target repeated for each of ``n_test`` test subjects, ``[n_test]``."""
    if n_test < 1:
        raise ValueError(f"n_test must be >= 1, got {n_test}")
    t = np.asarray(train_targets, dtype=np.float64)
    if t.ndim != 1 or t.size == 0:
        raise ValueError(f"train_targets must be a non-empty 1-D array, got shape {t.shape}")
    bad = np.flatnonzero(~np.isfinite(t))
    if bad.size:
        raise ValueError(f"train_targets row {bad[0]} is not finite: {t[bad[0]]}")
    return np.full(n_test, t.mean())


def noskill_classification_metrics(
    train_targets: np.ndarray, test_targets: np.ndarray, class_names: Sequence[str], *, n_bins: int = 10
) -> dict[str, float]:
    """Every classification metric (and ``ECE``, ``Brier``) of the training prior on the test subjects.

    The keys are those of :func:`~hyperfusion.evaluation.metrics.classification_metrics` plus ``ECE`` and
    ``Brier``, so the dict goes into the results table as method :data:`NO_SKILL`.
    """
    y = np.asarray(test_targets)
    p = noskill_probabilities(train_targets, y.size, len(class_names))
    return classification_metrics(p, y, class_names) | calibration_metrics(p, y, n_bins=n_bins)


def noskill_regression_metrics(
    train_targets: np.ndarray, test_targets: np.ndarray, groups: Sequence[object] | None = None
) -> dict[str, float]:
    """``MAE`` (and ``MAE-<group>``) of the mean training target on the test subjects.

    No ``r``: a constant prediction has no correlation with anything.
    """
    t = np.asarray(test_targets, dtype=np.float64)
    out = regression_metrics(noskill_predictions(train_targets, t.size), t, groups)
    out.pop("r")
    return out
