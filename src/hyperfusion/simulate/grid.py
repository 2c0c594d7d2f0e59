"""Output grids in MNI world coordinates: shape, voxel size and centre in mm, RAS axes.

Every volume the simulator writes is defined by a :class:`Grid`; the template is resampled through world
coordinates, so a 4 mm test grid and a 1 mm GPU grid run the same code.  Voxel ``(i, j, k)`` sits at
``x = centre + (index - (shape - 1) / 2) * voxel_mm`` (RAS, axis-aligned affine).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.interpolate import CubicSpline

# ICBM152 2009c brain-mask bounding box x -72..72, y -107..73, z -72..82 mm: 90x120x99 voxels at 1.75 mm
WHOLE_BRAIN_CENTER_MM = (0.0, -17.0, 5.0)
WHOLE_BRAIN_EXTENT_MM = (157.5, 210.0, 173.25)
# both hippocampal 64x96x64 mm crops centred at (+-25.9, -22.5, -14.5) mm, plus a 4 mm margin on every side
HIPPOCAMPUS_BOX_CENTER_MM = (0.0, -22.5, -14.5)
HIPPOCAMPUS_BOX_EXTENT_MM = (136.0, 104.0, 72.0)


@dataclass(frozen=True)
class Grid:
    """An axis-aligned RAS voxel grid.

    Args:
        shape: voxels along x (left→right), y (posterior→anterior), z (inferior→superior).
        voxel_mm: isotropic voxel size in mm.
        center_mm: world position of the grid centre.

    Raises:
        ValueError: on a non-positive voxel size or shape.
    """

    shape: tuple[int, int, int]
    voxel_mm: float
    center_mm: tuple[float, float, float]

    def __post_init__(self) -> None:
        if not (self.voxel_mm > 0 and math.isfinite(self.voxel_mm)):
            raise ValueError(f"voxel_mm must be a positive number, got {self.voxel_mm!r}")
        if len(self.shape) != 3 or any(int(s) < 1 for s in self.shape):
            raise ValueError(f"shape must be three positive integers, got {self.shape!r}")

    @classmethod
    def covering(cls, extent_mm: tuple[float, float, float], voxel_mm: float, center_mm) -> Grid:
        """The smallest grid of ``voxel_mm`` voxels whose field of view covers ``extent_mm`` (mm per axis)."""
        if not voxel_mm > 0:
            raise ValueError(f"voxel size must be positive, got {voxel_mm!r} mm")
        shape = tuple(max(1, math.ceil(e / voxel_mm - 1e-6)) for e in extent_mm)
        return cls(shape, float(voxel_mm), tuple(float(c) for c in center_mm))  # type: ignore[arg-type]

    @property
    def origin_mm(self) -> np.ndarray:
        """World position of voxel (0, 0, 0)."""
        return np.asarray(self.center_mm) - (np.asarray(self.shape) - 1) / 2 * self.voxel_mm

    @property
    def affine(self) -> np.ndarray:
        """4x4 voxel-to-world (RAS mm) matrix, as stored in the NIfTI header."""
        a = np.diag([self.voxel_mm, self.voxel_mm, self.voxel_mm, 1.0])
        a[:3, 3] = self.origin_mm
        return a

    def axes_mm(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """World coordinate of every voxel centre along each axis."""
        o = self.origin_mm
        return tuple(o[d] + np.arange(self.shape[d]) * self.voxel_mm for d in range(3))  # type: ignore[return-value]

    def points_mm(self) -> np.ndarray:
        """World coordinates of all voxel centres, shape (3, N), C order over (i, j, k)."""
        ax = self.axes_mm()
        g = np.meshgrid(*ax, indexing="ij")
        return np.stack([c.ravel() for c in g]).astype(np.float32)


def whole_brain_grid(voxel_mm: float) -> Grid:
    """Whole-brain grid around the ICBM152 brain; 90x120x99 at 1.75 mm, 40x53x44 at 4 mm."""
    return Grid.covering(WHOLE_BRAIN_EXTENT_MM, voxel_mm, WHOLE_BRAIN_CENTER_MM)


def hippocampus_box_grid(voxel_mm: float) -> Grid:
    """Box holding both hippocampal crops (like the reference's 64x96x128 region); 136x104x72 at 1 mm."""
    return Grid.covering(HIPPOCAMPUS_BOX_EXTENT_MM, voxel_mm, HIPPOCAMPUS_BOX_CENTER_MM)


def spline_matrix(knots_mm: np.ndarray, coords_mm: np.ndarray) -> np.ndarray:
    """Matrix ``B`` (len(coords), len(knots)) so that ``B @ v`` is the natural cubic spline through ``v``.

    Used to upsample coarse random control grids (anatomy, bias field) separably along each axis; coordinates
    outside the knots are clamped, so the field is constant beyond the control box.
    """
    c = np.clip(coords_mm, knots_mm[0], knots_mm[-1])
    return CubicSpline(knots_mm, np.eye(len(knots_mm)), bc_type="natural")(c).astype(np.float32)


def separable_field(control: np.ndarray, bx: np.ndarray, by: np.ndarray, bz: np.ndarray) -> np.ndarray:
    """Upsample a (..., kx, ky, kz) control grid with per-axis spline matrices to (..., nx, ny, nz)."""
    return np.einsum("...abc,ia,jb,kc->...ijk", control, bx, by, bz, optimize=True)
