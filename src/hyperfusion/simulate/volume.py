"""Multi-channel images on axis-aligned world grids, sampled at arbitrary world points.

A thin wrapper over ``torch.nn.functional.grid_sample`` (trilinear, ``align_corners=True``, zero outside), the
one interpolation primitive of the simulator: warping the template, reading displacement fields and measuring
warped structure volumes all go through :meth:`Volume.sample`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage


@dataclass(frozen=True, eq=False)
class Volume:
    """``data`` (C, X, Y, Z) float32 on a RAS grid whose voxel (0, 0, 0) is at ``origin`` (mm)."""

    data: torch.Tensor
    origin: np.ndarray
    voxel_mm: float

    @classmethod
    def from_numpy(cls, channels: np.ndarray, origin, voxel_mm: float) -> Volume:
        arr = np.ascontiguousarray(channels, dtype=np.float32)
        if arr.ndim != 4:
            raise ValueError(f"expected channels of shape (C, X, Y, Z), got {arr.shape}")
        return cls(torch.from_numpy(arr), np.asarray(origin, dtype=np.float64), float(voxel_mm))

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.data.shape[1:])  # type: ignore[return-value]

    def sample(self, points_mm: np.ndarray) -> np.ndarray:
        """Trilinear values at world points (3, N) -> (C, N); zero outside the grid."""
        pts = np.asarray(points_mm, dtype=np.float64)
        size = np.maximum(np.asarray(self.shape) - 1, 1)[:, None]
        norm = (pts - self.origin[:, None]) / (self.voxel_mm * size) * 2.0 - 1.0
        grid = torch.from_numpy(norm[::-1].T.astype(np.float32).copy()).reshape(1, 1, 1, -1, 3)
        out = F.grid_sample(self.data[None], grid, mode="bilinear", padding_mode="zeros", align_corners=True)
        return out.reshape(self.data.shape[0], -1).numpy()


def block_mean(arr: np.ndarray, factor: int) -> np.ndarray:
    """Average non-overlapping ``factor``³ blocks of the last three axes (trailing remainder dropped).

    Exact volumes: the sum of a block-averaged occupancy map times the new voxel volume equals the original.
    """
    if factor == 1:
        return arr.astype(np.float32)
    *lead, x, y, z = arr.shape
    nx, ny, nz = x // factor, y // factor, z // factor
    a = arr[..., : nx * factor, : ny * factor, : nz * factor].astype(np.float32)
    return a.reshape(*lead, nx, factor, ny, factor, nz, factor).mean(axis=(-5, -3, -1))


def antialias(arr: np.ndarray, from_mm: float, to_mm: float) -> np.ndarray:
    """Gaussian pre-filter before resampling from ``from_mm`` to coarser ``to_mm`` voxels.

    sigma = sqrt(to² - from²) / 2.355 mm, i.e. the blur that turns a ``from_mm`` point spread into one of FWHM
    ``to_mm``; identity when not downsampling.
    """
    if to_mm <= from_mm * 1.01:
        return arr
    sigma = np.sqrt(to_mm**2 - from_mm**2) / 2.355 / from_mm
    return ndimage.gaussian_filter(arr, sigma=[0] * (arr.ndim - 3) + [sigma] * 3, mode="constant")
