"""The crop reader: a linear baseline that reads the same preprocessed crops the CNNs see.

A CNN at chance says nothing about fusion until we know whether the crops hold anything to read. The crop reader
answers that with the simplest reader there is, fitted in closed form on the training rows only:

    image [B, 1, D, H, W] → average-pool (to at most ``max_voxels`` voxels) → flatten → PCA (k components)
    → standardise → logistic regression (L2 strength C, class-balanced) → logits [B, n_classes]

``k`` and ``C`` are chosen on the validation rows (balanced accuracy of the view-averaged probabilities, as the
CNN's best epoch is), from :data:`COMPONENTS` × :data:`STRENGTHS`. Each view of a training subject (the left
crop and the mirrored right one) is one training sample, as each is one training item for the CNN; evaluation
averages the views' probabilities exactly as for every other model. The fitted reader is an ``nn.Module`` whose
buffers hold the PCA basis and the coefficients, so it is saved, loaded, ensembled, predicted with and explained
like any model of the run.

A CNN should reach the reader's skill: "the CNN reaches X % of the crop reader's skill above chance" in a report
separates "the crops hold little" (reader near chance) from "the CNN does not read what they hold".
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits
from torch import Tensor, nn

from hyperfusion.evaluation.metrics import balanced_accuracy
from hyperfusion.models.checks import check_image

COMPONENTS = (5, 10, 20, 40, 64)
STRENGTHS = (0.01, 0.1, 1.0)
MAX_VOXELS = 8192


def pool_factor(shape: Sequence[int], max_voxels: int = MAX_VOXELS) -> int:
    """The smallest integer average-pooling factor that leaves at most ``max_voxels`` voxels of ``shape``.

    Raises:
        ValueError: for a shape that is not three positive sizes or a non-positive ``max_voxels``.
    """
    if len(shape) != 3 or any(int(s) < 1 for s in shape):
        raise ValueError(f"input_shape must be three positive sizes (D, H, W), got {tuple(shape)}")
    if max_voxels < 1:
        raise ValueError(f"max_voxels must be >= 1, got {max_voxels}")
    factor = 1
    while math.prod(math.ceil(s / factor) for s in shape) > max_voxels:
        factor += 1
    return factor


class CropReader(nn.Module):
    """PCA + logistic regression on average-pooled crops, fitted with :meth:`fit`; called ``reader(image, tabular)``.

    Args:
        input_shape: the crop's spatial shape ``(D, H, W)``.
        n_classes: number of classes.
        max_components: the largest ``k`` the buffers hold (``max(COMPONENTS)``).
        max_voxels: pooled voxels per view at most (the pooling factor follows from ``input_shape``).

    Raises:
        ValueError: for a bad shape or sizes below 1 (2 for ``n_classes``).

    Example:
        >>> reader = CropReader((16, 24, 16), 3)
        >>> reader.fit(train_loader, val_loader)        # closed form, on the training rows only
        >>> reader(torch.randn(4, 1, 16, 24, 16)).shape
        torch.Size([4, 3])
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        n_classes: int,
        *,
        max_components: int = max(COMPONENTS),
        max_voxels: int = MAX_VOXELS,
    ) -> None:
        super().__init__()
        if n_classes < 2:
            raise ValueError(f"n_classes must be >= 2, got {n_classes}")
        if max_components < 1:
            raise ValueError(f"max_components must be >= 1, got {max_components}")
        self.input_shape = tuple(int(s) for s in input_shape)
        self.pool = pool_factor(self.input_shape, max_voxels)
        voxels = math.prod(math.ceil(s / self.pool) for s in self.input_shape)
        self.n_classes = n_classes
        self.max_components = max_components
        self.register_buffer("voxel_mean", torch.zeros(voxels))
        self.register_buffer("components", torch.zeros(max_components, voxels))
        self.register_buffer("feature_mean", torch.zeros(max_components))
        self.register_buffer("feature_scale", torch.ones(max_components))
        self.register_buffer("coef", torch.zeros(n_classes, max_components))
        self.register_buffer("intercept", torch.zeros(n_classes))
        #: the chosen (k, C), its validation balanced accuracy and the number of fitted coefficients (:meth:`fit`)
        self.selection: dict[str, float] = {}

    def pooled(self, image: Tensor) -> Tensor:
        """``[B, voxels]``: each view average-pooled by :attr:`pool` (ceil mode) and flattened."""
        check_image(image, channels=1, spatial=self.input_shape)
        x = image.float()
        if self.pool > 1:
            x = F.avg_pool3d(x, self.pool, ceil_mode=True)
        return x.flatten(1)

    def forward(self, image: Tensor, tabular: Tensor | None = None) -> Tensor:
        """Logits ``[B, n_classes]``; ``tabular`` is ignored (the reader reads the image only)."""
        z = (self.pooled(image) - self.voxel_mean) @ self.components.T
        return ((z - self.feature_mean) / self.feature_scale) @ self.coef.T + self.intercept

    @torch.no_grad()
    def fit(self, train: Iterable[Sequence[object]], val: Iterable[Sequence[object]]) -> CropReader:
        """Fit PCA and the logistic regression on ``train``, choose ``k`` and ``C`` on ``val``.

        Both are iterables of batches ``(image, tabular, target, ...)`` in evaluation layout (images
        ``[B, S, 1, D, H, W]`` with S views, or ``[B, 1, D, H, W]``), e.g. the run's evaluation DataLoaders.

        The fit runs with one BLAS thread: a multi-threaded reduction sums in an order that depends on the host's
        cores, and the same rows must give the same reader on a laptop, a Ray worker and CI.

        Raises:
            ValueError: when a class has no training sample or there are fewer than two training samples.
        """
        with threadpool_limits(limits=1):
            return self._fit(train, val)

    def _fit(self, train: Iterable[Sequence[object]], val: Iterable[Sequence[object]]) -> CropReader:
        x_train, y_train = self._views(train)
        x_val, y_val = self._views(val)
        n_samples, voxels = x_train.shape[0] * x_train.shape[1], x_train.shape[2]
        flat = x_train.reshape(n_samples, voxels)
        labels = np.repeat(y_train, x_train.shape[1])
        missing = sorted(set(range(self.n_classes)) - set(labels.tolist()))
        if missing or n_samples < 2:
            raise ValueError(
                f"the crop reader needs training samples of every class; none of class {missing}"
            )
        fitted = min(self.max_components, n_samples - 1, voxels)
        pca = PCA(n_components=fitted, svd_solver="full").fit(flat)
        scores_train = pca.transform(flat)
        scores_val = np.stack([pca.transform(x_val[:, s]) for s in range(x_val.shape[1])], axis=1)
        best: tuple[float, int, float, LogisticRegression, np.ndarray, np.ndarray] | None = None
        for k in sorted({min(c, fitted) for c in COMPONENTS}):
            mean, scale = scores_train[:, :k].mean(0), scores_train[:, :k].std(0)
            scale = np.where(scale > 0, scale, 1.0)
            features = (scores_train[:, :k] - mean) / scale
            for strength in STRENGTHS:
                with warnings.catch_warnings():  # lbfgs may stop early at weak penalties; validation guards
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    model = _logistic(strength).fit(features, labels)
                probs = np.mean(
                    [_probabilities(model, (scores_val[:, s, :k] - mean) / scale, self.n_classes)
                     for s in range(x_val.shape[1])],
                    axis=0,
                )  # fmt: skip
                score = balanced_accuracy(probs, y_val)
                if best is None or score > best[0]:  # ties keep the smaller k, then the stronger penalty
                    best = (score, k, strength, model, mean, scale)
        assert best is not None
        score, k, strength, model, mean, scale = best
        self._store(pca, k, mean, scale, model)
        self.selection = {
            "components": k,
            "C": strength,
            "val_BA": float(score),
            "parameters": k * self.n_classes + self.n_classes,  # the fitted coefficients and intercepts
        }
        return self

    def _views(self, batches: Iterable[Sequence[object]]) -> tuple[np.ndarray, np.ndarray]:
        """Pooled views ``[N, S, voxels]`` and integer targets ``[N]`` of every batch."""
        xs, ys = [], []
        for batch in batches:
            image, target = batch[0], batch[2]
            assert isinstance(image, Tensor)
            views = [image[:, s] for s in range(image.shape[1])] if image.dim() == 6 else [image]
            xs.append(torch.stack([self.pooled(v) for v in views], dim=1).double().numpy())
            ys.append(torch.as_tensor(target).long().numpy())
        if not xs:
            raise ValueError("the crop reader got no batches to fit on")
        return np.concatenate(xs), np.concatenate(ys)

    def _store(
        self, pca: PCA, k: int, mean: np.ndarray, scale: np.ndarray, model: LogisticRegression
    ) -> None:
        as_tensor = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
        self.voxel_mean.copy_(as_tensor(pca.mean_))
        self.components.zero_()
        self.components[:k] = as_tensor(pca.components_[:k])
        self.feature_mean.zero_()
        self.feature_mean[:k] = as_tensor(mean)
        self.feature_scale.fill_(1.0)
        self.feature_scale[:k] = as_tensor(scale)
        self.coef.zero_()
        self.intercept.zero_()
        self.coef[:, :k], self.intercept[:] = (
            as_tensor(a) for a in _full_coefficients(model, self.n_classes)
        )


def _logistic(strength: float) -> LogisticRegression:
    return LogisticRegression(C=strength, class_weight="balanced", max_iter=5000)


def _probabilities(model: LogisticRegression, features: np.ndarray, n_classes: int) -> np.ndarray:
    coef, intercept = _full_coefficients(model, n_classes)
    logits = features @ coef.T + intercept
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)


def _full_coefficients(model: LogisticRegression, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial coefficients ``[C, k]`` and intercepts ``[C]`` (binary problems as ±½ of the one row)."""
    coef, intercept = np.asarray(model.coef_), np.asarray(model.intercept_)
    if n_classes == 2 and coef.shape[0] == 1:
        return np.vstack([-coef / 2, coef / 2]), np.array([-intercept[0] / 2, intercept[0] / 2])
    return coef, intercept
