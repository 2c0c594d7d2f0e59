"""Calibration and uncertainty of classification probabilities: does "80 % sure" mean right 80 % of the time?

Everything here takes probabilities ``[N, C]`` and integer targets ``[N]``, as the metrics do. Regression has
no probabilities, so it has nothing here.

- **Top-label confidence** of a subject: its largest probability. A subject is **correct** when that
  class (the argmax, ties to the lower index) is its target.
- **Bins**: ``n_bins`` equal-width bins on [0, 1] (default 10). A bin holds the confidences in
  ``(low, high]``, and the first one also holds 0. These are the bins of scikit-learn's
  ``calibration_curve(strategy="uniform")``.
- **Reliability curve**: per bin, the number of subjects, their mean confidence and the fraction of them that
  are correct. A calibrated model has accuracy = confidence in every bin.
- **Expected calibration error (ECE)**, top-label: ``Σ_b (n_b / N) · |accuracy_b − confidence_b|``. It is 0
  for a calibrated model. Empty bins count 0.
- **Brier score**, multi-class: the mean over subjects of ``Σ_c (p_c − y_c)²`` with ``y`` one-hot. It is 0 for
  certain, correct predictions and at most 2. For two classes it is twice the binary Brier score of
  scikit-learn's ``brier_score_loss(y, p[:, 1])``.
- **Predictive entropy**: ``H = −Σ_c p_c ln p_c`` in nats, between 0 (certain) and ``ln C`` (uniform). A
  useful model is less certain about the subjects it gets wrong.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from hyperfusion.evaluation.ensemble import predictive_entropy
from hyperfusion.evaluation.metrics import check_probabilities

__all__ = [
    "DEFAULT_BINS",
    "bin_edges",
    "brier_score",
    "calibration_metrics",
    "confidence_bins",
    "entropy_by_group",
    "expected_calibration_error",
    "reliability_curve",
    "top_label",
]

DEFAULT_BINS = 10


def _check_bins(n_bins: int) -> int:
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"n_bins must be an integer >= 1, got {n_bins!r}")
    return int(n_bins)


def bin_edges(n_bins: int = DEFAULT_BINS) -> np.ndarray:
    """The ``n_bins + 1`` equal-width bin edges on [0, 1]."""
    return np.linspace(0.0, 1.0, _check_bins(n_bins) + 1)


def confidence_bins(confidence: np.ndarray, n_bins: int = DEFAULT_BINS) -> np.ndarray:
    """Bin index in ``[0, n_bins)`` of each confidence: bin b holds ``(edge_b, edge_b+1]``, bin 0 also holds 0."""
    return np.searchsorted(bin_edges(n_bins)[1:-1], np.asarray(confidence, dtype=np.float64))


def top_label(probabilities: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Top-label confidence ``max_c p_c`` and whether the argmax is the target, per subject."""
    p, y = check_probabilities(probabilities, targets)
    return p.max(axis=1), p.argmax(axis=1) == y


def reliability_curve(
    probabilities: np.ndarray, targets: np.ndarray, n_bins: int = DEFAULT_BINS
) -> pd.DataFrame:
    """One row per bin: ``bin, low, high, count, confidence, accuracy`` (the means are NaN in an empty bin)."""
    confidence, correct = top_label(probabilities, targets)
    edges = bin_edges(n_bins)
    b = confidence_bins(confidence, n_bins)
    count = np.bincount(b, minlength=edges.size - 1)
    conf_sum = np.bincount(b, weights=confidence, minlength=edges.size - 1)
    correct_sum = np.bincount(b, weights=correct.astype(np.float64), minlength=edges.size - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.where(count > 0, conf_sum / count, np.nan)
        accuracy = np.where(count > 0, correct_sum / count, np.nan)
    return pd.DataFrame(
        {
            "bin": np.arange(edges.size - 1),
            "low": edges[:-1],
            "high": edges[1:],
            "count": count,
            "confidence": mean_conf,
            "accuracy": accuracy,
        }
    )


def expected_calibration_error(
    probabilities: np.ndarray, targets: np.ndarray, n_bins: int = DEFAULT_BINS
) -> float:
    """Top-label ECE with ``n_bins`` equal-width bins: ``Σ_b (n_b/N) |accuracy_b − confidence_b|``."""
    confidence, correct = top_label(probabilities, targets)
    gap = np.bincount(
        confidence_bins(confidence, n_bins), weights=correct - confidence, minlength=_check_bins(n_bins)
    )
    return float(np.abs(gap).sum() / confidence.size)


def brier_score(probabilities: np.ndarray, targets: np.ndarray) -> float:
    """Multi-class Brier score: mean over subjects of ``Σ_c (p_c − y_c)²`` (0 best, 2 worst)."""
    p, y = check_probabilities(probabilities, targets)
    onehot = np.eye(p.shape[1])[y]
    return float(((p - onehot) ** 2).sum(axis=1).mean())


def calibration_metrics(
    probabilities: np.ndarray, targets: np.ndarray, *, n_bins: int = DEFAULT_BINS
) -> dict[str, float]:
    """``{"ECE": …, "Brier": …}``, the two calibration rows of the results table."""
    return {
        "ECE": expected_calibration_error(probabilities, targets, n_bins),
        "Brier": brier_score(probabilities, targets),
    }


def entropy_by_group(
    probabilities: np.ndarray, targets: np.ndarray, class_names: Sequence[str]
) -> pd.DataFrame:
    """Predictive entropy (nats) by true class and by correct / incorrect prediction.

    Returns columns ``by, group, n, mean, std`` (std with ddof = 1, NaN below two subjects). ``by`` is
    ``"all"``, ``"true class"`` (one row per class name, n = 0 for a class absent from the targets) or
    ``"prediction"`` (groups ``"correct"`` and ``"incorrect"``).
    """
    p, y = check_probabilities(probabilities, targets)
    names = [str(n) for n in class_names]
    if len(names) != p.shape[1]:
        raise ValueError(f"class_names has {len(names)} names {names} for {p.shape[1]} probability columns")
    h = predictive_entropy(p)
    correct = p.argmax(axis=1) == y
    groups: list[tuple[str, str, np.ndarray]] = [("all", "all", np.ones_like(correct))]
    groups += [("true class", name, y == c) for c, name in enumerate(names)]
    groups += [("prediction", "correct", correct), ("prediction", "incorrect", ~correct)]
    rows = []
    for by, group, mask in groups:
        v = h[mask]
        rows.append(
            {
                "by": by,
                "group": group,
                "n": int(v.size),
                "mean": float(v.mean()) if v.size else np.nan,
                "std": float(v.std(ddof=1)) if v.size > 1 else np.nan,
            }
        )
    return pd.DataFrame(rows, columns=["by", "group", "n", "mean", "std"])
