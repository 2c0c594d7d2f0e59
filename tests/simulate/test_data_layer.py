"""Every written cohort loads through the data layer, and its hippocampal crops land on the hippocampi."""

import numpy as np
import pytest

from hyperfusion.data.images import ImageSpec, preprocess_image, preprocess_volume
from hyperfusion.data.manifest import load_manifest
from hyperfusion.simulate import simulate_ad, simulate_brain_age
from hyperfusion.simulate.api import output_grid
from hyperfusion.simulate.render import build_renderer

KW = dict(voxel_size=4.0, template="phantom", progress=False)
CROP = dict(mode="hippocampus", voxel_mm=4.0, shape=(16, 24, 16))


@pytest.mark.parametrize("region", ["whole", "box"])
def test_ad_cohort_loads_and_crops_land_on_hippocampi(tmp_path, region):
    cohort = load_manifest(simulate_ad(tmp_path, n=6, seed=1, region=region, **KW))
    assert len(cohort.frame) == 6 and cohort.task == "classification"
    assert set(cohort.frame["label"]) <= {"CN", "MCI", "AD"}
    for path in cohort.image_paths:
        crops = preprocess_image(path, ImageSpec(**CROP))
        assert crops.shape == (2, 16, 24, 16) and np.isfinite(crops).all()
        brain = crops != 0
        assert brain.mean() > 0.5  # the crops sit inside the brain
        np.testing.assert_allclose(crops[brain].mean(), 0, atol=1e-4)

    # the template's hippocampi, laid on the same output grid, fall inside the data layer's crops
    grid = output_grid(4.0, region)
    anatomy = build_renderer(grid, "phantom", phantom_mm=2.0).anatomy
    for s, side in ((0, 0), (1, 1)):  # hippocampus_left -> left crop, hippocampus_right -> right crop
        occ = anatomy.occupancy.sample(grid.points_mm())[s].reshape(grid.shape)
        crops = preprocess_volume(occ, grid.affine, ImageSpec(**CROP, zscore=False))
        inside, other = crops[side].sum(), crops[1 - side].sum()
        assert inside > 0.95 * occ.sum() and other < 0.01 * occ.sum()
        centre = (
            np.array(
                [
                    (np.arange(n) * crops[side].sum(axis=tuple(a for a in range(3) if a != d))).sum()
                    for d, n in enumerate(crops[side].shape)
                ]
            )
            / inside
        )
        np.testing.assert_allclose(centre, (np.array(CROP["shape"]) - 1) / 2, atol=1.0)


def test_brain_age_cohort_loads_through_bids_preset(tmp_path):
    cohort = load_manifest(simulate_brain_age(tmp_path, n=4, seed=1, **KW))
    assert len(cohort.frame) == 4 and cohort.task == "regression"
    for path in cohort.image_paths:
        box = preprocess_image(path, ImageSpec.whole_brain(voxel_mm=4.0, shape=(40, 53, 44)))
        assert box.shape == (40, 53, 44) and np.isfinite(box).all() and (box != 0).mean() > 0.2
