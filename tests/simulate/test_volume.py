import numpy as np
import pytest
from scipy import ndimage

from hyperfusion.simulate.volume import Volume, antialias, block_mean


def test_sample_matches_map_coordinates():
    rng = np.random.default_rng(1)
    data = rng.normal(size=(2, 6, 7, 5)).astype(np.float32)
    vol = Volume.from_numpy(data, origin=(-3.0, 2.0, 1.0), voxel_mm=1.5)
    idx = rng.uniform(0, [5, 6, 4], size=(40, 3)).T
    pts = vol.origin[:, None] + 1.5 * idx
    ref = np.stack([ndimage.map_coordinates(d, idx, order=1) for d in data])
    np.testing.assert_allclose(vol.sample(pts), ref, atol=1e-5)


def test_sample_is_zero_outside():
    vol = Volume.from_numpy(np.ones((1, 4, 4, 4)), origin=(0, 0, 0), voxel_mm=1.0)
    assert vol.sample(np.array([[10.0], [0.0], [0.0]]))[0, 0] == 0


def test_block_mean_matches_loop_and_keeps_volume():
    rng = np.random.default_rng(2)
    a = rng.uniform(size=(6, 4, 8))
    out = block_mean(a, 2)
    for i, j, k in np.ndindex(out.shape):
        assert out[i, j, k] == pytest.approx(
            a[2 * i : 2 * i + 2, 2 * j : 2 * j + 2, 2 * k : 2 * k + 2].mean(), rel=1e-6
        )
    assert out.sum() * 8 == pytest.approx(a.sum(), rel=1e-6)


def test_antialias_identity_when_not_downsampling():
    a = np.random.default_rng(0).normal(size=(4, 4, 4))
    assert antialias(a, 2.0, 2.0) is a
    assert antialias(a, 1.0, 4.0).std() < a.std()


def test_one_thread_limits_torch_and_blas_and_restores_them():
    import torch
    from threadpoolctl import threadpool_info

    from hyperfusion.simulate.volume import one_thread

    torch_before = torch.get_num_threads()
    pools_before = [p["num_threads"] for p in threadpool_info()]
    with one_thread():
        assert torch.get_num_threads() == 1
        assert all(p["num_threads"] == 1 for p in threadpool_info())
    assert torch.get_num_threads() == torch_before
    assert [p["num_threads"] for p in threadpool_info()] == pools_before
