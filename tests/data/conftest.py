"""Fixtures for the data-layer tests: tiny NIfTI files of a synthetic head, written by the tests themselves."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

HIPPOCAMPI = ((-26.0, -22.0, -14.0), (26.0, -22.0, -14.0))
#: An asymmetric landmark inside the left crop (lateral-anterior of the left hippocampus).
MARKER = (-44.0, 8.0, 0.0)


def head(world: np.ndarray, *, marker: bool = True) -> np.ndarray:
    """A synthetic skull-stripped head evaluated at world points ``[3, ...]`` (mm, RAS).

    Brain ellipsoid around (0, −17, 5) with a smooth antero-posterior gradient, brighter hippocampal
    ellipsoids at (∓26, −22, −14), and optionally a bright marker blob on the left only.
    """
    x, y, z = world
    brain = ((x / 70) ** 2 + ((y + 17) / 88) ** 2 + ((z - 5) / 68) ** 2) <= 1
    out = np.where(brain, 1.0 + (y + 110) / 300 + 0.2 * np.sin(z / 9.0), 0.0)
    for cx, cy, cz in HIPPOCAMPI:
        hippo = (((x - cx) / 6) ** 2 + ((y - cy) / 17) ** 2 + ((z - cz) / 8) ** 2) <= 1
        out = np.where(hippo & brain, 3.0, out)
    if marker:
        blob = ((x - MARKER[0]) ** 2 + (y - MARKER[1]) ** 2 + (z - MARKER[2]) ** 2) <= 6.0**2
        out = np.where(blob & brain, 6.0, out)
    return out.astype(np.float32)


def render(shape: Sequence[int], affine: np.ndarray, *, marker: bool = True) -> np.ndarray:
    """The synthetic head sampled at the voxel centres of a grid."""
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")).reshape(3, -1)
    world = affine[:3, :3] @ ijk + affine[:3, 3:4]
    return head(world, marker=marker).reshape(tuple(shape))


def ras_affine(voxel_mm: float, origin: Sequence[float]) -> np.ndarray:
    affine = np.diag([voxel_mm, voxel_mm, voxel_mm, 1.0])
    affine[:3, 3] = origin
    return affine


def write_nifti(path: Path, data: np.ndarray, affine: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(data, dtype=np.float32), affine), str(path))
    return path


@pytest.fixture
def head_file(tmp_path: Path) -> Callable[..., Path]:
    """Write the synthetic head on a 4 mm RAS grid covering x −80…80, y −120…88, z −68…88 mm."""

    def make(name: str = "head.nii.gz", *, voxel_mm: float = 4.0, marker: bool = True) -> Path:
        shape = (int(160 / voxel_mm) + 1, int(208 / voxel_mm) + 1, int(156 / voxel_mm) + 1)
        affine = ras_affine(voxel_mm, (-80.0, -120.0, -68.0))
        return write_nifti(tmp_path / name, render(shape, affine, marker=marker), affine)

    return make
