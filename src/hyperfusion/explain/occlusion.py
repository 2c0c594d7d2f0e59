"""Occlusion sensitivity on 3D volumes: how much the explained output drops when a patch is replaced.

A ``patch``-sized box slides over the volume in steps of ``stride`` (the last position along each axis is moved
back to the edge so that every voxel is covered); each position's voxels are replaced by the baseline's (a number,
e.g. 0, or a reference volume such as the training rows' mean image) and the output is scored again. A voxel's
value is the mean, over the positions whose patch covers it, of ``f(x) − f(x occluded)``: positive where the image
supports the output more than the baseline does.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor


def patch_starts(size: int, patch: int, stride: int) -> list[int]:
    """Start indices of a patch sliding along an axis of ``size`` voxels, the last one flush with the edge.

    Raises:
        ValueError: a non-positive size, patch or stride.
    """
    if min(size, patch, stride) < 1:
        raise ValueError(f"size, patch and stride must be positive, got {size}, {patch}, {stride}")
    patch = min(patch, size)
    starts = list(range(0, size - patch + 1, stride))
    if starts[-1] != size - patch:
        starts.append(size - patch)
    return starts


def occlusion_map(
    f: Callable[[Tensor], Tensor],
    image: Tensor,
    *,
    patch: Sequence[int],
    stride: Sequence[int],
    baseline: float | Tensor = 0.0,
    batch_size: int = 32,
) -> np.ndarray:
    """Occlusion sensitivity of ``f`` at one volume.

    Args:
        f: maps volumes ``[K, D, H, W]`` to one output each ``[K]``.
        image: the volume ``[D, H, W]``.
        patch, stride: per axis, in voxels.
        baseline: what an occluded voxel becomes: a number, or a volume shaped like ``image`` (its voxel).
        batch_size: occluded copies scored at once.

    Returns:
        float64 ``[D, H, W]``.

    Raises:
        ValueError: a volume that is not 3D, a baseline volume of another shape, or patch/stride without three
            positive entries.
    """
    if image.dim() != 3:
        raise ValueError(f"image must be a volume [D, H, W], got shape {tuple(image.shape)}")
    if isinstance(baseline, Tensor) and baseline.shape != image.shape:
        raise ValueError(
            f"baseline volume {tuple(baseline.shape)} does not match the image {tuple(image.shape)}"
        )
    if len(patch) != 3 or len(stride) != 3:
        raise ValueError(f"patch and stride need three entries, got {patch} and {stride}")
    shape = tuple(image.shape)
    sizes = [min(int(p), n) for p, n in zip(patch, shape)]
    starts = [patch_starts(n, p, int(s)) for n, p, s in zip(shape, sizes, stride)]
    positions = list(itertools.product(*starts))
    with torch.no_grad():
        reference = float(f(image[None])[0])
        total = np.zeros(shape)
        count = np.zeros(shape)
        for begin in range(0, len(positions), batch_size):
            chunk = positions[begin : begin + batch_size]
            copies = image[None].repeat(len(chunk), 1, 1, 1)
            boxes = [tuple(slice(o, o + p) for o, p in zip(origin, sizes)) for origin in chunk]
            for i, box in enumerate(boxes):
                copies[(i, *box)] = baseline[box] if isinstance(baseline, Tensor) else baseline
            drops = reference - f(copies).double().cpu().numpy()
            for box, drop in zip(boxes, drops):
                total[box] += drop
                count[box] += 1
    return total / count
