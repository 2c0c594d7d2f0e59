"""What ``hyperfusion validate`` warns about without stopping the run: inputs that train, but not as meant.

Each check returns one line per finding. None of them is a problem (the run would go through); each is a
setting or a cohort that quietly costs accuracy or hours: images resampled far from their own grid, a cohort of
mixed grids, category spellings that become separate one-hot columns, bf16 autocast on a CPU, a busy machine
under the time estimate.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

import pandas as pd

#: Voxel sizes within this relative difference count as the same (headers round 1 mm to 0.9999 or 1.0001).
SAME_VOXEL = 0.05
#: The load average per core above which timings are called unsteady.
BUSY_LOAD_PER_CORE = 1.0


class Grid(Protocol):
    shape: tuple[int, ...]
    voxel_mm: tuple[float, ...]
    axes: str
    count: int


def _same(a: float, b: float) -> bool:
    return abs(a - b) <= SAME_VOXEL * max(abs(a), abs(b))


def _mm(voxel: Sequence[float]) -> str:
    return "×".join(f"{v:g}" for v in voxel) + " mm"


def resolution_cautions(grids: Sequence[Grid], input_voxel_mm: float) -> list[str]:
    """A line per grid whose voxels differ from the input spec's (``image.voxel_mm``): resampled on every read.

    4 mm images read at 1 mm are upsampled 4× per axis: 64× the voxels, with no detail gained, and a model and
    crop sized for 1 mm.
    """
    out = []
    for grid in grids:
        if all(_same(v, input_voxel_mm) for v in grid.voxel_mm):
            continue
        factor = max(grid.voxel_mm) / input_voxel_mm
        how = f"upsampled {factor:.3g}×" if factor > 1 else f"downsampled {1 / factor:.3g}×"
        out.append(
            f"{grid.count} image(s) have {_mm(grid.voxel_mm)} voxels, but image.voxel_mm is "
            f"{input_voxel_mm:g}: each is {how} per axis when read; set image.voxel_mm (and image.shape, see "
            "docs/data.md) to the cohort's own resolution, e.g. with `hyperfusion init --cohort`"
        )
    return out


def mixed_grid_cautions(grids: Sequence[Grid]) -> list[str]:
    """One line when the cohort's images come at more than one voxel size or orientation.

    Resampling puts them on one grid, but a mix of resolutions is a mix of acquisitions or preprocessing:
    image detail that differs between groups of subjects, which the models can learn instead of the disease.
    """
    out = []
    sizes: dict[tuple[float, ...], int] = {}
    for grid in grids:
        match = next((s for s in sizes if all(_same(a, b) for a, b in zip(s, grid.voxel_mm))), grid.voxel_mm)
        sizes[match] = sizes.get(match, 0) + grid.count
    if len(sizes) > 1:
        listed = ", ".join(f"{n} at {_mm(s)}" for s, n in sorted(sizes.items(), key=lambda kv: -kv[1]))
        out.append(
            f"the images come at {len(sizes)} voxel sizes ({listed}): preprocess them all the same way "
            "(one registration to one template grid) so resolution cannot stand in for the label"
        )
    axes: dict[str, int] = {}
    for grid in grids:
        axes[grid.axes] = axes.get(grid.axes, 0) + grid.count
    if len(axes) > 1:
        listed = ", ".join(f"{n} {a}" for a, n in sorted(axes.items(), key=lambda kv: -kv[1]))
        out.append(f"the images come in {len(axes)} orientations ({listed}): register them to one template")
    return out


def _folded(text: str) -> str:
    return " ".join(text.split()).casefold()


def category_cautions(frame: pd.DataFrame, columns: Iterable[str], *, source: str) -> list[str]:
    """A line per set of categories that differ only by letter case or runs of spaces (``boston``, ``Boston``).

    Each spelling becomes its own one-hot column, splitting one group of subjects in two; the manifest's
    ``values:`` maps the spellings onto one.
    """
    out = []
    for column in columns:
        present = frame[column].dropna().astype(str)
        counts = present.value_counts()
        groups: dict[str, list[str]] = {}
        for value in sorted(counts.index):
            groups.setdefault(_folded(value), []).append(value)
        for spellings in groups.values():
            if len(spellings) > 1:
                listed = ", ".join(f"{s!r} ({counts[s]} rows)" for s in spellings)
                out.append(
                    f"{source}: column {column!r} has categories that differ only by case or spaces: {listed}; "
                    f"each is a separate category (map them onto one with the manifest's values: {{{column}: ...}})"
                )
    return out


def precision_cautions(precision: str, device_type: str) -> list[str]:
    """bf16 autocast on a CPU: most CPUs emulate bf16 convolutions, many times slower than fp32."""
    if precision == "bf16" and device_type == "cpu":
        return [
            "training.precision is bf16 on a CPU: most CPUs have no fast bf16 3D convolutions, so a step can take "
            "many times longer than in fp32 (one report: 58 s a step); use --precision fp32 on a CPU"
        ]
    return []


def load_note(load: Mapping[str, float] | None = None, cores: int | None = None) -> str | None:
    """A note when the machine is busy (1-minute load average above one per core): timings read high."""
    if load is None:
        try:
            load = {"1 min": os.getloadavg()[0]}
        except OSError:  # no load average on this platform
            return None
    cores = cores or os.cpu_count() or 1
    average = load["1 min"]
    if average <= BUSY_LOAD_PER_CORE * cores:
        return None
    return (
        f"this machine is loaded (load average {average:.1f} on {cores} core(s)): other programs share it, so "
        "the timings and the estimate read high; validate again when it is quieter for a steadier number"
    )


__all__ = [
    "category_cautions",
    "load_note",
    "mixed_grid_cautions",
    "precision_cautions",
    "resolution_cautions",
]
