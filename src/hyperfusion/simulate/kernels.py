"""Compiled trilinear sampling, flow and volume measurement: the simulator's inner loops.

Why compiled: a subject needs about 30 trilinear passes over tens of thousands of points, and torch's CPU
``grid_sample`` costs 75–200 ns per point per pass here, with a copy between passes.  These kernels keep a point
in registers through all the Euler steps and the occupancy read, on channels-last fields (about 3× less per step).

The arithmetic is ``grid_sample``'s (trilinear, ``align_corners=True``, zero outside the grid, each corner checked
on its own), in float64 per point, so results agree with it to float32 rounding (tested).  Points are world
millimetres (3, N); a field is ``(X, Y, Z, C)`` float32 whose node ``(0, 0, 0)`` is at ``origin`` with spacing
``voxel`` mm.  A velocity is in voxels per unit time.  Single-threaded (processes are how the simulator uses
cores) and deterministic.  Compiled once per machine (``cache=True``, a few seconds) and loaded after that.
"""

from __future__ import annotations

import math

import numba
import numpy as np

_JIT = dict(cache=True, nogil=True, boundscheck=False)


@numba.njit(**_JIT)
def _corner(i, j, k, fx, fy, fz, q, nx, ny, nz):  # pragma: no cover - compiled
    """Flat node index (-1 when off the grid) and weight of corner ``q`` (bits dx, dy, dz) of cell (i, j, k)."""
    dx, dy, dz = q >> 2, (q >> 1) & 1, q & 1
    a, b, c = i + dx, j + dy, k + dz
    w = (fx if dx else 1.0 - fx) * (fy if dy else 1.0 - fy) * (fz if dz else 1.0 - fz)
    if a < 0 or b < 0 or c < 0 or a >= nx or b >= ny or c >= nz:
        return -1, w
    return (a * ny + b) * nz + c, w


@numba.njit(**_JIT)
def _trilinear(flat, nx, ny, nz, nc, x, y, z, out):  # pragma: no cover - compiled
    """Trilinear value of a flat channels-last field at index coordinates (x, y, z) into ``out`` (C,)."""
    out[:] = 0.0
    i, j, k = math.floor(x), math.floor(y), math.floor(z)
    if i < -1 or j < -1 or k < -1 or i >= nx or j >= ny or k >= nz:
        return
    fx, fy, fz = x - i, y - j, z - k
    for q in range(8):
        node, w = _corner(i, j, k, fx, fy, fz, q, nx, ny, nz)
        if node >= 0:
            base = node * nc
            for c in range(nc):
                out[c] += w * flat[base + c]


@numba.njit(**_JIT)
def _at_edge(f, nc, nx, ny, nz, x, y, z):  # pragma: no cover - compiled
    """The first ``nc`` (2 or 3) channels of a flat field at a point with a cell corner off the grid (those
    corners read zero): the slow path of :func:`_velocity` and :func:`_pair`."""
    i, j, k = math.floor(x), math.floor(y), math.floor(z)
    if i < -1 or j < -1 or k < -1 or i >= nx or j >= ny or k >= nz:
        return 0.0, 0.0, 0.0
    r0 = r1 = r2 = 0.0
    for q in range(8):
        node, w = _corner(i, j, k, x - i, y - j, z - k, q, nx, ny, nz)
        if node >= 0:
            r0 += w * f[nc * node]
            r1 += w * f[nc * node + 1]
            if nc == 3:
                r2 += w * f[nc * node + 2]
    return r0, r1, r2


@numba.njit(inline="always", **_JIT)
def _velocity(f, nx, ny, nz, x, y, z):  # pragma: no cover - compiled
    """Trilinear value of a flat 3-channel field, in registers: the flow's hot path, written out by hand."""
    i, j, k = math.floor(x), math.floor(y), math.floor(z)
    if i < 0 or j < 0 or k < 0 or i + 1 >= nx or j + 1 >= ny or k + 1 >= nz:  # a corner off the grid
        return _at_edge(f, 3, nx, ny, nz, x, y, z)
    fx, fy, fz = x - i, y - j, z - k
    gx, gy, gz = 1.0 - fx, 1.0 - fy, 1.0 - fz
    sy = nz * 3
    sx = ny * sy
    a = ((i * ny + j) * nz + k) * 3
    b, c, d = a + sy, a + sx, a + sx + sy
    w00, w01, w10, w11 = gx * gy, gx * fy, fx * gy, fx * fy
    r0 = (w00 * (gz * f[a] + fz * f[a + 3]) + w01 * (gz * f[b] + fz * f[b + 3])
          + w10 * (gz * f[c] + fz * f[c + 3]) + w11 * (gz * f[d] + fz * f[d + 3]))  # fmt: skip
    r1 = (w00 * (gz * f[a + 1] + fz * f[a + 4]) + w01 * (gz * f[b + 1] + fz * f[b + 4])
          + w10 * (gz * f[c + 1] + fz * f[c + 4]) + w11 * (gz * f[d + 1] + fz * f[d + 4]))  # fmt: skip
    r2 = (w00 * (gz * f[a + 2] + fz * f[a + 5]) + w01 * (gz * f[b + 2] + fz * f[b + 5])
          + w10 * (gz * f[c + 2] + fz * f[c + 5]) + w11 * (gz * f[d + 2] + fz * f[d + 5]))  # fmt: skip
    return r0, r1, r2


@numba.njit(inline="always", **_JIT)
def _pair(f, nx, ny, nz, x, y, z):  # pragma: no cover - compiled
    """Trilinear value of a flat 2-channel field (intensity, mask), in registers: the image's hot path."""
    i, j, k = math.floor(x), math.floor(y), math.floor(z)
    if i < 0 or j < 0 or k < 0 or i + 1 >= nx or j + 1 >= ny or k + 1 >= nz:  # a corner off the grid
        r0, r1, _ = _at_edge(f, 2, nx, ny, nz, x, y, z)
        return r0, r1
    fx, fy, fz = x - i, y - j, z - k
    gx, gy, gz = 1.0 - fx, 1.0 - fy, 1.0 - fz
    sy = nz * 2
    sx = ny * sy
    a = ((i * ny + j) * nz + k) * 2
    b, c, d = a + sy, a + sx, a + sx + sy
    w00, w01, w10, w11 = gx * gy, gx * fy, fx * gy, fx * fy
    r0 = (w00 * (gz * f[a] + fz * f[a + 2]) + w01 * (gz * f[b] + fz * f[b + 2])
          + w10 * (gz * f[c] + fz * f[c + 2]) + w11 * (gz * f[d] + fz * f[d + 2]))  # fmt: skip
    r1 = (w00 * (gz * f[a + 1] + fz * f[a + 3]) + w01 * (gz * f[b + 1] + fz * f[b + 3])
          + w10 * (gz * f[c + 1] + fz * f[c + 3]) + w11 * (gz * f[d + 1] + fz * f[d + 3]))  # fmt: skip
    return r0, r1


@numba.njit(**_JIT)
def _in_cells(table, origin, voxel, x, y, z):  # pragma: no cover - compiled
    """Whether world point (x, y, z) lies in a flagged cell of a ``CellMask`` table (cells -1 .. shape - 1)."""
    i = math.floor((x - origin[0]) / voxel) + 1
    j = math.floor((y - origin[1]) / voxel) + 1
    k = math.floor((z - origin[2]) / voxel) + 1
    if i < 0 or j < 0 or k < 0 or i >= table.shape[0] or j >= table.shape[1] or k >= table.shape[2]:
        return False
    return table[i, j, k]


@numba.njit(**_JIT)
def in_cells(table, origin, voxel, points):  # pragma: no cover - compiled
    """Boolean (N,): which world points (3, N) lie in a flagged cell of a ``CellMask`` table."""
    out = np.empty(points.shape[1], np.bool_)
    for t in range(points.shape[1]):
        out[t] = _in_cells(table, origin, voxel, np.float64(points[0, t]), np.float64(points[1, t]),
                           np.float64(points[2, t]))  # fmt: skip
    return out


@numba.njit(inline="always", **_JIT)
def _flow_one(x, y, z, f, nx, ny, nz, origin, voxel, steps):  # pragma: no cover - compiled
    """One world point after ``steps`` Euler steps of a flat velocity field (nx, ny, nz, 3), voxels per unit time."""
    i = (x - origin[0]) / voxel
    j = (y - origin[1]) / voxel
    k = (z - origin[2]) / voxel
    inv = 1.0 / steps
    for _ in range(steps):
        a, b, c = _velocity(f, nx, ny, nz, i, j, k)
        i += a * inv
        j += b * inv
        k += c * inv
    return i * voxel + origin[0], j * voxel + origin[1], k * voxel + origin[2]


@numba.njit(**_JIT)
def flow_points(points, velocity, origin, voxel, steps, moving, m_origin, m_voxel):  # pragma: no cover
    """World points (3, N) float32 after ``steps`` Euler steps of ``velocity``.

    Points outside the ``moving`` cells (a ``CellMask`` table at ``m_origin``, ``m_voxel``) read zero velocity
    and stay exactly where they are, so they are skipped.
    """
    out = points.copy()
    nx, ny, nz = velocity.shape[0], velocity.shape[1], velocity.shape[2]
    f = velocity.reshape(-1)
    for t in range(points.shape[1]):
        x, y, z = np.float64(points[0, t]), np.float64(points[1, t]), np.float64(points[2, t])
        if _in_cells(moving, m_origin, m_voxel, x, y, z):
            out[0, t], out[1, t], out[2, t] = _flow_one(x, y, z, f, nx, ny, nz, origin, voxel, steps)
    return out


@numba.njit(**_JIT)
def sample_points(field, origin, voxel, points):  # pragma: no cover - compiled
    """Trilinear values (C, N) float32 of ``field`` (X, Y, Z, C) at world points (3, N); zero outside."""
    nx, ny, nz, nc = field.shape
    flat = field.reshape(-1)
    out = np.empty((nc, points.shape[1]), np.float32)
    buf = np.empty(nc)
    for t in range(points.shape[1]):
        x = (np.float64(points[0, t]) - origin[0]) / voxel
        y = (np.float64(points[1, t]) - origin[1]) / voxel
        z = (np.float64(points[2, t]) - origin[2]) / voxel
        _trilinear(flat, nx, ny, nz, nc, x, y, z, buf)
        for c in range(nc):
            out[c, t] = buf[c]
    return out


@numba.njit(**_JIT)
def displaced_affine(points, displacement, matrix, center, shift, scale):  # pragma: no cover - compiled
    """``center + matrix @ (p + u − center − shift) / scale`` per world point p (3, N) with displacement u (3, N),
    as float32 (3, N): the nuisance map of a subject, without numpy's float64 temporaries."""
    out = np.empty(points.shape, np.float32)
    for t in range(points.shape[1]):
        a = np.float64(points[0, t]) + displacement[0, t] - center[0] - shift[0]
        b = np.float64(points[1, t]) + displacement[1, t] - center[1] - shift[1]
        c = np.float64(points[2, t]) + displacement[2, t] - center[2] - shift[2]
        for d in range(3):
            out[d, t] = center[d] + (matrix[d, 0] * a + matrix[d, 1] * b + matrix[d, 2] * c) / scale
    return out


@numba.njit(**_JIT)
def image_values(
    mixed, origin, voxel, brain, b_origin, b_voxel, points, bias, noise, sigma
):  # pragma: no cover
    """The subject's voxel values (N,) float32 at their flowed template points (3, N).

    ``mixed`` (X, Y, Z, 2) holds the combined intensity and the brain mask; a point outside the ``brain`` cells
    (a ``CellMask`` table) or whose sampled mask is at most 0.5 is background, exactly 0.  Inside, the intensity
    (clipped at 0) times ``bias`` gets Rician noise ``sqrt((I + σ n0)² + (σ n1)²)`` from ``noise`` (2, N), and
    stays above 1e-3 so the data layer's non-zero mask is the brain.
    """
    nx, ny, nz = mixed.shape[0], mixed.shape[1], mixed.shape[2]
    f = mixed.reshape(-1)
    out = np.zeros(points.shape[1], np.float32)
    for t in range(points.shape[1]):
        x, y, z = np.float64(points[0, t]), np.float64(points[1, t]), np.float64(points[2, t])
        if not _in_cells(brain, b_origin, b_voxel, x, y, z):
            continue
        value, mask = _pair(
            f, nx, ny, nz, (x - origin[0]) / voxel, (y - origin[1]) / voxel, (z - origin[2]) / voxel
        )
        if mask <= 0.5:
            continue
        value = max(np.float64(np.float32(value)), 0.0) * bias[t]
        value = math.sqrt((value + sigma * noise[0, t]) ** 2 + (sigma * noise[1, t]) ** 2)
        out[t] = max(value, 1e-3)
    return out


@numba.njit(**_JIT)
def nearest_distance(points, distance, origin, spacing, off_grid):  # pragma: no cover - compiled
    """Per point (N,) float32: ``distance`` at the node nearest to each world point (3, N), or ``off_grid``
    for a point whose nearest node is off the grid (a tie may round either way: both nodes are equally near)."""
    nx, ny, nz = distance.shape
    out = np.empty(points.shape[1], np.float32)
    for t in range(points.shape[1]):
        i = math.floor((np.float64(points[0, t]) - origin[0]) / spacing + 0.5)
        j = math.floor((np.float64(points[1, t]) - origin[1]) / spacing + 0.5)
        k = math.floor((np.float64(points[2, t]) - origin[2]) / spacing + 0.5)
        if 0 <= i < nx and 0 <= j < ny and 0 <= k < nz:
            out[t] = distance[i, j, k]
        else:
            out[t] = off_grid
    return out


@numba.njit(**_JIT)
def flowed_occupancy(
    points, point_distance, reach,
    velocity, v_origin, v_voxel, steps, moving, m_origin, m_voxel,
    occupancy, o_origin, o_voxel, occupied, c_origin, c_voxel,
):  # pragma: no cover - compiled  # fmt: skip
    """Per-channel sum (C,) float64 of ``occupancy`` (X, Y, Z, C) read at every point after the flow.

    A point is flowed and read only when its ``point_distance`` to the structure cells is within ``reach`` mm
    (the test of ``Anatomy.near_structures``); after the flow it is read only inside an ``occupied`` cell (a
    ``CellMask`` table); the others read zero.
    """
    ox, oy, oz, nc = occupancy.shape
    o_flat = occupancy.reshape(-1)
    vx, vy, vz = velocity.shape[0], velocity.shape[1], velocity.shape[2]
    v_flat = velocity.reshape(-1)
    total = np.zeros(nc)
    buf = np.empty(nc)
    for t in range(points.shape[1]):
        if point_distance[t] > reach:
            continue
        x, y, z = np.float64(points[0, t]), np.float64(points[1, t]), np.float64(points[2, t])
        if _in_cells(moving, m_origin, m_voxel, x, y, z):
            x, y, z = _flow_one(x, y, z, v_flat, vx, vy, vz, v_origin, v_voxel, steps)
        if not _in_cells(occupied, c_origin, c_voxel, x, y, z):
            continue
        _trilinear(o_flat, ox, oy, oz, nc, (x - o_origin[0]) / o_voxel, (y - o_origin[1]) / o_voxel,
                   (z - o_origin[2]) / o_voxel, buf)  # fmt: skip
        for c in range(nc):
            total[c] += buf[c]
    return total
