"""Tiny toy data and models for the training-engine tests (4³ images, a few features)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

SIDE = 4
N_FEATURES = 3


class ToyDataset(Dataset):
    """Items ``(image [1, 4, 4, 4] or [S, 1, 4, 4, 4], tabular [3], target, subject_id)``."""

    def __init__(
        self,
        images: torch.Tensor,
        tabular: torch.Tensor,
        targets: torch.Tensor,
        *,
        expose_targets: bool = True,
    ) -> None:
        self.images, self.tabular, self._targets = images, tabular, targets
        if expose_targets:
            self.targets = targets.numpy()

    def __len__(self) -> int:
        return len(self._targets)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, str]:
        return self.images[i], self.tabular[i], self._targets[i], f"sub-{i:03d}"


def classification_data(n: int, seed: int, *, views: int = 0, flip: bool = False) -> ToyDataset:
    """Class = argmax of a fixed linear map of the tabular features (learnable); ``flip`` relabels c → (c + 1) mod 3."""
    g = torch.Generator().manual_seed(seed)
    tab = torch.randn(n, N_FEATURES, generator=g)
    w = torch.tensor([[2.0, -1.0, 0.0], [0.0, 2.0, -1.0], [-1.0, 0.0, 2.0]])
    y = (tab @ w.T).argmax(dim=1)
    if flip:
        y = (y + 1) % 3
    shape = (n, views, 1, SIDE, SIDE, SIDE) if views else (n, 1, SIDE, SIDE, SIDE)
    images = torch.randn(*shape, generator=g)
    return ToyDataset(images, tab, y)


def regression_data(n: int, seed: int) -> ToyDataset:
    g = torch.Generator().manual_seed(seed)
    tab = torch.randn(n, N_FEATURES, generator=g)
    images = torch.randn(n, 1, SIDE, SIDE, SIDE, generator=g)
    y = 3 + 2 * tab[:, 0] - 1.5 * tab[:, 1] + images.mean(dim=(1, 2, 3, 4))
    return ToyDataset(images, tab, y.float())


class ToyNet(nn.Module):
    """conv3d → global mean, concatenated with the tabular features → BatchNorm → linear head."""

    def __init__(self, n_out: int = 3, *, batchnorm: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv3d(1, 2, 3, padding=1)
        self.norm = nn.BatchNorm1d(2 + N_FEATURES) if batchnorm else nn.Identity()
        self.hidden = nn.Linear(2 + N_FEATURES, 16)
        self.head = nn.Linear(16, n_out)
        self.n_out = n_out

    def forward(self, image: torch.Tensor, tabular: torch.Tensor) -> torch.Tensor:
        x = torch.cat([self.conv(image).mean(dim=(2, 3, 4)), tabular], dim=1)
        out = self.head(torch.relu(self.hidden(self.norm(x))))
        return out[:, 0] if self.n_out == 1 else out


def targets_of(ds: ToyDataset) -> np.ndarray:
    return ds._targets.numpy()
