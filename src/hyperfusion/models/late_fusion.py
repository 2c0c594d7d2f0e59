"""Late (decision-level) fusion: combine the class probabilities of two separately trained classifiers.

``p = w·softmax(a) + (1 − w)·softmax(b)`` with ``a``, ``b`` the imaging and tabular models' logits. The members are
trained on their own first (as the paper's Appendix B fuses "the soft classification results" of the imaging-only
and tabular-only models); the combination has no trainable parameter. Rule ``"average"`` fixes ``w = ½``; rule
``"learned"`` uses the ``w`` that :func:`fit_late_fusion_weight` finds on validation rows. ``w`` is a persistent
buffer, so a checkpoint carries it. The output is ``log p``: valid logits (``softmax(log p) = p``), so
cross-entropy and every downstream softmax work unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

RULES = ("average", "learned")


def _check_weight(weight: float) -> float:
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0.0 <= float(weight) <= 1.0:
        raise ValueError(f"weight (the imaging model's share) must be a number in [0, 1], got {weight!r}")
    return float(weight)


class LateFusionClassifier(nn.Module):
    """Mixture of the soft decisions of two classifiers, each called ``member(image, tabular)``.

    Args:
        imaging: the imaging model (e.g. a trained ``ad-imaging``), kept as :attr:`imaging`.
        tabular: the tabular model (e.g. a trained ``ad-tabular``), kept as :attr:`tabular`.
        rule: ``"average"`` (``w = ½``) or ``"learned"`` (``w`` fitted on validation data, see
            :func:`fit_late_fusion_weight`, and set here or with :meth:`set_imaging_weight_`).
        weight: the imaging model's share ``w`` in [0, 1]; must be ½ for ``"average"``.

    Attributes:
        imaging_weight: the persistent buffer holding ``w``.

    Raises:
        ValueError: for an unknown rule, a weight outside [0, 1] (or not ½ with ``"average"``), or members whose
            outputs differ in shape (at the first call).
    """

    imaging_weight: Tensor

    def __init__(
        self, imaging: nn.Module, tabular: nn.Module, *, rule: str = "average", weight: float = 0.5
    ) -> None:
        super().__init__()
        if rule not in RULES:
            raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
        weight = _check_weight(weight)
        if rule == "average" and weight != 0.5:
            raise ValueError(f"rule='average' means weight 0.5, got weight={weight!r} (use rule='learned')")
        self.rule = rule
        self.imaging = imaging
        self.tabular = tabular
        self.register_buffer("imaging_weight", torch.tensor(weight, dtype=torch.float64))

    @torch.no_grad()
    def set_imaging_weight_(self, weight: float) -> None:
        """Set ``w`` (e.g. the result of :func:`fit_late_fusion_weight`); only for rule ``"learned"``."""
        if self.rule != "learned":
            raise ValueError("the imaging weight of rule='average' is fixed at 0.5; use rule='learned'")
        self.imaging_weight.fill_(_check_weight(weight))

    def compose(
        self,
        imaging: nn.Module,
        tabular: nn.Module,
        validation: tuple[np.ndarray, np.ndarray, np.ndarray],
        class_weights: np.ndarray | None = None,
    ) -> LateFusionClassifier:
        """The hook the protocol composes a late fusion through: this model's rule applied to trained members.

        Args:
            imaging, tabular: the trained members.
            validation: the members' validation probabilities and the targets ``(p_imaging, p_tabular, y)``, from
                which rule ``"learned"`` fits the imaging weight (:func:`fit_late_fusion_weight`).
            class_weights: per-class weights of that fit (the run's weighted loss), or None.
        """
        weight = 0.5
        if self.rule == "learned":
            weight = fit_late_fusion_weight(*validation, class_weights=class_weights)
        return LateFusionClassifier(imaging, tabular, rule=self.rule, weight=weight)

    def mix(self, p_imaging: np.ndarray, p_tabular: np.ndarray) -> np.ndarray:
        """The mixture of the members' probabilities, ``w·p_imaging + (1 − w)·p_tabular`` (as :meth:`forward`
        in probability space)."""
        weight = float(self.imaging_weight)
        return weight * np.asarray(p_imaging) + (1 - weight) * np.asarray(p_tabular)

    def forward(self, image: Tensor, tabular: Tensor) -> Tensor:
        a = self.imaging(image, tabular)
        b = self.tabular(image, tabular)
        if a.shape != b.shape:
            raise ValueError(
                f"member outputs differ in shape: imaging {tuple(a.shape)}, tabular {tuple(b.shape)}"
            )
        w = self.imaging_weight.to(device=a.device, dtype=a.dtype)
        # log(w·p_a + (1−w)·p_b) computed stably in log space; log 0 = −inf drops a member with no share.
        stacked = torch.stack([torch.log(w) + a.log_softmax(dim=1), torch.log1p(-w) + b.log_softmax(dim=1)])
        return torch.logsumexp(stacked, dim=0)


def _probabilities(values: np.ndarray | Tensor, name: str) -> np.ndarray:
    array = (
        values.detach().cpu().double().numpy() if isinstance(values, Tensor) else np.asarray(values, float)
    )
    if array.ndim != 2 or array.shape[0] < 1 or array.shape[1] < 2:
        raise ValueError(f"{name} must be class probabilities [N, C] with C >= 2, got shape {array.shape}")
    if not np.isfinite(array).all() or (array < 0).any():
        raise ValueError(f"{name} must be finite and non-negative")
    bad = np.flatnonzero(np.abs(array.sum(axis=1) - 1.0) > 1e-4)
    if bad.size:
        raise ValueError(
            f"{name} rows must sum to 1 (softmax outputs); row {bad[0]} sums to {array[bad[0]].sum()}"
        )
    return array


def fit_late_fusion_weight(
    p_imaging: np.ndarray | Tensor,
    p_tabular: np.ndarray | Tensor,
    targets: np.ndarray | Tensor | Sequence[int],
    class_weights: np.ndarray | Tensor | Sequence[float] | None = None,
) -> float:
    """The imaging weight ``w ∈ [0, 1]`` maximising the (class-weighted) log-likelihood of the mixture.

    ``L(w) = Σ_i c_{y_i} · log(w·p_img[i, y_i] + (1 − w)·p_tab[i, y_i])`` over validation rows. ``L`` is concave in
    ``w`` (the log of an affine function), so the maximum is an end point or the one root of ``L'``, found by
    bisection to machine precision.

    Args:
        p_imaging, p_tabular: class probabilities ``[N, C]`` of the two members on the same rows.
        targets: the true classes ``[N]`` (ints in ``[0, C)``).
        class_weights: ``c``, one non-negative weight per class (e.g. the training loss's); default all 1.

    Raises:
        ValueError: for shapes that disagree, rows that are not probabilities, classes out of range, bad class
            weights, or rows that all have weight 0.
    """
    a = _probabilities(p_imaging, "p_imaging")
    b = _probabilities(p_tabular, "p_tabular")
    if a.shape != b.shape:
        raise ValueError(f"p_imaging {a.shape} and p_tabular {b.shape} must have the same shape")
    n, c = a.shape
    y = targets.detach().cpu().numpy() if isinstance(targets, Tensor) else np.asarray(targets)
    if (
        y.shape == (n,)
        and np.issubdtype(y.dtype, np.floating)
        and np.isfinite(y).all()
        and (y == np.round(y)).all()
    ):
        y = y.astype(np.int64)  # whole numbers read back as floats (e.g. from JSON)
    if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"targets must be {n} integer classes, got shape {y.shape} of {y.dtype}")
    if ((y < 0) | (y >= c)).any():
        raise ValueError(
            f"targets must be classes in [0, {c}), got {sorted(set(y[(y < 0) | (y >= c)].tolist()))}"
        )
    if class_weights is None:
        weights = np.ones(c)
    else:
        weights = (
            class_weights.detach().cpu().double().numpy()
            if isinstance(class_weights, Tensor)
            else np.asarray(class_weights, float)
        )
        if weights.shape != (c,) or not np.isfinite(weights).all() or (weights < 0).any():
            raise ValueError(f"class_weights must be {c} finite non-negative numbers, got {weights.tolist()}")
    rows = np.arange(n)
    p, q, cw = a[rows, y], b[rows, y], weights[y]
    keep = (cw > 0) & ((p > 0) | (q > 0))  # rows both members give 0 add −∞ whatever w is
    if not keep.any():
        raise ValueError("no row carries weight: every target class has class weight 0")
    p, q, cw = p[keep], q[keep], cw[keep]

    def slope(w: float) -> float:
        """``L'(w)``; ±inf at an end point where a row's mixture vanishes."""
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = cw * (p - q) / (w * p + (1.0 - w) * q)
        terms[(p == q)] = 0.0
        return float(terms.sum())

    if slope(1.0) >= 0:  # L still rising at w = 1 (only −inf terms can occur there, never nan)
        return 1.0
    if slope(0.0) <= 0:  # only +inf terms can occur at w = 0
        return 0.0
    lo, hi = 0.0, 1.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if slope(mid) > 0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)
