"""The crop affines put every voxel of a crop back where the data layer sampled it (mirrored right crop included)."""

from __future__ import annotations

import dataclasses

import nibabel as nib
import numpy as np
import pytest

from hyperfusion.data import ImageSpec, preprocess_volume
from hyperfusion.explain.nifti import crop_affine, labels_in_crop, write_map
from tests.faults import fault


def coordinate_volume(axis: int) -> tuple[np.ndarray, np.ndarray]:
    """A 2 mm LPS-oriented volume (a header the data layer must reorient) whose value is world coordinate ``axis``
    plus 200 (so that no voxel is zero)."""
    affine = np.array([[-2.0, 0, 0, 90], [0, -2.0, 0, 110], [0, 0, 2.0, -80], [0, 0, 0, 1]])
    ijk = np.indices((91, 110, 82)).reshape(3, -1)
    world = affine[:3, :3] @ ijk + affine[:3, 3:4]
    return (world[axis] + 200).reshape(91, 110, 82).astype(np.float32), affine


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_each_crop_voxel_sits_where_its_affine_says(axis):
    data, affine = coordinate_volume(axis)
    spec = ImageSpec.hippocampus(voxel_mm=3.0, shape=(6, 8, 5), left_center_mm=(-25, -21, -14),
                                 right_center_mm=(27, -20, -13))  # fmt: skip
    crops = preprocess_volume(data, affine, dataclasses.replace(spec, zscore=False), source="coords")
    ijk = np.indices(spec.shape).reshape(3, -1)
    for crop, side in zip(crops, ("left", "right")):
        world = crop_affine(spec, side)[:3, :3] @ ijk + crop_affine(spec, side)[:3, 3:4]
        np.testing.assert_allclose(crop.reshape(-1), world[axis] + 200, rtol=0, atol=1e-3)


def test_right_crop_affine_flips_x():
    spec = ImageSpec.hippocampus(voxel_mm=1.0, shape=(64, 96, 64))
    left, right = crop_affine(spec, "left"), crop_affine(spec, "right")
    assert left[0, 0] == 1.0 and right[0, 0] == -1.0
    # voxel 0 of the mirrored right crop is its most lateral (rightmost) voxel
    assert right[0, 3] == pytest.approx(spec.right_center_mm[0] + 31.5)
    assert left[0, 3] == pytest.approx(spec.left_center_mm[0] - 31.5)


def test_written_map_reads_back_with_its_affine(tmp_path):
    spec = ImageSpec.whole_brain(voxel_mm=4.0, shape=(5, 6, 7), center_mm=(1.0, -17.0, 5.0))
    volume = np.random.default_rng(0).normal(size=spec.shape).astype(np.float32)
    path = write_map(tmp_path / "map.nii.gz", volume, crop_affine(spec, "box"))
    image = nib.load(path)
    np.testing.assert_array_equal(np.asarray(image.dataobj), volume)
    np.testing.assert_allclose(image.affine, crop_affine(spec, "box"))
    assert nib.aff2axcodes(image.affine) == ("R", "A", "S")


def test_box_centred_on_each_image_takes_the_given_centre():
    spec = ImageSpec.whole_brain(voxel_mm=2.0, shape=(3, 3, 3))
    affine = crop_affine(spec, "box", center_mm=(10.0, 20.0, 30.0))
    np.testing.assert_allclose(affine @ [1, 1, 1, 1], [10, 20, 30, 1])


def test_labels_land_on_the_crop_voxels_nearest_to_them():
    data, affine = coordinate_volume(0)
    labels = np.rint(data - 200).astype(np.int16) + 100  # label = world x (mm, rounded) + 100
    spec = ImageSpec.hippocampus(voxel_mm=4.0, shape=(4, 4, 4))
    for side in ("left", "right"):
        sampled = labels_in_crop(labels, affine, spec, side)
        x = crop_affine(spec, side)[0, 0] * np.arange(4) + crop_affine(spec, side)[0, 3]
        assert (
            np.abs(sampled - 100 - x[:, None, None]).max() <= 1.0
        )  # nearest label voxel: within one 2 mm voxel


@fault(
    "explain", "a NIfTI affine asked for a view the image spec does not make", "ValueError naming the views"
)
def test_unknown_side_is_refused():
    with pytest.raises(ValueError, match=r"has views \('box',\)"):
        crop_affine(ImageSpec.whole_brain(), "left")


@fault("explain", "the affine of a centre-of-mass box without its centre", "ValueError asking for center_mm")
def test_box_without_centre_is_refused():
    with pytest.raises(ValueError, match="give center_mm"):
        crop_affine(ImageSpec.whole_brain(), "box")
