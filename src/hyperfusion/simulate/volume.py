"""Multi-channel images on axis-aligned world grids, sampled at arbitrary world points.

A thin wrapper over ``torch.nn.functional.grid_sample`` (trilinear, ``align_corners=True``, zero outside), the
one interpolation primitive of the simulator: warping the template, reading displacement fields and measuring
warped structure volumes all go through :meth:`Volume.sample`.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from threadpoolctl import ThreadpoolController

from hyperfusion.simulate import kernels


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run torch, BLAS and OpenMP on one thread inside the block.

    The simulator's arrays are small enough that a second thread mostly waits, and processes are how it uses
    more cores.  Limiting BLAS matters as much as torch: measured here, OpenBLAS's idle threads spun on a second
    core after every small matrix product (twice the CPU time per subject at the same wall time), so two pool
    workers ran at half speed each.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with _thread_pools().limit(limits=1):
            yield
    finally:
        torch.set_num_threads(before)


@functools.lru_cache(maxsize=1)
def _thread_pools() -> ThreadpoolController:
    """The process's BLAS/OpenMP pools, found once (a fresh search costs about 1 ms; ``limit`` on it, 35 µs)."""
    return ThreadpoolController()


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
        return self.sample_grid(self.to_grid(points_mm)).numpy()

    def to_grid(self, points_mm: np.ndarray) -> torch.Tensor:
        """World points (3, N) as ``grid_sample`` coordinates of this grid: (N, 3) float32, last axis first."""
        scale = 2.0 / (self.voxel_mm * np.maximum(np.asarray(self.shape) - 1, 1))
        norm = (np.asarray(points_mm, dtype=np.float32) - self.origin[:, None].astype(np.float32)) * scale[
            :, None
        ].astype(np.float32) - np.float32(1.0)
        return torch.from_numpy(np.ascontiguousarray(norm[::-1].T))

    def sample_grid(self, grid: torch.Tensor) -> torch.Tensor:
        """Trilinear values at ``grid_sample`` coordinates (N, 3) -> (C, N); zero outside the grid."""
        out = F.grid_sample(
            self.data[None],
            grid.reshape(1, -1, 1, 1, 3),
            mode="bilinear",
            padding_mode="zeros",
            align_corners=True,
        )
        return out.reshape(self.data.shape[0], -1)


@dataclass(frozen=True, eq=False)
class CellMask:
    """The cells of a grid in which a trilinear sample can be non-zero: those with a flagged node at a corner.

    A point in an unflagged cell reads exactly zero (its eight corners are), so the fast path skips it: the flow
    leaves points where the velocity is zero, the image leaves points outside the brain.  ``table`` covers the cells
    from index -1 to ``shape - 1`` on each axis (the half-cells outside the grid read its edge nodes).
    """

    table: np.ndarray
    origin: np.ndarray
    voxel_mm: float

    @classmethod
    def of_nodes(cls, nodes: np.ndarray, origin, voxel_mm: float) -> CellMask:
        """The cell mask of a boolean node image (X, Y, Z)."""
        padded = np.pad(np.asarray(nodes, dtype=bool), 1)
        x, y, z = (s + 1 for s in nodes.shape)
        table = np.zeros((x, y, z), bool)
        for dx in (0, 1):
            for dy in (0, 1):
                for dz in (0, 1):
                    table |= padded[dx : dx + x, dy : dy + y, dz : dz + z]
        return cls(table, np.asarray(origin, dtype=np.float64), float(voxel_mm))

    def contains(self, points_mm: np.ndarray) -> np.ndarray:
        """Boolean (N,): which world points (3, N) lie in a flagged cell."""
        return kernels.in_cells(self.table, self.origin, self.voxel_mm, np.asarray(points_mm))


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
