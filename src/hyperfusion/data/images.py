"""NIfTI volumes → model inputs: resampling onto a box in world millimetres, crops, z-scoring (paper §4.2.3, §4.3.2).

Every output is a regular grid in RAS world coordinates: voxel ``(i, j, k)`` of a box with voxel size ``v``,
shape ``n`` and centre ``c`` (mm) sits at

    x = c + (idx − (n − 1) / 2) · v        (per axis, RAS: +x right, +y anterior, +z superior)

and takes the source value at voxel ``A⁻¹ x`` (``A`` the source affine), by trilinear interpolation, zero
outside the source. One interpolation therefore reorients to RAS, resamples to ``v`` and crops/pads to the
box, and a box placed by a centre in mm lands on the same anatomy on any grid of a registered image.
Outputs are z-scored over their non-zero voxels: z = (x − mean) / std, background stays 0.

Because placement is by world millimetres, a header that lies about the geometry silently crops the wrong
anatomy. `check_brain_extent` therefore compares the brain's extent in mm (the bounding box of the non-zero
voxels) with the MNI template brain's and fails when it is far off: a doubled voxel size, an image that was
never registered to MNI space.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import nibabel as nib
import numpy as np
from nibabel.filebasedimages import ImageFileError
from scipy import ndimage

Vec3 = tuple[float, float, float]
#: Default hippocampal crop centres in MNI mm (CerebrA centroids ≈ (∓25.9, −22.5, −14.5)).
LEFT_HIPPOCAMPUS_MM: Vec3 = (-26.0, -22.0, -14.0)
RIGHT_HIPPOCAMPUS_MM: Vec3 = (26.0, -22.0, -14.0)
#: Bounding box (mm) of the MNI ICBM152 2009c brain mask: x −72…72, y −107…73, z −72…82, plus one voxel.
MNI_BRAIN_EXTENT_MM: Vec3 = (145.0, 181.0, 155.0)
MNI_BRAIN_CENTER_MM: Vec3 = (0.0, -17.0, 5.0)
#: A brain more than this many times the template's size along an axis (or less than its inverse, where
#: the image does not cut the brain off) fails. Registered brains measure close to 1 (simulated cohorts:
#: 0.98–1.03), native-space adult brains about 0.8–1.0, and the whole standard MNI field of view (182×218×182
#: mm, e.g. an image that was not skull-stripped) 1.26 at most; a doubled voxel size measures 2.0, a halved 0.5.
EXTENT_RATIO_LIMIT = 1.5
#: The brain's centre may sit at most this fraction of the template's extent from the template's centre
#: (36, 45, 39 mm) along an axis where the image does not cut it off; an image whose origin is a corner of
#: the grid (no orientation in the header) is off by ~90 mm or more.
CENTER_OFFSET_LIMIT = 0.25


@dataclass(frozen=True)
class ImageSpec:
    """How one NIfTI becomes a model input (part of the cache key, so every field matters).

    Args:
        mode: ``"box"`` — one whole-brain box (paper: 90×120×99 at 1.75 mm); ``"hippocampus"`` — two crops
            (paper: 64×96×64 at 1 mm), left and mirrored right, stacked as ``[2, D, H, W]``.
        voxel_mm: output voxel size in mm (isotropic).
        shape: output box (box mode) or crop (hippocampus mode) shape in voxels, RAS axis order.
        center_mm: box centre in world mm; None = the centre of mass of the image's non-zero voxels.
        left_center_mm, right_center_mm: hippocampal crop centres in world mm.
        zscore: standardise each output over its non-zero voxels.
        max_cut_fraction: box mode pads with zeros where the box leaves the image, but fails when more than
            this fraction of the image's non-zero (brain) voxels falls outside the box.
        check_extent: `preprocess_image` fails on a brain whose size or position in mm is far from the MNI
            template brain's (`check_brain_extent`); turn off for images deliberately outside MNI space.

    Raises:
        ValueError: a non-positive voxel size or shape, a wrong-length vector, an unknown mode.

    Example:
        >>> ImageSpec.hippocampus(voxel_mm=4.0, shape=(16, 24, 16)).mode
        'hippocampus'
    """

    mode: Literal["box", "hippocampus"] = "box"
    voxel_mm: float = 1.75
    shape: tuple[int, int, int] = (90, 120, 99)
    center_mm: Vec3 | None = None
    left_center_mm: Vec3 = LEFT_HIPPOCAMPUS_MM
    right_center_mm: Vec3 = RIGHT_HIPPOCAMPUS_MM
    zscore: bool = True
    max_cut_fraction: float = 0.01
    check_extent: bool = True

    def __post_init__(self) -> None:
        if self.mode not in ("box", "hippocampus"):
            raise ValueError(f"ImageSpec.mode must be 'box' or 'hippocampus', got {self.mode!r}")
        if not (isinstance(self.voxel_mm, (int, float)) and np.isfinite(self.voxel_mm) and self.voxel_mm > 0):
            raise ValueError(f"ImageSpec.voxel_mm must be a positive number, got {self.voxel_mm!r}")
        shape = tuple(self.shape)
        if len(shape) != 3 or not all(isinstance(s, (int, np.integer)) and s > 0 for s in shape):
            raise ValueError(f"ImageSpec.shape must be three positive integers, got {self.shape!r}")
        object.__setattr__(self, "shape", tuple(int(s) for s in shape))
        object.__setattr__(self, "voxel_mm", float(self.voxel_mm))
        for name in ("center_mm", "left_center_mm", "right_center_mm"):
            value = getattr(self, name)
            if value is None and name == "center_mm":
                continue
            vec = tuple(float(v) for v in value)
            if len(vec) != 3 or not all(np.isfinite(vec)):
                raise ValueError(f"ImageSpec.{name} must be three finite numbers (mm), got {value!r}")
            object.__setattr__(self, name, vec)
        if not 0 <= self.max_cut_fraction <= 1:
            raise ValueError(f"ImageSpec.max_cut_fraction must be in [0, 1], got {self.max_cut_fraction!r}")
        if not isinstance(self.check_extent, bool):
            raise ValueError(f"ImageSpec.check_extent must be True or False, got {self.check_extent!r}")

    @classmethod
    def whole_brain(
        cls, voxel_mm: float = 1.75, shape: Sequence[int] = (90, 120, 99), center_mm: Vec3 | None = None
    ) -> ImageSpec:
        """The brain-age input (paper §4.2.3): one box centred on the brain's centre of mass by default."""
        return cls(mode="box", voxel_mm=voxel_mm, shape=tuple(shape), center_mm=center_mm)

    @classmethod
    def hippocampus(
        cls,
        voxel_mm: float = 1.0,
        shape: Sequence[int] = (64, 96, 64),
        left_center_mm: Vec3 = LEFT_HIPPOCAMPUS_MM,
        right_center_mm: Vec3 = RIGHT_HIPPOCAMPUS_MM,
    ) -> ImageSpec:
        """The AD input (paper §3.5.2, §4.3.2): left and mirrored right hippocampal crops."""
        return cls(
            mode="hippocampus",
            voxel_mm=voxel_mm,
            shape=tuple(shape),
            left_center_mm=left_center_mm,
            right_center_mm=right_center_mm,
        )

    @property
    def output_shape(self) -> tuple[int, ...]:
        """Shape of `preprocess_image`'s array: ``shape`` or ``(2, *shape)``."""
        return self.shape if self.mode == "box" else (2, *self.shape)

    def to_dict(self) -> dict:
        """JSON-able fields (the cache key and a run's record of its preprocessing)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def read_volume(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Load a 3D NIfTI as (float32 array, 4×4 voxel→world affine), checking it is usable.

    Raises:
        FileNotFoundError: no such file.
        ValueError: unreadable or truncated file, a colour (RGB) image, a 4D image (a trailing axis of length 1
            is accepted), NaN or Inf voxels or values beyond float32, an all-zero image — each naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file {path} does not exist")
    unreadable = (ImageFileError, OSError, EOFError, ValueError, zlib.error)
    try:
        image = nib.load(str(path))
    except unreadable as err:
        raise ValueError(f"cannot read NIfTI {path} (unreadable or truncated): {err}") from None
    stored = image.get_data_dtype()
    if stored.fields is not None or stored.kind not in "biuf":  # RGB24 / RGBA32: a colour image
        raise ValueError(
            f"{path}: a colour image (stored as {stored}), not a grey-scale T1; convert it to one channel"
        )
    try:
        values = np.asarray(image.dataobj)  # as stored and scaled, before any narrowing
        affine = np.asarray(image.affine, dtype=np.float64)
    except unreadable as err:
        raise ValueError(f"cannot read NIfTI {path} (unreadable or truncated): {err}") from None
    data = _float32(values, path)
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise ValueError(
            f"{path}: expected a 3D image, got shape {data.shape} (a 4D series? pick one volume)"
        )
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise ValueError(f"{path}: the affine is singular or not finite:\n{affine}")
    if not np.any(data):
        raise ValueError(f"{path}: every voxel is zero (empty image)")
    return data, affine


def _float32(values: np.ndarray, path: Path) -> np.ndarray:
    """The voxels as float32, refusing NaN/Inf and values beyond float32's range (they would become Inf)."""
    values = np.asarray(values)
    if values.dtype.kind == "f":
        bad = ~np.isfinite(values)
        if bad.any():
            raise ValueError(f"{path}: {int(bad.sum())} voxel(s) are NaN or Inf")
        largest, limit = float(np.abs(values).max()) if values.size else 0.0, float(np.finfo(np.float32).max)
        if largest > limit:
            raise ValueError(
                f"{path}: intensities up to {largest:.3g} exceed the float32 range (±{limit:.3g}) "
                "the models compute in; rescale the image (or check its header's scl_slope)"
            )
    return values.astype(np.float32, copy=False)


def grid_points(shape: Sequence[int], voxel_mm: float, center_mm: Sequence[float]) -> np.ndarray:
    """World coordinates (mm) of a box's voxels, shape ``[3, *shape]`` (see the module docstring)."""
    axes = [
        float(c) + (np.arange(n, dtype=np.float64) - (n - 1) / 2.0) * voxel_mm
        for n, c in zip(shape, center_mm, strict=True)
    ]
    return np.stack(np.meshgrid(*axes, indexing="ij"))


def sample_box(
    data: np.ndarray, affine: np.ndarray, shape: Sequence[int], voxel_mm: float, center_mm: Sequence[float]
) -> np.ndarray:
    """Trilinear samples of ``data`` on a RAS box in world mm; zero outside the image. float32 ``shape``."""
    world = grid_points(shape, voxel_mm, center_mm).reshape(3, -1)
    inverse = np.linalg.inv(affine)
    voxels = inverse[:3, :3] @ world + inverse[:3, 3:4]
    out = ndimage.map_coordinates(data, voxels, order=1, mode="grid-constant", cval=0.0, prefilter=False)
    return out.reshape(tuple(shape)).astype(np.float32)


def center_of_mass_mm(data: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """World position (mm) of the mean of the non-zero voxels (the brain mask's centre of mass)."""
    ijk = np.argwhere(data != 0).mean(axis=0)
    return affine[:3, :3] @ ijk + affine[:3, 3]


def field_of_view_mm(data: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) world corners (mm) of the image's voxel centres, axis-aligned bounding box."""
    corners = np.array(np.meshgrid(*[[0, n - 1] for n in data.shape], indexing="ij")).reshape(3, -1)
    world = affine[:3, :3] @ corners + affine[:3, 3:4]
    return world.min(axis=1), world.max(axis=1)


def zscore_nonzero(volume: np.ndarray, *, source: str = "image") -> np.ndarray:
    """z = (x − mean) / std over the non-zero voxels; zero voxels stay 0 (paper §4.2.3).

    Raises:
        ValueError: no non-zero voxel, or a constant non-zero region (std 0).
    """
    mask = volume != 0
    if not mask.any():
        raise ValueError(f"{source}: the output box holds no non-zero voxel (is the box on the brain?)")
    values = volume[mask].astype(np.float64)
    std = values.std()
    if std == 0:
        raise ValueError(
            f"{source}: the non-zero voxels of the output box are constant ({values[0]}); cannot z-score"
        )
    out = np.zeros_like(volume, dtype=np.float32)
    out[mask] = ((values - values.mean()) / std).astype(np.float32)
    return out


def preprocess_image(path: str | Path, spec: ImageSpec) -> np.ndarray:
    """One NIfTI → its model input as float32: ``spec.shape`` (box) or ``[2, *spec.shape]`` (left, mirrored right).

    Raises:
        FileNotFoundError, ValueError: see `read_volume`; also a brain far from the MNI template's extent
            (`check_brain_extent`, unless ``spec.check_extent`` is off), a box that cuts off more than
            ``spec.max_cut_fraction`` of the brain, or a hippocampal crop that leaves the image.
    """
    data, affine = read_volume(path)
    if spec.check_extent:
        check_brain_extent(data, affine, source=str(path))
    return preprocess_volume(data, affine, spec, source=str(path))


def brain_extent_mm(data: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(size, centre, cut) of the non-zero voxels' bounding box in world mm, per RAS axis.

    The size counts whole voxels (the span of the voxel centres plus one voxel). ``cut`` marks the world axes
    along which the non-zero voxels reach the edge of the image, where the brain may continue beyond it.
    """
    mask = data != 0
    ijk = np.argwhere(mask).T
    world = affine[:3, :3] @ ijk + affine[:3, 3:4]
    low, high = world.min(axis=1), world.max(axis=1)
    size = high - low + np.abs(affine[:3, :3]).sum(axis=1)
    cut = np.zeros(3, dtype=bool)
    for axis in range(3):
        edge = ijk[axis].min() == 0 or ijk[axis].max() == data.shape[axis] - 1
        if edge:
            cut[int(np.argmax(np.abs(affine[:3, axis])))] = True  # the world axis this voxel axis runs along
    return size, (low + high) / 2.0, cut


def check_brain_extent(data: np.ndarray, affine: np.ndarray, *, source: str = "image") -> None:
    """Fail when the brain's size or position in mm is far from the MNI template brain's.

    Along each RAS axis: size / template size above `EXTENT_RATIO_LIMIT` fails; below its inverse, or a
    centre more than `CENTER_OFFSET_LIMIT` × the template's extent from the template's centre, fails unless
    the brain reaches the image's edge along that axis (a cropped image, e.g. a box around the hippocampi).

    Raises:
        ValueError: naming the file, the measured extent and centre in mm, the template's, and the likely
            causes (a wrong voxel size in the header, an image not registered to MNI).
    """
    size, centre, cut = brain_extent_mm(data, affine)
    template = np.asarray(MNI_BRAIN_EXTENT_MM)
    ratio = size / template
    offset = np.abs(centre - np.asarray(MNI_BRAIN_CENTER_MM))
    too_big = ratio > EXTENT_RATIO_LIMIT
    too_small = ~cut & (ratio < 1.0 / EXTENT_RATIO_LIMIT)
    astray = ~cut & (offset > CENTER_OFFSET_LIMIT * template)
    if not (too_big.any() or too_small.any() or astray.any()):
        return
    axes = np.array(["x", "y", "z"])
    problems = []
    if too_big.any() or too_small.any():
        bad = too_big | too_small
        problems.append(
            f"its size along {'/'.join(axes[bad])} is {'/'.join(f'{r:.2f}' for r in ratio[bad])} times the "
            f"template's (allowed {1 / EXTENT_RATIO_LIMIT:.2f}–{EXTENT_RATIO_LIMIT:.2f})"
        )
    if astray.any():
        problems.append(
            f"its centre is {'/'.join(f'{o:.0f}' for o in offset[astray])} mm off the template's along "
            f"{'/'.join(axes[astray])}"
        )
    voxel = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    raise ValueError(
        f"{source}: the brain (non-zero voxels) measures {_mm(size)} mm centred at {_mm(centre)} mm, but an "
        f"MNI-registered brain measures about {_mm(template)} mm centred at {_mm(MNI_BRAIN_CENTER_MM)} mm: "
        f"{' and '.join(problems)}. The header's voxel size ({_mm(voxel, None)} mm) may be wrong, or the image "
        "is not registered to MNI space (register it; or turn the check off with image.check_extent: false "
        "for images deliberately in another space)"
    )


def _mm(values: Sequence[float], digits: int | None = 0) -> str:
    """``(x, y, z)`` in whole mm, or with ``digits=None`` as written (``:g``)."""
    return "(" + ", ".join(f"{v:g}" if digits is None else f"{v:.{digits}f}" for v in values) + ")"


def preprocess_volume(
    data: np.ndarray, affine: np.ndarray, spec: ImageSpec, *, source: str = "image"
) -> np.ndarray:
    """`preprocess_image` on an array already in memory (``source`` names it in errors)."""
    if spec.mode == "box":
        center = center_of_mass_mm(data, affine) if spec.center_mm is None else np.asarray(spec.center_mm)
        _check_brain_inside(data, affine, spec, center, source)
        out = sample_box(data, affine, spec.shape, spec.voxel_mm, center)
        return zscore_nonzero(out, source=source) if spec.zscore else out
    crops = []
    for side, center in (("left", spec.left_center_mm), ("right", spec.right_center_mm)):
        _check_crop_inside(data, affine, spec, center, side, source)
        crop = sample_box(data, affine, spec.shape, spec.voxel_mm, center)
        if side == "right":
            crop = crop[::-1].copy()  # mirror x so the right hippocampus takes the left one's orientation
        crops.append(zscore_nonzero(crop, source=f"{source} ({side} crop)") if spec.zscore else crop)
    return np.stack(crops)


def _box_bounds(spec: ImageSpec, center: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    half = (np.asarray(spec.shape, dtype=np.float64) - 1) / 2.0 * spec.voxel_mm
    return np.asarray(center) - half, np.asarray(center) + half


def _check_crop_inside(
    data: np.ndarray, affine: np.ndarray, spec: ImageSpec, center: Sequence[float], side: str, source: str
) -> None:
    low, high = _box_bounds(spec, center)
    fov_low, fov_high = field_of_view_mm(data, affine)
    tolerance = np.abs(affine[:3, :3]).max(axis=1) / 2.0  # half a source voxel
    if np.any(low < fov_low - tolerance) or np.any(high > fov_high + tolerance):
        raise ValueError(
            f"{source}: image (shape {data.shape}, field of view {np.round(fov_low, 1).tolist()} to "
            f"{np.round(fov_high, 1).tolist()} mm) is smaller than the {side} crop box "
            f"{np.round(low, 1).tolist()} to {np.round(high, 1).tolist()} mm "
            f"({spec.shape} voxels of {spec.voxel_mm} mm at {list(center)})"
        )


def _check_brain_inside(
    data: np.ndarray, affine: np.ndarray, spec: ImageSpec, center: Sequence[float], source: str
) -> None:
    ijk = np.argwhere(data != 0).T
    world = affine[:3, :3] @ ijk + affine[:3, 3:4]
    low, high = _box_bounds(spec, center)
    margin = spec.voxel_mm / 2.0
    outside = np.any((world < (low - margin)[:, None]) | (world > (high + margin)[:, None]), axis=0)
    fraction = float(outside.mean())
    if fraction > spec.max_cut_fraction:
        raise ValueError(
            f"{source}: the box ({spec.shape} voxels of {spec.voxel_mm} mm at {np.round(center, 1).tolist()} mm) "
            f"cuts off {fraction:.1%} of the non-zero voxels (limit {spec.max_cut_fraction:.1%}); "
            "enlarge the box or check the image's registration"
        )
