"""The simulator's original per-subject path, kept as the slow, obvious reference for the fast one.

A frozen copy of ``Renderer.render`` as it was before the fast path (issue 21): every point of the output grid and
of the whole 2 mm measurement grid is flowed (8 Euler steps, every step a ``grid_sample`` through the float64
round trip of the original ``Volume.sample``), all 8 template channels are sampled and combined afterwards, and the
volumes are measured on the whole measurement grid three times (two joint-solve steps and the final measurement
with nuisance).  ``tests/simulate/test_render.py`` compares the fast path with it, and
``benchmarks/simulate_cost.py`` times both in one run.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from hyperfusion.simulate.anatomy import FLOW_STEPS, LOBE_NAMES
from hyperfusion.simulate.grid import WHOLE_BRAIN_CENTER_MM, separable_field
from hyperfusion.simulate.render import (
    ANATOMY_KNOTS,
    BIAS_KNOTS,
    Nuisance,
    Renderer,
    SubjectEffects,
    _rotation,
)
from hyperfusion.simulate.volume import Volume


def sample(volume: Volume, points_mm: np.ndarray) -> np.ndarray:
    """The original ``Volume.sample``: trilinear values at world points (3, N) -> (C, N), zero outside."""
    pts = np.asarray(points_mm, dtype=np.float64)
    size = np.maximum(np.asarray(volume.shape) - 1, 1)[:, None]
    norm = (pts - volume.origin[:, None]) / (volume.voxel_mm * size) * 2.0 - 1.0
    grid = torch.from_numpy(norm[::-1].T.astype(np.float32).copy()).reshape(1, 1, 1, -1, 3)
    out = F.grid_sample(volume.data[None], grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return out.reshape(volume.data.shape[0], -1).numpy()


def flow(points_mm: np.ndarray, velocity: Volume, steps: int = FLOW_STEPS) -> np.ndarray:
    """The original flow: every point inside the velocity box takes ``steps`` Euler steps."""
    pts = np.asarray(points_mm, dtype=np.float32)
    lo = velocity.origin[:, None] - velocity.voxel_mm
    hi = lo + velocity.voxel_mm * (np.asarray(velocity.shape)[:, None] + 1)
    inside = np.all((pts >= lo) & (pts <= hi), axis=0)
    out = pts.copy()
    if not inside.any():
        return out
    p = pts[:, inside]
    for _ in range(steps):
        p = p + sample(velocity, p) / steps
    out[:, inside] = p
    return out


def velocity_field(renderer: Renderer, k: np.ndarray) -> Volume:
    a = renderer.anatomy
    b = a.basis.data.reshape(len(k), 3, *a.basis.shape)
    v = torch.einsum("s,sc...->c...", torch.as_tensor(np.asarray(k), dtype=torch.float32), b)
    return Volume(v.contiguous(), a.basis.origin, a.basis.voxel_mm)


def _volumes(renderer: Renderer, mapped: np.ndarray) -> np.ndarray:
    a = renderer.anatomy
    return sample(a.occupancy, mapped).sum(1) * a.measure_grid.voxel_mm**3 / 1000


def solve_k(renderer: Renderer, log_f: np.ndarray, iterations: int = 2) -> np.ndarray:
    """The original joint solve: each fixed-point step measures on the whole 2 mm measurement grid."""
    target_k = renderer.k(renderer.clip(log_f))
    k = target_k.copy()
    pts = renderer.anatomy.measure_grid.points_mm()
    for _ in range(iterations):
        vol = _volumes(renderer, flow(pts, velocity_field(renderer, k)))
        k = k + target_k - renderer.k(np.log(np.maximum(vol, 1e-9) / renderer.anatomy.baseline_ml))
    return k


def render(
    renderer: Renderer, effects: SubjectEffects, rng: np.random.Generator, nuisance: Nuisance
) -> tuple[np.ndarray, np.ndarray]:
    """One subject the original way: (image on the grid, float32; realised structure volumes in mL)."""
    u_ctrl = rng.normal(0.0, nuisance.anatomy_mm, (3, *ANATOMY_KNOTS))
    b_ctrl = rng.normal(0.0, nuisance.bias_sd, BIAS_KNOTS)
    theta = np.deg2rad(rng.normal(0.0, nuisance.rotation_deg, 3))
    shift = rng.normal(0.0, nuisance.translation_mm, 3)
    scale = 1.0 + rng.normal(0.0, nuisance.scale_sd)
    velocity = velocity_field(renderer, solve_k(renderer, effects.log_f))
    c0 = np.asarray(WHOLE_BRAIN_CENTER_MM)[:, None]
    r_inv = _rotation(theta).T

    def warp(points: np.ndarray, splines) -> np.ndarray:
        p = points + separable_field(u_ctrl, *splines).reshape(3, -1)
        q = (c0 + r_inv @ (p - c0 - shift[:, None]) / scale).astype(np.float32)
        return flow(q, velocity)

    ch = sample(renderer.source, warp(renderer.grid.points_mm(), renderer.anatomy_splines))
    image = ch[0] - effects.cortical @ ch[2 : 2 + len(LOBE_NAMES)] - effects.wm_contrast * ch[-1]
    image = np.maximum(image, 0.0) * np.exp(separable_field(b_ctrl, *renderer.bias_splines).ravel())
    sigma = nuisance.noise * renderer.anatomy.tissue_means[2]
    eps = rng.standard_normal((2, image.size), dtype=np.float32)
    image = np.sqrt((image + sigma * eps[0]) ** 2 + (sigma * eps[1]) ** 2)
    image = np.where(ch[1] > 0.5, np.maximum(image, 1e-3), 0.0).astype(np.float32)
    volumes = _volumes(renderer, warp(renderer.anatomy.measure_grid.points_mm(), renderer.measure_splines))
    return image.reshape(renderer.grid.shape), volumes.astype(np.float64)
