"""Regression targets on the scale a freshly initialised network produces.

A regression network starts with outputs near 0 and a spread of about 1, while ages are ~70 ± 7.5 years. Trained on
raw ages, Adam moves the output bias by about ``lr`` per step, so with lr 1e-3 the network needs tens of thousands of
steps just to reach the mean age; in the meantime it inflates its weights to fake the offset and learns little else
(brain age's first demo: predictions with a spread of 2–3 years, correlation 0.13–0.16 with age, no better than
predicting the training mean). :class:`StandardizedRegressor` puts the target's training mean and standard
deviation into the model, ``prediction = mean + std · network(image, tabular)``, so the network learns the
standardised age from step 0 and its initial prediction is the training mean. The two numbers are buffers, saved
with every checkpoint, so a reloaded model predicts in years without anything else.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn


class StandardizedRegressor(nn.Module):
    """``mean + std · network(image, tabular)``: a regression network learning a standardised target.

    Args:
        network: any ``network(image, tabular) -> [B]`` (or ``[B, 1]``).
        mean, std: the target's mean and standard deviation over the training rows.

    Raises:
        ValueError: for a non-finite mean or a non-positive standard deviation.
    """

    def __init__(self, network: nn.Module, mean: float = 0.0, std: float = 1.0) -> None:
        super().__init__()
        if not math.isfinite(mean) or not (math.isfinite(std) and std > 0):
            raise ValueError(f"target mean must be finite and std > 0, got mean={mean}, std={std}")
        self.network = network
        self.register_buffer("target_mean", torch.tensor(float(mean)))
        self.register_buffer("target_std", torch.tensor(float(std)))

    @classmethod
    def fit(cls, network: nn.Module, targets: np.ndarray) -> StandardizedRegressor:
        """Wrap ``network`` with the mean and standard deviation of ``targets`` (the training rows only)."""
        y = np.asarray(targets, dtype=np.float64)
        if y.ndim != 1 or y.size < 2 or not np.isfinite(y).all():
            raise ValueError(f"need at least two finite training targets, got {y.size}")
        std = float(y.std(ddof=1))
        return cls(network, float(y.mean()), std if std > 0 else 1.0)

    def forward(self, image: Tensor, tabular: Tensor) -> Tensor:
        out = self.network(image, tabular)
        if out.dim() == 2 and out.shape[1] == 1:
            out = out[:, 0]
        return self.target_mean.to(out.dtype) + self.target_std.to(out.dtype) * out
