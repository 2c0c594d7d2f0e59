import numpy as np
import pytest

from hyperfusion.simulate.grid import (
    Grid,
    hippocampus_box_grid,
    separable_field,
    spline_matrix,
    whole_brain_grid,
)


def test_paper_grid_shapes():
    assert whole_brain_grid(1.75).shape == (90, 120, 99)
    assert whole_brain_grid(4.0).shape == (40, 53, 44)
    assert hippocampus_box_grid(1.0).shape == (136, 104, 72)


def test_affine_maps_voxels_to_points_and_centre():
    g = Grid((5, 6, 7), 2.5, (1.0, -2.0, 3.0))
    pts = g.points_mm()
    idx = np.stack(np.meshgrid(*[np.arange(s) for s in g.shape], indexing="ij")).reshape(3, -1)
    world = g.affine[:3, :3] @ idx + g.affine[:3, 3:4]
    np.testing.assert_allclose(pts, world, atol=1e-4)
    np.testing.assert_allclose(pts.mean(1), g.center_mm, atol=1e-4)


@pytest.mark.parametrize(
    "kwargs", [dict(shape=(0, 2, 2), voxel_mm=1.0), dict(shape=(2, 2, 2), voxel_mm=-1.0)]
)
def test_bad_grid(kwargs):
    with pytest.raises(ValueError):
        Grid(center_mm=(0, 0, 0), **kwargs)


def test_spline_matrix_reproduces_linear_data_and_clamps():
    knots = np.linspace(-10, 10, 5)
    coords = np.linspace(-15, 15, 31)
    b = spline_matrix(knots, coords)
    np.testing.assert_allclose(b @ (2 * knots + 1), 2 * np.clip(coords, -10, 10) + 1, atol=1e-4)


def test_separable_field_matches_loop():
    rng = np.random.default_rng(0)
    c = rng.normal(size=(2, 3, 4, 3))
    bx, by, bz = (rng.normal(size=(n, k)) for n, k in ((4, 3), (5, 4), (2, 3)))
    ref = np.zeros((2, 4, 5, 2))
    for i in range(4):
        for j in range(5):
            for k in range(2):
                ref[:, i, j, k] = np.einsum("cabd,a,b,d->c", c, bx[i], by[j], bz[k])
    np.testing.assert_allclose(separable_field(c, bx, by, bz), ref, atol=1e-10)
