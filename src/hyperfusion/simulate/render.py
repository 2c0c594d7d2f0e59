"""Per-subject rendering on an output grid.

::

    q(x)  = c0 + R_θ⁻¹ (x + u_rnd(x) − c0 − t) / s                  # individual anatomy, residual affine
    z(x)  = flow of v = Σ_R k_R D_R from q(x)                        # disease/ageing warp on the template anatomy
    I(x)  = W[T](z) − Σ_j c_j W[E_j](z) − κ W[E_wm](z)               # W = trilinear sampling at z
    I     ← I · exp(β(x));  I ← sqrt((I + σ_n ε1)² + (σ_n ε2)²)      # bias field, Rician noise
    I     ← 0 outside W[M](z) > 0.5                                   # skull-stripped, zero background

Intensities stay on the template's scale (what a user brings after registration and skull stripping); the data
layer z-scores.  Realised structure volumes are measured by warping the structures' occupancy maps with the same
map on a fixed 2 mm grid, so they do not depend on the output voxel size.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from hyperfusion.simulate import kernels
from hyperfusion.simulate.anatomy import (
    CHANNELS,
    FLOW_STEPS,
    LOBE_NAMES,
    STRUCTURE_NAMES,
    Anatomy,
    build_anatomy,
    flow_voxels,
    velocity_voxels,
)
from hyperfusion.simulate.grid import WHOLE_BRAIN_CENTER_MM, Grid, separable_field, spline_matrix
from hyperfusion.simulate.volume import CellMask, Volume, antialias, one_thread

# coarse control grids for smooth random fields span the ICBM152 brain box (x -72..72, y -107..73, z -72..82)
_CONTROL_BOX = ((-72.0, 72.0), (-107.0, 73.0), (-72.0, 82.0))
ANATOMY_KNOTS = (6, 7, 6)
BIAS_KNOTS = (4, 5, 4)
_MARGIN_MM = 20.0


@dataclass(frozen=True)
class Nuisance:
    """Subject-level nuisance, drawn per subject (defaults in mm / fractions).

    Args:
        anatomy_mm: SD of the random displacement at each coarse control point (individual anatomy).
        scale_sd: SD of the residual isotropic scale after registration.
        rotation_deg: SD of the residual rotation about each axis.
        translation_mm: SD of the residual translation along each axis.
        bias_sd: SD of the log bias field at each control point.
        noise: Rician noise SD as a fraction of the white-matter mean.
    """

    anatomy_mm: float = 1.0
    scale_sd: float = 0.01
    rotation_deg: float = 2.0
    translation_mm: float = 2.0
    bias_sd: float = 0.08
    noise: float = 0.03

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not (value >= 0 and np.isfinite(value)):
                raise ValueError(f"nuisance {name} must be a finite number >= 0, got {value!r}")


NO_NUISANCE = Nuisance(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


@dataclass(frozen=True)
class SubjectEffects:
    """What disease and ageing do to one subject's image.

    Args:
        log_f: target log-volume factor per structure, in ``STRUCTURE_NAMES`` order.
        cortical: boundary grey-matter atrophy fraction per cortical region, ``LOBE_NAMES`` order, in [0, 1].
        wm_contrast: κ, the fraction of grey/white contrast lost, in [0, 1].
    """

    log_f: np.ndarray
    cortical: np.ndarray
    wm_contrast: float

    def __post_init__(self) -> None:
        if np.shape(self.log_f) != (len(STRUCTURE_NAMES),):
            raise ValueError(f"log_f needs {len(STRUCTURE_NAMES)} values, got shape {np.shape(self.log_f)}")
        if np.shape(self.cortical) != (len(LOBE_NAMES),):
            raise ValueError(f"cortical needs {len(LOBE_NAMES)} values, got shape {np.shape(self.cortical)}")
        if not np.isfinite(self.log_f).all():
            raise ValueError(f"log_f must be finite, got {self.log_f}")
        c = np.asarray(self.cortical)
        if not ((c >= 0) & (c <= 1)).all() or not 0 <= self.wm_contrast <= 1:
            raise ValueError(f"atrophy fractions must lie in [0, 1], got {c} and {self.wm_contrast}")


@dataclass(frozen=True, eq=False)
class Renderer:
    """An :class:`Anatomy` prepared for one output grid: source channels at the grid's resolution, the grid's
    points and the spline matrices of the smooth random fields.

    ``mixed`` is a work buffer, channels-last (X, Y, Z, 2) on the source grid: the subject's combined intensity,
    and the brain mask; so one renderer renders one subject at a time (the process pool gives each worker its
    own).  ``occupancy_voxels`` is the anatomy's occupancy channels-last, as the compiled measurement reads it;
    ``measure_distance`` the measurement points' distance to the structures (:meth:`Anatomy.start_distance`).
    """

    anatomy: Anatomy
    grid: Grid
    source: Volume
    points: np.ndarray
    anatomy_splines: tuple[np.ndarray, np.ndarray, np.ndarray]
    bias_splines: tuple[np.ndarray, np.ndarray, np.ndarray]
    measure_splines: tuple[np.ndarray, np.ndarray, np.ndarray]
    mixed: np.ndarray
    brain: CellMask
    measure_points: np.ndarray
    occupancy_voxels: np.ndarray
    measure_distance: np.ndarray

    def k(self, log_f: np.ndarray) -> np.ndarray:
        """Basis coefficients realising target log-volume factors one structure at a time (clipped to the
        calibrated range)."""
        return np.array([self.anatomy.k_for(n, v) for n, v in zip(STRUCTURE_NAMES, log_f)])

    def clip(self, log_f: np.ndarray) -> np.ndarray:
        """Targets limited to what the calibrated warps can realise."""
        lo, hi = np.array([self.anatomy.log_f_range(n) for n in STRUCTURE_NAMES]).T
        return np.clip(log_f, lo, hi)

    def solve_k(self, log_f: np.ndarray, iterations: int = 2) -> np.ndarray:
        """Joint coefficients: neighbouring pushes interact (a growing temporal horn shrinks the hippocampus),
        so correct the one-at-a-time ``k`` by fixed-point steps ``k ← k + k(target) − k(realised)`` measured
        without nuisance on the 2 mm grid."""
        target_k = self.k(self.clip(log_f))
        k = target_k.copy()
        for _ in range(iterations):
            velocity = velocity_voxels(self.anatomy, k)
            vol = self._measure(self.measure_points, velocity, True, self.measure_distance)
            k = k + target_k - self.k(np.log(np.maximum(vol, 1e-9) / self.anatomy.baseline_ml))
        return k

    def measure(self, points_mm: np.ndarray, k: np.ndarray, on_nodes: bool = False) -> np.ndarray:
        """Structure volumes (mL) of the measurement points ``points_mm`` (3, N) flowed by ``Σ k_R D_R``: the
        occupancy they read, summed, times the 2 mm cell volume.

        Only points within reach of a structure are flowed and read (:meth:`Anatomy.near_structures`); the rest
        read exactly zero.
        """
        return self._measure(points_mm, velocity_voxels(self.anatomy, k), on_nodes)

    def _measure(
        self, points_mm: np.ndarray, velocity: np.ndarray, on_nodes: bool, start: np.ndarray | None = None
    ) -> np.ndarray:
        a = self.anatomy
        points_mm = np.ascontiguousarray(points_mm, dtype=np.float32)
        start = a.start_distance(points_mm) if start is None else start
        total = kernels.flowed_occupancy(
            points_mm, start, a.reach(velocity, on_nodes),
            velocity, a.basis.origin, a.basis.voxel_mm, FLOW_STEPS, a.moving.table, a.moving.origin, a.moving.voxel_mm,
            self.occupancy_voxels, a.occupancy.origin, a.occupancy.voxel_mm,
            a.occupied.table, a.occupied.origin, a.occupied.voxel_mm,
        )  # fmt: skip
        return total * a.measure_grid.voxel_mm**3 / 1000

    def render(
        self, effects: SubjectEffects, rng: np.random.Generator, nuisance: Nuisance = Nuisance()
    ) -> tuple[np.ndarray, np.ndarray]:
        """One subject: (image on the grid, float32, zero background; realised structure volumes in mL).

        Only what can be non-zero is computed: points move only where the velocity can be non-zero, the
        intensity is sampled only where the mapped point lies in a brain cell, and the intensity channels are
        combined on the source grid first (sampling is linear), so two channels are sampled instead of eight.
        Runs torch and BLAS on one thread (:func:`~hyperfusion.simulate.volume.one_thread`).
        """
        with one_thread():
            return self._render(effects, rng, nuisance)

    def _render(
        self, effects: SubjectEffects, rng: np.random.Generator, nuisance: Nuisance
    ) -> tuple[np.ndarray, np.ndarray]:
        u_ctrl = rng.normal(0.0, nuisance.anatomy_mm, (3, *ANATOMY_KNOTS))
        b_ctrl = rng.normal(0.0, nuisance.bias_sd, BIAS_KNOTS)
        theta = np.deg2rad(rng.normal(0.0, nuisance.rotation_deg, 3))
        shift = rng.normal(0.0, nuisance.translation_mm, 3)
        scale = 1.0 + rng.normal(0.0, nuisance.scale_sd)
        k = self.solve_k(effects.log_f)
        a = self.anatomy
        velocity = velocity_voxels(a, k)
        c0 = np.asarray(WHOLE_BRAIN_CENTER_MM, dtype=np.float64)
        r_inv = _rotation(theta).T
        u_ctrl = u_ctrl.astype(np.float32)

        def nuisance_map(points: np.ndarray, splines) -> np.ndarray:
            # nuisance first (into template space); the disease/ageing flow acts on the template anatomy after it
            u = separable_field(u_ctrl, *splines).reshape(3, -1)
            return kernels.displaced_affine(points, u, r_inv, c0, shift, float(scale))

        z = flow_voxels(
            nuisance_map(self.points, self.anatomy_splines), velocity, a.basis.origin, a.basis.voxel_mm,
            FLOW_STEPS, a.moving,
        )  # fmt: skip
        weights = np.zeros(len(CHANNELS), np.float32)
        weights[0] = 1.0
        weights[2 : 2 + len(LOBE_NAMES)] = -np.asarray(effects.cortical)
        weights[-1] = -effects.wm_contrast
        source = self.source.data.reshape(len(CHANNELS), -1)
        mixed = torch.matmul(torch.from_numpy(weights)[None], source).numpy()
        self.mixed[..., 0] = mixed.reshape(self.source.shape)

        bias = np.exp(separable_field(b_ctrl, *self.bias_splines).ravel())
        sigma = nuisance.noise * self.anatomy.tissue_means[2]
        noise = rng.standard_normal((2, self.points.shape[1]), dtype=np.float32)
        src, brain = self.source, self.brain
        image = kernels.image_values(
            self.mixed,
            src.origin,
            src.voxel_mm,
            brain.table,
            brain.origin,
            brain.voxel_mm,
            z,
            bias,
            noise,
            sigma,
        )
        volumes = self._measure(nuisance_map(self.measure_points, self.measure_splines), velocity, False)
        return image.reshape(self.grid.shape), volumes


def _rotation(theta: np.ndarray) -> np.ndarray:
    cx, cy, cz = np.cos(theta)
    sx, sy, sz = np.sin(theta)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def _splines(grid: Grid, knots: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return tuple(  # type: ignore[return-value]
        spline_matrix(np.linspace(*_CONTROL_BOX[d], knots[d]), ax) for d, ax in enumerate(grid.axes_mm())
    )


def _source_channels(anatomy: Anatomy, grid: Grid) -> Volume:
    """Template channels anti-aliased and resampled to the grid's voxel size, over the grid's box + 20 mm."""
    ch = anatomy.channels
    if grid.voxel_mm <= ch.voxel_mm * 1.01:
        return ch
    lo_t = ch.origin
    hi_t = ch.origin + ch.voxel_mm * (np.asarray(ch.shape) - 1)
    lo = np.maximum(grid.origin_mm - _MARGIN_MM, lo_t)
    hi = np.minimum(grid.origin_mm + grid.voxel_mm * (np.asarray(grid.shape) - 1) + _MARGIN_MM, hi_t)
    if np.any(hi <= lo):  # grid outside the template: an empty (all-zero) source
        return Volume.from_numpy(
            np.zeros((ch.data.shape[0], 2, 2, 2), np.float32), grid.origin_mm, grid.voxel_mm
        )
    shape = tuple(int(np.floor((h - lo_) / grid.voxel_mm)) + 1 for lo_, h in zip(lo, hi))
    center = lo + (np.asarray(shape) - 1) / 2 * grid.voxel_mm
    target = Grid(shape, grid.voxel_mm, tuple(center))  # type: ignore[arg-type]
    blurred = Volume.from_numpy(
        antialias(ch.data.numpy(), ch.voxel_mm, grid.voxel_mm), ch.origin, ch.voxel_mm
    )
    return Volume.from_numpy(
        blurred.sample(target.points_mm()).reshape(-1, *shape), target.origin_mm, grid.voxel_mm
    )


@functools.lru_cache(maxsize=4)
def build_renderer(grid: Grid, template: str = "auto", *, phantom_mm: float = 1.0) -> Renderer:
    """Prepare (cached per process) the renderer of a template on an output grid."""
    anatomy = build_anatomy(template, phantom_mm=phantom_mm)
    with one_thread():
        source = _source_channels(anatomy, grid)
    mask = source.data[1]
    mixed = np.ascontiguousarray(np.stack([np.zeros_like(mask.numpy()), mask.numpy()], axis=-1))
    # a sampled mask exceeds 0.5 only in a cell with a corner above 0.5 (trilinear weights are convex)
    brain = CellMask.of_nodes(mask.numpy() > 0.5 - 1e-4, source.origin, source.voxel_mm)
    measure_points = anatomy.measure_grid.points_mm()
    renderer = Renderer(
        anatomy=anatomy,
        grid=grid,
        source=source,
        points=grid.points_mm(),
        anatomy_splines=_splines(grid, ANATOMY_KNOTS),
        bias_splines=_splines(grid, BIAS_KNOTS),
        measure_splines=_splines(anatomy.measure_grid, ANATOMY_KNOTS),
        mixed=mixed,
        brain=brain,
        measure_points=measure_points,
        measure_distance=anatomy.start_distance(measure_points),
        occupancy_voxels=np.ascontiguousarray(np.moveaxis(anatomy.occupancy.data.numpy(), 0, -1)),
    )
    # compile (or load) the kernels here, before a process pool forks, so its workers do not each compile
    blank = SubjectEffects(np.zeros(len(STRUCTURE_NAMES)), np.zeros(len(LOBE_NAMES)), 0.0)
    renderer.render(blank, np.random.default_rng(0), NO_NUISANCE)
    return renderer
