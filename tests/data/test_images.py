"""Tests for hyperfusion.data.images: world-mm resampling against a hand-written sampler, crop placement on
different grids of one synthetic head, z-scoring, and every bad image the data layer must reject."""

from __future__ import annotations

import gzip
import re

import numpy as np
import pytest

from hyperfusion.data.images import (
    MNI_BRAIN_CENTER_MM,
    MNI_BRAIN_EXTENT_MM,
    ImageSpec,
    brain_extent_mm,
    center_of_mass_mm,
    check_brain_extent,
    grid_points,
    preprocess_image,
    preprocess_volume,
    read_volume,
    sample_box,
    zscore_nonzero,
)
from tests.data.conftest import HIPPOCAMPI, MARKER, ras_affine, render, write_nifti
from tests.faults import fault

CROP = ImageSpec.hippocampus(voxel_mm=4.0, shape=(16, 24, 16))


def _trilinear_reference(data: np.ndarray, affine: np.ndarray, world: np.ndarray) -> float:
    """Slow, obvious trilinear interpolation at one world point (zero outside the voxel grid)."""
    ijk = np.linalg.solve(affine, np.r_[world, 1.0])[:3]
    base = np.floor(ijk).astype(int)
    frac = ijk - base
    total = 0.0
    for corner in np.ndindex(2, 2, 2):
        idx = base + np.array(corner)
        weight = np.prod([f if c else 1 - f for f, c in zip(frac, corner)])
        if np.all(idx >= 0) and np.all(idx < data.shape):
            total += weight * data[tuple(idx)]
    return total


def test_sample_box_matches_reference_on_oblique_grid() -> None:
    rng = np.random.default_rng(0)
    data = rng.normal(size=(9, 11, 10)).astype(np.float32)
    rotation, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    affine = np.eye(4)
    affine[:3, :3] = rotation * np.array([1.5, 2.0, 2.5])
    affine[:3, 3] = (-5.0, 3.0, 1.0)
    shape, voxel, center = (5, 6, 4), 1.3, (0.5, 6.0, 8.0)
    out = sample_box(data, affine, shape, voxel, center)
    world = grid_points(shape, voxel, center)
    for idx in [(0, 0, 0), (4, 5, 3), (2, 3, 1), (1, 4, 2), (3, 0, 3)]:
        expected = _trilinear_reference(data, affine, world[(slice(None), *idx)])
        assert out[idx] == pytest.approx(expected, abs=1e-5)


def test_identity_grid_reproduces_the_volume() -> None:
    data = np.random.default_rng(1).random((6, 7, 8)).astype(np.float32)
    affine = ras_affine(2.0, (-5.0, -6.0, -7.0))
    center = affine[:3, :3] @ ((np.array(data.shape) - 1) / 2) + affine[:3, 3]
    np.testing.assert_allclose(sample_box(data, affine, data.shape, 2.0, center), data, atol=1e-6)


def test_las_image_is_read_in_ras_order() -> None:
    data = np.zeros((5, 5, 5), dtype=np.float32)
    data[0, 2, 2] = 1.0  # voxel i=0 of an LAS image is the rightmost (+x) column
    affine = np.diag([-1.0, 1.0, 1.0, 1.0])
    affine[:3, 3] = (2.0, -2.0, -2.0)
    out = sample_box(data, affine, (5, 5, 5), 1.0, (0.0, 0.0, 0.0))
    assert out[4, 2, 2] == 1.0 and out.sum() == 1.0


def test_grid_points_formula() -> None:
    world = grid_points((4, 1, 3), 2.0, (10.0, 0.0, -1.0))
    np.testing.assert_allclose(world[0, :, 0, 0], [7.0, 9.0, 11.0, 13.0])
    np.testing.assert_allclose(world[2, 0, 0, :], [-3.0, -1.0, 1.0])


def test_zscore_nonzero_against_hand_computation() -> None:
    volume = np.array([[[0.0, 1.0], [2.0, 0.0]], [[3.0, 0.0], [0.0, 6.0]]], dtype=np.float32)
    out = zscore_nonzero(volume)
    values = np.array([1.0, 2.0, 3.0, 6.0])
    expected = (values - values.mean()) / values.std()
    np.testing.assert_allclose(out[volume != 0], expected, rtol=1e-6)
    assert np.all(out[volume == 0] == 0)


@fault(
    "images", "an output box with no brain, or a constant one", "ValueError naming the file: cannot z-score"
)
@pytest.mark.parametrize("volume", [np.zeros((3, 3, 3)), np.where(np.eye(3)[None] > 0, 2.0, 0.0)])
def test_zscore_rejects_empty_or_constant(volume: np.ndarray) -> None:
    with pytest.raises(ValueError, match="box"):
        zscore_nonzero(volume.astype(np.float32), source="x.nii")


def _hippocampus_centroid(crop: np.ndarray) -> np.ndarray:
    """Centre (voxels) of the hippocampal intensity (3.0 in the raw head; brain < 2, marker 6)."""
    mask = (crop > 2.5) & (crop < 4.0)
    return np.argwhere(mask).mean(axis=0)


def test_crops_land_on_the_same_anatomy_on_two_grids(tmp_path) -> None:
    grid_a = ras_affine(2.0, (-80.0, -120.0, -68.0))
    grid_b = np.diag([-3.0, 3.0, 3.0, 1.0])  # LAS, other voxel size and origin
    grid_b[:3, 3] = (81.0, -119.0, -70.0)
    path_a = write_nifti(tmp_path / "a.nii.gz", render((81, 105, 79), grid_a), grid_a)
    path_b = write_nifti(tmp_path / "b.nii", render((55, 70, 53), grid_b), grid_b)
    crops_a, crops_b = preprocess_image(path_a, CROP), preprocess_image(path_b, CROP)
    assert crops_a.shape == crops_b.shape == (2, 16, 24, 16) and crops_a.dtype == np.float32
    middle = (np.array(CROP.shape) - 1) / 2
    raw = ImageSpec(**{**CROP.__dict__, "zscore": False})
    for side in range(2):
        assert np.corrcoef(crops_a[side].ravel(), crops_b[side].ravel())[0, 1] > 0.8
        for shape, grid in (
            ((81, 105, 79), grid_a),
            ((55, 70, 53), grid_b),
        ):  # hippocampus at the crop centre
            crops = preprocess_volume(render(shape, grid, marker=False), grid, raw)
            np.testing.assert_allclose(_hippocampus_centroid(crops[side]), middle, atol=0.75)
    # the left-only marker is at the same voxel on both grids, where the world formula puts it
    expected = np.round((np.array(MARKER) - np.array(HIPPOCAMPI[0])) / 4.0 + middle)
    for crops in (crops_a, crops_b):
        assert np.abs(np.array(np.unravel_index(crops[0].argmax(), CROP.shape)) - expected).max() <= 1
        assert crops[1].max() < crops[0].max()  # not in the right crop


def test_right_crop_is_mirrored(tmp_path) -> None:
    affine = ras_affine(2.0, (-80.0, -120.0, -68.0))  # voxel centres symmetric about x = 0
    path = write_nifti(tmp_path / "sym.nii.gz", render((81, 105, 79), affine, marker=False), affine)
    left, right = preprocess_image(path, CROP)
    np.testing.assert_allclose(left, right, atol=1e-5)  # a symmetric head: mirrored right == left
    raw = ImageSpec(**{**CROP.__dict__, "zscore": False})
    direct = sample_box(*read_volume(path), CROP.shape, 4.0, CROP.right_center_mm)
    np.testing.assert_allclose(preprocess_image(path, raw)[1], direct[::-1], atol=1e-6)


def test_whole_brain_box_centred_on_centre_of_mass(head_file) -> None:
    path = head_file()
    data, affine = read_volume(path)
    np.testing.assert_allclose(center_of_mass_mm(data, affine), (0.0, -17.0, 5.0), atol=1.0)
    spec = ImageSpec.whole_brain(voxel_mm=4.0, shape=(40, 50, 40))
    out = preprocess_image(path, spec)
    assert out.shape == (40, 50, 40)
    values = out[out != 0]
    assert values.mean() == pytest.approx(0.0, abs=1e-5) and values.std() == pytest.approx(1.0, abs=1e-4)
    # centred: the brain's extent is symmetric in the box along x
    xs = np.argwhere(out != 0)[:, 0]
    assert abs((xs.min() + xs.max()) / 2 - 19.5) <= 0.5


@fault(
    "images",
    "a whole-brain box that cuts off part of the brain",
    "ValueError naming the file and the share cut off",
)
def test_box_pads_beyond_the_image_but_refuses_to_cut_the_brain(head_file) -> None:
    path = head_file()
    padded = preprocess_image(path, ImageSpec.whole_brain(voxel_mm=4.0, shape=(60, 70, 60)))
    assert padded.shape == (60, 70, 60) and np.all(padded[:3] == 0)
    with pytest.raises(ValueError, match=r"head\.nii\.gz.*cuts off"):
        preprocess_image(path, ImageSpec.whole_brain(voxel_mm=4.0, shape=(20, 20, 20)))


def test_explicit_centre_is_used(head_file) -> None:
    path = head_file()
    spec = ImageSpec(
        mode="box", voxel_mm=4.0, shape=(16, 24, 16), center_mm=HIPPOCAMPI[0], max_cut_fraction=1.0
    )
    crop = ImageSpec.hippocampus(voxel_mm=4.0, shape=(16, 24, 16))
    np.testing.assert_allclose(preprocess_image(path, spec), preprocess_image(path, crop)[0], atol=1e-6)


# ---------------------------------------------------------------- bad input
@fault("images", "an image file that does not exist", "FileNotFoundError naming it")
def test_missing_file(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.nii\.gz"):
        preprocess_image(tmp_path / "nope.nii.gz", CROP)


@fault("images", "a truncated NIfTI", "ValueError naming the file: unreadable or truncated")
def test_truncated_nifti(head_file) -> None:
    path = head_file()
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match=r"cannot read NIfTI .*head\.nii\.gz"):
        read_volume(path)


@fault("images", "a file that is not a NIfTI (or a corrupt .gz)", "ValueError naming the file")
def test_garbage_file(tmp_path) -> None:
    path = tmp_path / "junk.nii"
    path.write_bytes(b"not a nifti file at all" * 30)
    with pytest.raises(ValueError, match=r"junk\.nii"):
        read_volume(path)
    gz = tmp_path / "junk.nii.gz"
    gz.write_bytes(gzip.compress(b"nope" * 100))
    with pytest.raises(ValueError, match=r"junk\.nii\.gz"):
        read_volume(gz)


@fault(
    "images",
    "a 4D image (a series)",
    "ValueError naming the file and shape; a trailing axis of length 1 is accepted",
)
def test_4d_image_rejected_but_singleton_4th_axis_accepted(tmp_path) -> None:
    data = np.ones((4, 4, 4, 2), dtype=np.float32)
    with pytest.raises(ValueError, match=r"4d\.nii.*3D"):
        read_volume(write_nifti(tmp_path / "4d.nii", data, np.eye(4)))
    volume, _ = read_volume(write_nifti(tmp_path / "4d1.nii", data[..., :1], np.eye(4)))
    assert volume.shape == (4, 4, 4)


@fault("images", "NaN or Inf voxels", "ValueError naming the file and the count")
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_voxels(tmp_path, bad: float) -> None:
    data = np.ones((4, 4, 4), dtype=np.float32)
    data[1, 2, 3] = bad
    with pytest.raises(ValueError, match=r"nan\.nii.*1 voxel\(s\) are NaN or Inf"):
        read_volume(write_nifti(tmp_path / "nan.nii", data, np.eye(4)))


@fault(
    "images",
    "float64 voxels of about 1e300 (beyond float32)",
    "ValueError naming the file and the largest value: beyond float32's range (it was reported as NaN or Inf)",
)
def test_values_beyond_float32_are_named(tmp_path) -> None:
    import nibabel as nib

    data = np.ones((4, 4, 4), dtype=np.float64)
    data[1, 2, 3] = 1e300
    path = tmp_path / "huge.nii"
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))
    with pytest.raises(ValueError, match=r"huge\.nii: intensities up to 1e\+300 exceed the float32 range"):
        read_volume(path)


@fault(
    "images",
    "an RGB (colour) NIfTI",
    "ValueError naming the file: a colour image, not a grey-scale T1 (was an internal error)",
)
def test_a_colour_image_is_named(tmp_path) -> None:
    import nibabel as nib

    rgb = np.zeros((4, 4, 4), dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    rgb["R"] = 200
    path = tmp_path / "rgb.nii"
    nib.save(nib.Nifti1Image(rgb, np.eye(4)), str(path))
    with pytest.raises(ValueError, match=r"rgb\.nii: a colour image \(stored as .*\), not a grey-scale T1"):
        read_volume(path)


@fault("images", "an all-zero image", "ValueError naming the file")
def test_all_zero_image(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"zero\.nii.*every voxel is zero"):
        read_volume(write_nifti(tmp_path / "zero.nii", np.zeros((4, 4, 4)), np.eye(4)))


@fault(
    "images",
    "an image smaller than the hippocampal crop box",
    "ValueError naming the file, its field of view and the box",
)
def test_image_smaller_than_crop_box(tmp_path) -> None:
    affine = ras_affine(4.0, (-40.0, -40.0, -30.0))  # covers x −40…40 only partly around the hippocampi
    path = write_nifti(tmp_path / "small.nii.gz", render((21, 15, 10), affine), affine)
    with pytest.raises(ValueError, match=r"small\.nii\.gz.*smaller than the left crop box"):
        preprocess_image(path, CROP)


@fault(
    "images",
    "an image setting out of range (mode, voxel size, shape, centre, cut fraction)",
    "ValueError naming the ImageSpec field",
)
@pytest.mark.parametrize(
    "kwargs",
    [
        {"mode": "slab"},
        {"voxel_mm": 0},
        {"voxel_mm": -1.0},
        {"shape": (4, 4)},
        {"shape": (4, 0, 4)},
        {"center_mm": (1.0, 2.0)},
        {"left_center_mm": (np.nan, 0.0, 0.0)},
        {"max_cut_fraction": 2.0},
        {"check_extent": "yes"},
    ],
)
def test_image_spec_rejects_bad_values(kwargs: dict) -> None:
    with pytest.raises(ValueError, match="ImageSpec"):
        ImageSpec(**kwargs)


def test_image_spec_defaults_are_the_papers() -> None:
    assert ImageSpec.whole_brain().shape == (90, 120, 99) and ImageSpec.whole_brain().voxel_mm == 1.75
    hippo = ImageSpec.hippocampus()
    assert hippo.shape == (64, 96, 64) and hippo.voxel_mm == 1.0 and hippo.output_shape == (2, 64, 96, 64)
    assert hippo.left_center_mm[0] < 0 < hippo.right_center_mm[0]


# ---------------------------------------------------------------- the brain's extent against the MNI template
def test_brain_extent_matches_a_voxel_by_voxel_reference() -> None:
    rng = np.random.default_rng(3)
    data = np.zeros((9, 11, 10), dtype=np.float32)
    data[2:7, 1:9, 3:8] = rng.random((5, 8, 5)) > 0.4
    data[4, 5, 9] = 1.0  # reaches the last k slice: the world axis along k is cut
    rotation, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    affine = np.eye(4)
    affine[:3, :3] = rotation * np.array([1.5, 2.0, 2.5])
    affine[:3, 3] = (-5.0, 3.0, 1.0)
    size, centre, cut = brain_extent_mm(data, affine)
    points = [affine[:3, :3] @ np.array(ijk) + affine[:3, 3] for ijk in zip(*np.nonzero(data))]
    low = np.min(points, axis=0)
    high = np.max(points, axis=0)
    voxel_span = [sum(abs(affine[w, a]) for a in range(3)) for w in range(3)]  # one voxel, projected
    np.testing.assert_allclose(size, high - low + voxel_span)
    np.testing.assert_allclose(centre, (low + high) / 2)
    expected_cut = np.zeros(3, dtype=bool)
    expected_cut[np.argmax(np.abs(affine[:3, 2]))] = True
    np.testing.assert_array_equal(cut, expected_cut)


def test_a_registered_head_passes(head_file) -> None:
    data, affine = read_volume(head_file())
    size, centre, cut = brain_extent_mm(data, affine)
    assert np.all(np.abs(size / np.array(MNI_BRAIN_EXTENT_MM) - 1) < 0.15) and not cut.any()
    assert np.all(np.abs(centre - np.array(MNI_BRAIN_CENTER_MM)) < 4)
    check_brain_extent(data, affine, source="head")


def _triple(values) -> str:
    return "(" + ", ".join(f"{v:.0f}" for v in values) + ")"


@fault(
    "images",
    "a NIfTI header whose voxel size is doubled (a brain twice MNI size)",
    "ValueError naming the file, the measured extent in mm and the header's voxel size",
)
def test_doubled_voxel_size_in_the_header(tmp_path, head_file) -> None:
    data, affine = read_volume(head_file())
    size = brain_extent_mm(data, affine)[0]  # (140, 176, 136) mm at the true 4 mm
    path = write_nifti(tmp_path / "doubled.nii.gz", data, ras_affine(8.0, (-160.0, -240.0, -136.0)))
    ratio = 2 * size / np.array(MNI_BRAIN_EXTENT_MM)
    with pytest.raises(ValueError) as err:
        preprocess_image(path, CROP)
    message = str(err.value)
    assert message.startswith(f"{path}: the brain (non-zero voxels) measures {_triple(2 * size)} mm")
    assert f"its size along x/y/z is {'/'.join(f'{r:.2f}' for r in ratio)} times the template's" in message
    assert "voxel size ((8, 8, 8) mm) may be wrong" in message
    relaxed = ImageSpec(**{**CROP.__dict__, "check_extent": False})
    assert preprocess_image(path, relaxed).shape == (2, 16, 24, 16)  # the check can be turned off


@fault(
    "images",
    "a NIfTI header whose voxel size is halved (a brain half MNI size)",
    "ValueError naming the file and the measured extent in mm",
)
def test_halved_voxel_size_in_the_header(tmp_path, head_file) -> None:
    data, affine = read_volume(head_file())
    size = brain_extent_mm(data, affine)[0]
    path = write_nifti(tmp_path / "halved.nii.gz", data, ras_affine(2.0, (-40.0, -60.0, -34.0)))
    with pytest.raises(
        ValueError, match=rf"halved\.nii\.gz: the brain .* measures {re.escape(_triple(size / 2))} mm"
    ):
        preprocess_image(path, ImageSpec.whole_brain(voxel_mm=4.0, shape=(40, 50, 40)))


@fault(
    "images",
    "an image not registered to MNI space (its origin at a corner of the grid)",
    "ValueError naming the file, where the brain's centre is and how far off",
)
def test_unregistered_image_with_corner_origin(tmp_path, head_file) -> None:
    data, affine = read_volume(head_file())
    centre = brain_extent_mm(data, affine)[1] + (80.0, 120.0, 68.0)  # the grid moved so its corner is at 0
    path = write_nifti(tmp_path / "native.nii.gz", data, ras_affine(4.0, (0.0, 0.0, 0.0)))
    offset = np.abs(centre - np.array(MNI_BRAIN_CENTER_MM))
    with pytest.raises(ValueError) as err:
        preprocess_image(path, CROP)
    assert f"centred at {_triple(centre)} mm" in str(err.value)
    assert f"its centre is {'/'.join(f'{o:.0f}' for o in offset)} mm off the template's along x/y/z" in str(
        err.value
    )


def test_cropped_or_padded_images_still_pass(tmp_path, head_file) -> None:
    """A box around the hippocampi (the brain reaches every edge) and a whole MNI field of view with
    non-zero background (an image that was not skull-stripped) are not mistaken for wrong geometry."""
    crop_affine = ras_affine(4.0, (-68.0, -74.0, -50.0))  # 136 × 104 × 72 mm around both hippocampi
    cropped = write_nifti(tmp_path / "crop.nii.gz", render((35, 27, 19), crop_affine), crop_affine)
    assert brain_extent_mm(*read_volume(cropped))[2].all()
    assert preprocess_image(cropped, CROP).shape == (2, 16, 24, 16)
    fov_affine = ras_affine(4.0, (-90.0, -126.0, -72.0))  # the standard MNI grid, 182 × 218 × 182 mm
    shape = (46, 55, 46)
    noisy = render(shape, fov_affine) + np.random.default_rng(0).uniform(0.01, 0.05, shape).astype(np.float32)
    padded = write_nifti(tmp_path / "with-background.nii.gz", noisy, fov_affine)
    ratio = brain_extent_mm(*read_volume(padded))[0] / np.array(MNI_BRAIN_EXTENT_MM)
    assert ratio.max() < 1.3
    assert preprocess_image(padded, CROP).shape == (2, 16, 24, 16)
