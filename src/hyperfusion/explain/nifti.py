"""Maps in the space of the cropped model input, written as NIfTI with the affine that puts them back in the brain.

The data layer samples a crop on a RAS grid in world millimetres: voxel ``(i, j, k)`` of a crop with voxel size
``v``, shape ``n`` and centre ``c`` sits at ``x = c + (idx − (n − 1)/2)·v``. Its affine is therefore
``diag(v, v, v)`` with translation ``c − (n − 1)/2·v``.

The right hippocampus crop is mirrored along x after sampling (so that it takes the left one's orientation): its
voxel ``i`` is the unmirrored voxel ``n − 1 − i``, at ``x = c_x + (n − 1)/2·v − i·v``. Its affine's first column
is therefore ``(−v, 0, 0)`` with x translation ``c_x + (n − 1)/2·v``: a map computed on the mirrored crop,
saved with this affine, lands on the right hippocampus in world space in any viewer (which reads the x axis as
running right-to-left, LAS, for that file).

A whole-brain box without a fixed centre is centred on each image's centre of mass: its affine is per subject.
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import nibabel as nib
import numpy as np
from scipy import ndimage

from hyperfusion.atomic import write_bytes_atomic
from hyperfusion.data import ImageSpec, read_volume
from hyperfusion.data.images import center_of_mass_mm

Side = Literal["left", "right", "box"]


def sides(spec: ImageSpec) -> tuple[Side, ...]:
    """The views a spec makes, in the order of the model's views."""
    return ("left", "right") if spec.mode == "hippocampus" else ("box",)


def crop_affine(spec: ImageSpec, side: Side, center_mm: Sequence[float] | None = None) -> np.ndarray:
    """The 4×4 voxel → world (mm) matrix of one view of ``spec`` (see the module docstring).

    Args:
        spec: the run's image spec.
        side: ``"left"``/``"right"`` (hippocampus mode) or ``"box"``.
        center_mm: the box centre for a box without a fixed one (the image's centre of mass).

    Raises:
        ValueError: a side the spec does not make, or a box without a centre.
    """
    if side not in sides(spec):
        raise ValueError(f"an image spec of mode {spec.mode!r} has views {sides(spec)}, not {side!r}")
    if side == "left":
        center = np.asarray(spec.left_center_mm, dtype=np.float64)
    elif side == "right":
        center = np.asarray(spec.right_center_mm, dtype=np.float64)
    else:
        chosen = spec.center_mm if spec.center_mm is not None else center_mm
        if chosen is None:
            raise ValueError("this box is centred on each image's centre of mass: give center_mm")
        center = np.asarray(chosen, dtype=np.float64)
    half = (np.asarray(spec.shape, dtype=np.float64) - 1) / 2.0 * spec.voxel_mm
    affine = np.diag([spec.voxel_mm, spec.voxel_mm, spec.voxel_mm, 1.0])
    affine[:3, 3] = center - half
    if side == "right":
        affine[0, 0] = -spec.voxel_mm
        affine[0, 3] = center[0] + half[0]
    return affine


def image_center_mm(spec: ImageSpec, image_path: str | Path) -> np.ndarray | None:
    """The centre the data layer used for a box view of this image (None when the spec fixes it)."""
    if spec.mode == "hippocampus" or spec.center_mm is not None:
        return None
    data, affine = read_volume(image_path)
    return center_of_mass_mm(data, affine)


def nifti_bytes(volume: np.ndarray, affine: np.ndarray) -> bytes:
    """A float32 NIfTI-1 image (qform and sform = ``affine``, MNI code, mm units) as .nii.gz bytes."""
    image = nib.Nifti1Image(np.asarray(volume, dtype=np.float32), affine)
    image.header.set_xyzt_units("mm")
    image.set_qform(affine, code=4)
    image.set_sform(affine, code=4)
    return gzip.compress(image.to_bytes(), compresslevel=6, mtime=0)


def write_map(path: str | Path, volume: np.ndarray, affine: np.ndarray) -> Path:
    """Write a map as .nii.gz atomically."""
    return write_bytes_atomic(path, nifti_bytes(volume, affine))


def labels_in_crop(
    labels: np.ndarray, labels_affine: np.ndarray, spec: ImageSpec, side: Side, center_mm=None
) -> np.ndarray:
    """A label image (e.g. an atlas in MNI space) sampled on one view's voxels, nearest neighbour.

    The view's own affine (:func:`crop_affine`, mirroring included) says where each voxel is in the world, so the
    labels line up with the crop exactly as the data layer built it. Voxels outside the label image get 0.
    """
    affine = crop_affine(spec, side, center_mm)
    ijk = np.indices(spec.shape).reshape(3, -1).astype(np.float64)
    world = affine[:3, :3] @ ijk + affine[:3, 3:4]
    inverse = np.linalg.inv(labels_affine)
    source = inverse[:3, :3] @ world + inverse[:3, 3:4]
    values = ndimage.map_coordinates(np.asarray(labels), source, order=0, mode="grid-constant", cval=0)
    return values.reshape(spec.shape)
