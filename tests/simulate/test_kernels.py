"""The compiled kernels against torch's grid_sample, per-point numpy loops and the numpy definitions they replace."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hyperfusion.simulate import kernels
from hyperfusion.simulate.anatomy import STRUCTURE_NAMES, velocity_field, velocity_voxels, voxels_of
from hyperfusion.simulate.volume import CellMask, Volume


def _grid_sample(data: np.ndarray, origin: np.ndarray, voxel: float, points: np.ndarray) -> np.ndarray:
    """Torch's trilinear read (align_corners, zeros outside) of (C, X, Y, Z) at world points (3, N)."""
    size = np.maximum(np.asarray(data.shape[1:]) - 1, 1)[:, None]
    norm = (points.astype(np.float64) - origin[:, None]) / (voxel * size) * 2 - 1
    grid = torch.from_numpy(np.ascontiguousarray(norm[::-1].T, dtype=np.float32)).reshape(1, 1, 1, -1, 3)
    out = F.grid_sample(torch.from_numpy(data)[None], grid, mode="bilinear", align_corners=True)
    return out.reshape(data.shape[0], -1).numpy()


@pytest.mark.parametrize("channels", [1, 2, 3, 9])
def test_sample_points_matches_grid_sample_inside_at_edges_and_outside(channels):
    rng = np.random.default_rng(channels)
    data = rng.normal(size=(channels, 7, 5, 6)).astype(np.float32)
    origin, voxel = np.array([-4.0, 3.0, 1.5]), 2.5
    # uniform over the grid and a voxel beyond it on every side: corners off the grid, and fully outside
    idx = rng.uniform(-1.5, 1, size=(3, 500)) * 0 + rng.uniform(
        -1.5, np.array([[7.5], [5.5], [6.5]]), (3, 500)
    )
    idx[:, :6] = [
        [0, 6, -1, 7, 0.5, -0.999],
        [0, 4, 0, 2, 5, 2],
        [0, 5, 3, 3, 2.5, 1],
    ]  # nodes, edges, outside
    points = (origin[:, None] + voxel * idx).astype(np.float32)
    field = np.ascontiguousarray(np.moveaxis(data, 0, -1))
    got = kernels.sample_points(field, origin, voxel, points)
    np.testing.assert_allclose(got, _grid_sample(data, origin, voxel, points), atol=2e-5)


def test_velocity_fast_path_equals_the_general_path():
    """The hand-written 3-channel read (all corners on the grid) equals the general trilinear read."""
    rng = np.random.default_rng(5)
    field = np.ascontiguousarray(rng.normal(size=(6, 8, 5, 3)).astype(np.float32))
    origin = np.zeros(3)
    points = rng.uniform(-2, 9, size=(3, 400)).astype(np.float32)
    moving = CellMask.of_nodes(np.ones(field.shape[:3], bool), origin, 1.0)
    one_step = kernels.flow_points(points, field, origin, 1.0, 1, moving.table, moving.origin, 1.0)
    expected = points + _grid_sample(np.moveaxis(field, -1, 0).copy(), origin, 1.0, points)
    np.testing.assert_allclose(one_step, expected, atol=2e-5)


def test_in_cells_matches_the_numpy_definition():
    rng = np.random.default_rng(2)
    nodes = rng.random((5, 6, 4)) > 0.7
    mask = CellMask.of_nodes(nodes, (1.0, -2.0, 0.5), 1.5)
    points = rng.uniform(-4, 10, size=(3, 2000))
    idx = np.floor((points - mask.origin[:, None]) / mask.voxel_mm).astype(np.int64) + 1
    ok = np.all((idx >= 0) & (idx < np.asarray(mask.table.shape)[:, None]), axis=0)
    expected = np.zeros(points.shape[1], bool)
    expected[ok] = mask.table[idx[0, ok], idx[1, ok], idx[2, ok]]
    np.testing.assert_array_equal(mask.contains(points), expected)
    assert 0.05 < expected.mean() < 0.95


def test_nearest_distance_reads_the_nearest_node_or_the_margin():
    rng = np.random.default_rng(3)
    distance = rng.uniform(0, 9, size=(6, 5, 7)).astype(np.float32)
    origin, spacing = np.array([2.0, -1.0, 0.0]), 1.0
    points = rng.uniform(-3, 9, size=(3, 1000)).astype(np.float32)
    got = kernels.nearest_distance(points, distance, origin, spacing, 99.0)
    idx = np.floor((points - origin[:, None]) / spacing + 0.5).astype(int)
    ok = np.all((idx >= 0) & (idx < np.asarray(distance.shape)[:, None]), axis=0)
    np.testing.assert_array_equal(got[ok], distance[idx[0, ok], idx[1, ok], idx[2, ok]])
    assert (got[~ok] == 99.0).all() and 0.1 < ok.mean() < 0.9


def test_measurement_equals_flowing_every_point_and_reading_its_occupancy(renderer):
    """The fused kernel (band, flow, occupancy read, sum) equals the numpy composition on the whole grid."""
    anatomy = renderer.anatomy
    rng = np.random.default_rng(8)
    for on_nodes in (True, False):
        k = renderer.k(renderer.clip(rng.normal(0.0, 0.5, len(STRUCTURE_NAMES))))
        points = renderer.measure_points
        if not on_nodes:
            points = (points + rng.normal(0.0, 1.5, points.shape)).astype(np.float32)
        got = renderer._measure(points, velocity_voxels(anatomy, k), on_nodes)
        v = velocity_field(anatomy, k)
        moved = kernels.flow_points(points, voxels_of(v), v.origin, v.voxel_mm, 8, *_table(anatomy.moving))
        expected = (
            anatomy.occupancy.sample(moved).astype(np.float64).sum(1) * anatomy.measure_grid.voxel_mm**3 / 1e3
        )
        np.testing.assert_allclose(got, expected, rtol=1e-5)
        assert (got > 0).all()


def _table(mask: CellMask) -> tuple:
    return mask.table, mask.origin, mask.voxel_mm


def test_velocity_voxels_is_the_velocity_field_channels_last(anatomy):
    k = np.linspace(-2, 3, len(STRUCTURE_NAMES))
    v = velocity_field(anatomy, k)
    np.testing.assert_allclose(velocity_voxels(anatomy, k), voxels_of(v), rtol=1e-5, atol=1e-6)
    assert isinstance(v, Volume)
