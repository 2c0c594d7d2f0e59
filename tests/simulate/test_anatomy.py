import numpy as np
import pytest
from scipy import ndimage

from hyperfusion.simulate.anatomy import (
    STRUCTURE_NAMES,
    flow,
    jacobian_determinant,
    velocity_field,
)
from hyperfusion.simulate.render import NO_NUISANCE, SubjectEffects
from hyperfusion.simulate.volume import Volume

TARGETS = [("hippocampus_left", f) for f in (0.6, 0.75, 0.9)] + [
    ("lateral_ventricle_right", f) for f in (1.3, 2.0, 3.0)
]


def _effects(**log_f):
    v = np.zeros(len(STRUCTURE_NAMES))
    for name, value in log_f.items():
        v[STRUCTURE_NAMES.index(name)] = value
    return SubjectEffects(v, np.zeros(5), 0.0)


@pytest.mark.parametrize(("name", "factor"), TARGETS)
def test_realised_volume_change_within_15_percent_of_target(renderer, name, factor):
    _, vol = renderer.render(_effects(**{name: np.log(factor)}), np.random.default_rng(0), NO_NUISANCE)
    s = STRUCTURE_NAMES.index(name)
    realised = vol[s] / renderer.anatomy.baseline_ml[s] - 1
    assert realised == pytest.approx(factor - 1, rel=0.15)


def test_unwarped_volumes_equal_template(renderer):
    _, vol = renderer.render(_effects(), np.random.default_rng(0), NO_NUISANCE)
    np.testing.assert_allclose(vol, renderer.anatomy.baseline_ml, rtol=1e-5)
    t = renderer.anatomy.template
    voxel_ml = t.voxel_mm**3 / 1000
    for s, name in enumerate(STRUCTURE_NAMES):
        assert vol[s] == pytest.approx(t.region_mask(name).sum() * voxel_ml, rel=1e-4)


def test_calibration_is_monotone(anatomy):
    for name in STRUCTURE_NAMES:
        dlog, ks = anatomy.calibration[name]
        assert (np.diff(dlog) > 0).all() and (np.diff(ks) < 0).all(), name
        lo, hi = anatomy.log_f_range(name)
        assert lo < np.log(0.6) and hi > 0.25, name
    lo, hi = anatomy.log_f_range("lateral_ventricle_left")
    assert hi > np.log(3.0)


@pytest.mark.parametrize(("ventricle_factor", "min_det"), [(2.0, 0.1), (3.0, 0.0)])
def test_jacobian_positive_at_the_extremes(renderer, ventricle_factor, min_det):
    """Hippocampi and amygdalae at 0.6 with ventricles doubled keep det > 0.1; tripled ventricles stay
    invertible (the push concentrates expansion in their thin parts, min det about 0.03)."""
    anatomy = renderer.anatomy
    log_f = np.array(
        [
            np.log(0.6) if n.startswith(("hippocampus", "amygdala")) else np.log(ventricle_factor)
            for n in STRUCTURE_NAMES
        ]
    )
    v = velocity_field(anatomy, renderer.k(log_f))
    g = anatomy.measure_grid
    det = jacobian_determinant(flow(g.points_mm(), v), g.shape, g.voxel_mm)
    assert det.min() > min_det


def test_flow_matches_per_point_euler_loop():
    rng = np.random.default_rng(3)
    field = ndimage.gaussian_filter(rng.normal(size=(3, 8, 9, 7)), (0, 1.5, 1.5, 1.5)) * 20
    vel = Volume.from_numpy(field, origin=(0.0, 0.0, 0.0), voxel_mm=2.0)
    pts = rng.uniform(2, 12, size=(3, 5)).astype(np.float32)
    out = flow(pts, vel, steps=4)
    for n in range(pts.shape[1]):
        p = pts[:, n].astype(np.float64)
        for _ in range(4):
            idx = p / 2.0
            p = (
                p
                + np.array([ndimage.map_coordinates(field[c], idx[:, None], order=1)[0] for c in range(3)])
                / 4
            )
        np.testing.assert_allclose(out[:, n], p, atol=1e-3)


def test_jacobian_determinant_of_linear_map():
    from hyperfusion.simulate.grid import Grid

    g = Grid((6, 5, 4), 2.0, (0.0, 0.0, 0.0))
    a = np.array([[1.2, 0.1, 0.0], [0.0, 0.9, 0.2], [0.1, 0.0, 1.1]])
    det = jacobian_determinant(a @ g.points_mm(), g.shape, g.voxel_mm)
    np.testing.assert_allclose(det, np.linalg.det(a), rtol=1e-4)
