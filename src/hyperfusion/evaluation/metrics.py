"""Classification and regression metrics on arrays of predictions (paper §4.2.4, §4.3.6, eqs. 9–10).

Everything here works on NumPy arrays: probabilities ``[N, C]`` with integer targets in ``[0, C)``, or
predictions ``[N]`` with real targets. Nothing here sees a model.

Conventions for undefined cases (written once, used everywhere):

- The predicted class is ``argmax`` of the probabilities (ties go to the lower class index).
- **Recall / TP rate** of a class absent from the targets is 0/0: it is reported as NaN and the class is left
  out of balanced accuracy (BA = mean recall over the classes present, as ``balanced_accuracy_score``).
- **Precision** of a class that is never predicted is 0/0: it counts as **0** in the macro precision
  (eq. 10), which is averaged over all C classes. A model that never predicts a class is penalised, not
  excused (``precision_score(..., labels=range(C), average="macro", zero_division=0)``).
- **F1** of a class is 0 when precision + recall is 0 or undefined; macro F1 averages all C classes.
- **AUC** one-vs-rest needs positives and negatives: a class absent from the targets (or the only class
  present) has no AUC; it is left out of the macro AUC with a warning naming it, and the macro AUC is NaN if
  no class has one.

scikit-learn computes the confusion counts, per-class recall and macro precision (the same numbers, bit for bit,
tested on random inputs). Balanced accuracy, F1, AUC and the row-normalised confusion matrix stay written out here
because scikit-learn's differ from the conventions above in the last bit or in the undefined cases (each function
says where); the results tables are written at full precision, so they would change.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from scipy.stats import rankdata
from sklearn import metrics as skm

__all__ = [
    "balanced_accuracy",
    "check_probabilities",
    "check_regression",
    "classification_metrics",
    "confusion_matrix",
    "macro_auc",
    "macro_f1",
    "macro_precision",
    "mae",
    "mae_by_group",
    "one_vs_rest_auc",
    "pearson_r",
    "per_class_recall",
    "regression_metrics",
    "row_normalised_confusion",
]

_PROB_TOLERANCE = 1e-3


def check_probabilities(probabilities: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate ``[N, C]`` probabilities and ``[N]`` integer targets; return them as float64 / int64 arrays.

    Raises:
        ValueError: wrong shapes, non-finite values, rows that do not sum to 1, or a target outside
            ``[0, C)``; the message names the offending row and value.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(targets)
    if p.ndim != 2 or p.shape[0] == 0 or p.shape[1] < 2:
        raise ValueError(f"probabilities must have shape [N, C] with N >= 1 and C >= 2, got {p.shape}")
    if y.shape != (p.shape[0],):
        raise ValueError(f"targets must have shape [{p.shape[0]}] to match probabilities, got {y.shape}")
    bad = np.flatnonzero(~np.isfinite(p).all(axis=1))
    if bad.size:
        raise ValueError(f"probabilities row {bad[0]} is not finite: {p[bad[0]].tolist()}")
    bad = np.flatnonzero((p < -_PROB_TOLERANCE).any(axis=1) | (np.abs(p.sum(axis=1) - 1.0) > _PROB_TOLERANCE))
    if bad.size:
        raise ValueError(
            f"probabilities row {bad[0]} is not a probability vector (sum {p[bad[0]].sum():.6g}): "
            f"{p[bad[0]].tolist()}; pass softmax outputs, not logits"
        )
    if not np.issubdtype(y.dtype, np.integer):
        if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            raise ValueError(f"targets must be integer class indices, got dtype {y.dtype}")
        y = y.astype(np.int64)
    bad = np.flatnonzero((y < 0) | (y >= p.shape[1]))
    if bad.size:
        raise ValueError(f"target row {bad[0]} has class {y[bad[0]]}, outside [0, {p.shape[1]})")
    return p, y.astype(np.int64)


def confusion_matrix(targets: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts ``M[i, j]`` = number of samples of true class i predicted as class j (rows: truth), int64.

    ``sklearn.metrics.confusion_matrix`` over the labels ``0 … n_classes − 1``; no samples give all zeros
    (scikit-learn refuses empty input).
    """
    t = np.asarray(targets, dtype=np.int64)
    q = np.asarray(predicted, dtype=np.int64)
    if t.size == 0 and q.size == 0:
        return np.zeros((n_classes, n_classes), dtype=np.int64)
    return skm.confusion_matrix(t, q, labels=np.arange(n_classes)).astype(np.int64, copy=False)


def row_normalised_confusion(probabilities: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Confusion matrix with each row divided by its class size (row i: where class i goes); absent → NaN.

    Kept by hand: ``confusion_matrix(..., normalize="true")`` gives 0, not NaN, for a class absent from the targets.
    """
    p, y = check_probabilities(probabilities, targets)
    cm = confusion_matrix(y, p.argmax(axis=1), p.shape[1]).astype(np.float64)
    support = cm.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, cm / np.where(support > 0, support, 1), np.nan)


def per_class_recall(probabilities: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """TP_c / (TP_c + FN_c) per class (the paper's TP-CN, TP-MCI, TP-AD); NaN for a class not in targets.

    ``sklearn.metrics.recall_score(average=None, zero_division=nan)``: the diagonal of
    `row_normalised_confusion`, bit for bit.
    """
    p, y = check_probabilities(probabilities, targets)
    recall = skm.recall_score(
        y, p.argmax(axis=1), labels=np.arange(p.shape[1]), average=None, zero_division=np.nan
    )
    return np.asarray(recall, dtype=np.float64)


def balanced_accuracy(probabilities: np.ndarray, targets: np.ndarray) -> float:
    """Eq. 9: BA = mean over classes of TP_c / (TP_c + FN_c), over the classes present in the targets.

    Kept by hand (``nanmean`` of the recalls): ``balanced_accuracy_score`` means the recalls left after dropping
    the absent classes, which sums in another order and differs in the last bit with 8 or more classes and one
    absent (and it warns about the absent class).
    """
    return float(np.nanmean(per_class_recall(probabilities, targets)))


def _precision_recall(p: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    cm = confusion_matrix(y, p.argmax(axis=1), p.shape[1]).astype(np.float64)
    tp = np.diag(cm)
    predicted = cm.sum(axis=0)
    actual = cm.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    return precision, recall


def macro_precision(probabilities: np.ndarray, targets: np.ndarray) -> float:
    """Eq. 10: PRC = mean over all C classes of TP_c / (TP_c + FP_c); a never-predicted class counts as 0.

    ``sklearn.metrics.precision_score(labels=range(C), average="macro", zero_division=0)``.
    """
    p, y = check_probabilities(probabilities, targets)
    return float(
        skm.precision_score(
            y, p.argmax(axis=1), labels=np.arange(p.shape[1]), average="macro", zero_division=0
        )
    )


def macro_f1(probabilities: np.ndarray, targets: np.ndarray) -> float:
    """Mean over all C classes of F1_c = 2 P_c R_c / (P_c + R_c), with F1_c = 0 where P_c + R_c = 0.

    Kept by hand: ``f1_score`` computes 2 TP / (2 TP + FP + FN), equal in exact arithmetic but up to 2.2e-16 off.
    """
    p, y = check_probabilities(probabilities, targets)
    precision, recall = _precision_recall(p, y)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(denom), where=denom > 0)
    return float(f1.mean())


def one_vs_rest_auc(probabilities: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Per-class AUC of score p[:, c] for "class c vs the rest"; NaN without positives or negatives.

    Computed from ranks (Mann–Whitney form, ties counted half):
    AUC_c = (Σ ranks of positives − n₊(n₊+1)/2) / (n₊ n₋).

    Kept by hand: ``roc_auc_score`` integrates the ROC curve by trapezoids (up to 2.2e-16 off), and its
    ``multi_class="ovr"`` macro is NaN (or an error, without ``labels``) when the targets miss a class, where
    `macro_auc` leaves that class out.
    """
    p, y = check_probabilities(probabilities, targets)
    out = np.full(p.shape[1], np.nan)
    for c in range(p.shape[1]):
        positive = y == c
        n_pos = int(positive.sum())
        n_neg = positive.size - n_pos
        if n_pos == 0 or n_neg == 0:
            continue
        ranks = rankdata(p[:, c])
        out[c] = (ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return out


def macro_auc(
    probabilities: np.ndarray, targets: np.ndarray, class_names: Sequence[str] | None = None
) -> float:
    """Mean one-vs-rest AUC over the classes with both positives and negatives (warns about the others)."""
    per_class = one_vs_rest_auc(probabilities, targets)
    missing = np.flatnonzero(np.isnan(per_class))
    if missing.size:
        names = [class_names[i] if class_names is not None else str(i) for i in missing]
        warnings.warn(
            f"macro AUC: class(es) {names} have no positive or no negative samples in the targets "
            "and are left out",
            RuntimeWarning,
            stacklevel=2,
        )
    if missing.size == per_class.size:
        return float("nan")
    return float(np.nanmean(per_class))


def _check_class_names(class_names: Sequence[str], n_classes: int) -> list[str]:
    names = [str(n) for n in class_names]
    if len(names) != n_classes:
        raise ValueError(f"class_names has {len(names)} names {names} for {n_classes} probability columns")
    if len(set(names)) != len(names):
        raise ValueError(f"class_names must be unique, got {names}")
    bad = [n for n in names if "/" in n or not n]
    if bad:
        raise ValueError(f"class names must be non-empty and contain no '/', got {bad}")
    return names


def classification_metrics(
    probabilities: np.ndarray, targets: np.ndarray, class_names: Sequence[str]
) -> dict[str, float]:
    """All classification metrics as one flat dict (the keys of the results table).

    Keys: ``BA``, ``PRC``, ``F1``, ``AUC`` (macro one-vs-rest), ``TP-<name>`` per class, and
    ``cm/<true>/<pred>`` for every cell of the row-normalised confusion matrix.
    """
    p, y = check_probabilities(probabilities, targets)
    names = _check_class_names(class_names, p.shape[1])
    cm = row_normalised_confusion(p, y)
    recall = np.diag(cm)
    out: dict[str, float] = {
        "BA": float(np.nanmean(recall)),
        "PRC": macro_precision(p, y),
        "F1": macro_f1(p, y),
        "AUC": macro_auc(p, y, names),
    }
    out.update({f"TP-{name}": float(recall[i]) for i, name in enumerate(names)})
    out.update({f"cm/{a}/{b}": float(cm[i, j]) for i, a in enumerate(names) for j, b in enumerate(names)})
    return out


def check_regression(predictions: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate equal-length 1-D finite predictions and targets; return them as float64 arrays.

    Raises:
        ValueError: wrong shapes, or a non-finite value (the array and row are named).
    """
    q = np.asarray(predictions, dtype=np.float64)
    t = np.asarray(targets, dtype=np.float64)
    if q.ndim != 1 or q.size == 0 or t.shape != q.shape:
        raise ValueError(
            f"predictions and targets must be equal-length 1-D arrays, got {q.shape} and {t.shape}"
        )
    for name, arr in (("predictions", q), ("targets", t)):
        bad = np.flatnonzero(~np.isfinite(arr))
        if bad.size:
            raise ValueError(f"{name} row {bad[0]} is not finite: {arr[bad[0]]}")
    return q, t


def mae(predictions: np.ndarray, targets: np.ndarray) -> float:
    """Mean absolute error, (1/N) Σ |ŷ_i − y_i|."""
    q, t = check_regression(predictions, targets)
    return float(np.abs(q - t).mean())


def pearson_r(predictions: np.ndarray, targets: np.ndarray) -> float:
    """Pearson correlation of predictions and targets; NaN when either is constant."""
    q, t = check_regression(predictions, targets)
    dq, dt = q - q.mean(), t - t.mean()
    denominator = float(np.sqrt((dq**2).sum() * (dt**2).sum()))
    return float((dq * dt).sum() / denominator) if denominator > 0 else float("nan")


def mae_by_group(predictions: np.ndarray, targets: np.ndarray, groups: Sequence[object]) -> dict[str, float]:
    """MAE within each group value (e.g. sex), keyed by ``str(value)`` in sorted order."""
    q, t = check_regression(predictions, targets)
    g = np.asarray([str(v) for v in groups], dtype=object)
    if g.shape != q.shape:
        raise ValueError(f"groups must have {q.size} entries to match predictions, got {g.size}")
    return {str(v): float(np.abs(q[g == v] - t[g == v]).mean()) for v in sorted(set(g.tolist()))}


def regression_metrics(
    predictions: np.ndarray, targets: np.ndarray, groups: Sequence[object] | None = None
) -> dict[str, float]:
    """Flat dict: ``MAE`` overall, ``r`` (Pearson correlation of prediction and target: does the model order
    subjects, beyond matching their mean?) and ``MAE-<group>`` for each group value when ``groups`` is given.

    ``r`` is NaN when the predictions or the targets are constant (a correlation is undefined there).
    """
    out = {"MAE": mae(predictions, targets)}
    if groups is not None:
        out.update({f"MAE-{k}": v for k, v in mae_by_group(predictions, targets, groups).items()})
    out["r"] = pearson_r(predictions, targets)
    return out
