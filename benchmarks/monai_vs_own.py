"""Does MONAI compute what hyperfusion's own image code computes, and is it faster? (why monai is not a runtime
dependency: docs/data.md)

Each row runs one of the package's hand-written image operations and the MONAI transform that does the same job on
the same input, and prints the largest absolute difference of the outputs and the time ratio MONAI / own (above 1:
MONAI is slower). Times are the median of several rounds, both sides alternating, so a stall of a shared machine does
not land on one side only.

* ``resample``: `hyperfusion.data.images.sample_box` (trilinear on a box in world mm, zero outside; scipy
  ``map_coordinates`` in double precision, stored as float32) against ``monai.transforms.SpatialResample`` to the
  box's affine (``bilinear``, ``zeros``), in float32 and float64; a 1 mm MNI-sized volume onto the paper's
  whole-brain box (90×120×99 at 1.75 mm) and onto a hippocampal crop (64×96×64 at 1 mm).
* ``mirror``: the mirrored right crop / ``Augment(flip_lr=True)`` (``volume[::-1]``, copied) against
  ``monai.transforms.Flip(spatial_axis=0)``.
* ``shift``: `hyperfusion.data.dataset.shift_volume` (whole-voxel shift, vacated voxels 0) against
  ``monai.transforms.Affine(translate_params=-offsets, mode="nearest", padding_mode="zeros")`` (MONAI translates
  the sampling grid, so the content moves by ``+offsets``), and against ``BorderPad`` by ``|offsets|`` then
  ``SpatialCrop`` of the original size (whole-voxel copies, no interpolation).

MONAI's random transforms (``RandFlip``, ``RandAffine``) draw from their own ``np.random.RandomState``, not from
the per-item ``default_rng([seed, epoch, index, 1])`` the dataset uses, so they would change which items are shifted
and flipped; the rows here therefore compare the deterministic transforms with the same drawn parameters.

Usage::

    python benchmarks/monai_vs_own.py              # prints the table (benchmarks/results/monai_vs_own.txt)
    python benchmarks/monai_vs_own.py --rounds 3   # quicker
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

import monai
import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import Affine, BorderPad, Flip, SpatialCrop, SpatialResample

from hyperfusion.data.dataset import shift_volume
from hyperfusion.data.images import sample_box


def _volume(shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """A smooth brain-like blob with noise, zero outside an ellipsoid (float32)."""
    rng = np.random.default_rng(seed)
    axes = [np.linspace(-1, 1, n) for n in shape]
    x, y, z = np.meshgrid(*axes, indexing="ij")
    inside = (x / 0.8) ** 2 + (y / 0.85) ** 2 + (z / 0.8) ** 2 < 1
    values = 100 + 40 * np.sin(6 * x) * np.cos(5 * y) + 10 * rng.standard_normal(shape)
    return np.where(inside, values, 0).astype(np.float32)


def _box_affine(shape: tuple[int, ...], voxel_mm: float, center_mm: tuple[float, ...]) -> np.ndarray:
    """The affine of the box `sample_box` samples (voxel i at c + (i - (n - 1) / 2) v)."""
    out = np.eye(4)
    out[:3, :3] *= voxel_mm
    out[:3, 3] = np.asarray(center_mm) - (np.asarray(shape) - 1) / 2.0 * voxel_mm
    return out


def _timed(own: Callable[[], object], theirs: Callable[[], object], rounds: int) -> tuple[float, float]:
    """Median seconds of each, alternating calls (one warm-up call each first)."""
    own(), theirs()
    a, b = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        own()
        a.append(time.perf_counter() - start)
        start = time.perf_counter()
        theirs()
        b.append(time.perf_counter() - start)
    return statistics.median(a), statistics.median(b)


def _row(name: str, own: Callable[[], np.ndarray], theirs: Callable[[], np.ndarray], rounds: int) -> str:
    x, y = np.asarray(own(), dtype=np.float64), np.asarray(theirs(), dtype=np.float64)
    if x.shape != y.shape:
        raise AssertionError(f"{name}: own output {x.shape} vs MONAI {y.shape}")
    diff = float(np.abs(x - y).max())
    scale = float(np.abs(x).max())
    t_own, t_monai = _timed(own, theirs, rounds)
    identical = "yes" if np.array_equal(x, y) else "no"
    return (
        f"{name:58s} {identical:>9s} {diff:12.3g} {diff / scale:10.2g} "
        f"{1000 * t_own:9.2f} {1000 * t_monai:9.2f} {t_monai / t_own:7.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

    source_shape = (182, 218, 182)  # MNI 1 mm field of view
    data = _volume(source_shape)
    affine = np.eye(4)
    affine[:3, 3] = (-90.0, -126.0, -72.0)  # the MNI152 1 mm origin
    image32 = MetaTensor(torch.from_numpy(data)[None], affine=torch.from_numpy(affine))
    image64 = MetaTensor(torch.from_numpy(data.astype(np.float64))[None], affine=torch.from_numpy(affine))

    rows = []
    boxes = [
        ("whole-brain box 90x120x99 @1.75 mm", (90, 120, 99), 1.75, (0.3, -17.2, 5.1)),
        ("hippocampus crop 64x96x64 @1 mm", (64, 96, 64), 1.0, (-26.0, -22.0, -14.0)),
    ]
    for label, shape, voxel, center in boxes:
        dst = torch.from_numpy(_box_affine(shape, voxel, center))

        def own(shape=shape, voxel=voxel, center=center) -> np.ndarray:
            return sample_box(data, affine, shape, voxel, center)

        for dtype, image in (("float32", image32), ("float64", image64)):
            resample = SpatialResample(mode="bilinear", padding_mode="zeros", dtype=getattr(torch, dtype))

            def theirs(resample=resample, image=image, dst=dst, shape=shape) -> np.ndarray:
                return resample(image, dst_affine=dst, spatial_size=shape).numpy()[0].astype(np.float32)

            rows.append(_row(f"resample {label}, MONAI {dtype}", own, theirs, args.rounds))

    box = sample_box(data, affine, (90, 120, 99), 1.75, (0.3, -17.2, 5.1))
    crop = sample_box(data, affine, (64, 96, 64), 1.0, (26.0, -22.0, -14.0))
    flip = Flip(spatial_axis=0)
    for label, volume in (("box", box), ("crop", crop)):
        tensor = torch.from_numpy(volume)[None]
        rows.append(
            _row(
                f"mirror x ({label}), MONAI Flip",
                lambda volume=volume: volume[::-1].copy(),
                lambda tensor=tensor: flip(tensor).numpy()[0],
                args.rounds,
            )
        )
    for offsets in ((3, -2, 1), (-4, 4, -4)):
        for label, volume in (("box", box), ("crop", crop)):
            tensor = torch.from_numpy(volume)[None]
            # MONAI's translation moves the sampling grid: content moves by +offsets under -offsets
            move = Affine(
                translate_params=tuple(-o for o in offsets),
                mode="nearest",
                padding_mode="zeros",
                image_only=True,
            )
            rows.append(
                _row(
                    f"shift {offsets} ({label}), MONAI Affine nearest",
                    lambda volume=volume, offsets=offsets: shift_volume(volume, offsets),
                    lambda tensor=tensor, move=move: move(tensor).numpy()[0],
                    args.rounds,
                )
            )
            pad = [abs(o) for o in offsets]
            border = BorderPad(spatial_border=pad, mode="constant")
            start = [p - o for p, o in zip(pad, offsets)]
            window = SpatialCrop(roi_start=start, roi_end=[s + n for s, n in zip(start, volume.shape)])
            rows.append(
                _row(
                    f"shift {offsets} ({label}), MONAI BorderPad+SpatialCrop",
                    lambda volume=volume, offsets=offsets: shift_volume(volume, offsets),
                    lambda tensor=tensor, border=border, window=window: window(border(tensor)).numpy()[0],
                    args.rounds,
                )
            )

    print(
        f"hyperfusion vs MONAI {monai.__version__} (torch {torch.__version__}, numpy {np.__version__}, "
        f"{platform.machine()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}); "
        f"median of {args.rounds} rounds"
    )
    header = (
        f"{'operation':58s} {'identical':>9s} {'max|diff|':>12s} {'rel diff':>10s} "
        f"{'own ms':>9s} {'MONAI ms':>9s} {'ratio':>7s}"
    )
    print(header)
    print("-" * len(header))
    print("\n".join(rows))


if __name__ == "__main__":
    main()
