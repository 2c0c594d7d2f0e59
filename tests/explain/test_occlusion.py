"""Occlusion sensitivity against a closed form (linear model) and a per-voxel brute-force reference."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from hyperfusion.explain.occlusion import occlusion_map, patch_starts
from tests.faults import fault


@pytest.mark.parametrize(
    ("size", "patch", "stride", "starts"),
    [(10, 4, 3, [0, 3, 6]), (9, 4, 4, [0, 4, 5]), (3, 5, 1, [0]), (6, 2, 2, [0, 2, 4])],
)
def test_patches_cover_the_axis_and_end_at_its_edge(size, patch, stride, starts):
    assert patch_starts(size, patch, stride) == starts
    covered = np.zeros(size, dtype=bool)
    for s in starts:
        covered[s : s + min(patch, size)] = True
    assert covered.all()


def test_tiled_occlusion_of_a_linear_model_is_each_patchs_contribution():
    rng = np.random.default_rng(0)
    w = torch.from_numpy(rng.normal(size=(4, 6, 4)))
    x = torch.from_numpy(rng.normal(size=(4, 6, 4)))

    result = occlusion_map(lambda v: (v * w).flatten(1).sum(1), x, patch=(2, 3, 2), stride=(2, 3, 2))

    contribution = (w * x).numpy()
    expected = np.zeros_like(contribution)
    for i, j, k in itertools.product(range(0, 4, 2), range(0, 6, 3), range(0, 4, 2)):
        box = (slice(i, i + 2), slice(j, j + 3), slice(k, k + 2))
        expected[box] = contribution[box].sum()
    np.testing.assert_allclose(result, expected, rtol=1e-12, atol=1e-12)


def test_a_reference_volume_replaces_each_patch_voxel_by_voxel():
    rng = np.random.default_rng(2)
    w, x, b = (torch.from_numpy(rng.normal(size=(4, 4, 2))) for _ in range(3))

    result = occlusion_map(
        lambda v: (v * w).flatten(1).sum(1), x, patch=(2, 2, 2), stride=(2, 2, 2), baseline=b
    )

    contribution = (w * (x - b)).numpy()  # replacing x by b in a patch removes Σ w (x − b) over the patch
    expected = np.zeros_like(contribution)
    for i, j in itertools.product((0, 2), (0, 2)):
        expected[i : i + 2, j : j + 2] = contribution[i : i + 2, j : j + 2].sum()
    np.testing.assert_allclose(result, expected, rtol=1e-12, atol=1e-12)


def test_overlapping_patches_average_as_a_per_voxel_reference_does():
    rng = np.random.default_rng(1)
    w = torch.from_numpy(rng.normal(size=(5, 4, 3)))
    x = torch.from_numpy(rng.normal(size=(5, 4, 3)))

    def f(v):
        return torch.tanh((v * w).flatten(1).sum(1)) ** 2

    patch, stride = (3, 2, 2), (1, 1, 2)
    result = occlusion_map(f, x, patch=patch, stride=stride, baseline=0.5, batch_size=3)

    reference = np.zeros(x.shape)
    full = float(f(x[None])[0])
    axes = [list(range(0, n - p + 1, s)) for n, p, s in zip(x.shape, patch, stride)]
    axes = [a if a[-1] == n - p else [*a, n - p] for a, n, p in zip(axes, x.shape, patch)]
    for voxel in itertools.product(*(range(n) for n in x.shape)):
        drops = []
        for origin in itertools.product(*axes):
            if all(o <= v < o + p for o, v, p in zip(origin, voxel, patch)):
                occluded = x.clone()
                occluded[tuple(slice(o, o + p) for o, p in zip(origin, patch))] = 0.5
                drops.append(full - float(f(occluded[None])[0]))
        reference[voxel] = np.mean(drops)
    np.testing.assert_allclose(result, reference, rtol=1e-10, atol=1e-12)


@fault("explain", "occlusion of an image that is not a 3D volume", "ValueError naming the shape")
def test_a_volume_must_be_three_dimensional():
    with pytest.raises(ValueError, match=r"volume \[D, H, W\]"):
        occlusion_map(lambda v: v.sum((1, 2)), torch.ones(4, 4), patch=(2, 2, 2), stride=(2, 2, 2))


@fault("explain", "an occlusion baseline volume of another shape", "ValueError naming both shapes")
def test_baseline_volume_must_match():
    with pytest.raises(ValueError, match=r"baseline volume \(2, 2, 2\) does not match the image \(4, 4, 4\)"):
        occlusion_map(lambda v: v.sum((1, 2, 3)), torch.ones(4, 4, 4), patch=(2,) * 3, stride=(2,) * 3,
                      baseline=torch.zeros(2, 2, 2))  # fmt: skip


@fault("explain", "an occlusion patch or stride of zero voxels", "ValueError naming the sizes")
def test_patch_and_stride_must_be_positive():
    with pytest.raises(ValueError, match="must be positive"):
        patch_starts(8, 0, 2)
