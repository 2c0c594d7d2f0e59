"""validate's warnings, each on inputs built to trigger it and on near misses that must not."""

from __future__ import annotations

import pandas as pd

from hyperfusion.run.cautions import (
    category_cautions,
    load_note,
    mixed_grid_cautions,
    precision_cautions,
    resolution_cautions,
)
from hyperfusion.run.preflight import GridGroup


def grid(voxel: float, count: int = 10, axes: str = "RAS", shape=(45, 54, 45)) -> GridGroup:
    return GridGroup(tuple(shape), (voxel, voxel, voxel), axes, count)


def test_a_4mm_cohort_read_at_1mm_is_named_as_a_4x_upsampling():
    (line,) = resolution_cautions([grid(4.0, 40)], 1.0)
    assert line.startswith("40 image(s) have 4×4×4 mm voxels, but image.voxel_mm is 1")
    assert "upsampled 4× per axis" in line and "hyperfusion init --cohort" in line
    (line,) = resolution_cautions([grid(1.0, 3)], 2.0)
    assert "downsampled 2× per axis" in line


def test_header_rounding_is_not_a_mismatch():
    assert resolution_cautions([grid(0.9999), grid(1.02)], 1.0) == []


def test_mixed_voxel_sizes_and_orientations_are_counted():
    lines = mixed_grid_cautions([grid(2.0, 30), grid(4.0, 10, shape=(23, 27, 23)), grid(2.0, 5, axes="LPS")])
    assert len(lines) == 2
    assert "2 voxel sizes (35 at 2×2×2 mm, 10 at 4×4×4 mm)" in lines[0]
    assert "2 orientations (40 RAS, 5 LPS)" in lines[1]
    assert mixed_grid_cautions([grid(2.0, 30), grid(2.0001, 3, shape=(90, 108, 90))]) == []


def test_categories_differing_only_by_case_or_spaces_are_named_with_their_counts():
    frame = pd.DataFrame(
        {
            "site": ["boston", "Boston", "Boston", "New  York", "New York", "Austin", None],
            "scanner": ["GE", "Siemens", "GE", "Philips", "GE", "GE", "GE"],
        }
    )
    lines = category_cautions(frame, ["site", "scanner"], source="t.csv")
    assert len(lines) == 2  # Boston/boston, New York/New  York; nothing about scanner
    assert lines[0].startswith("t.csv: column 'site' has categories that differ only by case or spaces:")
    assert "'Boston' (2 rows), 'boston' (1 rows)" in lines[0]
    assert "'New  York' (1 rows), 'New York' (1 rows)" in lines[1]


def test_bf16_is_named_on_a_cpu_only():
    (line,) = precision_cautions("bf16", "cpu")
    assert "--precision fp32" in line
    assert precision_cautions("bf16", "cuda") == precision_cautions("fp32", "cpu") == []


def test_a_load_note_only_above_one_process_per_core():
    assert load_note({"1 min": 1.9}, cores=2) is None
    note = load_note({"1 min": 6.5}, cores=2)
    assert note is not None and "load average 6.5 on 2 core(s)" in note
