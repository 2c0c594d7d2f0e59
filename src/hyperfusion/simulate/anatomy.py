"""Per-template precomputation: tissue classes, atrophy channels, displacement basis fields and
their volume calibration.  Everything here is in world mm, so it is computed once per template and shared by
every output grid.

* Atrophy channels (linear, so each is warped once and then combined):
  ``E_j = P_gm · G_1.5(P_csf) · (T − μ_csf) · G_4(1_j)`` for the cortical regions j (thinning grey matter
  towards CSF), ``E_wm = P_wm · (T − μ_gm)`` (loss of grey/white contrast).
* Normal-push basis field per structure R: ``D_R = −∇(G_σ * 1_R) / max‖∇(G_σ * 1_R)‖`` (σ = 2 mm; 3 mm for the
  temporal horns, 4 mm for the lateral ventricles).  A subject's velocity ``v = Σ k_R D_R`` is integrated
  (:func:`flow`) so the warp stays invertible; sampling the template at the flowed point with k > 0 moves a
  structure's boundary inwards by about k mm (shrinks it), k < 0 grows it.
* Calibration: warp the occupancy of R with k on a grid of values and measure the realised log-volume change;
  its inverse gives the k that realises a target ``log f`` (smoothing makes the naive k too small).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

from hyperfusion.simulate import kernels
from hyperfusion.simulate.grid import Grid
from hyperfusion.simulate.template import CSF_MAX, LOBES, STRUCTURES, WM_MIN, Template, load_template
from hyperfusion.simulate.volume import CellMask, Volume, block_mean, one_thread

STRUCTURE_NAMES: tuple[str, ...] = tuple(STRUCTURES)
LOBE_NAMES: tuple[str, ...] = tuple(LOBES)
CHANNELS: tuple[str, ...] = ("t1", "mask", *(f"atrophy_{j}" for j in LOBE_NAMES), "wm_contrast")
WORK_MM = 2.0  # resolution of basis fields and volume measurement
PUSH_SIGMA_MM = {  # smoothing of each structure's push field: wider for big and thin structures
    name: 4.0 if name.startswith("lateral_ventricle") else 3.0 if name.startswith("temporal_horn") else 2.0
    for name in STRUCTURE_NAMES
}
FLOW_STEPS = 8  # Euler steps integrating the velocity field (keeps the warp invertible)


@dataclass(frozen=True, eq=False)
class Anatomy:
    """Template-level precomputation shared by every output grid.

    Attributes:
        template: the source template.
        channels: intensity channels ``CHANNELS`` on the template grid (cropped to the brain).
        occupancy: structure occupancy fractions at ``WORK_MM`` (one channel per ``STRUCTURE_NAMES``).
        basis: displacement basis fields at ``WORK_MM``, channels (structure, xyz) flattened to 3 * S.
        measure_grid: ``WORK_MM`` grid around all structures on which realised volumes are measured.
        baseline_ml: structure volumes of the unwarped template on ``measure_grid`` (mL).
        calibration: structure -> (realised log-volume changes ascending, matching k values).
        tissue_means: (μ_csf, μ_gm, μ_wm) of the template.
        moving: the basis grid's cells where some basis field is non-zero (only points there can move).
        structure_distance: on a grid of half ``WORK_MM`` spacing, the distance (mm) to the structure cells
            (:func:`structure_cell_distance`); a point farther than it can travel reads zero occupancy.
        distance_origin: world position of ``structure_distance``'s node (0, 0, 0).
        basis_voxels: ``basis`` channels-last in voxels per unit time, (structure, X, Y, Z, xyz), what the
            compiled flow reads (:func:`velocity_voxels`).
        occupied: the occupancy grid's cells where some structure's occupancy may be non-zero.
    """

    template: Template
    channels: Volume
    occupancy: Volume
    basis: Volume
    measure_grid: Grid
    baseline_ml: np.ndarray
    calibration: dict[str, tuple[np.ndarray, np.ndarray]]
    tissue_means: tuple[float, float, float]
    moving: CellMask
    structure_distance: np.ndarray
    distance_origin: np.ndarray
    basis_voxels: np.ndarray
    occupied: CellMask

    def k_for(self, name: str, log_f: np.ndarray | float) -> np.ndarray:
        """Basis coefficient realising the log-volume factor ``log_f`` (clipped to the calibrated range)."""
        dlog, ks = self.calibration[name]
        return np.interp(log_f, dlog, ks)

    def log_f_range(self, name: str) -> tuple[float, float]:
        """The calibrated range of log-volume factors for one structure."""
        dlog = self.calibration[name][0]
        return float(dlog[0]), float(dlog[-1])

    def reach(self, velocity_voxels: np.ndarray, on_nodes: bool = False) -> float:
        """How far (mm) from the structure cells a point may start and still read non-zero occupancy after the
        flow of a channels-last velocity in voxels per unit time (see :meth:`near_structures`)."""
        speed = float(np.sqrt(np.einsum("...c,...c->...", velocity_voxels, velocity_voxels).max()))
        slack = (1.0 if on_nodes else 2.0) * np.sqrt(3) / 2 * (self.occupancy.voxel_mm / 2) + 1e-3
        return speed * self.basis.voxel_mm + slack

    def start_distance(self, points_mm: np.ndarray) -> np.ndarray:
        """Per world point (3, N): the structure distance at its nearest node of the half-spaced distance grid,
        or, off that grid, the margin between the structure cells and the grid's edge (float32, (N,))."""
        d = self.structure_distance
        margin = min(float(f.min()) for f in (d[0], d[-1], d[:, 0], d[:, -1], d[:, :, 0], d[:, :, -1]))
        return kernels.nearest_distance(
            np.asarray(points_mm), d, self.distance_origin, self.occupancy.voxel_mm / 2, margin
        )

    def near_structures(self, points_mm: np.ndarray, velocity: Volume, on_nodes: bool = False) -> np.ndarray:
        """Boolean (N,): the world points (3, N) that may read non-zero occupancy after the flow of ``velocity``.

        Conservative, so skipping the others changes no volume.  A point travels at most the field's largest
        node speed (trilinear weights are convex, each of the steps moves it by a step's share of the speed at
        its position); it reads non-zero occupancy only inside the structure cells (those with a non-zero
        corner).  It is kept when its nearest node of the half-spaced distance grid lies within that travel of
        the structure cells, plus the slack of the rounding (half a fine diagonal for the structure cells,
        another for points that are not ``WORK_MM`` nodes).  Points off the distance grid are kept only when
        the travel reaches the margin between the structure cells and the grid's edge.  The compiled
        measurement (:func:`~hyperfusion.simulate.kernels.flowed_occupancy`) applies the same test per point.
        """
        return self.start_distance(points_mm) <= self.reach(voxels_of(velocity), on_nodes)


def structure_cell_distance(any_node: np.ndarray, work_mm: float) -> np.ndarray:
    """Distance (mm) from each node of the half-spaced grid to the structure cells of a node image (spacing
    ``work_mm``).

    The structure cells (every cell with a non-zero corner) are the cubes of half-width ``work_mm``
    around the non-zero nodes: on the grid of half spacing, the non-zero nodes dilated by two fine steps.
    """
    x, y, z = any_node.shape
    up = np.zeros((2 * x - 1, 2 * y - 1, 2 * z - 1), bool)
    up[::2, ::2, ::2] = any_node
    cells = ndimage.maximum_filter(up, size=5, mode="constant")  # a cube: separable, fast
    return (ndimage.distance_transform_edt(~cells) * work_mm / 2).astype(np.float32)


def _crop_box(mask: np.ndarray, margin: int) -> tuple[slice, ...]:
    idx = np.argwhere(mask)
    lo = np.maximum(idx.min(0) - margin, 0)
    hi = np.minimum(idx.max(0) + margin + 1, mask.shape)
    return tuple(slice(a, b) for a, b in zip(lo, hi))


def intensity_channels(t: Template) -> tuple[np.ndarray, tuple[float, float, float]]:
    """Stack ``CHANNELS`` (C, X, Y, Z) on the template grid, and the measured tissue means."""
    vox = t.voxel_mm
    brain, t1 = t.mask, t.t1
    p_csf = brain & (t1 < CSF_MAX)
    p_wm = brain & (t1 > WM_MIN)
    p_gm = brain & ~p_csf & ~p_wm
    mu = tuple(float(t1[m].mean()) for m in (p_csf, p_gm, p_wm))
    near_csf = ndimage.gaussian_filter(p_csf.astype(np.float32), 1.5 / vox)
    boundary_gm = p_gm * near_csf * (t1 - mu[0])
    out = [t1, brain.astype(np.float32)]
    for lobe in LOBE_NAMES:
        weight = ndimage.gaussian_filter(t.region_mask(lobe).astype(np.float32), 4.0 / vox)
        out.append(boundary_gm * weight)
    out.append(p_wm * (t1 - mu[1]))
    return np.stack(out).astype(np.float32), mu  # type: ignore[return-value]


def _basis_field(occ: np.ndarray, sigma_vox: float, vox: float) -> np.ndarray:
    smooth = ndimage.gaussian_filter(occ, sigma_vox, mode="constant")
    grad = np.stack(np.gradient(smooth, vox))
    norm = np.sqrt((grad**2).sum(0)).max()
    return (-grad / norm).astype(np.float32)


def flow(
    points_mm: np.ndarray, velocity: Volume, steps: int = FLOW_STEPS, moving: CellMask | None = None
) -> np.ndarray:
    """Integrate the stationary velocity field from each point: ``p ← p + v(p) / steps``, ``steps`` times.

    A composition of small displacements stays invertible where one large displacement ``x + v(x)`` would
    fold, so ventricles can triple and hippocampi halve with a positive Jacobian everywhere.  Only points that can
    move take the steps: those in a cell of ``moving`` (where the field may be non-zero; a point elsewhere reads
    zero velocity and stays exactly where it is), or without it those inside the velocity box.  Compiled
    (:func:`~hyperfusion.simulate.kernels.flow_points`): each point stays in registers through the steps.
    """
    if moving is None:
        moving = CellMask.of_nodes(np.ones(velocity.shape, bool), velocity.origin, velocity.voxel_mm)
    return flow_voxels(points_mm, voxels_of(velocity), velocity.origin, velocity.voxel_mm, steps, moving)


def flow_voxels(
    points_mm: np.ndarray,
    velocity: np.ndarray,
    origin: np.ndarray,
    voxel_mm: float,
    steps: int,
    moving: CellMask,
) -> np.ndarray:
    """:func:`flow` of a channels-last velocity (X, Y, Z, 3) in voxels per unit time, node (0, 0, 0) at
    ``origin``."""
    return kernels.flow_points(
        np.ascontiguousarray(points_mm, dtype=np.float32), velocity, np.asarray(origin, np.float64),
        float(voxel_mm), int(steps), moving.table, moving.origin, moving.voxel_mm,
    )  # fmt: skip


def voxels_of(velocity: Volume) -> np.ndarray:
    """A velocity Volume (3, X, Y, Z) in mm as the compiled kernels read it: channels-last, in voxels."""
    return np.ascontiguousarray(np.moveaxis(velocity.data.numpy(), 0, -1) / np.float32(velocity.voxel_mm))


def jacobian_determinant(mapped: np.ndarray, shape: tuple[int, int, int], spacing_mm: float) -> np.ndarray:
    """det ∂z/∂x of a map sampled on a regular grid (``mapped`` of shape (3, N), N = prod(shape))."""
    z = mapped.reshape(3, *shape)
    j = np.stack([np.stack(np.gradient(c, spacing_mm)) for c in z])  # (component, derivative, ...)
    return (
        j[0, 0] * (j[1, 1] * j[2, 2] - j[1, 2] * j[2, 1])
        - j[0, 1] * (j[1, 0] * j[2, 2] - j[1, 2] * j[2, 0])
        + j[0, 2] * (j[1, 0] * j[2, 1] - j[1, 1] * j[2, 0])
    )


def velocity_voxels(anatomy: Anatomy, k: np.ndarray) -> np.ndarray:
    """:func:`velocity_field` channels-last in voxels per unit time, (X, Y, Z, 3), for the compiled kernels."""
    return np.tensordot(np.asarray(k, np.float32), anatomy.basis_voxels, axes=1)


def velocity_field(anatomy: Anatomy, k: np.ndarray) -> Volume:
    """Per-subject stationary velocity ``v = Σ_R k_R D_R`` on the basis grid (k in ``STRUCTURE_NAMES`` order)."""
    b = anatomy.basis.data.reshape(len(STRUCTURE_NAMES), 3, *anatomy.basis.shape)
    v = torch.einsum("s,sc...->c...", torch.as_tensor(np.asarray(k), dtype=torch.float32), b)
    return Volume(v.contiguous(), anatomy.basis.origin, anatomy.basis.voxel_mm)


def _sub_box(mask: np.ndarray, margin: int) -> tuple[slice, ...]:
    return _crop_box(mask, margin)


@functools.lru_cache(maxsize=4)
def build_anatomy(template: str = "auto", *, phantom_mm: float = 1.0) -> Anatomy:
    """Precompute (cached per process) the :class:`Anatomy` of a template; see the module docstring."""
    with one_thread():
        return _build_anatomy(template, phantom_mm)


def _build_anatomy(template: str, phantom_mm: float) -> Anatomy:
    t = load_template(template, phantom_mm=phantom_mm)
    vox = t.voxel_mm
    box = _crop_box(t.mask, margin=int(np.ceil(12 / vox)))
    origin = t.affine[:3, 3] + vox * np.array([s.start for s in box])
    crop = Template(t.name, t.t1[box], t.mask[box], t.labels[box], t.affine, t.regions)
    chans, mu = intensity_channels(crop)
    channels = Volume.from_numpy(chans, origin, vox)

    factor = max(1, round(WORK_MM / vox))
    work_mm = vox * factor
    work_origin = origin + (factor - 1) / 2 * vox
    occ = np.stack([block_mean(crop.region_mask(n), factor) for n in STRUCTURE_NAMES])
    any_node = occ.sum(0) > 0
    structure_distance = structure_cell_distance(any_node, work_mm)
    # the occupancy is sampled at many points per subject: keep only its non-zero box (+ one zero node), which
    # reads the same everywhere and fits the cache
    obox = _crop_box(any_node, margin=1)
    occupancy = Volume.from_numpy(
        occ[(slice(None), *obox)], work_origin + work_mm * np.array([b.start for b in obox]), work_mm
    )

    # basis fields live in a box around every structure, wide enough for the widest smoothing (3 sigma)
    any_structure = occ.sum(0) > 0
    fbox = _sub_box(any_structure, margin=int(np.ceil(3 * max(PUSH_SIGMA_MM.values()) / work_mm)))
    f_origin = work_origin + work_mm * np.array([s.start for s in fbox])
    fields = np.concatenate(
        [_basis_field(o[fbox], PUSH_SIGMA_MM[n] / work_mm, work_mm) for n, o in zip(STRUCTURE_NAMES, occ)]
    )
    basis = Volume.from_numpy(fields, f_origin, work_mm)
    moving = CellMask.of_nodes((fields != 0).any(0), f_origin, work_mm)
    basis_voxels = np.ascontiguousarray(
        np.moveaxis(fields.reshape(len(STRUCTURE_NAMES), 3, *fields.shape[1:]), 1, -1) / np.float32(work_mm)
    )
    occupied = CellMask.of_nodes((occupancy.data.numpy() > 0).any(0), occupancy.origin, work_mm)

    # measurement grid: working-grid voxels in a box around every structure (+ 10 mm)
    sub = _sub_box(any_structure, margin=int(np.ceil(10 / work_mm)))
    lo = np.array([s.start for s in sub])
    shape = tuple(s.stop - s.start for s in sub)
    center = work_origin + work_mm * (lo + (np.array(shape) - 1) / 2)
    measure_grid = Grid(shape, work_mm, tuple(center))  # type: ignore[arg-type]
    cell_ml = work_mm**3 / 1000
    pts = measure_grid.points_mm()
    baseline = occupancy.sample(pts).sum(1) * cell_ml

    calibration = {}
    for s, name in enumerate(STRUCTURE_NAMES):
        # only points near the structure can change its volume: its box plus 3 sigma of push
        near = _sub_box(occ[s] > 0, margin=int(np.ceil(3 * PUSH_SIGMA_MM[name] / work_mm)) + 1)
        near_grid = Grid(
            tuple(b.stop - b.start for b in near),  # type: ignore[arg-type]
            work_mm,
            tuple(
                work_origin
                + work_mm
                * (np.array([b.start for b in near]) + (np.array([b.stop - b.start for b in near]) - 1) / 2)
            ),  # type: ignore[arg-type]
        )
        near_pts = near_grid.points_mm()
        one = Volume(occupancy.data[s : s + 1], occupancy.origin, occupancy.voxel_mm)
        ref = one.sample(near_pts).sum()
        field = Volume(basis.data[3 * s : 3 * s + 3], basis.origin, basis.voxel_mm)
        ks = np.linspace(-3.0, 3.0, 25) * PUSH_SIGMA_MM[name]
        logs = []
        for k in ks:
            z = flow(near_pts, Volume(field.data * float(k), field.origin, field.voxel_mm), moving=moving)
            logs.append(np.log(max(one.sample(z).sum(), 1e-9) / ref))
        logs_a = np.array(logs)
        # realised log-volume falls as k grows; keep the monotone stretch around k = 0, ascending in log f
        mid = len(ks) // 2
        hi = mid
        while hi + 1 < len(ks) and logs_a[hi + 1] < logs_a[hi]:
            hi += 1
        lo_i = mid
        while lo_i - 1 >= 0 and logs_a[lo_i - 1] > logs_a[lo_i]:
            lo_i -= 1
        calibration[name] = (logs_a[lo_i : hi + 1][::-1].copy(), ks[lo_i : hi + 1][::-1].copy())
    return Anatomy(
        t, channels, occupancy, basis, measure_grid, baseline, calibration, mu,  # type: ignore[arg-type]
        moving, structure_distance, work_origin, basis_voxels, occupied,
    )  # fmt: skip
